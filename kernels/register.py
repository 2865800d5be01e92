"""Registering a frame to a reference by a whole-pixel translation (camera jitter)."""

from __future__ import annotations

from .align import phase_correlation
from .backend import array_namespace

__all__ = ["register_to", "translate"]


def translate(image, dy: int, dx: int, *, fill=None, xp=None):
    """``image`` moved by ``(dy, dx)`` whole pixels: ``out[y, x] = image[y - dy, x - dx]``.

    Parameters
    ----------
    image : array, shape (H, W) or (H, W, C)
    dy, dx : int
        Shift in pixels (down, right).
    fill : array, optional
        Same shape as ``image``: values for the pixels the shift uncovers (default:
        the nearest edge pixel of ``image``).
    xp : module, optional

    Returns
    -------
    array, same shape and dtype as ``image``
    """
    xp = array_namespace(image, xp=xp)
    h, w = image.shape[:2]
    ys = xp.arange(h) - int(dy)
    xs = xp.arange(w) - int(dx)
    out = image[xp.clip(ys, 0, h - 1)][:, xp.clip(xs, 0, w - 1)]
    if fill is not None:
        outside = ((ys < 0) | (ys >= h))[:, None] | ((xs < 0) | (xs >= w))[None, :]
        if image.ndim == 3:
            outside = outside[:, :, None]
        out = xp.where(outside, fill, out)
    return out


def register_to(reference, image, *, max_shift: float = 0.1, fill=None, xp=None):
    """Move ``image`` by the whole-pixel translation that best overlays ``reference``.

    Parameters
    ----------
    reference : array, shape (H, W)
        Gray reference (e.g. a background model's mean).
    image : array, shape (H, W) or (H, W, C)
        Frame to register; colour frames are measured on their channel mean.
    max_shift : float
        Shifts larger than this fraction of the image side are not believed (a moving
        object, not the camera, dominates the correlation): the frame is returned as is.
    fill : array, optional
        Values for the uncovered border, same shape as ``image`` (e.g. the reference
        in the frame's units, so the border reads as background).
    xp : module, optional

    Returns
    -------
    registered : array, same shape and dtype as ``image``
    shift : (int, int)
        ``(dy, dx)`` applied.

    Raises
    ------
    ValueError
        ``reference`` and ``image`` differ in (H, W).
    """
    xp = array_namespace(reference, image, xp=xp)
    if tuple(reference.shape) != tuple(image.shape[:2]):
        raise ValueError(f"image of shape {image.shape[:2]} does not fit a reference of {reference.shape}")
    gray = image.mean(axis=2) if image.ndim == 3 else image
    dy, dx, _ = phase_correlation(reference, gray, xp=xp)
    dy, dx = int(round(dy)), int(round(dx))
    h, w = reference.shape
    if abs(dy) > max_shift * h or abs(dx) > max_shift * w:
        return image, (0, 0)
    if dy == 0 and dx == 0:
        return image, (0, 0)
    return translate(image, dy, dx, fill=fill, xp=xp), (dy, dx)
