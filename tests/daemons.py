"""Small helpers for tests that start daemons (SLURM, Grid Engine): free ports, PIDs, logs."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

#: Seconds to wait for a daemon to exit after SIGTERM before SIGKILL.
STOP_TIMEOUT_S = 20.0


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def last_line(text: str) -> str:
    """The last non-blank line of a log or an error output (``'no log'`` if none)."""
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1].strip() if lines else "no log"


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def stop_pid(pid: int) -> bool:
    """SIGTERM, then SIGKILL after :data:`STOP_TIMEOUT_S`; True once the process is gone."""
    for sig, wait_s in ((signal.SIGTERM, STOP_TIMEOUT_S), (signal.SIGKILL, 5.0)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return True
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if not alive(pid):
                return True
            time.sleep(0.1)
    return not alive(pid)


def drain_queue(jobs, cancel, *, timeout: float, what: str) -> None:
    """Call ``cancel()`` until ``jobs()`` is empty; TimeoutError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while jobs():
        cancel()
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} jobs left after {timeout:g}s: {jobs()}")
        time.sleep(0.5)


def stop_cluster(cancel_all, pids: dict, what: str) -> None:
    """Empty the queue (as far as it goes), then stop the daemons by PID, last started first.

    Raises
    ------
    RuntimeError
        A daemon still running after SIGKILL.
    """
    try:
        cancel_all()
    except (TimeoutError, AssertionError, OSError, subprocess.SubprocessError):
        pass  # the daemons are stopped below whatever the queue says
    left = [f"{name} (pid {pid})" for name, pid in reversed(list(pids.items())) if not stop_pid(pid)]
    if left:
        raise RuntimeError(f"{what} daemons still running after SIGKILL: {', '.join(left)}")


@contextmanager
def throwaway_cluster(prefix: str, start, unavailable: type, what: str):
    """A cluster started by ``start(root)`` in a fresh temporary folder, stopped and removed
    afterwards; the test is skipped (with the reason) where ``start`` raises ``unavailable``."""
    root = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        cluster = start(root)
    except unavailable as exc:
        shutil.rmtree(root, ignore_errors=True)
        pytest.skip(f"no {what}: {exc}")
    try:
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
