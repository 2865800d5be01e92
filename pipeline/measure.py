"""Measuring the planned pairs of one task and turning them into rows.

The batch path measures pairs of prepared stacks together; options that need both
images before measuring (alignment, exposure matching, colour, shape policies) go pair
by pair. Either way every measured pair becomes one row, and a pair that cannot be
measured becomes an error row: errors are values, never exceptions out of a task.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from framediff import kernels as K
from framediff.kernels.shape import ShapeMismatchError

from .decide import overview, overview_features, worth_deciding
from .engine import incomparable, measure_pair_images, measure_pairs, reconcile_pair
from .frames import Frames
from .rows import RowBuffer
from .spec import ScanSpec
from .thresholds import changed_flags

__all__ = ["DAMAGED", "Measured", "error_row", "gap_note", "is_damaged", "measure_planned"]

#: Decode failures that mean the file itself is damaged: its rows are of change kind
#: ``corrupt``. (A readable frame unlike both its neighbours is the other case of a
#: damaged frame: see :mod:`framediff.neighbours`.)
DAMAGED = frozenset({"empty", "truncated", "corrupt", "not-an-image", "unsupported"})


def is_damaged(error_kind: str | None) -> bool:
    """True when an error row's kind means the file itself is damaged."""
    return error_kind in DAMAGED


def _shape_action(frames: Frames, a: int, b: int) -> str:
    parts = [
        f"{frames.actions[i].replace('resize', 'resize ' + name, 1)}"
        for name, i in (("a", a), ("b", b))
        if i in frames.actions
    ]
    return "; ".join(parts) or "none"


def _row_common(spec, pair, a, b, shape):
    height, width = shape
    return dict(pair=pair, index_a=a, index_b=b, path_a=spec.names[a], path_b=spec.names[b], height=height, width=width)


class Measured(NamedTuple):
    """One measured pair: its metric values, and the decision features when it got a
    closer look (None: nothing above the cheap gate, see ``decide.worth_deciding``)."""

    values: dict
    features: dict | None


class _Overviews:
    """Each frame's decision overview, made once per task whatever its number of pairs."""

    def __init__(self, xp):
        self.xp = xp
        self._made = {}

    def of(self, key, image, data_range):
        if key not in self._made:
            self._made[key] = overview(image, data_range=data_range, xp=self.xp)
        return self._made[key]


def _features(spec: ScanSpec, ra, rb, values: dict, flagged: bool, xp):
    """Decision features of a pair worth a closer look (or whose thresholds flag it)."""
    if spec.thresholds:
        # Explicit thresholds decide changed, and an unchanged row's kind is none:
        # only the rows they flag need the features (for their kind).
        if not flagged:
            return None
    elif not worth_deciding(ra, rb, sensitivity=spec.sensitivity, xp=xp):
        return None
    return overview_features(ra, rb, sensitivity=spec.sensitivity, xp=xp)


def measure_planned(frames: Frames, planned, spec: ScanSpec, rows: RowBuffer, notes: dict) -> dict:
    """Measure ``planned`` (pair, a, b) triples whose frames are readable; add their rows.

    Pairs of different shapes become ``size-mismatch`` rows unless a shape policy
    (``--resize``/``--crop``) applies. Modes that decide on changes also get each
    pair's decision features (as working columns); ``changed`` is provisional here
    (explicit thresholds only) and settled by the decision stage.

    Returns
    -------
    dict
        ``{pair: Measured}`` for the pairs measured (not for error rows).
    """
    opts = spec.options
    thresholds = spec.thresholds.as_dict()
    policy = opts.resize != "error" or bool(opts.crop)
    groups: dict[tuple, list] = {}
    single = []
    for pair, a, b in planned:
        if opts.pairwise or frames.shape(a) != frames.shape(b):
            if opts.pairwise or policy:
                single.append((pair, a, b))
                continue
            (ha, wa), (hb, wb) = frames.shape(a), frames.shape(b)
            reason = f"{wb}x{hb} differs from {wa}x{ha} of {spec.names[a]} (see --resize, --crop)"
            error_row(rows, spec, pair, a, b, "size-mismatch", reason, notes.get(pair))
            continue
        sa, pos_a = frames.lookup(a)
        sb, pos_b = frames.lookup(b)
        if reason := incomparable(sa, sb):  # e.g. a 16-bit PNG after 8-bit JPEGs
            error_row(rows, spec, pair, a, b, "not-comparable", f"{reason} of {spec.names[a]}", notes.get(pair))
            continue
        groups.setdefault((id(sa), id(sb)), [sa, sb, []])[2].append((pair, a, b, pos_a, pos_b))
    outcome = {}
    overviews = _Overviews(frames.xp)
    for sa, sb, items in groups.values():
        values = measure_pairs(sa, [t[3] for t in items], sb, [t[4] for t in items], opts)
        flags = changed_flags(values, thresholds)
        for k, (pair, a, b, pos_a, pos_b) in enumerate(items):
            row_values = {name: column[k].item() for name, column in values.items()}
            features = None
            if spec.decides:
                ra = overviews.of((id(sa), pos_a), sa.pixels[pos_a], sa.data_range)
                rb = overviews.of((id(sb), pos_b), sb.pixels[pos_b], sb.data_range)
                features = _features(spec, ra, rb, row_values, bool(flags[k]), frames.xp)
            extra = {"shape_action": _shape_action(frames, a, b)} if policy else {}
            rows.add(
                **_row_common(spec, pair, a, b, sa.shape),
                changed=bool(flags[k]),
                status="ok",
                note=notes.get(pair),
                **extra,
                **row_values,
                **(features or {}),
            )
            outcome[pair] = Measured(row_values, features)
    for pair, a, b in single:
        outcome.update(_measure_single(frames, pair, a, b, spec, rows, notes, thresholds))
    return outcome


def _measure_single(frames, pair, a, b, spec, rows, notes, thresholds) -> dict:
    """One pair through the pairwise path (alignment, exposure matching, colour, shapes)."""
    opts = spec.options
    try:
        # The pair as compared (shape policy applied once); decisions look at it too.
        source_a, source_b = frames.sources.get(a), frames.sources.get(b)
        if source_a != source_b:  # decoded types differ: data ranges differ
            raise ValueError(f"{source_b} pixels differ from {source_a} of {spec.names[a]}")
        raw_a, raw_b, action = reconcile_pair(frames.raw(a), frames.raw(b), opts)
        values = measure_pair_images(raw_a, raw_b, opts, frames.xp, shape_action=action, source_dtype=source_a)
    except ShapeMismatchError as exc:
        error_row(rows, spec, pair, a, b, "size-mismatch", str(exc), notes.get(pair))
        return {}
    except ValueError as exc:  # e.g. no overlap left after alignment
        error_row(rows, spec, pair, a, b, "not-comparable", str(exc), notes.get(pair))
        return {}
    if "shape_action" in values and frames.actions.keys() & {a, b}:
        values["shape_action"] = (
            "; ".join(p for p in (_shape_action(frames, a, b), values["shape_action"]) if p != "none") or "none"
        )
    changed = (
        bool(changed_flags({k: [v] for k, v in values.items() if k in thresholds}, thresholds)[0])
        if thresholds
        else False
    )
    shape = values.pop("shape")
    features = None
    if spec.decides:
        data_range = float(K.natural_data_range(np.dtype(str(source_a or raw_a.dtype))))
        ga = K.to_gray(raw_a, "luma") if raw_a.ndim == 3 else raw_a
        gb = K.to_gray(raw_b, "luma") if raw_b.ndim == 3 else raw_b
        ra = overview(ga, data_range=data_range, xp=frames.xp)
        rb = overview(gb, data_range=data_range, xp=frames.xp)
        features = _features(spec, ra, rb, values, changed, frames.xp)
    rows.add(
        **_row_common(spec, pair, a, b, shape),
        changed=changed,
        status="ok",
        note=notes.get(pair),
        **values,
        **(features or {}),
    )
    return {pair: Measured(values, features)}


def error_row(rows, spec, pair, a, b, kind, reason, note=None):
    """Add the row of a pair that could not be measured (``status='error'``)."""
    rows.add(
        pair=pair,
        index_a=a,
        index_b=b,
        path_a=None if a is None else spec.names[a],
        path_b=spec.names[b],
        changed=False,  # a real boolean column: nothing was measured; status says why
        status="error",
        error_kind=kind,
        error=reason,
        note=note,
        change_kind="corrupt" if is_damaged(kind) and spec.options.change_kind else None,
    )


def gap_note(prev: int, i: int):
    """The note of a row compared across unreadable frames (None when adjacent)."""
    if prev == i - 1:
        return None
    skipped = f"{prev + 1}" if prev + 1 == i - 1 else f"{prev + 1}..{i - 1}"
    return f"compared with frame {prev}: frame {skipped} unreadable"
