"""What the HTML page shows of a scan report: the report read, its sidecars, its metadata.

The report is one Parquet or CSV file, or a folder of part files; CSV columns get fixed
types so that part files agree. The summary and events sidecars are read next to the
report (or where older reports put them). A report is data someone else may have
written: metadata fields of the wrong type are dropped, not used. The rows themselves
are reduced by :mod:`framediff.html_reduce`.
"""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc

from .errors import FramediffError
from .html_reduce import Series, scan_numbers
from .metrics import ALL_METRICS, CHANNELS
from .modes import MODES
from .report import legacy_sidecar_path, sidecar_path

if TYPE_CHECKING:  # pyarrow.dataset imports pandas: a fifth of a second a scan without --html never needs
    import pyarrow.dataset as pads

__all__ = [
    "TIME_LABEL",
    "PageData",
    "computed_summary",
    "count_rows",
    "first_line",
    "open_report",
    "read_page_data",
    "unquote",
]

#: Numeric columns that identify a comparison rather than measure it.
_ID_COLUMNS = frozenset({"pair", "index_a", "index_b", "height", "width"})
_TEXT_COLUMNS = frozenset({"path_a", "path_b", "status", "error_kind", "error", "note", "change_kind", "shape_action"})
#: Text columns whose values CSV reports prefix with ' when they look like formulas.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
#: The type each metadata (and summary) field must have to be used; others are dropped.
_FIELD_TYPES = {
    "framediff_version": str,
    "mode": str,
    "root": str,
    "reference": str,
    "fingerprint": str,
    "options": dict,
    "thresholds": dict,
}
#: The x axis label of plots over capture times.
TIME_LABEL = "capture time (UTC)"


# -- the report file and its sidecars ---------------------------------------------------


def open_report(path: Path) -> tuple[pads.Dataset, str]:
    """Open a report as a dataset.

    Parameters
    ----------
    path : Path
        One ``.parquet`` or ``.csv`` file, or a folder of part files.

    Returns
    -------
    tuple of (pyarrow.dataset.Dataset, str)
        The dataset and its format, ``"parquet"`` or ``"csv"``.

    Raises
    ------
    FramediffError
        The report is missing, unreadable, or has no ``pair`` and ``status`` columns.
    """
    if not path.exists():
        raise FramediffError(f"{path}: no such report")
    if path.is_dir():
        parts, fmt = _part_files(path)
    else:
        parts, fmt = [path], "csv" if path.suffix.lower() == ".csv" else "parquet"
    import pyarrow.dataset as pads

    try:
        file_format = _csv_format(parts[0]) if fmt == "csv" else "parquet"
        dataset = pads.dataset([os.fspath(p) for p in parts], format=file_format)
        names = set(dataset.schema.names)
    except (OSError, pa.ArrowException, UnicodeDecodeError) as exc:
        raise FramediffError(f"{path}: not a readable report ({first_line(exc)})") from None
    if not {"pair", "status"} <= names:
        raise FramediffError(f"{path}: not a framediff report (no 'pair' and 'status' columns)")
    return dataset, fmt


def _part_files(folder: Path) -> tuple[list[Path], str]:
    """The part files of a partitioned report and their format (CSV only when all are)."""
    try:
        parts = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith((".", "_")))
    except OSError as exc:
        raise FramediffError(f"{folder}: cannot list the report folder ({exc.strerror or exc})") from None
    fmt = "csv" if parts and all(p.suffix.lower() == ".csv" for p in parts) else "parquet"
    parts = [p for p in parts if p.suffix.lower() == f".{fmt}"]
    if not parts:
        raise FramediffError(f"{folder}: a folder without report part files")
    return parts, fmt


def _csv_format(first_file: Path) -> pads.CsvFileFormat:
    """CSV read with fixed types where inference could differ between part files."""
    import pyarrow.csv as pacsv

    with open(first_file, newline="", encoding="utf-8", errors="replace") as f:
        header = next(csv.reader(f), [])
    floats = _float_columns()
    types = {}
    for name in header:
        if name in _TEXT_COLUMNS:
            types[name] = pa.string()
        elif name in ("changed", "kept"):
            types[name] = pa.bool_()
        elif name in _ID_COLUMNS or name in ("l0", "flow_points"):
            types[name] = pa.int64()
        elif name in floats:
            types[name] = pa.float64()
    import pyarrow.dataset as pads

    return pads.CsvFileFormat(convert_options=pacsv.ConvertOptions(column_types=types))


def _float_columns() -> set:
    names = set(ALL_METRICS) | {"shift_y", "shift_x", "align_peak", "foreground_fraction"}
    return names | {f"{m}_{c}" for m in ALL_METRICS for c in CHANNELS}


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type's name when it has none)."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _validated(meta) -> dict:
    """A report's metadata with each known field of the wrong type left out.

    ``"root": 123`` or ``"thresholds": ["l1"]`` must not reach code that expects a path
    or a mapping. Unknown fields are kept (shown as text), threshold values must be numbers.
    """
    if not isinstance(meta, dict):
        return {}
    out = {}
    for key, value in meta.items():
        want = _FIELD_TYPES.get(key)
        if want is None or isinstance(value, want):
            out[str(key)] = value
    if "thresholds" in out:
        out["thresholds"] = {
            str(k): v for k, v in out["thresholds"].items() if isinstance(v, (int, float)) and not isinstance(v, bool)
        }
    return out


def _metadata(dataset: pads.Dataset) -> dict:
    raw = (dataset.schema.metadata or {}).get(b"framediff")
    if not raw:
        return {}
    try:
        meta = json.loads(raw)
    except ValueError:
        return {}
    return _validated(meta)


def _sidecar(report_path, suffix: str) -> Path:
    """A sidecar of the report; where it is missing, the place older reports used."""
    path = sidecar_path(report_path, suffix)
    legacy = legacy_sidecar_path(report_path, suffix)
    return legacy if not path.exists() and legacy.exists() else path


def _read_json(path: Path):
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _read_events(report_path: Path, fmt: str) -> pa.Table | None:
    """The events sidecar, preferring the report's own format; None when absent or unreadable."""
    for ext in (fmt, "parquet", "csv"):
        path = _sidecar(report_path, f".events.{ext}")
        if path.is_file():
            try:
                if ext == "csv":
                    import pyarrow.csv as pacsv

                    return pacsv.read_csv(path)
                import pyarrow.parquet as pq

                return pq.read_table(path)
            except (OSError, pa.ArrowException):
                return None
    return None


def unquote(value, fmt: str):
    """Undo the ' that CSV reports put before text starting like a formula.

    Parameters
    ----------
    value : object
        A value read from the report; only strings of a CSV report change.
    fmt : str
        The report's format, ``"csv"`` or ``"parquet"``.

    Returns
    -------
    object
        ``value`` without that leading quote.
    """
    if fmt == "csv" and isinstance(value, str) and value[:1] == "'" and value[1:2] in _FORMULA_START:
        return value[1:]
    return value


# -- what the page shows ----------------------------------------------------------------


@dataclass(frozen=True)
class PageData:
    """Everything the page shows of one report, read and reduced."""

    report_path: Path
    dataset: pads.Dataset
    fmt: str  # "parquet" or "csv"
    names: list  # the report's columns
    meta: dict  # the report's metadata, validated
    summary_json: dict | None  # the summary sidecar, validated; None when there is none
    events: pa.Table | None  # the events sidecar
    mode: str
    thresholds: dict  # metric -> limit, numbers only
    options: dict
    in_root: Path | None  # the folder the report's paths are relative to
    metrics: list  # the numeric columns that measure, each plotted
    top_metric: str | None  # the metric the largest changes are ranked by
    x_name: str  # the column plotted along x
    x_label: str
    n_rows: int
    series: Series | None  # None when no row has an x value
    top_rows: list  # row numbers of the largest changes, largest first


def read_page_data(report_path: Path, dataset: pads.Dataset, fmt: str, *, top: int, root) -> PageData:
    """Read what the page shows: metadata, sidecars, the reduced series and the top rows.

    Parameters
    ----------
    report_path : Path
        The report, for its sidecars and name.
    dataset : pyarrow.dataset.Dataset
        The report, from :func:`open_report`.
    fmt : str
        Its format, ``"parquet"`` or ``"csv"``.
    top : int
        How many of the largest changes to keep.
    root : str or Path or None
        The input root given by the caller; None for the one in the metadata.

    Returns
    -------
    PageData
    """
    names = list(dataset.schema.names)
    meta = _metadata(dataset)
    summary_json = _read_json(_sidecar(report_path, ".summary.json"))
    summary_json = None if summary_json is None else _validated(summary_json)
    events = _read_events(report_path, fmt)
    mode = meta.get("mode") or (summary_json or {}).get("mode") or "consecutive"
    thresholds = meta.get("thresholds") or (summary_json or {}).get("thresholds") or {}
    thresholds = _validated({"thresholds": thresholds})["thresholds"]
    options = meta.get("options") or (summary_json or {}).get("options") or {}
    in_root = _resolve_root(root, meta.get("root"), report_path)
    metrics = [
        f.name
        for f in dataset.schema
        if f.name not in _ID_COLUMNS and (pa.types.is_integer(f.type) or pa.types.is_floating(f.type))
    ]
    top_metric = _ranking_metric(metrics, thresholds)
    x_name, x_label = _x_axis(dataset, names, mode)
    n_rows = count_rows(dataset)
    series, top_rows = scan_numbers(dataset, x_name, metrics, n_rows, top_metric, top)
    return PageData(
        report_path=report_path,
        dataset=dataset,
        fmt=fmt,
        names=names,
        meta=meta,
        summary_json=summary_json,
        events=events,
        mode=mode,
        thresholds=thresholds,
        options=options,
        in_root=in_root,
        metrics=metrics,
        top_metric=top_metric,
        x_name=x_name,
        x_label=x_label,
        n_rows=n_rows,
        series=series,
        top_rows=top_rows,
    )


def _ranking_metric(metrics: list, thresholds: dict) -> str | None:
    """The metric the largest changes are ranked by: the first threshold's, else a default."""
    # Without thresholds (changes decided above the noise floor), rank by the mean difference.
    fallback = next((m for m in ("l1_per_pixel", "l0_fraction") if m in metrics), metrics[0] if metrics else None)
    return next((m for m in thresholds if m in metrics), fallback)


def _x_axis(dataset, names, mode) -> tuple[str, str]:
    """The column plotted along x and its label: frames, capture times, or comparisons."""
    follows_frames = getattr(MODES.get(mode), "rows_follow_frames", True)  # unknown mode: frames
    if not (follows_frames and "index_b" in names):
        return "pair", "comparison (pair)"
    if _has_times(dataset, names):
        return "time_b", TIME_LABEL
    return "index_b", "frame index (index_b)"


def _has_times(dataset, names) -> bool:
    """True when the report carries capture times (scans sorted by EXIF or mtime)."""
    if "time_b" not in names:
        return False
    return any(batch.column(0).null_count < batch.num_rows for batch in dataset.to_batches(columns=["time_b"]))


def _resolve_root(root, meta_root, report_path: Path) -> Path | None:
    if root is not None:
        return Path(root)
    if not meta_root:
        return None
    candidate = Path(meta_root)
    if candidate.is_absolute() or candidate.is_dir():
        return candidate
    beside = report_path.parent / candidate  # a relative root, resolved from the report's folder
    return beside if beside.is_dir() else candidate


def count_rows(dataset, expr=None) -> int:
    """Rows of the report, or those matching the filter expression ``expr``."""
    return int(dataset.count_rows(filter=expr) if expr is not None else dataset.count_rows())


def computed_summary(dataset, names, events) -> dict:
    """The summary's counts, computed from the report when it has no summary file.

    Parameters
    ----------
    dataset : pyarrow.dataset.Dataset
        The report.
    names : list of str
        Its columns.
    events : pyarrow.Table or None
        The events sidecar.

    Returns
    -------
    dict
        ``comparisons``, ``ok``, ``errors``, ``errors_by_kind``, ``changed`` and ``events``.
    """
    errors = pc.field("status") == "error"
    by_kind = {}
    if "error_kind" in names:
        kinds = dataset.to_table(columns=["error_kind"], filter=errors).column("error_kind")
        if kinds.type != pa.null():
            for item in pc.value_counts(kinds.drop_null()).to_pylist():
                by_kind[str(item["values"])] = item["counts"]
    return {
        "comparisons": count_rows(dataset),
        "ok": count_rows(dataset, pc.field("status") == "ok"),
        "errors": count_rows(dataset, errors),
        "errors_by_kind": dict(sorted(by_kind.items())),
        "changed": count_rows(dataset, pc.field("changed") == True) if "changed" in names else None,  # noqa: E712
        "events": None if events is None else events.num_rows,
    }
