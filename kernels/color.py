"""Colour to grayscale: the classic channel mean, or BT.601 luma."""

from __future__ import annotations

from .backend import array_namespace

__all__ = ["GRAY_METHODS", "drop_alpha", "to_gray"]

GRAY_METHODS = ("mean", "luma")

# libjpeg's fixed-point RGB->Y (jccolor.c): FIX(x) = round(x * 2**16). Using the same
# integers makes the luma of a PNG equal the Y plane a JPEG decoder returns.
_LUMA_FIX = (19595, 38470, 7471)
_LUMA_FLOAT = (0.299, 0.587, 0.114)


def drop_alpha(image):
    """Return ``image`` without an alpha channel (RGBA -> RGB, gray+alpha -> gray)."""
    if image.ndim == 3 and image.shape[-1] in (2, 4):
        return image[..., :-1]
    return image


def to_gray(image, method: str = "mean", *, xp=None):
    """Convert one image to a 2-D grayscale array.

    Parameters
    ----------
    image : array, shape (H, W) or (H, W, C)
        Gray, gray+alpha, RGB or RGBA; uint8, uint16 or float.
    method : {'mean', 'luma'}
        ``'mean'`` averages the colour channels in float64 (the classic approach, so a
        uint8 image gives float64 values in thirds). ``'luma'`` is BT.601
        ``0.299 R + 0.587 G + 0.114 B``; integer images keep their dtype, rounded as
        libjpeg rounds, so it equals a JPEG decoder's Y plane.

    Returns
    -------
    array, shape (H, W)

    Raises
    ------
    ValueError
        Unknown ``method`` or an unsupported shape.
    """
    xp = array_namespace(image, xp=xp)
    method = method.lower()
    if method not in GRAY_METHODS:
        raise ValueError(f"unknown gray method {method!r}; expected one of {', '.join(GRAY_METHODS)}")
    image = drop_alpha(image)
    if image.ndim == 2:
        return image
    if image.ndim != 3:
        raise ValueError(f"expected an image of shape (H, W) or (H, W, C), got {image.shape}")
    if image.shape[-1] == 1:
        return image[..., 0]
    if image.shape[-1] != 3:
        raise ValueError(f"expected 1, 3 or 4 channels, got {image.shape[-1]}")
    if method == "mean":
        return xp.mean(image, axis=-1, dtype=xp.float64)
    if image.dtype == xp.uint8:
        r, g, b = (image[..., i].astype(xp.uint32) for i in range(3))
        y = (_LUMA_FIX[0] * r + _LUMA_FIX[1] * g + _LUMA_FIX[2] * b + 32768) >> 16
        return y.astype(xp.uint8)
    weights = xp.asarray(_LUMA_FLOAT, dtype=xp.float64)
    y = image.astype(xp.float64) @ weights
    if xp.issubdtype(image.dtype, xp.integer):
        return xp.rint(y).astype(image.dtype)
    return y
