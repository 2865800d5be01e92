"""Videos as scan sources: every mode over generated clips with known cuts, sequences that
never cross files, reports identical whatever the segmentation and scheduler, hostile
videos as rows, timestamps right for variable frame rates."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

av = pytest.importorskip("av")

from video_clips import GOP, N_FRAMES, SIZE, damage_packet, first_p_frame, good_clips, write_audio_only  # noqa: E402

import framediff  # noqa: E402
from framediff.discover import discover  # noqa: E402
from framediff.errors import FramediffError  # noqa: E402
from framediff.report import sidecar_path  # noqa: E402
from framediff.synthetic_video import make_clip  # noqa: E402
from framediff.video import index_video  # noqa: E402
from framediff.video_inputs import count_inputs  # noqa: E402

#: Above the pan of a shot (about 19 grey levels a pixel), below every hard cut of the clips.
CUTS = {"l1_per_pixel": 25}


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    return good_clips(tmp_path_factory.mktemp("clips"))


def _scan(source, **kw):
    kw.setdefault("workers", 2)
    return framediff.scan(source, **kw)


def _rows(df) -> list:
    """A report's rows as plain values (NaN as None), for exact comparison."""
    return [
        tuple(None if isinstance(v, float) and np.isnan(v) else v for v in row) for row in df.itertuples(index=False)
    ]


@pytest.mark.parametrize("name", ["closed.mp4", "open_gop.mp4", "open_gop.mkv", "vfr.mkv", "stamped.mp4"])
def test_consecutive_changes_exactly_at_the_cuts(clips, name):
    truth = clips[name]
    df = _scan(str(truth.path), thresholds=CUTS, chunk_size=30)
    assert len(df) == N_FRAMES - 1 and (df.status == "ok").all()
    assert df[df.changed]["frame"].tolist() == truth.cuts
    assert df.path_b.tolist() == [f"{name}#frame={k}" for k in range(1, N_FRAMES)]
    assert df.frame.tolist() == list(range(1, N_FRAMES))
    assert (df.height == SIZE[0]).all() and (df.width == SIZE[1]).all()
    assert df.attrs["summary"]["videos"] == 1 and df.attrs["summary"]["inputs"] == N_FRAMES


@pytest.mark.slow
def test_vfr_times_and_pts_are_the_containers(clips):
    truth = clips["vfr.mkv"]
    df = _scan(str(truth.path))
    times = truth.times()
    assert df.time_b.tolist() == pytest.approx(times[1:], abs=1e-6)
    steps = np.diff(times)
    assert steps.max() > 1.5 * steps.min()  # really variable
    assert df.pts.tolist() == [int(p) for p in index_video(truth.path).pts[1:]]


@pytest.mark.slow
def test_creation_time_gives_wall_clock(clips):
    df = _scan(str(clips["stamped.mp4"].path))
    start = pd.Timestamp("2024-05-01T12:00:00Z").timestamp()
    assert df.time_b.iloc[0] == pytest.approx(start + 1 / 25, abs=1e-3)
    assert df.time_b.iloc[-1] == pytest.approx(start + (N_FRAMES - 1) / 25, abs=1e-3)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["open_gop.mp4", "vfr.mkv", "mpeg2.ts"])
def test_report_is_the_same_for_every_segmentation_and_scheduler(clips, name):
    """Chunks of one segment per keyframe interval, a few, or the whole video; threads
    (prepare/link chain) and synchronous: one report."""
    path = str(clips[name].path)
    reports = [
        _rows(_scan(path, chunk_size=size, scheduler=scheduler, workers=workers, thresholds=CUTS))
        for size, scheduler, workers in (
            (1000, "synchronous", 1),
            (GOP, "threads", 2),
            (40, "threads", 3),
            (1, "synchronous", 1),
        )
    ]
    assert all(r == reports[0] for r in reports[1:])
    assert len(reports[0]) == N_FRAMES - 1


@pytest.mark.slow
def test_videos_and_images_are_sequences_of_their_own(clips, tmp_path):
    import imageio.v3 as iio

    folder = tmp_path / "mixed"
    folder.mkdir()
    for name in ("closed.mp4", "vfr.mkv"):
        (folder / name).symlink_to(clips[name].path)
    rng = np.random.default_rng(0)
    for k in range(3):
        iio.imwrite(folder / f"z_{k}.png", rng.integers(0, 255, SIZE, dtype=np.uint8))
    df = _scan(str(folder), chunk_size=50)
    assert len(df) == 2 * (N_FRAMES - 1) + 2
    source = lambda p: "images" if p.endswith(".png") else p.split("#")[0]  # noqa: E731
    assert (df.path_a.map(source) == df.path_b.map(source)).all()
    assert df[df.path_b.str.endswith(".png")]["frame"].isna().all()
    assert df[df.path_b.str.endswith(".png")]["time_b"].isna().all()
    assert df.path_b.map(source).value_counts().to_dict() == {
        "closed.mp4": N_FRAMES - 1,
        "vfr.mkv": N_FRAMES - 1,
        "images": 2,
    }
    # What the command line's progress display expects, from the files alone.
    assert count_inputs(discover(str(folder)).paths) == df.attrs["summary"]["inputs"] == 2 * N_FRAMES + 3


def test_image_only_report_has_no_video_columns(tmp_path):
    import imageio.v3 as iio

    for k in range(3):
        iio.imwrite(tmp_path / f"f{k}.png", np.full(SIZE, 10 * k, np.uint8))
    df = _scan(str(tmp_path))
    assert not {"frame", "pts", "time_b"} & set(df.columns)


@pytest.mark.slow
def test_reference_is_a_frame_of_the_video_or_an_image(clips, tmp_path):
    import imageio.v3 as iio

    truth = clips["closed.mp4"]
    path = str(truth.path)
    df = _scan(path, mode="reference", reference="closed.mp4#frame=10", thresholds=CUTS, chunk_size=30)
    assert len(df) == N_FRAMES - 1 and set(df.path_a) == {"closed.mp4#frame=10"}
    assert 10 not in df.frame.tolist()
    # The first shot (frames up to the first cut) stays near frame 10; later shots do not.
    first_shot = df[df.frame < truth.cuts[0]]
    assert first_shot.l1_per_pixel.max() < df[df.frame > truth.cuts[1]].l1_per_pixel.min()
    photo = tmp_path / "still.png"
    iio.imwrite(photo, np.zeros(SIZE, np.uint8))
    df = _scan(path, mode="reference", reference=str(photo))
    assert len(df) == N_FRAMES and len(set(df.path_a)) == 1 and df.path_a.iloc[0].endswith("still.png")
    with pytest.raises(FramediffError, match="frame=999"):
        _scan(path, mode="reference", reference="closed.mp4#frame=999")


def test_keyframes_keep_each_shot_and_write_frames_and_times(clips, tmp_path):
    truth = clips["open_gop.mp4"]
    out = tmp_path / "kept"
    stamps = tmp_path / "kept.csv"
    df = _scan(str(truth.path), mode="keyframes", thresholds=CUTS, extract_kept=str(out), kept_timestamps=str(stamps))
    kept = df[df.kept]["frame"].tolist()
    assert kept[0] == 0 and set(truth.cuts) <= set(kept)
    images = sorted(p.name for p in out.iterdir())
    assert images == [f"open_gop_{k:06d}.jpg" for k in kept]
    table = pd.read_csv(stamps)
    assert table.frame.tolist() == kept
    assert table.time_s.tolist() == pytest.approx([truth.times()[k] for k in kept], abs=1e-6)
    assert "select=" in stamps.with_name("kept.select").read_text()
    assert df.attrs["summary"]["video_outputs"]["extracted"] == len(kept)


@pytest.mark.slow
def test_keyframes_restart_in_each_video(clips, tmp_path):
    df = _scan([str(clips["closed.mp4"].path), str(clips["vfr.mkv"].path)], mode="keyframes", thresholds=CUTS)
    firsts = df[df.note == "first frame: kept"]
    assert firsts.path_b.tolist() == ["closed.mp4#frame=0", "vfr.mkv#frame=0"]


@pytest.mark.slow
def test_background_learns_each_video_afresh(clips, tmp_path):
    masks = tmp_path / "masks"
    df = _scan(
        [str(clips["closed.mp4"].path), str(clips["vfr.mkv"].path)], mode="background", chunk_size=40, masks=str(masks)
    )
    assert len(df) == 2 * N_FRAMES
    # One mask per measured frame, named after its video and frame.
    measured = df[df.foreground_fraction.notna()]
    assert len(list(masks.iterdir())) == len(measured)
    assert (masks / "closed_000119.mask.png").exists()
    warm = df[df.note == "warm-up: learning the background"]
    # Each video starts a new model: warm-up rows at the start of both.
    assert warm.frame.min() == 0 and (warm.path_b.str.startswith("vfr.mkv")).any()
    assert (df.status == "ok").all()


@pytest.mark.slow
def test_pairs_within_and_across_videos(tmp_path):
    a = make_clip(tmp_path / "a.mp4", n_frames=40, size=SIZE, gop=10, seed=3).path
    b = make_clip(tmp_path / "b.mkv", n_frames=40, size=SIZE, gop=10, bframes=3, open_gop=True, seed=4).path
    # Without change kinds: labelling thousands of changed pairs is not what is tested here.
    small = _scan([str(a), str(b)], mode="pairs", chunk_size=15, change_kind=False)
    big = _scan([str(a), str(b)], mode="pairs", chunk_size=100, change_kind=False)
    assert len(small) == 80 * 79 // 2 and _rows(small) == _rows(big)
    across = small[small.path_a.str.startswith("a.mp4") & small.path_b.str.startswith("b.mkv")]
    assert len(across) == 40 * 40
    assert (small.status == "ok").all()


# -- hostile videos: rows, not crashes ----------------------------------------------------------


def _hostile(root, clips):
    good = clips["closed.mp4"].path
    (root / "empty.mp4").write_bytes(b"")
    (root / "cut.mp4").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    write_audio_only(root / "voice.m4a", 5)
    mkv = clips["open_gop.mkv"].path.read_bytes()
    at = mkv.find(b"V_MPEG4/ISO/AVC")
    (root / "alien.mkv").write_bytes(mkv[:at] + b"V_ALIEN/XYZ/ABC" + mkv[at + 15 :])
    mkv_path = clips["open_gop.mkv"].path
    (root / "cut.mkv").write_bytes(mkv[: mkv_path.stat().st_size * 2 // 3])
    damaged = root / "damaged.mp4"
    bad = first_p_frame(good, 30)
    damage_packet(good, damaged, bad)
    return bad


def test_hostile_videos_are_rows(clips, tmp_path):
    bad = _hostile(tmp_path, clips)
    files = ["empty.mp4", "cut.mp4", "cut.mkv", "voice.m4a", "alien.mkv", "damaged.mp4"]
    df = _scan([str(tmp_path / f) for f in files], chunk_size=20)
    errors = df[df.status == "error"]
    by_file = {p: k for p, k in zip(errors.path_b, errors.error_kind) if "#" not in p}
    assert by_file == {
        "empty.mp4": "empty",
        "cut.mp4": "truncated",
        "cut.mkv": "truncated",
        "voice.m4a": "no-video",
        "alien.mkv": "unsupported",
    }
    # A Matroska file cut short keeps the frames before the cut: compared, then one row for the file.
    cut = df[df.path_b.str.startswith("cut.mkv")]
    assert (cut.status == "ok").sum() >= N_FRAMES // 2 and cut.path_b.iloc[-1] == "cut.mkv"
    assert all("\n" not in reason for reason in errors.error)
    damaged = df[df.path_b.str.startswith("damaged.mp4")]
    corrupt = damaged[damaged.error_kind == "corrupt"].frame.tolist()
    # The damaged span: the bad frame and what refers to it (B-frames shown before it), up
    # to the next keyframe.
    assert bad in corrupt and bad - 3 <= corrupt[0] and max(corrupt) < (bad // GOP + 1) * GOP
    # Frames after the damaged span are decoded and compared again.
    assert (damaged[damaged.frame > max(corrupt) + 1].status == "ok").all()
    assert damaged.frame.max() == N_FRAMES - 1


@pytest.mark.slow
def test_command_line_scans_a_video_with_exit_code_and_one_line_errors(clips, tmp_path):
    (tmp_path / "empty.mp4").write_bytes(b"")
    report = tmp_path / "r.csv"
    run = subprocess.run(
        [
            str(Path(sys.executable).with_name("framediff")),
            "scan",
            str(clips["closed.mp4"].path),
            str(tmp_path / "empty.mp4"),
            "-o",
            str(report),
            "--threshold",
            "l1_per_pixel=25",
            "--workers",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 1, run.stderr
    assert "Traceback" not in run.stderr
    assert run.stdout.startswith(f"{N_FRAMES + 1} frames, {N_FRAMES} comparisons: ")  # the clip's frames, the file
    df = pd.read_csv(report)
    assert df[df.changed.fillna(False).astype(bool)].frame.tolist() == clips["closed.mp4"].cuts
    errors = df[df.status == "error"]
    assert len(errors) == 1 and errors.path_b.iloc[0].endswith("/empty.mp4") and errors.error_kind.iloc[0] == "empty"


def test_copy_kept_of_video_frames_is_refused(clips, tmp_path):
    with pytest.raises(FramediffError, match="extract_kept"):
        _scan(str(clips["closed.mp4"].path), mode="keyframes", thresholds=CUTS, copy_kept=str(tmp_path / "k"))


def test_recursive_finds_videos_by_probing_but_never_probes_text(clips, tmp_path):
    sub = tmp_path / "cam" / "day1"
    sub.mkdir(parents=True)
    (sub / "record.dat").write_bytes(clips["closed.mp4"].path.read_bytes())
    (sub / "notes.txt").write_text("frame list\nnothing to see\n")
    df = _scan(str(tmp_path), recursive=True)
    assert set(df.path_b.str.split("#").str[0]) == {"cam/day1/record.dat"}
    assert len(df) == N_FRAMES - 1
    assert df.attrs["summary"]["skipped_non_image"] == 1
    flat = tmp_path / "flat"
    flat.mkdir()
    (flat / "record.dat").write_bytes(b"\x00" * 10)
    with pytest.raises(FramediffError, match="no images"):
        _scan(str(flat))


# -- slow: more schedulers, processes and a distributed cluster -----------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["consecutive", "keyframes", "background", "reference"])
def test_every_mode_is_the_same_on_processes_and_a_local_cluster(clips, mode):
    from distributed import Client, LocalCluster

    path = str(clips["open_gop.mkv"].path)
    kw = dict(mode=mode, thresholds=CUTS if mode != "background" else None)
    expected = _rows(_scan(path, chunk_size=1000, scheduler="synchronous", workers=1, **kw))
    assert _rows(_scan(path, chunk_size=GOP, scheduler="processes", workers=2, **kw)) == expected
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        assert _rows(_scan(path, chunk_size=GOP, scheduler=client, **kw)) == expected


@pytest.mark.slow
def test_file_timeout_turns_a_stalled_video_into_a_row(clips, tmp_path):
    """A FIFO named like a video that nobody writes to: --file-timeout gives up on it and
    the other video is scanned as usual."""
    import os
    import threading

    fifo = tmp_path / "stalled.mp4"
    os.mkfifo(fifo)
    try:
        df = _scan([str(clips["closed.mp4"].path), str(fifo)], file_timeout=0.5, thresholds=CUTS)
        errors = df[df.status == "error"]
        assert errors.error_kind.tolist() == ["timeout"] and errors.path_b.iloc[0].endswith("stalled.mp4")
        assert (df.status == "ok").sum() == N_FRAMES - 1
    finally:
        for _ in range(2):  # let the abandoned reader see the end of the file
            done = threading.Event()
            threading.Thread(target=_open_and_close, args=(fifo, done), daemon=True).start()
            done.wait(1.0)


def _open_and_close(fifo, done) -> None:
    with open(fifo, "wb"):
        done.set()


def test_events_carry_start_and_end_times(clips, tmp_path):
    truth = clips["vfr.mkv"]
    report = tmp_path / "r.parquet"
    df = _scan(str(truth.path), thresholds=CUTS, output=str(report))
    times = truth.times()
    events = df.attrs["events"]
    assert [e["first_index"] for e in events] == truth.cuts
    assert [e["start_time"] for e in events] == pytest.approx([times[c] for c in truth.cuts], abs=1e-6)
    table = pd.read_parquet(sidecar_path(report, ".events.parquet"))
    assert table.end_time.tolist() == pytest.approx([times[e["last_index"]] for e in events], abs=1e-6)


@pytest.mark.slow
def test_html_report_shows_thumbnails_of_video_frames(clips, tmp_path):
    report, page = tmp_path / "r.parquet", tmp_path / "r.html"
    _scan(str(clips["closed.mp4"].path), thresholds=CUTS, output=str(report), html=str(page))
    text = page.read_text()
    assert text.count('class="thumb"') >= 3 * len(clips["closed.mp4"].cuts)
    assert "cannot read" not in text and "closed.mp4#frame=42" in text


@pytest.mark.slow
def test_a_listing_and_a_glob_name_videos_too(clips, tmp_path):
    import imageio.v3 as iio

    iio.imwrite(tmp_path / "still.png", np.zeros(SIZE, np.uint8))
    listing = tmp_path / "inputs.txt"
    listing.write_text(f"{clips['closed.mp4'].path}\n# a comment\nstill.png\n")
    listed = _scan(str(listing))
    assert len(listed) == N_FRAMES - 1  # the video's pairs; the still is a sequence of one
    assert listed.attrs["summary"]["inputs"] == N_FRAMES + 1
    globbed = _scan(str(clips["closed.mp4"].path.parent / "*.mkv"))
    assert set(globbed.path_b.str.split("#").str[0]) == {"open_gop.mkv", "vfr.mkv"}


@pytest.mark.slow
@pytest.mark.parametrize("name", ["open_gop.mp4", "vfr.mkv"])
def test_standalone_chunks_decode_the_frame_before_and_agree_with_the_chain(clips, name):
    """The route a cluster takes: each chunk alone, decoding the frame before its first
    (a seek back to that frame's keyframe), gives the chain's rows."""
    import pyarrow as pa

    from framediff.request import ScanRequest
    from framediff.scan import discover_stage, plan_stage

    path = str(clips[name].path)
    request = ScanRequest.build(path, thresholds=CUTS, chunk_size=GOP)
    planned = plan_stage(request, discover_stage(request))
    chunks = list(request.mode.plan(planned.inputs, request.chunk_size))
    assert len(chunks) > 2 and all(planned.inputs.paths[c.targets[0]].frame % GOP == 0 for c in chunks)
    alone = pa.concat_tables([request.mode.run(c, planned.spec, np) for c in chunks]).to_pandas()
    chain = _scan(path, thresholds=CUTS, chunk_size=GOP, scheduler="threads")
    # Filled in by the driver (times) and by the report's decision stage (changed, kind).
    columns = [c for c in chain.columns if c not in ("frame", "pts", "time_b", "changed", "change_kind")]
    assert _rows(alone[columns]) == _rows(chain[columns])


@pytest.mark.slow
def test_duplicates_within_and_across_videos_and_against_a_still(clips, tmp_path):
    """Duplicates mode over video frames: the same frame in a second copy of the clip and a
    still saved from the clip are found, confirmed by pixels; an update finds them again."""
    import shutil

    from PIL import Image

    from framediff.video_outputs import read_video_frame

    clip = clips["closed.mp4"].path
    copy = tmp_path / "copy.mp4"
    shutil.copyfile(clip, copy)
    Image.fromarray(read_video_frame(clip, 42)).save(tmp_path / "still.png")
    report = tmp_path / "dups.parquet"
    df = _scan([str(clip), str(copy), str(tmp_path / "still.png")], mode="duplicates", output=str(report))
    assert (df.status == "ok").all() and len(df) > 0
    groups = pd.read_parquet(sidecar_path(report, ".groups.parquet"))
    group_of = dict(zip(groups.path.map(lambda p: Path(p).name), groups.group))
    for k in (0, 17, 42, N_FRAMES - 1):
        assert group_of[f"closed.mp4#frame={k}"] == group_of[f"copy.mp4#frame={k}"], k
    assert group_of["still.png"] == group_of["closed.mp4#frame=42"]
    # Frames of different shots are never one group.
    cuts = clips["closed.mp4"].cuts
    assert group_of["closed.mp4#frame=0"] != group_of[f"closed.mp4#frame={cuts[0]}"]
    # A nightly update: a new still against the saved index, whose frames are found again in their videos.
    Image.fromarray(read_video_frame(copy, 17)).save(tmp_path / "new.png")
    later = tmp_path / "night2.parquet"
    df = _scan(
        str(tmp_path / "new.png"), mode="duplicates", output=str(later), update=True, index=str(report) + ".dupindex"
    )
    assert (df.status == "ok").all() and len(df) > 0
    groups = pd.read_parquet(sidecar_path(later, ".groups.parquet"))
    group_of = dict(zip(groups.path.map(lambda p: Path(p).name), groups.group))
    assert group_of["new.png"] == group_of["closed.mp4#frame=17"] == group_of["copy.mp4#frame=17"]
