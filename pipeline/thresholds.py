"""Thresholds: when a measured comparison counts as changed, in one typed form."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from .errors import ParameterError
from .metrics import HIGHER_IS_SIMILAR

__all__ = ["Thresholds", "changed_flags"]


@dataclass(frozen=True)
class Thresholds:
    """Metric limits, in the order given; the first is the events' peak metric.

    A distance changed when it exceeds its limit; a similarity (PSNR, SSIM,
    intersection, correlation) when it falls below it.

    Attributes
    ----------
    limits : tuple of (str, float)
    """

    limits: tuple = ()

    @classmethod
    def parse(cls, spec, *, allowed, defaults: Mapping | None = None) -> Thresholds:
        """Thresholds from any form a user writes them in.

        Parameters
        ----------
        spec : None, Thresholds, mapping, str or sequence
            ``None`` (the defaults), ``{'kl': 0.2}``, ``'kl=0.2'`` or
            ``'kl=0.2,l0_fraction=0.01'``, or a sequence of such strings or of
            ``(metric, value)`` pairs.
        allowed : sequence of str
            The metrics being computed; a threshold on another one is refused.
        defaults : mapping, optional
            Used when ``spec`` is None, restricted to ``allowed``.

        Raises
        ------
        ParameterError
            A malformed item, a non-finite limit, or a metric that is not computed.
        """
        if isinstance(spec, Thresholds):
            items = list(spec.limits)
        elif spec is None:
            return cls(tuple((k, float(v)) for k, v in (defaults or {}).items() if k in allowed))
        elif isinstance(spec, Mapping):
            items = list(spec.items())
        elif isinstance(spec, str):
            items = [part for part in spec.split(",") if part.strip()]
        else:
            try:
                items = list(spec)
            except TypeError:
                raise ParameterError("thresholds", f"expects METRIC=VALUE items, got {spec!r}") from None
        limits = {}
        for item in items:
            name, value = _split(item)
            if name not in allowed:
                raise ParameterError("thresholds", f": {name}: that metric is not computed (add it to metrics)")
            limits[name] = value
        return cls(tuple(limits.items()))

    def as_dict(self) -> dict:
        """``{metric: limit}``, JSON-ready."""
        return dict(self.limits)

    @property
    def metrics(self) -> tuple:
        return tuple(name for name, _ in self.limits)

    @property
    def primary(self) -> str | None:
        """The metric events report their peak of: the first threshold's."""
        return self.limits[0][0] if self.limits else None

    def __bool__(self) -> bool:
        return bool(self.limits)

    def changed(self, values: Mapping) -> np.ndarray:
        """Per comparison, whether any limit is crossed (see :func:`changed_flags`)."""
        return changed_flags(values, self.as_dict())


def _split(item) -> tuple[str, float]:
    if isinstance(item, tuple) and len(item) == 2:
        name, text = item
        sep = "="
    else:
        name, sep, text = str(item).partition("=")
    name = str(name).strip().lower()
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise ParameterError("thresholds", f"expects METRIC=VALUE, got {item!r}") from None
    if not sep or not name:
        raise ParameterError("thresholds", f"expects METRIC=VALUE, got {item!r}")
    if not math.isfinite(value):
        raise ParameterError("thresholds", f": {name}: the limit must be a finite number, got {text!r}")
    return name, value


def changed_flags(values: Mapping, thresholds: Mapping) -> np.ndarray:
    """A comparison changed when any threshold is crossed.

    Distances must exceed their threshold; similarities (PSNR, intersection,
    correlation, SSIM) must fall below it. Returns a bool array (all False without
    thresholds).
    """
    n = len(next(iter(values.values()))) if values else 0
    flags = np.zeros(n, bool)
    for name, limit in thresholds.items():
        column = np.asarray(values[name], np.float64)
        with np.errstate(invalid="ignore"):
            flags |= column < limit if name in HIGHER_IS_SIMILAR else column > limit
    return flags
