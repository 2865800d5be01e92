"""Videos among a scan's inputs: each video becomes its frames, a sequence of its own.

Discovery lists files; here every video file is indexed once (one demux pass, no
decoding, :func:`framediff.video.index_video`) and replaced by one input per frame,
named ``clip.mp4#frame=123`` and read through a :class:`VideoFrameRef`. A video that
cannot be read at all stays one input named after the file, whose read fails with the
reason (an error row, never a crash); a video cut short keeps its readable frames and
gets one such input after them, so the damage is reported once.

Frames are grouped into sequences: each video is one, and so is each run of images
between videos (the images of a folder stay one sequence, as before). Consecutive,
keyframe and background comparisons never cross a sequence boundary, and chunks of a
video end at its keyframes (:func:`chunk_ranges`), where a task's decode can start.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from .decode import DecodeError
from .discover import is_image_name
from .video import VideoIndex, frame_name, index_video, plan_segments

__all__ = ["Expanded", "Sequence", "VideoFrameRef", "chunk_ranges", "count_inputs", "expand_inputs", "sequence_start"]


@dataclass(frozen=True)
class VideoFrameRef:
    """Where one input frame lives inside a video.

    Attributes
    ----------
    path : str
        The video file.
    frame : int or None
        Frame index in presentation order; None for the input that stands for the
        file itself (reading it fails with ``error``).
    index : VideoIndex
        The video's index (shared by every frame of the video, so a task pickles it once).
    error : DecodeError or None
        Why the file-level input cannot be read (the file's error, or its damage).
    """

    path: str
    frame: int | None
    index: VideoIndex
    error: DecodeError | None = None

    def __str__(self) -> str:
        return self.path if self.frame is None else frame_name(self.path, self.frame)


@dataclass(frozen=True)
class Sequence:
    """Inputs ``[start, stop)`` compared in order; ``index`` is set for a video."""

    start: int
    stop: int
    index: VideoIndex | None = None


@dataclass
class Expanded:
    """The scan's inputs after videos were expanded into frames.

    Attributes
    ----------
    names, paths : tuple
        Report name and read location (a path, or a :class:`VideoFrameRef`) of each input.
    sequences : tuple of Sequence
    videos : list of (str, str, VideoIndex, int)
        ``(name, path, index, first input)`` of each video file.
    columns : dict of str -> pyarrow.Array or None
        Per-input ``frame``, ``pts`` and ``time_b`` (filled into rows by frame ``b``)
        when there is a video among the inputs; None otherwise.
    """

    names: tuple
    paths: tuple
    sequences: tuple
    videos: list
    columns: dict | None


def expand_inputs(names, paths, *, timeout: float | None = None, times: dict | None = None) -> Expanded:
    """Replace each video among ``paths`` by its frames.

    Parameters
    ----------
    names, paths : sequence of str
        Discovered inputs: report names and paths. Anything that is not named like an
        image is a video (discovery found it by extension or by probing).
    timeout : float, optional
        Seconds before indexing a stalled file gives up (``--file-timeout``).
    times : dict of path -> float, optional
        Capture times of images (``--sort mtime/exif``), as seconds since the epoch.

    Returns
    -------
    Expanded
    """
    out_names, out_paths, sequences, videos = [], [], [], []
    frame_col, pts_col, time_col = [], [], []
    image_start = None

    def close_images():
        nonlocal image_start
        if image_start is not None:
            sequences.append(Sequence(image_start, len(out_paths)))
            image_start = None

    for name, path in zip(names, paths):
        if is_image_name(str(path)):
            if image_start is None:
                image_start = len(out_paths)
            out_names.append(name)
            out_paths.append(path)
            frame_col.append(None)
            pts_col.append(None)
            time_col.append(None if not times or times.get(path) is None else float(times[path]))
            continue
        close_images()
        index = index_video(path, timeout=timeout)
        first = len(out_paths)
        videos.append((name, str(path), index, first))
        n = 0 if index.error else index.n_frames
        out_names.extend(frame_name(name, k) for k in range(n))
        out_paths.extend(VideoFrameRef(str(path), k, index) for k in range(n))
        if n:
            frame_col.extend(range(n))
            pts_col.extend(int(p) for p in index.pts)
            time_col.extend(float(t) for t in index.times(np.arange(n)))
        problem = index.error or index.damage
        if problem is not None:  # the file's own row, after whatever frames it has
            out_names.append(name)
            out_paths.append(VideoFrameRef(str(path), None, index, problem))
            frame_col.append(None)
            pts_col.append(None)
            time_col.append(None)
        sequences.append(Sequence(first, len(out_paths), index))
    close_images()
    columns = None
    if videos:
        columns = {
            "frame": pa.array(frame_col, pa.int64()),
            "pts": pa.array(pts_col, pa.int64()),
            "time_b": pa.array(time_col, pa.float64()),
        }
    return Expanded(tuple(out_names), tuple(out_paths), tuple(sequences), videos, columns)


def count_inputs(paths, *, timeout: float | None = None) -> int:
    """How many inputs ``paths`` expand to: one per image, one per frame of each video
    (a demux pass each; a video that cannot be read counts one)."""
    total = 0
    for path in paths:
        if is_image_name(str(path)):
            total += 1
            continue
        index = index_video(path, timeout=timeout)
        total += (0 if index.error else index.n_frames) + (index.error is not None or index.damage is not None)
    return total


def sequence_start(starts, i: int) -> int:
    """The first input of the sequence that holds input ``i`` (``starts`` sorted; empty: 0)."""
    if not starts:
        return 0
    return starts[bisect.bisect_right(starts, i) - 1]


def chunk_ranges(n: int, chunk_size: int, sequences=()):
    """``(start, end)`` input ranges of the chunks: never across a sequence, at keyframes in videos.

    Image sequences are cut every ``chunk_size`` inputs; a video into about
    ``n_frames / chunk_size`` segments at keyframes (:func:`~framediff.video.plan_segments`,
    from the index alone), its file-level input (if any) joining the last one.
    """
    if not sequences:
        sequences = (Sequence(0, n),)
    for seq in sequences:
        if seq.index is None or seq.index.error is not None:
            yield from _fixed(seq.start, seq.stop, chunk_size)
            continue
        index = seq.index
        wanted = max(1, math.ceil(index.n_frames / chunk_size))
        segments = plan_segments(index, wanted, min_frames=min(25, chunk_size))
        for k, segment in enumerate(segments):
            end = seq.stop if k == len(segments) - 1 else seq.start + segment.stop
            yield seq.start + segment.start, end


def _fixed(start: int, stop: int, size: int):
    for s in range(start, stop, size):
        yield s, min(stop, s + size)
