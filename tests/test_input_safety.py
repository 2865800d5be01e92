"""Odd inputs give a right number or a clear reason, never a crash: small images,
non-finite pixels, the data range of converted pixels, pixel types that must not be
compared, 32-bit integer samples, and bounded memory for windowed measures."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.ndimage as ndi
from PIL import Image
from scan_fixtures import textured, write_jpeg, write_png
from skimage.metrics import peak_signal_noise_ratio
from skimage.metrics import structural_similarity as sk_ssim

import framediff.engine as engine
from framediff.decode import DecodeError, read_image
from framediff.engine import (
    incomparable,
    measure_pair_images,
    measure_pairs,
    prepare_stack,
    read_frame_typed,
)
from framediff.kernels.ssim import structural_similarity
from framediff.options import make_options
from framediff.scan import scan

# ----------------------------------------------------------- item 8: small images


def _ssim_by_hand(a, b, radius, data_range):
    """SSIM with an explicit Gaussian window of ``radius`` (sigma 1.5), from scipy."""
    x, y = a.astype(float), b.astype(float)

    def blur(z):
        return ndi.gaussian_filter(z, 1.5, mode="reflect", truncate=radius / 1.5)

    ux, uy = blur(x), blur(y)
    vx, vy, vxy = blur(x * x) - ux**2, blur(y * y) - uy**2, blur(x * y) - ux * uy
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    m = (2 * ux * uy + c1) * (2 * vxy + c2) / ((ux**2 + uy**2 + c1) * (vx + vy + c2))
    return m[radius : m.shape[0] - radius, radius : m.shape[1] - radius].mean()


@pytest.mark.parametrize("side, radius", [(1, 0), (2, 0), (3, 1), (8, 3), (10, 4)])
def test_ssim_of_images_below_the_window_uses_the_largest_window_that_fits(side, radius):
    rng = np.random.default_rng(side)
    a = rng.integers(0, 256, (side, side + 5)).astype(np.uint8)
    b = rng.integers(0, 256, (side, side + 5)).astype(np.uint8)
    got = float(structural_similarity(a, b, data_range=255))
    assert got == pytest.approx(_ssim_by_hand(a, b, radius, 255), rel=1e-12)
    assert float(structural_similarity(a, a, data_range=255)) == 1.0


def test_ssim_at_full_window_still_matches_scikit_image():
    rng = np.random.default_rng(3)
    a, b = rng.random((24, 31)), rng.random((24, 31))
    want = sk_ssim(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0)
    assert float(structural_similarity(a, b, data_range=1.0)) == pytest.approx(want, rel=1e-12)


def test_a_default_scan_of_icons_measures_every_pair(tmp_path):
    rng = np.random.default_rng(1)
    for i in range(4):
        write_png(tmp_path / f"icon{i}.png", rng.integers(0, 256, (8, 8, 3)).astype(np.uint8))
    table = scan(tmp_path)  # change kinds judge the changed pairs with SSIM too
    assert list(table.status) == ["ok"] * 3
    assert table.changed.all() and table.change_kind.notna().all()
    assert (scan(tmp_path, metrics="ssim").ssim < 1).all()


# ------------------------------------------------------ item 9: non-finite pixels


def _float_tiff(path, array):
    Image.fromarray(array.astype(np.float32), mode="F").save(path)
    return path


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_a_float_tiff_with_non_finite_pixels_is_a_non_finite_error(tmp_path, bad):
    pixels = np.linspace(0, 1, 20 * 30).reshape(20, 30)
    pixels[3, 4] = bad
    path = _float_tiff(tmp_path / "f.tif", pixels)
    with pytest.raises(DecodeError) as info:
        read_image(path)
    assert info.value.kind == "non-finite"
    assert "1 of 600 pixels" in info.value.reason


def test_a_scan_over_a_nan_frame_gives_error_rows_and_measures_the_rest(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(4):
        pixels = rng.random((20, 30))
        if i == 2:
            pixels[0, 0] = np.nan
        _float_tiff(tmp_path / f"f{i}.tif", pixels)
    table = scan(tmp_path, metrics="l1,psnr,ssim,kl")
    assert list(table.status) == ["ok", "error", "ok"]  # the bad frame is bridged over
    assert table.error_kind.iloc[1] == "non-finite" and "NaN or infinite" in table.error.iloc[1]
    assert np.isfinite(table.loc[[0, 2], ["l1", "psnr", "ssim", "kl"]].astype(float).to_numpy()).all()


def test_measure_pair_images_refuses_non_finite_arrays():
    a = np.zeros((16, 16))
    b = a.copy()
    b[1, 1] = np.inf
    with pytest.raises(ValueError, match="non-finite"):
        measure_pair_images(a, b, make_options("fast", metrics="l1,ssim"))


# ----------------------------------------------- item 15: data range of converted pixels


@pytest.fixture
def jpeg_pair(tmp_path):
    base = textured(96, 128, seed=4)
    changed = np.clip(base.astype(int) + np.random.default_rng(5).integers(-12, 13, base.shape), 0, 255)
    return (
        write_jpeg(tmp_path / "a.jpg", base, quality=90),
        write_jpeg(tmp_path / "b.jpg", changed.astype(np.uint8), quality=90),
    )


def test_gray_mean_of_8_bit_jpegs_is_measured_with_data_range_255(jpeg_pair):
    opts = make_options("fast", gray="mean", normalize="none", metrics="psnr,ssim")
    (a, dtype_a), (b, dtype_b) = (read_frame_typed(p, opts) for p in jpeg_pair)
    assert a.dtype == np.float64 and dtype_a == dtype_b == np.uint8
    got = measure_pair_images(a, b, opts, source_dtype=dtype_a)
    ref_a, ref_b = (read_image(p).astype(np.float64).mean(axis=2) for p in jpeg_pair)
    want_psnr = peak_signal_noise_ratio(ref_a, ref_b, data_range=255)
    want_ssim = sk_ssim(ref_a, ref_b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255)
    assert 20 < want_psnr < 40 and 0.3 < want_ssim < 0.99  # a real difference, not a trivial case
    assert got["psnr"] == pytest.approx(want_psnr, rel=1e-9)
    assert got["ssim"] == pytest.approx(want_ssim, rel=1e-9)
    stack = prepare_stack([a, b], opts, source_dtype=dtype_a)
    assert stack.data_range == 255.0 and stack.decoded_dtype == np.uint8


# ------------------------------------------- item 16: pixel types that are not comparable


@pytest.mark.parametrize("extra", [dict(blur=1.0), dict(edges="sobel"), dict(gray="mean")])
def test_8_and_16_bit_stacks_stay_incomparable_after_float_preparation(extra):
    opts = make_options("fast", metrics="l1,psnr", **extra)
    eight = np.full((16, 16), 100, np.uint8)
    sixteen = np.full((16, 16), 25700, np.uint16)
    sa, sb = prepare_stack([eight], opts), prepare_stack([sixteen], opts)
    assert sa.pixels.dtype == sb.pixels.dtype or extra.get("gray")  # the old guard saw no difference
    assert incomparable(sa, sb) == "uint16 pixels differ from uint8"
    assert incomparable(sa, prepare_stack([eight], opts)) is None


def test_align_keeps_the_8_vs_16_bit_guard():
    opts = make_options("fast", metrics="l1,psnr", align=True)
    with pytest.raises(ValueError, match="uint16 pixels differ from uint8"):
        measure_pair_images(textured(32, 32)[..., 0], textured(32, 32)[..., 0].astype(np.uint16) * 257, opts)


def test_32_bit_integer_tiffs_keep_their_values(tmp_path):
    for name, value in (("a.tif", 100000), ("b.tif", 200000)):
        Image.fromarray(np.full((12, 12), value, np.int32), mode="I").save(tmp_path / name)
    a, b = read_image(tmp_path / "a.tif"), read_image(tmp_path / "b.tif")
    assert a.dtype == np.int32 and int(a.max()) == 100000 and int(b.max()) == 200000
    got = measure_pair_images(a, b, make_options("fast", metrics="l1"))
    assert got["l1"] == pytest.approx(144 * 100000)  # the Manhattan norm: a sum over 12 x 12


def test_16_bit_values_that_pillow_widens_stay_uint16(tmp_path):
    Image.fromarray(np.full((4, 4), 60000, np.uint16)).save(tmp_path / "a.png")
    image = read_image(tmp_path / "a.png")
    assert image.dtype == np.uint16 and int(image.max()) == 60000


# --------------------------------------- item 19: windowed measures in bounded batches


def test_windowed_measures_in_batches_equal_one_call(monkeypatch):
    rng = np.random.default_rng(7)
    frames = rng.integers(0, 256, (6, 40, 50)).astype(np.uint8)
    opts = make_options("fast", metrics="ssim,edge_change,flow_median,flow_points")
    stack = prepare_stack(frames, opts)
    first, second = zip(*[(i, j) for i in range(6) for j in range(i + 1, 6)])
    whole = measure_pairs(stack, first, stack, second, opts)
    monkeypatch.setattr(engine, "WINDOW_BATCH_PIXELS", 2 * 40 * 50)  # two pairs a batch
    batched = measure_pairs(stack, first, stack, second, opts)
    for name in whole:
        assert len(batched[name]) == 15
        np.testing.assert_array_equal(batched[name], whole[name])
    gathered = structural_similarity(stack.pixels[list(first)], stack.pixels[list(second)], data_range=255)
    np.testing.assert_array_equal(whole["ssim"], gathered)  # frame moments reused, same numbers


def test_pair_ssim_of_two_stacks_equals_ssim_of_the_gathered_pairs():
    from framediff.kernels.ssim import pair_structural_similarity

    rng = np.random.default_rng(8)
    a, b = rng.random((4, 9, 30)), rng.random((3, 9, 30))  # 9 rows: a 9 x 9 window
    first, second = [0, 3, 3, 1], [2, 2, 0, 1]
    got = pair_structural_similarity(a, first, b, second, data_range=1.0)
    np.testing.assert_array_equal(got, structural_similarity(a[first], b[second], data_range=1.0))
    with pytest.raises(ValueError, match="one image shape"):
        pair_structural_similarity(a, [0], rng.random((1, 9, 31)), [0], data_range=1.0)
    with pytest.raises(ValueError, match="differ in length"):
        pair_structural_similarity(a, [0, 1], b, [0], data_range=1.0)


def test_windowed_batches_never_gather_more_than_the_budget(monkeypatch):
    import framediff.kernels.ssim as ssim_module

    sizes = []
    real = ssim_module.pair_structural_similarity

    def counting(frames_a, first, frames_b, second, **kw):
        sizes.append(len(first))
        return real(frames_a, first, frames_b, second, **kw)

    monkeypatch.setattr(engine, "pair_structural_similarity", counting)  # the name engine calls
    monkeypatch.setattr(engine, "WINDOW_BATCH_PIXELS", 3 * 20 * 20)
    opts = make_options("fast", metrics="ssim")
    stack = prepare_stack(np.zeros((10, 20, 20), np.uint8), opts)
    measure_pairs(stack, list(range(9)), stack, list(range(1, 10)), opts)
    assert sizes == [3, 3, 3]


def test_compare_of_a_tiff_with_infinite_pixels_is_one_line_and_warns_nothing(tmp_path, capsys, recwarn):
    from scan_fixtures import run_cli

    pixels = np.linspace(0, 1, 400).reshape(20, 20)
    _float_tiff(tmp_path / "a.tif", pixels)
    pixels[2, 2] = np.inf
    _float_tiff(tmp_path / "b.tif", pixels)
    code, _, err = run_cli(capsys, ["compare", tmp_path / "a.tif", tmp_path / "b.tif"])
    assert code == 2 and "Traceback" not in err
    assert err.strip().splitlines() == [
        f"framediff: error: {tmp_path / 'b.tif'}: 1 of 400 pixels are NaN or infinite [non-finite]"
    ]
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]
