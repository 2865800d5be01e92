"""``background``: a per-pixel background model; each frame's foreground fraction."""

from __future__ import annotations

import dataclasses
import functools
import os
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa

from framediff import kernels as K
from framediff.kernels.background import BackgroundModel, update_background
from framediff.kernels.background_samples import SampleModel, background_frame, update_sample_background

from ..atomic import atomic_path
from ..errors import ParameterError
from ..measure import error_row
from ..rows import RowBuffer
from ..video_outputs import split_frame_name
from .base import Inputs, Mode, Route
from .chains import decode_chunk, plan_frames

__all__ = ["Background"]


class Background(Mode):
    name = "background"
    measures_pairs = False
    labels_changes = False
    decides_in_sink = False
    value_columns = [("foreground_fraction", pa.float64())]
    resumes_from_state = True
    tasks_per_worker = 2
    #: A frame is changed when over 1% of its pixels are foreground.
    default_thresholds = {"foreground_fraction": 0.01}

    #: Per-frame exposure corrections the model can apply (``background_frame``).
    normalizations = ("none", "minmax", "percentile")

    def threshold_metrics(self, options) -> tuple:
        return ("foreground_fraction",)

    def check_options(self, options) -> None:
        if options.normalize not in self.normalizations:
            allowed = ", ".join(self.normalizations)
            raise ParameterError("normalize", f"='{options.normalize}' does nothing in background mode (use {allowed})")

    def plan(self, inputs: Inputs, chunk_size: int):
        return plan_frames(inputs, chunk_size)

    def expected_rows(self, n_inputs: int) -> int:
        return n_inputs

    def route(self, *, distributed: bool, device: str) -> str:
        return Route.CHAIN

    def prepare(self, chunk, spec, device):
        if spec.options.bg_method == "samples" and not spec.options.color:
            # The sample model compares colours: decode RGB, not the luma of the JPEG.
            spec = dataclasses.replace(spec, options=dataclasses.replace(spec.options, color=True))
        return decode_chunk(chunk, spec, device, raw_only=True)

    def link(self, chunk, spec, prepared, state, device):
        """Show the frames to the background model in order; one row per frame.

        ``state`` is the :class:`~framediff.kernels.background.BackgroundModel` after
        the previous chunk (None at the start). Frames that cannot be read, or have
        another shape than the model, are error rows and do not touch the model.
        """
        frames, opts, mask_dir = prepared, spec.options, spec.mask_dir
        rows = RowBuffer(spec.schema)
        for i in chunk.targets:
            if i == spec.sequence_start(i):
                state = None  # each video (each run of images) learns its own background
            if not frames.readable(i):
                err = frames.errors[i]
                error_row(rows, spec, i, None, i, err.kind, err.reason)
                continue
            image = _model_frame(frames.xp.asarray(frames.raw(i)), opts, frames.xp)
            if state is not None and tuple(_model_shape(state)) != tuple(image.shape[:2]):
                h, w = _model_shape(state)
                reason = f"{image.shape[1]}x{image.shape[0]} differs from the model's {w}x{h}"
                error_row(rows, spec, i, None, i, "size-mismatch", reason)
                continue
            state, fraction, masks = _update(state, image, opts, mask_dir is not None, frames.xp)
            value = float(K.to_numpy(fraction)[0])
            changed = bool(spec.thresholds.changed({"foreground_fraction": [value]})[0])
            note = "warm-up: learning the background" if np.isnan(value) else None
            if mask_dir is not None and masks is not None and not np.isnan(value):
                _write_mask(mask_dir, mask_name(spec.names, i), K.to_numpy(masks[0]))
            rows.add(
                pair=i,
                index_b=i,
                path_b=spec.names[i],
                height=image.shape[0],
                width=image.shape[1],
                foreground_fraction=None if np.isnan(value) else value,
                changed=changed,
                status="ok",
                note=note,
            )
        return rows.table(), state

    def dump_state(self, state):
        fields = dataclasses.asdict(state)
        arrays = {
            k: K.to_numpy(v)
            for k, v in fields.items()
            if v is not None and not np.isscalar(v) and not isinstance(v, str)
        }
        return {k: v for k, v in fields.items() if k not in arrays}, arrays

    def load_state(self, fields, arrays, inputs, spec, device):
        xp = K.resolve_device(device)
        model = SampleModel if "samples" in arrays else BackgroundModel
        return model(**fields, **{k: xp.asarray(v) for k, v in arrays.items()})


def _model_frame(raw, opts, xp):
    """The frame as the model takes it, with the options' median, blur and exposure
    correction applied: colour (H, W, C) for the sample model, gray (H, W) otherwise."""
    if opts.bg_method != "samples" and raw.ndim == 3:
        raw = K.to_gray(raw, "luma")
    image = background_frame(raw, median=opts.median, blur=opts.blur, normalize=opts.normalize, xp=xp)
    return image if opts.bg_method == "samples" else image[..., 0]


def _model_shape(state) -> tuple:
    return state.shape[:2] if isinstance(state, SampleModel) else tuple(state.mean.shape)


def _update(state, image, opts, return_masks: bool, xp):
    if opts.bg_method == "samples":
        return update_sample_background(
            state, image[None], warmup=opts.warmup, align=opts.align, return_masks=return_masks, xp=xp
        )
    return update_background(
        state,
        image[None],
        mode=opts.bg_method,
        learning_rate=opts.learning_rate,
        window=opts.window,
        k=opts.k,
        warmup=opts.warmup,
        return_masks=return_masks,
        xp=xp,
    )


@functools.lru_cache(maxsize=4)
def _shared_stems(names: tuple) -> frozenset:
    stems = Counter(os.path.splitext(n)[0] for n in names)
    return frozenset(s for s, count in stems.items() if count > 1)


def mask_name(names: tuple, index: int) -> str:
    """The mask file of frame ``index``: ``f7.mask.png`` for ``f7.jpg``,
    ``f7.jpg.mask.png`` when another frame shares the stem (``f7.png``), and
    ``clip_000012.mask.png`` for frame 12 of ``clip.mp4``."""
    video_frame = split_frame_name(names[index])
    if video_frame:  # clip.mp4#frame=12 -> clip_000012, as extracted frames are named
        return f"{os.path.splitext(video_frame[0])[0]}_{video_frame[1]:06d}.mask.png"
    stem = os.path.splitext(names[index])[0]
    return (names[index] if stem in _shared_stems(names) else stem) + ".mask.png"


def _write_mask(mask_dir, name: str, mask: np.ndarray) -> None:
    """Write a foreground mask as an 8-bit PNG named ``name``, inside mask_dir."""
    root = Path(mask_dir).resolve()
    target = (root / name).resolve()
    if root not in target.parents:  # a crafted name must not escape the folder
        target = root / Path(name).name
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(target, suffix=".png") as tmp:
        import imageio.v3 as iio  # only with masks=: a scan without them does not pay for it

        iio.imwrite(tmp, mask.astype(np.uint8) * 255, extension=".png")
