"""One options object that travels from the CLI (or API call) to every task."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import numbers
import os
from dataclasses import dataclass, field

from framediff.kernels import GRAY_METHODS, NORMALIZATIONS
from framediff.kernels.backend import DEVICE_ENV

from .decode import DEFAULT_MAX_PIXELS
from .errors import ParameterError
from .metrics import CLASSIC_METRICS, FAST_METRICS, parse_metrics

__all__ = ["PAIR_NORMALIZATIONS", "PRESETS", "Options", "OptionsError", "make_options", "parse_size", "preset_default"]

#: Background models of ``--mode background``: a sample-based colour model (ViBe-like,
#: per-pixel adaptive thresholds; the default), or a running mean/variance per pixel.
BG_METHODS = ("samples", "ema", "window")

#: Exposure normalizations that need both images: b is matched to a.
PAIR_NORMALIZATIONS = ("match", "meanstd")


def parse_size(text) -> tuple[int, int] | None:
    """``'640x480'`` (width x height) -> (480, 640) as (height, width); None if malformed."""
    if not isinstance(text, str) or "x" not in text.lower():
        return None
    w, _, h = text.lower().partition("x")
    if not (w.strip().isdigit() and h.strip().isdigit()) or int(w) < 1 or int(h) < 1:
        return None
    return int(h), int(w)


class OptionsError(ParameterError):
    """An option value that cannot be used; the message names the option."""


@dataclass(frozen=True)
class Options:
    """How images are prepared and compared. Hashable, picklable, JSON-able.

    Attributes
    ----------
    gray : {'mean', 'luma'}
        Channel mean (classic) or BT.601 luma (JPEG decoded straight to luma).
    normalize : {'none', 'minmax', 'percentile', 'zscore'}
    percentiles : (float, float)
        Clip points for ``normalize='percentile'``.
    tol : float
        A pixel counts as changed for L0 when ``|a - b| > tol``.
    bins : int
        Histogram bins over the fixed range of the prepared image.
    metrics : tuple of str
        Metric columns to report.
    data_range : float or None
        PSNR peak; ``None`` takes the natural range of the prepared image.
    scale : float
        Compare at reduced resolution (JPEG decoded smaller in the DCT domain).
    max_pixels : int
        Images declaring more pixels are refused (decompression bombs).
    device : {'auto', 'cpu', 'gpu'}
    resize : {'error', 'first', 'smallest'} or 'WxH'
        What to do with images of different sizes (area interpolation).
    crop : {None, 'center', 'topleft'}
        Crop both images of a pair to their common extent instead of resizing.
    align : bool
        Register b onto a by phase cross-correlation and compare the overlap only.
    upsample : int
        Sub-pixel refinement factor of the alignment (1: whole pixels).
    blur : float
        Gaussian blur sigma before comparing (0: none).
    median : int
        Median filter size before comparing (0: none).
    color : bool
        Compare per channel (and combined) and report CIE76 Delta E.
    edges : {'none', 'sobel', 'prewitt'}
        Compare gradient magnitudes instead of intensities; also the operator of the
        ``edge_change`` metric (Sobel when 'none').
    moving_threshold : float
        Optical flow: a tracked point moves when its flow exceeds this (pixels).
    flow_corners : int
        Optical flow: most corners tracked per pair.
    change_kind : bool
        Label changed comparisons (lighting, shift, content, cut, corrupt).
    bg_method, learning_rate, window, k, warmup
        Background model of ``--mode background`` (see ``update_background``).
    """

    gray: str = "luma"
    normalize: str = "none"
    percentiles: tuple = (1.0, 99.0)
    tol: float = 10.0
    bins: int = 256
    metrics: tuple = FAST_METRICS
    data_range: float | None = None
    scale: float = 1.0
    max_pixels: int = DEFAULT_MAX_PIXELS
    device: str = "auto"
    resize: str = "error"
    crop: str | None = None
    align: bool = False
    upsample: int = 10
    blur: float = 0.0
    median: int = 0
    color: bool = False
    edges: str = "none"
    moving_threshold: float = 0.5
    flow_corners: int = 500
    change_kind: bool = True
    bg_method: str = "samples"
    learning_rate: float = 0.05
    window: int = 50
    k: float = 2.0
    warmup: int = 10
    preset: str = field(default="fast", compare=False)

    def to_dict(self) -> dict:
        """Plain JSON-serialisable dict of every option."""
        d = dataclasses.asdict(self)
        d["percentiles"] = list(self.percentiles)
        d["metrics"] = list(self.metrics)
        return d

    @property
    def pairwise(self) -> bool:
        """True when each pair needs its own preparation (alignment, exposure
        matching, colour): frames are then measured pair by pair, not in batches."""
        return self.align or self.normalize in PAIR_NORMALIZATIONS or self.color

    def replace(self, **overrides) -> Options:
        """A validated copy with ``overrides`` applied (``None`` keeps a value)."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "preset"}
        values.update({k: v for k, v in overrides.items() if v is not None})
        return make_options(self.preset, **values)

    def fingerprint(self) -> str:
        """A short hash of the options that change results (names a run)."""
        d = self.to_dict()
        d.pop("device")
        d.pop("preset")
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


#: ``fast``: the scan default, the :class:`Options` defaults themselves (luma straight
#: from the JPEG decoder, no normalization, a tolerance of 10 grey levels so sensor
#: noise does not count, all norms and KL). ``classic``: channel mean, min-max to
#: 0..255, zero tolerance, the two classic norms.
PRESETS = {
    "classic": dict(gray="mean", normalize="minmax", tol=0.0, metrics=CLASSIC_METRICS),
    "fast": {},
}


def preset_default(name: str, preset: str = "fast"):
    """The value of option ``name`` in ``preset`` when not given (``--help`` shows it)."""
    if name in PRESETS[preset]:
        return PRESETS[preset][name]
    return next(f.default for f in dataclasses.fields(Options) if f.name == name)


def make_options(preset: str = "fast", **overrides) -> Options:
    """Build validated :class:`Options` from a preset and explicit overrides.

    ``None`` values in ``overrides`` mean "not given" and keep the preset's value.

    Raises
    ------
    OptionsError
        An unknown preset or option, or a value out of range.
    """
    if preset not in PRESETS:
        raise OptionsError("preset", f": unknown preset {preset!r}; choose from: {', '.join(PRESETS)}")
    values = dict(PRESETS[preset])
    known = {f.name for f in dataclasses.fields(Options)}
    for key, value in overrides.items():
        if key not in known:
            raise OptionsError("options", f": unknown option {key!r}")
        if value is not None:
            values[key] = value
    values["preset"] = preset
    if "device" not in values:  # not given: FRAMEDIFF_DEVICE, then 'auto' (as resolve_device(None))
        values["device"] = (os.environ.get(DEVICE_ENV) or "auto").lower()
    metrics = values.get("metrics")
    if (
        metrics is not None
        and not isinstance(metrics, str)
        and not (isinstance(metrics, (list, tuple)) and all(isinstance(m, str) for m in metrics))
    ):
        raise OptionsError("metrics", f"must be names such as 'l1,kl' or a list of them, got {metrics!r}")
    try:
        values["metrics"] = parse_metrics(metrics, color=bool(values.get("color")))
    except ValueError as exc:
        raise OptionsError("metrics", str(exc), named=False) from None
    opts = Options(**values)
    _validate(opts)
    return opts


#: Options that must be finite real numbers, whole numbers, or true/false.
_REALS = ("tol", "scale", "blur", "moving_threshold", "learning_rate", "k")
_INTEGERS = ("bins", "max_pixels", "upsample", "median", "flow_corners", "window", "warmup")
_FLAGS = ("align", "color", "change_kind")
#: Upper bounds that keep the work of one pair within memory (a sub-pixel factor of
#: 1000 or a median window of 10,000 pixels would exhaust it before any error).
_MAX_UPSAMPLE, _MAX_MEDIAN, _MAX_BLUR, _MAX_CORNERS = 100, 99, 100.0, 100_000


def _check_types(opts: Options) -> None:
    for name in _REALS:
        value = getattr(opts, name)
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
            raise OptionsError(name, f"must be a finite number, got {value!r}")
    if opts.data_range is not None and (
        isinstance(opts.data_range, bool)
        or not isinstance(opts.data_range, numbers.Real)
        or not math.isfinite(opts.data_range)
    ):
        raise OptionsError("data_range", f"must be a finite number, got {opts.data_range!r}")
    for name in _INTEGERS:
        value = getattr(opts, name)
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise OptionsError(name, f"must be a whole number, got {value!r}")
    for name in _FLAGS:
        if not isinstance(getattr(opts, name), bool):
            raise OptionsError(name, f"must be True or False, got {getattr(opts, name)!r}")
    for name in ("gray", "normalize", "resize", "edges", "bg_method", "device"):
        if not isinstance(getattr(opts, name), str):
            raise OptionsError(name, f"must be a string, got {getattr(opts, name)!r}")
    p = opts.percentiles
    if not (
        isinstance(p, (tuple, list))
        and len(p) == 2
        and all(isinstance(v, numbers.Real) and math.isfinite(v) for v in p)
    ):
        raise OptionsError("percentiles", f"must be two numbers (low, high), got {p!r}")


def _validate(opts: Options) -> None:
    _check_types(opts)
    if opts.gray not in GRAY_METHODS:
        raise OptionsError("gray", f"must be one of {', '.join(GRAY_METHODS)}, got {opts.gray!r}")
    if opts.normalize not in NORMALIZATIONS + PAIR_NORMALIZATIONS:
        allowed = ", ".join(NORMALIZATIONS + PAIR_NORMALIZATIONS)
        raise OptionsError("normalize", f"must be one of {allowed}, got {opts.normalize!r}")
    lo, hi = opts.percentiles
    if not 0 <= lo < hi <= 100:
        raise OptionsError("percentiles", f"must satisfy 0 <= low < high <= 100, got {lo},{hi}")
    if opts.tol < 0:
        raise OptionsError("tol", f"must be >= 0, got {opts.tol}")
    if not 1 <= int(opts.bins) <= 65536:
        raise OptionsError("bins", f"must be in 1..65536, got {opts.bins}")
    if not 0 < opts.scale <= 1:
        raise OptionsError("scale", f"must be in (0, 1], got {opts.scale}")
    if opts.scale < 0.125:
        raise OptionsError("scale", f"must be at least 0.125 (1/8, the smallest JPEG DCT scale), got {opts.scale}")
    if opts.max_pixels < 1:
        raise OptionsError("max_pixels", f"must be positive, got {opts.max_pixels}")
    if opts.data_range is not None and opts.data_range <= 0:
        raise OptionsError("data_range", f"must be positive, got {opts.data_range}")
    if opts.resize not in ("error", "first", "smallest") and parse_size(opts.resize) is None:
        raise OptionsError("resize", f"must be error, first, smallest or WxH (e.g. 640x480), got {opts.resize!r}")
    if opts.crop not in (None, "center", "topleft"):
        raise OptionsError("crop", f"must be center or topleft, got {opts.crop!r}")
    size = parse_size(opts.resize)
    if size is not None and size[0] * size[1] > opts.max_pixels:
        raise OptionsError("resize", f"{opts.resize} has more pixels than max_pixels={opts.max_pixels} allows")
    if not 1 <= opts.upsample <= _MAX_UPSAMPLE:
        raise OptionsError("upsample", f"must be in 1..{_MAX_UPSAMPLE}, got {opts.upsample}")
    if not 0 <= opts.blur <= _MAX_BLUR:
        raise OptionsError("blur", f"must be in 0..{_MAX_BLUR:g}, got {opts.blur}")
    if opts.median < 0 or opts.median == 1 or opts.median > _MAX_MEDIAN:
        raise OptionsError("median", f"must be 0 (off) or a size in 2..{_MAX_MEDIAN}, got {opts.median}")
    if not 1 <= opts.flow_corners <= _MAX_CORNERS:
        raise OptionsError("flow_corners", f"must be in 1..{_MAX_CORNERS}, got {opts.flow_corners}")
    if opts.moving_threshold < 0:
        raise OptionsError("moving_threshold", f"must be >= 0, got {opts.moving_threshold}")
    if opts.edges not in ("none", "sobel", "prewitt"):
        raise OptionsError("edges", f"must be none, sobel or prewitt, got {opts.edges!r}")
    if opts.bg_method not in BG_METHODS:
        raise OptionsError("bg_method", f"must be one of {', '.join(BG_METHODS)}, got {opts.bg_method!r}")
    if not 0 < opts.learning_rate <= 1:
        raise OptionsError("learning_rate", f"must be in (0, 1], got {opts.learning_rate}")
    if opts.window < 2 or opts.warmup < 1 or opts.k <= 0:
        raise OptionsError("window", f"must be >= 2, warmup >= 1 and k > 0, got {opts.window}, {opts.warmup}, {opts.k}")
    if opts.device not in ("auto", "cpu", "gpu"):
        raise OptionsError("device", f"must be auto, cpu or gpu, got {opts.device!r}")
