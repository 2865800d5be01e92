"""Decoding one segment of a video into frames, exactly and in parallel-safe pieces.

A segment (:func:`framediff.video.plan_segments`) is decoded from one seek to its
keyframe with the codec's own threads, converted by the decoder's scaler (libswscale,
``VideoFrame.reformat``) straight to gray or RGB at the requested size, and numbered by
its presentation timestamp in the :class:`~framediff.video.VideoIndex`: a seek that lands
before the wanted frame (open GOPs, B-frames decoded ahead) is skipped by pts, never by
counting, so every segmentation of a file gives the same frames under the same numbers.

Damage is a value. A packet the decoder refuses leaves its frame missing (or comes out
flagged corrupt); frames decoded after it (in file order) up to the next keyframe may
reference it, so the whole span is reported: every frame of the keyframe interval whose
packet comes at or after the first bad one is a ``corrupt`` :class:`DecodedFrame` without
pixels, and decoding resumes clean at the next keyframe. To decide that before handing frames out, one keyframe
interval of output frames is held back (at the output size).
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .decode import DecodeError
from .video import Segment, VideoIndex, _open, _video_stream, frame_name

__all__ = ["COLOURS", "DecodedFrame", "iter_batches", "iter_segment", "output_shape"]

#: ``colour`` argument -> (FFmpeg pixel format, channels).
COLOURS = {"gray": ("gray", 1), "rgb": ("rgb24", 3)}


@dataclass
class DecodedFrame:
    """One frame of a video, or the reason it has no pixels.

    Attributes
    ----------
    index : int
        Position in presentation order (0-based).
    name : str
        ``clip.mp4#frame=123``.
    pts : int
        Presentation timestamp in the stream's time base.
    time : float
        Wall clock (epoch seconds, UTC) when the container has a creation time, seconds
        from the first frame otherwise.
    array : numpy.ndarray or None
        (H, W) uint8 for gray, (H, W, 3) for RGB; None when ``error`` is set.
    error : DecodeError or None
        ``corrupt`` (damaged span), ``timeout``, or the file's own error.
    """

    index: int
    name: str
    pts: int
    time: float
    array: np.ndarray | None = None
    error: DecodeError | None = None


def output_shape(index: VideoIndex, scale: float = 1.0) -> tuple[int, int]:
    """``(height, width)`` of the frames decoded at ``scale`` (rounded, at least 1)."""
    if not 0 < scale <= 1:
        raise ValueError(f"scale must be in (0, 1], got {scale}")
    return max(1, round(index.height * scale)), max(1, round(index.width * scale))


def iter_segment(
    path,
    index: VideoIndex,
    segment: Segment,
    *,
    name: str | None = None,
    colour: str = "gray",
    scale: float = 1.0,
    threads: int = 0,
    read_timeout: float | None = None,
):
    """Decode one segment, yielding every frame of it in order.

    Parameters
    ----------
    path : str or path-like
    index : VideoIndex
        From :func:`framediff.video.index_video` on the same file.
    segment : Segment
    name : str, optional
        The video's name in reports (default: the file name).
    colour : {'gray', 'rgb'}
    scale : float
        Output size factor in (0, 1]; libswscale does the resize (area filter).
    threads : int
        Decoder threads; 0 lets FFmpeg choose (one per core).
    read_timeout : float, optional
        Seconds without a frame before the rest of the segment becomes ``timeout``
        frames (a stalled read); the decoding thread is then abandoned.

    Yields
    ------
    DecodedFrame
        Exactly one per frame index in ``[segment.start, segment.stop)``, in order.
        Arrays are fresh (the caller may keep them).
    """
    for frame, array in _frames(path, index, segment, name, colour, scale, threads, read_timeout, None):
        frame.array = array
        yield frame


def iter_batches(
    path,
    index: VideoIndex,
    segment: Segment,
    out: np.ndarray,
    *,
    name: str | None = None,
    colour: str = "gray",
    threads: int = 0,
    read_timeout: float | None = None,
):
    """Decode one segment into a caller's reused buffer, ``len(out)`` frames at a time.

    Parameters
    ----------
    path, index, segment, name, colour, threads, read_timeout
        As for :func:`iter_segment`.
    out : numpy.ndarray
        uint8 ``(capacity, H, W)`` (gray) or ``(capacity, H, W, 3)`` (RGB); ``(H, W)``
        sets the output size (see :func:`output_shape`).

    Yields
    ------
    list of DecodedFrame
        Up to ``capacity`` frames each; ``array`` is a view of ``out[k]`` (or None), valid
        until the next batch is requested.
    """
    fmt, channels = _colour(colour)
    shape = out.shape[1:3]
    if out.dtype != np.uint8 or out.ndim != (3 if channels == 1 else 4) or (channels == 3 and out.shape[3] != 3):
        raise ValueError(f"out must be uint8 (capacity, H, W{', 3' if channels == 3 else ''}), got {out.dtype} {out.shape}")
    pool: list = []
    batch: list = []
    for frame, array in _frames(path, index, segment, name, colour, None, threads, read_timeout, pool, shape):
        if array is not None:
            slot = out[len(batch)]
            slot[...] = array
            pool.append(array)  # staged array back to the pool: no allocation per frame
            frame.array = slot
        batch.append(frame)
        if len(batch) == len(out):
            yield batch
            batch = []
    if batch:
        yield batch


# --------------------------------------------------------------------------- internals


def _colour(colour: str):
    try:
        return COLOURS[colour]
    except KeyError:
        raise ValueError(f"colour must be one of {', '.join(COLOURS)}, got {colour!r}") from None


def _frames(path, index, segment, name, colour, scale, threads, read_timeout, pool, shape=None):
    """(DecodedFrame without array, array or None) for each frame of the segment."""
    fmt, channels = _colour(colour)
    if shape is None:
        shape = output_shape(index, scale)
    name = name if name is not None else Path(str(path)).name
    if not 0 <= segment.start < segment.stop <= index.n_frames:
        raise ValueError(f"segment {segment.start}:{segment.stop} outside the video's {index.n_frames} frames")
    produce = lambda: _decode(path, index, segment, shape, fmt, channels, threads, pool)  # noqa: E731
    source = produce() if not read_timeout else _with_deadline(produce, read_timeout)
    expected = segment.start
    for item in source:
        if isinstance(item, DecodeError):  # the file failed as a whole, or the read stalled
            for i in range(expected, segment.stop):
                yield _record(index, name, i, item), None
            return
        i, array, error = item
        yield _record(index, name, i, error), array
        expected = i + 1


def _record(index, name, i, error):
    return DecodedFrame(i, frame_name(name, i), int(index.pts[i]), float(index.times([i])[0]), None, error)


def _decode(path, index, segment, shape, fmt, channels, threads, pool):
    """Yield (frame index, array or None, error or None) in order, or one DecodeError."""
    try:
        container = _open(path)
    except DecodeError as exc:
        yield exc
        return
    with container:
        try:
            stream = _video_stream(container)
        except DecodeError as exc:
            yield exc
            return
        context = stream.codec_context
        context.thread_type = "AUTO"
        context.thread_count = threads
        # Containers without a seek index (MPEG-TS, MPEG-PS) seek by bisecting byte
        # positions on decode timestamps and may land after the keyframe: then the first
        # frame is missing, and the decode starts over from the keyframe before, then
        # from the file start.
        for attempt_no, seek_pts in enumerate(_seek_targets(index, segment)):
            if seek_pts is not None:
                container.seek(seek_pts, stream=stream, backward=True, any_frame=False)
            elif attempt_no:
                container.seek(int(index.pts[0]), stream=stream, backward=True, any_frame=False)
            context.flush_buffers()
            gops = _Gops(index, segment)
            attempt = _decode_from_seek(container, stream, context, index, segment, gops, shape, fmt, channels, pool)
            first = next(attempt, None)
            if first is not None and first[0] == segment.start and first[2] is None or seek_pts is None:
                break
        if first is not None:
            yield first
            yield from attempt


def _seek_targets(index, segment):
    """Where to seek: the segment's keyframe, the keyframe before it, the file start (None)."""
    targets = []
    if segment.start > 0:
        targets.append(segment.seek_pts)
        earlier = index.keyframes[index.keyframes < segment.start]
        if len(earlier) and earlier[-1] > 0:
            targets.append(int(index.pts[earlier[-1]]))
    return [*targets, None]


def _decode_from_seek(container, stream, context, index, segment, gops, shape, fmt, channels, pool):
    import av
    from av.video.reformatter import VideoReformatter

    reformatter = VideoReformatter()
    last_pts = int(index.pts[segment.stop - 1])
    done = False
    for packet in container.demux(stream):
        try:
            decoded = context.decode(packet if packet.size else None)
        except av.error.FFmpegError:
            continue  # its frame stays missing: _Gops reports the damaged span
        for frame in decoded:
            stamp = frame.pts if frame.pts is not None else frame.dts
            i = _frame_at(index, stamp)
            if i is None or i < segment.start:
                continue  # before the wanted frame: the seek landed early
            if i < segment.stop:
                gops.add(i, _convert(frame, shape, fmt, channels, pool, reformatter), frame.is_corrupt)
            yield from gops.ready(i)
            if stamp >= last_pts:
                done = True
        if done:
            break
    if not done:
        try:
            for frame in context.decode(None):  # drain the decoder's delayed frames
                i = _frame_at(index, frame.pts if frame.pts is not None else frame.dts)
                if i is not None and segment.start <= i < segment.stop:
                    gops.add(i, _convert(frame, shape, fmt, channels, pool, reformatter), frame.is_corrupt)
        except av.error.FFmpegError:
            pass
    yield from gops.ready(segment.stop)


def _frame_at(index, stamp):
    """The frame index of a timestamp, or None when the index does not list it."""
    if stamp is None:
        return None
    i = int(np.searchsorted(index.pts, stamp))
    return i if i < index.n_frames and index.pts[i] == stamp else None


def _convert(frame, shape, fmt, channels, pool, reformatter):
    """The frame at ``shape`` in ``fmt`` via libswscale, copied into a pooled array.

    One reformatter per decode keeps libswscale's context: building it per frame (what
    ``VideoFrame.reformat`` does) costs more than decoding a 1080p frame. One scaler
    thread: parallelism comes from the decoder and from segments, and scaler threads
    cost more than they save on frames this small.
    """
    height, width = shape
    if frame.width != width or frame.height != height:
        frame = reformatter.reformat(frame, width, height, fmt, interpolation="AREA", threads=1)
    elif frame.format.name != fmt:
        frame = reformatter.reformat(frame, width, height, fmt, threads=1)
    plane = frame.planes[0]
    rows = np.frombuffer(plane, np.uint8).reshape(height, plane.line_size)[:, : width * channels]
    array = pool.pop() if pool else np.empty((height, width, channels) if channels > 1 else (height, width), np.uint8)
    array.reshape(height, width * channels)[...] = rows
    return array


class _Gops:
    """Holds decoded frames until their keyframe interval is complete, then releases them
    with the damaged span marked: from the first frame the decoder dropped or flagged as
    corrupt, every frame of the interval that comes after it in file order."""

    def __init__(self, index: VideoIndex, segment: Segment):
        self.index = index
        self.segment = segment
        keys = index.keyframes[(index.keyframes > segment.start) & (index.keyframes < segment.stop)]
        self.ends = [*map(int, keys), segment.stop]  # exclusive end of each interval
        self.first = segment.start
        self.staged: dict = {}

    def add(self, i: int, array, corrupt: bool) -> None:
        if i >= self.first and i not in self.staged:
            self.staged[i] = (array, corrupt)

    def ready(self, reached: int):
        """Release every interval that ends at or before frame ``reached``."""
        while self.ends and self.ends[0] <= reached:
            end = self.ends.pop(0)
            yield from self._release(self.first, end)
            self.first = end

    def _release(self, lo: int, hi: int):
        missing = {i for i in range(lo, hi) if i not in self.staged}
        flagged = {i for i in range(lo, hi) if i in self.staged and self.staged[i][1]}
        bad = sorted(missing | flagged)
        damaged_from = int(min(self.index.decode_pos[bad])) if bad else None
        for i in range(lo, hi):
            array, _ = self.staged.pop(i, (None, False))
            if i in missing:
                error = DecodeError("corrupt", "the decoder could not decode this frame's data")
            elif i in flagged:
                error = DecodeError("corrupt", "the decoder flagged the frame as corrupt")
            elif damaged_from is not None and self.index.decode_pos[i] > damaged_from:
                error = DecodeError("corrupt", "decoded from damaged data (a frame before it in the file is bad)")
            else:
                error = None
            yield i, (None if error else array), error


def _with_deadline(produce, timeout: float):
    """Run the generator ``produce()`` in a daemon thread; a wait longer than
    ``timeout`` for its next item ends the iteration with a ``timeout`` DecodeError."""
    items: queue.Queue = queue.Queue(maxsize=8)
    stop = threading.Event()
    end = object()

    def pump():
        try:
            for item in produce():
                while not stop.is_set():
                    try:
                        items.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
        except BaseException as exc:  # re-raised in the consumer's thread
            items.put(exc)
            return
        items.put(end)

    threading.Thread(target=pump, name="framediff-video-decode", daemon=True).start()
    try:
        while True:
            try:
                item = items.get(timeout=timeout)
            except queue.Empty:
                yield DecodeError("timeout", f"no frame after {timeout:g} s (stalled read)")
                return
            if item is end:
                return
            if isinstance(item, BaseException) and not isinstance(item, DecodeError):
                raise item
            yield item
    finally:
        stop.set()
