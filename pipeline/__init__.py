"""framediff: quantify how much images differ, from one pair to directories of millions.

The public API: :func:`compare` (one pair, files or arrays), :func:`scan` (a directory,
Dask-scheduled, one row per comparison, as a table) and :func:`run_scan` (the same
call streaming to a report, what ``framediff scan`` runs). The array kernels live in
:mod:`framediff.kernels`; the scan modes in :mod:`framediff.modes`.
"""

from .compare import compare
from .errors import FramediffError, InputError, ParameterError
from .options import Options, make_options
from .scan import ScanResult, run_scan, scan
from .version import __version__

__all__ = [
    "FramediffError",
    "InputError",
    "Options",
    "ParameterError",
    "ScanResult",
    "__version__",
    "compare",
    "make_options",
    "run_scan",
    "scan",
]
