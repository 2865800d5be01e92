"""``reference``: every frame against one reference frame, prepared once per run."""

from __future__ import annotations

import os
from typing import NamedTuple

import numpy as np

from framediff import kernels as K

from ..engine import FrameStack
from ..errors import ParameterError
from ..measure import error_row, measure_planned
from ..plan import Chunk
from ..rows import RowBuffer
from .base import Inputs, Mode

__all__ = ["PreparedReference", "Reference", "prepare_reference", "resolve_reference"]


class PreparedReference(NamedTuple):
    """The reference frame, decoded and prepared once for every task.

    Attributes
    ----------
    index : int
    stack : FrameStack or None
        The prepared frame (None when it could not be read).
    raw : ndarray or None
        The decoded frame, when pairs may need it.
    error : str or None
        Why the reference could not be read.
    source : numpy.dtype or None
        The dtype it was decoded as.
    """

    index: int
    stack: FrameStack | None
    raw: np.ndarray | None
    error: str | None
    source: np.dtype | None = None

    def on_host(self) -> PreparedReference:
        """The same reference in host memory (for a CPU fallback of a GPU run)."""
        if self.stack is None:
            return self
        s = self.stack
        host = FrameStack(
            K.to_numpy(s.pixels),
            None if s.probabilities is None else K.to_numpy(s.probabilities),
            s.data_range,
            None if s.edges is None else K.to_numpy(s.edges),
            s.source_dtype,
        )
        return self._replace(stack=host)


class Reference(Mode):
    name = "reference"
    uses_reference = True

    def plan(self, inputs: Inputs, chunk_size: int):
        number = 0
        for s, e in inputs.ranges(chunk_size):
            part = [i for i in range(s, e) if i != inputs.reference]
            if part:
                yield Chunk(number, tuple(part), {i: inputs.paths[i] for i in part})
                number += 1

    def shared_frame(self, inputs: Inputs):
        return inputs.reference, inputs.paths[inputs.reference]

    def prepare_shared(self, index, path, spec, device):
        return prepare_reference(index, path, spec, device)

    def run(self, chunk, spec, xp, shared=None):
        ref = shared
        frames = spec.frames(xp, capacity=len(chunk.targets), reuse=True, skip=chunk.skip, wanted=chunk.paths)
        rows = RowBuffer(spec.schema)
        planned = []
        for i in chunk.targets:
            if not frames.load(i, chunk.paths[i]):
                err = frames.errors[i]
                error_row(rows, spec, i, ref.index, i, err.kind, err.reason)
            elif ref.error is not None:
                error_row(rows, spec, i, ref.index, i, "no-reference", f"reference unreadable: {ref.error}")
            else:
                planned.append((i, ref.index, i))
        frames.prepare()
        if ref.error is None:
            frames.add_prepared(ref.index, ref.stack, 0, raw=ref.raw, source=ref.source)
        measure_planned(frames, planned, spec, rows, {})
        return rows.table()


def prepare_reference(index: int, path: str, spec, device: str) -> PreparedReference:
    """Decode and prepare the reference frame once for all reference-mode tasks."""
    frames = spec.frames(K.resolve_device(device), capacity=1, wanted={index: path})
    if not frames.load(index, path):
        exc = frames.errors[index]
        return PreparedReference(index, None, None, f"{exc.kind}: {exc.reason}")
    frames.prepare()
    kept = frames.keep(index)
    return PreparedReference(index, kept.prepared, kept.raw, None, kept.source)


def resolve_reference(reference, names, paths) -> int:
    """The frame index of ``reference``: an index, a report name or a path (default 0).

    Raises
    ------
    ParameterError
        An index out of range, or a file that is not among the scanned images.
    """
    if reference is None:
        return 0
    if isinstance(reference, int) or (isinstance(reference, str) and reference.isdigit()):
        index = int(reference)
        if not 0 <= index < len(names):
            raise ParameterError("reference", f"{index}: out of range (0..{len(names) - 1})")
        return index
    ref = os.fspath(reference)
    for i, (name, path) in enumerate(zip(names, paths)):
        # A video's frame is read through a reference object; its text is path#frame=N.
        text = str(path)
        if ref in (name, text) or os.path.abspath(ref) == os.path.abspath(text):
            return i
    raise ParameterError("reference", f"{ref}: not among the scanned images or video frames")
