"""Choosing the array module: NumPy on CPU, CuPy on a usable CUDA device.

The backend is resolved once per run and handed down as ``xp``; kernels never import
CuPy themselves and never mix NumPy and CuPy arrays.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import warnings

import numpy as np

__all__ = [
    "DEVICES",
    "BackendError",
    "array_namespace",
    "fused_kernels",
    "gpu_available",
    "is_cupy",
    "resolve_device",
    "to_numpy",
]

DEVICES = ("auto", "cpu", "gpu")
DEVICE_ENV = "FRAMEDIFF_DEVICE"


class BackendError(RuntimeError):
    """The requested device cannot be used on this machine."""


@functools.lru_cache(maxsize=1)
def _probe_cupy():
    """Import CuPy and touch the device once; return (module, reason-if-unusable)."""
    if importlib.util.find_spec("cupy") is None:
        return None, "CuPy is not installed (pip install 'framediff[gpu]')"
    try:
        with warnings.catch_warnings():
            # CuPy warns at import on machines without a CUDA toolkit; we report instead.
            warnings.simplefilter("ignore")
            import cupy

            if cupy.cuda.runtime.getDeviceCount() < 1:
                return None, "no CUDA device is visible"
            cupy.cuda.runtime.memGetInfo()  # fails with cudaErrorInsufficientDriver etc.
    except Exception as exc:  # any CUDA/driver failure means "no usable GPU"
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return None, f"CUDA is not usable: {first_line}"
    return cupy, None


def gpu_available() -> bool:
    """Return True when CuPy imports and a CUDA device answers (probed once per process)."""
    return _probe_cupy()[0] is not None


def resolve_device(device: str | None = None):
    """Return the array module for ``device``.

    Parameters
    ----------
    device : {'auto', 'cpu', 'gpu'} or None
        ``None`` reads ``FRAMEDIFF_DEVICE`` and falls back to ``'auto'``. ``'auto'``
        picks CuPy when a CUDA device is usable, else NumPy, silently.

    Returns
    -------
    module
        ``numpy`` or ``cupy``.

    Raises
    ------
    BackendError
        ``'gpu'`` was asked for and no usable CUDA device exists.
    ValueError
        ``device`` is not one of :data:`DEVICES`.
    """
    if device is None:
        device = os.environ.get(DEVICE_ENV, "auto") or "auto"
    device = str(device).lower()
    if device == "cpu":
        return np
    if device == "auto":
        cupy, _ = _probe_cupy()
        return cupy if cupy is not None else np
    if device == "gpu":
        cupy, reason = _probe_cupy()
        if cupy is None:
            raise BackendError(f"device='gpu' was requested but {reason}")
        return cupy
    raise ValueError(f"unknown device {device!r}; expected one of {', '.join(DEVICES)}")


def is_cupy(array) -> bool:
    """True when ``array`` is a CuPy array (checked without importing CuPy)."""
    return type(array).__module__.split(".")[0] == "cupy"


def array_namespace(*arrays, xp=None):
    """Return the array module of ``arrays``; a given ``xp`` wins.

    Raises
    ------
    TypeError
        The arrays mix NumPy and CuPy: that would be a silent device copy.
    """
    if xp is not None:
        return xp
    kinds = {is_cupy(a) for a in arrays if a is not None and not np.isscalar(a)}
    if len(kinds) > 1:
        raise TypeError("cannot mix NumPy and CuPy arrays in one kernel call")
    if kinds == {True}:
        import cupy

        return cupy
    return np


def to_numpy(array):
    """Return ``array`` as a NumPy array (a device->host copy for CuPy)."""
    if is_cupy(array):
        return array.get()  # synchronize
    return np.asarray(array)


#: Elements below which the NumPy path runs instead of the compiled kernels: numba's
#: import and first call (type inference, cache load) cost about 0.4 s, more than they
#: save on a few small frames. Both paths give the same values (tests check each).
FUSED_FROM = 1 << 18


def fused_kernels(size: int):
    """The compiled CPU kernels (:mod:`framediff.kernels._cpu_fused`) for work on ``size``
    elements, or None where the NumPy path is the faster start."""
    if size < FUSED_FROM:
        return None
    from . import _cpu_fused  # numba: imported on the first large frame only

    return _cpu_fused
