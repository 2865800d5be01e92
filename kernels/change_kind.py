"""What kind of change separates two images: lighting, shift, content, cut or corrupt.

:func:`change_kind_features` measures a pair of gray images in a few ways that each
explain away one kind of change (exposure normalization, alignment), and
:func:`classify_change` turns those measurements, for any number of pairs, into a
label per pair with a fixed decision order.
"""

from __future__ import annotations

import math

import numpy as np

from .align import phase_correlation
from .backend import array_namespace, to_numpy
from .exposure import match_histograms
from .flow import _bilinear
from .histograms import histogram_distance, histograms
from .ssim import structural_similarity

__all__ = [
    "CHANGE_KINDS",
    "CHANGE_KIND_FEATURES",
    "CHANGE_KIND_THRESHOLDS",
    "change_kind_features",
    "classify_change",
    "extreme_pairs",
]

#: Labels :func:`classify_change` assigns, in decision order.
CHANGE_KINDS = ("corrupt", "none", "lighting", "shift", "cut", "content")

#: Features :func:`change_kind_features` returns and :func:`classify_change` reads.
CHANGE_KIND_FEATURES = (
    "l0_fraction",
    "l1_raw",
    "l1_lighting",
    "ssim_lighting",
    "l1_aligned",
    "shift",
    "shift_y",
    "shift_x",
    "align_peak",
    "ssim",
    "hist_distance",
)

#: Default thresholds of :func:`classify_change` (see its Notes).
CHANGE_KIND_THRESHOLDS = {
    "none_l0": 0.001,
    "explained": 0.25,
    "lighting_ssim": 0.8,
    "min_shift": 0.5,
    "min_peak": 0.05,
    "cut_ssim": 0.5,
    "cut_hist": 0.2,
    "cut_l0": 0.5,
    "corrupt_hist": 0.6,
    "corrupt_ssim": 0.02,
}


#: An image whose standard deviation is below this fraction of the data range is flat.
_FLAT_STD = 0.005


def _value_range(dtype, data_range):
    """Histogram range 0..data_range; for integers one past it, so bins split evenly."""
    if np.issubdtype(np.dtype(str(dtype)), np.integer):
        return 0.0, data_range + 1.0
    return 0.0, data_range


def _aligned_difference(a, b, shift_y, shift_x, xp):
    """mean |a - b moved|: ``b`` sampled at (y - shift_y, x - shift_x), bilinear.

    Only the part of ``a`` that the moved ``b`` covers for every shift of this
    length (a border of ``ceil(|shift|)`` pixels dropped) is compared.
    """

    h, w = a.shape
    my, mx = int(math.ceil(abs(shift_y))), int(math.ceil(abs(shift_x)))
    if 2 * my >= h or 2 * mx >= w:
        return xp.asarray(math.inf)
    ys = xp.arange(my, h - my, dtype=xp.float64)
    xs = xp.arange(mx, w - mx, dtype=xp.float64)
    yy, xx = xp.meshgrid(ys - shift_y, xs - shift_x, indexing="ij")
    moved = _bilinear(b, xx, yy, xp)
    return xp.abs(a[my : h - my, mx : w - mx] - moved).mean()


def change_kind_features(
    a, b, *, data_range: float, tol: float = 0.1, bins: int = 64, upsample_factor: int = 10, xp=None
):
    """Measure an image pair for :func:`classify_change`.

    Parameters
    ----------
    a, b : array, shape (H, W) or (B, H, W)
        Gray images of one shape, ``a`` the earlier/reference one; any real dtype.
        Any size: below 11 x 11 SSIM uses a smaller window (see
        :func:`~framediff.kernels.ssim.structural_similarity`).
    data_range : float
        Intensity range of the images (255 for uint8, 1.0 for float images in 0..1);
        differences are reported as fractions of it.
    tol : float
        A pixel counts as changed when ``|a - b| > tol * data_range``.
    bins : int
        Histogram bins over ``0..data_range`` (``0..data_range + 1`` for integer
        images, so that 256 grey levels split evenly); values outside fall in the
        edge bins.
    upsample_factor : int
        Sub-pixel precision of the phase-correlation shift (1 / upsample_factor px).
    xp : module, optional
        ``numpy`` or ``cupy``; detected from the images when omitted.

    Returns
    -------
    dict of str -> array of float64, shape () or (B,)
        The keys of :data:`CHANGE_KIND_FEATURES`:

        ``l0_fraction``
            Fraction of pixels with ``|a - b| > tol * data_range``.
        ``l1_raw``
            ``mean |a - b| / data_range``.
        ``l1_lighting``
            What exposure normalization leaves: ``mean |m_b(a) - b| / data_range``,
            where ``m_b`` is histogram matching onto ``b`` (the monotone intensity map
            that gives ``a`` the histogram of ``b``), or the same with the roles
            swapped, whichever is smaller. Any global brightness, contrast or gamma
            change -- anything a monotone map explains, clipping included -- leaves
            only rounding. When either image is flat (standard deviation below 0.5 %
            of ``data_range``) the larger of the two is used, since anything maps
            onto a constant: a change to or from a blank frame is not lighting.
        ``ssim_lighting``
            Structural similarity of the same matched pair: near 1 when the
            matching leaves the structure intact, lower when it only hides a
            difference by mapping most pixels to one value.
        ``l1_aligned``
            What alignment leaves: ``mean |.|`` of the same matched pair after moving
            its second image by the phase-correlation shift (bilinear for the
            sub-pixel part), over the part of the first it covers; so a shift under
            a lighting change is still a shift.
        ``shift``, ``shift_y``, ``shift_x``
            The shift that registers ``b`` onto ``a`` (pixels; see
            :func:`framediff.kernels.align.phase_correlation`) and its length.
        ``align_peak``
            Phase-correlation peak in [0, 1]: near 1 for a translation, near 0 for
            unrelated images.
        ``ssim``
            Mean structural similarity of the raw images.
        ``hist_distance``
            Bhattacharyya (Hellinger) distance of the intensity histograms, in [0, 1].

    Raises
    ------
    ValueError
        The images differ in shape, are not 2-D or 3-D, or ``data_range`` is not
        positive.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> a = rng.integers(0, 256, (64, 64)).astype(np.uint8)
    >>> f = change_kind_features(a, a, data_range=255)
    >>> float(f["l1_raw"]), float(f["ssim"]), float(f["shift"])
    (0.0, 1.0, 0.0)
    """

    xp = array_namespace(a, b, xp=xp)
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {a.shape} vs {b.shape}")
    if a.ndim not in (2, 3):
        raise ValueError(f"expected images of shape (H, W) or (B, H, W), got {a.shape}")
    data_range = float(data_range)
    if not data_range > 0:
        raise ValueError(f"data_range must be > 0, got {data_range}")
    single = a.ndim == 2
    a_batch = a[None] if single else a
    b_batch = b[None] if single else b
    af = a_batch.astype(xp.float64)
    bf = b_batch.astype(xp.float64)

    diff = xp.abs(af - bf)
    out = {
        "l0_fraction": (diff > float(tol) * data_range).mean(axis=(1, 2)),
        "l1_raw": diff.mean(axis=(1, 2)) / data_range,
    }
    # A monotone intensity map explains b from a (b = f(a): brightness, contrast,
    # gamma, clipping) or a from b; the better direction counts -- unless an image is
    # flat, since anything maps onto a constant: then the worse direction counts.
    flat = xp.minimum(af.std(axis=(1, 2)), bf.std(axis=(1, 2))) < _FLAT_STD * data_range
    lighting, lighting_ssim, aligned, shift_y, shift_x, peaks = [], [], [], [], [], []
    for i in range(af.shape[0]):
        sy, sx, peak = phase_correlation(af[i], bf[i], upsample_factor=upsample_factor, xp=xp)
        matched = ((af[i], match_histograms(bf[i], af[i], xp=xp)), (match_histograms(af[i], bf[i], xp=xp), bf[i]))
        residual = [xp.abs(x - y).mean() for x, y in matched]
        better = 0 if bool(residual[0] <= residual[1]) else 1  # synchronize
        pick = 1 - better if bool(flat[i]) else better  # synchronize
        x, y = matched[pick]
        lighting.append(residual[pick])
        lighting_ssim.append(structural_similarity(x, y, data_range=data_range, xp=xp))
        aligned.append(_aligned_difference(x, y, sy, sx, xp))
        shift_y.append(sy)
        shift_x.append(sx)
        peaks.append(peak)
    out["ssim_lighting"] = xp.stack([xp.asarray(v, dtype=xp.float64) for v in lighting_ssim])
    out["l1_lighting"] = xp.stack(lighting) / data_range
    out["l1_aligned"] = xp.stack(aligned) / data_range
    out["shift_y"] = xp.asarray(shift_y, dtype=xp.float64)
    out["shift_x"] = xp.asarray(shift_x, dtype=xp.float64)
    out["shift"] = xp.hypot(out["shift_y"], out["shift_x"])
    out["align_peak"] = xp.asarray(peaks, dtype=xp.float64)
    ssim = structural_similarity(a_batch, b_batch, data_range=data_range, xp=xp)
    out["ssim"] = xp.asarray(ssim, dtype=xp.float64)
    value_range = _value_range(a_batch.dtype, data_range)
    ha = histograms(a_batch, bins, value_range, xp=xp)
    hb = histograms(b_batch, bins, value_range, xp=xp)
    out["hist_distance"] = histogram_distance(ha, hb, "bhattacharyya", xp=xp)
    out = {key: out[key] for key in CHANGE_KIND_FEATURES}
    if single:
        out = {key: value[0] for key, value in out.items()}
    return out


def _column(metrics, key):
    return np.atleast_1d(to_numpy(metrics[key])).astype(np.float64)  # synchronize


def extreme_pairs(
    hist_distance,
    ssim,
    *,
    corrupt_hist: float = CHANGE_KIND_THRESHOLDS["corrupt_hist"],
    corrupt_ssim: float = CHANGE_KIND_THRESHOLDS["corrupt_ssim"],
):
    """True where two images are extremely different (no shared histogram or structure).

    A frame extremely different from both its neighbours is labelled ``'corrupt'``.
    """
    hist_distance = np.asarray(hist_distance, dtype=np.float64)
    ssim = np.asarray(ssim, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        return (hist_distance >= corrupt_hist) | (ssim <= corrupt_ssim)


def classify_change(
    metrics,
    *,
    consecutive: bool = False,
    none_l0: float = CHANGE_KIND_THRESHOLDS["none_l0"],
    explained: float = CHANGE_KIND_THRESHOLDS["explained"],
    lighting_ssim: float = CHANGE_KIND_THRESHOLDS["lighting_ssim"],
    min_shift: float = CHANGE_KIND_THRESHOLDS["min_shift"],
    min_peak: float = CHANGE_KIND_THRESHOLDS["min_peak"],
    cut_ssim: float = CHANGE_KIND_THRESHOLDS["cut_ssim"],
    cut_hist: float = CHANGE_KIND_THRESHOLDS["cut_hist"],
    cut_l0: float = CHANGE_KIND_THRESHOLDS["cut_l0"],
    corrupt_hist: float = CHANGE_KIND_THRESHOLDS["corrupt_hist"],
    corrupt_ssim: float = CHANGE_KIND_THRESHOLDS["corrupt_ssim"],
    xp=None,
):
    """Label each compared pair as 'corrupt', 'none', 'lighting', 'shift', 'cut' or 'content'.

    Parameters
    ----------
    metrics : dict of str -> array of shape (N,) or ()
        One row per compared pair ``(a, b)``, as from :func:`change_kind_features`.
        Required: ``l0_fraction``, ``l1_raw``, ``l1_lighting``, ``ssim_lighting``,
        ``l1_aligned``, ``shift``, ``align_peak``, ``ssim``, ``hist_distance``. Optional:
        ``decode_error`` (bool: either image failed to decode); ``hist_distance_prev``
        and ``ssim_prev`` (``a`` against the image before it), ``hist_distance_next``
        and ``ssim_next`` (``b`` against the image after it). Missing neighbour values
        are NaN: no neighbour evidence. NumPy or CuPy arrays (tiny; they are
        classified on the host).
    consecutive : bool
        The rows are consecutive pairs of one sequence (row ``i`` compares images
        ``i`` and ``i + 1``), so the neighbour values are taken from the rows before
        and after unless given explicitly.
    none_l0 : float
        ``'none'`` when fewer than this fraction of pixels changed (``l0_fraction``).
    explained : float
        Normalization or alignment explains the change when what it leaves
        (``l1_lighting`` / ``l1_aligned``) is at most this fraction of ``l1_raw``.
    lighting_ssim : float
        ... and, for lighting, the normalized pair keeps this much structure
        (``ssim_lighting``).
    min_shift : float
        Shortest shift, in pixels, that counts as a camera move.
    min_peak : float
        Weakest phase-correlation peak that is trusted.
    cut_ssim, cut_hist, cut_l0 : float
        A cut has ``ssim <= cut_ssim`` and either ``hist_distance >= cut_hist`` or
        ``l0_fraction >= cut_l0``.
    corrupt_hist, corrupt_ssim : float
        Two images are "extremely different" when ``hist_distance >= corrupt_hist`` or
        ``ssim <= corrupt_ssim`` (no shared structure at all, as with random noise).
    xp : module, optional
        Accepted for a uniform signature; the labels are NumPy strings either way.

    Returns
    -------
    numpy.ndarray of str, shape (N,)
        One label of :data:`CHANGE_KINDS` per row.

    Raises
    ------
    ValueError
        A required metric is missing, or the metrics differ in length.

    Notes
    -----
    Decision order, first match wins:

    1. ``'corrupt'``: ``decode_error``; or an image of the pair is extremely different
       from both its neighbours: the pair itself is extreme and so is ``b`` against the
       next image (or ``a`` against the previous one). A single-frame flash between two
       similar shots is labelled corrupt too.
    2. ``'none'``: ``l0_fraction < none_l0``.
    3. ``'lighting'``: ``l1_lighting <= explained * l1_raw`` and ``ssim_lighting >=
       lighting_ssim`` -- a global brightness / contrast / gamma change that
       histogram matching explains, leaving the structure intact.
    4. ``'shift'``: ``shift >= min_shift``, ``align_peak >= min_peak`` and
       ``l1_aligned <= explained * l1_raw`` -- a translation that alignment explains
       (also under a simultaneous lighting change, since the residual is measured on
       normalized images).
    5. ``'cut'``: ``ssim <= cut_ssim`` and (``hist_distance >= cut_hist`` or
       ``l0_fraction >= cut_l0``) -- different structure and different content.
    6. ``'content'``: everything else -- a local change the scene still explains.

    The defaults were set on photographs from ``skimage.data`` (uint8, 256 x 256,
    64 bins): brightness, contrast and gamma changes leave ``l1_lighting`` under 3 %
    of ``l1_raw`` and ``ssim_lighting`` above 0.99 (a frame three quarters black:
    30 % and 0.53); 5-pixel camera moves leave ``l1_aligned`` at 5-13 % of it while
    ``l1_lighting`` stays near 100 %; for unrelated photographs both residuals stay
    above 40 % of ``l1_raw``, SSIM is 0.05-0.55 and the histogram distance
    0.2-0.85; random noise has SSIM ~0.01 with any photograph; a frame that is
    three quarters black has a histogram distance of about 0.7 to the photograph it
    replaced; a pasted 40 x 40 patch changes under 3 % of the pixels with SSIM
    ~0.97.

    Examples
    --------
    >>> import numpy as np
    >>> m = {"l0_fraction": np.array([0.0, 0.9]), "l1_raw": np.array([0.0, 0.1]),
    ...      "l1_lighting": np.array([0.0, 0.004]), "ssim_lighting": np.ones(2),
    ...      "l1_aligned": np.array([0.0, 0.004]),
    ...      "shift": np.zeros(2), "align_peak": np.ones(2), "ssim": np.array([1.0, 0.9]),
    ...      "hist_distance": np.array([0.0, 0.5])}
    >>> classify_change(m).tolist()
    ['none', 'lighting']
    """
    required = (
        "l0_fraction", "l1_raw", "l1_lighting", "ssim_lighting", "l1_aligned", "shift", "align_peak", "ssim",
        "hist_distance",
    )  # fmt: skip
    for key in required:
        if key not in metrics:
            raise ValueError(f"metrics lack {key!r}; classify_change needs {', '.join(required)}")
    n = int(np.atleast_1d(to_numpy(metrics["l1_raw"])).shape[0])  # synchronize
    col = {key: _column(metrics, key) for key in required}
    for key, values in col.items():
        if values.shape != (n,):
            raise ValueError(f"metric {key!r} has shape {values.shape}, expected ({n},)")

    def neighbour(key, base, step):
        if key in metrics:
            values = _column(metrics, key)
            if values.shape != (n,):
                raise ValueError(f"metric {key!r} has shape {values.shape}, expected ({n},)")
            return values
        values = np.full(n, math.nan)
        if consecutive and n > 1:
            if step > 0:
                values[:-1] = base[1:]
            else:
                values[1:] = base[:-1]
        return values

    def extreme(hist, ssim):
        return extreme_pairs(hist, ssim, corrupt_hist=corrupt_hist, corrupt_ssim=corrupt_ssim)

    hist, ssim = col["hist_distance"], col["ssim"]
    pair_extreme = extreme(hist, ssim)
    next_extreme = extreme(neighbour("hist_distance_next", hist, 1), neighbour("ssim_next", ssim, 1))
    prev_extreme = extreme(neighbour("hist_distance_prev", hist, -1), neighbour("ssim_prev", ssim, -1))
    decode_error = np.zeros(n, dtype=bool)
    if "decode_error" in metrics:
        decode_error = np.atleast_1d(to_numpy(metrics["decode_error"])).astype(bool)  # synchronize
        if decode_error.shape != (n,):
            raise ValueError(f"metric 'decode_error' has shape {decode_error.shape}, expected ({n},)")
    corrupt = decode_error | (pair_extreme & (next_extreme | prev_extreme))

    l1_raw = col["l1_raw"]
    unchanged = col["l0_fraction"] < none_l0
    lighting = (col["l1_lighting"] <= explained * l1_raw) & (col["ssim_lighting"] >= lighting_ssim)
    aligns = (col["align_peak"] >= min_peak) & (col["l1_aligned"] <= explained * l1_raw)
    shift = (col["shift"] >= min_shift) & aligns
    cut = (ssim <= cut_ssim) & ((hist >= cut_hist) | (col["l0_fraction"] >= cut_l0))

    labels = np.full(n, "content", dtype="<U8")
    for kind, mask in reversed(
        (("corrupt", corrupt), ("none", unchanged), ("lighting", lighting), ("shift", shift), ("cut", cut))
    ):
        labels[mask] = kind
    return labels
