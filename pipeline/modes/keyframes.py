"""``keyframes``: each frame against the last *kept* one; a changed frame is kept."""

from __future__ import annotations

import pyarrow as pa

from framediff import kernels as K

from ..errors import FramediffError
from ..measure import error_row, measure_planned
from ..rows import RowBuffer
from .base import Inputs, Mode, Route
from .chains import decode_chunk, plan_frames

__all__ = ["Keyframes"]


class Keyframes(Mode):
    name = "keyframes"
    outcome_columns = [("kept", pa.bool_())]
    needs_threshold = True
    keeps_frames = True
    resumes_from_state = True
    tasks_per_worker = 2

    def plan(self, inputs: Inputs, chunk_size: int):
        return plan_frames(inputs, chunk_size)

    def expected_rows(self, n_inputs: int) -> int:
        return n_inputs

    def route(self, *, distributed: bool, device: str) -> str:
        return Route.CHAIN

    def prepare(self, chunk, spec, device):
        return decode_chunk(chunk, spec, device)

    def link(self, chunk, spec, prepared, state, device):
        """Compare each frame with the last kept one, in order; return (rows, new state).

        ``state`` is None before the first frame, else the last kept frame (a
        :class:`~framediff.frames.KeptFrame`): the chain passes one frame between tasks.
        """
        frames = prepared
        rows = RowBuffer(spec.schema)
        for i in chunk.targets:
            if i == spec.sequence_start(i):
                state = None  # each video (each run of images) starts afresh
            if not frames.readable(i):
                err = frames.errors[i]
                error_row(rows, spec, i, state.index if state else None, i, err.kind, err.reason)
                continue
            if state is None:  # the first readable frame is kept; nothing to compare it with
                state = frames.keep(i)
                rows.add(pair=i, index_b=i, path_b=spec.names[i], status="ok", kept=True, note="first frame: kept")
                continue
            frames.add_kept(state)
            before = len(rows)
            outcome = measure_planned(frames, [(i, state.index, i)], spec, rows, {})
            changed = outcome.get(i)
            if changed is None and len(rows) > before:  # not comparable: start again from this frame
                changed = True
            rows.columns["kept"][-1] = bool(changed)
            if changed:
                state = frames.keep(i)
        return rows.table(), state

    def dump_state(self, state):
        return {"kept_index": int(state.index)}, {}

    def load_state(self, fields, arrays, inputs, spec, device):
        index = fields["kept_index"]
        frames = spec.frames(K.resolve_device(device), capacity=1, wanted={index: inputs.paths[index]})
        if not frames.load(index, inputs.paths[index]):
            raise FramediffError(f"cannot resume: the last kept frame {inputs.paths[index]} is no longer readable")
        frames.prepare()
        return frames.keep(index)
