"""Video sources: the keyframe index, segment plans and exact segment decoding, on clips
generated with PyAV (H.264 closed and open GOP, B-frames, VFR, MPEG-2 in MPEG-TS)."""

from __future__ import annotations

from datetime import datetime, timezone

import dask
import numpy as np
import pytest

pytest.importorskip("av")

from video_clips import GOP, N_FRAMES, SIZE, good_clips  # noqa: E402

from framediff.discover import source_kind  # noqa: E402
from framediff.video import (  # noqa: E402
    Segment,
    frame_name,
    index_video,
    is_video,
    is_video_name,
    plan_segments,
)
from framediff.video_decode import iter_batches, iter_segment, output_shape  # noqa: E402


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    return good_clips(tmp_path_factory.mktemp("clips"))


def _decode_all(path, index, segments, **kw):
    return [frame for segment in segments for frame in iter_segment(path, index, segment, **kw)]


def _signature(frames):
    return [(f.index, f.name, f.pts, f.time, None if f.error else f.array.tobytes()) for f in frames]


def test_index_lists_every_frame_in_presentation_order(clips):
    for name, truth in clips.items():
        index = index_video(truth.path)
        assert index.error is None and index.damage is None, name
        assert index.n_frames == N_FRAMES, name
        assert (index.width, index.height) == SIZE[::-1], name
        assert np.all(np.diff(index.pts) > 0), name
        assert list(index.keyframes[:3]) == [0, GOP, 2 * GOP] or name == "mpeg2.ts", name


def test_times_follow_the_timestamps_for_variable_frame_rate(clips):
    truth = clips["vfr.mkv"]
    index = index_video(truth.path)
    np.testing.assert_allclose(index.seconds(np.arange(N_FRAMES)), truth.times(), atol=1e-3)
    # Durations cycle 40, 80, 120 ms: a constant-rate guess would be wrong by seconds.
    assert index.seconds([N_FRAMES - 1])[0] > 1.5 * (N_FRAMES - 1) / 25
    frames = _decode_all(truth.path, index, plan_segments(index, 3, min_frames=10))
    np.testing.assert_allclose([f.time for f in frames], truth.times(), atol=1e-3)


def test_creation_time_makes_times_wall_clock(clips):
    index = index_video(clips["stamped.mp4"].path)
    start = datetime(2024, 5, 1, 12, tzinfo=timezone.utc).timestamp()
    assert index.creation_time == pytest.approx(start)
    frame = next(f for f in iter_segment(index.path, index, Segment(25, 30, int(index.pts[25]))))
    assert frame.time == pytest.approx(start + 1.0, abs=1e-3)
    assert index_video(clips["closed.mp4"].path).creation_time is None


@pytest.mark.parametrize("name", ["closed.mp4", "open_gop.mp4", "open_gop.mkv", "vfr.mkv", "mpeg2.ts"])
def test_every_segmentation_gives_the_same_frames(clips, name):
    path = clips[name].path
    index = index_video(path)
    whole = _signature(_decode_all(path, index, plan_segments(index, 1)))
    assert [s[0] for s in whole] == list(range(N_FRAMES))
    assert all(s[4] is not None for s in whole), "a clean clip decodes every frame"
    for n in (2, 3, 5):
        segments = plan_segments(index, n, min_frames=1)
        assert len(segments) > 1
        assert _signature(_decode_all(path, index, segments)) == whole, (name, n)


def test_decoded_frames_sit_at_their_true_indices(clips):
    """The largest changes between consecutive decoded frames are the known cuts, and the
    static stretch does not move: indices are the clip's, not shifted by a seek."""
    truth = clips["open_gop.mp4"]
    index = index_video(truth.path)
    frames = _decode_all(truth.path, index, plan_segments(index, 4, min_frames=1))
    stack = np.stack([f.array for f in frames]).astype(np.float32)
    diffs = np.abs(np.diff(stack, axis=0)).mean(axis=(1, 2))  # diffs[i-1]: frame i vs i-1
    top = sorted(int(i) + 1 for i in np.argsort(diffs)[-len(truth.cuts) :])
    assert top == truth.cuts
    first, last = truth.static[0]
    assert diffs[first:last].max() < 0.2 * np.median(diffs)


def test_segments_over_dask_threads_match_one_decode(clips):
    path = clips["open_gop.mkv"].path
    index = index_video(path)
    segments = plan_segments(index, 4, min_frames=1)
    tasks = [dask.delayed(lambda s: _signature(list(iter_segment(path, index, s))))(s) for s in segments]
    parts = dask.compute(*tasks, scheduler="threads", num_workers=2)
    assert [row for part in parts for row in part] == _signature(_decode_all(path, index, [plan_segments(index, 1)[0]]))


def test_scale_and_colour_use_the_decoder_scaler(clips):
    path = clips["closed.mp4"].path
    index = index_video(path)
    assert output_shape(index, 0.5) == (48, 64)
    segment = plan_segments(index, 1)[0]
    half = next(iter_segment(path, index, segment, scale=0.5))
    assert half.array.shape == (48, 64) and half.array.dtype == np.uint8
    rgb = next(iter_segment(path, index, segment, colour="rgb"))
    assert rgb.array.shape == (*SIZE, 3)
    full = next(iter_segment(path, index, segment)).array.astype(np.float32)
    # Area downscaling: each output pixel is close to the mean of its 2x2 block.
    blocks = full.reshape(48, 2, 64, 2).mean(axis=(1, 3))
    assert np.abs(blocks - half.array).mean() < 2.0
    with pytest.raises(ValueError, match="colour must be one of gray, rgb"):
        next(iter_segment(path, index, segment, colour="cmyk"))


def test_batches_fill_the_callers_buffer(clips):
    path = clips["open_gop.mp4"].path
    index = index_video(path)
    segment = Segment(GOP, 3 * GOP, int(index.pts[GOP]))
    out = np.zeros((16, *SIZE), np.uint8)
    expected = [f.array for f in iter_segment(path, index, segment)]
    seen = []
    for batch in iter_batches(path, index, segment, out):
        assert len(batch) <= 16
        for frame in batch:
            assert np.shares_memory(frame.array, out)
            np.testing.assert_array_equal(frame.array, expected[frame.index - GOP])
            seen.append(frame.index)
    assert seen == list(range(GOP, 3 * GOP))
    with pytest.raises(ValueError, match="out must be uint8"):
        next(iter_batches(path, index, segment, np.zeros((4, *SIZE), np.float32)))


def test_plan_splits_at_keyframes_and_respects_the_minimum(clips):
    index = index_video(clips["closed.mp4"].path)
    segments = plan_segments(index, 4)
    assert [(s.start, s.stop) for s in segments] == [(0, 25), (25, 50), (50, 75), (75, 120)]
    assert all(s.start in set(index.keyframes) for s in segments)
    assert segments[0].start == 0 and segments[-1].stop == N_FRAMES
    assert all(a.stop == b.start for a, b in zip(segments, segments[1:]))
    assert all(s.seek_pts == index.pts[s.start] for s in segments)
    assert len(plan_segments(index, 10, min_frames=50)) == 2  # 120 frames: at most two of 50+
    with pytest.raises(ValueError, match="at least 1"):
        plan_segments(index, 0)


def test_frame_names_and_discovery(clips, tmp_path):
    assert frame_name("cam/clip.mp4", 123) == "cam/clip.mp4#frame=123"
    frame = next(
        iter_segment(
            clips["closed.mp4"].path, index_video(clips["closed.mp4"].path), Segment(0, 1, 0), name="cam/closed.mp4"
        )
    )
    assert frame.name == "cam/closed.mp4#frame=0"
    assert is_video_name("A.MKV") and is_video_name("x.mp4") and not is_video_name("x.jpg")
    disguised = tmp_path / "recording.dat"
    disguised.write_bytes(clips["vfr.mkv"].path.read_bytes())
    assert is_video(disguised) and not is_video_name(disguised)
    photo = tmp_path / "photo.mp4"
    photo.write_bytes(b"\xff\xd8\xff\xe0" + bytes(200))
    assert not is_video(photo)
    notes = tmp_path / "notes.txt"
    notes.write_text("not a video")
    assert source_kind(tmp_path / "a.JPG") == "image" and source_kind(tmp_path / "b.mov") == "video"
    assert source_kind(disguised) is None and source_kind(disguised, probe=True) == "video"
    assert source_kind(notes, probe=True) is None


def test_gray_is_libswscales_gray(clips):
    """The full-size gray path (luma plane through libswscale's own level map) gives
    exactly what libswscale's conversion gives, frame for frame."""
    import av

    path = clips["closed.mp4"].path
    index = index_video(path)
    ours = [f.array for f in iter_segment(path, index, plan_segments(index, 1)[0])]
    with av.open(str(path)) as container:
        decoded = list(container.decode(video=0))
        theirs = [f.reformat(format="gray").to_ndarray() for f in decoded]
        luma = decoded[0].to_ndarray(format="yuv420p")[: SIZE[0]]
    assert len(ours) == len(theirs) == N_FRAMES
    for a, b in zip(ours, theirs):
        np.testing.assert_array_equal(a, b)
    # Video levels are 16-235: gray stretches them to 0-255 (slope 255/219).
    slope = np.polyfit(luma.ravel().astype(float), ours[0].ravel().astype(float), 1)[0]
    assert slope == pytest.approx(255 / 219, abs=0.01)


@pytest.mark.slow
def test_segments_on_worker_processes_match_one_decode(clips):
    """The index, segments and decoded frames cross process boundaries (a LocalCluster of
    two worker processes on 127.0.0.1) and give the frames of one serial decode."""
    import hashlib

    from distributed import Client, LocalCluster

    path = clips["open_gop.mp4"].path
    index = index_video(path)
    digest = lambda s: [  # noqa: E731
        (f.index, f.pts, f.error and f.error.kind, hashlib.sha1(f.array).hexdigest())
        for f in iter_segment(path, index, s)
    ]
    serial = digest(plan_segments(index, 1)[0])
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        parts = client.gather(client.map(digest, plan_segments(index, 4, min_frames=1)))
    assert [row for part in parts for row in part] == serial
