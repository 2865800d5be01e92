"""The HTML page's plots: each metric over frames, capture times or comparisons, as PNG.

Each plot draws a metric's series (every point, or its min/max envelope per pixel
column), the changed comparisons, the threshold, the events as shaded spans and the
failed comparisons as ticks. Matplotlib is imported when a plot is drawn, not with
framediff. The page embeds each PNG as a ``data:`` URI.
"""

from __future__ import annotations

import base64
import datetime
import io
import math
import re

import numpy as np
import pyarrow as pa

from .html_data import TIME_LABEL, PageData
from .html_reduce import BATCH_ROWS, TIME_MAX, TIME_MIN, Series, numpy_column, x_values
from .metrics import HIGHER_IS_SIMILAR

__all__ = ["draw_plots", "plot_filename", "png_data_uri"]

_PLOT_SIZE = (11.0, 2.5)  # inches, at _PLOT_DPI
_PLOT_DPI = 100


def draw_plots(data: PageData) -> list[tuple[str, bytes]]:
    """Draw one plot per metric of the report.

    Parameters
    ----------
    data : PageData
        The report, read and reduced.

    Returns
    -------
    list of (str, bytes)
        ``(metric, PNG)`` in the report's column order; empty when no row has an x value.
    """
    if data.series is None:
        return []
    spans = _event_spans(data)
    return [(m, _plot_png(data.series, m, data.x_label, data.thresholds.get(m), spans)) for m in data.metrics]


def png_data_uri(png: bytes) -> str:
    """A PNG as a ``data:`` URI, the only kind of image the page's policy allows.

    Parameters
    ----------
    png : bytes
        The PNG file's bytes.

    Returns
    -------
    str
        ``data:image/png;base64,...``.
    """
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def plot_filename(metric: str) -> str:
    """A metric's name made safe as a file name (without ``.png``)."""
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", metric).strip("._") or "metric"


# -- events as spans along x ------------------------------------------------------------


def _event_spans(data: PageData) -> list[tuple[float, float]]:
    """The events' spans along the plot's x axis; none when x counts comparisons."""
    if data.x_name == "index_b":
        return _event_runs(data.series, data.events)
    if data.x_name == "time_b":
        timed, half = _events_in_time(data.dataset, data.events)
        return _event_runs(data.series, timed, half)
    return []


def _events_in_time(dataset, events):
    """Events with their first/last frame replaced by those frames' capture times, and
    half the median interval between frames (the spans' margin)."""
    if events is None or events.num_rows == 0:
        return events, 0.5
    when = {}
    for batch in dataset.to_batches(columns=["index_b", "time_b"], batch_size=BATCH_ROWS):
        for i, t in zip(numpy_column(batch.column(0)), x_values(batch.column(1), "time_b")):
            if np.isfinite(i) and np.isfinite(t):
                when[int(i)] = t
    first = [when.get(i, math.nan) for i in events.column("first_index").to_pylist()]
    last = [when.get(i, math.nan) for i in events.column("last_index").to_pylist()]
    gaps = np.diff(np.sort(np.fromiter(when.values(), float)))
    half = 0.5 * float(np.median(gaps)) if len(gaps) else 0.5
    table = pa.table({"first_index": pa.array(first, pa.float64()), "last_index": pa.array(last, pa.float64())})
    return table, half


def _event_runs(series: Series, events: pa.Table | None, half: float = 0.5) -> list[tuple[float, float]]:
    """Event spans in x units, merged where they share a pixel column (at most ``bins``).

    ``half`` widens each span on both sides: half a frame on the index axis, half the
    typical interval between frames on the capture-time axis.
    """
    if events is None or events.num_rows == 0 or not {"first_index", "last_index"} <= set(events.column_names):
        return []
    first = numpy_column(events.column("first_index"))
    last = numpy_column(events.column("last_index"))
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


# -- one plot ---------------------------------------------------------------------------


def _plot_png(series: Series, metric: str, x_label: str, threshold, spans) -> bytes:
    """One metric's plot as PNG bytes (no timestamp or software tag: the same every time)."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=_PLOT_SIZE, dpi=_PLOT_DPI)
    # Fixed margins: every plot's axes line up, whatever its legend or tick labels.
    fig.subplots_adjust(left=0.075, right=0.845, bottom=0.19, top=0.88)
    ax = fig.add_subplot()
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    for k, (a, b) in enumerate(spans):
        ax.axvspan(a, b, color="#d62728", alpha=0.13, lw=0, label="event" if k == 0 else None)
    x_changed, y_changed, x_error = _draw_values(ax, series, metric)
    _draw_marks(ax, x_changed, y_changed, x_error, threshold)
    direction = "lower = more different" if metric in HIGHER_IS_SIMILAR else "higher = more different"
    ax.set_title(f"{metric} ({direction})", loc="left", fontsize=11, parse_math=False)
    ax.set_xlabel(x_label, parse_math=False)
    _set_x_range(ax, series, x_label)
    ax.grid(True, alpha=0.3)
    if series.nonfinite[metric]:
        ax.text(
            0.995,
            0.97,
            f"{series.nonfinite[metric]} infinite values not drawn",
            transform=ax.transAxes,
            ha="right",
            va="top",
            fontsize=8,
            color="#555555",
            parse_math=False,
        )
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, frameon=False)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=_PLOT_DPI, metadata={"Software": None})
    return buf.getvalue()


def _draw_values(ax, series: Series, metric: str):
    """Draw the metric's line (or envelope); return where the changed and failed comparisons are."""
    if series.raw:
        x, ys, changed, error = series.points()
        y = ys[metric]
        order = np.argsort(x, kind="stable")
        ax.plot(x[order], y[order], color="#1f77b4", lw=1.0, marker=".", ms=3, label=_literal(metric))
        hit = changed & np.isfinite(y)
        return x[hit], y[hit], np.unique(x[error])
    centers = series.centers()
    lo, hi = series.lo[metric], series.hi[metric]
    has = np.isfinite(lo)
    lo, hi = np.where(has, lo, np.nan), np.where(has, hi, np.nan)
    ax.fill_between(
        centers,
        lo,
        hi,
        step="mid",
        color="#1f77b4",
        alpha=0.55,
        lw=0.8,
        edgecolor="#1f77b4",
        label=_literal(f"{metric} (min/max)"),
    )
    peak = series.peak[metric]
    hit = np.isfinite(peak)
    return centers[hit], peak[hit], centers[series.error_bins]


def _draw_marks(ax, x_changed, y_changed, x_error, threshold) -> None:
    """Dots on the changed comparisons, the threshold line, ticks under the failed ones."""
    from matplotlib.transforms import blended_transform_factory

    if len(x_changed):
        ax.plot(x_changed, y_changed, ls="none", marker="o", ms=3.5, color="#d62728", label="changed")
    if threshold is not None and math.isfinite(threshold):
        ax.axhline(threshold, color="#ff7f0e", ls="--", lw=1.2, label=f"threshold {threshold:g}")
    if len(x_error):
        trans = blended_transform_factory(ax.transData, ax.transAxes)  # x in data, y in axes units
        ax.plot(
            x_error,
            np.full(len(x_error), 0.02),
            ls="none",
            marker="|",
            ms=9,
            color="#555555",
            transform=trans,
            label="failed",
            zorder=4,
        )


def _set_x_range(ax, series: Series, x_label: str) -> None:
    """The x limits and tick labels: dates for capture times, plain integers otherwise."""
    if x_label == TIME_LABEL:
        from matplotlib.ticker import FuncFormatter

        span = series.x_hi - series.x_lo
        pad = 0.02 * span if span > 0 else 0.5
        ax.set_xlim(series.x_lo - pad, series.x_hi + pad)
        ax.xaxis.set_major_formatter(FuncFormatter(_format_time))
    else:
        ax.set_xlim(series.x_lo - 0.5, series.x_hi + 0.5)
        ax.ticklabel_format(axis="x", style="plain", useOffset=False)


def _format_time(value, _pos=None) -> str:
    value = min(max(float(value), TIME_MIN), TIME_MAX) if math.isfinite(value) else TIME_MIN
    stamp = datetime.datetime.fromtimestamp(value, tz=datetime.timezone.utc)
    return stamp.strftime("%Y-%m-%d\n%H:%M:%S")


def _literal(text: str) -> str:
    """``text`` as matplotlib draws it literally: ``$`` would start mathtext, and a
    column named ``$\\frac{x$`` must be a label, not a parse error."""
    return str(text).replace("$", "\\$")
