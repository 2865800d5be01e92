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
