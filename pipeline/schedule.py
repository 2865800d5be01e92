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
from .tasks import background_chain, decode_chunk, keyframe_chain, prepare_reference, run_chunk

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
    from distributed import Client

    if isinstance(scheduler, Client):
        yield scheduler
        return
    try:
        client = Client(scheduler, timeout="20s")
    except OSError as exc:
        raise FramediffError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from None
    try:
        yield client
    finally:
        client.close()


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


def execute(chunks, spec, *, scheduler="threads", workers=None, device="cpu", on_table, reference=None):
    """Run every chunk and pass ``(chunk_number, table)`` to ``on_table`` in order.

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
        Called with ``(chunk_number, pyarrow.Table)`` for each chunk, in chunk order.
    reference : (int, str), optional
        Reference frame index and path (reference mode).
    """
    workers = workers or os.cpu_count() or 1
    if not (_is_address(scheduler) or scheduler in SCHEDULERS or hasattr(scheduler, "submit")):
        raise FramediffError(
            f"unknown scheduler {scheduler!r}; choose threads, processes, synchronous or tcp://host:port"
        )
    window = max(2, 4 * workers)
    if _is_address(scheduler) or hasattr(scheduler, "submit"):
        with _client(scheduler) as client:
            _run_distributed(client, chunks, spec, device, on_table, reference, window)
        return
    with _local_pool(scheduler, workers) as pool:
        ref = None
        if reference is not None:
            (ref,) = _compute_local([delayed(prepare_reference)(*reference, spec, device)], scheduler, pool)
        if spec.mode in _CHAINS:
            chain = _CHAINS[spec.mode]
            state = None
            for part in _windows(chunks, window):
                decoded = [delayed(decode_chunk)(c, spec, device) for c in part]
                tasks = []
                link = state
                for c, frames in zip(part, decoded):
                    out = delayed(chain, nout=2)(c, spec, frames, link)
                    tasks.append(out[0])
                    link = out[1]
                *tables, state = _compute_local(tasks + [link], scheduler, pool)
                for c, table in zip(part, tables):
                    on_table(c.number, table)
            return
        for part in _windows(chunks, window):
            tasks = [delayed(run_chunk)(c, spec, device, ref) for c in part]
            for c, table in zip(part, _compute_local(tasks, scheduler, pool)):
                on_table(c.number, table)


def _run_distributed(client, chunks, spec, device, on_table, reference, window):
    from distributed import as_completed

    ref = None
    if reference is not None:
        ref = client.submit(prepare_reference, *reference, spec, device, pure=False).result()
        ref = client.scatter(ref, broadcast=True)
    if spec.mode in _CHAINS:
        chain = _CHAINS[spec.mode]
        state = None
        for part in _windows(chunks, window):
            decoded = [client.submit(decode_chunk, c, spec, device, pure=False) for c in part]
            link = state
            results = []
            for c, frames in zip(part, decoded):
                out = client.submit(chain, c, spec, frames, link, pure=False)
                results.append(out)
                link = client.submit(lambda pair: pair[1], out, pure=False)
            for c, fut in zip(part, results):
                table, _ = fut.result()
                on_table(c.number, table)
            state = link.result()
        return
    pending = {}
    next_number = 0
    it = iter(chunks)
    running = as_completed()
    for c in itertools.islice(it, window):
        running.add(client.submit(run_chunk, c, spec, device, ref, pure=False, key=f"framediff-chunk-{c.number}-{id(it)}"))
    for fut in running:
        number = int(fut.key.split("-")[2])
        pending[number] = fut.result()
        fut.release()
        while next_number in pending:
            on_table(next_number, pending.pop(next_number))
            next_number += 1
        nxt = next(it, None)
        if nxt is not None:
            running.add(
                client.submit(run_chunk, nxt, spec, device, ref, pure=False, key=f"framediff-chunk-{nxt.number}-{id(it)}")
            )
