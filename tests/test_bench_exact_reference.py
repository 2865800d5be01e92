"""The exact reference of scripts/bench_duplicates.py gives brute-force pairs mode's pairs.

The benchmark scores duplicates mode against it where pairs mode itself cannot run (2e8
pairs at 20,000 images). It decodes, prepares and measures with the scan's own functions
and drops pairs by a bound on l0_fraction; if the scan changes how it prepares or judges
a pair and the reference does not follow, or the bound stops being a bound, these fail.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

import framediff
from framediff.planted import make_planted, windows

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "bench_duplicates.py"
PARAMS = dict(resize="smallest", thresholds={"l0_fraction": 0.05, "kl": 0.3}, scheduler="synchronous")


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_duplicates", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def planted(tmp_path_factory, bench):
    folder = tmp_path_factory.mktemp("planted")
    # Windows of the 20 photographs (low-contrast ones among them), each in the
    # benchmark's five versions: 100 images, two shapes.
    make_planted(folder, windows(20), edits=bench.PIXEL_EDITS)
    return folder


def test_exact_reference_equals_pairs_mode(bench, planted):
    truth = bench._duplicate_pairs(framediff.scan(planted, mode="pairs", **PARAMS))
    pruned, stats = bench.exact_pairs_reference(planted, PARAMS)
    every, check = bench.exact_pairs_reference(planted, PARAMS, prune=False)
    assert pruned == truth, (sorted(pruned - truth)[:5], sorted(truth - pruned)[:5])
    assert every == truth
    assert check["cut"] == 0 and check["measured"] == check["all_pairs"]
    # Not an agreement by default: pairs across the two shapes (one side resized) are
    # among the duplicates, the bound drops most pairs, and of those it leaves the
    # measurement rejects some.
    assert any("half-size" in a + b for a, b in truth)
    assert stats["measured"] < stats["all_pairs"] / 4
    assert stats["measured"] > len(truth)


def test_a_bound_that_cuts_duplicates_is_caught(bench, planted, monkeypatch):
    truth, _ = bench.exact_pairs_reference(planted, PARAMS, prune=False)
    block_sums = bench._block_sums
    # Distances a hundred times too large: the bound now drops true duplicates.
    monkeypatch.setattr(bench, "_block_sums", lambda pixels: 100 * block_sums(pixels))
    pruned, _ = bench.exact_pairs_reference(planted, PARAMS)
    every, check = bench.exact_pairs_reference(planted, PARAMS, prune=False)
    assert every == truth and check["cut"] > 0
    assert pruned < truth


def test_options_it_cannot_reproduce_are_refused(bench, planted):
    with pytest.raises(ValueError, match="pairwise"):
        bench.exact_pairs_reference(planted, dict(PARAMS, align=True))
