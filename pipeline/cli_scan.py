"""``framediff scan`` and ``framediff demo``: thin layers over :func:`run_scan`."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from .decode import DEFAULT_MAX_PIXELS
from .errors import FramediffError

__all__ = ["Progress", "register"]


class Progress:
    """A one-line progress display on a terminal: comparisons done, rate, ETA."""

    def __init__(self, total: int, stream=None, label: str = "comparisons"):
        self.total = max(total, 0)
        self.stream = stream or sys.stderr
        self.label = label
        self.done = 0
        self.started = time.perf_counter()
        self._last = 0.0

    def update(self, n: int) -> None:
        self.done += n
        now = time.perf_counter()
        if now - self._last < 0.2 and self.done < self.total:
            return
        self._last = now
        elapsed = now - self.started
        rate = self.done / elapsed if elapsed > 0 else 0.0
        eta = (self.total - self.done) / rate if rate > 0 and self.total else 0.0
        self.stream.write(f"\r{self.done}/{self.total} {self.label}  {rate:7.1f}/s  ETA {eta:5.0f}s ")
        self.stream.flush()

    def close(self) -> None:
        self.stream.write("\n")
        self.stream.flush()


def _bytes(text: str) -> int:
    """'40GB', '512MiB', '1e9' -> bytes."""
    units = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12, "KIB": 2**10, "MIB": 2**20, "GIB": 2**30}
    t = text.strip().upper()
    number = t.rstrip("KMGTIB")
    unit = t[len(number) :]
    try:
        value = float(number) * units[unit]
    except (ValueError, KeyError):
        raise argparse.ArgumentTypeError(f"expected a size such as 40GB or 512MiB, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"a memory budget must be positive, got {text!r}")
    return int(value)


def _expected_rows(n_inputs_hint: int, mode: str) -> int:
    if mode == "pairs":
        return n_inputs_hint * (n_inputs_hint - 1) // 2
    return max(n_inputs_hint - 1, 0) if mode in ("consecutive", "reference") else n_inputs_hint  # keyframes, background


def _scan_options(args):
    from .cli import option_overrides
    from .options import make_options

    overrides = option_overrides(args)
    overrides.update(
        bg_method=args.bg_method, learning_rate=args.learning_rate, window=args.window, k=args.k, warmup=args.warmup
    )
    return make_options(args.preset or "fast", **overrides)


def _progress_for(args, mode):
    if args.quiet or not sys.stderr.isatty():
        return None
    from .discover import discover

    try:
        n = len(discover(args.source, recursive=args.recursive, sort="none").paths)
    except FramediffError:
        return None
    return Progress(_expected_rows(n, mode))


def _scan_with(args, opts, output, scheduler):
    from .scan import run_scan

    return run_scan(
        args.source,
        options=opts,
        mode=args.mode,
        reference=args.reference,
        pair_list=args.pair_list,
        thresholds=args.threshold,
        recursive=args.recursive,
        sort=args.sort,
        chunk_size=args.chunk_size,
        scheduler=scheduler,
        workers=args.workers,
        output=output,
        fmt=args.format,
        partitioned=args.partitioned,
        overwrite=args.overwrite,
        summary_path=args.summary,
        events_min_length=args.event_min_length,
        events_max_gap=args.event_gap,
        keep_list=args.keep_list,
        copy_kept=args.copy_kept,
        link_kept=args.link_kept,
        progress=_progress_for(args, args.mode),
        strict=args.strict,
        mask_dir=args.masks,
        resume=args.resume,
        retries=args.retries,
        file_timeout=args.file_timeout,
        gpu_memory=args.gpu_memory,
        gpu_decode=args.gpu_decode,
    )


def _run_scan(args) -> int:
    from .cli import EXIT_OK, EXIT_SOME_FAILED
    from .cluster import job_script, open_cluster

    if args.print_job_script:
        print(job_script(args), end="")
        return EXIT_OK
    opts = _scan_options(args)
    output = args.output or ("framediff-report.csv" if args.format == "csv" else "framediff-report.parquet")
    with open_cluster(args) as client:
        result = _scan_with(args, opts, output, args.scheduler if client is None else client)
    if args.html and result.report is not None:
        from .html_report import write_html_report

        write_html_report(result.report, args.html)
    s = result.summary
    if not args.quiet:
        print(
            f"{s['inputs']} images, {s['comparisons']} comparisons: {s['ok']} ok, {s['errors']} failed, "
            f"{s['changed']} changed, {s['events']} events; {s['images_per_second']} images/s"
        )
        for kind, count in s["errors_by_kind"].items():
            print(f"  {kind}: {count}")
        print(f"report: {s['report']}")
    return EXIT_SOME_FAILED if s["errors"] else EXIT_OK


def _add_scan_arguments(p) -> None:
    from .cli import add_compare_options

    p.add_argument("source", nargs="+", help="directory, glob pattern, or a file listing image paths")
    p.add_argument("-o", "--output", help="report path (.parquet or .csv); default framediff-report.parquet")
    p.add_argument("--format", choices=("parquet", "csv"), help="report format (default: from the suffix)")
    p.add_argument("--partitioned", action="store_true", help="write a folder of part files (big runs)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing report (or an interrupted run)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run: compute only missing partitions")
    p.add_argument("--retries", type=int, default=0, help="further attempts after a transient read error (default 0)")
    p.add_argument("--file-timeout", type=float, help="seconds before a hung decode becomes an error row")
    gp = p.add_argument_group("GPU (with --device gpu)")
    gp.add_argument("--gpu-memory", type=_bytes, help="device memory budget, e.g. 40GB (default: 80%% of free)")
    gp.add_argument(
        "--gpu-decode", choices=("auto", "on", "off"), default="auto", help="decode JPEG on the GPU (nvImageCodec)"
    )
    p.add_argument("--summary", help="JSON summary path (default: next to the report)")
    p.add_argument("--html", metavar="FILE", help="also write a self-contained HTML report (see 'framediff report')")
    p.add_argument(
        "--mode", default="consecutive", choices=("consecutive", "reference", "pairs", "keyframes", "background")
    )
    p.add_argument("--reference", help="reference image (path or index) for --mode reference; default the first")
    p.add_argument("--pair-list", help="CSV of pairs (a,b as paths or indices) for --mode pairs")
    p.add_argument(
        "--threshold",
        action="append",
        metavar="METRIC=VALUE",
        help="mark a comparison changed when METRIC crosses VALUE (repeatable; default kl=0.2, l0_fraction=0.01)",
    )
    p.add_argument("--event-min-length", type=int, default=1, help="changed comparisons an event needs (default 1)")
    p.add_argument("--event-gap", type=int, default=0, help="unchanged comparisons allowed inside an event (default 0)")
    p.add_argument("--keep-list", help="keyframes: write the kept images' paths to this file")
    p.add_argument("--copy-kept", help="keyframes: copy the kept images into this folder")
    p.add_argument("--link-kept", help="keyframes: symlink the kept images into this folder")
    b = p.add_argument_group("background mode")
    b.add_argument("--masks", help="write foreground masks as PNG files into this folder")
    b.add_argument("--bg-method", choices=("ema", "window"), help="running mean/variance: ema (default) or window")
    b.add_argument("--learning-rate", type=float, help="ema weight of a new frame (default 0.05)")
    b.add_argument("--window", type=int, help="window mode: frames in the model (default 50)")
    b.add_argument("--k", type=float, help="foreground outside mean +- k sigma (default 2)")
    b.add_argument("--warmup", type=int, help="frames that only teach the model (default 10)")
    p.add_argument("--recursive", action="store_true", help="descend into subdirectories")
    p.add_argument("--sort", default="natural", choices=("natural", "mtime", "exif", "none"))
    p.add_argument("--preset", choices=("fast", "classic"), help="option set (default: fast)")
    p.add_argument("--scheduler", default="threads", help="threads, processes, synchronous or tcp://host:port")
    p.add_argument("--workers", type=int, help="local workers (default: CPU count)")
    p.add_argument("--chunk-size", type=int, default=64, help="frames per task (default 64)")
    p.add_argument("--strict", action="store_true", help="stop with exit code 2 at the first unreadable input")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar or summary lines")
    add_compare_options(p)
    from .cluster import add_cluster_arguments
    from .config import add_config_argument

    add_config_argument(p)
    add_cluster_arguments(p)


def _run_demo(args) -> int:
    from .cli import EXIT_OK, EXIT_SOME_FAILED
    from .demo import run_demo

    ok = run_demo(Path(args.directory), frames=args.frames, workers=args.workers)
    return EXIT_OK if ok else EXIT_SOME_FAILED


def register(sub) -> None:
    """Add the ``scan`` and ``demo`` subcommands to the ``framediff`` parser."""
    from .cli import EPILOG

    p = sub.add_parser(
        "scan",
        help="compare the images of a directory (Dask-scheduled), write a report",
        description="Compare the images of a directory, glob or listing and write a Parquet/CSV report, "
        "an events table and a JSON summary next to it.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_scan_arguments(p)
    p.set_defaults(run=_run_scan, max_pixels_default=DEFAULT_MAX_PIXELS)

    d = sub.add_parser(
        "demo",
        help="generate a synthetic time-lapse, scan it and check what was found",
        description="Write a deterministic synthetic time-lapse (noise, lighting drift, an object, a light "
        "switch, a camera shake, duplicates, a corrupt file) into DIR, scan it, and print each known event "
        "as found or missed. Exit code 0 when every event was found.",
    )
    d.add_argument("directory", nargs="?", default="framediff-demo", help="where to write it (default ./framediff-demo)")
    d.add_argument("--frames", type=int, default=120, help="number of frames (>= 40)")
    d.add_argument("--workers", type=int, help="local workers (default: CPU count)")
    d.set_defaults(run=_run_demo)
