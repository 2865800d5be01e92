"""The ``framediff`` command line: options in, one API call, a report or lines out.

Exit codes: 0 all comparisons ok; 1 some inputs failed (scan); 2 usage error, an
unusable option or device, or (compare, ``scan --strict``) an input that failed.
"""

from __future__ import annotations

import argparse
import json
import math
import sys

from framediff.kernels import BackendError

from . import cli_report, cli_scan
from .cli_options import (
    EPILOG,
    EXIT_OK,
    EXIT_USAGE,
    OneLineParser,
    add_measurement_options,
    flag_text,
    measurement_overrides,
)
from .compare import compare
from .config import apply_config
from .errors import FramediffError
from .version import __version__

__all__ = ["build_parser", "main"]

#: Options whose value may itself start with a dash (a batch directive such as
#: ``--constraint=skylake``): the next argument is taken as the value, whatever it is.
_DASH_VALUES = ("--job-extra-directive",)


def _format_value(value) -> str:
    if isinstance(value, float) and math.isinf(value):
        return "inf"
    return str(value)


def _run_compare(args) -> int:
    result = compare(
        args.a, args.b, preset=args.preset or "classic", file_timeout=args.file_timeout, **measurement_overrides(args)
    )
    height, width = result.pop("shape")
    if args.json:
        # PSNR of identical images is Infinity, as Python's json (and pandas) write it.
        print(json.dumps({"a": args.a, "b": args.b, "shape": [height, width], "metrics": result}))
    elif args.metrics is None:
        # The classic two lines, as the classic script prints them.
        print(f"Manhattan norm: {_format_value(result['l1'])} / per pixel: {_format_value(result['l1_per_pixel'])}")
        print(f"Zero norm: {_format_value(result['l0'])} / per pixel: {_format_value(result['l0_fraction'])}")
        for name, value in result.items():
            if name not in ("l1", "l1_per_pixel", "l0", "l0_fraction"):
                print(f"{name}: {_format_value(value)}")
    else:
        for name, value in result.items():
            print(f"{name}: {_format_value(value)}")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    """The ``framediff`` parser with its ``compare``, ``scan``, ``demo`` and ``report`` commands."""
    parser = OneLineParser(
        prog="framediff",
        description="Quantify how much images differ, from one pair to directories of millions.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"framediff {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)
    sub.required = True

    p = sub.add_parser(
        "compare",
        help="compare two images",
        description="Compare two images. By default prints the classic Manhattan and zero norms.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("a", help="reference image")
    p.add_argument("b", help="image to compare with the reference")
    p.add_argument("--preset", choices=("classic", "fast"), help="option set (default: classic)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--file-timeout", type=float, help="seconds before a hung read is given up (a FIFO, a dead mount)")
    add_measurement_options(p)
    p.set_defaults(run=_run_compare)

    cli_scan.register(sub)
    cli_report.register(sub)
    return parser


def _join_dash_values(argv: list) -> list:
    out, it = [], iter(argv)
    for token in it:
        if token in _DASH_VALUES:
            value = next(it, None)
            out.append(token if value is None else f"{token}={value}")
        else:
            out.append(token)
    return out


def main(argv=None) -> int:
    """Entry point of the ``framediff`` console script; returns the exit code."""
    parser = build_parser()
    argv = _join_dash_values(list(sys.argv[1:] if argv is None else argv))
    try:
        args = apply_config(parser, argv)  # --config FILE: its values become defaults
        return args.run(args)
    except (FramediffError, BackendError) as exc:
        print(f"framediff: error: {flag_text(str(exc), getattr(exc, 'parameter', None))}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:  # the output cannot be written: read-only, full, gone
        where = exc.filename or "output"
        print(
            f"framediff: error: {where}: {exc.strerror or exc} (nothing half-written was left as a report)",
            file=sys.stderr,
        )
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("framediff: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
