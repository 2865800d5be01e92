"""Accuracy of framediff's decisions on real sequences with ground truth, side by side.

Usage::

    python scripts/eval_accuracy.py ROOT [--decisions today|stage|both] [--sets cuts,neardup,webcam,synthetic]

ROOT holds (any part may be missing):

``cuts/<clip>/`` frames of a clip, and ``cuts/<clip>.truth.json``
    ``{"cuts": [...], "transitions": [...]}``: the first frame of each new shot, and a
    frame inside (or at the black/white end of) each fade or dissolve.
``neardup/same/<group>/``
    every consecutive pair is the same picture (other codec or format).
``neardup/diff/<group>/``
    every consecutive pair is a different picture.
``webcam/<camera>/``
    a fixed camera, files named so that natural order is capture order.

It drives framediff through ``framediff.scan(...)`` (consecutive and keyframes mode,
defaults). ``today`` scores the rows as framediff writes them (the scan runs the decision
stage itself: these are the figures that count); ``stage`` re-applies
:class:`framediff.decide.DecisionStage` to the same rows, with the per-pair features
recomputed from the files (``framediff.decide.pair_features``), a cross-check of the
stage on its own. Next to them: PySceneDetect ``detect-content`` and
``detect-adaptive`` on the same frame files, and their speed.

Printed per set and pooled: cut and transition precision / recall / F1 (+-1 frame),
near-duplicate decisions, kept fraction in keyframes mode, the count of rows whose
``changed`` contradicts ``change_kind``, and seconds per clip.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

import framediff
from framediff.decide import DecisionStage, KeyframeChain, file_digest, pair_features

TOL = 1  # frames either side for a cut to count as found
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".psd"}


def frames_of(folder: Path) -> list[Path]:
    from framediff.discover import natural_key

    return sorted(
        (p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES), key=lambda p: natural_key(p.name)
    )


def gray(path: Path) -> np.ndarray | None:
    from PIL import Image

    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("L"))
    except Exception:  # an unreadable file is an error row in framediff too
        return None


# -- scoring -------------------------------------------------------------------
def prf(found: list[int], truth: list[int], tol: int = TOL) -> tuple[int, int, int]:
    """(true positives, false positives, false negatives), one-to-one within ``tol``."""
    left = sorted(truth)
    tp = 0
    for f in sorted(found):
        hit = next((t for t in left if abs(t - f) <= tol), None)
        if hit is not None:
            left.remove(hit)
            tp += 1
    return tp, len(found) - tp, len(left)


def span_prf(events: list[tuple[int, int]], truth: list[int], tol: int = 2) -> tuple[int, int, int]:
    """Transition events (first, last frame) against truth frames inside them (+-tol)."""
    left = sorted(truth)
    tp = fp = 0
    for lo, hi in events:
        hits = [t for t in left if lo - tol <= t <= hi + tol]
        if hits:
            left.remove(hits[0])
            tp += 1
        else:
            fp += 1
    return tp, fp, len(left)


def f1(tp: int, fp: int, fn: int) -> str:
    p = tp / (tp + fp) if tp + fp else 1.0
    r = tp / (tp + fn) if tp + fn else 1.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return f"P {p:.2f} R {r:.2f} F1 {f:.2f} ({tp}/{tp + fn}, {fp} false)"


def contradictions(df: pd.DataFrame) -> int:
    """Measured rows whose ``changed`` disagrees with ``change_kind``."""
    ok = df[df["status"] == "ok"]
    kind = ok["change_kind"].fillna("none")
    return int(((ok["changed"] == True) & (kind == "none")).sum() + ((ok["changed"] != True) & (kind != "none")).sum())  # noqa: E712


def events_of(df: pd.DataFrame, kind: str) -> list[tuple[int, int]]:
    """Runs of consecutive rows of ``kind`` as (first frame, last frame)."""
    rows = df[df["change_kind"] == kind].sort_values("index_b")
    events, start, prev = [], None, None
    for a, b in zip(rows["index_a"], rows["index_b"]):
        if prev is not None and a == prev:
            prev = b
            continue
        if start is not None:
            events.append((start, prev))
        start, prev = a, b
    if start is not None:
        events.append((start, prev))
    return events


# -- the two deciders ----------------------------------------------------------
def scan_rows(folder: Path, **kw) -> tuple[pd.DataFrame, float]:
    t = time.perf_counter()
    df = framediff.scan(str(folder), scheduler="synchronous", **kw)
    return df, time.perf_counter() - t


def with_stage(df: pd.DataFrame, folder: Path, *, sensitivity="normal") -> tuple[pd.DataFrame, float]:
    """The stage's decisions on ``df``'s rows, features recomputed from the files.

    Returns the decided rows and the seconds spent on features and decisions alone
    (decoding excluded: in the task the frames are already decoded).
    """
    cache: dict[str, np.ndarray | None] = {}
    feats, spent = [], 0.0
    for row in df.itertuples():
        f = {}
        if row.status == "ok" and isinstance(row.path_a, str):
            for p in (row.path_a, row.path_b):
                if p not in cache:
                    cache[p] = gray(folder / p)
            a, b = cache[row.path_a], cache[row.path_b]
            if a is not None and b is not None and a.shape == b.shape:
                t = time.perf_counter()
                f = pair_features(a, b, data_range=255, sensitivity=sensitivity)
                spent += time.perf_counter() - t
        feats.append(f)
        if len(cache) > 8:  # consecutive rows: keep only the frames still needed
            for key in list(cache)[:-4]:
                del cache[key]
    import pyarrow as pa

    table = pa.Table.from_pandas(df, preserve_index=False)
    names = sorted({k for f in feats for k in f})
    for name in names:
        table = table.append_column(name, pa.array([f.get(name) for f in feats]))
    t = time.perf_counter()
    stage = DecisionStage(sensitivity=sensitivity)
    parts = [stage.feed(table.slice(k, 64)) for k in range(0, table.num_rows, 64)]
    parts.append(stage.finish())
    spent += time.perf_counter() - t
    out = pa.concat_tables([p for p in parts if p.num_rows]).to_pandas()
    return out, spent


def keyframes_stage(folder: Path) -> tuple[list[bool], dict]:
    """Keyframes with the stage's in-chain decision (:class:`KeyframeChain`)."""
    chain = KeyframeChain()
    kept = []
    for p in frames_of(folder):
        img = gray(p)
        kept.append(False if img is None else chain.offer(img, file_digest(p))[0])
    return kept, chain.counts


# -- PySceneDetect on the same frame files --------------------------------------
def scenedetect_cuts(folder: Path, detector: str) -> tuple[list[int], float]:
    import cv2
    from scenedetect import AdaptiveDetector, ContentDetector
    from scenedetect.common import FrameTimecode

    det = AdaptiveDetector() if detector == "adaptive" else ContentDetector()
    cuts = []
    t = time.perf_counter()
    for i, p in enumerate(frames_of(folder)):
        img = cv2.imread(str(p))
        cuts += det.process_frame(FrameTimecode(i, fps=25.0), img)
    cuts += det.post_process(FrameTimecode(i, fps=25.0)) if hasattr(det, "post_process") else []
    return [c.frame_num for c in cuts], time.perf_counter() - t


# -- the sets ------------------------------------------------------------------
def eval_cuts(root: Path, which: tuple, pooled: dict) -> None:
    print("\n## Cuts and transitions (consecutive mode, +-1 frame for cuts)")
    for truth_file in sorted((root / "cuts").glob("*.truth.json")):
        name = truth_file.name[: -len(".truth.json")]
        folder = root / "cuts" / name
        truth = json.loads(truth_file.read_text())
        df, t_scan = scan_rows(folder)
        n = len(df)
        print(f"\n{name}: {n + 1} frames, truth {len(truth['cuts'])} cuts, {len(truth['transitions'])} transitions")
        deciders = []
        if "today" in which:
            deciders.append(("framediff today", df, t_scan))
        if "stage" in which:
            decided, t_feat = with_stage(df, folder)
            deciders.append(("framediff stage", decided, t_scan + t_feat))
        for label, rows, secs in deciders:
            cuts = sorted(rows.loc[rows["change_kind"] == "cut", "index_b"].astype(int))
            c = prf(cuts, truth["cuts"])
            tr = span_prf(events_of(rows, "transition"), truth["transitions"])
            bad = contradictions(rows)
            pooled.setdefault(label, [0] * 7)
            pooled[label] = [x + y for x, y in zip(pooled[label], (*c, *tr, bad))]
            print(f"  {label:18s} cut {f1(*c)} | transition {f1(*tr)} | contradictions {bad} | {secs:.1f} s")
        for det in ("content", "adaptive"):
            cuts, secs = scenedetect_cuts(folder, det)
            c = prf(cuts, truth["cuts"])
            label = f"scenedetect {det}"
            pooled.setdefault(label, [0] * 7)
            pooled[label] = [x + y for x, y in zip(pooled[label], (*c, 0, 0, 0, 0))]
            print(f"  {label:18s} cut {f1(*c)} | (cuts only) | {secs:.1f} s")


def decision_variants(df, folder: Path, which: tuple) -> list:
    """``(label, rows)`` to score: the scan's own decisions, and the stage re-applied."""
    variants = [("today", df)] if "today" in which else []
    if "stage" in which:
        variants.append(("stage", with_stage(df, folder)[0]))
    return variants


def eval_neardup(root: Path, which: tuple) -> None:
    print("\n## Near-duplicates (consecutive mode, default decision)")
    totals = {}
    for kind in ("same", "diff"):
        for folder in sorted((root / "neardup" / kind).glob("*")):
            df, _ = scan_rows(folder)
            variants = decision_variants(df, folder, which)
            for label, rows in variants:
                ok = rows[rows["status"] == "ok"]
                changed = int((ok["changed"] == True).sum())  # noqa: E712
                t = totals.setdefault((label, kind), [0, 0, 0, 0])
                t[0] += len(ok)
                t[1] += changed
                t[2] += len(rows) - len(ok)
                t[3] += contradictions(rows)
    for (label, kind), (n, changed, errors, bad) in sorted(totals.items()):
        if kind == "same":
            print(
                f"  {label:6s} same picture: {n - changed}/{n} unchanged ({(n - changed) / max(n, 1):.1%}),"
                f" {errors} error rows, contradictions {bad}"
            )
        else:
            print(
                f"  {label:6s} different pictures: {changed}/{n} changed ({changed / max(n, 1):.1%}),"
                f" contradictions {bad}"
            )


def eval_webcams(root: Path, which: tuple) -> None:
    print("\n## Keyframes on fixed webcams (defaults)")
    for folder in sorted((root / "webcam").glob("*")):
        n = len(frames_of(folder))
        line = f"  {folder.name:12s} {n:3d} frames:"
        if "today" in which:
            df, _ = scan_rows(folder, mode="keyframes")
            kept = int(df["kept"].fillna(False).sum())
            cons, _ = scan_rows(folder)
            kinds = cons["change_kind"].value_counts().to_dict()
            line += f" today kept {kept}/{n}, consecutive kinds {kinds}, contradictions {contradictions(cons)};"
        if "stage" in which:
            kept, counts = keyframes_stage(folder)
            cons, _ = scan_rows(folder)
            decided, _ = with_stage(cons, folder)
            kinds = decided["change_kind"].value_counts().to_dict()
            names = [p.name for p, k in zip(frames_of(folder), kept) if k]
            line += (
                f" stage kept {sum(kept)}/{n} (keyframe kinds {counts}), consecutive kinds {kinds},"
                f" contradictions {contradictions(decided)}; kept: {', '.join(names[:6])}{' ...' if len(names) > 6 else ''}"
            )
        print(line)


EXPECTED = {
    "object": ("content",),
    "light-on": ("lighting",),
    "light-off": ("lighting",),
    "shake": ("shift", "shift+content"),
}


def eval_synthetic(which: tuple, seeds=(0, 1, 2)) -> None:
    """Synthetic time-lapses on real photographs (framediff.synthetic), known events."""
    import tempfile

    from framediff.synthetic import PHOTOS, make_timelapse

    print("\n## Synthetic-on-real time-lapses (framediff.synthetic, 60 frames, sensor noise 3)")
    score: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in seeds:
            for photo in PHOTOS:
                folder = Path(tmp) / f"{photo}{seed}"
                lapse = make_timelapse(folder, n_frames=60, seed=seed, noise_sigma=3.0, photo=photo)
                df, _ = scan_rows(folder)
                variants = decision_variants(df, folder, which)
                busy = set(lapse.changed_frames()) | set(lapse.corrupt) | {i + 1 for i in lapse.corrupt}
                for label, rows in variants:
                    kind_at = dict(zip(rows["index_b"], rows["change_kind"].fillna("none")))
                    for event in lapse.events:
                        if event.kind in EXPECTED:
                            s = score.setdefault((label, event.kind), [0, 0])
                            s[0] += kind_at.get(event.first) in EXPECTED[event.kind]
                            s[1] += 1
                    quiet = [kind_at.get(i) for i in range(1, len(lapse.frames)) if i not in busy and i in kind_at]
                    s = score.setdefault((label, "noise-only or repeat"), [0, 0])
                    s[0] += sum(k == "none" for k in quiet)
                    s[1] += len(quiet)
                    s = score.setdefault((label, "contradictions"), [0, 0])
                    s[0] += contradictions(rows)
                    s[1] += len(rows)
                if "stage" in which:
                    kept, _ = keyframes_stage(folder)
                    s = score.setdefault(("stage", "keyframes kept (noise-only kept)"), [0, 0])
                    s[0] += sum(kept)
                    s[1] += sum(k for i, k in enumerate(kept) if i and i not in busy)
                if "today" in which:
                    kdf, _ = scan_rows(folder, mode="keyframes")
                    kept = list(kdf.sort_values("index_b")["kept"].fillna(False).astype(bool))
                    s = score.setdefault(("today", "keyframes kept (noise-only kept)"), [0, 0])
                    s[0] += sum(kept)
                    s[1] += sum(k for i, k in enumerate(kept) if i and i not in busy)
    for (label, what), (good, n) in sorted(score.items()):
        if what.startswith("keyframes"):
            print(f"  {label:6s} {what}: {good} kept of {len(seeds) * 3 * 60} frames, {n} noise-only frames kept")
        elif what == "contradictions":
            print(f"  {label:6s} contradictions: {good} of {n} rows")
        else:
            print(f"  {label:6s} {what:22s} labelled right: {good}/{n} ({good / max(n, 1):.0%})")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--decisions", choices=("today", "stage", "both"), default="both")
    parser.add_argument("--sets", default="cuts,neardup,webcam,synthetic")
    args = parser.parse_args(argv)
    if not args.root.is_dir():
        print(f"eval_accuracy: {args.root}: not a folder", file=sys.stderr)
        return 2
    which = ("today", "stage") if args.decisions == "both" else (args.decisions,)
    sets = set(args.sets.split(","))
    print("# framediff accuracy (timings on this machine, as loaded as it is)")
    pooled: dict = {}
    if "cuts" in sets and (args.root / "cuts").is_dir():
        eval_cuts(args.root, which, pooled)
        print("\n  pooled:")
        for label, (tp, fp, fn, ttp, tfp, tfn, bad) in pooled.items():
            extra = f" | transition {f1(ttp, tfp, tfn)} | contradictions {bad}" if label.startswith("framediff") else ""
            print(f"  {label:18s} cut {f1(tp, fp, fn)}{extra}")
    if "neardup" in sets and (args.root / "neardup").is_dir():
        eval_neardup(args.root, which)
    if "webcam" in sets and (args.root / "webcam").is_dir():
        eval_webcams(args.root, which)
    if "synthetic" in sets:
        eval_synthetic(which)
    return 0


if __name__ == "__main__":
    sys.exit(main())
