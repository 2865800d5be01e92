"""The HTML report: self-contained, escaped, complete, fast on a million rows, and safe in a
real browser (headless Chromium, skipped when none is installed)."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
import time
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from framediff import make_options
from framediff.html_report import write_html_report
from framediff.scan import run_scan
from framediff.synthetic import make_timelapse

#: The classic XSS file name, and one that would rename the page if it ever ran.
HOSTILE = "<img src=x onerror=alert(1)>.jpg"
HOSTILE_TITLE = "<img src=x onerror=document.title='pwned'>.jpg"
#: A corrupt file whose name is markup too (it sorts last: its row is an error row).
BROKEN = "zz_<svg onload=alert(2)>.jpg"
TITLE = "framediff report: report.parquet"
#: The fast preset's metric columns: each gets a plot.
FAST_METRICS = ["l1", "l1_per_pixel", "l0", "l0_fraction", "l2", "mse", "rmse", "nrmse", "psnr", "max_abs", "kl"]


@pytest.fixture(scope="module")
def scanned(tmp_path_factory):
    """A real scan: a synthetic time-lapse, two hostile names, a corrupt file; Parquet and CSV."""
    base = tmp_path_factory.mktemp("html_report")
    frames = base / "frames"
    lapse = make_timelapse(frames, n_frames=40, size=(64, 96))
    kinds = {event.kind: event for event in lapse.events}
    # '<' sorts first: frames 0 and 1, both clearly different from frame_00001 and each other.
    shutil.copy(lapse.frames[kinds["light-on"].first], frames / HOSTILE)
    shutil.copy(lapse.frames[kinds["shake"].first], frames / HOSTILE_TITLE)
    (frames / BROKEN).write_bytes(b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4)
    options = make_options("fast")
    run_scan(frames, options=options, output=base / "report.parquet", workers=2)
    run_scan(frames, options=options, output=base / "csv" / "report.csv", partitioned=True, chunk_size=16, workers=2)
    return base


@pytest.fixture(scope="module")
def page(scanned):
    out = write_html_report(scanned / "report.parquet", scanned / "report.html")
    return out.read_text(encoding="utf-8")


class _Tags(HTMLParser):
    """Every start tag with its attributes, and the text, as a browser's parser sees them."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags, self.text, self.title = [], [], []
        self._in_title = False

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in_title = tag == "title"

    def handle_endtag(self, tag):
        self._in_title = False

    def handle_data(self, data):
        self.text.append(data)
        if self._in_title:
            self.title.append(data)


def _parse(text: str) -> _Tags:
    parser = _Tags()
    parser.feed(text)
    parser.close()
    return parser


def _assert_inert(parsed: _Tags) -> None:
    """No script, no event handler, no external resource, no image but data: PNGs."""
    for tag, attrs in parsed.tags:
        assert tag not in ("script", "iframe", "object", "embed", "link", "base", "svg"), tag
        assert not [a for a in attrs if a.startswith("on")], (tag, attrs)
        for key in ("src", "href", "action", "formaction"):
            value = (attrs.get(key) or "").strip().lower()
            assert not value.startswith(("http:", "https:", "//", "javascript:")), (tag, key, value[:80])
        if tag == "img":
            assert attrs["src"].startswith("data:image/png;base64,"), attrs["src"][:40]


def test_page_is_self_contained_and_escapes_names(page):
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page, re.I)
    assert "<script" not in page.lower()
    for name in (HOSTILE, HOSTILE_TITLE, BROKEN):
        assert name not in page  # never as raw markup...
        assert html.escape(name, quote=True) in page  # ...always as escaped text
    parsed = _parse(page)
    _assert_inert(parsed)
    text = "".join(parsed.text)
    assert HOSTILE in text and HOSTILE_TITLE in text and BROKEN in text
    assert "".join(parsed.title) == TITLE
    assert "Content-Security-Policy" in page


def test_page_has_summary_plots_thumbnails_and_errors(page, scanned):
    summary = json.loads((scanned / "report.parquet.summary.json").read_text())
    parsed = _parse(page)
    imgs = [attrs for tag, attrs in parsed.tags if tag == "img"]
    plots = [a for a in imgs if a.get("class") == "plot"]
    thumbs = [a for a in imgs if a.get("class") == "thumb"]
    assert sorted(a["alt"].split(" over ")[0] for a in plots) == sorted(FAST_METRICS)
    # 12 largest changes, each with both thumbnails and a heatmap (every one is readable).
    assert len(thumbs) == 36
    assert sum(a["alt"] == "difference heatmap" for a in thumbs) == 12
    assert any(a["alt"].endswith(HOSTILE) for a in thumbs)
    text = " ".join("".join(parsed.text).split())
    assert f"{summary['comparisons']} comparisons" in text
    assert "from the run's summary file" in text
    for kind in summary["errors_by_kind"]:
        assert kind in text
    assert "corrupt" in summary["errors_by_kind"] and "truncated" in summary["errors_by_kind"]
    errors = page[page.index('id="errors"') : page.index('id="events"')]
    assert html.escape(BROKEN, quote=True) in errors and "frame_00037.jpg" in errors
    assert "ranked by l1_per_pixel, highest first" in text
    assert "a change above the sequence's own noise floor (sensitivity 1)" in text  # no thresholds given


@pytest.mark.slow
def test_csv_partitioned_report_with_plots_dir(scanned, tmp_path):
    out = write_html_report(
        scanned / "csv" / "report.csv",
        tmp_path / "sub" / "r.html",
        top=3,
        plots_dir=tmp_path / "plots",
        root=scanned / "frames",
    )
    page = out.read_text(encoding="utf-8")
    parsed = _parse(page)
    _assert_inert(parsed)
    written = sorted(p.name for p in (tmp_path / "plots").iterdir())
    assert written == sorted(f"{m}.png" for m in FAST_METRICS)
    assert all((tmp_path / "plots" / n).read_bytes().startswith(b"\x89PNG") for n in written)
    assert sum(a.get("class") == "thumb" for t, a in parsed.tags if t == "img") == 9
    assert html.escape(BROKEN, quote=True) in page
    assert "".join(parsed.title) == "framediff report: report.csv"


def test_without_sidecars_the_summary_is_computed(scanned, tmp_path):
    shutil.copy(scanned / "report.parquet", tmp_path / "alone.parquet")
    summary = json.loads((scanned / "report.parquet.summary.json").read_text())
    page = write_html_report(tmp_path / "alone.parquet", tmp_path / "alone.html", top=2).read_text()
    text = " ".join("".join(_parse(page).text).split())
    assert "computed from the report" in text
    assert f"{summary['errors']} failed" in text and f"{summary['changed']} changed" in text
    assert "no events file" in text
    # The input root still comes from the Parquet metadata: thumbnails are there.
    assert page.count('class="thumb"') == 6


def test_report_paths_cannot_leave_the_root(tmp_path):
    table = _table(3, path_b=["../outside.png", "/etc/hostname", "ok.png"])
    pq.write_table(table, tmp_path / "r.parquet")
    page = write_html_report(tmp_path / "r.parquet", tmp_path / "r.html", root=tmp_path).read_text()
    assert page.count("path outside the input root") == 2


def _table(n: int, *, path_b=None, errors_every: int = 0) -> pa.Table:
    """A report table with the scan's identifier/outcome columns and three cheap metrics."""
    rng = np.random.default_rng(1)
    index = np.arange(1, n + 1, dtype=np.int64)
    l0_fraction = rng.random(n) * 0.005
    l0_fraction[rng.integers(0, n, max(1, n // 500))] += 0.05
    kl = rng.random(n) * 0.05
    ok = np.ones(n, bool)
    if errors_every:
        ok[::errors_every] = False
    l0_fraction[~ok] = np.nan
    kl[~ok] = np.nan
    meta = {"mode": "consecutive", "thresholds": {"l0_fraction": 0.01, "kl": 0.2}, "options": {"preset": "fast"}}
    return pa.table(
        {
            "pair": index,
            "index_a": index - 1,
            "index_b": index,
            "path_a": pa.repeat("a.png", n),
            "path_b": pa.array(path_b) if path_b is not None else pa.repeat("b.png", n),
            "height": pa.repeat(pa.scalar(64, pa.int32()), n),
            "width": pa.repeat(pa.scalar(96, pa.int32()), n),
            "l1_per_pixel": rng.random(n),
            "l0_fraction": pa.array(l0_fraction, from_pandas=True),
            "kl": pa.array(kl, from_pandas=True),
            "changed": (l0_fraction > 0.01) | (kl > 0.2),
            "status": pa.array(np.where(ok, "ok", "error")),
            "error_kind": pa.array(np.where(ok, None, "corrupt")),
            "error": pa.array(np.where(ok, None, "bad data")),
            "note": pa.nulls(n, pa.string()),
        }
    ).replace_schema_metadata({b"framediff": json.dumps(meta).encode()})


@pytest.mark.slow
def test_a_million_rows_render_fast_and_small(tmp_path):
    pq.write_table(_table(1_000_000, errors_every=50_000), tmp_path / "big.parquet")
    started = time.perf_counter()
    out = write_html_report(tmp_path / "big.parquet", tmp_path / "big.html", root=tmp_path)
    elapsed = time.perf_counter() - started
    assert elapsed < 15, f"{elapsed:.1f} s"
    size = out.stat().st_size
    assert size < 5_000_000, size
    page = out.read_text(encoding="utf-8")
    assert "1000000 comparisons reduced to the minimum and maximum" in page
    assert page.count('class="plot"') == 3
    assert "20 comparisons failed" in page


@pytest.mark.slow
def test_cli_report(scanned, tmp_path, capsys, monkeypatch):
    from framediff import cli, cli_report

    build = cli.build_parser

    def build_with_report():  # until cli.py registers the subcommand itself
        parser = build()
        sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
        if "report" not in sub.choices:
            cli_report.register(sub)
        return parser

    monkeypatch.setattr(cli, "build_parser", build_with_report)
    out = tmp_path / "r.html"
    assert (
        cli.main(
            ["report", str(scanned / "report.parquet"), "-o", str(out), "--top", "2", "--plots", str(tmp_path / "p")]
        )
        == 0
    )
    assert f"html report: {out}" in capsys.readouterr().out
    assert out.read_text().count('class="thumb"') == 6
    assert len(list((tmp_path / "p").glob("*.png"))) == len(FAST_METRICS)
    for bad in (tmp_path / "missing.parquet", _garbage(tmp_path / "garbage.parquet")):
        capsys.readouterr()
        assert cli.main(["report", str(bad), "-o", str(out)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("framediff: error: ") and err.count("\n") == 1, err


def _garbage(path: Path) -> Path:
    path.write_bytes(b"not a parquet file at all")
    return path


def _browser() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def _chromium(browser: str, profile: Path, *args) -> subprocess.CompletedProcess:
    command = [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        *args,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=90)
    assert done.returncode == 0, done.stderr[-2000:]
    return done


@pytest.mark.slow
@pytest.mark.skipif(
    _browser() is None, reason="no chromium, chromium-browser or google-chrome on PATH (apt-get install chromium)"
)
def test_in_headless_chromium(scanned, page, tmp_path):
    browser = _browser()
    from PIL import Image

    url = (scanned / "report.html").resolve().as_uri()  # written by the `page` fixture
    loaded = _chromium(browser, tmp_path / "profile", "--enable-logging=stderr", "--v=0", "--dump-dom", url)
    console = [
        line for line in loaded.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line or "Refused to" in line
    ]
    assert not console, console
    dom = _parse(loaded.stdout)
    assert "".join(dom.title) == TITLE  # the document.title name never ran
    assert not [a for t, a in dom.tags for k in a if k.startswith("on")]
    assert not [a for t, a in dom.tags if t == "img" and a.get("src") == "x"]
    assert not [t for t, a in dom.tags if t in ("script", "svg")]
    text = "".join(dom.text)
    assert HOSTILE in text and HOSTILE_TITLE in text and BROKEN in text
    assert sum(t == "img" and a.get("class") == "plot" for t, a in dom.tags) == len(FAST_METRICS)

    shot = tmp_path / "page.png"
    _chromium(browser, tmp_path / "profile", f"--screenshot={shot}", "--window-size=1200,3000", url)
    pixels = np.asarray(Image.open(shot).convert("RGB"), np.int16)
    assert pixels.shape[:2] == (3000, 1200)
    assert pixels.std() > 20  # not a blank page
    # The plots drew: the series blue and the changed-comparison red are both on screen.
    blue = np.abs(pixels - np.array([31, 119, 180])).max(axis=2) < 12
    red = np.abs(pixels - np.array([214, 39, 40])).max(axis=2) < 12
    assert blue.sum() > 500 and red.sum() > 100, (blue.sum(), red.sum())
