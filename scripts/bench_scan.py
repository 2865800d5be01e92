#!/usr/bin/env python
"""Side-by-side throughput of framediff scan against its ceiling and its peers, in one run.

Generates N synthetic 1920x1080 q90 JPEG frames (a real photograph as texture, sensor
noise, lighting drift, an object, a light switch, a shake, duplicates), then measures
images/s of, each in its own subprocess (so peak RSS is its own):

  decode-1       decode-only with the scan's decoder (libjpeg-turbo to luma), 1 thread
  decode-2       the same on 2 threads: the ceiling for 2 workers
  scan-1         framediff scan, defaults, 1 worker (threads scheduler)
  scan-2         framediff scan, defaults, 2 workers
  scale-0.25     framediff scan --scale 0.25, 1 worker
  classic        the classic loop: both images of every pair decoded (imageio RGB),
                 channel mean, min-max, float64 L1/L0, one core
  pyscenedetect  PySceneDetect's ContentDetector on the same frames (when installed)

and prints each figure, the ratios the targets are stated in, and peak RSS. It also
times small jobs from a fresh process (the median of 7 runs; import, start-up and
the work itself): ``framediff scan`` of two 320x240 frames, and ``framediff compare``
of the same two files, next to ``python -c pass`` (the interpreter alone).
With --rss-frames N2 it also scans N2 frames (default off; 5000 for the acceptance
check) to show peak RSS stays flat as the frame count grows. With --pairs-frames N3
(default off; 30 for the check) it runs all-pairs mode over N3 of the 1080p frames
with --metrics ssim and with --metrics l1_per_pixel, side by side: the windowed
measure must stay within a bounded factor of the plain one in memory.

With --against REV it also times ``scan-1`` of this repository's git revision REV (laid
out from ``git archive`` and imported in place of the installed package) and of this
checkout, alternating, --rounds times each: a change's cost measured side by side on
the same frames, target within 10 %.

Usage:  python scripts/bench_scan.py [--frames 600] [--rss-frames 5000] [--out DIR]
                                     [--against REV [--rounds 3]]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WORKERS = {}


def _rss_mib() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def worker_decode(frames_dir: str, threads: int) -> dict:
    """Decode every frame to luma with the scan's decoder, on ``threads`` threads."""
    from concurrent.futures import ThreadPoolExecutor

    from framediff.decode import read_image

    paths = sorted(Path(frames_dir).glob("*.jpg"))
    read_image(paths[0], gray="luma")  # warm-up (buffers)

    def run(part):
        for p in part:
            try:
                read_image(p, gray="luma")
            except Exception:  # the corrupt frame
                pass

    parts = [paths[i::threads] for i in range(threads)]
    t = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(run, parts))
    return {"images": len(paths), "seconds": time.perf_counter() - t}


def worker_scan(frames_dir: str, workers: int, scale: float = 1.0) -> dict:
    """framediff's scan engine with its defaults, timed without interpreter start-up."""
    from framediff.options import make_options
    from framediff.scan import run_scan

    opts = make_options("fast", scale=scale, device="cpu")
    # Warm-up on the first frames, up to the sequence's first event: compiles (or loads
    # cached) kernels and imports the change-kind code, as any long run amortises them.
    warm = sorted(Path(frames_dir).glob("*.jpg"))[:70]
    run_scan([str(p) for p in warm], options=opts, workers=workers)
    t = time.perf_counter()
    result = run_scan(frames_dir, options=opts, workers=workers, chunk_size=64, scheduler="threads")
    seconds = time.perf_counter() - t
    return {"images": result.summary["inputs"], "seconds": seconds, "changed": result.summary["changed"]}


def worker_pairs(frames_dir: str, n: int, metrics: str) -> dict:
    """All-pairs mode over the first ``n`` frames with ``metrics``, one worker."""
    from framediff.options import make_options
    from framediff.scan import run_scan

    opts = make_options("fast", metrics=metrics, device="cpu", change_kind=False)
    paths = [str(p) for p in sorted(Path(frames_dir).glob("*.jpg"))[:n]]
    t = time.perf_counter()
    result = run_scan(paths, options=opts, mode="pairs", workers=1, scheduler="synchronous")
    return {"images": n, "pairs": result.summary["comparisons"], "seconds": time.perf_counter() - t}


def worker_classic(frames_dir: str) -> dict:
    """The classic loop: every pair decodes both images again, float64 throughout."""
    import imageio.v3 as iio
    import numpy as np

    def to_grayscale(arr):
        return np.average(arr, -1) if arr.ndim == 3 else arr

    def normalize(arr):
        rng = arr.max() - arr.min()
        amin = arr.min()
        return (arr - amin) * 255 / rng

    paths = sorted(Path(frames_dir).glob("*.jpg"))
    t = time.perf_counter()
    done = 0
    for a, b in zip(paths, paths[1:]):
        try:
            img1 = to_grayscale(iio.imread(a).astype(float))
            img2 = to_grayscale(iio.imread(b).astype(float))
        except Exception:
            continue
        diff = normalize(img1) - normalize(img2)
        _m = np.sum(np.abs(diff))
        _z = np.linalg.norm(diff.ravel(), 0)
        done += 1
    return {"images": len(paths), "seconds": time.perf_counter() - t, "pairs": done}


def worker_pyscenedetect(frames_dir: str) -> dict:
    """PySceneDetect's content detector over the same frames (as an image sequence)."""
    from scenedetect import ContentDetector, detect

    pattern = str(Path(frames_dir) / "frame_%05d.jpg")
    n = len(list(Path(frames_dir).glob("*.jpg")))
    t = time.perf_counter()
    scenes = detect(pattern, ContentDetector())
    return {"images": n, "seconds": time.perf_counter() - t, "scenes": len(scenes)}


def _child(kind: str, args: list, package: Path | None = None) -> dict:
    """Run one measurement in a fresh interpreter; return its figures and peak RSS.

    ``package``: a folder holding another ``framediff`` (:func:`_baseline_package`),
    imported instead of the installed one.
    """
    code = (
        f"import json, sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import bench_scan as b; "
        f"r = getattr(b, 'worker_' + {kind!r})(*{args!r}); r['rss_mib'] = b._rss_mib(); "
        "import framediff; r['package'] = framediff.__file__; print(json.dumps(r))"
    )
    env = dict(os.environ)
    if package is not None:
        # Ahead of the installed (editable) package, whose finder comes after sys.path's.
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(package), env.get("PYTHONPATH")]))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1] if out.stderr.strip() else f"exit {out.returncode}"}
    return json.loads(out.stdout.strip().splitlines()[-1])


def _baseline_package(revision: str, base: Path) -> Path:
    """This repository's ``revision`` laid out as an importable ``framediff`` under a
    folder of ``base``; returns that folder (for ``PYTHONPATH``)."""
    import shutil

    repo = Path(__file__).resolve().parent.parent
    commit = subprocess.run(["git", "-C", str(repo), "rev-parse", "--short", revision], capture_output=True,
                            text=True, check=True).stdout.strip()  # fmt: skip
    root = base / f"baseline-{commit}"
    if not (root / "framediff" / "__init__.py").exists():
        shutil.rmtree(root, ignore_errors=True)
        (root / "src").mkdir(parents=True)
        archive = subprocess.run(["git", "-C", str(repo), "archive", commit, "pipeline", "kernels"],
                                 capture_output=True, check=True).stdout  # fmt: skip
        subprocess.run(["tar", "-x", "-C", str(root / "src")], input=archive, check=True)
        # The package layout of pyproject.toml: pipeline/ is framediff, kernels/ its .kernels.
        (root / "src" / "pipeline").rename(root / "framediff")
        (root / "src" / "kernels").rename(root / "framediff" / "kernels")
        (root / "src").rmdir()
    return root


def side_by_side(frames: Path, revision: str, base: Path, rounds: int) -> dict:
    """``scan-1`` of this checkout and of ``revision``, alternating, ``rounds`` each.

    The same frames, the same procedure (:func:`worker_scan`: a warm-up, then the timed
    pass), each run in a fresh interpreter, so machine load drifts over both alike.
    """
    import statistics

    package = _baseline_package(revision, base)
    runs = {"this": [], revision: []}
    for _ in range(rounds):
        for name, pkg in (("this", None), (revision, package)):
            r = _child("scan", [str(frames), 1], package=pkg)
            if "error" in r:
                return {"error": f"{name}: {r['error']}"}
            if pkg is not None and not r["package"].startswith(str(package)):
                return {"error": f"the baseline run imported {r['package']}, not {revision}"}
            runs[name].append(r["images"] / r["seconds"])
    ratios = [a / b for a, b in zip(runs["this"], runs[revision])]
    return {"runs": runs, "ratios": ratios, "median": statistics.median(ratios)}


def _generate(directory: Path, n: int) -> None:
    from framediff.synthetic import make_timelapse

    if len(list(directory.glob("*.jpg"))) == n:
        return
    t = time.perf_counter()
    make_timelapse(directory, n_frames=n, size=(1080, 1920), quality=90, seed=1)
    print(f"generated {n} 1920x1080 q90 JPEG frames in {time.perf_counter() - t:.1f} s", flush=True)


def _startup(base: Path, runs: int = 7) -> dict:
    """Median wall seconds of small jobs, each in a fresh interpreter."""
    import statistics

    import numpy as np
    from PIL import Image

    two = base / "two-frames"
    two.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(2):
        Image.fromarray((rng.random((240, 320)) * 255).astype(np.uint8)).save(two / f"{i}.png")
    exe = [sys.executable, "-m", "framediff.cli"]
    commands = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "scan, 2 frames": [*exe, "scan", str(two), "-o", str(base / "two.parquet"), "--overwrite"],
        "compare, 2 files": [*exe, "compare", str(two / "0.png"), str(two / "1.png")],
    }
    out = {}
    for name, cmd in commands.items():
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            subprocess.run(cmd, capture_output=True, check=False)
            times.append(time.perf_counter() - started)
        out[name] = statistics.median(times)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=600)
    parser.add_argument("--rss-frames", type=int, default=0, help="also scan this many frames for peak RSS")
    parser.add_argument("--pairs-frames", type=int, default=0, help="also run all-pairs mode on this many frames")
    parser.add_argument("--out", help="keep generated frames here (default: a temporary folder)")
    parser.add_argument("--skip", default="", help="comma-separated measurements to skip")
    parser.add_argument("--against", metavar="REV",
                        help="also time scan-1 of this repository's git revision REV side by side, alternating")  # fmt: skip
    parser.add_argument("--rounds", type=int, default=3, help="runs of each side with --against")
    args = parser.parse_args(argv)
    base = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="framediff-bench-"))
    frames = base / f"frames-{args.frames}"
    frames.mkdir(parents=True, exist_ok=True)
    _generate(frames, args.frames)
    skip = set(filter(None, args.skip.split(",")))
    plan = [
        ("decode-1", "decode", [str(frames), 1]),
        ("decode-2", "decode", [str(frames), 2]),
        ("scan-1", "scan", [str(frames), 1]),
        ("scan-2", "scan", [str(frames), 2]),
        ("scale-0.25", "scan", [str(frames), 1, 0.25]),
        ("classic", "classic", [str(frames)]),
        ("pyscenedetect", "pyscenedetect", [str(frames)]),
    ]
    results = {}
    print(f"{'measurement':<16}{'images/s':>10}{'seconds':>10}{'peak RSS MiB':>14}", flush=True)
    for name, kind, wargs in plan:
        if name in skip:
            continue
        r = _child(kind, wargs)
        results[name] = r
        if "error" in r:
            print(f"{name:<16}{'n/a':>10}  ({r['error']})", flush=True)
            continue
        r["rate"] = r["images"] / r["seconds"]
        print(f"{name:<16}{r['rate']:>10.1f}{r['seconds']:>10.2f}{r['rss_mib']:>14.0f}", flush=True)

    def rate(key):
        r = results.get(key, {})
        return r.get("rate")

    print()
    print("ratios (target in brackets):")
    checks = [
        ("scan-1 / decode-1", rate("scan-1"), rate("decode-1"), 0.75),
        ("scan-1 / classic", rate("scan-1"), rate("classic"), 12.0),
        ("scan-2 / scan-1", rate("scan-2"), rate("scan-1"), 1.75),
        ("scan-2 / pyscenedetect", rate("scan-2"), rate("pyscenedetect"), 2.0),
        ("scale-0.25 / scan-1", rate("scale-0.25"), rate("scan-1"), 1.8),
        ("scan-2 / decode-2", rate("scan-2"), rate("decode-2"), None),
    ]
    for label, num, den, target in checks:
        if num and den:
            ratio = num / den
            verdict = "" if target is None else ("  ok" if ratio >= target else "  BELOW TARGET")
            tgt = "" if target is None else f" [>= {target}]"
            print(f"  {label:<26}{ratio:6.2f}{tgt}{verdict}")
        else:
            print(f"  {label:<26}   n/a")
    if "startup" not in skip:
        print()
        print("small jobs from a fresh process, median of 7 (target in brackets):")
        for name, seconds in _startup(base).items():
            target = " [< 0.6 s]" if name.startswith("scan") else ""
            print(f"  {name:<26}{seconds:6.2f} s{target}")
    if args.against:
        r = side_by_side(frames, args.against, base, args.rounds)
        print()
        if "error" in r:
            print(f"side by side with {args.against} failed to run: {r['error']}")
        else:
            print(f"scan-1 side by side with {args.against}, {args.rounds} rounds alternating (images/s):")
            for name, rates in r["runs"].items():
                print(f"  {name:<26}" + "".join(f"{v:8.1f}" for v in rates))
            ratio = r["median"]
            print(f"  {'this / ' + args.against:<26}" + "".join(f"{v:8.2f}" for v in r["ratios"]))
            verdict = "  ok" if ratio >= 0.9 else "  BELOW TARGET"
            print(f"  median ratio {ratio:.2f} [>= 0.90: within 10 %]{verdict}")
    if args.rss_frames:
        big = base / f"frames-{args.rss_frames}"
        big.mkdir(parents=True, exist_ok=True)
        _generate(big, args.rss_frames)
        r = _child("scan", [str(big), 2])
        small = results.get("scan-2", {})
        print()
        if "error" in r:
            print(f"peak RSS check failed to run: {r['error']}")
        else:
            print(
                f"peak RSS, 2 workers: {small.get('rss_mib', float('nan')):.0f} MiB at {args.frames} frames, "
                f"{r['rss_mib']:.0f} MiB at {args.rss_frames} frames ({r['images'] / r['seconds']:.1f} images/s)"
                f" [< 1024 MiB and flat]"
            )
    if args.pairs_frames:
        n = min(args.pairs_frames, args.frames)
        plain = _child("pairs", [str(frames), n, "l1_per_pixel"])
        windowed = _child("pairs", [str(frames), n, "ssim"])
        print()
        if "error" in plain or "error" in windowed:
            print(f"pairs-mode check failed to run: {plain.get('error') or windowed.get('error')}")
        else:
            print(f"pairs mode, {n} 1080p frames ({plain['pairs']} pairs), 1 worker:")
            for name, r in (("l1_per_pixel", plain), ("ssim", windowed)):
                print(f"  {name:<14}{r['seconds']:>8.2f} s{r['rss_mib']:>10.0f} MiB peak RSS")
            ratio = windowed["rss_mib"] / plain["rss_mib"]
            print(f"  ssim / l1_per_pixel peak RSS {ratio:.2f} [<= 3]{'  ok' if ratio <= 3 else '  ABOVE TARGET'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
