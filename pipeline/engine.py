"""Per-frame preparation and per-pair measurement: the array work of one task.

A frame is decoded once, prepared once (gray, normalized, histogram) and then takes
part in as many comparisons as the plan asks for. Everything here calls the kernels
on one backend ``xp``; results come back to the host only as small per-pair columns.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from framediff import kernels as K

from .decode import read_image
from .metrics import HIST_METRICS
from .options import Options

__all__ = ["FrameStack", "measure_pairs", "prepare_stack", "read_frame"]


@dataclass
class FrameStack:
    """Prepared frames of one shape, ready to be compared.

    Attributes
    ----------
    pixels : array, shape (N, H, W)
        After grayscale and normalization, on the run's backend.
    probabilities : array, shape (N, bins) or None
        Histograms scaled to sum to 1; None when no histogram metric is asked for.
    data_range : float
        Peak value used by PSNR.
    """

    pixels: object
    probabilities: object
    data_range: float

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(int(s) for s in self.pixels.shape[1:])


def read_frame(path, opts: Options) -> np.ndarray:
    """Decode ``path`` as the options ask: luma straight from JPEG, reduced by ``scale``."""
    image = read_image(path, gray=opts.gray, scale=opts.scale, max_pixels=opts.max_pixels)
    return K.to_gray(image, opts.gray) if image.ndim == 3 else image


def _wants_histograms(opts: Options) -> bool:
    return any(m in HIST_METRICS for m in opts.metrics)


def prepare_stack(images, opts: Options, xp=np) -> FrameStack:
    """Stack same-shape gray images, move them to ``xp`` and prepare them once.

    Parameters
    ----------
    images : sequence of numpy arrays (H, W), or one (N, H, W) array
        Grayscale frames, all of one shape and dtype.
    opts : Options
    xp : module
        numpy or cupy.

    Returns
    -------
    FrameStack
    """
    host = images if isinstance(images, np.ndarray) and images.ndim == 3 else np.stack(images)
    source_dtype = host.dtype
    pixels = xp.asarray(host)
    pixels = K.normalize(pixels, opts.normalize, percentiles=opts.percentiles, xp=xp)
    data_range = opts.data_range or K.natural_data_range(source_dtype, opts.normalize)
    probabilities = None
    if _wants_histograms(opts):
        value_range = K.histogram_range(source_dtype, opts.normalize)
        counts = K.histograms(pixels, bins=opts.bins, value_range=value_range, xp=xp)
        probabilities = K.to_probabilities(counts, xp=xp)
    return FrameStack(pixels, probabilities, float(data_range))


def measure_pairs(stack_a: FrameStack, first, stack_b: FrameStack, second, opts: Options) -> dict:
    """Every requested metric for pairs ``(stack_a[first[k]], stack_b[second[k]])``.

    Returns
    -------
    dict of str -> numpy array of length K
        Keys are the metric names of ``opts.metrics``, in that order.
    """
    xp = K.array_namespace(stack_a.pixels, stack_b.pixels)
    norms = K.pair_difference_norms(
        stack_a.pixels, first, stack_b.pixels, second, tol=opts.tol, data_range=stack_a.data_range, xp=xp
    )
    out = {}
    if stack_a.probabilities is not None:
        ia, ib = xp.asarray(np.asarray(first, np.intp)), xp.asarray(np.asarray(second, np.intp))
        p, q = stack_a.probabilities[ia], stack_b.probabilities[ib]
    for name in opts.metrics:
        if name in norms:
            out[name] = K.to_numpy(norms[name])
        else:
            out[name] = K.to_numpy(K.histogram_distance(p, q, name, xp=xp))
    return out
