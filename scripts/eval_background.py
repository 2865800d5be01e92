#!/usr/bin/env python
"""Background-subtraction accuracy of framediff next to OpenCV MOG2 and KNN, in one run.

Given a folder of sequence sets with per-frame ground truth, each method sees the same
frames of each sequence, and recall, precision and F-measure are counted per sequence
and pooled per set (true/false positives and false negatives summed over all scored
pixels of the set, then the ratios).

Layout understood (the CDnet / SBI2015 / UCSD layout of the FgSegNet release)::

    ROOT/SET/.../SEQUENCE/{input,in}/<frames>          any image format, natural order
    ROOT/SET/.../SEQUENCE/groundtruth/<masks>          one per frame, same order

Ground truth: 255 foreground, 0 background, any other value (170 "unknown" in
SBI2015, 50 shadow and 85 outside-ROI in CDnet) is not scored. A sequence is the
folder that holds ``groundtruth/``; its set is the first folder under ROOT.

The first ``skip`` frames of every sequence (default 10, framediff's default warm-up)
are shown to every method but scored for none, so that every method is judged on the
same frames after the same start-up.

Methods (``--methods``):

  framediff      ``framediff.scan(folder, mode="background", masks=DIR)`` at its
                 defaults: what a user of the public API gets
  ema            the kernel ``update_background`` at its defaults (gray, 'ema')
  samples        the kernel ``update_sample_background`` at its defaults (colour)
  samples-align  the same, each frame registered to the model first
  mog2, knn      OpenCV ``createBackgroundSubtractorMOG2()`` / ``...KNN()`` at their
                 defaults; shadow pixels (127) count as background

Usage:  python scripts/eval_background.py ROOT [--methods framediff,samples,mog2,knn]
        [--sets SBI2015_dataset,UCSD_dataset] [--skip 10] [--max-frames N]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DEFAULT_METHODS = ("framediff", "samples", "mog2", "knn")
FRAME_FOLDERS = ("input", "in")
_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}


@dataclass
class Sequence:
    """One sequence: its set, name, frame paths and ground-truth paths (same order)."""

    set_name: str
    name: str
    frames: list
    truth: list


@dataclass
class Counts:
    """Pixel counts of one method on some frames, and the time it took."""

    tp: int = 0
    fp: int = 0
    fn: int = 0
    frames: int = 0
    seconds: float = 0.0

    def add(self, other: Counts) -> None:
        self.tp += other.tp
        self.fp += other.fp
        self.fn += other.fn
        self.frames += other.frames
        self.seconds += other.seconds

    def scores(self) -> dict:
        recall = self.tp / (self.tp + self.fn) if self.tp + self.fn else float("nan")
        precision = self.tp / (self.tp + self.fp) if self.tp + self.fp else float("nan")
        f = 2 * recall * precision / (recall + precision) if recall + precision > 0 else 0.0
        return {"recall": recall, "precision": precision, "f_measure": f}


def _natural_key(text: str):
    from framediff.discover import natural_key

    return natural_key(text)


def _images(folder: Path) -> list:
    return sorted(
        (p for p in folder.iterdir() if p.suffix.lower() in _IMAGE_SUFFIXES), key=lambda p: _natural_key(p.name)
    )


def find_sequences(root, sets=None) -> list:
    """Every sequence under ``root`` that has frames and ground truth.

    Parameters
    ----------
    root : path
        Folder of sets (see the module docstring for the layout).
    sets : sequence of str, optional
        Only these sets (first-level folder names); all by default.

    Returns
    -------
    list of Sequence
        In natural order of set and path.

    Raises
    ------
    ValueError
        ``root`` is not a folder, or a sequence has fewer ground-truth masks than frames
        it would score (the message names the sequence).
    """
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"{root}: not a folder")
    found = []
    for truth_dir in sorted(root.rglob("groundtruth"), key=lambda p: _natural_key(str(p))):
        seq_dir = truth_dir.parent
        set_name = seq_dir.relative_to(root).parts[0]
        if sets and set_name not in sets:
            continue
        frame_dir = next((seq_dir / f for f in FRAME_FOLDERS if (seq_dir / f).is_dir()), None)
        if frame_dir is None:
            continue
        frames, truth = _images(frame_dir), _images(truth_dir)
        if len(truth) != len(frames):
            raise ValueError(f"{seq_dir}: {len(frames)} frames but {len(truth)} ground-truth masks")
        found.append(Sequence(set_name, seq_dir.name, frames, truth))
    return found


def _read_rgb(path: Path) -> np.ndarray:
    import imageio.v3 as iio

    image = iio.imread(path)
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    return np.ascontiguousarray(image[:, :, :3])


def _read_truth(path: Path) -> np.ndarray:
    import imageio.v3 as iio

    truth = iio.imread(path)
    return truth[:, :, 0] if truth.ndim == 3 else truth


def _count(mask: np.ndarray, truth: np.ndarray) -> Counts:
    if mask.shape != truth.shape:
        raise ValueError(f"mask of shape {mask.shape} against ground truth of shape {truth.shape}")
    fg, bg = truth == 255, truth == 0
    return Counts(
        tp=int(np.count_nonzero(mask & fg)),
        fp=int(np.count_nonzero(mask & bg)),
        fn=int(np.count_nonzero(~mask & fg)),
        frames=1,
    )


# --- methods: each yields one boolean mask (or None: no decision) per frame, in order ---


def _masks_framediff(seq: Sequence):
    """Through the public API, masks written as PNG files then read back."""
    import framediff

    with tempfile.TemporaryDirectory() as out:
        frame_dir = seq.frames[0].parent
        framediff.scan(str(frame_dir), mode="background", masks=out, scheduler="synchronous")
        for path in seq.frames:
            mask_path = Path(out) / (path.stem + ".mask.png")
            yield _read_truth(mask_path) > 0 if mask_path.exists() else None


def _masks_ema(seq: Sequence):
    from framediff.kernels import to_gray
    from framediff.kernels.background import update_background

    state = None
    for path in seq.frames:
        gray = to_gray(_read_rgb(path), "luma")
        state, fraction, masks = update_background(state, gray[None], return_masks=True)
        yield None if np.isnan(fraction[0]) else masks[0]


def _masks_samples(seq: Sequence, align: bool = False):
    import imageio.v3 as iio

    from framediff.kernels.background_samples import background_frame, update_sample_background

    state = None
    for path in seq.frames:
        frame = background_frame(iio.imread(path))  # gray files stay one channel
        state, fraction, masks = update_sample_background(state, frame[None], align=align, return_masks=True)
        yield None if np.isnan(fraction[0]) else masks[0]


def _masks_opencv(seq: Sequence, kind: str):
    import cv2

    sub = cv2.createBackgroundSubtractorMOG2() if kind == "mog2" else cv2.createBackgroundSubtractorKNN()
    for path in seq.frames:
        mask = sub.apply(np.ascontiguousarray(_read_rgb(path)[:, :, ::-1]))
        yield mask == 255  # 127 marks shadow: background


_METHODS = {
    "framediff": _masks_framediff,
    "ema": _masks_ema,
    "samples": _masks_samples,
    "samples-align": lambda seq: _masks_samples(seq, align=True),
    "mog2": lambda seq: _masks_opencv(seq, "mog2"),
    "knn": lambda seq: _masks_opencv(seq, "knn"),
}


def score_sequence(seq: Sequence, method: str, *, skip: int = 10, max_frames: int | None = None) -> Counts:
    """Pixel counts of ``method`` on one sequence, frames ``skip`` onwards.

    A frame the method gave no decision for (framediff's warm-up) scores as all
    background. ``seconds`` covers decoding and the method, not the scoring.
    """
    if method not in _METHODS:
        raise ValueError(f"unknown method {method!r}; expected one of {', '.join(_METHODS)}")
    counts = Counts()
    frames = len(seq.frames) if max_frames is None else min(len(seq.frames), max_frames)
    seq = Sequence(seq.set_name, seq.name, seq.frames[:frames], seq.truth[:frames])
    start = time.perf_counter()
    scoring = 0.0
    for i, mask in enumerate(_METHODS[method](seq)):
        if i < skip:
            continue
        t0 = time.perf_counter()
        truth = _read_truth(seq.truth[i])
        counts.add(_count(np.zeros(truth.shape, bool) if mask is None else mask, truth))
        scoring += time.perf_counter() - t0
    counts.seconds = time.perf_counter() - start - scoring
    return counts


def evaluate_background(root, *, methods=DEFAULT_METHODS, sets=None, skip: int = 10, max_frames=None) -> list:
    """Recall, precision and F-measure of each method, per sequence and pooled per set.

    Parameters
    ----------
    root : path
        Folder of sets with ground truth (layout in the module docstring).
    methods : sequence of str
        Among ``framediff``, ``ema``, ``samples``, ``samples-align``, ``mog2``, ``knn``.
    sets : sequence of str, optional
        Only these sets.
    skip : int
        Frames at the start of each sequence that are not scored (default 10).
    max_frames : int, optional
        Use only the first frames of each sequence (a quick look).

    Returns
    -------
    list of dict
        One row per (set, sequence, method), then one per (set, method) with
        ``sequence == "pooled"``: ``set``, ``sequence``, ``method``, ``frames``,
        ``recall``, ``precision``, ``f_measure``, ``tp``, ``fp``, ``fn``, ``fps``
        (frames per second of decoding plus the method).
    """
    rows = []
    pooled: dict = {}
    for seq in find_sequences(root, sets):
        for method in methods:
            counts = score_sequence(seq, method, skip=skip, max_frames=max_frames)
            pooled.setdefault((seq.set_name, method), Counts()).add(counts)
            rows.append(
                _row(
                    seq.set_name,
                    seq.name,
                    method,
                    counts,
                    len(seq.frames) if max_frames is None else min(len(seq.frames), max_frames),
                )
            )
    for (set_name, method), counts in pooled.items():
        total = sum(
            r["frames"] for r in rows if r["set"] == set_name and r["method"] == method and r["sequence"] != "pooled"
        )
        rows.append(_row(set_name, "pooled", method, counts, total))
    return rows


def _row(set_name, sequence, method, counts: Counts, shown: int) -> dict:
    return {
        "set": set_name,
        "sequence": sequence,
        "method": method,
        "frames": shown,
        **counts.scores(),
        "tp": counts.tp,
        "fp": counts.fp,
        "fn": counts.fn,
        "fps": shown / counts.seconds if counts.seconds > 0 else float("nan"),
    }


def format_rows(rows, *, pooled_only: bool = False) -> str:
    """A plain-text table of :func:`evaluate_background` rows."""
    lines = [f"{'set':<16} {'sequence':<18} {'method':<14} {'frames':>6} {'F':>6} {'recall':>6} {'prec':>6} {'fps':>7}"]
    for r in rows:
        if pooled_only and r["sequence"] != "pooled":
            continue
        lines.append(
            f"{r['set']:<16} {r['sequence']:<18} {r['method']:<14} {r['frames']:>6} "
            f"{r['f_measure']:>6.3f} {r['recall']:>6.3f} {r['precision']:>6.3f} {r['fps']:>7.1f}"
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("root")
    parser.add_argument("--methods", default=",".join(DEFAULT_METHODS))
    parser.add_argument("--sets", default=None, help="comma-separated set names (default: all)")
    parser.add_argument("--skip", type=int, default=10)
    parser.add_argument("--max-frames", type=int, default=None)
    parser.add_argument("--pooled-only", action="store_true")
    args = parser.parse_args(argv)
    try:
        rows = evaluate_background(
            args.root,
            methods=[m.strip() for m in args.methods.split(",") if m.strip()],
            sets=args.sets.split(",") if args.sets else None,
            skip=args.skip,
            max_frames=args.max_frames,
        )
    except (ValueError, OSError) as exc:
        print(f"eval_background: {exc}", file=sys.stderr)
        return 2
    print(format_rows(rows, pooled_only=args.pooled_only))
    return 0


if __name__ == "__main__":
    sys.exit(main())
