"""The HTML page: the template and its style sheet, the sections and tables, and the
frames' thumbnails as figures.

Everything the page shows is inside the file: plots and thumbnails are PNG ``data:``
URIs, the style sheet is inline, there is no JavaScript, and a Content-Security-Policy
forbids any script or network request. Every string taken from the data (file names,
reasons, option values, column names) goes through :func:`html.escape`.
"""

from __future__ import annotations

import datetime
import html
import json
import math

import pyarrow as pa
import pyarrow.compute as pc

from .html_data import PageData, computed_summary, count_rows, unquote
from .html_plots import png_data_uri
from .html_thumbs import THUMB_SIZE, difference_heatmap, thumbnail, thumbnail_png
from .metrics import HIGHER_IS_SIMILAR

__all__ = ["assemble_page"]

#: Rows listed at most in the error and event tables (the report holds them all).
_MAX_LISTED = 500
_TOP_COLUMNS = ("pair", "index_a", "index_b", "path_a", "path_b", "height", "width", "changed", "change_kind", "note")
_EVENT_COLUMNS = (
    "event",
    "first_index",
    "last_index",
    "first_path",
    "last_path",
    "n_changed",
    "peak_metric",
    "peak_value",
    "peak_index",
)
_RUN_KEYS = ("device", "scheduler", "workers", "chunk_size", "wall_seconds", "images_per_second", "skipped_non_image")
_META_KEYS = ("framediff_version", "mode", "root", "reference", "fingerprint")
_CSS = """
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;max-width:1180px;
padding:0 16px 48px;color:#1d2330;background:#fff}
h1{font-size:22px;margin:20px 0 4px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #d8dce3;
padding-bottom:4px}.sub{color:#5a6270;margin:0 0 12px;word-break:break-all}
.cards{display:flex;flex-wrap:wrap;gap:8px;margin:8px 0}.card{border:1px solid #d8dce3;border-radius:6px;
padding:6px 12px;min-width:90px}.card b{display:block;font-size:20px}.card span{color:#5a6270;font-size:12px}
.card.bad b{color:#b3261e}.card.hot b{color:#c25400}
table{border-collapse:collapse;margin:6px 0;font-size:13px}th,td{border:1px solid #d8dce3;padding:3px 8px;
text-align:left;vertical-align:top}th{background:#f3f5f8}td.num{text-align:right;font-variant-numeric:tabular-nums}
td.path{word-break:break-all;max-width:420px}.plot{display:block;max-width:100%;height:auto;margin:4px 0 14px}
.top{border:1px solid #d8dce3;border-radius:6px;padding:8px 10px;margin:10px 0}
.top h3{font-size:15px;margin:0 0 6px;word-break:break-all}.imgs{display:flex;flex-wrap:wrap;gap:10px}
figure{margin:0}figcaption{font-size:12px;color:#5a6270;max-width:220px;word-break:break-all}
.thumb{display:block;border:1px solid #d8dce3;image-rendering:auto}.missing{width:200px;height:80px;
border:1px dashed #b3261e;color:#b3261e;font-size:12px;padding:4px;overflow:hidden;word-break:break-all}
.note{color:#5a6270;font-size:12px}details{margin:8px 0}summary{cursor:pointer;font-weight:600}
"""


def assemble_page(data: PageData, plots: list[tuple[str, bytes]]) -> str:
    """The whole page, one HTML document.

    Parameters
    ----------
    data : PageData
        The report, read and reduced.
    plots : list of (str, bytes)
        ``(metric, PNG)`` from :func:`~framediff.html_plots.draw_plots`.

    Returns
    -------
    str
        The page; it names the time it was generated.
    """
    has_summary_file = data.summary_json is not None
    summary = data.summary_json if has_summary_file else computed_summary(data.dataset, data.names, data.events)
    title = _e(data.report_path.name)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; img-src data:; '
        "style-src 'unsafe-inline'; form-action 'none'; base-uri 'none'\">",
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>framediff report: {title}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>framediff report: {title}</h1>",
        f'<p class="sub">mode {_e(data.mode)} &middot; {data.n_rows} comparisons &middot; input root '
        f"{_e(data.in_root if data.in_root is not None else 'unknown')} &middot; generated "
        f"{_e(datetime.datetime.now().astimezone().isoformat(timespec='seconds'))}</p>",
        _summary_section(summary, data.thresholds, has_summary_file),
        _plots_section(plots, data.series, data.n_rows, data.x_label, data.thresholds),
        _top_section(data),
        _errors_section(data.dataset, data.names, data.fmt),
        _events_section(data.events, data.fmt),
        _details_section(summary, data.options, data.meta, data.report_path),
        "</body></html>",
    ]
    return "\n".join(parts)


# -- text and small tables --------------------------------------------------------------


def _e(value) -> str:
    """Text from the data, escaped for HTML element content and attribute values."""
    return html.escape("" if value is None else str(value), quote=True)


def _fmt(value) -> str:
    """A value as the page prints it: floats to 6 significant digits, containers as JSON."""
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return f"{value:.6g}"
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, default=str)
    return "" if value is None else str(value)


def _kv_table(items) -> str:
    rows = "".join(f"<tr><th>{_e(k)}</th><td>{_e(_fmt(v))}</td></tr>" for k, v in items)
    return f"<table>{rows}</table>" if rows else '<p class="note">none</p>'


def _card(label, value, cls="") -> str:
    return f'<div class="card {cls}"><b>{_e(_fmt(value))}</b> <span>{_e(label)}</span></div>'


# -- sections ---------------------------------------------------------------------------


def _summary_section(summary: dict, thresholds: dict, from_json: bool) -> str:
    errors = summary.get("errors") or 0
    cards = [
        _card("images", summary.get("inputs")) if summary.get("inputs") is not None else "",
        _card("comparisons", summary.get("comparisons")),
        _card("ok", summary.get("ok")),
        _card("failed", errors, "bad" if errors else ""),
        _card("changed", summary.get("changed"), "hot" if summary.get("changed") else ""),
        _card("events", summary.get("events")) if summary.get("events") is not None else "",
        _card("kept", summary.get("kept")) if summary.get("kept") is not None else "",
        _card("images/s", summary.get("images_per_second")) if summary.get("images_per_second") is not None else "",
        _card("wall seconds", summary.get("wall_seconds")) if summary.get("wall_seconds") is not None else "",
    ]
    by_kind = summary.get("errors_by_kind")
    by_kind = by_kind if isinstance(by_kind, dict) else {}
    kinds = _kv_table(sorted(by_kind.items())) if by_kind else '<p class="note">no errors</p>'
    limits = "".join(
        f"<li><code>{_e(m)}</code> {'&lt;' if m in HIGHER_IS_SIMILAR else '&gt;'} {_e(_fmt(float(v)))}</li>"
        for m, v in thresholds.items()
    )
    source = "from the run's summary file" if from_json else "computed from the report (no summary file found)"
    return (
        f'<h2 id="summary">Summary</h2><p class="note">{_e(source)}</p><div class="cards">{"".join(cards)}</div>'
        f"<h3>Errors by kind</h3>{kinds}"
        f"<h3>Changed when</h3>{f'<ul>{limits}</ul>' if limits else _decided_text(summary)}"
    )


def _decided_text(summary: dict) -> str:
    """How changes were decided without thresholds (the decision stage's numbers)."""
    decisions = summary.get("decisions")
    if not isinstance(decisions, dict):
        return '<p class="note">no thresholds</p>'
    sensitivity = decisions.get("sensitivity")
    level = f" (sensitivity {_e(_fmt(float(sensitivity)))})" if isinstance(sensitivity, (int, float)) else ""
    return f'<p class="note">a change above the sequence\'s own noise floor{level}, by kind</p>'


def _plots_section(plots, series, n_rows, x_label, thresholds) -> str:
    if not plots:
        return '<h2 id="plots">Metrics</h2><p class="note">no metric values to plot</p>'
    how = (
        "every comparison is drawn"
        if series.raw
        else f"{n_rows} comparisons reduced to the minimum and maximum per pixel column ({series.bins} columns)"
    )

    def img(metric, png):
        return f'<img class="plot" alt="{_e(metric)} over {_e(x_label)}" src="{png_data_uri(png)}">'

    # The metrics that decide 'changed' are shown; the others fold away.
    shown = [m for m, _ in plots if m in thresholds] or [plots[0][0]]
    main = [img(m, png) for m, png in plots if m in shown]
    rest = [img(m, png) for m, png in plots if m not in shown]
    more = f"<details><summary>Other metrics ({len(rest)})</summary>{''.join(rest)}</details>" if rest else ""
    return (
        f'<h2 id="plots">Metrics over {_e(x_label)}</h2><p class="note">{_e(how)}; red dots: changed comparisons, '
        "dashed: threshold, shaded: events, grey ticks: comparisons that failed.</p>" + "".join(main) + more
    )


def _top_section(data: PageData) -> str:
    head = '<h2 id="top">Largest changes</h2>'
    rows, metric = data.top_rows, data.top_metric
    if not rows or metric is None:
        return head + '<p class="note">none shown (no successful comparison to rank, or --top 0)</p>'
    names = set(data.dataset.schema.names)
    shown = [m for m in dict.fromkeys([metric, *data.thresholds]) if m in data.metrics]
    wanted = [c for c in _TOP_COLUMNS if c in names]
    order = sorted(rows)
    table = data.dataset.take(pa.array(order, pa.int64()), columns=list(dict.fromkeys(wanted + shown))).to_pylist()
    by_row = dict(zip(order, table))
    out = [
        head,
        f'<p class="note">ranked by <code>{_e(metric)}</code>, {"lowest" if metric in HIGHER_IS_SIMILAR else "highest"} '
        "first; heatmap: |a &minus; b| of the gray thumbnails, black = equal.</p>",
    ]
    for rank, row_number in enumerate(rows, 1):
        out.append(_change_block(rank, by_row[row_number], shown, data.in_root, data.fmt))
    return "".join(out)


def _change_block(rank: int, row: dict, shown: list, root, fmt: str) -> str:
    """One of the largest changes: its values, both frames and their difference."""
    hint = (row.get("height") or 0, row.get("width") or 0)
    path_a, path_b = unquote(row.get("path_a"), fmt), unquote(row.get("path_b"), fmt)
    a, why_a = thumbnail(root, path_a, hint)
    b, why_b = thumbnail(root, path_b, hint)
    values = " &middot; ".join(f"<code>{_e(m)}</code> = {_e(_fmt(row.get(m)))}" for m in shown)
    extra = _row_notes(row, fmt)
    figures = [
        _figure(a, why_a, "a", row.get("index_a"), path_a),
        _figure(b, why_b, "b", row.get("index_b"), path_b),
    ]
    if a is not None and b is not None:
        figures.append(_heatmap_figure(a, b))
    return (
        f'<div class="top"><h3>#{rank} &middot; pair {_e(row.get("pair"))}: frame {_e(row.get("index_a"))} '
        f"&rarr; {_e(row.get('index_b'))}</h3><p>{values}"
        f"{' &middot; ' + _e('; '.join(str(x) for x in extra)) if extra else ''}</p>"
        f'<div class="imgs">{"".join(figures)}</div></div>'
    )


def _row_notes(row: dict, fmt: str) -> list:
    """What else the report says of a change: changed, its kind, its note."""
    notes = []
    if row.get("changed"):
        notes.append("changed")
    if row.get("change_kind"):
        notes.append(f"kind {row['change_kind']}")
    if row.get("note"):
        notes.append(unquote(row["note"], fmt))
    return notes


def _errors_section(dataset, names, fmt) -> str:
    head = '<h2 id="errors">Errors</h2>'
    errors = pc.field("status") == "error"
    total = count_rows(dataset, errors)
    if not total:
        return head + '<p class="note">every comparison succeeded</p>'
    columns = [c for c in ("index_b", "path_b", "error_kind", "error", "note") if c in names]
    rows = dataset.scanner(columns=columns, filter=errors).head(_MAX_LISTED).to_pylist()
    body = "".join(
        f'<tr><td class="num">{_e(r.get("index_b"))}</td><td class="path">{_e(unquote(r.get("path_b"), fmt))}</td>'
        f"<td>{_e(r.get('error_kind'))}</td><td>{_e(unquote(r.get('error'), fmt))}</td>"
        f"<td>{_e(unquote(r.get('note'), fmt))}</td></tr>"
        for r in rows
    )
    more = ""
    if total > len(rows):
        more = f"<p class=\"note\">{total - len(rows)} more in the report (status = 'error').</p>"
    return (
        f"{head}<p>{total} comparisons failed.</p><table><tr><th>frame</th><th>path</th><th>kind</th>"
        f"<th>reason</th><th>note</th></tr>{body}</table>{more}"
    )


def _events_section(events, fmt) -> str:
    head = '<h2 id="events">Events</h2>'
    if events is None:
        return head + '<p class="note">no events file next to the report</p>'
    if events.num_rows == 0:
        return head + '<p class="note">no events</p>'
    wanted = [c for c in _EVENT_COLUMNS if c in events.column_names]
    rows = events.select(wanted).slice(0, _MAX_LISTED).to_pylist()
    header = "".join(f"<th>{_e(c)}</th>" for c in wanted)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="{"path" if c.endswith("_path") else "num"}">{_e(_fmt(unquote(r.get(c), fmt)))}</td>'
            for c in wanted
        )
        + "</tr>"
        for r in rows
    )
    more = ""
    if events.num_rows > len(rows):
        more = f'<p class="note">{events.num_rows - len(rows)} more in the events file.</p>'
    return f"{head}<p>{events.num_rows} events.</p><table><tr>{header}</tr>{body}</table>{more}"


def _details_section(summary, options, meta, report_path) -> str:
    run = [(k, summary.get(k)) for k in _RUN_KEYS if k in summary]
    about = [("report", report_path.name)] + [(k, meta.get(k)) for k in _META_KEYS if meta.get(k) is not None]
    opts = sorted(options.items()) if isinstance(options, dict) else []
    return (
        '<h2 id="run">Run</h2>'
        f"<h3>Throughput</h3>{_kv_table(run) if run else '<p class=note>not recorded (no summary file)</p>'}"
        f"<details><summary>Options ({len(opts)})</summary>{_kv_table(opts)}</details>"
        f"<details><summary>Report metadata</summary>{_kv_table(about)}</details>"
    )


# -- figures ----------------------------------------------------------------------------


def _figure(picture, why, label, index, name) -> str:
    """A frame's thumbnail with its caption, or why there is none."""
    caption = f"<figcaption>{_e(label)} (frame {_e(index)}): {_e(name)}</figcaption>"
    if picture is None:
        return f'<figure><div class="missing">{_e(why)}</div>{caption}</figure>'
    return (
        f'<figure><img class="thumb" alt="{_e(label)}: {_e(name)}"{_display_size(picture)} '
        f'src="{png_data_uri(thumbnail_png(picture, palette=True))}">{caption}</figure>'
    )


def _heatmap_figure(a, b) -> str:
    heat, white = difference_heatmap(a, b)
    return (
        f'<figure><img class="thumb" alt="difference heatmap"{_display_size(heat)} '
        f'src="{png_data_uri(thumbnail_png(heat, palette=False))}">'
        f"<figcaption>|a &minus; b|, brightest = {_e(_fmt(round(white, 1)))} grey levels</figcaption></figure>"
    )


def _display_size(picture) -> str:
    """width/height attributes that show a small image at the thumbnail size."""
    w, h = picture.size
    k = THUMB_SIZE / max(w, h, 1)
    return f' width="{max(1, round(w * k))}" height="{max(1, round(h * k))}"'
