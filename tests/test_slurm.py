"""framediff on a real (single-node, throwaway) SLURM: dask-jobqueue's ``--cluster slurm``
and the shipped ``scripts/*.sbatch``, each compared row for row with a local run of the
same scan. The cluster comes from the ``slurm`` fixture (``tests/slurm_cluster.py``),
which skips where SLURM is not installed or cannot start.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import pytest

from framediff.synthetic import make_timelapse

if TYPE_CHECKING:
    from slurm_cluster import Slurm

#: The session fixture ``slurm`` (a running cluster, or a skip).
pytest_plugins = ("slurm_cluster",)

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"
#: Options of every scan here; --chunk-size 4 gives several tasks (and part files).
SCAN = ("--chunk-size", "4", "-q")
#: The scan that a worker job is cancelled in the middle of: heavier metrics, so that it
#: runs for seconds on one core after its first part file is written.
LONG_SCAN = ("--chunk-size", "2", "--metrics", "all", "-q")
#: Seconds a whole batch scan may take here before the test gives up (and cancels it).
JOB_TIMEOUT_S = 240


def _sequence(directory: Path, size: tuple[int, int]) -> Path:
    """A 40-frame time-lapse with its events, less the corrupt frame (exit status 0 means success)."""
    timelapse = make_timelapse(directory, n_frames=40, size=size)
    for index in timelapse.corrupt:
        timelapse.frames[index].unlink()
    return directory


def _framediff() -> str:
    return str(Path(sys.executable).parent / "framediff")


def _report(path: Path) -> pd.DataFrame:
    assert path.is_file(), f"no report {path}"
    return pd.read_parquet(path)


def _assert_same_report(got: Path, expected: Path) -> None:
    a, b = _report(got), _report(expected)
    assert len(a) == len(b) > 0
    pd.testing.assert_frame_equal(a, b)


def _job_output(directory: Path, pattern: str) -> str:
    """Every job output file in ``directory`` matching ``pattern``, for failure messages."""
    return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in sorted(directory.glob(pattern)))


def _jobs_from(cluster: Slurm, directory: Path, name: str) -> dict[str, dict]:
    """Jobs (id -> scontrol fields) named ``name`` that were submitted from ``directory``."""
    out = cluster.run("scontrol", "-o", "show", "job").stdout
    jobs = {}
    for line in out.splitlines():
        fields = dict(item.split("=", 1) for item in line.split() if "=" in item)
        if fields.get("JobName") == name and Path(fields.get("WorkDir", "")) == directory:
            jobs[fields["JobId"]] = fields
    return jobs


@pytest.fixture
def cluster(slurm, tmp_path):
    """The session's SLURM, with every job of the test cancelled (and gone) afterwards."""
    yield slurm
    slurm.cancel_all()


@pytest.fixture(scope="module")
def frames(tmp_path_factory) -> Path:
    return _sequence(tmp_path_factory.mktemp("slurm-frames") / "frames", size=(96, 128))


@pytest.fixture(scope="module")
def local_report(frames, tmp_path_factory) -> Path:
    """The report of the same scan on this machine's local pools."""
    from framediff.cli import main

    out = tmp_path_factory.mktemp("slurm-local") / "local.parquet"
    assert main(["scan", str(frames), "-o", str(out), *SCAN]) == 0
    return out


def _cores(cluster: Slurm) -> str:
    return str(min(2, cluster.cpus))


def test_fixture_runs_one_idle_node(slurm):
    assert slurm.run("sinfo", "-h", "-o", "%T %D").stdout.split() == ["idle", "1"]
    assert set(slurm.pids) == {"munged", "slurmctld", "slurmd"}
    assert str(slurm.root) in slurm.conf.read_text()  # every path in the temporary folder


def test_cluster_slurm_with_walltime_equals_local_run(cluster, frames, local_report, tmp_path):
    argv = [_framediff(), "scan", str(frames), "-o", "r.parquet", *SCAN]
    argv += ["--cluster", "slurm", "--jobs", "1", "--cores", _cores(cluster), "--memory", "2GB"]
    argv += ["--walltime", "00:10:00"]
    result = subprocess.run(argv, cwd=tmp_path, env=cluster.env, capture_output=True, text=True, timeout=JOB_TIMEOUT_S)
    assert result.returncode == 0, result.stderr + _job_output(tmp_path, "slurm-*.out")
    _assert_same_report(tmp_path / "r.parquet", local_report)
    # The worker ran as a batch job with that walltime, and a lifetime 5 minutes shorter.
    jobs = _jobs_from(cluster, tmp_path, "dask-worker")
    assert jobs, "no dask-worker job was submitted"
    for job_id, fields in jobs.items():
        assert fields["TimeLimit"] == "00:10:00"
        script = cluster.run("scontrol", "write", "batch_script", job_id, "-").stdout
        assert "--lifetime 5m --lifetime-stagger 2m" in script


def test_slurm_scan_sbatch_equals_local_run(cluster, frames, local_report, tmp_path):
    # The README's command line, on one node of this machine's size.
    job = cluster.sbatch(
        "--nodes=1", f"--cpus-per-task={_cores(cluster)}", "--mem=2G", str(SCRIPTS / "slurm_scan.sbatch"),
        str(frames), "-o", "r.parquet", *SCAN, cwd=tmp_path,
    )  # fmt: skip
    state = cluster.wait(job, JOB_TIMEOUT_S)
    log = _job_output(tmp_path, "framediff-scan-*.out")
    assert state == "COMPLETED", log
    _assert_same_report(tmp_path / "r.parquet", local_report)
    assert not list(tmp_path.glob("framediff-scheduler-*.json")), "scheduler file left behind"


def test_slurm_array_scripts_with_two_workers_equal_local_run(cluster, frames, local_report, tmp_path):
    env = {
        "FRAMEDIFF_WORKER_SCRIPT": str(SCRIPTS / "slurm_array_workers.sbatch"),
        "FRAMEDIFF_WORKER_ARRAY": "0-1",
        "FRAMEDIFF_WORKER_OPTIONS": "--cpus-per-task=1 --mem=1G --time=00:10:00",
    }
    job = cluster.sbatch(
        "--cpus-per-task=1", "--mem=1G", str(SCRIPTS / "slurm_array_scheduler.sbatch"),
        str(frames), "-o", "r.parquet", *SCAN, cwd=tmp_path, env=env,
    )  # fmt: skip
    state = cluster.wait(job, JOB_TIMEOUT_S)
    log = _job_output(tmp_path, "framediff-*.out")
    assert state == "COMPLETED", log
    _assert_same_report(tmp_path / "r.parquet", local_report)
    array = re.search(r"worker array job (\d+)", (tmp_path / f"framediff-scheduler-{job}.out").read_text())
    assert array, log
    # Both array tasks ran a worker that joined the scheduler; the array was cancelled at the end.
    for task in (0, 1):
        out = tmp_path / f"framediff-workers-{array.group(1)}_{task}.out"
        assert out.is_file() and "Registered to" in out.read_text(), log
    # The scheduler job cancels the array when the scan is over (its tasks may take a few
    # seconds to leave the queue); wait() raises if they are still there after a minute.
    cluster.wait(array.group(1), 60)


@pytest.fixture(scope="module")
def long_frames(tmp_path_factory) -> tuple[Path, Path]:
    """A sequence for LONG_SCAN and its local report."""
    from framediff.cli import main

    root = tmp_path_factory.mktemp("slurm-long")
    _sequence(root / "frames", size=(192, 256))
    assert main(["scan", str(root / "frames"), "-o", str(root / "local.parquet"), *LONG_SCAN]) == 0
    return root / "frames", root / "local.parquet"


def test_worker_job_cancelled_mid_scan_is_replaced(cluster, long_frames, tmp_path):
    frames, local = long_frames
    argv = [_framediff(), "scan", str(frames), "-o", "r.parquet", *LONG_SCAN]
    argv += ["--cluster", "slurm", "--jobs", "1", "--cores", "1", "--memory", "2GB"]
    # A lost worker's job is closed (and so replaced) after this; dask's default is 15s.
    env = {**cluster.env, "DASK_DISTRIBUTED__DEPLOY__LOST_WORKER_TIMEOUT": "1s"}
    scan = subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        work = tmp_path / ".r.parquet.framediff-run"
        deadline = time.monotonic() + JOB_TIMEOUT_S
        while not list(work.glob("part-*")) and scan.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        running = [j for j, s in cluster.jobs().items() if s == "RUNNING"]
        assert scan.poll() is None, "the scan ended before a worker could be cancelled: make LONG_SCAN longer"
        assert len(running) == 1, f"expected one running worker job, got {cluster.jobs()}"
        cluster.run("scancel", running[0])
        output, _ = scan.communicate(timeout=JOB_TIMEOUT_S)
    finally:
        if scan.poll() is None:
            scan.kill()
            scan.communicate()
    assert scan.returncode == 0, output + _job_output(tmp_path, "slurm-*.out")
    _assert_same_report(tmp_path / "r.parquet", local)
    jobs = _jobs_from(cluster, tmp_path, "dask-worker")
    assert cluster.state(running[0]) == "CANCELLED"
    assert len(jobs) >= 2, f"the cancelled job was not replaced: {sorted(jobs)}"


def test_daemons_are_gone_after_stop():
    """A second, private cluster: started, stopped, and every daemon's PID gone."""
    import tempfile

    from daemons import alive
    from slurm_cluster import SlurmUnavailable, start_slurm

    root = Path(tempfile.mkdtemp(prefix="framediff-slurm-"))
    try:
        private = start_slurm(root)
    except SlurmUnavailable as exc:
        pytest.skip(f"no SLURM: {exc}")
    pids = dict(private.pids)
    private.stop()
    assert set(pids) == {"munged", "slurmctld", "slurmd"}
    assert not [name for name, pid in pids.items() if alive(pid)]
    shutil.rmtree(root, ignore_errors=True)
