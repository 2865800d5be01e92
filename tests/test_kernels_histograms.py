"""Batched histograms and histogram distances (``framediff.kernels.histograms``).

Oracles: ``np.histogram`` with the same bins and range; ``cv2.compareHist`` for every
method OpenCV shares with framediff (fed the same float32 probability histograms);
``scipy.stats.entropy`` and ``scipy.spatial.distance.jensenshannon`` for KL and JS.
Images are photographs from ``skimage.data`` with seeded noise.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from numpy.testing import assert_allclose, assert_array_equal
from scipy.spatial.distance import jensenshannon
from scipy.stats import entropy
from skimage import data

from framediff.kernels import (
    HIST_DISTANCES,
    KL_EMPTY_BIN,
    histogram_distance,
    histogram_range,
    histograms,
    to_gray,
    to_probabilities,
)
from framediff.kernels._cpu_fused import histogram_lut
from framediff.kernels.histograms import _bin_lookup

RTOL = 1e-6

CAMERA = data.camera()  # (512, 512) uint8
MOON = data.moon()  # (512, 512) uint8, narrow histogram: many empty bins
TEXT = data.text()  # (172, 448) uint8
ASTRONAUT_GRAY = to_gray(data.astronaut(), "luma")
COFFEE_GRAY = to_gray(data.coffee(), "luma")

#: framediff name -> OpenCV method
OPENCV_METHODS = {
    "correlation": cv2.HISTCMP_CORREL,
    "chisqr": cv2.HISTCMP_CHISQR,
    "intersection": cv2.HISTCMP_INTERSECT,
    "bhattacharyya": cv2.HISTCMP_BHATTACHARYYA,
    "chisqr_alt": cv2.HISTCMP_CHISQR_ALT,
    "kl": cv2.HISTCMP_KL_DIV,
}


def _noisy(image, sigma, seed):
    rng = np.random.default_rng(seed)
    return np.clip(image + rng.normal(0.0, sigma, image.shape), 0, 255).astype(np.uint8)


def _np_hist(image, bins, value_range):
    return np.histogram(image, bins=bins, range=value_range)[0]


# --------------------------------------------------------------------------- histograms


@pytest.mark.parametrize("bins", [1, 7, 10, 64, 100, 255, 256, 300])
def test_uint8_batch_equals_np_histogram(bins):
    batch = np.stack([CAMERA, MOON, ASTRONAUT_GRAY])
    out = histograms(batch, bins=bins)
    assert out.shape == (3, bins) and out.dtype == np.int64
    for i in range(3):
        assert_array_equal(out[i], _np_hist(batch[i], bins, (0, 256)))
    assert_array_equal(out.sum(axis=1), 512 * 512)


def test_default_is_256_bins_over_the_dtype_range():
    out = histograms(CAMERA)
    assert out.shape == (256,)
    assert_array_equal(out, np.bincount(CAMERA.ravel(), minlength=256))


@pytest.mark.parametrize("bins", [3, 256, 1000, 4096, 65536])
def test_uint16_equals_np_histogram(bins):
    rng = np.random.default_rng(5)
    moon16 = MOON.astype(np.uint16) * 257 + rng.integers(0, 257, MOON.shape).astype(np.uint16)
    out = histograms(moon16, bins=bins)
    assert_array_equal(out, _np_hist(moon16, bins, (0, 65536)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bins", [16, 64, 100, 255, 256])
def test_float_photograph_equals_np_histogram(dtype, bins):
    image = (COFFEE_GRAY / 255.0).astype(dtype)
    out = histograms(image, bins=bins)  # default range [0, 1]
    assert_array_equal(out, _np_hist(image, bins, (0.0, 1.0)))


def test_float_values_outside_range_go_to_edge_bins():
    """Documented: values below/above the fixed range are counted in the first/last bin."""
    image = np.array([[-3.0, -0.01, 0.0, 0.3, 0.5, 0.99, 1.0, 1.01, 7.0]])
    out = histograms(image, bins=4)
    assert_array_equal(out, [3, 1, 1, 4])
    assert_array_equal(out, _np_hist(np.clip(image, 0.0, 1.0), 4, (0.0, 1.0)))
    assert out.sum() == image.size  # nothing is dropped


def test_integer_values_outside_range_go_to_edge_bins():
    ramp = np.arange(256, dtype=np.uint8).reshape(16, 16)
    out = histograms(ramp, bins=4, value_range=(64, 192))
    assert_array_equal(out, [96, 32, 32, 96])
    assert_array_equal(out, _np_hist(np.clip(ramp, 64, 191), 4, (64, 192)))


@pytest.mark.parametrize("dtype", [np.int8, np.int16])
@pytest.mark.parametrize("bins", [1, 3, 7, 256])
def test_signed_integers_equal_np_histogram(dtype, bins):
    """Negative pixel values land in their own bins (regression: they used to wrap)."""
    info = np.iinfo(dtype)
    rng = np.random.default_rng(9)
    images = rng.integers(info.min, info.max + 1, (2, 30, 41)).astype(dtype)
    images[0, 0, :4] = [info.min, -1, 0, info.max]
    out = histograms(images, bins=bins)
    for i in range(2):
        assert_array_equal(out[i], _np_hist(images[i], bins, (info.min, info.max + 1)))


@pytest.mark.parametrize("bins", [1, 5, 10, 256, 1000])
@pytest.mark.parametrize("n_pixels", [1, 3, 4, 15, 4099])  # exercises the 4-way loop's tail
def test_compiled_lut_kernel_equals_bincount(bins, n_pixels):
    rng = np.random.default_rng(n_pixels)
    images = rng.integers(0, 65536, (3, n_pixels)).astype(np.uint16)
    lut = _bin_lookup(np.dtype(np.uint16), bins, 0.0, 65536.0)
    out = np.empty((3, bins), np.int64)
    histogram_lut(images, lut, bins, out)
    for i in range(3):
        assert_array_equal(out[i], np.bincount(lut[images[i]], minlength=bins))


@pytest.mark.parametrize("bins", [2, 7, 10, 64, 100, 255, 256])
@pytest.mark.parametrize("image", ["camera", "coffee"])
def test_fast_path_equals_generic_path(bins, image):
    """uint8 goes through the compiled lookup table; int32 and float64 through NumPy."""
    photo = {"camera": CAMERA, "coffee": COFFEE_GRAY}[image]
    fast = histograms(photo, bins=bins)
    assert_array_equal(fast, histograms(photo.astype(np.int32), bins=bins, value_range=(0, 256)))
    assert_array_equal(fast, histograms(photo.astype(np.float64), bins=bins, value_range=(0, 256)))


@pytest.mark.parametrize(
    "image, bins, value_range",
    [
        (CAMERA / 255.0, 10, (0.0, 1.0)),  # 153/255 == 0.6 < linspace edge 0.6000000000000001
        (np.arange(256, dtype=np.int32).reshape(16, 16), 364, (0, 256)),  # uint8 values, generic path
    ],
    ids=["camera-float-10-bins", "int32-ramp-364-bins"],
)
def test_generic_path_follows_np_histogram_edges_on_ties(image, bins, value_range):
    """Values on (or one rounding from) an edge land in np.histogram's bin."""
    assert_array_equal(histograms(image, bins=bins, value_range=value_range), _np_hist(image, bins, value_range))


def test_histogram_range():
    assert histogram_range(np.uint8) == (0.0, 256.0)
    assert histogram_range(np.uint16) == (0.0, 65536.0)
    assert histogram_range(np.int16) == (-32768.0, 32768.0)
    assert histogram_range(np.float32) == (0.0, 1.0)
    assert histogram_range(np.uint16, "minmax") == (0.0, 256.0)
    assert histogram_range(np.float64, "Percentile") == (0.0, 256.0)
    assert histogram_range(np.uint8, "zscore") == (-4.0, 4.0)


def test_to_probabilities():
    counts = histograms(np.stack([CAMERA, MOON]))
    p = to_probabilities(counts)
    assert p.dtype == np.float64
    assert_allclose(p.sum(axis=-1), 1.0, rtol=1e-12)
    assert_allclose(p[1], counts[1] / MOON.size, rtol=1e-15)
    assert_array_equal(to_probabilities(np.zeros((2, 5), np.int64)), 0.0)  # stays zero, no NaN


def test_histogram_errors():
    with pytest.raises(ValueError, match="bins must be >= 1, got 0"):
        histograms(CAMERA, bins=0)
    with pytest.raises(ValueError, match=r"histogram range must have high > low, got \(1.0, 1.0\)"):
        histograms(CAMERA, value_range=(1, 1))
    with pytest.raises(ValueError, match=r"histogram range must have high > low, got \(2.0, 0.0\)"):
        histograms(CAMERA / 255.0, value_range=(2, 0))


# --------------------------------------------------------------------------- distances


def _probability_pairs():
    """(p, q) float32 probability histograms of photographs, as OpenCV is fed them."""
    pairs = {
        "camera-vs-noise": (CAMERA, _noisy(CAMERA, 10.0, 0)),
        "astronaut-vs-shifted": (ASTRONAUT_GRAY, np.roll(ASTRONAUT_GRAY, (4, -3), axis=(0, 1))),
        "coffee-vs-brighter": (COFFEE_GRAY, np.clip(COFFEE_GRAY.astype(int) + 20, 0, 255).astype(np.uint8)),
        "moon-vs-text": (MOON, TEXT[:, :448]),  # many empty bins on both sides
        "camera-vs-moon": (CAMERA, MOON),
    }
    out = {}
    for name, (a, b) in pairs.items():
        p = to_probabilities(histograms(a)).astype(np.float32)
        q = to_probabilities(histograms(b)).astype(np.float32)
        out[name] = (p, q)
    return out


PROBABILITY_PAIRS = _probability_pairs()


@pytest.mark.parametrize("method", sorted(OPENCV_METHODS))
@pytest.mark.parametrize("case", sorted(PROBABILITY_PAIRS))
def test_distances_match_opencv_compare_hist(method, case):
    p, q = PROBABILITY_PAIRS[case]
    expected = cv2.compareHist(p, q, OPENCV_METHODS[method])
    ours = float(histogram_distance(p, q, method))
    # observed: <= 3.8e-15 relative; KL with empty bins 2.3e-9 (we rescale to sum 1)
    assert_allclose(ours, expected, rtol=RTOL)


def test_batched_distances_equal_one_by_one():
    names = sorted(PROBABILITY_PAIRS)
    p = np.stack([PROBABILITY_PAIRS[n][0] for n in names])
    q = np.stack([PROBABILITY_PAIRS[n][1] for n in names])
    for method in HIST_DISTANCES:
        batch = histogram_distance(p, q, method)
        assert batch.shape == (len(names),) and batch.dtype == np.float64
        singles = [histogram_distance(p[i], q[i], method) for i in range(len(names))]
        assert_allclose(batch, singles, rtol=1e-14, atol=1e-15, err_msg=method)


def test_kl_matches_scipy_entropy_without_empty_bins():
    p = to_probabilities(histograms(CAMERA, bins=32))
    q = to_probabilities(histograms(_noisy(CAMERA, 15.0, 4), bins=32))
    assert np.all(q > 0)
    assert_allclose(histogram_distance(p, q, "kl"), entropy(p, q), rtol=1e-12)


def test_kl_is_finite_with_empty_bins_and_zero_on_itself():
    p, q = PROBABILITY_PAIRS["moon-vs-text"]
    assert np.any(q == 0) and np.any((p > 0) & (q == 0))
    kl = float(histogram_distance(p, q, "kl"))
    assert math.isfinite(kl) and kl > 0
    assert histogram_distance(p, p, "kl") == 0.0
    # an empty bin of q counts as KL_EMPTY_BIN, exactly
    p2, q2 = np.array([0.5, 0.5, 0.0]), np.array([1.0, 0.0, 0.0])
    expected = 0.5 * math.log(0.5 / 1.0) + 0.5 * math.log(0.5 / KL_EMPTY_BIN)
    assert_allclose(histogram_distance(p2, q2, "kl"), expected, rtol=1e-14)


def test_kl_and_js_do_not_depend_on_scale():
    counts_p, counts_q = histograms(CAMERA), histograms(MOON)
    for method in ("kl", "js"):
        assert_allclose(
            histogram_distance(counts_p, counts_q, method),
            histogram_distance(to_probabilities(counts_p), to_probabilities(counts_q), method),
            rtol=1e-12,
        )


def test_js_matches_scipy_symmetric_and_bounded():
    for p, q in PROBABILITY_PAIRS.values():
        p, q = p.astype(np.float64), q.astype(np.float64)
        js = float(histogram_distance(p, q, "js"))
        assert_allclose(js, jensenshannon(p, q) ** 2, rtol=1e-9)  # scipy: sqrt of JS, natural log
        assert js == float(histogram_distance(q, p, "js"))
        assert 0.0 <= js <= math.log(2)
    disjoint = float(histogram_distance(np.array([1.0, 0.0]), np.array([0.0, 1.0]), "js"))
    assert_allclose(disjoint, math.log(2), rtol=1e-15)  # the bound is reached


def test_similarities_of_identical_histograms():
    for p, _ in PROBABILITY_PAIRS.values():
        assert_allclose(histogram_distance(p, p, "intersection"), 1.0, rtol=1e-6)  # float32 input
        assert_allclose(histogram_distance(p, p, "correlation"), 1.0, rtol=1e-12)
        assert histogram_distance(p, p, "js") == 0.0
        assert histogram_distance(p, p, "chisqr") == 0.0
        assert histogram_distance(p, p, "chisqr_alt") == 0.0
        assert histogram_distance(p, p, "bhattacharyya") <= 1e-7  # sqrt(1 - s/s) rounding
    p64 = to_probabilities(histograms(CAMERA))
    assert_allclose(histogram_distance(p64, p64, "intersection"), 1.0, rtol=1e-14)


def test_hellinger_is_bhattacharyya_and_method_names_ignore_case():
    p, q = PROBABILITY_PAIRS["camera-vs-noise"]
    expected = histogram_distance(p, q, "bhattacharyya")
    assert histogram_distance(p, q, "hellinger") == expected
    assert histogram_distance(p, q, "BHATTACHARYYA") == expected


def test_distance_errors():
    p = np.ones(8)
    with pytest.raises(ValueError, match="unknown histogram distance 'emd'; expected one of kl, js"):
        histogram_distance(p, p, "emd")
    with pytest.raises(ValueError, match=r"histograms differ in shape: \(8,\) vs \(4,\)"):
        histogram_distance(p, np.ones(4), "kl")


# --------------------------------------------------------------------------- properties


@st.composite
def _image_pairs(draw):
    h, w = draw(st.integers(1, 9)), draw(st.integers(1, 9))
    if draw(st.booleans()):
        stack = draw(hnp.arrays(np.uint8, (2, h, w), elements=st.integers(0, 255)))
    else:
        stack = draw(hnp.arrays(np.float64, (2, h, w), elements=st.floats(0.0, 1.0, allow_nan=False)))
    bins = draw(st.sampled_from([1, 2, 16, 256]))
    return stack[0], stack[1], bins


SYMMETRIC = ("js", "chisqr_alt", "bhattacharyya", "intersection", "correlation")


@settings(max_examples=80, deadline=None)
@given(_image_pairs())
def test_distance_properties(pair):
    a, b, bins = pair
    p = to_probabilities(histograms(a, bins=bins))
    q = to_probabilities(histograms(b, bins=bins))
    assert histograms(a, bins=bins).sum() == a.size
    for method in ("kl", "js", "chisqr", "chisqr_alt"):
        assert histogram_distance(p, p, method) == 0.0, method
    assert histogram_distance(p, p, "bhattacharyya") <= 1e-7
    assert_allclose(histogram_distance(p, p, "intersection"), 1.0, rtol=1e-12)
    assert_allclose(histogram_distance(p, p, "correlation"), 1.0, rtol=1e-12)
    for method in SYMMETRIC:
        assert_allclose(histogram_distance(p, q, method), histogram_distance(q, p, method), rtol=1e-12, atol=1e-15)
    for method in ("kl", "js", "chisqr", "chisqr_alt", "bhattacharyya", "intersection"):
        value = float(histogram_distance(p, q, method))
        assert math.isfinite(value) and value >= 0.0, method
    assert histogram_distance(p, q, "js") <= math.log(2) + 1e-12
    assert histogram_distance(p, q, "intersection") <= 1.0 + 1e-12
    assert -1.0 - 1e-12 <= histogram_distance(p, q, "correlation") <= 1.0 + 1e-12
