"""Compact image signatures for near-duplicate search: arrays in, arrays out.

A signature is derived from a small square grayscale thumbnail (``side`` x ``side``,
32 by default), itself an area-resize of the image, so an image and its resized copy
give the same thumbnail up to rounding. Three descriptors are computed from it:

- :func:`block_means`: the thumbnail averaged over a ``grid`` x ``grid`` lattice, made
  zero-mean and unit-length. The squared Euclidean distance of two such vectors is
  ``2 - 2 r`` with ``r`` their Pearson correlation, so it ignores brightness and
  contrast changes.
- :func:`level_means`: the same lattice in the thumbnail's own units, after clipping
  it to its 5th..95th percentiles. Two images equal within a tolerance on all but a few
  per cent of their pixels are close in it, whatever those few pixels hold: a sky with
  another bird, a black field with other stars. Correlation misses exactly these (the
  few pixels are all the pattern there is).
- :func:`dct_hash`: the perceptual hash of Zauner [1]_ (low-frequency DCT coefficients
  against their median), packed into bits; compared with :func:`hamming`.

The nearest-neighbour index searches the first two and pairs what either finds.

Everything is written once against ``xp`` (NumPy or CuPy).

References
----------
.. [1] C. Zauner, "Implementation and Benchmarking of Perceptual Image Hash Functions",
   Master's thesis, Upper Austria University of Applied Sciences, 2010.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from .backend import array_namespace
from .color import to_gray
from .shape import resize_area

__all__ = ["block_means", "dct_hash", "hamming", "level_means", "thumbnail"]

#: 256-entry table of set bits per byte, for Hamming distances on packed codes.
_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], np.uint8)


def thumbnail(image, *, side: int = 32, xp=None):
    """A ``side`` x ``side`` float32 grayscale thumbnail of one image.

    Parameters
    ----------
    image : array, shape (H, W) or (H, W, C)
        Gray, RGB or RGBA, any real dtype. Colour is reduced to BT.601 luma, so a
        colour image and its JPEG luma plane give the same thumbnail.
    side : int
        Output side in pixels. The aspect ratio is not kept: an image and a resized
        copy of it are squashed alike.
    xp : module, optional
        ``numpy`` or ``cupy``; detected from ``image`` when omitted.

    Returns
    -------
    array of float32, shape (side, side)

    Raises
    ------
    ValueError
        ``side`` is not a positive integer or the image is not 2-D or 3-D.

    Examples
    --------
    >>> import numpy as np
    >>> thumbnail(np.arange(64.0).reshape(8, 8), side=2)
    array([[13.5, 17.5],
           [45.5, 49.5]], dtype=float32)
    """
    xp = array_namespace(image, xp=xp)
    if int(side) != side or side < 1:
        raise ValueError(f"side must be a positive integer, got {side!r}")
    side = int(side)
    gray = to_gray(image, "luma", xp=xp)
    h, w = gray.shape
    if h < side or w < side:  # growing: the general resize's two-tap rule
        return resize_area(gray, (side, side), xp=xp).astype(xp.float32)
    # Shrinking: area weights as two small matrix products, much cheaper per image
    # than the general resize; the same numbers up to float32 rounding.
    x = gray.astype(xp.float32, copy=False)
    if xp is np:
        # Each output pixel takes a few input rows and columns: as sparse matrices the
        # products cost about a third of the dense ones (a 200 x 150 image: 27 us).
        thumb = _sparse_area_weights(w, side) @ (_sparse_area_weights(h, side) @ x).T
        return np.ascontiguousarray(thumb.T)
    rows, cols = _area_weights(h, side), _area_weights(w, side)
    return xp.asarray(rows, dtype=xp.float32) @ x @ xp.asarray(cols, dtype=xp.float32).T


@functools.lru_cache(maxsize=64)
def _area_weights(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) matrix averaging each output cell's share of the input pixels."""
    scale = n_in / n_out
    start = np.arange(n_out)[:, None] * scale
    j = np.arange(n_in)[None, :]
    overlap = np.clip(np.minimum(start + scale, j + 1) - np.maximum(start, j), 0, None)
    return overlap / scale


@functools.lru_cache(maxsize=64)
def _sparse_area_weights(n_in: int, n_out: int):
    """:func:`_area_weights` as a float32 CSR matrix."""
    from scipy import sparse

    return sparse.csr_matrix(_area_weights(n_in, n_out).astype(np.float32))


def _check_thumbs(thumbs, name="thumbs"):
    if thumbs.ndim != 3 or thumbs.shape[1] != thumbs.shape[2]:
        raise ValueError(f"{name} must be a (N, S, S) stack of square thumbnails, got shape {thumbs.shape}")


def _lattice(thumbs, grid: int) -> tuple:
    """``(N, S)`` of a thumbnail stack that a ``grid`` x ``grid`` lattice divides."""
    _check_thumbs(thumbs)
    n, s = thumbs.shape[0], thumbs.shape[1]
    if grid < 1 or s % grid:
        raise ValueError(f"thumbnail side {s} is not a multiple of grid {grid}")
    return n, s


def block_means(thumbs, *, grid: int = 16, floor: float = 0.0, xp=None):
    """Zero-mean, unit-length block-mean vectors of a stack of thumbnails.

    Parameters
    ----------
    thumbs : array, shape (N, S, S)
        Square thumbnails (:func:`thumbnail`); ``S`` must be a multiple of ``grid``.
    grid : int
        Blocks per side; the vector has ``grid * grid`` entries.
    floor : float
        Root-mean-square contrast of the block means (thumbnail units) below which a
        row is divided by this contrast instead of its own: a low-contrast thumbnail
        keeps a short vector, near every other low-contrast one, instead of its noise
        blown up to unit length. 0: every patterned row has unit length.
    xp : module, optional

    Returns
    -------
    array of float32, shape (N, grid * grid)
        Each row has mean 0 and Euclidean length 1 (shorter below ``floor``), or is all
        zeros for a flat thumbnail (which then matches only other flat images).

    Raises
    ------
    ValueError
        Not a stack of square thumbnails, or ``S`` is not a multiple of ``grid``.

    Examples
    --------
    >>> import numpy as np
    >>> block_means(np.array([[[0.0, 0.0], [2.0, 2.0]]]), grid=2).round(3)
    array([[-0.5, -0.5,  0.5,  0.5]], dtype=float32)
    """
    xp = array_namespace(thumbs, xp=xp)
    n, s = _lattice(thumbs, grid)
    b = s // grid
    x = thumbs.astype(xp.float64, copy=False).reshape(n, grid, b, grid, b).mean(axis=(2, 4)).reshape(n, -1)
    x = x - x.mean(axis=1, keepdims=True)
    norm = xp.sqrt((x * x).sum(axis=1, keepdims=True))
    norm = xp.maximum(norm, floor * grid)  # the RMS over grid * grid blocks, as a length
    # A flat thumbnail has no pattern to compare: a zero vector, not 0/0.
    x = xp.where(norm > 1e-9 * s * s, x / xp.where(norm > 0, norm, 1.0), 0.0)
    return x.astype(xp.float32)


def level_means(thumbs, *, grid: int = 8, clip: float = 0.05, xp=None):
    """Block means of thumbnails clipped to their own central percentiles.

    Each thumbnail is clipped to its ``clip`` and ``1 - clip`` quantiles (its
    brightest and darkest few per cent of pixels take those values), then averaged over
    a ``grid`` x ``grid`` lattice, in the thumbnail's units. The squared Euclidean
    distance of two such vectors is ``grid * grid`` times the mean squared difference
    of their block levels: small for two pictures that agree within a tolerance except
    for a few per cent of pixels, which the clipping takes out of both.

    Parameters
    ----------
    thumbs, grid
        As in :func:`block_means`.
    clip : float
        Fraction of pixels clipped at each end, in ``[0, 0.5)``; 0 keeps every value.
    xp : module, optional

    Returns
    -------
    array of float32, shape (N, grid * grid)

    Raises
    ------
    ValueError
        Not a stack of square thumbnails, ``S`` is not a multiple of ``grid``, or
        ``clip`` is outside ``[0, 0.5)``.

    Examples
    --------
    >>> import numpy as np
    >>> sky = np.full((1, 4, 4), 0.5)
    >>> sky[0, 0, 0] = 1.0  # one bright pixel of sixteen
    >>> level_means(sky, grid=2, clip=0.1)
    array([[0.5, 0.5, 0.5, 0.5]], dtype=float32)
    """
    xp = array_namespace(thumbs, xp=xp)
    n, s = _lattice(thumbs, grid)
    if not 0 <= clip < 0.5:
        raise ValueError(f"clip must lie in [0, 0.5), got {clip!r}")
    x = thumbs.reshape(n, s * s)
    if clip > 0:
        lo, hi = int(math.floor(clip * (s * s - 1))), int(math.ceil((1 - clip) * (s * s - 1)))
        # A full sort of 1,024 values: faster than a partition here (NumPy's vectorised
        # sort), and a plain kernel on CuPy.
        ranked = xp.sort(x, axis=1)
        x = xp.clip(x, ranked[:, lo : lo + 1], ranked[:, hi : hi + 1])
    b = s // grid
    means = x.reshape(n, grid, b, grid, b).mean(axis=(2, 4), dtype=xp.float64)
    return means.reshape(n, -1).astype(xp.float32)


def _dct_matrix(n: int, xp):
    """Unnormalised DCT-II matrix ``C`` (``C @ x`` transforms a column), scipy's
    ``dct(x, type=2, norm=None)``: the scaling ``imagehash.phash`` hashes."""
    k = np.arange(n)[:, None]
    i = np.arange(n)[None, :]
    return xp.asarray(2.0 * np.cos(np.pi * (2 * i + 1) * k / (2 * n)))


def dct_hash(thumbs, *, bits: int = 64, xp=None):
    """Perceptual DCT hashes of a stack of thumbnails, packed into bytes.

    The 2-D DCT of each thumbnail is taken; its top-left ``sqrt(bits)`` square of
    low-frequency coefficients is compared with the median of that square, one bit per
    coefficient, row-major (as ``imagehash.phash`` does [2]_).

    Parameters
    ----------
    thumbs : array, shape (N, S, S)
        Square thumbnails with ``S >= sqrt(bits)``.
    bits : {64, 256}
        Hash length.
    xp : module, optional

    Returns
    -------
    array of uint8, shape (N, bits // 8)

    Raises
    ------
    ValueError
        ``bits`` is not 64 or 256, or the thumbnails are too small.

    References
    ----------
    .. [2] J. Buchner, ``imagehash.phash``, https://github.com/JohannesBuchner/imagehash
    """
    xp = array_namespace(thumbs, xp=xp)
    _check_thumbs(thumbs)
    if bits not in (64, 256):
        raise ValueError(f"bits must be 64 or 256, got {bits!r}")
    k = math.isqrt(bits)
    s = thumbs.shape[1]
    if s < k:
        raise ValueError(f"a {bits}-bit hash needs thumbnails of side >= {k}, got {s}")
    c = _dct_matrix(s, xp)
    x = thumbs.astype(xp.float64, copy=False)
    coeffs = (c @ x @ c.T)[:, :k, :k].reshape(len(thumbs), -1)
    median = xp.median(coeffs, axis=1, keepdims=True)
    # Packed flat, then cut into rows: each row is a whole number of bytes, and CuPy's
    # packbits has no ``axis``.
    return xp.packbits((coeffs > median).ravel()).reshape(len(thumbs), bits // 8)


def hamming(codes_a, codes_b, *, xp=None):
    """Hamming distances between packed codes, row by row (broadcasting).

    Parameters
    ----------
    codes_a, codes_b : array of uint8, shape (..., B)
        Packed bit codes (:func:`dct_hash`); leading axes broadcast.
    xp : module, optional

    Returns
    -------
    array of int64, shape: the broadcast leading shape

    Examples
    --------
    >>> import numpy as np
    >>> hamming(np.array([[0b1011, 0]], np.uint8), np.array([[0, 1]], np.uint8))
    array([4])
    """
    xp = array_namespace(codes_a, codes_b, xp=xp)
    table = xp.asarray(_POPCOUNT)
    return table[xp.bitwise_xor(codes_a, codes_b)].sum(axis=-1, dtype=xp.int64)
