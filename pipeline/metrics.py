"""The metric names framediff reports: defined once, used by the API, CLI and reports."""

from __future__ import annotations

from framediff.kernels import HIST_DISTANCES, NORM_NAMES

__all__ = [
    "ALL_METRICS",
    "CLASSIC_METRICS",
    "FAST_METRICS",
    "HIGHER_IS_SIMILAR",
    "HIST_METRICS",
    "NORM_METRICS",
    "UnknownMetricError",
    "parse_metrics",
]

NORM_METRICS: tuple[str, ...] = NORM_NAMES
HIST_METRICS: tuple[str, ...] = HIST_DISTANCES
ALL_METRICS: tuple[str, ...] = NORM_METRICS + HIST_METRICS

#: The classic approach reports the Manhattan and zero norms, total and per pixel.
CLASSIC_METRICS = ("l1", "l1_per_pixel", "l0", "l0_fraction")
#: The scan default: every norm (one fused pass computes them all) and KL divergence.
FAST_METRICS = NORM_METRICS + ("kl",)

#: Similarities: a larger value means more alike (all other metrics grow with change).
HIGHER_IS_SIMILAR = frozenset({"psnr", "intersection", "correlation"})

_ALIASES = {"manhattan": "l1", "zero": "l0", "hellinger": "bhattacharyya", "max": "max_abs", "kl_div": "kl"}


class UnknownMetricError(ValueError):
    """A metric name that framediff does not know."""


def parse_metrics(spec) -> tuple[str, ...]:
    """Turn ``'all'``, ``'l1,l0,kl'`` or a sequence of names into canonical metric names.

    Raises
    ------
    UnknownMetricError
        A name is not one of :data:`ALL_METRICS` (or an alias), naming the valid ones.
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
            out.extend(ALL_METRICS)
            continue
        if name == "classic":
            out.extend(CLASSIC_METRICS)
            continue
        name = _ALIASES.get(name, name)
        if name not in ALL_METRICS:
            raise UnknownMetricError(f"unknown metric {raw.strip()!r}; choose from: all, {', '.join(ALL_METRICS)}")
        out.append(name)
    if not out:
        raise UnknownMetricError("no metric selected")
    return tuple(dict.fromkeys(out))
