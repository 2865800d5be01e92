"""A per-pixel background model for video-like sequences, and the foreground it sees.

Each pixel keeps a running mean and variance of its background intensity. A frame is
compared with the model as it stood *before* that frame, pixels far from their mean
(in units of their own standard deviation) are foreground, and then the model learns
the frame. The whole model is a small picklable :class:`BackgroundModel`, so a long
sequence can be cut into chunks processed one after another, each chunk handing its
state to the next, with results identical to a single pass.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from .backend import array_namespace
from .normalize import natural_data_range

__all__ = ["BACKGROUND_MODES", "BackgroundModel", "update_background"]

BACKGROUND_MODES = ("ema", "window")

#: Scale from the median absolute deviation to the standard deviation of a Gaussian.
_MAD_TO_SIGMA = 1.482602218505602


@dataclasses.dataclass
class BackgroundModel:
    """State of a per-pixel background model, handed from one batch to the next.

    Create it with ``state=None`` on the first call of :func:`update_background`;
    afterwards treat it as opaque and pass back the one the last call returned. It
    pickles (NumPy or CuPy arrays and plain numbers only).

    Attributes
    ----------
    mode : {'ema', 'window'}
        How the model learns; fixed by the first call.
    mean : array of float64, shape (H, W)
        Background mean per pixel, after the last frame seen.
    var : array of float64, shape (H, W)
        Background variance per pixel, after the last frame seen.
    frames_seen : int
        Number of frames the model has been shown.
    warmup : int
        Number of warm-up frames; fixed by the first call.
    window : int
        Ring-buffer length in ``'window'`` mode (0 in ``'ema'`` mode).
    buffer : array, or None
        Frames in their own dtype. ``'window'`` mode: the last ``window`` frames, shape
        (window, H, W). ``'ema'`` mode: the warm-up frames, shape (warmup, H, W), until
        warm-up ends, then ``None``.
    valid : array of bool, shape (window, H, W), or None
        ``'window'`` mode: which buffered pixels count as background samples (pixels
        classified as foreground are kept out when the update is selective).
    sum1, sum2 : array of float64, shape (H, W), or None
        ``'window'`` mode: running sums of the valid buffered values and their squares.
    count : array of int64, shape (H, W), or None
        ``'window'`` mode: number of valid buffered samples per pixel.
    """

    mode: str
    mean: Any
    var: Any
    frames_seen: int = 0
    warmup: int = 0
    window: int = 0
    buffer: Any = None
    valid: Any = None
    sum1: Any = None
    sum2: Any = None
    count: Any = None

    @property
    def shape(self) -> tuple[int, int]:
        """The (H, W) shape of the frames this model accepts."""
        return tuple(self.mean.shape)


def _erode3(mask, xp):
    """3x3 binary erosion; pixels outside the image count as set (no border erosion)."""
    padded = xp.pad(mask, 1, mode="constant", constant_values=True)
    rows = padded[:-2] & padded[1:-1] & padded[2:]
    return rows[:, :-2] & rows[:, 1:-1] & rows[:, 2:]


def _dilate3(mask, xp):
    """3x3 binary dilation; pixels outside the image count as unset."""
    padded = xp.pad(mask, 1, mode="constant", constant_values=False)
    rows = padded[:-2] | padded[1:-1] | padded[2:]
    return rows[:, :-2] | rows[:, 1:-1] | rows[:, 2:]


def _open3(mask, xp):
    """3x3 binary opening: removes foreground specks narrower than 3 pixels."""
    return _dilate3(_erode3(mask, xp), xp)


def _classify(x, mean, var, k, min_sigma, xp, defined=None):
    """(raw foreground mask, opened mask) of frame ``x`` against the model."""
    sigma = xp.maximum(xp.sqrt(var), min_sigma)
    raw = xp.abs(x - mean) > k * sigma
    if defined is not None:
        raw &= defined
    return raw, _open3(raw, xp)


def _new_state(frame, mode, window, warmup, xp):
    h, w = frame.shape
    zeros = xp.zeros((h, w), dtype=xp.float64)
    if mode == "ema":
        buffer = xp.zeros((warmup, h, w), dtype=frame.dtype) if warmup > 1 else None
        return BackgroundModel(
            mode=mode, mean=zeros, var=zeros.copy(), frames_seen=0, warmup=warmup, window=0, buffer=buffer
        )
    return BackgroundModel(
        mode=mode,
        mean=zeros,
        var=zeros.copy(),
        frames_seen=0,
        warmup=warmup,
        window=window,
        buffer=xp.zeros((window, h, w), dtype=frame.dtype),
        valid=xp.zeros((window, h, w), dtype=bool),
        sum1=zeros.copy(),
        sum2=zeros.copy(),
        count=xp.zeros((h, w), dtype=xp.int64),
    )


def _copy_state(state):
    """A copy whose arrays the update may change in place."""
    arrays = ("mean", "var", "buffer", "valid", "sum1", "sum2", "count")
    return dataclasses.replace(
        state, **{name: getattr(state, name).copy() for name in arrays if getattr(state, name) is not None}
    )


def _window_moments(state, xp):
    """Mean and population variance of the valid samples (0 where there are none)."""
    n = xp.maximum(state.count, 1).astype(xp.float64)
    mean = state.sum1 / n
    var = xp.maximum(state.sum2 / n - mean * mean, 0.0)
    return mean, var


def update_background(
    state,
    frames,
    *,
    mode: str = "ema",
    learning_rate: float = 0.05,
    window: int = 50,
    k: float = 2.0,
    warmup: int = 10,
    min_sigma: float | None = None,
    selective: bool = True,
    clean: bool = True,
    return_masks: bool = False,
    xp=None,
):
    """Show a batch of frames to a background model, in order, and measure foreground.

    Parameters
    ----------
    state : BackgroundModel or None
        The model returned by the previous call, or ``None`` to start a new one from
        the first frame of ``frames``. It is not modified; a new one is returned.
    frames : array, shape (B, H, W) or (H, W)
        Gray frames in sequence order, any real dtype (uint8, uint16, float).
    mode : {'ema', 'window'}
        ``'ema'``: exponentially weighted running mean and variance (memory: two
        float64 images). ``'window'``: mean and variance of the last ``window``
        frames, kept in a ring buffer in the state (memory: ``window`` frames in their
        own dtype plus a bool mask each). Must match the mode of ``state``.
    learning_rate : float
        ``'ema'``: the weight alpha of a new frame once the model is established, in
        (0, 1].
    window : int
        ``'window'``: number of past frames the model covers (>= 2).
    k : float
        A pixel is foreground when ``|x - mu| > k * max(sigma, min_sigma)``.
    warmup : int
        The first ``warmup`` frames the model ever sees only teach it: their
        foreground fraction is NaN and their masks are all False. The very first frame
        is always a warm-up frame, since there is no model to compare it with. At the
        end of warm-up the model restarts from the warm-up frames' background samples
        (see Notes), so an object moving through the scene during warm-up is not
        learnt, provided it covers each pixel in fewer than about half of them.
    min_sigma : float, optional
        Floor on sigma in intensity units, so a pixel that happened to be constant
        (a flat, noiseless or saturated region) does not flag every quantization step.
        Defaults to one 8-bit grey level of the data range: 1 for uint8, 257 for
        uint16, 1/255 for float frames.
    selective : bool
        After warm-up, foreground pixels do not update the model ("selective
        update"), so a moving object does not bleed into the background along its
        path. Foreground here is always the opened mask (see ``clean``): isolated
        noise pixels beyond ``k`` sigma must keep teaching the variance, or it would
        shrink until a fifth of the pixels are flagged at ``k = 2``. The price of
        selective update: a region that changes for good (a parked car, a light
        switched on) stays foreground in ``'ema'`` mode; in ``'window'`` mode it is
        absorbed once a pixel has no background sample left in the window (after
        ``window`` frames).
    clean : bool
        Report the foreground mask after a 3x3 binary opening, which removes
        isolated pixels (sensor noise beyond ``k`` sigma) and anything thinner than
        3 pixels; ``False`` reports the raw per-pixel test.
    return_masks : bool
        Also return the per-frame foreground masks.
    xp : module, optional
        ``numpy`` or ``cupy``; detected from ``frames`` when omitted.

    Returns
    -------
    state : BackgroundModel
        The model after the last frame of the batch.
    foreground_fraction : array of float64, shape (B,)
        Fraction of the frame's pixels that are foreground; NaN for warm-up frames.
    masks : array of bool, shape (B, H, W), or None
        Foreground masks when ``return_masks`` is true, else ``None``.

    Raises
    ------
    ValueError
        Unknown ``mode``, a ``mode``/``window`` or frame shape that disagrees with
        ``state``, frames that are not 2-D or 3-D, or an option out of range.

    Notes
    -----
    Frame ``x`` (float64) is classified against the model before it learns ``x``:
    ``fg = |x - mu| > k * max(sqrt(var), min_sigma)``, then opened with a 3x3 square
    (borders are not eroded).

    ``'ema'`` update, with ``d = x - mu_old`` and ``n`` the number of frames seen
    before ``x``::

        a   = max(learning_rate, 1 / (n + 1))
        mu  = mu_old + a * d                 # = (1 - a) mu_old + a x
        var = (1 - a) * var_old + a * d**2

    The first frame sets ``mu = x, var = 0``. The rate ``1 / (n + 1)`` makes the early
    model a cumulative average of all frames so far (not a slow drift from the first
    frame), until it falls to ``learning_rate`` -- the scheme of OpenCV's MOG2 [1]_.
    With ``selective``, foreground pixels keep ``mu`` and ``var`` unchanged.

    End of warm-up (``warmup >= 2``, both modes): each warm-up frame is classified
    against the per-pixel median and ``1.4826 * MAD`` of all warm-up frames, which a
    passing object cannot drag along; its foreground is dropped and ``mu``, ``var``
    restart as the mean and population variance of the remaining samples (in
    ``'window'`` mode those samples are marked invalid in the ring buffer).

    ``'window'``: ``mu`` and ``var`` are the mean and population variance of the valid
    samples among the last ``window`` frames, kept as running sums that are exact for
    integer frames. A pixel with no valid sample has no model: it is background, and
    the frame becomes its first sample.

    With Gaussian noise and ``k = 2`` about 4.6 % of background pixels exceed
    ``k`` sigma in every frame; they are isolated, and the 3x3 opening removes them
    (a speck survives only if all 9 pixels of a 3x3 block exceed, ~1e-12), so the
    default settings give a near-zero fraction on a static noisy scene while objects
    of 3x3 pixels or more keep their full area. An object that sits still through
    most of the warm-up is learnt as background, and leaves a "ghost" where it stood
    once it moves (in ``'ema'`` mode for good, with ``selective``).

    References
    ----------
    .. [1] Z. Zivkovic, "Improved adaptive Gaussian mixture model for background
       subtraction," Proc. ICPR 2004, vol. 2, 28-31. :DOI:`10.1109/ICPR.2004.1333992`

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> frames = rng.normal(100, 3, (20, 32, 32)).round().astype(np.uint8)
    >>> frames[15:, 8:16, 8:16] = 250
    >>> state, fraction, _ = update_background(None, frames, warmup=10)
    >>> bool(np.isnan(fraction[:10]).all()), float(fraction[15])
    (True, 0.0625)
    """
    xp = array_namespace(frames, xp=xp)
    mode = mode.lower()
    if mode not in BACKGROUND_MODES:
        raise ValueError(f"unknown background mode {mode!r}; expected one of {', '.join(BACKGROUND_MODES)}")
    if frames.ndim == 2:
        frames = frames[None]
    if frames.ndim != 3:
        raise ValueError(f"expected frames of shape (B, H, W) or (H, W), got {frames.shape}")
    learning_rate = float(learning_rate)
    if not 0.0 < learning_rate <= 1.0:
        raise ValueError(f"learning_rate must be in (0, 1], got {learning_rate}")
    window = int(window)
    if window < 2:
        raise ValueError(f"window must be >= 2, got {window}")
    k = float(k)
    if not k > 0:
        raise ValueError(f"k must be > 0, got {k}")
    warmup = int(warmup)
    if warmup < 0:
        raise ValueError(f"warmup must be >= 0, got {warmup}")
    if min_sigma is None:
        min_sigma = natural_data_range(np.dtype(str(frames.dtype))) / 255.0
    min_sigma = float(min_sigma)
    if not min_sigma >= 0:
        raise ValueError(f"min_sigma must be >= 0, got {min_sigma}")

    if state is None:
        if frames.shape[0] == 0:
            raise ValueError("cannot start a background model from an empty batch")
        state = _new_state(frames[0], mode, window, warmup, xp)
    else:
        if state.mode != mode:
            raise ValueError(f"the model was built in mode {state.mode!r}, not {mode!r}")
        if mode == "window" and state.window != window:
            raise ValueError(f"the model was built with window={state.window}, not {window}")
        if state.warmup != warmup:
            raise ValueError(f"the model was built with warmup={state.warmup}, not {warmup}")
        if state.shape != tuple(frames.shape[1:]):
            raise ValueError(f"frames of shape {tuple(frames.shape[1:])} do not fit a model of {state.shape}")
        state = _copy_state(state)

    n_frames = frames.shape[0]
    fractions = xp.full(n_frames, math.nan, dtype=xp.float64)
    masks = xp.zeros(frames.shape, dtype=bool) if return_masks else None
    n_pixels = frames.shape[1] * frames.shape[2]
    step = _step_ema if mode == "ema" else _step_window
    for i in range(n_frames):
        mask = step(state, frames[i], learning_rate, k, min_sigma, warmup, selective, clean, xp)
        if mask is not None:
            fractions[i] = xp.count_nonzero(mask) / n_pixels
            if return_masks:
                masks[i] = mask
    return state, fractions, masks


def _robust_start(warm, k, min_sigma, xp):
    """Background samples among the warm-up frames, and their mean and variance.

    Each warm-up frame is classified against the per-pixel median and MAD of all of
    them (a robust model an object passing during warm-up cannot drag along); what
    is foreground there is left out of the mean and variance.
    """
    x = warm.astype(xp.float64)
    median = xp.median(x, axis=0)
    mad_var = (_MAD_TO_SIGMA * xp.median(xp.abs(x - median), axis=0)) ** 2
    inliers = xp.stack([~_classify(f, median, mad_var, k, min_sigma, xp)[1] for f in x])
    count = inliers.sum(axis=0)
    n = xp.maximum(count, 1).astype(xp.float64)
    mean = xp.where(inliers, x, 0.0).sum(axis=0) / n
    var = (xp.where(inliers, x - mean, 0.0) ** 2).sum(axis=0) / n
    mean = xp.where(count > 0, mean, median)
    var = xp.where(count > 0, var, mad_var)
    return inliers, mean, var


def _step_ema(state, frame, learning_rate, k, min_sigma, warmup, selective, clean, xp):
    x = frame.astype(xp.float64)
    n = state.frames_seen
    state.frames_seen = n + 1
    if n == 0:
        state.mean, state.var = x, xp.zeros_like(x)
    if n < warmup and state.buffer is not None:
        state.buffer[n] = frame
        if n + 1 == warmup:  # warm-up complete: restart from its background samples
            _, state.mean, state.var = _robust_start(state.buffer, k, min_sigma, xp)
            state.buffer = None
            return None
    if n == 0:
        return None
    judged = n >= warmup
    if judged:
        raw, opened = _classify(x, state.mean, state.var, k, min_sigma, xp)
    a = max(learning_rate, 1.0 / (n + 1))
    d = x - state.mean
    mean = state.mean + a * d
    var = (1.0 - a) * state.var + a * (d * d)
    if selective and judged:
        mean = xp.where(opened, state.mean, mean)
        var = xp.where(opened, state.var, var)
    state.mean, state.var = mean, var
    if not judged:
        return None
    return opened if clean else raw


def _step_window(state, frame, learning_rate, k, min_sigma, warmup, selective, clean, xp):
    n = state.frames_seen
    state.frames_seen = n + 1
    judged = n >= warmup and n > 0
    x = frame.astype(xp.float64)
    if judged:
        raw, opened = _classify(x, state.mean, state.var, k, min_sigma, xp, defined=state.count > 0)
    slot = n % state.window
    if n >= state.window:  # evict the oldest frame's valid samples
        old = state.buffer[slot].astype(xp.float64)
        old_valid = state.valid[slot]
        state.sum1 -= xp.where(old_valid, old, 0.0)
        state.sum2 -= xp.where(old_valid, old * old, 0.0)
        state.count -= old_valid
    valid = ~opened if (selective and judged) else xp.ones(x.shape, dtype=bool)
    state.buffer[slot] = frame
    state.valid[slot] = valid
    state.sum1 += xp.where(valid, x, 0.0)
    state.sum2 += xp.where(valid, x * x, 0.0)
    state.count += valid
    if n + 1 == warmup and warmup > 1:  # warm-up complete: keep only its background samples
        held = min(warmup, state.window)
        state.valid[:held], _, _ = _robust_start(state.buffer[:held], k, min_sigma, xp)
        values = state.buffer.astype(xp.float64)
        state.sum1 = xp.where(state.valid, values, 0.0).sum(axis=0)
        state.sum2 = xp.where(state.valid, values * values, 0.0).sum(axis=0)
        state.count = state.valid.sum(axis=0).astype(xp.int64)
    state.mean, state.var = _window_moments(state, xp)
    if not judged:
        return None
    return opened if clean else raw
