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
pixels, and decoding resumes clean at the next keyframe. To decide that, a frame is held
(as the decoder's frame, not converted) only until the frames decoded before it are out:
the B-frame reordering depth, a few frames.
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from framediff.kernels.lut import apply_lut

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
    convert = _Converter(output_shape(index, scale), *_colour(colour))
    for record, frame in _frames(path, index, segment, name, threads, read_timeout):
        if frame is not None:
            record.array = convert(frame)
        yield record


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
        wanted = "(capacity, H, W, 3)" if channels == 3 else "(capacity, H, W)"
        raise ValueError(f"out must be uint8 {wanted}, got {out.dtype} {out.shape}")
    convert = _Converter(shape, fmt, channels)
    batch: list = []
    for record, frame in _frames(path, index, segment, name, threads, read_timeout):
        if frame is not None:
            record.array = convert(frame, out[len(batch)])
        batch.append(record)
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


def _frames(path, index, segment, name, threads, read_timeout):
    """(DecodedFrame without array, decoded av frame or None) for each frame of the segment."""
    name = name if name is not None else Path(str(path)).name
    if not 0 <= segment.start < segment.stop <= index.n_frames:
        raise ValueError(f"segment {segment.start}:{segment.stop} outside the video's {index.n_frames} frames")
    produce = lambda: _decode(path, index, segment, threads)  # noqa: E731
    source = produce() if not read_timeout else _with_deadline(produce, read_timeout)
    expected = segment.start
    for item in source:
        if isinstance(item, DecodeError):  # the file failed as a whole, or the read stalled
            for i in range(expected, segment.stop):
                yield _record(index, name, i, item), None
            return
        i, frame, error = item
        yield _record(index, name, i, error), frame
        expected = i + 1


def _record(index, name, i, error):
    return DecodedFrame(i, frame_name(name, i), int(index.pts[i]), float(index.times([i])[0]), None, error)


def _decode(path, index, segment, threads):
    """Yield (frame index, av frame or None, error or None) in order, or one DecodeError."""
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
            attempt = _decode_from_seek(container, stream, context, index, segment)
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


def _decode_from_seek(container, stream, context, index, segment):
    import av

    release = _Release(index, segment)
    last_pts = int(index.pts[segment.stop - 1])
    done = False
    for packet in container.demux(stream):
        try:
            decoded = context.decode(packet if packet.size else None)
        except av.error.FFmpegError:
            continue  # its frame stays missing: _Release reports the damaged span
        for frame in decoded:
            stamp = frame.pts if frame.pts is not None else frame.dts
            i = _frame_at(index, stamp)
            if i is None or i < segment.start:
                continue  # before the wanted frame: the seek landed early
            yield from release.output(i, frame)
            if stamp >= last_pts:
                done = True
        if done:
            break
    if not done:
        try:
            for frame in context.decode(None):  # drain the decoder's delayed frames
                i = _frame_at(index, frame.pts if frame.pts is not None else frame.dts)
                if i is not None and i >= segment.start:
                    yield from release.output(i, frame)
        except av.error.FFmpegError:
            pass
    yield from release.finish()


def _frame_at(index, stamp):
    """The frame index of a timestamp, or None when the index does not list it."""
    if stamp is None:
        return None
    i = int(np.searchsorted(index.pts, stamp))
    return i if i < index.n_frames and index.pts[i] == stamp else None


#: Pixel formats whose first plane is the 8-bit luma: gray is a per-pixel map of it.
_LUMA_FIRST = frozenset(
    {"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "yuv411p", "yuv410p", "nv12", "nv21", "gray"}
)


class _Converter:
    """Decoded frames to gray or RGB arrays at one size, via libswscale.

    One libswscale context per decode: building it per frame (what
    ``VideoFrame.reformat`` does) costs more than decoding a 1080p frame. One scaler
    thread: parallelism comes from the decoder and from segments. Gray at full size
    skips the scaler: libswscale's gray is a per-pixel map of the luma plane (the range
    change from video's 16-235 to 0-255), so the map is taken from libswscale once, on a
    ramp of all 256 levels, and applied to the luma plane in one pass: the same values
    at a third of the cost.
    """

    def __init__(self, shape, fmt: str, channels: int):
        from av.video.reformatter import VideoReformatter

        self.shape, self.fmt, self.channels = shape, fmt, channels
        self.reformatter = VideoReformatter()
        self.luts: dict = {}

    def __call__(self, frame, out=None):
        """The frame as a uint8 array, written into ``out`` when given."""
        height, width = self.shape
        if out is None:
            shape = (height, width, self.channels) if self.channels > 1 else (height, width)
            out = np.empty(shape, np.uint8)
        same_size = frame.width == width and frame.height == height
        if same_size and self.fmt == "gray" and frame.format.name in _LUMA_FIRST:
            return apply_lut(_plane_rows(frame, height, width), self._luma_lut(frame), out=out)
        if not same_size:
            frame = self.reformatter.reformat(frame, width, height, self.fmt, interpolation="AREA", threads=1)
        elif frame.format.name != self.fmt:
            frame = self.reformatter.reformat(frame, width, height, self.fmt, threads=1)
        out.reshape(height, width * self.channels)[...] = _plane_rows(frame, height, width * self.channels)
        return out

    def _luma_lut(self, frame) -> np.ndarray:
        key = (frame.format.name, frame.color_range, frame.colorspace)
        lut = self.luts.get(key)
        if lut is None:
            lut = self.luts[key] = _swscale_gray_map(frame)
        return lut


def _plane_rows(frame, height: int, row_bytes: int) -> np.ndarray:
    """The first plane of ``frame`` as (height, row_bytes) uint8, without its padding."""
    plane = frame.planes[0]
    return np.frombuffer(plane, np.uint8).reshape(-1, plane.line_size)[:height, :row_bytes]


def _swscale_gray_map(frame) -> np.ndarray:
    """What libswscale makes of each luma level when converting ``frame`` to gray."""
    import av
    from av.video.reformatter import VideoReformatter

    ramp = av.VideoFrame(256, 2, frame.format.name)
    ramp.color_range, ramp.colorspace = frame.color_range, frame.colorspace
    luma = ramp.planes[0]
    levels = np.zeros((2, luma.line_size), np.uint8)
    levels[:, :256] = np.arange(256, dtype=np.uint8)
    luma.update(levels.tobytes())
    for chroma in ramp.planes[1:]:
        chroma.update(bytes([128]) * chroma.buffer_size)
    gray = VideoReformatter().reformat(ramp, 256, 2, "gray", threads=1)
    return _plane_rows(gray, 1, 256)[0].copy()


class _Release:
    """Hands decoded frames out in order, each as soon as its damage status is known.

    A frame is damaged when a frame of its keyframe interval that comes before it in file
    order was dropped or flagged corrupt by the decoder. Output is in presentation order,
    so frame ``i`` is released once every frame of its interval decoded before it has been
    output or passed: with B-frames, a few frames of delay, not a whole interval.
    """

    def __init__(self, index: VideoIndex, segment: Segment):
        lo, hi = segment.start, segment.stop
        self.lo, self.hi = lo, hi
        self.dpos = index.decode_pos[lo:hi]
        keys = index.keyframes[(index.keyframes > lo) & (index.keyframes < hi)]
        starts = np.r_[lo, keys].astype(np.int64)
        self.gop = np.searchsorted(starts, np.arange(lo, hi), side="right") - 1
        # need[i]: the highest frame of i's interval decoded no later than i.
        self.need = np.empty(hi - lo, np.int64)
        for a, b in zip(starts, [*starts[1:], hi]):
            order = np.argsort(self.dpos[a - lo : b - lo], kind="stable") + a
            self.need[order - lo] = np.maximum.accumulate(order)
        self.staged: dict = {}
        self.bad: dict = {}  # interval -> smallest decode position of a bad frame
        self.resolved = lo - 1  # every frame up to here is output or known missing
        self.next = lo

    def output(self, i: int, frame):
        """Take the decoder's frame ``i`` (presentation order); yield what is ready."""
        if i <= self.resolved:
            return  # out of order or repeated: its slot is settled
        if i < self.hi:
            self.staged[i] = frame
        yield from self._advance(min(i, self.hi - 1))

    def finish(self):
        """The decoder is done: whatever was not output is missing."""
        yield from self._advance(self.hi - 1)

    def _advance(self, upto: int):
        for j in range(self.resolved + 1, upto + 1):
            frame = self.staged.get(j)
            if frame is None or frame.is_corrupt:
                g = self.gop[j - self.lo]
                self.bad[g] = min(self.bad.get(g, np.inf), self.dpos[j - self.lo])
        self.resolved = max(self.resolved, upto)
        while self.next <= self.resolved and self.need[self.next - self.lo] <= self.resolved:
            i = self.next
            self.next += 1
            frame = self.staged.pop(i, None)
            if frame is None:
                error = DecodeError("corrupt", "the decoder could not decode this frame's data")
            elif frame.is_corrupt:
                error = DecodeError("corrupt", "the decoder flagged the frame as corrupt")
            elif self.bad.get(self.gop[i - self.lo], np.inf) < self.dpos[i - self.lo]:
                error = DecodeError("corrupt", "decoded from damaged data (a frame before it in the file is bad)")
            else:
                error = None
            yield i, (None if error else frame), error


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
