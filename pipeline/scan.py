"""``scan(source)``: every planned comparison over a directory, as a table and a report.

A scan is one :class:`~framediff.request.ScanRequest` passed through named stages:

``discover`` (the ordered inputs) → ``plan`` (the mode's chunks and the task spec) →
``execute`` (Dask runs the chunks, :mod:`framediff.schedule`) → ``sink`` (rows to the
run folder, neighbour rule, events and the report writer, :mod:`framediff.sink`) →
``finish`` (summary, sidecars, HTML, upload, keep-lists).
"""

from __future__ import annotations

import dataclasses
import os
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from framediff import kernels as K

from .cluster import open_cluster
from .decide import DecisionStage, parse_keep_on
from .decode import DecodeError
from .discover import Discovery, discover, is_image_name
from .engine import read_frame
from .errors import FramediffError, ParameterError
from .gpu import gpu_decoder
from .html_report import write_html_report
from .lock import OutputLock
from .manifest import inputs_digest
from .modes import Inputs
from .modes.base import device_name
from .modes.reference import resolve_reference
from .options import Options
from .outputs import Staging, check_kept_destination, check_outputs, materialise_kept, write_keep_list, write_sidecars
from .plan import read_pair_list
from .report import format_for
from .request import ScanRequest
from .schedule import check_scheduler, execute
from .sink import ReportSink
from .spec import ScanSpec
from .version import __version__
from .video_decode import output_shape
from .video_inputs import Expanded, VideoFrameRef, expand_inputs
from .video_kept import add_event_times, write_video_kept

__all__ = ["ScanResult", "run_scan", "scan"]


@dataclass
class ScanResult:
    """What a finished scan produced.

    Attributes
    ----------
    summary : dict
        Counts, options, thresholds, timings (also written as the JSON sidecar).
    report : Path, str or None
        The final report: a local path, or the URL it was uploaded to.
    events : list of dict
    kept : list of str
        Report names of the kept frames (modes that keep frames).
    tables : list of pyarrow.Table
        The rows, when the request asked to collect them.
    """

    summary: dict
    report: Path | str | None = None
    events: list = field(default_factory=list)
    kept: list = field(default_factory=list)
    tables: list = field(default_factory=list)

    def table(self) -> pa.Table:
        """All rows (only when the scan collected them)."""
        return pa.concat_tables(self.tables) if self.tables else pa.table({})


@dataclass
class _Planned:
    """What the plan stage hands to the others."""

    request: ScanRequest
    found: Discovery
    inputs: Inputs
    spec: ScanSpec
    device: str
    columns: dict | None
    expanded: Expanded


def run_scan(source, **params) -> ScanResult:
    """Run a scan and return its :class:`ScanResult` (rows kept only with ``collect=True``).

    Takes exactly the parameters of :func:`scan`; ``framediff scan`` calls this.
    """
    request = ScanRequest.build(source, **params)
    started = time.perf_counter()
    planned = plan_stage(request, discover_stage(request))
    staging = Staging(os.fspath(request.output), overwrite=request.overwrite) if _is_url_output(request) else None
    local_output = staging.report if staging is not None else request.output
    with OutputLock(local_output) if local_output is not None else nullcontext():
        with open_cluster(request.cluster) as client:
            planned = before_plan_stage(planned, client)
            sink, report = execute_stage(planned, local_output, client)
        return finish_stage(planned, sink, report, staging, time.perf_counter() - started)


def discover_stage(request: ScanRequest) -> Discovery:
    """The ordered inputs; none at all is an error."""
    found = discover(request.source, recursive=request.recursive, sort=request.sort)
    if not found.paths:
        raise FramediffError(f"{_source_text(request.source)}: no images found")
    return found


def plan_stage(request: ScanRequest, found: Discovery) -> _Planned:
    """Resolve what the mode needs (reference, pair list) and build the task spec."""
    check_scheduler(request.scheduler)
    mode = request.mode
    files = [os.fspath(p) for p in found.paths]
    file_names = [found.relative(p) for p in found.paths]
    if mode.uses_reference:
        file_names, files = _with_outside_reference(request.reference, file_names, files, found)
    times = {os.fspath(p): t for p, t in found.times.items()} if found.times else None
    expanded = expand_inputs(file_names, files, timeout=request.file_timeout, times=times)
    names, paths = expanded.names, expanded.paths
    inputs = Inputs(
        names,
        paths,
        reference=resolve_reference(request.reference, names, paths) if mode.uses_reference else None,
        pairs=read_pair_list(request.pair_list, names) if request.pair_list is not None else None,
        sequences=expanded.sequences if expanded.videos else (),
    )
    check_outputs(request, files)
    _check_video_outputs(request, expanded)
    for target, link in ((request.copy_kept, False), (request.link_kept, True)):
        if target is not None:
            check_kept_destination(target, files, link=link)
    if request.extract_kept is not None:
        check_kept_destination(request.extract_kept, files, link=False)
    options = _resolve_first_shape(request.options, paths) if request.options.resize == "first" else request.options
    xp = K.resolve_device(options.device)
    device = device_name(xp)
    spec = ScanSpec(
        options=options,
        mode=mode,
        thresholds=request.thresholds,
        names=names,
        mask_dir=None if request.masks is None else os.fspath(request.masks),
        retries=request.retries,
        file_timeout=request.file_timeout,
        gpu_memory=request.gpu_memory,
        gpu_decode=_gpu_decode(request.gpu_decode, device),
        timed=bool(found.times),
        sensitivity=request.sensitivity,
        keep_on=parse_keep_on(request.keep_on),
        video=bool(expanded.videos),
        starts=inputs.starts,
    )
    columns = expanded.columns if expanded.videos else _capture_times(found)
    return _Planned(request, found, inputs, spec, device, columns, expanded)


def before_plan_stage(planned: _Planned, client) -> _Planned:
    """The mode's own pass before its plan (:meth:`~framediff.modes.Mode.before_plan`)."""
    request, spec = planned.request, planned.spec

    def run(chunks, task_spec, on_table):
        scheduler = request.scheduler if client is None else client
        execute(
            chunks, task_spec, scheduler=scheduler, workers=request.workers, device=planned.device, on_table=on_table
        )

    inputs = spec.mode.before_plan(planned.inputs, spec, request, run)
    if inputs is planned.inputs:
        return planned
    # New inputs (another order or set): names by index follow them; capture times do not.
    spec = dataclasses.replace(spec, names=inputs.names, timed=False)
    return dataclasses.replace(planned, inputs=inputs, spec=spec, columns={})


def execute_stage(planned: _Planned, local_output, client):
    """Run the chunks through the sink; returns the sink and the local report path."""
    request, spec, inputs = planned.request, planned.spec, planned.inputs
    identity = {
        "fingerprint": spec.options.fingerprint(),
        # The files (videos by their size and time, not per frame): for images the inputs themselves.
        "inputs": inputs_digest(*_files(planned)),
        "mode": spec.mode.name,
        "chunk_size": request.chunk_size,
        "thresholds": request.thresholds.as_dict(),
        "decisions": _decisions(spec),
        "reference": inputs.reference,
    }
    sink = ReportSink(request, spec, local_output, identity, _metadata(planned), planned.columns)
    try:
        chunks = sink.pending(spec.mode.plan(inputs, request.chunk_size))
        execute(
            chunks,
            spec,
            scheduler=request.scheduler if client is None else client,
            workers=request.workers,
            device=planned.device,
            on_table=sink.on_table,
            shared_frame=spec.mode.shared_frame(inputs),
            initial_state=sink.initial_state(inputs, planned.device),
        )
        report = sink.close()
    except BaseException:
        sink.abort()
        raise
    finally:
        if request.progress is not None:
            request.progress.close()
    return sink, report


def finish_stage(planned: _Planned, sink: ReportSink, report, staging, wall: float) -> ScanResult:
    """Summary and sidecars, the HTML page, the upload, keep-lists and kept copies."""
    request, inputs = planned.request, planned.inputs
    events = sink.grouper.finish()
    event_times = planned.columns.get("time_b") if planned.spec.video else None
    if event_times is not None:
        add_event_times(events, event_times)
    summary = _summary(planned, sink, report, wall, len(events))
    kept_rows, extra = request.mode.finish(inputs, report, sink.tables, request)
    kept_rows = sink.kept if kept_rows is None else kept_rows
    summary.update(extra)
    if report is not None:
        write_sidecars(
            report, format_for(report, request.format), sink.grouper, summary, request.summary, times=event_times
        )
        if request.html is not None:
            write_html_report(report, request.html)
    if staging is not None:
        staging.upload()
        report = summary["report"] = staging.url
    kept = [inputs.names[i] for i in kept_rows]
    if request.keep_list is not None:
        write_keep_list(request.keep_list, kept, nul=request.keep_list0)
    for target, link in ((request.copy_kept, False), (request.link_kept, True)):
        if target is not None:
            kept_files = [(planned.found.relative_path(inputs.paths[i]), inputs.paths[i]) for i in kept_rows]
            materialise_kept(kept_files, Path(target), link=link)
    if request.extract_kept is not None or request.kept_timestamps is not None:
        summary["video_outputs"] = write_video_kept(
            planned.expanded, sink.kept, extract=request.extract_kept, timestamps=request.kept_timestamps,
            fmt=request.extract_format, read_timeout=request.file_timeout, overwrite=request.overwrite,
        )  # fmt: skip
    return ScanResult(summary, report, events, kept, sink.tables)


def _summary(planned: _Planned, sink: ReportSink, report, wall: float, n_events: int) -> dict:
    request, found, spec, counts = planned.request, planned.found, planned.spec, sink.counts
    n = len(planned.inputs.paths)
    return {
        "mode": spec.mode.name,
        "inputs": n,
        **({"videos": len(planned.expanded.videos)} if planned.expanded.videos else {}),
        "skipped_non_image": found.skipped_non_image,
        "unreadable_dirs": found.unreadable_dirs,
        "symlink_loops_skipped": found.symlink_loops,
        "comparisons": counts["rows"],
        "ok": counts["ok"],
        "errors": counts["errors"],
        "errors_by_kind": dict(sorted(sink.errors_by_kind.items())),
        "changed": counts["changed"],
        "events": n_events,
        "kept": len(sink.kept) if spec.mode.keeps_frames else None,
        "thresholds": spec.thresholds.as_dict(),
        "decisions": _decisions(spec),
        "byte_identical": sink.counts["byte_identical"],
        "options": spec.options.to_dict(),
        "device": planned.device,
        "gpu_decode": spec.gpu_decode,
        "gpu_fallback_rows": counts["gpu_fallback"],
        "scheduler": str(request.scheduler),
        "workers": request.workers or os.cpu_count(),
        "chunk_size": request.chunk_size,
        "wall_seconds": round(wall, 3),
        "images_per_second": round(n / wall, 2) if wall > 0 else None,
        "report": None if report is None else str(report),
        "root": str(found.root),
    }


def _metadata(planned: _Planned) -> dict:
    spec, inputs = planned.spec, planned.inputs
    return {
        "framediff_version": __version__,
        "mode": spec.mode.name,
        "options": spec.options.to_dict(),
        "thresholds": spec.thresholds.as_dict(),
        "decisions": _decisions(spec),
        "root": str(planned.found.root),
        "reference": None if inputs.reference is None else inputs.names[inputs.reference],
        "fingerprint": spec.options.fingerprint(),
    }


def _decisions(spec: ScanSpec) -> dict | None:
    """How ``changed`` and ``change_kind`` were decided (None: by the mode's own measure)."""
    if not spec.decides:
        return None
    settings = DecisionStage(sensitivity=spec.sensitivity, thresholds=spec.thresholds.as_dict()).settings()
    settings["by"] = "thresholds" if spec.thresholds else "noise floor"
    if spec.mode.keeps_frames:
        settings["keep_on"] = sorted(spec.keep_on)
    return settings


def _capture_times(found: Discovery):
    if not found.times:
        return None
    millis = [None if found.times.get(p) is None else int(found.times[p] * 1000) for p in found.paths]
    return {"time_b": pa.array(millis, pa.int64()).cast(pa.timestamp("ms", tz="UTC"))}


def _files(planned: _Planned) -> tuple[list, list]:
    """Names and paths of the input files: images as they are, each video once."""
    inputs, videos = planned.inputs, planned.expanded.videos
    images = [(n, p) for n, p in zip(inputs.names, inputs.paths) if not isinstance(p, VideoFrameRef)]
    pairs = images + [(name, path) for name, path, _index, _first in videos]
    return [n for n, _ in pairs], [p for _, p in pairs]


def _with_outside_reference(reference, names: list, files: list, found: Discovery):
    """A reference image that is not among the inputs joins them (a video against a photo)."""
    if not isinstance(reference, (str, os.PathLike)) or str(reference).isdigit():
        return names, files
    ref = os.fspath(reference)
    if "#frame=" in ref or not os.path.isfile(ref) or not is_image_name(ref):
        return names, files
    if any(ref in (n, p) or os.path.abspath(ref) == os.path.abspath(p) for n, p in zip(names, files)):
        return names, files
    return [*names, found.relative(ref)], [*files, ref]


def _check_video_outputs(request: ScanRequest, expanded: Expanded) -> None:
    """Outputs that copy files cannot copy a video's frames; video outputs need videos."""
    if expanded.videos:
        for name in ("copy_kept", "link_kept"):
            if getattr(request, name) is not None:
                raise ParameterError(name, f": video frames are not files to {name.split('_')[0]}; use extract_kept")
    elif request.extract_kept is not None or request.kept_timestamps is not None:
        which = "extract_kept" if request.extract_kept is not None else "kept_timestamps"
        raise ParameterError(which, ": no video among the inputs (for images use copy_kept or keep_list)")


def _is_url_output(request: ScanRequest) -> bool:
    return request.output is not None and not request.local_output


def _source_text(source) -> str:
    if isinstance(source, (list, tuple)):
        return ", ".join(os.fspath(s) for s in source)
    return os.fspath(source)


def _gpu_decode(choice: str, device: str) -> bool:
    """Whether JPEGs are decoded on the GPU: 'auto' when a GPU runs the scan and
    nvImageCodec is installed; 'on' insists (a clear error without it); 'off' never."""
    if choice == "off" or device != "gpu":
        if choice == "on" and device != "gpu":
            raise ParameterError("gpu_decode", "='on' needs a GPU run (device='gpu')")
        return False
    available = gpu_decoder() is not None
    if choice == "on" and not available:
        raise ParameterError("gpu_decode", "='on': nvImageCodec is not usable (pip install 'framediff[gpu]')")
    return available


def _resolve_first_shape(options: Options, paths) -> Options:
    """``resize='first'`` in a scan: every frame to the shape of the first readable one."""
    for path in paths:
        if isinstance(path, VideoFrameRef):
            if path.frame is None:
                continue
            h, w = output_shape(path.index, options.scale)
            return dataclasses.replace(options, resize=f"{w}x{h}")
        try:
            image = read_frame(path, options)
        except DecodeError:
            continue
        h, w = image.shape[:2]
        return dataclasses.replace(options, resize=f"{w}x{h}")
    return options


def scan(source, *, as_arrow: bool = False, **params):
    """Compare the images of ``source`` and return one row per comparison.

    Parameters
    ----------
    source : str, path or sequence
        A directory, glob pattern, listing file, image file, URL, or a list of them.
    as_arrow : bool
        Return a ``pyarrow.Table`` instead of a pandas DataFrame.
    **params
        Every option of ``framediff scan``, named as there with ``_`` for ``-``
        (``mode``, ``thresholds``, ``output``, ``overwrite``, ``chunk_size``,
        ``scheduler``, ``workers``, ``keep_list``, ``masks``, ``cluster``, ``jobs``...),
        and the measurement options (``preset``, ``metrics``, ``gray``, ``tol``,
        ``scale``, ``device``...) or a ready ``options=`` object with overrides. See
        :class:`~framediff.request.ScanRequest` for each one and its default.
        ``mode`` is one of :data:`framediff.modes.MODES`: ``consecutive`` (frame i
        against i-1, or the last readable frame before it), ``reference`` (every frame
        against ``reference``), ``pairs`` (all pairs i < j, or ``pair_list``),
        ``keyframes`` (each frame against the last kept one) or ``background``.

    Returns
    -------
    pandas.DataFrame or pyarrow.Table
        Rows in comparison order. ``.attrs['summary']`` (DataFrame) carries the
        summary, ``.attrs['events']`` the events and ``.attrs['kept']`` the kept frames.

    Raises
    ------
    FramediffError
        An unusable parameter (:class:`~framediff.errors.ParameterError`, naming it),
        no images, or an existing report without ``overwrite=True``.
    TypeError
        An unknown parameter.
    """
    result = run_scan(source, collect=True, **params)
    table = result.table()
    if as_arrow:
        return table
    df = table.to_pandas()
    df.attrs["summary"] = result.summary
    df.attrs["events"] = result.events
    df.attrs["kept"] = result.kept
    return df
