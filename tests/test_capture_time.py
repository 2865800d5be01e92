"""Capture times: ordered by EXIF DateTimeOriginal, kept in the report, plotted against."""

from __future__ import annotations

import datetime

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

import framediff
from framediff.html_report import write_html_report
from framediff.scan import run_scan


def _photo(path, seed, when: str):
    rng = np.random.default_rng(seed)
    image = Image.fromarray(rng.integers(0, 256, (32, 48, 3), dtype=np.uint8))
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9003] = when  # DateTimeOriginal
    image.save(path, quality=90, exif=exif)


@pytest.mark.slow
def test_exif_order_and_capture_times_reach_the_report_and_its_plots(tmp_path):
    frames = tmp_path / "frames"
    frames.mkdir()
    # Names in the opposite order of the capture times.
    stamps = ["2024:05:01 10:00:00", "2024:05:01 11:30:00", "2024:05:02 08:15:00"]
    for k, when in enumerate(stamps):
        _photo(frames / f"img_{9 - k}.jpg", k, when)
    out = tmp_path / "r.parquet"
    run_scan(frames, options=framediff.make_options("fast"), sort="exif", output=out)
    table = pq.read_table(out)
    assert table.column("path_b").to_pylist() == ["img_8.jpg", "img_7.jpg"]
    want = [
        datetime.datetime(2024, 5, 1, 11, 30, tzinfo=datetime.timezone.utc),
        datetime.datetime(2024, 5, 2, 8, 15, tzinfo=datetime.timezone.utc),
    ]
    assert table.column("time_b").to_pylist() == want
    html = write_html_report(out, tmp_path / "r.html").read_text(encoding="utf-8")
    assert "capture time (UTC)" in html


def test_natural_order_has_no_time_column(tmp_path):
    frames = tmp_path / "frames"
    frames.mkdir()
    for k in range(3):
        _photo(frames / f"img_{k}.jpg", k, "2024:05:01 10:00:00")
    result = run_scan(frames, options=framediff.make_options("fast"), collect=True)
    assert "time_b" not in result.table().column_names
