"""Inputs and outputs as fsspec URLs: the same report as local paths."""

from __future__ import annotations

import importlib.util
import io

import pyarrow.parquet as pq
import pytest

import framediff
from framediff.cli import main
from framediff.scan import run_scan
from framediff.synthetic import make_timelapse

fsspec = pytest.importorskip("fsspec")


@pytest.fixture(scope="module")
def frames(tmp_path_factory):
    return make_timelapse(tmp_path_factory.mktemp("remote") / "frames", n_frames=40, size=(48, 64), seed=2).directory


def test_a_file_url_gives_the_same_rows_as_the_local_path(frames, tmp_path):
    opts = framediff.make_options("fast")
    local = run_scan(frames, options=opts, collect=True, scheduler="synchronous").table()
    remote = run_scan(frames.as_uri(), options=opts, collect=True, scheduler="synchronous").table()
    assert remote.equals(local)


def test_memory_urls_in_and_out(frames):
    fs = fsspec.filesystem("memory")
    for path in sorted(frames.glob("*.jpg")):
        fs.pipe(f"/cam/{path.name}", path.read_bytes())
    fs.pipe("/cam/notes.txt", b"not an image")
    result = run_scan(
        "memory://cam", options=framediff.make_options("fast"), output="memory://out/cam.parquet", scheduler="threads"
    )
    assert result.summary["skipped_non_image"] == 1
    assert result.summary["report"] == "memory://out/cam.parquet"
    table = pq.read_table(io.BytesIO(fs.cat("/out/cam.parquet")))
    assert table.num_rows == 39
    assert table.column("path_b").to_pylist()[0] == "frame_00002.jpg"
    assert fs.exists("/out/cam.parquet.summary.json") and fs.exists("/out/cam.parquet.events.parquet")
    local = run_scan(frames, options=framediff.make_options("fast"), collect=True).table()
    assert (
        table.drop_columns([]).select(local.column_names).equals(local.replace_schema_metadata(table.schema.metadata))
    )


@pytest.mark.skipif(importlib.util.find_spec("s3fs") is not None, reason="s3fs is installed here")
def test_a_url_whose_protocol_library_is_missing_is_a_one_line_error(capsys):
    assert main(["scan", "s3://bucket/frames", "-q"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "s3fs" in err and "Traceback" not in err


def test_an_existing_remote_report_is_not_replaced_without_overwrite(frames):
    fs = fsspec.filesystem("memory")
    fs.pipe("/taken/r.parquet", b"someone else's report")
    opts = framediff.make_options("fast")
    with pytest.raises(framediff.FramediffError, match="already exists"):
        run_scan(frames, options=opts, output="memory://taken/r.parquet")
    run_scan(frames, options=opts, output="memory://taken/r.parquet", overwrite=True)
    assert pq.read_table(io.BytesIO(fs.cat("/taken/r.parquet"))).num_rows == 39
    # Twice in a row works: nothing is left behind in the local staging folder.
    run_scan(frames, options=opts, output="memory://taken/r.parquet", overwrite=True)
