"""``framediff scan`` and ``framediff demo``: argv mapped onto :func:`framediff.run_scan`."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from .cli_options import EPILOG, EXIT_OK, EXIT_SOME_FAILED, add_measurement_options, given
from .cluster import add_cluster_arguments, job_script
from .config import add_config_argument
from .demo import run_demo
from .discover import SORT_ORDERS, discover
from .errors import FramediffError
from .modes import MODES, get_mode
from .options import BG_METHODS, preset_default
from .request import CLUSTER_FIELDS, EXTRACT_FORMATS, GPU_DECODE, OPTION_FIELDS, REQUEST_FIELDS, default
from .scan import run_scan
from .video_inputs import count_inputs

__all__ = ["Progress", "register"]

#: Flags whose destination differs from the API parameter they set.
_RENAMED = {"threshold": "thresholds"}


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
    units = {
        "": 1,
        "B": 1,
        "KB": 10**3,
        "MB": 10**6,
        "GB": 10**9,
        "TB": 10**12,
        "KIB": 2**10,
        "MIB": 2**20,
        "GIB": 2**30,
    }
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


def _progress_for(args):
    if args.quiet or not sys.stderr.isatty():
        return None
    try:
        n = count_inputs(discover(args.source, recursive=args.recursive, sort="none").paths, timeout=args.file_timeout)
        return Progress(get_mode(args.mode).expected_rows(n))
    except FramediffError:
        return None


def scan_parameters(args: argparse.Namespace) -> dict:
    """The :func:`framediff.run_scan` keyword arguments that ``args`` spell."""
    names = set(OPTION_FIELDS) | set(REQUEST_FIELDS) | set(CLUSTER_FIELDS) | set(_RENAMED) | {"preset"}
    params = {_RENAMED.get(k, k): v for k, v in given(args, names).items()}
    for flag in ("recursive", "partitioned", "overwrite", "resume", "strict", "keep_list0", "update"):
        if not params.get(flag):
            params.pop(flag, None)  # store_true flags left off: the API's own default
    params.setdefault("output", "framediff-report.csv" if args.format == "csv" else "framediff-report.parquet")
    return params


def _run_scan(args) -> int:
    if args.print_job_script:
        print(job_script(args), end="")
        return EXIT_OK
    result = run_scan(args.source, progress=_progress_for(args), **scan_parameters(args))
    s = result.summary
    if not args.quiet:
        # A scan with videos counts frames (of its videos and its images alike).
        unit = "frames" if s.get("videos") else "images"
        print(
            f"{s['inputs']} {unit}, {s['comparisons']} comparisons: {s['ok']} ok, {s['errors']} failed, "
            f"{s['changed']} changed, {s['events']} events; {s['images_per_second']} {unit}/s"
        )
        for kind, count in s["errors_by_kind"].items():
            print(f"  {kind}: {count}")
        if s.get("search_note"):  # --mode duplicates on a GPU without faiss-gpu
            print(f"note: {s['search_note']}")
        print(f"report: {s['report']}")
    return EXIT_SOME_FAILED if s["errors"] else EXIT_OK


def _add_scan_arguments(p) -> None:
    p.add_argument(
        "source",
        nargs="+",
        help="directory, glob pattern, image or video file, or a file listing image and video paths",
    )
    p.add_argument("-o", "--output", help="report path (.parquet or .csv); default framediff-report.parquet")
    p.add_argument("--format", choices=("parquet", "csv"), help="report format (default: from the suffix)")
    p.add_argument("--partitioned", action="store_true", help="write a folder of part files (big runs)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing report (or an interrupted run)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run: compute only missing partitions")
    p.add_argument(
        "--retries",
        type=int,
        default=default("retries"),
        help=f"further attempts after a transient read error (default {default('retries')})",
    )
    p.add_argument("--file-timeout", type=float, help="seconds before a hung decode becomes an error row")
    gp = p.add_argument_group("GPU (with --device gpu)")
    gp.add_argument("--gpu-memory", type=_bytes, help="device memory budget, e.g. 40GB (default: 80%% of free)")
    gp.add_argument(
        "--gpu-decode",
        choices=GPU_DECODE,
        default=default("gpu_decode"),
        help=f"decode JPEG on the GPU (nvImageCodec; default {default('gpu_decode')})",
    )
    p.add_argument("--summary", help="JSON summary path (default: next to the report)")
    p.add_argument("--html", metavar="FILE", help="also write a self-contained HTML report (see 'framediff report')")
    p.add_argument("--mode", default=default("mode").name, choices=tuple(MODES))
    p.add_argument("--reference", help="reference image (path or index) for --mode reference; default the first")
    p.add_argument("--pair-list", help="CSV of pairs (a,b as paths or indices) for --mode pairs")
    p.add_argument(
        "--threshold",
        action="append",
        metavar="METRIC=VALUE",
        help="mark a comparison changed when METRIC crosses VALUE (repeatable; default: none, changes are "
        "decided above each sequence's noise floor; kl=0.2 is the classic rule)",
    )
    p.add_argument(
        "--sensitivity",
        help="how small a change counts: low, normal (default) or high, or a number "
        "(decides changed, change kind and kept frames above each sequence's own noise floor)",
    )
    p.add_argument(
        "--keep-on",
        metavar="KINDS",
        help="keyframes: change kinds that keep a frame (default content,shift+content,cut,transition; "
        "add lighting to keep lighting changes)",
    )
    p.add_argument(
        "--event-min-length",
        type=int,
        default=default("event_min_length"),
        help=f"changed comparisons an event needs (default {default('event_min_length')})",
    )
    p.add_argument(
        "--event-gap",
        type=int,
        default=default("event_gap"),
        help=f"unchanged comparisons allowed inside an event (default {default('event_gap')})",
    )
    p.add_argument("--keep-list", help="keyframes, duplicates: write the kept images' paths to this file")
    p.add_argument("--keep-list0", action="store_true", help="write the keep list NUL-separated (for xargs -0)")
    p.add_argument("--copy-kept", help="keyframes, duplicates: copy the kept images into this folder")
    p.add_argument("--link-kept", help="keyframes, duplicates: symlink the kept images into this folder")
    p.add_argument(
        "--extract-kept", metavar="DIR", help="keyframes over videos: write the kept video frames as images into DIR"
    )
    p.add_argument(
        "--extract-format",
        choices=EXTRACT_FORMATS,
        default=default("extract_format"),
        help=f"image format of --extract-kept (default {default('extract_format')})",
    )
    p.add_argument(
        "--kept-timestamps",
        metavar="FILE",
        help="keyframes over videos: kept frames' times (CSV) and an ffmpeg select script (FILE.select), per video",
    )
    dup = p.add_argument_group("duplicates mode")
    dup.add_argument("--index", metavar="DIR", help="folder of the duplicate index (default: REPORT.dupindex)")
    dup.add_argument("--update", action="store_true", help="add new images to the saved index; compare only them")
    dup.add_argument(
        "--keep-rule",
        choices=("resolution", "file-size", "name"),
        help="suggested keeper of a group (default resolution)",
    )
    dup.add_argument(
        "--radius", type=float, help="candidate radius: squared distance of block-mean vectors (default 0.3)"
    )
    b = p.add_argument_group("background mode")
    b.add_argument("--masks", help="write foreground masks as PNG files into this folder")
    b.add_argument(
        "--bg-method",
        choices=BG_METHODS,
        help=f"background model: samples (colour, per-pixel adaptive), or running mean/variance ema or window "
        f"(default {preset_default('bg_method')})",
    )
    b.add_argument(
        "--learning-rate", type=float, help=f"ema weight of a new frame (default {preset_default('learning_rate')})"
    )
    b.add_argument("--window", type=int, help=f"window mode: frames in the model (default {preset_default('window')})")
    b.add_argument(
        "--k", type=float, help=f"ema/window: foreground outside mean +- k sigma (default {preset_default('k')})"
    )
    b.add_argument("--warmup", type=int, help=f"frames that only teach the model (default {preset_default('warmup')})")
    p.add_argument("--recursive", action="store_true", help="descend into subdirectories")
    p.add_argument("--sort", default=default("sort"), choices=SORT_ORDERS)
    p.add_argument("--preset", choices=("fast", "classic"), help="option set (default: fast)")
    p.add_argument(
        "--scheduler",
        default=default("scheduler"),
        help=f"threads, processes, synchronous or tcp://host:port (default {default('scheduler')})",
    )
    p.add_argument("--workers", type=int, help="local workers (default: CPU count)")
    p.add_argument(
        "--chunk-size",
        type=int,
        default=default("chunk_size"),
        help=f"frames per task (default {default('chunk_size')})",
    )
    p.add_argument("--strict", action="store_true", help="stop with exit code 2 at the first unreadable input")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar or summary lines")
    add_measurement_options(p)
    add_config_argument(p)
    add_cluster_arguments(p)


def _run_demo(args) -> int:
    ok = run_demo(Path(args.directory), frames=args.frames, workers=args.workers)
    return EXIT_OK if ok else EXIT_SOME_FAILED


def register(sub) -> None:
    """Add the ``scan`` and ``demo`` subcommands to the ``framediff`` parser."""
    p = sub.add_parser(
        "scan",
        help="compare the images of a directory (Dask-scheduled), write a report",
        description="Compare the images of a directory, glob or listing and write a Parquet/CSV report, "
        "an events table and a JSON summary next to it.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_scan_arguments(p)
    p.set_defaults(run=_run_scan)

    d = sub.add_parser(
        "demo",
        help="generate a synthetic time-lapse, scan it and check what was found",
        description="Write a deterministic synthetic time-lapse (noise, lighting drift, an object, a light "
        "switch, a camera shake, duplicates, a corrupt file) into DIR, scan it, and print each known event "
        "as found or missed. Exit code 0 when every event was found.",
    )
    d.add_argument(
        "directory", nargs="?", default="framediff-demo", help="where to write it (default ./framediff-demo)"
    )
    d.add_argument("--frames", type=int, default=120, help="number of frames (>= 40)")
    d.add_argument("--workers", type=int, help="local workers (default: CPU count)")
    d.set_defaults(run=_run_demo)
