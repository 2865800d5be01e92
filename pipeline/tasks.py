"""What one Dask task does: decode its frames once, measure its pairs, return rows.

Tasks receive paths and options, never pixels (the keyframe chain passes one prepared
frame along); they return a small Arrow table. A file that cannot be read becomes an
error row; nothing escapes a task as an exception for bad input.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from framediff import kernels as K

from .decode import DecodeError
from .engine import FrameStack, measure_pairs, prepare_stack, read_frame
from .options import Options
from .rows import RowBuffer, changed_flags, row_schema

__all__ = ["MAX_LOOKBACK", "Chunk", "ScanSpec", "Frames", "run_chunk"]

#: How far back a consecutive comparison looks for a readable frame when its
#: predecessor is unreadable. Fixed, so rows do not depend on chunk boundaries.
MAX_LOOKBACK = 64


@dataclass(frozen=True)
class ScanSpec:
    """Everything a task needs besides its own chunk: small and picklable."""

    options: Options
    mode: str
    thresholds: tuple = ()
    names: tuple = ()  # report path of every frame, by index
    integer_l1: bool = True

    @property
    def schema(self):
        return row_schema(self.options.metrics, integer_l1=self.integer_l1, keyframes=self.mode == "keyframes")


@dataclass(frozen=True)
class Chunk:
    """One task's share of the plan.

    Attributes
    ----------
    number : int
        Position of this chunk's rows in the report.
    targets : tuple of int
        Frames compared as ``b`` (consecutive, reference, keyframes).
    paths : dict int -> str
        Paths of every frame this task may decode (targets, overlap, look-back).
    pairs : tuple of (pair, index_a, index_b)
        Explicit comparisons (pairs mode).
    """

    number: int
    targets: tuple = ()
    paths: dict = field(default_factory=dict)
    pairs: tuple = ()


class Frames:
    """Frames decoded and prepared once, grouped into stacks of equal shape."""

    def __init__(self, opts: Options, xp):
        self.opts = opts
        self.xp = xp
        self.errors: dict[int, DecodeError] = {}
        self._host: dict[int, np.ndarray] = {}
        self._where: dict[int, tuple[FrameStack, int]] = {}

    def load(self, index: int, path: str) -> bool:
        """Decode frame ``index`` unless already tried; True when it is readable."""
        if index in self._host or index in self._where:
            return True
        if index in self.errors:
            return False
        try:
            image = read_frame(path, self.opts)
        except DecodeError as exc:
            self.errors[index] = exc
            return False
        self._host[index] = np.array(image, copy=True)  # the decoder reuses its buffer
        return True

    def add_prepared(self, index: int, stack: FrameStack, position: int) -> None:
        """Register a frame prepared elsewhere (the reference, the last kept frame)."""
        self._where[index] = (stack, position)

    def prepare(self) -> None:
        """Prepare every decoded frame: one stack per (shape, dtype), on the backend."""
        groups: dict[tuple, list[int]] = {}
        for index, image in self._host.items():
            groups.setdefault((image.shape, image.dtype.str), []).append(index)
        for indices in groups.values():
            indices.sort()
            stack = prepare_stack([self._host[i] for i in indices], self.opts, self.xp)
            for pos, i in enumerate(indices):
                self._where[i] = (stack, pos)
        self._host.clear()

    def shape(self, index: int):
        return self._where[index][0].shape

    def lookup(self, index: int):
        return self._where[index]

    def readable(self, index: int) -> bool:
        return index in self._where or index in self._host


def _measure(frames: Frames, planned, spec: ScanSpec, rows: RowBuffer, notes: dict) -> dict:
    """Measure ``planned`` (pair, a, b) triples that are all readable; add their rows.

    Pairs of different shapes become ``size-mismatch`` rows. Returns
    ``{pair: changed}`` for the measured ones.
    """
    groups: dict[tuple, list] = {}
    outcome = {}
    for pair, a, b in planned:
        if frames.shape(a) != frames.shape(b):
            ha, wa = frames.shape(a)
            hb, wb = frames.shape(b)
            _error_row(rows, spec, pair, a, b, "size-mismatch", f"{wb}x{hb} differs from {wa}x{ha} of {spec.names[a]}")
            continue
        sa, pa_ = frames.lookup(a)
        sb, pb = frames.lookup(b)
        groups.setdefault((id(sa), id(sb)), [sa, sb, []])[2].append((pair, a, b, pa_, pb))
    thresholds = dict(spec.thresholds)
    for sa, sb, items in groups.values():
        values = measure_pairs(sa, [t[3] for t in items], sb, [t[4] for t in items], spec.options)
        flags = changed_flags(values, thresholds)
        for k, (pair, a, b, _pa, _pb) in enumerate(items):
            height, width = sa.shape
            rows.add(
                pair=pair,
                index_a=a,
                index_b=b,
                path_a=spec.names[a],
                path_b=spec.names[b],
                height=height,
                width=width,
                changed=bool(flags[k]),
                status="ok",
                note=notes.get(pair),
                **{name: column[k].item() for name, column in values.items()},
            )
            outcome[pair] = bool(flags[k])
    return outcome


def _error_row(rows, spec, pair, a, b, kind, reason, note=None):
    rows.add(
        pair=pair,
        index_a=a,
        index_b=b,
        path_a=None if a is None else spec.names[a],
        path_b=spec.names[b],
        status="error",
        error_kind=kind,
        error=reason,
        note=note,
    )


def _consecutive(chunk: Chunk, spec: ScanSpec, xp):
    frames = Frames(spec.options, xp)
    rows = RowBuffer(spec.schema)
    planned, notes = [], {}
    for i in chunk.targets:
        if not frames.load(i, chunk.paths[i]):
            err = frames.errors[i]
            _error_row(rows, spec, i, i - 1 if i > 0 else None, i, err.kind, err.reason)
            continue
        if i == 0:
            continue  # the first frame has nothing before it
        prev = None
        for j in range(i - 1, max(-1, i - 1 - MAX_LOOKBACK), -1):
            if frames.load(j, chunk.paths[j]):
                prev = j
                break
        if prev is None:
            _error_row(rows, spec, i, i - 1, i, "no-reference", f"no readable frame among the {MAX_LOOKBACK} before it")
            continue
        if prev != i - 1:
            skipped = f"{prev + 1}" if prev + 1 == i - 1 else f"{prev + 1}..{i - 1}"
            notes[i] = f"compared with frame {prev}: frame {skipped} unreadable"
        planned.append((i, prev, i))
    frames.prepare()
    _measure(frames, planned, spec, rows, notes)
    return rows.table()


def _reference(chunk: Chunk, spec: ScanSpec, xp, ref):
    ref_index, ref_stack, ref_error = ref
    frames = Frames(spec.options, xp)
    rows = RowBuffer(spec.schema)
    planned = []
    for i in chunk.targets:
        if not frames.load(i, chunk.paths[i]):
            err = frames.errors[i]
            _error_row(rows, spec, i, ref_index, i, err.kind, err.reason)
        elif ref_error is not None:
            _error_row(rows, spec, i, ref_index, i, "no-reference", f"reference unreadable: {ref_error}")
        else:
            planned.append((i, ref_index, i))
    frames.prepare()
    if ref_stack is not None:
        frames.add_prepared(ref_index, ref_stack, 0)
    _measure(frames, planned, spec, rows, {})
    return rows.table()


def _pairs(chunk: Chunk, spec: ScanSpec, xp):
    frames = Frames(spec.options, xp)
    rows = RowBuffer(spec.schema)
    planned = []
    for pair, a, b in chunk.pairs:
        ok_a = frames.load(a, chunk.paths[a])
        ok_b = frames.load(b, chunk.paths[b])
        if not ok_b:
            _error_row(rows, spec, pair, a, b, frames.errors[b].kind, frames.errors[b].reason)
        elif not ok_a:
            err = frames.errors[a]
            _error_row(rows, spec, pair, a, b, err.kind, f"{spec.names[a]}: {err.reason}")
        else:
            planned.append((pair, a, b))
    frames.prepare()
    _measure(frames, planned, spec, rows, {})
    return rows.table()


def prepare_reference(index: int, path: str, spec: ScanSpec, device: str):
    """Decode and prepare the reference frame once for all reference-mode tasks."""
    xp = K.resolve_device(device)
    try:
        image = read_frame(path, spec.options)
    except DecodeError as exc:
        return index, None, f"{exc.kind}: {exc.reason}"
    return index, prepare_stack([np.array(image)], spec.options, xp), None


def decode_chunk(chunk: Chunk, spec: ScanSpec, device: str) -> Frames:
    """Decode and prepare a keyframes chunk (runs in parallel ahead of the chain)."""
    frames = Frames(spec.options, K.resolve_device(device))
    for i in chunk.targets:
        frames.load(i, chunk.paths[i])
    frames.prepare()
    return frames


def keyframe_chain(chunk: Chunk, spec: ScanSpec, frames: Frames, state):
    """Compare each frame with the last kept one, in order; return (rows, new state).

    ``state`` is ``None`` before the first frame, else ``(kept_index, FrameStack)``
    holding just the last kept frame, so the chain passes one frame between tasks.
    """
    rows = RowBuffer(spec.schema)
    for i in chunk.targets:
        if not frames.readable(i):
            err = frames.errors[i]
            kept_index = state[0] if state else None
            _error_row(rows, spec, i, kept_index, i, err.kind, err.reason)
            continue
        if state is None:  # the first readable frame is kept; nothing to compare it with
            state = _keep(frames, i)
            rows.add(pair=i, index_b=i, path_b=spec.names[i], status="ok", kept=True, note="first frame: kept")
            continue
        kept_index, kept_stack = state
        frames.add_prepared(kept_index, kept_stack, 0)
        before = len(rows)
        outcome = _measure(frames, [(i, kept_index, i)], spec, rows, {})
        changed = outcome.get(i)
        if changed is None and len(rows) > before:  # size mismatch: start again from this frame
            changed = True
        rows.columns["kept"][-1] = bool(changed)
        if changed:
            state = _keep(frames, i)
    return rows.table(), state


def _keep(frames: Frames, index: int):
    stack, pos = frames.lookup(index)
    # Copies, so the chain does not keep a whole decoded chunk alive through a view.
    one = FrameStack(
        stack.pixels[pos : pos + 1].copy(),
        None if stack.probabilities is None else stack.probabilities[pos : pos + 1].copy(),
        stack.data_range,
    )
    return index, one


def run_chunk(chunk: Chunk, spec: ScanSpec, device: str, ref=None):
    """Run one consecutive / reference / pairs chunk and return its Arrow table."""
    xp = K.resolve_device(device)
    if spec.mode == "consecutive":
        return _consecutive(chunk, spec, xp)
    if spec.mode == "reference":
        return _reference(chunk, spec, xp, ref)
    if spec.mode == "pairs":
        return _pairs(chunk, spec, xp)
    raise ValueError(f"run_chunk does not handle mode {spec.mode!r}")
