#!/usr/bin/env python
"""Frames per second of the background models, side by side on the same frames, in one run.

Frames are held in memory (decoding is not timed): either a folder of images (natural
order) or, by default, N synthetic colour frames made from the bundled photograph
with sensor noise and a moving object. Each model sees every frame once, in order,
single-threaded where it can be (OpenCV set to 1 thread):

  samples    framediff update_sample_background at its defaults (colour)
  ema        framediff update_background at its defaults (gray luma; the old default)
  knn, mog2  OpenCV createBackgroundSubtractorKNN() / MOG2() at their defaults

Prints frames/s of each and its ratio to OpenCV KNN. The first frames of every model
are run once before the clock starts (compilation, allocation).

Usage:  python scripts/bench_background.py [FOLDER] [--frames 200] [--size 320x240]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np


def _synthetic(n: int, size: tuple) -> np.ndarray:
    from importlib.resources import files

    import imageio.v3 as iio

    w, h = size
    photo = iio.imread(files("framediff") / "data" / "astronaut.jpg")[:, :, :3].astype(np.float32)
    ys = np.linspace(0, photo.shape[0] - 1, h).astype(int)
    xs = np.linspace(0, photo.shape[1] - 1, w).astype(int)
    scene = photo[ys][:, xs]
    rng = np.random.default_rng(0)
    frames = np.empty((n, h, w, 3), np.uint8)
    side = max(4, h // 8)
    for t in range(n):
        frame = scene + rng.normal(0, 3, scene.shape)
        x = int((w - side) * (0.5 + 0.45 * np.sin(t / 15)))
        frame[h // 3 : h // 3 + side, x : x + side] = (220, 40, 40)
        frames[t] = np.clip(frame, 0, 255)
    return frames


def _folder(folder: Path, n: int) -> np.ndarray:
    import imageio.v3 as iio

    from framediff.discover import natural_key

    paths = sorted((p for p in folder.iterdir() if p.is_file()), key=lambda p: natural_key(p.name))[:n]
    images = [iio.imread(p) for p in paths]
    return np.stack([np.repeat(i[:, :, None], 3, 2) if i.ndim == 2 else i[:, :, :3] for i in images])


def _run_samples(frames):
    from framediff.kernels.background_samples import update_sample_background

    state = None
    for f in frames:
        state, _, _ = update_sample_background(state, f[None])


def _run_ema(frames):
    from framediff.kernels import to_gray
    from framediff.kernels.background import update_background

    state = None
    for f in frames:
        state, _, _ = update_background(state, to_gray(f, "luma")[None])


def _run_opencv(kind):
    def run(frames):
        import cv2

        sub = cv2.createBackgroundSubtractorKNN() if kind == "knn" else cv2.createBackgroundSubtractorMOG2()
        for f in frames:
            sub.apply(f)

    return run


MODELS = {"samples": _run_samples, "ema": _run_ema, "knn": _run_opencv("knn"), "mog2": _run_opencv("mog2")}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folder", nargs="?")
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--size", default="320x240", help="synthetic frame size WxH")
    args = parser.parse_args(argv)
    import cv2

    cv2.setNumThreads(1)
    try:
        if args.folder:
            frames = _folder(Path(args.folder), args.frames)
        else:
            w, h = (int(v) for v in args.size.lower().split("x"))
            frames = _synthetic(args.frames, (w, h))
    except (ValueError, OSError) as exc:
        print(f"bench_background: {exc}", file=sys.stderr)
        return 2
    MODELS["samples"](frames[:25])  # compile the CPU kernel outside the clock
    fps = {}
    for name, run in MODELS.items():
        start = time.perf_counter()
        run(frames)
        fps[name] = len(frames) / (time.perf_counter() - start)
    h, w = frames.shape[1:3]
    print(f"{len(frames)} frames of {w}x{h}, colour, 1 thread")
    for name, value in fps.items():
        print(f"  {name:<8} {value:8.1f} frames/s   {value / fps['knn']:5.2f} x knn")
    return 0


if __name__ == "__main__":
    sys.exit(main())
