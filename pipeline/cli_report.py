"""``framediff report``: a thin layer over :func:`~framediff.html_report.write_html_report`."""

from __future__ import annotations

import argparse
import os

from .cli_options import EPILOG, EXIT_OK
from .errors import FramediffError
from .html_report import write_html_report

__all__ = ["register"]


def _default_output(report: str) -> str:
    name = report.rstrip("/\\")
    for ext in (".parquet", ".csv"):
        if name.lower().endswith(ext):
            return name[: -len(ext)] + ".html"
    return name + ".html"


def _run_report(args) -> int:
    if args.top < 0:
        raise FramediffError(f"--top must be >= 0, got {args.top}")
    output = args.output or _default_output(args.report)
    if os.path.isdir(output):
        raise FramediffError(f"{output}: is a folder; name the page file (-o {os.path.join(output, 'report.html')})")
    if os.path.realpath(output) == os.path.realpath(args.report):
        raise FramediffError(f"{output}: the page would replace the report it is made from; choose another -o")
    try:
        path = write_html_report(args.report, output, top=args.top, plots_dir=args.plots, root=args.root)
    except OSError as exc:  # the page or a plot could not be written
        raise FramediffError(f"{exc.filename or output}: cannot write ({exc.strerror or exc})") from None
    if not args.quiet:
        print(f"html report: {path}")
    return EXIT_OK


def register(sub) -> None:
    """Add the ``report`` subcommand to the ``framediff`` parser."""
    p = sub.add_parser(
        "report",
        help="turn a scan report into one self-contained HTML page",
        description="Write one HTML file (no network, no scripts: plots and thumbnails inlined) from a scan "
        "report: summary, each metric over the frame index with thresholds and events, the largest changes "
        "with thumbnails and a difference heatmap, and the list of errors.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("report", help="report written by 'framediff scan' (.parquet, .csv or a --partitioned folder)")
    p.add_argument("-o", "--output", help="HTML file to write (default: the report's name with .html)")
    p.add_argument("--top", type=int, default=12, help="largest changes shown with thumbnails (default 12)")
    p.add_argument("--plots", metavar="DIR", help="also write each plot as a PNG file into DIR")
    p.add_argument("--root", help="folder the report's paths are relative to (default: the scan's input root)")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")
    p.set_defaults(run=_run_report)
