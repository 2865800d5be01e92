"""Hostile reports are data: odd column names, metadata of the wrong types and
impossible capture times give a page, never a traceback."""

from __future__ import annotations

import datetime
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from framediff.errors import FramediffError
from framediff.html_report import write_html_report

#: Seconds since the epoch of 9999-12-31 23:59:59 UTC, the last second a datetime holds.
LAST_SECOND = datetime.datetime(9999, 12, 31, 23, 59, 59, tzinfo=datetime.timezone.utc).timestamp()


def _report(path, columns: dict, meta) -> None:
    table = pa.table(columns)
    raw = meta if isinstance(meta, (bytes, str)) else json.dumps(meta)
    pq.write_table(table.replace_schema_metadata({b"framediff": raw}), path)


def _base(n=6, **extra):
    columns = {
        "pair": pa.array(range(1, n + 1), pa.int64()),
        "index_a": pa.array(range(n), pa.int64()),
        "index_b": pa.array(range(1, n + 1), pa.int64()),
        "path_a": pa.array([f"f{i}.png" for i in range(n)]),
        "path_b": pa.array([f"f{i + 1}.png" for i in range(n)]),
        "l1": pa.array([float(i) for i in range(n)]),
        "changed": pa.array([i % 2 == 0 for i in range(n)]),
        "status": pa.array(["ok"] * n),
    }
    columns.update(extra)
    return columns


@pytest.mark.slow
def test_a_metric_named_like_mathtext_is_drawn_literally(tmp_path):
    name = r"$\frac{x$"
    _report(tmp_path / "r.parquet", _base(**{name: pa.array([0.5, 1.5, 2.0, 0.1, 0.0, 3.0])}), {"mode": "consecutive"})
    page = write_html_report(tmp_path / "r.parquet", tmp_path / "r.html", plots_dir=tmp_path / "plots").read_text()
    assert "\\frac{x" in page  # named in the page, as text
    assert len(list((tmp_path / "plots").iterdir())) == 2  # l1 and the odd one, both plotted


@pytest.mark.parametrize(
    "meta",
    [
        {"root": 123, "mode": 5, "thresholds": ["l1"], "options": "fast"},
        {"root": ["a"], "mode": None, "thresholds": {"l1": "high"}, "options": [1, 2], "reference": {"x": 1}},
        [1, 2, 3],
        "not json at all",
    ],
)
def test_metadata_of_the_wrong_types_is_ignored_field_by_field(tmp_path, meta):
    _report(tmp_path / "r.parquet", _base(), meta)
    page = write_html_report(tmp_path / "r.parquet", tmp_path / "r.html").read_text()
    assert "framediff report: r.parquet" in page and "mode consecutive" in page


@pytest.mark.parametrize("last", [LAST_SECOND, LAST_SECOND + 86400 * 400, 1e300, -1e15])
def test_impossible_capture_times_are_clipped_not_a_crash(tmp_path, last):
    times = [1.7e9 + 60 * i for i in range(5)] + [last]
    columns = _base(time_b=pa.array(times, pa.float64()))
    _report(tmp_path / "r.parquet", columns, {"mode": "consecutive", "root": str(tmp_path)})
    page = write_html_report(tmp_path / "r.parquet", tmp_path / "r.html").read_text()
    assert "capture time" in page


def test_a_report_that_is_not_one_is_still_a_one_line_error(tmp_path):
    (tmp_path / "r.parquet").write_bytes(b"PAR1 not really")
    with pytest.raises(FramediffError, match="r.parquet"):
        write_html_report(tmp_path / "r.parquet", tmp_path / "r.html")
