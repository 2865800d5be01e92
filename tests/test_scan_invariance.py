"""The report does not depend on how the work is cut up or where it runs.

Chunk size, worker count and scheduler (threads, processes, synchronous, a real
dask.distributed cluster as a Client or by address) must all give the same table:
same rows, same order, same values.
"""

from __future__ import annotations

import pytest
from scan_fixtures import make_sequence

from framediff.scan import scan

N = 30
BAD = 15
#: Noise and slow drift are lighting changes: keyframes keeps them here, so that the
#: chain has decisions to reproduce.
MODE_PARAMS = {"keyframes": {"keep_on": "content,lighting"}}

#: Pairs mode runs on 13 of the frames (the bad one included): 78 pairs keep it quick.
PAIR_FRAMES = range(8, 21)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    """30 JPEG frames 64x96 (noise and slow drift), frame 15 truncated."""
    return make_sequence(tmp_path_factory.mktemp("invariance"), n=N, corrupt=(BAD,))[0].parent


@pytest.fixture(scope="module")
def pair_inputs(root):
    return [root / f"frame_{i + 1:05d}.jpg" for i in PAIR_FRAMES]


@pytest.fixture(scope="module")
def baseline(root, pair_inputs):
    """One task, in this thread: the reference answer for each mode."""
    out = {}
    for mode in ("consecutive", "reference", "keyframes"):
        out[mode] = scan(
            root,
            mode=mode,
            chunk_size=64,
            workers=1,
            scheduler="synchronous",
            as_arrow=True,
            **MODE_PARAMS.get(mode, {}),
        )
    out["pairs"] = scan(pair_inputs, mode="pairs", chunk_size=64, workers=1, scheduler="synchronous", as_arrow=True)
    return out


def assert_same_report(table, expected):
    assert table.schema == expected.schema
    assert table.num_rows == expected.num_rows
    assert table.equals(expected), _first_difference(table, expected)


def _first_difference(table, expected) -> str:
    for k, (got, want) in enumerate(zip(table.to_pylist(), expected.to_pylist())):
        if got != want:
            keys = [c for c in want if got.get(c) != want[c]]
            return f"row {k} differs in {keys}: {[(got[c], want[c]) for c in keys]}"
    return "tables differ"


def test_baseline_has_the_bad_frame_and_real_changes(baseline):
    rows = baseline["consecutive"].to_pylist()
    assert len(rows) == N - 1
    assert [r["index_b"] for r in rows if r["status"] == "error"] == [BAD]
    assert rows[BAD]["note"] == f"compared with frame {BAD - 1}: frame {BAD} unreadable"
    kept = baseline["keyframes"].column("kept").to_pylist()
    assert kept[BAD] is None  # the unreadable frame is an error row, neither kept nor dropped
    assert 1 < sum(bool(k) for k in kept) < N  # keyframes is not trivial on this sequence
    n = len(PAIR_FRAMES)
    assert baseline["pairs"].num_rows == n * (n - 1) // 2
    assert baseline["pairs"].column("status").to_pylist().count("error") == n - 1


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("chunk_size", [1, 3, 7, 64])
@pytest.mark.parametrize("mode", ["consecutive", "reference", "keyframes"])
def test_chunk_size_and_workers_do_not_change_the_report(root, baseline, mode, chunk_size, workers):
    table = scan(
        root,
        mode=mode,
        chunk_size=chunk_size,
        workers=workers,
        scheduler="threads",
        as_arrow=True,
        **MODE_PARAMS.get(mode, {}),
    )
    assert_same_report(table, baseline[mode])


@pytest.mark.parametrize("chunk_size", [1, 3, 7])
def test_synchronous_scheduler_gives_the_same_report(root, baseline, chunk_size):
    table = scan(root, chunk_size=chunk_size, scheduler="synchronous", as_arrow=True)
    assert_same_report(table, baseline["consecutive"])


@pytest.mark.slow
def test_process_pool_gives_the_same_report(root, baseline):
    for mode in ("consecutive", "keyframes"):
        table = scan(
            root, mode=mode, chunk_size=7, workers=2, scheduler="processes", as_arrow=True, **MODE_PARAMS.get(mode, {})
        )
        assert_same_report(table, baseline[mode])


@pytest.mark.parametrize("chunk_size", [1, 3, 7, 64])
def test_pairs_report_does_not_depend_on_chunk_size(pair_inputs, baseline, chunk_size):
    """Blocks of the upper triangle finish out of pair order; the report is still in it."""
    table = scan(pair_inputs, mode="pairs", chunk_size=chunk_size, workers=2, scheduler="threads", as_arrow=True)
    assert table.column("pair").to_pylist() == list(range(table.num_rows))
    assert_same_report(table, baseline["pairs"])


@pytest.fixture(scope="module")
def cluster():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address="127.0.0.1:0"
    ) as local:
        yield local


@pytest.mark.slow
def test_distributed_client_gives_the_same_report(root, baseline, cluster):
    from distributed import Client

    with Client(cluster) as client:
        for mode, chunk_size in (("consecutive", 3), ("reference", 7), ("keyframes", 7)):
            table = scan(
                root, mode=mode, chunk_size=chunk_size, scheduler=client, as_arrow=True, **MODE_PARAMS.get(mode, {})
            )
            assert_same_report(table, baseline[mode])
        assert client.status == "running"  # a Client we pass in is ours to close


@pytest.mark.slow
def test_distributed_scheduler_address_gives_the_same_report(root, baseline, cluster):
    address = cluster.scheduler_address
    assert address.startswith("tcp://")
    table = scan(root, chunk_size=7, scheduler=address, as_arrow=True)
    assert_same_report(table, baseline["consecutive"])
