"""``framediff compare``: the command line on top of ``compare()``.

Runs ``framediff.cli.main`` in-process (stdout/stderr through ``capsys``), plus one real
subprocess of the installed console script. The classic recipe is recomputed here
independently (imageio, ``np.average`` over channels, ``(arr - amin) * 255 / rng``,
``sum(abs(diff))`` and ``np.linalg.norm(diff.ravel(), 0)``) and the printed lines must
carry exactly its numbers.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import sys
from pathlib import Path

import imageio.v2 as imageio
import imageio.v3 as iio
import numpy as np
import pytest
import simplejpeg
from skimage import data

from framediff.cli import main
from framediff.kernels import gpu_available
from framediff.metrics import HIST_METRICS, NORM_METRICS

CLASSIC_LINES = re.compile(
    r"\AManhattan norm: (?P<l1>\S+) / per pixel: (?P<l1pp>\S+)\n"
    r"Zero norm: (?P<l0>\S+) / per pixel: (?P<l0pp>\S+)\n\Z"
)

no_gpu = pytest.mark.skipif(gpu_available(), reason="this machine has a usable GPU")


def classic_norms(file1, file2):
    """The classic script, step by step: (Manhattan norm, zero norm, pixel count)."""

    def to_grayscale(arr):
        return np.average(arr, -1) if len(arr.shape) == 3 else arr

    def normalize(arr):
        rng = arr.max() - arr.min()
        amin = arr.min()
        return (arr - amin) * 255 / rng

    img1 = to_grayscale(imageio.imread(file1).astype(float))
    img2 = to_grayscale(imageio.imread(file2).astype(float))
    diff = normalize(img1) - normalize(img2)
    m_norm = np.sum(np.abs(diff))
    z_norm = np.linalg.norm(diff.ravel(), 0)
    return float(m_norm), float(z_norm), img1.size


@pytest.fixture(autouse=True)
def _no_device_env(monkeypatch):
    monkeypatch.delenv("FRAMEDIFF_DEVICE", raising=False)


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """Real photographs (and broken files) as files; returns name -> path string."""
    d = tmp_path_factory.mktemp("cli")
    rng = np.random.default_rng(42)
    astronaut = data.astronaut()
    moved = np.roll(astronaut, (4, -6), axis=(0, 1)).astype(np.int16) + rng.integers(-6, 7, astronaut.shape)
    images = {
        "astronaut.png": astronaut,
        "astronaut-moved.png": np.clip(moved, 0, 255).astype(np.uint8),
        "camera.png": data.camera(),
        "moon.png": data.moon(),
        "coffee.png": data.coffee(),
    }
    paths = {}
    for name, image in images.items():
        iio.imwrite(d / name, image)
        paths[name] = str(d / name)
    jpeg = simplejpeg.encode_jpeg(astronaut, quality=90)
    (d / "astronaut.jpg").write_bytes(jpeg)
    (d / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 3])
    (d / "x.png").write_text("not an image\n")
    (d / "random.png").write_bytes(rng.bytes(3000))
    for name in ("astronaut.jpg", "truncated.jpg", "x.png", "random.png"):
        paths[name] = str(d / name)
    paths["missing.png"] = str(d / "missing.png")
    return paths


def run(capsys, *argv):
    code = main(["compare", *argv])
    out, err = capsys.readouterr()
    return code, out, err


# --------------------------------------------------------------------------- classic output


@pytest.mark.parametrize(
    "first, second",
    [("astronaut.png", "astronaut-moved.png"), ("camera.png", "moon.png"), ("astronaut.png", "camera.png")],
)
def test_default_output_is_the_classic_two_lines_with_its_numbers(capsys, photos, first, second):
    code, out, err = run(capsys, photos[first], photos[second])
    assert code == 0 and err == ""
    match = CLASSIC_LINES.match(out)
    assert match, out
    m_norm, z_norm, size = classic_norms(photos[first], photos[second])
    assert float(match["l1"]) == pytest.approx(m_norm, rel=1e-12, abs=0)
    assert float(match["l1"]) == m_norm  # bit-identical in fact
    assert float(match["l1pp"]) == pytest.approx(m_norm / size, rel=1e-12, abs=0)
    assert int(match["l0"]) == int(z_norm) and match["l0"] == str(int(z_norm))  # an exact int
    assert float(match["l0pp"]) == z_norm / size
    assert m_norm > 0 and z_norm > 0


def test_an_image_against_itself(capsys, photos):
    code, out, err = run(capsys, photos["astronaut.png"], photos["astronaut.png"])
    assert code == 0 and err == ""
    assert out == "Manhattan norm: 0.0 / per pixel: 0.0\nZero norm: 0 / per pixel: 0.0\n"


# --------------------------------------------------------------------------- options


def _lines(out):
    return dict(line.split(": ", 1) for line in out.splitlines())


def test_metrics_all(capsys, photos):
    code, out, err = run(capsys, photos["astronaut.png"], photos["astronaut.jpg"], "--metrics", "all")
    assert code == 0 and err == ""
    values = _lines(out)
    assert list(values)[: len(NORM_METRICS)] == list(NORM_METRICS)
    assert set(HIST_METRICS) <= set(values)
    assert all(math.isfinite(float(values[m])) for m in NORM_METRICS + HIST_METRICS)


def test_metrics_list_prints_just_those(capsys, photos):
    code, out, err = run(capsys, photos["camera.png"], photos["moon.png"], "--metrics", "psnr,l0,kl")
    assert code == 0 and err == ""
    values = _lines(out)
    assert list(values) == ["psnr", "l0", "kl"]
    assert int(values["l0"]) == int(classic_norms(photos["camera.png"], photos["moon.png"])[1])
    code, out, _ = run(capsys, photos["camera.png"], photos["camera.png"], "--metrics", "psnr,intersection")
    assert out == "psnr: inf\nintersection: 1.0\n"


def test_json_parses(capsys, photos):
    a, b = photos["astronaut.png"], photos["astronaut-moved.png"]
    code, out, err = run(capsys, a, b, "--json")
    assert code == 0 and err == ""
    doc = json.loads(out)
    assert doc["a"] == a and doc["b"] == b and doc["shape"] == [512, 512]
    m_norm, z_norm, _ = classic_norms(a, b)
    assert doc["metrics"]["l1"] == m_norm and doc["metrics"]["l0"] == int(z_norm)
    code, out, _ = run(capsys, a, a, "--json", "--metrics", "l1,psnr")
    assert json.loads(out)["metrics"] == {"l1": 0.0, "psnr": math.inf}  # written as Infinity


def test_measurement_options_change_the_numbers(capsys, photos):
    a, b = photos["astronaut.png"], photos["astronaut-moved.png"]

    def value(*options, metric="l0"):
        code, out, err = run(capsys, a, b, "--metrics", metric, "--device", "cpu", *options)
        assert code == 0 and err == "", err
        return float(_lines(out)[metric])

    assert value("--tol", "0") > value("--tol", "20") > value("--tol", "200")
    assert value("--normalize", "percentile", metric="l1") != value("--normalize", "minmax", metric="l1")
    luma = value("--normalize", "none", "--gray", "luma", metric="l1")
    assert luma != value("--normalize", "none", "--gray", "mean", metric="l1")
    assert value("--bins", "8", metric="kl") < value("--bins", "256", metric="kl")
    assert 0 < value("--normalize", "zscore", metric="mse") < 2


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "name, reason",
    [
        ("missing.png", r"no such file \[missing\]"),
        ("truncated.jpg", r"\[truncated\]"),
        ("x.png", r"not a recognised image format .*\[not-an-image\]"),
        ("random.png", r"\[not-an-image\]"),
        ("coffee.png", r"shape 600x400 differs from 512x512 of .*astronaut\.png.*\[size-mismatch\]"),
    ],
)
def test_input_errors_are_one_line_and_exit_2(capsys, photos, name, reason):
    for argv in ([photos["astronaut.png"], photos[name]], [photos[name], photos["astronaut.png"]]):
        if name == "coffee.png" and argv[0] == photos[name]:
            continue  # the mismatch message names b first; covered by the first order
        code, out, err = run(capsys, *argv)
        assert code == 2 and out == ""
        assert err.count("\n") == 1 and "Traceback" not in err
        assert re.fullmatch(rf"framediff: error: {re.escape(photos[name])}: .*{reason}\n", err), err


def test_unknown_metric_is_one_line_and_exit_2(capsys, photos):
    code, out, err = run(capsys, photos["camera.png"], photos["moon.png"], "--metrics", "l1,sharpness")
    assert code == 2 and out == ""
    assert re.fullmatch(r"framediff: error: unknown metric 'sharpness'; choose from: all, .*\n", err)


def test_bad_option_value_is_one_line_and_exit_2(capsys, photos):
    code, out, err = run(capsys, photos["camera.png"], photos["moon.png"], "--bins", "0")
    assert (code, out, err) == (2, "", "framediff: error: --bins must be in 1..65536, got 0\n")


def test_argparse_rejects_an_unknown_choice(capsys, photos):
    with pytest.raises(SystemExit) as info:
        main(["compare", photos["camera.png"], photos["moon.png"], "--normalize", "histeq"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'histeq'" in err and "Traceback" not in err


@no_gpu
def test_device_gpu_without_gpu_exits_2_with_one_line(capsys, photos):
    code, out, err = run(capsys, photos["camera.png"], photos["moon.png"], "--device", "gpu")
    assert code == 2 and out == ""
    assert re.fullmatch(r"framediff: error: --device gpu was requested but [^\n]+\n", err), err


@no_gpu
def test_device_from_environment(capsys, photos, monkeypatch):
    monkeypatch.setenv("FRAMEDIFF_DEVICE", "gpu")
    code, _, err = run(capsys, photos["camera.png"], photos["moon.png"])
    assert code == 2 and err.startswith("framediff: error: --device gpu was requested but")
    code, out, err = run(capsys, photos["camera.png"], photos["moon.png"], "--device", "cpu")
    assert code == 0 and err == "" and out.startswith("Manhattan norm: ")


# --------------------------------------------------------------------------- console script


def _console_script():
    found = shutil.which("framediff") or shutil.which("framediff", path=str(Path(sys.executable).parent))
    return [found] if found else [sys.executable, "-m", "framediff.cli"]


def test_installed_console_script(photos):
    a, b = photos["camera.png"], photos["moon.png"]
    proc = subprocess.run(
        [*_console_script(), "compare", a, b, "--device", "cpu"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    match = CLASSIC_LINES.match(proc.stdout)
    assert match, proc.stdout
    m_norm, z_norm, _ = classic_norms(a, b)
    assert float(match["l1"]) == m_norm and int(match["l0"]) == int(z_norm)
