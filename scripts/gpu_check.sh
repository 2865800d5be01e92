#!/usr/bin/env bash
# GPU check: on a machine with a CUDA device, run the GPU tests, then the GPU benchmark.
# Finishes in under 5 minutes on one H200 with no network. Wheels the machine lacks can
# travel in .whl/ (pip download ... -d .whl); they are installed without an index.
#
#   bash scripts/gpu_check.sh            # tests + benchmark (600 frames)
#   FRAMES=300 bash scripts/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1
if compgen -G ".whl/*.whl" >/dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile .whl/*.whl || exit 1
fi
# framediff itself, without touching the network or the installed packages.
"$PY" -m pip install -q --no-index --no-deps --no-build-isolation -e . || exit 1
"$PY" - <<'PY' || exit 1
from framediff.kernels import gpu_available, resolve_device
assert gpu_available(), "no usable CUDA device"
cp = resolve_device("gpu")
print("device:", cp.cuda.runtime.getDeviceProperties(0)["name"].decode(), "| CuPy", cp.__version__)
PY
echo "== GPU tests"
"$PY" -m pytest -q -m gpu -p no:cacheprovider tests/ 2>&1 | tail -15
tests_rc=${PIPESTATUS[0]}
echo "== CUDA sources (nvcc)"
"$PY" -m pytest -q -p no:cacheprovider tests/test_cuda_sources.py 2>&1 | tail -3
echo "== GPU benchmark"
timeout 240 "$PY" scripts/bench_gpu.py --frames "${FRAMES:-600}"
bench_rc=$?
echo "gpu tests exit code: $tests_rc, benchmark exit code: $bench_rc"
[ "$tests_rc" -eq 0 ] && [ "$bench_rc" -eq 0 ]
