"""``--mode duplicates`` on a GPU: CuPy signatures and the faiss-gpu search against the CPU path.

Needs CuPy and a usable CUDA device, the search tests also FAISS built with GPU support
(``faiss-gpu``); skipped otherwise. CuPy is imported only inside the tests, so collecting
this module never fails on a machine without one.
"""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import pytest
from numpy.testing import assert_allclose, assert_array_equal

pytest.importorskip("faiss", reason="the near-duplicate index needs FAISS")

import framediff
from framediff.dupindex import GPU_MAX_K, DuplicateIndex, gpu_faiss_available
from framediff.kernels import gpu_available
from framediff.planted import make_planted, photo
from framediff.report import sidecar_path
from framediff.thumbnails import Signatures, signatures_of, signatures_of_frames

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not gpu_available(), reason="needs CuPy and a usable CUDA device")]
needs_gpu_faiss = pytest.mark.skipif(not gpu_faiss_available(), reason="needs FAISS with GPU support (faiss-gpu)")

PHOTOS = ("astronaut", "camera", "coffee", "chelsea", "rocket")


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    folder = tmp_path_factory.mktemp("dup-gpu")
    return make_planted(folder, [photo(n) for n in PHOTOS], edits=("png", "jpeg-q30", "half-size", "exact-copy"))


def _assert_same_signatures(gpu: Signatures, cpu: Signatures):
    assert gpu.paths == cpu.paths and gpu.error == cpu.error
    for name in ("content", "file_size", "height", "width", "status", "decoded"):
        assert_array_equal(getattr(gpu, name), getattr(cpu, name), err_msg=name)
    # float64 sums in another order, then float32: at most the last bit differs.
    assert_allclose(gpu.vectors, cpu.vectors, rtol=0, atol=1e-6)
    assert_allclose(gpu.levels, cpu.levels, rtol=0, atol=1e-6)
    assert_array_equal(gpu.codes, cpu.codes)


def test_gpu_signatures_of_files_equal_cpu(planted):
    import cupy

    _assert_same_signatures(signatures_of(planted.paths, xp=cupy), signatures_of(planted.paths))


def test_gpu_signatures_of_frames_equal_cpu():
    import cupy

    rng = np.random.default_rng(2)
    base = rng.integers(0, 256, (90, 120), dtype=np.uint8)
    frames = [(base, 90, 120), (np.roll(base, 3, axis=1), 90, 120), ((base.astype(np.uint16) * 257), 90, 120)]
    keys = [f"clip.mp4#frame={k}" for k in range(len(frames))]
    _assert_same_signatures(signatures_of_frames(keys, frames, xp=cupy), signatures_of_frames(keys, frames))


def _clustered_signatures(sizes, seed=4) -> Signatures:
    """Unit 64-d vectors in clusters of ``sizes`` (about 0.01 apart within, 2 between)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(len(sizes), 64))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    x = np.concatenate([c + 0.01 * rng.normal(size=(n, 64)) for c, n in zip(centres, sizes)])
    x = (x / np.linalg.norm(x, axis=1, keepdims=True))[rng.permutation(len(x))].astype(np.float32)
    n = len(x)
    return Signatures(
        [f"v{k}" for k in range(n)], np.zeros(n, "V16"), np.full(n, -1, np.int64), np.zeros(n, np.int64),
        np.zeros(n, np.int64), np.full(n, "ok", "U16"), [""] * n, np.zeros(n, bool), x,
        # Levels unlike the vectors (reversed, halved): each search has its own index.
        np.ascontiguousarray(x[:, ::-1] / 2), np.zeros((n, 8), np.uint8),
    )  # fmt: skip


@needs_gpu_faiss
@pytest.mark.parametrize("ivf_from", [10**9, 500])
def test_gpu_search_equals_cpu_search(ivf_from):
    # One cluster has more members than the GPU selects (GPU_MAX_K): its rows take the
    # CPU range search; the others widen their k-NN search on the GPU.
    sizes = [GPU_MAX_K + 100, 300, 40, 5, 2] + [1] * 200
    index = DuplicateIndex(ivf_from=ivf_from)
    index.add(_clustered_signatures(sizes))
    cpu = index.search()
    if index.kind == "flat":  # an inverted file splits the large cluster over its lists
        assert len(cpu) > GPU_MAX_K**2 // 2
    else:
        assert index.kind == "ivf"
    assert_array_equal(index.search(device="gpu"), cpu)
    rows = np.arange(0, len(index), 7)
    assert_array_equal(index.search(rows, device="gpu"), index.search(rows))


def test_gpu_duplicates_scan_equals_cpu_scan(planted, tmp_path):
    kw = dict(mode="duplicates", resize="smallest", thresholds={"l0_fraction": 0.05, "kl": 0.3}, workers=2)
    reports = {}
    for device in ("cpu", "gpu"):
        out = tmp_path / f"{device}.parquet"
        df = framediff.scan(planted.paths, device=device, output=out, **kw)
        reports[device] = df, pq.read_table(sidecar_path(out, ".groups.parquet")).to_pandas()
    (cpu, cpu_groups), (gpu, gpu_groups) = reports["cpu"], reports["gpu"]
    key = ["path_a", "path_b"]
    assert_array_equal(gpu.sort_values(key)[key + ["changed"]], cpu.sort_values(key)[key + ["changed"]])
    assert gpu_groups.to_dict("list") == cpu_groups.to_dict("list")
    s = gpu.attrs["summary"]
    assert s["device"] == "gpu" and cpu.attrs["summary"]["search_device"] == "cpu"
    if gpu_faiss_available():
        assert s["search_device"] == "gpu" and "search_note" not in s
    else:
        assert s["search_device"] == "cpu" and "faiss-gpu" in s["search_note"]
