"""A seeded corpus of hostile image files mixed with good frames, and what each should give.

:func:`make_corpus` writes, into one directory, over 200 files that cannot be compared
(truncated, bit-flipped, empty, mislabelled, decompression bombs written by hand,
special files) among about 35 good 64 x 96 frames in every format quirk a decoder must
handle (16-bit, palette with transparency, CMYK, EXIF-rotated, animated GIF, wrong
extension). It returns, per file name, the outcome a scan must report.

Damage at a random place does not always damage: a flipped byte in a quantisation table
or a cut after a PNG's last pixel leaves a readable image. Every damaged candidate is
therefore checked with the libraries themselves (libjpeg-turbo in strict mode for JPEG,
Pillow for the rest), independently of ``framediff.decode``, and redrawn until they
refuse it. Everything is derived from ``seed``; files are small, so writing the corpus
takes well under a second apart from the text-chunk bombs (65 MiB of zeros deflated).

Outcomes. A good frame has no ``kinds`` and a ``shape`` after orientation. A bad file
lists the error kinds accepted for it: exactly one where the outcome is determined
(``empty``, ``not-a-file``, ``bomb``, ...), several where the libraries decide (a cut
inside the pixel data is ``truncated`` or ``corrupt`` depending on where the decoder
notices; a flipped header byte may make the file unrecognisable, absurdly large or
unsupported). Decision on compressed PNG text chunks (zTXt, iTXt, iCCP) that inflate past
Pillow's limits: the file is an error of kind ``bomb`` (Pillow stops inflating at 1 MiB
per chunk, 64 MiB in all, so refusing costs no memory); it is not decoded without them.
"""

from __future__ import annotations

import io
import os
import struct
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from scan_fixtures import textured

__all__ = ["FRAME", "MAX_PIXELS", "Expected", "make_corpus"]

#: The ``max_pixels`` the corpus is designed for: bombs declare more, good frames far less.
MAX_PIXELS = 10_000_000
#: Shape (H, W) of the good frames (one deliberately different frame aside).
FRAME = (64, 96)
#: A frame of another shape, to make intended ``size-mismatch`` rows.
ODD_FRAME = (48, 80)

TRUNCATED = ("truncated", "corrupt")
HEADER_CUT = ("truncated",)
DAMAGED = ("truncated", "corrupt", "not-an-image", "bomb", "unsupported")
#: Frames between the last good frame of the main run and the frame after the long gap
#: (more than the scan's 64-frame look-back, so that frame has no reference).
LONG_GAP = 70

_JPEG_MAGIC = b"\xff\xd8\xff"


@dataclass(frozen=True)
class Expected:
    """What a scan must report for one file.

    Attributes
    ----------
    category : str
        How the file was made (``truncated-jpeg``, ``bomb-png-ztxt``, ``png16``...).
    kinds : tuple of str
        Accepted error kinds; empty for a good frame.
    shape : tuple or None
        Good frames: (H, W) after EXIF orientation.
    """

    category: str
    kinds: tuple = ()
    shape: tuple | None = None

    @property
    def good(self) -> bool:
        return not self.kinds


# ------------------------------------------------------------------ encoders


def _encode(array, fmt: str, *, mode: str | None = None, **params) -> bytes:
    image = Image.fromarray(array)
    if mode is not None:
        image = image.convert(mode)
    buf = io.BytesIO()
    image.save(buf, format=fmt, **params)
    return buf.getvalue()


def _orientation_exif(value: int) -> Image.Exif:
    exif = Image.Exif()
    exif[0x0112] = value
    return exif


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _png_insert(png: bytes, chunk: bytes, *, before: bytes) -> bytes:
    """Insert ``chunk`` before the first chunk of type ``before`` (its length field)."""
    at = png.index(before) - 4
    return png[:at] + chunk + png[at:]


def _deflated_zeros(n_bytes: int) -> bytes:
    """zlib stream of ``n_bytes`` zero bytes, built without holding them all."""
    comp = zlib.compressobj(9)
    block = bytes(1 << 20)
    parts = [comp.compress(block) for _ in range(n_bytes >> 20)]
    parts.append(comp.compress(bytes(n_bytes & ((1 << 20) - 1))))
    parts.append(comp.flush())
    return b"".join(parts)


def _png_declaring(width: int, height: int, idat: bytes = b"") -> bytes:
    """Signature, IHDR (8-bit gray) for ``width`` x ``height``, a tiny IDAT, IEND."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    body = _png_chunk(b"IDAT", idat or zlib.compress(bytes(64)))
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + body + _png_chunk(b"IEND", b"")


def _jpeg_declaring(jpeg: bytes, width: int, height: int) -> bytes:
    """A real small JPEG whose SOF marker is rewritten to declare ``width`` x ``height``."""
    data = bytearray(jpeg)
    for marker in (b"\xff\xc0", b"\xff\xc2", b"\xff\xc1"):
        at = data.find(marker)
        if at >= 0:
            data[at + 5 : at + 9] = struct.pack(">HH", height, width)
            return bytes(data)
    raise ValueError("no SOF marker")


def _tiff_declaring(width: int, height: int) -> bytes:
    """Little-endian baseline TIFF, 8-bit gray, one 16-byte strip, declaring the size."""
    entries = [
        (256, 4, 1, width),  # ImageWidth, LONG
        (257, 4, 1, height),  # ImageLength
        (258, 3, 1, 8),  # BitsPerSample, SHORT
        (259, 3, 1, 1),  # Compression: none
        (262, 3, 1, 1),  # Photometric: min-is-black
        (273, 4, 1, 0),  # StripOffsets (filled below)
        (277, 3, 1, 1),  # SamplesPerPixel
        (278, 4, 1, height),  # RowsPerStrip
        (279, 4, 1, 16),  # StripByteCounts
    ]
    ifd_size = 2 + 12 * len(entries) + 4
    data_offset = 8 + ifd_size
    ifd = struct.pack("<H", len(entries))
    for tag, typ, count, value in entries:
        value = data_offset if tag == 273 else value
        packed = struct.pack("<HH", value, 0) if typ == 3 else struct.pack("<I", value)
        ifd += struct.pack("<HHI", tag, typ, count) + packed
    ifd += struct.pack("<I", 0)
    return b"II*\x00" + struct.pack("<I", 8) + ifd + bytes(16)


def _gif_declaring(width: int, height: int) -> bytes:
    """GIF89a with a ``width`` x ``height`` logical screen holding one 1 x 1 image."""
    header = b"GIF89a" + struct.pack("<HHBBB", width, height, 0x80, 0, 0) + b"\x00\x00\x00\xff\xff\xff"
    image = b"\x2c" + struct.pack("<HHHHB", 0, 0, 1, 1, 0) + b"\x02\x02\x44\x01\x00"
    return header + image + b"\x3b"


def _bmp_declaring(width: int, height: int) -> bytes:
    """24-bit BMP header declaring ``width`` x ``height`` followed by a few pixel bytes."""
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, 0, 2835, 2835, 0, 0)
    pixels = bytes(64)
    return b"BM" + struct.pack("<IHHI", 14 + len(info) + len(pixels), 0, 0, 14 + len(info)) + info + pixels


# ------------------------------------------------------------------ the oracle


def _libraries_refuse(data: bytes) -> bool:
    """True when the decoding libraries themselves cannot read ``data`` as an image of at
    most :data:`MAX_PIXELS` pixels in any of the ways a scan may ask for it.

    JPEG: libjpeg-turbo (simplejpeg, strict: warnings are errors), to RGB and to luma;
    CMYK/YCCK JPEG and every other format: Pillow. Declared sizes are checked before
    decoding, so a flipped dimension byte never allocates much here either.
    """
    import simplejpeg

    if data.startswith(_JPEG_MAGIC):
        try:
            height, width, colorspace, _ = simplejpeg.decode_jpeg_header(data)
        except Exception:
            return True
        if height * width > MAX_PIXELS:
            return True
        if colorspace.upper() not in ("CMYK", "YCCK"):
            for mode in ("RGB", "GRAY"):
                try:
                    simplejpeg.decode_jpeg(data, colorspace=mode, strict=True)
                except Exception:
                    continue
                return False
            return True
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            with Image.open(io.BytesIO(data)) as im:
                if im.size[0] * im.size[1] > MAX_PIXELS or min(im.size) < 1:
                    return True
                im.load()
        except Exception:
            return True
    return False


def _data_span(data: bytes) -> tuple[int, int]:
    """(first, end) byte offsets of the compressed pixel data of a well-formed file."""
    if data.startswith(_JPEG_MAGIC):
        sos = data.index(b"\xff\xda")
        (length,) = struct.unpack(">H", data[sos + 2 : sos + 4])
        return sos + 2 + length, len(data) - 2  # up to the EOI marker
    if data.startswith(b"\x89PNG"):
        at = data.index(b"IDAT")
        (length,) = struct.unpack(">I", data[at - 4 : at])
        return at + 4, at + 4 + length
    with Image.open(io.BytesIO(data)) as im:
        if im.format == "TIFF":
            offsets, counts = im.tag_v2[273], im.tag_v2[279]
            return min(offsets), max(o + c for o, c in zip(offsets, counts))
        return im.tile[0][2], len(data)  # GIF, BMP: where the pixel data starts


def _damaged(data: bytes, rng, damage, tries: int = 400) -> bytes | None:
    """Apply ``damage(data, rng)`` until the libraries refuse the result (None: never)."""
    for _ in range(tries):
        candidate = damage(data, rng)
        if candidate != data and _libraries_refuse(candidate):
            return candidate
    return None


def _noise(rng, n: int) -> bytes:
    return rng.integers(0, 256, n, dtype=np.uint8).tobytes()


def _drawn(rng, make, accept, tries: int = 100) -> bytes:
    """``make()`` until ``accept`` holds for it."""
    for _ in range(tries):
        data = make()
        if accept(data):
            return data
    raise AssertionError("no acceptable candidate drawn")


def _unidentified(data: bytes) -> bool:
    """Pillow recognises no format in ``data`` (and it is not a JPEG)."""
    from PIL import UnidentifiedImageError

    if data.startswith(_JPEG_MAGIC):
        return False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            Image.open(io.BytesIO(data)).close()
        except UnidentifiedImageError:
            return True
        except Exception:
            return False
    return False


def _bad_jpeg_header(data: bytes) -> bool:
    import simplejpeg

    try:
        simplejpeg.decode_jpeg_header(data)
    except Exception:
        return True
    return False


def _cut_in_data(data, rng):
    first, end = _data_span(data)
    return data[: int(rng.integers(first, end))]


def _cut_in_header(data, rng):
    first, _ = _data_span(data)
    return data[: int(rng.integers(4, first))]


def _flip(data: bytes, rng, lo: int, hi: int, *, jpeg_scan: bool = False) -> bytes:
    out = bytearray(data)
    for _ in range(int(rng.integers(1, 4))):
        for _attempt in range(50):
            k = int(rng.integers(lo, hi))
            if jpeg_scan and (out[k] == 0xFF or out[k - 1] == 0xFF):
                continue  # keep markers and stuffed bytes: damage the entropy-coded bits only
            value = out[k] ^ int(rng.integers(1, 256))
            if jpeg_scan and value == 0xFF:
                continue
            out[k] = value
            break
    return bytes(out)


def _flip_in_data(data, rng):
    first, end = _data_span(data)
    return _flip(data, rng, first, end, jpeg_scan=data.startswith(_JPEG_MAGIC))


def _flip_in_header(data, rng):
    first, _ = _data_span(data)
    return _flip(data, rng, 0, first)


# ------------------------------------------------------------------ the corpus


def _good_frames(rng) -> list:
    """[(extension, bytes, Expected)] of readable frames."""
    h, w = FRAME
    seeds = iter(range(1000, 2000))

    def picture():
        return textured(h, w, seed=next(seeds))

    goods = [("jpeg", "jpg", _encode(picture(), "JPEG", quality=90), FRAME) for _ in range(12)]
    for _ in range(2):
        goods.append(("jpeg-progressive", "jpg", _encode(picture(), "JPEG", quality=85, progressive=True), FRAME))
    goods.append(("jpeg-gray", "jpeg", _encode(picture(), "JPEG", mode="L", quality=90), FRAME))
    goods += [("png", "png", _encode(picture(), "PNG"), FRAME) for _ in range(4)]
    goods.append(("tiff", "tif", _encode(picture(), "TIFF"), FRAME))
    goods.append(("tiff-deflate", "tiff", _encode(picture(), "TIFF", compression="tiff_adobe_deflate"), FRAME))
    goods.append(("bmp", "bmp", _encode(picture(), "BMP"), FRAME))
    oh, ow = ODD_FRAME  # the one frame of another size: it and the frame after it mismatch
    goods.append(("odd-size", "jpg", _encode(textured(oh, ow, seed=next(seeds)), "JPEG", quality=90), ODD_FRAME))
    goods.append(("png-named-jpg", "jpg", _encode(picture(), "PNG"), FRAME))  # wrong extension: still an image
    goods.append(("jpeg-named-png", "png", _encode(picture(), "JPEG", quality=90), FRAME))
    for _ in range(2):  # after the long gap, compared only with each other (see make_corpus)
        deep = (np.add.outer(np.arange(h) * 700, np.arange(w) * 300) + rng.integers(0, 5000, FRAME)).astype(np.uint16)
        goods.append(("png16", "png", _encode(deep, "PNG"), FRAME))
    goods.append(("palette-transparency", "png", _palette_png(), FRAME))
    goods.append(("cmyk-jpeg", "jpg", _encode(picture(), "JPEG", mode="CMYK", quality=95), FRAME))
    # EXIF-rotated copies: stored turned a quarter counter-clockwise, Orientation=6 says
    # "rotate clockwise to view". Lossless formats, so the upright view is exact.
    for fmt, ext in (("PNG", "png"), ("TIFF", "tif")):
        upright = picture()
        stored = np.ascontiguousarray(np.rot90(upright, 1))
        goods.append((f"upright-{ext}", ext, _encode(upright, fmt), FRAME))
        goods.append((f"exif-rotated-{ext}", ext, _encode(stored, fmt, exif=_orientation_exif(6)), FRAME))
    stored = np.ascontiguousarray(np.rot90(picture(), 1))
    goods.append(("exif-rotated-jpeg", "jpg", _encode(stored, "JPEG", quality=90, exif=_orientation_exif(6)), FRAME))
    first = picture()  # later frames clearly differ: the reader must return the first
    frames = [first, 255 - first, np.ascontiguousarray(first[::-1])]
    goods.append(("gif-animated", "gif", _animated_gif(frames), FRAME))
    small_text = _png_chunk(b"zTXt", b"Comment\x00\x00" + zlib.compress(b"a harmless comment " * 50))
    goods.append(("png-small-ztxt", "png", _png_insert(_encode(picture(), "PNG"), small_text, before=b"IDAT"), FRAME))
    goods.append(("webp-lossless", "webp", _encode(picture(), "WEBP", lossless=True), FRAME))
    return [(ext, data, Expected(category, (), shape)) for category, ext, data, shape in goods]


def _palette_png() -> bytes:
    h, w = FRAME
    index = (np.add.outer(np.arange(h) // 16, np.arange(w) // 24) % 4).astype(np.uint8)
    image = Image.fromarray(index, "P")
    image.putpalette([10, 20, 30, 255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * (252 * 3))
    buf = io.BytesIO()
    image.save(buf, format="PNG", transparency=0)  # index 0 fully transparent
    return buf.getvalue()


def _animated_gif(frames) -> bytes:
    images = [Image.fromarray(f).quantize(64) for f in frames]
    buf = io.BytesIO()
    images[0].save(buf, format="GIF", save_all=True, append_images=images[1:], duration=100, loop=0)
    return buf.getvalue()


def _bad_files(rng, goods) -> list:
    """[(extension, bytes or a special-file marker, Expected)] of files a scan must refuse."""

    def sources(category):
        return [data for _ext, data, outcome in goods if outcome.category == category]

    jpeg, progressive, png = sources("jpeg"), sources("jpeg-progressive"), sources("png")
    tiff_raw, tiff_deflate = sources("tiff"), sources("tiff-deflate")
    gif, bmp = sources("gif-animated"), sources("bmp")
    bad = []

    def damaged(category, ext, sources, count, damage, kinds):
        for k in range(count):
            data = _damaged(sources[k % len(sources)], rng, damage)
            if data is not None:
                bad.append((category, ext, data, kinds))

    damaged("truncated-jpeg", "jpg", jpeg, 12, _cut_in_data, TRUNCATED)
    damaged("truncated-jpeg-progressive", "jpg", progressive, 6, _cut_in_data, TRUNCATED)
    damaged("truncated-png", "png", png, 16, _cut_in_data, TRUNCATED)
    damaged("truncated-tiff", "tif", tiff_raw, 6, _cut_in_data, TRUNCATED)
    damaged("truncated-tiff-deflate", "tif", tiff_deflate, 6, _cut_in_data, TRUNCATED)
    damaged("truncated-gif", "gif", gif, 6, _cut_in_data, TRUNCATED)
    damaged("truncated-bmp", "bmp", bmp, 4, _cut_in_data, TRUNCATED)
    damaged("header-cut-jpeg", "jpg", jpeg, 6, _cut_in_header, HEADER_CUT)
    damaged("header-cut-png", "png", png, 5, _cut_in_header, HEADER_CUT)
    damaged("header-cut-tiff", "tif", tiff_raw, 4, _cut_in_header, HEADER_CUT)
    damaged("header-cut-gif", "gif", gif, 3, _cut_in_header, HEADER_CUT)
    damaged("flipped-jpeg-scan", "jpg", jpeg, 18, _flip_in_data, ("corrupt",))
    damaged("flipped-jpeg-progressive-scan", "jpg", progressive, 6, _flip_in_data, ("corrupt",))
    damaged("flipped-png-idat", "png", png, 12, _flip_in_data, TRUNCATED)
    damaged("flipped-tiff-deflate", "tif", tiff_deflate, 6, _flip_in_data, TRUNCATED)
    damaged("flipped-gif-lzw", "gif", gif, 3, _flip_in_data, TRUNCATED)
    damaged("flipped-jpeg-header", "jpg", jpeg, 12, _flip_in_header, DAMAGED)
    damaged("flipped-png-header", "png", png, 10, _flip_in_header, DAMAGED)
    damaged("flipped-tiff-header", "tif", tiff_raw, 6, _flip_in_header, DAMAGED)
    damaged("flipped-gif-header", "gif", gif, 4, _flip_in_header, DAMAGED)

    for ext in ("jpg", "jpeg", "png", "tif", "tiff", "gif", "bmp", "webp", "jpg", "png"):
        bad.append(("zero-byte", ext, b"", ("empty",)))
    for ext in ("png", "jpg", "tif", "gif", "bmp", "jpeg"):
        bad.append(("text-named-image", ext, b"this is not a picture\n" * 3, ("not-an-image",)))
    bad.append(("html-named-png", "png", b"<html><img src=x onerror=alert(1)></html>\n", ("not-an-image",)))
    for k in range(4):
        noise = _drawn(rng, lambda: _noise(rng, 300 + 50 * k), _unidentified)
        bad.append(("random-bytes", "jpg", noise, ("not-an-image",)))
    for _ in range(3):
        garbage = _drawn(rng, lambda: _JPEG_MAGIC + _noise(rng, 200), _bad_jpeg_header)
        bad.append(("jpeg-magic-garbage", "jpg", garbage, TRUNCATED))
        garbage = _drawn(rng, lambda: b"\x89PNG\r\n\x1a\n" + _noise(rng, 300), _unidentified)
        bad.append(("png-magic-garbage", "png", garbage, ("not-an-image",)))
    bad.append(("pickle-named-jpg", "jpg", _poison_pickle(), ("not-an-image",)))
    for k in range(4):
        bad.append(("directory-named-image", ("jpg", "png", "tif", "jpeg")[k], _DIRECTORY, ("not-a-file",)))
    if os.name == "posix":  # symbolic links and sparse files without privileges or cost
        bad.append(("dangling-symlink", "jpg", _DANGLING, ("missing",)))
        bad.append(("symlink-loop", "png", _LOOP, ("not-a-file",)))
        if os.path.exists("/dev/zero"):
            bad.append(("symlink-to-dev-zero", "jpg", _DEV_ZERO, ("not-a-file",)))
        bad.append(("sparse-huge-file", "tif", _SPARSE, ("bomb",)))

    # Declared sizes, written by hand: above MAX_PIXELS only (16 MP), above Pillow's
    # warning limit (100 MP) and above its error limit (3.6 GP).
    for w, h in ((4000, 4000), (10000, 10000), (60000, 60000)):
        bad.append((f"bomb-png-{w}", "png", _png_declaring(w, h), ("bomb",)))
        bad.append((f"bomb-jpeg-{w}", "jpg", _jpeg_declaring(jpeg[0], w, h), ("bomb",)))
    bad.append(("bomb-jpeg-progressive", "jpg", _jpeg_declaring(progressive[0], 60000, 60000), ("bomb",)))
    for w, h in ((10000, 10000), (60000, 60000)):
        bad.append((f"bomb-tiff-{w}", "tif", _tiff_declaring(w, h), ("bomb",)))
        bad.append((f"bomb-gif-{w}", "gif", _gif_declaring(w, h), ("bomb",)))
    bad.append(("bomb-bmp", "bmp", _bmp_declaring(60000, 60000), ("bomb",)))
    bad.append(("bomb-ppm", "ppm", b"P6\n60000 60000\n255\n" + bytes(64), ("bomb",)))
    # Within the limit but with almost no data: allocated, then refused as damaged.
    bad.append(("large-declared-jpeg", "jpg", _jpeg_declaring(jpeg[1], 3000, 3000), TRUNCATED))
    bad.append(("large-declared-png", "png", _png_declaring(3000, 3000), TRUNCATED))
    # Compressed metadata inflating far beyond Pillow's text limits.
    zeros = _deflated_zeros(65 << 20)
    base = png[0]
    ztxt = _png_chunk(b"zTXt", b"Comment\x00\x00" + zeros)  # keyword, method 0, deflated text
    bad.append(("bomb-png-ztxt", "png", _png_insert(base, ztxt, before=b"IDAT"), ("bomb",)))
    itxt = b"Comment\x00\x01\x00\x00\x00" + zeros  # compressed iTXt, after the pixel data
    bad.append(("bomb-png-itxt", "png", _png_insert(base, _png_chunk(b"iTXt", itxt), before=b"IEND"), ("bomb",)))
    iccp = _png_chunk(b"iCCP", b"icc\x00\x00" + zeros)  # a colour profile, just as deflated
    bad.append(("bomb-png-iccp", "png", _png_insert(base, iccp, before=b"IDAT"), ("bomb",)))
    megabyte = _deflated_zeros(1 << 20)  # each chunk at Pillow's per-chunk limit, 65 of them
    many = b"".join(_png_chunk(b"zTXt", b"k%d\x00\x00" % i + megabyte) for i in range(65))
    bad.append(("bomb-png-text-memory", "png", _png_insert(base, many, before=b"IDAT"), ("bomb",)))
    return [(ext, data, Expected(category, kinds)) for category, ext, data, kinds in bad]


# Special files, made by _write. (No FIFO: reading one blocks until a writer comes, which
# a scan bounds with --file-timeout; tests/test_faults.py covers that.)
_DIRECTORY, _DANGLING, _LOOP, _DEV_ZERO, _SPARSE = (object() for _ in range(5))


def _poison_pickle() -> bytes:
    """A pickle that would create a file named ``PWNED`` in the working directory if it
    were ever unpickled (protocol 0 opcodes: builtins.open('PWNED', 'w'))."""
    return b"cbuiltins\nopen\n(VPWNED\nVw\ntR."


def _write(path: Path, content) -> None:
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is _DIRECTORY:
        path.mkdir()
        (path / "inside.jpg").write_bytes(b"")  # a scan that does not recurse never sees it
    elif content is _DANGLING:
        os.symlink(path.with_name("does-not-exist.jpg"), path)
    elif content is _LOOP:
        os.symlink(path.name, path)
    elif content is _DEV_ZERO:
        os.symlink("/dev/zero", path)
    elif content is _SPARSE:
        from framediff.decode import max_file_bytes

        with open(path, "wb") as fh:
            fh.truncate(max_file_bytes(MAX_PIXELS) + 1)  # sparse: no disk space used
    else:
        raise TypeError(content)


def make_corpus(directory, *, seed: int = 0) -> dict:
    """Write the corpus into ``directory`` and return ``{file name: Expected}`` in scan order.

    Layout: a good frame first, then good frames with a few bad files between each,
    then :data:`LONG_GAP` bad files in a row and the two 16-bit frames (the first of
    them has no readable frame within the scan's look-back; the second is compared
    with it, so 8-bit and 16-bit frames never meet). Names are ``NNN_category.ext``,
    so natural order is the layout order.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    goods = _good_frames(rng)
    bad = _bad_files(rng, goods)
    bad = [bad[i] for i in rng.permutation(len(bad))]
    # 16-bit frames go last, after the gap: the first has no reference, the second is
    # compared with it. (A 16-bit frame next to an 8-bit one is a separate test.)
    last_goods = [g for g in goods if g[2].category == "png16"]
    main_goods = [g for g in goods if g[2].category != "png16"]
    tail, middle = bad[:LONG_GAP], bad[LONG_GAP:]
    layout = []
    per_gap = len(middle) / len(main_goods)
    for k, good in enumerate(main_goods):
        layout.append(good)
        layout.extend(middle[round(k * per_gap) : round((k + 1) * per_gap)])
    layout.extend(tail)
    layout.extend(last_goods)

    expected = {}
    for index, (ext, content, outcome) in enumerate(layout):
        name = f"{index:03d}_{outcome.category}.{ext}"
        _write(directory / name, content)
        expected[name] = outcome
    return expected
