"""Reports pinned before the scan layer was restructured, reproduced row for row."""

from __future__ import annotations

import math

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from golden_cases import CASES, golden_path, make_inputs, run_case


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    made = {}

    def get(kind):
        if kind not in made:
            made[kind] = make_inputs(kind, tmp_path_factory.mktemp(kind))
        return made[kind]

    return get


@pytest.mark.parametrize(
    ("name", "kind", "kwargs"),
    [
        pytest.param(*case, marks=pytest.mark.slow if case[0] in ("hostile-pairs", "demo-pairs") else ())
        for case in CASES
    ],
    ids=[case[0] for case in CASES],
)
def test_scan_reproduces_the_pinned_report(inputs, name, kind, kwargs):
    expected = pq.read_table(golden_path(name))
    got = run_case(inputs(kind), kwargs)
    assert got.schema == expected.schema
    assert got.num_rows == expected.num_rows
    for column in expected.column_names:
        got_values, pinned = got.column(column).to_pylist(), expected.column(column).to_pylist()
        if pa.types.is_floating(expected.schema.field(column).type):
            # Logarithms (PSNR, KL) may differ in the last bit between NumPy releases'
            # vectorised math: the same numbers to 1e-12, null and NaN where they were pinned.
            assert list(map(_kind, got_values)) == list(map(_kind, pinned)), column
            assert all(math.isclose(a, b, rel_tol=1e-12) for a, b in zip(got_values, pinned) if _kind(b) == "number"), (
                column
            )
        else:
            assert got_values == pinned, column


def _kind(value) -> str:
    if value is None:
        return "null"
    return "nan" if math.isnan(value) else "number"
