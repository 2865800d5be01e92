"""``consecutive``: every frame against the one before it.

When a frame cannot be read, the next readable one is compared with the last readable
frame before it, up to :data:`MAX_LOOKBACK` frames back (the row notes the gap). On
local CPU workers every frame is decoded once: each chunk measures the pairs inside it
in parallel, and a small ordered task compares its first readable frame with the last
readable frame handed on by the chunks before it. Where a chunk must stand alone (a
dask.distributed cluster, whose crash isolation re-runs chunks; the GPU's out-of-memory
back-off), it decodes that earlier frame itself.
"""

from __future__ import annotations

from typing import NamedTuple

import pyarrow as pa

from framediff import kernels as K

from ..frames import KeptFrame
from ..measure import error_row, gap_note, measure_planned
from ..plan import Chunk
from ..rows import RowBuffer
from ..spec import ScanSpec
from ..video_inputs import sequence_start
from .base import Inputs, Mode, Route, device_name

__all__ = ["MAX_LOOKBACK", "Consecutive", "consecutive_edge", "consecutive_inner", "last_readable_before"]

#: How far back a consecutive comparison looks for a readable frame when its
#: predecessor is unreadable. Fixed, so rows do not depend on chunk boundaries.
MAX_LOOKBACK = 64


class Inner(NamedTuple):
    """What a chunk measures on its own: its rows and its first and last readable frames."""

    table: pa.Table
    first: KeptFrame | None
    last: KeptFrame | None


class Handoff(NamedTuple):
    """The chain state: the last readable frame at or before frame ``through``."""

    last: KeptFrame | None
    through: int


class Consecutive(Mode):
    name = "consecutive"

    def plan(self, inputs: Inputs, chunk_size: int):
        paths, starts = inputs.paths, inputs.starts
        for number, (s, e) in enumerate(inputs.ranges(chunk_size)):
            # Chunks may need the frame before them, plus the look-back for bad frames,
            # within their sequence.
            first = max(sequence_start(starts, s), s - 1 - MAX_LOOKBACK)
            yield Chunk(number, tuple(range(s, e)), {i: paths[i] for i in range(first, e)})

    sequential_rows = True

    def route(self, *, distributed: bool, device: str) -> str:
        return Route.CHAIN if not distributed and device == "cpu" else Route.STANDALONE

    def run(self, chunk, spec, xp, shared=None):
        device = device_name(xp)
        inner = consecutive_inner(chunk, spec, device)
        start = chunk.targets[0] if chunk.targets else 0
        before = last_readable_before(chunk, start, spec, device) if start > 0 else None
        return consecutive_edge(inner, before, spec, device)

    def prepare(self, chunk, spec, device):
        return consecutive_inner(chunk, spec, device)

    def link(self, chunk, spec, prepared, state, device):
        start = chunk.targets[0]
        if state is not None and state.through == start - 1:
            previous = state.last
        elif start > 0:
            # The chunk before this one is not computed in this run (a resumed run):
            # find the last readable frame before it once, standing in for it.
            previous = last_readable_before(chunk, start, spec, device)
        else:
            previous = None
        table = consecutive_edge(prepared, previous, spec, device)
        last = prepared.last if prepared.last is not None else previous
        return table, Handoff(last, chunk.targets[-1])


def consecutive_inner(chunk: Chunk, spec: ScanSpec, device: str) -> Inner:
    """The part of a consecutive chunk that needs no other chunk.

    Every target is decoded once; rows are made for targets whose readable predecessor
    lies inside the chunk. ``first`` and ``last`` of the result are the chunk's first
    and last readable frames (see :meth:`Frames.keep`), from which
    :func:`consecutive_edge` makes the one row that crosses the chunk boundary.
    """
    xp = K.resolve_device(device)
    frames = spec.frames(xp, capacity=len(chunk.targets), reuse=True, skip=chunk.skip, wanted=chunk.paths)
    rows = RowBuffer(spec.schema)
    planned, notes = [], {}
    prev = first = None
    for i in chunk.targets:
        if not frames.load(i, chunk.paths[i]):
            err = frames.errors[i]
            error_row(rows, spec, i, i - 1 if i > spec.sequence_start(i) else None, i, err.kind, err.reason)
            continue
        if prev is None:
            first = i  # compared with the last readable frame of an earlier chunk
        elif i - prev > MAX_LOOKBACK:
            _no_reference(rows, spec, i)
        else:
            notes[i] = gap_note(prev, i)
            planned.append((i, prev, i))
        prev = i
    frames.prepare()
    measure_planned(frames, planned, spec, rows, notes)

    def keep(i):
        return None if i is None else frames.keep(i)

    return Inner(rows.table(), keep(first), keep(prev))


def last_readable_before(chunk: Chunk, start: int, spec: ScanSpec, device: str) -> KeptFrame | None:
    """The last readable frame before ``start`` within the look-back, decoded here.

    Only where the chunk before is not at hand: a chunk that must stand alone, or the
    first chunk a resumed run computes.
    """
    lowest = max(spec.sequence_start(start), start - MAX_LOOKBACK)
    look_back = {j: chunk.paths[j] for j in range(lowest, start)}
    frames = spec.frames(K.resolve_device(device), capacity=1, skip=chunk.skip, wanted=look_back)
    for j in range(start - 1, lowest - 1, -1):
        if frames.load(j, chunk.paths[j]):
            frames.prepare()
            return frames.keep(j)
    return None


def consecutive_edge(inner: Inner, prev: KeptFrame | None, spec: ScanSpec, device: str) -> pa.Table:
    """Complete a chunk's rows with its boundary row.

    ``inner`` is :func:`consecutive_inner`'s result; ``prev`` the last readable frame
    before the chunk (None where there is none). The chunk's first readable frame is
    compared with it, if it lies within the look-back and in the same sequence.
    """
    table, first, _last = inner
    if first is None or first.index == spec.sequence_start(first.index):
        return table
    f = first.index
    rows = RowBuffer(spec.schema)
    if prev is None or prev.index < spec.sequence_start(f) or f - prev.index > MAX_LOOKBACK:
        _no_reference(rows, spec, f)
    else:
        frames = spec.frames(K.resolve_device(device))
        frames.add_kept(prev)
        frames.add_kept(first)
        measure_planned(frames, [(f, prev.index, f)], spec, rows, {f: gap_note(prev.index, f)})
    return pa.concat_tables([table, rows.table()]).sort_by("pair")


def _no_reference(rows, spec, i):
    error_row(rows, spec, i, i - 1, i, "no-reference", f"no readable frame among the {MAX_LOOKBACK} before it")
