"""Tests for the synthetic time-lapse generator (framediff.synthetic)."""

from __future__ import annotations

import json

import imageio.v3 as iio
import numpy as np
import pytest

from framediff.synthetic import (
    EVENT_KINDS,
    MIN_FRAMES_WITH_EVENTS,
    Event,
    Timelapse,
    make_frames,
    make_timelapse,
)

SIZE = (120, 160)
LUMA = np.array([0.299, 0.587, 0.114])


def gray(path) -> np.ndarray:
    """Decode one frame and return its BT.601 luma in float64."""
    return iio.imread(path).astype(np.float64) @ LUMA


def mean_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).mean())


def event_of(timelapse: Timelapse, kind: str) -> Event:
    (event,) = [e for e in timelapse.events if e.kind == kind]
    return event


@pytest.fixture(scope="module")
def timelapse(tmp_path_factory) -> Timelapse:
    return make_timelapse(tmp_path_factory.mktemp("tl"), n_frames=60, size=SIZE, seed=3)


@pytest.fixture(scope="module")
def grays(timelapse) -> list:
    """Luma of every frame, ``None`` for the corrupt one."""
    return [None if i in timelapse.corrupt else gray(p) for i, p in enumerate(timelapse.frames)]


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    first = make_timelapse(tmp_path / "a", n_frames=40, size=SIZE, seed=7)
    again = make_timelapse(tmp_path / "b", n_frames=40, size=SIZE, seed=7)
    other = make_timelapse(tmp_path / "c", n_frames=40, size=SIZE, seed=8)
    assert first.to_json() == again.to_json()
    for a, b in zip(first.frames, again.frames):
        assert a.read_bytes() == b.read_bytes()
    assert first.frames[0].read_bytes() != other.frames[0].read_bytes()


def test_file_names_and_count(timelapse):
    names = [p.name for p in timelapse.frames]
    assert names == [f"frame_{i:05d}.jpg" for i in range(1, 61)]
    assert names == sorted(names)
    assert sorted(p.name for p in timelapse.directory.iterdir()) == names
    assert timelapse.size == SIZE


def test_duplicates_have_identical_pixels(timelapse):
    assert 2 <= len(timelapse.duplicates) <= 3
    for i in timelapse.duplicates:
        assert np.array_equal(iio.imread(timelapse.frames[i]), iio.imread(timelapse.frames[i - 1]))


def test_only_duplicates_repeat_their_predecessor(timelapse, grays):
    pairs = [(i, grays[i - 1], grays[i]) for i in range(1, len(grays))]
    repeats = [i for i, a, b in pairs if a is not None and b is not None and np.array_equal(a, b)]
    assert repeats == timelapse.duplicates


def test_corrupt_file_fails_to_decode_and_others_decode(timelapse, grays):
    (bad,) = timelapse.corrupt
    assert event_of(timelapse, "corrupt").first == bad
    with pytest.raises(OSError, match="truncated"):
        iio.imread(timelapse.frames[bad])
    assert all(g is not None and g.shape == SIZE for i, g in enumerate(grays) if i != bad)
    intact = timelapse.frames[bad - 1].stat().st_size
    assert 0.1 * intact < timelapse.frames[bad].stat().st_size < 0.6 * intact


@pytest.mark.parametrize("n_frames", [MIN_FRAMES_WITH_EVENTS, 47, 60, 123])
def test_events_in_range_and_separated(tmp_path, n_frames):
    timelapse = make_timelapse(tmp_path, n_frames=n_frames, size=(32, 48), quality=50)
    assert sorted(e.kind for e in timelapse.events) == sorted(EVENT_KINDS)
    assert all(0 < e.first <= e.last < n_frames - 1 for e in timelapse.events)
    # Each event's changed frames (including the scene's return after an object or a shake)
    # and each run of duplicates lie at least 4 frames from the next ones.
    spans = [(e.first, e.last + (e.kind in ("object", "shake"))) for e in timelapse.events]
    runs = []
    for i in timelapse.duplicates:
        if runs and runs[-1][1] == i - 1:
            runs[-1] = (runs[-1][0], i)
        else:
            runs.append((i, i))
    spans = sorted(spans + runs)
    for (_, end), (start, _) in zip(spans, spans[1:]):
        assert start - end >= 4, spans
    assert spans[-1][1] + 4 <= n_frames


def test_default_layout_is_stable(timelapse):
    layout = [(e.kind, e.first, e.last) for e in timelapse.events]
    assert layout == [
        ("object", 5, 9),
        ("light-on", 22, 22),
        ("light-off", 30, 30),
        ("shake", 37, 38),
        ("corrupt", 52, 52),
    ]
    assert timelapse.duplicates == [15, 44, 45]


def test_quiet_frames_differ_little_events_differ_a_lot(timelapse, grays):
    changed = set(timelapse.changed_frames())
    skip = changed | set(timelapse.duplicates) | set(timelapse.corrupt)
    skip |= {i + 1 for i in timelapse.corrupt}
    quiet = [i for i in range(1, len(grays)) if i not in skip]
    assert len(quiet) > 30
    for i in quiet:
        assert mean_abs_diff(grays[i], grays[i - 1]) < 3, i
    for kind in ("light-on", "light-off", "shake"):
        i = event_of(timelapse, kind).first
        assert mean_abs_diff(grays[i], grays[i - 1]) > 15, kind
    shake = event_of(timelapse, "shake")
    assert mean_abs_diff(grays[shake.last + 1], grays[shake.last]) > 15


def test_light_is_brighter_while_on(timelapse, grays):
    on, off = event_of(timelapse, "light-on").first, event_of(timelapse, "light-off").first
    before, during, after = grays[on - 1].mean(), grays[on].mean(), grays[off].mean()
    assert during > 1.2 * before
    assert abs(after - before) < 0.05 * before


def test_object_crosses_the_view(timelapse, grays):
    event = event_of(timelapse, "object")
    assert event.last - event.first >= 2
    for i in range(event.first, event.last + 2):
        diff = np.abs(grays[i] - grays[i - 1])
        # A local change: many pixels move a lot, most of the picture does not.
        assert 0.005 < (diff > 30).mean() < 0.15, i


@pytest.mark.parametrize("drift", [0.0, 0.15, 0.3])
def test_drift_changes_first_to_last_brightness(tmp_path, drift):
    timelapse = make_timelapse(tmp_path, n_frames=12, size=SIZE, events=False, drift=drift)
    first, last = gray(timelapse.frames[0]), gray(timelapse.frames[-1])
    assert last.mean() / first.mean() == pytest.approx(1 - drift, abs=0.02)
    assert timelapse.events == [] and timelapse.duplicates == [] and timelapse.corrupt == []


def test_png_matches_make_frames(tmp_path):
    timelapse = make_timelapse(tmp_path, n_frames=40, size=(48, 64), fmt="png", seed=5)
    arrays = list(make_frames(40, size=(48, 64), seed=5, events=True))
    assert timelapse.frames[0].name == "frame_00001.png"
    for i, (path, array) in enumerate(zip(timelapse.frames, arrays)):
        if i in timelapse.corrupt:
            with pytest.raises(OSError):
                iio.imread(path)
        else:
            assert np.array_equal(iio.imread(path), array), i
    assert all(arrays[i] is arrays[i - 1] for i in timelapse.duplicates)


def test_make_frames_without_events(tmp_path):
    frames = list(make_frames(3, size=(40, 50), noise_sigma=0))
    assert [f.shape for f in frames] == [(40, 50, 3)] * 3
    assert all(f.dtype == np.uint8 for f in frames)


def test_truth_json(timelapse, tmp_path):
    path = timelapse.write_truth(tmp_path / "truth.json")
    truth = json.loads(path.read_text(encoding="utf-8"))
    assert truth["frames"] == [p.name for p in timelapse.frames]
    assert truth["size"] == list(SIZE)
    assert truth["duplicates"] == timelapse.duplicates
    assert truth["corrupt"] == timelapse.corrupt
    assert [Event(**e) for e in truth["events"]] == timelapse.events
    assert truth["changed"] == timelapse.changed_frames()
    assert truth["params"]["seed"] == 3
    assert str(timelapse.directory) not in path.read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("size", "photo"),
    [((1080, 1920), "astronaut"), ((300, 60), "coffee"), ((50, 700), "chelsea")],
)
def test_sizes_and_photos(tmp_path, size, photo):
    timelapse = make_timelapse(tmp_path, n_frames=2, size=size, events=False, photo=photo)
    image = iio.imread(timelapse.frames[1])
    assert image.shape == (*size, 3)
    assert image.std() > 20  # a textured scene, not a flat fill


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_frames": MIN_FRAMES_WITH_EVENTS - 1}, "n_frames >= 40"),
        ({"n_frames": 0, "events": False}, "n_frames must be at least 1"),
        ({"fmt": "gif"}, "unknown format"),
        ({"quality": 0}, "quality"),
        ({"size": (16, 320)}, "size"),
        ({"photo": "camera"}, "unknown photo"),
        ({"noise_sigma": -1.0}, "noise_sigma"),
        ({"drift": 1.5}, "drift"),
    ],
)
def test_bad_arguments_raise(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_timelapse(tmp_path / "out", **kwargs)
    assert not (tmp_path / "out").exists()
