"""Exposure normalization of one image or a batch, per image."""

from __future__ import annotations

from .backend import array_namespace, is_cupy

__all__ = ["NORMALIZATIONS", "normalize", "natural_data_range"]

NORMALIZATIONS = ("none", "minmax", "percentile", "zscore")


def _per_image_axes(images):
    return tuple(range(images.ndim - 2, images.ndim))


def normalize(images, method: str = "none", *, percentiles=(1.0, 99.0), xp=None):
    """Rescale each image's intensities.

    Parameters
    ----------
    images : array, shape (H, W) or (B, H, W)
        Statistics are taken per image (over the last two axes).
    method : {'none', 'minmax', 'percentile', 'zscore'}
        ``'minmax'`` maps each image's min..max to 0..255 (the classic approach; a single
        hot pixel decides the scale). ``'percentile'`` clips to the given percentiles
        first, so a few extreme pixels cannot rescale the image, then maps to 0..255.
        ``'zscore'`` subtracts the mean and divides by the standard deviation.
        A constant image becomes all zeros, never NaN or inf.
    percentiles : (float, float)
        Lower and upper percentile for ``'percentile'``.

    Returns
    -------
    array
        ``images`` itself for ``'none'``, otherwise float64 of the same shape.
    """
    xp = array_namespace(images, xp=xp)
    method = method.lower()
    if method == "none":
        return images
    axes = _per_image_axes(images)
    x = images.astype(xp.float64, copy=False)
    if method == "minmax":
        lo = x.min(axis=axes, keepdims=True)
        span = x.max(axis=axes, keepdims=True) - lo
    elif method == "percentile":
        p_lo, p_hi = (float(p) for p in percentiles)
        if not 0.0 <= p_lo < p_hi <= 100.0:
            raise ValueError(f"percentiles must satisfy 0 <= low < high <= 100, got {percentiles}")
        lo = xp.percentile(x, p_lo, axis=axes, keepdims=True)
        hi = xp.percentile(x, p_hi, axis=axes, keepdims=True)
        span = hi - lo
        if is_cupy(x):
            from ._gpu_fused import normalize_affine

            return normalize_affine(x, lo, span, clip_high=hi)  # clip fused in
        x = xp.clip(x, lo, hi)
    elif method == "zscore":
        mean = x.mean(axis=axes, keepdims=True)
        std = x.std(axis=axes, keepdims=True)
        safe = xp.where(std > 0, std, 1.0)
        return xp.where(std > 0, (x - mean) / safe, 0.0)
    else:
        raise ValueError(f"unknown normalization {method!r}; expected one of {', '.join(NORMALIZATIONS)}")
    if is_cupy(x):
        from ._gpu_fused import normalize_affine

        return normalize_affine(x, lo, span)
    safe = xp.where(span > 0, span, 1.0)
    # Same operation order as the classic (arr - amin) * 255 / rng, so values match bit for bit.
    return xp.where(span > 0, (x - lo) * 255 / safe, 0.0)


def natural_data_range(dtype, method: str = "none") -> float:
    """The data range used by PSNR for images of ``dtype`` after ``method``.

    255 after min-max or percentile normalization; otherwise the dtype's full range
    (255 for uint8, 65535 for uint16), and 1.0 for float images in 0..1. z-scores have
    no natural range: 8.0 (mean +- 4 standard deviations) is used and documented.
    """
    import numpy as np

    method = method.lower()
    if method in ("minmax", "percentile"):
        return 255.0
    if method == "zscore":
        return 8.0
    dtype = np.dtype(dtype)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return float(info.max - info.min)
    return 1.0
