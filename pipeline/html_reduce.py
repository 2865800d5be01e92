"""A report's rows reduced, in one streamed pass, to what the HTML page shows.

Each plotted series becomes at most one min/max envelope per pixel column of its plot,
and the largest changes are kept as row numbers: memory and page size do not grow with
the number of rows.
"""

from __future__ import annotations

import datetime
import math

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .metrics import HIGHER_IS_SIMILAR

__all__ = ["BATCH_ROWS", "TIME_MAX", "TIME_MIN", "Series", "numpy_column", "scan_numbers", "x_values"]

#: Rows per record batch read from the report.
BATCH_ROWS = 262_144
#: Pixel columns of a plot's drawing area: series with more points are reduced to a
#: min/max envelope per column.
_PLOT_BINS = 1000
#: Capture times are clipped into what a datetime can show: an EXIF year 9999 (or a
#: modification time of 1e300) is kept in the plot, at its edge, not a crash.
TIME_MIN = datetime.datetime(1, 1, 2, tzinfo=datetime.timezone.utc).timestamp()
TIME_MAX = datetime.datetime(9999, 12, 30, tzinfo=datetime.timezone.utc).timestamp()


class Series:
    """Every plotted column, reduced to at most ``bins`` points per series.

    Small runs keep their points; larger ones keep, per pixel column, the minimum and
    maximum of each metric, the extreme value among changed comparisons, and whether an
    error row falls there. Fed in record batches, so memory does not grow with rows.

    Parameters
    ----------
    metrics : iterable of str
        The metric columns.
    x_lo, x_hi : float
        The range of the x values.
    n_rows : int
        Rows in the report: more than ``2 * bins`` are binned.
    bins : int
        Pixel columns of the plot.
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
        """The pixel column of each x value."""
        span = self.x_hi - self.x_lo + 1.0
        return np.clip(((x - self.x_lo) * (self.bins / span)).astype(np.int64), 0, self.bins - 1)

    def centers(self) -> np.ndarray:
        """The x value at the middle of each pixel column."""
        span = self.x_hi - self.x_lo + 1.0
        return self.x_lo - 0.5 + (np.arange(self.bins) + 0.5) * (span / self.bins)

    def add(self, x: np.ndarray, values: dict, changed: np.ndarray, error: np.ndarray) -> None:
        """Take one batch: x, ``{metric: values}``, and the changed and error flags."""
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


def numpy_column(column, dtype=np.float64) -> np.ndarray:
    """A report column as a NumPy array.

    Parameters
    ----------
    column : pyarrow.Array or pyarrow.ChunkedArray
        Numbers, flags, capture times or nulls.
    dtype : numpy dtype
        ``np.float64`` (nulls are NaN) or ``np.bool_`` (nulls are False).

    Returns
    -------
    numpy.ndarray
        The values; capture times as seconds since the epoch.
    """
    if pa.types.is_timestamp(column.type):  # capture times: seconds since the epoch
        unit = {"s": 1.0, "ms": 1e3, "us": 1e6, "ns": 1e9}[column.type.unit]
        seconds = pc.cast(column, pa.int64()).to_numpy(zero_copy_only=False).astype(np.float64)
        return seconds / unit
    if column.type == pa.null():
        return np.full(len(column), np.nan if dtype == np.float64 else False, dtype)
    if dtype == np.bool_:
        return pc.fill_null(column, False).to_numpy(zero_copy_only=False).astype(bool, copy=False)
    return pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False).astype(np.float64, copy=False)


def x_values(column, x_name: str) -> np.ndarray:
    """The x values of a batch; capture times clipped into :data:`TIME_MIN` ..
    :data:`TIME_MAX` (NaN stays NaN: no time)."""
    x = numpy_column(column)
    return np.clip(x, TIME_MIN, TIME_MAX) if x_name == "time_b" else x


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
    for batch in dataset.to_batches(columns=[x_name], batch_size=BATCH_ROWS):
        x = x_values(batch.column(0), x_name)
        x = x[np.isfinite(x)]
        if len(x):
            lo, hi = min(lo, float(x.min())), max(hi, float(x.max()))
    return (lo, hi) if lo <= hi else None


def scan_numbers(dataset, x_name, metrics, n_rows, top_metric, top_n):
    """One pass over x, the metrics, ``changed`` and ``status``.

    Parameters
    ----------
    dataset : pyarrow.dataset.Dataset
        The report.
    x_name : str
        The column plotted along x.
    metrics : list of str
        The metric columns, each a series.
    n_rows : int
        Rows in the report (more than twice the plot's pixel columns are binned).
    top_metric : str or None
        The metric the largest changes are ranked by; None for no ranking.
    top_n : int
        How many of the largest changes to keep.

    Returns
    -------
    tuple of (Series or None, list of int)
        The series (None when no row has an x value) and the row numbers of the largest
        changes, largest first (smallest first for similarities).
    """
    x_range = _x_range(dataset, x_name)
    series = None if x_range is None else Series(metrics, *x_range, n_rows)
    top = _TopN(top_n, top_metric in HIGHER_IS_SIMILAR) if top_metric else None
    names = set(dataset.schema.names)
    columns = list(dict.fromkeys([x_name, *metrics, "status"] + (["changed"] if "changed" in names else [])))
    offset = 0
    for batch in dataset.to_batches(columns=columns, batch_size=BATCH_ROWS):
        n = batch.num_rows
        ok = numpy_column(pc.equal(batch.column("status"), "ok"), np.bool_)
        changed = numpy_column(batch.column("changed"), np.bool_) if "changed" in names else np.zeros(n, bool)
        values = {m: numpy_column(batch.column(m)) for m in metrics}
        if series is not None:
            series.add(x_values(batch.column(x_name), x_name), values, changed & ok, ~ok)
        if top is not None:
            top.add(values[top_metric], ok, offset)
        offset += n
    return series, ([] if top is None else top.ordered_rows())
