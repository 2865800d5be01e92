"""``--mode duplicates`` end to end: real planted files, real Dask, real FAISS.

Planted groups come back exactly (ids and keepers); the duplicate pairs equal what
brute-force ``--mode pairs`` reports at the same thresholds; an update equals a scan
from scratch; a SIGKILLed run resumes to the identical report; byte-identical copies
are found without decoding them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from scan_fixtures import run_cli

import framediff
import framediff.frames as frames_module
import framediff.thumbnails as thumbnails
from framediff.errors import FramediffError, ParameterError
from framediff.modes.duplicates import EXACT_NOTE
from framediff.planted import make_planted, photo, windows
from framediff.report import sidecar_path

FRAMEDIFF = [sys.executable, "-m", "framediff.cli"]
LOSSLESS = ("png", "exact-copy", "tiff", "bmp")


def _duplicate_pairs(table) -> set:
    """``(path_a, path_b)`` of the rows that say *duplicate*: ok and not changed."""
    d = table.to_pandas() if hasattr(table, "to_pandas") else table
    d = d[(d.status == "ok") & (d.changed == False)]  # noqa: E712 (a column, not a truth value)
    return {tuple(sorted(p)) for p in zip(d.path_a, d.path_b)}


def _groups(path) -> set:
    """Each group as (frozenset of member paths, its keeper)."""
    g = pq.read_table(path).to_pandas()
    return {(frozenset(m.path), m.path[m.keeper].item()) for _, m in g.groupby("group")}


def test_planted_groups_come_back_exactly_with_their_keepers(tmp_path):
    planted = make_planted(tmp_path / "img", [photo(n) for n in ("astronaut", "camera", "coffee")], edits=LOSSLESS)
    (tmp_path / "img" / "zz-broken.jpg").write_bytes(b"\xff\xd8 not really a JPEG")
    out = tmp_path / "dups.parquet"
    df = framediff.scan(tmp_path / "img", mode="duplicates", output=out, workers=2)

    groups = pq.read_table(sidecar_path(tmp_path / "dups.parquet", ".groups.parquet")).to_pandas()
    names = [os.path.basename(p) for p in planted.paths]
    for g, members in groups.groupby("group"):
        want = sorted(n for n, grp in zip(names, planted.group) if grp == g)
        assert sorted(members.path) == want, f"group {g}"
        # The documented rule: most pixels, then the largest file, then the earliest name.
        keeper = min(want, key=lambda n: (-os.path.getsize(tmp_path / "img" / n), n))
        assert members.path[members.keeper].tolist() == [keeper]
    assert groups.group.nunique() == 3 and set(groups.keep_rule) == {"resolution"}
    # The broken file is an error row naming it; every other row is a measured or exact pair.
    errors = df[df.status == "error"]
    assert errors.path_b.tolist() == ["zz-broken.jpg"] and errors.error.iloc[0]
    s = df.attrs["summary"]
    assert s["groups"] == 3 and s["kept"] == len(names) + 1 - 3 * len(LOSSLESS)
    assert df.attrs["kept"] == sorted(set(df.attrs["kept"]), key=df.attrs["kept"].index)
    assert not any(n in df.attrs["kept"] for n in groups.path[~groups.keeper])


def test_keep_rule_name_and_the_keep_list(tmp_path):
    make_planted(tmp_path / "img", [photo("camera")], edits=("png", "bmp"))
    keep = tmp_path / "keep.txt"
    framediff.scan(tmp_path / "img", mode="duplicates", output=tmp_path / "r.csv", keep_rule="name", keep_list=keep)
    groups = pacsv.read_csv(sidecar_path(tmp_path / "r.csv", ".groups.csv")).to_pandas()
    assert groups.path[groups.keeper].tolist() == ["g000-bmp.bmp"]  # earliest name
    assert keep.read_text().split() == ["g000-bmp.bmp"]


def test_kept_images_are_linked_under_the_output_safety_rules(tmp_path):
    make_planted(tmp_path / "img", [photo("camera"), photo("coffee")], edits=("png",))
    linked = tmp_path / "deduplicated"
    framediff.scan(tmp_path / "img", mode="duplicates", link_kept=linked, scheduler="synchronous")
    # The resolution rule keeps the larger file of each equal-sized pair: the PNG.
    assert sorted(p.name for p in linked.iterdir()) == ["g000-png.png", "g001-png.png"]
    assert all(p.is_symlink() and p.resolve().parent == (tmp_path / "img").resolve() for p in linked.iterdir())
    with pytest.raises(FramediffError, match="holds the input"):
        framediff.scan(tmp_path / "img", mode="duplicates", copy_kept=tmp_path / "img")


def test_exact_copies_are_found_without_decoding_them(tmp_path, monkeypatch):
    src = tmp_path / "img"
    make_planted(src, [photo("coffee"), photo("camera")], edits=())
    for k in range(3):
        shutil.copy(src / "g000-original.jpg", src / f"g000-copy{k}.jpg")
    calls = {"signature": 0, "pixels": 0}
    decode_small, read_with_retries = thumbnails._decode_small, frames_module._read_with_retries

    def count_signature(*a, **k):
        calls["signature"] += 1
        return decode_small(*a, **k)

    def count_pixels(*a, **k):
        calls["pixels"] += 1
        return read_with_retries(*a, **k)

    monkeypatch.setattr(thumbnails, "_decode_small", count_signature)
    monkeypatch.setattr(frames_module, "_read_with_retries", count_pixels)
    df = framediff.scan(src, mode="duplicates", output=tmp_path / "r.parquet", scheduler="synchronous")
    exact = df[df.note == EXACT_NOTE]
    # Each copy is paired with the first file holding the same bytes: enough to group them.
    assert sorted(zip(exact.path_a, exact.path_b)) == [
        ("g000-copy0.jpg", "g000-copy1.jpg"), ("g000-copy0.jpg", "g000-copy2.jpg"), ("g000-copy0.jpg", "g000-original.jpg")
    ]  # fmt: skip
    assert exact.status.eq("ok").all() and not exact.changed.any()
    assert calls["signature"] == 2, "one decode per distinct content"
    assert calls["pixels"] == 0, "the two distinct photos are no candidates; the copies need no pixels"
    assert df.attrs["summary"]["images_decoded_for_signatures"] == 2


def test_images_of_different_sizes_match_after_the_shape_policy(tmp_path):
    make_planted(tmp_path / "img", [photo("astronaut")], edits=("half-size",))
    kw = dict(mode="duplicates", thresholds={"kl": 0.2}, scheduler="synchronous")
    refused = framediff.scan(tmp_path / "img", resize="error", **kw)
    assert refused.status.tolist() == ["error"]  # pairs mode's own shape error, as a row
    matched = framediff.scan(tmp_path / "img", resize="smallest", **kw)
    assert matched.status.tolist() == ["ok"] and not matched.changed.iloc[0]


@pytest.mark.slow
def test_equals_brute_force_pairs_mode(tmp_path):
    _brute_force_equality(tmp_path, n_originals=12)


@pytest.mark.slow
def test_equals_brute_force_pairs_mode_on_hundreds_of_images(tmp_path):
    _brute_force_equality(tmp_path, n_originals=60)  # 300 images, 44,850 pairs measured


def _brute_force_equality(tmp_path, n_originals):
    edits = ("png", "jpeg-q30", "brighter-10pct", "half-size")
    make_planted(tmp_path / "img", windows(n_originals), edits=edits)
    kw = dict(resize="smallest", thresholds={"l0_fraction": 0.05, "kl": 0.3}, workers=2)
    brute = _duplicate_pairs(framediff.scan(tmp_path / "img", mode="pairs", **kw))
    found = _duplicate_pairs(framediff.scan(tmp_path / "img", mode="duplicates", **kw))
    assert len(brute) >= 2 * n_originals, "the planted edits must give pairs mode something to find"
    assert found <= brute, f"pairs mode does not report {sorted(found - brute)[:5]}"
    # Byte-identical copies are listed against the first copy only: the rest are implied.
    content = {p.name: p.read_bytes() for p in (tmp_path / "img").iterdir()}
    missed = {(a, b) for a, b in brute - found if content[a] != content[b]}
    assert 1 - len(missed) / len(brute) >= 0.99, sorted(missed)[:5]


def test_update_equals_a_scan_from_scratch(tmp_path):
    src = tmp_path / "img"
    make_planted(src, windows(6), edits=("png", "exact-copy", "brighter-10pct"))
    kw = dict(mode="duplicates", thresholds={"l0_fraction": 0.05, "kl": 0.3}, scheduler="synchronous")
    whole = framediff.scan(src, output=tmp_path / "whole.parquet", **kw)
    first = sorted(str(p) for p in src.iterdir())[::2]  # half the images, spread over the groups
    framediff.scan(first, output=tmp_path / "night1.parquet", index=tmp_path / "idx", **kw)
    night1 = pq.read_table(tmp_path / "night1.parquet").to_pandas()
    later = framediff.scan(src, output=tmp_path / "night2.parquet", index=tmp_path / "idx", update=True, **kw)
    # The update measured only pairs with a new image, yet ends where a full scan ends.
    assert later.attrs["summary"]["images_signed"] == len(list(src.iterdir())) - len(first)
    assert _duplicate_pairs(night1) | _duplicate_pairs(later) == _duplicate_pairs(whole)
    assert _groups(sidecar_path(tmp_path / "night2.parquet", ".groups.parquet")) == _groups(
        sidecar_path(tmp_path / "whole.parquet", ".groups.parquet")
    )
    # A second scan from scratch into the same index is refused before any work.
    with pytest.raises(FramediffError, match="already there"):
        framediff.scan(first, output=tmp_path / "again.parquet", index=tmp_path / "idx", **kw)


def test_a_gpu_run_without_faiss_gpu_searches_on_the_cpu_and_says_so_once(tmp_path, monkeypatch, capsys):
    import framediff.modes.duplicates as duplicates
    from framediff.dupindex import gpu_faiss_available

    if gpu_faiss_available():
        pytest.skip("this FAISS searches on a GPU: nothing to fall back from")
    make_planted(tmp_path / "img", [photo("camera"), photo("coffee")], edits=("png", "half-size"))
    kw = dict(mode="duplicates", resize="smallest", scheduler="synchronous")
    cpu = framediff.scan(tmp_path / "img", **kw)
    assert cpu.attrs["summary"]["search_device"] == "cpu" and "search_note" not in cpu.attrs["summary"]
    # A GPU run as the search sees it (the signature tasks still run on the CPU here).
    monkeypatch.setattr(duplicates, "_scan_device", lambda spec: "gpu")
    gpu = framediff.scan(tmp_path / "img", **kw)
    s = gpu.attrs["summary"]
    assert s["search_device"] == "cpu" and "faiss-gpu" in s["search_note"]
    assert _duplicate_pairs(gpu) == _duplicate_pairs(cpu) and len(_duplicate_pairs(cpu)) == 6
    code, out, _err = run_cli(capsys, ["scan", tmp_path / "img", *("--mode", "duplicates", "--resize", "smallest"),
                                       *("--scheduler", "synchronous", "-o", tmp_path / "r.parquet")])  # fmt: skip
    assert code == 0 and out.count("faiss-gpu") == 1


def test_options_of_duplicates_mode_are_checked():
    with pytest.raises(ParameterError, match="keep_rule"):
        framediff.scan(".", mode="duplicates", keep_rule="biggest")
    with pytest.raises(ParameterError, match="radius"):
        framediff.scan(".", mode="duplicates", radius=-1)
    with pytest.raises(ParameterError, match="update"):
        framediff.scan(".", mode="duplicates", update=True)
    with pytest.raises(ParameterError, match="does nothing in pairs mode"):
        framediff.scan(".", mode="pairs", keep_rule="name")


@pytest.mark.slow
def test_sigkill_then_resume_gives_the_identical_report(tmp_path):
    src = tmp_path / "img"
    make_planted(src, windows(10), edits=("png", "jpeg-q30", "brighter-10pct", "half-size"))
    common = ["--mode", "duplicates", "--chunk-size", "2", "--workers", "1", "--resize", "smallest", "-q"]
    want_out = tmp_path / "want.parquet"
    subprocess.run([*FRAMEDIFF, "scan", str(src), "-o", str(want_out), *common], check=True, capture_output=True)
    out = tmp_path / "got.parquet"
    work = out.with_name(f".{out.name}.framediff-run")
    args = [*FRAMEDIFF, "scan", str(src), "-o", str(out), *common]
    proc = subprocess.Popen(args, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while len(list(work.glob("part-*.parquet"))) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    assert not out.exists(), "a killed run leaves no report"
    assert 3 <= len(list(work.glob("part-*.parquet")))
    done = subprocess.run([*args, "--resume"], capture_output=True, text=True)
    assert done.returncode in (0, 1) and "Traceback" not in done.stderr, done.stderr
    assert pq.read_table(out).equals(pq.read_table(want_out))
    assert _groups(sidecar_path(tmp_path / "got.parquet", ".groups.parquet")) == _groups(
        sidecar_path(tmp_path / "want.parquet", ".groups.parquet")
    )
    assert not work.exists()
