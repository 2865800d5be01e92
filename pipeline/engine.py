"""Per-frame preparation and per-pair measurement: the array work of one task.

A frame is decoded once and prepared once (denoised, normalized, histogram, edge map);
then it takes part in as many comparisons as the plan asks for, measured in batches.
Options that need both images of a pair before measuring (alignment, exposure
matching, colour) go through :func:`measure_pair_images`, one pair at a time; it ends
in the same batch functions, so every path gives the same numbers for the same pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from framediff import kernels as K
from framediff.kernels.align import overlap, phase_correlation
from framediff.kernels.colorspace import delta_e_cie76, delta_e_stats
from framediff.kernels.edges import edge_change_fraction, edge_map, gradient_magnitude
from framediff.kernels.exposure import match_histograms, match_mean_std
from framediff.kernels.filters import gaussian_blur, median_filter
from framediff.kernels.flow import flow_stats
from framediff.kernels.shape import reconcile_shapes, resize_area
from framediff.kernels.ssim import pair_structural_similarity

from .decode import read_image
from .gpu import to_device
from .metrics import CHANNELS, FLOW_METRICS, HIST_METRICS, NORM_METRICS
from .options import PAIR_NORMALIZATIONS, Options, parse_size

__all__ = [
    "FrameStack",
    "WINDOW_BATCH_PIXELS",
    "fit_frame",
    "incomparable",
    "measure_pair_images",
    "measure_pairs",
    "prepare_stack",
    "read_frame",
    "read_frame_typed",
    "reconcile_pair",
]

_EDGE_GAIN = {"sobel": 4 * math.sqrt(2), "prewitt": 3 * math.sqrt(2)}


@dataclass
class FrameStack:
    """Prepared frames of one shape, ready to be compared.

    Attributes
    ----------
    pixels : array, shape (N, H, W)
        After denoising, normalization and (``--edges``) gradient magnitude, on the
        run's backend.
    probabilities : array, shape (N, bins) or None
        Histograms scaled to sum to 1; None when no histogram metric is asked for.
    data_range : float
        Peak value used by PSNR and SSIM.
    edges : array of bool, shape (N, H, W) or None
        Edge maps, when ``edge_change`` is asked for.
    source_dtype : numpy dtype or None
        The dtype the frames were decoded as (uint8 for a JPEG even after ``--blur``
        or ``--gray mean`` made floats of it); None means ``pixels.dtype``. Frames of
        different source dtypes are never compared (see :func:`incomparable`).
    """

    pixels: object
    probabilities: object
    data_range: float
    edges: object = None
    source_dtype: object = None

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(int(s) for s in self.pixels.shape[1:])

    def take(self, position: int) -> FrameStack:
        """A copy holding just one frame (so it does not keep the whole stack alive)."""
        pick = slice(position, position + 1)
        return FrameStack(
            self.pixels[pick].copy(),
            None if self.probabilities is None else self.probabilities[pick].copy(),
            self.data_range,
            None if self.edges is None else self.edges[pick].copy(),
            self.source_dtype,
        )

    @property
    def decoded_dtype(self) -> np.dtype:
        """The dtype the frames had when decoded (``source_dtype``, else the pixels')."""
        return np.dtype(str(self.source_dtype if self.source_dtype is not None else self.pixels.dtype))


def incomparable(stack_a: FrameStack, stack_b: FrameStack) -> str | None:
    """Why frames of these two stacks cannot be compared, or None when they can.

    Frames decoded with different pixel types (an 8-bit JPEG and a 16-bit PNG) have
    different data ranges: any number measured between them is meaningless. The check
    looks at the decoded dtypes, so preparation that makes floats of both (``--blur``,
    ``--edges``, ``--gray mean``) does not hide the difference.

    Parameters
    ----------
    stack_a, stack_b : FrameStack

    Returns
    -------
    str or None
        ``"uint16 pixels differ from uint8"`` (b's type, then a's), or None.
    """
    da, db = stack_a.decoded_dtype, stack_b.decoded_dtype
    return None if da == db else f"{db} pixels differ from {da}"


def read_frame(path, opts: Options, out=None) -> np.ndarray:
    """Decode ``path`` as the options ask: gray (luma straight from JPEG) or colour.

    ``out`` is a stack slot a JPEG may be decoded into (see :func:`read_image`).
    """
    return read_frame_typed(path, opts, out)[0]


def read_frame_typed(path, opts: Options, out=None) -> tuple[np.ndarray, np.dtype]:
    """:func:`read_frame`, with the dtype the file was decoded as.

    ``--gray mean`` makes float64 of 8-bit pixels whose data range is still 255, not
    a float image's 1.0: pass the second value on as ``source_dtype`` to
    :func:`prepare_stack` and :func:`measure_pair_images`.

    Returns
    -------
    image : numpy.ndarray
    source_dtype : numpy.dtype
    """
    image = read_image(
        path, gray=None if opts.color else opts.gray, scale=opts.scale, max_pixels=opts.max_pixels, out=out
    )
    source_dtype = image.dtype
    if opts.color:
        image = K.drop_alpha(image)
        image = np.repeat(image[..., None], 3, axis=-1) if image.ndim == 2 else image
    elif image.ndim == 3:
        image = K.to_gray(image, opts.gray)
    return image, source_dtype


def fit_frame(image: np.ndarray, opts: Options):
    """Resize a frame to the fixed ``--resize WxH`` target; returns (image, action or None)."""
    target = parse_size(opts.resize)
    if target is None or image.shape[:2] == target:
        return image, None
    resized = resize_area(image, target)
    if np.issubdtype(image.dtype, np.integer):
        info = np.iinfo(image.dtype)
        resized = np.clip(np.rint(resized), info.min, info.max).astype(image.dtype)
    h, w = image.shape[:2]
    return resized, f"resize {h}x{w}->{target[0]}x{target[1]}"


def _stack_normalization(opts: Options) -> str:
    # Exposure matching happens per pair, before the stack is prepared.
    return "none" if opts.normalize in PAIR_NORMALIZATIONS else opts.normalize


def _edge_operator(opts: Options) -> str:
    return opts.edges if opts.edges != "none" else "sobel"


def prepare_stack(images, opts: Options, xp=np, *, source_dtype=None) -> FrameStack:
    """Stack same-shape gray images, move them to ``xp`` and prepare them once.

    Parameters
    ----------
    images : sequence of numpy arrays (H, W), or one (N, H, W) array
        Grayscale frames (or colour planes), all of one shape and dtype.
    opts : Options
    xp : module
        numpy or cupy.
    source_dtype : dtype, optional
        The dtype the frames were decoded as, when they have been converted since
        (exposure matching makes floats of uint8 frames); it sets the data range and
        the histogram range.

    Returns
    -------
    FrameStack
    """
    if K.is_cupy(images) or (not isinstance(images, np.ndarray) and K.is_cupy(images[0])):
        host = images if K.is_cupy(images) and images.ndim == 3 else xp.stack(images)  # decoded on the GPU
    else:
        host = images if isinstance(images, np.ndarray) and images.ndim == 3 else np.stack(images)
    source_dtype = np.dtype(source_dtype or str(host.dtype))
    if xp is np or K.is_cupy(host):
        pixels = xp.asarray(host)
    else:
        pixels = to_device(np.ascontiguousarray(host))  # uint8 over the bus, on the task's stream
    if opts.median:
        pixels = median_filter(pixels, opts.median, xp=xp)
    if opts.blur:
        pixels = gaussian_blur(pixels, opts.blur, xp=xp)
    method = _stack_normalization(opts)
    pixels = K.normalize(pixels, method, percentiles=opts.percentiles, xp=xp)
    data_range = float(opts.data_range or K.natural_data_range(source_dtype, method))
    value_range = K.histogram_range(source_dtype, method)
    edges = None
    if "edge_change" in opts.metrics:
        edges = edge_map(pixels, operator=_edge_operator(opts), xp=xp)
    if opts.edges != "none":
        gain = _EDGE_GAIN[opts.edges]
        pixels = gradient_magnitude(pixels, opts.edges, xp=xp)
        value_range = (0.0, gain * (value_range[1] - value_range[0]))
        data_range = opts.data_range or gain * data_range
    probabilities = None
    if any(m in HIST_METRICS for m in opts.metrics):
        counts = K.histograms(pixels, bins=opts.bins, value_range=value_range, xp=xp)
        probabilities = K.to_probabilities(counts, xp=xp)
    return FrameStack(pixels, probabilities, data_range, edges, source_dtype)


def measure_pairs(stack_a: FrameStack, first, stack_b: FrameStack, second, opts: Options) -> dict:
    """Every requested metric for pairs ``(stack_a[first[k]], stack_b[second[k]])``.

    Returns
    -------
    dict of str -> numpy array of length K
        Keys are the metric names of ``opts.metrics`` (colour metrics excepted), in
        that order.
    """
    xp = K.array_namespace(stack_a.pixels, stack_b.pixels)
    first = np.asarray(first, np.intp)
    second = np.asarray(second, np.intp)
    wanted = set(opts.metrics)
    out = {}
    if wanted & set(NORM_METRICS):
        norms = K.pair_difference_norms(
            stack_a.pixels, first, stack_b.pixels, second, tol=opts.tol, data_range=stack_a.data_range, xp=xp
        )
    ia, ib = xp.asarray(first), xp.asarray(second)
    if stack_a.probabilities is not None:
        p, q = stack_a.probabilities[ia], stack_b.probabilities[ib]
    windowed = _windowed_measures(stack_a, first, stack_b, second, wanted, opts, xp)
    for name in opts.metrics:
        if name in NORM_METRICS:
            out[name] = K.to_numpy(norms[name])
        elif name in HIST_METRICS:
            out[name] = K.to_numpy(K.histogram_distance(p, q, name, xp=xp))
        elif name in windowed:
            out[name] = windowed[name]
    return out


#: Pixels of one batch of pairs through a windowed measure (SSIM, flow, edge change).
#: Each of those holds about ten float64 copies of its batch at once, so 2**22 pixels
#: (two 1080p pairs) bound a batch near 0.7 GB however many pairs a task measures.
WINDOW_BATCH_PIXELS = 1 << 22


def _windowed_measures(stack_a, first, stack_b, second, wanted, opts, xp) -> dict:
    """SSIM, edge change and flow statistics of the pairs, in bounded batches.

    Pairs mode asks for every pair of a chunk: gathering all of them at once (and
    the float64 temporaries of the filters) grew with the number of pairs, not with
    the image size. Batches of at most :data:`WINDOW_BATCH_PIXELS` pixels keep the
    memory bounded; each pair's value is computed exactly as in one call.
    """
    names = [m for m in ("ssim", "edge_change", *FLOW_METRICS) if m in wanted]
    if not names or len(first) == 0:
        return {}
    h, w = stack_a.shape
    step = max(1, WINDOW_BATCH_PIXELS // max(1, h * w))
    parts: dict[str, list] = {}
    for start in range(0, len(first), step):
        ia = xp.asarray(first[start : start + step])
        ib = xp.asarray(second[start : start + step])
        if "ssim" in wanted:
            # Each frame of the batch filtered once, not once per pair it is in.
            value = pair_structural_similarity(
                stack_a.pixels,
                first[start : start + step],
                stack_b.pixels,
                second[start : start + step],
                data_range=stack_a.data_range,
                xp=xp,
            )
            parts.setdefault("ssim", []).append(np.atleast_1d(K.to_numpy(value)))
        if "edge_change" in wanted:
            value = edge_change_fraction(stack_a.edges[ia], stack_b.edges[ib], xp=xp)
            parts.setdefault("edge_change", []).append(np.atleast_1d(K.to_numpy(value)))
        if wanted & set(FLOW_METRICS):
            flow = flow_stats(
                stack_a.pixels[ia],
                stack_b.pixels[ib],
                max_corners=opts.flow_corners,
                moving_threshold=opts.moving_threshold,
                xp=xp,
            )
            for name in FLOW_METRICS:
                if name in wanted:
                    parts.setdefault(name, []).append(np.atleast_1d(K.to_numpy(flow[name])))
    return {name: np.concatenate(chunks) for name, chunks in parts.items()}


def _gray_view(image, opts: Options):
    return K.to_gray(image, "luma") if image.ndim == 3 else image


def _as_planes(image):
    """(H, W, C) colour -> (C, H, W) planes, contiguous."""
    return np.ascontiguousarray(np.moveaxis(image, -1, 0))


def _combined(stack: FrameStack, opts: Options) -> FrameStack:
    """The channel planes of one image as a single tall image (combined metrics)."""
    c, h, w = stack.pixels.shape
    probabilities = None if stack.probabilities is None else stack.probabilities.mean(axis=0, keepdims=True)
    edges = None if stack.edges is None else stack.edges.reshape(1, c * h, w)
    return FrameStack(stack.pixels.reshape(1, c * h, w), probabilities, stack.data_range, edges, stack.source_dtype)


def reconcile_pair(a: np.ndarray, b: np.ndarray, opts: Options):
    """Apply the shape policy (``--resize``/``--crop``) to a pair: ``(a, b, action)``.

    Raises
    ------
    ShapeMismatchError
        The shapes differ and ``--resize error`` with no ``--crop``.
    """
    target = parse_size(opts.resize)
    if a.shape[:2] == b.shape[:2] and not target:
        return a, b, "none"
    return reconcile_shapes(a, b, resize=target or opts.resize, crop=opts.crop)


def measure_pair_images(
    a: np.ndarray, b: np.ndarray, opts: Options, xp=np, *, shape_action=None, source_dtype=None
) -> dict:
    """Measure one pair of decoded images with every pairwise option applied.

    In order: shape policy (``--resize``/``--crop``), alignment (phase correlation,
    then only the overlap is compared), exposure matching of ``b`` to ``a``, then the
    same preparation and batch measurement as :func:`measure_pairs`. With ``--color``
    each channel is measured (``l1_r``...), the combined metrics treat the three
    channel planes as one image, and CIE76 Delta E statistics are added.

    ``shape_action`` given means the pair has already been through
    :func:`reconcile_pair`, which said so. ``source_dtype`` is the dtype both images
    were decoded as (see :func:`read_frame_typed`), when they have been converted
    since; it sets the data range (255 for ``--gray mean`` of 8-bit images).

    Returns
    -------
    dict
        Metric name -> Python number, plus ``shape`` (height, width) as compared
        after the shape policy, ``shift_y``/``shift_x``/``align_peak`` with
        ``--align`` and ``shape_action`` with a shape policy.

    Raises
    ------
    ShapeMismatchError
        The shapes differ and ``--resize error`` with no ``--crop``.
    ValueError
        The images have different pixel types (8-bit against 16-bit: no common data
        range), or hold NaN or infinite values.
    """
    if a.dtype != b.dtype:
        # Before alignment or exposure matching make floats of both and hide it.
        raise ValueError(f"{b.dtype} pixels differ from {a.dtype}")
    for image in (a, b):
        if image.dtype.kind == "f" and not bool(np.isfinite(image).all()):
            raise ValueError("non-finite: the image holds NaN or infinite pixels")
    if shape_action is None:
        a, b, shape_action = reconcile_pair(a, b, opts)
    result = {"shape": (int(a.shape[0]), int(a.shape[1]))}
    source_dtype = np.dtype(source_dtype if source_dtype is not None else a.dtype)
    if opts.resize != "error" or opts.crop:
        result["shape_action"] = shape_action
    if opts.align:
        shift_y, shift_x, peak = phase_correlation(
            xp.asarray(_gray_view(a, opts)), xp.asarray(_gray_view(b, opts)), upsample_factor=opts.upsample, xp=xp
        )
        a, b = overlap(a, b, (shift_y, shift_x))
        result.update(shift_y=float(shift_y), shift_x=float(shift_x), align_peak=float(peak))
    if opts.normalize == "match":
        b = K.to_numpy(match_histograms(xp.asarray(b), xp.asarray(a), xp=xp))
        a = a.astype(np.float64)
    elif opts.normalize == "meanstd":
        b = K.to_numpy(match_mean_std(xp.asarray(b), xp.asarray(a), xp=xp))
        a = a.astype(np.float64)
    if a.dtype != b.dtype:
        a, b = a.astype(np.float64), b.astype(np.float64)
    if not opts.color:
        stack_a = prepare_stack([a], opts, xp, source_dtype=source_dtype)
        stack_b = prepare_stack([b], opts, xp, source_dtype=source_dtype)
        values = measure_pairs(stack_a, [0], stack_b, [0], opts)
        result.update({name: column[0].item() for name, column in values.items()})
        return _ordered(result, opts)
    planes_a = prepare_stack(_as_planes(a), opts, xp, source_dtype=source_dtype)
    planes_b = prepare_stack(_as_planes(b), opts, xp, source_dtype=source_dtype)
    combined = measure_pairs(_combined(planes_a, opts), [0], _combined(planes_b, opts), [0], opts)
    result.update({name: column[0].item() for name, column in combined.items()})
    per_channel_opts = _channel_metrics(opts)
    if per_channel_opts.metrics:
        channels = measure_pairs(planes_a, [0, 1, 2], planes_b, [0, 1, 2], per_channel_opts)
        for name, column in channels.items():
            for c, value in zip(CHANNELS, column):
                result[f"{name}_{c}"] = value.item()
    if any(m.startswith("delta_e") for m in opts.metrics):
        stats = delta_e_stats(delta_e_cie76(xp.asarray(a), xp.asarray(b), xp=xp), xp=xp)
        for key in ("mean", "p95", "max"):
            if f"delta_e_{key}" in opts.metrics:
                result[f"delta_e_{key}"] = float(K.to_numpy(stats[key]))
    return _ordered(result, opts)


def _channel_metrics(opts: Options) -> Options:
    import dataclasses

    keep = tuple(m for m in opts.metrics if m in NORM_METRICS or m in HIST_METRICS)
    return dataclasses.replace(opts, metrics=keep)


def _ordered(result: dict, opts: Options) -> dict:
    """Metrics in the order asked for, then the per-channel and extra columns."""
    order = [m for m in opts.metrics if m in result]
    order += [k for k in result if k not in order]
    return {k: result[k] for k in order}
