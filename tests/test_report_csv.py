"""CSV reports that DuckDB, pandas and polars all read with numeric metric columns,
and JSON sidecars that strict parsers accept."""

from __future__ import annotations

import json
import math

import duckdb
import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.csv as pacsv
import pytest
from scan_fixtures import textured, write_png

from framediff.report import ReportWriter, csv_floats, write_json_atomic
from framediff.scan import scan

INF = math.inf


def _hostile_table() -> pa.Table:
    """150 identical pairs first (psnr inf, ssim exactly 1: what readers sniff), then
    ordinary values, -inf, NaN, a missing value and a formula-like path."""
    n = 150
    psnr = [INF] * n + [31.5, -INF, math.nan, None]
    ssim = [1.0] * n + [0.25, 0.5, math.nan, None]
    paths = [f"f{i}.png" for i in range(n)] + ["a.png", "-b.png", "=c.png", None]
    return pa.table(
        {
            "pair": pa.array(range(n + 4), pa.int64()),
            "path_b": pa.array(paths, pa.string()),
            "psnr": pa.array(psnr, pa.float64()),
            "ssim": pa.array(ssim, pa.float32()),
        }
    )


@pytest.fixture
def hostile_csv(tmp_path):
    table = _hostile_table()
    writer = ReportWriter(tmp_path / "r.csv", "csv", table.schema, {"mode": "consecutive"})
    writer.write(table.slice(0, 100))
    writer.write(table.slice(100))
    return writer.close(), table


def _expected(table, name):
    return [None if v is None else v for v in table[name].to_pylist()]


def test_duckdb_reads_metric_columns_as_double(hostile_csv):
    path, table = hostile_csv
    rel = duckdb.sql(f"select * from '{path}'")
    types = dict(zip(rel.columns, map(str, rel.types)))
    assert types["psnr"] == "DOUBLE" and types["ssim"] == "DOUBLE" and types["pair"] == "BIGINT"
    psnr = [row[0] for row in duckdb.sql(f"select psnr from '{path}'").fetchall()]
    assert psnr[0] == INF and psnr[-4:-2] == [31.5, -INF] and math.isnan(psnr[-2]) and psnr[-1] is None


def test_polars_reads_metric_columns_as_float(hostile_csv):
    path, _ = hostile_csv
    frame = pl.read_csv(path)  # infers from the first 100 rows: all inf and 1.0
    assert frame.schema["psnr"] == pl.Float64 and frame.schema["ssim"] == pl.Float64
    assert frame["psnr"][150] == 31.5 and frame["psnr"][151] == -INF and math.isnan(frame["psnr"][152])
    assert frame["ssim"][150] == 0.25


def test_pandas_reads_metric_columns_as_float(hostile_csv):
    path, _ = hostile_csv
    frame = pd.read_csv(path)
    assert frame.psnr.dtype == np.float64 and frame.ssim.dtype == np.float64
    assert np.isinf(frame.psnr.iloc[0]) and frame.psnr.iloc[151] == -INF
    assert frame.path_b.iloc[151] == "'-b.png" and frame.path_b.iloc[152] == "'=c.png"  # formulas still neutral


def test_pyarrow_reads_back_the_same_values(hostile_csv):
    path, table = hostile_csv
    back = pacsv.read_csv(path)
    assert back.schema.field("psnr").type == pa.float64()
    got, want = back["psnr"].to_pylist(), table["psnr"].to_pylist()
    # pyarrow counts "NaN" among its null spellings (so did "nan" before): null.
    assert got[:152] == want[:152] and got[152] is None and got[153] is None


def test_floats_always_carry_a_point_or_an_exponent():
    text = csv_floats(pa.table({"x": pa.array([1.0, 0.0, -2.0, 1e300, 1e-20, 0.5])}))["x"].to_pylist()
    assert text == ["1.0", "0.0", "-2.0", "1e+300", "1e-20", "0.5"]


def test_a_scan_csv_with_identical_frames_reads_numeric_everywhere(tmp_path):
    image = textured(16, 16)
    (tmp_path / "in").mkdir()
    for i in range(3):
        write_png(tmp_path / "in" / f"f{i}.png", image)
    scan(tmp_path / "in", output=tmp_path / "r.csv", metrics="l1,psnr,ssim")
    rel = duckdb.sql(f"select psnr, ssim, l1 from '{tmp_path / 'r.csv'}'")
    assert list(map(str, rel.types)) == ["DOUBLE", "DOUBLE", "DOUBLE"]
    assert rel.fetchall()[0] == (INF, 1.0, 0.0)
    assert pl.read_csv(tmp_path / "r.csv").schema["psnr"] == pl.Float64


def test_json_sidecars_are_strict_json(tmp_path):
    path = tmp_path / "s.json"
    write_json_atomic(path, {"tol": math.nan, "psnr_max": INF, "nested": [{"x": -INF}, 1.5], "n": np.float64(2.0)})
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text
    data = json.loads(text, parse_constant=lambda name: pytest.fail(f"non-standard JSON constant {name}"))
    assert data == {"tol": None, "psnr_max": None, "nested": [{"x": None}, 1.5], "n": 2.0}


def test_report_metadata_is_strict_json(tmp_path):
    import pyarrow.parquet as pq

    schema = pa.schema([pa.field("l1", pa.float64())])
    writer = ReportWriter(tmp_path / "r.parquet", "parquet", schema, {"thresholds": {"l1": math.nan, "psnr": INF}})
    writer.write(pa.table({"l1": [1.0]}))
    raw = pq.read_schema(writer.close()).metadata[b"framediff"].decode()
    assert json.loads(raw, parse_constant=lambda name: pytest.fail(name)) == {"thresholds": {"l1": None, "psnr": None}}
