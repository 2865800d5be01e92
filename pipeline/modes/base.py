"""The one protocol every scan mode implements.

A mode says which chunks it plans, what a task does on a chunk, whether chunks pass
state along (a chain), its own report columns, its default thresholds and what it
resumes from. Planning, scheduling and writing ask the mode; nothing else tests a
mode's name. Modes are stateless singletons: a task receives one inside its
:class:`~framediff.spec.ScanSpec`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from ..plan import Chunk
from ..video_inputs import chunk_ranges

__all__ = ["Inputs", "Mode", "Route", "device_name"]


@dataclass(frozen=True)
class Inputs:
    """The scan's frames, as discovered and resolved against the request.

    Attributes
    ----------
    names : tuple of str
        Report path of every frame (relative to the input root).
    paths : tuple of str
        Path (or URL) to read each frame from.
    reference : int or None
        Frame index of the reference, for modes that compare against one.
    pairs : list of (int, int) or None
        Explicit pairs, for modes that compare listed pairs.
    sequences : tuple of Sequence
        Runs of inputs compared in order (each video, each run of images between
        videos); empty means one sequence of every input. See
        :mod:`framediff.video_inputs`.
    context : object or None
        What the mode's :meth:`Mode.before_plan` pass found, for its planning and
        :meth:`Mode.finish` (stays on the client; tasks never receive it).
    """

    names: tuple
    paths: tuple
    reference: int | None = None
    pairs: list | None = None
    sequences: tuple = ()
    context: object = None

    @property
    def starts(self) -> tuple:
        """First input of each sequence."""
        return tuple(seq.start for seq in self.sequences)

    def ranges(self, chunk_size: int):
        """``(start, end)`` of each chunk of inputs: within one sequence, at a video's keyframes."""
        return chunk_ranges(len(self.paths), chunk_size, self.sequences)


def device_name(xp) -> str:
    """'cpu' for NumPy, 'gpu' for CuPy: how tasks name the backend they run on."""
    return "cpu" if xp is np else "gpu"


class Route:
    """How the scheduler runs a mode's chunks (see :meth:`Mode.route`)."""

    #: Each chunk is one self-contained task (:meth:`Mode.run`).
    STANDALONE = "standalone"
    #: Chunks are prepared in parallel (:meth:`Mode.prepare`), then linked in order
    #: by a small task that passes a state to the next chunk (:meth:`Mode.link`).
    CHAIN = "chain"


class Mode:
    """Base class of scan modes; subclasses override what differs.

    Attributes
    ----------
    name : str
        The mode's name on the command line and in reports.
    measures_pairs : bool
        Rows hold pair metrics (False: the mode measures single frames).
    labels_changes : bool
        Rows carry a ``change_kind`` (when the options ask for it).
    value_columns, outcome_columns : list of (str, pyarrow.DataType)
        The mode's own report columns, before and after the outcome columns.
    needs_threshold : bool
        A scan in this mode cannot run without a threshold.
    keeps_frames : bool
        The mode keeps frames (the ``kept`` column; keep-lists follow it).
    resumes_from_state : bool
        A resumed run continues after the complete prefix of chunks, from the chain
        state recorded there (otherwise any completed chunk is skipped).
    uses_reference, uses_pair_list : bool
        Whether ``reference`` / ``pair_list`` mean anything in this mode.
    uses_index : bool
        Whether the duplicate-index options (``index``, ``update``, ``keep_rule``,
        ``radius``) mean anything in this mode.
    rows_follow_frames : bool
        One row per frame ``b`` in frame order (plots use the frame index as their
        axis); False when rows are arbitrary pairs.
    """

    name = ""
    measures_pairs = True
    labels_changes = True
    value_columns: list = []
    outcome_columns: list = []
    needs_threshold = False
    keeps_frames = False
    resumes_from_state = False
    uses_reference = False
    uses_pair_list = False
    uses_index = False
    rows_follow_frames = True
    #: The report's decision stage (:class:`~framediff.decide.DecisionStage`) sets
    #: ``changed`` and ``change_kind`` from the features the tasks measured; False for
    #: modes that decide inside their chain (keyframes) or by their own measure.
    decides_in_sink = True
    #: Chunks in flight per worker (chains, which hold each chunk's frames until it is
    #: written, keep fewer).
    tasks_per_worker = 4
    #: Thresholds used when none are given. Pair modes have none: the decision stage
    #: (:mod:`framediff.decide`) sets ``changed`` above each sequence's own noise floor;
    #: the classic rule stays one option away (``thresholds={'kl': 0.2}``).
    default_thresholds: dict = {}

    def __repr__(self) -> str:
        return f"<mode {self.name}>"

    # -- planning -------------------------------------------------------------------

    def threshold_metrics(self, options) -> tuple:
        """The metrics a threshold may name in this mode."""
        return options.metrics

    def check_options(self, options) -> None:
        """Refuse measurement options this mode cannot honour (it never ignores one)."""

    def plan(self, inputs: Inputs, chunk_size: int) -> Iterator[Chunk]:
        """Yield the chunks of a scan, lazily (a plan can be large)."""
        raise TypeError(f"{self.name} mode plans no chunks")

    def expected_rows(self, n_inputs: int) -> int:
        """Rows a scan of ``n_inputs`` frames produces (for progress displays)."""
        return max(n_inputs - 1, 0)

    def shared_frame(self, inputs: Inputs):
        """``(index, path)`` of a frame every task compares with, prepared once; or None."""
        return None

    def prepare_shared(self, index: int, path: str, spec, device: str):
        """Decode and prepare the :meth:`shared_frame` once for every task."""
        return None

    #: Rows are consecutive pairs of one sequence: the decision stage applies its
    #: sequence rules (transitions, a frame unlike both neighbours is corrupt).
    sequential_rows = False

    def check_request(self, request) -> None:
        """Refuse request values this mode cannot use (raise ParameterError); default none."""

    def before_plan(self, inputs: Inputs, spec, request, run) -> Inputs:
        """A pass over the inputs before the plan: the inputs to plan (default: as given).

        ``run(chunks, spec, on_table)`` runs chunks on the scan's scheduler, workers and
        device, as :func:`framediff.schedule.execute` does; a mode whose plan depends
        on what its inputs hold (duplicates: signatures, then candidate pairs) computes
        it here, in parallel, and returns new inputs (their ``context`` keeps the rest).
        """
        return inputs

    def finish(self, inputs: Inputs, report, tables, request):
        """After the report is written: ``(kept frame indices or None, summary entries)``.

        ``report`` is the local report path (or None), ``tables`` the collected rows
        (empty unless the request collects them). Default: ``(None, {})``, the kept
        frames are those the rows mark.
        """
        return None, {}

    # -- running ----------------------------------------------------------------------

    def route(self, *, distributed: bool, device: str) -> str:
        """:attr:`Route.STANDALONE` or :attr:`Route.CHAIN` for this run."""
        return Route.STANDALONE

    def run(self, chunk: Chunk, spec, xp, shared=None):
        """Run one chunk alone and return its Arrow table (standalone route)."""
        raise TypeError(f"{self.name} mode does not run a chunk alone")

    def prepare(self, chunk: Chunk, spec, device: str):
        """The parallel part of a chained chunk (decode, prepare, measure inside)."""
        raise TypeError(f"{self.name} mode is not a chain")

    def link(self, chunk: Chunk, spec, prepared, state, device: str):
        """The ordered part of a chained chunk: ``(table, state for the next chunk)``."""
        raise TypeError(f"{self.name} mode is not a chain")

    # -- resuming -----------------------------------------------------------------------

    def dump_state(self, state) -> tuple[dict, dict]:
        """What a run folder records of a chain state: ``(JSON fields, arrays)``."""
        return {}, {}

    def load_state(self, fields: dict, arrays: dict, inputs: Inputs, spec, device: str):
        """The chain state rebuilt from :meth:`dump_state`'s record."""
        return None
