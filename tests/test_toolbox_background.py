"""Per-pixel background model (update_background).

Oracle: a synthetic video with known ground truth -- a static photograph from
``skimage.data`` plus seeded Gaussian noise (sigma 3 grey levels) and a bright 20 x 20
square (400 pixels) moving over it -- so the true foreground area of every frame is
known exactly.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from numpy.testing import assert_array_equal
from skimage import data

from framediff.kernels import gpu_available, to_numpy
from framediff.kernels.background import BackgroundModel, update_background
from framediff.kernels.background_samples import (
    SampleModel,
    background_frame,
    majority_filter,
    update_sample_background,
)
from framediff.kernels.register import register_to, translate

H, W = 120, 160
SQUARE = 20
N_FRAMES = 60
WARMUP = 10
# The photograph, scaled to 20..180 so a square at 240 stands out everywhere.
SCENE = 20.0 + data.camera()[100:340:2, 60:380:2].astype(np.float64) * (160.0 / 255.0)


def _square_corner(t, n_frames=N_FRAMES):
    """Top-left corner of the square at frame t: two loops of an ellipse, ~9 px/frame.

    Fast enough that during warm-up no pixel is covered in more than 3 of 10 frames,
    and the square comes back over its warm-up path.
    """
    angle = 4 * np.pi * t / n_frames
    y = (H - SQUARE) / 2 + 35 * np.sin(angle)
    x = (W - SQUARE) / 2 + 55 * np.cos(angle)
    return int(round(y)), int(round(x))


def _video(seed=0, *, square=True, start=0, noise=3.0, n_frames=N_FRAMES, dtype=np.uint8, scale=1.0):
    """Frames (uint8 by default) and the true foreground masks."""
    rng = np.random.default_rng(seed)
    frames = np.empty((n_frames, H, W), dtype=dtype)
    truth = np.zeros((n_frames, H, W), dtype=bool)
    for t in range(n_frames):
        frame = SCENE + rng.normal(0.0, noise, SCENE.shape)
        if square and t >= start:
            y, x = _square_corner(t)
            frame[y : y + SQUARE, x : x + SQUARE] = 240.0 + rng.normal(0.0, noise, (SQUARE, SQUARE))
            truth[t, y : y + SQUARE, x : x + SQUARE] = True
        frame = np.clip(np.round(frame), 0, 255) * scale
        frames[t] = frame.astype(dtype) if np.issubdtype(dtype, np.integer) else frame / 255.0
    return frames, truth


@pytest.mark.parametrize("mode", ["ema", "window"])
@pytest.mark.parametrize("start", [0, WARMUP], ids=["present-in-warmup", "enters-after-warmup"])
def test_moving_square_area_within_10_percent(mode, start):
    frames, truth = _video(start=start)
    state, fraction, masks = update_background(None, frames, mode=mode, warmup=WARMUP, return_masks=True)
    expected = SQUARE * SQUARE / (H * W)
    assert np.isnan(fraction[:WARMUP]).all()
    assert not masks[:WARMUP].any()
    after = fraction[WARMUP:]
    assert np.all(np.abs(after - expected) <= 0.1 * expected), np.round(after * H * W)
    # The pixels found are the square's: intersection over union near 1 in every frame.
    inter = (masks[WARMUP:] & truth[WARMUP:]).sum(axis=(1, 2))
    union = (masks[WARMUP:] | truth[WARMUP:]).sum(axis=(1, 2))
    assert (inter / union).min() > 0.95
    assert state.frames_seen == N_FRAMES


@pytest.mark.parametrize("mode", ["ema", "window"])
def test_static_noisy_scene_has_almost_no_foreground(mode):
    frames, _ = _video(seed=1, square=False)
    _, fraction, _ = update_background(None, frames, mode=mode, warmup=WARMUP)
    assert np.nanmax(fraction) < 0.01


def test_without_cleaning_gaussian_tails_show():
    # The arithmetic the default 3x3 opening deals with: with k = 2 about 4.6 % of
    # background pixels fall outside 2 sigma in every frame of a noisy static scene.
    frames, _ = _video(seed=2, square=False, n_frames=40)
    _, fraction, _ = update_background(None, frames, k=2.0, clean=False, warmup=WARMUP)
    assert 0.025 < np.nanmean(fraction[20:]) < 0.08
    _, fraction, _ = update_background(None, frames, k=2.0, clean=True, warmup=WARMUP)
    assert np.nanmax(fraction) < 1e-3


@pytest.mark.parametrize("mode", ["ema", "window"])
def test_chunks_give_one_pass_results(mode):
    frames, _ = _video(seed=3)
    kw = dict(mode=mode, window=20, warmup=WARMUP, return_masks=True)
    state, fraction, masks = update_background(None, frames, **kw)
    chunk_state, chunk_fractions, chunk_masks = None, [], []
    for start in range(0, N_FRAMES, 7):
        chunk_state, f, m = update_background(chunk_state, frames[start : start + 7], **kw)
        chunk_state = pickle.loads(pickle.dumps(chunk_state))  # as if sent to another worker
        chunk_fractions.append(f)
        chunk_masks.append(m)
    assert_array_equal(np.concatenate(chunk_fractions), fraction)
    assert_array_equal(np.concatenate(chunk_masks), masks)
    assert_array_equal(chunk_state.mean, state.mean)
    assert_array_equal(chunk_state.var, state.var)
    assert chunk_state.frames_seen == state.frames_seen == N_FRAMES


def test_state_is_small_and_not_modified():
    frames, _ = _video(seed=4, n_frames=30)
    state, _, _ = update_background(None, frames[:15], warmup=WARMUP)
    assert isinstance(state, BackgroundModel) and state.buffer is None  # EMA: two float images
    assert len(pickle.dumps(state)) < 3 * H * W * 8
    before = (state.mean.copy(), state.var.copy(), state.frames_seen)
    update_background(state, frames[15:], warmup=WARMUP)
    assert_array_equal(state.mean, before[0])
    assert_array_equal(state.var, before[1])
    assert state.frames_seen == before[2]


def test_ema_update_formula():
    # No warm-up buffer (warmup=1) and no selective update: the documented recursion.
    rng = np.random.default_rng(5)
    frames = rng.normal(100, 10, (6, 4, 5))
    alpha = 0.3
    state, fraction, _ = update_background(
        None, frames, learning_rate=alpha, warmup=1, selective=False, clean=False, min_sigma=0.0
    )
    mean, var = frames[0].copy(), np.zeros((4, 5))
    for n in range(1, 6):
        a = max(alpha, 1 / (n + 1))
        d = frames[n] - mean
        mean, var = mean + a * d, (1 - a) * var + a * d * d
    np.testing.assert_allclose(state.mean, mean, rtol=1e-13)
    np.testing.assert_allclose(state.var, var, rtol=1e-13)
    assert np.isnan(fraction[0]) and not np.isnan(fraction[1:]).any()


def test_window_mode_is_mean_and_variance_of_last_frames():
    rng = np.random.default_rng(6)
    frames = rng.integers(0, 256, (12, 6, 7)).astype(np.uint8)
    state, _, _ = update_background(None, frames, mode="window", window=5, warmup=1, selective=False)
    last = frames[-5:].astype(np.float64)
    np.testing.assert_allclose(state.mean, last.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(state.var, last.var(axis=0), rtol=1e-9, atol=1e-9)


def test_foreground_is_judged_before_the_frame_is_learnt():
    frames = np.full((5, 8, 8), 100, dtype=np.uint8)
    frames[4, 2:6, 2:6] = 200
    _, fraction, masks = update_background(None, frames, warmup=2, selective=False, return_masks=True)
    assert fraction[4] == 16 / 64
    assert masks[4, 2:6, 2:6].all() and masks[4].sum() == 16


def test_window_mode_absorbs_a_permanent_change():
    frames, _ = _video(seed=7, square=False, n_frames=40)
    frames[20:, 40:70, 40:70] = 250  # a light switched on for good
    _, fraction, _ = update_background(None, frames, mode="window", window=8, warmup=WARMUP)
    assert fraction[20] == pytest.approx(900 / (H * W))
    assert fraction[-1] < 0.001  # absorbed once no background sample is left in the window
    _, fraction, _ = update_background(None, frames, mode="ema", warmup=WARMUP)
    assert fraction[-1] == pytest.approx(900 / (H * W))  # selective EMA keeps it (documented)


@pytest.mark.parametrize("dtype, scale, min_sigma", [(np.uint16, 257.0, None), (np.float32, 1.0, None)])
def test_other_dtypes(dtype, scale, min_sigma):
    frames, _ = _video(seed=8, start=WARMUP, dtype=dtype, scale=scale)
    _, fraction, _ = update_background(None, frames, warmup=WARMUP, min_sigma=min_sigma)
    expected = SQUARE * SQUARE / (H * W)
    assert np.all(np.abs(fraction[WARMUP:] - expected) <= 0.1 * expected)


def test_single_frame_and_masks_not_requested():
    frames, _ = _video(seed=9, n_frames=3)
    state, fraction, masks = update_background(None, frames[0], warmup=0)
    assert masks is None and fraction.shape == (1,) and np.isnan(fraction[0])
    state, fraction, masks = update_background(state, frames[1:], warmup=0)
    assert masks is None and fraction.shape == (2,) and not np.isnan(fraction).any()


def test_errors():
    frames, _ = _video(seed=10, n_frames=3)
    with pytest.raises(ValueError, match="unknown background mode 'median'.*ema, window"):
        update_background(None, frames, mode="median")
    state, _, _ = update_background(None, frames, mode="ema")
    with pytest.raises(ValueError, match="built in mode 'ema'"):
        update_background(state, frames, mode="window")
    with pytest.raises(ValueError, match="warmup=10"):
        update_background(state, frames, warmup=3)
    wstate, _, _ = update_background(None, frames, mode="window", window=5)
    with pytest.raises(ValueError, match="window=5"):
        update_background(wstate, frames, mode="window", window=6)
    with pytest.raises(ValueError, match="do not fit"):
        update_background(state, frames[:, :10, :10])
    with pytest.raises(ValueError, match="learning_rate"):
        update_background(None, frames, learning_rate=0.0)
    with pytest.raises(ValueError, match="window must be"):
        update_background(None, frames, mode="window", window=1)
    with pytest.raises(ValueError, match="k must be"):
        update_background(None, frames, k=-1)
    with pytest.raises(ValueError, match="warmup must be"):
        update_background(None, frames, warmup=-1)
    with pytest.raises(ValueError, match="min_sigma"):
        update_background(None, frames, min_sigma=-1)
    with pytest.raises(ValueError, match="shape"):
        update_background(None, frames[None])
    with pytest.raises(ValueError, match="empty batch"):
        update_background(None, frames[:0])


@pytest.mark.gpu
@pytest.mark.skipif(not gpu_available(), reason="needs a usable CUDA device and CuPy")
@pytest.mark.parametrize("mode", ["ema", "window"])
def test_gpu_matches_numpy(mode):
    import cupy

    frames, _ = _video(seed=11)
    kw = dict(mode=mode, window=20, warmup=WARMUP, return_masks=True)
    state, fraction, masks = update_background(None, frames, **kw)
    g_state, g_fraction, g_masks = update_background(None, cupy.asarray(frames), **kw)
    # Same arithmetic; a pixel exactly at the threshold may round the other way.
    np.testing.assert_allclose(to_numpy(g_fraction), fraction, atol=2 / (H * W))
    assert (to_numpy(g_masks) != masks).mean() < 1e-4
    np.testing.assert_allclose(to_numpy(g_state.mean), state.mean, rtol=1e-12)
    np.testing.assert_allclose(to_numpy(g_state.var), state.var, rtol=1e-9, atol=1e-9)


# --- the sample-based colour model (update_sample_background) -------------------------

# A colour scene: the photograph in three differently tinted channels.
COLOUR = np.stack([SCENE, SCENE * 0.8 + 20, SCENE * 0.6 + 40], axis=-1)


def _colour_video(seed=0, *, n_frames=N_FRAMES, square=True, noise=3.0, scene=COLOUR, start=0):
    """Colour frames (uint8) of the tinted scene with a red square moving over it."""
    rng = np.random.default_rng(seed)
    frames = np.empty((n_frames, H, W, 3), dtype=np.uint8)
    truth = np.zeros((n_frames, H, W), dtype=bool)
    for t in range(n_frames):
        frame = scene + rng.normal(0.0, noise, scene.shape)
        if square and t >= start:
            y, x = _square_corner(t, n_frames)
            frame[y : y + SQUARE, x : x + SQUARE] = (230.0, 40.0, 40.0)
            truth[t, y : y + SQUARE, x : x + SQUARE] = True
        frames[t] = np.clip(np.round(frame), 0, 255)
    return frames, truth


def _f_measure(masks, truth):
    tp = np.count_nonzero(masks & truth)
    return 2 * tp / (np.count_nonzero(masks) + np.count_nonzero(truth))


@pytest.mark.parametrize("start", [0, WARMUP], ids=["present-from-frame-0", "enters-later"])
def test_samples_find_a_moving_square(start):
    frames, truth = _colour_video(start=start)
    _, fraction, masks = update_sample_background(None, frames, warmup=WARMUP, return_masks=True)
    assert np.isnan(fraction[:WARMUP]).all() and not masks[:WARMUP].any()
    judged = slice(30, None)  # by then a square seen in the first frame has left no ghost
    assert _f_measure(masks[judged], truth[judged]) > 0.95
    area = fraction[judged] * H * W
    np.testing.assert_allclose(area, SQUARE * SQUARE, rtol=0.1)


def test_samples_static_noisy_scene_and_gray_frames():
    frames, _ = _colour_video(square=False, noise=4.0)
    _, fraction, _ = update_sample_background(None, frames, warmup=WARMUP)
    assert np.nanmax(fraction) < 1e-3
    gray, truth = _video(seed=3)
    _, fraction, masks = update_sample_background(None, gray, warmup=WARMUP, return_masks=True)
    assert _f_measure(masks[30:], truth[30:]) > 0.9


def test_samples_see_colour_that_brightness_misses():
    """A square of the background's luma but another hue: colour finds it, luma cannot."""
    scene = np.full((H, W, 3), (120.0, 120.0, 120.0))
    frames, truth = _colour_video(scene=scene, square=False, noise=2.0)
    for t in range(N_FRAMES):
        y, x = _square_corner(t)
        frames[t, y : y + SQUARE, x : x + SQUARE] = (160, 103, 120)  # luma 120.1
        truth[t, y : y + SQUARE, x : x + SQUARE] = True
    _, _, masks = update_sample_background(None, frames, warmup=WARMUP, return_masks=True)
    assert _f_measure(masks[30:], truth[30:]) > 0.95
    luma = frames @ np.array([0.299, 0.587, 0.114])
    _, _, gray_masks = update_background(None, luma.round().astype(np.uint8), warmup=WARMUP, return_masks=True)
    assert _f_measure(gray_masks[30:], truth[30:]) < 0.2


def test_samples_shadow_is_background_unless_the_test_is_off():
    frames, _ = _colour_video(square=False)
    shadowed = frames.copy()
    region = (slice(30, None), slice(40, 80), slice(40, 100))
    shadowed[region] = (frames[region] * 0.6).round().astype(np.uint8)
    # Pixels the shadow darkens by more than the radius: what a test-less model flags.
    visible = np.count_nonzero(frames[31, 40:80, 40:100].astype(float).mean(axis=-1) * 0.4 > 20) / (H * W)
    _, with_test, _ = update_sample_background(None, shadowed, warmup=WARMUP, shadow=(0.5, 1.0))
    _, without, _ = update_sample_background(None, shadowed, warmup=WARMUP)
    assert visible > 0.05
    assert without[31] > 0.8 * visible
    assert with_test[31] < 0.05 * visible


@pytest.mark.slow
def test_samples_absorb_slow_lighting_and_learn_a_flickering_background():
    frames, _ = _colour_video(square=False, n_frames=150)
    ramp = np.linspace(0.0, 40.0, 150)[:, None, None, None]  # +40 grey levels over 150 frames
    lit = np.clip(frames + ramp, 0, 255).astype(np.uint8)
    _, fraction, _ = update_sample_background(None, lit, warmup=WARMUP, shadow=None)
    assert np.nanmax(fraction) < 0.01
    flicker = frames.copy()
    flicker[1::2, :, :60] = np.clip(flicker[1::2, :, :60].astype(int) + 60, 0, 255)  # two-state region
    _, fraction, _ = update_sample_background(None, flicker, warmup=WARMUP, shadow=None)
    assert np.nanmax(fraction[40:]) < 0.01  # both states are among the samples


def test_samples_chunks_give_one_pass_results_and_state_is_untouched():
    frames, _ = _colour_video(seed=5)
    state, fraction, masks = update_sample_background(None, frames, warmup=WARMUP, return_masks=True)
    chunk_state = None
    parts, part_masks = [], []
    for start in range(0, N_FRAMES, 7):
        before = None if chunk_state is None else pickle.loads(pickle.dumps(chunk_state))
        chunk_state, f, m = update_sample_background(
            chunk_state, frames[start : start + 7], warmup=WARMUP, return_masks=True
        )
        parts.append(f)
        part_masks.append(m)
        if before is not None:
            assert isinstance(before, SampleModel)
    assert_array_equal(np.concatenate(parts), fraction)
    assert_array_equal(np.concatenate(part_masks), masks)
    assert_array_equal(chunk_state.samples, state.samples)
    copy = pickle.loads(pickle.dumps(state))
    update_sample_background(state, frames[:5], warmup=WARMUP)
    assert_array_equal(copy.samples, state.samples)
    assert_array_equal(copy.radius, state.radius)


def test_majority_filter_is_a_binary_median():
    from scipy import ndimage

    rng = np.random.default_rng(2)
    mask = rng.random((40, 50)) < 0.4
    for size in (1, 3, 5):
        expected = ndimage.median_filter(mask.astype(np.uint8), size=size, mode="constant", cval=0) > 0
        assert_array_equal(majority_filter(mask, size), expected)
    with pytest.raises(ValueError, match="odd"):
        majority_filter(mask, 4)


def test_register_to_undoes_a_shift():
    frame = COLOUR.round().astype(np.uint8)
    moved = translate(frame, 3, -5)
    registered, shift = register_to(frame.mean(axis=2), moved, fill=frame)
    assert shift == (-3, 5)
    assert_array_equal(registered, frame)  # the uncovered border came from fill
    far, shift = register_to(frame.mean(axis=2), translate(frame, 40, 0), max_shift=0.1)
    assert shift == (0, 0)
    with pytest.raises(ValueError, match="does not fit"):
        register_to(frame.mean(axis=2)[:10], moved)


def test_samples_align_removes_camera_jitter():
    rng = np.random.default_rng(4)
    frames, truth = _colour_video(seed=6, n_frames=80)
    # Still while the model fills, then shaking: an unaligned model sees edges move.
    jitter = [(0, 0)] * 25 + [tuple(rng.integers(-3, 4, 2)) for _ in range(55)]
    shaken = np.stack([translate(f, dy, dx) for f, (dy, dx) in zip(frames, jitter)])
    moved_truth = np.stack([translate(t, dy, dx) for t, (dy, dx) in zip(truth, jitter)])
    _, _, plain = update_sample_background(None, shaken, warmup=WARMUP, return_masks=True)
    _, _, aligned = update_sample_background(None, shaken, warmup=WARMUP, return_masks=True, align=True)
    # Masks are reported in each frame's own grid either way.
    assert _f_measure(aligned[30:], moved_truth[30:]) > 0.9
    assert _f_measure(plain[30:], moved_truth[30:]) < 0.7


def test_samples_errors():
    frames, _ = _colour_video(n_frames=3)
    state, _, _ = update_sample_background(None, frames)
    with pytest.raises(ValueError, match="do not fit"):
        update_sample_background(state, frames[:, :10])
    with pytest.raises(ValueError, match="n_samples"):
        update_sample_background(state, frames, n_samples=10)
    with pytest.raises(ValueError, match="empty batch"):
        update_sample_background(None, frames[:0])
    with pytest.raises(ValueError, match="expected frames"):
        update_sample_background(None, frames[0, 0, 0])
    for bad in (
        dict(n_samples=1),
        dict(min_matches=0),
        dict(radius=0),
        dict(subsample=0),
        dict(shadow=(0.9, 0.5)),
        dict(clean_size=2),
    ):
        with pytest.raises(ValueError):
            update_sample_background(None, frames, **bad)


@pytest.mark.gpu
@pytest.mark.skipif(not gpu_available(), reason="needs a usable CUDA device and CuPy")
def test_samples_gpu_matches_numpy():
    import cupy

    frames, _ = _colour_video(seed=12)
    state, fraction, masks = update_sample_background(None, frames, warmup=WARMUP, return_masks=True)
    g_state, g_fraction, g_masks = update_sample_background(
        None, cupy.asarray(frames), warmup=WARMUP, return_masks=True
    )
    # Same hash-driven updates; float32 sums may round a pixel at the threshold apart.
    assert (to_numpy(g_masks) != masks).mean() < 1e-3
    np.testing.assert_allclose(to_numpy(g_fraction), fraction, atol=1e-3)


def test_background_frame_filters_each_channel_and_keeps_the_dtype():
    from scipy import ndimage

    frame = np.clip(COLOUR + np.random.default_rng(8).normal(0, 5, COLOUR.shape), 0, 255).astype(np.uint8)
    assert_array_equal(background_frame(frame), frame)
    gray = background_frame(frame[:, :, 0])
    assert gray.shape == (H, W, 1) and gray.dtype == np.uint8
    rgba = np.concatenate([frame, np.full((H, W, 1), 255, np.uint8)], axis=-1)
    assert background_frame(rgba).shape == (H, W, 3)
    out = background_frame(frame, median=3, blur=1.0)
    assert out.dtype == np.uint8
    for ch in range(3):
        expected = ndimage.gaussian_filter(ndimage.median_filter(frame[:, :, ch], 3).astype(float), 1.0)
        assert np.abs(out[:, :, ch].astype(float) - expected).max() <= 0.5 + 1e-9
    dim = (frame // 2 + 10).astype(np.uint8)
    stretched = background_frame(dim, normalize="minmax")
    assert stretched.dtype == np.uint8 and stretched.min() == 0 and stretched.max() == 255
    # One stretch for all channels: their order at every pixel is kept.
    assert_array_equal(np.argsort(stretched[5, 5]), np.argsort(dim[5, 5].astype(int), kind="stable"))
    with pytest.raises(ValueError, match="expected an image"):
        background_frame(frame[None])
    with pytest.raises(ValueError, match="zscore"):
        background_frame(frame, normalize="zscore")
