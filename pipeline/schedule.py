"""Running a scan's chunks with Dask, a bounded window at a time, results in order.

Local schedulers (threads, processes, synchronous) compute a window of tasks per
``dask.compute`` call with one persistent worker pool, so memory stays bounded and the
process pool is not restarted per window. A ``tcp://`` address (or a
``distributed.Client``) submits through dask.distributed with a bounded number of tasks
in flight. Either way the mode says how its chunks run (:class:`~framediff.modes.Route`):
standalone tasks, or a chain of parallel ``prepare`` tasks linked in order by small
``link`` tasks that pass a state along; the chain loop below serves both kinds of
scheduler. Results reach ``on_table`` in chunk order.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import itertools
import multiprocessing
import os
from contextlib import contextmanager
from typing import NamedTuple

import pyarrow as pa

from .chunk_task import run_chunk
from .cluster import check_address, open_cluster
from .errors import ParameterError
from .modes import Route

__all__ = ["SCHEDULERS", "execute", "is_distributed"]

SCHEDULERS = ("threads", "processes", "synchronous")


def is_distributed(scheduler) -> bool:
    """True for a ``tcp://``-style address or a ``distributed.Client``."""
    return (isinstance(scheduler, str) and "://" in scheduler) or hasattr(scheduler, "submit")


def check_scheduler(scheduler) -> None:
    """Raise :class:`ParameterError` unless ``scheduler`` names a usable scheduler."""
    if not (is_distributed(scheduler) or scheduler in SCHEDULERS):
        raise ParameterError(
            "scheduler", f": unknown scheduler {scheduler!r}; choose threads, processes, synchronous or tcp://host:port"
        )
    if isinstance(scheduler, str) and "://" in scheduler:
        check_address(scheduler, "scheduler")


def execute(
    chunks, spec, *, scheduler="threads", workers=None, device="cpu", on_table, shared_frame=None, initial_state=None
):
    """Run every chunk and pass ``(chunk, table, state)`` to ``on_table`` in chunk order.

    Parameters
    ----------
    chunks : iterable of Chunk
    spec : ScanSpec
        Its mode decides the route its chunks take.
    scheduler : {'threads', 'processes', 'synchronous'}, ``tcp://host:port`` or Client
    workers : int, optional
        Local worker count (default: CPU count).
    device : str
        Resolved device name each task uses ('cpu' or 'gpu').
    on_table : callable
        Called with ``(Chunk, pyarrow.Table, state)`` for each chunk, in chunk order;
        ``state`` is what a chain hands to the next chunk (else None).
    shared_frame : (int, str), optional
        A frame every task compares with (the reference), prepared once.
    initial_state : optional
        The chain state the first chunk starts from (a resumed run).
    """
    check_scheduler(scheduler)
    workers = workers or os.cpu_count() or 1
    mode = spec.mode
    distributed = is_distributed(scheduler)
    window = max(2, mode.tasks_per_worker * workers)
    with _DistributedRunner.open(scheduler) if distributed else _LocalRunner.open(scheduler, workers) as runner:
        shared = None
        if shared_frame is not None:
            shared = runner.shared(mode.prepare_shared, *shared_frame, spec, device)
        if mode.route(distributed=distributed, device=device) == Route.CHAIN:
            _run_chain(runner, chunks, spec, device, window, initial_state, on_table)
        else:
            runner.run_standalone(chunks, spec, device, shared, window, on_table)


@contextmanager
def _single_blas_thread():
    """Hold BLAS libraries to one thread each while the block runs, then restore them.

    The workers already use every core, one task each; a BLAS call inside a task (the
    thumbnails' small matrix products) that wakes its own threads as well oversubscribes
    the cores, and on a busy machine each wake-up waits for a time slice: measured 5x
    slower signatures on a loaded 2-core machine. dask.distributed's nanny sets the
    same limit in its workers' environment.
    """
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        yield


def _single_blas_thread_for_life():
    """Pool initializer: this worker process keeps BLAS to one thread for its life."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")


def _windows(iterable, size):
    it = iter(iterable)
    while window := list(itertools.islice(it, size)):
        yield window


def _second(pair):
    return pair[1]


def _run_chain(runner, chunks, spec, device, window, state, on_table):
    """Prepare a window of chunks in parallel; link them in order, passing the state."""
    mode = spec.mode
    for part in _windows(chunks, window):
        outs, link = [], state
        for chunk in part:
            prepared = runner.submit(mode.prepare, chunk, spec, device)
            out = runner.submit(mode.link, chunk, spec, prepared, link, device)
            outs.append(out)
            link = runner.submit(_second, out)
        for chunk, (table, state) in zip(part, runner.gather(outs)):
            on_table(chunk, table, state)


class _Call(NamedTuple):
    """A task not run yet: ``fn(*args)``, where an argument may be another call."""

    fn: object
    args: tuple


def _run_here(call: _Call, done: dict):
    """Run a call and the calls it takes, each once, in this thread."""
    if id(call) not in done:
        args = [_run_here(a, done) if isinstance(a, _Call) else a for a in call.args]
        done[id(call)] = call.fn(*args)
    return done[id(call)]


def _as_delayed(call: _Call, made: dict):
    """The same graph as dask delayed objects (a call shared by two tasks stays one task)."""
    if id(call) not in made:
        from dask import delayed

        args = [_as_delayed(a, made) if isinstance(a, _Call) else a for a in call.args]
        made[id(call)] = delayed(call.fn)(*args)
    return made[id(call)]


class _LocalRunner:
    """Dask's local schedulers over one worker pool kept for the whole run."""

    def __init__(self, scheduler: str, pool):
        self.scheduler = scheduler
        self.pool = pool

    @classmethod
    @contextmanager
    def open(cls, scheduler: str, workers: int):
        if scheduler == "processes":
            # One pool for the whole run; 'spawn' avoids forking a threaded parent.
            ctx = multiprocessing.get_context("spawn")
            with concurrent.futures.ProcessPoolExecutor(
                max_workers=workers, mp_context=ctx, initializer=_single_blas_thread_for_life
            ) as pool:
                yield cls(scheduler, pool)
        elif scheduler == "threads":
            with _single_blas_thread(), concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
                yield cls(scheduler, pool)
        else:
            with _single_blas_thread():
                yield cls(scheduler, None)

    def submit(self, fn, *args):
        return _Call(fn, args)

    def gather(self, tasks) -> list:
        if self.scheduler == "synchronous" or (self.scheduler == "threads" and len(tasks) == 1):
            # In this thread, without dask: a small scan (one chunk) does not pay for it.
            done = {}
            return [_run_here(task, done) for task in tasks]
        import dask
        from dask.multiprocessing import get as multiprocessing_get
        from dask.threaded import get as threaded_get

        # The scheduler's own get function: a name would make dask import distributed
        # only to find that no client is running.
        get = threaded_get if self.scheduler == "threads" else multiprocessing_get
        made = {}
        return list(dask.compute(*(_as_delayed(task, made) for task in tasks), scheduler=get, pool=self.pool))

    def shared(self, fn, *args):
        (value,) = self.gather([self.submit(fn, *args)])
        return value

    def run_standalone(self, chunks, spec, device, shared, window, on_table):
        for part in _windows(chunks, window):
            tables = self.gather([self.submit(run_chunk, c, spec, device, shared) for c in part])
            for chunk, table in zip(part, tables):
                on_table(chunk, table, None)


class _DistributedRunner:
    """dask.distributed: a bounded number of futures in flight, crash isolation."""

    def __init__(self, client):
        self.client = client

    @classmethod
    @contextmanager
    def open(cls, scheduler):
        if hasattr(scheduler, "submit"):  # a given Client, as is
            yield cls(scheduler)
            return
        with open_cluster({"scheduler": scheduler}) as client:  # joined the way the CLI joins one
            yield cls(client)

    def submit(self, fn, *args):
        return self.client.submit(fn, *args, pure=False)

    def gather(self, futures) -> list:
        return [f.result() for f in futures]

    def shared(self, fn, *args):
        value = self.submit(fn, *args).result()
        return self.client.scatter(value, broadcast=True)

    def run_standalone(self, chunks, spec, device, shared, window, on_table):
        from distributed import as_completed

        pending, in_flight = {}, {}
        order = itertools.count()
        next_seq = 0
        it = iter(chunks)
        running = as_completed()

        def submit(chunk):
            fut = self.submit(run_chunk, chunk, spec, device, shared)
            in_flight[fut.key] = (next(order), chunk)
            running.add(fut)

        for chunk in itertools.islice(it, window):
            submit(chunk)
        for fut in running:
            seq, chunk = in_flight.pop(fut.key)
            try:
                table = fut.result()
            except Exception as exc:
                if not _is_worker_crash(exc):
                    raise
                table = self._isolate_crash(chunk, spec, device, shared)
            pending[seq] = (chunk, table)
            fut.release()
            while next_seq in pending:
                on_table(*pending.pop(next_seq), None)
                next_seq += 1
            nxt = next(it, None)
            if nxt is not None:
                submit(nxt)

    def _isolate_crash(self, chunk, spec, device, shared):
        """Re-run a chunk whose task kept killing workers, one target at a time.

        A target whose own task still kills its worker is a file that crashes the
        decoder: it becomes a ``worker-crash`` error row, and later targets treat it as
        unreadable (a consecutive comparison then looks further back), so the run
        completes.
        """
        crashed = set(chunk.skip)
        tables = []
        singles = [((t,), ()) for t in chunk.targets] or [((), (p,)) for p in chunk.pairs]
        for targets, pairs in singles:
            sub = dataclasses.replace(chunk, targets=targets, pairs=pairs, skip=frozenset(crashed))
            try:
                tables.append(self.client.submit(run_chunk, sub, spec, device, shared, pure=False, retries=0).result())
            except Exception as exc:
                if not _is_worker_crash(exc):
                    raise
                crashed.add(targets[0] if targets else pairs[0][2])
                sub = dataclasses.replace(sub, skip=frozenset(crashed))
                tables.append(self.submit(run_chunk, sub, spec, device, shared).result())
        return pa.concat_tables(tables)


def _is_worker_crash(exc) -> bool:
    from distributed.scheduler import KilledWorker

    return isinstance(exc, KilledWorker)
