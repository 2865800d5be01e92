"""Thumbnails of the frames a report names, and the difference heatmap of two of them.

A frame is an image file or a frame of a video (``clip.mp4#frame=123``), read only from
inside the input root: a report is data, and its paths must not reach other files. PIL
and matplotlib's colormaps are imported when a thumbnail is made, not with framediff.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np

from .decode import DecodeError, read_image
from .html_data import first_line
from .video_outputs import read_video_frame, split_frame_name

__all__ = ["THUMB_SIZE", "difference_heatmap", "thumbnail", "thumbnail_png"]

#: Longest side of a thumbnail, in pixels.
THUMB_SIZE = 200


def thumbnail(root: Path | None, name, shape_hint):
    """A small picture of one input, or why there is none.

    Parameters
    ----------
    root : Path or None
        The input root the report's paths are relative to; None when unknown.
    name : str or None
        The input's path from the report (a video frame as ``clip.mp4#frame=123``).
    shape_hint : tuple of int
        ``(height, width)`` of the input from the report, to decode at a reduced size;
        zeros when unknown.

    Returns
    -------
    tuple of (PIL.Image.Image or None, str)
        The thumbnail and an empty message, or None and why there is no thumbnail.
    """
    from PIL import Image

    if root is None:
        return None, "input root unknown (pass --root)"
    if not isinstance(name, str) or not name:
        return None, "no path in the report"
    video_frame = split_frame_name(name)  # clip.mp4#frame=123: decoded from the video
    path = _inside(root, video_frame[0] if video_frame else name)
    if path is None:
        return None, "path outside the input root: not read"
    scale = 1.0
    if shape_hint and all(shape_hint) and max(shape_hint) > 0:  # decode at reduced size where the codec can
        scale = min(1.0, max(0.125, 2.0 * THUMB_SIZE / max(shape_hint)))
    try:
        if video_frame:
            image = _to_rgb8(read_video_frame(path, video_frame[1], scale=scale))
        else:
            image = _to_rgb8(read_image(path, scale=scale))
    except DecodeError as exc:
        return None, f"cannot read: {exc.reason} [{exc.kind}]"
    except (OSError, ValueError, MemoryError) as exc:
        return None, f"cannot read: {first_line(exc)}"
    picture = Image.fromarray(image)
    picture.thumbnail((THUMB_SIZE, THUMB_SIZE), Image.Resampling.LANCZOS)
    return picture, ""


def _inside(root: Path, name: str) -> Path | None:
    """``root/name`` when it stays inside ``root`` (a report cannot point elsewhere)."""
    if not name or os.path.isabs(name):
        return None
    base = os.path.normpath(os.path.abspath(root))
    path = os.path.normpath(os.path.join(base, name))
    return Path(path) if os.path.commonpath([base, path]) == base else None


def _to_rgb8(image: np.ndarray) -> np.ndarray:
    """8-bit gray or RGB, what PIL shows: alpha dropped, 16-bit and float scaled down."""
    if image.ndim == 3:
        if image.shape[2] in (2, 4):
            image = image[..., :-1]
        if image.shape[2] == 1:
            image = image[..., 0]
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    elif image.dtype != np.uint8:
        image = np.asarray(image, np.float64)
        top = np.nanmax(image) if image.size else 1.0
        image = np.nan_to_num(image * (255.0 if top <= 1.0 else 1.0))
        image = np.clip(np.rint(image), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(image)


def thumbnail_png(picture, *, palette: bool) -> bytes:
    """A thumbnail as PNG bytes.

    Parameters
    ----------
    picture : PIL.Image.Image
        The thumbnail.
    palette : bool
        Quantize RGB to 256 colours first: photos stay small in the page.

    Returns
    -------
    bytes
    """
    from PIL import Image

    if palette and picture.mode == "RGB":
        picture = picture.quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    buf = io.BytesIO()
    picture.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def difference_heatmap(a, b):
    """|a - b| of two thumbnails in gray, colormapped (inferno).

    Parameters
    ----------
    a, b : PIL.Image.Image
        The thumbnails; ``b`` is resized to ``a``'s size.

    Returns
    -------
    tuple of (PIL.Image.Image, float)
        The heatmap (a palette image) and the difference shown brightest, in grey levels.
    """
    from matplotlib import colormaps
    from PIL import Image

    gray_a = np.asarray(a.convert("L"), np.float64)
    gray_b = np.asarray(b.convert("L").resize(a.size, Image.Resampling.BILINEAR), np.float64)
    diff = np.abs(gray_a - gray_b)
    top = max(float(diff.max()), 1.0)
    level = np.clip(np.rint(diff * (255.0 / top)), 0, 255).astype(np.uint8)
    lut = (colormaps["inferno"](np.linspace(0, 1, 256))[:, :3] * 255).round().astype(np.uint8)
    heat = Image.fromarray(level)  # putpalette turns L into P, levels as indices
    heat.putpalette(lut.ravel().tolist())
    return heat, top
