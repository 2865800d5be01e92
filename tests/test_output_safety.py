"""framediff deletes only what it wrote, and refuses odd options in one line.

Each test reproduces a case that destroyed a user's files or ended in a traceback, with
real files in a temporary folder that are checked to be intact afterwards.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

import framediff
from framediff.atomic import clean_stale_temporaries, temporary_name
from framediff.cli import main
from framediff.lock import OutputLock, lock_path
from framediff.synthetic import make_timelapse

ROOT = Path(__file__).resolve().parent.parent


def _tree(folder: Path) -> dict:
    """Every file under ``folder`` with the hash of its bytes (links by their target)."""
    out = {}
    for path in sorted(folder.rglob("*")):
        if path.is_symlink():
            out[str(path.relative_to(folder))] = "-> " + os.readlink(path)
        elif path.is_file():
            out[str(path.relative_to(folder))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


@pytest.fixture
def frames(tmp_path):
    """A 40-frame time-lapse whose keyframes run keeps several frames."""
    return make_timelapse(tmp_path / "in", n_frames=40, size=(48, 64), seed=4).directory


def _cli(capsys, *argv):
    code = main([str(a) for a in argv])
    return code, capsys.readouterr().err


# -- A.1 kept frames never replace their sources -------------------------------------------


@pytest.mark.parametrize("flag", ["--copy-kept", "--link-kept"])
def test_kept_frames_into_the_input_folder_are_refused_and_nothing_changes(capsys, frames, tmp_path, flag):
    before = _tree(frames)
    args = ["scan", frames, "--mode", "keyframes", "--threshold", "l0_fraction=0.02", "-o", tmp_path / "k.parquet"]
    code, err = _cli(capsys, *args, flag, frames)
    assert code == 2 and "holds the input" in err and err.count("\n") == 1
    assert _tree(frames) == before
    assert not (tmp_path / "k.parquet").exists()  # refused before any work


def test_the_readme_keyframes_example_runs_twice_into_the_same_folder(capsys, frames, tmp_path):
    thin, keep = tmp_path / "thin", tmp_path / "keep.txt"
    args = ["scan", frames, "--mode", "keyframes", "--threshold", "l0_fraction=0.02", "--keep-list", keep,
            "--link-kept", thin, "-o", tmp_path / "k.parquet", "-q"]  # fmt: skip
    assert _cli(capsys, *args)[0] == 1  # one corrupt frame in the time-lapse
    first = _tree(thin)
    assert first and all(v.startswith("-> ") for v in first.values())
    code, err = _cli(capsys, *args, "--overwrite")
    assert code == 1, err
    assert _tree(thin) == first


def test_a_user_file_at_a_kept_name_is_not_replaced(capsys, frames, tmp_path):
    copies = tmp_path / "copies"
    copies.mkdir()
    mine = copies / "frame_00001.jpg"
    mine.write_bytes(b"my own picture")
    args = ["scan", frames, "--mode", "keyframes", "--threshold", "l0_fraction=0.02", "--copy-kept", copies,
            "-o", tmp_path / "k.parquet"]  # fmt: skip
    code, err = _cli(capsys, *args)
    assert code == 2 and "not the kept frame" in err
    assert mine.read_bytes() == b"my own picture"


# -- A.2 / B.13 a folder given as -o ------------------------------------------------------------


def test_partitioned_overwrite_never_deletes_a_folder_framediff_did_not_write(capsys, frames, tmp_path):
    before = _tree(frames)
    code, err = _cli(capsys, "scan", frames, "-o", frames, "--partitioned", "--overwrite")
    assert code == 2 and "not a partitioned report framediff wrote" in err
    assert _tree(frames) == before
    out = tmp_path / "parts"
    assert _cli(capsys, "scan", frames, "-o", out, "--partitioned", "-q")[0] == 1
    assert _cli(capsys, "scan", frames, "-o", out, "--partitioned", "--overwrite", "-q")[0] == 1  # its own: replaced
    link = tmp_path / "link"
    link.symlink_to(out)
    code, err = _cli(capsys, "scan", frames, "-o", link, "--partitioned", "--overwrite")
    assert code == 2 and "symbolic link" in err


def test_an_existing_folder_as_a_report_file_is_refused_before_work(capsys, frames, tmp_path):
    folder = tmp_path / "d.parquet"
    folder.mkdir()
    (folder / "keep.txt").write_text("mine")
    started = time.perf_counter()
    code, err = _cli(capsys, "scan", frames, "-o", folder, "--overwrite")
    assert code == 2 and "not a report file" in err
    assert (folder / "keep.txt").read_text() == "mine"
    assert time.perf_counter() - started < 5


# -- A.3 the demo removes only its own frames --------------------------------------------------


def test_the_demo_does_not_remove_a_folder_it_did_not_write(capsys, tmp_path):
    mine = tmp_path / "demo" / "frames"
    mine.mkdir(parents=True)
    (mine / "holiday.jpg").write_bytes(b"precious")
    code, err = _cli(capsys, "demo", tmp_path / "demo", "--frames", "40")
    assert code == 2 and "not written by framediff demo" in err
    assert (mine / "holiday.jpg").read_bytes() == b"precious"
    code, err = _cli(capsys, "demo", tmp_path / "small", "--frames", "5")
    assert code == 2 and "--frames must be at least 40" in err


# -- A.4 outputs that would overwrite each other or an input ---------------------------------


def test_sidecars_of_two_formats_never_collide(capsys, frames, tmp_path):
    assert _cli(capsys, "scan", frames, "-o", tmp_path / "r.parquet", "-q")[0] == 1
    assert _cli(capsys, "scan", frames, "-o", tmp_path / "r.csv", "-q", "--tol", "3")[0] == 1
    a = json.loads((tmp_path / "r.parquet.summary.json").read_text())
    b = json.loads((tmp_path / "r.csv.summary.json").read_text())
    assert a["options"]["tol"] == 10.0 and b["options"]["tol"] == 3.0


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--html", "{out}"], "is also the output"),
        (["--summary", "{out}"], "is also the output"),
        (["--html", "{input}"], "is one of the inputs"),
        (["--keep-list", "{input}", "--mode", "keyframes"], "is one of the inputs"),
    ],
)
def test_an_output_equal_to_an_input_or_another_output_is_refused(capsys, frames, tmp_path, extra, message):
    out = tmp_path / "r.parquet"
    first = sorted(frames.glob("*.jpg"))[0]
    before = _tree(frames)
    extra = [e.format(out=out, input=first) for e in extra]
    code, err = _cli(capsys, "scan", frames, "-o", out, *extra)
    assert code == 2 and message in err, err
    assert _tree(frames) == before and not out.exists()


def test_report_refuses_to_write_the_page_over_its_report(capsys, frames, tmp_path):
    out = tmp_path / "r.parquet"
    _cli(capsys, "scan", frames, "-o", out, "-q")
    before = out.read_bytes()
    code, err = _cli(capsys, "report", out, "-o", out)
    assert code == 2 and "would replace the report" in err
    assert out.read_bytes() == before


# -- A.5 stale temporaries: only framediff's own, of dead processes on this host ------------------


def test_only_framediff_temporaries_of_dead_processes_are_removed(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    users = [tmp_path / ".thesis.tmp-20240101", tmp_path / ".backup.tmp-99999"]
    users[0].write_text("draft")
    users[1].mkdir()
    ours_dead = tmp_path / temporary_name(tmp_path / "r.parquet").name.replace(f"-{os.getpid()}", f"-{dead.pid}")
    ours_dead.write_text("half a report")
    ours_alive = temporary_name(tmp_path / "s.parquet")
    ours_alive.write_text("being written")
    other_host = tmp_path / f".t.parquet.framediff-tmp-elsewhere-{dead.pid}"
    other_host.write_text("written on another node")
    assert clean_stale_temporaries(tmp_path) == 1
    assert not ours_dead.exists()
    assert all(p.exists() for p in (*users, ours_alive, other_host))


# -- A.6 two runs on one report ------------------------------------------------------------------


def test_a_second_run_on_the_same_report_is_refused_with_the_holder(capsys, frames, tmp_path):
    out = tmp_path / "r.parquet"
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        lock = lock_path(out)
        lock.write_text(json.dumps({"host": socket.gethostname(), "pid": holder.pid}))
        code, err = _cli(capsys, "scan", frames, "-o", out, "--overwrite")
        assert code == 2 and f"another framediff run is writing {out} (pid {holder.pid} on host" in err
        code, err = _cli(capsys, "scan", frames, "-o", out, "--resume")
        assert code == 2 and "another framediff run" in err
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # The holder died without removing its lock: the next run takes it over.
    assert _cli(capsys, "scan", frames, "-o", out, "-q")[0] == 1
    assert not lock.exists() and pq.read_table(out).num_rows == 39


def test_the_lock_is_exclusive_within_one_process_too(tmp_path):
    with OutputLock(tmp_path / "r.parquet"):
        with pytest.raises(framediff.FramediffError, match="another framediff run"):
            with OutputLock(tmp_path / "r.parquet"):
                pass
    assert not lock_path(tmp_path / "r.parquet").exists()


# -- A.7 a run that failed at its start does not block the next one ---------------------------------


def test_a_failed_start_leaves_nothing_that_blocks_the_corrected_command(capsys, frames, tmp_path):
    out = tmp_path / "r.parquet"
    code, err = _cli(capsys, "scan", frames, "-o", out, "--strict")  # stops at the corrupt frame
    assert code == 2
    code, err = _cli(capsys, "scan", frames, "-o", out, "-q")
    assert code == 1, err
    assert pq.read_table(out).num_rows == 39


# -- B.13 / D.21-D.24 one line for every mistake ----------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--scheduler", "tcp://h:abc"], "--scheduler 'tcp://h:abc': expected PROTOCOL://HOST:PORT"),
        (["--scheduler", "tcp://localhost"], "expected PROTOCOL://HOST:PORT"),
        (["--blur", "nan"], "--blur must be a finite number"),
        (["--blur", "1e9"], "--blur must be in 0..100"),
        (["--flow-corners", "-1"], "--flow-corners must be in 1..100000"),
        (["--tol", "inf"], "--tol must be a finite number"),
        (["--upsample", "100000"], "--upsample must be in 1..100"),
        (["--median", "100001"], "--median must be 0 (off) or a size in 2..99"),
        (["--resize", "100000x100000"], "--resize 100000x100000 has more pixels than --max-pixels"),
        (["--mode", "background", "--k", "nan"], "--k must be a finite number"),
        (["--threshold", "l1=nan"], "--threshold: l1: the limit must be a finite number"),
        (["--data-range", "nan"], "--data-range must be a finite number"),
        (["--mode", "bogus"], "argument --mode: invalid choice: 'bogus'"),
        (["--keep-list", "k.txt"], "--keep-list does nothing in consecutive mode"),
        (["--mode", "reference", "--pair-list", "p.csv"], "--pair-list does nothing in reference mode"),
        (["--format", "csv", "-o", "x.parquet"], "--format ='csv' contradicts the output's .parquet extension"),
        (["-o", "x.xlsx"], "end the name in .parquet or .csv"),
        (["-o", "x"], "end the name in .parquet or .csv"),
    ],
)
def test_mistakes_are_one_line_with_exit_2(capsys, frames, tmp_path, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    try:
        code, err = _cli(capsys, "scan", frames, "-o", tmp_path / "r.parquet", *argv)
    except SystemExit as exc:  # argparse's own usage errors
        code, err = exc.code, capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("framediff: error: ") and message in err, err


def test_a_scheduler_file_without_an_address_is_one_line(capsys, frames, tmp_path):
    (tmp_path / "s.json").write_text("{}")
    code, err = _cli(capsys, "scan", frames, "-o", tmp_path / "r.parquet", "--scheduler-file", tmp_path / "s.json")
    assert code == 2 and "holds no scheduler address" in err and err.count("\n") == 1


def test_a_batch_directive_that_starts_with_a_dash_is_a_value(capsys):
    pytest.importorskip("dask_jobqueue")
    code = main(["scan", "frames", "--cluster", "slurm", "--cores", "4", "--memory", "8GB",
                 "--job-extra-directive", "--constraint=skylake", "--print-job-script"])  # fmt: skip
    assert code == 0 and "#SBATCH --constraint=skylake" in capsys.readouterr().out


@pytest.mark.slow
def test_compare_gives_up_a_hung_read(capsys, frames, tmp_path):
    fifo = tmp_path / "fifo.jpg"
    os.mkfifo(fifo)
    started = time.perf_counter()
    code, err = _cli(capsys, "compare", sorted(frames.glob("*.jpg"))[0], fifo, "--file-timeout", "0.5")
    assert code == 2 and "[timeout]" in err and time.perf_counter() - started < 10


# -- D.26 the API names the parameter ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda d: framediff.scan(d, tol="abc"), "tol must be a finite number"),
        (lambda d: framediff.scan(d, metrics=5), "metrics must be names"),
        (lambda d: framediff.scan(d, workers=0), "workers must be >= 1"),
        (lambda d: framediff.scan(d, chunk_size=2.5), "chunk_size must be a whole number"),
        (lambda d: framediff.compare(b"a.jpg", np.zeros((4, 4))), "expected a path or an image array, got bytes"),
    ],
)
def test_api_mistakes_name_the_parameter(frames, call, message):
    with pytest.raises(framediff.FramediffError, match=message):
        call(frames)


def test_thresholds_as_one_string_are_parsed_not_iterated(frames):
    df = framediff.scan(frames, thresholds="l1=5", scheduler="synchronous")
    assert df.attrs["summary"]["thresholds"] == {"l1": 5.0}


# -- C.17, C.18, D.25 and the write errors ----------------------------------------------------------


def test_changed_is_a_real_boolean_column_and_the_readme_filter_works(frames):
    df = framediff.scan(frames, scheduler="synchronous")
    assert df["changed"].dtype == bool and (df["status"] == "error").any()
    assert not df.loc[df.status == "error", "changed"].any()
    assert len(df[df.changed]) == int(df["changed"].sum()) > 0


def test_background_mode_applies_blur_median_and_normalize_and_refuses_zscore(frames):
    plain = framediff.scan(frames, mode="background", bg_method="ema", scheduler="synchronous")
    blurred = framediff.scan(frames, mode="background", bg_method="ema", blur=2.0, median=3, scheduler="synchronous")
    a, b = plain.foreground_fraction.to_numpy(float), blurred.foreground_fraction.to_numpy(float)
    assert not np.array_equal(np.nan_to_num(a, nan=-1), np.nan_to_num(b, nan=-1))
    assert blurred.attrs["summary"]["options"]["blur"] == 2.0
    with pytest.raises(framediff.FramediffError, match="normalize ='zscore' does nothing in background mode"):
        framediff.scan(frames, mode="background", normalize="zscore")


def test_a_missing_file_of_a_listing_shows_the_path_tried(tmp_path, frames):
    listing = tmp_path / "lists" / "frames.txt"
    listing.parent.mkdir()
    listing.write_text(f"{sorted(frames.glob('*.jpg'))[0]}\nnot-here.jpg\n")
    df = framediff.scan(listing, scheduler="synchronous")
    row = df[df.error_kind == "missing"].iloc[0]
    assert row.error == f"no such file: {tmp_path / 'lists' / 'not-here.jpg'}"


def test_keep_list_names_with_line_breaks_need_the_nul_separated_list(tmp_path, frames):
    odd = tmp_path / "odd"
    odd.mkdir()
    for i, path in enumerate(sorted(frames.glob("*.jpg"))[:6]):
        (odd / (f"line\nbreak_{i}.jpg" if i == 3 else path.name)).write_bytes(path.read_bytes())
    common = dict(mode="keyframes", thresholds={"l0_fraction": 0.0}, scheduler="synchronous")
    with pytest.raises(framediff.FramediffError, match="line break; write the list with keep_list0=True"):
        framediff.run_scan(odd, keep_list=tmp_path / "k.txt", **common)
    framediff.run_scan(odd, keep_list=tmp_path / "k0.txt", keep_list0=True, **common)
    names = (tmp_path / "k0.txt").read_text().split("\0")[:-1]
    assert "line\nbreak_3.jpg" in names and len(names) == 6


def test_report_to_a_folder_is_one_line(capsys, frames, tmp_path):
    _cli(capsys, "scan", frames, "-o", tmp_path / "r.parquet", "-q")
    code, err = _cli(capsys, "report", tmp_path / "r.parquet", "-o", tmp_path)
    assert code == 2 and "is a folder; name the page file" in err
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


@pytest.mark.parametrize("errno_", [28, 30], ids=["disk full", "read-only"])
def test_an_output_that_cannot_be_written_is_one_line_and_leaves_no_report(
    capsys, frames, tmp_path, monkeypatch, errno_
):
    import pyarrow.parquet as pq_module

    def refuse(*args, **kwargs):
        raise OSError(errno_, os.strerror(errno_), str(tmp_path / "r.parquet"))

    monkeypatch.setattr(pq_module.ParquetWriter, "write_table", refuse)
    code, err = _cli(capsys, "scan", frames, "-o", tmp_path / "r.parquet")
    assert code == 2 and err.count("\n") == 1 and os.strerror(errno_) in err
    assert not (tmp_path / "r.parquet").exists()
