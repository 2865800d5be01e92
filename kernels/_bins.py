"""The value -> bin table of integer histograms, shared by the CPU and GPU kernels."""

from __future__ import annotations

import numpy as np

__all__ = ["bin_lookup"]


def bin_lookup(dtype, bins, lo, hi):
    """Bin index of every value of an integer dtype, with np.histogram's edges."""
    info = np.iinfo(dtype)
    values = np.arange(info.min, info.max + 1, dtype=np.float64)
    edges = np.linspace(lo, hi, bins + 1)
    lut = np.clip(np.searchsorted(edges, values, side="right") - 1, 0, bins - 1).astype(np.intp)
    # Indexed by the raw pixel value: negative values of signed dtypes wrap to the end.
    return np.roll(lut, info.min)
