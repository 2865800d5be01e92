"""Per-pair measurements that the change decision reads: one cheap pass at reduced scale.

:func:`decision_features` looks at two gray frames the way a person glancing at them
would: small (the long side reduced to ``side`` pixels by block means) and slightly
blurred, so that sensor noise, codec blocks and palette dithering average out before
anything is compared. It then explains away a global intensity map (lighting) and a
translation (camera shake), and counts what is left as *regions*: connected groups of
pixels whose residual stands above the pair's own noise, of at least ``min_area``.
"""

from __future__ import annotations

import numpy as np

from .backend import array_namespace, to_numpy
from .filters import _ndimage, gaussian_blur
from .flow import _bilinear
from .shape import reduce_to

__all__ = ["DECISION_FEATURES", "decision_features", "thumbnail"]

#: Scalar features :func:`decision_features` returns (floats), in a fixed order.
DECISION_FEATURES = (
    "l1",
    "l1_lighting",
    "corr",
    "emd",
    "noise",
    "area",
    "regions",
    "largest",
    "shift",
    "align_peak",
    "area_shifted",
    "region_corr",
    "flat_a",
    "flat_b",
    "structure",
    "area_local",
    "largest_local",
    "area_light",
    "dark_change",
)

#: Robust sigma of a normal distribution from its median absolute deviation.
_MAD_TO_SIGMA = 1.4826
#: Below this standard deviation (fraction of the range) an image is flat (black, white, grey card).
_FLAT_STD = 0.01
#: Histogram levels of the monotone intensity map; enough for gamma and clipping curves.
_LEVELS = 256
#: Thumbnail side for comparing frames that are several rows apart (transitions).
THUMB_SIDE = 16
#: Blur whose residual is the texture compared inside changed regions (reduced pixels).
_TEXTURE_SIGMA = 2.0
#: Highest per-pixel level the noise may set (fraction of the range).
_MAX_LEVEL = 0.1
#: Box window (reduced pixels) of the local gain/offset illumination model: wider than an
#: object, so the model bends with sun, shadow and haze but cannot paint an object in.
_ILLUMINATION_WINDOW = 21
#: Ridge pulling the local gain towards 1: flat windows (sky, walls) keep the global map.
_GAIN_RIDGE = 0.002
#: Window (reduced pixels) over which gradients are normalised for the structure measure.
_STRUCTURE_SIGMA = 3.0
#: Gradient magnitude (fraction of the range per pixel) below which a window counts as flat.
_STRUCTURE_EPS = 0.01
#: A scene is dark (night, dusk) when its brightest tenth stays under this level: lamps
#: and lit windows are the highlights there, where by day sky and walls are brighter.
_DARK_P90 = 0.6
#: How much brighter than its surroundings a switched light must be (fraction of the range).
_LIGHT_PEAK = 0.05
#: Largest region (fraction of the frame) taken for a lamp or a lit window; a bright
#: object appearing in a shaded scene is larger than the lights of a city at night.
_LIGHT_AREA = 0.004
#: Width (reduced pixels) of the ring a changed region is compared with.
_RING = 2


def _small(image, side, data_range, xp, min_side=16):

    return reduce_to(xp.asarray(image), side, min_side=min_side, xp=xp).astype(xp.float64) / data_range


def _cdf(x, xp):
    counts = xp.histogram(xp.clip(x, 0.0, 1.0), bins=_LEVELS, range=(0.0, 1.0))[0]
    return xp.cumsum(counts) / float(x.size)


def _monotone_map(a, b, cdf_a, cdf_b, xp):
    """``a`` mapped by the monotone curve that gives it ``b``'s histogram (CDF matching).

    Histograms instead of sorting keep this one pass over the pixels.
    """
    centers = (xp.arange(_LEVELS, dtype=xp.float64) + 0.5) / _LEVELS
    # b's intensity at each of a's cumulative levels; np.interp needs increasing
    # sample points, so flat stretches of b's CDF get a tiny ramp.
    ramp = xp.arange(_LEVELS, dtype=xp.float64) * 1e-12
    target = xp.interp(cdf_a, cdf_b + ramp, centers)
    return xp.interp(a, centers, target)


def _regions(residual, level, min_area, xp):
    """Area fraction, count, largest fraction and mask of components above ``level``."""

    ndi = _ndimage(xp)
    mask = residual > level
    labels, count = ndi.label(mask, structure=xp.ones((3, 3), dtype=bool))
    if int(count) == 0:  # synchronize
        return 0.0, 0, 0.0, None
    sizes = xp.bincount(labels.ravel())
    sizes[0] = 0
    keep = sizes >= min_area
    big = to_numpy(sizes[keep])  # synchronize
    total = float(residual.size)
    return float(big.sum()) / total, int(big.size), float(big.max(initial=0)) / total, keep[labels]


def _masked_corr(a, b, mask, xp):
    """Pearson correlation of ``a`` and ``b`` over ``mask`` (1.0 when either is flat there)."""
    x, y = a[mask], b[mask]
    x, y = x - x.mean(), y - y.mean()
    den = float(xp.sqrt((x * x).sum() * (y * y).sum()))  # synchronize
    return float((x * y).sum()) / den if den > 1e-12 else 1.0


def _shifted_residual(a, b, shift_y, shift_x, xp):
    """``|a - b moved|`` over the part of ``a`` the moved ``b`` covers.

    One more pixel of border is dropped: at the reduced scale the frame edge blends
    what entered the view with what was there.
    """

    h, w = a.shape
    my, mx = int(np.ceil(abs(shift_y))) + 1, int(np.ceil(abs(shift_x))) + 1
    if 2 * my >= h or 2 * mx >= w:
        return None
    ys = xp.arange(my, h - my, dtype=xp.float64)
    xs = xp.arange(mx, w - mx, dtype=xp.float64)
    yy, xx = xp.meshgrid(ys - shift_y, xs - shift_x, indexing="ij")
    return xp.abs(a[my : h - my, mx : w - mx] - _bilinear(b, xx, yy, xp))


def _local_fit_residual(x, y, xp, *, weights=None):
    """``y`` minus the best local gain/offset image of ``x`` (a smooth illumination field).

    Weighted least squares in every box window (as a guided filter: box means cost the
    same whatever the window), the gain pulled towards 1 by :data:`_GAIN_RIDGE`;
    ``weights`` down-weight outliers.
    """
    ndi = _ndimage(xp)

    def mean(v):
        return ndi.uniform_filter(v, size=_ILLUMINATION_WINDOW, mode="reflect")

    w = xp.ones_like(x) if weights is None else weights
    total = mean(w) + 1e-12
    mx, my = mean(w * x) / total, mean(w * y) / total
    var = mean(w * x * x) / total - mx * mx
    cov = mean(w * x * y) / total - mx * my
    gain = (cov + _GAIN_RIDGE) / (var + _GAIN_RIDGE)
    return y - (gain * x + my - gain * mx)


def _local_illumination_residual(x, y, xp):
    """``|y - local fit|``, refitted once with Cauchy weights so that a changed object
    does not bend the illumination field around itself (a robust fit)."""
    residual = _local_fit_residual(x, y, xp)
    scale = _MAD_TO_SIGMA * float(xp.median(xp.abs(residual))) + 0.005  # synchronize
    weights = 1.0 / (1.0 + (residual / (3.0 * scale)) ** 2)
    return xp.abs(_local_fit_residual(x, y, xp, weights=weights))


def _light_area(a, b, signed, mask, dark_a: bool, dark_b: bool, xp):
    """Fraction of the frame in changed regions that a light switching explains.

    A region is a light turning on in ``b`` (off: swap the frames) when it is small
    (:data:`_LIGHT_AREA`), ``b`` is brighter there than the lighting map predicts, the
    region stands out from a ring
    around it in ``b`` by :data:`_LIGHT_PEAK` while it did not (half as much) in ``a``,
    and ``b`` is a dark scene (:data:`_DARK_P90`): a lamp, a lit window or a
    floodlight at night. By day the same test would take a white car for a lamp, so
    it is not made there.
    """
    if not (dark_a or dark_b):
        return 0.0  # by day no region is taken for a lamp: skip the per-region work
    ndi = _ndimage(xp)
    labels, count = ndi.label(mask, structure=xp.ones((3, 3), dtype=bool))
    n = int(count)  # synchronize
    if n == 0:
        return 0.0
    # Each region's ring: its label spread a few pixels into unchanged pixels (where
    # two rings meet, one region takes the pixel: enough for a mean).
    spread = ndi.maximum_filter(labels, size=2 * _RING + 1)
    ring = (labels == 0) & (spread > 0)

    def mean(values, where, lab):
        total = xp.bincount(lab[where], weights=values[where], minlength=n + 1)
        return total / xp.maximum(xp.bincount(lab[where], minlength=n + 1), 1)

    on = mean(-signed, mask, labels) > 0  # brighter in b than a's lighting map says
    peak_a = mean(a, mask, labels) - mean(a, ring, spread)
    peak_b = mean(b, mask, labels) - mean(b, ring, spread)
    bright_peak, dim_peak = xp.where(on, peak_b, peak_a), xp.where(on, peak_a, peak_b)
    dark = xp.where(on, dark_b, dark_a)
    sizes = xp.bincount(labels.ravel(), minlength=n + 1)
    small = sizes <= _LIGHT_AREA * a.size
    light = dark & small & (bright_peak >= _LIGHT_PEAK) & (dim_peak <= 0.5 * bright_peak)
    light[0] = False
    return float(sizes[light].sum()) / float(a.size)  # synchronize


def _orientation_field(image, xp):
    """Doubled-angle gradient orientation, normalised by the local gradient energy.

    The doubled angle ignores the gradient's sign (a skyline dark on a bright sky by day
    and bright on a dark sky by night has the same orientation); the normalisation
    ignores local contrast, so light and shadow leave the field unchanged.
    """
    gy, gx = xp.gradient(image)
    energy = gaussian_blur(gx * gx + gy * gy, _STRUCTURE_SIGMA, xp=xp) + _STRUCTURE_EPS**2
    u, v = (gx * gx - gy * gy) / energy, 2.0 * gx * gy / energy
    return u - u.mean(), v - v.mean()


def _structure(a, b, xp):
    """Correlation of two frames' orientation fields: near 1 for the same scene under
    any light, near 0 for unrelated scenes (1.0 when both are flat)."""
    ua, va = _orientation_field(a, xp)
    ub, vb = _orientation_field(b, xp)
    den = float(xp.sqrt(((ua * ua + va * va).sum()) * ((ub * ub + vb * vb).sum())))  # synchronize
    return float((ua * ub + va * vb).sum()) / den if den > 1e-12 else 1.0


def _phase_shift(a, b, xp):
    """Translation registering ``b`` onto ``a`` (``a[y, x] ~ b[y - sy, x - sx]``) and its peak.

    Phase correlation with a parabolic fit around the peak: sub-pixel precision for
    a few FFTs, where the upsampled DFT of :func:`framediff.kernels.align.phase_correlation`
    costs ten times more at this size.
    """
    fa, fb = xp.fft.fft2(a - a.mean()), xp.fft.fft2(b - b.mean())
    cross = fa * xp.conj(fb)
    cross /= xp.maximum(xp.abs(cross), 1e-12)
    surface = xp.fft.ifft2(cross).real
    h, w = surface.shape
    flat_index = int(xp.argmax(surface))  # synchronize
    py, px = divmod(flat_index, w)
    peak = float(surface[py, px])  # synchronize

    def refine(before, centre, after):
        den = before - 2.0 * centre + after
        return 0.0 if abs(den) < 1e-12 else max(-0.5, min(0.5, 0.5 * (before - after) / den))

    dy = refine(float(surface[(py - 1) % h, px]), peak, float(surface[(py + 1) % h, px]))  # synchronize
    dx = refine(float(surface[py, (px - 1) % w]), peak, float(surface[py, (px + 1) % w]))  # synchronize
    sy = (py + h // 2) % h - h // 2 + dy  # the shift modulo the size, in (-size/2, size/2]
    sx = (px + w // 2) % w - w // 2 + dx
    return float(sy), float(sx), max(0.0, min(1.0, peak))


def thumbnail(image, *, data_range: float, xp=None):
    """A ``THUMB_SIDE``-pixel overview of a gray frame, in 0..1, as float64.

    Parameters
    ----------
    image : array, shape (H, W)
    data_range : float
        Intensity range of ``image`` (255 for uint8).
    xp : module, optional

    Returns
    -------
    numpy.ndarray of float64
        At most ``THUMB_SIDE`` pixels on the long side; on the host, because the
        decision stage keeps a few of them per row.
    """
    xp = array_namespace(image, xp=xp)
    return to_numpy(_small(image, THUMB_SIDE, float(data_range), xp, min_side=1))  # synchronize


def decision_features(
    a,
    b,
    *,
    data_range: float,
    side: int = 160,
    sigma: float = 1.0,
    level: float = 0.04,
    noise_factor: float = 4.0,
    min_area: float = 0.0006,
    xp=None,
):
    """Measure one pair of gray frames for the change decision.

    Parameters
    ----------
    a, b : array, shape (H, W)
        Gray frames of one shape, ``a`` the earlier one; any real dtype.
    data_range : float
        Intensity range (255 for uint8); every feature is a fraction of it.
    side : int
        Long side, in pixels, the frames are reduced to (block means) before comparing.
    sigma : float
        Gaussian blur at the reduced scale, in pixels, against noise and dithering.
    level : float
        Smallest residual (fraction of the range) a changed pixel needs, whatever
        the noise; the pair's own noise raises it to ``noise_factor * noise``.
    noise_factor : float
        How many robust standard deviations of the residual a changed pixel needs.
    min_area : float
        Smallest region, as a fraction of the reduced frame, that counts.
    xp : module, optional
        ``numpy`` or ``cupy``; detected from the frames when omitted.

    Returns
    -------
    dict of str -> float
        The keys of :data:`DECISION_FEATURES`:

        ``l1``: mean ``|a - b|`` at the reduced scale. ``l1_lighting``: the same after
        mapping ``a`` onto ``b``'s intensity quantiles (what a global brightness,
        contrast, gamma or exposure change leaves). ``corr``: Pearson correlation of
        the reduced frames (0 when one is flat), blind to gain and offset. ``emd``:
        earth mover's distance of the 256-level intensity histograms, in 0..1 -- a
        ground distance, so empty bins of palette images cost nothing. ``noise``:
        robust standard deviation (1.4826 MAD) of the lighting residual.
        ``area``, ``regions``, ``largest``: changed regions of the lighting residual
        (fraction of the frame, count, largest). ``region_corr``: correlation of
        the two frames' texture (what a 2-pixel blur removes) inside those regions
        (1.0 without regions): high when light changed on the same things, low when
        something new is there. ``shift``, ``align_peak``: phase
        correlation of the reduced frames (pixels at the reduced scale, peak in
        0..1). ``area_shifted``: changed-region area after also undoing the shift.
        ``flat_a``, ``flat_b``: 1.0 when the frame is flat (a black or grey card).
        ``structure``: correlation of the frames' gradient orientations, normalised
        for local contrast and blind to the gradient's sign (no shift undone): near 1
        for the same scene under any light, near 0 for unrelated scenes.
        ``area_local``, ``largest_local``: changed regions left when a pixel must also
        escape a smooth local gain/offset illumination field (robust fit, windows of
        21 reduced pixels): what neither light nor shadow explains.
        ``area_light``: the part of ``area_local`` that lights switching on or off in
        a dark scene explain (a region that is a highlight against its surroundings
        in the frame where it is bright, and not in the other).
        ``dark_change``: 1.0 when exactly one frame is a dark scene (its brightest
        tenth under 60 % of the range: night, dusk), the other not; looked at only
        where ``area_local`` is left (0.0 otherwise).

    Raises
    ------
    ValueError
        The frames differ in shape or are not 2-D, or ``data_range`` is not positive.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> a = rng.integers(0, 256, (64, 64)).astype(np.uint8)
    >>> f = decision_features(a, a, data_range=255)
    >>> f["l1"], f["area"], f["regions"]
    (0.0, 0.0, 0)
    """
    xp = array_namespace(a, b, xp=xp)
    if a.shape != b.shape:
        raise ValueError(f"frames differ in shape: {a.shape} vs {b.shape}")
    if a.ndim != 2:
        raise ValueError(f"expected gray frames of shape (H, W), got {a.shape}")
    data_range = float(data_range)
    if not data_range > 0:
        raise ValueError(f"data_range must be > 0, got {data_range}")

    ra, rb = _small(a, side, data_range, xp), _small(b, side, data_range, xp)
    # Phase correlation wants the sharp overview; everything else the blurred one.
    shift_y, shift_x, peak = _phase_shift(ra, rb, xp)
    sa = gaussian_blur(ra, sigma, xp=xp) if sigma > 0 else ra
    sb = gaussian_blur(rb, sigma, xp=xp) if sigma > 0 else rb
    std_a, std_b = float(sa.std()), float(sb.std())  # synchronize
    flat_a, flat_b = std_a < _FLAT_STD, std_b < _FLAT_STD
    out = {"l1": float(xp.abs(sa - sb).mean())}  # synchronize

    # Lighting: a monotone map explains b from a -- unless a is flat, since a flat
    # frame maps onto nothing (a cut from a black card is not lighting).
    cdf_a, cdf_b = _cdf(sa, xp), _cdf(sb, xp)
    mapped = sa if flat_a else _monotone_map(sa, sb, cdf_a, cdf_b, xp)
    signed = mapped - sb
    residual = xp.abs(signed)
    out["l1_lighting"] = float(residual.mean())  # synchronize
    if flat_a or flat_b:
        out["corr"] = 1.0 if flat_a and flat_b else 0.0
    else:
        ca, cb = sa - sa.mean(), sb - sb.mean()
        out["corr"] = float((ca * cb).mean() / (std_a * std_b))  # synchronize
    # Earth mover's distance of the intensity distributions: the area between CDFs.
    out["emd"] = float(xp.abs(cdf_a - cdf_b).sum() / _LEVELS)  # synchronize
    noise = _MAD_TO_SIGMA * float(xp.median(xp.abs(signed - xp.median(signed))))  # synchronize
    out["noise"] = noise
    # The pair's own noise raises the level; capped, since two unrelated frames have a
    # huge "noise" (their whole residual) and must still show as changed regions.
    threshold = max(level, min(noise_factor * noise, _MAX_LEVEL))
    min_pixels = max(4.0, min_area * sa.size)
    out["area"], out["regions"], out["largest"], mask = _regions(residual, threshold, min_pixels, xp)
    # Inside the changed regions: light falling on the same things keeps their texture
    # (the high-pass parts correlate, whatever the local gain); a new object replaces it.
    if mask is not None and out["area"] > 0:
        texture_a = sa - gaussian_blur(sa, _TEXTURE_SIGMA, xp=xp)
        texture_b = sb - gaussian_blur(sb, _TEXTURE_SIGMA, xp=xp)
        out["region_corr"] = _masked_corr(texture_a, texture_b, mask, xp)
    else:
        out["region_corr"] = 1.0

    shift_y, shift_x = float(shift_y), float(shift_x)
    out["shift"] = float(np.hypot(shift_y, shift_x))
    out["align_peak"] = float(peak)
    out["area_shifted"] = out["area"]
    if out["shift"] >= 0.5 and out["area"] > 0:
        moved = _shifted_residual(mapped, sb, shift_y, shift_x, xp)
        if moved is not None:
            out["area_shifted"] = _regions(moved, threshold, min_pixels, xp)[0]
    out["flat_a"], out["flat_b"] = float(flat_a), float(flat_b)
    out["structure"] = _structure(sa, sb, xp)
    out["area_local"], out["largest_local"] = out["area"], out["largest"]
    out["area_light"] = out["dark_change"] = 0.0
    if out["area"] > 0 and not flat_a:
        # A pixel is changed only when neither the global map nor a local illumination
        # field explains it: sun, shadow, haze and weather bend the light locally.
        local = xp.minimum(residual, _local_illumination_residual(sa, sb, xp))
        area, _, largest, local_mask = _regions(local, threshold, min_pixels, xp)
        out["area_local"], out["largest_local"] = area, largest
        if area > 0:
            dark_a = float(xp.percentile(sa, 90)) < _DARK_P90  # synchronize
            dark_b = float(xp.percentile(sb, 90)) < _DARK_P90  # synchronize
            out["dark_change"] = float(dark_a != dark_b)
            out["area_light"] = _light_area(sa, sb, signed, local_mask, dark_a, dark_b, xp)
    return {key: out[key] for key in DECISION_FEATURES}
