"""Reading image files into arrays, with reasons when they cannot be read.

JPEG, the common case, goes through libjpeg-turbo (simplejpeg): straight to the luma
plane when the comparison is grayscale, downscaled in the DCT domain for ``scale < 1``,
into reused buffers. Everything else goes through imageio v3 (Pillow plugin) with EXIF
orientation applied and 16-bit, palette and CMYK images converted explicitly.
"""

from __future__ import annotations

import io
import math
import os
import struct
import threading
import warnings

import numpy as np

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "DecodeError",
    "decoded_shape",
    "read_bytes",
    "downscale",
    "read_image",
    "scale_eighths",
]

#: Pillow's own decompression-bomb limit (``PIL.Image.MAX_IMAGE_PIXELS``).
DEFAULT_MAX_PIXELS = 89_478_485

_JPEG_MAGIC = b"\xff\xd8\xff"


class DecodeError(Exception):
    """A file could not be turned into an image.

    Attributes
    ----------
    kind : str
        One of ``missing``, ``permission``, ``not-a-file``, ``empty``, ``truncated``,
        ``corrupt``, ``not-an-image``, ``bomb``, ``unsupported``.
    reason : str
        A short human-readable explanation.
    """

    def __init__(self, kind: str, reason: str):
        super().__init__(f"{kind}: {reason}")
        self.kind = kind
        self.reason = reason


def read_bytes(path) -> bytes:
    """Read a whole file, turning OS errors into :class:`DecodeError`."""
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except FileNotFoundError:
        raise DecodeError("missing", "no such file") from None
    except PermissionError:
        raise DecodeError("permission", "permission denied") from None
    except IsADirectoryError:
        raise DecodeError("not-a-file", "is a directory") from None
    except OSError as exc:
        raise DecodeError("unreadable", exc.strerror or str(exc)) from None
    if not data:
        raise DecodeError("empty", "zero-byte file")
    return data


def scale_eighths(scale: float) -> int:
    """The DCT scale used for ``scale``: the largest n/8 that does not exceed it (1..8)."""
    if not 0 < scale <= 1:
        raise ValueError(f"scale must be in (0, 1], got {scale}")
    return max(1, min(8, math.floor(scale * 8 + 1e-9)))


def decoded_shape(height: int, width: int, scale: float) -> tuple[int, int]:
    """Shape of an image of ``height`` x ``width`` read at ``scale`` (libjpeg's rounding)."""
    n = scale_eighths(scale)
    return math.ceil(height * n / 8), math.ceil(width * n / 8)


# --------------------------------------------------------------------------- JPEG path

_thread_state = threading.local()


def _reused_buffer(shape, dtype=np.uint8):
    """A per-thread output buffer, so the allocator does not fault in pages per frame."""
    cache = getattr(_thread_state, "buffers", None)
    if cache is None:
        cache = _thread_state.buffers = {}
    key = (shape, np.dtype(dtype).str)
    buf = cache.get(key)
    if buf is None:
        if len(cache) > 8:  # a directory of many sizes: do not hoard
            cache.clear()
        buf = cache[key] = np.empty(shape, dtype)
    return buf


def _exif_orientation(data: bytes) -> int:
    """EXIF Orientation (1..8) from a JPEG's APP1 segment; 1 when absent or unreadable."""
    pos, end = 2, min(len(data), 1 << 17)
    while pos + 4 <= end and data[pos] == 0xFF:
        marker = data[pos + 1]
        if marker in (0xD9, 0xDA):  # end of image / start of scan: no more metadata
            break
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        segment = data[pos + 4 : pos + 2 + length]
        if marker == 0xE1 and segment[:6] == b"Exif\x00\x00":
            tiff = segment[6:]
            if len(tiff) < 8:
                return 1
            order = "<" if tiff[:2] == b"II" else ">"
            (ifd,) = struct.unpack(order + "I", tiff[4:8])
            if ifd + 2 > len(tiff):
                return 1
            (count,) = struct.unpack(order + "H", tiff[ifd : ifd + 2])
            for i in range(count):
                entry = tiff[ifd + 2 + 12 * i : ifd + 14 + 12 * i]
                if len(entry) < 12:
                    return 1
                tag, _typ, _n = struct.unpack(order + "HHI", entry[:8])
                if tag == 0x0112:
                    (value,) = struct.unpack(order + "H", entry[8:10])
                    return value if 1 <= value <= 8 else 1
            return 1
        pos += 2 + length
    return 1


def apply_orientation(image: np.ndarray, orientation: int) -> np.ndarray:
    """Rotate/flip ``image`` so that EXIF ``orientation`` becomes 1 (upright)."""
    ops = {
        1: lambda x: x,
        2: lambda x: x[:, ::-1],
        3: lambda x: x[::-1, ::-1],
        4: lambda x: x[::-1],
        5: lambda x: np.swapaxes(x, 0, 1),
        6: lambda x: np.rot90(x, -1),
        7: lambda x: np.rot90(x, 1)[::-1],
        8: lambda x: np.rot90(x, 1),
    }
    return np.ascontiguousarray(ops.get(orientation, ops[1])(image))


def _jpeg_error_kind(message: str) -> str:
    text = message.lower()
    if "premature end" in text or "truncat" in text or "corrupt" in text and "extraneous" not in text:
        return "truncated"
    return "corrupt"


def _read_jpeg(data: bytes, gray: str | None, scale: float, max_pixels: int, out=None):
    import simplejpeg

    try:
        height, width, colorspace, _sub = simplejpeg.decode_jpeg_header(data)
    except ValueError as exc:
        raise DecodeError("corrupt", f"bad JPEG header ({exc})") from None
    if height * width > max_pixels:
        raise DecodeError("bomb", f"{width}x{height} exceeds --max-pixels {max_pixels}")
    if colorspace.upper() == "CMYK":
        return None  # libjpeg-turbo cannot convert CMYK: the general reader does.
    n = scale_eighths(scale)
    out_h, out_w = math.ceil(height * n / 8), math.ceil(width * n / 8)
    to_luma = gray == "luma"
    channels = 1 if to_luma else 3
    if to_luma and out is not None and out.shape == (out_h, out_w) and out.dtype == np.uint8:
        buf = out  # decode straight into the caller's slot of a frame stack
    else:
        buf = _reused_buffer((out_h, out_w, channels))
    try:
        image = simplejpeg.decode_jpeg(
            data,
            colorspace="GRAY" if to_luma else "RGB",
            min_height=out_h,
            min_width=out_w,
            buffer=buf,
            strict=True,
        )
    except ValueError as exc:
        raise DecodeError(_jpeg_error_kind(str(exc)), f"JPEG decode failed ({exc})") from None
    if image.shape[:2] != (out_h, out_w):  # libjpeg chose another size: keep its answer
        image = np.array(image)
    image = image[..., 0] if to_luma else image
    return apply_orientation(image, _exif_orientation(data))


# --------------------------------------------------------------------- general reader


def _pillow_mode_conversion(mode: str) -> str | None:
    """The explicit conversion for Pillow modes NumPy code should not see raw."""
    if mode in ("P", "PA"):
        return "RGBA"  # palette (with possible transparency) -> colours, then alpha dropped
    if mode == "CMYK":
        return "RGB"
    if mode in ("YCbCr", "LAB", "HSV"):
        return "RGB"
    if mode == "1":
        return "L"
    return None


def _read_general(data: bytes, max_pixels: int) -> np.ndarray:
    import imageio.v3 as iio
    from PIL import Image, ImageOps

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow's DecompressionBombWarning: we check ourselves
            with Image.open(io.BytesIO(data)) as probe:
                width, height = probe.size
                mode = probe.mode
    except Image.DecompressionBombError as exc:
        raise DecodeError("bomb", str(exc)) from None
    except Exception as exc:
        raise DecodeError("not-an-image", f"not a recognised image format ({type(exc).__name__})") from None
    if width * height > max_pixels:
        raise DecodeError("bomb", f"{width}x{height} exceeds --max-pixels {max_pixels}")
    old_limit = Image.MAX_IMAGE_PIXELS
    try:
        Image.MAX_IMAGE_PIXELS = None  # our own limit above replaces Pillow's
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with iio.imopen(io.BytesIO(data), "r", plugin="pillow") as file:
                image = file.read(index=0, rotate=True, mode=_pillow_mode_conversion(mode), apply_gamma=False)
    except OSError as exc:
        text = str(exc).lower()
        kind = "truncated" if "truncat" in text or "premature" in text else "corrupt"
        raise DecodeError(kind, f"{text.splitlines()[0] if text else 'decode failed'}") from None
    except Exception as exc:  # Pillow raises many types for malformed data
        raise DecodeError("corrupt", f"decode failed ({type(exc).__name__}: {exc})") from None
    finally:
        Image.MAX_IMAGE_PIXELS = old_limit
    if image.dtype == np.int32 and mode.startswith("I"):
        image = np.clip(image, 0, 65535).astype(np.uint16)  # 16-bit PNG/TIFF read as int32
    if image.dtype == bool:
        image = image.astype(np.uint8) * 255
    if image.dtype not in (np.uint8, np.uint16) and not np.issubdtype(image.dtype, np.floating):
        raise DecodeError("unsupported", f"pixel type {image.dtype} (mode {mode})")
    return image


def read_image(
    path, *, gray: str | None = None, scale: float = 1.0, max_pixels: int = DEFAULT_MAX_PIXELS, out=None
):
    """Decode one image file.

    Parameters
    ----------
    path : str or path-like
    gray : {None, 'mean', 'luma'}
        With ``'luma'`` a JPEG is decoded straight to its Y plane (2-D uint8); otherwise
        the colour image is returned and grayscale conversion is left to the kernels.
    scale : float
        ``< 1`` decodes at reduced size: JPEG in the DCT domain at the largest n/8 not
        above ``scale``; other formats are area-downsampled to the same shape.
    max_pixels : int
        Images declaring more pixels are refused as ``bomb`` before decoding.
    out : numpy.ndarray, optional
        A C-contiguous (H, W) uint8 array (a slot of a frame stack) that a JPEG decoded
        to luma is written into when the shapes match; the returned array is then a
        view of it. Otherwise ``out`` is left untouched.

    Returns
    -------
    numpy.ndarray
        (H, W) or (H, W, C); uint8, uint16 or float. A JPEG result may be a reused
        per-thread buffer: copy it if it must outlive the next call in this thread.

    Raises
    ------
    DecodeError
        With ``kind`` and ``reason``; never another exception for bad file content.
    """
    data = read_bytes(path)
    if data.startswith(_JPEG_MAGIC):
        image = _read_jpeg(data, gray, scale, max_pixels, out)
        if image is not None:
            return image
    image = _read_general(data, max_pixels)
    return downscale(image, scale) if scale < 1 else image


def downscale(image: np.ndarray, scale: float) -> np.ndarray:
    """Area-downsample a full-size image to the shape a JPEG decodes to at ``scale``."""
    from framediff.kernels.shape import resize_area

    target = decoded_shape(image.shape[0], image.shape[1], scale)
    return image if image.shape[:2] == target else resize_area(image, target)


def file_size(path) -> int:
    """Size in bytes, or -1 when it cannot be read."""
    try:
        return os.stat(path).st_size
    except OSError:
        return -1
