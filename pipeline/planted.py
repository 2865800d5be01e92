"""Planted near-duplicate corpora, from real photographs, with the truth known.

Each original (a photograph from ``skimage.data``, or a window of one) is written once,
then again as edited copies: other formats and qualities, a smaller size, a crop of a
few per cent, brightness up and down by 10 %, a small rotation. Every file of one
original carries its group number, so a duplicate finder can be scored against it.
"""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path

import numpy as np

__all__ = ["EDITS", "PHOTOS", "Planted", "edited", "make_planted", "photo", "windows"]

#: Distinct photographs of ``skimage.data`` bundled with scikit-image (``cat`` is
#: ``chelsea`` again, so it is left out).
PHOTOS = (
    "astronaut", "brick", "camera", "chelsea", "clock", "coffee", "coins", "colorwheel", "grass",
    "gravel", "horse", "hubble_deep_field", "immunohistochemistry", "logo", "moon", "page", "text",
    "retina", "rocket", "cell",
)  # fmt: skip

#: Edited copies written for each original: name -> (what is done, file extension).
EDITS = {
    "png": ("lossless PNG", "png"),
    "exact-copy": ("byte-identical copy of the original (JPEG quality 90)", "jpg"),
    "jpeg-q30": ("JPEG quality 30", "jpg"),
    "webp-q75": ("WebP quality 75", "webp"),
    "tiff": ("TIFF", "tif"),
    "bmp": ("BMP", "bmp"),
    "gif": ("GIF (256-colour palette)", "gif"),
    "half-size": ("resized to 50 %", "jpg"),
    "crop-3pct": ("3 % cropped off each side", "jpg"),
    "brighter-10pct": ("brightness +10 %", "jpg"),
    "darker-10pct": ("brightness -10 %", "jpg"),
    "rotate-2deg": ("rotated by 2 degrees", "jpg"),
}


def photo(name: str) -> np.ndarray:
    """A ``skimage.data`` photograph as an (H, W, 3) uint8 RGB array."""
    from skimage import data

    image = getattr(data, name)()
    if image.dtype == bool:  # the horse silhouette
        image = image.astype(np.uint8) * 255
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    return np.ascontiguousarray(image[..., :3]).astype(np.uint8)


def windows(n: int, size=(72, 96)) -> list:
    """``n`` distinct small pictures: windows of the :data:`PHOTOS`, each photograph in
    turn, the window moved along it (quick to write and to compare by the thousand)."""
    h, w = size
    out, cache = [], {}
    for k in range(n):
        name = PHOTOS[k % len(PHOTOS)]
        image = cache.get(name)
        if image is None:
            image = cache[name] = photo(name)
        step = k // len(PHOTOS)
        y, x = (37 * step) % (image.shape[0] - h), (53 * step) % (image.shape[1] - w)
        out.append(np.ascontiguousarray(image[y : y + h, x : x + w]))
    return out


def edited(rgb: np.ndarray, edit: str) -> bytes:
    """The encoded bytes of one :data:`EDITS` copy of ``rgb``.

    Raises
    ------
    ValueError
        ``edit`` is not one of :data:`EDITS`.
    """
    from PIL import Image

    if edit not in EDITS:
        raise ValueError(f"unknown edit {edit!r}; expected one of {', '.join(EDITS)}")
    im = Image.fromarray(rgb)
    h, w = rgb.shape[:2]
    if edit == "half-size":
        im = im.resize((max(1, w // 2), max(1, h // 2)), Image.LANCZOS)
    elif edit == "crop-3pct":
        dy, dx = round(0.03 * h), round(0.03 * w)
        im = im.crop((dx, dy, w - dx, h - dy))
    elif edit in ("brighter-10pct", "darker-10pct"):
        gain = 1.1 if edit.startswith("brighter") else 0.9
        im = Image.fromarray(np.clip(rgb * gain, 0, 255).round().astype(np.uint8))
    elif edit == "rotate-2deg":
        im = im.rotate(2, resample=Image.BICUBIC)
    elif edit == "gif":
        im = im.quantize(256)
    out = io.BytesIO()
    fmt = {"jpg": "JPEG", "png": "PNG", "webp": "WEBP", "tif": "TIFF", "bmp": "BMP", "gif": "GIF"}[EDITS[edit][1]]
    quality = {"jpeg-q30": 30, "webp-q75": 75}.get(edit, 90)
    im.save(out, fmt, **({"quality": quality} if fmt in ("JPEG", "WEBP") else {}))
    return out.getvalue()


@dataclasses.dataclass
class Planted:
    """A written corpus: ``paths[k]`` is a copy of original ``group[k]`` (``edit[k]``)."""

    paths: list
    group: np.ndarray
    edit: list

    def true_pairs(self) -> set:
        """Every pair ``(a, b)``, ``a < b``, of files made from the same original."""
        return {(a, b) for a in range(len(self.paths)) for b in range(a + 1, len(self.paths))
                if self.group[a] == self.group[b]}  # fmt: skip


def make_planted(directory, originals, *, edits=tuple(EDITS)) -> Planted:
    """Write each original as ``gNNN-original.jpg`` plus one file per edit.

    Parameters
    ----------
    directory : path
        Created if needed.
    originals : sequence of (H, W, 3) uint8 arrays
        Distinct pictures.
    edits : sequence of str
        Names from :data:`EDITS`.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths, group, names = [], [], []
    for g, rgb in enumerate(originals):
        for edit in ("original", *edits):
            data = edited(rgb, "exact-copy" if edit == "original" else edit)
            ext = "jpg" if edit == "original" else EDITS[edit][1]
            path = directory / f"g{g:03d}-{edit}.{ext}"
            path.write_bytes(data)
            paths.append(str(path))
            group.append(g)
            names.append(edit)
    return Planted(paths, np.array(group), names)
