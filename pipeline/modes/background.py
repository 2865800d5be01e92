"""``background``: a per-pixel background model; each frame's foreground fraction."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pyarrow as pa

from framediff import kernels as K
from framediff.kernels.background import BackgroundModel, update_background

from ..atomic import atomic_path
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
    value_columns = [("foreground_fraction", pa.float64())]
    resumes_from_state = True
    tasks_per_worker = 2
    #: A frame is changed when over 1% of its pixels are foreground.
    default_thresholds = {"foreground_fraction": 0.01}

    def threshold_metrics(self, options) -> tuple:
        return ("foreground_fraction",)

    def plan(self, inputs: Inputs, chunk_size: int):
        return plan_frames(inputs, chunk_size)

    def expected_rows(self, n_inputs: int) -> int:
        return n_inputs

    def route(self, *, distributed: bool, device: str) -> str:
        return Route.CHAIN

    def prepare(self, chunk, spec, device):
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
            raw = frames.raw(i)
            gray = K.to_gray(raw, "luma") if raw.ndim == 3 else raw
            if state is not None and tuple(state.mean.shape) != gray.shape:
                h, w = state.mean.shape
                reason = f"{gray.shape[1]}x{gray.shape[0]} differs from the model's {w}x{h}"
                error_row(rows, spec, i, None, i, "size-mismatch", reason)
                continue
            state, fraction, masks = update_background(
                state,
                frames.xp.asarray(gray)[None],
                mode=opts.bg_method,
                learning_rate=opts.learning_rate,
                window=opts.window,
                k=opts.k,
                warmup=opts.warmup,
                return_masks=mask_dir is not None,
                xp=frames.xp,
            )
            value = float(K.to_numpy(fraction)[0])
            changed = bool(spec.thresholds.changed({"foreground_fraction": [value]})[0])
            note = "warm-up: learning the background" if np.isnan(value) else None
            if mask_dir is not None and masks is not None and not np.isnan(value):
                _write_mask(mask_dir, spec.names[i], K.to_numpy(masks[0]))
            rows.add(
                pair=i,
                index_b=i,
                path_b=spec.names[i],
                height=gray.shape[0],
                width=gray.shape[1],
                foreground_fraction=None if np.isnan(value) else value,
                changed=changed,
                status="ok",
                note=note,
            )
        return rows.table(), state

    def dump_state(self, state):
        fields = dataclasses.asdict(state)
        arrays = {k: K.to_numpy(v) for k, v in fields.items() if v is not None and not np.isscalar(v) and not isinstance(v, str)}
        return {k: v for k, v in fields.items() if k not in arrays}, arrays

    def load_state(self, fields, arrays, inputs, spec, device):
        xp = K.resolve_device(device)
        return BackgroundModel(**fields, **{k: xp.asarray(v) for k, v in arrays.items()})


def _write_mask(mask_dir, name: str, mask: np.ndarray) -> None:
    """Write a foreground mask as an 8-bit PNG named after the frame, inside mask_dir."""
    root = Path(mask_dir).resolve()
    video_frame = split_frame_name(name)  # clip.mp4#frame=12 -> clip_000012, as extracted frames are named
    stem = f"{os.path.splitext(video_frame[0])[0]}_{video_frame[1]:06d}" if video_frame else os.path.splitext(name)[0]
    target = (root / (stem + ".mask.png")).resolve()
    if root not in target.parents:  # a crafted name must not escape the folder
        target = root / (Path(name).name + ".mask.png")
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(target, suffix=".png") as tmp:
        iio.imwrite(tmp, mask.astype(np.uint8) * 255, extension=".png")
