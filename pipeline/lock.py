"""One run writes a report at a time: a lock file next to it, with host and PID."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

from .atomic import pid_alive
from .errors import FramediffError

__all__ = ["OutputLock", "lock_path"]


def lock_path(output) -> Path:
    """The lock of a report: hidden, next to it."""
    output = Path(output)
    return output.with_name(f".{output.name}.framediff-lock")


class OutputLock:
    """An exclusive claim on a report path, for the length of a ``with`` block.

    A second run on the same output (``resume`` and ``overwrite`` included) is refused
    with the holder's PID and host. A lock left by a process of this host that no
    longer runs is taken over; one of another host is honoured, since its process
    cannot be checked from here (remove it by hand once that run is known to be gone).
    """

    def __init__(self, output):
        self.output = Path(output)
        self.path = lock_path(output)
        self._mine = {"host": socket.gethostname(), "pid": os.getpid()}

    def __enter__(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = self._holder()
                if holder.get("host") == self._mine["host"] and not pid_alive(int(holder.get("pid", -1))):
                    self.path.unlink(missing_ok=True)  # left by a run of this host that died
                    continue
                raise FramediffError(
                    f"another framediff run is writing {self.output} "
                    f"(pid {holder.get('pid', '?')} on host {holder.get('host', '?')}; lock {self.path})"
                ) from None
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(self._mine, fh)
            return self
        raise FramediffError(f"{self.path}: cannot take the lock of {self.output}")

    def _holder(self) -> dict:
        try:
            value = json.loads(self.path.read_text(encoding="utf-8"))
            return value if isinstance(value, dict) else {}
        except (OSError, ValueError):
            return {}

    def __exit__(self, *exc):
        if self._holder() == self._mine:
            self.path.unlink(missing_ok=True)
