"""``scan(source)``: every planned comparison over a directory, as a table and a report."""

from __future__ import annotations

import os
import shutil
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute  # noqa: F401  (pa.compute)

from framediff import kernels as K

from .discover import discover
from .errors import FramediffError
from .metrics import HIGHER_IS_SIMILAR
from .options import Options, make_options
from .plan import MODES, plan_chunks, read_pair_list
from .manifest import RunFolder, inputs_digest
from .remote import is_url
from .neighbours import NeighbourRule
from .report import EventGrouper, ReportWriter, csv_safe, format_for, sidecar_path, write_json_atomic
from .rows import report_schema
from .schedule import execute
from .tasks import GPU_FALLBACK_NOTE, ScanSpec

__all__ = ["DEFAULT_THRESHOLDS", "ScanResult", "parse_thresholds", "run_scan", "scan"]

#: Used when no --threshold is given: KL above 0.2 is the published rule of thumb for a
#: sudden change; 1% of pixels beyond the noise tolerance catches local changes.
DEFAULT_THRESHOLDS = {"l0_fraction": 0.01, "kl": 0.2}
#: Background mode: a frame is changed when over 1% of its pixels are foreground.
DEFAULT_BACKGROUND_THRESHOLD = {"foreground_fraction": 0.01}


def _threshold_metrics(options: Options, mode: str) -> tuple:
    return ("foreground_fraction",) if mode == "background" else options.metrics


def parse_thresholds(items, metrics, mode: str = "consecutive") -> dict:
    """``['kl=0.2', 'l0_fraction=0.01']`` -> dict; defaults for the metrics present.

    Raises
    ------
    FramediffError
        Malformed item, or a metric that is not being computed.
    """
    if not items:
        if mode == "background":
            return dict(DEFAULT_BACKGROUND_THRESHOLD)
        return {k: v for k, v in DEFAULT_THRESHOLDS.items() if k in metrics}
    out = {}
    for item in items:
        name, sep, value = str(item).partition("=")
        name = name.strip().lower()
        try:
            limit = float(value)
        except ValueError:
            raise FramediffError(f"--threshold expects METRIC=VALUE, got {item!r}") from None
        if not sep:
            raise FramediffError(f"--threshold expects METRIC=VALUE, got {item!r}")
        if name not in metrics:
            raise FramediffError(f"--threshold {name}: that metric is not computed (add it to --metrics)")
        out[name] = limit
    return out


@dataclass
class ScanResult:
    """What a finished scan produced."""

    summary: dict
    report: Path | None = None
    events: list = field(default_factory=list)
    kept: list = field(default_factory=list)
    tables: list = field(default_factory=list)

    def table(self) -> pa.Table:
        """All rows (only when the scan collected them)."""
        return pa.concat_tables(self.tables) if self.tables else pa.table({})


def run_scan(
    source,
    *,
    options: Options,
    mode: str = "consecutive",
    reference=None,
    pair_list=None,
    thresholds=None,
    recursive: bool = False,
    sort: str = "natural",
    chunk_size: int = 64,
    scheduler="threads",
    workers: int | None = None,
    output=None,
    fmt: str | None = None,
    partitioned: bool = False,
    overwrite: bool = False,
    summary_path=None,
    events_min_length: int = 1,
    events_max_gap: int = 0,
    keep_list=None,
    copy_kept=None,
    link_kept=None,
    collect: bool = False,
    progress=None,
    strict: bool = False,
    mask_dir=None,
    resume: bool = False,
    retries: int = 0,
    file_timeout: float | None = None,
    gpu_memory: int | None = None,
    gpu_decode: str = "auto",
) -> ScanResult:
    """The scan engine behind :func:`scan` and ``framediff scan``; see :func:`scan`."""
    started = time.perf_counter()
    if mode not in MODES:
        raise FramediffError(f"unknown mode {mode!r}; choose from: {', '.join(MODES)}")
    if chunk_size < 1:
        raise FramediffError(f"--chunk-size must be >= 1, got {chunk_size}")
    xp = K.resolve_device(options.device)
    device = "gpu" if xp is not np else "cpu"
    found = discover(source, recursive=recursive, sort=sort)
    names = tuple(found.relative(p) for p in found.paths)
    paths = [os.fspath(p) for p in found.paths]
    if not paths:
        raise FramediffError(f"{source}: no images found")
    thresholds = parse_thresholds(thresholds, _threshold_metrics(options, mode), mode)
    if mode == "keyframes" and not thresholds:
        raise FramediffError("keyframes mode needs a --threshold to decide which frames to keep")
    ref_index = _reference_index(reference, names, paths) if mode == "reference" else None
    pairs = read_pair_list(pair_list, names) if mode == "pairs" and pair_list else None
    if options.resize == "first":
        options = _resolve_first_shape(options, paths)
    if retries < 0:
        raise FramediffError(f"--retries must be >= 0, got {retries}")
    if file_timeout is not None and file_timeout <= 0:
        raise FramediffError(f"--file-timeout must be positive, got {file_timeout}")
    spec = ScanSpec(
        options=options,
        mode=mode,
        thresholds=tuple(thresholds.items()),
        names=names,
        mask_dir=None if mask_dir is None else str(mask_dir),
        retries=retries,
        file_timeout=file_timeout,
        gpu_memory=gpu_memory,
        gpu_decode=_gpu_decode(gpu_decode, device),
        timed=bool(found.times),
    )
    times = None
    if found.times:
        millis = [None if found.times.get(p) is None else int(found.times[p] * 1000) for p in found.paths]
        times = pa.array(millis, pa.int64()).cast(pa.timestamp("ms", tz="UTC"))
    primary = next(iter(thresholds), None)
    grouper = EventGrouper(
        primary, min_length=events_min_length, max_gap=events_max_gap, similarity=primary in HIGHER_IS_SIMILAR
    )
    metadata = {
        "framediff_version": _version(),
        "mode": mode,
        "options": options.to_dict(),
        "thresholds": thresholds,
        "root": str(found.root),
        "reference": None if ref_index is None else names[ref_index],
        "fingerprint": options.fingerprint(),
    }
    remote_output = None
    if output is not None and is_url(str(output)):
        # Write and rename locally as always, then upload the finished files.
        import hashlib
        import tempfile

        remote_output = str(output)
        from .remote import filesystem

        fs, remote_path = filesystem(remote_output)
        if fs.exists(remote_path) and not overwrite:
            raise FramediffError(f"{remote_output}: already exists (use --overwrite to replace it)")
        # One staging folder per output URL, so an interrupted run can be resumed.
        digest = hashlib.sha256(remote_output.encode()).hexdigest()[:16]
        stage = Path(tempfile.gettempdir()) / f"framediff-stage-{digest}"
        stage.mkdir(parents=True, exist_ok=True)
        for stale in stage.iterdir():  # finished files of a run that died uploading them
            if not stale.name.startswith("."):
                shutil.rmtree(stale) if stale.is_dir() else stale.unlink()
        output = stage / remote_output.rstrip("/").rsplit("/", 1)[-1]
    writer = None
    if output is not None:
        writer = ReportWriter(
            output, format_for(output, fmt), report_schema(spec.schema), metadata, partitioned=partitioned, overwrite=overwrite
        )
    counts = Counter()
    errors_by_kind = Counter()
    kept = []
    tables = []

    def on_rows(table):
        if times is not None:  # capture time of frame b, known to the driver only
            pos = table.schema.get_field_index("time_b")
            index_b = pa.compute.fill_null(table.column("index_b"), 0)
            table = table.set_column(pos, table.schema.field(pos), times.take(index_b))
        counts["rows"] += table.num_rows
        status = table.column("status").to_pylist()
        counts["ok"] += status.count("ok")
        counts["errors"] += status.count("error")
        counts["changed"] += sum(1 for v in table.column("changed").to_pylist() if v)
        counts["gpu_fallback"] += sum(1 for v in table.column("note").to_pylist() if v == GPU_FALLBACK_NOTE)
        for kind in table.column("error_kind").to_pylist():
            if kind is not None:
                errors_by_kind[kind] += 1
        if mode == "keyframes":
            kept.extend(i for i, k in zip(table.column("index_b").to_pylist(), table.column("kept").to_pylist()) if k)
        grouper.feed(table)
        if writer is not None:
            writer.write(table)
        if collect:
            tables.append(table)
        if progress is not None and run is None:
            progress.update(table.num_rows)

    rule = NeighbourRule(on_rows, active=mode == "consecutive" and options.change_kind)
    stripe = {"id": None, "tables": []}

    def flush_stripe():
        if stripe["tables"]:
            rule.feed(pa.concat_tables(stripe["tables"]).sort_by("pair"))
        stripe["tables"] = []

    def assemble(chunk_stripe, table):
        """Rows of one chunk, in chunk order, towards the report."""
        if chunk_stripe is None:
            rule.feed(table)
            return
        # All-pairs blocks interleave pair numbers: emit each block row sorted, so the
        # report is in pair order whatever the block size (memory: one block row).
        if chunk_stripe != stripe["id"]:
            flush_stripe()
            stripe["id"] = chunk_stripe
        stripe["tables"].append(table)

    chunks = plan_chunks(paths, mode, chunk_size, reference=ref_index, pairs=pairs)
    reference_arg = (ref_index, paths[ref_index]) if ref_index is not None else None
    run = None
    initial_state = None
    if writer is not None:
        identity = {
            "fingerprint": options.fingerprint(),
            "inputs": inputs_digest(names, paths),
            "mode": mode,
            "chunk_size": chunk_size,
            "thresholds": thresholds,
            "reference": ref_index,
        }
        run = RunFolder(output, identity, resume=resume, overwrite=overwrite)
        if mode in ("keyframes", "background"):
            # A chain resumes after its complete prefix, from the state recorded there.
            first = run.resumable_prefix()
            run.completed = {k: v for k, v in run.completed.items() if k < first}
            if first:
                initial_state = _restore_state(run.state_after(first - 1), paths, spec, device)
        done = set(run.completed)
        chunks = (c for c in chunks if c.number not in done)
    def on_table(chunk, table, state):
        if strict:
            _check_strict(table)
        if run is None:
            assemble(chunk.stripe, table)
            return
        run.record(chunk.number, table, state, stripe=chunk.stripe)
        if progress is not None:
            progress.update(table.num_rows)

    try:
        execute(
            chunks,
            spec,
            scheduler=scheduler,
            workers=workers,
            device=device,
            on_table=on_table,
            reference=reference_arg,
            initial_state=initial_state,
        )
        if run is not None:
            for number in sorted(run.completed):
                assemble(run.completed[number].get("stripe"), run.read(number).cast(spec.schema))
        flush_stripe()
        rule.finish()
    except _StrictStop as stop:
        if writer is not None:
            writer.abort()
        raise FramediffError(f"--strict: stopped at the first failure: {stop}") from None
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    finally:
        if progress is not None:
            progress.close()
    report_path = writer.close() if writer is not None else None
    if run is not None:
        run.remove()
    events = grouper.finish()
    wall = time.perf_counter() - started
    summary = {
        "mode": mode,
        "inputs": len(paths),
        "skipped_non_image": found.skipped_non_image,
        "unreadable_dirs": found.unreadable_dirs,
        "symlink_loops_skipped": found.symlink_loops,
        "comparisons": counts["rows"],
        "ok": counts["ok"],
        "errors": counts["errors"],
        "errors_by_kind": dict(sorted(errors_by_kind.items())),
        "changed": counts["changed"],
        "events": len(events),
        "kept": len(kept) if mode == "keyframes" else None,
        "thresholds": thresholds,
        "options": options.to_dict(),
        "device": device,
        "gpu_decode": spec.gpu_decode,
        "gpu_fallback_rows": counts["gpu_fallback"],
        "scheduler": str(scheduler),
        "workers": workers or os.cpu_count(),
        "chunk_size": chunk_size,
        "wall_seconds": round(wall, 3),
        "images_per_second": round(len(paths) / wall, 2) if wall > 0 else None,
        "report": None if report_path is None else str(report_path),
        "root": str(found.root),
    }
    if report_path is not None:
        _write_sidecars(report_path, format_for(output, fmt), grouper, summary, summary_path)
    if remote_output is not None:
        from .remote import upload

        staged = sorted(p for p in Path(output).parent.iterdir() if not p.name.startswith("."))
        upload(staged, remote_output.rsplit("/", 1)[0])
        for path in staged:
            shutil.rmtree(path) if path.is_dir() else path.unlink()
        summary["report"] = remote_output
    if keep_list is not None:
        Path(keep_list).write_text("".join(f"{names[i]}\n" for i in kept), encoding="utf-8")
    for target, link in ((copy_kept, False), (link_kept, True)):
        if target is not None:
            _materialise([(names[i], paths[i]) for i in kept], Path(target), link=link)
    return ScanResult(summary, report_path, events, [names[i] for i in kept], tables)


class _StrictStop(Exception):
    pass


def _gpu_decode(choice: str, device: str) -> bool:
    """Whether JPEGs are decoded on the GPU: 'auto' when a GPU runs the scan and
    nvImageCodec is installed; 'on' insists (a clear error without it); 'off' never."""
    if choice not in ("auto", "on", "off"):
        raise FramediffError(f"--gpu-decode must be auto, on or off, got {choice!r}")
    if choice == "off" or device != "gpu":
        if choice == "on" and device != "gpu":
            raise FramediffError("--gpu-decode on needs a GPU run (--device gpu)")
        return False
    from .gpu import gpu_decoder

    available = gpu_decoder() is not None
    if choice == "on" and not available:
        raise FramediffError("--gpu-decode on: nvImageCodec is not usable (pip install 'framediff[gpu]')")
    return available


def _check_strict(table) -> None:
    for kind, path, reason in zip(
        table.column("error_kind").to_pylist(), table.column("path_b").to_pylist(), table.column("error").to_pylist()
    ):
        if kind is not None:
            raise _StrictStop(f"{path}: {reason} [{kind}]")


def _restore_state(saved, paths, spec, device):
    """The chain state a resumed run starts from, rebuilt from what the manifest kept."""
    if saved is None:
        return None
    kind, value = saved
    if kind == "keyframes":
        frames = spec.frames(K.resolve_device(device), capacity=1)
        if not frames.load(value, paths[value]):
            raise FramediffError(f"cannot resume: the last kept frame {paths[value]} is no longer readable")
        frames.prepare()
        return frames.keep(value)
    from framediff.kernels.background import BackgroundModel

    xp = K.resolve_device(device)
    fields = {k: (xp.asarray(v) if isinstance(v, np.ndarray) else v) for k, v in value.items()}
    return BackgroundModel(**fields)


def _version():
    from framediff import __version__

    return __version__


def _resolve_first_shape(options: Options, paths) -> Options:
    """``--resize first`` in a scan: every frame to the shape of the first readable one."""
    import dataclasses

    from .decode import DecodeError
    from .engine import read_frame

    for path in paths:
        try:
            image = read_frame(path, options)
        except DecodeError:
            continue
        h, w = image.shape[:2]
        return dataclasses.replace(options, resize=f"{w}x{h}")
    return options


def _reference_index(reference, names, paths) -> int:
    if reference is None:
        return 0
    if isinstance(reference, int) or (isinstance(reference, str) and reference.isdigit()):
        index = int(reference)
        if not 0 <= index < len(names):
            raise FramediffError(f"--reference {index}: out of range (0..{len(names) - 1})")
        return index
    ref = os.fspath(reference)
    for i, (name, path) in enumerate(zip(names, paths)):
        if ref in (name, path) or os.path.abspath(ref) == os.path.abspath(path):
            return i
    raise FramediffError(f"--reference {ref}: not among the scanned images")





def _write_sidecars(report_path, fmt, grouper, summary, summary_path) -> None:
    events_path = sidecar_path(report_path, f".events.{fmt}")
    events = grouper.table()
    tmp = events_path.with_name(f".{events_path.name}.tmp-{os.getpid()}")
    if fmt == "parquet":
        import pyarrow.parquet as pq

        pq.write_table(events, tmp)
    else:
        import pyarrow.csv as pacsv

        pacsv.write_csv(csv_safe(events), tmp)
    os.replace(tmp, events_path)
    summary["events_report"] = str(events_path)
    write_json_atomic(summary_path or sidecar_path(report_path, ".summary.json"), summary)


def _materialise(kept, target: Path, *, link: bool) -> None:
    """Copy or symlink the kept images into ``target``, keeping their relative names."""
    target.mkdir(parents=True, exist_ok=True)
    for name, path in kept:
        src = Path(path).resolve()
        dst = (target / name).resolve()
        if target.resolve() not in dst.parents:
            raise FramediffError(f"{name}: would be written outside {target}")
        dst.parent.mkdir(parents=True, exist_ok=True)
        if dst.exists() or dst.is_symlink():
            dst.unlink()
        if link:
            os.symlink(src, dst)
        else:
            shutil.copy2(src, dst)


def scan(
    source,
    *,
    mode: str = "consecutive",
    metrics=None,
    preset: str = "fast",
    thresholds=None,
    reference=None,
    pair_list=None,
    recursive: bool = False,
    sort: str = "natural",
    chunk_size: int = 64,
    scheduler="threads",
    workers: int | None = None,
    output=None,
    as_arrow: bool = False,
    masks=None,
    **options,
):
    """Compare the images of ``source`` and return one row per comparison.

    Parameters
    ----------
    source : str, path or sequence
        A directory, glob pattern, listing file, or a list of them.
    mode : {'consecutive', 'reference', 'pairs', 'keyframes'}
        ``consecutive``: frame i against i-1 (against the last readable frame when
        i-1 cannot be read, noted in the row). ``reference``: every frame against
        ``reference`` (index or path; default the first). ``pairs``: all pairs i < j,
        or those listed in ``pair_list``. ``keyframes``: each frame against the last
        *kept* frame; a frame is kept when a threshold is crossed.
    metrics : str or sequence, optional
        Defaults to the preset's.
    preset : {'fast', 'classic'}
        ``fast`` (luma, no normalization, tol 10, all norms + KL) or ``classic``.
    thresholds : dict or sequence of 'METRIC=VALUE', optional
        Marks rows ``changed``; defaults to ``kl > 0.2`` or ``l0_fraction > 0.01``.
    chunk_size : int
        Frames per Dask task.
    scheduler : {'threads', 'processes', 'synchronous'}, 'tcp://host:port' or Client
    workers : int, optional
    output : path, optional
        Also write the report (and its ``.events``/``.summary.json`` sidecars).
    as_arrow : bool
        Return a ``pyarrow.Table`` instead of a pandas DataFrame.
    masks : path, optional
        Background mode: write the foreground masks as PNG files into this folder
        (``--masks``).
    **options
        :class:`~framediff.options.Options` fields (``gray``, ``normalize``, ``tol``,
        ``bins``, ``scale``, ``device``...).

    Returns
    -------
    pandas.DataFrame or pyarrow.Table
        Rows in comparison order. ``.attrs['summary']`` (DataFrame) or the schema
        metadata (Table) carries the summary; ``.attrs['events']`` the events.
    """
    if isinstance(thresholds, dict):
        thresholds = [f"{k}={v}" for k, v in thresholds.items()]
    opts = make_options(preset, metrics=metrics, **options)
    result = run_scan(
        source,
        options=opts,
        mode=mode,
        reference=reference,
        pair_list=pair_list,
        thresholds=thresholds,
        recursive=recursive,
        sort=sort,
        chunk_size=chunk_size,
        scheduler=scheduler,
        workers=workers,
        output=output,
        collect=True,
        overwrite=True,
        mask_dir=masks,
    )
    table = result.table()
    if as_arrow:
        return table
    df = table.to_pandas()
    df.attrs["summary"] = result.summary
    df.attrs["events"] = result.events
    df.attrs["kept"] = result.kept
    return df
