"""Colour difference (CIE L*a*b*, Delta E 76), edge maps and SSIM.

Oracles: ``skimage.color.rgb2lab`` / ``deltaE_cie76``, ``scipy.ndimage.sobel`` /
``prewitt``, ``skimage.filters.sobel`` and ``skimage.metrics.structural_similarity``,
on photographs from ``skimage.data``.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage as ndi
from hypothesis import given, settings
from hypothesis.extra.numpy import arrays
from numpy.testing import assert_allclose, assert_array_equal
from skimage import color, data, filters
from skimage.metrics import structural_similarity as sk_ssim

from framediff.kernels import difference_norms, gpu_available
from framediff.kernels.colorspace import delta_e_cie76, delta_e_stats, per_channel, rgb_to_lab
from framediff.kernels.edges import edge_change_fraction, edge_map, gradient_magnitude
from framediff.kernels.ssim import structural_similarity

CAMERA = data.camera()  # (512, 512) uint8
ASTRONAUT = data.astronaut()  # (512, 512, 3) uint8
COFFEE = data.coffee()  # (400, 600, 3) uint8

SK_SSIM = dict(gaussian_weights=True, sigma=1.5, use_sample_covariance=False)


def _noisy_uint8(image, sigma, seed):
    rng = np.random.default_rng(seed)
    return np.clip(image + rng.normal(0.0, sigma, image.shape), 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------- rgb_to_lab


@pytest.mark.parametrize("name", ["astronaut", "coffee"])
@pytest.mark.parametrize("as_float", [False, True])
def test_rgb_to_lab_matches_skimage(name, as_float):
    rgb = {"astronaut": ASTRONAUT, "coffee": COFFEE}[name]
    if as_float:
        rgb = rgb / 255.0
    lab = rgb_to_lab(rgb)
    assert lab.dtype == np.float64 and lab.shape == rgb.shape
    assert_allclose(lab, color.rgb2lab(rgb), rtol=0, atol=1e-6)  # observed: <= 1.2e-13


def test_rgb_to_lab_white_black_and_batch():
    white = np.array([255, 255, 255], np.uint8)
    # a* and b* of white are not exactly 0 with these constants (-0.0025, 0.0047)
    assert_allclose(rgb_to_lab(white), color.rgb2lab(white), atol=1e-12)
    assert_allclose(rgb_to_lab(white), [100, 0, 0], atol=1e-2)
    assert_allclose(rgb_to_lab(np.zeros(3)), [0, 0, 0], atol=1e-12)
    u16 = ASTRONAUT[:8, :8].astype(np.uint16) * 257  # 0..65535 scale
    assert_allclose(rgb_to_lab(u16), rgb_to_lab(ASTRONAUT[:8, :8]), atol=1e-9)
    batch = np.stack([ASTRONAUT[:64, :64], ASTRONAUT[64:128, :64]])
    out = rgb_to_lab(batch)
    assert out.shape == batch.shape
    assert_allclose(out[1], rgb_to_lab(batch[1]), atol=1e-12)


def test_rgb_to_lab_errors():
    with pytest.raises(ValueError, match="3 channels on the last axis"):
        rgb_to_lab(np.zeros((4, 4, 4), np.uint8))
    with pytest.raises(ValueError, match="unsigned integer or float RGB image, got dtype int8"):
        rgb_to_lab(np.zeros((4, 4, 3), np.int8))


# --------------------------------------------------------------------------- delta E


def test_delta_e_cie76_matches_skimage():
    noisy = _noisy_uint8(ASTRONAUT, 8.0, 0)
    out = delta_e_cie76(ASTRONAUT, noisy)
    ref = color.deltaE_cie76(color.rgb2lab(ASTRONAUT), color.rgb2lab(noisy))
    assert out.shape == ASTRONAUT.shape[:2]
    assert_allclose(out, ref, rtol=0, atol=1e-6)  # observed: <= 1.7e-13


def test_delta_e_cie76_properties():
    assert_array_equal(delta_e_cie76(COFFEE, COFFEE), 0.0)
    # uint8 and the same image as float 0..1 are the same colours
    assert_allclose(delta_e_cie76(COFFEE, COFFEE / 255.0), 0.0, atol=1e-12)
    black = np.zeros((1, 1, 3), np.uint8)
    white = np.full((1, 1, 3), 255, np.uint8)
    assert_allclose(delta_e_cie76(black, white), [[100.0]], atol=1e-4)
    noisy = _noisy_uint8(COFFEE, 5.0, 1)
    assert_allclose(delta_e_cie76(COFFEE, noisy), delta_e_cie76(noisy, COFFEE), rtol=1e-12)
    with pytest.raises(ValueError, match="images differ in shape"):
        delta_e_cie76(COFFEE, ASTRONAUT)


def test_delta_e_stats():
    de = delta_e_cie76(ASTRONAUT, _noisy_uint8(ASTRONAUT, 8.0, 0))
    stats = delta_e_stats(de)
    assert set(stats) == {"mean", "p95", "max"}
    assert float(stats["mean"]) == pytest.approx(de.mean(), rel=1e-12)
    assert float(stats["p95"]) == pytest.approx(np.percentile(de, 95), rel=1e-12)
    assert float(stats["max"]) == de.max()
    assert 0 < stats["mean"] < stats["p95"] < stats["max"]
    batch = delta_e_stats(np.stack([de, np.zeros_like(de)]))
    assert batch["mean"].shape == (2,)
    assert_allclose(batch["p95"], [float(stats["p95"]), 0.0], rtol=1e-12)
    with pytest.raises(ValueError, match=r"\(H, W\) or \(B, H, W\)"):
        delta_e_stats(np.zeros(10))


def test_per_channel():
    view = per_channel(ASTRONAUT)
    assert view.shape == (3, 512, 512)
    assert np.shares_memory(view, ASTRONAUT)
    assert_array_equal(view[2], ASTRONAUT[..., 2])
    assert per_channel(CAMERA).shape == (1, 512, 512)
    noisy = _noisy_uint8(ASTRONAUT, 4.0, 2)
    l1 = difference_norms(per_channel(ASTRONAUT), per_channel(noisy))["l1"]
    assert l1.shape == (3,)
    assert_array_equal(l1, [np.abs(ASTRONAUT[..., c].astype(int) - noisy[..., c]).sum() for c in range(3)])
    with pytest.raises(ValueError, match=r"\(H, W\) or \(H, W, C\)"):
        per_channel(np.zeros((2, 2, 2, 2)))


# --------------------------------------------------------------------------- edges


@pytest.mark.parametrize("operator", ["sobel", "prewitt"])
def test_gradient_magnitude_matches_ndimage(operator):
    x = CAMERA.astype(np.float64)
    op = getattr(ndi, operator)
    ref = np.hypot(op(x, 0, mode="reflect"), op(x, 1, mode="reflect"))
    out = gradient_magnitude(CAMERA, operator)
    assert out.dtype == np.float64
    assert_allclose(out, ref, rtol=0, atol=1e-9)  # observed: 0.0


@pytest.mark.parametrize("operator, factor", [("sobel", 4 * np.sqrt(2)), ("prewitt", 3 * np.sqrt(2))])
def test_gradient_magnitude_is_scaled_skimage(operator, factor):
    x = CAMERA / 255.0
    ref = getattr(filters, operator)(x)
    assert_allclose(gradient_magnitude(x, operator) / factor, ref, rtol=0, atol=1e-12)


def test_gradient_magnitude_batch_and_errors():
    batch = np.stack([CAMERA, ASTRONAUT[..., 0]])
    out = gradient_magnitude(batch, "SOBEL")
    assert_array_equal(out[1], gradient_magnitude(ASTRONAUT[..., 0]))
    with pytest.raises(ValueError, match="unknown edge operator 'canny'; expected one of sobel, prewitt"):
        gradient_magnitude(CAMERA, "canny")
    with pytest.raises(ValueError, match=r"\(H, W\) or \(B, H, W\)"):
        gradient_magnitude(ASTRONAUT[None], "sobel")


def test_edge_map_default_and_explicit_threshold():
    edges = edge_map(CAMERA)
    assert edges.dtype == bool
    assert 0.01 < edges.mean() < 0.15  # observed: 0.044
    magnitude = gradient_magnitude(CAMERA)
    assert_array_equal(edges, magnitude > magnitude.mean() + 2 * magnitude.std())
    assert_array_equal(edge_map(CAMERA, threshold=100.0), magnitude > 100.0)
    assert not edge_map(np.full((32, 32), 9, np.uint8)).any()
    batch = edge_map(np.stack([CAMERA, np.full_like(CAMERA, 3)]))
    assert_array_equal(batch[0], edges)
    assert not batch[1].any()
    for bad in (-1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="threshold must be a finite number >= 0"):
            edge_map(CAMERA, threshold=bad)


def test_edge_change_fraction_identical_and_shifted_object():
    a = ASTRONAUT[..., 1]
    edges = edge_map(a)
    assert float(edge_change_fraction(edges, edges)) == 0.0
    # a square object that moves by 6 pixels
    scene = np.full((128, 128), 40, np.uint8)
    moved = scene.copy()
    scene[30:70, 30:70] = 200
    moved[36:76, 30:70] = 200
    e1, e2 = edge_map(scene, threshold=100), edge_map(moved, threshold=100)
    frac = float(edge_change_fraction(e1, e2))
    assert 0.2 < frac < 1.0
    # an exposure change keeps the structure, so the same threshold relative to the scale
    brighter = np.clip(a.astype(int) * 1.2, 0, 255).astype(np.uint8)
    assert float(edge_change_fraction(edges, edge_map(brighter))) < 0.25
    assert float(edge_change_fraction(np.zeros((5, 5), bool), np.zeros((5, 5), bool))) == 0.0
    assert float(edge_change_fraction(np.zeros((5, 5), bool), np.ones((5, 5), bool))) == 1.0


def test_edge_change_fraction_batch_and_errors():
    e = edge_map(np.stack([CAMERA, np.roll(CAMERA, 4, axis=1)]))
    out = edge_change_fraction(e, e[::-1])
    assert out.shape == (2,)
    assert out[0] == out[1] > 0
    with pytest.raises(ValueError, match="edge maps differ in shape"):
        edge_change_fraction(e, e[0])
    with pytest.raises(ValueError, match=r"\(H, W\) or \(B, H, W\)"):
        edge_change_fraction(np.zeros(4, bool), np.zeros(4, bool))


@settings(max_examples=50, deadline=None)
@given(
    arrays(np.bool_, (2, 6, 7)),
)
def test_edge_change_fraction_is_a_bounded_symmetric_distance(maps):
    a, b = maps
    value = float(edge_change_fraction(a, b))
    assert 0.0 <= value <= 1.0
    assert value == float(edge_change_fraction(b, a))
    assert (value == 0.0) == bool((a == b).all())
    union = (a | b).sum()
    assert value == pytest.approx((a ^ b).sum() / union if union else 0.0)


# --------------------------------------------------------------------------- SSIM


def test_ssim_uint8_with_noise_matches_skimage():
    noisy = _noisy_uint8(CAMERA, 20.0, 0)
    out = structural_similarity(CAMERA, noisy, data_range=255)
    ref = sk_ssim(CAMERA, noisy, data_range=255, **SK_SSIM)
    assert np.ndim(out) == 0
    assert float(out) == pytest.approx(ref, abs=1e-4)  # observed: identical (0.0)
    assert 0.2 < float(out) < 0.9


def test_ssim_float_full_map_matches_skimage():
    rng = np.random.default_rng(5)
    a = ASTRONAUT[..., 0] / 255.0
    b = np.clip(a + rng.normal(0, 0.05, a.shape), 0, 1)
    mssim, ssim_map = structural_similarity(a, b, data_range=1.0, full=True)
    ref, ref_map = sk_ssim(a, b, data_range=1.0, full=True, **SK_SSIM)
    assert float(mssim) == pytest.approx(ref, abs=1e-4)
    assert ssim_map.shape == a.shape
    assert_allclose(ssim_map, ref_map, rtol=0, atol=1e-6)


def test_ssim_uint8_equals_float_in_same_units():
    noisy = _noisy_uint8(CAMERA, 10.0, 1)
    u = structural_similarity(CAMERA, noisy, data_range=255)
    f = structural_similarity(CAMERA / 255.0, noisy / 255.0, data_range=1.0)
    assert float(u) == pytest.approx(float(f), abs=1e-9)
    mixed = structural_similarity(CAMERA, noisy.astype(np.float32), data_range=255)
    assert float(mixed) == pytest.approx(float(u), abs=1e-9)


def test_ssim_batch_and_identity():
    noisy = _noisy_uint8(CAMERA, 20.0, 0)
    batch_a = np.stack([CAMERA, CAMERA, noisy])
    batch_b = np.stack([noisy, CAMERA, CAMERA])
    out = structural_similarity(batch_a, batch_b, data_range=255)
    assert out.shape == (3,)
    single = float(structural_similarity(CAMERA, noisy, data_range=255))
    assert_allclose(out, [single, 1.0, single], rtol=0, atol=1e-12)
    _, maps = structural_similarity(batch_a, batch_b, data_range=255, full=True)
    assert maps.shape == batch_a.shape


def test_ssim_errors():
    with pytest.raises(ValueError, match="images differ in shape"):
        structural_similarity(CAMERA, CAMERA[:100], data_range=255)
    with pytest.raises(ValueError, match="empty images"):
        structural_similarity(CAMERA[:0], CAMERA[:0], data_range=255)
    with pytest.raises(ValueError, match="data_range must be > 0"):
        structural_similarity(CAMERA, CAMERA, data_range=0)
    with pytest.raises(ValueError, match=r"\(H, W\) or \(B, H, W\)"):
        structural_similarity(ASTRONAUT[None], ASTRONAUT[None], data_range=255)
    with pytest.raises(TypeError):
        structural_similarity(CAMERA, CAMERA)  # data_range is required


# --------------------------------------------------------------------------- GPU


@pytest.mark.gpu
@pytest.mark.skipif(not gpu_available(), reason="needs a usable CUDA device and CuPy")
def test_gpu_matches_numpy():
    import cupy as cp

    from framediff.kernels import to_numpy

    noisy_rgb = _noisy_uint8(ASTRONAUT, 8.0, 0)
    ga, gb = cp.asarray(ASTRONAUT), cp.asarray(noisy_rgb)
    assert_allclose(to_numpy(rgb_to_lab(ga)), rgb_to_lab(ASTRONAUT), rtol=1e-12, atol=1e-9)
    de_gpu = delta_e_cie76(ga, gb)
    de = delta_e_cie76(ASTRONAUT, noisy_rgb)
    assert_allclose(to_numpy(de_gpu), de, rtol=1e-12, atol=1e-9)
    for key, value in delta_e_stats(de_gpu).items():
        assert_allclose(to_numpy(value), delta_e_stats(de)[key], rtol=1e-12, atol=1e-9)
    assert_array_equal(to_numpy(per_channel(ga)), per_channel(ASTRONAUT))

    batch = np.stack([CAMERA, np.roll(CAMERA, 3, axis=0)])
    gbatch = cp.asarray(batch)
    for op in ("sobel", "prewitt"):
        assert_allclose(to_numpy(gradient_magnitude(gbatch, op)), gradient_magnitude(batch, op), atol=1e-9)
    e_gpu, e = edge_map(gbatch), edge_map(batch)
    assert (to_numpy(e_gpu) != e).mean() < 1e-4  # threshold ties may round differently
    assert_allclose(to_numpy(edge_change_fraction(e_gpu, e_gpu[::-1])), edge_change_fraction(e, e[::-1]), atol=1e-3)

    noisy = _noisy_uint8(CAMERA, 20.0, 0)
    m_gpu, map_gpu = structural_similarity(cp.asarray(CAMERA), cp.asarray(noisy), data_range=255, full=True)
    m, ssim_map = structural_similarity(CAMERA, noisy, data_range=255, full=True)
    assert float(m_gpu) == pytest.approx(float(m), abs=1e-9)
    assert_allclose(to_numpy(map_gpu), ssim_map, atol=1e-9)
