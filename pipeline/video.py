"""Video files as sources: probing, the keyframe index, and segment plans.

A video is read in two passes. :func:`index_video` demuxes the whole file once, without
decoding (a few ms per thousand frames): every video packet's timestamp and keyframe flag,
in the container's decode order. Sorting the timestamps gives the presentation order, so
frame ``i`` is the ``i``-th smallest pts: exact for variable frame rates and B-frame
reordering, and independent of where a decode starts. :func:`plan_segments` then cuts
the frame range at keyframes into segments that :mod:`framediff.video_decode` decodes
independently (one seek each), which is how a video is spread over Dask tasks.

Bad video is a value, not an exception: a file that cannot be indexed comes back as a
:class:`VideoIndex` whose ``error`` is a :class:`~framediff.decode.DecodeError` (kinds
``missing``, ``permission``, ``not-a-file``, ``empty``, ``truncated``, ``not-a-video``,
``no-video``, ``unsupported``, ``timeout``), and damage that leaves frames readable (a file
cut short) is reported in ``damage`` beside the frames that remain.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from datetime import datetime, timezone
from fractions import Fraction
from pathlib import Path

import numpy as np

from .decode import DecodeError, call_with_timeout

__all__ = [
    "VIDEO_EXTENSIONS",
    "Segment",
    "VideoIndex",
    "frame_name",
    "index_video",
    "is_media",
    "is_video",
    "is_video_name",
    "plan_segments",
]

VIDEO_EXTENSIONS = frozenset(
    {".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ts", ".mts", ".m2ts", ".wmv", ".flv", ".3gp"}
)

#: Leading bytes of container formats FFmpeg reads: a file that starts like one but cannot
#: be opened was most likely cut short (an MP4 whose index was never written).
_CONTAINER_MAGIC = (
    (4, b"ftyp", "MP4/MOV"),
    (0, b"\x1a\x45\xdf\xa3", "Matroska/WebM"),
    (8, b"AVI ", "AVI"),
    (0, b"\x00\x00\x01\xba", "MPEG-PS"),
    (0, b"FLV", "FLV"),
)
#: FFmpeg demuxers of still images and image sequences (plus every ``*_pipe``).
_IMAGE_DEMUXERS = frozenset({"image2", "gif", "apng", "webp", "ico", "tiff"})
#: A container's duration may exceed the last frame's end by this much before the file
#: counts as cut short (audio tails, rounding in the muxer).
_TRUNCATION_SLACK_S = 0.5


@dataclass(frozen=True)
class Segment:
    """A run of frames decoded by one seek.

    Attributes
    ----------
    start, stop : int
        Frame indices ``[start, stop)`` in presentation order; ``start`` is a keyframe.
    seek_pts : int
        Timestamp (stream time base) of the keyframe to seek to.
    """

    start: int
    stop: int
    seek_pts: int

    def __len__(self) -> int:
        return self.stop - self.start


@dataclass
class VideoIndex:
    """What a video file holds, from one demux pass (no decoding).

    Attributes
    ----------
    path : str
    error : DecodeError or None
        Set when no frame can be read; the other fields are then empty.
    damage : DecodeError or None
        Set when frames can be read but the file is damaged (cut short): the frames the
        index lists are still decoded; the scan reports this once for the file.
    codec : str
    width, height : int
        Coded picture size.
    time_base : Fraction
        Unit of ``pts``.
    pts : numpy.ndarray of int64
        Presentation timestamp of each frame, sorted: frame ``i`` has ``pts[i]``.
    decode_pos : numpy.ndarray of int64
        Position of each frame's packet in decode (file) order.
    keyframes : numpy.ndarray of int64
        Indices of the frames whose packets are keyframes (where a decode may start).
    fps : float
        Average frame rate (frames over the span of their timestamps).
    duration : float
        Seconds from the first frame to the end of the last.
    creation_time : float or None
        Container ``creation_time`` as seconds since the epoch (UTC), when written.
    """

    path: str
    error: DecodeError | None = None
    damage: DecodeError | None = None
    codec: str = ""
    width: int = 0
    height: int = 0
    time_base: Fraction = Fraction(1, 1)
    pts: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    decode_pos: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    keyframes: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    fps: float = 0.0
    duration: float = 0.0
    creation_time: float | None = None

    @property
    def n_frames(self) -> int:
        """Frames listed by the container."""
        return len(self.pts)

    def seconds(self, indices) -> np.ndarray:
        """Seconds from the first frame of each frame in ``indices``."""
        return (self.pts[np.asarray(indices)] - self.pts[0]) * float(self.time_base)

    def times(self, indices) -> np.ndarray:
        """The ``time`` of each frame: wall clock (epoch seconds, UTC) when the container
        has a creation time, seconds from the first frame otherwise."""
        return self.seconds(indices) + (self.creation_time or 0.0)


def frame_name(video_name: str, index: int) -> str:
    """The report name of frame ``index`` of a video: ``clip.mp4#frame=123``."""
    return f"{video_name}#frame={int(index)}"


def is_video_name(name) -> bool:
    """Whether ``name`` has a video file extension (case-insensitive)."""
    return Path(str(name)).suffix.lower() in VIDEO_EXTENSIONS


def is_video(path, *, timeout: float | None = 10.0) -> bool:
    """Whether ``path`` is a video with a decodable video stream, whatever its name.

    Probes the container (header only, no demux of the whole file), for discovery of
    files whose extension says nothing (``--recursive`` over a camera's dump).

    Parameters
    ----------
    path : str or path-like
    timeout : float or None
        Seconds before a stalled open gives up (then the file is not a video).
    """
    result = _within(_probe_stream, path, timeout)
    return not isinstance(result, DecodeError)


def is_media(path, *, timeout: float | None = 10.0) -> bool:
    """Whether FFmpeg opens ``path`` as a media container, with or without a usable video
    stream (an audio file, a video in a codec this build lacks): named on the command
    line, such a file is an input whose row says why it has no frames.

    Parameters
    ----------
    path : str or path-like
    timeout : float or None
        Seconds before a stalled open gives up (then the file is not media).
    """
    result = _within(_probe_stream, path, timeout)
    return not isinstance(result, DecodeError) or result.kind in ("no-video", "unsupported")


def index_video(path, *, timeout: float | None = None) -> VideoIndex:
    """Demux a video once: frame timestamps, decode order and keyframes.

    Parameters
    ----------
    path : str or path-like
    timeout : float or None
        Seconds before a stalled read (a hung mount, a FIFO nobody writes) gives up with
        an ``error`` of kind ``timeout``; the reading thread is abandoned.

    Returns
    -------
    VideoIndex
        Never raises for bad content: see ``error`` and ``damage``.
    """
    result = _within(_index, path, timeout)
    if isinstance(result, DecodeError):
        return VideoIndex(str(path), error=result)
    return result


def plan_segments(index: VideoIndex, n_segments: int, *, min_frames: int = 25) -> list[Segment]:
    """Split a video's frames at keyframes into about ``n_segments`` segments.

    Each boundary is the keyframe nearest an even split among those that leave every
    segment at least ``min_frames`` long (a seek costs up to a GOP of decoding, so tiny
    segments do not pay). Few keyframes give fewer segments than asked.

    Parameters
    ----------
    index : VideoIndex
    n_segments : int
        Wanted number of segments (at least 1).
    min_frames : int
        Smallest segment worth its own seek (a video shorter than that is one segment).

    Returns
    -------
    list of Segment
        Covering ``[0, n_frames)`` in order; empty for a video without frames.
    """
    if n_segments < 1:
        raise ValueError(f"n_segments must be at least 1, got {n_segments}")
    n = index.n_frames
    if n == 0:
        return []
    keys = index.keyframes
    if len(keys) == 0 or keys[0] != 0:
        # Frames before the first keyframe cannot be decoded on their own: they start the
        # first segment, which seeks to the start of the file.
        keys = np.concatenate([[0], keys]).astype(np.int64)
    bounds = [0]
    for k in range(1, n_segments):
        target = k * n / n_segments
        # Keyframes that leave both neighbours at least min_frames long.
        valid = keys[(keys - bounds[-1] >= min_frames) & (n - keys >= min_frames)]
        if len(valid):
            bounds.append(int(valid[np.argmin(np.abs(valid - target))]))
    bounds.append(n)
    return [Segment(a, b, int(index.pts[a])) for a, b in zip(bounds[:-1], bounds[1:])]


# --------------------------------------------------------------------------- internals


def _check_file(path) -> None:
    """Refuse what is not a non-empty file (or FIFO) before FFmpeg sees it."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise DecodeError("missing", "no such file") from None
    except PermissionError:
        raise DecodeError("permission", "permission denied") from None
    except OSError as exc:
        raise DecodeError("unreadable", exc.strerror or str(exc)) from None
    if stat.S_ISDIR(st.st_mode):
        raise DecodeError("not-a-file", "is a directory")
    if stat.S_ISREG(st.st_mode):
        if st.st_size == 0:
            raise DecodeError("empty", "zero-byte file")
    elif not stat.S_ISFIFO(st.st_mode):
        raise DecodeError("not-a-file", "not a regular file")


def _container_guess(path) -> str | None:
    """The container a file's first bytes announce, or None."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(16)
    except OSError:
        return None
    for offset, magic, name in _CONTAINER_MAGIC:
        if head[offset : offset + len(magic)] == magic:
            return name
    return None


def _open(path):
    """``av.open`` with FFmpeg's failures turned into DecodeError kinds."""
    import av

    _check_file(path)
    try:
        return av.open(str(path), metadata_errors="replace")
    except PermissionError:
        raise DecodeError("permission", "permission denied") from None
    except FileNotFoundError:
        raise DecodeError("missing", "no such file") from None
    except av.error.FFmpegError as exc:
        guess = _container_guess(path)
        if guess:
            reason = f"{guess} file that FFmpeg cannot open (cut short?): {_reason(exc)}"
            raise DecodeError("truncated", reason) from None
        raise DecodeError("not-a-video", f"not a container FFmpeg recognises: {_reason(exc)}") from None


def _reason(exc) -> str:
    """FFmpeg's message without the file name and errno it repeats."""
    return getattr(exc, "strerror", None) or str(exc)


def _video_stream(container):
    """The first video stream with a decoder, or DecodeError."""
    fmt = container.format.name
    if fmt in _IMAGE_DEMUXERS or fmt.endswith("_pipe"):
        # FFmpeg reads a still image as a one-frame video: framediff reads it as an image.
        raise DecodeError("not-a-video", f"a still image ({fmt}), not a video")
    streams = container.streams.video
    if not streams:
        kinds = sorted({s.type for s in container.streams}) or ["no streams"]
        raise DecodeError("no-video", f"no video stream ({', '.join(kinds)} only)")
    stream = streams[0]
    if stream.codec_context is None:
        raise DecodeError("unsupported", "no decoder for the video codec in this FFmpeg build")
    return stream


def _within(fn, path, timeout):
    """``fn(path)``, or the DecodeError it raised (a ``timeout`` one when it stalls), as a value."""
    try:
        reason = f"no data after {timeout:g} s (stalled read)" if timeout else ""
        return call_with_timeout(lambda: fn(path), timeout, reason)
    except DecodeError as exc:
        return exc


def _probe_stream(path) -> bool:
    """Open and check for a decodable video stream (DecodeError when there is none)."""
    with _open(path) as container:
        _video_stream(container)
    return True


def _creation_time(container) -> float | None:
    stamp = container.metadata.get("creation_time")
    if not stamp:
        return None
    try:
        moment = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.timestamp()


def _index(path) -> VideoIndex:
    import av

    with _open(path) as container:
        stream = _video_stream(container)
        tb = stream.time_base or Fraction(1, 1)
        pts, keys, durations = [], [], []
        read_error = None
        try:
            for packet in container.demux(stream):
                if packet.size == 0:  # the flush packet demux ends with
                    continue
                stamp = packet.pts if packet.pts is not None else packet.dts
                if stamp is None:
                    continue
                pts.append(stamp)
                keys.append(packet.is_keyframe)
                durations.append(packet.duration or 0)
        except av.error.FFmpegError as exc:
            read_error = exc
        index = VideoIndex(
            str(path),
            codec=stream.codec_context.name,
            width=stream.codec_context.width,
            height=stream.codec_context.height,
            time_base=tb,
            creation_time=_creation_time(container),
        )
        declared = container.duration / av.time_base if container.duration else None
    if not pts:
        reason = _reason(read_error) if read_error else "the video stream has no frames"
        index.error = DecodeError("truncated" if read_error else "empty", reason)
        return index
    order = np.argsort(np.asarray(pts, np.int64), kind="stable")
    index.pts = np.asarray(pts, np.int64)[order]
    index.decode_pos = order.astype(np.int64)
    index.keyframes = np.flatnonzero(np.asarray(keys)[order]).astype(np.int64)
    last_duration = durations[order[-1]] or (int(np.median(np.diff(index.pts))) if len(index.pts) > 1 else 0)
    index.duration = float((index.pts[-1] - index.pts[0] + last_duration) * tb)
    index.fps = len(index.pts) / index.duration if index.duration > 0 else 0.0
    if read_error is not None:
        index.damage = DecodeError("truncated", f"demuxing stopped after {len(pts)} frames: {_reason(read_error)}")
    elif declared and declared - index.duration > _TRUNCATION_SLACK_S:
        index.damage = DecodeError(
            "truncated", f"frames end at {index.duration:.2f} s of the {declared:.2f} s the container declares"
        )
    return index
