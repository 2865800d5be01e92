"""Smoothing filters of one image or a batch: Gaussian blur and median filter.

Both filter only the last two axes, so a batch ``(B, H, W)`` is filtered image by
image. The work is done by ``scipy.ndimage`` on NumPy arrays and by
``cupyx.scipy.ndimage`` on CuPy arrays, with the same boundary handling (``'reflect'``:
``d c b a | a b c d | d c b a``), so both backends give the same numbers.
"""

from __future__ import annotations

import numbers

from .backend import array_namespace

__all__ = ["gaussian_blur", "median_filter"]


def _ndimage(xp):
    """Return the ``scipy.ndimage``-like module for ``xp`` (imported lazily)."""
    if xp.__name__.split(".")[0] == "cupy":
        import cupyx.scipy.ndimage as ndi

        return ndi
    import scipy.ndimage as ndi

    return ndi


def _check_image_or_batch(image, name="image"):
    if image.ndim not in (2, 3):
        raise ValueError(f"{name} must have shape (H, W) or (B, H, W), got {image.shape}")


def gaussian_blur(image, sigma, *, truncate: float = 4.0, xp=None):
    """Blur an image, or each image of a batch, with a Gaussian kernel.

    Parameters
    ----------
    image : array, shape (H, W) or (B, H, W)
        Any real dtype; filtered in float64. A batch is blurred image by image (the
        batch axis is never mixed).
    sigma : float
        Standard deviation of the Gaussian in pixels, the same along both axes.
        ``0`` returns the image unchanged (as float64).
    truncate : float, optional
        The kernel is cut at ``truncate * sigma`` pixels, as in
        :func:`scipy.ndimage.gaussian_filter` (radius ``int(truncate * sigma + 0.5)``).
        Structural similarity uses 3.5, which gives the 11-tap window of [1]_.
    xp : module, optional
        ``numpy`` or ``cupy``; detected from ``image`` when omitted.

    Returns
    -------
    array of float64, same shape as ``image``
        Equal to ``scipy.ndimage.gaussian_filter(image.astype(float64), sigma,
        mode='reflect', truncate=truncate)`` for a 2-D image.

    Raises
    ------
    ValueError
        ``sigma`` or ``truncate`` is negative, or the image is not 2-D or 3-D.

    References
    ----------
    .. [1] Z. Wang, A. C. Bovik, H. R. Sheikh and E. P. Simoncelli, "Image quality
       assessment: from error visibility to structural similarity," IEEE Trans.
       Image Process. 13(4), 600-612 (2004). :DOI:`10.1109/TIP.2003.819861`

    Examples
    --------
    >>> import numpy as np
    >>> out = gaussian_blur(np.eye(5), 1.0)
    >>> out.dtype, out.shape
    (dtype('float64'), (5, 5))
    """
    xp = array_namespace(image, xp=xp)
    _check_image_or_batch(image)
    sigma = float(sigma)
    truncate = float(truncate)
    if sigma < 0:
        raise ValueError(f"sigma must be >= 0, got {sigma}")
    if truncate < 0:
        raise ValueError(f"truncate must be >= 0, got {truncate}")
    x = image.astype(xp.float64, copy=False)
    if sigma == 0:
        return x.copy() if x is image else x
    ndi = _ndimage(xp)
    # The same separable passes, in the same axis order, as ndimage.gaussian_filter.
    x = ndi.gaussian_filter1d(x, sigma, axis=-2, mode="reflect", truncate=truncate)
    return ndi.gaussian_filter1d(x, sigma, axis=-1, mode="reflect", truncate=truncate)


def median_filter(image, size, *, xp=None):
    """Median of each ``size x size`` neighbourhood of an image or of each image of a batch.

    Parameters
    ----------
    image : array, shape (H, W) or (B, H, W)
        Any real dtype; the dtype is kept.
    size : int
        Side of the square window, >= 1. An even size centres the window as
        ``scipy.ndimage.median_filter`` does (one more pixel before the centre).
    xp : module, optional
        ``numpy`` or ``cupy``; detected from ``image`` when omitted.

    Returns
    -------
    array, same shape and dtype as ``image``
        Equal to ``scipy.ndimage.median_filter(image, size=size, mode='reflect')`` for
        a 2-D image.

    Raises
    ------
    ValueError
        ``size`` is not a positive integer, or the image is not 2-D or 3-D.

    Examples
    --------
    >>> import numpy as np
    >>> img = np.zeros((5, 5), np.uint8); img[2, 2] = 255
    >>> int(median_filter(img, 3).max())
    0
    """
    xp = array_namespace(image, xp=xp)
    _check_image_or_batch(image)
    if isinstance(size, bool) or not isinstance(size, numbers.Integral) or size < 1:
        raise ValueError(f"size must be a positive integer, got {size!r}")
    size = int(size)
    footprint = (size, size) if image.ndim == 2 else (1, size, size)
    return _ndimage(xp).median_filter(image, size=footprint, mode="reflect")
