"""``framediff demo``: a synthetic time-lapse with known events, scanned and checked."""

from __future__ import annotations

import shutil
from pathlib import Path

from .errors import FramediffError, ParameterError
from .options import make_options
from .scan import run_scan
from .synthetic import MIN_FRAMES_WITH_EVENTS, make_timelapse

__all__ = ["check_against_truth", "run_demo"]


def check_against_truth(timelapse, rows, events) -> list[tuple[str, str, bool]]:
    """Match what a scan found with what the generator put in.

    Returns
    -------
    list of (what, detail, found)
        One line per known event, duplicate and corrupt file, plus whether the slow
        lighting drift stayed unflagged.
    """
    spans = [(ev["first_index"], ev["last_index"]) for ev in events]
    by_b = {r["index_b"]: r for r in rows}
    lines = []
    for ev in timelapse.events:
        if ev.kind == "corrupt":
            row = by_b.get(ev.first, {})
            found = row.get("status") == "error"
            lines.append(("corrupt file", f"frame {ev.first}: {row.get('error_kind')}", found))
            continue
        window = (ev.first, ev.last + 1)
        found = any(a <= window[1] and b >= window[0] for a, b in spans)
        kinds = sorted(
            {by_b[i].get("change_kind") for i in range(window[0], window[1] + 1) if by_b.get(i, {}).get("changed")}
            - {None}
        )
        label = f" [{', '.join(kinds)}]" if kinds else ""
        lines.append((ev.kind, f"frames {ev.first}..{ev.last}{label}", found))
    for i in timelapse.duplicates:
        row = by_b.get(i, {})
        found = row.get("status") == "ok" and row.get("l1") == 0
        lines.append(("exact duplicate", f"frame {i} equals frame {i - 1}", found))
    expected = set(timelapse.changed_frames()) | set(timelapse.corrupt)
    expected |= {i + 1 for i in timelapse.corrupt}  # the frame after a bad one is compared across it
    false_alarms = [r["index_b"] for r in rows if r.get("changed") and r["index_b"] not in expected]
    lines.append(
        ("slow lighting drift", f"{len(false_alarms)} comparisons flagged outside the events", not false_alarms)
    )
    return lines


#: Written into DIR by the demo: only then does a later demo replace DIR's frames,
#: report and truth (what it wrote itself).
DEMO_MARKER = ".framediff-demo"


def _claim(directory: Path) -> bool:
    """Make ``directory`` the demo's; True when an earlier demo's files may be replaced."""
    ours = (directory / DEMO_MARKER).is_file()
    frames_dir = directory / "frames"
    if frames_dir.exists() and not ours:
        if frames_dir.is_dir() and not any(frames_dir.iterdir()):
            frames_dir.rmdir()
        else:
            raise FramediffError(f"{frames_dir}: exists and was not written by framediff demo; choose another DIR")
    if ours and frames_dir.exists():
        shutil.rmtree(frames_dir)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / DEMO_MARKER).write_text("written by framediff demo: its next run replaces frames/, report, truth\n")
    return ours


def run_demo(directory: Path, *, frames: int = 120, workers: int | None = None) -> bool:
    """Generate, scan and check; print a table. True when every line was found.

    Raises
    ------
    FramediffError
        Too few frames for the events, or ``DIR/frames`` holds files the demo did
        not write (the demo only ever removes its own earlier frames).
    """
    if frames < MIN_FRAMES_WITH_EVENTS:
        raise ParameterError("frames", f"must be at least {MIN_FRAMES_WITH_EVENTS} to hold every event, got {frames}")
    directory = Path(directory)
    replace = _claim(directory)
    timelapse = make_timelapse(directory / "frames", n_frames=frames, size=(360, 640))
    timelapse.write_truth(directory / "truth.json")
    report = directory / "report.parquet"
    result = run_scan(
        directory / "frames",
        options=make_options("fast"),
        output=report,
        overwrite=replace,
        workers=workers,
        collect=True,
    )
    rows = result.table().to_pylist()
    lines = check_against_truth(timelapse, rows, result.events)
    s = result.summary
    print(f"framediff demo: {s['inputs']} synthetic frames in {directory / 'frames'}")
    print(
        f"scanned in {s['wall_seconds']} s ({s['images_per_second']} images/s): {s['comparisons']} comparisons, "
        f"{s['changed']} changed, {s['events']} events, {s['errors']} unreadable"
    )
    print(f"report: {report}  (events and summary next to it)")
    print()
    print(f"{'truth':<20} {'where [change kind]':<40} result")
    for what, detail, found in lines:
        print(f"{what:<20} {detail:<40} {'found' if found else 'MISSED'}")
    ok = all(found for _, _, found in lines)
    print()
    print("all known events found" if ok else "some known events were missed")
    return ok
