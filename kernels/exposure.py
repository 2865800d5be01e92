"""Exposure matching: give one image the intensity distribution of another.

A frame taken with a different exposure differs from its reference in every pixel.
Min-max normalization does not undo that when a single saturated pixel sets the
scale; matching the whole histogram, or the mean and standard deviation, does.
"""

from __future__ import annotations

from .backend import array_namespace

__all__ = ["match_histograms", "match_mean_std"]


def _match_cumulative_cdf(source, template, xp):
    """Map each value of ``source`` to the ``template`` value of the same quantile."""
    src = source.reshape(-1)
    tmpl = template.reshape(-1)
    if source.dtype.kind == "u" and template.dtype.kind == "u":
        src_lookup = src
        src_counts = xp.bincount(src)
        tmpl_counts = xp.bincount(tmpl)
        tmpl_values = xp.nonzero(tmpl_counts)[0]  # values that occur
        tmpl_counts = tmpl_counts[tmpl_values]
    else:
        _, src_lookup, src_counts = xp.unique(src, return_inverse=True, return_counts=True)
        tmpl_values, tmpl_counts = xp.unique(tmpl, return_counts=True)
    src_quantiles = xp.cumsum(src_counts) / src.size
    tmpl_quantiles = xp.cumsum(tmpl_counts) / tmpl.size
    mapped = xp.interp(src_quantiles, tmpl_quantiles, tmpl_values.astype(xp.float64))
    return mapped[src_lookup.reshape(-1)].reshape(source.shape)


def _check_pair(image, reference):
    if image.ndim not in (2, 3) or reference.ndim != image.ndim:
        raise ValueError(f"expected two (H, W) or two (H, W, C) images, got {image.shape} and {reference.shape}")
    if image.ndim == 3 and image.shape[-1] != reference.shape[-1]:
        raise ValueError(f"images differ in number of channels: {image.shape[-1]} vs {reference.shape[-1]}")


def match_histograms(image, reference, *, xp=None):
    """Map the intensities of ``image`` so that its histogram matches ``reference``'s.

    Parameters
    ----------
    image : array, shape (H, W) or (H, W, C)
        Image to adjust. Unsigned integer or float.
    reference : array, same number of dimensions and channels
        Image whose intensity distribution is wanted; its height and width may
        differ from ``image``'s.
    xp : module, optional
        ``numpy`` or ``cupy``; detected from the images when omitted.

    Returns
    -------
    array of float64, shape of ``image``
        Each value of ``image`` replaced by the reference value at the same quantile
        of the cumulative histogram (linear interpolation between the reference's
        distinct values). Colour images are matched channel by channel.

    Raises
    ------
    ValueError
        Unsupported shapes, or a different number of channels.

    Notes
    -----
    The algorithm and arithmetic of ``skimage.exposure.match_histograms`` [1]_,
    except that the result is always float64 (scikit-image returns float32 for
    float32 input and casts colour results back to the input dtype).

    References
    ----------
    .. [1] scikit-image, ``skimage.exposure.match_histograms``;
       R. C. Gonzalez and R. E. Woods, *Digital Image Processing*, 4th ed.,
       Pearson (2018), section 3.3 "Histogram matching (specification)".

    Examples
    --------
    >>> import numpy as np
    >>> img = np.array([[0, 1], [2, 3]], np.uint8)
    >>> ref = np.array([[10, 20], [30, 40]], np.uint8)
    >>> match_histograms(img, ref)
    array([[10., 20.],
           [30., 40.]])
    """
    xp = array_namespace(image, reference, xp=xp)
    _check_pair(image, reference)
    if image.ndim == 2:
        return _match_cumulative_cdf(image, reference, xp)
    channels = [_match_cumulative_cdf(image[..., c], reference[..., c], xp) for c in range(image.shape[-1])]
    return xp.stack(channels, axis=-1)


def match_mean_std(image, reference, *, xp=None):
    """Affinely map ``image`` to the mean and standard deviation of ``reference``.

    Parameters
    ----------
    image : array, shape (H, W) or (H, W, C)
        Image to adjust; any real dtype.
    reference : array, same number of dimensions and channels
        Image whose mean and (population) standard deviation are wanted; its height
        and width may differ from ``image``'s.
    xp : module, optional
        ``numpy`` or ``cupy``; detected from the images when omitted.

    Returns
    -------
    array of float64, shape of ``image``
        ``(image - mean(image)) * std(reference) / std(image) + mean(reference)``,
        per channel for colour images. A constant image (std 0) becomes the
        reference mean everywhere, never NaN.

    Raises
    ------
    ValueError
        Unsupported shapes, or a different number of channels.

    References
    ----------
    .. [1] E. Reinhard, M. Ashikhmin, B. Gooch and P. Shirley, "Color transfer between
       images," IEEE Comput. Graph. Appl. 21(5), 34-41 (2001).
       :DOI:`10.1109/38.946629`

    Examples
    --------
    >>> import numpy as np
    >>> out = match_mean_std(np.array([[0.0, 2.0]]), np.array([[10.0, 30.0]]))
    >>> out
    array([[10., 30.]])
    """
    xp = array_namespace(image, reference, xp=xp)
    _check_pair(image, reference)
    axes = (0, 1)
    x = image.astype(xp.float64, copy=False)
    r = reference.astype(xp.float64, copy=False)
    mean_x = x.mean(axis=axes)
    std_x = x.std(axis=axes)
    mean_r = r.mean(axis=axes)
    std_r = r.std(axis=axes)
    gain = xp.where(std_x > 0, std_r / xp.where(std_x > 0, std_x, 1.0), 0.0)
    return (x - mean_x) * gain + mean_r
