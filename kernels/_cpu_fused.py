"""Compiled CPU kernels: one pass over the pixels instead of a chain of temporaries.

These replace NumPy expressions only on the measured hot path (integer frames, the
default scan). Each one has a plain NumPy twin in the public module that calls it, and
tests check that both agree.
"""

from __future__ import annotations

import os

# Compiled kernels are cached per user, never inside the installed package or a
# checkout (read at numba's import: set before it, unless the user chose a place).
os.environ.setdefault(
    "NUMBA_CACHE_DIR",
    os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "framediff", "numba"
    ),
)

import numba  # noqa: E402
import numpy as np  # noqa: E402


@numba.njit(nogil=True, cache=True)
def pair_norms_int(frames_a, first, frames_b, second, tol_int, out):
    """Integer difference accumulators for pairs of rows picked from two stacks.

    Pair ``k`` is ``frames_a[first[k]]`` against ``frames_b[second[k]]`` (both (N, P)
    integer arrays), so pairs within one decoded stack need no gathering copy. ``out``
    is (K, 5) int64, filled with sum |a-b|, count(|a-b| > tol_int), sum (a-b)^2,
    max |a-b| and sum a^2. Integer accumulation is exact, so loop order cannot change
    a result.
    """
    for k in range(first.shape[0]):
        ak = frames_a[first[k]]
        bk = frames_b[second[k]]
        s1 = np.int64(0)
        s0 = np.int64(0)
        s2 = np.int64(0)
        sr = np.int64(0)
        mx = np.int64(0)
        for i in range(ak.shape[0]):
            x = np.int64(ak[i])
            d = x - np.int64(bk[i])
            if d < 0:
                d = -d
            s1 += d
            s2 += d * d
            sr += x * x
            s0 += 1 if d > tol_int else 0
            mx = d if d > mx else mx
        out[k, 0] = s1
        out[k, 1] = s0
        out[k, 2] = s2
        out[k, 3] = mx
        out[k, 4] = sr


@numba.njit(nogil=True, cache=True)
def histogram_lut(images, lut, bins, out):
    """Histograms of integer images through a value->bin lookup table.

    ``images`` is (B, N) uint8/uint16, ``lut`` maps every possible value to its bin
    (so range clipping and bin arithmetic cost nothing per pixel) and ``out`` is
    (B, bins) int64. Four interleaved sub-histograms break the store-to-load chain on
    runs of equal pixels; measured 4x faster than ``np.bincount`` on 1080p frames.
    """
    for k in range(images.shape[0]):
        img = images[k]
        sub = np.zeros((4, bins), np.uint32)
        n = img.shape[0]
        n4 = n - n % 4
        for i in range(0, n4, 4):
            sub[0, lut[img[i]]] += 1
            sub[1, lut[img[i + 1]]] += 1
            sub[2, lut[img[i + 2]]] += 1
            sub[3, lut[img[i + 3]]] += 1
        for i in range(n4, n):
            sub[0, lut[img[i]]] += 1
        for j in range(bins):
            out[k, j] = np.int64(sub[0, j]) + sub[1, j] + sub[2, j] + sub[3, j]


@numba.njit(nogil=True, cache=True)
def histogram_u8_256(images, out):
    """256-bin histograms of uint8 images (the default scan): no lookup table needed.

    ``images`` is (B, N) uint8 and ``out`` (B, 256) int64. Reads eight pixels per
    64-bit word into eight sub-histograms; measured 1.5x faster than
    :func:`histogram_lut` on 1080p frames.
    """
    for k in range(images.shape[0]):
        img = images[k]
        n = img.shape[0]
        n8 = n - n % 8
        words = img[:n8].view(np.uint64)
        sub = np.zeros((8, 256), np.uint32)
        for i in range(words.shape[0]):
            w = words[i]
            sub[0, w & 0xFF] += 1
            sub[1, (w >> 8) & 0xFF] += 1
            sub[2, (w >> 16) & 0xFF] += 1
            sub[3, (w >> 24) & 0xFF] += 1
            sub[4, (w >> 32) & 0xFF] += 1
            sub[5, (w >> 40) & 0xFF] += 1
            sub[6, (w >> 48) & 0xFF] += 1
            sub[7, (w >> 56) & 0xFF] += 1
        for i in range(n8, n):
            sub[0, img[i]] += 1
        for j in range(256):
            total = np.int64(0)
            for r in range(8):
                total += sub[r, j]
            out[k, j] = total


@numba.njit(nogil=True, cache=True)
def block_mean(image, factor, columns, out):
    """Mean of each ``factor`` x ``factor`` block of a 2-D image into ``out`` (float64).

    ``out`` has shape (H // factor, W // factor); the remainder rows/columns are
    ignored. ``columns`` is scratch of ``W // factor * factor`` accumulators: int64 for
    an integer image (exact sums, so the same values as NumPy bit for bit), float64
    otherwise. Each block row's rows are added column-wise first (a contiguous,
    vectorised loop), then each block's columns: measured 5x faster at 1080p than
    summing block by block.
    """
    oh, ow = out.shape
    scale = 1.0 / (factor * factor)
    width = ow * factor
    for oy in range(oh):
        columns[:] = 0
        for r in range(factor):
            row = image[oy * factor + r]
            for x in range(width):
                columns[x] += row[x]
        for ox in range(ow):
            base = ox * factor
            total = columns[base]
            for k in range(1, factor):
                total += columns[base + k]
            out[oy, ox] = np.float64(total) * scale


@numba.njit(nogil=True, cache=True)
def apply_lut_2d(image, lut, out):
    """``out[i, j] = lut[image[i, j]]`` for a 2-D (possibly strided) uint8 image."""
    height, width = out.shape
    for i in range(height):
        for j in range(width):
            out[i, j] = lut[image[i, j]]
