"""A run's work folder: finished partitions, their checksums, and what resumes them.

While a scan with an output runs, every finished chunk is written as its own Parquet
part (temporary name, then rename) and recorded in ``manifest.json`` (also replaced
atomically) with its row count, size and SHA-256. The manifest is named by the hash
of the options and of the input listing, so ``--resume`` continues exactly the run it
belongs to and refuses any other. Chain modes also record the state the next chunk
starts from: the last kept frame's index (keyframes) or the background model's
arrays (background, an ``.npz`` file loaded without pickle).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .errors import FramediffError

__all__ = ["RunFolder", "inputs_digest", "work_folder"]

MANIFEST = "manifest.json"
_VERSION = 1


def work_folder(output) -> Path:
    """The work folder of a report: hidden, next to it."""
    output = Path(output)
    return output.with_name(f".{output.name}.framediff-run")


def inputs_digest(names, paths) -> str:
    """Hash of the input listing: names, sizes and modification times, in order."""
    h = hashlib.sha256()
    for name, path in zip(names, paths):
        try:
            st = os.stat(path)
            stamp = f"{st.st_size}:{st.st_mtime_ns}"
        except OSError:
            stamp = "missing"
        h.update(f"{name}\0{stamp}\n".encode("utf-8", "backslashreplace"))
    return h.hexdigest()[:16]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale_temporaries(folder: Path) -> int:
    """Remove ``.NAME.tmp-PID`` files left by processes that no longer run."""
    removed = 0
    if not folder.is_dir():
        return 0
    for entry in folder.iterdir():
        name = entry.name
        if not name.startswith(".") or ".tmp-" not in name:
            continue
        pid_text = name.rsplit(".tmp-", 1)[1]
        if pid_text.isdigit() and not _pid_alive(int(pid_text)):
            shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink(missing_ok=True)
            removed += 1
    return removed


class RunFolder:
    """The work folder of one scan with an output.

    Parameters
    ----------
    output : path
        The report being produced.
    identity : dict
        What must match for a resume: options fingerprint, inputs digest, mode,
        chunk size, thresholds.
    resume : bool
        Continue the run recorded in the folder (refused if ``identity`` differs).
    overwrite : bool
        Start afresh even when a folder from an interrupted run exists.
    """

    def __init__(self, output, identity: dict, *, resume: bool, overwrite: bool):
        self.path = work_folder(output)
        self.identity = dict(identity, version=_VERSION)
        clean_stale_temporaries(Path(output).parent)
        self.completed: dict[int, dict] = {}
        if self.path.exists():
            clean_stale_temporaries(self.path)
            recorded = self._read()
            if resume:
                if recorded is None:
                    raise FramediffError(f"{self.path}: no readable manifest to resume from (start again with --overwrite)")
                differs = sorted(k for k in self.identity if recorded.get("identity", {}).get(k) != self.identity[k])
                if differs:
                    raise FramediffError(
                        f"cannot resume: {', '.join(differs)} changed since the interrupted run "
                        f"(use --overwrite to start again)"
                    )
                self.completed = {int(k): v for k, v in recorded.get("completed", {}).items() if self._intact(v)}
            elif overwrite:
                shutil.rmtree(self.path)
            else:
                raise FramediffError(
                    f"an interrupted run left {self.path}: continue it with --resume, or start again with --overwrite"
                )
        elif resume:
            raise FramediffError(f"nothing to resume: {self.path} does not exist")
        self.path.mkdir(parents=True, exist_ok=True)
        self._save()

    def _read(self):
        try:
            return json.loads((self.path / MANIFEST).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def _intact(self, entry: dict) -> bool:
        part = self.path / entry["file"]
        try:
            return part.stat().st_size == entry["bytes"] and _sha256(part) == entry["sha256"]
        except (OSError, KeyError):
            return False

    def _save(self) -> None:
        data = {"identity": self.identity, "completed": {str(k): v for k, v in sorted(self.completed.items())}}
        _write_atomic(self.path / MANIFEST, json.dumps(data, indent=1).encode())

    def record(self, number: int, table: pa.Table, state=None, *, stripe=None) -> None:
        """Persist one finished chunk (and the chain state after it), then the manifest.

        ``stripe`` is the all-pairs block row the chunk belongs to (for ordering).
        """
        name = f"part-{number:06d}.parquet"
        final = self.path / name
        tmp = self.path / f".{name}.tmp-{os.getpid()}"
        pq.write_table(table, tmp)
        os.replace(tmp, final)
        entry = {"file": name, "rows": table.num_rows, "bytes": final.stat().st_size, "sha256": _sha256(final)}
        if stripe is not None:
            entry["stripe"] = stripe
        entry.update(self._save_state(number, state))
        self.completed[number] = entry
        self._save()

    def read(self, number: int) -> pa.Table:
        return pq.read_table(self.path / self.completed[number]["file"])

    def resumable_prefix(self) -> int:
        """The number of leading chunks already complete (chain modes restart after it)."""
        n = 0
        while n in self.completed:
            n += 1
        return n

    # -- chain state -------------------------------------------------------------

    def _save_state(self, number: int, state) -> dict:
        if state is None:
            return {}
        if isinstance(state, tuple):  # keyframes: (kept index, prepared frame, raw frame)
            return {"kept_index": int(state[0])}
        from framediff import kernels as K

        fields = dataclasses.asdict(state)
        arrays = {k: K.to_numpy(v) for k, v in fields.items() if v is not None and not np.isscalar(v) and not isinstance(v, str)}
        scalars = {k: v for k, v in fields.items() if k not in arrays}
        name = f"state-{number:06d}.npz"
        tmp = self.path / f".{name}.tmp-{os.getpid()}.npz"
        np.savez(tmp, **arrays)
        os.replace(tmp, self.path / name)
        # Only the newest model is ever resumed from: drop the older ones (they are big).
        for old, entry in self.completed.items():
            if old < number and entry.pop("model_file", None):
                entry.pop("model_scalars", None)
                (self.path / f"state-{old:06d}.npz").unlink(missing_ok=True)
        return {"model_file": name, "model_scalars": scalars}

    def state_after(self, number: int):
        """What :meth:`record` saved for chunk ``number``: kept index or model fields."""
        entry = self.completed.get(number, {})
        if "kept_index" in entry:
            return ("keyframes", entry["kept_index"])
        if "model_file" in entry:
            with np.load(self.path / entry["model_file"], allow_pickle=False) as data:
                arrays = {k: data[k] for k in data.files}
            return ("background", {**entry["model_scalars"], **arrays})
        return None

    def remove(self) -> None:
        """Delete the folder once the report is complete."""
        shutil.rmtree(self.path, ignore_errors=True)
