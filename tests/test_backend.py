"""Choosing the array module (``framediff.kernels.backend``) on a machine without a GPU.

Tests that need the absence of a usable GPU are skipped where one exists; GPU runs are
covered by the ``gpu``-marked tests elsewhere. Mixing NumPy and CuPy arrays in one call
can only be provoked with real CuPy arrays, so that refusal is not tested here.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from skimage import data

from framediff import kernels as K
from framediff.kernels import (
    DEVICES,
    BackendError,
    array_namespace,
    gpu_available,
    is_cupy,
    resolve_device,
    to_numpy,
)
from framediff.kernels.backend import DEVICE_ENV, _probe_cupy

no_gpu = pytest.mark.skipif(gpu_available(), reason="this machine has a usable GPU")

CAMERA = data.camera()


@pytest.fixture(autouse=True)
def _no_device_env(monkeypatch):
    """Each test starts without FRAMEDIFF_DEVICE, whatever the calling shell has."""
    monkeypatch.delenv(DEVICE_ENV, raising=False)


def test_devices():
    assert DEVICES == ("auto", "cpu", "gpu")
    assert DEVICE_ENV == "FRAMEDIFF_DEVICE"


@pytest.mark.parametrize("name", ["cpu", "CPU", "Cpu"])
def test_cpu_is_numpy(name):
    assert resolve_device(name) is np


@no_gpu
def test_auto_is_numpy_without_gpu_and_silent():
    _probe_cupy.cache_clear()  # probe again: CuPy may warn at import on machines without CUDA
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        xp = resolve_device("auto")
        assert resolve_device(None) is np  # no env var: auto
    assert xp is np
    assert caught == []
    assert gpu_available() is False


@no_gpu
def test_gpu_without_gpu_raises_one_line_backend_error():
    reasons = "CuPy is not installed|no CUDA device|CUDA is not usable"
    with pytest.raises(BackendError, match=rf"^device='gpu' was requested but ({reasons})") as info:
        resolve_device("gpu")
    message = str(info.value)
    assert "\n" not in message and message.strip() == message
    assert isinstance(info.value, RuntimeError)


def test_env_var_is_read_when_no_device_is_given(monkeypatch):
    monkeypatch.setenv(DEVICE_ENV, "cpu")
    assert resolve_device() is np
    assert resolve_device(None) is np
    monkeypatch.setenv(DEVICE_ENV, "")  # empty: auto
    assert resolve_device() is resolve_device("auto")
    monkeypatch.setenv(DEVICE_ENV, "tpu")
    with pytest.raises(ValueError, match="unknown device 'tpu'; expected one of auto, cpu, gpu"):
        resolve_device()


@no_gpu
def test_env_var_gpu_without_gpu_raises(monkeypatch):
    monkeypatch.setenv(DEVICE_ENV, "GPU")
    with pytest.raises(BackendError, match="device='gpu' was requested but"):
        resolve_device()
    assert resolve_device("cpu") is np  # an explicit device wins over the environment


@pytest.mark.parametrize("name", ["cuda", "", "numpy", "0"])
def test_unknown_device_raises_value_error(name):
    with pytest.raises(ValueError, match=rf"unknown device '{name.lower()}'; expected one of auto, cpu, gpu"):
        resolve_device(name)


def test_array_namespace_of_numpy_arrays():
    a = np.zeros((2, 3))
    assert array_namespace(a) is np
    assert array_namespace(a, None, 3.0, np.ones(2)) is np  # None and scalars are ignored
    assert array_namespace() is np
    sentinel = object()
    assert array_namespace(a, xp=sentinel) is sentinel  # a given xp wins, unchecked


def test_is_cupy_and_to_numpy_on_host_data():
    a = np.arange(6).reshape(2, 3)
    assert not is_cupy(a) and not is_cupy([1, 2]) and not is_cupy(np.float64(1.0))
    assert to_numpy(a) is a
    host = to_numpy([[1, 2], [3, 4]])
    assert isinstance(host, np.ndarray) and host.shape == (2, 2)


def test_kernels_take_xp_and_stay_on_numpy():
    """With xp=numpy every kernel returns NumPy arrays; results equal the inferred-xp call."""
    xp = resolve_device("cpu")
    noisy = np.clip(CAMERA + np.random.default_rng(0).normal(0, 5, CAMERA.shape), 0, 255).astype(np.uint8)
    norms = K.difference_norms(CAMERA, noisy, xp=xp)
    for name, value in norms.items():
        assert type(value) is np.ndarray, name
        np.testing.assert_array_equal(value, K.difference_norms(CAMERA, noisy)[name])
    prepared = K.normalize(CAMERA, "percentile", xp=xp)
    assert type(prepared) is np.ndarray
    counts = K.histograms(prepared, bins=64, value_range=(0, 256), xp=xp)
    assert type(counts) is np.ndarray and counts.sum() == CAMERA.size
    p = K.to_probabilities(counts, xp=xp)
    batch = xp.stack([p, p])
    assert type(K.histogram_distance(batch, batch, "kl", xp=xp)) is np.ndarray
    assert isinstance(K.histogram_distance(p, p, "kl", xp=xp), np.float64)  # shape (): a NumPy scalar
    assert type(K.to_gray(data.astronaut(), "luma", xp=xp)) is np.ndarray
