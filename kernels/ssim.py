"""Structural similarity (SSIM) of one image pair or a batch of pairs."""

from __future__ import annotations

from .backend import array_namespace
from .filters import gaussian_blur

__all__ = ["SSIM_SIGMA", "structural_similarity"]

#: Gaussian window of Wang et al. (2004): sigma 1.5, cut at 3.5 sigma -> 11 taps.
SSIM_SIGMA = 1.5
_TRUNCATE = 3.5
_K1 = 0.01
_K2 = 0.03
_RADIUS = int(_TRUNCATE * SSIM_SIGMA + 0.5)  # radius as scipy.ndimage computes it
_WIN_SIZE = 2 * _RADIUS + 1


def structural_similarity(a, b, *, data_range, full: bool = False, xp=None):
    """Mean structural similarity index of two images, or of each pair of a batch.

    Parameters
    ----------
    a, b : array, shape (H, W) or (B, H, W)
        Same shape, any size from 1 x 1; any real dtypes (computed in float64).
        Images smaller than the 11 x 11 window use a smaller one (see Notes).
    data_range : float
        Range of the intensity values (e.g. 255 for uint8, 1.0 for float images in
        0..1). Required: guessing it from the dtype is a common source of wrong
        scores.
    full : bool, optional
        Also return the SSIM map.
    xp : module, optional
        ``numpy`` or ``cupy``; detected from the images when omitted.

    Returns
    -------
    mssim : array of float64
        Mean SSIM over the image without a border of the window radius (5 pixels),
        shape ``()`` for one pair, ``(B,)`` for a batch. 1 for identical images.
    ssim_map : array of float64, same shape as ``a``
        Only with ``full=True``: the local SSIM of every pixel, border included.

    Raises
    ------
    ValueError
        Shapes differ, an image is empty, or ``data_range`` is not positive.

    Notes
    -----
    Local statistics use the Gaussian window of [1]_ (sigma 1.5, truncated at 3.5
    sigma, ``'reflect'`` boundaries) and population (co)variances, with
    ``C1 = (0.01 L)^2`` and ``C2 = (0.03 L)^2`` for ``L = data_range``. This is
    ``skimage.metrics.structural_similarity(a, b, gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=L)``, including its border crop.

    Small images (icons, strong downscaling): when the shorter side ``s`` is below 11,
    the window shrinks to the largest odd size that fits, ``2 r + 1`` with
    ``r = (s - 1) // 2`` -- the same Gaussian (sigma 1.5) cut at ``r`` pixels -- and the
    border crop to ``r``. A 1- or 2-pixel side leaves a one-pixel window, where SSIM is
    the luminance term alone. This never raises; scikit-image refuses such images.

    References
    ----------
    .. [1] Z. Wang, A. C. Bovik, H. R. Sheikh and E. P. Simoncelli, "Image quality
       assessment: from error visibility to structural similarity," IEEE Trans.
       Image Process. 13(4), 600-612 (2004). :DOI:`10.1109/TIP.2003.819861`

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> img = rng.random((32, 32))
    >>> float(structural_similarity(img, img, data_range=1.0))
    1.0
    """
    xp = array_namespace(a, b, xp=xp)
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {a.shape} vs {b.shape}")
    if a.ndim not in (2, 3):
        raise ValueError(f"expected (H, W) or (B, H, W) arrays, got shape {a.shape}")
    side = min(a.shape[-2:])
    if side < 1:
        raise ValueError(f"cannot measure empty images of shape {a.shape}")
    radius = min(_RADIUS, (side - 1) // 2)
    truncate = _TRUNCATE if radius == _RADIUS else radius / SSIM_SIGMA
    data_range = float(data_range)
    if not data_range > 0:
        raise ValueError(f"data_range must be > 0, got {data_range}")

    x = a.astype(xp.float64, copy=False)
    y = b.astype(xp.float64, copy=False)

    def blur(z):
        return gaussian_blur(z, SSIM_SIGMA, truncate=truncate, xp=xp)

    ux, uy = blur(x), blur(y)
    vx = blur(x * x) - ux * ux
    vy = blur(y * y) - uy * uy
    vxy = blur(x * y) - ux * uy

    c1 = (_K1 * data_range) ** 2
    c2 = (_K2 * data_range) ** 2
    numerator = (2 * ux * uy + c1) * (2 * vxy + c2)
    denominator = (ux**2 + uy**2 + c1) * (vx + vy + c2)
    ssim_map = numerator / denominator

    inner = slice(radius, ssim_map.shape[-1] - radius)
    mssim = ssim_map[..., radius : ssim_map.shape[-2] - radius, inner].mean(axis=(-2, -1))
    if full:
        return mssim, ssim_map
    return mssim
