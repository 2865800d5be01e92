"""Exposure normalization and grayscale conversion (``framediff.kernels.normalize``/``color``).

Oracles: ``skimage.exposure.rescale_intensity`` (min-max and percentile stretch),
``scipy.stats.zscore``, ``np.mean`` over channels, ``cv2.cvtColor(COLOR_RGB2GRAY)``
(BT.601 weights), and libjpeg-turbo's own Y plane (``simplejpeg`` decoding a JPEG
to ``GRAY``) for the integer luma.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import simplejpeg
from numpy.testing import assert_allclose, assert_array_equal
from scipy import stats
from skimage import data, exposure

from framediff.kernels import (
    GRAY_METHODS,
    NORMALIZATIONS,
    drop_alpha,
    natural_data_range,
    normalize,
    to_gray,
)

CAMERA = data.camera()  # (512, 512) uint8
MOON = data.moon()  # (512, 512) uint8, low contrast
ASTRONAUT = data.astronaut()  # (512, 512, 3) uint8
COFFEE = data.coffee()  # (400, 600, 3) uint8
CHELSEA = data.chelsea()  # (300, 451, 3) uint8


# --------------------------------------------------------------------------- normalize


@pytest.mark.parametrize("image", ["camera", "moon", "moon-uint16", "chelsea-float"])
def test_minmax_matches_rescale_intensity(image):
    x = {
        "camera": CAMERA,
        "moon": MOON,
        "moon-uint16": MOON.astype(np.uint16) * 257 + 3,
        "chelsea-float": to_gray(CHELSEA, "mean") / 255.0,
    }[image]
    out = normalize(x, "minmax")
    assert out.dtype == np.float64 and out.shape == x.shape
    expected = exposure.rescale_intensity(x.astype(np.float64), in_range="image", out_range=(0, 255))
    assert_allclose(out, expected, rtol=1e-12, atol=1e-12)
    assert out.min() == 0.0 and out.max() == 255.0


def test_minmax_is_the_classic_formula_bit_for_bit():
    x = to_gray(ASTRONAUT, "mean")
    amin, rng = x.min(), x.max() - x.min()
    assert_array_equal(normalize(x, "minmax"), (x - amin) * 255 / rng)


@pytest.mark.parametrize("percentiles", [(1.0, 99.0), (5.0, 95.0), (0.0, 100.0)])
def test_percentile_matches_rescale_intensity(percentiles):
    x = CAMERA.astype(np.float64)
    lo, hi = np.percentile(x, percentiles)
    expected = exposure.rescale_intensity(x, in_range=(lo, hi), out_range=(0, 255))
    out = normalize(CAMERA, "percentile", percentiles=percentiles)
    assert_allclose(out, expected, rtol=1e-12, atol=1e-12)  # observed: <= 3e-14 absolute
    assert out.min() == 0.0 and out.max() == 255.0


def test_zscore_matches_scipy():
    for x in (CAMERA, MOON.astype(np.uint16) * 257, to_gray(COFFEE, "mean") / 255.0):
        assert_allclose(normalize(x, "zscore"), stats.zscore(x.astype(np.float64), axis=None), rtol=1e-12, atol=1e-12)


def test_none_returns_the_input_itself():
    assert normalize(CAMERA, "none") is CAMERA
    assert normalize(CAMERA, "NONE") is CAMERA


@pytest.mark.parametrize("method", ["minmax", "percentile", "zscore"])
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32, np.float64])
def test_constant_image_becomes_zeros(method, dtype):
    flat = np.full((6, 9), 7, dtype)
    out = normalize(flat, method)  # filterwarnings=error: no divide-by-zero warning either
    assert out.dtype == np.float64
    assert_array_equal(out, 0.0)
    assert np.all(np.isfinite(out))


@pytest.mark.parametrize("method", ["minmax", "percentile", "zscore"])
def test_statistics_are_per_image_in_a_batch(method):
    batch = np.stack([CAMERA, MOON, np.full_like(CAMERA, 9)])
    out = normalize(batch, method)
    for i in range(3):
        assert_array_equal(out[i], normalize(batch[i], method))
    assert_array_equal(out[2], 0.0)


def test_percentile_survives_one_hot_pixel_minmax_does_not():
    dark = (CAMERA // 5).astype(np.uint8)  # a dark photograph: 0..51
    hot = dark.copy()
    hot[100, 200] = 255
    rest = np.ones(hot.shape, bool)
    rest[100, 200] = False

    squashed = normalize(hot, "minmax")
    assert squashed[rest].max() == 51 * 255 / 255  # the hot pixel took the whole top of the scale
    assert squashed[rest].std() < 0.25 * normalize(dark, "minmax").std()

    robust = normalize(hot, "percentile")
    assert robust[rest].max() == 255.0  # the rest still spans the full range
    # one pixel in 262144 barely moves the 1st/99th percentiles
    assert_allclose(robust[rest], normalize(dark, "percentile")[rest], atol=1e-9)


def test_normalize_errors():
    expected = "unknown normalization 'histeq'; expected one of none, minmax, percentile, zscore"
    with pytest.raises(ValueError, match=expected):
        normalize(CAMERA, "histeq")
    with pytest.raises(ValueError, match=r"percentiles must satisfy 0 <= low < high <= 100, got \(99, 1\)"):
        normalize(CAMERA, "percentile", percentiles=(99, 1))
    with pytest.raises(ValueError, match=r"percentiles must satisfy 0 <= low < high <= 100, got \(1, 101\)"):
        normalize(CAMERA, "percentile", percentiles=(1, 101))


def test_natural_data_range():
    assert natural_data_range(np.uint8) == 255.0
    assert natural_data_range(np.uint16) == 65535.0
    assert natural_data_range(np.float32) == 1.0
    assert natural_data_range(np.uint16, "minmax") == 255.0
    assert natural_data_range(np.float64, "percentile") == 255.0
    assert natural_data_range(np.uint8, "zscore") == 8.0
    assert NORMALIZATIONS == ("none", "minmax", "percentile", "zscore")


# --------------------------------------------------------------------------- to_gray


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_mean_is_np_mean_over_channels(dtype):
    rgb = COFFEE.astype(dtype)
    out = to_gray(rgb, "mean")
    assert out.dtype == np.float64 and out.shape == rgb.shape[:2]
    assert_array_equal(out, np.mean(rgb, axis=-1, dtype=np.float64))
    assert_array_equal(to_gray(ASTRONAUT, "mean"), np.average(ASTRONAUT, -1))  # the classic call


@pytest.mark.parametrize("photo", ["astronaut", "coffee", "chelsea"])
@pytest.mark.parametrize("subsampling", ["444", "420"])
def test_uint8_luma_equals_libjpeg_y_plane(photo, subsampling):
    """RGB decode + luma vs libjpeg-turbo decoding the same JPEG straight to GRAY."""
    rgb = {"astronaut": ASTRONAUT, "coffee": COFFEE, "chelsea": CHELSEA}[photo]
    jpeg = simplejpeg.encode_jpeg(np.ascontiguousarray(rgb), quality=85, colorspace="RGB", colorsubsampling=subsampling)
    y_plane = simplejpeg.decode_jpeg(jpeg, colorspace="GRAY")[..., 0]
    decoded = simplejpeg.decode_jpeg(jpeg, colorspace="RGB")
    luma = to_gray(decoded, "luma")
    assert luma.dtype == np.uint8 and luma.shape == y_plane.shape
    diff = np.abs(luma.astype(np.int16) - y_plane.astype(np.int16))
    # Where the decoder clamped a channel to 0 or 255 the RGB has lost information, so
    # only pixels with every channel inside 1..254 can be held to libjpeg's Y.
    unclamped = np.all((decoded > 0) & (decoded < 255), axis=-1)
    assert unclamped.mean() > 0.8
    assert diff[unclamped].max() <= 1  # observed: 0 on every unclamped pixel
    assert np.mean(diff[unclamped] == 0) > 0.99


@pytest.mark.parametrize("photo", ["astronaut", "coffee"])
def test_float_luma_matches_opencv_bt601(photo):
    rgb = {"astronaut": ASTRONAUT, "coffee": COFFEE}[photo].astype(np.float32) / 255
    out = to_gray(rgb, "luma")
    assert out.dtype == np.float64
    assert_allclose(out, cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_integer_luma_keeps_dtype_and_rounds(dtype):
    scale = 257 if dtype == np.uint16 else 1
    rgb = CHELSEA.astype(dtype) * scale
    out = to_gray(rgb, "luma")
    assert out.dtype == dtype
    exact = rgb.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    assert np.abs(out - exact).max() <= 0.5 + 1e-6
    # and within one level of OpenCV's own fixed-point BT.601
    reference = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2GRAY)
    assert np.abs(out.astype(np.int64) - reference.astype(np.int64)).max() <= 1


@pytest.mark.parametrize("method", GRAY_METHODS)
def test_alpha_is_dropped(method):
    alpha = np.random.default_rng(0).integers(0, 256, ASTRONAUT.shape[:2], dtype=np.uint8)
    rgba = np.dstack([ASTRONAUT, alpha])
    assert_array_equal(to_gray(rgba, method), to_gray(ASTRONAUT, method))
    gray_alpha = np.dstack([CAMERA, alpha])
    assert_array_equal(to_gray(gray_alpha, method), CAMERA)
    assert_array_equal(drop_alpha(rgba), ASTRONAUT)
    assert drop_alpha(ASTRONAUT) is ASTRONAUT
    assert drop_alpha(CAMERA) is CAMERA


@pytest.mark.parametrize("method", GRAY_METHODS)
def test_gray_inputs_pass_through(method):
    assert to_gray(CAMERA, method) is CAMERA
    assert_array_equal(to_gray(CAMERA[..., None], method), CAMERA)


def test_to_gray_errors():
    with pytest.raises(ValueError, match="unknown gray method 'lightness'; expected one of mean, luma"):
        to_gray(ASTRONAUT, "lightness")
    with pytest.raises(ValueError, match=r"expected an image of shape \(H, W\) or \(H, W, C\), got \(2, 4, 4, 3\)"):
        to_gray(np.zeros((2, 4, 4, 3), np.uint8))
    with pytest.raises(ValueError, match="expected 1, 3 or 4 channels, got 5"):
        to_gray(np.zeros((4, 4, 5), np.uint8))
