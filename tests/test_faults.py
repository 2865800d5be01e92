"""Surviving faults with the real thing: scheduler and worker processes on 127.0.0.1.

A worker SIGKILLed mid-run, the framediff process itself SIGKILLed and resumed, a file
whose decoding kills its worker, a decode that hangs: each run still ends with a
complete report equal to an undisturbed run's.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

import framediff
from framediff.scan import run_scan
from framediff.synthetic import make_timelapse

pytestmark = pytest.mark.slow

FRAMEDIFF = [sys.executable, "-m", "framediff.cli"]


def _wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


class DaskProcesses:
    """A `dask scheduler` and `dask worker` processes, as a batch system would start them."""

    def __init__(self, tmp: Path, n_workers: int = 2, memory_limit: str = "0", env=None):
        self.file = tmp / "scheduler.json"
        # A worker that dies without closing its connections is noticed by heartbeat
        # (default after 5 minutes): make that seconds.
        self.env = dict(os.environ, DASK_DISTRIBUTED__SCHEDULER__WORKER_TTL="5s", **(env or {}))
        self.procs = []
        self.scheduler = self._start(
            "distributed.cli.dask_scheduler",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--no-dashboard",
            "--scheduler-file",
            str(self.file),
        )
        _wait_for(self.file.exists, 30, "the scheduler file")
        self.address = json.loads(self.file.read_text())["address"]
        self.workers = [self.add_worker(memory_limit) for _ in range(n_workers)]
        self.wait_workers(n_workers)

    def _start(self, module, *args):
        proc = subprocess.Popen(
            [sys.executable, "-m", module, *args],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.procs.append(proc)
        return proc

    def add_worker(self, memory_limit="0"):
        return self._start(
            "distributed.cli.dask_worker",
            "--scheduler-file",
            str(self.file),
            "--nthreads",
            "1",
            "--host",
            "127.0.0.1",
            "--no-dashboard",
            "--memory-limit",
            memory_limit,
        )

    def wait_workers(self, n):
        from distributed import Client

        with Client(self.address, timeout="20s") as client:
            client.wait_for_workers(n, timeout=60)

    def close(self):
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


@pytest.fixture
def timelapse(tmp_path):
    return make_timelapse(tmp_path / "frames", n_frames=80, size=(96, 128), seed=3)


def _reference_report(frames_dir, out, **kw):
    run_scan(frames_dir, options=framediff.make_options("fast"), output=out, scheduler="synchronous", **kw)
    return pq.read_table(out)


def test_sigkill_of_a_worker_mid_run_still_gives_the_identical_report(tmp_path, timelapse):
    want = _reference_report(timelapse.directory, tmp_path / "want.parquet", chunk_size=2)
    dask = DaskProcesses(tmp_path)
    try:
        out = tmp_path / "got.parquet"
        run = work = out.with_name(f".{out.name}.framediff-run")
        proc = subprocess.Popen(
            [
                *FRAMEDIFF,
                "scan",
                str(timelapse.directory),
                "-o",
                str(out),
                "--scheduler",
                dask.address,
                "--chunk-size",
                "2",
                "-q",
            ],
            stderr=subprocess.PIPE,
            text=True,
        )
        # Once partitions are landing, kill one worker process outright (its nanny
        # restarts it); the scheduler reassigns its tasks.
        _wait_for(lambda: run.exists() and len(list(work.glob("part-*.parquet"))) >= 3, 60, "first partitions")
        from distributed import Client

        with Client(dask.address, timeout="20s") as client:
            pids = [p for p in client.run(os.getpid).values()]
        os.kill(pids[0], signal.SIGKILL)
        _, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 1, stderr  # 1: the time-lapse has one corrupt frame
        assert "Traceback" not in stderr
        assert pq.read_table(out).equals(want)
    finally:
        dask.close()


@pytest.mark.parametrize("where", ["threads", "dask processes"])
def test_sigkill_of_framediff_then_resume_gives_the_identical_report(tmp_path, timelapse, where):
    want = _reference_report(timelapse.directory, tmp_path / "want.parquet", chunk_size=2)
    out = tmp_path / "got.parquet"
    work = out.with_name(f".{out.name}.framediff-run")
    args = [*FRAMEDIFF, "scan", str(timelapse.directory), "-o", str(out), "--chunk-size", "2", "--workers", "1", "-q"]
    dask = None
    if where == "dask processes":
        dask = DaskProcesses(tmp_path, n_workers=1)
        args += ["--scheduler-file", str(dask.file)]
    try:
        _kill_then_resume(args, out, work, want, tmp_path)
    finally:
        if dask is not None:
            dask.close()


def _kill_then_resume(args, out, work, want, tmp_path):
    proc = subprocess.Popen(args, stderr=subprocess.DEVNULL)
    _wait_for(lambda: len(list(work.glob("part-*.parquet"))) >= 5, 60, "some partitions")
    proc.kill()
    proc.wait()
    assert not out.exists(), "a killed run must not leave a report"
    parts_before = len(list(work.glob("part-*.parquet")))
    assert parts_before < 40
    # A changed option refuses to resume, with a clear message.
    changed = subprocess.run([*args, "--resume", "--tol", "3"], capture_output=True, text=True)
    assert changed.returncode == 2 and "cannot resume" in changed.stderr and "Traceback" not in changed.stderr
    # Plain re-run refuses too: it would redo or clobber the interrupted run.
    again = subprocess.run(args, capture_output=True, text=True)
    assert again.returncode == 2 and "--resume" in again.stderr
    done = subprocess.run([*args, "--resume"], capture_output=True, text=True)
    assert done.returncode == 1, done.stderr
    got = pq.read_table(out)
    assert got.equals(want)
    pairs = got.column("pair").to_pylist()
    assert len(pairs) == len(set(pairs)), "no comparison may appear twice"
    assert not work.exists(), "the run folder goes once the report is complete"
    leftovers = [p.name for p in tmp_path.iterdir() if ".tmp-" in p.name or ".framediff-tmp-" in p.name]
    assert leftovers == []


def _bomb_png(path: Path, width: int, height: int) -> None:
    """A valid RGB PNG of zeros: a few hundred kB on disk, width*height*3 bytes decoded."""

    def chunk(kind, data):
        body = kind + data
        return len(data).to_bytes(4, "big") + body + zlib.crc32(body).to_bytes(4, "big")

    raw = zlib.compressobj(9)
    row = b"\x00" * (1 + 3 * width)
    data = b"".join(raw.compress(row) for _ in range(height)) + raw.flush()
    ihdr = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 2, 0, 0, 0])
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", data) + chunk(b"IEND", b""))


def test_a_file_that_kills_its_worker_becomes_a_worker_crash_row(tmp_path):
    frames = tmp_path / "frames"
    frames.mkdir()
    rng = np.random.default_rng(0)
    import imageio.v3 as iio

    base = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    for i in range(6):
        iio.imwrite(frames / f"f_{i:02d}.png", base)
    # Allowed by --max-pixels, but decoding it needs far more memory (588 MB of pixels,
    # twice) than the worker may use: its nanny kills the worker process every time.
    # (The limit leaves room for a worker's own ~250 MB of imports.)
    _bomb_png(frames / "f_03.png", 14000, 14000)
    dask = DaskProcesses(
        tmp_path, n_workers=2, memory_limit="800MB", env={"DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "0"}
    )
    try:
        result = run_scan(
            frames,
            options=framediff.make_options("fast", max_pixels=400_000_000),
            scheduler=dask.address,
            chunk_size=8,
            collect=True,
        )
    finally:
        dask.close()
    rows = {r["index_b"]: r for r in result.table().to_pylist()}
    assert rows[3]["status"] == "error" and rows[3]["error_kind"] == "worker-crash"
    # The frame after it is compared across the crashing file, with the frame before it.
    assert rows[4]["status"] == "ok" and rows[4]["index_a"] == 2 and "unreadable" in rows[4]["note"]
    assert [rows[i]["status"] for i in (1, 2, 5)] == ["ok", "ok", "ok"]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes need a POSIX system")
def test_a_hung_read_becomes_a_timeout_row(tmp_path):
    frames = tmp_path / "frames"
    make_timelapse(frames, n_frames=40, size=(48, 64), seed=1, events=False)
    # Opening a FIFO nobody writes to blocks forever, like a dead network mount.
    hung = frames / "frame_00020_hung.jpg"
    os.mkfifo(hung)
    started = time.monotonic()
    result = run_scan(
        frames, options=framediff.make_options("fast"), file_timeout=1.0, collect=True, chunk_size=8, workers=2
    )
    assert time.monotonic() - started < 30
    rows = [r for r in result.table().to_pylist() if r["path_b"] == hung.name]
    assert rows and rows[0]["error_kind"] == "timeout"
    assert result.summary["errors"] == 1 and result.summary["ok"] == result.summary["comparisons"] - 1


def test_transient_read_errors_are_retried(tmp_path, monkeypatch):
    """--retries: an I/O error that goes away is retried. A real transient EIO cannot be
    produced on a local disk, so the reader fails twice, as a flaky mount would."""
    from framediff import frames as tasks
    from framediff.decode import DecodeError

    frames = tmp_path / "frames"
    make_timelapse(frames, n_frames=40, size=(48, 64), seed=2, events=False)
    real = tasks.read_frame_typed
    failures = {"left": 2}

    def flaky(path, opts, out=None):
        if path.endswith("frame_00010.jpg") and failures["left"]:
            failures["left"] -= 1
            raise DecodeError("unreadable", "Input/output error")
        return real(path, opts, out=out)

    monkeypatch.setattr(tasks, "read_frame_typed", flaky)
    opts = framediff.make_options("fast")
    without = run_scan(frames, options=opts, collect=True, scheduler="synchronous")
    assert without.summary["errors_by_kind"] == {"unreadable": 1}
    failures["left"] = 2
    retried = run_scan(frames, options=opts, collect=True, scheduler="synchronous", retries=2)
    assert retried.summary["errors"] == 0
