"""scripts/eval_background.py on a small sequence set written to disk (real PNG files).

Oracle: a moving square over a noisy textured scene, its masks known exactly; a
mask of 170 (unknown) over part of the square must be left out of the counts.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "eval_background.py"


def _load():
    spec = importlib.util.spec_from_file_location("eval_background", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _write_set(root: Path, n: int = 40, h: int = 48, w: int = 140):
    rng = np.random.default_rng(0)
    scene = rng.integers(40, 200, (h, w, 3)).astype(np.float64)
    seq = root / "setA" / "seq1"
    (seq / "input").mkdir(parents=True)
    (seq / "groundtruth").mkdir()
    for t in range(n):
        frame = scene + rng.normal(0, 2, scene.shape)
        truth = np.zeros((h, w), np.uint8)
        x = 4 + 3 * t  # never back over its own path
        frame[16:28, x : x + 12] = (250, 20, 20)
        truth[16:28, x : x + 12] = 255
        truth[16:18, x : x + 12] = 170  # unknown: not scored
        iio.imwrite(seq / "input" / f"in{t:06d}.png", np.clip(frame, 0, 255).astype(np.uint8))
        iio.imwrite(seq / "groundtruth" / f"gt{t:06d}.png", truth)
    return seq


def test_samples_and_knn_are_scored_per_sequence_and_pooled(tmp_path):
    eb = _load()
    _write_set(tmp_path)
    rows = eb.evaluate_background(tmp_path, methods=("samples", "knn"), skip=25)
    by = {(r["sequence"], r["method"]): r for r in rows}
    assert set(by) == {("seq1", "samples"), ("seq1", "knn"), ("pooled", "samples"), ("pooled", "knn")}
    samples = by["seq1", "samples"]
    assert samples["f_measure"] > 0.9
    # 15 scored frames of a 10 x 12 scored square (the 170 rows are left out).
    assert samples["tp"] + samples["fn"] == 15 * 10 * 12
    assert by["pooled", "samples"]["tp"] == samples["tp"]
    assert "seq1" in eb.format_rows(rows) and "seq1" not in eb.format_rows(rows, pooled_only=True)


def test_bad_layouts_are_one_line_errors(tmp_path, capsys):
    eb = _load()
    seq = _write_set(tmp_path, n=12)
    (seq / "groundtruth" / "gt000011.png").unlink()
    with pytest.raises(ValueError, match="12 frames but 11 ground-truth masks"):
        eb.find_sequences(tmp_path)
    assert eb.main([str(tmp_path / "missing")]) == 2
    assert "not a folder" in capsys.readouterr().err
    with pytest.raises(ValueError, match="unknown method"):
        eb.score_sequence(eb.Sequence("s", "q", [], []), "nope")
