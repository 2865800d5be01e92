"""Image signatures (``framediff.kernels.signatures``).

Oracle: ``imagehash.phash`` on the same 32 x 32 thumbnail (the DCT hash is the same
computation); ``numpy.unpackbits`` for Hamming distances; photographs from
``skimage.data``.
"""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from skimage import data

from framediff.kernels import gpu_available, to_gray
from framediff.kernels.signatures import block_means, dct_hash, hamming, level_means, thumbnail

ASTRONAUT = data.astronaut()
PHOTOS = [data.astronaut(), data.camera(), data.coffee(), data.chelsea(), data.rocket(), data.moon()]


def _thumbs(images, side=32):
    return np.stack([thumbnail(im, side=side) for im in images])


def test_thumbnail_of_colour_is_thumbnail_of_its_luma():
    t = thumbnail(ASTRONAUT)
    assert t.shape == (32, 32) and t.dtype == np.float32
    assert_allclose(t, thumbnail(to_gray(ASTRONAUT, "luma")), atol=1e-4)


@pytest.mark.parametrize("image", [data.coffee(), data.moon()[:300, :451], data.camera()[:40, :33]])
def test_thumbnail_is_the_area_resize(image):
    from framediff.kernels.shape import resize_area

    expected = resize_area(to_gray(image, "luma"), (32, 32))
    assert_allclose(thumbnail(image), expected, rtol=1e-5, atol=1e-3)


def test_thumbnail_is_block_mean_for_integer_factors():
    image = np.arange(64.0).reshape(8, 8)
    assert_allclose(thumbnail(image, side=4), image.reshape(4, 2, 4, 2).mean(axis=(1, 3)))


@pytest.mark.parametrize("side", [0, -3, 2.5])
def test_thumbnail_refuses_bad_side(side):
    with pytest.raises(ValueError, match="side must be a positive integer"):
        thumbnail(ASTRONAUT, side=side)


def test_block_means_are_zero_mean_unit_length():
    v = block_means(_thumbs(PHOTOS), grid=8)
    assert v.shape == (len(PHOTOS), 64) and v.dtype == np.float32
    assert_allclose(v.mean(axis=1), 0, atol=1e-6)
    assert_allclose(np.linalg.norm(v, axis=1), 1, rtol=1e-5)


def test_block_means_ignore_brightness_and_contrast():
    t = _thumbs(PHOTOS[:2])
    assert_allclose(block_means(0.7 * t + 20, grid=8), block_means(t, grid=8), atol=1e-5)


def test_block_means_of_different_photos_differ():
    v = block_means(_thumbs(PHOTOS), grid=8).astype(np.float64)
    d2 = ((v[:, None] - v[None]) ** 2).sum(-1)
    assert d2[np.triu_indices(len(PHOTOS), 1)].min() > 0.3  # the default search radius


def test_block_means_of_a_flat_thumbnail_are_zero():
    v = block_means(np.full((1, 32, 32), 128.0, np.float32), grid=8)
    assert_array_equal(v, 0)


def test_block_means_refuse_a_grid_that_does_not_divide():
    with pytest.raises(ValueError, match="not a multiple of grid 7"):
        block_means(np.zeros((1, 32, 32)), grid=7)
    with pytest.raises(ValueError, match="stack of square thumbnails"):
        block_means(np.zeros((1, 32, 16)))


@pytest.mark.parametrize("bits", [64, 256])
def test_dct_hash_equals_imagehash_phash(bits):
    imagehash = pytest.importorskip("imagehash")
    from PIL import Image

    # imagehash resizes to 4 sqrt(bits) pixels a side: give it a thumbnail that size.
    k = int(np.sqrt(bits))
    thumbs = np.round(_thumbs(PHOTOS, side=4 * k)).astype(np.uint8)
    codes = dct_hash(thumbs.astype(np.float32), bits=bits)
    assert codes.shape == (len(PHOTOS), bits // 8) and codes.dtype == np.uint8
    for thumb, code in zip(thumbs, codes):
        reference = imagehash.phash(Image.fromarray(thumb), hash_size=k).hash.ravel()
        assert_array_equal(np.unpackbits(code).astype(bool), reference)


def test_dct_hash_refuses_other_lengths_and_small_thumbnails():
    with pytest.raises(ValueError, match="bits must be 64 or 256"):
        dct_hash(np.zeros((1, 32, 32)), bits=128)
    with pytest.raises(ValueError, match="side >= 16"):
        dct_hash(np.zeros((1, 8, 8)), bits=256)


def test_hamming_counts_differing_bits():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (50, 8), dtype=np.uint8)
    b = rng.integers(0, 256, (50, 8), dtype=np.uint8)
    expected = (np.unpackbits(a, axis=1) != np.unpackbits(b, axis=1)).sum(axis=1)
    assert_array_equal(hamming(a, b), expected)
    assert_array_equal(hamming(a, a), 0)
    assert hamming(a[:, None], b[None]).shape == (50, 50)  # broadcasting: all pairs of two sets


@pytest.mark.gpu
@pytest.mark.skipif(not gpu_available(), reason="needs a usable CUDA device and CuPy")
def test_gpu_signatures_equal_cpu():
    import cupy

    thumbs = _thumbs(PHOTOS)
    gpu = cupy.asarray(thumbs)
    assert_allclose(cupy.asnumpy(block_means(gpu, grid=8)), block_means(thumbs, grid=8), atol=1e-5)
    assert_array_equal(cupy.asnumpy(dct_hash(gpu)), dct_hash(thumbs))
    assert_allclose(cupy.asnumpy(level_means(gpu)), level_means(thumbs), atol=1e-6)
    assert_allclose(cupy.asnumpy(thumbnail(cupy.asarray(ASTRONAUT))), thumbnail(ASTRONAUT), rtol=1e-5)


def test_block_means_shortens_low_contrast_rows_below_the_floor():
    rng = np.random.default_rng(5)
    pattern = rng.random((32, 32))
    stack = np.stack([pattern, 0.01 * pattern, np.full((32, 32), 0.5)])
    plain = block_means(stack, grid=8)
    floored = block_means(stack, grid=8, floor=1 / 16)
    # Without a floor a faint copy is blown up to the same unit vector as the strong one.
    np.testing.assert_allclose(plain[0], plain[1], atol=1e-6)
    lengths = np.linalg.norm(floored, axis=1)
    assert lengths[0] == pytest.approx(1.0, abs=1e-6)
    assert 0 < lengths[1] < 0.1 and lengths[2] == 0.0
    # The floored faint row points the same way: a shorter copy, not another pattern.
    np.testing.assert_allclose(floored[1] / lengths[1], floored[0], atol=1e-5)


@pytest.mark.parametrize("clip", [0.0, 0.05, 0.2])
def test_level_means_are_block_means_of_the_percentile_clipped_thumbnail(clip):
    thumbs = _thumbs(PHOTOS) / 255.0
    n = thumbs.shape[1] ** 2
    flat = thumbs.reshape(len(thumbs), -1)
    # The oracle: a full sort, read at the ranks of the clip's lower and upper quantiles.
    ranked = np.sort(flat, axis=1)
    lo = ranked[:, int(np.floor(clip * (n - 1)))]
    hi = ranked[:, int(np.ceil((1 - clip) * (n - 1)))]
    clipped = np.clip(thumbs, lo[:, None, None], hi[:, None, None])
    expected = clipped.reshape(len(thumbs), 8, 4, 8, 4).mean(axis=(2, 4)).reshape(len(thumbs), -1)
    got = level_means(thumbs, grid=8, clip=clip)
    assert got.shape == (len(PHOTOS), 64) and got.dtype == np.float32
    assert_allclose(got, expected, rtol=1e-6, atol=1e-7)


def test_level_means_ignore_a_few_odd_pixels_that_break_correlation():
    """A near-flat picture with a few bright pixels here or there: the correlation
    search sees two unrelated patterns, the levels see the same flat sky."""
    rng = np.random.default_rng(7)
    sky = 0.6 + 0.004 * rng.standard_normal((2, 32, 32))
    sky[0, 3:6, 4:8] = 1.0  # a bird on the left of one (12 of 1,024 pixels)
    sky[1, 25:28, 20:24] = 0.1  # a dark one on the right of the other
    corr = block_means(sky, grid=8)
    assert ((corr[0] - corr[1]) ** 2).sum() > 1.5  # uncorrelated: far apart
    levels = level_means(sky, grid=8)
    assert ((levels[0] - levels[1]) ** 2).sum() < 0.001
    unclipped = level_means(sky, grid=8, clip=0)
    assert ((unclipped[0] - unclipped[1]) ** 2).sum() > 0.1  # the clipping is what does it
    brighter = level_means(sky + 0.1, grid=8)
    assert ((levels[0] - brighter[0]) ** 2).sum() > 0.5  # absolute: a brighter sky is elsewhere


@pytest.mark.parametrize("kw", [{"clip": 0.5}, {"clip": -0.1}, {"grid": 5}])
def test_level_means_refuse_bad_parameters(kw):
    with pytest.raises(ValueError):
        level_means(np.zeros((1, 32, 32)), **kw)
