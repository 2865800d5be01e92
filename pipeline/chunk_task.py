"""The task that runs one standalone chunk, on the CPU or within a GPU's budget.

On a GPU the chunk runs on this thread's CUDA stream within the device memory budget;
out of memory halves the chunk and retries, down to one frame, whose comparisons then
run on the CPU (noted in their rows and counted in the summary).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from framediff import kernels as K

from .gpu import device_budget, is_out_of_memory, release_pool, task_stream
from .plan import Chunk

__all__ = ["GPU_FALLBACK_NOTE", "run_chunk"]

#: Note on rows computed on the CPU because the GPU ran out of memory.
GPU_FALLBACK_NOTE = "computed on CPU: GPU out of memory"


def run_chunk(chunk: Chunk, spec, device: str, shared=None) -> pa.Table:
    """Run one chunk of a standalone mode and return its Arrow table.

    Parameters
    ----------
    chunk : Chunk
    spec : ScanSpec
        Carries the mode whose :meth:`~framediff.modes.Mode.run` does the work.
    device : {'cpu', 'gpu'}
        The resolved backend.
    shared : optional
        What every task of the run shares (the prepared reference frame).
    """
    xp = K.resolve_device(device)
    if xp is np:
        return spec.mode.run(chunk, spec, xp, shared)
    device_budget(spec.gpu_memory)
    stream = task_stream()
    with stream:
        table = _run_with_backoff(chunk, spec, xp, shared)
    stream.synchronize()
    return table


def _halves(chunk: Chunk):
    for name in ("targets", "pairs"):
        items = getattr(chunk, name)
        if len(items) > 1:
            mid = len(items) // 2
            return [
                dataclasses.replace(chunk, **{name: items[:mid]}),
                dataclasses.replace(chunk, **{name: items[mid:]}),
            ]
    return None


def _run_with_backoff(chunk: Chunk, spec, xp, shared):
    try:
        return spec.mode.run(chunk, spec, xp, shared)
    except Exception as exc:
        if not is_out_of_memory(exc):
            raise
    release_pool()
    parts = _halves(chunk)
    if parts is not None:
        return pa.concat_tables([_run_with_backoff(p, spec, xp, shared) for p in parts])
    host_shared = shared.on_host() if hasattr(shared, "on_host") else shared
    table = spec.mode.run(chunk, spec, np, host_shared)
    pos = table.schema.get_field_index("note")
    notes = pc.fill_null(table.column("note"), GPU_FALLBACK_NOTE)
    return table.set_column(pos, table.schema.field(pos), notes)
