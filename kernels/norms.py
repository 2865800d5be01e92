"""Pixel difference norms of a batch of image pairs, in one pass over memory."""

from __future__ import annotations

import math

import numpy as np

from .backend import array_namespace, is_cupy

__all__ = ["NORM_NAMES", "difference_norms"]

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


def _as_batch(x):
    return x[None] if x.ndim == 2 else x


def _integer_frames(a, b) -> bool:
    dt = np.dtype(str(a.dtype))
    return a.dtype == b.dtype and np.issubdtype(dt, np.integer) and dt.itemsize <= 2


def _accumulate_cpu_int(a, b, tol):
    from ._cpu_fused import pair_norms_int

    n = a.shape[0]
    acc = np.empty((n, 5), np.int64)
    tol_int = math.floor(tol) if tol >= 0 else -1  # |d| > tol  <=>  |d| > floor(tol)
    pair_norms_int(
        np.ascontiguousarray(a.reshape(n, -1)), np.ascontiguousarray(b.reshape(n, -1)), tol_int, acc
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


def _accumulate_gpu(a, b, tol, xp):
    from ._gpu_fused import pair_norms

    return pair_norms(a, b, tol)


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
        Peak value for PSNR; defaults to the dtype's range (255 for uint8).

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
    """
    xp = array_namespace(a, b, xp=xp)
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {a.shape} vs {b.shape}")
    if a.dtype != b.dtype:
        raise ValueError(f"images differ in dtype: {a.dtype} vs {b.dtype}")
    a, b = _as_batch(a), _as_batch(b)
    if a.ndim != 3:
        raise ValueError(f"expected (H, W) or (B, H, W) arrays, got shape {a.shape}")
    if data_range is None:
        from .normalize import natural_data_range

        data_range = natural_data_range(np.dtype(str(a.dtype)))
    tol = float(tol)
    if is_cupy(a):
        s1, s0, s2, mx, sr = _accumulate_gpu(a, b, tol, xp)
    elif _integer_frames(a, b):
        s1, s0, s2, mx, sr = _accumulate_cpu_int(a, b, tol)
    else:
        s1, s0, s2, mx, sr = _accumulate_xp(a, b, tol, xp)
    return finish_norms(s1, s0, s2, mx, sr, a.shape[1] * a.shape[2], data_range, xp=xp)


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
