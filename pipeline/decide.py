"""One decision per measured row: whether it changed, and what kind of change it is.

The rule, in one place
----------------------
On every measured row (``status == 'ok'``) ``changed`` is true exactly when
``change_kind`` is not ``'none'``. Error rows keep ``changed`` False; a damaged file's
own row keeps its ``status``/``error_kind`` and the kind ``'corrupt'``. A frame that
decodes but is extremely unlike *both* its neighbours (no shared structure or
histogram) makes both of its rows ``'corrupt'`` (changed). A row that compares nothing
(the first frame in keyframes mode) has ``changed`` False and no kind.

Kinds, first match wins (see :class:`DecisionStage` for the numbers):

``corrupt``
    the frame is extremely unlike the frames on both sides (consecutive rows).
``cut``
    the two frames share little structure (low correlation at reduced scale) over most
    of the frame, neither a lighting map nor a translation explains it, and the drop
    stands out against the sequence's recent rows (adaptive, as PySceneDetect's
    adaptive detector), and the edges are unrelated too (the same view by night or in
    other weather keeps its edges where they were); or a blank card starts or ends.
``shift`` / ``shift+content``
    a translation explains the changed regions (camera shake); ``+content`` when
    regions remain after undoing it.
``lighting``
    what changed is explained by a global monotone intensity map (brightness,
    contrast, gamma, exposure, night mode), or the changed regions keep their pattern
    (light falling on the same things), or a smooth local gain/offset field (sun,
    shade, haze on a fixed scene) leaves almost nothing changed, or what it leaves are
    lights switched on or off in a dark scene (highlights against their surroundings
    in one frame only), or the whole view jumped in exposure (day to night: the
    intensity distributions a quarter of the range apart) while keeping its edges and
    no leftover region is large.
``content``
    changed regions remain: something appeared, moved or left.
``transition``
    a run of consecutive global changes that fades to or from a blank frame, or
    dissolves from one scene into another over several frames: one event.
``none``
    nothing above the noise floor: no changed region (the per-pixel level adapts to
    the pair's noise) and a mean difference within the sequence's running
    median + k * MAD.

Explicit thresholds win: when given, they decide ``changed``, and the kind follows
(``none`` when the thresholds say unchanged; ``content`` when they say changed and
the features see nothing above the noise floor).
"""

from __future__ import annotations

import hashlib
import math
import os
import stat
from collections import deque

import numpy as np
import pyarrow as pa

from framediff.kernels.decision_features import DECISION_FEATURES, decision_features, thumbnail
from framediff.kernels.shape import reduce_to

from .errors import ParameterError
from .thresholds import changed_flags

__all__ = [
    "DEFAULT_KEEP_ON",
    "FEATURE_PREFIX",
    "KINDS",
    "SENSITIVITIES",
    "DecisionStage",
    "KeyframeChain",
    "feature_fields",
    "file_digest",
    "overview",
    "overview_features",
    "pair_features",
    "parse_keep_on",
    "sensitivity_scale",
    "worth_deciding",
]

#: Every change kind a measured row can carry.
KINDS = ("none", "lighting", "shift", "shift+content", "content", "cut", "transition", "corrupt")

#: Named sensitivities and the scale they stand for (thresholds scale with 1 / it).
SENSITIVITIES = {"low": 0.6, "normal": 1.0, "high": 1.6}

#: Kinds that keep a frame in keyframes mode unless ``keep_on`` says otherwise. Lighting
#: and camera shake alone are not new content: a time-lapse kept for what happens in
#: it should not store every cloud or every gust; ``keep_on`` adds them back.
DEFAULT_KEEP_ON = frozenset({"content", "shift+content", "cut", "transition"})

#: Working columns the task adds per pair (dropped before the report is written).
FEATURE_PREFIX = "feat_"


def sensitivity_scale(sensitivity) -> float:
    """The sensitivity as a positive number (``'normal'`` is 1; higher finds more).

    Raises
    ------
    ParameterError
        Not one of ``low``, ``normal``, ``high`` or a positive number.
    """
    if isinstance(sensitivity, str):
        key = sensitivity.strip().lower()
        if key in SENSITIVITIES:
            return SENSITIVITIES[key]
        try:
            sensitivity = float(key)
        except ValueError:
            raise ParameterError("sensitivity", f"expects low, normal, high or a number, got {sensitivity!r}") from None
    if isinstance(sensitivity, bool) or not isinstance(sensitivity, (int, float)):
        raise ParameterError("sensitivity", f"expects low, normal, high or a number, got {sensitivity!r}")
    value = float(sensitivity)
    if not (value > 0 and math.isfinite(value)):
        raise ParameterError("sensitivity", f"must be a positive number, got {sensitivity!r}")
    return value


def parse_keep_on(keep_on) -> frozenset:
    """``'content,lighting'`` or an iterable of kinds, checked against :data:`KINDS`.

    Raises
    ------
    ParameterError
        An unknown kind.
    """
    if keep_on is None:
        return DEFAULT_KEEP_ON
    items = keep_on.split(",") if isinstance(keep_on, str) else list(keep_on)
    kinds = frozenset(str(k).strip().lower() for k in items if str(k).strip())
    unknown = sorted(kinds - set(KINDS) - {"shift+content"})
    if unknown:
        raise ParameterError("keep_on", f": unknown kind {unknown[0]!r}; choose from {', '.join(KINDS[1:])}")
    return kinds


def file_digest(path, *, block: int = 1 << 20) -> str:
    """BLAKE2b digest of a file's bytes, read before any decoding.

    Byte-identical files are the same picture whatever the decoder would say; the
    keyframes chain compares digests first and never keeps an exact repeat.
    """
    if not stat.S_ISREG(os.stat(path).st_mode):
        # A device or FIFO (a link to /dev/zero, say) would never end: decoding says why.
        raise OSError(f"{path}: not a regular file")
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        while chunk := f.read(block):
            h.update(chunk)
    return h.hexdigest()


#: Long side of the overview every decision looks at (see ``decision_features``).
OVERVIEW_SIDE = 160


def overview(image, *, data_range: float, xp=None):
    """A frame as decisions see it: its long side reduced to :data:`OVERVIEW_SIDE`
    pixels by block means, as float64 in 0..1. Made once per frame, shared by its pairs."""

    xp = xp if xp is not None else np
    return reduce_to(xp.asarray(image), OVERVIEW_SIDE, min_side=16, xp=xp).astype(xp.float64) / float(data_range)


def worth_deciding(ra, rb, *, sensitivity="normal", xp=None) -> bool:
    """Whether two overviews (see :func:`overview`) differ enough to need the features.

    Block means average sensor noise, codec blocks and dithering away, so a pair whose
    overviews nowhere differ by half the smallest changed-pixel level, and whose mean
    difference stays under half the smallest change, is unchanged without a closer look:
    the cheap test that keeps the decision off a static scene's hot path.
    """
    xp = xp if xp is not None else np
    scale = sensitivity_scale(sensitivity)
    diff = xp.abs(ra - rb)
    return bool(float(diff.max()) >= 0.5 * 0.04 / scale or float(diff.mean()) >= 0.5 * 0.02 / scale)  # synchronize


def overview_features(ra, rb, *, sensitivity="normal", xp=None) -> dict:
    """:func:`pair_features` of two overviews (see :func:`overview`)."""
    scale = sensitivity_scale(sensitivity)
    features = decision_features(ra, rb, data_range=1.0, level=0.04 / scale, min_area=0.0006 / scale**2, xp=xp)
    features["thumb_a"] = thumbnail(ra, data_range=1.0, xp=xp).ravel().tolist()
    features["thumb_b"] = thumbnail(rb, data_range=1.0, xp=xp).ravel().tolist()
    return {FEATURE_PREFIX + k: v for k, v in features.items()}


def pair_features(a, b, *, data_range: float, sensitivity="normal", xp=None) -> dict:
    """Per-pair features the decision needs, for two prepared gray frames.

    Parameters
    ----------
    a, b : array, shape (H, W)
        The two frames as compared (shape policy applied), NumPy or CuPy.
    data_range : float
        Their intensity range (255 for uint8).
    sensitivity : {'low', 'normal', 'high'} or float
        Scales the smallest changed region and residual level.
    xp : module, optional

    Returns
    -------
    dict
        :data:`framediff.kernels.decision_features.DECISION_FEATURES` plus
        ``thumb_a``/``thumb_b`` (16-pixel overviews, for transitions); the keys as the
        task writes them, each prefixed with :data:`FEATURE_PREFIX`.
    """
    xp = xp if xp is not None else np
    ra, rb = overview(a, data_range=data_range, xp=xp), overview(b, data_range=data_range, xp=xp)
    return overview_features(ra, rb, sensitivity=sensitivity, xp=xp)


def feature_fields() -> list:
    """Arrow fields of the working columns :func:`pair_features` fills (for the row schema).

    They travel from the task to :class:`DecisionStage`, which drops them.
    """
    fields = [pa.field(FEATURE_PREFIX + name, pa.float64()) for name in DECISION_FEATURES]
    return fields + [pa.field(FEATURE_PREFIX + n, pa.list_(pa.float64())) for n in ("thumb_a", "thumb_b")]


def _corr(x, y) -> float:
    x = np.asarray(x, np.float64) - np.mean(x)
    y = np.asarray(y, np.float64) - np.mean(y)
    den = math.sqrt(float((x * x).sum() * (y * y).sum()))
    return float((x * y).sum()) / den if den > 1e-12 else 1.0


class DecisionStage:
    """Sets ``changed`` and ``change_kind`` on the rows of a report, in order.

    Rows stream through :meth:`feed` (one task's table at a time, in comparison
    order) and :meth:`finish`. The stage holds a bounded window: the last
    ``window`` rows' statistics for the noise floor and at most ``max_transition``
    undecided rows while a possible transition is still open.

    Parameters
    ----------
    sensitivity : {'low', 'normal', 'high'} or float
        One knob: ``high`` (1.6) finds smaller and fainter changes, ``low`` (0.6)
        only larger ones; a number scales every threshold by ``1 / sensitivity``.
    thresholds : dict, optional
        Explicit ``{metric: limit}`` thresholds (as ``--threshold``); when given they
        decide ``changed`` and the kind is made consistent with them.
    sequence : bool
        The rows are consecutive pairs of one sequence: transitions and the
        corrupt-neighbour rule apply.
    window : int
        Rows in the running median/MAD of the noise floor.
    max_transition : int
        Longest run of rows (frames - 1) reported as one transition.
    registered : bool
        The frames were registered before measuring (``align``): a camera shift is
        not a change (``shift`` becomes ``none``, ``shift+content`` becomes ``content``).

    Notes
    -----
    Thresholds at ``normal`` (each divided by the sensitivity, correlations moved
    towards 1 for higher sensitivity): a pixel changed when its residual after the
    lighting map exceeds max(0.04, 4 x the pair's robust noise) of the range, at a
    256-pixel scale after a 1-pixel blur; a region counts from 0.06 % of the frame;
    the mean-difference floor is max(0.02, median + 4 x 1.4826 MAD of the recent rows);
    a cut needs correlation under 0.5 over at least 30 % of the frame and (after 5
    rows) a decorrelation 3 x the recent median, and gradient orientations that
    correlate under 0.12; lighting explains regions whose texture correlates above 0.9,
    or a local illumination field that leaves under 0.15 % of the frame changed (lights
    switched in a dark scene not counted), or an exposure jump (earth mover's distance
    of the histograms 0.25 or more, or 0.15 between a dark scene -- its brightest tenth
    under 60 % of the range -- and a bright one; edges kept, no leftover region over
    5 %); an
    extreme pair (|correlation| under 0.03) on both
    sides of a frame makes it corrupt.
    """

    def __init__(
        self,
        *,
        sensitivity="normal",
        thresholds=None,
        sequence: bool = True,
        window: int = 64,
        max_transition: int = 48,
        registered: bool = False,
    ):
        self.scale = sensitivity_scale(sensitivity)
        self.thresholds = dict(thresholds or {})
        self.sequence = bool(sequence)
        self.registered = bool(registered)
        self.max_transition = int(max_transition)
        s = self.scale
        self.min_l1 = 0.02 / s
        self.floor_k = 4.0 / s
        self.cut_corr = 1.0 - 0.5 / s
        self.cut_area = 0.3
        self.adaptive_ratio = 3.0 / s
        self.lighting_corr = 1.0 - 0.1 / s
        self.cut_structure = min(0.12 * s, 0.5)
        self.content_area = 0.0015 / s**2
        self.exposure_emd = 0.25 * s
        self.night_emd = 0.15 * s
        self.exposure_largest = 0.05 / s
        self.min_shift = 0.5
        self.min_peak = 0.05
        self.extreme_corr = 0.03
        self.cut_from_blank = 0.08 / s
        self.drift_step = 0.005 / s
        self.blank_step = 0.001
        self.fade_span = 0.1 / s
        self.min_transition = 3
        self._l1 = deque(maxlen=int(window))
        self._decorr = deque(maxlen=int(window))
        self._pending: list[dict] = []
        self._schema = None

    # -- per row ---------------------------------------------------------------
    def floor(self) -> float:
        """The current mean-difference floor: median + k * robust sigma of recent rows.

        Never under ``min_l1`` and never over ``3 * min_l1``: a sequence that changes
        all the time (a fade, traffic) must not raise its floor above changes a
        person sees.
        """
        if len(self._l1) < 5:
            return self.min_l1
        values = np.asarray(self._l1)
        med = float(np.median(values))
        mad = 1.4826 * float(np.median(np.abs(values - med)))
        return min(max(self.min_l1, med + self.floor_k * mad), 3 * self.min_l1)

    def classify(self, f: dict) -> str:
        """Kind of one measured pair from its features (no prefix), updating the window.

        This is the in-chain decision of keyframes mode; the sequence rules
        (transition, corrupt neighbours) are applied by :meth:`feed`.
        """
        kind = self._kind(f)
        self._l1.append(f["l1"])
        self._decorr.append(1.0 - f["corr"])
        return kind

    def _kind(self, f: dict) -> str:
        floor = self.floor()
        flat_a, flat_b = f["flat_a"] > 0, f["flat_b"] > 0
        if flat_a and flat_b:  # blank to blank: no texture for noise to hide in
            return "lighting" if f["l1"] >= self.min_l1 else "none"
        if flat_a != flat_b:  # a blank card starts or ends: at once (cut) or gently (a fade's step)
            if f["l1"] >= self.cut_from_blank:
                return "cut"
            return "lighting" if f["l1"] >= floor else "none"
        moved = (
            f["shift"] >= self.min_shift and f["align_peak"] >= self.min_peak and f["area_shifted"] <= 0.5 * f["area"]
        )
        # Structure lost over much of the frame, or with a large global change (a
        # lighting map may "explain" a cut to a dark card, the correlation does not).
        large = f["area"] >= self.cut_area or f["l1"] >= self.cut_from_blank
        # A cut also needs unrelated structure: the same scene by night or in other
        # weather decorrelates its intensities but keeps its edges where they were.
        decorrelated = f["corr"] < self.cut_corr and large and not moved and f["structure"] < self.cut_structure
        if decorrelated and len(self._decorr) >= 5:
            decorrelated = 1.0 - f["corr"] >= self.adaptive_ratio * float(np.median(self._decorr))
        if decorrelated:
            return "cut"
        if f["area"] > 0:
            if moved:
                if self.registered:
                    return "content" if f["area_shifted"] > 0 else "none"
                return "shift+content" if f["area_shifted"] > 0 else "shift"
            if f["region_corr"] >= self.lighting_corr and f["corr"] >= self.cut_corr:
                return "lighting"
            if f["area_local"] < self.content_area:  # a local illumination field explains it
                return "lighting" if f["l1"] >= floor else "none"
            if f["area_local"] - f["area_light"] < self.content_area:
                return "lighting"  # lamps, lit windows, floodlights switched in a dark scene
            jump = f["emd"] >= self.exposure_emd or (f["dark_change"] > 0 and f["emd"] >= self.night_emd)
            if jump and f["structure"] >= self.cut_structure and f["largest_local"] < self.exposure_largest:
                # Day to night, night mode, a large exposure jump on the same view (its
                # edges kept): what is left over is how lights and shine differ, unless
                # one region is itself large. Day against night needs a smaller jump: an
                # overcast day and a foggy night have close histograms.
                return "lighting"
            return "content"
        if f["l1"] >= floor:
            if f["shift"] >= self.min_shift and f["align_peak"] >= self.min_peak:
                return "none" if self.registered else "shift"
            return "lighting"
        return "none"

    def settings(self) -> dict:
        """The numbers this stage decides with (recorded in the report and summary)."""
        return {
            "sensitivity": self.scale,
            "min_l1": self.min_l1,
            "noise_floor_k": self.floor_k,
            "cut_corr": self.cut_corr,
            "cut_area": self.cut_area,
            "adaptive_ratio": self.adaptive_ratio,
            "lighting_corr": self.lighting_corr,
            "cut_structure": self.cut_structure,
            "content_area": self.content_area,
            "exposure_emd": self.exposure_emd,
            "exposure_largest": self.exposure_largest,
            "night_emd": self.night_emd,
        }

    def window(self) -> dict:
        """The running window (for a chain's resumable state)."""
        return {"l1": list(self._l1), "decorr": list(self._decorr)}

    def reset_window(self) -> None:
        """Forget the noise floor (a new video or run of images starts)."""
        self._l1.clear()
        self._decorr.clear()

    def restore_window(self, window: dict) -> None:
        """Continue from :meth:`window`'s record."""
        self._l1.extend(window.get("l1", ()))
        self._decorr.extend(window.get("decorr", ()))

    def explicit_kind(self, row: dict, kind: str) -> str:
        """The kind once explicit thresholds decide ``changed``: ``none`` when they say
        unchanged; the features' kind (``content`` when they saw nothing) when changed."""
        return self._explicit(row, kind)

    def _explicit(self, row: dict, kind: str) -> str:
        values = {k: [row.get(k)] for k in self.thresholds}
        values = {k: [math.nan if v[0] is None else v[0]] for k, v in values.items()}
        changed = bool(changed_flags(values, self.thresholds)[0])
        if not changed:
            return "none"
        return "content" if kind == "none" else kind

    # -- streaming -------------------------------------------------------------
    def feed(self, table: pa.Table) -> pa.Table:
        """Decide the rows of ``table``; return the rows whose decision is final.

        Rows may be held back (at most ``max_transition + 1``) until the next table
        shows whether a transition or corrupt frame continues across; the returned
        table has the input's schema minus the ``feat_`` working columns.
        """
        if self._schema is None:
            self._schema = _report_schema(table.schema)
        for row in table.to_pylist():
            self._pending.append(self._decide_row(row))
        return self._emit(final=False)

    def finish(self) -> pa.Table:
        """Decide and return every row still held back."""
        if self._schema is None:
            return pa.table({})
        return self._emit(final=True)

    def _decide_row(self, row: dict) -> dict:
        if row.get("status") != "ok":
            # Error rows keep the kind the task gave them ('corrupt' for a damaged file).
            row["changed"] = False
            return row
        if row.get(FEATURE_PREFIX + "l1") is None:
            # The task saw nothing worth a closer look (below the cheap gate): unchanged,
            # unless an explicit threshold says otherwise.
            kind = self._explicit(row, "none") if self.thresholds else "none"
            row["change_kind"], row["changed"] = kind, kind != "none"
            return row
        f = {k[len(FEATURE_PREFIX) :]: v for k, v in row.items() if k.startswith(FEATURE_PREFIX)}
        kind = self.classify(f)
        row["_f"] = f
        row["change_kind"] = kind
        return row

    def _emit(self, final: bool) -> pa.Table:
        rows = self._pending
        if self.sequence:
            self._corrupt_neighbours(rows)
        settled = len(rows) if final else self._settled(rows)
        if self.sequence:
            self._transitions(rows[:settled])
        out, self._pending = rows[:settled], rows[settled:]
        for row in out:
            kind = row.get("change_kind")
            if row.get("status") == "ok" and "_f" in row:
                if self.thresholds:
                    kind = self._explicit(row, kind)
                row["change_kind"] = kind
                row["changed"] = kind != "none"
            row.pop("_f", None)
        names = self._schema.names
        return pa.Table.from_pylist([{n: r.get(n) for n in names} for r in out], schema=self._schema)

    def _gradual(self, row) -> bool:
        """A step that may belong to a fade or dissolve: global, small, not a cut."""
        f = row.get("_f")
        if f is None:
            return False
        # The last step into (or first out of) a blank card may be large: it still ends
        # (or starts) a fade when the steps next to it are gradual.
        to_blank = row["change_kind"] == "cut" and (f["flat_a"] > 0) != (f["flat_b"] > 0)
        if row["change_kind"] not in ("none", "lighting", "transition") and not to_blank:
            return False
        blank = f["flat_a"] > 0 and f["flat_b"] > 0  # no noise at all on a blank card
        return f["l1"] >= (self.blank_step if blank else self.drift_step)

    def _settled(self, rows) -> int:
        """Rows before an open run of gradual steps (and the last row) are final."""
        if not rows:
            return 0
        end = len(rows) - 1  # the last row waits for its successor (corrupt rule)
        start = end
        while start > 0 and self._gradual(rows[start - 1]) and _follows(rows[start - 1], rows[start]):
            start -= 1
        if len(rows) - start > self.max_transition + 1:
            return end
        return max(0, start if self._gradual(rows[start]) else end)

    def _corrupt_neighbours(self, rows) -> None:
        for r, s in zip(rows, rows[1:]):
            if "_f" in r and "_f" in s and _follows(r, s):
                # Unrelated on both sides: no correlation at all, as with noise or
                # garbage (a night frame between day frames anti-correlates instead).
                if abs(r["_f"]["corr"]) < self.extreme_corr and abs(s["_f"]["corr"]) < self.extreme_corr:
                    r["change_kind"] = s["change_kind"] = "corrupt"

    def _transitions(self, rows) -> None:
        k = 0
        while k < len(rows):
            if not self._gradual(rows[k]):
                k += 1
                continue
            e = k
            while e + 1 < len(rows) and self._gradual(rows[e + 1]) and _follows(rows[e], rows[e + 1]):
                e += 1
            run = rows[k : e + 1]
            if self.min_transition <= len(run) <= self.max_transition and self._is_transition(run):
                for row in run:
                    row["change_kind"] = "transition"
            k = e + 1

    def _is_transition(self, run) -> bool:
        """Small steps that add up: a fade to or from a blank card, or a dissolve."""
        fs = [r["_f"] for r in run]
        first = np.asarray(fs[0]["thumb_a"], np.float64)
        last = np.asarray(fs[-1]["thumb_b"], np.float64)
        blank = any(f["flat_a"] > 0 or f["flat_b"] > 0 for f in fs)
        if blank and abs(first.mean() - last.mean()) >= self.fade_span:
            return True
        return _corr(first, last) < self.cut_corr and float(np.abs(first - last).mean()) >= self.fade_span / 2


class KeyframeChain:
    """The keyframes decision in chain order: each frame against the last kept one.

    Byte-identical files are recognised by their digest before any pixel is looked
    at and never kept; otherwise the pair's kind (:meth:`DecisionStage.classify`)
    decides, and a frame is kept when its kind is in ``keep_on``.

    Parameters
    ----------
    sensitivity : {'low', 'normal', 'high'} or float
    keep_on : str or iterable of str, optional
        Kinds that keep a frame; default :data:`DEFAULT_KEEP_ON` (content, shift+content,
        cut, transition: lighting and shake alone do not keep a frame).

    Attributes
    ----------
    counts : dict
        Decisions so far by kind, with ``byte_identical`` for exact repeats.
    """

    def __init__(self, *, sensitivity="normal", keep_on=None):
        self.sensitivity = sensitivity
        self.stage = DecisionStage(sensitivity=sensitivity, sequence=False)
        self.keep_on = parse_keep_on(keep_on)
        self.counts: dict[str, int] = {"byte_identical": 0}
        self._ref = None
        self._digest = None

    def offer(self, frame, digest: str, *, data_range: float = 255.0) -> tuple[bool, str | None]:
        """Decide one readable frame; returns ``(kept, change_kind)``.

        The first frame (or one whose shape differs from the kept frame) is kept with
        kind ``None``: there is nothing to compare it with.
        """
        if self._ref is None or frame.shape != self._ref.shape:
            self._ref, self._digest = frame, digest
            return True, None
        if digest == self._digest:
            self.counts["byte_identical"] += 1
            return False, "none"
        features = pair_features(self._ref, frame, data_range=data_range, sensitivity=self.sensitivity)
        kind = self.stage.classify({k[len(FEATURE_PREFIX) :]: v for k, v in features.items()})
        self.counts[kind] = self.counts.get(kind, 0) + 1
        kept = kind in self.keep_on
        if kept:
            self._ref, self._digest = frame, digest
        return kept, kind


def _follows(r: dict, s: dict) -> bool:
    return r.get("index_b") is not None and r.get("index_b") == s.get("index_a")


def _report_schema(schema: pa.Schema) -> pa.Schema:
    """The input schema without working columns; ``changed`` bool, ``change_kind`` string."""
    fixed = {"changed": pa.bool_(), "change_kind": pa.string()}
    keep = [f.with_type(fixed.get(f.name, f.type)) for f in schema if not f.name.startswith(FEATURE_PREFIX)]
    if "changed" not in schema.names:
        keep.append(pa.field("changed", pa.bool_()))
    return pa.schema(keep)
