"""``keyframes``: each frame against the last *kept* one; a frame is kept when it
brings a change of a kind worth keeping (``keep_on``), or crosses an explicit threshold.

Exact repeats are recognised before decoding: a file byte-identical to the one before
it takes that frame's decision and is never decoded nor kept.
"""

from __future__ import annotations

import os
import stat
from typing import NamedTuple

import pyarrow as pa

from framediff import kernels as K

from ..decide import DecisionStage, file_digest
from ..errors import FramediffError
from ..frames import Frames, KeptFrame
from ..measure import error_row, measure_planned
from ..plan import Chunk, frame_ranges
from ..rows import RowBuffer
from ..video_inputs import VideoFrameRef
from .base import Inputs, Mode, Route

__all__ = ["BYTE_IDENTICAL_NOTE", "Keyframes"]

#: The note of a frame whose file repeats the previous file byte for byte.
BYTE_IDENTICAL_NOTE = "byte-identical to the previous file: not decoded"


class KeyState(NamedTuple):
    """The chain state: the last kept frame, the decisions' running window, and the
    decision on the last frame seen (its kind, ``'kept'``, or ``'error'``)."""

    kept: KeptFrame
    window: dict
    last: str | None = None


class Prepared(NamedTuple):
    """A chunk decoded ahead of the chain, with its files' digests."""

    frames: Frames
    repeats: frozenset  # targets byte-identical to the frame before them (not decoded)


class Keyframes(Mode):
    name = "keyframes"
    outcome_columns = [("kept", pa.bool_())]
    decides_in_sink = False
    keeps_frames = True
    resumes_from_state = True
    tasks_per_worker = 2

    def plan(self, inputs: Inputs, chunk_size: int):
        paths = inputs.paths
        for number, (s, e) in enumerate(frame_ranges(len(paths), chunk_size)):
            # The frame before the chunk comes along for its digest only (never decoded).
            yield Chunk(number, tuple(range(s, e)), {i: paths[i] for i in range(max(0, s - 1), e)})

    def expected_rows(self, n_inputs: int) -> int:
        return n_inputs

    def route(self, *, distributed: bool, device: str) -> str:
        return Route.CHAIN

    def prepare(self, chunk, spec, device):
        frames = spec.frames(K.resolve_device(device), capacity=len(chunk.targets), skip=chunk.skip, wanted=chunk.paths)
        repeats = set()
        digests = {}  # path -> digest, for the files that a neighbour of the same size makes worth hashing
        for i in chunk.targets:
            if _same_bytes(chunk.paths.get(i - 1), chunk.paths[i], digests):
                repeats.add(i)
            else:
                frames.load(i, chunk.paths[i])
        frames.prepare()
        return Prepared(frames, frozenset(repeats))

    def link(self, chunk, spec, prepared, state, device):
        """Compare each frame with the last kept one, in order; return (rows, new state)."""
        frames, repeats = prepared
        stage = DecisionStage(
            sensitivity=spec.sensitivity,
            thresholds=spec.thresholds.as_dict(),
            sequence=False,
            registered=spec.options.align,
        )
        if state is not None:
            stage.restore_window(state.window)
        rows = RowBuffer(spec.schema)
        last = None if state is None else state.last
        for i in chunk.targets:
            if i == spec.sequence_start(i):
                state, last = None, None  # each video (each run of images) starts afresh
                stage.reset_window()
            if i in repeats and state is not None and last not in (None, "error"):
                # The same picture as frame i - 1: its decision against the kept frame,
                # or nothing new when frame i - 1 is the kept frame itself.
                kind = "none" if last == "kept" else last
                k = state.kept.index
                rows.add(pair=i, index_a=k, index_b=i, path_a=spec.names[k], path_b=spec.names[i],
                         changed=kind != "none", change_kind=kind, status="ok", kept=False,
                         note=BYTE_IDENTICAL_NOTE)  # fmt: skip
                continue
            if i in repeats and not frames.readable(i) and i not in frames.errors:
                frames.load(i, chunk.paths[i])  # repeats a frame that could not be used: decode it after all
                frames.prepare()
            if not frames.readable(i):
                err = frames.errors[i]
                error_row(rows, spec, i, state.kept.index if state else None, i, err.kind, err.reason)
                last = "error"
                continue
            if state is None:  # the first readable frame is kept; nothing to compare it with
                state = KeyState(frames.keep(i), stage.window())
                rows.add(pair=i, index_b=i, path_b=spec.names[i], changed=False, status="ok", kept=True,
                         note="first frame: kept")  # fmt: skip
                last = "kept"
                continue
            frames.add_kept(state.kept)
            outcome = measure_planned(frames, [(i, state.kept.index, i)], spec, rows, {})
            if i not in outcome:  # not comparable (an error row): start again from this frame
                kept, kind = True, None
            else:
                kind = _decide(stage, outcome[i], spec)
                kept = kind in spec.keep_on or (bool(spec.thresholds) and kind != "none")
                rows.columns["changed"][-1] = kind != "none"
                if "change_kind" in rows.columns:
                    rows.columns["change_kind"][-1] = kind
            rows.columns["kept"][-1] = kept
            last = "kept" if kept else kind
            if kept:
                state = KeyState(frames.keep(i), stage.window())
        if state is not None:
            state = state._replace(window=stage.window(), last=last)
        return rows.table(), state

    def dump_state(self, state):
        return {"kept_index": int(state.kept.index), "window": state.window, "last": state.last}, {}

    def load_state(self, fields, arrays, inputs, spec, device):
        index = fields["kept_index"]
        frames = spec.frames(K.resolve_device(device), capacity=1, wanted={index: inputs.paths[index]})
        if not frames.load(index, inputs.paths[index]):
            raise FramediffError(f"cannot resume: the last kept frame {inputs.paths[index]} is no longer readable")
        frames.prepare()
        return KeyState(frames.keep(index), fields.get("window", {}), fields.get("last"))


def _same_bytes(a, b, digests: dict) -> bool:
    """Whether two local files hold the same bytes: their sizes first (a stat each), their
    digests only when the sizes agree, so a sequence of distinct frames is never hashed."""
    size_a, size_b = _size(a), _size(b)
    if size_a is None or size_a != size_b:
        return False
    for path in (a, b):
        if path not in digests:
            try:
                digests[path] = file_digest(path)
            except OSError:
                digests[path] = None  # unreadable: decoding says why
    return digests[a] is not None and digests[a] == digests[b]


def _size(path) -> int | None:
    """Bytes of a regular local file; None for anything else (a video frame, a URL, a device)."""
    if path is None or isinstance(path, VideoFrameRef) or "://" in str(path):
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_size if stat.S_ISREG(st.st_mode) else None


def _decide(stage: DecisionStage, measured, spec) -> str:
    """The kind of one keyframe comparison: the features' verdict, or explicit thresholds'."""
    if measured.features is None:
        kind = "none"
    else:
        kind = stage.classify({k[len("feat_") :]: v for k, v in measured.features.items()})
    if spec.thresholds:
        row = dict(measured.values)
        kind = stage.explicit_kind(row, kind)
    return kind
