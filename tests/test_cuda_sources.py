"""The CUDA sources compile for Hopper (``nvcc -ptx``) with the kernel names Python asks for.

These run without a GPU: nvcc only checks and lowers the code. The GPU results
themselves are checked in ``test_gpu.py`` on a machine with a device.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

import framediff.kernels

CUDA_DIR = Path(framediff.kernels.__file__).parent / "cuda"
SOURCES = sorted(CUDA_DIR.glob("*.cu"))

#: Every entry point ``kernels/_gpu_fused.py`` launches, per source file.
EXPECTED_KERNELS = {
    "pair_norms.cu": {
        *(f"framediff_pair_norms_{s}" for s in ("u8", "i8", "u16", "i16", "f32", "f64")),
        "framediff_pair_norms_finish_i64",
        "framediff_pair_norms_finish_f64",
    },
    "histogram.cu": {
        "framediff_histogram_lut_u8",
        "framediff_histogram_lut_u16",
    },
}


def _find_nvcc() -> str | None:
    found = shutil.which("nvcc")
    if found:
        return found
    for var in ("CUDA_PATH", "CUDA_HOME"):
        root = os.environ.get(var)
        if root and (Path(root) / "bin" / "nvcc").is_file():
            return str(Path(root) / "bin" / "nvcc")
    return None


@pytest.fixture(scope="module")
def nvcc():
    path = _find_nvcc()
    if path is None:
        pytest.skip("nvcc is not installed (no CUDA toolkit on PATH, CUDA_PATH or CUDA_HOME)")
    return path


def _compile_ptx(nvcc: str, source: Path, out_dir: Path) -> str:
    ptx = out_dir / (source.stem + ".ptx")
    cmd = [nvcc, "-ptx", "-arch=sm_90", "-std=c++17", "-Werror", "all-warnings", str(source), "-o", str(ptx)]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=out_dir, timeout=300)
    assert done.returncode == 0, f"{' '.join(cmd)} failed:\n{done.stdout}\n{done.stderr}"
    return ptx.read_text()


def test_every_source_is_known():
    assert {s.name for s in SOURCES} == set(EXPECTED_KERNELS)


@pytest.mark.parametrize("source", SOURCES, ids=[s.name for s in SOURCES])
def test_source_compiles_to_ptx(nvcc, source, tmp_path):
    ptx = _compile_ptx(nvcc, source, tmp_path)
    entries = set(re.findall(r"\.entry\s+(\w+)\s*\(", ptx))
    assert entries == EXPECTED_KERNELS[source.name]


@pytest.mark.parametrize("source", SOURCES, ids=[s.name for s in SOURCES])
def test_source_is_self_contained(source):
    # CuPy compiles these with NVRTC, which has no system headers.
    text = source.read_text(encoding="utf-8")
    assert "#include" not in text


def test_block_size_matches_python_side():
    python_side = (CUDA_DIR.parent / "_gpu_fused.py").read_text(encoding="utf-8")
    block = int(re.search(r"^_BLOCK = (\d+)", python_side, re.MULTILINE).group(1))
    for source in SOURCES:
        found = re.search(r"^#define FD_BLOCK (\d+)", source.read_text(encoding="utf-8"), re.MULTILINE)
        assert found is not None and int(found.group(1)) == block, source.name
