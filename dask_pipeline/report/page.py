"""What the page shows before its script runs: the header and the first video's data."""

from __future__ import annotations

from html import escape

import numpy as np

from .coverage import COMPLETE_PCT, COVERAGE_BINS, bin_edges_pct
from .data import ReportData
from .retention import marks

#: What an empty plot says instead of drawing nothing (the page's script gets the same
#: texts as data). On two lines: one line would be clipped by the small plots' frames.
EMPTY_NOTES = {
    "none": "Nobody watched this video\nin the run's window",
    "no_bins": "No viewing inside\nthe timeline's range",
    "no_coverage": "Coverage unknown: the player\nnever reported the duration",
}


def empty_notes(viewers: int, bins: int, days: int, known: int) -> list[str]:
    """What the retention, daily and coverage plots say when empty ("" when not): the
    same as ``empty_notes`` of the page's script."""
    none = EMPTY_NOTES["none"]
    return [
        "" if bins else (EMPTY_NOTES["no_bins"] if viewers else none),
        "" if days else none,
        "" if known else (EMPTY_NOTES["no_coverage"] if viewers else none),
    ]


def first_video(data: ReportData, k: int, long: dict[str, dict[str, np.ndarray]]) -> dict:
    """What ``show(k)`` of the page's script puts in the displayed sources, for the video
    shown first: with it the first render needs no script, which opens the page sooner."""
    v = data.videos.iloc[k]
    tl = {c: a[v["tl_lo"] : v["tl_hi"]] for c, a in long["timeline"].items()}
    start = tl["start_seconds"].astype(np.float64)
    tl["center"] = (start + tl["end_seconds"]) / 2
    lo, hi = bin_edges_pct()
    d = float(v["duration"])
    return {
        "timeline": tl,
        "daily": {c: a[v["dy_lo"] : v["dy_hi"]] for c, a in long["daily"].items()},
        "coverage": {
            "lo": lo,
            "hi": hi,
            "count": long["coverage"]["count"][k * COVERAGE_BINS : (k + 1) * COVERAGE_BINS],
        },
        "marks": marks(v, tl["center"], data.bin_seconds),
        "duration": d if np.isfinite(d) else None,
        "empty": empty_notes(
            int(v["viewers"]),
            len(start),
            int(v["dy_hi"] - v["dy_lo"]),
            int(data.coverage[k].sum()),
        ),
    }


def header_html(data: ReportData) -> str:
    """The page's title line (courses, videos, run, days, rules, bins) and what its words
    mean: the same words as the tables'."""
    run = data.run
    opts = run.get("options") or {}
    bits = []
    if run.get("run_id"):
        bits.append(f"run {escape(str(run['run_id']))}")
    if data.days:
        span = data.days[0] if len(data.days) == 1 else f"{data.days[0]} to {data.days[-1]}"
        bits.append(f"days {escape(span)} ({escape(str(opts.get('tz') or 'UTC'))})")
    if opts.get("rules"):
        bits.append(f"{escape(str(opts['rules']))} rules")
    bits.append(f"timeline bins of {data.bin_seconds:g} s")
    n_courses, n_videos = len(data.overview), len(data.videos)
    return (
        "<h1>Video engagement</h1>"
        f"<p>{n_courses} course(s), {n_videos} video(s) &middot; {' &middot; '.join(bits)}</p>"
        '<p class="muted" data-k="vocabulary">A <b>segment</b> is one stretch of a video '
        "watched without a pause or a seek (a row of <code>segments/</code>); a <b>viewer</b> "
        "of a video is a learner with at least one segment of it (a row of "
        "<code>views/</code>). Coverage: share of a video a viewer watched at least once. "
        f"Completed: coverage of {COMPLETE_PCT:g}% or more, or reached the end mark. "
        "Hours watched count every replay.</p>"
    )


def days_note(after_midnight: dict[str, str], daily_segments: dict[str, int]) -> str:
    """Under the daily chart: the days that only hold the ends of viewings of the night
    before (``after_midnight``: day -> local time of its last segment)."""
    if not after_midnight:
        return ""
    days = "; ".join(
        f"{escape(d)} holds only {daily_segments.get(d, 0):,} segment(s), all closed by {escape(t)}"
        for d, t in sorted(after_midnight.items())
    )
    return (
        f'<div class="note" data-k="after_midnight">{days}: the ends of viewings of the '
        "night before. A segment counts on the day it closed.</div>"
    )
