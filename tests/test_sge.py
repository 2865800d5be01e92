"""framediff's ``--cluster sge`` (dask-jobqueue) on a real, throwaway single-host Grid
Engine (``tests/sge_cluster.py``), compared row for row with a local run of the same scan.
Skipped where Debian's gridengine packages are not installed.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from daemons import alive

from framediff.synthetic import make_timelapse

#: The session fixture ``sge`` (a running Grid Engine, or a skip).
pytest_plugins = ("sge_cluster",)
pytestmark = [pytest.mark.sge, pytest.mark.slow]

SCAN = ("--chunk-size", "4", "-q")
JOB_TIMEOUT_S = 240


def test_cluster_sge_with_walltime_equals_local_run(sge, tmp_path):
    from framediff.cli import main

    timelapse = make_timelapse(tmp_path / "frames", n_frames=40, size=(96, 128))
    for index in timelapse.corrupt:  # exit status 0 means success
        timelapse.frames[index].unlink()
    assert main(["scan", str(tmp_path / "frames"), "-o", str(tmp_path / "local.parquet"), *SCAN]) == 0

    framediff = str(Path(sys.executable).parent / "framediff")
    argv = [framediff, "scan", str(tmp_path / "frames"), "-o", "r.parquet", *SCAN]
    argv += ["--cluster", "sge", "--jobs", "1", "--cores", "1", "--memory", "2GB", "--walltime", "00:10:00"]
    try:
        result = subprocess.run(argv, cwd=tmp_path, env=sge.env, capture_output=True, text=True, timeout=JOB_TIMEOUT_S)
    finally:
        sge.cancel_all()
    logs = "\n".join(p.read_text(errors="replace")[-2000:] for p in tmp_path.glob("dask-worker.o*"))
    assert result.returncode == 0, result.stderr + logs
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "r.parquet"), pd.read_parquet(tmp_path / "local.parquet"))
    # The worker ran as a Grid Engine job (its output file is named after its job id).
    assert list(tmp_path.glob("dask-worker.o*")), "no Grid Engine job output"
    assert all(alive(pid) for pid in sge.pids.values())
