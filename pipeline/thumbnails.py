"""Signatures of image files: content hash, full size and a small thumbnail's descriptors.

Each file is read once. Its bytes are hashed (BLAKE3, 128 bits) before anything is
decoded, so a byte-identical copy of a file already seen, in this batch or in a
persisted index, takes the signature of its twin without being decoded. Otherwise the
image is decoded small: a JPEG at 1/8 scale in the DCT domain, straight to its luma
plane; other formats at full size, then area-downsampled. The thumbnail's descriptors
come from :mod:`framediff.kernels.signatures`.

A file that cannot be read becomes a row with ``status`` (the decode error's kind) and
``error``; it never raises.
"""

from __future__ import annotations

import dataclasses

import blake3
import numpy as np

from framediff.kernels import to_numpy
from framediff.kernels.signatures import block_means, dct_hash, level_means, thumbnail

from .decode import DEFAULT_MAX_PIXELS, DecodeError, decode_bytes, max_file_bytes, read_bytes

__all__ = ["SignatureParams", "Signatures", "content_hash", "signatures_of", "signatures_of_frames"]

#: Thumbnails are decoded at this scale where the format allows (JPEG DCT scaling).
THUMB_SCALE = 1 / 8


@dataclasses.dataclass(frozen=True)
class SignatureParams:
    """What a signature means; persisted with an index, which refuses other values.

    Attributes
    ----------
    side : int
        Thumbnail side in pixels.
    grid : int
        Blocks per side of the block-mean vector (``grid * grid`` dimensions).
    hash_bits : {64, 256}
        Length of the DCT hash.
    min_contrast : float
        RMS contrast of the block means, as a fraction of the data range, below which a
        block-mean vector is shortened instead of normalised
        (:func:`~framediff.kernels.signatures.block_means`). 0 (the default): the
        block levels find near-flat look-alikes, and a floor would only crowd every
        low-contrast image into one neighbourhood (at 20,000 planted images it made
        six times the candidates for lower recall).
    level_clip : float
        Fraction of each thumbnail's darkest and brightest pixels clipped before its
        level vector is taken (:func:`~framediff.kernels.signatures.level_means`).
    """

    side: int = 32
    grid: int = 8
    hash_bits: int = 64
    min_contrast: float = 0.0
    level_clip: float = 0.05

    @property
    def dim(self) -> int:
        """Length of the block-mean vector."""
        return self.grid * self.grid


@dataclasses.dataclass
class Signatures:
    """Column arrays of one batch of signatures, row ``k`` describing ``paths[k]``.

    Attributes
    ----------
    paths : list of str
    content : numpy.ndarray of ``V16``
        :func:`content_hash` of the file bytes; empty for a file that could not be read.
    file_size : numpy.ndarray of int64
        Bytes, or -1.
    height, width : numpy.ndarray of int64
        Full decoded size (after EXIF orientation), 0 when not decoded.
    status : numpy.ndarray of str
        ``ok`` or the decode error's kind.
    error : list of str
        Empty or the reason.
    decoded : numpy.ndarray of bool
        Whether this row was decoded, False when it was copied from a byte-identical file.
    vectors : numpy.ndarray of float32, shape (N, grid * grid)
        Unit block-mean vectors (:func:`~framediff.kernels.signatures.block_means`).
    levels : numpy.ndarray of float32, shape (N, grid * grid)
        Clipped block levels in units of the data range (:func:`~framediff.kernels.signatures.level_means`).
    codes : numpy.ndarray of uint8, shape (N, hash_bits // 8)
    """

    paths: list
    content: np.ndarray
    file_size: np.ndarray
    height: np.ndarray
    width: np.ndarray
    status: np.ndarray
    error: list
    decoded: np.ndarray
    vectors: np.ndarray
    levels: np.ndarray
    codes: np.ndarray

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def ok(self) -> np.ndarray:
        """Mask of rows with a usable signature."""
        return self.status == "ok"

    @classmethod
    def empty(cls, params: SignatureParams) -> Signatures:
        """A batch of no rows with the columns ``params`` gives."""
        return cls(
            [], np.zeros(0, "V16"), np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64),
            np.zeros(0, "U16"), [], np.zeros(0, bool), np.zeros((0, params.dim), np.float32),
            np.zeros((0, params.dim), np.float32), np.zeros((0, params.hash_bits // 8), np.uint8),
        )  # fmt: skip

    @classmethod
    def concat(cls, parts) -> Signatures:
        """Rows of ``parts`` one after the other (at least one part)."""
        parts = list(parts)
        cat = np.concatenate
        return cls(
            [p for s in parts for p in s.paths], cat([s.content for s in parts]),
            cat([s.file_size for s in parts]), cat([s.height for s in parts]), cat([s.width for s in parts]),
            cat([s.status.astype("U16") for s in parts]), [e for s in parts for e in s.error],
            cat([s.decoded for s in parts]), cat([s.vectors for s in parts]), cat([s.levels for s in parts]),
            cat([s.codes for s in parts]),
        )  # fmt: skip


def content_hash(data: bytes) -> bytes:
    """The 16-byte BLAKE3 digest of a file's bytes.

    BLAKE3 because the hash is a share of a signature pass that should cost little
    more than the 1/8-scale decode: 0.10 ms for a 300 KB JPEG here, against 0.21 for
    SHA-256 and 0.44 for BLAKE2b, and as hard to forge two files into one digest.
    """
    return blake3.blake3(data).digest(length=16)


def _decode_small(data: bytes, max_pixels: int, side: int):
    """(thumbnail source image, full height, full width) from a file's bytes.

    1/8 scale where that leaves at least ``side`` pixels on the shorter side; a small
    image is decoded larger, so its thumbnail is not blown up from a few pixels.
    """
    return decode_bytes(data, gray="luma", scale=THUMB_SCALE, max_pixels=max_pixels, min_side=side)


def signatures_of(paths, *, params: SignatureParams = SignatureParams(), known=None,
                  max_pixels: int = DEFAULT_MAX_PIXELS, xp=np) -> Signatures:  # fmt: skip
    """Signatures of image files, decoding each distinct content once.

    Parameters
    ----------
    paths : sequence of str
    params : SignatureParams
    known : callable, optional
        ``known(content_digest) -> (height, width, vector, levels, code) or None``: signatures
        already computed elsewhere (a persisted index), reused for byte-identical files.
    max_pixels : int
        As in :func:`framediff.decode.read_image`.
    xp : module
        Array module the descriptors are computed with (results come back as NumPy).

    Returns
    -------
    Signatures
        One row per path, in order; unreadable files have ``status`` != ``'ok'``.
    """
    n = len(paths)
    out = _blank(paths, params)
    seen = {}  # digest -> row of this batch that holds its signature
    thumbs, thumb_rows = [], []
    for k, path in enumerate(out.paths):
        try:
            data = read_bytes(path, max_bytes=max_file_bytes(max_pixels))
        except DecodeError as exc:
            out.status[k], out.error[k] = exc.kind, exc.reason
            continue
        digest = content_hash(data)
        out.content[k], out.file_size[k] = digest, len(data)
        if digest in seen:
            continue  # filled from its twin below, once the twin's descriptors exist
        prior = known(digest) if known is not None else None
        if prior is not None:
            out.height[k], out.width[k], out.vectors[k], out.levels[k], out.codes[k] = prior
            seen[digest] = k
            continue
        try:
            image, out.height[k], out.width[k] = _decode_small(data, max_pixels, params.side)
        except DecodeError as exc:
            out.status[k], out.error[k] = exc.kind, exc.reason
            seen[digest] = k
            continue
        out.decoded[k] = True
        seen[digest] = k
        thumbs.append(_thumbnail(image, params))
        thumb_rows.append(k)
    _describe(out, thumbs, thumb_rows, params, xp)
    for k in range(n):  # byte-identical copies take their twin's row
        if out.file_size[k] >= 0:
            twin = seen[out.content[k].tobytes()]
            if twin != k:
                out.height[k], out.width[k] = out.height[twin], out.width[twin]
                out.vectors[k], out.levels[k], out.codes[k] = out.vectors[twin], out.levels[twin], out.codes[twin]
                out.status[k], out.error[k] = out.status[twin], out.error[twin]
    return out


def signatures_of_frames(keys, frames, *, params: SignatureParams = SignatureParams(), xp=np) -> Signatures:
    """Signatures of decoded frames (video frames): no file bytes, so no exact twins.

    Parameters
    ----------
    keys : sequence of str
        What each row is called in the index (``/abs/clip.mp4#frame=12``).
    frames : sequence of (image, height, width) or DecodeError
        The decoded gray frame (any size) with the frame's full size, or why it has none.
    params : SignatureParams
    xp : module
        Array module the descriptors are computed with (results come back as NumPy).

    Returns
    -------
    Signatures
        One row per key; ``file_size`` -1, so a frame is only ever a near-duplicate,
        confirmed by its pixels.
    """
    out = _blank(keys, params)
    thumbs, rows = [], []
    for k, frame in enumerate(frames):
        if isinstance(frame, DecodeError):
            out.status[k], out.error[k] = frame.kind, frame.reason
            continue
        image, out.height[k], out.width[k] = frame
        out.decoded[k] = True
        thumbs.append(_thumbnail(image, params))
        rows.append(k)
    _describe(out, thumbs, rows, params, xp)
    return out


def _thumbnail(image: np.ndarray, params: SignatureParams) -> np.ndarray:
    """The thumbnail of one decoded image, on the host, in units of the data range (so
    the contrast floor and the block levels mean the same for every bit depth).

    Made next to the decoder whatever the device: images of every size would each cost a
    copy and a few kernel launches on a GPU for 32 x 32 numbers, and the descriptors of
    the GPU path then start from the very thumbnails of the NumPy path.
    """
    return thumbnail(image, side=params.side) / _data_range(image.dtype)


def _describe(out: Signatures, thumbs: list, rows: list, params: SignatureParams, xp) -> None:
    """Fill rows ``rows`` of ``out`` with the descriptors of their thumbnails, as one batch
    computed with ``xp`` (one host-to-device copy of the stack on a GPU)."""
    if thumbs:
        stack = xp.asarray(np.stack(thumbs))
        rows = np.asarray(rows)
        out.vectors[rows] = _host(block_means(stack, grid=params.grid, floor=params.min_contrast, xp=xp))
        out.levels[rows] = _host(level_means(stack, grid=params.grid, clip=params.level_clip, xp=xp))
        out.codes[rows] = _host(dct_hash(stack, bits=params.hash_bits, xp=xp))


def _blank(names, params: SignatureParams) -> Signatures:
    """A batch of ``len(names)`` rows, each ok and unread until filled in."""
    n = len(names)
    out = Signatures.empty(params)
    out.paths = [str(p) for p in names]
    out.content = np.zeros(n, "V16")
    out.file_size = np.full(n, -1, np.int64)
    out.height = np.zeros(n, np.int64)
    out.width = np.zeros(n, np.int64)
    out.status = np.full(n, "ok", "U16")
    out.error = [""] * n
    out.decoded = np.zeros(n, bool)
    out.vectors = np.zeros((n, params.dim), np.float32)
    out.levels = np.zeros((n, params.dim), np.float32)
    out.codes = np.zeros((n, params.hash_bits // 8), np.uint8)
    return out


def _data_range(dtype) -> float:
    """Full scale of decoded samples: the integer maximum, 1 for floating point."""
    dtype = np.dtype(dtype)
    return float(np.iinfo(dtype).max) if dtype.kind in "ui" else 1.0


def _host(array):
    return to_numpy(array)
