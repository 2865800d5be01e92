"""The scan layer's shape: modes as objects, one request from the CLI to the API."""

from __future__ import annotations

import ast
import io
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

import framediff
from framediff.cli import build_parser, main
from framediff.errors import ParameterError
from framediff.modes import MODES, Mode
from framediff.modes.pairs import Pairs
from framediff.plan import Chunk
from framediff.request import CLUSTER_FIELDS, OPTION_FIELDS, REQUEST_FIELDS, ScanRequest
from framediff.synthetic import make_timelapse

PIPELINE = Path(framediff.__file__).parent


@pytest.fixture(scope="module")
def frames(tmp_path_factory):
    return make_timelapse(
        tmp_path_factory.mktemp("layer") / "frames", n_frames=12, size=(48, 64), seed=3, events=False
    ).directory


# -- modes are objects ----------------------------------------------------------------------


def _mode_name_tests(path: Path) -> list:
    """Comparisons of a value with a mode's name (``mode == 'pairs'``, ``in ('a', 'b')``)."""
    names = set(MODES)
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            for operand in operands:
                items = operand.elts if isinstance(operand, (ast.Tuple, ast.List, ast.Set)) else [operand]
                if any(isinstance(i, ast.Constant) and i.value in names for i in items):
                    found.append(f"{path.name}:{node.lineno}")
    return found


def test_no_module_outside_modes_tests_a_mode_name():
    paths = [p for p in PIPELINE.rglob("*.py") if "modes" not in p.relative_to(PIPELINE).parts]
    assert paths and [hit for p in paths for hit in _mode_name_tests(p)] == []


class EveryOther(Pairs):
    """Each frame against the frame two before it: the README's example of a new mode."""

    name = "every-other"
    uses_pair_list = False

    def plan(self, inputs, chunk_size):
        triples = [(b, b - 2, b) for b in range(2, len(inputs.paths))]
        for number, start in enumerate(range(0, len(triples), chunk_size)):
            part = tuple(triples[start : start + chunk_size])
            yield Chunk(number, (), {i: inputs.paths[i] for _, a, b in part for i in (a, b)}, part)

    def expected_rows(self, n_inputs):
        return max(n_inputs - 2, 0)


def test_a_new_mode_is_one_class_and_one_registry_line(frames, monkeypatch):
    monkeypatch.setitem(MODES, EveryOther.name, EveryOther())
    df = framediff.scan(frames, mode="every-other", chunk_size=4, scheduler="synchronous")
    assert list(zip(df.index_a, df.index_b)) == [(b - 2, b) for b in range(2, 12)]
    paths = sorted(frames.glob("*.jpg"))
    for row in df.itertuples():
        want = framediff.compare(paths[row.index_a], paths[row.index_b], preset="fast")
        assert row.l1 == want["l1"] and row.kl == pytest.approx(want["kl"], rel=1e-12)
    assert df.attrs["summary"]["mode"] == "every-other"


def test_every_mode_is_a_mode_object_with_its_own_name():
    assert list(MODES) == ["consecutive", "reference", "pairs", "keyframes", "background", "duplicates"]
    assert all(isinstance(m, Mode) and m.name == name for name, m in MODES.items())


# -- one request, from the CLI to the API -------------------------------------------------------


def _scan_parser():
    parser = build_parser()
    sub = next(a for a in parser._actions if hasattr(a, "choices") and a.choices and "scan" in a.choices)
    return sub.choices["scan"]


def test_every_scan_flag_is_a_parameter_of_the_api():
    cli_only = {"help", "quiet", "print_job_script", "config", "source"}
    parameters = set(OPTION_FIELDS) | set(REQUEST_FIELDS) | set(CLUSTER_FIELDS) | {"preset", "threshold"}
    dests = {a.dest for a in _scan_parser()._actions} - cli_only
    assert dests and dests <= parameters, sorted(dests - parameters)


def test_the_help_shows_the_defaults_of_the_one_place_they_live():
    text = " ".join(_scan_parser().format_help().split())
    assert "(default 64)" in text and "(default 10.0; classic preset 0.0)" in text


def test_the_api_refuses_to_replace_an_existing_report(frames, tmp_path):
    out = tmp_path / "r.parquet"
    framediff.scan(frames, output=out, scheduler="synchronous")
    before = out.read_bytes()
    with pytest.raises(framediff.FramediffError, match=r"already exists \(use overwrite=True"):
        framediff.scan(frames, output=out, scheduler="synchronous", tol=3)
    assert out.read_bytes() == before
    df = framediff.scan(frames, output=out, scheduler="synchronous", tol=3, overwrite=True)
    assert pq.read_table(out).num_rows == len(df)


def test_compare_applies_overrides_to_a_ready_options_object():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (32, 32), dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-40, 41, a.shape), 0, 255).astype(np.uint8)
    opts = framediff.make_options("fast")
    loose = framediff.compare(a, b, options=opts, tol=50, metrics="l0")
    assert loose == framediff.compare(a, b, preset="fast", tol=50, metrics="l0")
    assert loose["l0"] == 0 < framediff.compare(a, b, options=opts)["l0"]
    with pytest.raises(TypeError, match="either options or preset"):
        framediff.compare(a, b, options=opts, preset="fast")


def test_scan_takes_the_same_options_object_with_overrides(frames):
    opts = framediff.make_options("fast", tol=0)
    both = framediff.scan(frames, options=opts, tol=200, scheduler="synchronous")
    assert (both.l0 == 0).all()
    with pytest.raises(TypeError, match="unexpected keyword argument 'tolerance'"):
        framediff.scan(frames, tolerance=3)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"chunk_size": 0}, r"^chunk_size must be >= 1, got 0$"),
        ({"workers": 0}, r"^workers must be >= 1, got 0$"),
        ({"thresholds": "ssim=0.9"}, r"^thresholds: ssim: that metric is not computed"),
        ({"thresholds": "kl=nan"}, r"^thresholds: kl: the limit must be a finite number"),
        ({"sensitivity": "extreme"}, r"^sensitivity expects low, normal, high or a number"),
        ({"mode": "keyframes", "keep_on": "sunsets"}, r"^keep_on: unknown kind 'sunsets'"),
        ({"keep_list": "k.txt"}, r"^keep_list does nothing in consecutive mode$"),
        ({"mode": "reference", "pair_list": "p.csv"}, r"^pair_list does nothing in reference mode$"),
        ({"file_timeout": 0}, r"^file_timeout must be a positive number of seconds"),
    ],
)
def test_library_errors_name_the_parameter(frames, params, message):
    with pytest.raises(ParameterError, match=message):
        ScanRequest.build(frames, **params)


def test_thresholds_take_every_written_form(frames):
    forms = ["kl=0.3,l1=5", ["kl=0.3", "l1=5"], {"kl": 0.3, "l1": 5}, [("kl", 0.3), ("l1", 5)]]
    built = {ScanRequest.build(frames, metrics="kl,l1", thresholds=f).thresholds for f in forms}
    assert len(built) == 1 and built.pop().as_dict() == {"kl": 0.3, "l1": 5.0}


@pytest.mark.parametrize(
    ("argv", "line"),
    [
        (["--tol", "-1"], "framediff: error: --tol must be >= 0, got -1.0\n"),
        (["--chunk-size", "0"], "framediff: error: --chunk-size must be >= 1, got 0\n"),
        (
            ["--mode", "keyframes", "--keep-on", "sunsets"],
            "framediff: error: --keep-on: unknown kind 'sunsets'; choose from lighting, shift, shift+content, content, cut, transition, corrupt\n",
        ),
    ],
)
def test_the_cli_names_flags_for_the_same_errors(frames, tmp_path, capsys, argv, line):
    assert main(["scan", str(frames), "-o", str(tmp_path / "r.parquet"), *argv]) == 2
    assert capsys.readouterr().err == line


def test_a_url_output_with_an_html_page(frames, tmp_path, capsys):
    fsspec = pytest.importorskip("fsspec")
    html = tmp_path / "page.html"
    code = main(["scan", str(frames), "-o", "memory://layer/cam.parquet", "--html", str(html), "-q"])
    assert code == 0, capsys.readouterr().err
    fs = fsspec.filesystem("memory")
    assert pq.read_table(io.BytesIO(fs.cat("/layer/cam.parquet"))).num_rows == 11
    assert html.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    result = framediff.run_scan(frames, output="memory://layer/cam2.parquet", scheduler="synchronous")
    assert result.report == "memory://layer/cam2.parquet"
