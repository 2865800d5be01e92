"""Grouping changed comparisons into events: minimum length, allowed gaps, peaks."""

from __future__ import annotations

import json

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from scan_fixtures import run_cli, step_sequence

from framediff.report import EventGrouper
from framediff.scan import scan

N = 24
#: Frame i differs from frame i-1 exactly for these i: runs {3,4}, {8}, {12,_,14}, {18,19,20}.
STEPS = (3, 4, 8, 12, 14, 18, 19, 20)


def rows_table(changed, *, values=None, errors=(), metric="l0_fraction"):
    """A report chunk: comparison i-1 -> i for i in ``range(start, start + len(changed))``."""
    n = len(changed)
    values = values or [0.5 if c else 0.0 for c in changed]
    return pa.table(
        {
            "pair": list(range(1, n + 1)),
            "index_a": list(range(0, n)),
            "index_b": list(range(1, n + 1)),
            "path_a": [f"f{i}" for i in range(0, n)],
            "path_b": [f"f{i}" for i in range(1, n + 1)],
            metric: [None if i + 1 in errors else v for i, v in enumerate(values)],
            "changed": [None if i + 1 in errors else c for i, c in enumerate(changed)],
            "status": ["error" if i + 1 in errors else "ok" for i in range(n)],
        }
    )


def spans(events):
    return [(e["first_index"], e["last_index"], e["n_changed"]) for e in events]


def flags(changed_b, n):
    """changed flags for comparisons b = 1..n."""
    return [b in changed_b for b in range(1, n + 1)]


@pytest.mark.parametrize(
    ("min_length", "max_gap", "expected"),
    [
        (1, 0, [(3, 4, 2), (8, 8, 1), (12, 12, 1), (14, 14, 1), (18, 20, 3)]),
        (2, 0, [(3, 4, 2), (18, 20, 3)]),
        (1, 1, [(3, 4, 2), (8, 8, 1), (12, 14, 2), (18, 20, 3)]),
        (2, 1, [(3, 4, 2), (12, 14, 2), (18, 20, 3)]),
        (3, 1, [(18, 20, 3)]),
        (1, 3, [(3, 20, 8)]),
    ],
)
def test_grouper_min_length_and_gap(min_length, max_gap, expected):
    grouper = EventGrouper("l0_fraction", min_length=min_length, max_gap=max_gap)
    grouper.feed(rows_table(flags(STEPS, N - 1)))
    events = grouper.finish()
    assert spans(events) == expected
    assert [e["event"] for e in events] == list(range(len(expected)))
    assert all(e["before_index"] == e["first_index"] - 1 for e in events)


def test_grouper_gives_the_same_events_whatever_the_chunking():
    table = rows_table(flags(STEPS, N - 1))
    whole = EventGrouper("l0_fraction", min_length=2, max_gap=1)
    whole.feed(table)
    expected = whole.finish()
    assert len(expected) == 3
    for size in (1, 2, 5):
        split = EventGrouper("l0_fraction", min_length=2, max_gap=1)
        for start in range(0, table.num_rows, size):
            split.feed(table.slice(start, size))
        assert split.finish() == expected


def test_failed_comparisons_count_as_gaps_not_as_changes():
    changed = flags({5, 6, 8}, 12)
    table = rows_table(changed, errors={7})
    strict = EventGrouper("l0_fraction", max_gap=0)
    strict.feed(table)
    assert spans(strict.finish()) == [(5, 6, 2), (8, 8, 1)]
    lenient = EventGrouper("l0_fraction", max_gap=1)
    lenient.feed(table)
    assert spans(lenient.finish()) == [(5, 8, 3)]


def test_peak_is_the_largest_distance_or_the_smallest_similarity():
    changed = flags({2, 3, 4}, 6)
    values = [0.0, 0.3, 0.9, 0.5, 0.0, 0.0]
    distance = EventGrouper("l0_fraction")
    distance.feed(rows_table(changed, values=values))
    (event,) = distance.finish()
    assert (event["peak_index"], event["peak_value"], event["peak_metric"]) == (3, 0.9, "l0_fraction")
    psnr = [99.0, 20.0, 12.0, 30.0, 99.0, 99.0]
    similarity = EventGrouper("psnr", similarity=True)
    similarity.feed(rows_table(changed, values=psnr, metric="psnr"))
    (event,) = similarity.finish()
    assert (event["peak_index"], event["peak_value"]) == (3, 12.0)


def test_events_table_has_stable_columns():
    grouper = EventGrouper("kl")
    assert grouper.table().num_rows == 0
    grouper.feed(rows_table(flags({2}, 4), metric="kl"))
    grouper.finish()
    table = grouper.table()
    assert table.column_names == [
        "event", "first_index", "last_index", "first_path", "last_path",
        "before_index", "n_changed", "peak_metric", "peak_value", "peak_index",
    ]  # fmt: skip
    assert table.to_pylist()[0]["first_path"] == "f2"


# ------------------------------------------------------------------ through a scan


@pytest.fixture(scope="module")
def steps_dir(tmp_path_factory):
    return step_sequence(tmp_path_factory.mktemp("steps"), N, STEPS)[0].parent


def test_scan_flags_exactly_the_steps(steps_dir):
    df = scan(steps_dir, scheduler="synchronous")
    assert df.index_b[df["changed"]].tolist() == list(STEPS)


@pytest.mark.parametrize("chunk_size", [1, 4, 64])
@pytest.mark.parametrize(
    ("min_length", "max_gap", "expected"),
    [
        (1, 0, [(3, 4, 2), (8, 8, 1), (12, 12, 1), (14, 14, 1), (18, 20, 3)]),
        (2, 1, [(3, 4, 2), (12, 14, 2), (18, 20, 3)]),
    ],
)
def test_scan_events_with_min_length_and_gap(steps_dir, tmp_path, chunk_size, min_length, max_gap, expected):
    from framediff.options import make_options
    from framediff.scan import run_scan

    result = run_scan(
        steps_dir,
        options=make_options("fast"),
        chunk_size=chunk_size,
        scheduler="synchronous",
        event_min_length=min_length,
        event_gap=max_gap,
        output=tmp_path / "r.parquet",
    )
    assert spans(result.events) == expected
    assert result.summary["events"] == len(expected)
    events = pq.read_table(tmp_path / "r.parquet.events.parquet").to_pylist()
    assert [(e["first_index"], e["last_index"], e["n_changed"]) for e in events] == expected
    assert all(e["first_path"] == f"img_{e['first_index']:03d}.png" for e in events)
    assert all(e["first_index"] <= e["peak_index"] <= e["last_index"] for e in events)


def test_cli_event_options(capsys, steps_dir, tmp_path):
    out = tmp_path / "r.csv"
    code, stdout, err = run_cli(
        capsys,
        ["scan", steps_dir, "-o", out, "--event-min-length", "2", "--event-gap", "1", "--scheduler", "synchronous"],
    )
    assert code == 0, err
    assert ", 3 events;" in stdout
    summary = json.loads((tmp_path / "r.csv.summary.json").read_text())
    assert summary["events"] == 3 and summary["changed"] == len(STEPS)
    events = pd.read_csv(tmp_path / "r.csv.events.csv")
    assert list(zip(events["first_index"], events["last_index"])) == [(3, 4), (12, 14), (18, 20)]
