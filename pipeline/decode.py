"""Reading image files into arrays, with reasons when they cannot be read.

JPEG, the common case, goes through libjpeg-turbo (simplejpeg): straight to the luma
plane when the comparison is grayscale, downscaled in the DCT domain for ``scale < 1``,
into reused buffers. Everything else goes through Pillow, with EXIF orientation applied
and 16-bit, palette and CMYK images converted explicitly.

Hostile files are expected: every failure is a :class:`DecodeError` with a kind, never
another exception, and the declared size is checked against ``max_pixels`` before any
pixel buffer is allocated (the JPEG header; Pillow's lazy open). Directories and devices
named like images are refused, not read, and a file larger than any image within
``max_pixels`` could be is refused before it is read.

A compressed PNG text chunk (zTXt, iTXt, iCCP) that inflates beyond Pillow's limit
(``PngImagePlugin.MAX_TEXT_CHUNK``, 1 MiB; 64 MiB for all text chunks together) is a
``bomb``: Pillow stops inflating at its limit, so nothing large is allocated, and the
file is refused rather than decoded without its metadata.
"""

from __future__ import annotations

import errno
import io
import math
import os
import stat
import struct
import threading
import warnings

import numpy as np

from framediff.kernels.shape import resize_area

from .errors import DecodeError
from .remote import is_url, read_url

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "DecodeError",
    "check_finite",
    "decode_bytes",
    "decoded_shape",
    "max_file_bytes",
    "read_bytes",
    "downscale",
    "read_image",
    "scale_eighths",
]

#: Pillow's own decompression-bomb limit (``PIL.Image.MAX_IMAGE_PIXELS``).
DEFAULT_MAX_PIXELS = 89_478_485

_JPEG_MAGIC = b"\xff\xd8\xff"


#: Bytes per pixel a file may hold beyond a fixed allowance: float32 RGBA uncompressed.
_BYTES_PER_PIXEL = 16
_FILE_ALLOWANCE = 64 << 20


def max_file_bytes(max_pixels: int) -> int:
    """The largest file worth reading for images of at most ``max_pixels`` pixels.

    Uncompressed float32 RGBA needs 16 bytes a pixel; 64 MiB more leaves room for
    metadata. A larger file (a sparse or endless one named like an image) is a ``bomb``.
    """
    return _FILE_ALLOWANCE + _BYTES_PER_PIXEL * max_pixels


def read_bytes(path, *, max_bytes: int | None = None) -> bytes:
    """Read a whole file, turning OS errors into :class:`DecodeError`.

    Directories, devices and sockets named like images are ``not-a-file`` and never
    read (``/dev/zero`` would never end). A named pipe is read like a file, so
    ``framediff compare <(command) b.png`` works; one nobody writes to blocks, which a
    scan bounds with ``--file-timeout``. More than ``max_bytes`` bytes is a ``bomb``:
    a regular file is refused before reading, a pipe once that much has arrived.
    """
    if is_url(path):
        return read_url(path, max_bytes)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    except FileNotFoundError:
        raise DecodeError("missing", "no such file") from None
    except IsADirectoryError:
        raise DecodeError("not-a-file", "is a directory") from None
    except PermissionError:
        if os.path.isdir(path):  # Windows refuses to open directories
            raise DecodeError("not-a-file", "is a directory") from None
        raise DecodeError("permission", "permission denied") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise DecodeError("not-a-file", "symbolic link loop") from None
        raise DecodeError("unreadable", exc.strerror or str(exc)) from None
    try:
        st = os.fstat(fd)
        regular = stat.S_ISREG(st.st_mode)
        if not regular and not stat.S_ISFIFO(st.st_mode):
            raise DecodeError("not-a-file", _file_type(st.st_mode))
        if regular and max_bytes is not None and st.st_size > max_bytes:
            raise DecodeError("bomb", f"file of {st.st_size} bytes is larger than an image within --max-pixels can be")
        with open(fd, "rb", closefd=False) as fh:
            data = fh.read() if regular else _read_stream(fh, max_bytes)
    except OSError as exc:
        raise DecodeError("unreadable", exc.strerror or str(exc)) from None
    except MemoryError:
        raise DecodeError("bomb", "out of memory reading the file") from None
    finally:
        os.close(fd)
    if not data:
        raise DecodeError("empty", "zero-byte file")
    return data


def _read_stream(fh, max_bytes: int | None) -> bytes:
    """A pipe's bytes, in blocks, refused as a ``bomb`` beyond ``max_bytes``."""
    blocks, total = [], 0
    while block := fh.read(1 << 20):
        total += len(block)
        if max_bytes is not None and total > max_bytes:
            raise DecodeError("bomb", f"more than {max_bytes} bytes arrived through the pipe")
        blocks.append(block)
    return b"".join(blocks)


def _file_type(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "is a directory"
    if stat.S_ISSOCK(mode):
        return "is a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "is a device"
    return "not a regular file"


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
        7: lambda x: np.rot90(x, -1)[::-1],  # transverse: the anti-diagonal mirror
        8: lambda x: np.rot90(x, 1),
    }
    return np.ascontiguousarray(ops.get(orientation, ops[1])(image))


def _jpeg_error_kind(message: str) -> str:
    text = message.lower()
    # libjpeg says "Premature end of JPEG file" when the bytes run out, and "Corrupt JPEG
    # data: ..." (bad Huffman code, premature end of data segment, extraneous bytes) when
    # they are all there but damaged.
    if "corrupt jpeg data" in text:
        return "corrupt"
    if "premature end" in text or "truncat" in text:
        return "truncated"
    if "data precision" in text:  # 12- or 16-bit samples: neither reader handles them
        return "unsupported"
    return "corrupt"


def _jpeg_header_kind(data: bytes) -> str:
    """Why a JPEG header could not be read: ``truncated`` when its segments, intact so
    far, run past the end of the data before the first scan; ``corrupt`` otherwise."""
    pos, end = 2, len(data)
    while pos + 4 <= end:
        if data[pos] != 0xFF:
            return "corrupt"
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        if length < 2:
            return "corrupt"
        if marker == 0xDA:  # a scan starts: was its own header all there?
            return "truncated" if pos + 2 + length > end else "corrupt"
        pos += 2 + length
    return "truncated"


def _read_jpeg(data: bytes, gray: str | None, scale: float, max_pixels: int, out=None):
    import simplejpeg

    try:
        height, width, colorspace, _sub = simplejpeg.decode_jpeg_header(data)
    except Exception as exc:  # simplejpeg raises ValueError; anything else is damage too
        raise DecodeError(_jpeg_header_kind(data), f"bad JPEG header ({exc})") from None
    if height * width > max_pixels:
        raise DecodeError("bomb", f"{width}x{height} exceeds --max-pixels {max_pixels}")
    if colorspace.upper() in ("CMYK", "YCCK"):
        return None  # libjpeg-turbo cannot convert these to RGB: Pillow does.
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
    except MemoryError:
        raise DecodeError("bomb", f"out of memory decoding {width}x{height}") from None
    except Exception as exc:  # ValueError with libjpeg's message
        raise DecodeError(_jpeg_error_kind(str(exc)), f"JPEG decode failed ({exc})") from None
    if image.shape[:2] != (out_h, out_w):  # libjpeg chose another size: keep its answer
        image = np.array(image)
    image = image[..., 0] if to_luma else image
    return apply_orientation(image, _exif_orientation(data))


# --------------------------------------------------------------------- general reader


#: Serialises the moments Pillow's global size limit is lifted (see _pillow_open).
def call_with_timeout(fn, timeout: float | None, reason: str):
    """``fn()``, given up after ``timeout`` seconds with a ``timeout`` DecodeError.

    A blocked ``read`` (a hung mount, a FIFO nobody writes) cannot be interrupted from
    Python: ``fn`` runs in a daemon thread, which is left behind (it does not keep the
    process alive) while the caller moves on. What ``fn`` raises is raised here.
    """
    if not timeout:
        return fn()
    box = {}

    def target():
        try:
            box["value"] = fn()
        except BaseException as exc:  # handed to the waiting thread as is
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True, name="framediff-read")
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise DecodeError("timeout", reason)
    if "error" in box:
        raise box["error"]
    return box["value"]


_PILLOW_LIMIT = threading.Lock()


def _pillow_mode_conversion(mode: str) -> str | None:
    """The explicit conversion for Pillow modes NumPy code should not see raw."""
    if mode in ("P", "PA", "RGBa"):
        return "RGBA"  # palette (with possible transparency) -> colours, then alpha dropped
    if mode == "La":
        return "LA"
    if mode in ("CMYK", "YCbCr", "LAB", "HSV", "RGBX"):
        return "RGB"
    if mode == "1":
        return "L"
    return None


def _pillow_pixels(im, luma: bool) -> np.ndarray:
    """A loaded Pillow image as an array; 8-bit colour straight to luma when ``luma``.

    Pillow's RGB -> L conversion uses libjpeg's fixed-point weights and rounding, the
    same integers as ``to_gray(..., 'luma')`` (a test checks every 24-bit colour), so
    converting before the array copy gives the same pixels and skips copying and
    converting three channels in NumPy (most of the cost of a PNG frame after inflating).
    """
    conversion = _pillow_mode_conversion(im.mode)
    if conversion:
        im = im.convert(conversion)
    if luma and im.mode in ("RGB", "RGBA"):  # the alpha is ignored, as drop_alpha drops it
        im = im.convert("L")
    return np.asarray(im)


_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _header_cut(data: bytes) -> bool:
    """True when ``data`` begins like a PNG, GIF or TIFF file and its header, intact as
    far as it goes, ends before the pixel data: a cut copy rather than another format."""
    n = len(data)
    if n >= 4 and _PNG_MAGIC.startswith(data[:8]):
        if n < 16:
            return b"IHDR".startswith(data[12:n]) if n > 12 else True
        if data[12:16] != b"IHDR":
            return False
        pos = 8
        while pos + 8 <= n:  # chunks: length, type, data, CRC; the pixels are in IDAT
            (length,) = struct.unpack(">I", data[pos : pos + 4])
            kind = data[pos + 4 : pos + 8]
            if not kind.isalpha():
                return False
            if kind == b"IDAT":
                return False
            pos += 12 + length
        return True
    if data[:6] in (b"GIF87a", b"GIF89a") or (4 <= n < 6 and b"GIF89a".startswith(data)):
        return _gif_header_cut(data)
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return _tiff_header_cut(data)
    return False


def _gif_header_cut(data: bytes) -> bool:
    """Screen descriptor, global palette, extension blocks, then an image descriptor."""
    n = len(data)
    if n < 13:
        return True
    pos = 13 + (3 << ((data[10] & 7) + 1) if data[10] & 0x80 else 0)
    while pos < n:
        if data[pos] == 0x2C:  # image descriptor (+ local palette, + LZW code size)
            if pos + 10 > n:
                return True
            flags = data[pos + 9]
            return pos + 11 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0) > n
        if data[pos] != 0x21:  # neither an extension nor an image: not a cut
            return False
        pos += 2
        while pos < n and data[pos]:  # sub-blocks until a zero length
            pos += 1 + data[pos]
        pos += 1
    return True


#: Bytes per value of each TIFF field type.
_TIFF_TYPE_SIZES = {
    1: 1,
    2: 1,
    3: 2,
    4: 4,
    5: 8,
    6: 1,
    7: 1,
    8: 2,
    9: 4,
    10: 8,
    11: 4,
    12: 8,
    13: 4,
    16: 8,
    17: 8,
    18: 8,
}


def _tiff_header_cut(data: bytes) -> bool:
    """The first directory, or a value it points to, lies beyond the end of the data."""
    n = len(data)
    if n < 8:
        return True
    order = "<" if data[:2] == b"II" else ">"
    (ifd,) = struct.unpack(order + "I", data[4:8])
    if ifd + 2 > n:
        return True
    (count,) = struct.unpack(order + "H", data[ifd : ifd + 2])
    if ifd + 2 + 12 * count > n:
        return True
    for k in range(count):
        entry = data[ifd + 2 + 12 * k : ifd + 14 + 12 * k]
        _tag, typ, number, offset = struct.unpack(order + "HHII", entry)
        size = _TIFF_TYPE_SIZES.get(typ, 0) * number
        if size > 4 and offset + size > n:
            return True
    return False


def _pillow_error(exc: BaseException, stage: str, data: bytes = b"") -> DecodeError:
    """The DecodeError for what Pillow raised while opening (``stage='open'``) or decoding."""
    from PIL import Image, UnidentifiedImageError

    text = str(exc)
    first = text.splitlines()[0] if text else type(exc).__name__
    lower = text.lower()
    if isinstance(exc, UnidentifiedImageError):
        if _header_cut(data):
            return DecodeError("truncated", "the file ends inside its header")
        return DecodeError("not-an-image", "not a recognised image format")
    if isinstance(exc, (Image.DecompressionBombError, Image.DecompressionBombWarning)):
        return DecodeError("bomb", first)
    if isinstance(exc, MemoryError):
        return DecodeError("bomb", "out of memory decoding it")
    if isinstance(exc, ValueError) and ("too large" in lower or "too much memory" in lower):
        # A compressed text chunk (zTXt/iTXt/iCCP) inflating beyond Pillow's limits.
        return DecodeError("bomb", f"metadata inflates beyond Pillow's limit ({first})")
    if isinstance(exc, EOFError) or "truncat" in lower or "premature" in lower:
        return DecodeError("truncated", first)
    if isinstance(exc, OSError):
        return DecodeError("corrupt", first)  # "broken data stream", "decoder error -2"
    return DecodeError("corrupt", f"{stage} failed ({type(exc).__name__}: {first})")


def _pillow_open(data: bytes):
    """``Image.open`` (the header only) without Pillow's own size check, which
    :func:`_read_general` replaces with ``max_pixels``.

    Pillow checks ``Image.MAX_IMAGE_PIXELS`` while opening (a warning above it, an error
    above twice it); the limit is lifted for the open only, under a lock, so threads
    that decode concurrently cannot restore each other's value. Warnings about odd
    metadata are not errors of the file: ignored (``catch_warnings`` is not thread-safe,
    hence inside the lock too).
    """
    from PIL import Image

    with _PILLOW_LIMIT, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        saved = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None
        try:
            return Image.open(io.BytesIO(data))
        finally:
            Image.MAX_IMAGE_PIXELS = saved


def _pillow_load(im, pixels: int) -> None:
    """Decode the pixels; Pillow's own limit is lifted (under the lock) only for images
    above it that ``max_pixels`` allows, so the common case runs in parallel."""
    from PIL import Image

    with _PILLOW_LIMIT:  # not while another thread has lifted it for a moment
        limit = Image.MAX_IMAGE_PIXELS
    if limit is None or pixels <= limit:
        im.load()
        return
    with _PILLOW_LIMIT, warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        Image.MAX_IMAGE_PIXELS = None
        try:
            im.load()
        finally:
            Image.MAX_IMAGE_PIXELS = limit


def _orientation(im) -> int:
    """EXIF orientation left to apply to a loaded image (Pillow applies a TIFF's itself).

    Only after loading: a PNG's ``getexif`` would otherwise decode the whole image to
    look for an eXIf chunk after the pixel data, before the size was checked.
    """
    try:
        with _PILLOW_LIMIT, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            value = im.getexif().get(0x0112, 1)
    except Exception:  # damaged EXIF: leave the picture as stored
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _read_general(data: bytes, max_pixels: int, *, luma: bool = False) -> np.ndarray:
    try:
        im = _pillow_open(data)
    except Exception as exc:
        raise _pillow_error(exc, "open", data) from None
    with im:
        width, height = im.size
        mode = im.mode
        bits = _declared_bits(im)
        if width * height > max_pixels:
            raise DecodeError("bomb", f"{width}x{height} exceeds --max-pixels {max_pixels}")
        if width < 1 or height < 1:
            raise DecodeError("corrupt", f"declares {width}x{height} pixels")
        try:
            _pillow_load(im, width * height)
            image = _pillow_pixels(im, luma)
            orientation = _orientation(im)
        except Exception as exc:  # Pillow raises many types for malformed data
            raise _pillow_error(exc, "decode") from None
    if image.dtype.kind == "u" and not image.dtype.isnative:
        image = image.astype(image.dtype.newbyteorder("="))  # I;16B
    if image.dtype == np.int32 and mode.startswith("I"):
        image = _integer_samples(image, bits)
    if image.dtype == bool:
        image = image.astype(np.uint8) * 255
    if image.dtype not in (np.uint8, np.uint16, np.int32) and not np.issubdtype(image.dtype, np.floating):
        raise DecodeError("unsupported", f"pixel type {image.dtype} (mode {mode})")
    if image.dtype.kind == "f":
        check_finite(image)
    return apply_orientation(image, orientation)


def _declared_bits(im) -> int:
    """Bits per sample a TIFF declares (0 when unknown or another format)."""
    try:
        value = im.tag_v2.get(258, 0) if hasattr(im, "tag_v2") else 0
        return int(value[0] if isinstance(value, tuple) else value)
    except (TypeError, ValueError, IndexError):
        return 0


def _integer_samples(image: np.ndarray, bits: int) -> np.ndarray:
    """Pillow's 32-bit integer mode ``I``, as the file stores it.

    Files that declare 32-bit samples stay int32, values untouched (their data range is
    the dtype's); other files Pillow widens to ``I`` (16-bit PGM, older PNG readers)
    hold 16-bit values and become uint16, like every other 16-bit image.
    """
    if bits != 32 and image.size and 0 <= int(image.min()) and int(image.max()) <= 65535:
        return image.astype(np.uint16)
    return image


def check_finite(image: np.ndarray) -> None:
    """Refuse float pixels that are NaN or infinite (kind ``non-finite``).

    Policy: a frame holding a non-finite value is not measured at all, in every metric
    and every mode, rather than measured with those pixels ignored: a NaN sensor value
    has no difference to anything, and ignoring it would make each metric's mean cover
    a different set of pixels. The row says how many pixels were at fault.

    Parameters
    ----------
    image : numpy.ndarray
        Float pixels (integer images cannot hold NaN and need no check).

    Raises
    ------
    DecodeError
        Kind ``non-finite``, with the count of NaN or infinite values.
    """
    bad = image.size - int(np.count_nonzero(np.isfinite(image)))
    if bad:
        raise DecodeError("non-finite", f"{bad} of {image.size} pixels are NaN or infinite")


def read_image(path, *, gray: str | None = None, scale: float = 1.0, max_pixels: int = DEFAULT_MAX_PIXELS, out=None):
    """Decode one image file.

    Parameters
    ----------
    path : str or path-like
    gray : {None, 'mean', 'luma'}
        With ``'luma'`` a JPEG is decoded straight to its Y plane (2-D uint8), and 8-bit
        colour of other formats at full scale is converted while decoding (the same
        values as :func:`framediff.kernels.to_gray` with ``'luma'``); otherwise the
        colour image is returned and grayscale conversion is left to the kernels.
    scale : float
        ``< 1`` decodes at reduced size: JPEG in the DCT domain at the largest n/8 not
        above ``scale``; other formats are area-downsampled to the same shape.
    max_pixels : int
        Images declaring more pixels are refused as ``bomb`` before decoding (and files
        larger than :func:`max_file_bytes` before reading).
    out : numpy.ndarray, optional
        A C-contiguous (H, W) uint8 array (a slot of a frame stack) that a JPEG decoded
        to luma is written into when the shapes match; the returned array is then a
        view of it. Otherwise ``out`` is left untouched.

    Returns
    -------
    numpy.ndarray
        (H, W) or (H, W, C); uint8, uint16, int32 (32-bit integer TIFF) or float
        (never NaN or infinite: such a file is a ``non-finite`` error). A JPEG result may be a reused
        per-thread buffer: copy it if it must outlive the next call in this thread.

    Raises
    ------
    DecodeError
        With ``kind`` and ``reason``; never another exception for bad file content.
    """
    data = read_bytes(path, max_bytes=max_file_bytes(max_pixels))
    if data.startswith(_JPEG_MAGIC):
        image = _read_jpeg(data, gray, scale, max_pixels, out)
        if image is not None:
            return image
    # Luma before downscaling would not equal luma after it: only at full scale.
    image = _read_general(data, max_pixels, luma=gray == "luma" and scale >= 1)
    return downscale(image, scale) if scale < 1 else image


def downscale(image: np.ndarray, scale: float) -> np.ndarray:
    """Area-downsample a full-size image to the shape a JPEG decodes to at ``scale``."""
    target = decoded_shape(image.shape[0], image.shape[1], scale)
    return image if image.shape[:2] == target else resize_area(image, target)


def decode_bytes(data: bytes, *, gray: str | None = None, scale: float = 1.0,
                 max_pixels: int = DEFAULT_MAX_PIXELS, min_side: int = 0):  # fmt: skip
    """Decode a file's bytes at ``scale``: ``(image, full height, full width)``.

    JPEG is decoded in the DCT domain at the scale (and straight to luma with
    ``gray='luma'``); other formats are decoded in full, then area-downsampled to the
    same shape, keeping their sample type. Heights and widths are after EXIF orientation.

    Parameters
    ----------
    data : bytes
    gray : {'luma'} or None
        JPEG only: decode to one luma channel.
    scale : float in (0, 1]
        Rounded down to n/8 as libjpeg does.
    max_pixels : int
        Larger images are refused (``bomb``).
    min_side : int
        Use a larger scale where ``scale`` would leave fewer pixels on the shorter side
        (a small image keeps enough detail for a thumbnail).

    Raises
    ------
    DecodeError
        The bytes are no image framediff can read, or too large.
    """
    if data.startswith(_JPEG_MAGIC):
        import simplejpeg

        try:
            h, w = simplejpeg.decode_jpeg_header(data)[:2]
        except Exception as exc:
            raise DecodeError(_jpeg_header_kind(data), f"bad JPEG header ({exc})") from None
        image = _read_jpeg(data, gray, _scale_for(h, w, scale, min_side), max_pixels)
        if image is not None:
            if _exif_orientation(data) in (5, 6, 7, 8):  # a quarter turn swaps the sides
                h, w = w, h
            return image, h, w
    image = _read_general(data, max_pixels)
    h, w = image.shape[:2]
    small = downscale(image, _scale_for(h, w, scale, min_side))
    if image.dtype.kind in "ui" and small.dtype != image.dtype:  # keep the samples' type (and range)
        small = np.rint(small).astype(image.dtype)
    return small, h, w


def _scale_for(height: int, width: int, scale: float, min_side: int) -> float:
    n = scale_eighths(scale)
    while n < 8 and math.ceil(min(height, width) * n / 8) < min_side:
        n += 1
    return n / 8


def file_size(path) -> int:
    """Size in bytes, or -1 when it cannot be read."""
    try:
        return os.stat(path).st_size
    except OSError:
        return -1
