"""Batched intensity histograms and the distances between them.

The distances follow OpenCV's ``compareHist`` definitions exactly where OpenCV has the
method [1]_, so a number from framediff can be checked against OpenCV. The pipeline
feeds them histograms normalized to probabilities, which makes every distance
independent of the image size.

References
----------
.. [1] OpenCV, "Histogram Comparison", ``cv::compareHist``,
   https://docs.opencv.org/4.x/d8/dc8/tutorial_histogram_comparison.html
"""

from __future__ import annotations

import numpy as np

from ._bins import bin_lookup as _bin_lookup
from .backend import array_namespace, fused_kernels, is_cupy

__all__ = [
    "HIST_DISTANCES",
    "KL_EMPTY_BIN",
    "histogram_distance",
    "histogram_range",
    "histograms",
    "to_probabilities",
]

HIST_DISTANCES = (
    "kl",
    "js",
    "chisqr",
    "chisqr_alt",
    "bhattacharyya",
    "intersection",
    "correlation",
)

#: Probability used for an empty bin of the second histogram in KL divergence, as
#: OpenCV's HISTCMP_KL_DIV does: KL stays finite and KL(p, p) is exactly 0.
KL_EMPTY_BIN = 1e-10
_DBL_EPSILON = float(np.finfo(np.float64).eps)
_FLT_EPSILON = float(np.finfo(np.float32).eps)


def histogram_range(dtype, normalization: str = "none") -> tuple[float, float]:
    """The fixed histogram range for images of ``dtype`` after ``normalization``.

    [0, 256) for uint8 and after min-max/percentile normalization (values 0..255),
    [0, 65536) for uint16, [0, 1] for other float images, and [-4, 4] standard
    deviations after z-scoring. Values outside the range are counted in the edge bins.
    """
    normalization = normalization.lower()
    if normalization in ("minmax", "percentile"):
        return 0.0, 256.0
    if normalization == "zscore":
        return -4.0, 4.0
    dtype = np.dtype(dtype)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return float(info.min), float(info.max) + 1.0
    return 0.0, 1.0


def _float_bins(flat, bins, lo, hi, xp):
    """Bin index of each value with ``np.histogram``'s arithmetic and edge correction.

    Values outside [lo, hi] are first clipped into the edge bins; NaN is refused.
    """
    x = flat.astype(xp.float64)
    if bool(xp.isnan(x).any()):  # synchronize
        raise ValueError("cannot histogram an image containing NaN")
    x = xp.clip(x, lo, hi)
    edges = xp.asarray(np.linspace(lo, hi, bins + 1))
    idx = (((x - lo) / (hi - lo)) * bins).astype(xp.intp)
    idx = xp.where(idx == bins, bins - 1, idx)
    idx = xp.where(x < edges[idx], idx - 1, idx)  # rounding put it one bin too high
    up = (x >= edges[idx + 1]) & (idx != bins - 1)  # ... or one bin too low
    return xp.where(up, idx + 1, idx)


def histograms(images, bins: int = 256, value_range=None, *, xp=None):
    """Histogram of each image of a batch.

    Parameters
    ----------
    images : array, shape (H, W) or (B, H, W)
    bins : int
        Number of equal-width bins over ``value_range``.
    value_range : (float, float), optional
        Fixed range; defaults to :func:`histogram_range` of the dtype. Bins follow
        ``np.histogram``'s edges; values outside the range fall in the edge bins.

    Returns
    -------
    array of int64, shape (bins,) or (B, bins)
    """
    xp = array_namespace(images, xp=xp)
    bins = int(bins)
    if bins < 1:
        raise ValueError(f"bins must be >= 1, got {bins}")
    single = images.ndim == 2
    batch = images[None] if single else images
    lo, hi = histogram_range(batch.dtype) if value_range is None else map(float, value_range)
    if not hi > lo:
        raise ValueError(f"histogram range must have high > low, got ({lo}, {hi})")
    flat = batch.reshape(batch.shape[0], -1)
    integer = np.issubdtype(np.dtype(str(batch.dtype)), np.integer) and batch.dtype.itemsize <= 2
    fused = fused_kernels(flat.size) if integer and not is_cupy(flat) else None
    if fused is not None:
        out = np.empty((flat.shape[0], bins), np.int64)
        if batch.dtype == np.uint8 and bins == 256 and (lo, hi) == (0.0, 256.0):
            fused.histogram_u8_256(np.ascontiguousarray(flat), out)  # the default scan: bin = value
        else:
            fused.histogram_lut(np.ascontiguousarray(flat), _bin_lookup(batch.dtype, bins, lo, hi), bins, out)
    elif is_cupy(flat) and integer and batch.dtype.kind == "u":
        from ._gpu_fused import histograms as gpu_histograms

        out = gpu_histograms(flat, bins, lo, hi)
    else:
        if integer:
            idx = xp.asarray(_bin_lookup(batch.dtype, bins, lo, hi))[flat.astype(xp.intp)]
        else:
            idx = _float_bins(flat, bins, lo, hi, xp)
        offsets = (xp.arange(flat.shape[0], dtype=xp.intp) * bins)[:, None]
        out = xp.bincount((idx + offsets).ravel(), minlength=flat.shape[0] * bins)
        out = out.reshape(flat.shape[0], bins).astype(xp.int64)
    return out[0] if single else out


def to_probabilities(hist, *, xp=None):
    """Scale histograms (last axis) to sum to 1; an all-zero histogram stays zero."""
    xp = array_namespace(hist, xp=xp)
    h = hist.astype(xp.float64)
    total = h.sum(axis=-1, keepdims=True)
    return h / xp.where(total > 0, total, 1.0)


def _kl(p, q, xp):
    p = to_probabilities(p, xp=xp)
    q = to_probabilities(q, xp=xp)
    q = xp.where(xp.abs(q) <= _DBL_EPSILON, KL_EMPTY_BIN, q)
    present = xp.abs(p) > _DBL_EPSILON
    terms = xp.where(present, p * xp.log(xp.where(present, p, 1.0) / q), 0.0)
    return terms.sum(axis=-1)


def _js(p, q, xp):
    p = to_probabilities(p, xp=xp)
    q = to_probabilities(q, xp=xp)
    m = 0.5 * (p + q)
    safe_m = xp.where(m > 0, m, 1.0)

    def part(x):
        return xp.where(x > 0, x * xp.log(xp.where(x > 0, x, 1.0) / safe_m), 0.0).sum(axis=-1)

    return 0.5 * part(p) + 0.5 * part(q)


def _chisqr(p, q, xp):
    a = p
    safe = xp.where(xp.abs(a) > _DBL_EPSILON, a, 1.0)
    return xp.where(xp.abs(a) > _DBL_EPSILON, (p - q) ** 2 / safe, 0.0).sum(axis=-1)


def _chisqr_alt(p, q, xp):
    a = p + q
    safe = xp.where(xp.abs(a) > _DBL_EPSILON, a, 1.0)
    return 2.0 * xp.where(xp.abs(a) > _DBL_EPSILON, (p - q) ** 2 / safe, 0.0).sum(axis=-1)


def _intersection(p, q, xp):
    return xp.minimum(p, q).sum(axis=-1)


def _correlation(p, q, xp):
    n = p.shape[-1]
    s1, s2 = p.sum(axis=-1), q.sum(axis=-1)
    s11, s22, s12 = (p * p).sum(axis=-1), (q * q).sum(axis=-1), (p * q).sum(axis=-1)
    num = s12 - s1 * s2 / n
    denom2 = (s11 - s1 * s1 / n) * (s22 - s2 * s2 / n)
    ok = xp.abs(denom2) > _DBL_EPSILON
    return xp.where(ok, num / xp.sqrt(xp.where(ok, denom2, 1.0)), 1.0)


def _bhattacharyya(p, q, xp):
    overlap = xp.sqrt(p * q).sum(axis=-1)
    s = p.sum(axis=-1) * q.sum(axis=-1)
    ok = xp.abs(s) > _FLT_EPSILON
    scale = xp.where(ok, 1.0 / xp.sqrt(xp.where(ok, s, 1.0)), 1.0)
    return xp.sqrt(xp.maximum(1.0 - overlap * scale, 0.0))


_DISTANCES = {
    "kl": _kl,
    "js": _js,
    "chisqr": _chisqr,
    "chisqr_alt": _chisqr_alt,
    "bhattacharyya": _bhattacharyya,
    "intersection": _intersection,
    "correlation": _correlation,
}


def histogram_distance(p, q, method: str = "kl", *, xp=None):
    """Distance (or similarity) between histograms ``p`` and ``q`` along the last axis.

    Parameters
    ----------
    p, q : array, shape (bins,) or (B, bins)
        Counts or probabilities; ``p`` is the earlier/reference image.
    method : str
        ``'kl'``: Kullback-Leibler divergence KL(p || q) after scaling both to
        probabilities; an empty bin of ``q`` counts as :data:`KL_EMPTY_BIN` (OpenCV's
        rule), so the value is finite and KL(p, p) = 0. Between consecutive frames a KL
        above about 0.2 flags a sudden change or a corrupted frame.
        ``'js'``: Jensen-Shannon divergence (natural log, symmetric, at most ln 2).
        ``'chisqr'``: sum (p-q)^2 / p over bins where p > 0 (OpenCV HISTCMP_CHISQR).
        ``'chisqr_alt'``: 2 sum (p-q)^2 / (p+q) (HISTCMP_CHISQR_ALT).
        ``'bhattacharyya'``: sqrt(1 - sum sqrt(p q) / sqrt(sum p sum q)), which OpenCV
        also calls Hellinger (HISTCMP_BHATTACHARYYA).
        ``'intersection'``: sum min(p, q), a similarity (1 for identical probabilities).
        ``'correlation'``: Pearson correlation of the bins, a similarity
        (HISTCMP_CORREL).

    Returns
    -------
    float64 array of shape () or (B,)
    """
    xp = array_namespace(p, q, xp=xp)
    key = method.lower()
    if key == "hellinger":
        key = "bhattacharyya"
    if key not in _DISTANCES:
        raise ValueError(f"unknown histogram distance {method!r}; expected one of {', '.join(HIST_DISTANCES)}")
    p = p.astype(xp.float64)
    q = q.astype(xp.float64)
    if p.shape != q.shape:
        raise ValueError(f"histograms differ in shape: {p.shape} vs {q.shape}")
    return _DISTANCES[key](p, q, xp)
