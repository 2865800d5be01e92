"""Small image files and sequences shared by the scan tests (plain helpers, no fixtures).

Everything is written under a directory the caller passes (``tmp_path``), deterministic
and small, so the whole scan test set stays fast.
"""

from __future__ import annotations

import math
import os
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from framediff.synthetic import make_timelapse

#: The frame size used by the scan tests: small, but not a multiple of 16 in width / 2.
SIZE = (64, 96)
#: Relative tolerance for "this scan row equals compare() on that pair".
RTOL = 1e-12


def textured(height: int = SIZE[0], width: int = SIZE[1], *, seed: int = 0) -> np.ndarray:
    """A deterministic uint8 RGB picture: gradients, a bright square and mild noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    image = np.stack([40 + 150 * xx / width, 30 + 170 * yy / height, 200 - 120 * (xx + yy) / (width + height)], -1)
    image[height // 4 : height // 2, width // 5 : width // 3] = (230, 220, 60)
    image += rng.normal(0, 3, image.shape)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def write_jpeg(path, rgb: np.ndarray, *, quality: int = 92, exif=None, mode: str | None = None) -> Path:
    """Encode ``rgb`` (or gray) as a baseline JPEG with Pillow; optional Exif and mode."""
    image = Image.fromarray(rgb)
    if mode is not None:
        image = image.convert(mode)
    kwargs = {"quality": quality}
    if exif is not None:
        kwargs["exif"] = exif
    image.save(path, format="JPEG", **kwargs)
    return Path(path)


def write_png(path, array: np.ndarray) -> Path:
    """Lossless PNG of a uint8 (or uint16 gray) array."""
    Image.fromarray(array).save(path, format="PNG")
    return Path(path)


def png_declaring(path, width: int, height: int) -> Path:
    """A tiny PNG whose header declares ``width`` x ``height`` (a decompression bomb's shape).

    Only the signature, a valid IHDR and IEND are written: a reader that checks the
    declared size first refuses it without allocating anything.
    """

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit gray
    Path(path).write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))
    return Path(path)


def corrupt_scan_data(path) -> Path:
    """Flip bytes inside a JPEG's entropy-coded data, keeping its length and EOI marker."""
    data = bytearray(Path(path).read_bytes())
    start = data.index(b"\xff\xda")
    (header,) = struct.unpack(">H", data[start + 2 : start + 4])
    first = start + 2 + header
    for k in range(first + 8, len(data) - 4, 23):
        if data[k] != 0xFF and data[k] ^ 0x5A != 0xFF:
            data[k] ^= 0x5A
    Path(path).write_bytes(bytes(data))
    return Path(path)


def truncate(path, keep: float = 0.4) -> Path:
    """Cut a file to a fraction of its bytes (a half-copied upload)."""
    data = Path(path).read_bytes()
    Path(path).write_bytes(data[: int(len(data) * keep)])
    return Path(path)


def make_sequence(directory, *, n: int = 30, size=SIZE, corrupt=(15,), seed: int = 0) -> list:
    """``n`` synthetic JPEG frames (noise + slow drift), the ``corrupt`` ones truncated.

    Returns the frame paths in time order (``frame_00001.jpg`` ...).
    """
    timelapse = make_timelapse(directory, n_frames=n, size=size, seed=seed, events=False)
    for i in corrupt:
        truncate(timelapse.frames[i], 0.3)
    return list(timelapse.frames)


def drift_sequence(directory, *, n: int = 40, step: int = 1, size=(32, 48)) -> list:
    """Gray PNG frames whose brightness rises by ``step`` levels per frame, exactly."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[0 : size[0], 0 : size[1]]
    base = (40 + 60 * xx / size[1] + 30 * yy / size[0]).astype(np.int64)
    paths = []
    for i in range(n):
        paths.append(write_png(directory / f"img_{i:03d}.png", np.clip(base + step * i, 0, 255).astype(np.uint8)))
    return paths


def step_sequence(directory, n: int, steps, *, size=(32, 48)) -> list:
    """Gray PNG frames that change completely at each index in ``steps`` and stay put otherwise.

    Consecutive comparison ``i-1 -> i`` is therefore changed exactly for ``i in steps``.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    cells = (size[0] // 8, size[1] // 8)
    textures = [
        np.kron(np.random.default_rng(100 + k).integers(0, 256, cells, dtype=np.uint8), np.ones((8, 8), np.uint8))
        for k in range(len(steps) + 1)
    ]  # blocks of random grey levels: every level a clearly different picture
    paths = []
    level = 0
    for i in range(n):
        if i in steps:
            level += 1
        paths.append(write_png(directory / f"img_{i:03d}.png", textures[level]))
    return paths


def assert_rows_match_compare(table, root, options) -> int:
    """Every ok row of a scan equals ``framediff.compare`` on that pair (relative 1e-12).

    Returns the number of rows checked.
    """
    from framediff import compare

    checked = 0
    for row in table.to_pylist():
        if row["status"] != "ok" or row["index_a"] is None:
            continue
        expected = compare(os.path.join(root, row["path_a"]), os.path.join(root, row["path_b"]), options=options)
        assert (row["height"], row["width"]) == tuple(expected["shape"])
        for name in options.metrics:
            got, want = row[name], expected[name]
            assert math.isclose(got, want, rel_tol=RTOL, abs_tol=0.0) or (math.isnan(got) and math.isnan(want)), (
                f"pair {row['pair']} ({row['path_a']} -> {row['path_b']}): {name} scan={got!r} compare={want!r}"
            )
        checked += 1
    return checked


def run_cli(capsys, args) -> tuple[int, str, str]:
    """``framediff.cli.main(args)`` in-process: (exit code, stdout, stderr)."""
    from framediff.cli import main

    capsys.readouterr()
    try:
        code = main([str(a) for a in args])
    except SystemExit as exc:  # argparse usage errors and --help
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err
