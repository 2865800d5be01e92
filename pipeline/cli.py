"""The ``framediff`` command line: options in, one API call, a report or lines out.

Exit codes: 0 all comparisons ok; 1 some inputs failed (scan); 2 usage error, an
unusable option or device, or (compare, ``scan --strict``) an input that failed.
"""

from __future__ import annotations

import argparse
import json
import math
import sys

from framediff import __version__

from framediff.kernels import BackendError

from .errors import FramediffError

EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE = 0, 1, 2

EPILOG = """exit codes:
  0  every comparison succeeded
  1  some inputs could not be read or compared (scan: error rows in the report)
  2  usage error, unusable option or device, or an unreadable input (compare, scan --strict)
"""


def _percentiles(text: str):
    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LOW,HIGH such as 1,99, got {text!r}") from None
    return lo, hi


def add_compare_options(parser: argparse.ArgumentParser) -> None:
    """Options shared by ``compare`` and ``scan``: how images are prepared and measured."""
    g = parser.add_argument_group("measurement")
    g.add_argument("--metrics", help="comma-separated metrics, or 'all' (see README for definitions)")
    g.add_argument("--gray", choices=("mean", "luma"), help="channel mean (classic) or BT.601 luma")
    g.add_argument(
        "--normalize",
        choices=("none", "minmax", "percentile", "zscore", "match", "meanstd"),
        help="exposure normalization; match/meanstd match b's histogram/mean+std to a",
    )
    g.add_argument("--percentiles", type=_percentiles, metavar="LOW,HIGH", help="clip points for --normalize percentile")
    g.add_argument("--tol", type=float, help="L0 counts pixels with |a-b| > TOL")
    g.add_argument("--bins", type=int, help="histogram bins (default 256)")
    g.add_argument("--data-range", type=float, help="PSNR peak value (default: natural range)")
    g.add_argument("--scale", type=float, help="compare at reduced resolution, 0.125..1 (JPEG: DCT-domain)")
    g.add_argument("--max-pixels", type=int, help="refuse images declaring more pixels (decompression bombs)")
    g.add_argument("--device", choices=("auto", "cpu", "gpu"), help="array backend (env FRAMEDIFF_DEVICE)")
    t = parser.add_argument_group("preprocessing and toolbox")
    t.add_argument("--resize", help="images of different sizes: error (default), first, smallest, or WxH")
    t.add_argument("--crop", choices=("center", "topleft"), help="crop a pair to its common extent")
    t.add_argument("--align", action="store_true", default=None, help="register by phase correlation, compare the overlap")
    t.add_argument("--upsample", type=int, help="sub-pixel refinement factor of --align (default 10; 1 = whole pixels)")
    t.add_argument("--blur", type=float, help="Gaussian blur sigma before comparing")
    t.add_argument("--median", type=int, help="median filter size before comparing")
    t.add_argument("--color", action="store_true", default=None, help="per-channel metrics and CIE76 Delta E")
    t.add_argument("--edges", choices=("none", "sobel", "prewitt"), help="compare gradient magnitudes")
    t.add_argument("--moving-threshold", type=float, help="optical flow: pixels a point must move (default 0.5)")
    t.add_argument("--flow-corners", type=int, help="optical flow: corners tracked per pair (default 500)")
    t.add_argument(
        "--no-change-kind", dest="change_kind", action="store_false", default=None, help="do not label changed rows"
    )


def option_overrides(args) -> dict:
    """The measurement options given on the command line (None = not given)."""
    return {
        "metrics": args.metrics,
        "gray": args.gray,
        "normalize": args.normalize,
        "percentiles": args.percentiles,
        "tol": args.tol,
        "bins": args.bins,
        "data_range": args.data_range,
        "scale": args.scale,
        "max_pixels": args.max_pixels,
        "device": args.device,
        "resize": args.resize,
        "crop": args.crop,
        "align": args.align,
        "upsample": args.upsample,
        "blur": args.blur,
        "median": args.median,
        "color": args.color,
        "edges": args.edges,
        "moving_threshold": args.moving_threshold,
        "flow_corners": args.flow_corners,
        "change_kind": args.change_kind,
    }


def _format_value(value) -> str:
    if isinstance(value, float) and math.isinf(value):
        return "inf"
    return str(value)


def _run_compare(args) -> int:
    from .compare import compare

    preset = args.preset or "classic"
    result = compare(args.a, args.b, preset=preset, **option_overrides(args))
    height, width = result.pop("shape")
    if args.json:
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
    parser = argparse.ArgumentParser(
        prog="framediff",
        description="Quantify how much images differ, from one pair to directories of millions.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"framediff {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
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
    add_compare_options(p)
    p.set_defaults(run=_run_compare)

    from . import cli_report, cli_scan

    cli_scan.register(sub)
    cli_report.register(sub)
    return parser


def main(argv=None) -> int:
    """Entry point of the ``framediff`` console script; returns the exit code."""
    parser = build_parser()
    try:
        from .config import apply_config

        args = apply_config(parser, argv)  # --config FILE: its values become defaults
        return args.run(args)
    except (FramediffError, BackendError) as exc:
        print(f"framediff: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("framediff: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
