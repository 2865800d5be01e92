"""Reports pinned before the scan layer was restructured, reproduced row for row."""

from __future__ import annotations

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
        assert got.column(column).to_pylist() == expected.column(column).to_pylist(), column
