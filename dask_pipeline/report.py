"""The HTML report of a run: one standalone Bokeh page that works offline (SPEC §6 tables).

``write_report(OUT, path)`` reads the committed tables of ``OUT`` and writes one HTML file
with Bokeh's JavaScript inline (no CDN, no server): a per-course overview, a sortable table
of a course's videos, and for the chosen video its retention curve (``video_timeline``),
viewers and views per day (``video_daily``) and the distribution of viewer coverage
(``views``). Choosing a video (select, search or a click in the table) only slices data
already in the page, so it scales to hundreds of videos without one page per video.

Every number the page shows comes unchanged from the tables (or is a plain sum, count or
ratio of them, computed here once in :func:`course_overview`, :func:`video_index` and
:func:`coverage_histogram`).
Pure pandas and Bokeh: imports neither Dask nor ``distributed``.
"""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from . import store

if TYPE_CHECKING:
    from bokeh.document import Document

VIDEO_KEYS = ["course_id", "video_id"]

#: Coverage histogram: 20 bins of 5 points, so the last bin is the 95% completion threshold.
COVERAGE_EDGES = np.linspace(0.0, 1.0, 21)
COVERAGE_BINS = len(COVERAGE_EDGES) - 1

DEFAULT_BIN_SECONDS = 5.0
DAY_MS = 86_400_000.0

# Colours: viewers in blue, views in orange, everywhere.
VIEWERS_COLOR = "#3b7dd8"
VIEWERS_FILL = "#a9c8f0"
VIEWS_COLOR = "#e8702a"
MARK_COLOR = "#1b5e20"


@dataclass(frozen=True)
class Tables:
    """The tables a report reads, as canonical pandas frames, and the run's summary."""

    video_stats: pd.DataFrame
    views: pd.DataFrame
    video_timeline: pd.DataFrame
    video_daily: pd.DataFrame
    run: dict


def load_tables(out_dir: str | Path) -> Tables:
    """Read the committed tables of a ``run`` output directory (and its ``_run.json``)."""
    out = Path(out_dir)
    run_json = out / store.RUN_JSON
    try:
        run = json.loads(run_json.read_text()) if run_json.exists() else {}
    except (OSError, ValueError):
        run = {}  # the summary only decorates the header; the tables are what matters
    return Tables(
        video_stats=store.read_table(out, "video_stats"),
        views=store.read_table(out, "views"),
        video_timeline=store.read_table(out, "video_timeline"),
        video_daily=store.read_table(out, "video_daily"),
        run=run if isinstance(run, dict) else {},
    )


def bin_seconds(t: Tables) -> float:
    """The timeline's bin width: the run's ``--bin-seconds``, else read off the timeline."""
    b = (t.run.get("options") or {}).get("bin_seconds")
    if isinstance(b, int | float) and b > 0:
        return float(b)
    tl = t.video_timeline
    if len(tl):
        return float(tl["end_seconds"].iloc[0] - tl["start_seconds"].iloc[0])
    return DEFAULT_BIN_SECONDS


def course_overview(stats: pd.DataFrame, views: pd.DataFrame) -> pd.DataFrame:
    """One row per course, sorted by course_id: ``videos`` (rows of video_stats),
    ``watched_videos`` (with viewers), ``viewers`` (distinct usernames in views),
    ``hours_watched`` (sum of watched_seconds / 3600), ``mean_coverage`` (mean of the
    non-null coverages of its views, NaN when none) and ``completion`` (sum of
    completed_viewers / sum of viewers, NaN when nobody watched)."""
    g = stats.groupby("course_id", sort=True, observed=True)
    out = pd.DataFrame(
        {
            "videos": g.size(),
            "watched_videos": g["viewers"].apply(lambda s: int((s > 0).sum())),
            "watched_seconds": g["watched_seconds"].sum(),
            "viewers_sum": g["viewers"].sum(),
            "completed_sum": g["completed_viewers"].sum(),
        }
    )
    vg = views.groupby("course_id", sort=True, observed=True)
    out["viewers"] = vg["username"].nunique().reindex(out.index).fillna(0).astype("int64")
    out["mean_coverage"] = vg["coverage"].mean().reindex(out.index)
    out["hours_watched"] = out["watched_seconds"] / 3600.0
    with np.errstate(invalid="ignore", divide="ignore"):
        out["completion"] = np.where(
            out["viewers_sum"] > 0, out["completed_sum"] / out["viewers_sum"], np.nan
        )
    out = out.reset_index()
    out["course_id"] = out["course_id"].astype(object)
    cols = ["course_id", "videos", "watched_videos", "viewers", "hours_watched"]
    return out[[*cols, "mean_coverage", "completion"]]


def short_id(video_id: str) -> str:
    """A video id without the parts that repeat the course: the block hash of a
    ``block-v1:...@<hash>`` id, the name of an ``i4x-...-video-<name>`` id, else the id."""
    if "@" in video_id:
        return video_id.rsplit("@", 1)[1] or video_id
    if "-video-" in video_id:
        return video_id.split("-video-", 1)[1] or video_id
    return video_id


def clock(seconds: float) -> str:
    """``m:ss`` (or ``h:mm:ss``) of a duration in seconds; an em dash when unknown."""
    if seconds is None or not np.isfinite(seconds):
        return "\u2014"
    s = int(round(float(seconds)))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


def video_index(stats: pd.DataFrame, views: pd.DataFrame, bin_s: float) -> pd.DataFrame:
    """One row per video of video_stats, in page order (course_id, most viewers first,
    video_id), with its stats, display labels, ``coverage_unknown`` (views with a null
    coverage), ``completion`` (completed_viewers / viewers) and ``end_bin`` (the bin of
    users_at_end, ``floor(max(duration - 30, 0.95 * duration) / B)``, -1 when unknown)."""
    idx = stats.sort_values(
        ["course_id", "viewers", "video_id"], ascending=[True, False, True], kind="stable"
    ).reset_index(drop=True)
    for c in VIDEO_KEYS:
        idx[c] = idx[c].astype(object)
    unknown = (
        views.assign(_u=views["coverage"].isna())
        .groupby(VIDEO_KEYS, observed=True)["_u"]
        .sum()
        .rename("coverage_unknown")
        .reset_index()
    )
    for c in VIDEO_KEYS:
        unknown[c] = unknown[c].astype(object)
    idx = idx.merge(unknown, on=VIDEO_KEYS, how="left")
    idx["coverage_unknown"] = idx["coverage_unknown"].fillna(0).astype("int64")
    with np.errstate(invalid="ignore", divide="ignore"):
        idx["completion"] = np.where(
            idx["viewers"] > 0, idx["completed_viewers"] / idx["viewers"].clip(lower=1), np.nan
        )
        d = idx["duration"].to_numpy(dtype="float64")
        e = np.floor(np.fmax(d - 30.0, 0.95 * d) / bin_s)
    idx["end_bin"] = np.where(np.isfinite(e), e, -1).astype("int64")
    idx["watched_hours"] = idx["watched_seconds"] / 3600.0
    idx["mean_coverage_pct"] = idx["mean_coverage"] * 100.0
    idx["completion_pct"] = idx["completion"] * 100.0
    idx["duration_text"] = [
        clock(x) + (" (inferred)" if inf else "")
        for x, inf in zip(idx["duration"], idx["duration_inferred"], strict=True)
    ]
    short = pd.Series([short_id(v) for v in idx["video_id"]], index=idx.index)
    # a short id must name one video of its course; where two collide keep the full ids
    clash = short.groupby(idx["course_id"]).transform(lambda s: s.duplicated(keep=False))
    idx["short_id"] = np.where(clash, idx["video_id"], short)
    idx["option_label"] = [
        f"{s}  ({clock(d)}, {n} viewers)"
        for s, d, n in zip(idx["short_id"], idx["duration"], idx["viewers"], strict=True)
    ]
    idx["search_label"] = [
        f"{s} \u00b7 {c}" for s, c in zip(idx["short_id"], idx["course_id"], strict=True)
    ]
    return idx


def _row_ranges(
    df: pd.DataFrame, idx: pd.DataFrame, order: list[str]
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """``df`` restricted to the videos of ``idx``, sorted by page order then ``order``,
    and the [lo, hi) row range of each video of ``idx`` in it."""
    key = idx[VIDEO_KEYS].assign(_k=np.arange(len(idx)))
    df = df.assign(**{c: df[c].astype(object) for c in VIDEO_KEYS})
    df = df.merge(key, on=VIDEO_KEYS, how="inner")
    df = df.sort_values(["_k", *order], kind="stable").reset_index(drop=True)
    k = df["_k"].to_numpy()
    ks = np.arange(len(idx))
    return df, np.searchsorted(k, ks, "left"), np.searchsorted(k, ks, "right")


def coverage_histogram(views: pd.DataFrame, idx: pd.DataFrame) -> np.ndarray:
    """Counts of the non-null coverages of each video's views in ``COVERAGE_EDGES`` bins
    (numpy.histogram's: half-open, the last one closed), shape (len(idx), COVERAGE_BINS)."""
    key = idx[VIDEO_KEYS].assign(_k=np.arange(len(idx)))
    v = views.loc[views["coverage"].notna(), [*VIDEO_KEYS, "coverage"]]
    v = v.assign(**{c: v[c].astype(object) for c in VIDEO_KEYS}).merge(key, on=VIDEO_KEYS)
    b = np.searchsorted(COVERAGE_EDGES, v["coverage"].to_numpy(), side="right") - 1
    b = np.clip(b, 0, COVERAGE_BINS - 1)  # coverage 1.0 falls in the last, closed bin
    out = np.zeros((len(idx), COVERAGE_BINS), dtype=np.int64)
    np.add.at(out, (v["_k"].to_numpy(), b), 1)
    return out


def _compact(a: np.ndarray) -> np.ndarray:
    """The same values in the smallest dtype that holds them exactly, so the page stays
    small (Bokeh ships numeric columns as base64 bytes of the array's dtype)."""
    a = np.asarray(a)
    if a.dtype.kind in "iu":
        if len(a) == 0:
            return a.astype(np.int32)
        lo, hi = int(a.min()), int(a.max())
        for t in (np.uint8, np.uint16, np.int32):
            info = np.iinfo(t)
            if info.min <= lo and hi <= info.max:
                return a.astype(t)
        return a.astype(np.float64)  # beyond int32: float64 holds integers up to 2**53
    if a.dtype.kind == "f":
        f32 = a.astype(np.float32)
        same = (f32.astype(np.float64) == a) | (np.isnan(a) & np.isnan(f32))
        return f32 if bool(same.all()) else a.astype(np.float64)
    return a


def _strings(s: pd.Series) -> list[str]:
    return ["" if pd.isna(x) else str(x) for x in s]


def _day_ms(dates: list[str]) -> np.ndarray:
    """Milliseconds since the epoch of ``YYYY-MM-DD`` dates, at their UTC midnight: a local
    date drawn on a UTC datetime axis shows as itself."""
    d = np.array(dates, dtype="datetime64[D]") if dates else np.zeros(0, "datetime64[D]")
    return d.astype("datetime64[ms]").astype(np.int64).astype(np.float64)


@dataclass(frozen=True)
class ReportData:
    """Everything the page ships, as plain columns (``build_data``'s result)."""

    bin_seconds: float
    overview: pd.DataFrame
    videos: pd.DataFrame
    timeline: dict[str, np.ndarray]
    daily: dict[str, np.ndarray]
    coverage: np.ndarray
    days: list[str]
    run: dict


def build_data(t: Tables) -> ReportData:
    """The page's data from the tables: the course overview, the video index (with each
    video's row ranges ``tl_lo``/``tl_hi`` and ``dy_lo``/``dy_hi`` into the long timeline and
    daily columns) and the coverage histogram, one row of counts per video."""
    bs = bin_seconds(t)
    idx = video_index(t.video_stats, t.views, bs)
    tl, tl_lo, tl_hi = _row_ranges(t.video_timeline, idx, ["segment"])
    dy, dy_lo, dy_hi = _row_ranges(t.video_daily, idx, ["date"])
    idx["tl_lo"], idx["tl_hi"] = tl_lo, tl_hi
    idx["dy_lo"], idx["dy_hi"] = dy_lo, dy_hi
    return ReportData(
        bin_seconds=bs,
        overview=course_overview(t.video_stats, t.views),
        videos=idx,
        timeline={
            "segment": tl["segment"].to_numpy(),
            "start_seconds": tl["start_seconds"].to_numpy(),
            "end_seconds": tl["end_seconds"].to_numpy(),
            "num_users": tl["num_users"].to_numpy(),
            "num_views": tl["num_views"].to_numpy(),
        },
        daily={
            # a local date drawn at its midnight on a UTC datetime axis
            "day": _day_ms(_strings(dy["date"])),
            "viewers": dy["viewers"].to_numpy(),
            "segments": dy["segments"].to_numpy(),
            "watched_hours": dy["watched_seconds"].to_numpy(dtype="float64") / 3600.0,
        },
        coverage=coverage_histogram(t.views, idx),
        days=sorted(set(_strings(t.video_daily["date"]))),
        run=t.run,
    )


# ----------------------------------------------------------------------------- the page

_CSS = """
:host { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #222; }
h1 { font-size: 24px; margin: 4px 0 2px 0; }
h2 { font-size: 18px; margin: 14px 0 2px 0; }
p { margin: 2px 0; color: #555; font-size: 13px; }
.muted { color: #666; font-size: 12px; }
table.sum { border-collapse: collapse; font-size: 13px; width: 100%; }
table.sum th { text-align: left; font-weight: 600; color: #444; padding: 3px 8px 3px 0;
  vertical-align: top; white-space: nowrap; }
table.sum td { text-align: right; padding: 3px 0; font-variant-numeric: tabular-nums; }
.vid { font-size: 12px; color: #444; word-break: break-all; margin: 0 0 6px 0; }
h2.v { font-size: 16px; word-break: break-all; margin-top: 4px; }
.note { font-size: 12px; color: #8a5300; margin-top: 6px; }
"""

# One callback for every control (one copy of the code in the page). The page state is the video
# select's value (a row of the `videos` source): every other control just sets it.
_JS = r"""
const NB = coverage_bins
function cols(src) {
  const d = src.data
  return d instanceof Map ? Object.fromEntries(d) : d
}
const VD = cols(videos)
const V = (name, k) => VD[name][k]
function take(src, lo, hi) {
  const out = {}
  for (const [name, a] of Object.entries(cols(src))) {
    const s = new Array(hi - lo)
    for (let i = lo; i < hi; i++) s[i - lo] = a[i]
    out[name] = s
  }
  return out
}
const ESC = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}
const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ESC[c])
const int = (x) => Number(x).toLocaleString("en-US")
const pct = (x) => (Number.isFinite(x) ? (100 * x).toFixed(1) + "%" : "n/a")
function clock(s) {
  if (!Number.isFinite(s)) return "\u2014"
  s = Math.round(s)
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), ss = s % 60
  const p2 = (x) => String(x).padStart(2, "0")
  return h ? `${h}:${p2(m)}:${p2(ss)}` : `${m}:${p2(ss)}`
}
const note = (text, key) => `<div class="note"${key ? ` data-k="${key}"` : ""}>${text}</div>`

function summary_html(k) {
  const eb = V("end_bin", k)
  const at_end = "Users at end" + (eb >= 0 ? ` (${clock(eb * bin_seconds)})` : "")
  const completed = `${int(V("completed_viewers", k))} (${pct(V("completion", k))})`
  const rows = [
    ["Duration", esc(V("duration_text", k)), "duration"],
    ["Viewers", int(V("viewers", k)), "viewers"],
    ["Views (segments)", int(V("segments", k)), "segments"],
    ["Hours watched", V("watched_hours", k).toFixed(2), "watched_hours"],
    ["Mean coverage", pct(V("mean_coverage", k)), "mean_coverage"],
    ["Completed", completed, "completed_viewers"],
    ["Users at start", int(V("users_at_start", k)), "users_at_start"],
    [at_end, int(V("users_at_end", k)), "users_at_end"],
  ]
  let html = `<h2 class="v">${esc(V("short_id", k))}</h2>`
  html += `<div class="vid">Course: <span data-k="course_id">${esc(V("course_id", k))}</span></div>`
  html += `<div class="vid">Video id: <span data-k="video_id">${esc(V("video_id", k))}</span></div>`
  html += '<table class="sum">'
  for (const [h, v, key] of rows) html += `<tr><th>${h}</th><td data-k="${key}">${v}</td></tr>`
  html += "</table>"
  if (V("viewers", k) === 0) html += note("Nobody watched this video in the run's window.")
  const unknown = V("coverage_unknown", k)
  if (unknown > 0) {
    const text = `${int(unknown)} viewer(s) are not in the coverage chart: duration unknown.`
    html += note(text, "coverage_unknown")
  }
  if (V("duration_inferred", k)) {
    html += note("The player never reported this video's duration: it is inferred from where "
      + "viewing stops.")
  }
  return html
}

// what an empty plot says instead (retention, daily, coverage); "" when it has data
function empty_notes(viewers, bins, days, known) {
  const none = "Nobody watched this video in the run's window"
  return [
    bins ? "" : (viewers ? "No viewing inside the timeline's range" : none),
    days ? "" : none,
    known ? "" : (viewers ? "Coverage unknown: the player never reported the duration" : none),
  ]
}

const retention_title = (k) => `Retention of ${V("short_id", k)}: unique viewers and views `
  + `per ${bin_seconds}-second bin`

// Shows video k; the page's first video comes with its data (see _first_video), so that
// the first render needs no script: then only the texts are filled in.
function show(k, data = true) {
  summary.text = summary_html(k)
  retention_plot.title.text = retention_title(k)
  const sel = videos.selected.indices
  if (sel.length !== 1 || sel[0] !== k) videos.selected.indices = [k]
  if (!data) return
  const t = take(timeline_all, V("tl_lo", k), V("tl_hi", k))
  t.center = t.start_seconds.map((s, i) => (s + t.end_seconds[i]) / 2)
  timeline.data = t
  daily.data = take(daily_all, V("dy_lo", k), V("dy_hi", k))
  const c = take(coverage_all, k * NB, (k + 1) * NB)
  coverage.data = {lo: coverage_lo, hi: coverage_hi, count: c.count}

  // the users-at-start and users-at-end marks, at the centre of their bins; the end label
  // goes left of its mark so that it stays inside the plot
  const m = {x: [], y: [], text: [], align: [], dx: []}
  const add = (x, y, text, align, dx) => {
    m.x.push(x); m.y.push(y); m.text.push(text); m.align.push(align); m.dx.push(dx)
  }
  const eb = V("end_bin", k)
  if (t.segment.length > 0) {
    add(t.center[0], V("users_at_start", k), `start: ${int(V("users_at_start", k))}`, "left", 6)
    if (eb >= 0) {
      add((eb + 0.5) * bin_seconds, V("users_at_end", k), `end: ${int(V("users_at_end", k))}`,
        "right", -6)
    }
  }
  marks.data = m
  const d = V("duration", k)
  end_span.location = Number.isFinite(d) ? d : null
  end_span.visible = Number.isFinite(d)
  const empty = empty_notes(V("viewers", k), t.segment.length, V("dy_hi", k) - V("dy_lo", k),
    c.count.reduce((a, b) => a + b, 0))
  for (const [i, label] of empty_labels.entries()) {
    label.text = empty[i]
    label.visible = empty[i] !== ""
  }
  for (const p of plots) {
    try { p.reset.emit() } catch (e) { /* no reset signal: keep the zoom */ }
  }
}

function set_course(c) {
  if (course_select.value !== c) {
    course_select.value = c  // fires the "course" callback, which comes back here
    return
  }
  // the course's videos in page order: its most viewed first
  const opts = []
  VD.course_id.forEach((ck, k) => { if (ck === c) opts.push([String(k), VD.option_label[k]]) })
  video_select.options = opts
  course_filter.group = c
  if (V("course_id", Number(video_select.value)) !== c) video_select.value = opts[0][0]
}

// which control fired; the page's document_ready event (anything else) shows the first video
const what = cb_obj === course_select ? "course"
  : cb_obj === video_select ? "video"
  : cb_obj === videos.selected ? "row"
  : cb_obj === overview.selected ? "course_row"
  : cb_obj === search ? "search" : "ready"
if (what === "ready") {
  show(Number(video_select.value), false)
} else if (what === "video") {
  show(Number(video_select.value))
} else if (what === "course") {
  set_course(course_select.value)
} else if (what === "row") {
  const sel = videos.selected.indices
  if (sel.length === 1 && String(sel[0]) !== video_select.value) {
    set_course(V("course_id", sel[0]))
    video_select.value = String(sel[0])
  }
} else if (what === "course_row") {
  const sel = overview.selected.indices
  if (sel.length === 1) set_course(cols(overview).course_id[sel[0]])
} else if (what === "search") {
  const k = VD.search_label.indexOf(search.value)
  if (k >= 0) {
    set_course(V("course_id", k))
    video_select.value = String(k)
  }
}
"""

_TICK_JS = """
const s = Math.round(tick), h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60)
const p2 = (x) => String(x).padStart(2, "0")
return h ? `${h}:${p2(m)}:${p2(s % 60)}` : `${m}:${p2(s % 60)}`
"""


def _first_video(data: ReportData, k: int, long: dict[str, dict[str, np.ndarray]]) -> dict:
    """What ``show(k)`` of the page's script puts in the displayed sources, for the video
    shown first: with it the first render needs no script, which opens the page sooner."""
    v = data.videos.iloc[k]
    tl = {c: a[v["tl_lo"] : v["tl_hi"]] for c, a in long["timeline"].items()}
    start = tl["start_seconds"].astype(np.float64)
    tl["center"] = (start + tl["end_seconds"]) / 2
    marks: dict[str, list] = {"x": [], "y": [], "text": [], "align": [], "dx": []}

    def add(x: float, y: int, text: str, align: str, dx: int) -> None:
        for c, val in zip(marks, (x, y, text, align, dx), strict=True):
            marks[c].append(val)

    if len(start):
        at_start = int(v["users_at_start"])
        add(float(tl["center"][0]), at_start, f"start: {at_start:,}", "left", 6)
        if v["end_bin"] >= 0:
            end = f"end: {int(v['users_at_end']):,}"
            add((v["end_bin"] + 0.5) * data.bin_seconds, int(v["users_at_end"]), end, "right", -6)
    edges = COVERAGE_EDGES * 100.0
    d = float(v["duration"])
    return {
        "timeline": tl,
        "daily": {c: a[v["dy_lo"] : v["dy_hi"]] for c, a in long["daily"].items()},
        "coverage": {
            "lo": edges[:-1].round(6).tolist(),
            "hi": edges[1:].round(6).tolist(),
            "count": long["coverage"]["count"][k * COVERAGE_BINS : (k + 1) * COVERAGE_BINS],
        },
        "marks": marks,
        "duration": d if np.isfinite(d) else None,
        "title": f"Retention of {v['short_id']}: unique viewers and views "
        f"per {data.bin_seconds:g}-second bin",
        "empty": _empty_notes(
            int(v["viewers"]),
            len(start),
            int(v["dy_hi"] - v["dy_lo"]),
            int(data.coverage[k].sum()),
        ),
    }


def _empty_notes(viewers: int, bins: int, days: int, known: int) -> list[str]:
    """What the retention, daily and coverage plots say when empty ("" when not): the
    same as ``empty_notes`` of the page's script."""
    none = "Nobody watched this video in the run's window"
    return [
        "" if bins else ("No viewing inside the timeline's range" if viewers else none),
        "" if days else none,
        ""
        if known
        else ("Coverage unknown: the player never reported the duration" if viewers else none),
    ]


def _header(data: ReportData) -> str:
    from html import escape

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
        '<p class="muted">Coverage: share of a video a viewer watched at least once. '
        "Completed: coverage of 95% or more, or reached the end mark. "
        "Hours watched count every replay.</p>"
    )


def build_document(data: ReportData, title: str = "Video engagement report") -> Document:
    """The Bokeh Document of the page (a header and a note when there are no videos)."""
    from bokeh.document import Document
    from bokeh.layouts import column, row
    from bokeh.models import (
        AdaptiveTicker,
        AutocompleteInput,
        BasicTicker,
        CDSView,
        ColumnDataSource,
        CustomJS,
        CustomJSTickFormatter,
        DataRange1d,
        DataTable,
        DatetimeTickFormatter,
        Div,
        GroupFilter,
        HoverTool,
        InlineStyleSheet,
        Label,
        LabelSet,
        Legend,
        NumberFormatter,
        Range1d,
        Select,
        Span,
        TableColumn,
    )
    from bokeh.plotting import figure

    css = InlineStyleSheet(css=_CSS)
    doc = Document()
    doc.title = title
    header = Div(text=_header(data), stylesheets=[css], width=1180)
    if data.videos.empty:
        note = Div(
            text="<p>The run's tables hold no videos: nothing to show.</p>", stylesheets=[css]
        )
        doc.add_root(column(header, note))
        return doc

    ov = data.overview
    overview = ColumnDataSource(
        {
            "course_id": _strings(ov["course_id"]),
            "videos": ov["videos"].to_numpy(),
            "watched_videos": ov["watched_videos"].to_numpy(),
            "viewers": ov["viewers"].to_numpy(),
            "hours_watched": ov["hours_watched"].to_numpy(),
            "mean_coverage_pct": ov["mean_coverage"].to_numpy() * 100.0,
            "completion_pct": ov["completion"].to_numpy() * 100.0,
        },
        name="overview",
    )
    f_int = NumberFormatter(format="0,0", text_align="right")
    f_pct = NumberFormatter(format="0.0", text_align="right", nan_format="n/a")
    f_hours = NumberFormatter(format="0,0.00", text_align="right")
    overview_table = DataTable(
        source=overview,
        columns=[
            TableColumn(field="course_id", title="Course", width=420),
            TableColumn(field="videos", title="Videos", formatter=f_int, width=90),
            TableColumn(field="watched_videos", title="Watched", formatter=f_int, width=90),
            TableColumn(field="viewers", title="Viewers", formatter=f_int, width=90),
            TableColumn(field="hours_watched", title="Hours watched", formatter=f_hours, width=120),
            TableColumn(
                field="mean_coverage_pct", title="Mean coverage %", formatter=f_pct, width=130
            ),
            TableColumn(field="completion_pct", title="Completion %", formatter=f_pct, width=120),
        ],
        width=1080,
        height=min(32 + 28 * len(ov), 260),
        index_position=None,
        autosize_mode="none",
        reorderable=False,
        name="overview_table",
        css_classes=["overview"],
    )

    vi = data.videos
    text_cols = ["course_id", "video_id", "short_id", "duration_text", "option_label"]
    text_cols += ["search_label"]
    num_cols = [
        "duration",
        "viewers",
        "segments",
        "watched_hours",
        "mean_coverage",
        "mean_coverage_pct",
        "completed_viewers",
        "completion",
        "completion_pct",
        "users_at_start",
        "users_at_end",
        "coverage_unknown",
        "end_bin",
        "tl_lo",
        "tl_hi",
        "dy_lo",
        "dy_hi",
    ]
    videos = ColumnDataSource(
        {
            **{c: _strings(vi[c]) for c in text_cols},
            **{c: vi[c].to_numpy() for c in num_cols},
            "duration_inferred": vi["duration_inferred"].to_numpy(dtype=bool),
        },
        name="videos",
    )
    courses = _strings(ov["course_id"])
    first_course = courses[0]
    first_options = [
        (str(k), label)
        for k, (c, label) in enumerate(zip(vi["course_id"], vi["option_label"], strict=True))
        if c == first_course
    ]

    course_filter = GroupFilter(column_name="course_id", group=first_course)
    videos_table = DataTable(
        source=videos,
        view=CDSView(filter=course_filter),
        columns=[
            TableColumn(field="short_id", title="Video", width=300),
            TableColumn(field="duration_text", title="Duration", width=120),
            TableColumn(field="viewers", title="Viewers", formatter=f_int, width=75),
            TableColumn(field="segments", title="Views", formatter=f_int, width=75),
            TableColumn(field="watched_hours", title="Hours watched", formatter=f_hours, width=110),
            TableColumn(
                field="mean_coverage_pct", title="Mean coverage %", formatter=f_pct, width=125
            ),
            TableColumn(field="completion_pct", title="Completion %", formatter=f_pct, width=110),
            TableColumn(field="users_at_start", title="At start", formatter=f_int, width=75),
            TableColumn(field="users_at_end", title="At end", formatter=f_int, width=75),
        ],
        width=1080,
        height=300,
        index_position=None,
        autosize_mode="none",
        reorderable=False,
        name="videos_table",
        css_classes=["videos"],
    )

    course_select = Select(
        title="Course", options=courses, value=first_course, width=330, name="course_select"
    )
    video_select = Select(
        title="Video (most viewed first)",
        options=first_options,
        value=first_options[0][0],  # page order: the course's most viewed video first
        width=420,
        name="video_select",
    )
    search = AutocompleteInput(
        title="Find a video in any course (type part of its id)",
        completions=_strings(vi["search_label"]),
        search_strategy="includes",
        case_sensitive=False,
        min_characters=2,
        max_completions=30,
        width=420,
        name="video_search",
    )

    long = {
        "timeline": {k: _compact(v) for k, v in data.timeline.items()},
        "daily": {k: _compact(v) for k, v in data.daily.items()},
        "coverage": {"count": _compact(data.coverage.reshape(-1))},
    }
    timeline_all = ColumnDataSource(long["timeline"], name="timeline_all")
    daily_all = ColumnDataSource(long["daily"], name="daily_all")
    coverage_all = ColumnDataSource(long["coverage"], name="coverage_all")
    first = _first_video(data, int(first_options[0][0]), long)
    timeline = ColumnDataSource(first["timeline"], name="retention_source")
    daily = ColumnDataSource(first["daily"], name="daily_source")
    coverage = ColumnDataSource(first["coverage"], name="coverage_source")
    marks = ColumnDataSource(first["marks"], name="marks_source")

    tools = "xpan,xwheel_zoom,reset,save"
    retention = figure(
        width=880,
        height=360,
        tools=tools,
        toolbar_location="above",
        title=first["title"],
        x_range=DataRange1d(start=0, range_padding=0.02),
        y_range=DataRange1d(start=0, range_padding=0.12),
        x_axis_label="Position in the video (m:ss)",
        y_axis_label="People / views",
        name="retention",
        css_classes=["retention"],
    )
    bars = retention.quad(
        left="start_seconds",
        right="end_seconds",
        bottom=0,
        top="num_users",
        source=timeline,
        fill_color=VIEWERS_FILL,
        line_color=VIEWERS_FILL,
        fill_alpha=0.9,
    )
    views_line = retention.line(
        x="center", y="num_views", source=timeline, line_color=VIEWS_COLOR, line_width=2
    )
    mark_dots = retention.scatter(
        x="x", y="y", source=marks, size=11, marker="diamond", color=MARK_COLOR
    )
    retention.add_layout(
        LabelSet(
            x="x",
            y="y",
            text="text",
            source=marks,
            x_offset="dx",
            y_offset=6,
            text_align="align",
            text_font_size="12px",
            text_color=MARK_COLOR,
            text_font_style="bold",
            background_fill_color="white",
            background_fill_alpha=0.8,
        )
    )
    end_span = Span(
        location=first["duration"],
        visible=first["duration"] is not None,
        dimension="height",
        line_color="#777",
        line_dash="dashed",
        line_width=1,
    )
    retention.add_layout(end_span)
    retention.add_layout(
        Legend(
            items=[
                ("unique viewers", [bars]),
                ("views", [views_line]),
                ("users at start / at end", [mark_dots]),
            ],
            orientation="horizontal",
            border_line_color=None,
        ),
        "above",  # outside the data: inside, it hid the end mark of short videos
    )
    retention.add_tools(
        HoverTool(
            renderers=[bars],
            tooltips=[
                ("bin", "@segment: @start_seconds{0.[00]}\u2013@end_seconds{0.[00]} s"),
                ("unique viewers", "@num_users"),
                ("views", "@num_views"),
            ],
            mode="vline",
        )
    )
    retention.xaxis.ticker = AdaptiveTicker(
        base=60, mantissas=[1, 2, 5, 10, 15, 30], min_interval=1, num_minor_ticks=0
    )
    retention.xaxis.formatter = CustomJSTickFormatter(code=_TICK_JS)

    days = _day_ms(data.days)
    d0, d1 = (days.min(), days.max()) if len(days) else (0.0, DAY_MS)
    daily_plot = figure(
        width=440,
        height=300,
        tools="save",
        toolbar_location=None,
        x_axis_type="datetime",
        x_range=Range1d(d0 - 0.6 * DAY_MS, d1 + 0.6 * DAY_MS),
        y_range=DataRange1d(start=0, range_padding=0.15),
        title="Viewers and views per day",
        y_axis_label="People / views",
        name="daily",
        css_classes=["daily"],
    )
    from bokeh.transform import dodge

    r_viewers = daily_plot.vbar(
        x=dodge("day", -0.18 * DAY_MS),
        top="viewers",
        width=0.34 * DAY_MS,
        source=daily,
        color=VIEWERS_COLOR,
        legend_label="viewers",
    )
    r_views = daily_plot.vbar(
        x=dodge("day", 0.18 * DAY_MS),
        top="segments",
        width=0.34 * DAY_MS,
        source=daily,
        color=VIEWS_COLOR,
        legend_label="views",
    )
    # outside, at the right, so both small charts keep frames of the same height
    daily_plot.legend.border_line_color = None
    daily_plot.add_layout(daily_plot.legend[0], "right")
    daily_plot.xaxis.formatter = DatetimeTickFormatter(days="%a %b %d", months="%b %Y")
    daily_plot.add_tools(
        HoverTool(
            renderers=[r_viewers, r_views],
            tooltips=[
                ("day", "@day{%F}"),
                ("viewers", "@viewers"),
                ("views", "@segments"),
                ("hours watched", "@watched_hours{0.00}"),
            ],
            formatters={"@day": "datetime"},
        )
    )

    coverage_plot = figure(
        width=440,
        height=300,
        tools="save",
        toolbar_location=None,
        x_range=Range1d(0, 100),
        y_range=DataRange1d(start=0, range_padding=0.25),
        title="How much of the video each viewer watched",
        x_axis_label="Coverage (% of the video watched at least once)",
        y_axis_label="Viewers",
        name="coverage",
        css_classes=["coverage"],
    )
    r_cov = coverage_plot.quad(
        left="lo",
        right="hi",
        bottom=0,
        top="count",
        source=coverage,
        fill_color=VIEWERS_COLOR,
        line_color="white",
    )
    coverage_plot.add_layout(
        Span(location=95, dimension="height", line_color=MARK_COLOR, line_dash="dashed")
    )
    coverage_plot.add_layout(
        Label(
            x=94,
            y=190,
            x_units="data",
            y_units="screen",
            text="95%: completed",
            text_align="right",
            text_font_size="11px",
            text_color=MARK_COLOR,
        )
    )
    coverage_plot.add_tools(
        HoverTool(
            renderers=[r_cov],
            tooltips=[("coverage", "@lo{0}\u2013@hi{0} %"), ("viewers", "@count")],
        )
    )
    empty_labels = []
    for p, note in zip((retention, daily_plot, coverage_plot), first["empty"], strict=True):
        label = Label(
            x=p.width / 2 - 40,
            y=p.height / 2 - 60,
            x_units="screen",
            y_units="screen",
            text=note,
            visible=bool(note),
            text_align="center",
            text_font_size="13px",
            text_color="#8a5300",
        )
        p.add_layout(label)
        empty_labels.append(label)
    for p in (retention, daily_plot, coverage_plot):
        p.toolbar.logo = None
        p.title.text_font_size = "14px"
        p.yaxis.ticker = BasicTicker(min_interval=1, num_minor_ticks=0)  # counts: no 0.5
        p.xgrid.grid_line_color = None

    summary = Div(text="", width=300, stylesheets=[css], name="summary")
    edges = COVERAGE_EDGES * 100.0
    args = {
        "videos": videos,
        "overview": overview,
        "timeline_all": timeline_all,
        "daily_all": daily_all,
        "coverage_all": coverage_all,
        "timeline": timeline,
        "daily": daily,
        "coverage": coverage,
        "marks": marks,
        "summary": summary,
        "end_span": end_span,
        "empty_labels": empty_labels,
        "retention_plot": retention,
        "plots": [retention, daily_plot, coverage_plot],
        "course_select": course_select,
        "video_select": video_select,
        "course_filter": course_filter,
        "search": search,
        "bin_seconds": data.bin_seconds,
        "coverage_bins": COVERAGE_BINS,
        "coverage_lo": edges[:-1].round(6).tolist(),
        "coverage_hi": edges[1:].round(6).tolist(),
    }

    cb = CustomJS(args=args, code=_JS)
    course_select.js_on_change("value", cb)
    video_select.js_on_change("value", cb)
    videos.selected.js_on_change("indices", cb)
    overview.selected.js_on_change("indices", cb)
    search.js_on_change("value", cb)
    doc.js_on_event("document_ready", cb)

    def h2(text: str, note: str = "") -> Div:
        sub = f'<p class="muted">{note}</p>' if note else ""
        return Div(text=f"<h2>{text}</h2>{sub}", stylesheets=[css], width=1080)

    layout = column(
        header,
        h2("Courses", "Click a course to explore its videos."),
        overview_table,
        h2("Videos of the course", "Click a row, pick a video or search one by its id."),
        row(course_select, video_select, search),
        videos_table,
        h2("The selected video"),
        row(summary, column(retention, row(daily_plot, coverage_plot))),
    )
    doc.add_root(layout)
    return doc


def render_html(out_dir: str | Path) -> str:
    """The standalone HTML of the report of ``out_dir`` (Bokeh inline: works offline)."""
    from bokeh.embed import file_html
    from bokeh.resources import INLINE

    doc = build_document(build_data(load_tables(out_dir)))
    return file_html(doc, resources=INLINE, title=doc.title)


def write_report(out_dir: str | Path, html_path: str | Path) -> Path:
    """Write the report of the run in ``out_dir`` to ``html_path`` (atomically); returns
    the path written."""
    path = Path(html_path)
    html = render_html(out_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_text(html, encoding="utf-8")
    os.replace(tmp, path)
    return path
