"""Write-to-temporary-then-rename, and the clean-up of temporaries a dead run left.

Every file framediff writes goes through :func:`atomic_path`: it is written under a
hidden temporary name that carries framediff's marker, this host's name and the
writing process's PID, then renamed into place, so a reader never sees a half-written
file. :func:`clean_stale_temporaries` removes only such marked temporaries, written on
this host by a process that no longer runs: never a file another program wrote, and
never one a live run on another node of a shared filesystem is still writing.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
from contextlib import contextmanager
from pathlib import Path

__all__ = [
    "atomic_path",
    "clean_stale_temporaries",
    "pid_alive",
    "temporary_name",
    "write_bytes_atomic",
    "write_json_atomic",
]

#: What every temporary name carries between the target's name and the host/PID.
MARKER = ".framediff-tmp-"


def _host() -> str:
    # A host name may hold dots and dashes; keep it readable but unambiguous.
    return socket.gethostname().replace(".", "_").replace("-", "_") or "localhost"


def temporary_name(path) -> Path:
    """The temporary sibling of ``path``: ``.NAME.framediff-tmp-HOST-PID``."""
    path = Path(path)
    return path.with_name(f".{path.name}{MARKER}{_host()}-{os.getpid()}")


@contextmanager
def atomic_path(path, *, suffix: str = ""):
    """Yield a temporary path; on success rename it to ``path``, on failure remove it.

    Parameters
    ----------
    path : str or Path
        The final file (or folder).
    suffix : str
        Appended to the temporary name, for writers that choose a format by suffix.
    """
    path = Path(path)
    tmp = temporary_name(path)
    if suffix:
        tmp = tmp.with_name(tmp.name + suffix)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        _remove(tmp)
        raise


def write_bytes_atomic(path, data: bytes, *, sync: bool = False) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)
            if sync:
                fh.flush()
                os.fsync(fh.fileno())


def write_json_atomic(path, data) -> None:
    """Write ``data`` as JSON to ``path`` through a temporary file and a rename."""
    write_bytes_atomic(path, (json.dumps(data, indent=2, default=str) + "\n").encode("utf-8"))


def _remove(entry: Path) -> None:
    if entry.is_dir() and not entry.is_symlink():
        shutil.rmtree(entry, ignore_errors=True)
    else:
        entry.unlink(missing_ok=True)


def pid_alive(pid: int) -> bool:
    """True while process ``pid`` of this host runs (or cannot be signalled)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale_temporaries(folder) -> int:
    """Remove framediff's temporaries in ``folder`` whose writer on this host is gone.

    Returns the number removed. Names without framediff's marker, temporaries of
    another host, and those of a live process are left alone.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    removed = 0
    prefix = f"{MARKER}{_host()}-"
    for entry in folder.iterdir():
        name = entry.name
        if not name.startswith(".") or prefix not in name:
            continue
        pid_text = name.rsplit(prefix, 1)[1].split(".", 1)[0]
        if pid_text.isdigit() and int(pid_text) != os.getpid() and not pid_alive(int(pid_text)):
            _remove(entry)
            removed += 1
    return removed
