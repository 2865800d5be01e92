"""What a finished scan leaves besides the report: sidecars, keep-lists, kept copies,
the HTML page, and the upload of everything to an output URL."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from .atomic import atomic_path, write_json_atomic
from .errors import FramediffError
from .remote import filesystem, upload
from .report import csv_safe, sidecar_path

__all__ = ["Staging", "materialise_kept", "write_keep_list", "write_sidecars"]


class Staging:
    """A local folder that stands in for an output URL until the run is complete.

    The report is written and renamed locally as always, then the finished files are
    uploaded. One folder per output URL, so an interrupted run can be resumed.
    """

    def __init__(self, url: str, *, overwrite: bool):
        fs, remote_path = filesystem(url)
        if fs.exists(remote_path) and not overwrite:
            raise FramediffError(f"{url}: already exists (use overwrite=True to replace it)")
        self.url = url
        digest = hashlib.sha256(url.encode()).hexdigest()[:16]
        self.folder = Path(tempfile.gettempdir()) / f"framediff-stage-{digest}"
        self.folder.mkdir(parents=True, exist_ok=True)
        for stale in self._finished():  # finished files of a run that died uploading them
            shutil.rmtree(stale) if stale.is_dir() else stale.unlink()
        self.report = self.folder / url.rstrip("/").rsplit("/", 1)[-1]

    def _finished(self) -> list:
        return sorted(p for p in self.folder.iterdir() if not p.name.startswith("."))

    def upload(self) -> None:
        """Copy the finished files to the URL's folder, then remove the staging folder."""
        upload(self._finished(), self.url.rsplit("/", 1)[0])
        shutil.rmtree(self.folder, ignore_errors=True)


def write_sidecars(report_path, fmt: str, grouper, summary: dict, summary_path=None) -> None:
    """The events table and the JSON summary next to the report."""
    events_path = sidecar_path(report_path, f".events.{fmt}")
    events = grouper.table()
    with atomic_path(events_path) as tmp:
        if fmt == "parquet":
            pq.write_table(events, tmp)
        else:
            pacsv.write_csv(csv_safe(events), tmp)
    summary["events_report"] = str(events_path)
    write_json_atomic(summary_path or sidecar_path(report_path, ".summary.json"), summary)


def write_keep_list(path, names) -> None:
    """The kept frames' report names, one per line."""
    with atomic_path(Path(path)) as tmp:
        Path(tmp).write_text("".join(f"{name}\n" for name in names), encoding="utf-8")


def materialise_kept(kept, target: Path, *, link: bool) -> None:
    """Copy or symlink the kept images into ``target``, keeping their relative names.

    Parameters
    ----------
    kept : sequence of (name, path)
    target : Path
    link : bool
        Symbolic links instead of copies.
    """
    target.mkdir(parents=True, exist_ok=True)
    for name, path in kept:
        src = Path(path).resolve()
        dst = (target / name).resolve()
        if target.resolve() not in dst.parents:
            raise FramediffError(f"{name}: would be written outside {target}")
        dst.parent.mkdir(parents=True, exist_ok=True)
        if dst.exists() or dst.is_symlink():
            dst.unlink()
        if link:
            os.symlink(src, dst)
        else:
            shutil.copy2(src, dst)
