"""GPU kernels against their NumPy twins on the same seeded input.

Needs CuPy and a usable CUDA device; skipped otherwise. CuPy is imported only through
fixtures, so collecting this module never fails on a machine without one.
"""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from framediff.kernels import (
    GRAY_METHODS,
    HIST_DISTANCES,
    NORM_NAMES,
    difference_norms,
    gpu_available,
    histogram_distance,
    histogram_range,
    histograms,
    is_cupy,
    normalize,
    to_gray,
    to_numpy,
)
from framediff.kernels.norms import pair_difference_norms

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not gpu_available(), reason="needs CuPy and a usable CUDA device"),
]

#: Norms that are integers for integer images (int64, exact).
INTEGER_NORMS = ("l1", "l0", "max_abs")
SHAPES = [(3, 37, 53), (1, 1, 1), (37, 53)]


@pytest.fixture(scope="module")
def cp():
    return pytest.importorskip("cupy")


@pytest.fixture(scope="module")
def gpu_fused():
    from framediff.kernels import _gpu_fused

    return _gpu_fused


def _random(rng, dtype, shape):
    dtype = np.dtype(dtype)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return rng.integers(info.min, info.max, size=shape, endpoint=True, dtype=dtype)
    return rng.random(shape).astype(dtype)


def _pair(rng, dtype, shape):
    """A reference image and a changed copy: noise, a changed block and extreme values."""
    a = _random(rng, dtype, shape)
    b = a.copy()
    mask = rng.random(shape) < 0.4
    b[mask] = _random(rng, dtype, shape)[mask]
    if np.dtype(dtype).kind in "iu":
        info = np.iinfo(dtype)
        a.flat[0], b.flat[0] = info.max, info.min  # the largest difference: no wrap
    return a, b


def _assert_norms_equal(got, want, integer: bool):
    assert set(got) == set(NORM_NAMES)
    for name in NORM_NAMES:
        assert is_cupy(got[name]), name
        g, w = to_numpy(got[name]), to_numpy(want[name])
        assert g.shape == w.shape, name
        if name in INTEGER_NORMS and integer or name == "l0":
            assert g.dtype == w.dtype, name
            assert_array_equal(g, w, err_msg=name)
        elif name == "max_abs":
            assert_array_equal(g, w, err_msg=name)  # the max of identical float64 differences
        else:
            assert_allclose(g, w, rtol=1e-12 if integer else 1e-6, err_msg=name)


# --- difference norms -------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int16, np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("tol", [0.0, 0.05, 10.0])
def test_difference_norms_match_numpy(cp, dtype, shape, tol):
    rng = np.random.default_rng(7)
    a, b = _pair(rng, dtype, shape)
    want = difference_norms(a, b, tol=tol)
    got = difference_norms(cp.asarray(a), cp.asarray(b), tol=tol)
    _assert_norms_equal(got, want, integer=np.dtype(dtype).kind in "iu")


def test_difference_norms_of_identical_images(cp):
    a = _random(np.random.default_rng(1), np.uint16, (3, 37, 53))
    got = difference_norms(cp.asarray(a), cp.asarray(a))
    assert to_numpy(got["l1"]).tolist() == [0, 0, 0]
    assert to_numpy(got["l0"]).tolist() == [0, 0, 0]
    assert np.isinf(to_numpy(got["psnr"])).all()


def test_difference_norms_4k_uint8_exact(cp):
    rng = np.random.default_rng(2160)
    a, b = _pair(rng, np.uint8, (2160, 3840))
    want = difference_norms(a, b, tol=3)
    got = difference_norms(cp.asarray(a), cp.asarray(b), tol=3)
    _assert_norms_equal(got, want, integer=True)
    diff = np.abs(a.astype(np.int64) - b.astype(np.int64))
    assert to_numpy(got["l1"]).tolist() == [int(diff.sum())]
    assert to_numpy(got["l0"]).tolist() == [int((diff > 3).sum())]


def test_difference_norms_extremes_do_not_wrap(cp):
    a = np.full((2, 33, 65), 65535, np.uint16)
    b = np.zeros_like(a)
    b[1] = 65535
    got = difference_norms(cp.asarray(a), cp.asarray(b))
    n = 33 * 65
    assert to_numpy(got["l1"]).tolist() == [65535 * n, 0]
    assert to_numpy(got["max_abs"]).tolist() == [65535, 0]
    assert to_numpy(got["mse"]).tolist() == [65535.0**2, 0.0]


def test_difference_norms_non_contiguous_input(cp):
    rng = np.random.default_rng(3)
    a, b = _pair(rng, np.uint8, (3, 40, 61))
    a, b = a[:, ::2, 1:], b[:, ::2, 1:]
    want = difference_norms(a, b)
    got = difference_norms(cp.asarray(a)[:, :, :], cp.asarray(b)[:, :, :])
    _assert_norms_equal(got, want, integer=True)
    got = difference_norms(cp.asarray(a.base)[:, ::2, 1:], cp.asarray(b.base)[:, ::2, 1:])
    _assert_norms_equal(got, want, integer=True)


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_pair_difference_norms_index_pairs(cp, dtype):
    rng = np.random.default_rng(4)
    frames = _random(rng, dtype, (5, 37, 53))
    first, second = [0, 1, 2, 3, 4, 0], [1, 2, 3, 4, 0, 0]
    want = pair_difference_norms(frames, first, frames, second, tol=1)
    got = pair_difference_norms(cp.asarray(frames), first, cp.asarray(frames), second, tol=1)
    _assert_norms_equal(got, want, integer=np.dtype(dtype).kind == "u")


@pytest.mark.parametrize("dtype", [np.uint16, np.float64])
def test_pair_norms_reads_index_pairs_in_place(cp, gpu_fused, dtype):
    rng = np.random.default_rng(5)
    frames_a = _random(rng, dtype, (4, 37, 53))
    frames_b = _random(rng, dtype, (3, 37, 53))
    first, second = [3, 0, -1, 2], [0, 2, 1, -3]
    got = gpu_fused.pair_norms(cp.asarray(frames_a), cp.asarray(frames_b), 2.0, first=first, second=second)
    gathered = gpu_fused.pair_norms(cp.asarray(frames_a[first]), cp.asarray(frames_b[second]), 2.0)
    for g, w in zip(got, gathered):
        assert_array_equal(to_numpy(g), to_numpy(w))
    with pytest.raises(IndexError, match="out of range"):
        gpu_fused.pair_norms(cp.asarray(frames_a), cp.asarray(frames_b), 0.0, first=[4], second=[0])


def test_pair_norms_float_is_deterministic(cp, gpu_fused):
    rng = np.random.default_rng(6)
    a, b = (cp.asarray(_random(rng, np.float32, (2, 1080, 1920))) for _ in range(2))
    first = [to_numpy(x) for x in gpu_fused.pair_norms(a, b, 0.1)]
    again = [to_numpy(x) for x in gpu_fused.pair_norms(a, b, 0.1)]
    for x, y in zip(first, again):
        assert_array_equal(x, y)


# --- histograms -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "dtype, bins",
    [
        (np.uint8, 1),
        (np.uint8, 7),
        (np.uint8, 64),
        (np.uint8, 256),
        (np.uint16, 16),
        (np.uint16, 1000),
        (np.uint16, 8192),  # the largest shared-memory sub-histogram
        (np.uint16, 8193),  # global atomics from here on
        (np.uint16, 65536),
        (np.int8, 16),  # signed integers take the generic CuPy path
        (np.int16, 1000),
    ],
)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_integer_histograms_match_numpy(cp, dtype, bins, shape):
    images = _random(np.random.default_rng(bins), dtype, shape)
    want = histograms(images, bins)
    got = histograms(cp.asarray(images), bins)
    assert is_cupy(got) and got.dtype == cp.int64
    assert_array_equal(to_numpy(got), want)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bins", [1, 10, 256, 10000])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_float_histograms_match_numpy(cp, dtype, bins, shape):
    rng = np.random.default_rng(bins)
    images = (rng.random(shape) * 1.4 - 0.2).astype(dtype)  # some values outside [0, 1]
    if images.size >= 4:
        images.flat[:4] = [np.inf, -np.inf, 1.0, 0.0]
    want = histograms(images, bins)
    got = histograms(cp.asarray(images), bins)
    assert_array_equal(to_numpy(got), want)


@pytest.mark.parametrize(
    "dtype, value_range",
    [(np.uint8, (50.0, 100.0)), (np.uint16, (100.0, 200.0)), (np.float64, (-0.5, 0.7)), (np.float32, (0.0, 256.0))],
)
@pytest.mark.parametrize("bins", [5, 300])
def test_histograms_with_a_range_match_numpy(cp, dtype, value_range, bins):
    rng = np.random.default_rng(11)
    images = _random(rng, dtype, (3, 37, 53))
    if np.dtype(dtype).kind == "f":
        images = (images * 300 - 20).astype(dtype)
    want = histograms(images, bins, value_range)
    got = histograms(cp.asarray(images), bins, value_range)
    assert_array_equal(to_numpy(got), want)


def test_histograms_4k_uint8(cp):
    images = _random(np.random.default_rng(12), np.uint8, (2, 2160, 3840))
    images[1] = 7  # one bin takes every pixel: worst case for the shared atomics
    got = to_numpy(histograms(cp.asarray(images), 256))
    assert_array_equal(got, histograms(images, 256))
    assert got[1, 7] == 2160 * 3840


# --- normalization, distances, gray -----------------------------------------------------


@pytest.mark.parametrize("method", ["minmax", "percentile", "zscore"])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float64])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_normalize_matches_numpy(cp, method, dtype, shape):
    images = _random(np.random.default_rng(13), dtype, shape)
    if len(shape) == 3 and shape[0] > 1:
        images[1] = images[1].flat[0]  # a constant image becomes zeros
    want = normalize(images, method)
    got = normalize(cp.asarray(images), method)
    assert is_cupy(got) and got.dtype == cp.float64
    # CuPy's percentile, mean and std may round differently from NumPy's in the last
    # bit; the fused affine step itself is bit-identical (checked below for minmax).
    atol = 0.0 if method == "minmax" else 1e-9
    assert_allclose(to_numpy(got), want, rtol=1e-12, atol=atol)


def test_normalize_affine_is_bit_identical(cp, gpu_fused):
    rng = np.random.default_rng(14)
    x = rng.random((3, 37, 53)) * 1000 - 100
    lo = np.percentile(x, 1, axis=(1, 2), keepdims=True)
    hi = np.percentile(x, 99, axis=(1, 2), keepdims=True)
    hi[2] = lo[2]  # zero span
    span = hi - lo
    safe = np.where(span > 0, span, 1.0)
    want = np.where(span > 0, (x - lo) * 255 / safe, 0.0)
    got = gpu_fused.normalize_affine(cp.asarray(x), cp.asarray(lo), cp.asarray(span))
    assert_array_equal(to_numpy(got), want)
    clipped = np.clip(x, lo, hi)
    want = np.where(span > 0, (clipped - lo) * 255 / safe, 0.0)
    got = gpu_fused.normalize_affine(cp.asarray(x), cp.asarray(lo), cp.asarray(span), clip_high=cp.asarray(hi))
    assert_array_equal(to_numpy(got), want)


@pytest.mark.parametrize("method", HIST_DISTANCES)
def test_histogram_distance_matches_numpy(cp, method):
    rng = np.random.default_rng(15)
    images = _random(rng, np.uint8, (4, 37, 53))
    images[2] = images[3]  # identical pair
    images[0, :20] = 0  # an image with empty bins
    h = histograms(images, 64, histogram_range(np.uint8))
    p, q = h[[0, 1, 2]], h[[1, 0, 3]]
    want = histogram_distance(p, q, method)
    got = histogram_distance(cp.asarray(p), cp.asarray(q), method)
    assert is_cupy(got)
    assert_allclose(to_numpy(got), want, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("method", GRAY_METHODS)
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
@pytest.mark.parametrize("channels", [3, 4])
def test_to_gray_matches_numpy(cp, method, dtype, channels):
    image = _random(np.random.default_rng(16), dtype, (37, 53, channels))
    want = to_gray(image, method)
    got = to_gray(cp.asarray(image), method)
    assert is_cupy(got) and got.dtype == want.dtype and got.shape == want.shape
    if np.dtype(want.dtype).kind in "iu":
        assert_array_equal(to_numpy(got), want)
    else:
        assert_allclose(to_numpy(got), want, rtol=1e-12)
