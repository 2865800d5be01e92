"""Smoothing filters and exposure matching.

Oracles: ``scipy.ndimage.gaussian_filter`` / ``median_filter`` and
``skimage.exposure.match_histograms``, on photographs from ``skimage.data``.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage as ndi
from numpy.testing import assert_allclose, assert_array_equal
from skimage import data, exposure

from framediff.kernels import difference_norms, gpu_available, normalize
from framediff.kernels.exposure import match_histograms, match_mean_std
from framediff.kernels.filters import gaussian_blur, median_filter

CAMERA = data.camera()  # (512, 512) uint8
ASTRONAUT = data.astronaut()  # (512, 512, 3) uint8
COFFEE = data.coffee()  # (400, 600, 3) uint8


def _noisy(image, sigma, seed):
    rng = np.random.default_rng(seed)
    return image / 255.0 + rng.normal(0.0, sigma, image.shape)


# --------------------------------------------------------------------------- gaussian_blur


@pytest.mark.parametrize("sigma", [0.5, 1.0, 2.5, 4.0])
def test_gaussian_blur_matches_scipy(sigma):
    x = CAMERA.astype(np.float64)
    out = gaussian_blur(CAMERA, sigma)
    ref = ndi.gaussian_filter(x, sigma, mode="reflect", truncate=4.0)
    assert out.dtype == np.float64
    assert_allclose(out, ref, rtol=0, atol=1e-9)  # observed: 0.0


def test_gaussian_blur_truncate_and_float_input():
    x = _noisy(COFFEE[..., 1], 0.05, 0)
    assert_allclose(
        gaussian_blur(x, 1.5, truncate=3.5),
        ndi.gaussian_filter(x, 1.5, mode="reflect", truncate=3.5),
        rtol=0,
        atol=1e-9,
    )


def test_gaussian_blur_batch_is_per_image():
    batch = np.stack([CAMERA, ASTRONAUT[..., 0], ASTRONAUT[..., 2]])
    out = gaussian_blur(batch, 2.0)
    for i in range(3):
        assert_allclose(out[i], gaussian_blur(batch[i], 2.0), rtol=0, atol=1e-12)


def test_gaussian_blur_sigma_zero_and_flat_image():
    out = gaussian_blur(CAMERA, 0)
    assert out.dtype == np.float64
    assert_array_equal(out, CAMERA)
    x = np.full((20, 30), 7.0)
    y = gaussian_blur(x, 0)
    assert y is not x  # never the caller's array
    assert_allclose(gaussian_blur(x, 3.0), 7.0, rtol=1e-12)


def test_gaussian_blur_errors():
    with pytest.raises(ValueError, match="sigma must be >= 0"):
        gaussian_blur(CAMERA, -1)
    with pytest.raises(ValueError, match="truncate must be >= 0"):
        gaussian_blur(CAMERA, 1, truncate=-2)
    with pytest.raises(ValueError, match=r"\(H, W\) or \(B, H, W\)"):
        gaussian_blur(np.zeros(5), 1)


# --------------------------------------------------------------------------- median_filter


@pytest.mark.parametrize("size", [1, 3, 4, 5])
@pytest.mark.parametrize("dtype", [np.uint8, np.float64])
def test_median_filter_matches_scipy(size, dtype):
    image = CAMERA[100:300, 150:400].astype(dtype)
    out = median_filter(image, size)
    assert out.dtype == image.dtype
    assert_array_equal(out, ndi.median_filter(image, size=size, mode="reflect"))


def test_median_filter_removes_salt_and_pepper_and_batches():
    rng = np.random.default_rng(3)
    image = CAMERA.copy()
    idx = rng.integers(0, 512, (2, 500))
    image[idx[0], idx[1]] = 255
    clean = median_filter(image, 3)
    assert np.abs(clean.astype(int) - median_filter(CAMERA, 3).astype(int)).mean() < 0.5
    batch = np.stack([image, CAMERA])
    out = median_filter(batch, 3)
    assert_array_equal(out[0], clean)
    assert_array_equal(out[1], median_filter(CAMERA, 3))


@pytest.mark.parametrize("size", [0, 2.5, True, "3"])
def test_median_filter_rejects_bad_size(size):
    with pytest.raises(ValueError, match="size must be a positive integer"):
        median_filter(CAMERA, size)


# --------------------------------------------------------------------------- match_histograms


def test_match_histograms_uint8_matches_skimage():
    reference = ASTRONAUT[..., 0]
    out = match_histograms(CAMERA, reference)
    ref = exposure.match_histograms(CAMERA, reference)
    assert out.dtype == np.float64 and out.shape == CAMERA.shape
    assert_allclose(out, ref, rtol=0, atol=1e-6)  # observed: 0.0


def test_match_histograms_float_matches_skimage():
    image = _noisy(CAMERA, 0.01, 0)
    reference = _noisy(COFFEE[..., 0], 0.02, 1)  # another size
    out = match_histograms(image, reference)
    assert_allclose(out, exposure.match_histograms(image, reference), rtol=0, atol=1e-6)


def test_match_histograms_colour_is_per_channel():
    image = ASTRONAUT / 255.0
    reference = COFFEE / 255.0
    out = match_histograms(image, reference)
    ref = exposure.match_histograms(image, reference, channel_axis=-1)
    assert_allclose(out, ref, rtol=0, atol=1e-6)


def test_match_histograms_to_itself_is_identity():
    assert_array_equal(match_histograms(CAMERA, CAMERA), CAMERA)


def test_match_histograms_errors():
    with pytest.raises(ValueError, match=r"two \(H, W\) or two \(H, W, C\) images"):
        match_histograms(CAMERA, ASTRONAUT)
    with pytest.raises(ValueError, match="differ in number of channels: 3 vs 2"):
        match_histograms(ASTRONAUT, ASTRONAUT[..., :2])


# --------------------------------------------------------------------------- match_mean_std


def test_match_mean_std_moments():
    reference = ASTRONAUT[..., 1]
    out = match_mean_std(CAMERA, reference)
    assert out.dtype == np.float64
    assert out.mean() == pytest.approx(reference.mean(), rel=1e-12)
    assert out.std() == pytest.approx(reference.std(), rel=1e-12)
    # affine and increasing: the ranks of the pixels are kept
    corr = np.corrcoef(out.ravel(), CAMERA.ravel())[0, 1]
    assert corr == pytest.approx(1.0, abs=1e-12)


def test_match_mean_std_colour_and_constant_image():
    out = match_mean_std(ASTRONAUT, COFFEE)
    assert_allclose(out.mean(axis=(0, 1)), COFFEE.mean(axis=(0, 1)), rtol=1e-9)
    assert_allclose(out.std(axis=(0, 1)), COFFEE.std(axis=(0, 1)), rtol=1e-9)
    flat = np.full((10, 10), 42, np.uint8)
    out = match_mean_std(flat, CAMERA)
    assert np.isfinite(out).all()
    assert_allclose(out, CAMERA.mean(), rtol=1e-12)


def test_match_mean_std_errors():
    with pytest.raises(ValueError, match=r"two \(H, W\) or two \(H, W, C\) images"):
        match_mean_std(CAMERA, ASTRONAUT)
    with pytest.raises(ValueError, match="differ in number of channels"):
        match_mean_std(ASTRONAUT, COFFEE[..., :1])


# --------------------------------------------------------------------------- why it matters


def test_exposure_change_with_one_hot_pixel_defeats_minmax():
    """A dark frame, and the same frame 1.5x brighter with one saturated pixel.

    Min-max normalization lets the single 255 pixel set the scale of the bright frame,
    so every other pixel lands far from its twin. Percentile normalization ignores the
    pixel; histogram and mean/std matching map the bright frame back onto the dark one.
    All differences are measured in the dark frame's min-max space (0..255).
    """
    dark = np.rint(10 + CAMERA * (50 / 255)).astype(np.uint8)  # values 10..60
    bright = np.rint(dark * 1.5).astype(np.uint8)
    bright[100, 200] = 255

    def l1(a, b):
        return float(difference_norms(a, b)["l1_per_pixel"][0])

    minmax = l1(normalize(dark, "minmax"), normalize(bright, "minmax"))
    percentile = l1(normalize(dark, "percentile"), normalize(bright, "percentile"))

    lo, span = float(dark.min()), float(dark.max() - dark.min())

    def in_dark_space(x):
        return (np.asarray(x, np.float64) - lo) * 255 / span

    by_hist = l1(in_dark_space(dark), in_dark_space(match_histograms(bright, dark)))
    by_moments = l1(in_dark_space(dark), in_dark_space(match_mean_std(bright, dark)))

    assert minmax > 20  # observed: minmax 88.8, percentile 1.72, histograms 0.0015, mean_std 0.97
    for name, value in [("percentile", percentile), ("histograms", by_hist), ("mean_std", by_moments)]:
        assert value * 5 <= minmax, f"{name}: {value} vs minmax {minmax}"


# --------------------------------------------------------------------------- GPU


@pytest.mark.gpu
@pytest.mark.skipif(not gpu_available(), reason="needs a usable CUDA device and CuPy")
def test_gpu_matches_numpy():
    import cupy as cp

    from framediff.kernels import to_numpy

    batch = np.stack([CAMERA, ASTRONAUT[..., 1]])
    g = cp.asarray(batch)
    assert_allclose(to_numpy(gaussian_blur(g, 1.7)), gaussian_blur(batch, 1.7), rtol=1e-12, atol=1e-9)
    assert_allclose(
        to_numpy(gaussian_blur(g[0], 1.5, truncate=3.5)),
        gaussian_blur(batch[0], 1.5, truncate=3.5),
        atol=1e-9,
    )
    assert_array_equal(to_numpy(median_filter(g, 5)), median_filter(batch, 5))

    reference = ASTRONAUT[..., 0]
    assert_allclose(
        to_numpy(match_histograms(cp.asarray(CAMERA), cp.asarray(reference))),
        match_histograms(CAMERA, reference),
        rtol=0,
        atol=1e-9,
    )
    image, ref_f = _noisy(CAMERA, 0.01, 0), _noisy(COFFEE[..., 0], 0.02, 1)
    assert_allclose(
        to_numpy(match_histograms(cp.asarray(image), cp.asarray(ref_f))),
        match_histograms(image, ref_f),
        rtol=0,
        atol=1e-9,
    )
    assert_allclose(
        to_numpy(match_mean_std(cp.asarray(ASTRONAUT), cp.asarray(COFFEE))),
        match_mean_std(ASTRONAUT, COFFEE),
        rtol=1e-10,
        atol=1e-9,
    )
