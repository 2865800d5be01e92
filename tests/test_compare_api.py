"""``framediff.compare.compare``: one pair of images, from arrays or files.

Oracles: ``skimage.metrics`` and ``cv2.norm`` on the same prepared arrays, and the
classic recipe (channel mean, min-max to 0..255, Manhattan and zero norms) written out
here independently. Files are photographs from ``skimage.data`` written as PNG/JPEG.
"""

from __future__ import annotations

import math

import cv2
import imageio.v3 as iio
import numpy as np
import pytest
import simplejpeg
from numpy.testing import assert_allclose
from skimage import data
from skimage.metrics import mean_squared_error, peak_signal_noise_ratio

from framediff.compare import compare
from framediff.errors import FramediffError, InputError
from framediff.kernels import BackendError, gpu_available, to_gray
from framediff.metrics import ALL_METRICS, CLASSIC_METRICS, HIST_METRICS, NORM_METRICS
from framediff.options import OptionsError, make_options

CAMERA = data.camera()
ASTRONAUT = data.astronaut()
COFFEE = data.coffee()


def _noisy(image, sigma, seed):
    rng = np.random.default_rng(seed)
    return np.clip(image + rng.normal(0.0, sigma, image.shape), 0, 255).astype(np.uint8)


def _classic(a, b):
    """The classic recipe: gray by channel mean, min-max to 0..255, L1 and L0 of the difference."""

    def prepare(arr):
        arr = arr.astype(float)
        arr = np.average(arr, -1) if arr.ndim == 3 else arr
        amin, rng = arr.min(), arr.max() - arr.min()
        return (arr - amin) * 255 / rng

    diff = prepare(a) - prepare(b)
    return np.sum(np.abs(diff)), np.linalg.norm(diff.ravel(), 0)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Photographs and broken files in one directory; returns name -> path."""
    d = tmp_path_factory.mktemp("compare")
    paths = {}

    def put(name, payload):
        path = d / name
        if isinstance(payload, np.ndarray):
            iio.imwrite(path, payload)
        else:
            path.write_bytes(payload)
        paths[name] = path

    shifted = np.clip(np.roll(ASTRONAUT, (3, 5), axis=(0, 1)).astype(int) + 2, 0, 255).astype(np.uint8)
    put("astronaut.png", ASTRONAUT)
    put("astronaut-shifted.png", shifted)
    put("camera.png", CAMERA)
    put("coffee.png", COFFEE)
    jpeg = simplejpeg.encode_jpeg(ASTRONAUT, quality=90)
    put("astronaut.jpg", jpeg)
    put("truncated.jpg", jpeg[: len(jpeg) // 2])
    put("random.png", np.random.default_rng(0).bytes(4096))
    put("x.png", b"this is a text file, not a picture\n")
    png = paths["astronaut.png"].read_bytes()
    put("corrupt.png", png[:64] + np.random.default_rng(1).bytes(len(png) - 64))
    put("empty.png", b"")
    return paths


# --------------------------------------------------------------------------- arrays


def test_default_is_the_classic_pair_of_norms():
    noisy = _noisy(ASTRONAUT, 6.0, 0)
    result = compare(ASTRONAUT, noisy)
    assert list(result) == list(CLASSIC_METRICS) + ["shape"]
    l1, l0 = _classic(ASTRONAUT, noisy)
    assert result["l1"] == l1  # bit-identical
    assert result["l0"] == int(l0) and isinstance(result["l0"], int)
    assert result["l1_per_pixel"] == l1 / (512 * 512)
    assert result["l0_fraction"] == l0 / (512 * 512)
    assert result["shape"] == (512, 512)


def test_all_metrics_on_arrays_match_skimage_and_opencv():
    noisy = _noisy(CAMERA, 9.0, 1)
    result = compare(CAMERA, noisy, metrics="all", preset="fast", tol=0)
    assert set(NORM_METRICS + HIST_METRICS) <= set(result) <= set(ALL_METRICS) | {"shape"}
    assert all(isinstance(result[m], (int, float)) for m in NORM_METRICS + HIST_METRICS)
    assert_allclose(result["mse"], mean_squared_error(CAMERA, noisy), rtol=1e-6)
    assert_allclose(result["psnr"], peak_signal_noise_ratio(CAMERA, noisy, data_range=255), rtol=1e-6)
    assert_allclose(result["l1"], cv2.norm(CAMERA, noisy, cv2.NORM_L1), rtol=1e-6)
    assert_allclose(result["l2"], cv2.norm(CAMERA, noisy, cv2.NORM_L2), rtol=1e-6)
    assert result["max_abs"] == cv2.norm(CAMERA, noisy, cv2.NORM_INF)
    assert result["l0"] == np.count_nonzero(CAMERA != noisy)
    hist_a = np.bincount(CAMERA.ravel(), minlength=256).astype(np.float32) / CAMERA.size
    hist_b = np.bincount(noisy.ravel(), minlength=256).astype(np.float32) / noisy.size
    assert_allclose(result["correlation"], cv2.compareHist(hist_a, hist_b, cv2.HISTCMP_CORREL), rtol=1e-6)
    assert_allclose(result["bhattacharyya"], cv2.compareHist(hist_a, hist_b, cv2.HISTCMP_BHATTACHARYYA), rtol=1e-6)


def test_identical_arrays():
    result = compare(COFFEE, COFFEE.copy(), metrics="all")
    assert result["psnr"] == math.inf
    for name in ("l1", "l0", "l2", "mse", "max_abs", "kl", "js", "chisqr", "chisqr_alt"):
        assert result[name] == 0, name
    assert result["intersection"] == pytest.approx(1.0, rel=1e-12)
    assert result["correlation"] == pytest.approx(1.0, rel=1e-12)


def test_metric_lists_keep_order_and_aliases():
    a, b = CAMERA, _noisy(CAMERA, 4.0, 2)
    result = compare(a, b, metrics=["psnr", "manhattan", "KL", "zero"])
    assert list(result) == ["psnr", "l1", "kl", "l0", "shape"]
    assert list(compare(a, b, metrics="l2, js ,l2")) == ["l2", "js", "shape"]


def test_options_and_overrides():
    a, b = CAMERA, _noisy(CAMERA, 4.0, 3)
    loose = compare(a, b, metrics="l0", preset="fast", tol=5)
    strict = compare(a, b, metrics="l0", preset="fast", tol=0)
    diff = np.abs(a.astype(int) - b.astype(int))
    assert loose["l0"] == np.count_nonzero(diff > 5) < strict["l0"] == np.count_nonzero(diff)
    opts = make_options("fast", metrics="l0,kl", tol=5, bins=32, device="cpu")
    assert compare(a, b, options=opts)["l0"] == loose["l0"]
    coarse = compare(a, b, metrics="kl", preset="fast", bins=32)["kl"]
    assert compare(a, b, options=opts)["kl"] == coarse != compare(a, b, metrics="kl", preset="fast")["kl"]
    # normalize: an image and an affine change of its exposure coincide after z-scoring
    exposed = a.astype(np.float64) / 255.0
    changed = 0.5 * exposed + 0.2
    assert compare(exposed, changed, metrics="l1", normalize="none")["l1"] > 1000
    assert compare(exposed, changed, metrics="l1", normalize="zscore")["l1"] < 1e-6
    assert compare(exposed, changed, metrics="l1", normalize="minmax")["l1"] < 1e-6
    # gray: luma and mean differ on a colour photograph
    luma = compare(ASTRONAUT, _noisy(ASTRONAUT, 5, 4), metrics="l1", gray="luma", normalize="none")
    mean = compare(ASTRONAUT, _noisy(ASTRONAUT, 5, 4), metrics="l1", gray="mean", normalize="none")
    assert luma["l1"] != mean["l1"]


def test_mixed_dtypes_are_brought_to_a_common_scale():
    assert compare(CAMERA, CAMERA.astype(np.uint16) * 257, metrics="l1,l0")["l1"] == 0.0
    gray = to_gray(ASTRONAUT, "mean")
    assert compare(ASTRONAUT, gray)["l1"] == 0.0  # colour vs its own channel mean


# --------------------------------------------------------------------------- files


def test_paths_png_reproduce_the_classic_recipe(files):
    a, b = files["astronaut.png"], files["astronaut-shifted.png"]
    result = compare(a, b)
    l1, l0 = _classic(iio.imread(a), iio.imread(b))
    assert result["l1"] == l1 and result["l0"] == int(l0)
    assert compare(str(a), str(b)) == result  # str or Path
    assert compare(a, ASTRONAUT) == compare(a, a)  # a path and an array mix


def test_paths_png_vs_jpeg(files):
    result = compare(files["astronaut.png"], files["astronaut.jpg"], metrics="all", preset="fast")
    decoded = simplejpeg.decode_jpeg(files["astronaut.jpg"].read_bytes(), colorspace="GRAY")[..., 0]
    expected_mse = mean_squared_error(to_gray(ASTRONAUT, "luma"), decoded)  # fast: JPEG straight to luma
    assert_allclose(result["mse"], expected_mse, rtol=1e-6)
    assert 0 < result["kl"] < 0.05 and 30 < result["psnr"] < 60
    assert result["shape"] == (512, 512)


def test_gray_png_against_colour_png_of_the_same_size(files):
    result = compare(files["astronaut.png"], files["camera.png"])
    l1, l0 = _classic(ASTRONAUT, CAMERA)
    assert result["l1"] == l1 and result["l0"] == int(l0)


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "name, kind, reason",
    [
        ("missing.png", "missing", "no such file"),
        ("truncated.jpg", "truncated", "Premature end of JPEG file"),
        ("random.png", "not-an-image", "not a recognised image format"),
        ("x.png", "not-an-image", "not a recognised image format"),
        ("corrupt.png", "corrupt", ""),
        ("empty.png", "empty", "zero-byte file"),
    ],
)
def test_unreadable_files_raise_input_error(files, name, kind, reason):
    bad = files.get(name, files["astronaut.png"].parent / name)
    with pytest.raises(InputError, match=rf"^.*{name}: .*{reason}.*\[{kind}\]$") as info:
        compare(files["astronaut.png"], bad)
    assert info.value.path == str(bad) and info.value.kind == kind
    assert "\n" not in str(info.value)
    with pytest.raises(InputError, match=rf"{name}: .*\[{kind}\]"):  # as the reference, too
        compare(bad, files["astronaut.png"])


def test_a_directory_is_not_a_file(files):
    folder = files["astronaut.png"].parent
    with pytest.raises(InputError, match=r"is a directory \[not-a-file\]"):
        compare(folder, files["astronaut.png"])


def test_different_shapes_raise_input_error_naming_both_files(files):
    a, b = files["astronaut.png"], files["coffee.png"]
    expected = r"coffee\.png: shape 600x400 differs from 512x512 of .*astronaut\.png.* \[size-mismatch\]$"
    with pytest.raises(InputError, match=expected) as info:
        compare(a, b)
    assert info.value.path == str(b) and info.value.kind == "size-mismatch"
    with pytest.raises(InputError, match=r"<array b>: shape 5x4 differs from 4x4 of <array a>.* \[size-mismatch\]"):
        compare(np.zeros((4, 4)), np.zeros((4, 5)))


def test_bad_arrays_raise_input_error():
    expected = r"<array a>: expected a \(H, W\) or \(H, W, C\) array, got shape \(4,\) \[not-an-image\]"
    with pytest.raises(InputError, match=expected):
        compare(np.zeros(4), np.zeros((4, 4)))
    with pytest.raises(InputError, match=r"<array b>: .*got shape \(0, 3\) \[not-an-image\]"):
        compare(np.zeros((3, 3)), np.zeros((0, 3)))
    with pytest.raises(InputError, match=r"<array a>: expected 1, 3 or 4 channels, got 5 \[unsupported\]"):
        compare(np.zeros((4, 4, 5)), np.zeros((4, 4, 5)))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(metrics="sharpness"), r"unknown metric 'sharpness'; choose from: all, l1, "),
        (dict(metrics=["l1", "nope"]), r"unknown metric 'nope'"),
        (dict(metrics=""), r"no metric selected"),
        (dict(preset="slow"), r"unknown preset 'slow'; choose from: classic, fast"),
        (dict(colour="yes"), r"unknown option 'colour'"),
        (dict(tol=-1), r"tol must be >= 0, got -1"),
        (dict(bins=0), r"bins must be in 1..65536, got 0"),
        (dict(normalize="histeq"), r"normalize must be one of none, minmax, percentile, zscore\b.*, got 'histeq'"),
        (dict(gray="red"), r"gray must be one of mean, luma, got 'red'"),
        (dict(device="tpu"), r"device must be auto, cpu or gpu, got 'tpu'"),
        (dict(percentiles=(50, 10)), r"percentiles must satisfy 0 <= low < high <= 100, got 50,10"),
        (dict(scale=0.01), r"scale must be at least 0.125"),
        (dict(data_range=0), r"data_range must be positive, got 0"),
    ],
)
def test_bad_options_raise_options_error(kwargs, message):
    with pytest.raises(OptionsError, match=message) as info:
        compare(CAMERA, CAMERA, **kwargs)
    assert isinstance(info.value, FramediffError) and isinstance(info.value, ValueError)


@pytest.mark.skipif(gpu_available(), reason="this machine has a usable GPU")
def test_gpu_device_without_gpu_raises_backend_error():
    with pytest.raises(BackendError, match="device='gpu' was requested but"):
        compare(CAMERA, CAMERA, device="gpu")


@pytest.mark.skipif(gpu_available(), reason="this machine has a usable GPU")
def test_device_comes_from_the_environment_when_not_given(monkeypatch):
    monkeypatch.setenv("FRAMEDIFF_DEVICE", "gpu")
    with pytest.raises(BackendError, match="device='gpu' was requested but"):
        compare(CAMERA, CAMERA)
    assert compare(CAMERA, CAMERA, device="cpu")["l1"] == 0.0  # an explicit device wins
    monkeypatch.setenv("FRAMEDIFF_DEVICE", "cpu")
    assert compare(CAMERA, CAMERA)["l1"] == 0.0
