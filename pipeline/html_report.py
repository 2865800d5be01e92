"""One self-contained HTML page from a scan report: summary, plots, top changes, errors.

Everything the page shows is inside the file: plots and thumbnails are PNG ``data:``
URIs, the style sheet is inline, there is no JavaScript, and a Content-Security-Policy
forbids any script or network request. Every string taken from the data (file names,
reasons, option values, column names) goes through :func:`html.escape`.

Large reports stay cheap: the report is read in record batches, only the columns a
section needs, and each series is reduced to a min/max envelope per pixel column of
its plot, so memory and page size do not grow with the number of rows.
"""

from __future__ import annotations

import base64
import csv
import datetime
import html
import io
import json
import math
import os
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads

from .decode import DecodeError, read_image
from .errors import FramediffError
from .metrics import ALL_METRICS, CHANNELS, HIGHER_IS_SIMILAR
from .modes import MODES
from .report import legacy_sidecar_path, sidecar_path
from .video_outputs import read_video_frame, split_frame_name

__all__ = ["write_html_report"]

#: Numeric columns that identify a comparison rather than measure it.
_ID_COLUMNS = frozenset({"pair", "index_a", "index_b", "height", "width"})
#: Pixel columns of a plot's drawing area: series with more points are reduced to a
#: min/max envelope per column.
_PLOT_BINS = 1000
_PLOT_SIZE = (11.0, 2.5)  # inches, at _PLOT_DPI
_PLOT_DPI = 100
#: Longest side of a thumbnail, in pixels.
_THUMB = 200
#: Rows listed at most in the error and event tables (the report holds them all).
_MAX_LISTED = 500
_BATCH_ROWS = 262_144
_TOP_COLUMNS = ("pair", "index_a", "index_b", "path_a", "path_b", "height", "width", "changed", "change_kind", "note")
_EVENT_COLUMNS = (
    "event", "first_index", "last_index", "first_path", "last_path", "n_changed", "peak_metric", "peak_value", "peak_index"
)
_RUN_KEYS = ("device", "scheduler", "workers", "chunk_size", "wall_seconds", "images_per_second", "skipped_non_image")
_META_KEYS = ("framediff_version", "mode", "root", "reference", "fingerprint")
#: Text columns whose values CSV reports prefix with ' when they look like formulas.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_CSS = """
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;max-width:1180px;
padding:0 16px 48px;color:#1d2330;background:#fff}
h1{font-size:22px;margin:20px 0 4px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #d8dce3;
padding-bottom:4px}.sub{color:#5a6270;margin:0 0 12px;word-break:break-all}
.cards{display:flex;flex-wrap:wrap;gap:8px;margin:8px 0}.card{border:1px solid #d8dce3;border-radius:6px;
padding:6px 12px;min-width:90px}.card b{display:block;font-size:20px}.card span{color:#5a6270;font-size:12px}
.card.bad b{color:#b3261e}.card.hot b{color:#c25400}
table{border-collapse:collapse;margin:6px 0;font-size:13px}th,td{border:1px solid #d8dce3;padding:3px 8px;
text-align:left;vertical-align:top}th{background:#f3f5f8}td.num{text-align:right;font-variant-numeric:tabular-nums}
td.path{word-break:break-all;max-width:420px}.plot{display:block;max-width:100%;height:auto;margin:4px 0 14px}
.top{border:1px solid #d8dce3;border-radius:6px;padding:8px 10px;margin:10px 0}
.top h3{font-size:15px;margin:0 0 6px;word-break:break-all}.imgs{display:flex;flex-wrap:wrap;gap:10px}
figure{margin:0}figcaption{font-size:12px;color:#5a6270;max-width:220px;word-break:break-all}
.thumb{display:block;border:1px solid #d8dce3;image-rendering:auto}.missing{width:200px;height:80px;
border:1px dashed #b3261e;color:#b3261e;font-size:12px;padding:4px;overflow:hidden;word-break:break-all}
.note{color:#5a6270;font-size:12px}details{margin:8px 0}summary{cursor:pointer;font-weight:600}
"""




def _sidecar(report_path, suffix: str) -> Path:
    """A sidecar of the report; where it is missing, the place older reports used."""
    path = sidecar_path(report_path, suffix)
    legacy = legacy_sidecar_path(report_path, suffix)
    return legacy if not path.exists() and legacy.exists() else path

def _e(value) -> str:
    """Text from the data, escaped for HTML element content and attribute values."""
    return html.escape("" if value is None else str(value), quote=True)


# -- reading the report ---------------------------------------------------------------




def _float_columns() -> set:
    names = set(ALL_METRICS) | {"shift_y", "shift_x", "align_peak", "foreground_fraction"}
    return names | {f"{m}_{c}" for m in ALL_METRICS for c in CHANNELS}


def _csv_format(first_file: Path) -> pads.CsvFileFormat:
    """CSV read with fixed types where inference could differ between part files."""
    import pyarrow.csv as pacsv

    with open(first_file, newline="", encoding="utf-8", errors="replace") as f:
        header = next(csv.reader(f), [])
    floats = _float_columns()
    types = {}
    for name in header:
        if name in ("path_a", "path_b", "status", "error_kind", "error", "note", "change_kind", "shape_action"):
            types[name] = pa.string()
        elif name in ("changed", "kept"):
            types[name] = pa.bool_()
        elif name in _ID_COLUMNS or name in ("l0", "flow_points"):
            types[name] = pa.int64()
        elif name in floats:
            types[name] = pa.float64()
    return pads.CsvFileFormat(convert_options=pacsv.ConvertOptions(column_types=types))


def _open_dataset(path: Path) -> tuple[pads.Dataset, str]:
    """The report as a dataset (one file or a folder of part files) and its format."""
    if not path.exists():
        raise FramediffError(f"{path}: no such report")
    if path.is_dir():
        try:
            parts = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith((".", "_")))
        except OSError as exc:
            raise FramediffError(f"{path}: cannot list the report folder ({exc.strerror or exc})") from None
        fmt = "csv" if parts and all(p.suffix.lower() == ".csv" for p in parts) else "parquet"
        parts = [p for p in parts if p.suffix.lower() == f".{fmt}"]
        if not parts:
            raise FramediffError(f"{path}: a folder without report part files")
    else:
        parts = [path]
        fmt = "csv" if path.suffix.lower() == ".csv" else "parquet"
    try:
        file_format = _csv_format(parts[0]) if fmt == "csv" else "parquet"
        dataset = pads.dataset([os.fspath(p) for p in parts], format=file_format)
        names = set(dataset.schema.names)
    except (OSError, pa.ArrowException, UnicodeDecodeError) as exc:
        raise FramediffError(f"{path}: not a readable report ({_first_line(exc)})") from None
    if not {"pair", "status"} <= names:
        raise FramediffError(f"{path}: not a framediff report (no 'pair' and 'status' columns)")
    return dataset, fmt


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


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


def _validated(meta) -> dict:
    """A report's metadata with each known field of the wrong type left out.

    A report is data someone else may have written: ``"root": 123`` or
    ``"thresholds": ["l1"]`` must not reach code that expects a path or a mapping.
    Unknown fields are kept (shown as text), threshold values must be numbers.
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


def _read_json(path: Path):
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _read_events(report_path: Path, fmt: str) -> pa.Table | None:
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


def _unquote(value, fmt: str):
    """Undo the ' that CSV reports put before text starting like a formula."""
    if fmt == "csv" and isinstance(value, str) and value[:1] == "'" and value[1:2] in _FORMULA_START:
        return value[1:]
    return value


# -- series: one pass over the numbers ------------------------------------------------


class _Series:
    """Every plotted column, reduced to at most ``bins`` points per series.

    Small runs keep their points; larger ones keep, per pixel column, the minimum and
    maximum of each metric, the extreme value among changed comparisons, and whether an
    error row falls there. Fed in record batches, so memory does not grow with rows.
    """

    def __init__(self, metrics, x_lo, x_hi, n_rows, bins=_PLOT_BINS):
        self.metrics = list(metrics)
        self.x_lo, self.x_hi = float(x_lo), float(x_hi)
        self.raw = n_rows <= 2 * bins
        self.bins = bins
        self.nonfinite = dict.fromkeys(self.metrics, 0)
        if self.raw:
            self._x, self._y, self._changed, self._error = [], {m: [] for m in self.metrics}, [], []
        else:
            self.lo = {m: np.full(bins, np.inf) for m in self.metrics}
            self.hi = {m: np.full(bins, -np.inf) for m in self.metrics}
            self.peak = {m: np.full(bins, np.nan) for m in self.metrics}
            self.error_bins = np.zeros(bins, bool)

    def bin_of(self, x: np.ndarray) -> np.ndarray:
        span = self.x_hi - self.x_lo + 1.0
        return np.clip(((x - self.x_lo) * (self.bins / span)).astype(np.int64), 0, self.bins - 1)

    def centers(self) -> np.ndarray:
        span = self.x_hi - self.x_lo + 1.0
        return self.x_lo - 0.5 + (np.arange(self.bins) + 0.5) * (span / self.bins)

    def add(self, x: np.ndarray, values: dict, changed: np.ndarray, error: np.ndarray) -> None:
        keep = np.isfinite(x)
        x, changed, error = x[keep], changed[keep], error[keep]
        values = {m: v[keep] for m, v in values.items()}
        for m, v in values.items():
            self.nonfinite[m] += int(np.count_nonzero(np.isinf(v)))
        if self.raw:
            self._x.append(x)
            self._changed.append(changed)
            self._error.append(error)
            for m, v in values.items():
                self._y[m].append(v)
            return
        b = self.bin_of(x)
        self.error_bins[b[error]] = True
        for m, v in values.items():
            ok = np.isfinite(v)
            np.minimum.at(self.lo[m], b[ok], v[ok])
            np.maximum.at(self.hi[m], b[ok], v[ok])
            hit = ok & changed
            if hit.any():
                fold = np.fmin if m in HIGHER_IS_SIMILAR else np.fmax
                fold.at(self.peak[m], b[hit], v[hit])

    def points(self):
        """Raw mode: x, {metric: y}, changed, error as arrays."""
        return (
            _concat(self._x, float),
            {m: _concat(p, float) for m, p in self._y.items()},
            _concat(self._changed, bool),
            _concat(self._error, bool),
        )


def _concat(parts, dtype) -> np.ndarray:
    return np.concatenate(parts) if parts else np.zeros(0, dtype)


def _numpy(column, dtype=np.float64) -> np.ndarray:
    if pa.types.is_timestamp(column.type):  # capture times: seconds since the epoch
        unit = {"s": 1.0, "ms": 1e3, "us": 1e6, "ns": 1e9}[column.type.unit]
        seconds = pc.cast(column, pa.int64()).to_numpy(zero_copy_only=False).astype(np.float64)
        return seconds / unit
    if column.type == pa.null():
        return np.full(len(column), np.nan if dtype == np.float64 else False, dtype)
    if dtype == np.bool_:
        return pc.fill_null(column, False).to_numpy(zero_copy_only=False).astype(bool, copy=False)
    return pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False).astype(np.float64, copy=False)


class _TopN:
    """The ``n`` rows with the largest (or smallest) value of one metric, streamed."""

    def __init__(self, n: int, smallest: bool):
        self.n = max(0, int(n))
        self.smallest = smallest
        self.keys = np.zeros(0)
        self.rows = np.zeros(0, np.int64)

    def add(self, values: np.ndarray, ok: np.ndarray, first_row: int) -> None:
        if not self.n:
            return
        valid = ok & ~np.isnan(values)
        rows = np.flatnonzero(valid) + first_row
        keys = values[valid] if self.smallest else -values[valid]
        keys = np.concatenate([self.keys, keys])
        rows = np.concatenate([self.rows, rows])
        if len(keys) > self.n:
            pick = np.argpartition(keys, self.n - 1)[: self.n]
            keys, rows = keys[pick], rows[pick]
        self.keys, self.rows = keys, rows

    def ordered_rows(self) -> list[int]:
        order = np.lexsort((self.rows, self.keys))
        return [int(r) for r in self.rows[order]]


def _x_range(dataset, x_name) -> tuple[float, float] | None:
    lo, hi = math.inf, -math.inf
    for batch in dataset.to_batches(columns=[x_name], batch_size=_BATCH_ROWS):
        x = _x_values(batch.column(0), x_name)
        x = x[np.isfinite(x)]
        if len(x):
            lo, hi = min(lo, float(x.min())), max(hi, float(x.max()))
    return (lo, hi) if lo <= hi else None


def _has_times(dataset, names) -> bool:
    """True when the report carries capture times (scans sorted by EXIF or mtime)."""
    if "time_b" not in names:
        return False
    return any(batch.column(0).null_count < batch.num_rows for batch in dataset.to_batches(columns=["time_b"]))


def _scan_numbers(dataset, x_name, metrics, n_rows, top_metric, top_n):
    """One pass over x, the metrics, ``changed`` and ``status``: series and top rows."""
    x_range = _x_range(dataset, x_name)
    series = None if x_range is None else _Series(metrics, *x_range, n_rows)
    top = _TopN(top_n, top_metric in HIGHER_IS_SIMILAR) if top_metric else None
    names = set(dataset.schema.names)
    columns = list(dict.fromkeys([x_name, *metrics, "status"] + (["changed"] if "changed" in names else [])))
    offset = 0
    for batch in dataset.to_batches(columns=columns, batch_size=_BATCH_ROWS):
        n = batch.num_rows
        ok = _numpy(pc.equal(batch.column("status"), "ok"), np.bool_)
        changed = _numpy(batch.column("changed"), np.bool_) if "changed" in names else np.zeros(n, bool)
        values = {m: _numpy(batch.column(m)) for m in metrics}
        if series is not None:
            series.add(_x_values(batch.column(x_name), x_name), values, changed & ok, ~ok)
        if top is not None:
            top.add(values[top_metric], ok, offset)
        offset += n
    return series, ([] if top is None else top.ordered_rows())


# -- plots -----------------------------------------------------------------------------


def _events_in_time(dataset, events):
    """Events with their first/last frame replaced by those frames' capture times, and
    half the median interval between frames (the spans' margin)."""
    if events is None or events.num_rows == 0:
        return events, 0.5
    when = {}
    for batch in dataset.to_batches(columns=["index_b", "time_b"], batch_size=_BATCH_ROWS):
        for i, t in zip(_numpy(batch.column(0)), _x_values(batch.column(1), "time_b")):
            if np.isfinite(i) and np.isfinite(t):
                when[int(i)] = t
    first = [when.get(i, math.nan) for i in events.column("first_index").to_pylist()]
    last = [when.get(i, math.nan) for i in events.column("last_index").to_pylist()]
    gaps = np.diff(np.sort(np.fromiter(when.values(), float)))
    half = 0.5 * float(np.median(gaps)) if len(gaps) else 0.5
    table = pa.table({"first_index": pa.array(first, pa.float64()), "last_index": pa.array(last, pa.float64())})
    return table, half


def _event_runs(series: _Series, events: pa.Table | None, half: float = 0.5) -> list[tuple[float, float]]:
    """Event spans in x units, merged where they share a pixel column (at most ``bins``).

    ``half`` widens each span on both sides: half a frame on the index axis, half the
    typical interval between frames on the capture-time axis.
    """
    if events is None or events.num_rows == 0 or not {"first_index", "last_index"} <= set(events.column_names):
        return []
    first = _numpy(events.column("first_index"))
    last = _numpy(events.column("last_index"))
    keep = np.isfinite(first) & np.isfinite(last)
    first, last = first[keep], last[keep]
    if series.raw and len(first) <= 2 * series.bins:
        spans = sorted(zip(first - half, last + half))
        merged = []
        for a, b in spans:
            if merged and a <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], b))
            else:
                merged.append((a, b))
        return merged
    cover = np.zeros(series.bins + 1, np.int64)
    np.add.at(cover, series.bin_of(first), 1)
    np.add.at(cover, series.bin_of(last) + 1, -1)
    covered = np.cumsum(cover[:-1]) > 0
    edges = np.flatnonzero(np.diff(np.concatenate([[0], covered.astype(np.int8), [0]])))
    width = (series.x_hi - series.x_lo + 1.0) / series.bins
    return [(series.x_lo - 0.5 + a * width, series.x_lo - 0.5 + b * width) for a, b in zip(edges[::2], edges[1::2])]


_TIME_LABEL = "capture time (UTC)"


#: Capture times are clipped into what a datetime can show: an EXIF year 9999 (or a
#: modification time of 1e300) is kept in the plot, at its edge, not a crash.
_TIME_MIN = datetime.datetime(1, 1, 2, tzinfo=datetime.timezone.utc).timestamp()
_TIME_MAX = datetime.datetime(9999, 12, 30, tzinfo=datetime.timezone.utc).timestamp()


def _x_values(column, x_name: str) -> np.ndarray:
    """The x values of a batch; capture times clipped into :data:`_TIME_MIN` ..
    :data:`_TIME_MAX` (NaN stays NaN: no time)."""
    x = _numpy(column)
    return np.clip(x, _TIME_MIN, _TIME_MAX) if x_name == "time_b" else x


def _format_time(value, _pos=None) -> str:
    value = min(max(float(value), _TIME_MIN), _TIME_MAX) if math.isfinite(value) else _TIME_MIN
    stamp = datetime.datetime.fromtimestamp(value, tz=datetime.timezone.utc)
    return stamp.strftime("%Y-%m-%d\n%H:%M:%S")


def _literal(text: str) -> str:
    """``text`` as matplotlib draws it literally: ``$`` would start mathtext, and a
    column named ``$\\frac{x$`` must be a label, not a parse error."""
    return str(text).replace("$", "\\$")


def _plot_png(series: _Series, metric: str, x_label: str, threshold, spans) -> bytes:
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator
    from matplotlib.transforms import blended_transform_factory

    fig = Figure(figsize=_PLOT_SIZE, dpi=_PLOT_DPI)
    # Fixed margins: every plot's axes line up, whatever its legend or tick labels.
    fig.subplots_adjust(left=0.075, right=0.845, bottom=0.19, top=0.88)
    ax = fig.add_subplot()
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    similar = metric in HIGHER_IS_SIMILAR
    for k, (a, b) in enumerate(spans):
        ax.axvspan(a, b, color="#d62728", alpha=0.13, lw=0, label="event" if k == 0 else None)
    if series.raw:
        x, ys, changed, error = series.points()
        y = ys[metric]
        order = np.argsort(x, kind="stable")
        ax.plot(x[order], y[order], color="#1f77b4", lw=1.0, marker=".", ms=3, label=_literal(metric))
        hit = changed & np.isfinite(y)
        x_changed, y_changed = x[hit], y[hit]
        x_error = np.unique(x[error])
    else:
        centers = series.centers()
        lo, hi = series.lo[metric], series.hi[metric]
        has = np.isfinite(lo)
        lo, hi = np.where(has, lo, np.nan), np.where(has, hi, np.nan)
        ax.fill_between(
            centers, lo, hi, step="mid", color="#1f77b4", alpha=0.55, lw=0.8, edgecolor="#1f77b4", label=_literal(f"{metric} (min/max)")
        )
        peak = series.peak[metric]
        hit = np.isfinite(peak)
        x_changed, y_changed = centers[hit], peak[hit]
        x_error = centers[series.error_bins]
    if len(x_changed):
        ax.plot(x_changed, y_changed, ls="none", marker="o", ms=3.5, color="#d62728", label="changed")
    if threshold is not None and math.isfinite(threshold):
        ax.axhline(threshold, color="#ff7f0e", ls="--", lw=1.2, label=f"threshold {threshold:g}")
    if len(x_error):
        trans = blended_transform_factory(ax.transData, ax.transAxes)
        ax.plot(
            x_error, np.full(len(x_error), 0.02), ls="none", marker="|", ms=9, color="#555555",
            transform=trans, label="failed", zorder=4,
        )
    direction = "lower = more different" if similar else "higher = more different"
    ax.set_title(f"{metric} ({direction})", loc="left", fontsize=11, parse_math=False)
    ax.set_xlabel(x_label, parse_math=False)
    if x_label == _TIME_LABEL:
        from matplotlib.ticker import FuncFormatter

        span = series.x_hi - series.x_lo
        pad = 0.02 * span if span > 0 else 0.5
        ax.set_xlim(series.x_lo - pad, series.x_hi + pad)
        ax.xaxis.set_major_formatter(FuncFormatter(_format_time))
    else:
        ax.set_xlim(series.x_lo - 0.5, series.x_hi + 0.5)
        ax.ticklabel_format(axis="x", style="plain", useOffset=False)
    ax.grid(True, alpha=0.3)
    if series.nonfinite[metric]:
        ax.text(
            0.995, 0.97, f"{series.nonfinite[metric]} infinite values not drawn", transform=ax.transAxes,
            ha="right", va="top", fontsize=8, color="#555555", parse_math=False,
        )
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=_PLOT_DPI, metadata={"Software": None})
    return buf.getvalue()


def _png_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _safe_filename(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", name).strip("._") or "metric"


# -- thumbnails ------------------------------------------------------------------------


def _inside(root: Path, name: str) -> Path | None:
    """``root/name`` when it stays inside ``root`` (a report cannot point elsewhere)."""
    if not name or os.path.isabs(name):
        return None
    base = os.path.normpath(os.path.abspath(root))
    path = os.path.normpath(os.path.join(base, name))
    return Path(path) if os.path.commonpath([base, path]) == base else None


def _to_rgb8(image: np.ndarray) -> np.ndarray:
    if image.ndim == 3:
        if image.shape[2] in (2, 4):
            image = image[..., :-1]
        if image.shape[2] == 1:
            image = image[..., 0]
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    elif image.dtype != np.uint8:
        image = np.asarray(image, np.float64)
        top = np.nanmax(image) if image.size else 1.0
        image = np.nan_to_num(image * (255.0 if top <= 1.0 else 1.0))
        image = np.clip(np.rint(image), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(image)


def _thumbnail(root: Path | None, name, shape_hint, fmt: str):
    """(PIL image or None, message): a small picture of one input, or why there is none."""
    from PIL import Image

    name = _unquote(name, fmt)
    if root is None:
        return None, "input root unknown (pass --root)"
    if not isinstance(name, str) or not name:
        return None, "no path in the report"
    video_frame = split_frame_name(name)  # clip.mp4#frame=123: decoded from the video
    path = _inside(root, video_frame[0] if video_frame else name)
    if path is None:
        return None, "path outside the input root: not read"
    scale = 1.0
    if shape_hint and all(shape_hint) and max(shape_hint) > 0:
        scale = min(1.0, max(0.125, 2.0 * _THUMB / max(shape_hint)))
    try:
        if video_frame:
            image = _to_rgb8(read_video_frame(path, video_frame[1], scale=scale))
        else:
            image = _to_rgb8(read_image(path, scale=scale))
    except DecodeError as exc:
        return None, f"cannot read: {exc.reason} [{exc.kind}]"
    except (OSError, ValueError, MemoryError) as exc:
        return None, f"cannot read: {_first_line(exc)}"
    picture = Image.fromarray(image)
    picture.thumbnail((_THUMB, _THUMB), Image.Resampling.LANCZOS)
    return picture, ""


def _png_of(picture, *, palette: bool) -> bytes:
    from PIL import Image

    if palette and picture.mode == "RGB":
        picture = picture.quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    buf = io.BytesIO()
    picture.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def _heatmap(a, b):
    """|a - b| of the gray thumbnails, colormapped (inferno), and the difference shown brightest."""
    from matplotlib import colormaps
    from PIL import Image

    gray_a = np.asarray(a.convert("L"), np.float64)
    gray_b = np.asarray(b.convert("L").resize(a.size, Image.Resampling.BILINEAR), np.float64)
    diff = np.abs(gray_a - gray_b)
    top = max(float(diff.max()), 1.0)
    level = np.clip(np.rint(diff * (255.0 / top)), 0, 255).astype(np.uint8)
    lut = (colormaps["inferno"](np.linspace(0, 1, 256))[:, :3] * 255).round().astype(np.uint8)
    heat = Image.fromarray(level)  # putpalette turns L into P, levels as indices
    heat.putpalette(lut.ravel().tolist())
    return heat, top


# -- page ------------------------------------------------------------------------------


def _fmt(value) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return f"{value:.6g}"
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, default=str)
    return "" if value is None else str(value)


def _kv_table(items) -> str:
    rows = "".join(f"<tr><th>{_e(k)}</th><td>{_e(_fmt(v))}</td></tr>" for k, v in items)
    return f"<table>{rows}</table>" if rows else '<p class="note">none</p>'


def _card(label, value, cls="") -> str:
    return f'<div class="card {cls}"><b>{_e(_fmt(value))}</b> <span>{_e(label)}</span></div>'


def _count(dataset, expr=None) -> int:
    return int(dataset.count_rows(filter=expr) if expr is not None else dataset.count_rows())


def _computed_summary(dataset, names, events) -> dict:
    errors = pc.field("status") == "error"
    by_kind = {}
    if "error_kind" in names:
        kinds = dataset.to_table(columns=["error_kind"], filter=errors).column("error_kind")
        if kinds.type != pa.null():
            for item in pc.value_counts(kinds.drop_null()).to_pylist():
                by_kind[str(item["values"])] = item["counts"]
    return {
        "comparisons": _count(dataset),
        "ok": _count(dataset, pc.field("status") == "ok"),
        "errors": _count(dataset, errors),
        "errors_by_kind": dict(sorted(by_kind.items())),
        "changed": _count(dataset, pc.field("changed") == True) if "changed" in names else None,  # noqa: E712
        "events": None if events is None else events.num_rows,
    }


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


def write_html_report(report_path, html_path, *, top: int = 12, plots_dir=None, root=None) -> Path:
    """Write one self-contained HTML page describing a scan report.

    Parameters
    ----------
    report_path : str or Path
        A report written by ``framediff scan`` (``.parquet``, ``.csv``, or a partitioned
        folder). ``NAME.summary.json`` and ``NAME.events.*`` next to it are used when present.
    html_path : str or Path
        The page to write (replaced atomically).
    top : int
        How many of the largest changes to show with thumbnails and a difference heatmap,
        ranked by the first threshold's metric (lowest first for similarities).
    plots_dir : str or Path, optional
        Also write each plot there as ``METRIC.png``.
    root : str or Path, optional
        Folder the report's paths are relative to; default the scan's input root from the
        report metadata (Parquet). Needed for thumbnails of a CSV report.

    Returns
    -------
    Path
        ``html_path``.

    Raises
    ------
    FramediffError
        The report is missing or is not a readable framediff report.
    """
    report_path = Path(report_path)
    html_path = Path(html_path)
    dataset, fmt = _open_dataset(report_path)
    try:
        page, plots = _render(report_path, dataset, fmt, top=top, root=root)
    except (OSError, pa.ArrowException) as exc:
        raise FramediffError(f"{report_path}: cannot read the report ({_first_line(exc)})") from None
    if plots_dir is not None:
        Path(plots_dir).mkdir(parents=True, exist_ok=True)
        for metric, png in plots:
            (Path(plots_dir) / f"{_safe_filename(metric)}.png").write_bytes(png)
    html_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = html_path.with_name(f".{html_path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_text(page, encoding="utf-8")
        os.replace(tmp, html_path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return html_path


def _render(report_path: Path, dataset, fmt: str, *, top: int, root) -> tuple[str, list]:
    """The page's HTML and the plots as (metric, PNG bytes)."""
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
    # Without thresholds (changes decided above the noise floor), rank by the mean difference.
    fallback = next((m for m in ("l1_per_pixel", "l0_fraction") if m in metrics), metrics[0] if metrics else None)
    top_metric = next((m for m in thresholds if m in metrics), fallback)
    follows_frames = getattr(MODES.get(mode), "rows_follow_frames", True)  # unknown mode: frames
    x_name = "index_b" if follows_frames and "index_b" in names else "pair"
    x_label = "comparison (pair)" if x_name == "pair" else "frame index (index_b)"
    if x_name == "index_b" and _has_times(dataset, names):
        x_name, x_label = "time_b", _TIME_LABEL
    n_rows = _count(dataset)
    series, top_rows = _scan_numbers(dataset, x_name, metrics, n_rows, top_metric, top)

    plots = []
    if series is not None:
        if x_name == "index_b":
            spans = _event_runs(series, events)
        elif x_name == "time_b":
            timed, half = _events_in_time(dataset, events)
            spans = _event_runs(series, timed, half)
        else:
            spans = []
        plots = [(m, _plot_png(series, m, x_label, thresholds.get(m), spans)) for m in metrics]

    summary = summary_json if summary_json is not None else _computed_summary(dataset, names, events)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; img-src data:; "
        "style-src 'unsafe-inline'; form-action 'none'; base-uri 'none'\">",
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>framediff report: {_e(report_path.name)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>framediff report: {_e(report_path.name)}</h1>",
        f'<p class="sub">mode {_e(mode)} &middot; {n_rows} comparisons &middot; input root '
        f"{_e(in_root if in_root is not None else 'unknown')} &middot; generated "
        f"{_e(datetime.datetime.now().astimezone().isoformat(timespec='seconds'))}</p>",
        _summary_section(summary, thresholds, summary_json is not None),
        _plots_section(plots, series, n_rows, x_label, thresholds),
        _top_section(dataset, top_rows, top_metric, thresholds, metrics, in_root, fmt),
        _errors_section(dataset, names, fmt),
        _events_section(events, fmt),
        _details_section(summary, options, meta, report_path),
        "</body></html>",
    ]
    return "\n".join(parts), plots


def _summary_section(summary: dict, thresholds: dict, from_json: bool) -> str:
    errors = summary.get("errors") or 0
    cards = [
        _card("images", summary.get("inputs")) if summary.get("inputs") is not None else "",
        _card("comparisons", summary.get("comparisons")),
        _card("ok", summary.get("ok")),
        _card("failed", errors, "bad" if errors else ""),
        _card("changed", summary.get("changed"), "hot" if summary.get("changed") else ""),
        _card("events", summary.get("events")) if summary.get("events") is not None else "",
        _card("kept", summary.get("kept")) if summary.get("kept") is not None else "",
        _card("images/s", summary.get("images_per_second")) if summary.get("images_per_second") is not None else "",
        _card("wall seconds", summary.get("wall_seconds")) if summary.get("wall_seconds") is not None else "",
    ]
    by_kind = summary.get("errors_by_kind")
    by_kind = by_kind if isinstance(by_kind, dict) else {}
    kinds = _kv_table(sorted(by_kind.items())) if by_kind else '<p class="note">no errors</p>'
    limits = "".join(
        f"<li><code>{_e(m)}</code> {'&lt;' if m in HIGHER_IS_SIMILAR else '&gt;'} {_e(_fmt(float(v)))}</li>"
        for m, v in thresholds.items()
    )
    source = "from the run's summary file" if from_json else "computed from the report (no summary file found)"
    return (
        f'<h2 id="summary">Summary</h2><p class="note">{_e(source)}</p><div class="cards">{"".join(cards)}</div>'
        f"<h3>Errors by kind</h3>{kinds}"
        f"<h3>Changed when</h3>{f'<ul>{limits}</ul>' if limits else _decided_text(summary)}"
    )


def _decided_text(summary: dict) -> str:
    """How changes were decided without thresholds (the decision stage's numbers)."""
    decisions = summary.get("decisions")
    if not isinstance(decisions, dict):
        return '<p class="note">no thresholds</p>'
    sensitivity = decisions.get("sensitivity")
    level = f" (sensitivity {_e(_fmt(float(sensitivity)))})" if isinstance(sensitivity, (int, float)) else ""
    return f'<p class="note">a change above the sequence\'s own noise floor{level}, by kind</p>'



def _plots_section(plots, series, n_rows, x_label, thresholds) -> str:
    if not plots:
        return '<h2 id="plots">Metrics</h2><p class="note">no metric values to plot</p>'
    how = (
        "every comparison is drawn"
        if series.raw
        else f"{n_rows} comparisons reduced to the minimum and maximum per pixel column ({series.bins} columns)"
    )

    def img(metric, png):
        return f'<img class="plot" alt="{_e(metric)} over {_e(x_label)}" src="{_png_uri(png)}">'

    # The metrics that decide 'changed' are shown; the others fold away.
    shown = [m for m, _ in plots if m in thresholds] or [plots[0][0]]
    main = [img(m, png) for m, png in plots if m in shown]
    rest = [img(m, png) for m, png in plots if m not in shown]
    more = f"<details><summary>Other metrics ({len(rest)})</summary>{''.join(rest)}</details>" if rest else ""
    return (
        f'<h2 id="plots">Metrics over {_e(x_label)}</h2><p class="note">{_e(how)}; red dots: changed comparisons, '
        "dashed: threshold, shaded: events, grey ticks: comparisons that failed.</p>" + "".join(main) + more
    )


def _top_section(dataset, rows, metric, thresholds, metrics, root, fmt) -> str:
    head = '<h2 id="top">Largest changes</h2>'
    if not rows or metric is None:
        return head + '<p class="note">none shown (no successful comparison to rank, or --top 0)</p>'
    similar = metric in HIGHER_IS_SIMILAR
    names = set(dataset.schema.names)
    shown = [m for m in dict.fromkeys([metric, *thresholds]) if m in metrics]
    wanted = [c for c in _TOP_COLUMNS if c in names]
    order = sorted(rows)
    table = dataset.take(pa.array(order, pa.int64()), columns=list(dict.fromkeys(wanted + shown))).to_pylist()
    by_row = dict(zip(order, table))
    out = [
        head,
        f'<p class="note">ranked by <code>{_e(metric)}</code>, {"lowest" if similar else "highest"} first; '
        "heatmap: |a &minus; b| of the gray thumbnails, black = equal.</p>",
    ]
    for rank, row_number in enumerate(rows, 1):
        row = by_row[row_number]
        hint = (row.get("height") or 0, row.get("width") or 0)
        a, why_a = _thumbnail(root, row.get("path_a"), hint, fmt)
        b, why_b = _thumbnail(root, row.get("path_b"), hint, fmt)
        values = " &middot; ".join(f"<code>{_e(m)}</code> = {_e(_fmt(row.get(m)))}" for m in shown)
        extra = []
        if row.get("changed"):
            extra.append("changed")
        if row.get("change_kind"):
            extra.append(f"kind {row['change_kind']}")
        if row.get("note"):
            extra.append(_unquote(row["note"], fmt))
        figures = [_figure(a, why_a, "a", row.get("index_a"), _unquote(row.get("path_a"), fmt)),
                   _figure(b, why_b, "b", row.get("index_b"), _unquote(row.get("path_b"), fmt))]
        if a is not None and b is not None:
            heat, white = _heatmap(a, b)
            figures.append(
                f'<figure><img class="thumb" alt="difference heatmap"{_display_size(heat)} '
                f'src="{_png_uri(_png_of(heat, palette=False))}">'
                f"<figcaption>|a &minus; b|, brightest = {_e(_fmt(round(white, 1)))} grey levels</figcaption></figure>"
            )
        out.append(
            f'<div class="top"><h3>#{rank} &middot; pair {_e(row.get("pair"))}: frame {_e(row.get("index_a"))} '
            f"&rarr; {_e(row.get('index_b'))}</h3><p>{values}"
            f"{' &middot; ' + _e('; '.join(str(x) for x in extra)) if extra else ''}</p>"
            f'<div class="imgs">{"".join(figures)}</div></div>'
        )
    return "".join(out)


def _figure(picture, why, label, index, name) -> str:
    caption = f"<figcaption>{_e(label)} (frame {_e(index)}): {_e(name)}</figcaption>"
    if picture is None:
        return f'<figure><div class="missing">{_e(why)}</div>{caption}</figure>'
    return (
        f'<figure><img class="thumb" alt="{_e(label)}: {_e(name)}"{_display_size(picture)} '
        f'src="{_png_uri(_png_of(picture, palette=True))}">{caption}</figure>'
    )


def _display_size(picture) -> str:
    """width/height attributes that show a small image at the thumbnail size."""
    w, h = picture.size
    k = _THUMB / max(w, h, 1)
    return f' width="{max(1, round(w * k))}" height="{max(1, round(h * k))}"'


def _errors_section(dataset, names, fmt) -> str:
    head = '<h2 id="errors">Errors</h2>'
    errors = pc.field("status") == "error"
    total = _count(dataset, errors)
    if not total:
        return head + '<p class="note">every comparison succeeded</p>'
    columns = [c for c in ("index_b", "path_b", "error_kind", "error", "note") if c in names]
    rows = dataset.scanner(columns=columns, filter=errors).head(_MAX_LISTED).to_pylist()
    body = "".join(
        f'<tr><td class="num">{_e(r.get("index_b"))}</td><td class="path">{_e(_unquote(r.get("path_b"), fmt))}</td>'
        f"<td>{_e(r.get('error_kind'))}</td><td>{_e(_unquote(r.get('error'), fmt))}</td>"
        f"<td>{_e(_unquote(r.get('note'), fmt))}</td></tr>"
        for r in rows
    )
    more = f'<p class="note">{total - len(rows)} more in the report (status = \'error\').</p>' if total > len(rows) else ""
    return (
        f"{head}<p>{total} comparisons failed.</p><table><tr><th>frame</th><th>path</th><th>kind</th>"
        f"<th>reason</th><th>note</th></tr>{body}</table>{more}"
    )


def _events_section(events, fmt) -> str:
    head = '<h2 id="events">Events</h2>'
    if events is None:
        return head + '<p class="note">no events file next to the report</p>'
    if events.num_rows == 0:
        return head + '<p class="note">no events</p>'
    wanted = [c for c in _EVENT_COLUMNS if c in events.column_names]
    rows = events.select(wanted).slice(0, _MAX_LISTED).to_pylist()
    header = "".join(f"<th>{_e(c)}</th>" for c in wanted)
    body = "".join(
        "<tr>" + "".join(
            f'<td class="{"path" if c.endswith("_path") else "num"}">{_e(_fmt(_unquote(r.get(c), fmt)))}</td>' for c in wanted
        ) + "</tr>"
        for r in rows
    )
    more = f'<p class="note">{events.num_rows - len(rows)} more in the events file.</p>' if events.num_rows > len(rows) else ""
    return f"{head}<p>{events.num_rows} events.</p><table><tr>{header}</tr>{body}</table>{more}"


def _details_section(summary, options, meta, report_path) -> str:
    run = [(k, summary.get(k)) for k in _RUN_KEYS if k in summary]
    about = [("report", report_path.name)] + [(k, meta.get(k)) for k in _META_KEYS if meta.get(k) is not None]
    opts = sorted(options.items()) if isinstance(options, dict) else []
    return (
        '<h2 id="run">Run</h2>'
        f"<h3>Throughput</h3>{_kv_table(run) if run else '<p class=note>not recorded (no summary file)</p>'}"
        f"<details><summary>Options ({len(opts)})</summary>{_kv_table(opts)}</details>"
        f"<details><summary>Report metadata</summary>{_kv_table(about)}</details>"
    )
