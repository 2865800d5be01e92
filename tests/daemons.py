"""Small helpers for tests that start daemons (SLURM, Grid Engine): free ports, PIDs, logs."""

from __future__ import annotations

import os
import signal
import socket
import time

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
