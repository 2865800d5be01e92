"""Keeping a GPU fed: pinned staging buffers, per-thread streams, a memory budget,
out-of-memory back-off, and JPEG decoding on the device.

Frames are decoded (on CPU threads, or on the GPU with nvImageCodec) as uint8, staged
in page-locked host memory and copied to the device on the task's own CUDA stream, so
the copy of one chunk overlaps the kernels of another. Nothing here is imported on a
machine without CuPy unless a GPU path is asked for.
"""

from __future__ import annotations

import functools
import threading

import numpy as np

from framediff import kernels as K

__all__ = [
    "device_budget",
    "gpu_decoder",
    "is_out_of_memory",
    "pinned_empty",
    "release_pool",
    "task_stream",
    "to_device",
]

_local = threading.local()


def is_out_of_memory(exc: BaseException) -> bool:
    """True for CuPy's out-of-memory error (and a host ``MemoryError``)."""
    if isinstance(exc, MemoryError):
        return True
    name = type(exc).__name__
    return name in ("OutOfMemoryError", "CUDARuntimeError") and "memory" in str(exc).lower()


def pinned_empty(shape, dtype=np.uint8) -> np.ndarray:
    """A NumPy array in page-locked host memory (a plain array without CuPy)."""
    import cupyx

    return cupyx.empty_pinned(shape, dtype=dtype)


def task_stream():
    """This thread's non-blocking CUDA stream (one per worker thread, made once)."""
    import cupy

    stream = getattr(_local, "stream", None)
    if stream is None or stream.device_id != cupy.cuda.Device().id:
        stream = _local.stream = cupy.cuda.Stream(non_blocking=True)
    return stream


def to_device(host: np.ndarray):
    """Copy ``host`` to the device on the current stream.

    Inside a task that is the thread's own stream (see :func:`task_stream`), and from
    page-locked memory the copy is asynchronous: one chunk's copy overlaps another
    thread's kernels, and stays ordered before this chunk's own kernels.
    """
    import cupy

    stream = cupy.cuda.get_current_stream()
    out = cupy.empty(host.shape, dtype=host.dtype)
    out.set(host, stream=stream)
    return out


@functools.cache
def device_budget(limit_bytes: int | None) -> int:
    """Apply a memory budget to CuPy's pool once per process; returns the budget in bytes.

    ``None`` uses 80% of the device's free memory at first use.
    """
    import cupy

    free, _total = cupy.cuda.runtime.memGetInfo()
    budget = int(limit_bytes) if limit_bytes else int(0.8 * free)
    cupy.get_default_memory_pool().set_limit(size=budget)
    return budget


def release_pool() -> None:
    """Return CuPy's cached device blocks (after an out-of-memory error)."""
    if not K.gpu_available():
        return
    import cupy

    cupy.get_default_memory_pool().free_all_blocks()
    cupy.get_default_pinned_memory_pool().free_all_blocks()


@functools.lru_cache(maxsize=1)
def gpu_decoder():
    """An nvImageCodec decoder, or None when the package or a device is missing."""
    try:
        from nvidia import nvimgcodec
    except ImportError:
        return None
    try:
        return nvimgcodec.Decoder()
    except Exception:  # no device, driver too old: CPU decoding serves instead
        return None


def decode_on_device(data: bytes, gray: bool):
    """Decode one JPEG on the GPU; returns a CuPy array or raises on any failure.

    Gray output is BT.601 luma computed on the device from the decoded RGB, with
    libjpeg's integer rounding (an IDCT on the GPU may differ from libjpeg's by one
    grey level on some pixels).
    """
    import cupy

    decoder = gpu_decoder()
    if decoder is None:
        raise RuntimeError("nvImageCodec is not available")
    image = cupy.asarray(decoder.decode(data))
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    return K.to_gray(image, "luma") if gray and image.ndim == 3 else image
