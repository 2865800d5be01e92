"""framediff: quantify how much images differ, from one pair to directories of millions.

The public API: :func:`compare` (one pair, files or arrays) and :func:`scan` (a
directory, Dask-scheduled, one row per comparison). The array kernels live in
:mod:`framediff.kernels`.
"""

__version__ = "0.1.0"

from .compare import compare  # noqa: E402
from .errors import FramediffError, InputError  # noqa: E402
from .options import Options, make_options  # noqa: E402
from .scan import scan  # noqa: E402

__all__ = ["FramediffError", "InputError", "Options", "__version__", "compare", "make_options", "scan"]
