"""Sparse optical flow: Shi-Tomasi corners tracked by pyramidal Lucas-Kanade.

Everything is written against ``xp`` (NumPy or CuPy) and vectorized over points: the
windows of all points are gathered at once with bilinear sampling, so one iteration
of the tracker is a handful of array operations whatever the number of points.
The algorithms and their constants follow OpenCV's ``goodFeaturesToTrack`` and
``calcOpticalFlowPyrLK`` [1]_ [2]_, so results can be checked against OpenCV, but no
OpenCV code is called.

Points are ``(x, y)`` pairs -- column, then row -- in pixel units with the centre of
the top-left pixel at (0, 0), as in OpenCV.

References
----------
.. [1] J. Shi and C. Tomasi, "Good features to track," Proc. IEEE CVPR 1994, 593-600.
   :DOI:`10.1109/CVPR.1994.323794`
.. [2] J.-Y. Bouguet, "Pyramidal implementation of the affine Lucas Kanade feature
   tracker: description of the algorithm," Intel Corporation, Microprocessor Research
   Labs (2001).
"""

from __future__ import annotations

import math

import numpy as np

from .backend import array_namespace, to_numpy

__all__ = ["FLOW_STATS", "flow_stats", "good_features_to_track", "lucas_kanade"]

#: The keys :func:`flow_stats` returns, in a stable order.
FLOW_STATS = ("flow_median", "flow_max", "flow_moving_fraction", "flow_points")

# OpenCV's fixed-point LK works with Scharr derivatives scaled by 32 and products
# scaled by 2**-20, so its gradient matrix is ours / 1024 for 8-bit intensities.
_CV_GRADIENT_SCALE = 1024.0
_FLT_EPSILON = float(np.finfo(np.float32).eps)


# --- small separable filters (reflect-101 borders, as OpenCV's BORDER_DEFAULT) -------


def _correlate1d(image, taps, axis, xp):
    """Correlate ``image`` along ``axis`` with the odd-length ``taps``."""
    radius = len(taps) // 2
    pad = [(0, 0), (0, 0)]
    pad[axis] = (radius, radius)
    padded = xp.pad(image, pad, mode="reflect")  # numpy 'reflect' = OpenCV reflect-101
    n = image.shape[axis]
    out = None
    for i, w in enumerate(taps):
        if w == 0:
            continue
        part = padded[i : i + n] if axis == 0 else padded[:, i : i + n]
        out = w * part if out is None else out + w * part
    return out


def _separable(image, row_taps, col_taps, xp):
    """``row_taps`` along y (axis 0), then ``col_taps`` along x (axis 1)."""
    return _correlate1d(_correlate1d(image, row_taps, 0, xp), col_taps, 1, xp)


def _pyr_down(image, xp):
    """OpenCV ``pyrDown``: 5-tap binomial blur, then every second row and column."""
    taps = (1 / 16, 4 / 16, 6 / 16, 4 / 16, 1 / 16)
    return _separable(image, taps, taps, xp)[::2, ::2]


def _scharr(image, xp):
    """Derivatives d/dx and d/dy in intensity per pixel (Scharr 3x3, normalized)."""
    smooth = (3 / 16, 10 / 16, 3 / 16)
    diff = (-0.5, 0.0, 0.5)
    return _separable(image, smooth, diff, xp), _separable(image, diff, smooth, xp)


def _box_sum(image, size, xp):
    """Unnormalized ``size`` x ``size`` box sum (anchor at the centre, OpenCV's)."""
    if size % 2 == 1:
        taps = (1.0,) * size
        return _separable(image, taps, taps, xp)
    # Even box: OpenCV anchors at size // 2, i.e. offsets -size//2 .. size//2 - 1.
    taps = (1.0,) * size + (0.0,)
    return _separable(image, taps, taps, xp)


def _bilinear(image, x, y, xp):
    """Sample ``image`` at float coordinates; outside pixels repeat the edge."""
    h, w = image.shape
    x0f = xp.floor(x)
    y0f = xp.floor(y)
    fx = x - x0f
    fy = y - y0f
    x0 = xp.clip(x0f, 0, w - 1).astype(xp.intp)
    x1 = xp.clip(x0f + 1, 0, w - 1).astype(xp.intp)
    y0 = xp.clip(y0f, 0, h - 1).astype(xp.intp)
    y1 = xp.clip(y0f + 1, 0, h - 1).astype(xp.intp)
    flat = image.ravel()
    top = flat[y0 * w + x0] * (1 - fx) + flat[y0 * w + x1] * fx
    bottom = flat[y1 * w + x0] * (1 - fx) + flat[y1 * w + x1] * fx
    return top * (1 - fy) + bottom * fy


def _at_least(value, minimum, name, cast):
    value = cast(value)
    if not value >= minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def _as_float_image(image, name, xp):
    if image.ndim != 2:
        raise ValueError(f"{name} must be a 2-D gray image, got shape {image.shape}")
    return image.astype(xp.float64, copy=False)


# --- corners ----------------------------------------------------------------------


def _min_eigenvalue_map(image, block_size, xp):
    """Smaller eigenvalue of the structure tensor summed over ``block_size`` blocks."""
    smooth = (0.25, 0.5, 0.25)
    diff = (-0.5, 0.0, 0.5)
    dx = _separable(image, smooth, diff, xp)  # Sobel 3x3, up to a constant factor
    dy = _separable(image, diff, smooth, xp)
    a = _box_sum(dx * dx, block_size, xp)
    b = _box_sum(dx * dy, block_size, xp)
    c = _box_sum(dy * dy, block_size, xp)
    return 0.5 * (a + c) - xp.sqrt(0.25 * (a - c) ** 2 + b * b)


def _local_maxima(values, xp):
    """``values`` equal to the maximum of their 3x3 neighbourhood (outside: -inf)."""
    padded = xp.pad(values, 1, mode="constant", constant_values=-np.inf)
    rows = xp.maximum(xp.maximum(padded[:-2], padded[1:-1]), padded[2:])
    dilated = xp.maximum(xp.maximum(rows[:, :-2], rows[:, 1:-1]), rows[:, 2:])
    return values == dilated


def _enforce_min_distance(ys, xs, shape, min_distance, max_corners):
    """Greedy selection, strongest first: drop corners closer than ``min_distance``."""
    keep = []
    taken = np.zeros(shape, dtype=bool)
    r = int(math.ceil(min_distance))
    off = np.arange(-r, r + 1)
    disk = (off[:, None] ** 2 + off[None, :] ** 2) < min_distance**2
    h, w = shape
    for i, (y, x) in enumerate(zip(ys.tolist(), xs.tolist())):
        if taken[y, x]:
            continue
        keep.append(i)
        if max_corners and len(keep) >= max_corners:
            break
        y0, y1, x0, x1 = max(y - r, 0), min(y + r + 1, h), max(x - r, 0), min(x + r + 1, w)
        taken[y0:y1, x0:x1] |= disk[y0 - y + r : y1 - y + r, x0 - x + r : x1 - x + r]
    return np.asarray(keep, dtype=np.intp)


def good_features_to_track(
    image,
    *,
    max_corners: int = 500,
    quality_level: float = 0.01,
    min_distance: float = 7,
    block_size: int = 7,
    xp=None,
):
    """Strong corners of an image (Shi-Tomasi), strongest first.

    Parameters
    ----------
    image : array, shape (H, W)
        Gray image, any real dtype.
    max_corners : int
        At most this many corners; ``0`` means no limit.
    quality_level : float
        Corners whose response (the smaller eigenvalue of the gradient structure
        tensor) is below ``quality_level`` times the best response are rejected.
    min_distance : float
        Corners closer than this (Euclidean, pixels) to a stronger accepted corner are
        dropped.
    block_size : int
        Side of the square over which the structure tensor is summed.
    xp : module, optional
        ``numpy`` or ``cupy``; detected from ``image`` when omitted.

    Returns
    -------
    array of float64, shape (N, 2)
        ``(x, y)`` of each corner (integer pixel positions), strongest first.

    Raises
    ------
    ValueError
        ``image`` is not 2-D, or an option is out of range.

    Notes
    -----
    The steps of OpenCV's ``goodFeaturesToTrack`` [1]_: 3x3 Sobel derivatives,
    structure tensor summed over ``block_size`` blocks (reflect-101 borders),
    response = smaller eigenvalue; responses not above ``quality_level * max`` are
    zeroed; a corner is a non-zero response equal to its 3x3 maximum, away from the
    one-pixel border; corners are sorted by response and accepted greedily if no
    accepted corner is within ``min_distance``. The response map and maxima are
    computed with ``xp``; only the candidate list comes to the host for the greedy
    step.

    Examples
    --------
    >>> import numpy as np
    >>> image = np.zeros((32, 32)); image[8:24, 8:24] = 1.0
    >>> good_features_to_track(image, max_corners=4, min_distance=5).shape
    (4, 2)
    """
    xp = array_namespace(image, xp=xp)
    img = _as_float_image(image, "image", xp)
    max_corners = _at_least(max_corners, 0, "max_corners", int)
    quality_level = float(quality_level)
    if not 0.0 < quality_level < 1.0:
        raise ValueError(f"quality_level must be in (0, 1), got {quality_level}")
    min_distance = _at_least(min_distance, 0, "min_distance", float)
    block_size = _at_least(block_size, 1, "block_size", int)
    h, w = img.shape
    if h < 3 or w < 3:
        return xp.zeros((0, 2), dtype=xp.float64)

    eig = _min_eigenvalue_map(img, block_size, xp)
    best = eig.max()
    eig = xp.where(eig > best * quality_level, eig, 0.0)
    candidate = (eig > 0) & _local_maxima(eig, xp)
    candidate[0, :] = candidate[-1, :] = False
    candidate[:, 0] = candidate[:, -1] = False
    flat = xp.nonzero(candidate.ravel())[0]
    # Strongest first; ties: later raster position first, as OpenCV's sort does.
    order = xp.lexsort(xp.stack([-flat, -eig.ravel()[flat]]))
    flat = to_numpy(flat[order])  # synchronize
    ys, xs = np.divmod(flat, w)
    if min_distance >= 1:
        keep = _enforce_min_distance(ys, xs, (h, w), min_distance, max_corners)
        ys, xs = ys[keep], xs[keep]
    elif max_corners:
        ys, xs = ys[:max_corners], xs[:max_corners]
    return xp.asarray(np.stack([xs, ys], axis=1).astype(np.float64))


# --- pyramidal Lucas-Kanade ---------------------------------------------------------


def _pyramid_depth(shape, win_size, max_level):
    """Deepest level whose size still exceeds the window (OpenCV's rule)."""
    h, w = shape
    level = 0
    while level < max_level:
        h, w = (h + 1) // 2, (w + 1) // 2
        if w <= win_size or h <= win_size:
            break
        level += 1
    return level


def _window_in_range(points, half, win_size, w, h, xp):
    """OpenCV's test that a window is not too far outside the image to track."""
    corner = xp.floor(points - half)
    x, y = corner[:, 0], corner[:, 1]
    return (x >= -win_size) & (x < w) & (y >= -win_size) & (y < h)


def _pyramid(image, depth, xp):
    levels = [image]
    for _ in range(depth):
        levels.append(_pyr_down(levels[-1], xp))
    return levels


def lucas_kanade(
    prev,
    next,
    points,
    *,
    win_size: int = 21,
    max_level: int = 3,
    iterations: int = 20,
    epsilon: float = 0.01,
    min_eig_threshold: float = 1e-4,
    xp=None,
):
    """Track points from ``prev`` to ``next`` with pyramidal Lucas-Kanade.

    Parameters
    ----------
    prev, next : array, shape (H, W)
        Gray images of one shape, any real dtype, in the same intensity units.
    points : array, shape (N, 2)
        ``(x, y)`` positions in ``prev``, e.g. from :func:`good_features_to_track`.
    win_size : int
        Side of the square window around each point (odd; an even value is used as
        ``win_size + 1``).
    max_level : int
        Coarsest pyramid level (0: no pyramid). Levels whose size would not exceed
        ``win_size`` are not built.
    iterations : int
        Maximum Newton-Raphson iterations per level.
    epsilon : float
        A point stops iterating at a level once its update is shorter than this
        (pixels of that level).
    min_eig_threshold : float
        A point is lost when the smaller eigenvalue of its window's gradient matrix,
        divided by the window area and by 1024, is below this; for 8-bit intensities
        this is OpenCV's ``minEigThreshold`` (same default).
    xp : module, optional
        ``numpy`` or ``cupy``; detected from the images when omitted.

    Returns
    -------
    new_points : array of float64, shape (N, 2)
        ``(x, y)`` positions in ``next``; the flow is ``new_points - points``. Lost
        points keep their last estimate.
    status : array of bool, shape (N,)
        ``True`` where the point was tracked.

    Raises
    ------
    ValueError
        Images that are not 2-D or differ in shape, ``points`` not of shape (N, 2),
        or an option out of range.

    Notes
    -----
    Bouguet's algorithm [2]_, with OpenCV's choices: an image pyramid of 5-tap
    binomial ``pyrDown`` levels; Scharr derivatives of ``prev`` at each level; for
    each level from the coarsest, the window of ``prev`` around the point and its
    gradients are sampled bilinearly once, giving the 2x2 gradient matrix ``G``; the
    window of ``next`` around the current estimate is resampled at every iteration
    and the estimate moves by ``G^-1 b`` with ``b = sum (J - I) grad I``; the result,
    doubled, seeds the next finer level. An iteration whose update nearly cancels
    the previous one (both components within 0.01) ends with half a step, as in
    OpenCV. A point is lost at level 0 when its window leaves the image by more
    than a window, or ``G`` is near singular (see ``min_eig_threshold``); near the
    border, samples outside the image repeat the edge pixel (OpenCV reflects), so
    flows within half a window of the border can differ slightly from OpenCV's.

    Examples
    --------
    >>> import numpy as np
    >>> yy, xx = np.mgrid[:64, :64]
    >>> prev = np.sin(xx / 3.0) + np.cos(yy / 4.0)
    >>> next = np.sin((xx - 1.5) / 3.0) + np.cos((yy - 0.5) / 4.0)
    >>> new, ok = lucas_kanade(prev, next, np.array([[32.0, 32.0]]), min_eig_threshold=0)
    >>> np.round(new - [32, 32], 2).tolist(), ok.tolist()
    ([[1.5, 0.5]], [True])
    """
    xp = array_namespace(prev, next, points, xp=xp)
    I0 = _as_float_image(prev, "prev", xp)
    J0 = _as_float_image(next, "next", xp)
    if I0.shape != J0.shape:
        raise ValueError(f"images differ in shape: {I0.shape} vs {J0.shape}")
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f"points must have shape (N, 2), got {points.shape}")
    win_size = _at_least(win_size, 3, "win_size", int) | 1
    max_level = _at_least(max_level, 0, "max_level", int)
    iterations = _at_least(iterations, 1, "iterations", int)
    epsilon = _at_least(epsilon, 0, "epsilon", float)
    min_eig_threshold = float(min_eig_threshold)

    pts = points.astype(xp.float64)
    n_points = pts.shape[0]
    status = xp.ones(n_points, dtype=bool)
    if n_points == 0:
        return pts.copy(), status

    depth = _pyramid_depth(I0.shape, win_size, max_level)
    prev_pyr = _pyramid(I0, depth, xp)
    next_pyr = _pyramid(J0, depth, xp)
    half = (win_size - 1) // 2
    off = xp.arange(-half, half + 1, dtype=xp.float64)
    off_y, off_x = (o.ravel() for o in xp.meshgrid(off, off, indexing="ij"))
    area = float(win_size * win_size)

    guess = None
    for level in range(depth, -1, -1):
        I, J = prev_pyr[level], next_pyr[level]  # noqa: E741 (Lucas-Kanade's names for the two images)
        h, w = I.shape
        Ix, Iy = _scharr(I, xp)
        p = pts * (0.5**level)
        est = p.copy() if guess is None else guess * 2.0
        px = p[:, 0:1] + off_x
        py = p[:, 1:2] + off_y
        Iw = _bilinear(I, px, py, xp)
        Ixw = _bilinear(Ix, px, py, xp)
        Iyw = _bilinear(Iy, px, py, xp)
        a11 = (Ixw * Ixw).sum(axis=1)
        a12 = (Ixw * Iyw).sum(axis=1)
        a22 = (Iyw * Iyw).sum(axis=1)
        det = a11 * a22 - a12 * a12
        min_eig = (a11 + a22 - xp.sqrt((a11 - a22) ** 2 + 4.0 * a12 * a12)) / (2.0 * area)
        usable = (
            _window_in_range(p, half, win_size, w, h, xp)
            & (min_eig / _CV_GRADIENT_SCALE >= min_eig_threshold)
            & (det / _CV_GRADIENT_SCALE**2 >= _FLT_EPSILON)
        )
        if level == 0:
            status &= usable
        safe_det = xp.where(usable, det, 1.0)

        active = xp.nonzero(usable)[0]
        prev_delta = xp.zeros((n_points, 2), dtype=xp.float64)
        for it in range(iterations):
            if active.shape[0] == 0:  # synchronize
                break
            e = est[active]
            ok = _window_in_range(e, half, win_size, w, h, xp)
            if level == 0:
                status[active[~ok]] = False
            Jw = _bilinear(J, e[:, 0:1] + off_x, e[:, 1:2] + off_y, xp)
            diff = Jw - Iw[active]
            b1 = (diff * Ixw[active]).sum(axis=1)
            b2 = (diff * Iyw[active]).sum(axis=1)
            d = safe_det[active]
            delta = xp.stack(
                [(a12[active] * b2 - a22[active] * b1) / d, (a12[active] * b1 - a11[active] * b2) / d], axis=1
            )
            delta = xp.where(ok[:, None], delta, 0.0)
            est[active] = e + delta
            small = (delta * delta).sum(axis=1) <= epsilon * epsilon
            if it > 0:
                back = xp.all(xp.abs(delta + prev_delta[active]) < 0.01, axis=1) & ~small
                est[active[back]] -= 0.5 * delta[back]
                small |= back
            prev_delta[active] = delta
            active = active[ok & ~small]
        guess = est
    return guess, status


# --- summary ---------------------------------------------------------------------------


def flow_stats(
    prev,
    next,
    *,
    max_corners: int = 500,
    quality_level: float = 0.01,
    min_distance: float = 7,
    block_size: int = 7,
    win_size: int = 21,
    max_level: int = 3,
    iterations: int = 20,
    epsilon: float = 0.01,
    moving_threshold: float = 0.5,
    xp=None,
):
    """Summary of the sparse optical flow between images: how much, and how much moves.

    Corners of ``prev`` (:func:`good_features_to_track`) are tracked into ``next``
    (:func:`lucas_kanade`); statistics are over the tracked points' flow magnitudes.

    Parameters
    ----------
    prev, next : array, shape (H, W) or (B, H, W)
        Gray images (a batch is summarized pair by pair).
    max_corners, quality_level, min_distance, block_size : optional
        Passed to :func:`good_features_to_track`.
    win_size, max_level, iterations, epsilon : optional
        Passed to :func:`lucas_kanade`.
    moving_threshold : float
        A point moves when its flow is longer than this many pixels.
    xp : module, optional
        ``numpy`` or ``cupy``; detected from the images when omitted.

    Returns
    -------
    dict of str -> array of shape () or (B,)
        ``flow_median`` and ``flow_max``: median and maximum flow magnitude in pixels
        (float64); ``flow_moving_fraction``: fraction of tracked points that move;
        ``flow_points``: number of tracked points (int64). With no tracked point the
        three float values are NaN and ``flow_points`` is 0.

    Raises
    ------
    ValueError
        Images that differ in shape or are not 2-D or 3-D, or an option out of range.
    """
    xp = array_namespace(prev, next, xp=xp)
    if prev.shape != next.shape:
        raise ValueError(f"images differ in shape: {prev.shape} vs {next.shape}")
    if prev.ndim not in (2, 3):
        raise ValueError(f"expected images of shape (H, W) or (B, H, W), got {prev.shape}")
    moving_threshold = float(moving_threshold)
    single = prev.ndim == 2
    a_batch = prev[None] if single else prev
    b_batch = next[None] if single else next
    rows = []
    for a, b in zip(a_batch, b_batch):
        pts = good_features_to_track(
            a,
            max_corners=max_corners,
            quality_level=quality_level,
            min_distance=min_distance,
            block_size=block_size,
            xp=xp,
        )
        new, ok = lucas_kanade(
            a, b, pts, win_size=win_size, max_level=max_level, iterations=iterations, epsilon=epsilon, xp=xp
        )
        mag = xp.sqrt(((new - pts) ** 2).sum(axis=1))[ok]
        count = mag.shape[0]
        if count == 0:
            rows.append((xp.asarray(math.nan), xp.asarray(math.nan), xp.asarray(math.nan), 0))
        else:
            rows.append((xp.median(mag), mag.max(), (mag > moving_threshold).mean(), count))
    out = {
        "flow_median": xp.stack([r[0] for r in rows]).astype(xp.float64),
        "flow_max": xp.stack([r[1] for r in rows]).astype(xp.float64),
        "flow_moving_fraction": xp.stack([r[2] for r in rows]).astype(xp.float64),
        "flow_points": xp.asarray([r[3] for r in rows], dtype=xp.int64),
    }
    if single:
        out = {key: value[0] for key, value in out.items()}
    return out
