"""What video users take away from a keyframes run: the kept frames as images, and
their times with a ready-made ffmpeg filter that cuts the video down to them.

:func:`extract_frames` decodes only the keyframe intervals that hold kept frames and writes
each kept frame as JPEG or PNG. :func:`kept_timestamps` writes, for the kept frames of one
video, two files side by side::

    kept.csv      frame, pts, time_s (seconds from the first frame), time (the report's
                  time: wall clock when the container has a creation time)
    kept.select   an ffmpeg filter script keeping exactly those frames

Cutting the video to the kept frames (frame-exact, re-encoded; ``-an`` drops audio that
no longer lines up)::

    ffmpeg -i clip.mp4 -filter_script:v kept.select -an kept.mp4

(FFmpeg 7 and later also accept ``-/filter:v kept.select``.) The filter selects by frame
number ``n`` (presentation order, the numbering of the report) and renumbers the output
timestamps so the kept frames play back to back.

No concat list for a stream copy is written: cutting H.264 with B-frames or open GOPs at
``inpoint``/``outpoint`` without re-encoding drops or adds frames around each cut, so it
cannot promise the kept frames.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .decode import DecodeError
from .errors import FramediffError
from .video import Segment, VideoIndex, index_video
from .video_decode import iter_segment

__all__ = [
    "Extracted",
    "extract_frames",
    "kept_ranges",
    "kept_timestamps",
    "read_video_frame",
    "select_expression",
    "split_frame_name",
]

_IMAGE_FORMATS = {"jpg": "JPEG", "jpeg": "JPEG", "png": "PNG"}


@dataclass
class Extracted:
    """The outcome of :func:`extract_frames`.

    Attributes
    ----------
    written : dict of int -> Path
        Image written for each frame index.
    failed : dict of int -> str
        One-line reason for each kept frame that has no pixels (damaged span, timeout).
    """

    written: dict = field(default_factory=dict)
    failed: dict = field(default_factory=dict)


def extract_frames(
    path,
    indices,
    directory,
    *,
    index: VideoIndex | None = None,
    fmt: str = "jpg",
    quality: int = 95,
    overwrite: bool = False,
    read_timeout: float | None = None,
) -> Extracted:
    """Write frames of a video as image files ``<stem>_<frame:06d>.<fmt>``.

    Parameters
    ----------
    path : str or path-like
        The video.
    indices : iterable of int
        Frame indices (presentation order, as in the report).
    directory : str or path-like
        Created when missing.
    index : VideoIndex, optional
        The video's index when already built (saves one demux pass).
    fmt : {'jpg', 'png'}
    quality : int
        JPEG quality (1-95).
    overwrite : bool
        Replace existing images of the same name; otherwise an existing one is an error.
    read_timeout : float, optional
        As for :func:`framediff.video_decode.iter_segment`.

    Returns
    -------
    Extracted

    Raises
    ------
    FramediffError
        The video cannot be read, an index is out of range, or an image exists already.
    """
    from PIL import Image

    fmt = fmt.lower()
    if fmt not in _IMAGE_FORMATS:
        raise ValueError(f"fmt must be one of {', '.join(sorted(_IMAGE_FORMATS))}, got {fmt!r}")
    index = index if index is not None else index_video(path, timeout=read_timeout)
    if index.error:
        raise FramediffError(f"{path}: {index.error.reason} [{index.error.kind}]")
    wanted = sorted({int(i) for i in indices})
    if wanted and not 0 <= wanted[0] <= wanted[-1] < index.n_frames:
        raise FramediffError(f"{path}: frame indices must be in [0, {index.n_frames}), got {wanted[0]}..{wanted[-1]}")
    directory = Path(directory)
    stem = Path(str(path)).stem
    targets = {i: directory / f"{stem}_{i:06d}.{fmt}" for i in wanted}
    if not overwrite:
        existing = [p for p in targets.values() if p.exists()]
        if existing:
            raise FramediffError(f"{existing[0]}: exists already (pass overwrite to replace it)")
    directory.mkdir(parents=True, exist_ok=True)
    result = Extracted()
    for segment, members in _segments_for(index, wanted):
        for frame in iter_segment(path, index, segment, colour="rgb", read_timeout=read_timeout):
            if frame.index not in members:
                continue
            if frame.error:
                result.failed[frame.index] = f"{frame.error.reason} [{frame.error.kind}]"
                continue
            target = targets[frame.index]
            tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
            options = {"quality": quality} if _IMAGE_FORMATS[fmt] == "JPEG" else {}
            Image.fromarray(frame.array).save(tmp, _IMAGE_FORMATS[fmt], **options)
            os.replace(tmp, target)
            result.written[frame.index] = target
    return result


def kept_ranges(kept) -> list[tuple[int, int]]:
    """Runs of consecutive frame indices as inclusive ``(first, last)`` pairs."""
    frames = sorted({int(i) for i in kept})
    ranges: list = []
    for i in frames:
        if ranges and i == ranges[-1][1] + 1:
            ranges[-1] = (ranges[-1][0], i)
        else:
            ranges.append((i, i))
    return ranges


def select_expression(kept) -> str:
    """An ffmpeg ``select`` expression true exactly on the frames ``kept`` (by ``n``).

    Runs of consecutive frames become one ``between(n,a,b)`` term, so the expression
    stays short for a keyframes run that keeps whole stretches.
    """
    terms = [f"eq(n,{a})" if a == b else f"between(n,{a},{b})" for a, b in kept_ranges(kept)]
    return "+".join(terms) if terms else "0"


def kept_timestamps(index: VideoIndex, kept, out_path) -> dict:
    """Write the kept frames' times and an ffmpeg filter script that keeps only them.

    Parameters
    ----------
    index : VideoIndex
        Of the video the frames come from.
    kept : iterable of int
        Kept frame indices.
    out_path : str or path-like
        The CSV of times (``kept.csv``); the filter script is written next to it with
        the suffix ``.select`` in place of ``.csv``.

    Returns
    -------
    dict
        ``{'csv': Path, 'select': Path}``.
    """
    if index.error:
        raise FramediffError(f"{index.path}: {index.error.reason} [{index.error.kind}]")
    frames = np.array(sorted({int(i) for i in kept}), np.int64)
    if len(frames) and not 0 <= frames[0] <= frames[-1] < index.n_frames:
        raise FramediffError(f"{index.path}: frame indices must be in [0, {index.n_frames})")
    out_path = Path(out_path)
    base = out_path.with_suffix("") if out_path.suffix.lower() == ".csv" else out_path
    paths = {"csv": out_path, "select": base.with_name(base.name + ".select")}
    seconds = index.seconds(frames) if len(frames) else np.zeros(0)
    times = index.times(frames) if len(frames) else np.zeros(0)
    rows = [(int(f), int(index.pts[f]), f"{s:.6f}", f"{t:.6f}") for f, s, t in zip(frames, seconds, times)]
    _write_atomic(paths["csv"], lambda fh: _write_csv(fh, rows))
    script = f"select='{select_expression(frames)}',setpts=N/FRAME_RATE/TB\n"
    _write_atomic(paths["select"], lambda fh: fh.write(script))
    return paths


def _segments_for(index: VideoIndex, wanted: list):
    """For each keyframe interval holding wanted frames: the shortest segment (from its
    keyframe to the last wanted frame) and the wanted frames in it."""
    keys = index.keyframes if len(index.keyframes) and index.keyframes[0] == 0 else np.r_[0, index.keyframes]
    groups: dict = {}
    for i in wanted:
        key = int(keys[np.searchsorted(keys, i, side="right") - 1])
        groups.setdefault(key, []).append(i)
    for key, members in groups.items():
        yield Segment(key, max(members) + 1, int(index.pts[key])), set(members)


def _write_csv(fh, rows) -> None:
    writer = csv.writer(fh, lineterminator="\n")
    writer.writerow(["frame", "pts", "time_s", "time"])
    writer.writerows(rows)


def _write_atomic(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "w", encoding="utf-8", newline="") as fh:
        write(fh)
    os.replace(tmp, path)


def split_frame_name(name: str):
    """``('clip.mp4', 123)`` for a report name ``clip.mp4#frame=123``; None for any other name."""
    video, sep, frame = str(name).rpartition("#frame=")
    if not sep or not frame.isdigit() or not video:
        return None
    return video, int(frame)


def read_video_frame(path, frame: int, *, scale: float = 1.0, read_timeout: float | None = None) -> np.ndarray:
    """One frame of a video as RGB (decoded from the keyframe before it), for a thumbnail.

    Raises
    ------
    DecodeError
        The video cannot be read, has no such frame, or the frame is damaged.
    """

    index = index_video(path, timeout=read_timeout)
    if index.error:
        raise index.error
    if not 0 <= frame < index.n_frames:
        raise DecodeError("missing", f"no frame {frame} (the video has {index.n_frames})")
    ((segment, _members),) = _segments_for(index, [frame])
    for decoded in iter_segment(path, index, segment, colour="rgb", scale=scale, read_timeout=read_timeout):
        if decoded.index == frame:
            if decoded.error:
                raise decoded.error
            return decoded.array
    raise DecodeError("corrupt", f"frame {frame} did not come out of the decoder")
