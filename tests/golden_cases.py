"""The golden scans: fixed inputs and options whose reports are pinned in ``tests/golden/``.

The pinned tables were written by the code before the scan layer was restructured; a
restructuring must reproduce them row for row, every column. A deliberate change of
results regenerates them with ``python tests/golden_cases.py`` (and says why in its
commit).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

GOLDEN = Path(__file__).parent / "golden"

#: (case name, input set, scan keyword arguments). ``demo``: the demo's synthetic
#: time-lapse (60 frames, 120x160); ``hostile``: the hostile corpus.
CASES = [
    ("demo-consecutive", "demo", {}),
    ("demo-consecutive-l1", "demo", {"metrics": "l1,l2,psnr", "thresholds": {"l1": 4.0}}),
    ("demo-reference", "demo", {"mode": "reference", "reference": 3}),
    ("demo-pairs", "demo", {"mode": "pairs", "chunk_size": 16}),
    ("demo-keyframes", "demo", {"mode": "keyframes", "thresholds": {"l0_fraction": 0.02}}),
    ("demo-background", "demo", {"mode": "background"}),
    ("hostile-consecutive", "hostile", {}),
    ("hostile-reference", "hostile", {"mode": "reference"}),
    ("hostile-pairs", "hostile", {"mode": "pairs", "chunk_size": 32}),
    ("hostile-keyframes", "hostile", {"mode": "keyframes", "thresholds": {"l0_fraction": 0.02}}),
    ("hostile-background", "hostile", {"mode": "background"}),
]


def make_inputs(kind: str, directory: Path) -> Path:
    """Write the input set ``kind`` into ``directory``; return the folder to scan."""
    if kind == "demo":
        from framediff.synthetic import make_timelapse

        make_timelapse(directory, n_frames=60, size=(120, 160))
        return directory
    if kind == "hostile":
        sys.path.insert(0, str(Path(__file__).parent))
        from hostile_corpus import make_corpus

        make_corpus(directory)
        return directory
    raise ValueError(kind)


def run_case(root: Path, kwargs: dict) -> pa.Table:
    """The report of one case, as a table (the summary dropped: it holds timings)."""
    from framediff import scan

    table = scan(root, as_arrow=True, **kwargs).replace_schema_metadata(None)
    if "error" in table.column_names:
        # A missing file's row shows the path tried: make it independent of where the inputs lie.
        at = table.column_names.index("error")
        errors = [None if e is None else e.replace(str(root), "<root>") for e in table.column("error").to_pylist()]
        table = table.set_column(at, table.field(at), pa.array(errors, type=table.field(at).type))
    return table


def golden_path(name: str) -> Path:
    return GOLDEN / f"{name}.parquet"


def main() -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        roots = {}
        for name, kind, kwargs in CASES:
            if kind not in roots:
                roots[kind] = make_inputs(kind, Path(tmp) / kind)
            table = run_case(roots[kind], kwargs)
            pq.write_table(table, golden_path(name), compression="zstd")
            print(f"{name}: {table.num_rows} rows")


if __name__ == "__main__":
    main()
