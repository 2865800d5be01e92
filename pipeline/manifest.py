"""A run's work folder: finished partitions, their checksums, and what resumes them.

While a scan with an output runs, every finished chunk is written as its own Parquet
part (temporary name, then rename) and recorded in ``manifest.json`` (also replaced
atomically) with its row count, size and SHA-256. The manifest is named by the hash
of the options and of the input listing, so ``--resume`` continues exactly the run it
belongs to and refuses any other. Chain modes also record the state the next chunk
starts from: the last kept frame's index (keyframes) or the background model's
arrays (background, an ``.npz`` file loaded without pickle), as the mode dumps it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .atomic import atomic_path, clean_stale_temporaries, write_bytes_atomic
from .errors import FramediffError

__all__ = ["RunFolder", "file_sha256", "inputs_digest", "work_folder"]

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


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes, hex (read in 1 MiB blocks)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


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
                    raise FramediffError(
                        f"{self.path}: no readable manifest to resume from (start again with overwrite=True)"
                    )
                differs = sorted(k for k in self.identity if recorded.get("identity", {}).get(k) != self.identity[k])
                if differs:
                    raise FramediffError(
                        f"cannot resume: {', '.join(differs)} changed since the interrupted run "
                        f"(use overwrite=True to start again)"
                    )
                self.completed = {int(k): v for k, v in recorded.get("completed", {}).items() if self._intact(v)}
            elif overwrite or (recorded is not None and not recorded.get("completed")):
                # Replaced on request; a folder without a finished chunk (a run that
                # failed at its start) is no interrupted run: nothing to continue.
                shutil.rmtree(self.path)
            else:
                raise FramediffError(
                    f"an interrupted run left {self.path}: continue it with resume=True, or start again with overwrite=True"
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
            return part.stat().st_size == entry["bytes"] and file_sha256(part) == entry["sha256"]
        except (OSError, KeyError):
            return False

    def _save(self) -> None:
        data = {"identity": self.identity, "completed": {str(k): v for k, v in sorted(self.completed.items())}}
        write_bytes_atomic(self.path / MANIFEST, json.dumps(data, indent=1).encode(), sync=True)

    def record(self, number: int, table: pa.Table, state=None, *, stripe=None) -> None:
        """Persist one finished chunk (and the chain state after it), then the manifest.

        ``state`` is the mode's record of the chain state, ``(JSON fields, arrays)``
        (see :meth:`~framediff.modes.Mode.dump_state`); ``stripe`` the all-pairs block
        row the chunk belongs to (for ordering).
        """
        name = f"part-{number:06d}.parquet"
        final = self.path / name
        with atomic_path(final) as tmp:
            pq.write_table(table, tmp)
        entry = {"file": name, "rows": table.num_rows, "bytes": final.stat().st_size, "sha256": file_sha256(final)}
        if stripe is not None:
            entry["stripe"] = stripe
        if state is not None:
            entry.update(self._save_state(number, *state))
        self.completed[number] = entry
        self._save()

    def read(self, number: int) -> pa.Table:
        # ParquetFile, not read_table: one known file needs no dataset layer (nor its pandas import).
        with pq.ParquetFile(self.path / self.completed[number]["file"]) as part:
            return part.read()

    def resumable_prefix(self) -> int:
        """The number of leading chunks already complete (chain modes restart after it)."""
        n = 0
        while n in self.completed:
            n += 1
        return n

    # -- chain state -------------------------------------------------------------

    def _save_state(self, number: int, fields: dict, arrays: dict) -> dict:
        entry = {"state": fields}
        if arrays:
            name = f"state-{number:06d}.npz"
            with atomic_path(self.path / name, suffix=".npz") as tmp:
                np.savez(tmp, **arrays)
            entry["state_file"] = name
            # Only the newest state is ever resumed from: drop the older arrays (big).
            for old, older in self.completed.items():
                if old < number and older.pop("state_file", None):
                    older.pop("state", None)
                    (self.path / f"state-{old:06d}.npz").unlink(missing_ok=True)
        return entry

    def state_after(self, number: int):
        """What :meth:`record` saved for chunk ``number``: ``(fields, arrays)`` or None."""
        entry = self.completed.get(number, {})
        if "state" not in entry:
            return None
        arrays = {}
        if "state_file" in entry:
            with np.load(self.path / entry["state_file"], allow_pickle=False) as data:
                arrays = {k: data[k] for k in data.files}
        return entry["state"], arrays

    def remove(self) -> None:
        """Delete the folder once the report is complete."""
        shutil.rmtree(self.path, ignore_errors=True)
