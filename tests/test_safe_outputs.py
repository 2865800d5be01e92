"""Hostile file names reach every output intact and harmless, and a scan writes only
into its output directory and never unpickles anything from its input tree.

Names with spaces, quotes, newlines, bytes that are not UTF-8, leading ``= + - @`` (CSV
formula injection) and HTML go through ``framediff scan`` (in-process) into Parquet,
CSV, the events sidecar, the JSON summary and the HTML report.

Representation of non-UTF-8 names: report names are valid Unicode; the bytes of a file
name that are not UTF-8 appear as ``\\xNN`` escapes (``frame_\\xff_01.jpg``), see
:func:`framediff.discover.report_name`. The file itself is read through its real path.
"""

from __future__ import annotations

import csv
import json
import os
import pickle
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from PIL import Image

from framediff.discover import discover

#: Cells a spreadsheet would run as a formula start with one of these.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
#: Text columns of a scan report (the rest are numbers or booleans).
TEXT_COLUMNS = ("path_a", "path_b", "change_kind", "status", "error_kind", "error", "note")

#: File names as bytes (what the file system holds); sorted naturally by the scan.
NAMES = [
    b"frame 01 with spaces.jpg",
    b'it\'s a "quoted" frame.jpg',
    b"new\nline.jpg",
    b"carriage\rreturn.jpg",
    b"frame_\xff_01.jpg",  # not UTF-8
    b"=1+2.jpg",
    b"+frame.jpg",
    b"-frame.jpg",
    b"@SUM(A1).jpg",
    b'=HYPERLINK("http:x","y").jpg',
    b"\tframe.jpg",
    b"<img src=x onerror=alert(1)>.jpg",
    "caf\u00e9 \u2615.png".encode(),
    b"back\\slash.png",
    b"plain_001.jpg",
    b"plain_002.jpg",
]
#: The report name of each (non-UTF-8 bytes escaped).
REPORT_NAMES = {n: n.decode("utf-8", "backslashreplace") for n in NAMES}
#: Frames whose picture differs from the frame before: each starts an event.
TRIGGERS = {n for n in NAMES if n.startswith((b"=", b"+", b"-", b"@", b"\t", b"<", b"new\n"))}
#: Pickles that would create a marker file if loaded; the last one is named like an image.
POISON = [b"frame.jpg.pkl", b"manifest.pkl", b".framediff-cache.pkl", b"evil.jpg"]


def _texture(level: int) -> np.ndarray:
    """Blocks of random grey levels: a clearly different picture for each level."""
    cells = np.random.default_rng(500 + level).integers(0, 256, (8, 12), dtype=np.uint8)
    return np.kron(cells, np.ones((8, 8), np.uint8))


def _poison_pickle(marker: Path) -> bytes:
    """A pickle that creates ``marker`` when unpickled: builtins.open(marker, 'w')."""
    return b"cbuiltins\nopen\n(V" + os.fsencode(marker) + b"\nVw\ntR."


def _tree(path: Path) -> dict:
    """Every entry under ``path``: relative bytes path -> (size, mtime_ns) or 'dir'."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(os.fsencode(path)):
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            st = os.lstat(full)
            key = os.path.relpath(full, os.fsencode(path))
            out[key] = "dir" if os.path.isdir(full) else (st.st_size, st.st_mtime_ns)
    return out


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One tree of hostile names, scanned to Parquet (+ HTML) and to CSV from inside tmp."""
    tmp = tmp_path_factory.mktemp("safe")
    source, out, cwd = tmp / "in", tmp / "out", tmp / "cwd"
    for d in (source, out, cwd):
        d.mkdir()
    marker = tmp / "PWNED"
    root = os.fsencode(source)
    for name in NAMES + POISON:
        with open(os.path.join(root, name), "wb"):
            pass
    order = [os.fsencode(p.name) for p in discover(source).paths]  # the scan's order
    assert sorted(order) == sorted(NAMES + [b"evil.jpg"])
    level = 0
    for name in order:
        target = os.path.join(root, name)
        if name in POISON:
            with open(target, "wb") as fh:
                fh.write(_poison_pickle(marker))
            continue
        if name in TRIGGERS and name != order[0]:
            level += 1
        Image.fromarray(_texture(level)).save(target, format="PNG" if name.endswith(b".png") else "JPEG", quality=95)
    for name in POISON[:-1]:
        with open(os.path.join(root, name), "wb") as fh:
            fh.write(_poison_pickle(marker))
    before = _tree(tmp)

    unpickled = []  # what anything in the process unpickled: data, or the file's name
    real_loads, real_load = pickle.loads, pickle.load

    def loads(data, *a, **k):
        unpickled.append(bytes(data))
        return real_loads(data, *a, **k)

    def load(fh, *a, **k):
        unpickled.append(os.fsencode(str(getattr(fh, "name", ""))))
        return real_load(fh, *a, **k)

    from framediff.cli import main

    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(cwd)  # anything written relative to the working directory shows up here
        mp.setattr(pickle, "loads", loads)
        mp.setattr(pickle, "load", load)
        codes = [
            main(["scan", str(source), "-o", str(out / "report.parquet"), "--html", str(out / "report.html"), "-q"]),
            main(["scan", str(source), "-o", str(out / "report.csv"), "-q"]),
        ]
    return SimpleNamespace(
        tmp=tmp,
        source=source,
        out=out,
        marker=marker,
        order=[n.decode("utf-8", "backslashreplace") for n in order],
        codes=codes,
        before=before,
        after=_tree(tmp),
        unpickled=unpickled,
    )


def expected_csv_cell(text: str) -> str:
    return "'" + text if text.startswith(FORMULA_START) else text


def expected_path_a(order: list) -> list:
    """The frame each row compares with: the one before, or before evil.jpg (unreadable)."""
    out = []
    for i in range(1, len(order)):
        j = i - 1 if order[i - 1] != "evil.jpg" else i - 2
        out.append(order[j])
    return out


# --------------------------------------------------------------------- the reports


def test_the_scan_finishes_with_one_error_row(run):
    # The only failure is evil.jpg, a pickle named like an image.
    assert run.codes == [1, 1]
    summary = json.loads((run.out / "report.csv.summary.json").read_text(encoding="utf-8"))
    assert summary["errors_by_kind"] == {"not-an-image": 1}
    assert summary["skipped_non_image"] == 3  # the .pkl files


def test_parquet_keeps_the_exact_relative_names(run):
    table = pq.read_table(run.out / "report.parquet").to_pylist()
    names = [r["path_b"] for r in table]
    assert names == run.order[1:]
    assert [r["path_a"] for r in table] == expected_path_a(run.order)
    assert all(r["status"] == "ok" for r in table if r["path_b"] != "evil.jpg")


def test_a_non_utf8_name_is_scanned_and_named_recognisably(run):
    table = pq.read_table(run.out / "report.parquet").to_pylist()
    (row,) = [r for r in table if r["path_b"] == "frame_\\xff_01.jpg"]
    assert row["status"] == "ok" and row["height"] == 64


def test_csv_round_trips_every_name_and_neutralises_formulas(run):
    frame = pd.read_csv(run.out / "report.csv", dtype=str, keep_default_na=False)
    assert frame["path_b"].tolist() == [expected_csv_cell(n) for n in run.order[1:]]
    assert frame["path_a"].tolist() == [expected_csv_cell(n) for n in expected_path_a(run.order)]
    assert any(cell.startswith("'=") for cell in frame["path_b"])  # the neutralising quote is there
    # Cell by cell, with the standard library's reader: no text cell starts a formula.
    with open(run.out / "report.csv", newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            for column in TEXT_COLUMNS:
                assert not row[column].startswith(FORMULA_START), (column, row[column])


def test_events_cover_the_trigger_frames_by_name(run):
    rows = {r["path_b"]: r for r in pq.read_table(run.out / "report.parquet").to_pylist()}
    events = pq.read_table(run.out / "report.parquet.events.parquet").to_pylist()
    for name in {REPORT_NAMES[n] for n in TRIGGERS} - {run.order[0]}:
        index = run.order.index(name)
        assert rows[name]["changed"], name
        (event,) = [e for e in events if e["first_index"] <= index <= e["last_index"]]
        assert run.order[event["first_index"]] == event["first_path"]
        assert run.order[event["last_index"]] == event["last_path"]
    named = {e["first_path"] for e in events} | {e["last_path"] for e in events}
    assert any(n.startswith(("=", "+", "-", "@")) for n in named)


def test_the_events_csv_neutralises_formulas_too(run):
    with open(run.out / "report.csv.events.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert rows
    for row in rows:
        for column in ("first_path", "last_path", "peak_metric"):
            assert not row[column].startswith(FORMULA_START), (column, row[column])


def test_the_json_summary_is_valid_utf8_json(run):
    raw = (run.out / "report.csv.summary.json").read_bytes()
    summary = json.loads(raw.decode("utf-8"))
    assert Path(summary["report"]).parent == run.out
    assert Path(summary["events_report"]).parent == run.out


def test_the_html_report_escapes_names(run):
    text = (run.out / "report.html").read_text(encoding="utf-8")
    assert "<img src=x onerror" not in text
    assert "&lt;img src=x onerror=alert(1)&gt;.jpg" in text


# ---------------------------------------------------------------- paths and writes


def test_paths_in_reports_are_relative_to_the_input_root(run):
    table = pq.read_table(run.out / "report.parquet")
    tmp = str(run.tmp)
    for column in ("path_a", "path_b"):
        for value in table.column(column).to_pylist():
            if value is not None:
                assert not os.path.isabs(value) and tmp not in value and not value.startswith("..")
    metadata = json.loads(table.schema.metadata[b"framediff"])
    assert Path(metadata["root"]) == run.source


def test_nothing_is_written_outside_the_output_directory(run):
    out = os.fsencode(run.out.name)
    outside_before = {k: v for k, v in run.before.items() if not k.startswith(out)}
    outside_after = {k: v for k, v in run.after.items() if not k.startswith(out)}
    assert outside_after == outside_before  # input tree, working directory, tmp: untouched
    written = sorted(os.fsdecode(k) for k in run.after if k.startswith(out + b"/"))
    assert written == [
        "out/report.csv",
        "out/report.csv.events.csv",
        "out/report.csv.summary.json",
        "out/report.html",
        "out/report.parquet",
        "out/report.parquet.events.parquet",
        "out/report.parquet.summary.json",
    ]


def test_nothing_from_the_input_tree_is_unpickled(run):
    assert not run.marker.exists()
    poison, source = os.fsencode(run.marker), os.fsencode(run.source)
    assert not [data for data in run.unpickled if poison in data or data.startswith(source)]
    table = pq.read_table(run.out / "report.parquet").to_pylist()
    (row,) = [r for r in table if r["path_b"] == "evil.jpg"]
    assert row["error_kind"] == "not-an-image"
    assert not any(r["path_b"].endswith(".pkl") for r in table)
