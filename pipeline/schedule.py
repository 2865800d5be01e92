"""Running chunk tasks with Dask, a bounded window at a time, results in order.

Local schedulers (threads, processes, synchronous) compute a window of tasks per
``dask.compute`` call with one persistent worker pool, so memory stays bounded and
the process pool is not restarted per window. A ``tcp://`` address (or a
``distributed.Client``) submits through dask.distributed with a bounded number of
tasks in flight. Results are handed to ``on_table`` in chunk order either way.
"""

from __future__ import annotations

import concurrent.futures
import itertools
import multiprocessing
import os
from contextlib import contextmanager

import dask
from dask import delayed

from .errors import FramediffError
from .tasks import (
    MAX_LOOKBACK,
    background_chain,
    consecutive_edge,
    consecutive_inner,
    decode_chunk,
    keyframe_chain,
    last_readable_before,
    prepare_reference,
    run_chunk,
)

#: Modes whose comparisons depend on the previous frames' outcome: decoded in
#: parallel, then measured by a chain of tasks passing a small state along.
_CHAINS = {"keyframes": keyframe_chain, "background": background_chain}

__all__ = ["SCHEDULERS", "execute"]

SCHEDULERS = ("threads", "processes", "synchronous")


def _is_address(scheduler) -> bool:
    return isinstance(scheduler, str) and "://" in scheduler


@contextmanager
def _local_pool(scheduler: str, workers: int):
    if scheduler == "processes":
        # One pool for the whole run; 'spawn' avoids forking a threaded parent.
        ctx = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
            yield pool
    elif scheduler == "threads":
        with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
            yield pool
    else:
        yield None


@contextmanager
def _client(scheduler):
    """A given Client as is; an address joined the way the CLI joins one."""
    if hasattr(scheduler, "submit"):
        yield scheduler
        return
    from .cluster import open_cluster

    with open_cluster({"scheduler": scheduler}) as client:
        yield client


def _compute_local(tasks, scheduler, pool):
    if scheduler == "synchronous":
        return dask.compute(*tasks, scheduler="synchronous")
    return dask.compute(*tasks, scheduler=scheduler, pool=pool)


def _windows(iterable, size):
    it = iter(iterable)
    while True:
        window = list(itertools.islice(it, size))
        if not window:
            return
        yield window


def execute(
    chunks, spec, *, scheduler="threads", workers=None, device="cpu", on_table, reference=None, initial_state=None
):
    """Run every chunk and pass ``(chunk, table, state)`` to ``on_table`` in chunk order.

    Parameters
    ----------
    chunks : iterable of Chunk
    spec : ScanSpec
    scheduler : {'threads', 'processes', 'synchronous'}, ``tcp://host:port`` or Client
    workers : int, optional
        Local worker count (default: CPU count).
    device : str
        Resolved device name each task uses ('cpu' or 'gpu').
    on_table : callable
        Called with ``(Chunk, pyarrow.Table, state)`` for each chunk, in chunk order;
        ``state`` is what a chain mode hands to the next chunk (else None).
    reference : (int, str), optional
        Reference frame index and path (reference mode).
    initial_state : optional
        The chain state the first chunk starts from (a resumed run).
    """
    workers = workers or os.cpu_count() or 1
    if not (_is_address(scheduler) or scheduler in SCHEDULERS or hasattr(scheduler, "submit")):
        raise FramediffError(
            f"unknown scheduler {scheduler!r}; choose threads, processes, synchronous or tcp://host:port"
        )
    # Chains keep each chunk's state until written: a smaller window bounds that memory.
    window = max(2, (2 if spec.mode in _CHAINS else 4) * workers)
    if _is_address(scheduler) or hasattr(scheduler, "submit"):
        with _client(scheduler) as client:
            _run_distributed(client, chunks, spec, device, on_table, reference, window, initial_state)
        return
    with _local_pool(scheduler, workers) as pool:
        ref = None
        if reference is not None:
            (ref,) = _compute_local([delayed(prepare_reference)(*reference, spec, device)], scheduler, pool)
        if spec.mode in _CHAINS:
            chain = _CHAINS[spec.mode]
            state = initial_state
            for part in _windows(chunks, window):
                decoded = [delayed(decode_chunk)(c, spec, device) for c in part]
                outs = []
                link = state
                for c, frames in zip(part, decoded):
                    out = delayed(chain, nout=2)(c, spec, frames, link)
                    outs.append(out)
                    link = out[1]
                results = _compute_local(outs, scheduler, pool)
                for c, (table, state) in zip(part, results):
                    on_table(c, table, state)
            return
        if spec.mode == "consecutive" and device == "cpu":
            _consecutive_local(chunks, spec, device, on_table, scheduler, pool, window)
            return
        for part in _windows(chunks, window):
            tasks = [delayed(run_chunk)(c, spec, device, ref) for c in part]
            for c, table in zip(part, _compute_local(tasks, scheduler, pool)):
                on_table(c, table, None)


def _consecutive_local(chunks, spec, device, on_table, scheduler, pool, window):
    """Consecutive chunks with every frame decoded once.

    Each chunk's task decodes only its own frames and measures the pairs inside it; a
    small task per chunk then compares the chunk's first readable frame with the last
    readable frame of the chunks before it (handed over as one prepared frame). Only the
    first chunk of a resumed run, whose predecessor is not recomputed, decodes a frame
    before it.
    """
    history = []  # (first frame, last frame, last readable frame) of earlier chunks, in order
    for part in _windows(chunks, window):
        inner = {c.number: delayed(consecutive_inner, nout=3)(c, spec, device) for c in part}
        tables, pending = [], []  # pending: history positions whose frame is computed now
        for c in part:
            start = c.targets[0]
            if start > 0 and (not history or history[-1][1] != start - 1):
                # The chunks before this one are not recomputed (a resumed run): find the
                # last readable frame before it once, standing in for them.
                history.append((max(0, start - MAX_LOOKBACK), start - 1, delayed(last_readable_before)(c, start, spec, device)))
                pending.append(len(history) - 1)
            reach = start - MAX_LOOKBACK
            previous = [last for first, end, last in reversed(history) if end >= reach]
            tables.append(delayed(consecutive_edge)(inner[c.number], previous, spec, device))
            history.append((start, c.targets[-1], inner[c.number][2]))
            pending.append(len(history) - 1)
        results = _compute_local(tables + [history[i][2] for i in pending], scheduler, pool)
        n = len(part)
        for c, table in zip(part, results[:n]):
            on_table(c, table, None)
        for i, value in zip(pending, results[n:]):
            history[i] = (history[i][0], history[i][1], value)
        if part:  # keep only what the next window can reach
            horizon = part[-1].targets[-1] + 1 - MAX_LOOKBACK
            history = [h for h in history if h[1] >= horizon - 1]


def _second(pair):
    return pair[1]


def _run_distributed(client, chunks, spec, device, on_table, reference, window, initial_state=None):
    from distributed import as_completed

    ref = None
    if reference is not None:
        ref = client.submit(prepare_reference, *reference, spec, device, pure=False).result()
        ref = client.scatter(ref, broadcast=True)
    if spec.mode in _CHAINS:
        chain = _CHAINS[spec.mode]
        state = initial_state
        for part in _windows(chunks, window):
            decoded = [client.submit(decode_chunk, c, spec, device, pure=False) for c in part]
            link = state
            results = []
            for c, frames in zip(part, decoded):
                out = client.submit(chain, c, spec, frames, link, pure=False)
                results.append(out)
                link = client.submit(_second, out, pure=False)
            for c, fut in zip(part, results):
                table, state = fut.result()
                on_table(c, table, state)
        return
    pending = {}
    in_flight = {}
    order = itertools.count()
    next_seq = 0
    it = iter(chunks)
    running = as_completed()

    def submit(c):
        fut = client.submit(run_chunk, c, spec, device, ref, pure=False)
        in_flight[fut.key] = (next(order), c)
        running.add(fut)

    for c in itertools.islice(it, window):
        submit(c)
    for fut in running:
        seq, c = in_flight.pop(fut.key)
        try:
            table = fut.result()
        except Exception as exc:
            if not _is_worker_crash(exc):
                raise
            table = _isolate_crash(client, c, spec, device, ref)
        pending[seq] = (c, table)
        fut.release()
        while next_seq in pending:
            on_table(*pending.pop(next_seq), None)
            next_seq += 1
        nxt = next(it, None)
        if nxt is not None:
            submit(nxt)


def _is_worker_crash(exc) -> bool:
    from distributed.scheduler import KilledWorker

    return isinstance(exc, KilledWorker)


def _isolate_crash(client, chunk, spec, device, ref):
    """Re-run a chunk whose task kept killing workers, one target at a time.

    A target whose own task still kills its worker is a file that crashes the decoder:
    it becomes a ``worker-crash`` error row, and later targets treat it as unreadable
    (a consecutive comparison then looks further back), so the run completes.
    """
    import dataclasses

    import pyarrow as pa

    crashed = set(chunk.skip)
    tables = []
    singles = [((t,), ()) for t in chunk.targets] or [((), (p,)) for p in chunk.pairs]
    for targets, pairs in singles:
        sub = dataclasses.replace(chunk, targets=targets, pairs=pairs, skip=frozenset(crashed))
        try:
            tables.append(client.submit(run_chunk, sub, spec, device, ref, pure=False, retries=0).result())
        except Exception as exc:
            if not _is_worker_crash(exc):
                raise
            bad = targets[0] if targets else pairs[0][2]
            crashed.add(bad)
            sub = dataclasses.replace(sub, skip=frozenset(crashed))
            tables.append(client.submit(run_chunk, sub, spec, device, ref, pure=False).result())
    return pa.concat_tables(tables)
