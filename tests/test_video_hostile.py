"""Bad video is values: every hostile file comes back as an error or damage with a kind and
a one-line reason, never an exception, and frames after damage are still decoded."""

from __future__ import annotations

import os
import threading

import numpy as np
import pytest

av = pytest.importorskip("av")

from video_clips import GOP, N_FRAMES, SIZE, damage_packet, first_p_frame, write_audio_only  # noqa: E402

from framediff.synthetic_video import make_clip  # noqa: E402
from framediff.video import Segment, index_video, is_video, plan_segments  # noqa: E402
from framediff.video_decode import iter_segment  # noqa: E402


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    good = make_clip(root / "good.mkv", n_frames=N_FRAMES, size=SIZE, gop=GOP, bframes=2).path
    good_mp4 = make_clip(root / "good.mp4", n_frames=N_FRAMES, size=SIZE, gop=GOP, bframes=2).path
    return root, good, good_mp4


def _one_line(error):
    return error is not None and error.reason and "\n" not in error.reason


@pytest.mark.parametrize(
    "name, make, kind",
    [
        ("empty.mp4", lambda root, good, mp4: b"", "empty"),
        ("noise.mp4", lambda root, good, mp4: np.random.default_rng(0).bytes(5000), "not-a-video"),
        # MP4 writes its index (moov) last: a recording cut short has none.
        ("cut.mp4", lambda root, good, mp4: mp4.read_bytes()[: mp4.stat().st_size // 2], "truncated"),
        ("photo.mkv", lambda root, good, mp4: b"\xff\xd8\xff\xe0" + bytes(300), "not-a-video"),
    ],
)
def test_unreadable_files_are_errors(clips, name, make, kind):
    root, good, mp4 = clips
    path = root / name
    path.write_bytes(make(root, good, mp4))
    index = index_video(path)
    assert index.error is not None and index.error.kind == kind, index.error
    assert _one_line(index.error) and index.n_frames == 0
    assert plan_segments(index, 4) == []
    assert not is_video(path)


def test_missing_file_and_directory(clips, tmp_path):
    assert index_video(tmp_path / "nope.mp4").error.kind == "missing"
    folder = tmp_path / "folder.mp4"
    folder.mkdir()
    assert index_video(folder).error.kind == "not-a-file"


def test_audio_only_file(tmp_path):
    path = tmp_path / "voice.m4a"
    write_audio_only(path, 10)
    index = index_video(path)
    assert index.error.kind == "no-video" and "audio" in index.error.reason


def test_unknown_codec_is_unsupported(clips, tmp_path):
    _, good, _ = clips
    data = good.read_bytes()
    at = data.find(b"V_MPEG4/ISO/AVC")
    assert at > 0
    path = tmp_path / "alien.mkv"
    path.write_bytes(data[:at] + b"V_ALIEN/XYZ/ABC" + data[at + 15 :])  # same length: structure intact
    index = index_video(path)
    assert index.error.kind == "unsupported" and _one_line(index.error)


def test_cut_matroska_keeps_the_frames_before_the_cut(clips, tmp_path):
    _, good, _ = clips
    path = tmp_path / "cut.mkv"
    path.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    index = index_video(path)
    assert index.error is None and index.damage.kind == "truncated" and _one_line(index.damage)
    assert 0 < index.n_frames < N_FRAMES
    clean = index_video(good)
    frames = [f for s in plan_segments(index, 2, min_frames=1) for f in iter_segment(path, index, s)]
    assert [f.index for f in frames] == list(range(index.n_frames))
    # Every frame before the last keyframe interval is exactly the clean clip's.
    reference = {f.index: f.array for f in iter_segment(good, clean, plan_segments(clean, 1)[0])}
    last_key = int(index.keyframes[-1])
    for f in frames[:last_key]:
        np.testing.assert_array_equal(f.array, reference[f.index])


@pytest.mark.parametrize("container", ["mkv", "mp4"])
def test_damaged_packet_marks_its_span_and_decoding_resumes(clips, tmp_path, container):
    _, good_mkv, good_mp4 = clips
    good = good_mkv if container == "mkv" else good_mp4
    path = tmp_path / f"damaged.{container}"
    hit = first_p_frame(good, 38)  # a frame later ones refer to: the damage spreads
    assert hit < 2 * GOP - 2
    damage_packet(good, path, hit)
    index = index_video(path)
    assert index.error is None and index.n_frames == N_FRAMES
    clean = index_video(good)
    reference = [f.array for f in iter_segment(good, clean, plan_segments(clean, 1)[0])]
    runs = []
    for n in (1, 3):
        frames = [f for s in plan_segments(index, n, min_frames=1) for f in iter_segment(path, index, s)]
        assert [f.index for f in frames] == list(range(N_FRAMES))
        bad = [f.index for f in frames if f.error]
        assert hit in bad and set(bad) <= set(range(GOP, 2 * GOP)), bad
        assert all(f.error.kind == "corrupt" and f.array is None for f in frames if f.error)
        # The damaged span runs in file order from the bad packet to the next keyframe.
        assert set(range(hit + 1, 2 * GOP)) <= set(bad)
        for f in frames:
            if not f.error:
                np.testing.assert_array_equal(f.array, reference[f.index])
        runs.append([(f.index, f.error and f.error.kind) for f in frames])
    assert runs[0] == runs[1]


@pytest.mark.slow
def test_stalled_read_times_out(clips, tmp_path):
    """A FIFO nobody writes to blocks FFmpeg's open: index and decode give up in time."""
    _, good, _ = clips
    fifo = tmp_path / "stalled.mkv"
    os.mkfifo(fifo)
    try:
        index = index_video(fifo, timeout=0.5)
        assert index.error.kind == "timeout" and "0.5 s" in index.error.reason
        clean = index_video(good)
        frames = list(iter_segment(fifo, clean, Segment(0, 5, 0), read_timeout=0.5))
        assert [f.index for f in frames] == list(range(5))
        assert all(f.error.kind == "timeout" and f.array is None for f in frames)
    finally:
        _release(fifo)


def _release(fifo):
    """Open the FIFO for writing and close it, so the abandoned readers see end of file."""
    for _ in range(2):
        done = threading.Event()

        def writer():
            with open(fifo, "wb"):
                done.set()

        threading.Thread(target=writer, daemon=True).start()
        done.wait(1.0)
