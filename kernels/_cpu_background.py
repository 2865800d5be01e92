"""Compiled CPU kernel of the sample-based background model: the per-sample distance
loop in one pass instead of a chain of temporaries per sample and channel.

Its plain twin is the xp loop in :mod:`framediff.kernels.background_samples`; tests
check that both give the same masks.
"""

from __future__ import annotations

# isort: off
from . import _cpu_fused  # noqa: F401  (sets numba's cache folder before numba is imported)
import numba

# isort: on
import numpy as np


@numba.njit(nogil=True, cache=True)
def sample_matches(x, samples, count, limit, scale, matches, nearest):
    """Count the samples within each pixel's limit, and the nearest squared distance.

    ``x`` is (C, P) float32 (the frame in 8-bit units), ``samples`` (N, C, P) in the
    frames' dtype, ``limit`` (P,) float32 squared thresholds, ``scale`` float32. Only
    the first ``count`` samples are used. Fills ``matches`` (P,) int32 and ``nearest``
    (P,) float32 with the same float32 arithmetic, in the same order, as the plain loop.
    """
    n_c = x.shape[0]
    n_p = x.shape[1]
    for p in range(n_p):
        matches[p] = 0
        nearest[p] = np.inf
    for s in range(count):
        for p in range(n_p):
            d2 = np.float32(0.0)
            for c in range(n_c):
                d = x[c, p] - np.float32(samples[s, c, p]) * scale
                d2 += d * d
            # Branch-free, so the loop vectorizes.
            matches[p] += np.int32(d2 < limit[p])
            nearest[p] = min(nearest[p], d2)
