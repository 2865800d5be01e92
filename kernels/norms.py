"""Pixel difference norms of a batch of image pairs, in one pass over memory."""

from __future__ import annotations

import math

import numpy as np

from .backend import array_namespace, fused_kernels, is_cupy
from .normalize import natural_data_range

__all__ = ["NORM_NAMES", "difference_norms", "finish_norms", "pair_difference_norms"]

#: Every value :func:`difference_norms` returns, in a stable order.
NORM_NAMES = (
    "l1",
    "l1_per_pixel",
    "l0",
    "l0_fraction",
    "l2",
    "mse",
    "rmse",
    "nrmse",
    "psnr",
    "max_abs",
)


def _integer_frames(frames) -> bool:
    dt = np.dtype(str(frames.dtype))
    return np.issubdtype(dt, np.integer) and dt.itemsize <= 2


def _accumulate_cpu_int(fused, frames_a, first, frames_b, second, tol):
    acc = np.empty((len(first), 5), np.int64)
    tol_int = math.floor(tol) if tol >= 0 else -1  # |d| > tol  <=>  |d| > floor(tol) for integers
    fused.pair_norms_int(
        np.ascontiguousarray(frames_a.reshape(frames_a.shape[0], -1)),
        np.asarray(first, np.intp),
        np.ascontiguousarray(frames_b.reshape(frames_b.shape[0], -1)),
        np.asarray(second, np.intp),
        tol_int,
        acc,
    )
    return acc[:, 0], acc[:, 1], acc[:, 2], acc[:, 3], acc[:, 4]


def _accumulate_xp(a, b, tol, xp):
    axes = (1, 2)
    x = a.astype(xp.float64, copy=False)
    d = x - b.astype(xp.float64, copy=False)
    ad = xp.abs(d)
    return (
        ad.sum(axis=axes),
        xp.count_nonzero(ad > tol, axis=axes),
        (d * d).sum(axis=axes),
        ad.max(axis=axes),
        (x * x).sum(axis=axes),
    )


def _check_stack(frames, name):
    if frames.ndim != 3:
        raise ValueError(f"{name} must be a (N, H, W) stack, got shape {frames.shape}")


def pair_difference_norms(
    frames_a, first, frames_b, second, *, tol: float = 0.0, data_range: float | None = None, xp=None
):
    """Difference norms of pairs picked by index from two frame stacks.

    Pair ``k`` compares ``frames_a[first[k]]`` (the reference) with
    ``frames_b[second[k]]``. Passing the same stack twice compares frames of one
    decoded chunk (consecutive, reference or all-pairs plans) without copying them.

    Parameters
    ----------
    frames_a, frames_b : array, shape (N, H, W) and (M, H, W)
        Same dtype and image shape.
    first, second : sequence of int, length K
    tol, data_range
        As in :func:`difference_norms`.

    Returns
    -------
    dict of str -> array of shape (K,)
        See :func:`difference_norms`.
    """
    xp = array_namespace(frames_a, frames_b, xp=xp)
    _check_stack(frames_a, "frames_a")
    _check_stack(frames_b, "frames_b")
    if frames_a.shape[1:] != frames_b.shape[1:]:
        raise ValueError(f"images differ in shape: {frames_a.shape[1:]} vs {frames_b.shape[1:]}")
    if frames_a.dtype != frames_b.dtype:
        raise ValueError(f"images differ in dtype: {frames_a.dtype} vs {frames_b.dtype}")
    if len(first) != len(second):
        raise ValueError(f"index lists differ in length: {len(first)} vs {len(second)}")
    if data_range is None:
        data_range = natural_data_range(np.dtype(str(frames_a.dtype)))
    tol = float(tol)
    if is_cupy(frames_a):
        from ._gpu_fused import pair_norms

        sums = pair_norms(frames_a, frames_b, tol, first=np.asarray(first, np.intp), second=np.asarray(second, np.intp))
    elif _integer_frames(frames_a) and (fused := fused_kernels(len(first) * frames_a[0].size)) is not None:
        sums = _accumulate_cpu_int(fused, frames_a, first, frames_b, second, tol)
    else:
        first, second = np.asarray(first, np.intp), np.asarray(second, np.intp)
        sums = _accumulate_xp(frames_a[first], frames_b[second], tol, xp)
    return finish_norms(*sums, frames_a.shape[1] * frames_a.shape[2], data_range, xp=xp)


def difference_norms(a, b, *, tol: float = 0.0, data_range: float | None = None, xp=None):
    """Difference norms of each pair ``(a[i], b[i])``.

    Parameters
    ----------
    a, b : array, shape (H, W) or (B, H, W)
        Same shape and dtype. ``a`` is the reference (earlier) image. Integer images
        are differenced in wide integers, never wrapping, and summed exactly; float
        images are differenced and summed in float64.
    tol : float
        A pixel counts as changed when ``|a - b| > tol``; ``tol=0`` is the classic zero
        norm.
    data_range : float, optional
        Peak value for PSNR; defaults to the dtype's range (255 for uint8, 65535 for
        uint16, 1.0 for float).

    Returns
    -------
    dict of str -> array of shape (B,)
        ``l1`` sum |a-b| (Manhattan norm), ``l1_per_pixel``; ``l0`` count of changed
        pixels (zero norm), ``l0_fraction``; ``l2`` Euclidean norm; ``mse``; ``rmse``;
        ``nrmse`` = ||a-b|| / ||a|| (scikit-image's 'euclidean' normalization, NaN
        when ``a`` is all zeros); ``psnr`` = 10 log10(data_range^2 / mse) in dB,
        ``inf`` for identical images; ``max_abs``. Integer-valued results are int64.

    Raises
    ------
    ValueError
        Shapes or dtypes differ.

    Examples
    --------
    >>> import numpy as np
    >>> a = np.zeros((2, 2), np.uint8); b = np.array([[0, 3], [0, 255]], np.uint8)
    >>> r = difference_norms(a, b, tol=3)
    >>> int(r["l1"][0]), int(r["l0"][0]), int(r["max_abs"][0])
    (258, 1, 255)
    """
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {a.shape} vs {b.shape}")
    a = a[None] if a.ndim == 2 else a
    b = b[None] if b.ndim == 2 else b
    index = np.arange(a.shape[0])
    return pair_difference_norms(a, index, b, index, tol=tol, data_range=data_range, xp=xp)


def finish_norms(s1, s0, s2, mx, sr, n_pixels: int, data_range: float, *, xp=np):
    """Turn per-pair accumulators into the named norms of :data:`NORM_NAMES`."""
    s2f = s2.astype(xp.float64)
    mse = s2f / n_pixels
    with np.errstate(divide="ignore", invalid="ignore"):
        psnr = xp.where(mse > 0, 10.0 * xp.log10(float(data_range) ** 2 / xp.where(mse > 0, mse, 1.0)), xp.inf)
        srf = sr.astype(xp.float64)
        nrmse = xp.where(srf > 0, xp.sqrt(s2f) / xp.sqrt(xp.where(srf > 0, srf, 1.0)), xp.nan)
    return {
        "l1": s1,
        "l1_per_pixel": s1 / n_pixels,
        "l0": s0.astype(xp.int64),
        "l0_fraction": s0 / n_pixels,
        "l2": xp.sqrt(s2f),
        "mse": mse,
        "rmse": xp.sqrt(mse),
        "nrmse": nrmse,
        "psnr": psnr,
        "max_abs": mx,
    }
