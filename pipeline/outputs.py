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
from .report import csv_safe, format_for, sidecar_path
from .video_kept import event_table_with_times

__all__ = [
    "Staging",
    "check_kept_destination",
    "check_outputs",
    "materialise_kept",
    "write_keep_list",
    "write_sidecars",
]


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


def write_sidecars(report_path, fmt: str, grouper, summary: dict, summary_path=None, times=None) -> None:
    """The events table and the JSON summary next to the report.

    ``times`` (seconds per frame, a scan with videos) gives events their start and end times.
    """
    events_path = sidecar_path(report_path, f".events.{fmt}")
    events = grouper.table()
    if times is not None:
        events = event_table_with_times(events, times)
    with atomic_path(events_path) as tmp:
        if fmt == "parquet":
            pq.write_table(events, tmp)
        else:
            pacsv.write_csv(csv_safe(events), tmp)
    summary["events_report"] = str(events_path)
    write_json_atomic(summary_path or sidecar_path(report_path, ".summary.json"), summary)


def write_keep_list(path, names, *, nul: bool = False) -> None:
    """The kept frames' report names, one per line, or NUL-terminated with ``nul``.

    A name holding a newline would split across lines: such a list is refused unless
    NUL-separated (``keep_list0=True``, for ``xargs -0``).
    """
    if not nul:
        odd = next((n for n in names if "\n" in n or "\r" in n), None)
        if odd is not None:
            raise FramediffError(f"{odd!r}: a kept name holds a line break; write the list with keep_list0=True")
    end = "\0" if nul else "\n"
    with atomic_path(Path(path)) as tmp:
        Path(tmp).write_text("".join(f"{name}{end}" for name in names), encoding="utf-8", errors="surrogateescape")


def check_outputs(request, paths) -> None:
    """Refuse, before any work, outputs that would overwrite an input or each other.

    The report, its sidecars (events, summary), the HTML page, the keep-list and the
    folders of masks and kept frames must be distinct files, none of them an input.

    Raises
    ------
    FramediffError
        Naming the two colliding paths.
    """
    if request.output is None or not request.local_output:
        return
    report = Path(request.output)
    fmt = format_for(report, request.format)
    summary = Path(request.summary) if request.summary is not None else sidecar_path(report, ".summary.json")
    named = {
        "output": report,
        "events sidecar": sidecar_path(report, f".events.{fmt}"),
        "summary": summary,
        "html": request.html,
        "keep_list": request.keep_list,
        "masks": request.masks,
        "copy_kept": request.copy_kept,
        "link_kept": request.link_kept,
        "extract_kept": request.extract_kept,
        "kept_timestamps": request.kept_timestamps,
    }
    seen = {}
    for what, path in named.items():
        if path is None:
            continue
        real = os.path.realpath(path)
        if real in seen:
            raise FramediffError(f"{what} {path} is also the {seen[real]}: give each output its own name")
        seen[real] = what
    inputs = {os.path.realpath(p) for p in paths if "://" not in str(p)}
    for real, what in seen.items():
        if real in inputs:
            raise FramediffError(f"{what} {real} is one of the inputs: framediff does not write over an input")


def check_kept_destination(target, paths, *, link: bool) -> None:
    """Refuse, before any work, a kept-frame folder that is or holds an input.

    Writing kept frames into the folder they come from would replace frames by links
    to themselves, or copies over their own source.

    Raises
    ------
    FramediffError
        ``target`` is an input folder, or an input lies inside it.
    """
    root = os.path.realpath(target)
    for path in paths:
        if "://" in str(path):
            continue
        real = os.path.realpath(path)
        if real == root or real.startswith(root.rstrip(os.sep) + os.sep):
            flag = "link_kept" if link else "copy_kept"
            raise FramediffError(
                f"{flag}={os.fspath(target)!r}: that folder holds the input {path}; choose another folder"
            )


def materialise_kept(kept, target: Path, *, link: bool) -> None:
    """Copy or symlink the kept images into ``target``, keeping their relative names.

    An entry already there that is the kept frame (a link to it, or a copy of the same
    size and modification time, as an earlier run left it) is kept as is; anything else
    at that name is refused rather than replaced.

    Parameters
    ----------
    kept : sequence of (name, path)
    target : Path
    link : bool
        Symbolic links instead of copies.

    Raises
    ------
    FramediffError
        A name that would leave ``target``, or a different file already at a name.
    """
    target.mkdir(parents=True, exist_ok=True)
    root = target.resolve()
    for name, path in kept:
        src = Path(path).resolve()
        # The link itself, not what it points to: an earlier run's link stays inside.
        dst = Path(os.path.normpath(root / name))
        if root not in dst.parents:
            raise FramediffError(f"{name}: would be written outside {target}")
        if dst.is_symlink() or dst.exists():
            if _same_kept(dst, src, link=link):
                continue
            raise FramediffError(
                f"{dst}: already exists and is not the kept frame {name}; framediff does not replace it"
            )
        dst.parent.mkdir(parents=True, exist_ok=True)
        if link:
            os.symlink(src, dst)
        else:
            with atomic_path(dst) as tmp:
                shutil.copy2(src, tmp)


def _same_kept(dst: Path, src: Path, *, link: bool) -> bool:
    if dst.is_symlink():
        return link and Path(os.path.realpath(dst)) == src
    if link:
        return False
    a, b = dst.stat(), src.stat()
    return a.st_size == b.st_size and int(a.st_mtime) == int(b.st_mtime)
