"""Files that cannot be compared become error rows with a reason; the scan goes on.

Exit codes: 0 when every comparison succeeded, 1 when some inputs failed, 2 for a usage
error or (``--strict``) at the first failure, and never a traceback.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest
from scan_fixtures import (
    corrupt_scan_data,
    png_declaring,
    run_cli,
    textured,
    truncate,
    write_jpeg,
    write_png,
)

from framediff.scan import scan

#: frame name -> expected error kind of its row (None: readable).
EXPECTED = {
    "f00.jpg": None,
    "f01.jpg": None,
    "f02.jpg": "empty",  # zero bytes
    "f03.jpg": None,
    "f04.jpg": "truncated",  # cut short
    "f05.jpg": "corrupt",  # flipped bytes in the entropy-coded data
    "f06.jpg": "not-an-image",  # a text file named .jpg
    "f07.jpg": None,  # a PNG named .jpg: still an image
    "f08.png": "corrupt",  # a PNG with damaged compressed data
    "f09.png": "not-an-image",  # PNG signature followed by garbage
    "f10.png": "bomb",  # declares 20000 x 20000 pixels
    "f11.jpg": None,
    "f12.jpg": "size-mismatch",  # 32 x 48 among 64 x 96 frames
}


@pytest.fixture(scope="module")
def bad_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    for k in (0, 1, 3, 4, 5, 11):
        write_jpeg(d / f"f{k:02d}.jpg", textured(seed=k))
    (d / "f02.jpg").write_bytes(b"")
    truncate(d / "f04.jpg", 0.5)
    corrupt_scan_data(d / "f05.jpg")
    (d / "f06.jpg").write_text("this is not a picture\n")
    write_png(d / "f07.jpg", textured(seed=7))
    damaged = bytearray(write_png(d / "f08.png", textured(seed=8)).read_bytes())
    for k in range(120, len(damaged) - 20, 11):
        damaged[k] ^= 0x55
    (d / "f08.png").write_bytes(bytes(damaged))
    (d / "f09.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(np.random.default_rng(9).integers(0, 256, 400, np.uint8)))
    png_declaring(d / "f10.png", 20000, 20000)
    write_jpeg(d / "f12.jpg", textured(32, 48, seed=12))
    return d


def test_every_bad_file_is_an_error_row_with_its_kind(bad_dir):
    df = scan(bad_dir, scheduler="synchronous", chunk_size=4)
    assert df["path_b"].tolist() == list(EXPECTED)[1:]
    for row in df.itertuples():
        kind = EXPECTED[row.path_b]
        if kind is None:
            assert row.status == "ok", (row.path_b, row.error_kind, row.error)
            assert pd.isna(row.error_kind)
        else:
            assert (row.status, row.error_kind) == ("error", kind), (row.path_b, row.error)
            assert isinstance(row.error, str) and row.error
    summary = df.attrs["summary"]
    expected_kinds = [k for k in list(EXPECTED.values())[1:] if k]
    assert summary["errors"] == len(expected_kinds)
    assert summary["ok"] == len(EXPECTED) - 1 - len(expected_kinds)
    assert summary["errors_by_kind"] == {k: expected_kinds.count(k) for k in sorted(set(expected_kinds))}


def test_the_scan_continues_past_bad_files_with_the_last_good_frame(bad_dir):
    rows = {r["path_b"]: r for r in scan(bad_dir, scheduler="synchronous", as_arrow=True).to_pylist()}
    assert rows["f03.jpg"]["path_a"] == "f01.jpg"
    assert rows["f03.jpg"]["note"] == "compared with frame 1: frame 2 unreadable"
    assert rows["f07.jpg"]["path_a"] == "f03.jpg"
    assert rows["f07.jpg"]["note"] == "compared with frame 3: frame 4..6 unreadable"
    assert rows["f11.jpg"]["path_a"] == "f07.jpg"
    assert rows["f12.jpg"]["path_a"] == "f11.jpg"
    assert "32" in rows["f12.jpg"]["error"] and "64" in rows["f12.jpg"]["error"]


def test_max_pixels_refuses_larger_images_as_bombs(tmp_path):
    for k in range(3):
        write_jpeg(tmp_path / f"a{k}.jpg", textured(32, 48, seed=k))
    write_jpeg(tmp_path / "a3.jpg", textured(64, 96, seed=3))  # 6144 pixels
    write_png(tmp_path / "a4.png", textured(64, 96, seed=4))
    df = scan(tmp_path, scheduler="synchronous", max_pixels=4000)
    assert df["status"].tolist()[:1] == ["ok"]
    assert df.set_index("path_b").loc[["a3.jpg", "a4.png"], "error_kind"].tolist() == ["bomb", "bomb"]
    assert "4000" in df.set_index("path_b").loc["a3.jpg", "error"]


def test_max_pixels_on_the_command_line(capsys, tmp_path):
    for k in range(2):
        write_png(tmp_path / f"b{k}.png", textured(32, 48, seed=k))
    png_declaring(tmp_path / "b2.png", 3000, 2000)  # 6 Mpx: under Pillow's limit, over ours
    report = tmp_path / "out" / "r.csv"
    code, out, err = run_cli(capsys, ["scan", tmp_path, "-o", report, "--max-pixels", "1000000"])
    assert code == 1, err
    assert "  bomb: 1" in out
    rows = pd.read_csv(report)
    assert rows["error_kind"].tolist()[-1] == "bomb"
    assert "3000x2000" in rows["error"].tolist()[-1]


def test_permission_denied_is_an_error_row(tmp_path):
    for k in range(3):
        write_jpeg(tmp_path / f"p{k}.jpg", textured(seed=k))
    locked = tmp_path / "p1.jpg"
    locked.chmod(0)
    try:
        if os.geteuid() == 0 or os.access(locked, os.R_OK):
            pytest.skip("running as root (or permissions not enforced): chmod 000 does not block reading")
        df = scan(tmp_path, scheduler="synchronous")
        assert df["error_kind"].tolist()[0] == "permission" and df["status"].tolist() == ["error", "ok"]
        assert df["note"].tolist()[1] == "compared with frame 0: frame 1 unreadable"
    finally:
        locked.chmod(0o644)


# --------------------------------------------------------------------- exit codes


@pytest.fixture(scope="module")
def good_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("good")
    for k in range(4):
        write_jpeg(d / f"g{k}.jpg", textured(seed=k))
    return d


def test_exit_code_0_when_every_comparison_succeeded(capsys, good_dir, tmp_path):
    code, out, err = run_cli(capsys, ["scan", good_dir, "-o", tmp_path / "r.parquet", "--scheduler", "synchronous"])
    assert code == 0, err
    assert "3 comparisons: 3 ok, 0 failed" in out
    assert "Traceback" not in err


def test_exit_code_1_when_some_inputs_failed(capsys, bad_dir, tmp_path):
    report = tmp_path / "r.parquet"
    code, out, err = run_cli(capsys, ["scan", bad_dir, "-o", report, "--chunk-size", "3"])
    assert code == 1
    assert "Traceback" not in err
    assert "  truncated: 1" in out and "  bomb: 1" in out and "  size-mismatch: 1" in out
    assert report.exists()


def test_strict_stops_at_the_first_failure_with_exit_code_2(capsys, bad_dir, tmp_path):
    report = tmp_path / "r.parquet"
    code, out, err = run_cli(capsys, ["scan", bad_dir, "-o", report, "--strict", "--scheduler", "synchronous"])
    assert code == 2
    assert "--strict" in err and "f02.jpg" in err and "[empty]" in err
    assert "Traceback" not in err
    assert not report.exists()
    # No half-written report left behind (a resumable run's own state may stay).
    assert not [p.name for p in tmp_path.iterdir() if ".tmp" in p.name or p.suffix in (".parquet", ".json")]


def test_strict_on_a_clean_run_is_exit_code_0(capsys, good_dir, tmp_path):
    code, _, err = run_cli(capsys, ["scan", good_dir, "-o", tmp_path / "r.csv", "--strict", "-q"])
    assert code == 0, err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--metrics", "l1,sharpness"], "unknown metric 'sharpness'"),
        (["--threshold", "kl"], "--threshold expects METRIC=VALUE"),
        (["--threshold", "kl=high"], "--threshold expects METRIC=VALUE"),
        (["--metrics", "l1,l0", "--threshold", "kl=0.2"], "that metric is not computed"),
        (["--chunk-size", "0"], "--chunk-size must be >= 1"),
        (["--scale", "2"], "--scale"),
        (["--scheduler", "gpu-cluster"], "unknown scheduler"),
        (["--mode", "reference", "--reference", "nope.jpg"], "--reference nope.jpg"),
    ],
)
def test_usage_errors_exit_2_with_one_line(capsys, good_dir, tmp_path, args, message):
    report = tmp_path / "r.parquet"
    code, out, err = run_cli(capsys, ["scan", good_dir, "-o", report, *args])
    assert code == 2
    assert message in err
    assert err.startswith("framediff: error: ") and err.count("\n") == 1
    assert "Traceback" not in err
    assert not report.exists()


def test_missing_source_is_a_usage_error(capsys, tmp_path):
    code, _, err = run_cli(capsys, ["scan", tmp_path / "no-such-dir", "-o", tmp_path / "r.parquet"])
    assert code == 2
    assert "no such file or directory" in err and "Traceback" not in err


def test_directory_without_images_is_a_usage_error(capsys, tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "readme.txt").write_text("x")
    code, _, err = run_cli(capsys, ["scan", tmp_path / "in", "-o", tmp_path / "r.parquet"])
    assert code == 2 and "no images found" in err


def test_argparse_errors_exit_2(capsys, good_dir):
    code, _, err = run_cli(capsys, ["scan", good_dir, "--mode", "sideways"])
    assert code == 2
    assert "invalid choice" in err and "Traceback" not in err
