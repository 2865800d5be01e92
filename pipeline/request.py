"""One scan request, built once from the API call (the CLI makes the same call).

A :class:`ScanRequest` holds the measurement :class:`~framediff.options.Options` (whose
hash names the run for resume) and the run policy: the mode, thresholds in one typed
form, chunking, scheduler and cluster, outputs, overwrite/resume, keep-lists and the
HTML page. Every default lives on the dataclass fields below (and on
:class:`~framediff.options.Options`); ``framediff scan --help`` reads them from there.
Values are checked here, once, with messages that name the parameter.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import os
from dataclasses import dataclass, field

from .cluster import ClusterSettings, cluster_settings
from .decide import parse_keep_on, sensitivity_scale
from .discover import SORT_ORDERS
from .errors import ParameterError
from .modes import Mode, get_mode
from .options import Options, make_options
from .report import FORMATS
from .thresholds import Thresholds

__all__ = [
    "CLUSTER_FIELDS",
    "EXTRACT_FORMATS",
    "GPU_DECODE",
    "OPTION_FIELDS",
    "REQUEST_FIELDS",
    "ScanRequest",
    "default",
]

GPU_DECODE = ("auto", "on", "off")
EXTRACT_FORMATS = ("jpg", "png")


@dataclass(frozen=True)
class ScanRequest:
    """Everything one scan does, checked.

    Attributes
    ----------
    source : str, path or sequence
        A directory, glob pattern, listing file, image file, URL, or a list of them.
    options : Options
        How images are prepared and measured.
    mode : Mode
        What is compared (see :mod:`framediff.modes`).
    thresholds : Thresholds
        When a comparison counts as changed (the mode's defaults when not given).
    reference : int, str or None
        Reference frame (index or path) of modes that use one; default the first.
    pair_list : path or None
        CSV of pairs for modes that compare listed pairs.
    recursive : bool
        Descend into subdirectories.
    sort : str
        Frame order: natural, mtime, exif or none.
    chunk_size : int
        Frames per task (frames per block side in pairs mode).
    scheduler : str or distributed.Client
        threads, processes, synchronous, a ``tcp://`` address, or a Client.
    workers : int or None
        Local workers (default: CPU count).
    cluster : ClusterSettings
        A dask.distributed cluster to start or join (``cluster='slurm'``...).
    output : path or URL, or None
        The report (Parquet or CSV); sidecars (events, summary) go next to it.
    format : {'parquet', 'csv'} or None
        Report format; default from the output's suffix.
    partitioned : bool
        Write the report as a folder of part files.
    overwrite : bool
        Replace an existing report (or the work folder of an interrupted run).
    resume : bool
        Continue an interrupted run: compute only the missing partitions.
    summary : path or None
        JSON summary path (default: next to the report).
    html : path or None
        Also write a self-contained HTML page of the report.
    event_min_length, event_gap : int
        Changed comparisons an event needs; unchanged ones allowed inside it.
    keep_list, copy_kept, link_kept : path or None
        Modes that keep frames: the kept frames' names (one per line), copies or links.
    keep_list0 : bool
        Write the keep-list NUL-separated (for ``xargs -0``): names may hold newlines.
    extract_kept : path or None
        Modes that keep frames, over videos: a folder for the kept video frames as images.
    extract_format : {'jpg', 'png'}
        Image format of ``extract_kept``.
    kept_timestamps : path or None
        Modes that keep frames, over videos: a CSV of the kept frames' times and an
        ffmpeg ``select`` filter script next to it, per video.
    index : path or None
        Duplicates mode: the folder of the persistent duplicate index (default: next
        to the report, ``<report>.dupindex``).
    update : bool
        Duplicates mode: add the new inputs to the saved index and compare only them
        against everything indexed.
    keep_rule : {'resolution', 'file-size', 'name'} or None
        Duplicates mode: how each group's suggested keeper is chosen (default resolution).
    radius : float or None
        Duplicates mode: squared distance of block-mean vectors within which two images
        are candidates (default :data:`framediff.dupindex.DEFAULT_RADIUS`).
    masks : path or None
        Modes that compute foreground masks: a folder for them as PNG files.
    sensitivity : {'low', 'normal', 'high'} or float
        The one knob of the decisions (``changed``, ``change_kind``, kept frames):
        higher finds smaller and fainter changes. Explicit ``thresholds`` still win.
    keep_on : str or sequence of str, or None
        Change kinds that keep a frame in keyframes mode (default content,
        shift+content, cut, transition; add ``lighting`` to keep lighting changes).
    strict : bool
        Stop at the first input that cannot be read.
    retries : int
        Further attempts after a transient read error.
    file_timeout : float or None
        Seconds before a hung decode becomes an error row.
    gpu_memory : int or None
        GPU memory budget in bytes (default: 80% of free).
    gpu_decode : {'auto', 'on', 'off'}
        Decode JPEG on the GPU (nvImageCodec).
    collect : bool
        Keep every row in memory for the caller (the API's table).
    progress : object or None
        Anything with ``update(n)`` and ``close()``, told of rows as they finish.
    """

    source: object
    options: Options = field(default_factory=make_options)
    mode: Mode = field(default_factory=lambda: get_mode("consecutive"))
    thresholds: Thresholds = Thresholds()
    reference: object = None
    pair_list: object = None
    recursive: bool = False
    sort: str = "natural"
    chunk_size: int = 64
    scheduler: object = "threads"
    workers: int | None = None
    cluster: ClusterSettings = ClusterSettings()
    output: object = None
    format: str | None = None
    partitioned: bool = False
    overwrite: bool = False
    resume: bool = False
    summary: object = None
    html: object = None
    event_min_length: int = 1
    event_gap: int = 0
    keep_list: object = None
    keep_list0: bool = False
    copy_kept: object = None
    extract_kept: object = None
    extract_format: str = "jpg"
    kept_timestamps: object = None
    link_kept: object = None
    index: object = None
    update: bool = False
    keep_rule: str | None = None
    radius: float | None = None
    masks: object = None
    sensitivity: object = "normal"
    keep_on: object = None
    strict: bool = False
    retries: int = 0
    file_timeout: float | None = None
    gpu_memory: int | None = None
    gpu_decode: str = "auto"
    collect: bool = False
    progress: object = None

    @classmethod
    def build(cls, source, *, options: Options | None = None, preset: str | None = None, metrics=None, **params):
        """A checked request from keyword parameters, as :func:`framediff.scan` takes them.

        Parameters named after :class:`Options` fields (``tol``, ``gray``...) build or
        override the options; names of :class:`~framediff.cluster.ClusterSettings`
        fields (``cluster``, ``jobs``, ``cores``...) choose a cluster; the rest are
        this class's fields (``mode``, ``thresholds``, ``output``...).

        Raises
        ------
        TypeError
            An unknown parameter, or ``preset`` given with ``options``.
        ParameterError
            A value that cannot be used, named by its parameter.
        """
        unknown = sorted(set(params) - set(OPTION_FIELDS) - set(REQUEST_FIELDS) - set(CLUSTER_FIELDS))
        if unknown:
            raise TypeError(f"scan() got an unexpected keyword argument {unknown[0]!r}")
        overrides = {k: params.pop(k) for k in list(params) if k in OPTION_FIELDS and k not in REQUEST_FIELDS}
        options = _options(options, preset, metrics, overrides)
        cluster = cluster_settings(
            {k: params.pop(k) for k in list(params) if k in CLUSTER_FIELDS and k not in REQUEST_FIELDS}
        )
        if params.get("workers") is not None and cluster.cluster == "local":
            cluster = dataclasses.replace(cluster, workers=params["workers"])
        scheduler = params.get("scheduler", default("scheduler"))
        if isinstance(scheduler, str) and "://" in scheduler:
            cluster = dataclasses.replace(cluster, scheduler=scheduler)
        mode = get_mode(params.pop("mode", "consecutive"))
        thresholds = Thresholds.parse(
            params.pop("thresholds", None), allowed=mode.threshold_metrics(options), defaults=mode.default_thresholds
        )
        request = cls(source, options=options, mode=mode, thresholds=thresholds, cluster=cluster, **params)
        request.check()
        return request

    def check(self) -> None:
        """Refuse values that cannot be used, naming the parameter."""
        _integer("chunk_size", self.chunk_size, minimum=1)
        _integer("retries", self.retries, minimum=0)
        _integer("event_min_length", self.event_min_length, minimum=1)
        _integer("event_gap", self.event_gap, minimum=0)
        if self.workers is not None:
            _integer("workers", self.workers, minimum=1)
        if self.gpu_memory is not None:
            _integer("gpu_memory", self.gpu_memory, minimum=1)
        if self.file_timeout is not None:
            if not isinstance(self.file_timeout, numbers.Real) or not (
                math.isfinite(self.file_timeout) and self.file_timeout > 0
            ):
                raise ParameterError("file_timeout", f"must be a positive number of seconds, got {self.file_timeout!r}")
        sensitivity_scale(self.sensitivity)
        parse_keep_on(self.keep_on)
        _choice("sort", self.sort, SORT_ORDERS)
        _choice("gpu_decode", self.gpu_decode, GPU_DECODE)
        _choice("extract_format", self.extract_format, EXTRACT_FORMATS)
        if self.format is not None:
            _choice("format", self.format, FORMATS)
        self._check_output_format()
        if self.mode.needs_threshold and not self.thresholds:
            raise ParameterError(
                "thresholds", f": {self.mode.name} mode needs a threshold to decide which frames to keep"
            )
        self._check_mode_options()
        self.mode.check_options(self.options)
        self.mode.check_request(self)

    def _check_output_format(self) -> None:
        """The output's extension decides the format; an unknown one is an error."""
        if self.output is None:
            return
        name = os.fspath(self.output).rstrip("/").rsplit("/", 1)[-1].lower()
        suffix = name.rsplit(".", 1)[-1] if "." in name else ""
        if suffix in FORMATS:
            if self.format is not None and self.format != suffix:
                raise ParameterError("format", f"='{self.format}' contradicts the output's .{suffix} extension")
        elif not (self.partitioned and suffix == ""):
            raise ParameterError(
                "output",
                f"={os.fspath(self.output)!r}: end the name in .parquet or .csv (a folder needs partitioned=True)",
            )

    def _check_mode_options(self) -> None:
        """Options that mean nothing in the chosen mode are refused, not ignored."""
        mode = self.mode
        unused = [
            name
            for name, applies in (
                ("reference", mode.uses_reference),
                ("pair_list", mode.uses_pair_list),
                ("keep_list", mode.keeps_frames),
                ("copy_kept", mode.keeps_frames),
                ("link_kept", mode.keeps_frames),
                ("extract_kept", mode.keeps_frames),
                ("kept_timestamps", mode.keeps_frames),
                ("masks", not mode.measures_pairs),
                ("keep_on", mode.keeps_frames),
                ("index", mode.uses_index),
                ("keep_rule", mode.uses_index),
                ("radius", mode.uses_index),
            )
            if getattr(self, name) is not None and not applies
        ]
        if self.update and not mode.uses_index:
            unused.append("update")
        if unused:
            raise ParameterError(unused[0], f"does nothing in {mode.name} mode")

    @property
    def local_output(self) -> bool:
        """True when the report is written to a local path (not a URL)."""
        return self.output is not None and "://" not in os.fspath(self.output)


def _options(options, preset, metrics, overrides) -> Options:
    if options is None:
        return make_options(preset or "fast", metrics=metrics, **overrides)
    if not isinstance(options, Options):
        raise TypeError(f"options must be an Options object (see make_options), got {type(options).__name__}")
    if preset is not None:
        raise TypeError("give either options or preset, not both")
    if metrics is not None:
        overrides["metrics"] = metrics
    return options.replace(**overrides) if overrides else options


def _integer(name: str, value, *, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ParameterError(name, f"must be a whole number, got {value!r}")
    if value < minimum:
        raise ParameterError(name, f"must be >= {minimum}, got {value}")


def _choice(name: str, value, allowed) -> None:
    if value not in allowed:
        raise ParameterError(name, f"must be one of {', '.join(allowed)}, got {value!r}")


#: Parameter names of each kind, as :meth:`ScanRequest.build` sorts them.
OPTION_FIELDS = tuple(f.name for f in dataclasses.fields(Options) if f.name != "preset")
REQUEST_FIELDS = tuple(
    f.name for f in dataclasses.fields(ScanRequest) if f.name not in ("source", "options", "cluster")
)
CLUSTER_FIELDS = tuple(f.name for f in dataclasses.fields(ClusterSettings))


def default(name: str):
    """The default of a request field (what ``--help`` shows)."""
    f = next(f for f in dataclasses.fields(ScanRequest) if f.name == name)
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
