"""Fused CuPy kernels: one pass over the pixels instead of a chain of CuPy temporaries.

The GPU twins of :mod:`._cpu_fused`, called by the public kernels when their input is a
CuPy array. The CUDA sources live in ``cuda/*.cu`` next to this file; they need no
headers, so ``nvcc -ptx`` checks them on machines without a GPU. Modules and kernels are
built once per device (``cupy.memoize(for_each_device=True)``) and every kernel name
starts with ``framediff_``.

This is the only kernels module that imports CuPy at module level; the others import it
lazily, only for CuPy input.
"""

from __future__ import annotations

import importlib.resources
import math

import cupy
import numpy as np

from ._bins import bin_lookup
from .backend import is_cupy

__all__ = ["histograms", "normalize_affine", "pair_norms"]

#: Threads per block; must equal ``FD_BLOCK`` in the ``cuda/*.cu`` sources.
_BLOCK = 256
#: Blocks per streaming multiprocessor to aim for (8 x 256 threads fills an SM).
_BLOCKS_PER_SM = 8
#: Most bins a per-block shared-memory sub-histogram may have (32 KiB of uint32
#: counters, under the 48 KiB a kernel gets without opting in); more bins use global
#: atomics.
_SHARED_BINS_MAX = 8192
#: Most pixels one block may count into its uint32 shared sub-histogram.
_SHARED_COUNT_MAX = 2**31
#: gridDim.y limit of CUDA.
_GRID_Y_MAX = 65535

_PAIR_NORMS_SUFFIX = {
    np.dtype(np.uint8): "u8",
    np.dtype(np.int8): "i8",
    np.dtype(np.uint16): "u16",
    np.dtype(np.int16): "i16",
    np.dtype(np.float32): "f32",
    np.dtype(np.float64): "f64",
}
_HISTOGRAM_LUT_SUFFIX = {np.dtype(np.uint8): "u8", np.dtype(np.uint16): "u16"}


@cupy.memoize(for_each_device=True)
def _module(source: str):
    """The compiled ``cuda/<source>`` module of the current device."""
    code = (importlib.resources.files(__package__) / "cuda" / source).read_text(encoding="utf-8")
    return cupy.RawModule(code=code)


@cupy.memoize(for_each_device=True)
def _kernel(source: str, name: str):
    return _module(source).get_function(name)


@cupy.memoize(for_each_device=True)
def _sm_count() -> int:
    runtime = cupy.cuda.runtime
    return int(runtime.deviceGetAttribute(runtime.cudaDevAttrMultiProcessorCount, cupy.cuda.Device().id))


def _parts(n_images: int, n_pixels: int, min_pixels_per_block: int) -> int:
    """Blocks per image: enough to fill the device, none with too little work."""
    per_image = max(1, _BLOCKS_PER_SM * _sm_count() // n_images)
    worth = -(-n_pixels // min_pixels_per_block)
    return max(1, min(per_image, worth, _GRID_Y_MAX))


def _integer_tol(tol: float) -> int:
    """``|d| > tol  <=>  |d| > floor(tol)`` for integer ``d``; as ``_accumulate_cpu_int``.

    A tolerance no difference can exceed (also inf and NaN, which ``|d| > tol`` never
    passes) becomes 2**62, so it fits a C ``long long``.
    """
    if tol < 0:
        return -1
    if not tol < 2.0**62:
        return 2**62
    return math.floor(tol)


def _pair_index(index, n_frames: int, name: str):
    """Host indices as int64 on the device, negative ones counted from the end as NumPy does."""
    if is_cupy(index):
        index = index.get()  # synchronize
    index = np.asarray(index)
    if index.ndim != 1 or not (index.size == 0 or np.issubdtype(index.dtype, np.integer)):
        raise IndexError(f"{name} must be a 1-D sequence of integers")
    index = index.astype(np.int64)
    if index.size and (index.min() < -n_frames or index.max() >= n_frames):
        raise IndexError(f"{name} has an index out of range for a stack of {n_frames} frames")
    return cupy.asarray(np.where(index < 0, index + n_frames, index))


def pair_norms(a, b, tol: float, *, first=None, second=None):
    """Difference accumulators of image pairs, in one pass over memory.

    Parameters
    ----------
    a, b : cupy.ndarray, shape (N, H, W) and (M, H, W)
        Same dtype and image shape. Without ``first``/``second``, ``N == M`` and pair
        ``k`` is ``(a[k], b[k])``.
    tol : float
        A pixel counts as changed when ``|a - b| > tol``.
    first, second : sequence of int, length K, optional
        Pair ``k`` is ``(a[first[k]], b[second[k]])``, read in place (no gathering
        copy); the twin of ``pair_norms_int`` in ``_cpu_fused``.

    Returns
    -------
    s1, s0, s2, mx, sr : cupy.ndarray, shape (K,)
        ``sum |a-b|``, ``count(|a-b| > tol)``, ``sum (a-b)^2``, ``max |a-b|`` and
        ``sum a^2``, ``a`` being the reference. For 8- and 16-bit integer images all
        five are int64 and exact (the difference is taken in 64-bit signed integers,
        never wrapping); otherwise the pixels are widened to float64 and ``s0`` is
        int64, the others float64.

    Raises
    ------
    ValueError
        Dtypes or image shapes differ, or ``N != M`` without indices.
    IndexError
        An index is out of range.

    Notes
    -----
    Two launches of ``cuda/pair_norms.cu``: per-block partial sums, then a fixed-order
    sum of the partials per pair, so float results are the same on every run on the
    same device (they differ from NumPy's pairwise sums by rounding only).
    """
    if a.ndim != 3 or b.ndim != 3 or a.shape[1:] != b.shape[1:] or a.dtype != b.dtype:
        raise ValueError(
            "pair_norms needs (N, H, W) stacks of one image shape and dtype, "
            f"got {a.shape} {a.dtype} and {b.shape} {b.dtype}"
        )
    if first is None and second is None:
        if a.shape[0] != b.shape[0]:
            raise ValueError(f"without indices the stacks must be equally long: {a.shape[0]} vs {b.shape[0]}")
        first = second = np.arange(a.shape[0])
    elif first is None or second is None:
        raise ValueError("give both first and second, or neither")
    first = _pair_index(first, a.shape[0], "first")
    second = _pair_index(second, b.shape[0], "second")
    if first.shape != second.shape:
        raise ValueError(f"index lists differ in length: {first.shape[0]} vs {second.shape[0]}")
    n_pairs = first.shape[0]
    n = a.shape[1] * a.shape[2]
    dtype = np.dtype(a.dtype)
    if dtype.kind in "iu" and dtype.itemsize <= 2:
        acc, acc_name, tol_arg = np.int64, "i64", np.int64(_integer_tol(tol))
    else:
        if dtype not in _PAIR_NORMS_SUFFIX:
            a, b = a.astype(cupy.float64), b.astype(cupy.float64)
            dtype = np.dtype(np.float64)
        acc, acc_name, tol_arg = np.float64, "f64", np.float64(tol)
    kinds = (acc, np.int64, acc, acc, acc)
    if n_pairs == 0 or n == 0:
        return tuple(cupy.zeros(n_pairs, dt) for dt in kinds)
    a = cupy.ascontiguousarray(a)
    b = cupy.ascontiguousarray(b)

    parts = _parts(n_pairs, n, 4 * _BLOCK)
    partials = [cupy.empty((n_pairs, parts), dt) for dt in kinds]
    kernel = _kernel("pair_norms.cu", f"framediff_pair_norms_{_PAIR_NORMS_SUFFIX[dtype]}")
    kernel((n_pairs, parts), (_BLOCK,), (a, b, first, second, np.int64(n), tol_arg, *partials))
    if parts == 1:
        return tuple(p.reshape(n_pairs) for p in partials)
    out = [cupy.empty(n_pairs, dt) for dt in kinds]
    finish = _kernel("pair_norms.cu", f"framediff_pair_norms_finish_{acc_name}")
    finish((n_pairs,), (_BLOCK,), (*partials, np.int32(parts), *out))
    return tuple(out)


@cupy.memoize(for_each_device=True)
def _device_lut(dtype_name: str, bins: int, lo: float, hi: float):
    """``bin_lookup``'s value -> bin table as an int32 array on the current device."""
    return cupy.asarray(bin_lookup(np.dtype(dtype_name), bins, lo, hi).astype(np.int32))


def histograms(images, bins: int, lo: float, hi: float):
    """Histogram of each row of ``images``, with the bins of ``histograms()``.

    Parameters
    ----------
    images : cupy.ndarray, shape (B, N)
        uint8 or uint16 pixels, binned through ``_bin_lookup``'s value -> bin table
        (the semantics of ``histogram_lut``). Float images use the generic branch of
        ``histograms()``, which reproduces ``np.histogram``'s edge rounding.
    bins : int
        Number of equal-width bins over [lo, hi).
    lo, hi : float
        The histogram range, ``hi > lo``.

    Returns
    -------
    cupy.ndarray of int64, shape (B, bins)

    Notes
    -----
    Up to ``_SHARED_BINS_MAX`` bins, each block counts into a sub-histogram in shared
    memory and adds it to the output once; beyond that every pixel is a global atomic.
    """
    bins = int(bins)
    lo, hi = float(lo), float(hi)
    if not 1 <= bins < 2**31:
        raise ValueError(f"bins must be in [1, 2**31), got {bins}")
    if not hi > lo:
        raise ValueError(f"histogram range must have high > low, got ({lo}, {hi})")
    if images.ndim != 2:
        raise ValueError(f"expected a (B, N) array, got shape {images.shape}")
    n_images, n = images.shape
    out = cupy.zeros((n_images, bins), cupy.int64)
    if n_images == 0 or n == 0:
        return out
    images = cupy.ascontiguousarray(images)
    dtype = np.dtype(images.dtype)
    if dtype not in _HISTOGRAM_LUT_SUFFIX:
        raise TypeError(f"GPU histograms take uint8 or uint16 images, got {dtype}")
    lut = _device_lut(dtype.name, bins, lo, hi)
    name = f"framediff_histogram_lut_{_HISTOGRAM_LUT_SUFFIX[dtype]}"
    bin_args = (lut,)

    use_shared = bins <= _SHARED_BINS_MAX
    if use_shared:
        # Enough pixels per block to pay for zeroing and flushing the sub-histogram,
        # and few enough that its uint32 counters cannot overflow.
        parts = _parts(n_images, n, max(16 * _BLOCK, 4 * bins))
        parts = max(parts, -(-n // _SHARED_COUNT_MAX))
        if parts > _GRID_Y_MAX:
            raise ValueError(f"images of {n} pixels are too large for one histogram launch")
        shared_mem = 4 * bins
    else:
        parts = _parts(n_images, n, 16 * _BLOCK)
        shared_mem = 0
    kernel = _kernel("histogram.cu", name)
    kernel(
        (n_images, parts),
        (_BLOCK,),
        (images, np.int64(n), *bin_args, np.int32(bins), np.int32(use_shared), out),
        shared_mem=shared_mem,
    )
    return out


@cupy.memoize(for_each_device=True)
def _affine_kernel():
    # (x - lo) * 255 / span in normalize.py's order: sub, mul, div (no FMA can form).
    return cupy.ElementwiseKernel(
        "float64 x, float64 lo, float64 span",
        "float64 y",
        "y = span > 0 ? (x - lo) * 255.0 / span : 0.0",
        "framediff_normalize_affine",
    )


@cupy.memoize(for_each_device=True)
def _clip_affine_kernel():
    # np.clip(x, lo, hi) is minimum(maximum(x, lo), hi); a NaN x stays NaN.
    return cupy.ElementwiseKernel(
        "float64 x, float64 lo, float64 hi, float64 span",
        "float64 y",
        """
        double c = x < lo ? lo : x;
        c = c > hi ? hi : c;
        y = span > 0 ? (c - lo) * 255.0 / span : 0.0;
        """,
        "framediff_normalize_clip_affine",
    )


def normalize_affine(x, lo, span, *, clip_high=None):
    """``where(span > 0, (x - lo) * 255 / span, 0)`` in one fused kernel.

    Parameters
    ----------
    x : cupy.ndarray of float64, shape (B, H, W) or (H, W)
    lo, span : cupy.ndarray of float64
        Per-image offset and span, broadcast against ``x`` (shape (B, 1, 1) or (1, 1)).
    clip_high : cupy.ndarray of float64, optional
        When given, ``x`` is first clipped to ``[lo, clip_high]`` in the same pass (the
        percentile normalization).

    Returns
    -------
    cupy.ndarray of float64, the broadcast shape
        Bit for bit the values of the NumPy expression in ``normalize()``.
    """
    if clip_high is None:
        return _affine_kernel()(x, lo, span)
    return _clip_affine_kernel()(x, lo, clip_high, span)
