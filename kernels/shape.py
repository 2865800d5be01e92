"""Bringing two images to one shape: area resizing, cropping, and a policy for pairs.

Difference measures need two images of the same shape. :func:`reconcile_shapes`
refuses a mismatch by default (:class:`ShapeMismatchError`) and otherwise resizes or
crops as asked, returning a short description of what it did so that a report can
say so.
"""

from __future__ import annotations

import numbers

import numpy as np

from .backend import array_namespace, fused_kernels, is_cupy

__all__ = [
    "CROP_ANCHORS",
    "RESIZE_POLICIES",
    "ShapeMismatchError",
    "crop",
    "reconcile_shapes",
    "reduce_to",
    "resize_area",
]

CROP_ANCHORS = ("center", "topleft")
RESIZE_POLICIES = ("error", "first", "smallest")


class ShapeMismatchError(ValueError):
    """Two images that must have one shape do not, and no resize or crop was asked for."""


def _check_image(image, name="image"):
    if image.ndim not in (2, 3):
        raise ValueError(f"{name} must have shape (H, W) or (H, W, C), got {image.shape}")


def _target_shape(shape, name="shape"):
    try:
        h, w = shape
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a pair (height, width), got {shape!r}") from None
    for v in (h, w):
        if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
            raise ValueError(f"{name} must be a pair of positive integers, got {shape!r}")
    return int(h), int(w)


def _hw(shape) -> str:
    return f"{shape[0]}x{shape[1]}"


def _area_axis0(x, n_out, xp):
    """Area-average axis 0 of ``x`` (float64) down to ``n_out`` samples (n_out <= n_in)."""
    n_in = x.shape[0]
    if n_in % n_out == 0:  # integer factor: exact block mean
        f = n_in // n_out
        return x.reshape((n_out, f) + x.shape[1:]).mean(axis=1)
    # Each output sample averages the source interval [i*s, (i+1)*s), pixels weighted by
    # their overlap. The integral of the piecewise-constant signal up to position e is
    # cumsum[floor(e)] + frac(e) * x[floor(e)].
    scale = n_in / n_out
    edges = np.arange(n_out + 1, dtype=np.float64) * scale
    k = np.minimum(np.floor(edges).astype(np.intp), n_in)
    frac = edges - k
    frac[k == n_in] = 0.0
    k_pix = np.minimum(k, n_in - 1)
    csum = xp.concatenate([xp.zeros((1,) + x.shape[1:], dtype=x.dtype), xp.cumsum(x, axis=0)])
    bshape = (n_out + 1,) + (1,) * (x.ndim - 1)
    frac_x = xp.asarray(frac).reshape(bshape)
    integral = xp.take(csum, xp.asarray(k), axis=0) + frac_x * xp.take(x, xp.asarray(k_pix), axis=0)
    return (integral[1:] - integral[:-1]) / scale


def _linear_area_axis0(x, n_out, xp):
    """OpenCV's INTER_AREA rule when it does not average: 2-tap weights along axis 0."""
    n_in = x.shape[0]
    inv_scale = n_out / n_in
    scale = 1.0 / inv_scale  # as OpenCV computes it: floor() below depends on the last bit
    d = np.arange(n_out, dtype=np.float64)
    s0 = np.floor(d * scale).astype(np.intp)
    f = ((d + 1) - (s0 + 1) * inv_scale).astype(np.float32).astype(np.float64)
    f = np.where(f <= 0, 0.0, f - np.floor(f))
    last = s0 >= n_in - 1
    f[last] = 0.0
    s0 = np.minimum(s0, n_in - 1)
    s1 = np.minimum(s0 + 1, n_in - 1)
    bshape = (n_out,) + (1,) * (x.ndim - 1)
    w1 = xp.asarray(f).reshape(bshape)
    return xp.take(x, xp.asarray(s0), axis=0) * (1.0 - w1) + xp.take(x, xp.asarray(s1), axis=0) * w1


def resize_area(image, shape, *, xp=None):
    """Resize an image with area interpolation, as OpenCV's ``INTER_AREA``.

    Parameters
    ----------
    image : array, shape (H, W) or (H, W, C)
        Any real dtype; computed in float64.
    shape : (int, int)
        Output ``(height, width)``.
    xp : module, optional
        ``numpy`` or ``cupy``; detected from ``image`` when omitted.

    Returns
    -------
    array of float64, shape ``(height, width)`` or ``(height, width, C)``
        No rounding or clipping is applied, whatever the input dtype.

    Raises
    ------
    ValueError
        ``shape`` is not a pair of positive integers, or the image is not 2-D or 3-D.

    Notes
    -----
    When neither axis grows (``height <= H`` and ``width <= W``) every output pixel
    is the mean of the source area it covers, source pixels weighted by their overlap
    with it [1]_; for integer factors that is the exact block mean. When an axis grows,
    OpenCV's ``INTER_AREA`` falls back to a bilinear-like two-tap rule (each output
    pixel copies its source pixel, and pixels straddling a source boundary blend the
    two neighbours by overlap); that rule is reproduced here, on both axes, as OpenCV
    does. The result equals ``cv2.resize(image, (width, height),
    interpolation=cv2.INTER_AREA)`` on float input up to OpenCV's float32 rounding,
    except that OpenCV drops a partial pixel overlapping a cell by less than 1e-3,
    which can only happen for output sizes above 1000.

    References
    ----------
    .. [1] OpenCV, ``cv::resize``, ``INTER_AREA``: "resampling using pixel area
       relation", https://docs.opencv.org/4.x/da/d54/group__imgproc__transform.html

    Examples
    --------
    >>> import numpy as np
    >>> resize_area(np.arange(16.0).reshape(4, 4), (2, 2))
    array([[ 2.5,  4.5],
           [10.5, 12.5]])
    """
    xp = array_namespace(image, xp=xp)
    _check_image(image)
    h, w = _target_shape(shape)
    x = image.astype(xp.float64, copy=False)
    H, W = x.shape[:2]
    if (h, w) == (H, W):
        return x.copy() if x is image else x
    if h <= H and w <= W:
        axis_fn = _area_axis0
    else:
        axis_fn = _linear_area_axis0
    if h != H:
        x = axis_fn(x, h, xp)
    if w != W:
        x = xp.moveaxis(axis_fn(xp.moveaxis(x, 1, 0), w, xp), 0, 1)
    return xp.ascontiguousarray(x)


def crop(image, shape, *, anchor: str = "center"):
    """Cut a window of ``shape`` out of an image (a view, no copy).

    Parameters
    ----------
    image : array, shape (H, W) or (H, W, C)
    shape : (int, int)
        Window ``(height, width)``; no larger than the image.
    anchor : {'center', 'topleft'}
        ``'center'`` centres the window (an odd margin leaves the extra pixel at the
        bottom/right); ``'topleft'`` keeps the top-left corner.

    Returns
    -------
    array, shape ``(height, width)`` or ``(height, width, C)``
        A view of ``image``.

    Raises
    ------
    ValueError
        Unknown ``anchor``, a window larger than the image, or a bad ``shape``.

    Examples
    --------
    >>> import numpy as np
    >>> crop(np.arange(16).reshape(4, 4), (2, 2))
    array([[ 5,  6],
           [ 9, 10]])
    """
    _check_image(image)
    h, w = _target_shape(shape)
    anchor = anchor.lower()
    H, W = image.shape[:2]
    if h > H or w > W:
        raise ValueError(f"cannot crop {_hw((h, w))} out of an image of {_hw((H, W))}")
    if anchor == "center":
        top, left = (H - h) // 2, (W - w) // 2
    elif anchor == "topleft":
        top, left = 0, 0
    else:
        raise ValueError(f"unknown crop anchor {anchor!r}; expected one of {', '.join(CROP_ANCHORS)}")
    return image[top : top + h, left : left + w]


_crop = crop  # reconcile_shapes has a parameter named ``crop``


def _resize_like(image, shape, xp):
    """Area-resize and return the input dtype (integers rounded and clipped)."""
    out = resize_area(image, shape, xp=xp)
    dtype = np.dtype(str(image.dtype))
    if dtype.kind in "ui":
        info = np.iinfo(dtype)
        return xp.clip(xp.rint(out), info.min, info.max).astype(image.dtype)
    if dtype.kind == "b":
        return out >= 0.5
    return out.astype(image.dtype, copy=False)


def reconcile_shapes(a, b, *, resize="error", crop=None, xp=None):
    """Bring two images to one shape, or refuse, and say what was done.

    Parameters
    ----------
    a, b : array, shape (H, W) or (H, W, C)
        The two images; ``a`` is the reference. Their number of dimensions and
        channels must agree (convert to gray first otherwise).
    resize : {'error', 'first', 'smallest'} or (int, int), optional
        What to do when the shapes (height, width) differ:

        * ``'error'`` (default): raise :class:`ShapeMismatchError`.
        * ``'first'``: resize ``b`` to the shape of ``a``.
        * ``'smallest'``: resize the image with more pixels to the shape of the
          other (``b`` to ``a`` on a tie).
        * ``(height, width)``: resize both images to this shape, even when they
          already agree with each other.

        Resizing uses :func:`resize_area`; the result is converted back to the
        input dtype (integers rounded and clipped), so the pair keeps one dtype.
    crop : {None, 'center', 'topleft'}, optional
        When given, both images are first cropped to their common extent
        (smallest height, smallest width) with this anchor, see :func:`crop`. A
        ``(height, width)`` ``resize`` is applied after the crop; the other resize
        policies have nothing left to do.
    xp : module, optional
        ``numpy`` or ``cupy``; detected from the images when omitted.

    Returns
    -------
    a2, b2 : array
        The images, of one shape. Untouched images are returned as they are.
    action : str
        ``'none'``, or the steps taken joined by ``'; '``, e.g.
        ``'resize b 480x640->240x320'``, ``'crop center 480x600'`` (the shape both
        were cropped to), ``'resize a 480x640->100x100; resize b 240x320->100x100'``.

    Raises
    ------
    ShapeMismatchError
        The shapes differ and ``resize='error'`` with no ``crop``; or the number of
        dimensions or channels differs. The message names both shapes.
    ValueError
        Unknown ``resize`` or ``crop`` option.

    Examples
    --------
    >>> import numpy as np
    >>> a, b = np.zeros((4, 6)), np.ones((2, 3))
    >>> reconcile_shapes(a, b, resize="smallest")[2]
    'resize a 4x6->2x3'
    >>> reconcile_shapes(a, b, crop="topleft")[2]
    'crop topleft 2x3'
    """
    xp = array_namespace(a, b, xp=xp)
    _check_image(a, "a")
    _check_image(b, "b")
    if a.ndim != b.ndim or a.shape[2:] != b.shape[2:]:
        raise ShapeMismatchError(f"images differ in dimensions or channels: a {a.shape} vs b {b.shape}")
    target = None
    if isinstance(resize, str):
        resize = resize.lower()
        if resize not in RESIZE_POLICIES:
            raise ValueError(
                f"unknown resize policy {resize!r}; expected one of "
                f"{', '.join(RESIZE_POLICIES)} or a (height, width) pair"
            )
    else:
        try:
            target = _target_shape(resize, "resize")
        except ValueError:
            raise ValueError(
                f"unknown resize policy {resize!r}; expected one of "
                f"{', '.join(RESIZE_POLICIES)} or a (height, width) pair"
            ) from None
    if crop is not None:
        if not isinstance(crop, str) or crop.lower() not in CROP_ANCHORS:
            raise ValueError(f"unknown crop anchor {crop!r}; expected None or one of {', '.join(CROP_ANCHORS)}")
        crop = crop.lower()

    actions = []
    sa, sb = a.shape[:2], b.shape[:2]
    if crop is not None and sa != sb:
        common = (min(sa[0], sb[0]), min(sa[1], sb[1]))
        a = _crop(a, common, anchor=crop)
        b = _crop(b, common, anchor=crop)
        actions.append(f"crop {crop} {_hw(common)}")
        sa = sb = common

    if target is not None:
        for name, img in (("a", a), ("b", b)):
            if img.shape[:2] != target:
                actions.append(f"resize {name} {_hw(img.shape)}->{_hw(target)}")
        a = a if sa == target else _resize_like(a, target, xp)
        b = b if sb == target else _resize_like(b, target, xp)
    elif sa != sb:
        if resize == "error":
            raise ShapeMismatchError(
                f"images differ in shape: a {a.shape} vs b {b.shape}; "
                "pass resize='first', 'smallest' or (height, width), or crop='center'/'topleft'"
            )
        if resize == "smallest" and sa[0] * sa[1] <= sb[0] * sb[1]:
            actions.append(f"resize b {_hw(sb)}->{_hw(sa)}")
            b = _resize_like(b, sa, xp)
        elif resize == "smallest":
            actions.append(f"resize a {_hw(sa)}->{_hw(sb)}")
            a = _resize_like(a, sb, xp)
        else:  # 'first'
            actions.append(f"resize b {_hw(sb)}->{_hw(sa)}")
            b = _resize_like(b, sa, xp)
    return a, b, "; ".join(actions) if actions else "none"


def reduce_to(image, max_side: int, *, min_side: int = 16, xp=None):
    """Block-mean a 2-D image by the smallest whole factor that fits ``max_side``.

    A cheap overview for decisions that need the global picture (change kinds): the
    remainder rows and columns are dropped, and an image that is already small enough
    (or would fall under ``min_side``) is returned as it is. One pass on CPU.

    Returns
    -------
    array
        float64 of shape (H // f, W // f), or ``image`` itself.
    """
    xp = array_namespace(image, xp=xp)
    h, w = image.shape[-2:]
    f = -(-max(h, w) // int(max_side))
    if f <= 1 or min(h, w) // f < min_side:
        return image
    fused = None if is_cupy(image) else fused_kernels(image.size)
    if fused is None:
        hh, ww = h // f * f, w // f * f
        # Sum, then scale by 1/f^2, as the compiled kernel does: the same values, bit for bit.
        return image[:hh, :ww].reshape(hh // f, f, ww // f, f).sum(axis=(1, 3), dtype=xp.float64) * (1.0 / (f * f))
    out = np.empty((h // f, w // f), np.float64)
    columns = np.empty(w // f * f, np.int64 if image.dtype.kind in "iub" else np.float64)
    fused.block_mean(np.ascontiguousarray(image), f, columns, out)
    return out
