"""Finding the inputs of a scan: directories, globs, listing files, order, what is skipped."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scan_fixtures import textured, write_jpeg, write_png

from framediff.discover import discover, natural_key
from framediff.errors import FramediffError
from framediff.scan import scan


def names(found) -> list[str]:
    return [found.relative(p) for p in found.paths]


@pytest.fixture
def tree(tmp_path) -> Path:
    """root/{a.png, b.JPG, c.Png, notes.txt, data.csv, sub/{d.jpeg, e.txt, deeper/f.PNG}}."""
    root = tmp_path / "root"
    (root / "sub" / "deeper").mkdir(parents=True)
    image = textured(16, 24)
    write_png(root / "a.png", image)
    write_jpeg(root / "b.JPG", image)
    write_png(root / "c.Png", image)
    (root / "notes.txt").write_text("not an image\n")
    (root / "data.csv").write_text("a,b\n")
    write_jpeg(root / "sub" / "d.jpeg", image)
    (root / "sub" / "e.txt").write_text("x")
    write_png(root / "sub" / "deeper" / "f.PNG", image)
    return root


def test_directory_is_not_recursive_by_default_and_skips_non_images(tree):
    found = discover(tree)
    assert names(found) == ["a.png", "b.JPG", "c.Png"]  # extensions matched case-insensitively
    assert found.skipped_non_image == 2
    assert found.root == tree


def test_recursive_directory_descends_and_counts_every_skipped_file(tree):
    found = discover(tree, recursive=True)
    assert names(found) == ["a.png", "b.JPG", "c.Png", "sub/d.jpeg", "sub/deeper/f.PNG"]
    assert found.skipped_non_image == 3


def test_glob_patterns(tree):
    found = discover(os.path.join(tree, "*"))
    assert names(found) == ["a.png", "b.JPG", "c.Png"]
    assert found.skipped_non_image == 2  # the directory 'sub' matched too, but is not a file
    deep = discover(os.path.join(tree, "**", "*"), recursive=True)
    assert names(deep) == ["a.png", "b.JPG", "c.Png", "sub/d.jpeg", "sub/deeper/f.PNG"]
    only_png = discover(os.path.join(tree, "*.png"))
    assert names(only_png) == ["a.png"]  # the pattern itself is the user's: glob stays case-sensitive


def test_several_sources_in_one_call(tree):
    found = discover([os.path.join(tree, "a.png"), os.path.join(tree, "sub")])
    assert sorted(p.name for p in found.paths) == ["a.png", "d.jpeg"]


def test_listing_file_with_comments_relative_and_absolute_paths(tree, tmp_path):
    listing = tmp_path / "inputs.lst"
    listing.write_text(
        f"# frames to compare\nroot/c.Png\n\n{tree / 'sub' / 'd.jpeg'}\nroot/a.png\n",
        encoding="utf-8",
    )
    found = discover(listing, sort="none")
    assert [p.resolve() for p in found.paths] == [
        (tree / "c.Png").resolve(),
        (tree / "sub" / "d.jpeg").resolve(),
        (tree / "a.png").resolve(),
    ]
    # Natural sort of the same listing orders by the path relative to the common root.
    assert [p.name for p in discover(listing).paths] == ["a.png", "c.Png", "d.jpeg"]


def test_natural_sort_orders_numbers_by_value(tmp_path):
    image = textured(8, 8)
    for name in ("img_10.png", "img_2.png", "img_1.png", "IMG_3.png", "img_100.png", "img_20.png"):
        write_png(tmp_path / name, image)
    assert names(discover(tmp_path)) == [
        "img_1.png",
        "img_2.png",
        "IMG_3.png",
        "img_10.png",
        "img_20.png",
        "img_100.png",
    ]
    assert natural_key("img_2") < natural_key("img_10")


def test_mtime_sort(tmp_path):
    image = textured(8, 8)
    stamps = {"a.png": 3_000_000, "b.png": 1_000_000, "c.png": 2_000_000}
    for name, stamp in stamps.items():
        write_png(tmp_path / name, image)
        os.utime(tmp_path / name, (stamp, stamp))
    assert names(discover(tmp_path, sort="mtime")) == ["b.png", "c.png", "a.png"]
    assert names(discover(tmp_path)) == ["a.png", "b.png", "c.png"]


def _exif_taken(stamp: str) -> Image.Exif:
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9003] = stamp  # Exif IFD, DateTimeOriginal
    return exif


def test_exif_sort_uses_date_time_original(tmp_path):
    image = textured(16, 16)
    write_jpeg(tmp_path / "a.jpg", image, exif=_exif_taken("2021:06:01 12:00:00"))
    write_jpeg(tmp_path / "b.jpg", image, exif=_exif_taken("2019:01:01 08:30:00"))
    write_jpeg(tmp_path / "c.jpg", image, exif=_exif_taken("2020:12:31 23:59:59"))
    write_jpeg(tmp_path / "d.jpg", image)  # no EXIF: after the dated ones
    with Image.open(tmp_path / "b.jpg") as im:  # the files really carry the tag where cameras put it
        assert im.getexif().get_ifd(0x8769)[0x9003] == "2019:01:01 08:30:00"
    assert names(discover(tmp_path, sort="exif")) == ["b.jpg", "c.jpg", "a.jpg", "d.jpg"]


def test_symlink_loop_is_never_followed_twice(tree):
    (tree / "sub" / "loop").symlink_to(tree, target_is_directory=True)  # a link to an ancestor
    (tree / "again").symlink_to(tree / "sub", target_is_directory=True)  # a second way into sub
    found = discover(tree, recursive=True)
    resolved = [p.resolve() for p in found.paths]
    assert len(resolved) == len(set(resolved)) == 5
    assert found.symlink_loops >= 2
    df = scan(tree, recursive=True, scheduler="synchronous")
    assert df.attrs["summary"]["symlink_loops_skipped"] == found.symlink_loops
    assert df.attrs["summary"]["inputs"] == 5


def test_unreadable_directory_is_counted_not_fatal(tree):
    locked = tree / "sub" / "deeper"
    locked.chmod(0)
    try:
        if os.geteuid() == 0 or os.access(locked, os.R_OK):
            pytest.skip("running as root (or permissions not enforced): chmod 000 does not block listing")
        try:
            os.listdir(locked)
        except PermissionError:
            pass
        else:
            pytest.skip("chmod 000 did not make the directory unlistable on this filesystem")
        found = discover(tree, recursive=True)
        assert names(found) == ["a.png", "b.JPG", "c.Png", "sub/d.jpeg"]
        assert found.unreadable_dirs == ["sub/deeper"]
        df = scan(tree, recursive=True, scheduler="synchronous")
        assert df.attrs["summary"]["unreadable_dirs"] == ["sub/deeper"]
    finally:
        locked.chmod(0o755)


def test_non_images_are_skipped_and_counted_in_the_summary(tree):
    df = scan(tree, scheduler="synchronous", recursive=True)
    summary = df.attrs["summary"]
    assert summary["skipped_non_image"] == 3
    assert summary["inputs"] == 5
    assert len(df) == 4


def test_missing_source_and_unknown_sort_are_errors(tmp_path):
    with pytest.raises(FramediffError, match="no such file or directory"):
        discover(tmp_path / "nowhere")
    with pytest.raises(FramediffError, match="unknown sort order"):
        discover(tmp_path, sort="size")


def test_empty_directory_scan_is_an_error(tmp_path):
    (tmp_path / "readme.txt").write_text("nothing here")
    with pytest.raises(FramediffError, match="no images found"):
        scan(tmp_path)


def test_png_named_jpg_is_discovered_and_read(tmp_path):
    image = textured(16, 24)
    write_png(tmp_path / "a.jpg", image)
    write_png(tmp_path / "b.jpg", np.ascontiguousarray(image[::-1]))
    df = scan(tmp_path, scheduler="synchronous")
    assert df["status"].tolist() == ["ok"]


# ------------------------------------------------ odd sources: one line, never a traceback


def _deep_tree(base, depth):
    os.mkdir(base)
    path = base
    for _ in range(depth):
        path = os.path.join(path, "d")
        os.mkdir(path)  # one level at a time: os.makedirs recurses too
    return path


def _remove_deep_tree(base, depth):
    """Bottom-up, one level at a time: pytest's own clean-up (shutil.rmtree) recurses
    per level and would fail on this tree in a later pytest run."""
    for level in range(depth, -1, -1):
        path = os.path.join(base, *(["d"] * level))
        for entry in os.scandir(path):
            if not entry.is_dir(follow_symlinks=False):
                os.remove(entry.path)
        os.rmdir(path)


@pytest.fixture
def deep_tree(tmp_path):
    base = os.fspath(tmp_path / "tree")
    yield _deep_tree(base, 1200)
    _remove_deep_tree(base, 1200)


@pytest.mark.slow
def test_recursive_walk_of_1200_nested_folders(tmp_path, deep_tree):
    deepest = deep_tree
    write_png(os.path.join(deepest, "z.png"), textured(8, 8))
    write_png(tmp_path / "tree" / "a.png", textured(8, 8))
    found = discover(tmp_path / "tree", recursive=True, sort="none")
    assert [p.name for p in found.paths] == ["a.png", "z.png"]
    assert found.relative(found.paths[1]) == "d/" * 1200 + "z.png"
    with pytest.raises(FramediffError, match="nested too deep for a glob pattern"):
        discover(os.path.join(tmp_path, "tree", "**", "*.png"), recursive=True)


def test_walk_order_is_top_down_in_natural_order(tmp_path):
    for sub in ("b10", "b2", "a"):
        (tmp_path / sub / "x").mkdir(parents=True)
        write_png(tmp_path / sub / "x" / "f.png", textured(8, 8))
        write_png(tmp_path / sub / "f.png", textured(8, 8))
    found = discover(tmp_path, recursive=True, sort="none")
    assert [found.relative(p) for p in found.paths] == [
        "a/f.png",
        "a/x/f.png",
        "b2/f.png",
        "b2/x/f.png",
        "b10/f.png",
        "b10/x/f.png",
    ]


def test_a_single_image_without_an_image_extension_is_one_image(tmp_path):
    write_png(tmp_path / "photo.avif", textured(8, 8))  # a PNG named otherwise
    found = discover(tmp_path / "photo.avif")
    assert found.paths == [tmp_path / "photo.avif"]


@pytest.mark.parametrize("name", ["report.parquet", "data.bin"])
def test_a_binary_source_is_a_one_line_error(tmp_path, name):
    (tmp_path / name).write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(4096))
    with pytest.raises(FramediffError) as info:
        discover(tmp_path / name)
    message = str(info.value)
    assert message.startswith(f"{tmp_path / name}: a binary file") and "\n" not in message


def test_read_text_file_refuses_binary_and_keeps_non_utf8_names(tmp_path):
    from framediff.discover import read_text_file

    (tmp_path / "pairs.csv").write_bytes(b"a.png,b\xff.png\n")
    assert read_text_file(tmp_path / "pairs.csv", "pair list") == "a.png,b\udcff.png\n"
    (tmp_path / "bin.csv").write_bytes(b"PAR1\x00\x15")
    with pytest.raises(FramediffError, match=r"bin.csv: a binary file, not a text pair list$"):
        read_text_file(tmp_path / "bin.csv", "pair list")


def test_no_images_names_the_sources_as_text_not_a_list(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("x")
    with pytest.raises(FramediffError) as info:
        discover([tmp_path / "empty"])
    assert str(info.value) == f"{tmp_path / 'empty'}: no images found (1 file without an image extension)"


def test_root_is_absolute_whatever_the_working_directory(tmp_path, monkeypatch):
    (tmp_path / "in").mkdir()
    write_png(tmp_path / "in" / "a.png", textured(8, 8))
    monkeypatch.chdir(tmp_path)
    found = discover("in")
    assert found.root == tmp_path / "in" and found.root.is_absolute()
    assert found.relative(found.paths[0]) == "a.png"


def test_a_report_stores_its_input_root_absolute(tmp_path, monkeypatch):
    import json

    import pyarrow.parquet as pq

    (tmp_path / "d" / "big").mkdir(parents=True)
    for i in range(2):
        write_png(tmp_path / "d" / "big" / f"f{i}.png", textured(8, 8, seed=i))
    monkeypatch.chdir(tmp_path)
    scan("d/big", output="r.parquet")
    meta = json.loads(pq.read_schema(tmp_path / "r.parquet").metadata[b"framediff"])
    assert meta["root"] == str(tmp_path / "d" / "big")


def test_relative_path_keeps_the_bytes_of_a_non_utf8_name(tmp_path):
    raw = os.path.join(os.fsencode(tmp_path), b"frame_\xff_01.png")
    with open(raw, "wb") as fh:
        fh.write(b"x")
    found = discover(tmp_path)
    (path,) = found.paths
    assert found.relative(path) == "frame_\\xff_01.png"  # the report's text
    copy_name = found.relative_path(path)  # what a copy of it must be called
    assert os.fsencode(copy_name) == b"frame_\xff_01.png"
    assert os.path.exists(os.path.join(tmp_path, copy_name))


def test_no_images_at_urls_names_them_as_text(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "notes.txt").write_text("x")
    urls = [f"file://{tmp_path / 'a'}", f"file://{tmp_path / 'b'}"]
    with pytest.raises(FramediffError) as info:
        discover(urls)
    assert str(info.value) == f"{urls[0]}, {urls[1]}: no images found (1 file without an image extension)"
