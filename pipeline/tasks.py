"""What one Dask task does: decode its frames once, measure its pairs, return rows.

Tasks receive paths and options, never pixels (the keyframe and background chains pass
one frame or one model along); they return a small Arrow table. A file that cannot be
read becomes an error row; nothing escapes a task as an exception for bad input.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

import numpy as np

from framediff import kernels as K

from .decode import DecodeError
from .engine import (
    FrameStack,
    change_kinds,
    fit_frame,
    measure_pair_images,
    measure_pairs,
    prepare_stack,
    read_frame,
    reconcile_pair,
)
from .options import Options
from .rows import RowBuffer, changed_flags, row_schema

__all__ = [
    "MAX_LOOKBACK",
    "Chunk",
    "Frames",
    "ScanSpec",
    "background_chain",
    "decode_chunk",
    "consecutive_edge",
    "consecutive_inner",
    "keyframe_chain",
    "last_readable_before",
    "run_chunk",
]

#: How far back a consecutive comparison looks for a readable frame when its
#: predecessor is unreadable. Fixed, so rows do not depend on chunk boundaries.
MAX_LOOKBACK = 64

#: Decode failures that mean the file itself is damaged (change kind 'corrupt').
_DAMAGED = frozenset({"empty", "truncated", "corrupt", "not-an-image", "unsupported"})


@dataclass(frozen=True)
class ScanSpec:
    """Everything a task needs besides its own chunk: small and picklable."""

    options: Options
    mode: str
    thresholds: tuple = ()
    names: tuple = ()  # report path of every frame, by index
    mask_dir: str | None = None  # background mode: where foreground masks go
    retries: int = 0  # --retries: further attempts after a transient read error
    file_timeout: float | None = None  # --file-timeout: seconds before a decode is given up
    gpu_memory: int | None = None  # --gpu-memory: device budget in bytes (None: 80% of free)
    gpu_decode: bool = False  # decode JPEG on the GPU (nvImageCodec) when a GPU runs the scan
    timed: bool = False  # the report carries capture times (time_b), filled in by the driver

    def frames(self, xp, capacity=0, reuse=False, skip=frozenset()) -> "Frames":
        """A :class:`Frames` for one task, with this scan's retry, timeout and decoder policy."""
        return Frames(
            self.options,
            xp,
            capacity,
            reuse,
            retries=self.retries,
            timeout=self.file_timeout,
            skip=skip,
            gpu_decode=self.gpu_decode,
        )

    @property
    def schema(self):
        return row_schema(self.options, self.mode, timed=self.timed)


@dataclass(frozen=True)
class Chunk:
    """One task's share of the plan.

    Attributes
    ----------
    number : int
        Position of this chunk's rows in the report.
    targets : tuple of int
        Frames compared as ``b`` (consecutive, reference, keyframes, background).
    paths : dict int -> str
        Paths of every frame this task may decode (targets, overlap, look-back).
    pairs : tuple of (pair, index_a, index_b)
        Explicit comparisons (pairs mode).
    stripe : int or None
        All-pairs mode: the block row; a report is written stripe by stripe, sorted,
        so its row order does not depend on the block size.
    skip : frozenset of int
        Frames that crashed a worker process: reported as ``worker-crash``.
    """

    number: int
    targets: tuple = ()
    paths: dict = field(default_factory=dict)
    pairs: tuple = ()
    stripe: int | None = None
    skip: frozenset = frozenset()  # frames known to crash the decoder: not decoded again


_stack_pool = threading.local()


def _pooled_stack(capacity: int, shape: tuple, dtype, pinned: bool = False) -> np.ndarray:
    """A per-thread (capacity, H, W) buffer reused by the next task on this thread.

    Fresh multi-megabyte arrays per frame cost page faults, and concurrent faults
    serialise worker threads on the kernel's memory-map lock. For a GPU run the buffer
    is page-locked, so the copy to the device is one asynchronous DMA.
    """
    key = (capacity, shape, np.dtype(dtype).str, pinned)
    cached = getattr(_stack_pool, "stack", None)
    if cached is None or cached[0] != key:
        cached = None
        _stack_pool.stack = None  # release the old buffer before allocating the new one
        if pinned:
            from .gpu import pinned_empty

            buffer = pinned_empty((capacity, *shape), dtype)
        else:
            buffer = np.empty((capacity, *shape), dtype)
        cached = (key, buffer)
        _stack_pool.stack = cached
    return cached[1]


class Frames:
    """Frames decoded and prepared once, grouped into stacks of equal shape.

    Gray frames of the common shape are decoded straight into one stack (slots of a
    reused buffer when ``reuse`` is set, safe only while the task runs); frames of
    another shape or dtype, and colour frames, are kept aside and stacked per shape.
    The decoded (raw) frames stay reachable for pairwise measurement.
    """

    def __init__(
        self,
        opts: Options,
        xp,
        capacity: int = 0,
        reuse: bool = False,
        *,
        retries=0,
        timeout=None,
        skip=frozenset(),
        gpu_decode=False,
    ):
        self.opts = opts
        self.xp = xp
        self.capacity = capacity
        self.reuse = reuse
        self.retries = retries
        self.timeout = timeout
        self.skip = skip
        self.gpu_decode = gpu_decode and xp is not np
        self.errors: dict[int, DecodeError] = {}
        self.actions: dict[int, str] = {}
        self._stack = None
        self._slots: dict[int, int] = {}
        self._host: dict[int, np.ndarray] = {}
        self._raw: dict[int, np.ndarray] = {}
        self._where: dict[int, tuple[FrameStack, int]] = {}

    def _slot(self):
        if self._stack is None or len(self._slots) >= len(self._stack):
            return None
        return self._stack[len(self._slots)]

    def load(self, index: int, path: str) -> bool:
        """Decode frame ``index`` unless already tried; True when it is readable."""
        if self.readable(index):
            return True
        if index in self.errors:
            return False
        if index in self.skip:
            self.errors[index] = DecodeError("worker-crash", "decoding it crashed the worker process, repeatedly")
            return False
        if self.gpu_decode and str(path).lower().endswith((".jpg", ".jpeg", ".jpe", ".jfif")):
            if self._load_on_device(index, path):
                return True
        # A decode abandoned by the timeout may still finish later: never into a slot.
        slot = None if self.timeout else self._slot()
        try:
            image = _read_with_retries(path, self.opts, slot, self.retries, self.timeout)
        except DecodeError as exc:
            self.errors[index] = exc
            return False
        image, action = fit_frame(image, self.opts)
        if action:
            self.actions[index] = action
        if slot is not None and np.shares_memory(image, slot):
            self._slots[index] = len(self._slots)
        elif self._stack is None and image.ndim == 2 and self.capacity > 0:
            if self.reuse:
                self._stack = _pooled_stack(self.capacity, image.shape, image.dtype, pinned=self.xp is not np)
            else:
                self._stack = np.empty((self.capacity, *image.shape), image.dtype)
            self._stack[0] = image
            self._slots[index] = 0
        elif slot is not None and image.shape == slot.shape and image.dtype == slot.dtype:
            slot[...] = image
            self._slots[index] = len(self._slots)
        else:
            self._host[index] = np.array(image, copy=True)  # the decoder reuses its buffer
        return True

    def _load_on_device(self, index: int, path: str) -> bool:
        """Decode a JPEG on the GPU; False (CPU decoding follows) on any failure."""
        from .decode import read_bytes
        from .gpu import decode_on_device

        if self.opts.scale < 1 or self.opts.color or self.opts.gray != "luma":
            return False  # the GPU decoder serves the default luma path only
        try:
            image = decode_on_device(read_bytes(path), gray=True)
        except Exception:  # missing decoder, unsupported or damaged file: the CPU path decides
            return False
        image, action = fit_frame(image, self.opts)
        if action:
            self.actions[index] = action
        self._host[index] = image  # a device array; prepare() stacks it with its shape group
        return True

    def add_prepared(self, index: int, stack: FrameStack | None, position: int = 0, raw=None) -> None:
        """Register a frame prepared elsewhere (the reference, the last kept frame)."""
        if stack is not None:
            self._where[index] = (stack, position)
        if raw is not None:
            self._raw[index] = raw

    def prepare(self, *, raw_only: bool = False) -> None:
        """Prepare every decoded frame once: one stack per (shape, dtype), on the backend.

        With pairwise options (alignment, exposure matching, colour), or ``raw_only``
        (the background model), frames are kept as decoded; each pair prepares its own
        (see ``measure_pair_images``).
        """
        for i, pos in self._slots.items():
            self._raw[i] = self._stack[pos]
        self._raw.update(self._host)
        if self.opts.pairwise or raw_only:
            self._slots.clear()
            self._host.clear()
            return
        if self._slots:
            stack = prepare_stack(self._stack[: len(self._slots)], self.opts, self.xp)
            for i, pos in self._slots.items():
                self._where[i] = (stack, pos)
        groups: dict[tuple, list[int]] = {}
        for index, image in self._host.items():
            groups.setdefault((image.shape, str(image.dtype), K.is_cupy(image)), []).append(index)
        for indices in groups.values():
            indices.sort()
            stack = prepare_stack([self._host[i] for i in indices], self.opts, self.xp)
            for pos, i in enumerate(indices):
                self._where[i] = (stack, pos)
        self._host.clear()
        self._slots.clear()

    def raw(self, index: int) -> np.ndarray:
        return self._raw[index]

    def shape(self, index: int):
        return tuple(self._raw[index].shape[:2]) if index in self._raw else self._where[index][0].shape

    def lookup(self, index: int):
        return self._where[index]

    def readable(self, index: int) -> bool:
        return index in self._where or index in self._host or index in self._slots or index in self._raw

    def keep(self, index: int):
        """A small, self-contained copy of one frame to hand to another task:
        ``(index, prepared FrameStack or None, raw image or None, resize action or None)``."""
        prepared = self._where[index][0].take(self._where[index][1]) if index in self._where else None
        # The decoded frame travels only when a pair may need it (pairwise options, shape
        # policies); otherwise the prepared frame is all the next task uses.
        needs_raw = prepared is None or self.opts.pairwise or self.opts.resize != "error" or self.opts.crop
        raw = np.array(K.to_numpy(self._raw[index]), copy=True) if needs_raw and index in self._raw else None
        return index, prepared, raw, self.actions.get(index)

    def add_kept(self, kept) -> None:
        """Register a frame another task kept (see :meth:`keep`)."""
        index, prepared, raw, action = kept
        self.add_prepared(index, prepared, 0, raw=raw)
        if action:
            self.actions[index] = action


#: Decode failures worth another try (``--retries``): I/O errors other than the
#: file being missing or forbidden, e.g. a network filesystem hiccup.
_TRANSIENT = frozenset({"unreadable"})


def _read_with_retries(path, opts, slot, retries: int, timeout):
    for attempt in range(retries + 1):
        try:
            return _read_with_timeout(path, opts, slot, timeout)
        except DecodeError as exc:
            if exc.kind not in _TRANSIENT or attempt == retries:
                raise
            time.sleep(min(2.0, 0.05 * 2**attempt))


def _read_with_timeout(path, opts, slot, timeout):
    """``read_frame``, given up after ``timeout`` seconds (a hung mount, a FIFO).

    The decode runs in a daemon thread: a read that never returns is abandoned (it
    cannot block the process from exiting) and the frame becomes a ``timeout`` row.
    """
    if not timeout:
        return read_frame(path, opts, out=slot)
    box = {}

    def work():
        try:
            box["image"] = np.array(read_frame(path, opts), copy=True)
        except BaseException as exc:  # handed to the waiting thread as is
            box["error"] = exc

    thread = threading.Thread(target=work, daemon=True, name="framediff-decode")
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise DecodeError("timeout", f"no result after {timeout:g} s (--file-timeout)")
    if "error" in box:
        raise box["error"]
    return box["image"]


def _shape_action(frames: Frames, a: int, b: int) -> str:
    parts = [f"{frames.actions[i].replace('resize', 'resize ' + name, 1)}" for name, i in (("a", a), ("b", b)) if i in frames.actions]
    return "; ".join(parts) or "none"


def _row_common(spec, pair, a, b, shape):
    height, width = shape
    return dict(pair=pair, index_a=a, index_b=b, path_a=spec.names[a], path_b=spec.names[b], height=height, width=width)


def _measure(frames: Frames, planned, spec: ScanSpec, rows: RowBuffer, notes: dict) -> dict:
    """Measure ``planned`` (pair, a, b) triples whose frames are readable; add their rows.

    Pairs of different shapes become ``size-mismatch`` rows unless a shape policy
    (``--resize``/``--crop``) applies. Returns ``{pair: changed}`` for measured pairs.
    """
    opts = spec.options
    thresholds = dict(spec.thresholds)
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
            _error_row(rows, spec, pair, a, b, "size-mismatch", reason)
            continue
        sa, pos_a = frames.lookup(a)
        sb, pos_b = frames.lookup(b)
        if sa.pixels.dtype != sb.pixels.dtype:  # e.g. a 16-bit PNG after 8-bit JPEGs
            reason = f"{sb.pixels.dtype} pixels differ from {sa.pixels.dtype} of {spec.names[a]}"
            _error_row(rows, spec, pair, a, b, "not-comparable", reason)
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
    from framediff.kernels.shape import ShapeMismatchError

    opts = spec.options
    try:
        # The pair as compared (shape policy applied once); change kinds look at it too.
        raw_a, raw_b, action = reconcile_pair(frames.raw(a), frames.raw(b), opts)
        values = measure_pair_images(raw_a, raw_b, opts, frames.xp, shape_action=action)
    except ShapeMismatchError as exc:
        _error_row(rows, spec, pair, a, b, "size-mismatch", str(exc))
        return {}
    except ValueError as exc:  # e.g. no overlap left after alignment
        _error_row(rows, spec, pair, a, b, "not-comparable", str(exc))
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
    import dataclasses

    return dataclasses.replace(opts, normalize="none", blur=0.0, median=0, edges="none", metrics=("l1",))


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
        change_kind="corrupt" if kind in _DAMAGED and spec.options.change_kind else None,
    )


def _gap_note(prev: int, i: int):
    if prev == i - 1:
        return None
    skipped = f"{prev + 1}" if prev + 1 == i - 1 else f"{prev + 1}..{i - 1}"
    return f"compared with frame {prev}: frame {skipped} unreadable"


def _no_reference(rows, spec, i):
    _error_row(rows, spec, i, i - 1, i, "no-reference", f"no readable frame among the {MAX_LOOKBACK} before it")


def _consecutive(chunk: Chunk, spec: ScanSpec, xp):
    """A whole consecutive chunk in one task: it also decodes the last readable frame
    before its first target itself. Used where chunks must stand alone: dask.distributed
    runs (crash isolation) and the GPU out-of-memory back-off."""
    device = "cpu" if xp is np else "gpu"
    inner = consecutive_inner(chunk, spec, device)
    start = chunk.targets[0] if chunk.targets else 0
    before = last_readable_before(chunk, start, spec, device) if start > 0 else None
    return consecutive_edge(inner, [before], spec, device)


def consecutive_inner(chunk: Chunk, spec: ScanSpec, device: str):
    """The part of a consecutive chunk that needs no other chunk.

    Every target is decoded once; rows are made for targets whose readable predecessor
    lies inside the chunk. Returns ``(table, first, last)``: ``first`` and ``last`` are
    the chunk's first and last readable frames (see :meth:`Frames.keep`), from which
    :func:`consecutive_edge` makes the one row that crosses the chunk boundary.
    """
    xp = K.resolve_device(device)
    frames = spec.frames(xp, capacity=len(chunk.targets), reuse=True, skip=chunk.skip)
    rows = RowBuffer(spec.schema)
    planned, notes = [], {}
    prev = first = None
    for i in chunk.targets:
        if not frames.load(i, chunk.paths[i]):
            err = frames.errors[i]
            _error_row(rows, spec, i, i - 1 if i > 0 else None, i, err.kind, err.reason)
            continue
        if prev is None:
            first = i  # compared with the last readable frame of an earlier chunk
        elif i - prev > MAX_LOOKBACK:
            _no_reference(rows, spec, i)
        else:
            notes[i] = _gap_note(prev, i)
            planned.append((i, prev, i))
        prev = i
    frames.prepare()
    _measure(frames, planned, spec, rows, notes)
    keep = (lambda i: None if i is None else frames.keep(i))
    return rows.table(), keep(first), keep(prev)


def last_readable_before(chunk: Chunk, start: int, spec: ScanSpec, device: str):
    """The last readable frame before ``start`` within the look-back, decoded here.

    Only where the chunk before is not at hand: a chunk that must stand alone, or the
    first chunk a resumed run computes.
    """
    frames = spec.frames(K.resolve_device(device), capacity=1, skip=chunk.skip)
    for j in range(start - 1, max(-1, start - 1 - MAX_LOOKBACK), -1):
        if frames.load(j, chunk.paths[j]):
            frames.prepare()
            return frames.keep(j)
    return None


def consecutive_edge(inner, previous, spec: ScanSpec, device: str):
    """Complete a chunk's rows with its boundary row.

    ``inner`` is :func:`consecutive_inner`'s result; ``previous`` the last readable
    frames of the chunks before it, most recent first (``None`` for a chunk with none).
    The chunk's first readable frame is compared with the first of those found, if it
    lies within the look-back.
    """
    import pyarrow as pa

    table, first, _last = inner
    if first is None or first[0] == 0:
        return table
    f = first[0]
    prev = next((p for p in previous if p is not None), None)
    rows = RowBuffer(spec.schema)
    if prev is None or f - prev[0] > MAX_LOOKBACK:
        _no_reference(rows, spec, f)
    else:
        frames = spec.frames(K.resolve_device(device))
        frames.add_kept(prev)
        frames.add_kept(first)
        _measure(frames, [(f, prev[0], f)], spec, rows, {f: _gap_note(prev[0], f)})
    return pa.concat_tables([table, rows.table()]).sort_by("pair")


def _reference(chunk: Chunk, spec: ScanSpec, xp, ref):
    ref_index, ref_stack, ref_raw, ref_error = ref
    frames = spec.frames(xp, capacity=len(chunk.targets), reuse=True, skip=chunk.skip)
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
    if ref_error is None:
        frames.add_prepared(ref_index, ref_stack, 0, raw=ref_raw)
    _measure(frames, planned, spec, rows, {})
    return rows.table()


def _pairs(chunk: Chunk, spec: ScanSpec, xp):
    frames = spec.frames(xp, capacity=len(chunk.paths), reuse=True, skip=chunk.skip)
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
    """Decode and prepare the reference frame once for all reference-mode tasks.

    Returns ``(index, FrameStack or None, raw image or None, error text or None)``.
    """
    frames = spec.frames(K.resolve_device(device), capacity=1)
    if not frames.load(index, path):
        exc = frames.errors[index]
        return index, None, None, f"{exc.kind}: {exc.reason}"
    frames.prepare()
    _, prepared, raw, _action = frames.keep(index)
    return index, prepared, raw, None


def decode_chunk(chunk: Chunk, spec: ScanSpec, device: str) -> Frames:
    """Decode and prepare a chain chunk (runs in parallel ahead of the chain)."""
    # No buffer reuse: these frames outlive the task (the chain consumes them later).
    frames = spec.frames(K.resolve_device(device), capacity=len(chunk.targets), skip=chunk.skip)
    for i in chunk.targets:
        frames.load(i, chunk.paths[i])
    frames.prepare(raw_only=spec.mode == "background")
    return frames


def keyframe_chain(chunk: Chunk, spec: ScanSpec, frames: Frames, state):
    """Compare each frame with the last kept one, in order; return (rows, new state).

    ``state`` is ``None`` before the first frame, else what :meth:`Frames.keep`
    returns for the last kept frame, so the chain passes one frame between tasks.
    """
    rows = RowBuffer(spec.schema)
    for i in chunk.targets:
        if not frames.readable(i):
            err = frames.errors[i]
            _error_row(rows, spec, i, state[0] if state else None, i, err.kind, err.reason)
            continue
        if state is None:  # the first readable frame is kept; nothing to compare it with
            state = frames.keep(i)
            rows.add(pair=i, index_b=i, path_b=spec.names[i], status="ok", kept=True, note="first frame: kept")
            continue
        kept_index = state[0]
        frames.add_kept(state)
        before = len(rows)
        outcome = _measure(frames, [(i, kept_index, i)], spec, rows, {})
        changed = outcome.get(i)
        if changed is None and len(rows) > before:  # not comparable: start again from this frame
            changed = True
        rows.columns["kept"][-1] = bool(changed)
        if changed:
            state = frames.keep(i)
    return rows.table(), state


def background_chain(chunk: Chunk, spec: ScanSpec, frames: Frames, state):
    """Show the frames to the background model in order; one row per frame.

    ``state`` is the :class:`~framediff.kernels.background.BackgroundModel` after the
    previous chunk (``None`` at the start). Frames that cannot be read, or have another
    shape than the model, are error rows and do not touch the model.
    """
    from framediff.kernels.background import update_background

    opts = spec.options
    mask_dir = spec.mask_dir
    rows = RowBuffer(spec.schema)
    thresholds = dict(spec.thresholds)
    for i in chunk.targets:
        if not frames.readable(i):
            err = frames.errors[i]
            _error_row(rows, spec, i, None, i, err.kind, err.reason)
            continue
        raw = frames.raw(i)
        gray = K.to_gray(raw, "luma") if raw.ndim == 3 else raw
        if state is not None and tuple(state.mean.shape) != gray.shape:
            h, w = state.mean.shape
            _error_row(rows, spec, i, None, i, "size-mismatch", f"{gray.shape[1]}x{gray.shape[0]} differs from the model's {w}x{h}")
            continue
        state, fraction, masks = update_background(
            state,
            frames.xp.asarray(gray)[None],
            mode=opts.bg_method,
            learning_rate=opts.learning_rate,
            window=opts.window,
            k=opts.k,
            warmup=opts.warmup,
            return_masks=mask_dir is not None,
            xp=frames.xp,
        )
        value = float(K.to_numpy(fraction)[0])
        changed = bool(changed_flags({"foreground_fraction": [value]}, thresholds)[0]) if thresholds else False
        note = "warm-up: learning the background" if np.isnan(value) else None
        if mask_dir is not None and masks is not None and not np.isnan(value):
            _write_mask(mask_dir, spec.names[i], K.to_numpy(masks[0]))
        rows.add(
            pair=i,
            index_b=i,
            path_b=spec.names[i],
            height=gray.shape[0],
            width=gray.shape[1],
            foreground_fraction=None if np.isnan(value) else value,
            changed=changed,
            status="ok",
            note=note,
        )
    return rows.table(), state


def _write_mask(mask_dir, name: str, mask: np.ndarray) -> None:
    """Write a foreground mask as an 8-bit PNG named after the frame, inside mask_dir."""
    import os
    from pathlib import Path

    import imageio.v3 as iio

    root = Path(mask_dir).resolve()
    target = (root / (os.path.splitext(name)[0] + ".mask.png")).resolve()
    if root not in target.parents:  # a crafted name must not escape the folder
        target = root / (Path(name).name + ".mask.png")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    iio.imwrite(tmp, mask.astype(np.uint8) * 255, extension=".png")
    os.replace(tmp, target)


#: Note on rows computed on the CPU because the GPU ran out of memory.
GPU_FALLBACK_NOTE = "computed on CPU: GPU out of memory"


def _dispatch(chunk: Chunk, spec: ScanSpec, xp, ref):
    if spec.mode == "consecutive":
        return _consecutive(chunk, spec, xp)
    if spec.mode == "reference":
        return _reference(chunk, spec, xp, ref)
    if spec.mode == "pairs":
        return _pairs(chunk, spec, xp)
    raise ValueError(f"run_chunk does not handle mode {spec.mode!r}")


def _halves(chunk: Chunk):
    import dataclasses

    if len(chunk.targets) > 1:
        mid = len(chunk.targets) // 2
        return [dataclasses.replace(chunk, targets=chunk.targets[:mid]), dataclasses.replace(chunk, targets=chunk.targets[mid:])]
    if len(chunk.pairs) > 1:
        mid = len(chunk.pairs) // 2
        return [dataclasses.replace(chunk, pairs=chunk.pairs[:mid]), dataclasses.replace(chunk, pairs=chunk.pairs[mid:])]
    return None


def _on_host(ref):
    """The reference frame moved to host memory, for a CPU fallback."""
    if ref is None or ref[1] is None:
        return ref
    index, stack, raw, error = ref
    host = FrameStack(
        K.to_numpy(stack.pixels),
        None if stack.probabilities is None else K.to_numpy(stack.probabilities),
        stack.data_range,
        None if stack.edges is None else K.to_numpy(stack.edges),
    )
    return index, host, raw, error


def _run_with_backoff(chunk: Chunk, spec: ScanSpec, xp, ref):
    """Run on the GPU; out of memory halves the chunk and retries, down to one frame,
    whose comparisons then run on the CPU (noted in their rows and the summary)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from .gpu import is_out_of_memory, release_pool

    try:
        return _dispatch(chunk, spec, xp, ref)
    except Exception as exc:
        if not is_out_of_memory(exc):
            raise
    release_pool()
    parts = _halves(chunk)
    if parts is not None:
        return pa.concat_tables([_run_with_backoff(p, spec, xp, ref) for p in parts])
    table = _dispatch(chunk, spec, np, _on_host(ref))
    pos = table.schema.get_field_index("note")
    notes = pc.fill_null(table.column("note"), GPU_FALLBACK_NOTE)
    return table.set_column(pos, table.schema.field(pos), notes)


def run_chunk(chunk: Chunk, spec: ScanSpec, device: str, ref=None):
    """Run one consecutive / reference / pairs chunk and return its Arrow table.

    On a GPU the chunk runs on this thread's CUDA stream within the device memory
    budget, with the out-of-memory back-off of :func:`_run_with_backoff`.
    """
    xp = K.resolve_device(device)
    if xp is np:
        return _dispatch(chunk, spec, xp, ref)
    from .gpu import device_budget, task_stream

    device_budget(spec.gpu_memory)
    stream = task_stream()
    with stream:
        table = _run_with_backoff(chunk, spec, xp, ref)
    stream.synchronize()
    return table
