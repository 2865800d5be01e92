"""The decision layer: per-pair features, the streaming stage, the keyframes chain."""

from __future__ import annotations

import io

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from skimage import data

from framediff.decide import (
    FEATURE_PREFIX,
    KINDS,
    DecisionStage,
    KeyframeChain,
    file_digest,
    pair_features,
    parse_keep_on,
    sensitivity_scale,
)
from framediff.errors import FramediffError
from framediff.kernels import gpu_available
from framediff.kernels.decision_features import DECISION_FEATURES, decision_features

RNG_SEED = 7


def _gray(photo="astronaut"):
    image = getattr(data, photo)()
    if image.ndim == 3:
        image = (image[..., :3] @ np.array([0.299, 0.587, 0.114])).astype(np.uint8)
    return image


def _noisy(image, sigma, seed):
    rng = np.random.default_rng(seed)
    return np.clip(image + rng.normal(0, sigma, image.shape), 0, 255).astype(np.uint8)


def _jpeg(image, quality):
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, "JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())))


def _kind(a, b, stage=None):
    f = pair_features(a, b, data_range=255)
    return (stage or DecisionStage()).classify({k[len(FEATURE_PREFIX) :]: v for k, v in f.items()})


def _with_object(image, y, x, size=36):
    out = image.copy()
    yy, xx = np.mgrid[:size, :size]
    disc = (yy - size / 2) ** 2 + (xx - size / 2) ** 2 < (size / 2) ** 2
    out[y : y + size, x : x + size][disc] = 250 if image[y : y + size, x : x + size].mean() < 128 else 10
    return out


# -- kernel ----------------------------------------------------------------------
def test_features_of_identical_frames_are_zero():
    a = _gray()
    f = decision_features(a, a, data_range=255)
    assert set(f) == set(DECISION_FEATURES)
    assert f["l1"] == 0.0 and f["area"] == 0.0 and f["regions"] == 0 and f["emd"] == 0.0
    assert f["corr"] == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("a", "b", "match"),
    [
        (np.zeros((32, 32)), np.zeros((32, 33)), "differ in shape"),
        (np.zeros((2, 32, 32)), np.zeros((2, 32, 32)), "expected gray frames"),
    ],
)
def test_features_reject_bad_frames(a, b, match):
    with pytest.raises(ValueError, match=match):
        decision_features(a, b, data_range=255)


def test_histogram_distance_ignores_empty_palette_bins():
    # A palette image (16 grey levels) against its smooth original: KL would explode on the
    # empty bins; the ground distance moves each level at most half a step.
    a = _gray()
    palette = (a // 16 * 16 + 8).astype(np.uint8)
    f = decision_features(a, palette, data_range=255)
    assert f["emd"] < 0.01


# -- one kind per synthetic-on-real case -----------------------------------------
@pytest.mark.parametrize("photo", ["astronaut", "camera", "coffee"])
def test_noise_and_reencoding_are_not_changes(photo):
    a = _gray(photo)
    assert _kind(_noisy(a, 3, 1), _noisy(a, 3, 2)) == "none"
    assert _kind(a, _jpeg(a, 60)) == "none"
    assert _kind(_jpeg(a, 95), _jpeg(a, 40)) == "none"


@pytest.mark.parametrize("photo", ["astronaut", "camera", "coffee"])
@pytest.mark.parametrize("change", ["brighter", "darker", "gamma", "contrast"])
def test_global_illumination_is_lighting(photo, change):
    a = _gray(photo).astype(np.float64)
    b = {
        "brighter": a * 1.25 + 12,
        "darker": a * 0.55,
        "gamma": 255 * (a / 255) ** 0.6,
        "contrast": (a - 128) * 0.7 + 128,
    }[change]
    b = np.clip(b, 0, 255).astype(np.uint8)
    assert _kind(_noisy(a.astype(np.uint8), 2, 1), _noisy(b, 2, 2)) == "lighting"


@pytest.mark.parametrize("photo", ["astronaut", "camera", "coffee"])
@pytest.mark.parametrize("move", [(3, 4), (-5, 2), (0, 6)])
def test_camera_shake_is_shift(photo, move):
    a = _gray(photo)
    b = np.roll(a, move, axis=(0, 1))
    assert _kind(_noisy(a, 2, 1), _noisy(b, 2, 2)) == "shift"


def test_shake_with_a_new_object_is_shift_and_content():
    a = _gray("astronaut")
    b = _with_object(np.roll(a, (4, 3), axis=(0, 1)), 300, 300, size=60)
    assert _kind(a, b) == "shift+content"


@pytest.mark.parametrize("photo", ["astronaut", "camera", "coffee"])
def test_a_small_object_appearing_is_content(photo):
    a = _gray(photo)
    b = _with_object(a, 200, 150)
    assert _kind(_noisy(a, 2, 1), _noisy(b, 2, 2)) == "content"


def test_a_light_on_one_part_of_the_scene_is_lighting_not_content():
    a = _gray("astronaut").astype(np.float64)
    b = a.copy()
    b[:, 256:] = np.clip(b[:, 256:] * 1.5 + 20, 0, 255)  # a floodlight on the right half
    assert _kind(a.astype(np.uint8), b.astype(np.uint8)) == "lighting"


def test_a_different_scene_is_a_cut():
    a = _gray("astronaut")
    b = _gray("camera")
    assert _kind(a, b) == "cut"


def test_a_cut_from_a_black_card_is_a_cut_not_lighting():
    a = np.zeros_like(_gray())
    assert _kind(a, _gray()) == "cut"


# -- the stage ---------------------------------------------------------------------
def _table(frames, statuses=None):
    """Consecutive rows with features, as the task would produce them."""
    rows = []
    for i in range(1, len(frames)):
        status = statuses[i] if statuses else "ok"
        row = {
            "pair": i,
            "index_a": i - 1,
            "index_b": i,
            "status": status,
            "changed": None,
            "change_kind": None,
            "l0_fraction": 0.5,
        }
        features = pair_features(frames[i - 1], frames[i], data_range=255)
        row.update({k: (v if status == "ok" else None) for k, v in features.items()})
        rows.append(row)
    return pa.Table.from_pylist(rows)


def _run(table, chunk=7, **kw):
    stage = DecisionStage(**kw)
    parts = [stage.feed(table.slice(k, chunk)) for k in range(0, table.num_rows, chunk)]
    parts.append(stage.finish())
    return pa.concat_tables([p for p in parts if p.num_rows]).to_pylist()


def _scene_sequence(n, seed=0):
    a = _gray("astronaut")[::2, ::2]
    return [_noisy(a, 2, seed * 1000 + i) for i in range(n)]


def test_feature_fields_name_every_feature_pair_features_returns():
    from framediff.decide import feature_fields

    a = _gray()[::4, ::4]
    f = pair_features(a, a, data_range=255)
    assert [x.name for x in feature_fields()] == list(f)
    pa.Table.from_pylist([f], schema=pa.schema(feature_fields()))  # the values fit the types


def test_stage_drops_working_columns_and_keeps_order():
    out = _run(_table(_scene_sequence(12)))
    assert [r["pair"] for r in out] == list(range(1, 12))
    assert not any(k.startswith(FEATURE_PREFIX) for k in out[0])
    assert all(r["change_kind"] == "none" and r["changed"] is False for r in out)


def test_fade_to_black_and_back_is_one_transition_each_way():
    a = _gray("astronaut")[::2, ::2].astype(np.float64)
    ramp = [1.0, 1.0, 1.0, 0.8, 0.6, 0.4, 0.2, 0.0, 0.0, 0.2, 0.4, 0.6, 0.8, 1.0, 1.0]
    frames = [_noisy((a * g).astype(np.uint8), 1, i) for i, g in enumerate(ramp)]
    kinds = [r["change_kind"] for r in _run(_table(frames))]
    assert kinds[2:7] == ["transition"] * 5  # rows into frames 3..7: the fade out
    assert kinds[8:13] == ["transition"] * 5  # frames 9..13: the fade in
    assert kinds[0] == kinds[-1] == "none"


def test_dissolve_is_a_transition_and_a_hard_cut_is_a_cut():
    a = _gray("astronaut")[::2, ::2].astype(np.float64)
    b = _gray("camera")[::2, ::2].astype(np.float64)
    steps = np.linspace(0, 1, 9)
    dissolve = [(1 - t) * a + t * b for t in steps]
    frames = [a] * 3 + dissolve + [b] * 3 + [a] * 3
    frames = [_noisy(f.astype(np.uint8), 1, i) for i, f in enumerate(frames)]
    kinds = [r["change_kind"] for r in _run(_table(frames))]
    assert kinds.count("transition") >= 6
    assert kinds[len(frames) - 4] == "cut"  # b -> a at once
    assert kinds[-1] == "none"


def test_a_frame_unlike_both_neighbours_is_corrupt():
    frames = _scene_sequence(8)
    rng = np.random.default_rng(RNG_SEED)
    frames[4] = rng.integers(0, 256, frames[4].shape, dtype=np.uint8)
    out = _run(_table(frames))
    assert [r["change_kind"] for r in out][3:5] == ["corrupt", "corrupt"]
    assert out[3]["changed"] and out[4]["changed"]


def test_error_rows_keep_changed_false_and_their_kind():
    frames = _scene_sequence(6)
    statuses = ["ok", "ok", "ok", "error", "ok", "ok"]
    table = _table(frames, statuses).to_pylist()
    table[2]["change_kind"] = "corrupt"  # what the task writes for a damaged file
    out = _run(pa.Table.from_pylist(table))
    assert out[2]["changed"] is False and out[2]["change_kind"] == "corrupt"
    assert all(r["changed"] is False for r in out)


def test_explicit_thresholds_win_and_the_kind_follows():
    frames = _scene_sequence(5)  # noise only: the features see nothing
    out = _run(_table(frames), thresholds={"l0_fraction": 0.1})  # every row has 0.5
    assert all(r["changed"] and r["change_kind"] == "content" for r in out)
    out = _run(_table(frames), thresholds={"l0_fraction": 0.9})
    assert all(not r["changed"] and r["change_kind"] == "none" for r in out)


def test_chunking_does_not_change_decisions():
    a = _gray("astronaut")[::2, ::2]
    frames = _scene_sequence(20)
    frames[9] = _with_object(frames[9], 60, 60)
    frames[14:] = [np.roll(f, (3, 3), axis=(0, 1)) for f in frames[14:]]
    assert a.shape == frames[0].shape
    table = _table(frames)
    whole = _run(table, chunk=100)
    assert [r["change_kind"] for r in _run(table, chunk=1)] == [r["change_kind"] for r in whole]
    assert [r["change_kind"] for r in _run(table, chunk=5)] == [r["change_kind"] for r in whole]
    assert whole[8]["change_kind"] == whole[9]["change_kind"] == "content"


_feature = st.fixed_dictionaries(
    {
        "l1": st.floats(0, 1),
        "l1_lighting": st.floats(0, 1),
        "corr": st.floats(-1, 1),
        "emd": st.floats(0, 1),
        "noise": st.floats(0, 0.5),
        "area": st.sampled_from([0.0, 0.001, 0.05, 0.3, 0.9]),
        "regions": st.integers(0, 40),
        "largest": st.floats(0, 1),
        "shift": st.sampled_from([0.0, 0.3, 1.5, 40.0]),
        "align_peak": st.floats(0, 1),
        "area_shifted": st.sampled_from([0.0, 0.001, 0.2, 0.9]),
        "region_corr": st.floats(-1, 1),
        "flat_a": st.sampled_from([0.0, 1.0]),
        "flat_b": st.sampled_from([0.0, 1.0]),
        "structure": st.floats(-1, 1),
        "area_local": st.sampled_from([0.0, 0.001, 0.05]),
        "largest_local": st.floats(0, 1),
        "area_light": st.sampled_from([0.0, 0.001, 0.05]),
        "dark_change": st.sampled_from([0.0, 1.0]),
        "thumb_a": st.lists(st.floats(0, 1), min_size=4, max_size=4),
        "thumb_b": st.lists(st.floats(0, 1), min_size=4, max_size=4),
    }
)


@settings(max_examples=60, deadline=None)
@given(
    rows=st.lists(st.tuples(st.sampled_from(["ok", "ok", "ok", "error"]), _feature), min_size=1, max_size=40),
    chunk=st.integers(1, 12),
    sensitivity=st.sampled_from(["low", "normal", "high", 2.5]),
    thresholds=st.sampled_from([None, {"l0_fraction": 0.3}]),
)
def test_property_changed_exactly_when_kind_is_not_none(rows, chunk, sensitivity, thresholds):
    records = []
    for i, (status, f) in enumerate(rows):
        row = {
            "pair": i + 1,
            "index_a": i,
            "index_b": i + 1,
            "status": status,
            "changed": None,
            "change_kind": "corrupt" if status == "error" else None,
            "l0_fraction": (i % 3) / 4,
        }
        # Every row carries every column, as in a task's table; error rows have nulls.
        row.update({FEATURE_PREFIX + k: (v if status == "ok" else None) for k, v in f.items()})
        records.append(row)
    out = _run(pa.Table.from_pylist(records), chunk=chunk, sensitivity=sensitivity, thresholds=thresholds)
    assert [r["pair"] for r in out] == [r["pair"] for r in records]
    for r in out:
        assert isinstance(r["changed"], bool)
        if r["status"] == "ok":
            assert r["change_kind"] in KINDS
            assert r["changed"] == (r["change_kind"] != "none")
        else:
            assert r["changed"] is False


# -- keyframes ----------------------------------------------------------------------
def test_keyframes_thin_a_real_time_lapse(tmp_path):
    from framediff.synthetic import make_timelapse

    lapse = make_timelapse(tmp_path, n_frames=60, seed=3, noise_sigma=3.0)
    chain = KeyframeChain()
    kept, kinds = [], []
    for i, path in enumerate(lapse.frames):
        if i in lapse.corrupt:
            kept.append(False)
            kinds.append(None)
            continue
        frame = np.asarray(Image.open(path).convert("L"))
        k, kind = chain.offer(frame, file_digest(path))
        kept.append(k)
        kinds.append(kind)
    objects = [e for e in lapse.events if e.kind == "object"]
    assert objects and all(any(kept[e.first : e.last + 2]) for e in objects)
    busy = set(lapse.changed_frames()) | {i + 1 for i in lapse.corrupt}
    quiet = [i for i in range(1, len(kept)) if i not in busy]
    assert not any(kept[i] for i in quiet)  # noise and drift alone never keep a frame
    assert not any(kept[i] for i in lapse.duplicates)
    assert sum(kept) <= len(kept) // 3


def test_byte_identical_files_are_counted_and_never_kept(tmp_path):
    a = _gray()[::2, ::2]
    for name in ("a.png", "b.png"):
        Image.fromarray(a).save(tmp_path / name)
    chain = KeyframeChain(keep_on="content,lighting,shift,cut,transition")
    frame = np.asarray(Image.open(tmp_path / "a.png"))
    assert chain.offer(frame, file_digest(tmp_path / "a.png")) == (True, None)
    assert chain.offer(frame, file_digest(tmp_path / "b.png")) == (False, "none")
    assert chain.counts["byte_identical"] == 1


def test_keep_on_decides_whether_lighting_keeps_a_frame():
    a = _gray()[::2, ::2]
    b = np.clip(a * 1.4 + 10, 0, 255).astype(np.uint8)
    default, with_light = KeyframeChain(), KeyframeChain(keep_on=["content", "lighting"])
    for chain in (default, with_light):
        chain.offer(a, "a")
    assert default.offer(b, "b") == (False, "lighting")
    assert with_light.offer(b, "b") == (True, "lighting")


# -- options ---------------------------------------------------------------------------
def test_sensitivity_names_and_numbers():
    assert sensitivity_scale("normal") == 1.0
    assert sensitivity_scale("HIGH") > 1.0 > sensitivity_scale("low")
    assert sensitivity_scale("2") == 2.0
    for bad in ("loud", 0, -1, "nan"):
        with pytest.raises(FramediffError, match="sensitivity"):
            sensitivity_scale(bad)


def test_keep_on_rejects_unknown_kinds():
    assert parse_keep_on("content, lighting") == {"content", "lighting"}
    with pytest.raises(FramediffError, match="unknown kind 'weather'"):
        parse_keep_on("content,weather")


def test_higher_sensitivity_finds_a_fainter_object():
    a = _gray("camera")
    b = a.astype(np.float64)
    b[200:230, 200:230] += 9  # a faint square, 3.5 % of the range
    b = np.clip(b, 0, 255).astype(np.uint8)
    low = pair_features(a, b, data_range=255, sensitivity="normal")
    high = pair_features(a, b, data_range=255, sensitivity="high")
    assert low[FEATURE_PREFIX + "area"] == 0.0
    assert high[FEATURE_PREFIX + "area"] > 0.0


def _outdoor_light(image):
    """The same view in other weather: a smooth sun-to-shade field, a soft cast shadow, haze."""
    h, w = image.shape
    yy, xx = np.mgrid[:h, :w] / np.array([h, w])[:, None, None]
    gain = 0.7 + 0.6 * np.exp(-((xx - 0.8) ** 2 + (yy - 0.3) ** 2) / 0.15)  # sun from the upper right
    shadow = 1.0 - 0.45 / (1.0 + np.exp(-(xx + 0.6 * yy - 0.55) * 40.0))  # a building's soft shadow
    haze = 0.35 * np.clip(1.0 - yy / 0.6, 0.0, 1.0)  # haze over the far (upper) part
    lit = image * gain * shadow
    return np.clip(lit * (1.0 - haze) + 200.0 * haze, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("photo", ["astronaut", "coffee", "chelsea"])
def test_local_sun_shadow_and_haze_are_lighting_and_an_object_under_them_is_content(photo):
    a = _gray(photo)
    b = _outdoor_light(a.astype(np.float64))
    assert _kind(_noisy(a, 2, 1), _noisy(b, 2, 2)) == "lighting"
    assert _kind(_noisy(a, 2, 1), _noisy(_with_object(b, 200, 150, size=48), 2, 2)) == "content"


def test_the_same_view_by_night_is_not_a_cut():
    a = _gray("astronaut").astype(np.float64)
    night = 255.0 - a  # contrast reversed, as a lit skyline against a dark sky: same structure
    b = np.clip(0.5 * night + 10, 0, 255)
    assert _kind(a.astype(np.uint8), b.astype(np.uint8)) != "cut"
    assert _kind(a.astype(np.uint8), _gray("camera")) == "cut"


def _night(image, lamps, seed=0):
    """The view at night: dark, with some of ``lamps`` (small windows) lit."""
    rng = np.random.default_rng(seed)
    out = 0.2 * image.astype(np.float64) + rng.normal(0, 2, image.shape)
    for y, x in lamps:
        out[y : y + 6, x : x + 8] = 235
    return np.clip(out, 0, 255).astype(np.uint8)


_LAMPS = [(40 + 37 * i % 420, 30 + 53 * i % 440) for i in range(24)]


@pytest.mark.parametrize("photo", ["astronaut", "coffee", "chelsea"])
def test_lights_switching_at_night_are_lighting_and_a_large_bright_object_is_content(photo):
    day = _gray(photo)
    a = _night(day, _LAMPS[:16], seed=1)
    b = _night(day, _LAMPS[8:], seed=2)  # eight windows went dark, eight others lit
    f = pair_features(a, b, data_range=255)
    assert f[FEATURE_PREFIX + "area_local"] > 0.0015  # not explained by a lighting field
    assert f[FEATURE_PREFIX + "area_light"] > 0.8 * f[FEATURE_PREFIX + "area_local"]
    assert _kind(a, b) == "lighting"
    # A lit object larger than any window appearing in the same night is content.
    assert _kind(a, _with_object(_night(day, _LAMPS[:16], seed=2), 200, 150, size=60)) == "content"


@pytest.mark.parametrize("photo", ["astronaut", "coffee", "chelsea"])
def test_a_small_bright_object_by_day_is_content_not_a_lamp(photo):
    day = _gray(photo)
    b = day.copy()
    y, x = day.shape[0] // 2, day.shape[1] // 3
    patch = (slice(y, y + 16), slice(x, x + 18))  # 0.2 % of the frame: lamp-sized
    b[patch] = 250 if day[patch].mean() < 128 else 5
    assert _kind(_noisy(day, 2, 1), _noisy(b, 2, 2)) == "content"


def test_day_to_night_on_the_same_view_is_lighting():
    day = _gray("astronaut")
    assert _kind(day, _night(day, _LAMPS)) == "lighting"
    assert _kind(_night(day, _LAMPS), day) == "lighting"


def test_an_overcast_day_against_a_foggy_night_is_lighting_a_daytime_histogram_shift_is_not():
    """Features measured on a real webcam pair (an overcast day, then a foggy night:
    the histograms only 0.20 apart by earth mover's distance), then varied one at a
    time across each boundary of the rule."""
    fog = {"l1": 0.271, "l1_lighting": 0.107, "corr": 0.402, "emd": 0.2, "noise": 0.125, "area": 0.447,
           "regions": 8, "largest": 0.294, "shift": 0.057, "align_peak": 0.178, "area_shifted": 0.447,
           "region_corr": 0.17, "flat_a": 0.0, "flat_b": 0.0, "structure": 0.148, "area_local": 0.07,
           "largest_local": 0.018, "area_light": 0.009, "dark_change": 1.0}  # fmt: skip
    assert DecisionStage().classify(dict(fog)) == "lighting"
    for change, kind in (
        ({"dark_change": 0.0}, "content"),  # two daytime views whose histograms moved as much
        ({"emd": 0.14}, "content"),  # day against night with hardly any change of the histogram
        ({"largest_local": 0.06}, "content"),  # one large region left over: something is there
        ({"structure": 0.05}, "cut"),  # the edges did not survive: another view
    ):
        assert DecisionStage().classify({**fog, **change}) == kind, change
    assert DecisionStage().classify({**fog, "dark_change": 0.0, "emd": 0.25}) == "lighting"  # any exposure jump


@pytest.mark.gpu
@pytest.mark.skipif(not gpu_available(), reason="needs a usable CUDA device and CuPy")
def test_decision_features_on_the_gpu_match_numpy():
    import cupy

    day = _gray("astronaut")
    pairs = [
        (_night(day, _LAMPS[:16], seed=1), _night(day, _LAMPS[8:], seed=2)),
        (_noisy(day, 2, 1), _with_object(_noisy(day, 2, 2), 200, 150)),
        (day, _night(day, _LAMPS)),
    ]
    for a, b in pairs:
        f = decision_features(a, b, data_range=255)
        g = decision_features(cupy.asarray(a), cupy.asarray(b), data_range=255)
        for key in DECISION_FEATURES:
            assert g[key] == pytest.approx(f[key], rel=1e-6, abs=1e-9), key


def test_keyframes_never_decode_a_byte_identical_file_and_hash_only_same_sized_ones(tmp_path, monkeypatch):
    """PGM frames of one size all have the same byte count: the digests must tell the
    copy (not decoded, its row says so) from the equally sized different frames."""
    import shutil

    import framediff
    import framediff.frames as frames_module
    from framediff.modes.keyframes import BYTE_IDENTICAL_NOTE

    rng = np.random.default_rng(3)
    base = data.camera()[:96, :128]
    for k in range(3):
        frame = base.copy()
        frame[20 + 20 * k : 50 + 20 * k, 30:70] = rng.integers(0, 255, (30, 40), dtype=np.uint8)
        Image.fromarray(frame).save(tmp_path / f"f{2 * k}.pgm")
    shutil.copyfile(tmp_path / "f2.pgm", tmp_path / "f3.pgm")
    decoded = []
    real = frames_module.read_frame_typed

    def counting(path, *args, **kwargs):
        decoded.append(str(path).rsplit("/", 1)[-1])
        return real(path, *args, **kwargs)

    monkeypatch.setattr(frames_module, "read_frame_typed", counting)
    df = framediff.scan(tmp_path, mode="keyframes", scheduler="synchronous")
    assert sorted(decoded) == ["f0.pgm", "f2.pgm", "f4.pgm"]
    row = df[df.path_b == "f3.pgm"].iloc[0]
    assert row.note == BYTE_IDENTICAL_NOTE and not row.kept
    assert df[df.path_b.isin(["f2.pgm", "f4.pgm"])].kept.all()
