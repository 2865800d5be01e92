#!/usr/bin/env python
"""GPU benchmark, side by side with the NumPy path on the same machine, in one run.

Prints:
  1. fused difference kernel (L1/L0/L2/max of every consecutive pair of a resident batch
     of 1080p uint8 frames, one launch) and histogram kernel throughput, in GB/s of frame
     bytes read, against the device's peak memory bandwidth;
  2. end-to-end images/s of `framediff scan` on generated 1080p q90 JPEGs: NumPy path on
     all CPU cores, GPU path with CPU decoding, GPU path with GPU decoding (nvImageCodec);
     the speed-ups;
  3. agreement: integer norms equal, max relative difference of floating metrics, GPU
     against CPU on the same decoded frames.

Usage:  python scripts/bench_gpu.py [--frames 600] [--out DIR]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

# Known peak memory bandwidths (bytes/s) for devices whose properties no longer report
# the memory clock (CUDA 13 dropped cudaDeviceProp.memoryClockRate).
_PEAK = {"H200": 4.8e12, "H100 SXM": 3.35e12, "H100 PCIe": 2.0e12, "A100-SXM4-80GB": 2.04e12, "A100": 1.55e12}


def peak_bandwidth(cp) -> tuple[float, str]:
    props = cp.cuda.runtime.getDeviceProperties(0)
    name = props["name"].decode()
    clock_khz = props.get("memoryClockRate", 0)
    bus_bits = props.get("memoryBusWidth", 0)
    if clock_khz and bus_bits:
        return 2.0 * clock_khz * 1e3 * bus_bits / 8, f"{name} (from device properties)"
    for key, value in _PEAK.items():
        if key in name:
            return value, f"{name} (published figure)"
    return float("nan"), f"{name} (unknown peak)"


def time_gpu(cp, fn, repeat=20) -> float:
    fn()
    cp.cuda.Device().synchronize()
    start, stop = cp.cuda.Event(), cp.cuda.Event()
    start.record()
    for _ in range(repeat):
        fn()
    stop.record()
    stop.synchronize()
    return cp.cuda.get_elapsed_time(start, stop) / 1e3 / repeat


def kernel_throughput(cp) -> None:
    from framediff.kernels import histograms
    from framediff.kernels._gpu_fused import pair_norms

    batch, h, w = 64, 1080, 1920
    rng = np.random.default_rng(0)
    frames = cp.asarray(rng.integers(0, 256, (batch + 1, h, w), dtype=np.uint8))
    first, second = np.arange(batch), np.arange(1, batch + 1)
    seconds = time_gpu(cp, lambda: pair_norms(frames, frames, 10.0, first=first, second=second))
    read = 2 * batch * h * w
    peak, name = peak_bandwidth(cp)
    print(f"device: {name}, peak memory bandwidth {peak / 1e9:.0f} GB/s")
    print(
        f"fused difference kernel, {batch} consecutive 1080p uint8 pairs: {read / seconds / 1e9:.0f} GB/s "
        f"({100 * read / seconds / peak:.0f}% of peak; target >= 60%), {seconds * 1e6 / batch:.1f} us per pair"
    )
    hs = time_gpu(cp, lambda: histograms(frames, bins=256, value_range=(0, 256)))
    print(f"histogram kernel, {batch + 1} frames: {(batch + 1) * h * w / hs / 1e9:.0f} GB/s")


def scan_rate(frames_dir, device, workers, gpu_decode="off", chunk=64):
    from framediff.options import make_options
    from framediff.scan import run_scan

    opts = make_options("fast", device=device)
    warm = sorted(Path(frames_dir).glob("*.jpg"))[:70]
    run_scan([str(p) for p in warm], options=opts, workers=workers, gpu_decode=gpu_decode)
    t = time.perf_counter()
    result = run_scan(frames_dir, options=opts, workers=workers, chunk_size=chunk, gpu_decode=gpu_decode, collect=True)
    seconds = time.perf_counter() - t
    return result.summary["inputs"] / seconds, result.table()


def agreement(cpu_table, gpu_table) -> None:
    ints = ["l1", "l0", "max_abs"]
    floats = [c for c in cpu_table.column_names if c not in ints and cpu_table.schema.field(c).type == "double"]
    ok = [s == "ok" for s in cpu_table.column("status").to_pylist()]
    same_ints = all(
        np.array_equal(np.array(cpu_table.column(c).to_pylist())[ok], np.array(gpu_table.column(c).to_pylist())[ok])
        for c in ints
    )
    worst = 0.0
    for c in floats:
        a = np.array(cpu_table.column(c).to_pylist(), dtype=float)[ok]
        b = np.array(gpu_table.column(c).to_pylist(), dtype=float)[ok]
        finite = np.isfinite(a) & np.isfinite(b)
        rel = np.abs(a[finite] - b[finite]) / np.maximum(np.abs(a[finite]), 1e-300)
        worst = max(worst, float(rel.max(initial=0.0)))
    print(
        f"GPU vs CPU (CPU decode both): integer norms equal: {same_ints}; max relative difference {worst:.2e} (target 1e-6)"
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=600)
    parser.add_argument("--out")
    args = parser.parse_args(argv)
    from framediff.kernels import gpu_available, resolve_device

    if not gpu_available():
        print("no usable CUDA device: nothing to measure", file=sys.stderr)
        return 2
    cp = resolve_device("gpu")
    kernel_throughput(cp)
    from framediff.synthetic import make_timelapse

    base = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="framediff-gpu-bench-"))
    frames = base / f"frames-{args.frames}"
    if len(list(frames.glob("*.jpg"))) != args.frames:
        make_timelapse(frames, n_frames=args.frames, size=(1080, 1920), quality=90, seed=1)
    cores = os.cpu_count() or 1
    cpu_rate, cpu_table = scan_rate(frames, "cpu", cores)
    gpu_rate, gpu_table = scan_rate(frames, "gpu", cores, gpu_decode="off")
    print(f"end to end, {args.frames} 1080p q90 JPEGs:")
    print(f"  NumPy path, {cores} CPU threads: {cpu_rate:.0f} images/s")
    print(f"  GPU path, CPU decode ({cores} threads): {gpu_rate:.0f} images/s ({gpu_rate / cpu_rate:.2f}x)")
    from framediff.gpu import gpu_decoder

    if gpu_decoder() is not None:
        dec_rate, _ = scan_rate(frames, "gpu", cores, gpu_decode="on")
        print(f"  GPU path, GPU decode: {dec_rate:.0f} images/s ({dec_rate / cpu_rate:.2f}x; target >= 3x)")
    else:
        print("  GPU decode: nvImageCodec not installed (pip install nvidia-nvimgcodec-cu12)")
    agreement(cpu_table, gpu_table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
