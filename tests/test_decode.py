"""Reading image files: orientation, bit depth, palettes, CMYK, the luma fast path, scale,
and how often a scan decodes each file."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image, ImageOps
from scan_fixtures import make_sequence, textured, write_jpeg, write_png

import framediff.engine
from framediff import kernels as K
from framediff.decode import decoded_shape, read_image
from framediff.engine import read_frame
from framediff.options import make_options
from framediff.scan import scan


def mean_abs(a, b) -> float:
    return float(np.mean(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))


# ------------------------------------------------------------------ orientation


@pytest.fixture
def rotated_jpeg(tmp_path):
    """A JPEG stored rotated 90 degrees counter-clockwise, tagged Orientation=6 (rotate CW to view)."""
    upright = textured(40, 64, seed=1)
    stored = np.ascontiguousarray(np.rot90(upright, 1))  # 64 x 40 on disk
    exif = Image.Exif()
    exif[0x0112] = 6
    path = write_jpeg(tmp_path / "rotated.jpg", stored, quality=95, exif=exif)
    return path, upright


def test_exif_orientation_6_gives_the_upright_image(rotated_jpeg):
    path, upright = rotated_jpeg
    rgb = read_image(path)
    assert rgb.shape == upright.shape  # 40 x 64 x 3, not the stored 64 x 40
    assert mean_abs(rgb, upright) < 6  # JPEG loss (4:2:0 chroma) on a noisy picture
    # The other quarter turn (what Orientation=8 would give) is far off: the direction is right.
    assert mean_abs(rgb, upright[::-1, ::-1]) > 20
    # The same answer as Pillow's own EXIF transpose of that file.
    with Image.open(path) as im:
        reference = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    assert mean_abs(rgb, reference) < 1.0


def test_exif_orientation_applies_on_the_luma_fast_path(rotated_jpeg):
    path, upright = rotated_jpeg
    luma = read_image(path, gray="luma")
    assert luma.shape == upright.shape[:2] and luma.dtype == np.uint8
    assert mean_abs(luma, K.to_gray(upright, "luma")) < 3
    frame = read_frame(path, make_options("fast"))
    assert frame.shape == (40, 64)


# --------------------------------------------------------------- pixel formats


def test_16_bit_png_is_read_as_uint16(tmp_path):
    rng = np.random.default_rng(2)
    deep = rng.integers(0, 65536, (20, 30), dtype=np.uint16)
    deep[0, 0], deep[0, 1] = 0, 65535
    path = write_png(tmp_path / "deep.png", deep)
    with Image.open(path) as im:
        assert im.mode.startswith("I;16") or im.mode == "I"
    image = read_image(path)
    assert image.dtype == np.uint16
    np.testing.assert_array_equal(image, deep)
    assert read_frame(path, make_options("classic")).dtype == np.uint16  # gray stays 16-bit


def test_palette_png_with_transparency(tmp_path):
    index = np.zeros((8, 16), np.uint8)
    index[:, 4:8], index[:, 8:12], index[:, 12:] = 1, 2, 3
    image = Image.fromarray(index, "P")
    palette = [(10, 20, 30), (255, 0, 0), (0, 255, 0), (0, 0, 255)]
    image.putpalette([c for rgb in palette for c in rgb] + [0] * (256 - len(palette)) * 3)
    path = tmp_path / "palette.png"
    image.save(path, transparency=0)  # index 0 is fully transparent
    with Image.open(path) as im:
        assert im.mode == "P" and im.info["transparency"] == 0
    rgba = read_image(path)
    assert rgba.dtype == np.uint8 and rgba.shape == (8, 16, 4)
    for k, rgb in enumerate(palette):
        np.testing.assert_array_equal(rgba[index == k][:, :3], np.broadcast_to(rgb, ((index == k).sum(), 3)))
    assert (rgba[index == 0][:, 3] == 0).all() and (rgba[index != 0][:, 3] == 255).all()
    gray = read_frame(path, make_options("classic"))  # alpha dropped, channel mean
    assert gray.shape == (8, 16)
    np.testing.assert_allclose(gray[0, ::4], [np.mean(rgb) for rgb in palette])


def test_cmyk_jpeg_is_converted_to_rgb(tmp_path):
    rgb = textured(32, 48, seed=3)
    path = write_jpeg(tmp_path / "cmyk.jpg", rgb, quality=95, mode="CMYK")
    with Image.open(path) as im:
        assert im.mode == "CMYK"
        pillow_rgb = np.asarray(im.convert("RGB"))
    image = read_image(path)
    assert image.shape == (32, 48, 3) and image.dtype == np.uint8
    np.testing.assert_array_equal(image, pillow_rgb)
    assert mean_abs(image, rgb) < 3
    assert read_frame(path, make_options("fast")).shape == (32, 48)


def test_luma_fast_path_equals_rgb_then_luma(tmp_path):
    rgb = textured(64, 96, seed=4)
    for subsampling in (0, 2):  # 4:4:4 and 4:2:0
        path = tmp_path / f"colour_{subsampling}.jpg"
        Image.fromarray(rgb).save(path, quality=90, subsampling=subsampling)
        luma = read_image(path, gray="luma").copy()
        via_rgb = K.to_gray(read_image(path).copy(), "luma")
        assert luma.shape == via_rgb.shape == (64, 96)
        diff = np.abs(luma.astype(int) - via_rgb.astype(int))
        assert diff.max() <= 2, f"subsampling {subsampling}: max diff {diff.max()}"
        assert diff.mean() < 0.5


@pytest.mark.slow
def test_pillow_luma_is_to_gray_luma_for_every_colour():
    # Non-JPEG frames are converted to luma by Pillow while decoding: it must be the
    # kernels' luma, bit for bit, for all 2**24 colours (with and without alpha).
    v = np.arange(1 << 24, dtype=np.uint32)
    rgb = np.stack([v >> 16, (v >> 8) & 255, v & 255], -1).astype(np.uint8).reshape(4096, 4096, 3)
    expected = K.to_gray(rgb, "luma")
    np.testing.assert_array_equal(np.asarray(Image.fromarray(rgb, "RGB").convert("L")), expected)
    rgba = np.concatenate([rgb, rgb[..., 1:2]], axis=-1)
    np.testing.assert_array_equal(np.asarray(Image.fromarray(rgba, "RGBA").convert("L")), expected)


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "P", "CMYK"])
def test_luma_of_other_formats_equals_colour_then_luma(tmp_path, mode):
    rgb = textured(48, 80, seed=6)
    image = Image.fromarray(rgb)
    if mode == "RGBA":
        image.putalpha(Image.fromarray(rgb[..., 0]))
    image = image.convert(mode) if mode != "RGBA" else image
    path = tmp_path / ("frame.tif" if mode == "CMYK" else "frame.png")
    image.save(path)
    full = read_image(path, gray="luma")
    assert full.shape == (48, 80) and full.dtype == np.uint8
    for scale in (1.0, 0.5):  # reduced: still colour, area-downsampled before luma as before
        luma = K.to_gray(read_image(path, gray="luma", scale=scale), "luma")
        np.testing.assert_array_equal(luma, K.to_gray(read_image(path, scale=scale), "luma"))


@pytest.mark.parametrize("scale", [0.5, 0.25])
def test_scale_gives_the_dct_scaled_shape(tmp_path, scale):
    rgb = textured(101, 149, seed=5)  # odd sizes: libjpeg rounds up
    jpeg = write_jpeg(tmp_path / "odd.jpg", rgb, quality=95)
    png = write_png(tmp_path / "odd.png", rgb)
    expected = (math.ceil(101 * scale), math.ceil(149 * scale))
    assert decoded_shape(101, 149, scale) == expected
    small_jpeg = read_image(jpeg, scale=scale)
    small_luma = read_image(jpeg, gray="luma", scale=scale)
    small_png = read_image(png, scale=scale)
    assert small_jpeg.shape[:2] == small_luma.shape == small_png.shape[:2] == expected
    assert mean_abs(small_jpeg, small_png) < 6  # same picture, two downscalers
    options = make_options("fast", scale=scale)
    assert read_frame(jpeg, options).shape == read_frame(png, options).shape == expected


# ------------------------------------------------------- decode once per scan


@pytest.fixture(scope="module")
def clean_sequence(tmp_path_factory):
    return make_sequence(tmp_path_factory.mktemp("clean"), n=20, corrupt=())


@pytest.fixture
def decode_counter(monkeypatch):
    """Count every real decode: ``framediff.engine.read_image`` is what ``read_frame`` calls."""
    calls = Counter()
    real = framediff.engine.read_image

    def counting(path, *args, **kwargs):
        calls[str(path)] += 1
        return real(path, *args, **kwargs)

    monkeypatch.setattr(framediff.engine, "read_image", counting)
    return calls


@pytest.mark.parametrize("mode", ["reference", "keyframes"])
@pytest.mark.parametrize("chunk_size", [1, 6, 64])
def test_each_image_is_decoded_once(clean_sequence, decode_counter, mode, chunk_size):
    thresholds = ["l0_fraction=0.01"] if mode == "keyframes" else None
    df = scan(
        clean_sequence[0].parent, mode=mode, chunk_size=chunk_size, scheduler="synchronous", thresholds=thresholds
    )
    assert (df["status"] == "ok").all()
    assert set(decode_counter) == {str(p) for p in clean_sequence}
    assert set(decode_counter.values()) == {1}


@pytest.mark.parametrize("scheduler", ["synchronous", "threads", "processes"])
@pytest.mark.parametrize("chunk_size", [1, 6, 64])
def test_consecutive_decodes_each_image_exactly_once(clean_sequence, decode_counter, chunk_size, scheduler):
    """Chunk boundaries hand over one prepared frame instead of decoding it again."""
    if scheduler == "processes" and chunk_size != 6:
        pytest.skip("one process-pool run is enough (the counter only sees this process)")
    df = scan(
        clean_sequence[0].parent,
        chunk_size=chunk_size,
        scheduler="synchronous" if scheduler == "processes" else scheduler,
    )
    assert (df["status"] == "ok").all()
    assert set(decode_counter) == {str(p) for p in clean_sequence}
    assert set(decode_counter.values()) == {1}


def test_a_resumed_run_decodes_only_the_frame_before_its_first_chunk_again(clean_sequence, decode_counter, tmp_path):
    """A resumed run does not recompute finished chunks: their last frame is decoded once
    more, as the predecessor of the first chunk computed, and nothing else is."""
    from framediff.manifest import work_folder
    from framediff.scan import run_scan
    from framediff.sink import ReportSink

    out = tmp_path / "r.parquet"
    opts = framediff.make_options("fast")
    full = run_scan(clean_sequence[0].parent, options=opts, chunk_size=6, collect=True).table()
    # Interrupt a real run once its first two chunks are recorded, as a kill would.
    real = ReportSink.on_table

    class Interrupted(Exception):
        pass

    def dies_after_two(self, chunk, table, state):
        if chunk.number == 2:
            raise Interrupted
        real(self, chunk, table, state)

    ReportSink.on_table = dies_after_two
    try:
        with pytest.raises(Interrupted):
            run_scan(clean_sequence[0].parent, options=opts, chunk_size=6, output=out, scheduler="synchronous")
    finally:
        ReportSink.on_table = real
    assert work_folder(out).exists()
    decode_counter.clear()
    run_scan(clean_sequence[0].parent, options=opts, chunk_size=6, output=out, resume=True)
    assert decode_counter[str(clean_sequence[11])] == 1
    assert sum(decode_counter.values()) == len(clean_sequence) - 12 + 1
    got = pq.read_table(out)
    assert got.column("pair").to_pylist() == full.column("pair").to_pylist()
