"""Shape reconciliation (resize_area, crop, reconcile_shapes) and alignment.

Oracles: OpenCV ``cv2.resize(..., interpolation=cv2.INTER_AREA)`` for area resizing and
``skimage.registration.phase_cross_correlation`` for the translation estimate, on
photographs from ``skimage.data``.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import scipy.ndimage as ndi
from numpy.testing import assert_allclose, assert_array_equal
from skimage import data
from skimage.registration import phase_cross_correlation

from framediff.kernels import gpu_available
from framediff.kernels.align import overlap, phase_correlation
from framediff.kernels.shape import ShapeMismatchError, crop, reconcile_shapes, resize_area

CAMERA = data.camera()  # (512, 512) uint8
ASTRONAUT = data.astronaut()  # (512, 512, 3) uint8
CHELSEA = data.chelsea()  # (300, 451, 3) uint8


def _cv2_area(image, shape):
    out = cv2.resize(image, (shape[1], shape[0]), interpolation=cv2.INTER_AREA)
    return out.reshape(shape + image.shape[2:])


# --------------------------------------------------------------------------- resize_area


@pytest.mark.parametrize(
    "shape",
    [
        (256, 256),  # integer factor 2
        (128, 64),  # integer factors 4 and 8
        (200, 300),  # non-integer down / up
        (97, 131),  # non-integer down
        (511, 509),  # barely smaller
        (1024, 1536),  # integer upscale
        (519, 517),  # non-integer upscale
        (256, 600),  # mixed: down in y, up in x
        (1, 1),
    ],
)
@pytest.mark.parametrize("name", ["camera", "astronaut", "chelsea"])
def test_resize_area_matches_opencv_inter_area(name, shape):
    image = {"camera": CAMERA, "astronaut": ASTRONAUT, "chelsea": CHELSEA}[name]
    x = image.astype(np.float32) / 255
    out = resize_area(x, shape)
    ref = _cv2_area(x, shape)
    assert out.dtype == np.float64
    assert out.shape == ref.shape
    # OpenCV sums in float32; the figures observed are below 3e-5 (1x1) and 2e-7 otherwise.
    assert_allclose(out, ref, rtol=0, atol=1e-4)


def test_resize_area_random_sizes_match_opencv():
    rng = np.random.default_rng(1)
    for _ in range(60):
        H, W = (int(v) for v in rng.integers(1, 120, 2))
        h, w = (int(v) for v in rng.integers(1, 160, 2))
        x = rng.random((H, W)).astype(np.float32)
        assert_allclose(resize_area(x, (h, w)), _cv2_area(x, (h, w)), rtol=0, atol=1e-4)


def test_resize_area_integer_factor_is_exact_block_mean():
    x = CAMERA.astype(np.float64)
    out = resize_area(CAMERA, (128, 256))  # uint8 in, float64 out
    expected = x.reshape(128, 4, 256, 2).mean(axis=(1, 3))
    assert out.dtype == np.float64
    assert_allclose(out, expected, rtol=0, atol=1e-12)


def test_resize_area_keeps_mean_when_downscaling():
    x = CHELSEA.astype(np.float64)
    out = resize_area(x, (97, 131))
    assert_allclose(out.mean(axis=(0, 1)), x.mean(axis=(0, 1)), rtol=1e-12)


def test_resize_area_same_shape_is_float_copy():
    out = resize_area(CAMERA, CAMERA.shape)
    assert out.dtype == np.float64
    assert_array_equal(out, CAMERA)


@pytest.mark.parametrize("shape", [(0, 5), (5,), (3.5, 4), "ab", (True, 4)])
def test_resize_area_rejects_bad_shape(shape):
    with pytest.raises(ValueError, match="shape must be a pair"):
        resize_area(CAMERA, shape)


def test_resize_area_rejects_4d():
    with pytest.raises(ValueError, match=r"\(H, W\) or \(H, W, C\)"):
        resize_area(np.zeros((2, 3, 4, 5)), (2, 2))


# --------------------------------------------------------------------------- crop


def test_crop_center_and_topleft():
    x = np.arange(7 * 9).reshape(7, 9)
    assert_array_equal(crop(x, (3, 4)), x[2:5, 2:6])
    assert_array_equal(crop(x, (3, 4), anchor="topleft"), x[:3, :4])
    assert_array_equal(crop(x, (3, 4), anchor="CENTER"), x[2:5, 2:6])
    c = crop(ASTRONAUT, (100, 200))
    assert c.shape == (100, 200, 3)
    assert np.shares_memory(c, ASTRONAUT)  # a view


def test_crop_errors():
    with pytest.raises(ValueError, match="unknown crop anchor 'middle'; expected one of center, topleft"):
        crop(CAMERA, (10, 10), anchor="middle")
    with pytest.raises(ValueError, match="cannot crop 600x10 out of an image of 512x512"):
        crop(CAMERA, (600, 10))


# --------------------------------------------------------------------------- reconcile_shapes


def test_reconcile_equal_shapes_is_noop():
    a2, b2, action = reconcile_shapes(CAMERA, CAMERA[::-1])
    assert action == "none"
    assert a2 is CAMERA


def test_reconcile_error_names_both_shapes():
    small = CAMERA[:480, :500]
    with pytest.raises(ShapeMismatchError, match=r"\(512, 512\) vs b \(480, 500\)"):
        reconcile_shapes(CAMERA, small)
    assert issubclass(ShapeMismatchError, ValueError)


def test_reconcile_channel_mismatch_is_refused():
    with pytest.raises(ShapeMismatchError, match="dimensions or channels"):
        reconcile_shapes(CAMERA, ASTRONAUT, resize="first")


def test_reconcile_first_resizes_b_and_keeps_dtype():
    half = _cv2_area(CAMERA, (256, 256))
    a2, b2, action = reconcile_shapes(half, CAMERA, resize="first")
    assert action == "resize b 512x512->256x256"
    assert a2 is half
    assert b2.dtype == np.uint8 and b2.shape == (256, 256)
    # Same area mean as OpenCV, both rounded to uint8.
    assert np.abs(b2.astype(int) - half.astype(int)).max() <= 1


def test_reconcile_smallest_resizes_the_larger_image():
    small = _cv2_area(ASTRONAUT, (200, 300))
    a2, b2, action = reconcile_shapes(ASTRONAUT, small, resize="smallest")
    assert action == "resize a 512x512->200x300"
    assert b2 is small and a2.shape == (200, 300, 3) and a2.dtype == np.uint8
    assert np.abs(a2.astype(int) - small.astype(int)).max() <= 1
    # the other way round, and a tie in pixel count resizes b
    _, _, action = reconcile_shapes(small, ASTRONAUT, resize="smallest")
    assert action == "resize b 512x512->200x300"
    _, b3, action = reconcile_shapes(np.zeros((4, 6)), np.zeros((6, 4)), resize="smallest")
    assert action == "resize b 6x4->4x6" and b3.shape == (4, 6)


def test_reconcile_explicit_shape_resizes_both():
    a2, b2, action = reconcile_shapes(CAMERA, CAMERA[:256], resize=(100, 120))
    assert action == "resize a 512x512->100x120; resize b 256x512->100x120"
    assert a2.shape == b2.shape == (100, 120)
    _, _, action = reconcile_shapes(CAMERA, CAMERA, resize=(512, 512))
    assert action == "none"


def test_reconcile_crop_to_common_extent():
    coffee = data.coffee()  # (400, 600, 3)
    a2, b2, action = reconcile_shapes(coffee, CHELSEA, crop="center")
    assert action == "crop center 300x451"
    assert a2.shape == b2.shape == (300, 451, 3)
    assert_array_equal(a2, coffee[50:350, 74:525])
    assert np.shares_memory(b2, CHELSEA)
    a2, b2, action = reconcile_shapes(CAMERA, CAMERA[:500, 10:], crop="topleft", resize=(100, 100))
    assert action == "crop topleft 500x502; resize a 500x502->100x100; resize b 500x502->100x100"
    assert a2.shape == b2.shape == (100, 100)


@pytest.mark.parametrize("resize", ["largest", (0, 3), 7])
def test_reconcile_unknown_resize(resize):
    with pytest.raises(ValueError, match="unknown resize policy .*expected one of error, first, smallest"):
        reconcile_shapes(CAMERA, CAMERA, resize=resize)


def test_reconcile_unknown_crop():
    expected = "unknown crop anchor 'left'; expected None or one of center, topleft"
    with pytest.raises(ValueError, match=expected):
        reconcile_shapes(CAMERA, CAMERA, crop="left")


# --------------------------------------------------------------------------- phase_correlation


@pytest.mark.parametrize("shift", [(3, -5), (-17, 40), (0, 0), (100, -120), (255, 1)])
def test_phase_correlation_integer_roll(shift):
    b = np.roll(CAMERA, shift, axis=(0, 1))
    dy, dx, peak = phase_correlation(CAMERA, b)
    ref = phase_cross_correlation(CAMERA, b)[0]
    # -shift registers b back; reported modulo the image size, in (-size/2, size/2]
    expected = [(-s) % n - n if (-s) % n > n // 2 else (-s) % n for s, n in zip(shift, CAMERA.shape)]
    assert (dy, dx) == tuple(expected) == tuple(ref)
    assert peak == pytest.approx(1.0, abs=1e-9)


def test_phase_correlation_crop_windows():
    green = ASTRONAUT[..., 1]
    a = green[50:350, 60:400]
    b = green[57:357, 48:388]  # a[y, x] = b[y - 7, x + 12]
    dy, dx, peak = phase_correlation(a, b)
    assert (dy, dx) == (7.0, -12.0) == tuple(phase_cross_correlation(a, b)[0])
    assert 0.3 < peak < 1.0
    a_crop, b_crop = overlap(a, b, (dy, dx))
    assert a_crop.shape == (293, 328)
    assert_array_equal(a_crop, b_crop)


def _fourier_shift(image, shift):
    return np.fft.ifft2(ndi.fourier_shift(np.fft.fft2(image.astype(np.float64)), shift)).real


@pytest.mark.parametrize("upsample_factor", [20, 100])
@pytest.mark.parametrize("shift", [(2.3, -1.65), (-0.45, 0.8), (10.55, -7.35), (1.37, -0.83)])
def test_phase_correlation_subpixel(shift, upsample_factor):
    b = _fourier_shift(CAMERA, shift)
    dy, dx, peak = phase_correlation(CAMERA, b, upsample_factor=upsample_factor)
    # truth: b is CAMERA moved by +shift, so -shift registers it back
    assert abs(dy + shift[0]) < 0.05 and abs(dx + shift[1]) < 0.05
    assert abs(dy + shift[0]) <= 0.5 / upsample_factor + 1e-9
    ref = phase_cross_correlation(CAMERA, b, upsample_factor=upsample_factor)[0]
    # observed: identical to scikit-image to the last bit or within 1e-12
    assert_allclose((dy, dx), ref, rtol=0, atol=0.05)
    assert_allclose((dy, dx), ref, rtol=0, atol=1e-9)
    assert 0.9 < peak <= 1.0


def test_phase_correlation_subpixel_with_noise():
    rng = np.random.default_rng(42)
    truth = (-3.4, 6.15)
    a = CAMERA + rng.normal(0, 5, CAMERA.shape)
    b = _fourier_shift(CAMERA, truth) + rng.normal(0, 5, CAMERA.shape)
    dy, dx, peak = phase_correlation(a, b, upsample_factor=20)
    assert abs(dy + truth[0]) < 0.05 and abs(dx + truth[1]) < 0.05
    ref = phase_cross_correlation(a, b, upsample_factor=20)[0]
    assert_allclose((dy, dx), ref, rtol=0, atol=0.05)
    assert 0 < peak < 1


def test_phase_correlation_peak_low_for_unrelated_images():
    rng = np.random.default_rng(0)
    noise = rng.random(CAMERA.shape)
    _, _, peak = phase_correlation(CAMERA, noise)
    assert 0 <= peak < 0.05
    _, _, peak_up = phase_correlation(CAMERA, noise, upsample_factor=10)
    assert 0 <= peak_up < 0.05


def test_phase_correlation_errors():
    with pytest.raises(ValueError, match="images differ in shape"):
        phase_correlation(CAMERA, CAMERA[:100])
    with pytest.raises(ValueError, match="expected two 2-D images"):
        phase_correlation(ASTRONAUT, ASTRONAUT)
    for bad in (0, 1.5, True):
        with pytest.raises(ValueError, match="upsample_factor must be a positive integer"):
            phase_correlation(CAMERA, CAMERA, upsample_factor=bad)
    x = CAMERA.astype(float)
    x[3, 3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        phase_correlation(x, CAMERA)


# --------------------------------------------------------------------------- overlap


@pytest.mark.parametrize("shift", [(3, -5), (-8, 11), (0, 0)])
def test_overlap_after_roll_is_identical(shift):
    b = np.roll(ASTRONAUT, shift, axis=(0, 1))
    dy, dx, _ = phase_correlation(ASTRONAUT[..., 0], b[..., 0])
    a_crop, b_crop = overlap(ASTRONAUT, b, (dy, dx))
    assert a_crop.shape == (512 - abs(shift[0]), 512 - abs(shift[1]), 3)
    assert_array_equal(a_crop, b_crop)


def test_overlap_rounds_subpixel_shift():
    a_crop, b_crop = overlap(CAMERA, CAMERA, (1.6, -0.4))
    assert a_crop.shape == b_crop.shape == (510, 512)
    assert_array_equal(a_crop, CAMERA[2:])
    assert_array_equal(b_crop, CAMERA[:-2])


def test_overlap_errors():
    with pytest.raises(ValueError, match="images differ in shape"):
        overlap(CAMERA, CAMERA[:10], (0, 0))
    with pytest.raises(ValueError, match="leaves no overlap"):
        overlap(CAMERA, CAMERA, (0, 512))
    with pytest.raises(ValueError, match="shift must be a pair"):
        overlap(CAMERA, CAMERA, (1, 2, 3))


# --------------------------------------------------------------------------- GPU


@pytest.mark.gpu
@pytest.mark.skipif(not gpu_available(), reason="needs a usable CUDA device and CuPy")
def test_gpu_matches_numpy():
    import cupy as cp

    from framediff.kernels import to_numpy

    x = CHELSEA.astype(np.float32) / 255
    gx = cp.asarray(x)
    for shape in [(150, 225), (97, 131), (600, 902), (150, 600)]:
        assert_allclose(to_numpy(resize_area(gx, shape)), resize_area(x, shape), rtol=0, atol=1e-9)

    gray3 = np.ascontiguousarray(CAMERA[:200, :, None].repeat(3, axis=2))
    a2, b2, action = reconcile_shapes(cp.asarray(ASTRONAUT), cp.asarray(gray3), resize="smallest")
    e2, f2, action_np = reconcile_shapes(ASTRONAUT, gray3, resize="smallest")
    assert action == action_np
    # rounding back to uint8 may flip an exact .5 on either side
    assert np.abs(to_numpy(a2).astype(int) - e2).max() <= 1
    assert_array_equal(to_numpy(b2), f2)

    b = _fourier_shift(CAMERA, (2.3, -1.65))
    for up in (1, 20):
        got = phase_correlation(cp.asarray(CAMERA), cp.asarray(b), upsample_factor=up)
        want = phase_correlation(CAMERA, b, upsample_factor=up)
        assert_allclose(got, want, rtol=0, atol=1e-9)
    ga, gb = overlap(cp.asarray(CAMERA), cp.asarray(b), (-2, 2))
    na, nb = overlap(CAMERA, b, (-2, 2))
    assert_array_equal(to_numpy(ga), na)
    assert_array_equal(to_numpy(gb), nb)


def test_reduce_to_is_the_block_mean_by_a_whole_factor():
    from framediff.kernels.shape import reduce_to

    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (1080, 1920), dtype=np.uint8)
    small = reduce_to(image, 256)  # factor ceil(1920 / 256) = 8
    np.testing.assert_allclose(small, image.reshape(135, 8, 240, 8).mean(axis=(1, 3)), rtol=1e-12)
    tiny = image[:40, :60]
    assert reduce_to(tiny, 256) is tiny
