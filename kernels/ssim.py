"""Structural similarity (SSIM) of one image pair or a batch of pairs."""

from __future__ import annotations

from .backend import array_namespace
from .filters import gaussian_blur

__all__ = ["SSIM_SIGMA", "pair_structural_similarity", "structural_similarity"]

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
    radius, blur = _window(a.shape, xp)
    data_range = _check_range(data_range)
    x = a.astype(xp.float64, copy=False)
    y = b.astype(xp.float64, copy=False)
    ux, uy = blur(x), blur(y)
    ssim_map = _ssim_map(ux, uy, blur(x * x), blur(y * y), blur(x * y), data_range)
    mssim = _crop_mean(ssim_map, radius)
    if full:
        return mssim, ssim_map
    return mssim


def pair_structural_similarity(frames_a, first, frames_b, second, *, data_range, xp=None):
    """Mean SSIM of pairs ``(frames_a[first[k]], frames_b[second[k]])`` of two stacks.

    The same numbers as :func:`structural_similarity` on the gathered pairs, for less
    work when frames recur (all pairs, consecutive frames): each frame's local mean
    and second moment are filtered once, only the cross moment once per pair -- three
    Gaussian passes a pair instead of five when every frame is in two pairs.

    Parameters
    ----------
    frames_a, frames_b : array, shape (N, H, W) and (M, H, W)
        Frames of one image shape; may be the same array.
    first, second : sequence of int, same length
        Positions in ``frames_a`` and ``frames_b``.
    data_range : float
        As for :func:`structural_similarity`.
    xp : module, optional
        ``numpy`` or ``cupy``; detected from the frames when omitted.

    Returns
    -------
    array of float64, shape (K,)

    Raises
    ------
    ValueError
        The stacks' image shapes differ, the index lists differ in length, or
        ``data_range`` is not positive.

    Examples
    --------
    >>> import numpy as np
    >>> frames = np.random.default_rng(0).random((3, 16, 16))
    >>> float(pair_structural_similarity(frames, [0, 1], frames, [0, 2], data_range=1.0)[0])
    1.0
    """
    import numpy as np

    xp = array_namespace(frames_a, frames_b, xp=xp)
    if frames_a.ndim != 3 or frames_b.ndim != 3 or frames_a.shape[1:] != frames_b.shape[1:]:
        raise ValueError(f"expected stacks of one image shape, got {frames_a.shape} and {frames_b.shape}")
    first, second = np.asarray(first, np.intp), np.asarray(second, np.intp)
    if first.shape != second.shape:
        raise ValueError(f"first and second differ in length: {len(first)} vs {len(second)}")
    if len(first) == 0:
        return xp.zeros(0, xp.float64)
    radius, blur = _window(frames_a.shape, xp)
    data_range = _check_range(data_range)
    same = frames_a is frames_b
    used_a, at_a = np.unique(np.concatenate([first, second]) if same else first, return_inverse=True)
    x = frames_a[xp.asarray(used_a)].astype(xp.float64, copy=False)
    mean_a, square_a = blur(x), blur(x * x)
    if same:
        y, mean_b, square_b = x, mean_a, square_a
        at_a, at_b = at_a[: len(first)], at_a[len(first) :]
    else:
        used_b, at_b = np.unique(second, return_inverse=True)
        y = frames_b[xp.asarray(used_b)].astype(xp.float64, copy=False)
        mean_b, square_b = blur(y), blur(y * y)
    ia, ib = xp.asarray(at_a), xp.asarray(at_b)
    cross = blur(x[ia] * y[ib])
    ssim_map = _ssim_map(mean_a[ia], mean_b[ib], square_a[ia], square_b[ib], cross, data_range)
    return _crop_mean(ssim_map, radius)


def _window(shape, xp):
    """``(radius, blur)``: the window radius for images of ``shape`` and its filter."""
    side = min(shape[-2:])
    if side < 1:
        raise ValueError(f"cannot measure empty images of shape {shape}")
    radius = min(_RADIUS, (side - 1) // 2)
    truncate = _TRUNCATE if radius == _RADIUS else radius / SSIM_SIGMA

    def blur(z):
        return gaussian_blur(z, SSIM_SIGMA, truncate=truncate, xp=xp)

    return radius, blur


def _check_range(data_range) -> float:
    data_range = float(data_range)
    if not data_range > 0:
        raise ValueError(f"data_range must be > 0, got {data_range}")
    return data_range


def _ssim_map(ux, uy, sxx, syy, sxy, data_range):
    """Local SSIM from the filtered means and (raw) second moments."""
    vx = sxx - ux * ux
    vy = syy - uy * uy
    vxy = sxy - ux * uy
    c1 = (_K1 * data_range) ** 2
    c2 = (_K2 * data_range) ** 2
    numerator = (2 * ux * uy + c1) * (2 * vxy + c2)
    denominator = (ux**2 + uy**2 + c1) * (vx + vy + c2)
    return numerator / denominator


def _crop_mean(ssim_map, radius):
    """Mean over the image without a border of ``radius`` (the window's reach)."""
    inner = slice(radius, ssim_map.shape[-1] - radius)
    return ssim_map[..., radius : ssim_map.shape[-2] - radius, inner].mean(axis=(-2, -1))
