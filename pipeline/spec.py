"""What every task of a scan needs besides its own chunk: small and picklable."""

from __future__ import annotations

from dataclasses import dataclass

from .decide import DEFAULT_KEEP_ON
from .frames import Frames
from .options import Options
from .rows import row_schema
from .thresholds import Thresholds
from .video_inputs import sequence_start

__all__ = ["ScanSpec"]


@dataclass(frozen=True)
class ScanSpec:
    """The task-side view of a scan request.

    Attributes
    ----------
    options : Options
        How frames are prepared and measured.
    mode : Mode
        What is compared (a :class:`~framediff.modes.Mode`).
    thresholds : Thresholds
        When a comparison counts as changed.
    names : tuple of str
        Report path of every frame, by index.
    mask_dir : str or None
        Background mode: where foreground masks go.
    retries : int
        Further attempts after a transient read error.
    file_timeout : float or None
        Seconds before a decode is given up.
    gpu_memory : int or None
        Device budget in bytes (None: 80% of free).
    gpu_decode : bool
        Decode JPEG on the GPU (nvImageCodec) when a GPU runs the scan.
    timed : bool
        The report carries capture times (``time_b``), filled in by the driver.
    sensitivity : str or float
        The decisions' one knob (see :func:`framediff.decide.sensitivity_scale`).
    keep_on : frozenset of str
        Change kinds that keep a frame (modes that keep frames).
    video : bool
        Videos are among the inputs: the report carries ``frame``, ``pts`` and
        ``time_b`` (seconds), filled in by the driver.
    starts : tuple of int
        First input of each sequence (a video, or a run of images), sorted; empty
        means one sequence. Comparisons in order never cross a sequence boundary.
    """

    options: Options
    mode: object
    thresholds: Thresholds = Thresholds()
    names: tuple = ()
    mask_dir: str | None = None
    retries: int = 0
    file_timeout: float | None = None
    gpu_memory: int | None = None
    gpu_decode: bool = False
    timed: bool = False
    sensitivity: object = "normal"
    keep_on: frozenset = DEFAULT_KEEP_ON
    video: bool = False
    starts: tuple = ()

    def sequence_start(self, i: int) -> int:
        """The first input of the sequence that holds input ``i``."""
        return sequence_start(self.starts, i)

    def frames(self, xp, capacity=0, reuse=False, skip=frozenset(), wanted=None) -> Frames:
        """A :class:`Frames` for one task, with this scan's retry, timeout and decoder policy.

        ``wanted`` (the chunk's paths) lets a video decode stop at the last frame the
        task needs.
        """
        return Frames(
            self.options,
            xp,
            capacity,
            reuse,
            retries=self.retries,
            timeout=self.file_timeout,
            skip=skip,
            gpu_decode=self.gpu_decode,
            wanted=wanted,
        )

    @property
    def decides(self) -> bool:
        """Pairs get decision features (every mode that compares pairs decides)."""
        return self.mode.measures_pairs

    @property
    def schema(self):
        return row_schema(self.options, self.mode, timed=self.timed, video=self.video)
