"""What each scan mode compares, and that every row equals ``compare()`` on its pair."""

from __future__ import annotations

import os

import pandas as pd
import pyarrow as pa
import pytest
from scan_fixtures import assert_rows_match_compare, drift_sequence, make_sequence

from framediff.errors import FramediffError
from framediff.options import make_options
from framediff.scan import scan

N = 12
BAD = 5  # the truncated frame


@pytest.fixture(scope="module")
def frames(tmp_path_factory):
    """12 JPEG frames 64x96, frame 5 truncated."""
    return make_sequence(tmp_path_factory.mktemp("modes"), n=N, corrupt=(BAD,))


@pytest.fixture(scope="module")
def root(frames):
    return frames[0].parent


def name(i: int) -> str:
    return f"frame_{i + 1:05d}.jpg"


def test_scan_returns_a_dataframe_or_an_arrow_table(root):
    df = scan(root, scheduler="synchronous")
    assert isinstance(df, pd.DataFrame)
    assert {"summary", "events", "kept"} <= set(df.attrs)
    assert df.attrs["summary"]["inputs"] == N
    table = scan(root, scheduler="synchronous", as_arrow=True)
    assert isinstance(table, pa.Table)
    assert table.num_rows == len(df)
    assert table.column_names == list(df.columns)


def test_consecutive_compares_each_frame_with_the_one_before(root):
    rows = scan(root, scheduler="synchronous", as_arrow=True).to_pylist()
    assert [r["index_b"] for r in rows] == list(range(1, N))
    assert [r["pair"] for r in rows] == list(range(1, N))
    for r in rows:
        assert r["path_b"] == name(r["index_b"])
        if r["index_b"] == BAD:
            assert r["status"] == "error" and r["error_kind"] == "truncated"
        elif r["index_b"] == BAD + 1:  # across the bad frame: the last good one, and the row says so
            assert r["status"] == "ok"
            assert (r["index_a"], r["path_a"]) == (BAD - 1, name(BAD - 1))
            assert r["note"] == f"compared with frame {BAD - 1}: frame {BAD} unreadable"
        else:
            assert r["status"] == "ok" and r["note"] is None
            assert (r["index_a"], r["path_a"]) == (r["index_b"] - 1, name(r["index_b"] - 1))


@pytest.mark.parametrize("how", ["index", "name", "path"])
def test_reference_mode_by_index_and_by_path(root, how):
    reference = {"index": 3, "name": name(3), "path": os.path.join(root, name(3))}[how]
    df = scan(root, mode="reference", reference=reference, scheduler="synchronous")
    assert df["index_b"].tolist() == [i for i in range(N) if i != 3]
    assert (df["index_a"] == 3).all() and (df["path_a"] == name(3)).all()
    bad = df[df["index_b"] == BAD]
    assert bad["status"].tolist() == ["error"]
    assert (df[df["index_b"] != BAD]["status"] == "ok").all()


def test_reference_defaults_to_the_first_frame(root):
    df = scan(root, mode="reference", scheduler="synchronous")
    assert (df["index_a"] == 0).all() and df["index_b"].tolist() == list(range(1, N))


def test_unreadable_reference_fails_every_row(root):
    df = scan(root, mode="reference", reference=BAD, scheduler="synchronous")
    assert len(df) == N - 1
    assert (df["status"] == "error").all() and (df["error_kind"] == "no-reference").all()


@pytest.mark.parametrize("reference", [N, "frame_99999.jpg"])
def test_reference_not_among_the_images_is_an_error(root, reference):
    # The API names the parameter; the command line names the flag (--reference).
    with pytest.raises(FramediffError, match="^reference "):
        scan(root, mode="reference", reference=reference)


@pytest.mark.parametrize("chunk_size", [3, 64])
def test_pairs_mode_compares_all_pairs_once(root, chunk_size):
    df = scan(root, mode="pairs", scheduler="synchronous", chunk_size=chunk_size)
    expected = [(i, j) for i in range(N) for j in range(i + 1, N)]
    assert len(df) == N * (N - 1) // 2
    assert df["pair"].tolist() == list(range(len(expected)))
    assert list(zip(df["index_a"], df["index_b"])) == expected
    touches_bad = (df["index_a"] == BAD) | (df["index_b"] == BAD)
    assert (df[touches_bad]["status"] == "error").all()
    assert (df[~touches_bad]["status"] == "ok").all()


def test_pairs_from_a_csv_of_paths(root, tmp_path):
    listing = tmp_path / "pairs.csv"
    listing.write_text(f"a,b\n{name(0)},{name(7)}\n# a comment\n{name(9)},{name(2)}\n{name(4)},{name(BAD)}\n")
    df = scan(root, mode="pairs", pair_list=listing, scheduler="synchronous")
    assert list(zip(df["index_a"], df["index_b"])) == [(0, 7), (9, 2), (4, BAD)]
    assert df["status"].tolist() == ["ok", "ok", "error"]


def test_pairs_from_a_csv_of_indices(root, tmp_path):
    listing = tmp_path / "pairs.csv"
    listing.write_text("index_a,index_b\n1,2\n11,0\n3,3\n")
    df = scan(root, mode="pairs", pair_list=listing, scheduler="synchronous")
    assert list(zip(df["index_a"], df["index_b"])) == [(1, 2), (11, 0), (3, 3)]
    assert df.loc[2, "l1"] == 0


def test_pair_list_naming_an_unknown_image_is_an_error(root, tmp_path):
    listing = tmp_path / "pairs.csv"
    listing.write_text(f"{name(0)},nope.jpg\n")
    with pytest.raises(FramediffError, match="nope.jpg"):
        scan(root, mode="pairs", pair_list=listing)


@pytest.fixture(scope="module")
def drifting(tmp_path_factory):
    """40 PNG frames, each exactly one grey level brighter than the one before."""
    return drift_sequence(tmp_path_factory.mktemp("drift"), n=40, step=1)[0].parent


@pytest.mark.parametrize(
    ("thresholds", "spacing"),
    [
        (["l0_fraction=0.5"], 11),  # every pixel beyond tol=10 once the drift reaches 11 levels
        (["mse=50"], 8),  # drift d gives mse d**2: first above 50 at d = 8
    ],
)
def test_keyframes_follow_slow_drift_that_consecutive_misses(drifting, thresholds, spacing):
    consecutive = scan(drifting, thresholds=thresholds, scheduler="synchronous")
    assert not consecutive["changed"].any()
    assert consecutive.attrs["summary"]["events"] == 0

    key = scan(drifting, mode="keyframes", thresholds=thresholds, chunk_size=7, scheduler="synchronous")
    kept = key.index_b[key["kept"]].tolist()
    assert len(kept) > 1
    assert kept == list(range(0, 40, spacing))
    assert key.attrs["kept"] == [f"img_{i:03d}.png" for i in kept]
    assert key.attrs["summary"]["kept"] == len(kept)
    first = key.iloc[0]
    assert first["kept"] and first["note"] == "first frame: kept" and pd.isna(first["index_a"])
    # Every later frame is compared with the last kept one, not its neighbour.
    for _, row in key.iloc[1:].iterrows():
        assert row["index_a"] == max(k for k in kept if k < row["index_b"])


def test_keyframes_keep_drifted_frames_when_lighting_is_worth_keeping(drifting):
    # A pure brightness drift is a lighting change: by default it keeps no frame ...
    default = scan(drifting, mode="keyframes", scheduler="synchronous")
    assert default.index_b[default["kept"]].tolist() == [0]
    assert set(default.change_kind.dropna()) <= {"none", "lighting"}
    # ... and with lighting among the kinds to keep, drifted frames are kept, spaced.
    key = scan(drifting, mode="keyframes", keep_on="content,lighting", scheduler="synchronous")
    kept = key.index_b[key["kept"]].tolist()
    assert len(kept) > 1 and kept[0] == 0
    gaps = {b - a for a, b in zip(kept, kept[1:])}
    assert min(gaps) > 1  # spaced: never two neighbours kept for a one-level drift


def test_unknown_mode_is_an_error(root):
    with pytest.raises(FramediffError, match="unknown mode"):
        scan(root, mode="sideways")


@pytest.mark.parametrize("preset", ["fast", "classic"])
@pytest.mark.parametrize("mode", ["consecutive", "reference", "pairs", "keyframes"])
def test_every_row_equals_compare_on_that_pair(root, preset, mode):
    options = make_options(preset)
    thresholds = ["l0_fraction=0.05"] if mode == "keyframes" else None
    table = scan(
        root, mode=mode, preset=preset, chunk_size=4, scheduler="synchronous", thresholds=thresholds, as_arrow=True
    )
    assert set(options.metrics) <= set(table.column_names)
    checked = assert_rows_match_compare(table, root, options)
    ok = sum(1 for s in table.column("status").to_pylist() if s == "ok")
    if mode == "keyframes":
        ok -= 1  # the first kept frame has nothing to be compared with
    assert checked == ok > 0


def test_rows_equal_compare_with_other_options(root):
    """Options beyond the presets (scale, normalization, all metrics) travel into every task."""
    extra = {"scale": 0.5, "normalize": "percentile", "metrics": "all", "gray": "mean"}
    options = make_options("fast", **extra)
    table = scan(root, scheduler="synchronous", chunk_size=5, as_arrow=True, **extra)
    assert table.column("height").to_pylist()[0] == 32
    assert assert_rows_match_compare(table, root, options) == N - 2
