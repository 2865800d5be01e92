"""Measuring the planned pairs of one task and turning them into rows.

The batch path measures pairs of prepared stacks together; options that need both
images before measuring (alignment, exposure matching, colour, shape policies) go pair
by pair. Either way every measured pair becomes one row, and a pair that cannot be
measured becomes an error row: errors are values, never exceptions out of a task.
"""

from __future__ import annotations

import dataclasses

from framediff import kernels as K
from framediff.kernels.shape import ShapeMismatchError

from .engine import change_kinds, incomparable, measure_pair_images, measure_pairs, prepare_stack, reconcile_pair
from .frames import Frames
from .options import Options
from .rows import RowBuffer
from .spec import ScanSpec
from .thresholds import changed_flags

__all__ = ["DAMAGED", "error_row", "gap_note", "is_damaged", "measure_planned"]

#: Decode failures that mean the file itself is damaged: its rows are of change kind
#: ``corrupt``. (A readable frame unlike both its neighbours is the other case of a
#: damaged frame: see :mod:`framediff.neighbours`.)
DAMAGED = frozenset({"empty", "truncated", "corrupt", "not-an-image", "unsupported"})


def is_damaged(error_kind: str | None) -> bool:
    """True when an error row's kind means the file itself is damaged."""
    return error_kind in DAMAGED


def _shape_action(frames: Frames, a: int, b: int) -> str:
    parts = [f"{frames.actions[i].replace('resize', 'resize ' + name, 1)}" for name, i in (("a", a), ("b", b)) if i in frames.actions]
    return "; ".join(parts) or "none"


def _row_common(spec, pair, a, b, shape):
    height, width = shape
    return dict(pair=pair, index_a=a, index_b=b, path_a=spec.names[a], path_b=spec.names[b], height=height, width=width)


def measure_planned(frames: Frames, planned, spec: ScanSpec, rows: RowBuffer, notes: dict) -> dict:
    """Measure ``planned`` (pair, a, b) triples whose frames are readable; add their rows.

    Pairs of different shapes become ``size-mismatch`` rows unless a shape policy
    (``--resize``/``--crop``) applies. Returns ``{pair: changed}`` for measured pairs.
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
    for sa, sb, items in groups.values():
        values = measure_pairs(sa, [t[3] for t in items], sb, [t[4] for t in items], opts)
        flags = changed_flags(values, thresholds)
        kinds = {}
        if opts.change_kind:
            changed_items = [t for k, t in enumerate(items) if flags[k]]
            labels = change_kinds(sa, [t[3] for t in changed_items], sb, [t[4] for t in changed_items])
            kinds = {t[0]: label for t, label in zip(changed_items, labels)}
        for k, (pair, a, b, _pa, _pb) in enumerate(items):
            extra = {"shape_action": _shape_action(frames, a, b)} if policy else {}
            rows.add(
                **_row_common(spec, pair, a, b, sa.shape),
                changed=bool(flags[k]),
                status="ok",
                note=notes.get(pair),
                change_kind=kinds[pair][0] if pair in kinds else None,
                extreme=kinds[pair][1] if pair in kinds else None,
                **extra,
                **{name: column[k].item() for name, column in values.items()},
            )
            outcome[pair] = bool(flags[k])
    for pair, a, b in single:
        outcome.update(_measure_single(frames, pair, a, b, spec, rows, notes, thresholds))
    return outcome


def _measure_single(frames, pair, a, b, spec, rows, notes, thresholds) -> dict:
    """One pair through the pairwise path (alignment, exposure matching, colour, shapes)."""
    opts = spec.options
    try:
        # The pair as compared (shape policy applied once); change kinds look at it too.
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
        values["shape_action"] = "; ".join(p for p in (_shape_action(frames, a, b), values["shape_action"]) if p != "none") or "none"
    changed = bool(changed_flags({k: [v] for k, v in values.items() if k in thresholds}, thresholds)[0]) if thresholds else False
    kind = None
    if changed and opts.change_kind:
        ga = K.to_gray(raw_a, "luma") if raw_a.ndim == 3 else raw_a
        gb = K.to_gray(raw_b, "luma") if raw_b.ndim == 3 else raw_b
        stack_a = prepare_stack([ga], _plain(opts), frames.xp)
        stack_b = prepare_stack([gb], _plain(opts), frames.xp)
        kind, extreme = change_kinds(stack_a, [0], stack_b, [0])[0]
    else:
        extreme = None
    shape = values.pop("shape")
    rows.add(
        **_row_common(spec, pair, a, b, shape),
        changed=changed,
        status="ok",
        note=notes.get(pair),
        change_kind=kind,
        extreme=extreme,
        **values,
    )
    return {pair: changed}


def _plain(opts: Options) -> Options:
    return dataclasses.replace(opts, normalize="none", blur=0.0, median=0, edges="none", metrics=("l1",))


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
