"""``framediff scan`` end to end: reports (CSV, Parquet, partitioned), their metadata,
the JSON summary and events sidecars, keyframe outputs, overwrite protection, help,
and one real subprocess each for ``framediff scan`` and ``framediff demo``."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest
from scan_fixtures import drift_sequence, run_cli

from framediff.synthetic import make_timelapse

#: The report columns of a default (fast preset) consecutive scan, in order. Renaming
#: or reordering one breaks every reader downstream, so this list is the contract.
FAST_COLUMNS = [
    "pair",
    "index_a",
    "index_b",
    "path_a",
    "path_b",
    "height",
    "width",
    "l1",
    "l1_per_pixel",
    "l0",
    "l0_fraction",
    "l2",
    "mse",
    "rmse",
    "nrmse",
    "psnr",
    "max_abs",
    "kl",
    "change_kind",
    "changed",
    "status",
    "error_kind",
    "error",
    "note",
]
EVENT_COLUMNS = [
    "event",
    "first_index",
    "last_index",
    "first_path",
    "last_path",
    "before_index",
    "n_changed",
    "peak_metric",
    "peak_value",
    "peak_index",
]
SUMMARY_KEYS = {
    "mode",
    "inputs",
    "skipped_non_image",
    "comparisons",
    "ok",
    "errors",
    "errors_by_kind",
    "changed",
    "events",
    "thresholds",
    "options",
    "wall_seconds",
    "images_per_second",
    "report",
    "events_report",
}


@pytest.fixture(scope="module")
def timelapse(tmp_path_factory):
    """40 frames 64x96 with known events (object, light on/off, shake) and a truncated file."""
    return make_timelapse(tmp_path_factory.mktemp("tl") / "frames", n_frames=40, size=(64, 96), seed=1)


@pytest.fixture(scope="module")
def frames_dir(timelapse):
    (timelapse.directory / "README.txt").write_text("camera 7\n")  # a non-image to skip
    return timelapse.directory


@pytest.fixture(scope="module")
def parquet_run(tmp_path_factory, frames_dir):
    """One in-process ``framediff scan`` to Parquet, shared by the report checks."""
    out = tmp_path_factory.mktemp("pq") / "report.parquet"
    from framediff.cli import main

    code = main(["scan", str(frames_dir), "-o", str(out), "--chunk-size", "8", "-q"])
    return code, out


def test_parquet_report_reads_back_with_pyarrow_and_pandas(parquet_run, timelapse):
    code, out = parquet_run
    assert code == 1  # the truncated frame failed
    table = pq.read_table(out)
    assert table.column_names == FAST_COLUMNS
    assert table.num_rows == 39
    df = pd.read_parquet(out)
    assert df.columns.tolist() == FAST_COLUMNS
    assert df["index_b"].tolist() == list(range(1, 40))
    (bad,) = timelapse.corrupt
    assert df.loc[df["index_b"] == bad, "error_kind"].tolist() == ["truncated"]


def test_parquet_metadata_carries_options_and_thresholds(parquet_run):
    _, out = parquet_run
    meta = json.loads(pq.read_schema(out).metadata[b"framediff"])
    assert meta["mode"] == "consecutive"
    assert meta["thresholds"] == {}  # none given: changes are decided above the noise floor
    assert meta["decisions"]["by"] == "noise floor" and meta["decisions"]["sensitivity"] == 1.0
    assert meta["options"]["metrics"] == FAST_COLUMNS[7:18]
    assert meta["options"]["gray"] == "luma" and meta["options"]["tol"] == 10.0
    assert meta["fingerprint"] and meta["framediff_version"]


def test_summary_json_sits_next_to_the_report(parquet_run, timelapse):
    _, out = parquet_run
    summary = json.loads(out.with_name("report.parquet.summary.json").read_text())
    assert SUMMARY_KEYS <= set(summary)
    assert summary["inputs"] == 40 and summary["comparisons"] == 39
    assert summary["skipped_non_image"] == 1
    assert summary["ok"] == 38 and summary["errors"] == 1
    assert summary["errors_by_kind"] == {"truncated": 1}
    assert summary["options"]["metrics"] == FAST_COLUMNS[7:18]
    assert summary["thresholds"] == {} and summary["decisions"]["by"] == "noise floor"
    assert summary["wall_seconds"] > 0 and summary["images_per_second"] > 0
    assert Path(summary["report"]) == out
    assert summary["events"] >= 4  # object, light on, light off, shake


def test_events_table_is_written_and_matches_the_known_events(parquet_run, timelapse):
    _, out = parquet_run
    events = pq.read_table(out.with_name("report.parquet.events.parquet"))
    assert events.column_names == EVENT_COLUMNS
    summary = json.loads(out.with_name("report.parquet.summary.json").read_text())
    assert events.num_rows == summary["events"]
    assert Path(summary["events_report"]) == out.with_name("report.parquet.events.parquet")
    spans = list(zip(events.column("first_index").to_pylist(), events.column("last_index").to_pylist()))
    for known in timelapse.events:
        if known.kind != "corrupt":
            assert any(a <= known.last + 1 and b >= known.first for a, b in spans), known


def test_csv_report_reads_back_and_equals_the_parquet_one(capsys, frames_dir, parquet_run, tmp_path):
    _, parquet = parquet_run
    out = tmp_path / "report.csv"
    code, _, err = run_cli(capsys, ["scan", frames_dir, "-o", out, "--chunk-size", "5", "-q"])
    assert code == 1, err
    df = pd.read_csv(out)
    assert df.columns.tolist() == FAST_COLUMNS
    assert pacsv.read_csv(out).column_names == FAST_COLUMNS
    expected = pd.read_parquet(parquet)
    numeric = [
        c
        for c in FAST_COLUMNS
        if c not in ("path_a", "path_b", "change_kind", "status", "error_kind", "error", "note", "changed")
    ]
    pd.testing.assert_frame_equal(df[numeric], expected[numeric], check_dtype=False, rtol=1e-12)
    assert df["path_b"].tolist() == expected["path_b"].tolist()
    assert df["changed"].fillna(False).astype(bool).tolist() == expected["changed"].fillna(False).tolist()
    assert (tmp_path / "report.csv.events.csv").exists() and (tmp_path / "report.csv.summary.json").exists()
    assert pd.read_csv(tmp_path / "report.csv.events.csv").columns.tolist() == EVENT_COLUMNS


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_partitioned_report_is_a_readable_dataset(capsys, frames_dir, parquet_run, tmp_path, fmt):
    _, single = parquet_run
    folder = tmp_path / "report-parts"
    code, _, err = run_cli(
        capsys, ["scan", frames_dir, "-o", folder, "--partitioned", "--format", fmt, "--chunk-size", "8", "-q"]
    )
    assert code == 1, err
    parts = sorted(folder.iterdir())
    assert len(parts) == 5 and all(p.suffix == f".{fmt}" for p in parts)  # 40 frames / 8 per chunk
    # Type inference per CSV part would guess 'null' for a part without errors: CSV
    # readers pass the report's schema, which the single Parquet report carries.
    schema = pq.read_schema(single).remove_metadata() if fmt == "csv" else None
    table = pads.dataset(folder, format=fmt, schema=schema).to_table()
    assert table.column_names == FAST_COLUMNS
    expected = pd.read_parquet(single)
    got = table.to_pandas()
    assert got["index_b"].tolist() == expected["index_b"].tolist()
    pd.testing.assert_series_equal(got["l1"], expected["l1"], rtol=1e-12)
    if fmt == "parquet":
        assert pd.read_parquet(folder)["pair"].tolist() == expected["pair"].tolist()
        assert b"framediff" in pq.read_schema(parts[0]).metadata
    assert (tmp_path / "report-parts.summary.json").exists()


def test_refuses_to_overwrite_without_overwrite(capsys, frames_dir, tmp_path):
    out = tmp_path / "report.parquet"
    out.write_bytes(b"precious")
    code, _, err = run_cli(capsys, ["scan", frames_dir, "-o", out, "-q"])
    assert code == 2
    assert "already exists" in err and "--overwrite" in err and "Traceback" not in err
    assert out.read_bytes() == b"precious"
    code, _, err = run_cli(capsys, ["scan", frames_dir, "-o", out, "-q", "--overwrite"])
    assert code == 1, err
    assert pq.read_table(out).num_rows == 39


def test_custom_summary_path(capsys, frames_dir, tmp_path):
    summary = tmp_path / "elsewhere" / "run.json"
    summary.parent.mkdir()
    code, _, err = run_cli(capsys, ["scan", frames_dir, "-o", tmp_path / "r.parquet", "--summary", summary, "-q"])
    assert code == 1, err
    assert json.loads(summary.read_text())["inputs"] == 40
    assert not (tmp_path / "r.parquet.summary.json").exists()


def test_keyframes_keep_list_copy_and_link(capsys, tmp_path):
    source = tmp_path / "drift"
    drift_sequence(source, n=40, step=1)
    (source / "notes.txt").write_text("skipped")
    keep, copies, links = tmp_path / "kept.txt", tmp_path / "copies", tmp_path / "links"
    code, out, err = run_cli(
        capsys,
        [
            "scan", source, "--mode", "keyframes", "--threshold", "l0_fraction=0.5",
            "-o", tmp_path / "key.parquet", "--keep-list", keep, "--copy-kept", copies, "--link-kept", links,
        ],
    )  # fmt: skip
    assert code == 0, err
    expected = [f"img_{i:03d}.png" for i in (0, 11, 22, 33)]
    assert keep.read_text().splitlines() == expected
    assert sorted(p.name for p in copies.iterdir()) == expected
    assert sorted(p.name for p in links.iterdir()) == expected
    for name in expected:
        assert (copies / name).read_bytes() == (source / name).read_bytes()
        assert not (copies / name).is_symlink()
        assert (links / name).is_symlink()
        assert (links / name).resolve() == (source / name).resolve()
    report = pq.read_table(tmp_path / "key.parquet")
    assert report.column_names[-1] == "kept"
    assert [n for n, k in zip(report.column("path_b").to_pylist(), report.column("kept").to_pylist()) if k] == expected
    assert json.loads((tmp_path / "key.parquet.summary.json").read_text())["kept"] == 4


def test_help_mentions_the_exit_codes(capsys):
    for args in (["--help"], ["scan", "--help"]):
        code, out, _ = run_cli(capsys, args)
        assert code == 0
        assert "exit codes:" in out
        for line in ("0  every comparison succeeded", "1  some inputs", "2  usage error"):
            assert line in out


def test_scan_prints_a_summary_line(capsys, frames_dir, tmp_path):
    code, out, err = run_cli(capsys, ["scan", frames_dir, "-o", tmp_path / "r.parquet", "--scheduler", "synchronous"])
    assert code == 1
    assert out.startswith("40 images, 39 comparisons: 38 ok, 1 failed, ")
    assert "  truncated: 1" in out
    assert f"report: {tmp_path / 'r.parquet'}" in out
    assert "Traceback" not in err


def _framediff_command() -> list[str]:
    """The installed console script next to this interpreter, else the module."""
    script = Path(sys.executable).with_name("framediff")
    if script.exists():
        return [str(script)]
    found = shutil.which("framediff")
    return [found] if found else [sys.executable, "-m", "framediff.cli"]


def _run(args, cwd) -> subprocess.CompletedProcess:
    return subprocess.run(
        _framediff_command() + [str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=300
    )


@pytest.mark.slow
def test_framediff_scan_in_a_real_process(frames_dir, tmp_path):
    result = _run(["scan", frames_dir, "-o", "out/report.csv", "--chunk-size", "16", "--workers", "2"], tmp_path)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert "40 images, 39 comparisons: 38 ok, 1 failed" in result.stdout
    report = tmp_path / "out" / "report.csv"
    assert pd.read_csv(report).columns.tolist() == FAST_COLUMNS
    assert (tmp_path / "out" / "report.csv.summary.json").exists()
    assert (tmp_path / "out" / "report.csv.events.csv").exists()


@pytest.mark.slow
def test_framediff_demo_finds_every_known_event(tmp_path):
    result = _run(["demo", tmp_path / "demo", "--frames", "40", "--workers", "2"], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert "MISSED" not in result.stdout
    lines = result.stdout.splitlines()
    start = next(k for k, line in enumerate(lines) if line.startswith("truth"))
    table = [line for line in lines[start + 1 :] if line.strip() and not line.startswith("all known")]
    kinds = {line.split()[0] for line in table}
    assert {"object", "light-on", "light-off", "shake", "corrupt"} <= kinds
    assert all(line.rstrip().endswith("found") for line in table), table
    assert "all known events found" in result.stdout
    assert (tmp_path / "demo" / "report.parquet").exists() and (tmp_path / "demo" / "truth.json").exists()


def test_scan_api_writes_the_same_report(frames_dir, parquet_run, tmp_path):
    from framediff.scan import scan

    _, parquet = parquet_run
    df = scan(frames_dir, output=tmp_path / "api.parquet", chunk_size=3)
    expected = pq.read_table(parquet)
    assert pq.read_table(tmp_path / "api.parquet").equals(expected)
    assert pa.Table.from_pandas(df, preserve_index=False).column_names == FAST_COLUMNS
    assert df.attrs["summary"]["report"] == str(tmp_path / "api.parquet")
