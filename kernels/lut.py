"""Look-up tables applied to 8-bit images in one pass (a pixel map such as a range change)."""

from __future__ import annotations

import numpy as np

from .backend import array_namespace, is_cupy

__all__ = ["apply_lut"]


def apply_lut(image, lut, *, out=None, xp=None):
    """``lut[image]`` for a 2-D uint8 image, written into ``out`` when given.

    Parameters
    ----------
    image : array of uint8, shape (H, W)
        May be a strided view (rows of a padded plane).
    lut : array of uint8, shape (256,)
    out : array of uint8, shape (H, W), optional
    xp : module, optional
        NumPy or CuPy; detected from ``image`` when omitted.

    Returns
    -------
    array of uint8, shape (H, W)
        ``out`` when given.

    Examples
    --------
    >>> import numpy as np
    >>> apply_lut(np.array([[0, 2]], np.uint8), np.arange(256, dtype=np.uint8)[::-1].copy())
    array([[255, 253]], dtype=uint8)
    """
    xp = array_namespace(image, xp=xp)
    if image.ndim != 2 or image.dtype != np.uint8:
        raise ValueError(f"image must be 2-D uint8, got {image.ndim}-D {image.dtype}")
    if lut.shape != (256,) or lut.dtype != np.uint8:
        raise ValueError(f"lut must be uint8 of shape (256,), got {lut.dtype} {lut.shape}")
    if out is None:
        out = xp.empty(image.shape, xp.uint8)
    elif out.shape != image.shape or out.dtype != np.uint8:
        raise ValueError(f"out must be uint8 of shape {image.shape}, got {out.dtype} {out.shape}")
    if is_cupy(image):
        xp.take(xp.asarray(lut), image, out=out)
    else:
        from . import _cpu_fused  # numba, imported when video is decoded

        _cpu_fused.apply_lut_2d(image, lut, out)
    return out
