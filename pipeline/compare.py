"""``compare(a, b)``: every metric for one pair of images, from files or arrays."""

from __future__ import annotations

import math
import os

import numpy as np

from framediff import kernels as K
from framediff.kernels.shape import ShapeMismatchError

from .decode import DecodeError, check_finite, downscale
from .engine import measure_pair_images
from .errors import InputError, ParameterError
from .frames import read_with_timeout
from .options import Options, make_options

__all__ = ["compare", "load_gray", "load_gray_typed"]


def load_gray(source, opts: Options, label: str | None = None) -> np.ndarray:
    """A 2-D gray image from a path or an array, prepared as ``opts`` asks (see
    :func:`load_gray_typed`)."""
    return load_gray_typed(source, opts, label)[0]


def load_gray_typed(source, opts: Options, label: str | None = None, *, timeout=None) -> tuple[np.ndarray, np.dtype]:
    """A 2-D gray image from a path or an array, and the dtype it was decoded as.

    Raises
    ------
    InputError
        The file is missing, unreadable, corrupt or not an image; an array that is
        not an image or holds NaN or infinite pixels.
    """
    if isinstance(source, (str, os.PathLike)):
        try:
            # A copy: a JPEG may come back in the decoder's reused buffer, which reading
            # the other image of the pair would overwrite.
            image, decoded = read_with_timeout(os.fspath(source), opts, None, timeout)
            return np.array(image, copy=True), decoded
        except DecodeError as exc:
            raise InputError(source, exc.kind, exc.reason) from None
    name = label or "<array>"
    if not isinstance(source, (np.ndarray, list, tuple)) and not hasattr(source, "__array__"):
        raise InputError(name, "not-an-image", f"expected a path or an image array, got {type(source).__name__}")
    image = np.asarray(source)
    decoded = image.dtype
    try:
        check_finite(image)
    except DecodeError as exc:
        raise InputError(name, exc.kind, exc.reason) from None
    if image.ndim not in (2, 3) or image.size == 0:
        raise InputError(name, "not-an-image", f"expected a (H, W) or (H, W, C) array, got shape {image.shape}")
    try:
        if opts.color:
            image = K.drop_alpha(image)
            image = np.repeat(image[..., None], 3, axis=-1) if image.ndim == 2 else image
        else:
            image = K.to_gray(image, opts.gray) if image.ndim == 3 else image
    except ValueError as exc:
        raise InputError(name, "unsupported", str(exc)) from None
    return (downscale(image, opts.scale) if opts.scale < 1 else image), decoded


def _label(source, fallback):
    return str(source) if isinstance(source, (str, os.PathLike)) else fallback


def compare(
    a, b, *, metrics=None, preset: str = "classic", options: Options | None = None, file_timeout=None, **overrides
) -> dict:
    """Compare two images and return every requested metric.

    Parameters
    ----------
    a, b : path or array
        ``a`` is the reference. Arrays may be (H, W) gray or (H, W, C) colour.
    metrics : str or sequence of str, optional
        ``'all'`` or names such as ``'l1,l0,mse,psnr,kl'``; defaults to the preset's.
    preset : {'classic', 'fast'}
        ``'classic'`` (default here) is channel mean, min-max to 0..255 and tol 0,
        which reproduces the classic Manhattan and zero norms exactly.
    options : Options, optional
        A ready options object (the one a scan uses); ``metrics`` and ``overrides``
        are applied on top of it (``preset`` cannot be combined with it).
    file_timeout : float, optional
        Seconds before reading a file is given up (a FIFO, a dead network mount).
    **overrides
        Any :class:`~framediff.options.Options` field: ``gray``, ``normalize``,
        ``tol``, ``bins``, ``scale``, ``device``...

    Returns
    -------
    dict
        ``{metric: value}`` as Python numbers (``psnr`` is ``inf`` for identical
        images), plus ``'shape'`` (height, width) of the compared images.

    Raises
    ------
    InputError
        A file cannot be read, or the images differ in shape.
    OptionsError
        An unknown metric, preset or option value.
    BackendError
        ``device='gpu'`` without a usable GPU.
    """
    opts = _options(options, preset, metrics, overrides)
    xp = K.resolve_device(opts.device)
    if file_timeout is not None and not (isinstance(file_timeout, (int, float)) and 0 < file_timeout < math.inf):
        raise ParameterError("file_timeout", f"must be a positive number of seconds, got {file_timeout!r}")
    image_a, decoded_a = load_gray_typed(a, opts, "<array a>", timeout=file_timeout)
    image_b, decoded_b = load_gray_typed(b, opts, "<array b>", timeout=file_timeout)
    source_dtype = decoded_a
    if image_a.dtype != image_b.dtype or decoded_a != decoded_b:
        image_a, image_b = _common_dtype(image_a, image_b)
        source_dtype = None  # both on a common 0..1 scale now
    try:
        result = measure_pair_images(image_a, image_b, opts, xp, source_dtype=source_dtype)
    except ShapeMismatchError:
        (ha, wa), (hb, wb) = image_a.shape[:2], image_b.shape[:2]
        raise InputError(
            _label(b, "<array b>"),
            "size-mismatch",
            f"shape {wb}x{hb} differs from {wa}x{ha} of {_label(a, '<array a>')} (see --resize, --crop)",
        ) from None
    result["shape"] = result.pop("shape")  # last, after the metrics
    return result


def _options(options, preset, metrics, overrides) -> Options:
    if options is None:
        return make_options(preset, metrics=metrics, **overrides)
    if not isinstance(options, Options):
        raise TypeError(f"options must be an Options object (see make_options), got {type(options).__name__}")
    if preset != "classic":
        raise TypeError("give either options or preset, not both")
    if metrics is not None:
        overrides["metrics"] = metrics
    return options.replace(**overrides) if overrides else options


def _common_dtype(a, b):
    """Bring images of different dtypes to float64 on a common 0..1 scale."""

    def unit(x):
        if np.issubdtype(x.dtype, np.integer):
            return x.astype(np.float64) / np.iinfo(x.dtype).max
        return x.astype(np.float64)

    return unit(a), unit(b)
