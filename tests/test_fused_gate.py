"""The compiled CPU kernels and the NumPy path give the same values on either side of the
size gate (``framediff.kernels.backend.FUSED_FROM``), so a small scan may skip numba."""

from __future__ import annotations

import numpy as np
import pytest

from framediff.kernels import backend, histograms, pair_difference_norms
from framediff.kernels.shape import reduce_to


def _frames(dtype, shape=(3, 37, 53), seed=0):
    rng = np.random.default_rng(seed)
    high = np.iinfo(dtype).max if np.issubdtype(dtype, np.integer) else 1.0
    return (rng.random(shape) * high).astype(dtype)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("bins", [256, 64])
def test_histograms_agree(dtype, bins, monkeypatch):
    frames = _frames(dtype)
    monkeypatch.setattr(backend, "FUSED_FROM", 0)
    fused = histograms(frames, bins=bins)
    monkeypatch.setattr(backend, "FUSED_FROM", 1 << 62)
    plain = histograms(frames, bins=bins)
    np.testing.assert_array_equal(fused, plain)
    assert fused.sum() == frames[0].size * len(frames)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("tol", [0, 2.5])
def test_pair_norms_agree(dtype, tol, monkeypatch):
    a, b = _frames(dtype, seed=1), _frames(dtype, seed=2)
    pairs = (np.array([0, 1, 2]), np.array([2, 0, 1]))
    monkeypatch.setattr(backend, "FUSED_FROM", 0)
    fused = pair_difference_norms(a, pairs[0], b, pairs[1], tol=tol)
    monkeypatch.setattr(backend, "FUSED_FROM", 1 << 62)
    plain = pair_difference_norms(a, pairs[0], b, pairs[1], tol=tol)
    assert fused.keys() == plain.keys()
    for name in fused:
        np.testing.assert_array_equal(np.asarray(fused[name]), np.asarray(plain[name]), err_msg=name)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int16, np.float32])
def test_block_means_agree(dtype, monkeypatch):
    image = _frames(dtype, shape=(301, 455))
    monkeypatch.setattr(backend, "FUSED_FROM", 0)
    fused = reduce_to(image, 160, min_side=16)
    monkeypatch.setattr(backend, "FUSED_FROM", 1 << 62)
    plain = reduce_to(image, 160, min_side=16)
    assert fused.shape == plain.shape == (301 // 3, 455 // 3)
    if dtype == np.float32:
        np.testing.assert_allclose(fused, plain, rtol=1e-12)
    else:
        np.testing.assert_array_equal(fused, plain)


def test_small_work_does_not_load_numba():
    import subprocess
    import sys

    code = (
        "import sys, numpy as np, framediff.kernels as K;"
        "a = np.zeros((2, 40, 60), np.uint8);"
        "K.histograms(a); K.pair_difference_norms(a, np.array([0]), a, np.array([1]));"
        "print('numba' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
