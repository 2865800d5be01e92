"""Writing reports as partitions finish: Parquet or CSV, one file or a dataset folder.

Every file is written under a temporary name and renamed into place when complete,
so a reader never sees a half-written report.

CSV is written for the readers people use on it -- DuckDB, pandas, polars -- to infer
every metric column as a float: floats always carry a decimal point or an exponent
(``1.0``, never ``1``, which makes polars guess an integer column from its first
rows), infinities are ``1e999`` and ``-1e999`` (DuckDB reads ``inf`` as text when a
column starts with it; all three read ``1e999`` as infinity), NaN is ``NaN`` and a
missing value is empty. JSON sidecars are strict JSON: non-finite numbers are ``null``.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from .errors import FramediffError

__all__ = [
    "FORMATS",
    "EventGrouper",
    "ReportWriter",
    "csv_floats",
    "csv_ready",
    "csv_safe",
    "format_for",
    "json_safe",
    "sidecar_path",
    "write_json_atomic",
]

FORMATS = ("parquet", "csv")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def format_for(path, fmt: str | None) -> str:
    """The report format: explicit ``fmt``, else from the suffix (``.csv``), else Parquet."""
    if fmt:
        if fmt not in FORMATS:
            raise FramediffError(f"unknown format {fmt!r}; choose from: {', '.join(FORMATS)}")
        return fmt
    return "csv" if str(path).lower().endswith(".csv") else "parquet"


def csv_safe(table: pa.Table) -> pa.Table:
    """Neutralise spreadsheet formulas in text cells (CSV injection): prefix with '."""
    import pyarrow.compute as pc

    columns = []
    for name in table.column_names:
        col = table[name]
        if pa.types.is_string(col.type):
            starts = None
            for prefix in _FORMULA_START:
                hit = pc.starts_with(col, prefix)
                starts = hit if starts is None else pc.or_(starts, hit)
            col = pc.if_else(pc.fill_null(starts, False), pc.binary_join_element_wise("'", col, ""), col)
        columns.append(col)
    return pa.table(columns, names=table.column_names)


def csv_floats(table: pa.Table) -> pa.Table:
    """Float columns as text every CSV reader infers as float (see the module notes).

    Parameters
    ----------
    table : pyarrow.Table

    Returns
    -------
    pyarrow.Table
        The same columns; float ones as strings: ``1.0``, ``0.25``, ``1e+300``,
        ``1e999`` / ``-1e999`` for infinities, ``NaN``; nulls stay null.
    """
    import pyarrow.compute as pc

    columns = []
    for name in table.column_names:
        col = table[name]
        if pa.types.is_floating(col.type):
            text = pc.cast(col, pa.string())
            integral = pc.invert(pc.match_substring_regex(text, "[.eEna]"))
            text = pc.if_else(pc.fill_null(integral, False), pc.binary_join_element_wise(text, ".0", ""), text)
            text = pc.if_else(pc.fill_null(pc.is_nan(col), False), "NaN", text)
            positive = pc.fill_null(pc.greater(col, 0), False)
            infinite = pc.fill_null(pc.is_inf(col), False)
            text = pc.if_else(infinite, pc.if_else(positive, "1e999", "-1e999"), text)
            col = text
        columns.append(col)
    return pa.table(columns, names=table.column_names)


def csv_ready(table: pa.Table) -> pa.Table:
    """What a CSV report holds: formulas neutralised (:func:`csv_safe`), then floats
    spelled for every reader (:func:`csv_floats`), in that order so that ``-1e999``
    is not taken for a formula."""
    return csv_floats(csv_safe(table))


def report_marker(path) -> Path:
    """The mark framediff leaves next to a partitioned report folder it wrote: only a
    folder with it is ever replaced (``overwrite``)."""
    path = Path(path)
    return path.with_name(f".{path.name}.framediff-report")


def _check_replaceable(path: Path, partitioned: bool) -> None:
    """Refuse, before any work, to replace what framediff did not write."""
    if path.is_symlink():
        raise FramediffError(f"{path}: is a symbolic link; framediff does not replace it (name the target itself)")
    if partitioned and not (path.is_dir() and report_marker(path).is_file()):
        raise FramediffError(f"{path}: exists and is not a partitioned report framediff wrote; it is not replaced")
    if not partitioned and not path.is_file():
        raise FramediffError(f"{path}: exists and is not a report file; it is not replaced")


class ReportWriter:
    """Streams tables into a report in the order they are given.

    Parameters
    ----------
    path : str or Path
        A file (single-file report) or a folder (``partitioned=True``: part files).
    fmt : {'parquet', 'csv'}
    schema : pyarrow.Schema
    metadata : dict
        Written into the Parquet file's key-value metadata as JSON under
        ``b'framediff'`` (options, thresholds, metric definitions).
    partitioned : bool
        One part file per chunk in a folder, for very large runs.
    overwrite : bool
        Replace an existing report; otherwise refuse.
    """

    def __init__(self, path, fmt, schema, metadata, *, partitioned=False, overwrite=False):
        self.path = Path(path)
        self.fmt = fmt
        self.partitioned = partitioned
        meta = dict(schema.metadata or {})
        meta[b"framediff"] = json.dumps(json_safe(metadata), default=str, allow_nan=False).encode()
        self.schema = schema.with_metadata(meta)
        if self.path.exists() or self.path.is_symlink():
            if not overwrite:
                raise FramediffError(f"{self.path}: already exists (use overwrite=True to replace it)")
            _check_replaceable(self.path, partitioned)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = self.path.with_name(f".{self.path.name}.tmp-{os.getpid()}")
        self._writer = None
        self.rows = 0
        self._part = 0
        if partitioned:
            self.tmp.mkdir(parents=True, exist_ok=True)

    def write(self, table: pa.Table) -> None:
        """Append ``table`` (rows of one chunk) to the report."""
        table = table.replace_schema_metadata(self.schema.metadata)
        self.rows += table.num_rows
        if self.partitioned:
            part = self.tmp / f"part-{self._part:06d}.{self.fmt}"
            self._part += 1
            self._write_single(part, table)
            return
        if self._writer is None:
            if self.fmt == "parquet":
                self._writer = pq.ParquetWriter(self.tmp, self.schema, compression="zstd")
            else:
                self._writer = pacsv.CSVWriter(self.tmp, _csv_schema(self.schema))
        self._writer.write_table(csv_ready(table) if self.fmt == "csv" else table)

    def _write_single(self, path: Path, table: pa.Table) -> None:
        if self.fmt == "parquet":
            pq.write_table(table, path, compression="zstd")
        else:
            pacsv.write_csv(csv_ready(table), path)

    def close(self) -> Path:
        """Finish the report and move it into place; returns its path."""
        if self.partitioned:
            if self._part == 0:
                self._write_single(self.tmp / f"part-{0:06d}.{self.fmt}", self.schema.empty_table())
            if self.path.exists():
                _check_replaceable(self.path, partitioned=True)  # still ours at the end
                shutil.rmtree(self.path)
            os.replace(self.tmp, self.path)
            report_marker(self.path).write_text(f"{self.path.name} was written by framediff; overwrite replaces it\n")
            return self.path
        if self._writer is None:
            self._write_single(self.tmp, self.schema.empty_table())
        else:
            self._writer.close()
        os.replace(self.tmp, self.path)
        return self.path

    def abort(self) -> None:
        """Remove the temporary output of an unfinished report."""
        try:
            if self._writer is not None:
                self._writer.close()
        except Exception:  # closing a broken writer must not hide the original error
            pass
        if self.tmp.is_dir():
            shutil.rmtree(self.tmp, ignore_errors=True)
        elif self.tmp.exists():
            self.tmp.unlink()


def _csv_schema(schema: pa.Schema) -> pa.Schema:
    """The schema of :func:`csv_ready` tables: float columns become strings."""
    fields = [pa.field(f.name, pa.string()) if pa.types.is_floating(f.type) else f for f in schema]
    return pa.schema(fields, metadata=schema.metadata)


def sidecar_path(report_path, suffix: str) -> Path:
    """A file next to the report, named after all of its name:
    ``cam.parquet`` + ``.events.parquet`` -> ``cam.parquet.events.parquet``.

    The whole name, so that ``cam.parquet`` and ``cam.csv`` in one folder never share a
    summary or an events table.
    """
    report_path = Path(report_path)
    return report_path.with_name(report_path.name + suffix)


def legacy_sidecar_path(report_path, suffix: str) -> Path:
    """Where reports of framediff 0.1 put a sidecar: the report's name without its
    ``.parquet``/``.csv`` suffix, + ``suffix`` (read for older reports only)."""
    report_path = Path(report_path)
    base = report_path.name
    for ext in (".parquet", ".csv"):
        if base.lower().endswith(ext):
            base = base[: -len(ext)]
    return report_path.with_name(base + suffix)


def json_safe(data):
    """``data`` with every NaN or infinite float replaced by None (JSON ``null``).

    Python's ``json`` writes ``NaN`` and ``Infinity``, which strict parsers (browsers,
    ``jq``, most languages) reject. Dicts, lists and tuples are walked; NumPy scalars
    count as numbers.
    """
    import math

    if isinstance(data, dict):
        return {key: json_safe(value) for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return [json_safe(value) for value in data]
    if isinstance(data, float) or type(data).__name__.startswith("float"):
        try:
            return float(data) if math.isfinite(data) else None
        except TypeError:
            return data
    return data


def write_json_atomic(path, data) -> None:
    """Write ``data`` as strict JSON (:func:`json_safe`) to ``path`` through a
    temporary file and a rename."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    text = json.dumps(json_safe(data), indent=2, default=str, allow_nan=False)
    tmp.write_text(text + "\n", encoding="utf-8")
    os.replace(tmp, path)


class EventGrouper:
    """Groups changed comparisons that follow each other into events, as rows stream by.

    A run of changed comparisons, allowing up to ``max_gap`` unchanged (or failed)
    comparisons inside it, is one event when it holds at least ``min_length`` changed
    comparisons. The peak is the largest value of ``metric`` (smallest for a
    similarity) among the event's changed comparisons.
    """

    def __init__(self, metric: str | None, *, min_length: int = 1, max_gap: int = 0, similarity: bool = False):
        self.metric = metric
        self.min_length = max(1, int(min_length))
        self.max_gap = max(0, int(max_gap))
        self.similarity = similarity
        self.events: list[dict] = []
        self._open = None
        self._gap = 0

    def feed(self, table: pa.Table) -> None:
        """Consume one chunk's rows, in report order."""
        cols = table.select(
            [
                c
                for c in ("pair", "index_a", "index_b", "path_a", "path_b", "changed", "status", self.metric)
                if c and c in table.column_names
            ]
        ).to_pylist()
        for row in cols:
            if row.get("status") == "ok" and row.get("changed"):
                value = row.get(self.metric) if self.metric else None
                if self._open is None:
                    self._open = {
                        "first_index": row["index_b"],
                        "first_path": row["path_b"],
                        "before_index": row["index_a"],
                        "n_changed": 0,
                        "peak_value": None,
                        "peak_index": None,
                    }
                ev = self._open
                ev["last_index"], ev["last_path"] = row["index_b"], row["path_b"]
                ev["n_changed"] += 1
                if value is not None and (
                    ev["peak_value"] is None
                    or (value < ev["peak_value"] if self.similarity else value > ev["peak_value"])
                ):
                    ev["peak_value"], ev["peak_index"] = value, row["index_b"]
                self._gap = 0
            elif self._open is not None:
                self._gap += 1
                if self._gap > self.max_gap:
                    self._close()

    def _close(self) -> None:
        if self._open is not None and self._open["n_changed"] >= self.min_length:
            self._open["event"] = len(self.events)
            self._open["peak_metric"] = self.metric
            self.events.append(self._open)
        self._open = None
        self._gap = 0

    def finish(self) -> list[dict]:
        """Close the last event and return all events in order."""
        self._close()
        return self.events

    def table(self) -> pa.Table:
        """The events as an Arrow table with stable columns."""
        schema = pa.schema(
            [
                ("event", pa.int64()),
                ("first_index", pa.int64()),
                ("last_index", pa.int64()),
                ("first_path", pa.string()),
                ("last_path", pa.string()),
                ("before_index", pa.int64()),
                ("n_changed", pa.int64()),
                ("peak_metric", pa.string()),
                ("peak_value", pa.float64()),
                ("peak_index", pa.int64()),
            ]
        )
        rows = [{k: ev.get(k) for k in schema.names} for ev in self.events]
        return pa.Table.from_pylist(rows, schema=schema)
