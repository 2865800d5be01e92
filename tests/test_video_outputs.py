"""Outputs for video users: kept frames as images, kept times, and an ffmpeg filter script
checked against Debian's ffmpeg."""

from __future__ import annotations

import csv
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("av")

from video_clips import GOP, N_FRAMES, SIZE  # noqa: E402

from framediff.errors import FramediffError  # noqa: E402
from framediff.synthetic_video import make_clip  # noqa: E402
from framediff.video import index_video, plan_segments  # noqa: E402
from framediff.video_decode import iter_segment  # noqa: E402
from framediff.video_outputs import extract_frames, kept_ranges, kept_timestamps, select_expression  # noqa: E402

KEPT = [0, 1, 2, 30, 31, 57, 99, N_FRAMES - 1]


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    root = tmp_path_factory.mktemp("outputs")
    truth = make_clip(
        root / "cam.mp4",
        n_frames=N_FRAMES,
        size=SIZE,
        gop=GOP,
        bframes=3,
        open_gop=True,
        creation_time="2024-05-01T12:00:00Z",
    )
    index = index_video(truth.path)
    frames = [f.array for f in iter_segment(truth.path, index, plan_segments(index, 1)[0])]
    return truth, index, np.stack(frames)


def test_ranges_and_select_expression():
    assert kept_ranges([5, 1, 2, 3, 9, 10]) == [(1, 3), (5, 5), (9, 10)]
    assert select_expression([5, 1, 2, 3]) == "between(n,1,3)+eq(n,5)"
    assert select_expression([]) == "0"


def test_kept_timestamps_csv(clip, tmp_path):
    truth, index, _ = clip
    paths = kept_timestamps(index, KEPT, tmp_path / "kept.csv")
    assert paths["select"] == tmp_path / "kept.select"
    with open(paths["csv"], newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["frame"]) for r in rows] == KEPT
    expected = truth.times()
    for row in rows:
        assert float(row["time_s"]) == pytest.approx(expected[int(row["frame"])], abs=1e-3)
        assert float(row["time"]) == pytest.approx(index.creation_time + float(row["time_s"]), abs=1e-3)
        assert int(row["pts"]) == index.pts[int(row["frame"])]
    with pytest.raises(FramediffError, match=r"cam.mp4: frame indices must be in \[0, 120\)"):
        kept_timestamps(index, [N_FRAMES], tmp_path / "bad.csv")


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs the ffmpeg command")
def test_select_script_cuts_the_video_to_the_kept_frames(clip, tmp_path):
    truth, index, frames = clip
    paths = kept_timestamps(index, KEPT, tmp_path / "kept.csv")
    out = tmp_path / "kept.mkv"
    run = subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-nostdin",
            "-i",
            str(truth.path),
            "-filter_script:v",
            str(paths["select"]),
            "-an",
            "-c:v",
            "ffv1",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    cut = index_video(out)
    got = [f.array.astype(np.int16) for f in iter_segment(out, cut, plan_segments(cut, 1)[0])]
    # Each output frame is (losslessly) one of the clip's frames: find which.
    matched = [int(np.argmin(np.abs(frames.astype(np.int16) - g).mean(axis=(1, 2)))) for g in got]
    assert matched == KEPT
    assert all(np.abs(frames[m].astype(np.int16) - g).mean() < 1.0 for m, g in zip(matched, got))


def test_extract_frames_writes_the_kept_frames(clip, tmp_path):
    truth, index, frames = clip
    result = extract_frames(truth.path, [57, 0, 99], tmp_path / "kept", fmt="png", index=index)
    assert sorted(result.written) == [0, 57, 99] and result.failed == {}
    assert result.written[57].name == "cam_000057.png"
    for i, path in result.written.items():
        with Image.open(path) as image:
            assert np.asarray(image).shape == (*SIZE, 3)
            gray = np.asarray(image.convert("L"), np.int16)
        assert np.abs(gray - frames[i]).mean() < 6  # same picture (BT.601 vs swscale gray)
        assert np.abs(gray - frames[i + 1 if i < 99 else i - 5]).mean() > np.abs(gray - frames[i]).mean()
    jpegs = extract_frames(truth.path, [1], tmp_path / "jpg", quality=80)
    with Image.open(jpegs.written[1]) as image:
        assert image.format == "JPEG"
    with pytest.raises(FramediffError, match="exists already"):
        extract_frames(truth.path, [57], tmp_path / "kept", fmt="png")
    assert extract_frames(truth.path, [57], tmp_path / "kept", fmt="png", overwrite=True).written
    with pytest.raises(FramediffError, match=r"frame indices must be in \[0, 120\)"):
        extract_frames(truth.path, [500], tmp_path / "kept")


def test_extract_frames_refuses_a_broken_video_in_one_line(tmp_path):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"")
    with pytest.raises(FramediffError, match=r"broken.mp4: zero-byte file \[empty\]"):
        extract_frames(bad, [0], tmp_path / "out")
