"""Edge maps and how much they change: structure that survives exposure changes.

The gradient magnitude uses the plain (unnormalised) Sobel or Prewitt kernels of
``scipy.ndimage``; the edge map thresholds it; :func:`edge_change_fraction` compares
two edge maps by the share of edge pixels that appear in only one of them.
"""

from __future__ import annotations

from .backend import array_namespace
from .filters import _ndimage

__all__ = ["EDGE_OPERATORS", "edge_change_fraction", "edge_map", "gradient_magnitude"]

EDGE_OPERATORS = ("sobel", "prewitt")

_DERIVATIVE = (-1.0, 0.0, 1.0)
_SMOOTHING = {"sobel": (1.0, 2.0, 1.0), "prewitt": (1.0, 1.0, 1.0)}


def _check_image_or_batch(image, name="image"):
    if image.ndim not in (2, 3):
        raise ValueError(f"{name} must have shape (H, W) or (B, H, W), got {image.shape}")


def gradient_magnitude(image, operator: str = "sobel", *, xp=None):
    """Gradient magnitude of an image, or of each image of a batch.

    Parameters
    ----------
    image : array, shape (H, W) or (B, H, W)
        Any real dtype; computed in float64 on the values as given (uint8 stays
        0..255, no rescaling).
    operator : {'sobel', 'prewitt'}
        Derivative ``[-1, 0, 1]`` along one axis, smoothed by ``[1, 2, 1]`` (Sobel)
        or ``[1, 1, 1]`` (Prewitt) along the other.
    xp : module, optional
        ``numpy`` or ``cupy``; detected from ``image`` when omitted.

    Returns
    -------
    array of float64, same shape as ``image``
        ``hypot(d/dy, d/dx)`` with ``'reflect'`` boundaries, equal to
        ``np.hypot(ndi.sobel(x, 0), ndi.sobel(x, 1))`` for a 2-D ``x``. It is
        ``4 * sqrt(2)`` (Sobel) or ``3 * sqrt(2)`` (Prewitt) times
        ``skimage.filters.sobel`` / ``prewitt`` of the same float image, which
        normalise the kernels and average the squared derivatives.

    Raises
    ------
    ValueError
        Unknown ``operator`` or an image that is not 2-D or 3-D.

    References
    ----------
    .. [1] I. Sobel and G. Feldman, "A 3x3 isotropic gradient operator for image
       processing," Stanford AI Project talk (1968); reprinted in R. Duda and
       P. Hart, *Pattern Classification and Scene Analysis*, Wiley (1973), 271-272.
    .. [2] J. M. S. Prewitt, "Object enhancement and extraction," in *Picture
       Processing and Psychopictorics*, Academic Press (1970), 75-149.

    Examples
    --------
    >>> import numpy as np
    >>> step = np.zeros((5, 6)); step[:, 3:] = 1.0
    >>> gradient_magnitude(step)[2]
    array([0., 0., 4., 4., 0., 0.])
    """
    xp = array_namespace(image, xp=xp)
    operator = operator.lower()
    if operator not in EDGE_OPERATORS:
        raise ValueError(f"unknown edge operator {operator!r}; expected one of {', '.join(EDGE_OPERATORS)}")
    _check_image_or_batch(image)
    ndi = _ndimage(xp)
    x = image.astype(xp.float64, copy=False)
    derivative = xp.asarray(_DERIVATIVE)
    smoothing = xp.asarray(_SMOOTHING[operator])
    # As ndimage.sobel/prewitt: derivative along one axis, then smoothing along the
    # other (and only the other: the batch axis is never mixed).
    gy = ndi.correlate1d(x, derivative, axis=-2, mode="reflect")
    gy = ndi.correlate1d(gy, smoothing, axis=-1, mode="reflect")
    gx = ndi.correlate1d(x, derivative, axis=-1, mode="reflect")
    gx = ndi.correlate1d(gx, smoothing, axis=-2, mode="reflect")
    return xp.hypot(gy, gx)


def edge_map(image, *, operator: str = "sobel", threshold=None, xp=None):
    """Boolean edge map: pixels whose gradient magnitude exceeds a threshold.

    Parameters
    ----------
    image : array, shape (H, W) or (B, H, W)
        Any real dtype (see :func:`gradient_magnitude`).
    operator : {'sobel', 'prewitt'}
        Gradient operator.
    threshold : float, optional
        Absolute threshold on the gradient magnitude, in the units of
        :func:`gradient_magnitude` (so it scales with the image's intensity range).
        By default it is chosen per image as ``mean + 2 * std`` of the magnitude:
        deterministic, free of a single hot pixel's influence on the scale, and a
        constant image has no edges.
    xp : module, optional
        ``numpy`` or ``cupy``; detected from ``image`` when omitted.

    Returns
    -------
    array of bool, same shape as ``image``
        True where ``magnitude > threshold`` (strictly).

    Raises
    ------
    ValueError
        Unknown ``operator``, a negative or non-finite ``threshold``, or an image
        that is not 2-D or 3-D.

    Examples
    --------
    >>> import numpy as np
    >>> step = np.zeros((3, 12)); step[:, 6:] = 1.0
    >>> np.flatnonzero(edge_map(step)[1])  # the two columns either side of the step
    array([5, 6])
    """
    xp = array_namespace(image, xp=xp)
    magnitude = gradient_magnitude(image, operator, xp=xp)
    if threshold is None:
        axes = (-2, -1)
        mean = magnitude.mean(axis=axes, keepdims=True)
        std = magnitude.std(axis=axes, keepdims=True)
        thresh = mean + 2.0 * std
    else:
        thresh = float(threshold)
        if not thresh >= 0 or thresh == float("inf"):
            raise ValueError(f"threshold must be a finite number >= 0, got {threshold!r}")
    return magnitude > thresh


def edge_change_fraction(edges_a, edges_b, *, xp=None):
    """Share of edge pixels present in only one of two edge maps.

    Parameters
    ----------
    edges_a, edges_b : array of bool, shape (H, W) or (B, H, W)
        Edge maps of one shape, e.g. from :func:`edge_map`; nonzero counts as edge.
    xp : module, optional
        ``numpy`` or ``cupy``; detected from the maps when omitted.

    Returns
    -------
    array of float64
        ``count(a xor b) / count(a or b)`` in [0, 1] (one minus the Jaccard index of
        the edge sets), reduced over the last two axes: shape ``()`` for one pair,
        ``(B,)`` for a batch. 0 when neither map has an edge.

    Raises
    ------
    ValueError
        The maps differ in shape or are not 2-D or 3-D.

    References
    ----------
    .. [1] P. Jaccard, "The distribution of the flora in the alpine zone," New
       Phytologist 11(2), 37-50 (1912). :DOI:`10.1111/j.1469-8137.1912.tb05611.x`

    Examples
    --------
    >>> import numpy as np
    >>> a = np.array([[1, 1, 0, 0]], bool)
    >>> b = np.array([[0, 1, 1, 0]], bool)
    >>> float(edge_change_fraction(a, b))
    0.6666666666666666
    """
    xp = array_namespace(edges_a, edges_b, xp=xp)
    if edges_a.shape != edges_b.shape:
        raise ValueError(f"edge maps differ in shape: {edges_a.shape} vs {edges_b.shape}")
    _check_image_or_batch(edges_a, "edge maps")
    a = edges_a.astype(bool, copy=False)
    b = edges_b.astype(bool, copy=False)
    axes = (-2, -1)
    changed = xp.count_nonzero(a ^ b, axis=axes).astype(xp.float64)
    union = xp.count_nonzero(a | b, axis=axes).astype(xp.float64)
    return xp.where(union > 0, changed / xp.where(union > 0, union, 1.0), 0.0)
