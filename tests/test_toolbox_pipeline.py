"""The toolbox through the pipeline: CLI flags, ``compare()``/``scan()`` parameters, scans.

The kernels are checked against their oracles in ``test_toolbox_*.py``; here each
toolbox item is driven end to end -- ``framediff compare``/``framediff scan`` in-process,
the Python API, and the scan modes -- and the numbers are checked against the same
independent references (OpenCV, SciPy, scikit-image) applied by hand to the decoded
pixels. Images are small photographs of ``skimage.data`` written as PNG (lossless, so
the decoded pixels are known exactly), except one truncated JPEG.
"""

from __future__ import annotations

import functools
import json
import math
from pathlib import Path

import cv2
import numpy as np
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from numpy.testing import assert_array_equal
from scan_fixtures import run_cli, truncate, write_jpeg, write_png
from scipy import ndimage as ndi
from skimage import color, data, exposure
from skimage.metrics import structural_similarity
from skimage.registration import phase_cross_correlation

import framediff
from framediff.options import Options, make_options
from framediff.scan import run_scan

RTOL = 1e-12  # "the scan row equals compare() on its pair"


# --------------------------------------------------------------------------- helpers


def _u8(image) -> np.ndarray:
    return np.clip(np.round(image), 0, 255).astype(np.uint8)


def _noisy(image, seed: int, sigma: float = 2.0) -> np.ndarray:
    return _u8(image.astype(np.float64) + np.random.default_rng(seed).normal(0.0, sigma, image.shape))


CAMERA = data.camera()  # (512, 512) uint8 gray
CAMERA_F = CAMERA.astype(np.float64)


@functools.cache
def _astronaut_gray() -> np.ndarray:
    return _u8(color.rgb2gray(data.astronaut()) * 255)


def _window(image, y: int, x: int, h: int, w: int) -> np.ndarray:
    return np.ascontiguousarray(image[y : y + h, x : x + w])


def _fourier_shifted(image, shift) -> np.ndarray:
    """``image`` translated by a (sub-pixel) ``shift`` (periodic; crop away from the border)."""
    return np.real(np.fft.ifft2(ndi.fourier_shift(np.fft.fft2(image), shift)))


def _l1(a, b) -> float:
    return float(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)).sum())


def _json_compare(capsys, *args):
    """``framediff compare ... --json`` in-process -> (shape, metrics)."""
    code, out, err = run_cli(capsys, ["compare", *args, "--json"])
    assert code == 0, err
    doc = json.loads(out)
    return tuple(doc["shape"]), doc["metrics"]


def _cli_scan(capsys, tmp_path, source, *args, output="report.parquet"):
    """``framediff scan`` in-process -> (exit code, report table, stderr)."""
    report = tmp_path / output
    code, _out, err = run_cli(capsys, ["scan", source, "-o", report, "--overwrite", "-q", *args])
    table = None
    if report.exists():
        table = pq.read_table(report) if output.endswith(".parquet") else pacsv.read_csv(report)
    return code, table, err


def _rows(table):
    return table.to_pylist() if hasattr(table, "to_pylist") else table.to_dict("records")


def _same(got, want, rtol=RTOL) -> bool:
    if isinstance(want, str) or want is None:
        return got == want
    if isinstance(want, float) and math.isnan(want):
        return got is None or math.isnan(got)
    return math.isclose(got, want, rel_tol=rtol, abs_tol=0.0)


def _scan_options(df) -> Options:
    """The Options a scan ran with, rebuilt from its summary."""
    d = dict(df.attrs["summary"]["options"])
    d["percentiles"] = tuple(d["percentiles"])
    d["metrics"] = tuple(d["metrics"])
    return Options(**d)


def assert_scan_equals_compare(df, root: Path, opts: Options) -> int:
    """Every ok row of a scan equals ``compare(path_a, path_b, options=opts)``, column by column."""
    checked = 0
    for row in _rows(df):
        if row["status"] != "ok" or row.get("index_a") is None or row["index_a"] != row["index_a"]:
            continue
        want = framediff.compare(root / row["path_a"], root / row["path_b"], options=opts)
        assert (row["height"], row["width"]) == tuple(want.pop("shape"))
        for name, value in want.items():
            assert name in row, name
            assert _same(row[name], value), f"pair {row['pair']}: {name} scan={row[name]!r} compare={value!r}"
        checked += 1
    return checked


# ----------------------------------------------------------- 1. --resize and --crop

# Two different photographs of different sizes: 200x240 (camera) and 150x220 (coffee).
SIZE_A = _window(CAMERA, 150, 130, 200, 240)
SIZE_B = _u8(color.rgb2gray(data.coffee())[::2, ::2][20:170, 40:260] * 255)


@pytest.fixture(scope="module")
def size_pair(tmp_path_factory):
    d = tmp_path_factory.mktemp("sizes")
    return write_png(d / "a.png", SIZE_A), write_png(d / "b.png", SIZE_B)


def _resized(image, hw):
    """OpenCV's area resize, in float64 (no rounding)."""
    return cv2.resize(np.asarray(image, np.float64), (hw[1], hw[0]), interpolation=cv2.INTER_AREA)


# (option, shape_action, shape, oracle pair in float64)
SHAPE_CASES = {
    "first": ("resize b 150x220->200x240", (200, 240), lambda: (SIZE_A, _resized(SIZE_B, (200, 240)))),
    "smallest": ("resize a 200x240->150x220", (150, 220), lambda: (_resized(SIZE_A, (150, 220)), SIZE_B)),
    "100x80": (
        "resize a 200x240->80x100; resize b 150x220->80x100",
        (80, 100),
        lambda: (_resized(SIZE_A, (80, 100)), _resized(SIZE_B, (80, 100))),
    ),
    "center": ("crop center 150x220", (150, 220), lambda: (SIZE_A[25:175, 10:230], SIZE_B)),
    "topleft": ("crop topleft 150x220", (150, 220), lambda: (SIZE_A[:150, :220], SIZE_B)),
}


@pytest.mark.parametrize("case", list(SHAPE_CASES))
def test_compare_shape_policies(case, size_pair, capsys):
    action, shape, oracle = SHAPE_CASES[case]
    flag = ["--crop", case] if case in ("center", "topleft") else ["--resize", case]
    kw = {"crop": case} if case in ("center", "topleft") else {"resize": case}
    api = framediff.compare(SIZE_A, SIZE_B, preset="fast", metrics="l1", **kw)
    cli_shape, cli = _json_compare(capsys, *size_pair, "--preset", "fast", "--metrics", "l1", *flag)
    for result, got_shape in ((api, api["shape"]), (cli, cli_shape)):
        assert result["shape_action"] == action
        assert tuple(got_shape) == shape
    assert cli["l1"] == api["l1"]  # the PNG files decode to the arrays
    a, b = oracle()
    if case in ("center", "topleft"):
        assert api["l1"] == _l1(a, b)
        return
    # Float images stay float through the resize: cv2.resize(INTER_AREA) within float32-ish noise.
    floats = framediff.compare(SIZE_A.astype(np.float64), SIZE_B.astype(np.float64), preset="fast", metrics="l1", **kw)
    assert floats["shape_action"] == action
    assert floats["l1"] == pytest.approx(_l1(a, b), rel=1e-6)
    # uint8 images are rounded back to uint8 after resizing: only rounding ties may differ.
    assert api["l1"] == pytest.approx(_l1(np.round(a), np.round(b)), rel=1e-3)


def test_compare_shape_mismatch_is_refused(size_pair, capsys):
    with pytest.raises(framediff.InputError, match="size-mismatch"):
        framediff.compare(SIZE_A, SIZE_B)
    code, _out, err = run_cli(capsys, ["compare", *size_pair])
    assert code == 2
    assert "differs" in err and "--resize" in err
    # Same shape and a policy: nothing to do, said so.
    assert framediff.compare(SIZE_A, SIZE_A, resize="first", metrics="l1")["shape_action"] == "none"


@pytest.fixture(scope="module")
def mixed_sizes(tmp_path_factory):
    """Six 96x128 frames of one scene; frame 3 is the same scene at 120x160."""
    d = tmp_path_factory.mktemp("mixed")
    scene = _window(CAMERA, 100, 100, 240, 320)
    for i in range(6):
        frame = _noisy(scene, i)
        frame = frame[::2, ::2] if i == 3 else _u8(_resized(frame, (96, 128)))
        write_png(d / f"img_{i}.png", np.ascontiguousarray(frame))
    return d


def test_scan_mixed_sizes_default_is_size_mismatch(mixed_sizes, tmp_path, capsys):
    code, table, _err = _cli_scan(capsys, tmp_path, mixed_sizes)
    assert code == 1
    rows = {r["pair"]: r for r in table.to_pylist()}
    assert [rows[p]["error_kind"] for p in (3, 4)] == ["size-mismatch", "size-mismatch"]
    assert all(rows[p]["status"] == "ok" for p in (1, 2, 5))
    assert "shape_action" not in table.column_names
    df = framediff.scan(mixed_sizes)
    assert df.set_index("pair").loc[[3, 4], "error_kind"].tolist() == ["size-mismatch"] * 2


@pytest.mark.parametrize(
    "flag, shape, actions, changed",
    [
        (
            ["--resize", "first"],
            (96, 128),
            {1: "none", 2: "none", 3: "resize b 120x160->96x128", 4: "resize a 120x160->96x128", 5: "none"},
            {3, 4},
        ),
        (
            ["--resize", "64x48"],
            (48, 64),
            {
                1: "resize a 96x128->48x64; resize b 96x128->48x64",
                3: "resize a 96x128->48x64; resize b 120x160->48x64",
                4: "resize a 120x160->48x64; resize b 96x128->48x64",
            },
            set(),  # both scales resampled to 64x48: the same picture, nothing changed
        ),
        (["--crop", "center"], (96, 128), {1: "none", 3: "crop center 96x128", 4: "crop center 96x128"}, {3, 4}),
    ],
    ids=["resize-first", "resize-WxH", "crop-center"],
)
def test_scan_mixed_sizes_with_a_policy(flag, shape, actions, changed, mixed_sizes, tmp_path, capsys):
    code, table, err = _cli_scan(capsys, tmp_path, mixed_sizes, *flag)
    assert code == 0, err
    rows = {r["pair"]: r for r in table.to_pylist()}
    assert all(r["status"] == "ok" for r in rows.values())
    assert {(r["height"], r["width"]) for r in rows.values()} == {shape}
    for pair, action in actions.items():
        assert rows[pair]["shape_action"] == action
    # The frame at another scale differs from its neighbours; changed rows get a change kind.
    assert {p for p, r in rows.items() if r["changed"]} == changed
    assert all(rows[p]["change_kind"] in ("content", "cut", "lighting", "shift", "shift+content") for p in changed)
    # The API gives the same rows.
    kw = {"resize": flag[1]} if flag[0] == "--resize" else {"crop": flag[1]}
    df = framediff.scan(mixed_sizes, **kw)
    assert df["shape_action"].tolist() == [rows[p]["shape_action"] for p in sorted(rows)]
    assert df["l1"].tolist() == [rows[p]["l1"] for p in sorted(rows)]


@pytest.mark.parametrize("policy", [dict(resize="64x48"), dict(resize="smallest"), dict(crop="topleft")], ids=str)
def test_scan_shape_policy_equals_compare_with_the_scan_options(policy, mixed_sizes):
    df = framediff.scan(mixed_sizes, metrics="l1,ssim", **policy)
    opts = _scan_options(df)
    for key, value in policy.items():
        assert getattr(opts, key) == value
    # Includes height/width: the shape actually compared (96x128 for the 120x160 frame's pairs).
    assert assert_scan_equals_compare(df, mixed_sizes, opts) == 5
    assert (df["change_kind"] != "none").tolist() == df["changed"].tolist()  # one decision per row


def test_compare_smallest_reports_the_compared_shape():
    """'smallest' resizes the image with more pixels to the other's shape, whole."""
    wide, square = _window(CAMERA, 0, 0, 100, 300), _window(CAMERA, 200, 200, 200, 200)
    for a, b, action in ((wide, square, "resize b 200x200->100x300"), (square, wide, "resize a 200x200->100x300")):
        result = framediff.compare(a, b, resize="smallest", metrics="l1")
        assert result["shape_action"] == action
        assert result["shape"] == (100, 300)


# ------------------------------------------------------------------------- 2. --align

ALIGN_BOX = (128, 128, 256, 256)  # y, x, h, w: a 256x256 window of the camera photograph


def _shifted_window(shift):
    """(a, b) windows of the photograph, b translated by ``shift`` (b[y, x] = a[y - sy, x - sx]).

    Whole-pixel shifts are two crop windows; sub-pixel ones a Fourier shift of the photograph.
    """
    y, x, h, w = ALIGN_BOX
    if all(float(s).is_integer() for s in shift):
        return _window(CAMERA_F, y, x, h, w), _window(CAMERA_F, y - int(shift[0]), x - int(shift[1]), h, w)
    return _window(CAMERA_F, y, x, h, w), _window(_fourier_shifted(CAMERA_F, shift), y, x, h, w)


@pytest.mark.parametrize("shift", [(3, -5), (2.4, -1.7), (-0.6, 3.3)], ids=["integer", "subpixel", "subpixel2"])
def test_compare_align_recovers_known_shifts(shift, tmp_path, capsys):
    a, b = _shifted_window(shift)
    truth = (-shift[0], -shift[1])  # the shift that brings b back onto a
    api = framediff.compare(a, b, preset="fast", align=True, metrics="l1_per_pixel")
    pa_, pb_ = write_png(tmp_path / "a.png", _u8(a)), write_png(tmp_path / "b.png", _u8(b))
    _shape, cli = _json_compare(capsys, pa_, pb_, "--preset", "fast", "--align", "--metrics", "l1_per_pixel")
    for result, (ra, rb) in ((api, (a, b)), (cli, (_u8(a), _u8(b)))):
        skimage_shift = phase_cross_correlation(ra, rb, upsample_factor=10)[0]
        assert abs(result["shift_y"] - truth[0]) <= 0.05 and abs(result["shift_x"] - truth[1]) <= 0.05
        assert abs(result["shift_y"] - skimage_shift[0]) <= 0.05 and abs(result["shift_x"] - skimage_shift[1]) <= 0.05
        assert 0.5 < result["align_peak"] <= 1.0
    # Only the overlap is compared, and it matches far better than the raw pair.
    raw = framediff.compare(a, b, preset="fast", metrics="l1_per_pixel")["l1_per_pixel"]
    dy, dx = (int(round(s)) for s in truth)
    ha, wa = a.shape
    oa = a[max(dy, 0) : ha + min(dy, 0), max(dx, 0) : wa + min(dx, 0)]
    ob = b[max(-dy, 0) : ha - max(dy, 0), max(-dx, 0) : wa - max(dx, 0)]
    assert api["l1_per_pixel"] == pytest.approx(_l1(oa, ob) / oa.size, rel=1e-9, abs=1e-9)
    if float(shift[0]).is_integer():
        assert api["l1_per_pixel"] < 1e-6 * raw
    else:
        assert api["l1_per_pixel"] < 0.5 * raw


def test_compare_align_upsample_option(capsys, tmp_path):
    a, b = _shifted_window((2.4, -1.7))
    whole = framediff.compare(a, b, preset="fast", align=True, upsample=1, metrics="l1")
    assert (whole["shift_y"], whole["shift_x"]) == (-2.0, 2.0)
    pa_, pb_ = write_png(tmp_path / "a.png", _u8(a)), write_png(tmp_path / "b.png", _u8(b))
    _shape, cli = _json_compare(capsys, pa_, pb_, "--align", "--upsample", "1", "--metrics", "l1")
    assert (cli["shift_y"], cli["shift_x"]) == (-2.0, 2.0)


@pytest.fixture(scope="module")
def shaky(tmp_path_factory):
    """Seven 128x160 frames of a still scene with sensor noise; frame 3 is shaken by (4, -3)."""
    d = tmp_path_factory.mktemp("shake")
    for i in range(7):
        dy, dx = (4, -3) if i == 3 else (0, 0)
        write_png(d / f"f_{i}.png", _noisy(_window(CAMERA, 150 - dy, 150 - dx, 128, 160), 10 + i))
    return d


def test_scan_align_ignores_camera_shake(shaky, tmp_path, capsys):
    code, plain, _ = _cli_scan(capsys, tmp_path, shaky)
    assert code == 0
    assert [r["pair"] for r in plain.to_pylist() if r["changed"]] == [3, 4]
    assert "shift_y" not in plain.column_names
    code, aligned, err = _cli_scan(capsys, tmp_path, shaky, "--align")
    assert code == 0, err
    rows = {r["pair"]: r for r in aligned.to_pylist()}
    assert not any(r["changed"] for r in rows.values())
    assert (rows[3]["shift_y"], rows[3]["shift_x"]) == pytest.approx((-4, 3), abs=0.05)
    assert (rows[4]["shift_y"], rows[4]["shift_x"]) == pytest.approx((4, -3), abs=0.05)
    for p in (1, 2, 5, 6):
        assert abs(rows[p]["shift_y"]) <= 0.05 and abs(rows[p]["shift_x"]) <= 0.05
    assert rows[3]["height"] == 128 and rows[3]["width"] == 160  # the frame, not the overlap
    df = framediff.scan(shaky, align=True)
    assert not df["changed"].any()
    assert df["shift_y"].tolist() == [rows[p]["shift_y"] for p in sorted(rows)]


# --------------------------------------------------------------- 3. --blur / --median


@pytest.fixture(scope="module")
def noisy_pair(tmp_path_factory):
    a = _window(CAMERA, 100, 120, 128, 160)
    b = _noisy(a, 5, sigma=8.0)
    b[::17, ::13] = 255  # salt
    d = tmp_path_factory.mktemp("noisy")
    return a, b, write_png(d / "a.png", a), write_png(d / "b.png", b)


@pytest.mark.parametrize(
    "blur, median", [(1.5, 0), (0.0, 3), (2.0, 5), (0.7, 4)], ids=["blur", "median", "both", "even-median"]
)
def test_blur_and_median_equal_scipy(blur, median, noisy_pair, capsys):
    a, b, path_a, path_b = noisy_pair

    def filtered(x):
        if median:
            x = ndi.median_filter(x, size=median, mode="reflect")
        x = x.astype(np.float64)
        return ndi.gaussian_filter(x, blur, mode="reflect") if blur else x

    want = _l1(filtered(a), filtered(b))
    api = framediff.compare(a, b, preset="fast", normalize="none", blur=blur, median=median, metrics="l1")
    args = ["--preset", "fast", "--normalize", "none", "--metrics", "l1"]
    args += ["--blur", str(blur)] if blur else []
    args += ["--median", str(median)] if median else []
    _shape, cli = _json_compare(capsys, path_a, path_b, *args)
    for result in (api, cli):
        assert result["l1"] == pytest.approx(want, rel=1e-9)
    assert want < 0.8 * _l1(a, b)  # the filters do remove noise


# ------------------------------------------------------------- 4. --normalize match|meanstd


@pytest.fixture(scope="module")
def exposure_pair(tmp_path_factory):
    a = _window(CAMERA, 100, 120, 256, 256)
    b = _u8(a * 0.6)
    d = tmp_path_factory.mktemp("exposure")
    return a, b, write_png(d / "a.png", a), write_png(d / "b.png", b)


def test_normalize_match_and_meanstd(exposure_pair, capsys):
    a, b, path_a, path_b = exposure_pair
    none = framediff.compare(a, b, preset="fast", normalize="none", metrics="l1_per_pixel")["l1_per_pixel"]
    oracles = {
        "match": exposure.match_histograms(b, a),
        "meanstd": (b - b.mean()) / b.std() * a.std() + a.mean(),
    }
    for method, matched in oracles.items():
        want = _l1(a, matched) / a.size
        api = framediff.compare(a, b, preset="fast", normalize=method, metrics="l1_per_pixel")
        _shape, cli = _json_compare(
            capsys, path_a, path_b, "--preset", "fast", "--normalize", method, "--metrics", "l1_per_pixel"
        )
        for result in (api, cli):
            assert result["l1_per_pixel"] == pytest.approx(want, rel=1e-9)
            assert result["l1_per_pixel"] < 0.05 * none


# -------------------------------------------------------------------------- 5. --color

COLOR_A = np.ascontiguousarray(data.astronaut()[20:148, 180:308])  # 128x128 RGB


def _hue_shifted(rgb):
    """The same luma (BT.601), different chroma: add t * (0.587, -0.299, 0) to R, G, B."""
    base = rgb.astype(np.float64) * 0.6 + 50.0  # leave room so nothing clips
    return _u8(base), _u8(base + 30.0 * np.array([1.0, -0.299 / 0.587, 0.0]))


@pytest.fixture(scope="module")
def color_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("color")
    b = _u8(COLOR_A.astype(np.int64) + np.random.default_rng(0).integers(-20, 21, COLOR_A.shape))
    h1, h2 = _hue_shifted(COLOR_A)
    paths = {k: write_png(d / f"{k}.png", v) for k, v in {"a": COLOR_A, "b": b, "h1": h1, "h2": h2}.items()}
    return b, paths


def test_color_per_channel_and_delta_e(color_files, capsys):
    b, paths = color_files
    metrics = "l1,l1_per_pixel,mse,delta_e_mean,delta_e_p95,delta_e_max"
    api = framediff.compare(COLOR_A, b, preset="fast", color=True, metrics=metrics)
    _shape, cli = _json_compare(capsys, paths["a"], paths["b"], "--preset", "fast", "--color", "--metrics", metrics)
    de = color.deltaE_cie76(color.rgb2lab(COLOR_A), color.rgb2lab(b))
    for result in (api, cli):
        for c, name in enumerate("rgb"):
            assert result[f"l1_{name}"] == _l1(COLOR_A[..., c], b[..., c])
            assert result[f"l1_per_pixel_{name}"] == pytest.approx(
                _l1(COLOR_A[..., c], b[..., c]) / (128 * 128), rel=1e-12
            )
            diff = COLOR_A[..., c].astype(np.float64) - b[..., c]
            assert result[f"mse_{name}"] == pytest.approx((diff**2).mean(), rel=1e-12)
        assert result["l1"] == _l1(COLOR_A, b)  # combined: the three planes as one image
        assert result["delta_e_mean"] == pytest.approx(de.mean(), abs=1e-6)
        assert result["delta_e_max"] == pytest.approx(de.max(), abs=1e-6)
        assert result["delta_e_p95"] == pytest.approx(np.percentile(de, 95), abs=1e-6)


def test_color_sees_a_change_gray_hides(color_files, capsys):
    _b, paths = color_files
    h1, h2 = _hue_shifted(COLOR_A)
    gray = framediff.compare(h1, h2, preset="fast", metrics="l1_per_pixel,l0_fraction")
    assert gray["l0_fraction"] == 0.0 and gray["l1_per_pixel"] < 0.5  # rounding only
    _shape, cli_gray = _json_compare(capsys, paths["h1"], paths["h2"], "--preset", "fast", "--metrics", "l0_fraction")
    assert cli_gray["l0_fraction"] == 0.0
    colour = framediff.compare(h1, h2, preset="fast", color=True, metrics="l0_fraction,delta_e_mean")
    _shape, cli = _json_compare(
        capsys, paths["h1"], paths["h2"], "--preset", "fast", "--color", "--metrics", "l0_fraction,delta_e_mean"
    )
    for result in (colour, cli):
        assert result["delta_e_mean"] > 10.0
        assert result["l0_fraction_r"] == 1.0 and result["l0_fraction_b"] == 0.0


def test_delta_e_without_color_is_a_usage_error(color_files, capsys, tmp_path):
    _b, paths = color_files
    code, _out, err = run_cli(capsys, ["compare", paths["a"], paths["b"], "--metrics", "delta_e_mean"])
    assert code == 2
    assert "delta_e_mean" in err and "--color" in err
    code, _out, err = run_cli(capsys, ["scan", paths["a"].parent, "-o", tmp_path / "r.csv", "--metrics", "delta_e_max"])
    assert code == 2 and "--color" in err
    assert not (tmp_path / "r.csv").exists()
    with pytest.raises(framediff.FramediffError, match="--color"):
        framediff.compare(COLOR_A, COLOR_A, metrics="delta_e_mean")
    with pytest.raises(framediff.FramediffError, match="--color"):
        framediff.scan(paths["a"].parent, metrics="delta_e_mean")


def test_scan_color_columns(color_files, tmp_path, capsys):
    _b, paths = color_files
    d = paths["a"].parent
    code, table, err = _cli_scan(capsys, tmp_path, d, "--color", "--metrics", "l1,delta_e_mean", "--sort", "none")
    assert code == 0, err
    for column in ("l1", "l1_r", "l1_g", "l1_b", "delta_e_mean"):
        assert column in table.column_names
    for row in table.to_pylist():
        ra = np.asarray(cv2.cvtColor(cv2.imread(str(d / row["path_a"])), cv2.COLOR_BGR2RGB))
        rb = np.asarray(cv2.cvtColor(cv2.imread(str(d / row["path_b"])), cv2.COLOR_BGR2RGB))
        assert row["l1_g"] == _l1(ra[..., 1], rb[..., 1])
        de = color.deltaE_cie76(color.rgb2lab(ra), color.rgb2lab(rb)).mean()
        assert row["delta_e_mean"] == pytest.approx(de, abs=1e-6)


# ------------------------------------------------------------ 6. --edges, edge_change


@pytest.mark.parametrize("operator", ["sobel", "prewitt"])
def test_edges_compare_gradient_magnitudes(operator, noisy_pair, capsys):
    a, b, path_a, path_b = noisy_pair
    op = getattr(ndi, operator)

    def magnitude(x):
        x = x.astype(np.float64)
        return np.hypot(op(x, 0), op(x, 1))

    want = _l1(magnitude(a), magnitude(b))
    api = framediff.compare(a, b, preset="fast", edges=operator, metrics="l1,edge_change")
    _shape, cli = _json_compare(
        capsys, path_a, path_b, "--preset", "fast", "--edges", operator, "--metrics", "l1,edge_change"
    )
    for result in (api, cli):
        assert result["l1"] == pytest.approx(want, rel=1e-9)
        assert 0.0 < result["edge_change"] < 1.0
    same = framediff.compare(a, a, preset="fast", edges=operator, metrics="edge_change,l1")
    assert same == {"edge_change": 0.0, "l1": 0.0, "shape": a.shape}


def test_edge_change_barely_sees_a_lighting_change(exposure_pair, capsys, tmp_path):
    a = exposure_pair[0]
    brighter = _u8(a * 0.8 + 30.0)
    result = framediff.compare(a, brighter, preset="fast", metrics="edge_change,l0_fraction")
    assert result["l0_fraction"] > 0.3
    assert result["edge_change"] < 0.1 * result["l0_fraction"]
    _shape, cli = _json_compare(
        capsys,
        exposure_pair[2],
        write_png(tmp_path / "bright.png", brighter),
        "--preset",
        "fast",
        "--metrics",
        "edge_change",
    )
    assert cli["edge_change"] == result["edge_change"]
    assert framediff.compare(a, a, metrics="edge_change")["edge_change"] == 0.0


# ---------------------------------------------------------------------------- 7. ssim


def _skimage_ssim(a, b):
    return structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255)


def test_ssim_in_compare_and_scan(noisy_pair, tmp_path, capsys):
    a, b, path_a, path_b = noisy_pair
    want = _skimage_ssim(a, b)
    api = framediff.compare(a, b, preset="fast", metrics="ssim")
    _shape, cli = _json_compare(capsys, path_a, path_b, "--preset", "fast", "--metrics", "ssim")
    for result in (api, cli):
        assert result["ssim"] == pytest.approx(want, abs=1e-4)
    assert framediff.compare(a, a, metrics="ssim", preset="fast")["ssim"] == pytest.approx(1.0, abs=1e-12)
    # In a scan: every row against skimage on the decoded frames.
    d = path_a.parent
    code, table, err = _cli_scan(capsys, tmp_path, d, "--metrics", "ssim,l1", "--threshold", "ssim=0.9")
    assert code == 0, err
    (row,) = table.to_pylist()
    assert row["ssim"] == pytest.approx(want, abs=1e-4)
    assert row["changed"] is True  # a similarity: changed when it falls below
    df = framediff.scan(d, metrics="ssim", mode="pairs")
    assert df["ssim"].tolist() == pytest.approx([want], abs=1e-4)


# -------------------------------------------------------------- 8. scan --mode background

BG_H, BG_W, BG_SQUARE, BG_N, BG_START, BG_WARMUP = 120, 160, 20, 40, 15, 10
BG_TRUE = BG_SQUARE * BG_SQUARE / (BG_H * BG_W)


def _bg_corner(t):
    angle = 4 * np.pi * t / BG_N
    return int(round((BG_H - BG_SQUARE) / 2 + 35 * np.sin(angle))), int(
        round((BG_W - BG_SQUARE) / 2 + 55 * np.cos(angle))
    )


@pytest.fixture(scope="module")
def background_video(tmp_path_factory):
    """40 PNG frames 120x160: a still photograph (20..180) + noise sigma 3, and from frame 15
    a bright 20x20 square moving over it. Returns (folder, frames, true masks)."""
    d = tmp_path_factory.mktemp("background")
    scene = 20.0 + CAMERA_F[100:340:2, 60:380:2] * (160.0 / 255.0)
    rng = np.random.default_rng(0)
    frames = np.empty((BG_N, BG_H, BG_W), np.uint8)
    truth = np.zeros((BG_N, BG_H, BG_W), bool)
    for t in range(BG_N):
        frame = scene + rng.normal(0.0, 3.0, scene.shape)
        if t >= BG_START:
            y, x = _bg_corner(t)
            frame[y : y + BG_SQUARE, x : x + BG_SQUARE] = 240.0 + rng.normal(0.0, 3.0, (BG_SQUARE, BG_SQUARE))
            truth[t, y : y + BG_SQUARE, x : x + BG_SQUARE] = True
        frames[t] = _u8(frame)
        write_png(d / f"frame_{t:03d}.png", frames[t])
    return d, frames, truth


def test_background_scan_finds_the_square(background_video, tmp_path, capsys):
    d, frames, truth = background_video
    masks = tmp_path / "masks"
    code, table, err = _cli_scan(
        capsys, tmp_path, d, "--mode", "background", "--masks", masks, "--warmup", str(BG_WARMUP)
    )
    assert code == 0, err
    rows = table.to_pylist()
    assert len(rows) == BG_N
    fraction = [r["foreground_fraction"] for r in rows]
    assert all(f is None for f in fraction[:BG_WARMUP])  # null in the report during warm-up
    assert all("warm-up" in r["note"] for r in rows[:BG_WARMUP])
    assert all(f < 0.1 * BG_TRUE for f in fraction[BG_WARMUP:BG_START])
    assert all(abs(f - BG_TRUE) <= 0.1 * BG_TRUE for f in fraction[BG_START:])
    assert [r["changed"] for r in rows] == [t >= BG_START for t in range(BG_N)]  # default: over 1 %
    # Masks: one PNG per frame after warm-up, the square's pixels set.
    written = sorted(masks.glob("*.mask.png"))
    assert [p.name for p in written] == [f"frame_{t:03d}.mask.png" for t in range(BG_WARMUP, BG_N)]
    for t in range(BG_WARMUP, BG_N):
        mask = cv2.imread(str(masks / f"frame_{t:03d}.mask.png"), cv2.IMREAD_UNCHANGED) > 0
        assert mask.shape == (BG_H, BG_W)
        assert (mask & truth[t]).sum() >= 0.95 * truth[t].sum()
        assert (mask & ~truth[t]).sum() <= 0.05 * BG_SQUARE * BG_SQUARE
    # The same through the API: NaN during warm-up, equal values and masks after.
    api_masks = tmp_path / "api-masks"
    df = framediff.scan(d, mode="background", warmup=BG_WARMUP, masks=api_masks)
    assert df["foreground_fraction"][:BG_WARMUP].isna().all()
    assert df["foreground_fraction"][BG_WARMUP:].tolist() == fraction[BG_WARMUP:]
    assert sorted(p.name for p in api_masks.glob("*.png")) == [p.name for p in written]
    for p in written:
        assert_array_equal(
            cv2.imread(str(api_masks / p.name), cv2.IMREAD_UNCHANGED), cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
        )


def test_background_scan_equals_one_pass_of_the_model(background_video):
    """The model handed from chunk to chunk gives exactly the single-pass result."""
    from framediff.kernels.background import update_background

    d, frames, _truth = background_video
    for method in ("ema", "window"):
        _state, fraction, _ = update_background(None, frames, mode=method, warmup=BG_WARMUP, window=20, k=2.5)
        df = framediff.scan(d, mode="background", bg_method=method, warmup=BG_WARMUP, window=20, k=2.5, chunk_size=7)
        got = df["foreground_fraction"].to_numpy(np.float64)
        assert_array_equal(got, fraction)


def test_background_options_reach_the_model(background_video, tmp_path, capsys):
    d = background_video[0]
    _code, table, _ = _cli_scan(
        capsys, tmp_path, d, "--mode", "background", "--warmup", "20", "--bg-method", "window", "--window", "12",
        "--k", "3", "--learning-rate", "0.2", "--threshold", "foreground_fraction=0.5", "--chunk-size", "3",
        "--scheduler", "synchronous",
    )  # fmt: skip
    rows = table.to_pylist()
    assert all(r["foreground_fraction"] is None for r in rows[:20])
    assert all(abs(r["foreground_fraction"] - BG_TRUE) <= 0.1 * BG_TRUE for r in rows[20:])
    assert not any(r["changed"] for r in rows)  # the explicit threshold is used
    summary = json.loads((tmp_path / "report.parquet.summary.json").read_text())
    assert summary["options"]["bg_method"] == "window" and summary["options"]["window"] == 12
    assert summary["options"]["k"] == 3.0 and summary["options"]["learning_rate"] == 0.2


@pytest.mark.slow
@pytest.mark.parametrize("scheduler", ["threads", "synchronous"])
@pytest.mark.parametrize("chunk_size", [1, 7, 64])
def test_background_is_independent_of_chunks_and_scheduler(chunk_size, scheduler, background_video, tmp_path):
    d = background_video[0]
    masks = tmp_path / "masks"
    result = run_scan(
        d, options=make_options("fast"), mode="background", chunk_size=chunk_size, scheduler=scheduler,
        collect=True, masks=masks,
    )  # fmt: skip
    table = result.table()
    reference = _background_reference(d)
    assert table.column("foreground_fraction").to_pylist() == reference["fraction"]
    assert table.column("changed").to_pylist() == reference["changed"]
    for name, image in reference["masks"].items():
        assert_array_equal(cv2.imread(str(masks / name), cv2.IMREAD_UNCHANGED), image)


@functools.cache
def _background_reference(d):
    masks = Path(str(d) + "-reference-masks")
    result = run_scan(
        d,
        options=make_options("fast"),
        mode="background",
        scheduler="synchronous",
        chunk_size=BG_N,
        collect=True,
        masks=masks,
    )
    table = result.table()
    return {
        "fraction": table.column("foreground_fraction").to_pylist(),
        "changed": table.column("changed").to_pylist(),
        "masks": {p.name: cv2.imread(str(p), cv2.IMREAD_UNCHANGED) for p in sorted(masks.glob("*.png"))},
    }


# ------------------------------------------------------------------- 9. optical flow


@pytest.mark.parametrize("shift", [(1.3, -0.7), (2.5, 1.5)])
def test_flow_of_a_translated_photograph(shift, tmp_path, capsys):
    a, b = _shifted_window(shift)
    a, b = _u8(a), _u8(b)
    truth = math.hypot(*shift)
    metrics = "flow_median,flow_max,flow_moving_fraction,flow_points"
    api = framediff.compare(a, b, preset="fast", metrics=metrics)
    pa_, pb_ = write_png(tmp_path / "a.png", a), write_png(tmp_path / "b.png", b)
    _shape, cli = _json_compare(capsys, pa_, pb_, "--preset", "fast", "--metrics", metrics)
    for result in (api, cli):
        assert abs(result["flow_median"] - truth) <= 0.1
        assert result["flow_points"] > 0 and isinstance(result["flow_points"], int)
        assert result["flow_moving_fraction"] > 0.9
        assert result["flow_max"] >= result["flow_median"]
    # --moving-threshold and --flow-corners reach the tracker.
    _shape, slow = _json_compare(
        capsys, pa_, pb_, "--metrics", metrics, "--moving-threshold", str(truth + 5), "--flow-corners", "20"
    )
    assert slow["flow_moving_fraction"] == 0.0
    assert 0 < slow["flow_points"] <= 20
    assert framediff.compare(a, b, metrics=metrics, flow_corners=20)["flow_points"] == slow["flow_points"]
    still = framediff.compare(a, a, preset="fast", metrics=metrics)
    assert still["flow_median"] == pytest.approx(0.0, abs=1e-3) and still["flow_moving_fraction"] == 0.0


# --------------------------------------------------------------- 10. change_kind in scan

CK_BOX = (100, 120, 256, 256)
CK_EXPECTED = {2: "lighting", 3: "shift", 4: "content", 5: "cut", 7: "corrupt", 8: "corrupt", 10: "corrupt"}


def _ck_frames():
    y, x, h, w = CK_BOX
    crop = lambda image, dy=0: _window(image, y + dy, x, h, w)  # noqa: E731
    bright = _u8(0.8 * CAMERA_F + 40.0)
    pasted = crop(bright, 5).copy()
    pasted[100:140, 60:100] = CAMERA[400:440, 400:440]  # a 40x40 patch from elsewhere
    astro = crop(_astronaut_gray())
    noise = np.random.default_rng(5).integers(0, 256, (h, w)).astype(np.uint8)
    return [
        crop(CAMERA),  # 0
        _noisy(crop(CAMERA), 3),  # 1 none
        crop(bright),  # 2 lighting (brightness/contrast)
        crop(bright, 5),  # 3 shift: a 5-px camera move
        pasted,  # 4 content
        astro,  # 5 cut: another photograph
        _noisy(astro, 4),  # 6 none
        noise,  # 7 corrupt: decodes fine, unlike both neighbours
        astro,  # 8 corrupt (back from the bad frame)
        _noisy(astro, 6),  # 9 none
        None,  # 10 corrupt: a truncated JPEG
        _noisy(astro, 7),  # 11 none, compared with 9
    ]


@pytest.fixture(scope="module")
def kinds_folder(tmp_path_factory):
    d = tmp_path_factory.mktemp("kinds")
    for i, frame in enumerate(_ck_frames()):
        if frame is None:
            truncate(write_jpeg(d / f"f{i:02d}.jpg", _ck_frames()[9]), 0.3)
        else:
            write_png(d / f"f{i:02d}.png", frame)
    return d


def _kinds(rows):
    """The kinds of rows with a change (every measured row has one; 'none' is no change)."""
    return {
        r["pair"]: r["change_kind"] for r in rows if isinstance(r["change_kind"], str) and r["change_kind"] != "none"
    }


@pytest.mark.slow
@pytest.mark.parametrize("chunk_size", [1, 2, 64])
def test_scan_change_kinds(chunk_size, kinds_folder, tmp_path, capsys):
    code, table, _err = _cli_scan(capsys, tmp_path, kinds_folder, "--chunk-size", str(chunk_size))
    assert code == 1  # the truncated file is an error row
    rows = table.to_pylist()
    assert _kinds(rows) == CK_EXPECTED
    assert {r["pair"] for r in rows if r["changed"]} == set(CK_EXPECTED) - {10}
    assert [r["error_kind"] for r in rows if r["status"] == "error"] == ["truncated"]
    assert "extreme" not in table.column_names
    assert "extreme" not in pq.read_schema(tmp_path / "report.parquet").names
    # The API, in both schedulers.
    for scheduler in ("threads", "synchronous"):
        df = framediff.scan(kinds_folder, chunk_size=chunk_size, scheduler=scheduler)
        assert "extreme" not in df.columns
        assert _kinds(df.to_dict("records")) == CK_EXPECTED


def test_change_kind_csv_report_and_no_change_kind(kinds_folder, tmp_path, capsys):
    code, table, _err = _cli_scan(capsys, tmp_path, kinds_folder, "--chunk-size", "3", output="report.csv")
    assert code == 1
    header = (tmp_path / "report.csv").read_text().splitlines()[0]
    assert "extreme" not in header.replace('"', "").split(",")
    assert _kinds(table.to_pylist()) == CK_EXPECTED
    code, table, _err = _cli_scan(capsys, tmp_path, kinds_folder, "--no-change-kind", "--chunk-size", "2")
    assert "change_kind" not in table.column_names and "extreme" not in table.column_names
    df = framediff.scan(kinds_folder, change_kind=False)
    assert "change_kind" not in df.columns


def test_change_kinds_with_pairwise_options(kinds_folder):
    """Frames measured pair by pair (--align) are labelled by the same rule."""
    df = framediff.scan(kinds_folder, align=True, chunk_size=2)
    kinds = _kinds(df.to_dict("records"))
    assert {p: kinds.get(p) for p in (2, 4, 5, 7, 8, 10)} == {p: CK_EXPECTED[p] for p in (2, 4, 5, 7, 8, 10)}
    assert 3 not in kinds or kinds[3] == "shift"  # aligned, the camera move may not count as changed


# ------------------------------------------------- 11. compare and scan give the same numbers


@pytest.fixture(scope="module")
def colour_sequence(tmp_path_factory):
    """Seven 96x128 RGB frames: noise, lighting, a camera move, a pasted patch, a cut."""
    d = tmp_path_factory.mktemp("sequence")
    photo = data.astronaut()
    y, x, h, w = 40, 160, 96, 128
    crop = lambda image, dy=0, dx=0: _window(image, y + dy, x + dx, h, w)  # noqa: E731
    pasted = crop(photo).copy()
    pasted[30:60, 40:80] = photo[400:430, 300:340]
    frames = [
        crop(photo),
        _noisy(crop(photo), 1),
        _u8(crop(photo) * 0.7 + 20),
        _noisy(crop(photo, 3, -2), 2),
        pasted,
        _window(data.coffee(), 100, 200, h, w),
        _noisy(_window(data.coffee(), 100, 200, h, w), 3),
    ]
    for i, frame in enumerate(frames):
        write_png(d / f"s{i}.png", frame)
    return d


COMBOS = {
    "align": dict(align=True),
    "color": dict(color=True, metrics="l1,l0_fraction,mse,kl,ssim,delta_e_mean,delta_e_p95"),
    "match": dict(normalize="match", metrics="all"),
    "meanstd-color-align": dict(normalize="meanstd", color=True, align=True, metrics="l1,psnr,delta_e_max"),
    "blur-edges": dict(blur=1.0, median=3, edges="sobel", metrics="l1,l0_fraction,kl,edge_change,ssim"),
    "resize-crop": dict(resize="64x48", crop="center", metrics="l1,ssim,flow_median,flow_points"),
}


@pytest.mark.parametrize("combo", list(COMBOS))
def test_scan_rows_equal_compare(combo, colour_sequence):
    df = framediff.scan(colour_sequence, chunk_size=3, **COMBOS[combo])
    opts = _scan_options(df)
    for key, value in COMBOS[combo].items():
        if key != "metrics":
            assert getattr(opts, key) == value
    assert assert_scan_equals_compare(df, colour_sequence, opts) == 6


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["reference", "pairs", "keyframes"])
def test_scan_modes_equal_compare(mode, colour_sequence):
    kw = dict(COMBOS["meanstd-color-align"])
    thresholds = {"l1": 1e5} if mode == "keyframes" else None
    df = framediff.scan(colour_sequence, mode=mode, thresholds=thresholds, **kw)
    expected = {"reference": 6, "pairs": 21, "keyframes": 6}[mode]
    assert assert_scan_equals_compare(df, colour_sequence, _scan_options(df)) == expected


def test_cli_scan_options_equal_api_options(colour_sequence, tmp_path, capsys):
    """The CLI flags build the same Options as the API keywords (the report fingerprint)."""
    args = ["--align", "--upsample", "4", "--color", "--normalize", "match", "--blur", "0.5", "--median", "3",
            "--edges", "prewitt", "--metrics", "l1,edge_change", "--resize", "100x80", "--crop", "topleft"]  # fmt: skip
    code, table, err = _cli_scan(capsys, tmp_path, colour_sequence, *args)
    assert code == 0, err
    summary = json.loads((tmp_path / "report.parquet.summary.json").read_text())
    df = framediff.scan(
        colour_sequence, align=True, upsample=4, color=True, normalize="match", blur=0.5, median=3, edges="prewitt",
        metrics="l1,edge_change", resize="100x80", crop="topleft",
    )  # fmt: skip
    assert summary["options"] == df.attrs["summary"]["options"]
    for column in ("l1", "l1_r", "edge_change", "shift_x", "shape_action"):
        assert table.column(column).to_pylist() == df[column].tolist()
