"""The metric names framediff reports: defined once, used by the API, CLI and reports."""

from __future__ import annotations

import pyarrow as pa

from framediff.kernels import HIST_DISTANCES, NORM_NAMES
from framediff.kernels.flow import FLOW_STATS

__all__ = [
    "ALL_METRICS",
    "CHANNELS",
    "CLASSIC_METRICS",
    "COLOR_METRICS",
    "FAST_METRICS",
    "FLOW_METRICS",
    "HIGHER_IS_SIMILAR",
    "HIST_METRICS",
    "NORM_METRICS",
    "STRUCTURE_METRICS",
    "UnknownMetricError",
    "option_columns",
    "metric_columns",
    "parse_metrics",
]

NORM_METRICS: tuple[str, ...] = NORM_NAMES
HIST_METRICS: tuple[str, ...] = HIST_DISTANCES
#: Structure: mean SSIM (Wang et al. 2004) and the fraction of edge pixels that changed.
STRUCTURE_METRICS = ("ssim", "edge_change")
#: Sparse pyramidal Lucas-Kanade flow of good features to track, from a to b.
FLOW_METRICS: tuple[str, ...] = FLOW_STATS
#: CIE76 colour difference (Delta E in CIELAB) statistics; need --color.
COLOR_METRICS = ("delta_e_mean", "delta_e_p95", "delta_e_max")
ALL_METRICS: tuple[str, ...] = NORM_METRICS + HIST_METRICS + STRUCTURE_METRICS + FLOW_METRICS + COLOR_METRICS

#: The classic approach reports the Manhattan and zero norms, total and per pixel.
CLASSIC_METRICS = ("l1", "l1_per_pixel", "l0", "l0_fraction")
#: The scan default: every norm (one fused pass computes them all) and KL divergence.
FAST_METRICS = NORM_METRICS + ("kl",)
#: Channel suffixes of the per-channel columns in --color mode.
CHANNELS = ("r", "g", "b")

#: Similarities: a larger value means more alike (all other metrics grow with change).
HIGHER_IS_SIMILAR = frozenset({"psnr", "intersection", "correlation", "ssim"})

_ALIASES = {"manhattan": "l1", "zero": "l0", "hellinger": "bhattacharyya", "max": "max_abs", "kl_div": "kl"}
#: Counts are int64 in reports; every other metric float64 (an integer L1 sum is exact
#: in float64 up to 2**53, far beyond a 16-bit 8K frame's 2.2e12).
_INTEGER = frozenset({"l0", "flow_points"})


class UnknownMetricError(ValueError):
    """A metric name that framediff does not know."""


def parse_metrics(spec, *, color: bool = False) -> tuple[str, ...]:
    """Turn ``'all'``, ``'l1,l0,kl'`` or a sequence of names into canonical metric names.

    ``'all'`` means every metric that applies: the colour metrics only with
    ``color=True``. ``None`` gives :data:`FAST_METRICS`.

    Raises
    ------
    UnknownMetricError
        A name is not one of :data:`ALL_METRICS` (or an alias), naming the valid ones,
        or a colour metric without ``color``.
    """
    if spec is None:
        return FAST_METRICS
    names = spec.split(",") if isinstance(spec, str) else list(spec)
    out: list[str] = []
    for raw in names:
        name = raw.strip().lower()
        if not name:
            continue
        if name == "all":
            out.extend(m for m in ALL_METRICS if color or m not in COLOR_METRICS)
            continue
        if name == "classic":
            out.extend(CLASSIC_METRICS)
            continue
        name = _ALIASES.get(name, name)
        if name not in ALL_METRICS:
            raise UnknownMetricError(f"unknown metric {raw.strip()!r}; choose from: all, {', '.join(ALL_METRICS)}")
        if name in COLOR_METRICS and not color:
            raise UnknownMetricError(f"metric {name!r} compares colours: add --color")
        out.append(name)
    if not out:
        raise UnknownMetricError("no metric selected")
    return tuple(dict.fromkeys(out))


def metric_columns(opts) -> list[tuple[str, pa.DataType]]:
    """Report columns holding metric values, in order, with their Arrow types.

    Counts (``l0``, ``flow_points``) are int64, everything else float64. In colour
    mode every norm and histogram metric also gets one column per channel (``l1_r``,
    ``l1_g``, ``l1_b``).
    """

    def typed(name, column):
        return column, pa.int64() if name in _INTEGER else pa.float64()

    cols = [typed(name, name) for name in opts.metrics]
    if opts.color:
        for name in opts.metrics:
            if name in NORM_METRICS or name in HIST_METRICS:
                cols += [typed(name, f"{name}_{c}") for c in CHANNELS]
    return cols


def option_columns(opts) -> list[tuple[str, pa.DataType]]:
    """Columns that options add besides metrics: alignment shifts, shape policy."""
    cols = []
    if opts.align:
        cols += [("shift_y", pa.float64()), ("shift_x", pa.float64()), ("align_peak", pa.float64())]
    if opts.resize != "error" or opts.crop:
        cols.append(("shape_action", pa.string()))
    return cols
