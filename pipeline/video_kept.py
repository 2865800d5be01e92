"""What a scan with videos leaves besides the report: kept frames as images, their times
with an ffmpeg filter script per video, and start/end times on events."""

from __future__ import annotations

import re
from pathlib import Path

import pyarrow as pa

from .video import frame_name
from .video_inputs import Expanded
from .video_outputs import extract_frames, kept_timestamps

__all__ = ["add_event_times", "event_table_with_times", "kept_by_video", "write_video_kept"]


def kept_by_video(expanded: Expanded, kept) -> list:
    """``(name, path, index, frames)`` of each video with kept frames (frame indices in the video)."""
    kept = sorted(kept)
    out = []
    for name, path, index, first in expanded.videos:
        if index.error is not None:
            continue
        frames = [i - first for i in kept if first <= i < first + index.n_frames]
        if frames:
            out.append((name, path, index, frames))
    return out


def write_video_kept(
    expanded: Expanded, kept, *, extract=None, timestamps=None, fmt="jpg", read_timeout=None, overwrite=False
) -> dict:
    """Write the kept video frames as images and/or their times, per video.

    Parameters
    ----------
    expanded : Expanded
        The scan's inputs.
    kept : iterable of int
        Input indices of the kept frames (images among them are left to the keep-list).
    extract : path, optional
        Folder for the frames as images: ``<folder>/<video's folder>/<stem>_<frame:06d>.<fmt>``.
    timestamps : path, optional
        CSV of the kept frames' times, with an ffmpeg ``.select`` filter script next to
        it (see :func:`framediff.video_outputs.kept_timestamps`). With several videos,
        one pair of files per video: ``<stem>.<video name>.csv``.
    fmt : {'jpg', 'png'}
    read_timeout : float, optional
    overwrite : bool
        Replace images an earlier run extracted.

    Returns
    -------
    dict
        ``extracted`` (images written), ``not_extracted`` (frame name -> reason) and
        ``kept_timestamps`` (CSV paths written).
    """
    summary = {"extracted": 0, "not_extracted": {}, "kept_timestamps": []}
    per_video = kept_by_video(expanded, kept)
    videos = [v for v in expanded.videos if v[2].error is None]
    for name, path, index, frames in per_video:
        if extract is not None:
            folder = Path(extract) / Path(name).parent
            result = extract_frames(
                path, frames, folder, index=index, fmt=fmt, overwrite=overwrite, read_timeout=read_timeout
            )
            summary["extracted"] += len(result.written)
            summary["not_extracted"].update({frame_name(name, f): reason for f, reason in result.failed.items()})
    if timestamps is not None:
        chosen = {v[1]: v[3] for v in per_video}
        for name, path, index, _first in videos:
            target = Path(timestamps) if len(videos) == 1 else _per_video(Path(timestamps), name)
            written = kept_timestamps(index, chosen.get(path, []), target)
            summary["kept_timestamps"].append(str(written["csv"]))
    return summary


def _per_video(target: Path, name: str) -> Path:
    stem = target.name[: -len(".csv")] if target.name.lower().endswith(".csv") else target.name
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", name)
    return target.with_name(f"{stem}.{safe}.csv")


def add_event_times(events: list, times: pa.Array) -> None:
    """Give each event dict the ``start_time``/``end_time`` of its first and last frame."""
    values = times.to_pylist()
    for event in events:
        event["start_time"] = values[event["first_index"]]
        event["end_time"] = values[event["last_index"]]


def event_table_with_times(table: pa.Table, times: pa.Array) -> pa.Table:
    """The events table with ``start_time`` and ``end_time`` (seconds, as ``time_b``)."""
    for column, source in (("start_time", "first_index"), ("end_time", "last_index")):
        table = table.append_column(pa.field(column, pa.float64()), times.take(table.column(source)))
    return table
