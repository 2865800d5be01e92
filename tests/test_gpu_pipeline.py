"""The GPU path end to end: the same reports as the NumPy path, memory back-off, GPU decode.

Every test needs a usable CUDA device and skips cleanly without one.
"""

from __future__ import annotations

import numpy as np
import pyarrow.compute as pc
import pytest

import framediff
from framediff.kernels import gpu_available
from framediff.scan import run_scan
from framediff.synthetic import make_timelapse

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not gpu_available(), reason="needs CuPy and a usable CUDA device")]

INTEGER = ("l1", "l0", "max_abs")


@pytest.fixture(scope="module")
def frames(tmp_path_factory):
    return make_timelapse(tmp_path_factory.mktemp("gpu") / "frames", n_frames=60, size=(240, 320), seed=5).directory


def _assert_same(cpu, gpu, rtol=1e-6):
    assert cpu.column("status").to_pylist() == gpu.column("status").to_pylist()
    assert cpu.column("changed").to_pylist() == gpu.column("changed").to_pylist()
    for name in cpu.column_names:
        if name in ("note",):
            continue
        a, b = cpu.column(name).to_pylist(), gpu.column(name).to_pylist()
        if name in INTEGER or cpu.schema.field(name).type in ("string", "bool", "int64", "int32"):
            assert a == b, name
        else:
            x, y = np.array(a, dtype=float), np.array(b, dtype=float)
            np.testing.assert_allclose(y, x, rtol=rtol, err_msg=name, equal_nan=True)


@pytest.mark.parametrize("preset", ["fast", "classic"])
@pytest.mark.parametrize("mode", ["consecutive", "reference", "keyframes"])
def test_gpu_scan_equals_cpu_scan(frames, preset, mode):
    kw = dict(mode=mode, collect=True, chunk_size=16, gpu_decode="off")
    if mode == "keyframes":
        kw["thresholds"] = ["l0_fraction=0.02"]
    cpu = run_scan(frames, options=framediff.make_options(preset, device="cpu", metrics="all"), **kw).table()
    gpu = run_scan(frames, options=framediff.make_options(preset, device="gpu", metrics="all"), **kw).table()
    _assert_same(cpu, gpu)


def test_gpu_compare_equals_cpu_compare(frames):
    a, b = sorted(frames.glob("*.jpg"))[8:10]
    cpu = framediff.compare(a, b, metrics="all", device="cpu")
    gpu = framediff.compare(a, b, metrics="all", device="gpu")
    for name, value in cpu.items():
        if name in INTEGER or isinstance(value, (int, tuple)):
            assert gpu[name] == value, name
        else:
            assert gpu[name] == pytest.approx(value, rel=1e-6, nan_ok=True), name


def test_a_tiny_memory_budget_halves_batches_then_falls_back_to_cpu(frames, tmp_path):
    from framediff import gpu as G

    G.device_budget.cache_clear()
    try:
        tiny = run_scan(
            frames,
            options=framediff.make_options("fast", device="gpu"),
            gpu_memory=2_000_000,  # far less than one chunk of frames needs
            gpu_decode="off",
            collect=True,
            chunk_size=16,
        )
    finally:
        G.device_budget.cache_clear()
        G.release_pool()
    cpu = run_scan(frames, options=framediff.make_options("fast", device="cpu"), collect=True, chunk_size=16)
    _assert_same(cpu.table(), tiny.table())
    assert tiny.summary["gpu_fallback_rows"] > 0
    notes = tiny.table().column("note")
    assert pc.any(pc.equal(notes, "computed on CPU: GPU out of memory")).as_py()


def test_memory_pool_does_not_grow_across_partitions(frames):
    import cupy

    from framediff import gpu as G

    G.device_budget.cache_clear()
    opts = framediff.make_options("fast", device="gpu")
    run_scan(frames, options=opts, chunk_size=8, gpu_decode="off")
    held = cupy.get_default_memory_pool().total_bytes()
    run_scan(frames, options=opts, chunk_size=8, gpu_decode="off")
    run_scan(frames, options=opts, chunk_size=8, gpu_decode="off")
    assert cupy.get_default_memory_pool().total_bytes() <= held * 1.1 + 1


def test_gpu_decode_agrees_with_cpu_decode_within_a_grey_level(frames):
    from framediff.gpu import gpu_decoder

    if gpu_decoder() is None:
        pytest.skip("nvImageCodec (nvidia-nvimgcodec-cu12) is not installed")
    from framediff.decode import read_image
    from framediff.gpu import decode_on_device

    path = sorted(frames.glob("*.jpg"))[3]
    on_gpu = decode_on_device(path.read_bytes(), gray=True).get()
    on_cpu = read_image(path, gray="luma")
    assert on_gpu.shape == on_cpu.shape
    assert np.abs(on_gpu.astype(int) - on_cpu.astype(int)).max() <= 2
    # A scan with GPU decoding still reads the corrupt frame as an error (CPU fallback decides).
    result = run_scan(frames, options=framediff.make_options("fast", device="gpu"), gpu_decode="on", collect=True)
    assert result.summary["gpu_decode"] is True
    assert result.summary["errors"] == 1
