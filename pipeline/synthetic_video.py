"""Deterministic synthetic video clips with known cuts, fades and a static stretch.

Made with PyAV (libx264), for the video tests and ``scripts/bench_video.py``. Each shot is
a seeded smooth colour field with texture, seen through a window that pans a few pixels a
frame (so consecutive frames of a shot differ a little, as a real camera's do); a hard cut
starts a new shot; a fade blends one shot into the next over a few frames; a static
stretch holds the window still (frames that differ only by encoding noise).

The ground truth comes back as a :class:`VideoTruth`: frame indices are 0-based positions
in presentation order, the numbering ``framediff.video`` uses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

__all__ = ["VideoTruth", "make_clip", "clip_layout"]

_PAN = 3  # pixels the window moves per frame inside a shot
_FIELD_CELLS = 8  # coarse colour-field grid per shot (upsampled smoothly)


@dataclass
class VideoTruth:
    """What a synthetic clip contains.

    Attributes
    ----------
    path : Path
        The clip.
    n_frames : int
        Frames written.
    size : tuple of int
        ``(height, width)``.
    cuts : list of int
        Frame indices that start a new shot after a hard cut.
    fades : list of tuple of int
        ``(first, last)`` frames of each cross-fade (the blended frames).
    static : list of tuple of int
        ``(first, last)`` of each stretch where the picture does not move.
    pts : list of int
        Presentation timestamp of each frame, in ``time_base`` units.
    time_base : Fraction
        The unit of ``pts``.
    """

    path: Path
    n_frames: int
    size: tuple[int, int]
    cuts: list = field(default_factory=list)
    fades: list = field(default_factory=list)
    static: list = field(default_factory=list)
    pts: list = field(default_factory=list)
    time_base: Fraction = Fraction(1, 25)

    def times(self) -> list[float]:
        """Seconds of each frame from the first one."""
        return [float((p - self.pts[0]) * self.time_base) for p in self.pts]


def clip_layout(n_frames: int) -> tuple[list, list, list]:
    """Where cuts, fades and the static stretch fall in a clip of ``n_frames``.

    Returns
    -------
    cuts : list of int
    fades : list of (int, int)
    static : list of (int, int)
    """
    if n_frames < 40:
        raise ValueError(f"a clip with cuts, a fade and a static stretch needs at least 40 frames, got {n_frames}")
    cuts = sorted({round(n_frames * f) for f in (0.15, 0.35, 0.62, 0.85)})
    fade_first = round(n_frames * 0.48)
    fades = [(fade_first, fade_first + max(4, n_frames // 40))]
    static_first = round(n_frames * 0.70)
    static = [(static_first, static_first + max(6, n_frames // 15))]
    return cuts, fades, static


def _shot_field(rng, height: int, width: int) -> np.ndarray:
    """A smooth random colour field with fine texture, uint8 (height, width, 3)."""
    coarse = rng.uniform(20, 235, size=(_FIELD_CELLS, _FIELD_CELLS, 3)).astype(np.float32)
    ys = np.linspace(0, _FIELD_CELLS - 1, height, dtype=np.float32)
    xs = np.linspace(0, _FIELD_CELLS - 1, width, dtype=np.float32)
    y0 = np.minimum(ys.astype(int), _FIELD_CELLS - 2)
    x0 = np.minimum(xs.astype(int), _FIELD_CELLS - 2)
    fy = (ys - y0)[:, None, None]
    fx = (xs - x0)[None, :, None]
    top = coarse[y0][:, x0] * (1 - fx) + coarse[y0][:, x0 + 1] * fx
    bottom = coarse[y0 + 1][:, x0] * (1 - fx) + coarse[y0 + 1][:, x0 + 1] * fx
    image = top * (1 - fy) + bottom * fy
    # Texture: stripes whose direction and period are per shot, so motion is visible.
    angle, period = rng.uniform(0, np.pi), rng.uniform(6, 18)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    image += 18 * np.sin((xx * np.cos(angle) + yy * np.sin(angle)) * (2 * np.pi / period))[..., None]
    return np.clip(image, 0, 255).astype(np.uint8)


def _frames(n_frames: int, size: tuple[int, int], seed: int):
    """Yield the RGB frames of the layout of :func:`clip_layout`."""
    height, width = size
    cuts, fades, static = clip_layout(n_frames)
    starts = sorted([0, *cuts, *(last + 1 for _, last in fades)])
    rng = np.random.default_rng(seed)
    margin = _PAN * n_frames + 2
    fields = [_shot_field(rng, height, width + margin) for _ in starts]
    still = {i for first, last in static for i in range(first, last + 1)}
    offset = 0
    for i in range(n_frames):
        shot = sum(1 for s in starts if s <= i) - 1
        if i not in still and i not in starts:
            offset += _PAN
        frame = fields[shot][:, offset : offset + width]
        for first, last in fades:
            if first <= i <= last:
                # Blend from the shot before the fade into the one after it.
                w = (i - first + 1) / (last - first + 2)
                after = fields[shot + 1][:, offset : offset + width]
                frame = (frame * (1 - w) + after * w).astype(np.uint8)
        yield np.ascontiguousarray(frame)


def make_clip(
    path,
    *,
    n_frames: int = 120,
    size: tuple[int, int] = (120, 160),
    fps: int = 25,
    codec: str = "libx264",
    gop: int = 25,
    bframes: int = 2,
    open_gop: bool = False,
    vfr: bool = False,
    creation_time: str | None = None,
    preset: str = "ultrafast",
    seed: int = 0,
) -> VideoTruth:
    """Write a clip with known cuts, a fade and a static stretch.

    Parameters
    ----------
    path : str or path-like
        Output file; the container follows the extension (``.mp4``, ``.mkv``, ``.avi``...).
    n_frames : int
        At least 40.
    size : tuple of int
        ``(height, width)``, even numbers (4:2:0 chroma).
    fps : int
        Nominal frame rate.
    codec : str
        An encoder PyAV knows (``libx264``, ``mpeg4``, ``mpeg2video``...).
    gop : int
        Keyframe interval (x264 ``keyint`` with ``scenecut=0``, so keyframes are regular).
    bframes : int
        B-frames between references (reordering: decode order differs from display order).
    open_gop : bool
        x264 open GOPs: B-frames before a keyframe in display order refer to the previous
        GOP, so a seek to that keyframe cannot decode them.
    vfr : bool
        Variable frame rate: frame durations cycle through 1, 2 and 3 ticks of a 1 ms base
        scaled to ``fps``, so ``pts`` are not ``index / fps``.
    creation_time : str, optional
        ISO 8601 UTC stamp written as the container's ``creation_time``.
    preset : str
        x264 preset (speed of writing).
    seed : int
        Seeds the shot pictures.

    Returns
    -------
    VideoTruth
    """
    import av

    height, width = size
    if height % 2 or width % 2:
        raise ValueError(f"size must be even for 4:2:0 video, got {size}")
    path = Path(path)
    cuts, fades, static = clip_layout(n_frames)
    time_base = Fraction(1, 1000) if vfr else Fraction(1, fps)
    pts, t = [], 0
    for i in range(n_frames):
        pts.append(t)
        t += round(1000 / fps) * (1 + i % 3) if vfr else 1
    with av.open(str(path), "w") as container:
        if creation_time:
            container.metadata["creation_time"] = creation_time
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.time_base = time_base
        if codec in ("libx264", "h264"):
            params = f"keyint={gop}:min-keyint={gop}:scenecut=0:bframes={bframes}"
            if open_gop:
                params += ":open-gop=1"
            stream.options = {"preset": preset, "x264-params": params, "crf": "20"}
        else:
            stream.codec_context.gop_size = gop
            stream.codec_context.max_b_frames = bframes
            stream.options = {"qscale": "3"}
        for i, rgb in enumerate(_frames(n_frames, size, seed)):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts, frame.time_base = pts[i], time_base
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return VideoTruth(path, n_frames, (height, width), cuts, fades, static, pts, time_base)
