"""Array kernels: arrays in, arrays out, on NumPy or CuPy (``xp``). No files, no Dask."""

from .backend import (
    DEVICES,
    BackendError,
    array_namespace,
    gpu_available,
    is_cupy,
    resolve_device,
    to_numpy,
)
from .color import GRAY_METHODS, drop_alpha, to_gray
from .histograms import (
    HIST_DISTANCES,
    KL_EMPTY_BIN,
    histogram_distance,
    histogram_range,
    histograms,
    to_probabilities,
)
from .normalize import NORMALIZATIONS, natural_data_range, normalize
from .norms import NORM_NAMES, difference_norms, pair_difference_norms

__all__ = [
    "DEVICES",
    "GRAY_METHODS",
    "HIST_DISTANCES",
    "KL_EMPTY_BIN",
    "NORMALIZATIONS",
    "NORM_NAMES",
    "BackendError",
    "array_namespace",
    "difference_norms",
    "drop_alpha",
    "gpu_available",
    "histogram_distance",
    "histogram_range",
    "histograms",
    "is_cupy",
    "natural_data_range",
    "normalize",
    "pair_difference_norms",
    "resolve_device",
    "to_gray",
    "to_numpy",
    "to_probabilities",
]
