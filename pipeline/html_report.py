"""One self-contained HTML page from a scan report: summary, plots, top changes, errors.

The page has no external resource and no script (see :mod:`framediff.html_page`), and
large reports stay cheap: the report is read in record batches and each series is
reduced to a fixed number of points, so memory and page size do not grow with the
number of rows. The work is split by job:

- :mod:`framediff.html_data` reads the report and its sidecars;
- :mod:`framediff.html_reduce` reduces its rows to what the page shows;
- :mod:`framediff.html_plots` draws the plots;
- :mod:`framediff.html_thumbs` makes the frames' thumbnails;
- :mod:`framediff.html_page` assembles the page.
"""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa

from .errors import FramediffError
from .html_data import first_line, open_report, read_page_data
from .html_page import assemble_page
from .html_plots import draw_plots, plot_filename

__all__ = ["write_html_report"]


def write_html_report(report_path, html_path, *, top: int = 12, plots_dir=None, root=None) -> Path:
    """Write one self-contained HTML page describing a scan report.

    Parameters
    ----------
    report_path : str or Path
        A report written by ``framediff scan`` (``.parquet``, ``.csv``, or a partitioned
        folder). ``NAME.summary.json`` and ``NAME.events.*`` next to it are used when present.
    html_path : str or Path
        The page to write (replaced atomically).
    top : int
        How many of the largest changes to show with thumbnails and a difference heatmap,
        ranked by the first threshold's metric (lowest first for similarities).
    plots_dir : str or Path, optional
        Also write each plot there as ``METRIC.png``.
    root : str or Path, optional
        Folder the report's paths are relative to; default the scan's input root from the
        report metadata (Parquet). Needed for thumbnails of a CSV report.

    Returns
    -------
    Path
        ``html_path``.

    Raises
    ------
    FramediffError
        The report is missing or is not a readable framediff report.
    """
    report_path = Path(report_path)
    html_path = Path(html_path)
    dataset, fmt = open_report(report_path)
    try:
        data = read_page_data(report_path, dataset, fmt, top=top, root=root)
        plots = draw_plots(data)
        page = assemble_page(data, plots)
    except (OSError, pa.ArrowException) as exc:  # the report changed or broke after it was opened
        raise FramediffError(f"{report_path}: cannot read the report ({first_line(exc)})") from None
    if plots_dir is not None:
        Path(plots_dir).mkdir(parents=True, exist_ok=True)
        for metric, png in plots:
            (Path(plots_dir) / f"{plot_filename(metric)}.png").write_bytes(png)
    _write_atomically(html_path, page)
    return html_path


def _write_atomically(path: Path, text: str) -> None:
    """Write through a temporary file and rename: a reader never sees half a page."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
