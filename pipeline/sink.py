"""The write path of a scan: rows arrive as tasks finish and leave as a report.

Tables of chunks come in chunk order → (with an output) the run folder records each
one, the resume point → the neighbour rule relabels frames unlike both neighbours →
events are grouped and counts kept → the report writer appends them (temporary file,
renamed when complete).
"""

from __future__ import annotations

from collections import Counter

import pyarrow as pa
import pyarrow.compute as pc

from .chunk_task import GPU_FALLBACK_NOTE
from .decide import DecisionStage
from .errors import FramediffError
from .manifest import RunFolder
from .metrics import HIGHER_IS_SIMILAR
from .modes.keyframes import BYTE_IDENTICAL_NOTE
from .report import EventGrouper, ReportWriter, format_for
from .rows import report_schema

__all__ = ["ReportSink", "StrictStop", "decision_stage"]


class StrictStop(FramediffError):
    """``strict=True``: the first input that could not be read stops the scan."""


class ReportSink:
    """Receives each chunk's table in order; writes, counts and groups its rows.

    Parameters
    ----------
    request : ScanRequest
    spec : ScanSpec
    local_output : Path or None
        Where the report is written on this machine (a staging copy for a URL).
    identity : dict
        What a resumed run must match (see :class:`~framediff.manifest.RunFolder`).
    metadata : dict
        Written into the report.
    columns : dict of str -> pyarrow.Array, or None
        Columns known to the driver only, by frame index, filled in per frame ``b``:
        capture times (``time_b``) when the inputs were ordered by them; a video's
        ``frame``, ``pts`` and ``time_b``.
    """

    def __init__(self, request, spec, local_output, identity, metadata, columns=None):
        self.request = request
        self.spec = spec
        self.columns = columns or {}
        self.counts = Counter()
        self.errors_by_kind = Counter()
        self.kept: list[int] = []
        self.tables: list[pa.Table] = []
        primary = spec.thresholds.primary or _peak_metric(spec)
        self.grouper = EventGrouper(
            primary,
            min_length=request.event_min_length,
            max_gap=request.event_gap,
            similarity=primary in HIGHER_IS_SIMILAR,
        )
        self.decisions = decision_stage(spec)
        self._held = None  # the last decided table, written when the next one comes
        self._stripe, self._stripe_tables = None, []
        self.writer = self.run = None
        if local_output is not None:
            fmt = format_for(local_output, request.format)
            schema = report_schema(spec.schema)
            self.writer = ReportWriter(
                local_output, fmt, schema, metadata, partitioned=request.partitioned, overwrite=request.overwrite
            )
            self.run = RunFolder(local_output, identity, resume=request.resume, overwrite=request.overwrite)

    # -- before the run ---------------------------------------------------------------

    def pending(self, chunks):
        """The planned chunks this run still has to compute (all, unless resumed)."""
        if self.run is None:
            return chunks
        if self.spec.mode.resumes_from_state:
            # A chain resumes after its complete prefix, from the state recorded there.
            first = self.run.resumable_prefix()
            self.run.completed = {k: v for k, v in self.run.completed.items() if k < first}
        done = set(self.run.completed)
        return (c for c in chunks if c.number not in done)

    def initial_state(self, inputs, device: str):
        """The chain state a resumed run starts from (None for a fresh run)."""
        if self.run is None or not self.spec.mode.resumes_from_state or not self.run.completed:
            return None
        saved = self.run.state_after(max(self.run.completed))
        return None if saved is None else self.spec.mode.load_state(*saved, inputs, self.spec, device)

    # -- while it runs --------------------------------------------------------------------

    def on_table(self, chunk, table: pa.Table, state) -> None:
        """One finished chunk, in chunk order (what the scheduler calls)."""
        if self.request.strict:
            _check_strict(table)
        if self.run is None:
            self._assemble(chunk.stripe, table)
            return
        mode = self.spec.mode
        record = mode.dump_state(state) if state is not None and mode.resumes_from_state else None
        self.run.record(chunk.number, table, record, stripe=chunk.stripe)
        self._progress(table.num_rows)

    def _assemble(self, stripe, table: pa.Table) -> None:
        """Rows of one chunk, in chunk order, towards the report."""
        if stripe is None:
            self._decide(table)
            return
        # All-pairs blocks interleave pair numbers: emit each block row sorted, so the
        # report is in pair order whatever the block size (memory: one block row).
        if stripe != self._stripe:
            self._flush_stripe()
            self._stripe = stripe
        self._stripe_tables.append(table)

    def _flush_stripe(self) -> None:
        if self._stripe_tables:
            self._decide(pa.concat_tables(self._stripe_tables).sort_by("pair"))
        self._stripe_tables = []

    def _decide(self, table: pa.Table) -> None:
        if self.decisions is None:
            self._emit(table.select(report_schema(table.schema).names))
            return
        decided = self.decisions.feed(table)
        if decided.num_rows:
            # One table behind: what the stage still holds at the end joins the last
            # one, so a partitioned report keeps one part per chunk.
            if self._held is not None:
                self._emit(self._held)
            self._held = decided

    def _emit(self, table: pa.Table) -> None:
        if self.columns:  # per frame b, known to the driver only
            index_b = pc.fill_null(table.column("index_b"), 0)
            for name, values in self.columns.items():
                pos = table.schema.get_field_index(name)
                table = table.set_column(pos, table.schema.field(pos), values.take(index_b))
        self._count(table)
        self.grouper.feed(table)
        if self.writer is not None:
            self.writer.write(table)
        if self.request.collect:
            self.tables.append(table)
        if self.run is None:
            self._progress(table.num_rows)

    def _count(self, table: pa.Table) -> None:
        counts = self.counts
        counts["rows"] += table.num_rows
        status = table.column("status").to_pylist()
        counts["ok"] += status.count("ok")
        counts["errors"] += status.count("error")
        counts["changed"] += sum(1 for v in table.column("changed").to_pylist() if v)
        notes = table.column("note").to_pylist()
        counts["gpu_fallback"] += notes.count(GPU_FALLBACK_NOTE)
        counts["byte_identical"] += notes.count(BYTE_IDENTICAL_NOTE)
        self.errors_by_kind.update(k for k in table.column("error_kind").to_pylist() if k is not None)
        if "kept" in table.column_names:
            self.kept.extend(
                i for i, k in zip(table.column("index_b").to_pylist(), table.column("kept").to_pylist()) if k
            )

    def _progress(self, rows: int) -> None:
        if self.request.progress is not None:
            self.request.progress.update(rows)

    # -- after it -------------------------------------------------------------------------

    def close(self):
        """Emit what is held back, finish the report; returns its local path (or None)."""
        if self.run is not None:
            for number in sorted(self.run.completed):
                entry = self.run.completed[number]
                self._assemble(entry.get("stripe"), self.run.read(number).cast(self.spec.schema))
        self._flush_stripe()
        if self.decisions is not None:
            rest = self.decisions.finish()
            if rest.num_rows:
                self._held = rest if self._held is None else pa.concat_tables([self._held, rest])
            if self._held is not None:
                self._emit(self._held)
                self._held = None
        path = self.writer.close() if self.writer is not None else None
        if self.run is not None:
            self.run.remove()
        return path

    def abort(self) -> None:
        """Remove the temporary report of a run that did not finish (the run folder stays)."""
        if self.writer is not None:
            self.writer.abort()


#: Metrics an event reports its peak of when no threshold names one, by preference.
_PEAK_METRICS = ("l1_per_pixel", "l0_fraction", "mse", "kl", "ssim", "foreground_fraction")


def _peak_metric(spec) -> str | None:
    """The metric events peak on without thresholds: a plain, always-present one."""
    names = set(spec.schema.names)
    return next((m for m in _PEAK_METRICS if m in names), None)


def decision_stage(spec) -> DecisionStage | None:
    """The stage that decides ``changed`` and ``change_kind`` for the mode (or None)."""
    if not spec.mode.decides_in_sink:
        return None
    return DecisionStage(
        sensitivity=spec.sensitivity,
        thresholds=spec.thresholds.as_dict(),
        sequence=spec.mode.sequential_rows,
        registered=spec.options.align,
    )


def _check_strict(table: pa.Table) -> None:
    for kind, path, reason in zip(
        table.column("error_kind").to_pylist(), table.column("path_b").to_pylist(), table.column("error").to_pylist()
    ):
        if kind is not None:
            raise StrictStop(f"strict=True: stopped at the first failure: {path}: {reason} [{kind}]")
