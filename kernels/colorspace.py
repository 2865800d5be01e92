"""Colour differences: sRGB to CIE L*a*b* and the CIE76 colour difference.

Differences of RGB values do not follow perceived colour difference; Euclidean
distance in CIE L*a*b* (Delta E 1976) does, roughly, with about 2.3 as a just
noticeable difference [2]_.
"""

from __future__ import annotations

import numpy as np

from .backend import array_namespace

__all__ = ["delta_e_cie76", "delta_e_stats", "per_channel", "rgb_to_lab"]

# sRGB (D65) -> CIE XYZ, the matrix scikit-image uses (``xyz_from_rgb``).
_XYZ_FROM_RGB = (
    (0.412453, 0.357580, 0.180423),
    (0.212671, 0.715160, 0.072169),
    (0.019334, 0.119193, 0.950227),
)
# Reference white of illuminant D65, 2 degree observer.
_D65_WHITE = (0.95047, 1.0, 1.08883)


def _as_unit_float(rgb, xp):
    kind = rgb.dtype.kind
    if kind == "u":
        # uint8 -> /255, uint16 -> /65535, as skimage.util.img_as_float
        return rgb.astype(xp.float64) / float(np.iinfo(rgb.dtype).max)
    if kind == "f":
        return rgb.astype(xp.float64, copy=False)
    raise ValueError(f"expected an unsigned integer or float RGB image, got dtype {rgb.dtype}")


def rgb_to_lab(rgb, *, xp=None):
    """Convert sRGB to CIE L*a*b* (illuminant D65, 2 degree observer).

    Parameters
    ----------
    rgb : array, shape (..., 3)
        Channels last: one image ``(H, W, 3)`` or a batch ``(B, H, W, 3)``.
        Unsigned integers are scaled by their maximum (255 for uint8) to 0..1;
        float input is taken to be in 0..1 already.
    xp : module, optional
        ``numpy`` or ``cupy``; detected from ``rgb`` when omitted.

    Returns
    -------
    array of float64, shape of ``rgb``
        ``L*`` in 0..100, then ``a*`` and ``b*``.

    Raises
    ------
    ValueError
        The last axis does not have 3 channels, or the dtype is neither unsigned
        integer nor float.

    Notes
    -----
    sRGB values are linearised with the sRGB transfer function, converted to XYZ
    with the sRGB/D65 matrix, divided by the D65 white point and mapped by the CIE
    1976 formulas [1]_. Constants and arithmetic are those of
    ``skimage.color.rgb2lab``, whose results this reproduces.

    References
    ----------
    .. [1] CIE 015:2018, *Colorimetry*, 4th ed., section 8.2.1 "CIE 1976 L*a*b*
       colour space". :DOI:`10.25039/TR.015.2018`

    Examples
    --------
    >>> import numpy as np
    >>> lab = rgb_to_lab(np.array([[[255, 255, 255]], [[0, 0, 0]]], np.uint8))
    >>> lab[..., 0]  # lightness of white and black
    array([[100.],
           [  0.]])
    """
    xp = array_namespace(rgb, xp=xp)
    if rgb.ndim < 1 or rgb.shape[-1] != 3:
        raise ValueError(f"expected RGB with 3 channels on the last axis, got shape {rgb.shape}")
    x = _as_unit_float(rgb, xp)
    # sRGB transfer function; the power branch sees only values where it applies.
    linear = xp.where(x > 0.04045, ((xp.maximum(x, 0.04045) + 0.055) / 1.055) ** 2.4, x / 12.92)
    matrix = xp.asarray(_XYZ_FROM_RGB, dtype=xp.float64)
    xyz = linear @ matrix.T
    xyz = xyz / xp.asarray(_D65_WHITE, dtype=xp.float64)
    f = xp.where(xyz > 0.008856, xp.cbrt(xyz), 7.787 * xyz + 16.0 / 116.0)
    fx, fy, fz = f[..., 0], f[..., 1], f[..., 2]
    return xp.stack([116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)], axis=-1)


def delta_e_cie76(rgb_a, rgb_b, *, xp=None):
    """Per-pixel CIE76 colour difference between two sRGB images.

    Parameters
    ----------
    rgb_a, rgb_b : array, shape (..., 3)
        Same shape; one image ``(H, W, 3)`` or a batch ``(B, H, W, 3)``. Same input
        conventions as :func:`rgb_to_lab` (their dtypes may differ).
    xp : module, optional
        ``numpy`` or ``cupy``; detected from the images when omitted.

    Returns
    -------
    array of float64, shape ``rgb_a.shape[:-1]``
        ``sqrt(dL*^2 + da*^2 + db*^2)`` per pixel; 0 where the colours are equal.

    Raises
    ------
    ValueError
        Shapes differ, or see :func:`rgb_to_lab`.

    References
    ----------
    .. [1] CIE 015:2018, *Colorimetry*, 4th ed., section 8.3.1 "CIE 1976 colour
       difference". :DOI:`10.25039/TR.015.2018`
    .. [2] G. Sharma (ed.), *Digital Color Imaging Handbook*, CRC Press (2003),
       p. 31.

    Examples
    --------
    >>> import numpy as np
    >>> black = np.zeros((1, 1, 3), np.uint8)
    >>> white = np.full((1, 1, 3), 255, np.uint8)
    >>> np.round(delta_e_cie76(black, white), 4)
    array([[100.]])
    """
    xp = array_namespace(rgb_a, rgb_b, xp=xp)
    if rgb_a.shape != rgb_b.shape:
        raise ValueError(f"images differ in shape: {rgb_a.shape} vs {rgb_b.shape}")
    d = rgb_to_lab(rgb_a, xp=xp) - rgb_to_lab(rgb_b, xp=xp)
    return xp.sqrt((d * d).sum(axis=-1))


def delta_e_stats(delta_e, *, xp=None):
    """Summary of a Delta E map: mean, 95th percentile and maximum, per image.

    Parameters
    ----------
    delta_e : array, shape (H, W) or (B, H, W)
        A map from :func:`delta_e_cie76`.
    xp : module, optional
        ``numpy`` or ``cupy``; detected from ``delta_e`` when omitted.

    Returns
    -------
    dict of str -> array
        ``'mean'``, ``'p95'`` (linear interpolation, as ``numpy.percentile``) and
        ``'max'``, each reduced over the last two axes: shape ``()`` for one map,
        ``(B,)`` for a batch.

    Raises
    ------
    ValueError
        ``delta_e`` is not 2-D or 3-D.

    Examples
    --------
    >>> import numpy as np
    >>> stats = delta_e_stats(np.arange(100.0).reshape(10, 10))
    >>> float(stats["mean"]), float(stats["p95"]), float(stats["max"])
    (49.5, 94.05, 99.0)
    """
    xp = array_namespace(delta_e, xp=xp)
    if delta_e.ndim not in (2, 3):
        raise ValueError(f"expected a map of shape (H, W) or (B, H, W), got {delta_e.shape}")
    x = delta_e.astype(xp.float64, copy=False)
    axes = (-2, -1)
    return {
        "mean": x.mean(axis=axes),
        "p95": xp.percentile(x, 95.0, axis=axes),
        "max": x.max(axis=axes),
    }


def per_channel(image, *, xp=None):
    """View an image channel-first, for metrics computed channel by channel.

    Parameters
    ----------
    image : array, shape (H, W) or (H, W, C)
    xp : module, optional
        ``numpy`` or ``cupy``; detected from ``image`` when omitted.

    Returns
    -------
    array, shape (C, H, W)
        A view (no copy); a 2-D image gives ``(1, H, W)``. The result is a batch in
        the sense of the other kernels: ``difference_norms(per_channel(a),
        per_channel(b))`` gives one value per channel.

    Raises
    ------
    ValueError
        ``image`` is not 2-D or 3-D.

    Examples
    --------
    >>> import numpy as np
    >>> per_channel(np.zeros((4, 5, 3))).shape
    (3, 4, 5)
    """
    xp = array_namespace(image, xp=xp)
    if image.ndim == 2:
        return image[None]
    if image.ndim != 3:
        raise ValueError(f"expected an image of shape (H, W) or (H, W, C), got {image.shape}")
    return xp.moveaxis(image, -1, 0)
