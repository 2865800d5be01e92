"""Frames of one task: decoded once into a reused buffer, prepared once, handed on.

A task decodes its frames into one stack (slots of a per-thread buffer reused by the
next task), prepares them on the run's backend, and measures them. A frame another
task needs (the last kept frame of a keyframe chain, the last readable frame before a
consecutive chunk, the reference) travels as a small :class:`KeptFrame`.
"""

from __future__ import annotations

import threading
import time
from typing import NamedTuple

import numpy as np

from framediff import kernels as K

from .decode import DecodeError, call_with_timeout, read_bytes
from .engine import FrameStack, fit_frame, prepare_stack, read_frame_typed
from .gpu import decode_on_device, pinned_empty
from .options import Options
from .video_frames import VideoReader
from .video_inputs import VideoFrameRef

__all__ = ["Frames", "KeptFrame", "read_with_timeout"]


class KeptFrame(NamedTuple):
    """One frame, self-contained, handed from one task to another.

    Attributes
    ----------
    index : int
        Frame index in the scan.
    prepared : FrameStack or None
        The prepared frame (a stack of one), when the batch path prepared it.
    raw : ndarray or None
        The decoded frame, when a pair may need it (pairwise options, shape policies).
    action : str or None
        The resize action applied when it was decoded.
    source : numpy.dtype or None
        The dtype it was decoded as (its data range; see ``engine.read_frame_typed``).
    """

    index: int
    prepared: FrameStack | None
    raw: np.ndarray | None
    action: str | None
    source: np.dtype | None = None


_stack_pool = threading.local()


def _pooled_stack(capacity: int, shape: tuple, dtype, pinned: bool = False) -> np.ndarray:
    """A per-thread (capacity, H, W) buffer reused by the next task on this thread.

    Fresh multi-megabyte arrays per frame cost page faults, and concurrent faults
    serialise worker threads on the kernel's memory-map lock. For a GPU run the buffer
    is page-locked, so the copy to the device is one asynchronous DMA.
    """
    key = (capacity, shape, np.dtype(dtype).str, pinned)
    cached = getattr(_stack_pool, "stack", None)
    if cached is None or cached[0] != key:
        cached = None
        _stack_pool.stack = None  # release the old buffer before allocating the new one
        if pinned:
            buffer = pinned_empty((capacity, *shape), dtype)
        else:
            buffer = np.empty((capacity, *shape), dtype)
        cached = (key, buffer)
        _stack_pool.stack = cached
    return cached[1]


class Frames:
    """Frames decoded and prepared once, grouped into stacks of equal shape.

    Gray frames of the common shape are decoded straight into one stack (slots of a
    reused buffer when ``reuse`` is set, safe only while the task runs); frames of
    another shape or dtype, and colour frames, are kept aside and stacked per shape.
    The decoded (raw) frames stay reachable for pairwise measurement.
    """

    def __init__(
        self,
        opts: Options,
        xp,
        capacity: int = 0,
        reuse: bool = False,
        *,
        retries=0,
        timeout=None,
        skip=frozenset(),
        gpu_decode=False,
        wanted=None,
    ):
        self.opts = opts
        self.xp = xp
        self.capacity = capacity
        self.reuse = reuse
        self.retries = retries
        self.timeout = timeout
        self.skip = skip
        self.gpu_decode = gpu_decode and xp is not np
        self.errors: dict[int, DecodeError] = {}
        self.actions: dict[int, str] = {}
        self._stack = None
        self._slots: dict[int, int] = {}
        self._host: dict[int, np.ndarray] = {}
        self._raw: dict[int, np.ndarray] = {}
        self._where: dict[int, tuple[FrameStack, int]] = {}
        self.sources: dict[int, np.dtype] = {}  # the dtype each frame was decoded as
        self._wanted = wanted
        self._video: VideoReader | None = None

    def _slot(self):
        if self._stack is None or len(self._slots) >= len(self._stack):
            return None
        return self._stack[len(self._slots)]

    def load(self, index: int, path: str) -> bool:
        """Decode frame ``index`` unless already tried; True when it is readable."""
        if self.readable(index):
            return True
        if index in self.errors:
            return False
        if index in self.skip:
            self.errors[index] = DecodeError("worker-crash", "decoding it crashed the worker process, repeatedly")
            return False
        if self.gpu_decode and str(path).lower().endswith((".jpg", ".jpeg", ".jpe", ".jfif")):
            if self._load_on_device(index, path):
                return True
        # A decode abandoned by the timeout may still finish later: never into a slot.
        slot = None if self.timeout else self._slot()
        try:
            if isinstance(path, VideoFrameRef):
                image = self._video_reader().read(path)
                self.sources[index] = np.dtype(image.dtype)
            else:
                image, self.sources[index] = _read_with_retries(path, self.opts, slot, self.retries, self.timeout)
        except DecodeError as exc:
            # A listing's relative names resolve against its folder: say where we looked.
            self.errors[index] = DecodeError(exc.kind, f"{exc.reason}: {path}") if exc.kind == "missing" else exc
            return False
        image, action = fit_frame(image, self.opts)
        if action:
            self.actions[index] = action
        if slot is not None and np.shares_memory(image, slot):
            self._slots[index] = len(self._slots)
        elif self._stack is None and image.ndim == 2 and self.capacity > 0:
            if self.reuse:
                self._stack = _pooled_stack(self.capacity, image.shape, image.dtype, pinned=self.xp is not np)
            else:
                self._stack = np.empty((self.capacity, *image.shape), image.dtype)
            self._stack[0] = image
            self._slots[index] = 0
        elif slot is not None and image.shape == slot.shape and image.dtype == slot.dtype:
            slot[...] = image
            self._slots[index] = len(self._slots)
        else:
            self._host[index] = np.array(image, copy=True)  # the decoder reuses its buffer
        return True

    def _video_reader(self) -> VideoReader:
        if self._video is None:
            self._video = VideoReader(self.opts, self.timeout, self._wanted)
        return self._video

    def _load_on_device(self, index: int, path: str) -> bool:
        """Decode a JPEG on the GPU; False (CPU decoding follows) on any failure."""
        if self.opts.scale < 1 or self.opts.color or self.opts.gray != "luma":
            return False  # the GPU decoder serves the default luma path only
        try:
            image = decode_on_device(read_bytes(path), gray=True)
        except Exception:  # missing decoder, unsupported or damaged file: the CPU path decides
            return False
        image, action = fit_frame(image, self.opts)
        if action:
            self.actions[index] = action
        self.sources[index] = np.dtype(np.uint8)  # a baseline JPEG
        self._host[index] = image  # a device array; prepare() stacks it with its shape group
        return True

    def add_prepared(self, index: int, stack: FrameStack | None, position: int = 0, raw=None, source=None) -> None:
        """Register a frame prepared elsewhere (the reference, the last kept frame)."""
        if stack is not None:
            self._where[index] = (stack, position)
        if raw is not None:
            self._raw[index] = raw
        if source is not None:
            self.sources[index] = source

    def prepare(self, *, raw_only: bool = False) -> None:
        """Prepare every decoded frame once: one stack per (shape, dtype), on the backend.

        With pairwise options (alignment, exposure matching, colour), or ``raw_only``
        (the background model), frames are kept as decoded; each pair prepares its own
        (see ``measure_pair_images``).
        """
        if self._video is not None:  # every frame is loaded: end the decodes (and their files)
            self._video.close()
            self._video = None
        for i, pos in self._slots.items():
            self._raw[i] = self._stack[pos]
        self._raw.update(self._host)
        if self.opts.pairwise or raw_only:
            self._slots.clear()
            self._host.clear()
            return
        if self._slots:
            # Slots hold frames decoded straight into the stack: one dtype, one source.
            source = self.sources.get(next(iter(self._slots)))
            stack = prepare_stack(self._stack[: len(self._slots)], self.opts, self.xp, source_dtype=source)
            for i, pos in self._slots.items():
                self._where[i] = (stack, pos)
        groups: dict[tuple, list[int]] = {}
        for index, image in self._host.items():
            source = str(self.sources.get(index, image.dtype))
            groups.setdefault((image.shape, str(image.dtype), source, K.is_cupy(image)), []).append(index)
        for (_shape, _dtype, source, _on_device), indices in groups.items():
            indices.sort()
            stack = prepare_stack([self._host[i] for i in indices], self.opts, self.xp, source_dtype=source)
            for pos, i in enumerate(indices):
                self._where[i] = (stack, pos)
        self._host.clear()
        self._slots.clear()

    def raw(self, index: int) -> np.ndarray:
        return self._raw[index]

    def shape(self, index: int):
        return tuple(self._raw[index].shape[:2]) if index in self._raw else self._where[index][0].shape

    def lookup(self, index: int):
        return self._where[index]

    def readable(self, index: int) -> bool:
        return index in self._where or index in self._host or index in self._slots or index in self._raw

    def keep(self, index: int) -> KeptFrame:
        """A small, self-contained copy of one frame to hand to another task."""
        prepared = self._where[index][0].take(self._where[index][1]) if index in self._where else None
        # The decoded frame travels only when a pair may need it (pairwise options, shape
        # policies); otherwise the prepared frame is all the next task uses.
        needs_raw = prepared is None or self.opts.pairwise or self.opts.resize != "error" or self.opts.crop
        raw = np.array(K.to_numpy(self._raw[index]), copy=True) if needs_raw and index in self._raw else None
        return KeptFrame(index, prepared, raw, self.actions.get(index), self.sources.get(index))

    def add_kept(self, kept: KeptFrame) -> None:
        """Register a frame another task kept (see :meth:`keep`)."""
        self.add_prepared(kept.index, kept.prepared, 0, raw=kept.raw, source=kept.source)
        if kept.action:
            self.actions[kept.index] = kept.action


#: Decode failures worth another try (``--retries``): I/O errors other than the
#: file being missing or forbidden, e.g. a network filesystem hiccup.
_TRANSIENT = frozenset({"unreadable"})


def _read_with_retries(path, opts, slot, retries: int, timeout):
    for attempt in range(retries + 1):
        try:
            return read_with_timeout(path, opts, slot, timeout)
        except DecodeError as exc:
            if exc.kind not in _TRANSIENT or attempt == retries:
                raise
            time.sleep(min(2.0, 0.05 * 2**attempt))


def read_with_timeout(path, opts, slot, timeout):
    """``read_frame``, given up after ``timeout`` seconds (a hung mount, a FIFO).

    The decode runs in a daemon thread: a read that never returns is abandoned (it
    cannot block the process from exiting) and the frame becomes a ``timeout`` row.
    """
    if not timeout:
        return read_frame_typed(path, opts, out=slot)

    def read():
        image, source = read_frame_typed(path, opts)
        return np.array(image, copy=True), source  # the decoder's buffer is its thread's

    return call_with_timeout(read, timeout, f"no result after {timeout:g} s (--file-timeout)")
