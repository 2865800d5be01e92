"""The one rule that needs rows from two tasks: a frame unlike both its neighbours.

A frame extremely different from the frame before it *and* from the frame after it (no
shared histogram or structure, while its neighbours may still be alike) is most likely
damaged: both comparisons that involve it are labelled ``corrupt``. Consecutive rows
arrive in chunk order, so holding back one chunk is enough to see both sides.
"""

from __future__ import annotations

import pyarrow as pa

from .rows import EXTREME

__all__ = ["NeighbourRule"]


class NeighbourRule:
    """Streams chunk tables through, relabelling corrupt frames; drops working columns.

    Parameters
    ----------
    emit : callable
        Receives each finished table, in order.
    active : bool
        Apply the rule (consecutive mode with change kinds); otherwise tables only
        lose their working columns.
    """

    def __init__(self, emit, *, active: bool):
        self.emit = emit
        self.active = active
        self._pending = None

    def feed(self, table: pa.Table) -> None:
        if not self.active:
            self.emit(_drop(table))
            return
        if self._pending is None:
            self._pending = table
            return
        self._pending, table = _apply(self._pending, table)
        self.emit(_drop(self._pending))
        self._pending = table

    def finish(self) -> None:
        if self._pending is not None:
            self._pending, _ = _apply(self._pending, None)
            self.emit(_drop(self._pending))
            self._pending = None


def _drop(table: pa.Table) -> pa.Table:
    return table.drop_columns([EXTREME]) if EXTREME in table.column_names else table


def _apply(first: pa.Table, second):
    """Relabel within ``first`` and across into ``second``; returns both tables."""
    tables = [first] if second is None else [first, second]
    cols = [
        {name: t.column(name).to_pylist() for name in ("index_a", "index_b", "change_kind", EXTREME)} for t in tables
    ]
    rows = [(ti, k) for ti, c in enumerate(cols) for k in range(len(c["index_b"]))]
    changed = set()
    for (ti, k), (tj, m) in zip(rows, rows[1:]):
        a, b = cols[ti], cols[tj]
        if a[EXTREME][k] and b[EXTREME][m] and b["index_a"][m] == a["index_b"][k]:
            for t, r in ((ti, k), (tj, m)):
                cols[t]["change_kind"][r] = "corrupt"
                changed.add(t)
    out = []
    for ti, t in enumerate(tables):
        if ti in changed:
            pos = t.schema.get_field_index("change_kind")
            t = t.set_column(pos, t.schema.field(pos), pa.array(cols[ti]["change_kind"], pa.string()))
        out.append(t)
    return out[0], (out[1] if second is not None else None)
