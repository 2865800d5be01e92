"""The one row schema every task produces and every writer writes."""

from __future__ import annotations

import pyarrow as pa

from .decide import FEATURE_PREFIX, feature_fields
from .metrics import metric_columns, option_columns

__all__ = ["RowBuffer", "report_schema", "row_schema"]


def row_schema(opts, mode, *, timed: bool = False, video: bool = False) -> pa.Schema:
    """Arrow schema of a report: identifiers, shape, metric columns, extras, outcome.

    Metric and option columns come from :mod:`framediff.metrics`, the one place they
    are named; ``mode`` (a :class:`~framediff.modes.Mode`) adds its own columns.
    """
    fields = [
        pa.field("pair", pa.int64(), nullable=False),
        pa.field("index_a", pa.int64()),
        pa.field("index_b", pa.int64()),
        pa.field("path_a", pa.string()),
        pa.field("path_b", pa.string()),
        pa.field("height", pa.int32()),
        pa.field("width", pa.int32()),
    ]
    if video:  # frame b's position in its video, its timestamp, and its time in seconds
        fields[5:5] = [pa.field("frame", pa.int64()), pa.field("pts", pa.int64()), pa.field("time_b", pa.float64())]
    elif timed:  # the inputs were ordered by capture time: keep it, per frame b
        fields.insert(5, pa.field("time_b", pa.timestamp("ms", tz="UTC")))
    if mode.measures_pairs:  # the background model measures frames, not pairs
        fields += [pa.field(name, typ) for name, typ in metric_columns(opts)]
    fields += [pa.field(name, typ) for name, typ in option_columns(opts)]
    fields += [pa.field(name, typ) for name, typ in mode.value_columns]
    labels = opts.change_kind and mode.labels_changes
    if labels:
        fields.append(pa.field("change_kind", pa.string()))
    fields += [
        pa.field("changed", pa.bool_()),
        pa.field("status", pa.string(), nullable=False),
        pa.field("error_kind", pa.string()),
        pa.field("error", pa.string()),
        pa.field("note", pa.string()),
    ]
    fields += [pa.field(name, typ) for name, typ in mode.outcome_columns]
    if mode.decides_in_sink:
        # Working columns: what the decision stage reads; dropped before writing.
        fields += feature_fields()
    return pa.schema(fields)


def report_schema(schema: pa.Schema) -> pa.Schema:
    """The schema as written: without working columns."""
    return pa.schema([f for f in schema if not f.name.startswith(FEATURE_PREFIX)], metadata=schema.metadata)


class RowBuffer:
    """Rows of one task, appended in comparison order, turned into one Arrow table."""

    def __init__(self, schema: pa.Schema):
        self.schema = schema
        self.columns = {f.name: [] for f in schema}

    def add(self, **row) -> None:
        """Append one row; columns not given are null."""
        for name, column in self.columns.items():
            column.append(row.get(name))

    def __len__(self) -> int:
        return len(self.columns["pair"])

    def table(self) -> pa.Table:
        """The rows as a table with exactly :attr:`schema`, ordered by ``pair``."""
        table = pa.table({n: pa.array(v, type=self.schema.field(n).type) for n, v in self.columns.items()})
        table = table.cast(self.schema)
        return table.sort_by("pair") if len(self) else table
