"""What every ``framediff`` subcommand shares: exit codes, the measurement options,
and turning the library's errors (which name parameters) into lines naming flags."""

from __future__ import annotations

import argparse
import re

from .options import preset_default
from .request import CLUSTER_FIELDS, OPTION_FIELDS, REQUEST_FIELDS

__all__ = [
    "EPILOG",
    "EXIT_OK",
    "EXIT_SOME_FAILED",
    "EXIT_USAGE",
    "OneLineParser",
    "add_measurement_options",
    "flag_of",
    "flag_text",
    "given",
    "measurement_overrides",
]

EXIT_OK, EXIT_SOME_FAILED, EXIT_USAGE = 0, 1, 2

EPILOG = """exit codes:
  0  every comparison succeeded
  1  some inputs could not be read or compared (scan: error rows in the report)
  2  usage error, unusable option or device, an output that cannot be written, or an
     unreadable input (compare, scan --strict)
"""

#: Parameters whose flag is not ``--`` + the name with dashes.
_FLAGS = {"thresholds": "--threshold", "change_kind": "--no-change-kind", "source": "SOURCE"}


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line plus a pointer to --help."""

    def error(self, message):
        self.exit(2, f"framediff: error: {message} (see '{self.prog} --help')\n")


def _percentiles(text: str):
    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LOW,HIGH such as 1,99, got {text!r}") from None
    return lo, hi


def _default(name: str, *, classic: bool = True) -> str:
    fast = preset_default(name, "fast")
    if not classic or preset_default(name, "classic") == fast:
        return f"default {fast}"
    return f"default {fast}; classic preset {preset_default(name, 'classic')}"


def add_measurement_options(parser: argparse.ArgumentParser) -> None:
    """Options shared by ``compare`` and ``scan``: how images are prepared and measured.

    Each flag's destination is the :class:`~framediff.options.Options` field it sets;
    defaults shown in the help are read from there.
    """
    g = parser.add_argument_group("measurement")
    g.add_argument("--metrics", help="comma-separated metrics, or 'all' (see README for definitions)")
    g.add_argument("--gray", choices=("mean", "luma"), help=f"channel mean or BT.601 luma ({_default('gray')})")
    g.add_argument(
        "--normalize",
        choices=("none", "minmax", "percentile", "zscore", "match", "meanstd"),
        help=f"exposure normalization; match/meanstd match b's histogram/mean+std to a ({_default('normalize')})",
    )
    g.add_argument(
        "--percentiles", type=_percentiles, metavar="LOW,HIGH", help="clip points for --normalize percentile"
    )
    g.add_argument("--tol", type=float, help=f"L0 counts pixels with |a-b| > TOL ({_default('tol')})")
    g.add_argument("--bins", type=int, help=f"histogram bins ({_default('bins')})")
    g.add_argument("--data-range", type=float, help="PSNR peak value (default: natural range)")
    g.add_argument("--scale", type=float, help="compare at reduced resolution, 0.125..1 (JPEG: DCT-domain)")
    g.add_argument("--max-pixels", type=int, help=f"refuse images declaring more pixels ({_default('max_pixels')})")
    g.add_argument("--device", choices=("auto", "cpu", "gpu"), help="array backend (env FRAMEDIFF_DEVICE)")
    t = parser.add_argument_group("preprocessing and toolbox")
    t.add_argument("--resize", help="images of different sizes: error (default), first, smallest, or WxH")
    t.add_argument("--crop", choices=("center", "topleft"), help="crop a pair to its common extent")
    t.add_argument(
        "--align", action="store_true", default=None, help="register by phase correlation, compare the overlap"
    )
    t.add_argument(
        "--upsample",
        type=int,
        help=f"sub-pixel refinement factor of --align ({_default('upsample')}; 1 = whole pixels)",
    )
    t.add_argument("--blur", type=float, help="Gaussian blur sigma before comparing")
    t.add_argument("--median", type=int, help="median filter size before comparing")
    t.add_argument("--color", action="store_true", default=None, help="per-channel metrics and CIE76 Delta E")
    t.add_argument("--edges", choices=("none", "sobel", "prewitt"), help="compare gradient magnitudes")
    t.add_argument(
        "--moving-threshold",
        type=float,
        help=f"optical flow: pixels a point must move ({_default('moving_threshold')})",
    )
    t.add_argument(
        "--flow-corners", type=int, help=f"optical flow: corners tracked per pair ({_default('flow_corners')})"
    )
    t.add_argument(
        "--no-change-kind", dest="change_kind", action="store_false", default=None, help="do not label changed rows"
    )


def given(args: argparse.Namespace, names) -> dict:
    """The parsed values among ``names`` that were given (None means not given)."""
    return {name: value for name, value in vars(args).items() if name in names and value is not None}


def measurement_overrides(args: argparse.Namespace) -> dict:
    """The :class:`~framediff.options.Options` fields given on the command line."""
    return given(args, OPTION_FIELDS)


def flag_of(parameter: str) -> str:
    """The command-line spelling of an API parameter."""
    return _FLAGS.get(parameter, "--" + parameter.replace("_", "-"))


_KNOWN = sorted(set(OPTION_FIELDS) | set(REQUEST_FIELDS) | set(CLUSTER_FIELDS) | {"preset"}, key=len, reverse=True)
_ASSIGNMENT = re.compile(r"\b(" + "|".join(_KNOWN) + r")=(True|'[^']*'|[^\s,;)]+)")


def flag_text(message: str, parameter: str | None = None) -> str:
    """Rewrite a library message for the command line: ``tol must be`` -> ``--tol must be``,
    ``overwrite=True`` -> ``--overwrite``, ``device='gpu'`` -> ``--device gpu``."""
    if parameter and message.startswith(parameter):
        message = flag_of(parameter) + message[len(parameter) :]

    def assignment(m):
        name, value = m.group(1), m.group(2)
        if value == "True":
            return flag_of(name)
        return f"{flag_of(name)} {value.strip(chr(39))}"

    return _ASSIGNMENT.sub(assignment, message)
