"""A chain mode resumed from its recorded state gives the report of an unbroken run."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

import framediff
from framediff.sink import ReportSink
from framediff.synthetic import make_timelapse


class Interrupted(Exception):
    pass


@pytest.fixture(scope="module")
def frames(tmp_path_factory):
    return make_timelapse(tmp_path_factory.mktemp("chain") / "frames", n_frames=48, size=(60, 80), seed=5).directory


@pytest.mark.parametrize(
    "params",
    [
        {"mode": "keyframes", "thresholds": {"l0_fraction": 0.02}},
        {"mode": "background"},
        {"mode": "background", "bg_method": "ema"},
    ],
    ids=["keyframes", "background-samples", "background-ema"],
)
def test_an_interrupted_chain_resumes_from_its_recorded_state(frames, tmp_path, monkeypatch, params):
    common = dict(chunk_size=6, scheduler="synchronous", **params)
    want = framediff.run_scan(frames, output=tmp_path / "want.parquet", **common)
    out = tmp_path / "got.parquet"
    real = ReportSink.on_table
    seen = []

    def dies_after_three(self, chunk, table, state):
        if len(seen) == 3:
            raise Interrupted
        seen.append(chunk.number)
        real(self, chunk, table, state)

    monkeypatch.setattr(ReportSink, "on_table", dies_after_three)
    with pytest.raises(Interrupted):
        framediff.run_scan(frames, output=out, **common)
    work = out.with_name(f".{out.name}.framediff-run")
    assert sorted(p.name for p in work.glob("part-*.parquet")) == [f"part-{i:06d}.parquet" for i in range(3)]
    monkeypatch.setattr(ReportSink, "on_table", real)
    got = framediff.run_scan(frames, output=out, resume=True, **common)
    assert pq.read_table(out).equals(pq.read_table(want.report))
    assert got.summary["comparisons"] == want.summary["comparisons"] == 48
    assert not work.exists()
