"""Translation between two images by phase correlation, and their overlapping region.

A camera that moved by a few pixels makes every pixel "change"; estimating the shift
first and comparing only the overlap separates motion from content change.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from .backend import array_namespace

__all__ = ["overlap", "phase_correlation"]


def _upsampled_dft(data, region_size: int, upsample_factor: int, offsets, xp):
    """DFT of ``data`` on a ``region_size``-square grid ``upsample_factor`` times finer.

    Equivalent to zero-padding ``data`` to ``upsample_factor`` times its size, inverse
    transforming, and reading the ``region_size`` samples that start at ``offsets``,
    but computed as two small matrix products [1]_ (see :func:`phase_correlation`).
    """
    for n_items, offset in zip(data.shape[::-1], offsets[::-1]):
        freq = xp.fft.fftfreq(n_items, upsample_factor)
        positions = xp.arange(region_size, dtype=xp.float64) - offset
        kernel = xp.exp((-2j * math.pi) * (positions[:, None] * freq[None, :]))
        # data[i, j] = sum_k kernel[i, k] * data[j, k]: contracts the last axis and
        # moves the new one to the front, so two passes give (rows, cols).
        data = xp.tensordot(kernel, data, axes=(1, -1))
    return data


def phase_correlation(a, b, *, upsample_factor: int = 1, xp=None):
    """Translation that registers ``b`` onto ``a``, by phase correlation.

    Parameters
    ----------
    a : array, shape (H, W)
        Reference image.
    b : array, shape (H, W)
        Moving image, same shape as ``a``.
    upsample_factor : int, optional
        Precision of the estimate: shifts are resolved to ``1 / upsample_factor``
        pixel. ``1`` (default) gives whole pixels from one inverse FFT; larger values
        refine the peak with an upsampled matrix-multiply DFT on a
        ``1.5 x 1.5`` pixel neighbourhood [1]_.
    xp : module, optional
        ``numpy`` or ``cupy``; detected from the images when omitted.

    Returns
    -------
    shift_y, shift_x : float
        Shift, in pixels, to apply to ``b`` so that it overlays ``a``:
        ``a[y, x] ~ b[y - shift_y, x - shift_x]``. This is the sign convention of
        ``skimage.registration.phase_cross_correlation(reference_image=a,
        moving_image=b)``. Shifts are reported in ``(-size/2, size/2]`` (modulo
        the image size, as any Fourier method).
    peak : float
        Magnitude of the phase-correlation peak, in [0, 1]: 1 for a pure (circular)
        translation, near 0 for unrelated images.

    Raises
    ------
    ValueError
        The images are not 2-D, differ in shape, contain NaN, or
        ``upsample_factor`` is not a positive integer.

    Notes
    -----
    The cross-power spectrum ``A conj(B)`` is normalised to unit magnitude (values
    below ``100 eps`` are left unscaled), so the inverse transform is the phase
    correlation surface [2]_; its maximum gives the whole-pixel shift. With
    ``upsample_factor > 1`` the shift is rounded to the fine grid and the surface is
    evaluated by matrix-multiply DFT on ``ceil(1.5 upsample_factor)`` fine samples
    around it, which is the algorithm and arithmetic of scikit-image's
    ``phase_cross_correlation``. The peak is the maximum magnitude of the surface
    divided by the number of pixels.

    References
    ----------
    .. [1] M. Guizar-Sicairos, S. T. Thurman and J. R. Fienup, "Efficient subpixel
       image registration algorithms," Opt. Lett. 33(2), 156-158 (2008).
       :DOI:`10.1364/OL.33.000156`
    .. [2] C. D. Kuglin and D. C. Hines, "The phase correlation image alignment
       method," Proc. IEEE Int. Conf. Cybernetics and Society, 163-165 (1975).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> a = rng.random((64, 64))
    >>> b = np.roll(a, (3, -5), axis=(0, 1))
    >>> dy, dx, peak = phase_correlation(a, b)
    >>> dy, dx, round(peak, 6)
    (-3.0, 5.0, 1.0)
    """
    xp = array_namespace(a, b, xp=xp)
    if a.ndim != 2 or b.ndim != 2:
        raise ValueError(f"expected two 2-D images, got shapes {a.shape} and {b.shape}")
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {a.shape} vs {b.shape}")
    if isinstance(upsample_factor, bool) or not isinstance(upsample_factor, numbers.Integral) or upsample_factor < 1:
        raise ValueError(f"upsample_factor must be a positive integer, got {upsample_factor!r}")
    upsample_factor = int(upsample_factor)
    shape = a.shape
    n_pixels = shape[0] * shape[1]

    fa = xp.fft.fft2(a.astype(xp.float64, copy=False))
    fb = xp.fft.fft2(b.astype(xp.float64, copy=False))
    # The DC term is the sum of the image: finite exactly when every pixel is.
    if not all(math.isfinite(abs(f[0, 0].item())) for f in (fa, fb)):  # synchronize
        raise ValueError("images contain NaN or inf values")
    product = fa * fb.conj()
    eps = float(np.finfo(np.float64).eps)
    product /= xp.maximum(xp.abs(product), 100 * eps)
    surface = xp.fft.ifft2(product)

    magnitude = xp.abs(surface)
    flat = int(xp.argmax(magnitude))  # synchronize
    maxima = divmod(flat, shape[1])
    shift = [float(m - n) if m > math.trunc(n / 2) else float(m) for m, n in zip(maxima, shape)]

    if upsample_factor == 1:
        peak = float(magnitude.ravel()[flat])  # synchronize
    else:
        up = float(upsample_factor)
        shift = [round(s * up) / up for s in shift]  # half to even, as np.round
        region = int(math.ceil(up * 1.5))
        dftshift = math.trunc(region / 2.0)
        offsets = [dftshift - s * up for s in shift]
        fine = _upsampled_dft(product.conj(), region, upsample_factor, offsets, xp).conj()
        fine_mag = xp.abs(fine)
        flat = int(xp.argmax(fine_mag))  # synchronize
        fine_max = divmod(flat, region)
        shift = [s + (m - dftshift) / up for s, m in zip(shift, fine_max)]
        peak = float(fine_mag.ravel()[flat]) / n_pixels  # synchronize

    # A single row or column carries no shift along that axis.
    shift = [0.0 if n == 1 else s for s, n in zip(shift, shape)]
    return shift[0], shift[1], min(peak, 1.0)


def overlap(a, b, shift):
    """The region where ``a`` and ``b`` overlap once ``b`` is moved by ``shift``.

    Parameters
    ----------
    a, b : array, shape (H, W) or (H, W, C)
        Images of one shape; ``a`` is the reference.
    shift : (float, float)
        ``(shift_y, shift_x)`` that registers ``b`` onto ``a``, as returned by
        :func:`phase_correlation`. Each component is rounded to the nearest integer
        (halves to even).

    Returns
    -------
    a_crop, b_crop : array
        Views of ``a`` and ``b`` of one shape ``(H - |dy|, W - |dx|)`` such that
        ``a_crop[y, x]`` and ``b_crop[y, x]`` show the same scene point:
        ``a_crop = a[max(dy, 0):H + min(dy, 0)]`` and
        ``b_crop = b[max(-dy, 0):H - max(dy, 0)]`` (likewise along x).

    Raises
    ------
    ValueError
        The images differ in shape or are not 2-D or 3-D, ``shift`` is not a pair,
        or the shift leaves no overlap.

    Examples
    --------
    >>> import numpy as np
    >>> a = np.arange(25).reshape(5, 5)
    >>> b = np.roll(a, 1, axis=1)  # b[y, x] = a[y, x - 1]
    >>> a2, b2 = overlap(a, b, (0, -1))
    >>> bool((a2 == b2).all()), a2.shape
    (True, (5, 4))
    """
    if a.shape != b.shape:
        raise ValueError(f"images differ in shape: {a.shape} vs {b.shape}")
    if a.ndim not in (2, 3):
        raise ValueError(f"expected images of shape (H, W) or (H, W, C), got {a.shape}")
    try:
        dy, dx = (int(round(float(s))) for s in shift)
    except (TypeError, ValueError):
        raise ValueError(f"shift must be a pair (shift_y, shift_x), got {shift!r}") from None
    H, W = a.shape[:2]
    if abs(dy) >= H or abs(dx) >= W:
        raise ValueError(f"shift ({dy}, {dx}) leaves no overlap between images of {H}x{W}")
    a_rows = slice(max(dy, 0), H + min(dy, 0))
    b_rows = slice(max(-dy, 0), H - max(dy, 0))
    a_cols = slice(max(dx, 0), W + min(dx, 0))
    b_cols = slice(max(-dx, 0), W - max(dx, 0))
    return a[a_rows, a_cols], b[b_rows, b_cols]
