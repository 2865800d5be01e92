"""Pixel difference norms of batches of image pairs (``framediff.kernels.norms``).

Oracles: ``skimage.metrics`` (``mean_squared_error``, ``normalized_root_mse`` with
``normalization='euclidean'``, ``peak_signal_noise_ratio``) and ``cv2.norm``
(``NORM_L1``, ``NORM_L2``, ``NORM_INF``), on photographs from ``skimage.data`` with
seeded noise and shifts, plus hand-computed edge cases.
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
from skimage import data
from skimage.metrics import mean_squared_error, normalized_root_mse, peak_signal_noise_ratio

from framediff.kernels import NORM_NAMES, difference_norms, pair_difference_norms, to_gray

RTOL = 1e-6  # agreement asked of every outside reference

CAMERA = data.camera()  # (512, 512) uint8
MOON = data.moon()  # (512, 512) uint8
ASTRONAUT_GRAY = to_gray(data.astronaut(), "luma")  # (512, 512) uint8
COFFEE_GRAY = to_gray(data.coffee(), "luma")  # (400, 600) uint8
CHELSEA_GRAY = to_gray(data.chelsea(), "mean")  # (300, 451) float64, 0..255


def _noisy(image, sigma, seed):
    """``image`` plus seeded Gaussian noise, clipped back into its dtype."""
    rng = np.random.default_rng(seed)
    top = np.iinfo(image.dtype).max
    return np.clip(image + rng.normal(0.0, sigma, image.shape), 0, top).astype(image.dtype)


def _shifted(image, dy, dx):
    return np.roll(image, (dy, dx), axis=(0, 1))


def _hot_pixel_pair():
    a = np.zeros((64, 64), np.uint8)
    b = a.copy()
    b[17, 42] = 255
    return a, b


def _pairs():
    """(reference, other, data_range) cases shared by the skimage and OpenCV checks."""
    moon16 = MOON.astype(np.uint16) * 257
    hot_a, hot_b = _hot_pixel_pair()
    chelsea = CHELSEA_GRAY / 255.0
    return {
        "camera-vs-noise": (CAMERA, _noisy(CAMERA, 10.0, 0), 255),
        "astronaut-gray-vs-shifted": (ASTRONAUT_GRAY, _shifted(ASTRONAUT_GRAY, 3, -5), 255),
        "coffee-gray-vs-noise": (COFFEE_GRAY, _noisy(COFFEE_GRAY, 25.0, 1), 255),
        "moon-vs-camera": (MOON, CAMERA, 255),
        "chelsea-float-vs-shifted": (chelsea, _shifted(chelsea, 1, 1), 1.0),
        "moon-uint16-vs-noise": (moon16, _noisy(moon16, 900.0, 2), 65535),
        "constant-vs-constant": (np.full((40, 30), 100, np.uint8), np.full((40, 30), 103, np.uint8), 255),
        "one-by-one": (np.array([[7]], np.uint8), np.array([[200]], np.uint8), 255),
        "single-hot-pixel-reference": (hot_b, hot_a, 255),
    }


PAIRS = _pairs()


def _scalar(result, name):
    value = result[name]
    assert value.shape == (1,)
    return value[0].item()


# --------------------------------------------------------------------------- references


@pytest.mark.parametrize("case", sorted(PAIRS))
def test_mse_nrmse_psnr_match_skimage(case):
    a, b, data_range = PAIRS[case]
    r = difference_norms(a, b)
    assert_allclose(_scalar(r, "mse"), mean_squared_error(a, b), rtol=RTOL)  # observed: <= 1.2e-16
    assert_allclose(_scalar(r, "rmse"), math.sqrt(mean_squared_error(a, b)), rtol=RTOL)
    # scikit-image divides by ||image_true||: the reference is `a`.
    expected_nrmse = normalized_root_mse(a, b, normalization="euclidean")
    assert_allclose(_scalar(r, "nrmse"), expected_nrmse, rtol=RTOL)  # observed: <= 1.2e-16
    expected_psnr = peak_signal_noise_ratio(a, b, data_range=data_range)
    assert_allclose(_scalar(r, "psnr"), expected_psnr, rtol=RTOL)  # observed: <= 1.2e-16
    # the default data range is the dtype's natural one
    assert_allclose(_scalar(difference_norms(a, b, data_range=data_range), "psnr"), expected_psnr, rtol=RTOL)


@pytest.mark.parametrize("case", sorted(PAIRS))
def test_l1_l2_max_match_opencv(case):
    a, b, _ = PAIRS[case]
    r = difference_norms(a, b)
    assert_allclose(_scalar(r, "l1"), cv2.norm(a, b, cv2.NORM_L1), rtol=RTOL)  # observed: <= 1e-14 (all three)
    assert_allclose(_scalar(r, "l2"), cv2.norm(a, b, cv2.NORM_L2), rtol=RTOL)
    assert_allclose(_scalar(r, "max_abs"), cv2.norm(a, b, cv2.NORM_INF), rtol=RTOL)
    n = a.size
    assert_allclose(_scalar(r, "l1_per_pixel"), cv2.norm(a, b, cv2.NORM_L1) / n, rtol=RTOL)
    assert_allclose(_scalar(r, "mse"), cv2.norm(a, b, cv2.NORM_L2SQR) / n, rtol=RTOL)


def test_psnr_matches_skimage_with_explicit_data_range():
    a, b = CAMERA, _noisy(CAMERA, 5.0, 7)
    r = difference_norms(a, b, data_range=100.0)
    assert_allclose(_scalar(r, "psnr"), peak_signal_noise_ratio(a, b, data_range=100.0), rtol=RTOL)


def test_hot_pixel_values_by_hand():
    a, b = _hot_pixel_pair()
    r = difference_norms(a, b)
    assert _scalar(r, "l1") == 255
    assert _scalar(r, "l0") == 1
    assert _scalar(r, "l0_fraction") == 1 / 4096
    assert _scalar(r, "max_abs") == 255
    assert _scalar(r, "l2") == 255.0
    assert _scalar(r, "mse") == 255.0**2 / 4096
    assert_allclose(_scalar(r, "psnr"), 10 * math.log10(4096), rtol=1e-12)  # 36.12 dB
    # `a` is all zeros: NRMSE divides by ||a|| = 0 and is NaN (documented), without a warning
    assert math.isnan(_scalar(r, "nrmse"))


# --------------------------------------------------------------------------- exactness


def test_4k_uint8_l1_is_exact_integer_both_directions():
    black = np.zeros((2160, 3840), np.uint8)
    white = np.full((2160, 3840), 255, np.uint8)
    expected = 255 * 2160 * 3840
    for a, b in ((black, white), (white, black)):
        r = difference_norms(a, b)
        assert r["l1"].dtype == np.int64
        assert int(r["l1"][0]) == expected  # 2_115_072_000: exceeds int32, below float32 exactness
        assert int(r["l0"][0]) == 2160 * 3840
        assert int(r["max_abs"][0]) == 255
        assert r["l1_per_pixel"][0] == 255.0
        assert r["mse"][0] == 255.0**2
        assert r["psnr"][0] == 0.0


def test_4k_uint16_l1_is_exact_integer():
    black = np.zeros((2160, 3840), np.uint16)
    white = np.full((2160, 3840), 65535, np.uint16)
    r = difference_norms(white, black)
    assert r["l1"].dtype == np.int64
    assert int(r["l1"][0]) == 65535 * 2160 * 3840  # 543_573_504_000 > 2**32
    assert int(r["max_abs"][0]) == 65535
    assert r["psnr"][0] == 0.0


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_unsigned_subtraction_does_not_wrap(dtype):
    top = np.iinfo(dtype).max
    lo = np.array([[0, 10, top]], dtype)
    hi = np.array([[top, 0, 0]], dtype)
    for a, b in ((lo, hi), (hi, lo)):
        r = difference_norms(a, b)
        assert int(r["l1"][0]) == top + 10 + top
        assert int(r["max_abs"][0]) == top
        assert int(r["l0"][0]) == 3
        assert int((r["l2"][0] ** 2).round()) == 2 * top**2 + 100


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_compiled_integer_path_equals_float_path(dtype):
    """The numba accumulation over integers agrees with the NumPy float64 path."""
    a = CAMERA.astype(dtype) * (257 if dtype == np.uint16 else 1)
    b = _noisy(a, 12.0 * (257 if dtype == np.uint16 else 1), 11)
    data_range = float(np.iinfo(dtype).max)
    fast = difference_norms(a, b, tol=7.5)
    slow = difference_norms(a.astype(np.float64), b.astype(np.float64), tol=7.5, data_range=data_range)
    assert set(fast) == set(slow) == set(NORM_NAMES)
    for name in NORM_NAMES:
        assert_allclose(fast[name], slow[name], rtol=1e-12, err_msg=name)
    assert int(fast["l1"][0]) == int(slow["l1"][0])


# --------------------------------------------------------------------------- tolerance


@pytest.mark.parametrize("tol", [0, 0.5, 2, 2.5, 10, 254.9, 255])
def test_l0_counts_pixels_strictly_above_tol(tol):
    a, b = CAMERA, _noisy(CAMERA, 6.0, 3)
    diff = np.abs(a.astype(np.int64) - b.astype(np.int64))
    expected = int(np.count_nonzero(diff > tol))
    r = difference_norms(a, b, tol=tol)
    assert int(r["l0"][0]) == expected
    assert r["l0_fraction"][0] == expected / a.size
    # the float path draws the same line
    rf = difference_norms(a.astype(np.float32), b.astype(np.float32), tol=tol)
    assert int(rf["l0"][0]) == expected


def test_tol_zero_is_the_classic_zero_norm():
    a, b = CHELSEA_GRAY, _shifted(CHELSEA_GRAY, 0, 2)
    r = difference_norms(a, b, tol=0)
    assert int(r["l0"][0]) == int(np.linalg.norm((a - b).ravel(), 0))
    assert r["l0"].dtype == np.int64


# --------------------------------------------------------------------------- batches


def test_batch_equals_pair_by_pair():
    a = np.stack([CAMERA, MOON, ASTRONAUT_GRAY])
    b = np.stack([_noisy(CAMERA, 4.0, 0), CAMERA, ASTRONAUT_GRAY])
    batch = difference_norms(a, b, tol=3)
    for name in NORM_NAMES:
        assert batch[name].shape == (3,)
        singles = [difference_norms(a[i], b[i], tol=3)[name][0] for i in range(3)]
        assert_array_equal(batch[name], singles, err_msg=name)
    assert batch["l1"][2] == 0 and batch["psnr"][2] == math.inf


def test_pair_difference_norms_picks_pairs_by_index():
    stack = np.stack([CAMERA, _noisy(CAMERA, 8.0, 1), MOON])
    first, second = [0, 1, 2, 0], [1, 2, 0, 0]
    r = pair_difference_norms(stack, first, stack, second, tol=2)
    expected = difference_norms(stack[first], stack[second], tol=2)
    for name in NORM_NAMES:
        assert_array_equal(r[name], expected[name], err_msg=name)
    floats = stack.astype(np.float64)
    rf = pair_difference_norms(floats, first, floats, second, tol=2, data_range=255)
    for name in NORM_NAMES:
        assert_allclose(rf[name], expected[name], rtol=1e-12, err_msg=name)


def test_identical_images_give_zero_and_infinite_psnr():
    for image in (CAMERA, CAMERA.astype(np.uint16), CHELSEA_GRAY, np.ones((1, 1), np.float32)):
        r = difference_norms(image, image.copy())
        for name in ("l1", "l1_per_pixel", "l0", "l0_fraction", "l2", "mse", "rmse", "nrmse", "max_abs"):
            assert r[name][0] == 0, name
        assert r["psnr"][0] == math.inf


def test_returns_every_norm_name_in_order():
    r = difference_norms(CAMERA[:4, :4], MOON[:4, :4])
    assert tuple(r) == NORM_NAMES


# --------------------------------------------------------------------------- errors


def test_errors():
    with pytest.raises(ValueError, match=r"images differ in shape: \(4, 4\) vs \(4, 5\)"):
        difference_norms(np.zeros((4, 4), np.uint8), np.zeros((4, 5), np.uint8))
    with pytest.raises(ValueError, match="images differ in dtype: uint8 vs uint16"):
        difference_norms(np.zeros((4, 4), np.uint8), np.zeros((4, 4), np.uint16))
    with pytest.raises(ValueError, match=r"frames_a must be a \(N, H, W\) stack, got shape \(4,\)"):
        pair_difference_norms(np.zeros(4, np.uint8), [0], np.zeros((1, 2, 2), np.uint8), [0])
    with pytest.raises(ValueError, match=r"frames_b must be a \(N, H, W\) stack"):
        pair_difference_norms(np.zeros((1, 2, 2), np.uint8), [0], np.zeros((1, 1, 2, 2), np.uint8), [0])
    with pytest.raises(ValueError, match=r"images differ in shape: \(2, 2\) vs \(2, 3\)"):
        pair_difference_norms(np.zeros((1, 2, 2), np.uint8), [0], np.zeros((1, 2, 3), np.uint8), [0])
    with pytest.raises(ValueError, match="index lists differ in length: 2 vs 1"):
        pair_difference_norms(np.zeros((2, 2, 2), np.uint8), [0, 1], np.zeros((2, 2, 2), np.uint8), [0])


# --------------------------------------------------------------------------- properties

_SIDES = st.integers(1, 9)


@st.composite
def _image_pairs(draw, dtype):
    h, w = draw(_SIDES), draw(_SIDES)
    if dtype == np.uint8:
        elements = st.integers(0, 255)
    else:
        elements = st.floats(0.0, 1.0, allow_nan=False, width=64)
    stack = draw(hnp.arrays(dtype, (2, h, w), elements=elements))
    return stack[0], stack[1]


SYMMETRIC = ("l1", "l1_per_pixel", "l0", "l0_fraction", "l2", "mse", "rmse", "psnr", "max_abs")


@pytest.mark.parametrize("dtype", [np.uint8, np.float64])
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_properties_identity_symmetry_bounds(dtype, data):
    a, b = data.draw(_image_pairs(dtype))
    tol = data.draw(st.sampled_from([0.0, 0.25, 3.0]))
    zero_reference = not np.sum(a.astype(np.float64) ** 2) > 0  # ||a|| = 0 (or underflows)
    same = difference_norms(a, a.copy(), tol=tol)
    for name in NORM_NAMES:
        if name == "psnr":
            assert same[name][0] == math.inf
        elif name == "nrmse" and zero_reference:
            assert math.isnan(same[name][0])
        else:
            assert same[name][0] == 0, name
    ab = difference_norms(a, b, tol=tol)
    ba = difference_norms(b, a, tol=tol)
    for name in SYMMETRIC:
        assert_allclose(ab[name], ba[name], rtol=1e-12, err_msg=name)
    for name in NORM_NAMES:
        if name == "nrmse" and zero_reference:
            assert math.isnan(ab[name][0])  # ||a|| = 0: documented NaN
        else:
            assert ab[name][0] >= 0, name  # psnr too: values inside the data range
    assert 0 <= ab["l0"][0] <= a.size
    assert 0.0 <= ab["l0_fraction"][0] <= 1.0
    assert ab["max_abs"][0] <= ab["l1"][0] <= a.size * ab["max_abs"][0]
    assert ab["l2"][0] <= ab["l1"][0] + 1e-12
