"""Reading a task's video frames in order, each decode started from as few seeks as possible.

A task asks for frames one at a time (:meth:`framediff.frames.Frames.load`); frames of a
video are served from one running decode (:func:`framediff.video_decode.iter_segment`)
that started at the keyframe before the first frame asked for and runs up to the last
frame the task will want. A frame behind the decode, or beyond a keyframe the decode
has not reached, starts a new decode from its own keyframe, so a task that reads its
frames in order decodes its segment exactly once.
"""

from __future__ import annotations

import numpy as np

from framediff import kernels as K

from .decode import DecodeError
from .video import Segment
from .video_decode import iter_segment

__all__ = ["VideoReader"]


class _Running:
    """One decode in progress: its frames come out in order; ``next`` is the one to come."""

    def __init__(self, frames, start: int):
        self.frames = frames
        self.next = start

    def close(self) -> None:
        self.frames.close()


class VideoReader:
    """Video frames for one task, as the options ask (gray, RGB, scaled by libswscale).

    Parameters
    ----------
    opts : Options
        ``color`` decodes RGB; ``gray='mean'`` the mean of RGB; otherwise libswscale's
        gray (luma). ``scale`` resizes in the decoder.
    timeout : float, optional
        Seconds without a frame before the rest of a decode becomes ``timeout`` errors.
    wanted : dict of int -> path, optional
        Every input the task may read: a decode runs up to the last wanted frame of
        its video (without it, to the end of the video).
    """

    def __init__(self, opts, timeout=None, wanted=None):
        self.opts = opts
        self.colour = "rgb" if opts.color or opts.gray == "mean" else "gray"
        self.timeout = timeout
        self.wanted = wanted or {}
        self._last: dict[str, int] = {}
        self._running: dict[str, _Running] = {}

    def read(self, ref) -> np.ndarray:
        """The pixels of one :class:`~framediff.video_inputs.VideoFrameRef`.

        Raises
        ------
        DecodeError
            The file cannot be read, the frame lies in a damaged span (``corrupt``), or
            the read stalled (``timeout``).
        """
        if ref.frame is None:
            raise ref.error
        index, f = ref.index, ref.frame
        if index.width * index.height > self.opts.max_pixels:
            raise DecodeError("bomb", f"{index.width}x{index.height} exceeds --max-pixels {self.opts.max_pixels}")
        running = self._running.get(ref.path)
        key = _keyframe_at(index, f)
        if running is None or not (running.next <= f and key <= running.next):
            if running is not None:
                running.close()
            stop = max(self._last_wanted(ref), f + 1)
            frames = iter_segment(
                ref.path,
                index,
                Segment(key, stop, int(index.pts[key])),
                colour=self.colour,
                scale=self.opts.scale,
                read_timeout=self.timeout,
            )
            running = self._running[ref.path] = _Running(frames, key)
        for decoded in running.frames:
            running.next = decoded.index + 1
            if decoded.index == f:
                break
        else:  # the decode ended before the frame (cannot happen: stop > f)
            raise DecodeError("corrupt", "the decoder stopped before this frame")
        if decoded.error is not None:
            raise decoded.error
        image = decoded.array
        if self.colour == "rgb" and not self.opts.color:
            image = K.to_gray(image, self.opts.gray)
        return image

    def close(self) -> None:
        """End every running decode (their files are closed)."""
        for running in self._running.values():
            running.close()
        self._running.clear()

    def _last_wanted(self, ref) -> int:
        if ref.path not in self._last:
            frames = [
                p.frame for p in self.wanted.values() if getattr(p, "path", None) == ref.path and p.frame is not None
            ]
            self._last[ref.path] = max(frames) + 1 if frames else ref.index.n_frames
        return min(self._last[ref.path], ref.index.n_frames)


def _keyframe_at(index, frame: int) -> int:
    """The last frame at or before ``frame`` where a decode can start."""
    keys = index.keyframes
    pos = int(np.searchsorted(keys, frame, side="right")) - 1
    return int(keys[pos]) if pos >= 0 else 0
