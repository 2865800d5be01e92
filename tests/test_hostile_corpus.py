"""Over 200 hostile files among good frames: the scan returns, every bad file is an error
row of the right kind, every computable pair is computed, and it stays fast.

The corpus is written by :mod:`hostile_corpus` (seeded). Direct decoding tests below
check the good frames' quirks (orientation, 16-bit, palettes, CMYK, animated GIF) and
that ``framediff.decode`` raises nothing but :class:`DecodeError`, checks the declared
size before decoding, and leaves Pillow's global state and the warning filters alone.
"""

from __future__ import annotations

import json
import math
import os
import struct
import threading
import time
import tracemalloc
import warnings
from collections import Counter

import numpy as np
import pytest
import simplejpeg
from hostile_corpus import FRAME, LONG_GAP, MAX_PIXELS, make_corpus
from PIL import Image, ImageFile, ImageOps
from scan_fixtures import textured

import framediff
from framediff import kernels as K
from framediff.decode import DEFAULT_MAX_PIXELS, DecodeError, read_image
from framediff.engine import read_frame
from framediff.modes.consecutive import MAX_LOOKBACK
from framediff.scan import run_scan

#: The scan of ~240 small files takes 2-3 s here; the bound catches a hang or a bomb
#: that got decoded, not a slow machine.
TIME_LIMIT_S = 60


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    directory = tmp_path_factory.mktemp("hostile") / "frames"
    return directory, make_corpus(directory, seed=0)


@pytest.fixture(scope="module")
def scanned(corpus):
    directory, _expected = corpus
    options = framediff.make_options("fast", max_pixels=MAX_PIXELS)
    started = time.perf_counter()
    result = run_scan(
        directory, options=options, mode="consecutive", chunk_size=16, scheduler="threads", workers=2, collect=True
    )
    return result, time.perf_counter() - started


def expected_rows(expected: dict) -> dict:
    """{name: (status, kinds, index_a)} for every frame after the first, from the layout.

    A good frame is compared with the nearest good frame among the
    :data:`~framediff.modes.consecutive.MAX_LOOKBACK` before it (``no-reference`` when there is
    none); frames of different shapes give ``size-mismatch``.
    """
    names = list(expected)
    rows = {}
    for i, name in enumerate(names[1:], start=1):
        outcome = expected[name]
        if not outcome.good:
            rows[name] = ("error", outcome.kinds, None)
            continue
        window = range(i - 1, max(-1, i - 1 - MAX_LOOKBACK), -1)
        prev = next((j for j in window if expected[names[j]].good), None)
        if prev is None:
            rows[name] = ("error", ("no-reference",), None)
        elif expected[names[prev]].shape != outcome.shape:
            rows[name] = ("error", ("size-mismatch",), prev)
        else:
            rows[name] = ("ok", (), prev)
    return rows


# --------------------------------------------------------------------- the corpus


def test_the_corpus_is_large_and_mixed(corpus):
    _directory, expected = corpus
    bad = [e for e in expected.values() if not e.good]
    good = [e for e in expected.values() if e.good]
    assert len(bad) >= 200 and len(good) >= 30
    categories = {e.category for e in expected.values()}
    for needed in (
        "truncated-jpeg",
        "truncated-png",
        "truncated-tiff",
        "flipped-jpeg-scan",
        "flipped-jpeg-header",
        "flipped-png-header",
        "zero-byte",
        "text-named-image",
        "directory-named-image",
        "bomb-png-60000",
        "bomb-jpeg-60000",
        "bomb-png-ztxt",
        "png-named-jpg",
        "png16",
        "palette-transparency",
        "cmyk-jpeg",
        "exif-rotated-png",
        "gif-animated",
    ):
        assert needed in categories, needed
    # Deterministic: the same seed writes the same outcomes.
    kinds = Counter(k for e in bad for k in e.kinds)
    assert kinds["bomb"] >= 15 and kinds["empty"] == 10


# ----------------------------------------------------------------------- the scan


def test_the_scan_returns_quickly(scanned):
    result, seconds = scanned
    assert seconds < TIME_LIMIT_S
    assert result.summary["comparisons"] == result.table().num_rows


def test_every_bad_file_is_an_error_row_of_its_kind(corpus, scanned):
    _directory, expected = corpus
    table = scanned[0].table()
    rows = table.to_pylist()
    names = list(expected)
    assert [r["path_b"] for r in rows] == names[1:]  # one row per frame after the first, in order
    assert [r["pair"] for r in rows] == list(range(1, len(names)))
    wrong = []
    for row in rows:
        outcome = expected[row["path_b"]]
        if outcome.good:
            continue
        if row["status"] != "error" or row["error_kind"] not in outcome.kinds or not row["error"]:
            wrong.append((row["path_b"], outcome.kinds, row["status"], row["error_kind"], row["error"]))
    assert not wrong, wrong


def test_every_computable_pair_is_computed(corpus, scanned):
    _directory, expected = corpus
    rows = {r["path_b"]: r for r in scanned[0].table().to_pylist()}
    names = list(expected)
    want = expected_rows(expected)
    wrong = []
    for name, (status, kinds, prev) in want.items():
        row = rows[name]
        if not expected[name].good:
            continue
        if status == "ok":
            ok = (
                row["status"] == "ok"
                and row["index_a"] == prev
                and row["path_a"] == names[prev]
                and (row["height"], row["width"]) == FRAME
                and all(math.isfinite(row[m]) for m in ("l1_per_pixel", "l0_fraction", "kl"))
            )
        else:
            ok = row["status"] == "error" and row["error_kind"] in kinds
        if not ok:
            wrong.append((name, status, kinds, prev, row["status"], row["error_kind"], row["index_a"], row["error"]))
    assert not wrong, wrong
    n_ok = sum(1 for status, _, _ in want.values() if status == "ok")
    assert n_ok >= 30
    summary = scanned[0].summary
    assert summary["ok"] == n_ok
    assert summary["errors"] == len(want) - n_ok
    # The layout's intended exceptions did happen: one frame after the long gap has no
    # reference, and the odd-size frame mismatches both ways.
    assert summary["errors_by_kind"]["no-reference"] == 1
    assert summary["errors_by_kind"]["size-mismatch"] == 2
    assert LONG_GAP > MAX_LOOKBACK


def test_exif_rotated_frames_equal_their_upright_copies_in_the_scan(corpus, scanned):
    _directory, expected = corpus
    rows = {r["path_b"]: r for r in scanned[0].table().to_pylist()}
    for ext in ("png", "tif"):
        (name,) = [n for n, e in expected.items() if e.category == f"exif-rotated-{ext}"]
        (upright,) = [n for n, e in expected.items() if e.category == f"upright-{ext}"]
        assert rows[name]["path_a"] == upright  # the layout puts them next to each other
        assert rows[name]["l1"] == 0 and rows[name]["max_abs"] == 0


def test_the_summary_counts_the_error_rows(scanned):
    result = scanned[0]
    table = result.table()
    kinds = Counter(k for k in table.column("error_kind").to_pylist() if k is not None)
    assert result.summary["errors_by_kind"] == dict(sorted(kinds.items()))


def test_the_cli_scans_the_corpus_without_a_traceback(corpus, tmp_path, capfd):
    directory, expected = corpus
    report = tmp_path / "out" / "report.parquet"
    from framediff.cli import main

    code = main(
        [
            "scan",
            str(directory),
            "-o",
            str(report),
            "--max-pixels",
            str(MAX_PIXELS),
            "--chunk-size",
            "16",
            "--workers",
            "2",
            "--scheduler",
            "threads",
            "-q",
        ]
    )
    out, err = capfd.readouterr()
    assert code == 1, err  # some inputs could not be read
    assert "Traceback" not in err and "Traceback" not in out
    import pyarrow.parquet as pq

    table = pq.read_table(report)
    assert table.num_rows == len(expected) - 1
    summary = json.loads(report.with_name("report.parquet.summary.json").read_text(encoding="utf-8"))
    want = expected_rows(expected)
    assert summary["ok"] == sum(1 for status, _, _ in want.values() if status == "ok")
    assert summary["errors"] == table.num_rows - summary["ok"]


# ------------------------------------------------------------ decoding the good frames


def corpus_file(corpus, category):
    """The first file of ``category`` in the corpus."""
    directory, expected = corpus
    return directory / next(n for n, e in expected.items() if e.category == category)


@pytest.mark.parametrize("ext", ["png", "tif"])
def test_exif_rotated_equals_upright_exactly(corpus, ext):
    rotated, upright = corpus_file(corpus, f"exif-rotated-{ext}"), corpus_file(corpus, f"upright-{ext}")
    with Image.open(upright) as im:
        truth = np.asarray(im.convert("RGB"))
    assert truth.shape[:2] == FRAME
    image = read_image(rotated)
    assert image.shape == truth.shape
    np.testing.assert_array_equal(image, truth)
    np.testing.assert_array_equal(read_frame(rotated, framediff.make_options("fast")), K.to_gray(truth, "luma"))


@pytest.mark.parametrize("fmt", ["png", "jpeg"])
@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_matches_pillow(tmp_path, orientation, fmt):
    stored = textured(24, 40, seed=orientation)
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / f"o{orientation}.{fmt}"
    Image.fromarray(stored).save(path, exif=exif, **({"quality": 95} if fmt == "jpeg" else {}))
    with Image.open(path) as im:
        reference = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    image = read_image(path)
    if fmt == "png":
        np.testing.assert_array_equal(image, reference)
    else:  # libjpeg-turbo and Pillow's libjpeg upsample chroma slightly differently
        assert image.shape == reference.shape
        assert np.abs(image.astype(int) - reference.astype(int)).mean() < 2


def test_a_16_bit_png_stays_uint16(corpus):
    directory, expected = corpus
    paths = [directory / n for n, e in expected.items() if e.category == "png16"]
    for path in paths:
        with Image.open(path) as im:
            assert im.mode.startswith("I;16")
            truth = np.asarray(im)
        image = read_image(path)
        assert image.dtype == np.uint16 and image.shape == FRAME
        assert image.max() > 255  # really 16-bit content
        np.testing.assert_array_equal(image, truth.astype(np.uint16))
        assert read_frame(path, framediff.make_options("fast")).dtype == np.uint16


def test_palette_with_transparency_keeps_colours_and_drops_alpha_in_gray(corpus):
    path = corpus_file(corpus, "palette-transparency")
    with Image.open(path) as im:
        assert im.mode == "P" and im.info["transparency"] == 0
        index = np.asarray(im)
    rgba = read_image(path)
    assert rgba.shape == (*FRAME, 4) and rgba.dtype == np.uint8
    palette = np.array([(10, 20, 30), (255, 0, 0), (0, 255, 0), (0, 0, 255)], np.uint8)
    np.testing.assert_array_equal(rgba[..., :3], palette[index])
    np.testing.assert_array_equal(rgba[..., 3], np.where(index == 0, 0, 255))
    # Gray ignores alpha: a transparent pixel is the luma of its colour, not black.
    gray = read_frame(path, framediff.make_options("fast"))
    np.testing.assert_array_equal(gray, K.to_gray(palette[index], "luma"))
    assert gray[index == 0].min() > 0


def test_cmyk_jpeg_converts_like_pillow(corpus):
    path = corpus_file(corpus, "cmyk-jpeg")
    with Image.open(path) as im:
        assert im.mode == "CMYK"
        truth = np.asarray(im.convert("RGB"))
    image = read_image(path)
    assert image.shape == (*FRAME, 3) and image.dtype == np.uint8
    np.testing.assert_array_equal(image, truth)
    # Pillow's conversion of this (Adobe, inverted) CMYK file gives the picture back.
    assert read_frame(path, framediff.make_options("fast")).shape == FRAME


def test_animated_gif_gives_its_first_frame(corpus):
    path = corpus_file(corpus, "gif-animated")
    with Image.open(path) as im:
        assert im.n_frames == 3
        first = np.asarray(im.convert("RGBA"))
        im.seek(1)
        second = np.asarray(im.convert("RGBA"))
    assert np.abs(first.astype(int) - second.astype(int)).mean() > 5  # frames differ
    np.testing.assert_array_equal(read_image(path), first)


@pytest.mark.parametrize("category", ["png-named-jpg", "jpeg-named-png", "webp-lossless", "bmp", "tiff-deflate"])
def test_other_good_frames_decode(corpus, category):
    image = read_image(corpus_file(corpus, category))
    assert image.shape[:2] == FRAME


# --------------------------------------------------------- nothing but DecodeError


@pytest.mark.parametrize(
    "exc, kind",
    [
        (MemoryError(), "bomb"),
        (RuntimeError("libjpeg went away"), "corrupt"),
        (ValueError("Premature end of JPEG file"), "truncated"),
        (ValueError("Unsupported JPEG data precision 12"), "unsupported"),
    ],
)
def test_jpeg_decoder_failures_become_decode_errors(corpus, monkeypatch, exc, kind):
    def broken(*args, **kwargs):
        raise exc

    monkeypatch.setattr(simplejpeg, "decode_jpeg", broken)
    with pytest.raises(DecodeError) as info:
        read_image(corpus_file(corpus, "jpeg-gray"), gray="luma")
    assert info.value.kind == kind


@pytest.mark.parametrize(
    "exc, kind",
    [
        (struct.error("unpack requires a buffer"), "corrupt"),
        (SyntaxError("broken PNG file"), "corrupt"),
        (ValueError("Decompressed Data Too Large"), "bomb"),
        (MemoryError(), "bomb"),
        (Image.DecompressionBombError("too big"), "bomb"),
        (Image.DecompressionBombWarning("too big"), "bomb"),  # what filterwarnings=error raises
        (EOFError(), "truncated"),
        (OSError("image file is truncated"), "truncated"),
        (IndexError("list index out of range"), "corrupt"),
        (KeyError(273), "corrupt"),
        (ZeroDivisionError(), "corrupt"),
    ],
)
@pytest.mark.parametrize("stage", ["open", "load"])
def test_pillow_failures_become_decode_errors(corpus, monkeypatch, exc, kind, stage):
    def broken(*args, **kwargs):
        raise exc

    if stage == "open":
        monkeypatch.setattr(Image, "open", broken)
    else:
        monkeypatch.setattr(ImageFile.ImageFile, "load", broken)
    with pytest.raises(DecodeError) as info:
        read_image(corpus_file(corpus, "png"))
    assert info.value.kind == kind
    assert info.value.reason


@pytest.fixture
def spies(monkeypatch):
    """Count pixel decodes: Pillow's ``ImageFile.load`` and libjpeg-turbo's ``decode_jpeg``."""
    calls = Counter()
    real_load, real_decode, real_open = ImageFile.ImageFile.load, simplejpeg.decode_jpeg, Image.open

    def load(self, *a, **k):
        calls["pillow_load"] += 1
        return real_load(self, *a, **k)

    def decode(*a, **k):
        calls["decode_jpeg"] += 1
        return real_decode(*a, **k)

    def open_(*a, **k):
        calls["pillow_open"] += 1
        return real_open(*a, **k)

    monkeypatch.setattr(ImageFile.ImageFile, "load", load)
    monkeypatch.setattr(simplejpeg, "decode_jpeg", decode)
    monkeypatch.setattr(Image, "open", open_)
    return calls


def test_bombs_are_refused_before_any_pixel_is_decoded(corpus, spies):
    directory, expected = corpus
    bombs = [n for n, e in expected.items() if e.kinds == ("bomb",)]
    assert len(bombs) >= 15
    for name in bombs:
        spies.clear()
        with pytest.raises(DecodeError) as info:
            read_image(directory / name, gray="luma", max_pixels=MAX_PIXELS)
        assert info.value.kind == "bomb", name
        assert spies["decode_jpeg"] == 0, name
        if expected[name].category != "bomb-png-itxt":
            # Refused from the header (declared size) or while Pillow reads the chunks
            # before the pixel data (text bombs, which it inflates only up to its limit);
            # the iTXt bomb sits after the pixel data, so only loading reaches it.
            assert spies["pillow_load"] == 0, name


def test_a_text_chunk_bomb_costs_little_memory(corpus):
    path = corpus_file(corpus, "bomb-png-ztxt")
    assert path.stat().st_size < 200_000  # 65 MiB of text, deflated
    tracemalloc.start()
    try:
        with pytest.raises(DecodeError, match="bomb"):
            read_image(path, max_pixels=MAX_PIXELS)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20  # Pillow inflates at most 1 MiB of it


def test_the_jpeg_fast_path_does_not_open_pillow(corpus, spies):
    path = corpus_file(corpus, "jpeg-gray")
    slot = np.empty(FRAME, np.uint8)
    image = read_image(path, gray="luma", out=slot)
    assert np.shares_memory(image, slot)  # decoded straight into the caller's buffer
    assert spies == Counter(decode_jpeg=1)
    spies.clear()
    read_image(corpus_file(corpus, "jpeg"))  # colour too
    assert spies == Counter(decode_jpeg=1)


def test_pillow_limit_and_warning_filters_are_left_as_found(corpus):
    """Many threads decoding bombs and good frames at once, as a scan does."""
    directory, expected = corpus
    names = [n for n, e in expected.items() if e.good or "bomb" in e.kinds]
    limit, filters = Image.MAX_IMAGE_PIXELS, list(warnings.filters)
    failures = []

    def work(k):
        for name in names[k::4]:
            try:
                read_image(directory / name, max_pixels=MAX_PIXELS)
            except DecodeError:
                pass
            except BaseException as exc:  # pragma: no cover - what this test is for
                failures.append((name, exc))

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures
    assert Image.MAX_IMAGE_PIXELS == limit
    assert warnings.filters == filters


def test_a_size_between_pillows_limits_is_ours_to_decide(tmp_path):
    """Pillow warns above MAX_IMAGE_PIXELS (an error under filterwarnings=error) and
    refuses above twice that; --max-pixels decides instead, both ways."""
    from hostile_corpus import _png_declaring

    side = math.isqrt(Image.MAX_IMAGE_PIXELS) + 100  # just above Pillow's warning limit
    path = tmp_path / "big.png"
    path.write_bytes(_png_declaring(side, side))
    with pytest.raises(DecodeError) as info:
        read_image(path)  # default --max-pixels: Pillow's own limit
    assert info.value.kind == "bomb"
    with pytest.raises(DecodeError) as info:
        read_image(path, max_pixels=2 * side * side)  # allowed: decoded, and found empty
    assert info.value.kind == "truncated"
    assert Image.MAX_IMAGE_PIXELS == DEFAULT_MAX_PIXELS


def test_special_files_are_not_read(corpus):
    directory, expected = corpus
    for category, reason in (
        ("symlink-to-dev-zero", "device"),
        ("directory-named-image", "directory"),
    ):
        for name in [n for n, e in expected.items() if e.category == category]:
            with pytest.raises(DecodeError, match=reason) as info:
                read_image(directory / name)
            assert info.value.kind == "not-a-file"


# ------------------------------------------------------- for the scan's maintainers


def test_a_16_bit_frame_after_an_8_bit_frame_does_not_end_the_scan(tmp_path):
    h, w = FRAME
    Image.fromarray(textured(h, w, seed=1)).save(tmp_path / "a.jpg", quality=90)
    deep = (np.add.outer(np.arange(h) * 700, np.arange(w) * 300)).astype(np.uint16)
    Image.fromarray(deep).save(tmp_path / "b.png")
    result = run_scan(tmp_path, options=framediff.make_options("fast"), scheduler="synchronous", collect=True)
    (row,) = result.table().to_pylist()
    assert row["status"] == "ok" or row["error_kind"]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes need a POSIX system")
def test_a_pipe_is_read_like_a_file(corpus, tmp_path):
    """``framediff compare <(command) b.png`` hands over a pipe: it is read, not refused."""
    data = corpus_file(corpus, "png").read_bytes()
    pipe = tmp_path / "frame.png"
    os.mkfifo(pipe)

    def feed():
        with open(pipe, "wb") as fh:
            fh.write(data)

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    image = read_image(pipe)
    writer.join(5)
    np.testing.assert_array_equal(image, read_image(corpus_file(corpus, "png")))
