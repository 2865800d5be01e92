"""Kind of change between two images (change_kind_features, classify_change).

Oracle: synthetic changes of known kind built from photographs of ``skimage.data``
-- a brightness/contrast (and a gamma) change, a 5-pixel camera move (two crops of
one photograph), a 40 x 40 patch pasted from elsewhere, a different photograph, and a
frame of random noise or a mostly black frame between two normal frames.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from skimage import color, data

from framediff.kernels import gpu_available, to_numpy
from framediff.kernels.change_kind import (
    CHANGE_KIND_FEATURES,
    CHANGE_KINDS,
    change_kind_features,
    classify_change,
)

CAMERA = data.camera()  # (512, 512) uint8
Y0, X0, SIZE = 100, 120, 256


def _crop(image, dy=0, dx=0):
    return image[Y0 + dy : Y0 + dy + SIZE, X0 + dx : X0 + dx + SIZE]


def _u8(image):
    return np.clip(np.round(image), 0, 255).astype(np.uint8)


@functools.cache
def _astronaut():
    return _u8(color.rgb2gray(data.astronaut()) * 255)


def _noisy(image, seed, sigma=2.0):
    return _u8(image + np.random.default_rng(seed).normal(0, sigma, image.shape))


def _pasted(image):
    out = image.copy()
    out[100:140, 60:100] = CAMERA[400:440, 400:440]  # a 40 x 40 patch from elsewhere
    return out


def _noise_frame(seed=0):
    return np.random.default_rng(seed).integers(0, 256, (SIZE, SIZE)).astype(np.uint8)


def _mostly_black(image):
    out = np.zeros_like(image)
    out[:60] = image[:60]  # a truncated decode: the top rows, then nothing
    return out


A = _crop(CAMERA)

PAIRS = {
    "none": (A, _noisy(A, 1)),
    "lighting": (A, _u8(0.8 * A + 40.0)),
    "lighting-gamma": (A, _u8(255.0 * (A / 255.0) ** 0.7)),
    "lighting-clipped": (A, _u8(1.3 * A - 10.0)),
    "lighting-dark": (A, _u8(0.3 * A)),
    "lighting-saturated": (A, _u8(2.0 * A + 50.0)),  # most of the sky clips at 255
    "shift": (A, _crop(CAMERA, dy=5)),
    "shift-diagonal": (A, _crop(CAMERA, dy=3, dx=-4)),
    "shift-and-lighting": (A, _u8(0.9 * _crop(CAMERA, dy=-2, dx=4) + 20.0)),
    "content": (A, _pasted(A)),
    "cut": (A, _crop(_astronaut())),
}


@pytest.mark.parametrize("case", list(PAIRS))
def test_each_kind_of_pair(case):
    a, b = PAIRS[case]
    features = change_kind_features(a, b, data_range=255)
    assert set(features) == set(CHANGE_KIND_FEATURES)
    assert classify_change(features).tolist() == [case.split("-")[0]]


def test_shift_features():
    a, b = PAIRS["shift"]  # b[y, x] = a[y + 5, x], so a[y, x] = b[y - 5, x]
    f = change_kind_features(a, b, data_range=255)
    assert (float(f["shift_y"]), float(f["shift_x"]), float(f["shift"])) == (5.0, 0.0, 5.0)
    assert float(f["align_peak"]) > 0.5
    assert float(f["l1_aligned"]) < 0.1 * float(f["l1_raw"])
    assert float(f["l1_lighting"]) > 0.9 * float(f["l1_raw"])


def test_lighting_features():
    a, b = PAIRS["lighting"]
    f = change_kind_features(a, b, data_range=255)
    assert float(f["l1_raw"]) > 0.05  # a big raw difference ...
    assert float(f["l1_lighting"]) < 0.05 * float(f["l1_raw"])  # ... that normalization explains
    assert float(f["ssim_lighting"]) > 0.99
    assert float(f["l0_fraction"]) > 0.3


def test_blank_frames_are_not_lighting():
    # Anything maps onto a constant image; the flat-image rule keeps that from "explaining".
    black = np.zeros_like(A)
    for a, b in ((A, black), (black, A)):
        f = change_kind_features(a, b, data_range=255)
        assert float(f["l1_lighting"]) > 0.5 * float(f["l1_raw"])
        assert classify_change(f).tolist() != ["lighting"]
    f = change_kind_features(A, _mostly_black(A), data_range=255)
    assert float(f["ssim_lighting"]) < 0.8
    assert classify_change(f).tolist() == ["cut"]


@pytest.mark.parametrize("bad", ["noise", "mostly-black"])
def test_corrupt_frame_between_two_normal_frames(bad):
    before, after = A, _noisy(A, 2)
    frame = _noise_frame() if bad == "noise" else _mostly_black(A)
    f = change_kind_features(np.stack([before, frame]), np.stack([frame, after]), data_range=255)
    assert classify_change(f, consecutive=True).tolist() == ["corrupt", "corrupt"]
    # The same with the neighbour evidence given explicitly, one row at a time.
    row = {key: value[:1] for key, value in f.items()}
    row["hist_distance_next"] = f["hist_distance"][1:]
    row["ssim_next"] = f["ssim"][1:]
    assert classify_change(row).tolist() == ["corrupt"]
    # Without neighbours the pair alone is a cut, not corruption.
    assert classify_change({key: value[:1] for key, value in f.items()}).tolist() == ["cut"]


def test_a_sequence():
    bright = _u8(0.8 * CAMERA.astype(np.float64) + 40.0)
    astro = _crop(_astronaut())
    frames = [
        A,
        _noisy(A, 3),  # none
        _crop(bright),  # lighting
        _crop(bright, dy=5),  # shift
        _pasted(_crop(bright, dy=5)),  # content
        astro,  # cut
        _noisy(astro, 4),  # none
        _noise_frame(5),  # corrupt
        astro,  # corrupt (back from the corrupt frame)
        _noisy(astro, 6),  # none
    ]
    frames = np.stack(frames)
    f = change_kind_features(frames[:-1], frames[1:], data_range=255)
    labels = classify_change(f, consecutive=True)
    expected = ["none", "lighting", "shift", "content", "cut", "none", "corrupt", "corrupt", "none"]
    assert labels.tolist() == expected
    assert set(labels) <= set(CHANGE_KINDS)


def test_batch_equals_pairs_and_float_images():
    a = np.stack([PAIRS[k][0] for k in ("lighting", "shift", "cut")])
    b = np.stack([PAIRS[k][1] for k in ("lighting", "shift", "cut")])
    batch = change_kind_features(a, b, data_range=255)
    for i in range(3):
        single = change_kind_features(a[i], b[i], data_range=255)
        for key in CHANGE_KIND_FEATURES:
            assert_allclose(batch[key][i], single[key], rtol=1e-12, atol=1e-12)
    scaled = change_kind_features(a / 255.0, b / 255.0, data_range=1.0)
    assert classify_change(scaled).tolist() == ["lighting", "shift", "cut"]


def test_identical_images():
    f = change_kind_features(A, A, data_range=255)
    assert float(f["l1_raw"]) == 0.0 and float(f["l0_fraction"]) == 0.0
    assert float(f["ssim"]) == pytest.approx(1.0)
    assert float(f["hist_distance"]) == pytest.approx(0.0, abs=1e-6)
    assert float(f["shift"]) == 0.0
    assert classify_change(f).tolist() == ["none"]


def test_decision_order_and_decode_error():
    base = dict(
        l0_fraction=0.9, l1_raw=0.2, l1_lighting=0.01, ssim_lighting=0.95, l1_aligned=0.01, shift=4.0,
        align_peak=0.9, ssim=0.1, hist_distance=0.5,
    )  # fmt: skip
    m = {key: np.full(3, value) for key, value in base.items()}
    # Every rule matches row 0; lighting wins over shift and cut.
    assert classify_change(m).tolist() == ["lighting"] * 3
    m["l1_lighting"] = np.array([0.01, 0.2, 0.2])
    m["l1_aligned"] = np.array([0.01, 0.01, 0.2])
    assert classify_change(m).tolist() == ["lighting", "shift", "cut"]
    m["decode_error"] = np.array([False, True, False])
    m["l0_fraction"] = np.array([0.0, 0.0, 0.9])
    assert classify_change(m).tolist() == ["none", "corrupt", "cut"]
    # Thresholds are options.
    assert classify_change(m, cut_ssim=0.05).tolist() == ["none", "corrupt", "content"]
    # Matching that only hides a difference (structure lost) is not lighting.
    m = {key: np.full(1, value) for key, value in base.items()}
    m["ssim_lighting"] = np.array([0.5])
    assert classify_change(m).tolist() == ["shift"]


def test_errors():
    f = change_kind_features(A, A, data_range=255)
    with pytest.raises(ValueError, match="lack 'ssim'"):
        classify_change({key: value for key, value in f.items() if key != "ssim"})
    bad = {key: np.atleast_1d(value) for key, value in f.items()}
    bad["hist_distance"] = np.zeros(2)
    with pytest.raises(ValueError, match="'hist_distance' has shape"):
        classify_change(bad)
    good = {key: np.atleast_1d(value) for key, value in f.items()}
    with pytest.raises(ValueError, match="'ssim_next' has shape"):
        classify_change({**good, "ssim_next": np.zeros(3)})
    with pytest.raises(ValueError, match="'decode_error' has shape"):
        classify_change({**good, "decode_error": np.zeros(3, bool)})
    with pytest.raises(ValueError, match="differ in shape"):
        change_kind_features(A, A[:-1], data_range=255)
    with pytest.raises(ValueError, match="data_range"):
        change_kind_features(A, A, data_range=0)
    with pytest.raises(ValueError, match="shape"):
        change_kind_features(A[0], A[0], data_range=255)


@pytest.mark.gpu
@pytest.mark.skipif(not gpu_available(), reason="needs a usable CUDA device and CuPy")
def test_gpu_matches_numpy():
    import cupy

    keys = ("lighting", "shift", "content", "cut")
    a = np.stack([PAIRS[k][0] for k in keys])
    b = np.stack([PAIRS[k][1] for k in keys])
    f = change_kind_features(a, b, data_range=255)
    g = change_kind_features(cupy.asarray(a), cupy.asarray(b), data_range=255)
    for key in CHANGE_KIND_FEATURES:
        assert_allclose(to_numpy(g[key]), f[key], rtol=1e-6, atol=1e-9)
    assert_array_equal(classify_change(g), classify_change(f))
