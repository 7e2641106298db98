"""The HTML report (issues 6, 11, 12): its numbers equal the tables, it stays small, and a
real headless Chromium opens it offline, draws the plots and switches videos; it opens on a
video with known coverage, its day labels never overlap, it speaks of segments and viewers as
the tables do, shows the run's health, says when a search finds nothing, and with a course
outline shows titles, outline order and the through-the-course plot.

The browser test needs Debian's ``chromium`` (``/usr/bin/chromium``, or $REPORT_CHROMIUM) and
the ``playwright`` Python package (its own browser download is never used); without either it
is skipped, saying which. It saves a screenshot to ``test-artifacts/report.png``.
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dask_pipeline import metrics, report, schema, store

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = Path(os.environ.get("REPORT_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
MAX_BYTES = 5 * 1024 * 1024
MAX_OPEN_MS = 3000.0


def _cli(*args: str) -> subprocess.CompletedProcess:
    r = subprocess.run(
        [sys.executable, "-m", "dask_pipeline", *args],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert r.returncode == 0, f"dask-pipeline {args[0]} failed:\n{r.stderr}"
    return r


@pytest.fixture(scope="module")
def run_out(tmp_path_factory) -> Path:
    """A run of a generated dataset of 4 courses x 25 videos, through the CLI."""
    d = tmp_path_factory.mktemp("report")
    logs, out = d / "logs", d / "out"
    _cli(
        "generate",
        *("--out", str(logs), "--users", "100", "--courses", "4"),
        *("--videos-per-course", "25", "--days", "3", "--seed", "3"),
    )
    _cli(
        "run",
        *(str(logs), "--staff-file", str(logs / "staff.txt"), "--out", str(out)),
        *("--workers", "1", "--quiet", "--dashboard-address", "127.0.0.1:0"),
    )
    return out


@pytest.fixture(scope="module")
def report_html(run_out) -> Path:
    html = run_out.parent / "report.html"
    r = _cli("report", str(run_out), "--html", str(html))
    assert str(html) in r.stdout
    return html


@pytest.fixture(scope="module")
def tables(run_out) -> dict[str, pd.DataFrame]:
    names = ("video_stats", "views", "video_timeline", "video_daily", "segments")
    return {t: store.read_table(run_out, t) for t in names}


# ----------------------------------------------------------- the page's embedded document
def _doc_models(html: str) -> dict[str, dict]:
    """The named models of the Bokeh document embedded in a standalone page: name ->
    attributes."""
    m = re.search(r'<script type="application/json" id="[^"]+">\s*(.*?)\s*</script>', html, re.S)
    assert m, "no embedded Bokeh document"
    (doc,) = json.loads(m.group(1)).values()
    named: dict[str, dict] = {}

    def walk(x):
        if isinstance(x, dict):
            attrs = x.get("attributes")
            if x.get("type") == "object" and isinstance(attrs, dict) and attrs.get("name"):
                named[attrs["name"]] = attrs
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)

    walk(doc)
    return named


def _column(v):
    if isinstance(v, dict) and v.get("type") == "ndarray":
        a = v["array"]
        if isinstance(a, dict) and a.get("type") == "bytes":
            raw = base64.b64decode(a["data"])
            if raw[:2] == b"\x1f\x8b":  # Bokeh gzips larger buffers
                raw = gzip.decompress(raw)
            return np.frombuffer(raw, dtype=v["dtype"])
        return np.asarray(a)
    return v


def _source(models: dict, name: str) -> dict:
    data = models[name]["data"]
    items = data["entries"] if data.get("type") == "map" else data.items()
    return {k: _column(v) for k, v in items}


def _overview_reference(t: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """The course overview computed here, independently of report.course_overview."""
    rows = []
    stats, views = t["video_stats"], t["views"]
    for course in sorted(stats["course_id"].unique()):
        s = stats[stats["course_id"] == course]
        v = views[views["course_id"] == course]
        cov = v["coverage"].dropna()
        rows.append(
            {
                "course_id": course,
                "videos": len(s),
                "viewers": v["username"].nunique(),
                "hours_watched": s["watched_seconds"].sum() / 3600,
                "mean_coverage": cov.mean() if len(cov) else np.nan,
                "completion": s["completed_viewers"].sum() / s["viewers"].sum(),
            }
        )
    return pd.DataFrame(rows)


# ------------------------------------------------------------------ without a browser
def test_clock_and_short_id():
    assert report.clock(0) == "0:00"
    assert report.clock(59.6) == "1:00"
    assert report.clock(3725) == "1:02:05"
    assert report.clock(float("nan")) == "\u2014"
    assert report.short_id("block-v1:A+B+C+type@video+block@0a1b") == "0a1b"
    assert report.short_id("i4x-NorthU-STAT110-video-intro-2") == "intro-2"
    assert report.short_id("5c2e9d") == "5c2e9d"


def test_report_module_imports_no_dask():
    code = (
        "import sys, dask_pipeline.report; print(sorted({'dask', 'distributed'} & {*sys.modules}))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert r.stdout.strip() == "[]", r.stderr


@pytest.mark.slow
def test_page_is_standalone_and_small(report_html):
    """Acceptance 2 (size) and offline: Bokeh inline, nothing fetched from anywhere."""
    size = report_html.stat().st_size
    assert size < MAX_BYTES, f"report is {size / 1e6:.2f} MB"
    html = report_html.read_text()
    assert "BEGIN bokeh.min.js" in html
    assert not re.search(r"<script[^>]*\bsrc=", html)
    assert not re.search(r"<link[^>]*\bhref=", html)
    assert "cdn.bokeh.org" not in html


@pytest.mark.slow
def test_page_data_equals_tables(report_html, tables):
    """Acceptance 3: what the page ships (and shows) is the tables' numbers."""
    models = _doc_models(report_html.read_text())
    stats, tl, daily, views = (
        tables["video_stats"],
        tables["video_timeline"],
        tables["video_daily"],
        tables["views"],
    )
    assert len(stats) >= 90, "the generated dataset should have about 100 videos"
    videos = _source(models, "videos")
    assert len(videos["video_id"]) == len(stats)
    got = pd.DataFrame({c: list(videos[c]) for c in ("course_id", "video_id")})
    for c in ("viewers", "segments", "completed_viewers", "users_at_start", "users_at_end"):
        got[c] = np.asarray(videos[c], dtype=np.int64)
    got["duration"] = np.asarray(videos["duration"], dtype=np.float64)
    got["mean_coverage"] = np.asarray(videos["mean_coverage"], dtype=np.float64)
    want = stats.assign(course_id=stats["course_id"].astype(object))
    want = want.assign(video_id=want["video_id"].astype(object))
    merged = got.merge(want, on=["course_id", "video_id"], suffixes=("", "_t"), validate="1:1")
    assert len(merged) == len(stats)
    for c in ("viewers", "segments", "completed_viewers", "users_at_start", "users_at_end"):
        assert (merged[c] == merged[f"{c}_t"]).all(), c
    for c in ("duration", "mean_coverage"):
        np.testing.assert_array_equal(merged[c], merged[f"{c}_t"])

    # every video's slice of the long timeline and daily columns is its rows of the table
    tl_all, dy_all = _source(models, "timeline_all"), _source(models, "daily_all")
    cov_all = np.asarray(_source(models, "coverage_all")["count"]).reshape(len(stats), -1)
    tl_groups = dict(list(tl.groupby(["course_id", "video_id"], observed=True)))
    dy_groups = dict(list(daily.groupby(["course_id", "video_id"], observed=True)))
    for k, key in enumerate(zip(videos["course_id"], videos["video_id"], strict=True)):
        lo, hi = int(videos["tl_lo"][k]), int(videos["tl_hi"][k])
        rows = tl_groups.get(key, schema.empty(schema.VIDEO_TIMELINE))
        for c in ("bin", "start_seconds", "end_seconds", "num_users", "num_views"):
            np.testing.assert_array_equal(tl_all[c][lo:hi], rows[c].to_numpy(), err_msg=c)
        lo, hi = int(videos["dy_lo"][k]), int(videos["dy_hi"][k])
        rows = dy_groups.get(key, schema.empty(schema.VIDEO_DAILY))
        np.testing.assert_array_equal(dy_all["viewers"][lo:hi], rows["viewers"].to_numpy())
        np.testing.assert_array_equal(dy_all["segments"][lo:hi], rows["segments"].to_numpy())
        days = pd.to_datetime(pd.Series(dy_all["day"][lo:hi]), unit="ms").dt.strftime("%Y-%m-%d")
        assert list(days) == [str(d) for d in rows["date"]]
        cov = views.loc[
            (views["course_id"] == key[0]) & (views["video_id"] == key[1]), "coverage"
        ].dropna()
        hist, _ = np.histogram(cov.to_numpy(), bins=np.linspace(0, 1, 21))
        np.testing.assert_array_equal(cov_all[k], hist, err_msg=str(key))

    ov = _source(models, "overview")
    ref = _overview_reference(tables)
    assert list(ov["course_id"]) == list(ref["course_id"])
    np.testing.assert_array_equal(np.asarray(ov["videos"], dtype=np.int64), ref["videos"])
    np.testing.assert_array_equal(np.asarray(ov["viewers"], dtype=np.int64), ref["viewers"])
    np.testing.assert_allclose(ov["hours_watched"], ref["hours_watched"], rtol=1e-12)
    np.testing.assert_allclose(ov["mean_coverage_pct"], ref["mean_coverage"] * 100, rtol=1e-12)
    np.testing.assert_allclose(ov["completion_pct"], ref["completion"] * 100, rtol=1e-12)


def _write_tables(out: Path, frames: dict[str, pd.DataFrame]) -> None:
    """Write hand-made tables; the columns they leave out (the outline's, without a course
    structure) are null, as a run without ``--course-structure`` writes them."""
    for name, df in frames.items():
        sch = schema.TABLES[name]
        df = df.assign(
            **{c: pd.Series(pd.NA, index=df.index, dtype=t) for c, t in sch.items() if c not in df}
        )
        store.write_parquet(df, out / name / "part-0.parquet", sch)


def test_no_videos_still_writes_a_page(tmp_path):
    """A run with no video events: the page says so instead of failing."""
    _write_tables(tmp_path / "out", {t: schema.empty(s) for t, s in schema.TABLES.items()})
    path = report.write_report(tmp_path / "out", tmp_path / "r" / "report.html")
    html = path.read_text()
    assert "hold no videos" in html and path.stat().st_size < MAX_BYTES


def test_hundreds_of_videos_with_hour_long_timelines_stay_under_5_mb(tmp_path):
    """100 one-hour videos (720 dense 5 s bins each) plus 300 short ones: one page,
    every video choosable, under 5 MB."""
    rng = np.random.default_rng(0)
    stats, tl, daily, views = [], [], [], []
    for i in range(400):
        course, video = f"course-v1:X+C{i % 8}+R", f"block-v1:X+C{i % 8}+R+type@video+block@v{i}"
        duration = 3600.0 if i < 100 else float(rng.integers(60, 600))
        bins = int(duration // 5) + 1
        users = np.sort(rng.integers(0, 300, bins))[::-1]
        tl.append(
            pd.DataFrame(
                {
                    "course_id": course,
                    "video_id": video,
                    "bin": np.arange(bins),
                    "start_seconds": np.arange(bins) * 5.0,
                    "end_seconds": np.arange(1, bins + 1) * 5.0,
                    "num_users": users,
                    "num_views": users + rng.integers(0, 50, bins),
                }
            )
        )
        cov = rng.random(300)
        views.append(
            pd.DataFrame(
                {
                    "course_id": course,
                    "video_id": video,
                    "username": [f"u{j}" for j in range(300)],
                    "segments": 1,
                    "watched_seconds": cov * duration,
                    "covered_seconds": cov * duration,
                    "coverage": cov,
                    "duration_inferred": False,
                    "completed": cov >= metrics.COMPLETE_COVERAGE,
                    "first_time": pd.Timestamp("2026-01-05", tz="UTC"),
                    "last_time": pd.Timestamp("2026-01-05", tz="UTC"),
                }
            )
        )
        stats.append(
            {
                "course_id": course,
                "video_id": video,
                "duration": duration,
                "duration_inferred": False,
                "viewers": 300,
                "segments": 300,
                "watched_seconds": float((cov * duration).sum()),
                "mean_coverage": float(cov.mean()),
                "completed_viewers": int((cov >= 0.95).sum()),
                "users_at_start": int(users[0]),
                "users_at_end": int(users[-1]),
            }
        )
        dates = pd.date_range("2026-01-05", periods=30).strftime("%Y-%m-%d")
        daily.append(
            pd.DataFrame(
                {
                    "course_id": course,
                    "video_id": video,
                    "date": dates,
                    "viewers": rng.integers(1, 50, 30),
                    "segments": rng.integers(50, 100, 30),
                    "watched_seconds": rng.random(30) * 1e4,
                }
            )
        )
    frames = {
        "video_stats": pd.DataFrame(stats),
        "video_timeline": pd.concat(tl, ignore_index=True),
        "video_daily": pd.concat(daily, ignore_index=True),
        "views": pd.concat(views, ignore_index=True),
    }
    _write_tables(tmp_path / "out", frames)
    path = report.write_report(tmp_path / "out", tmp_path / "report.html")
    size = path.stat().st_size
    assert size < MAX_BYTES, f"{size / 1e6:.2f} MB for {len(frames['video_timeline'])} bins"
    models = _doc_models(path.read_text())
    assert len(_source(models, "videos")["video_id"]) == 400
    assert len(_source(models, "timeline_all")["num_users"]) == len(frames["video_timeline"])
    assert len(models["video_search"]["completions"]) == 400


# ------------------------------------------------------------------------ in a browser
# Ready when Bokeh has rendered every view, the first video is shown and the retention
# plot's canvas holds drawn bars; performance.now() counts from the navigation start.
READY_PROBE = """
(() => {
  const probe = () => {
    try {
      const doc = window.Bokeh && Bokeh.documents[0]
      if (doc && doc.is_idle && doc.get_model_by_name("summary").text
          && window.__reportInk && window.__reportInk("retention").colored > 500) {
        window.__reportReadyMs = performance.now()
        return
      }
    } catch (e) { /* not there yet */ }
    requestAnimationFrame(probe)
  }
  requestAnimationFrame(probe)
})()
"""

# Ink of a plot's main canvas (a host element with the plot's css class, in shadow roots):
# pixels drawn in colour (not white, grey or transparent) and a hash of all its pixels.
INK = """
window.__reportInk = (cls) => {
  const find = (root, pred) => {
    for (const el of root.querySelectorAll("*")) {
      if (pred(el)) return el
      if (el.shadowRoot) { const f = find(el.shadowRoot, pred); if (f) return f }
    }
    return null
  }
  const host = find(document, (el) => el.classList.contains(cls))
  const canvas = host && find(host.shadowRoot || host, (el) => el.tagName === "CANVAS")
  if (!canvas || !canvas.width) return {colored: 0, hash: 0, width: 0}
  const px = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data
  let colored = 0, hash = 2166136261
  for (let i = 0; i < px.length; i += 4) {
    const r = px[i], g = px[i + 1], b = px[i + 2], a = px[i + 3]
    if (a > 0 && Math.max(r, g, b) - Math.min(r, g, b) > 40) colored++
    hash = Math.imul(hash ^ (r | (g << 8) | (b << 16) | (a << 24)), 16777619) >>> 0
  }
  return {colored, hash, width: canvas.width}
}
"""

STATE = """() => {
  const doc = Bokeh.documents[0], m = (n) => doc.get_model_by_name(n)
  const src = m("retention_source").data, get = (c) => Array.from(src[c])
  const text = {}, th = [], heads = []
  const find = (root) => {
    for (const el of root.querySelectorAll("[data-k]")) text[el.dataset.k] = el.textContent
    for (const el of root.querySelectorAll("table.sum th")) th.push(el.textContent)
    for (const el of root.querySelectorAll(".slick-column-name")) heads.push(el.textContent)
    for (const el of root.querySelectorAll("*")) if (el.shadowRoot) find(el.shadowRoot)
  }
  find(document)
  const opts = m("video_select").options
  const flat = opts instanceof Map ? [...opts.values()].flat()
    : Array.isArray(opts) ? opts : Object.values(opts).flat()
  return {
    course: m("course_select").value, video: m("video_select").value,
    options: flat.length, values: flat.map((o) => o[0]),
    groups: opts instanceof Map ? [...opts.keys()] : Array.isArray(opts) ? [] : Object.keys(opts),
    bin: get("bin"), num_users: get("num_users"), num_views: get("num_views"),
    marks: m("marks_source").data, text,
    legends: ["retention", "daily"].map((n) => m(n).above.concat(m(n).right)
      .filter((r) => "items" in r).flatMap((l) => l.items.map((i) => i.label.value))),
    th, heads,
  }
}"""


# Where things land on screen: the gaps between neighbouring day labels of the daily plot,
# whether each shown empty-plot note fits in its plot's frame, and where the retention title
# ends and its toolbar begins (canvas text measured with the fonts Bokeh draws it in).
GEOMETRY = """() => {
  const doc = Bokeh.documents[0], m = (n) => doc.get_model_by_name(n)
  const view = (model) => Bokeh.index.find_one(model)
  const ctx = document.createElement("canvas").getContext("2d")
  const width = (text, font) => { ctx.font = font; return ctx.measureText(text).width }
  const font = (o, p) => `${o[p + "_font_style"]} ${o[p + "_font_size"]} ${o[p + "_font"]}`
  const daily = m("daily"), ax = daily.below[0], dv = view(daily)
  const ticks = Array.from(ax.ticker.ticks)
  const labels = view(ax).compute_labels(ticks).items.map((i) => i.text)
  const xs = ticks.map((t) => dv.frame.x_scale.compute(t))
  const ws = labels.map((l) => width(l, font(ax, "major_label_text")))
  const gaps = xs.slice(1).map((x, i) => x - xs[i] - (ws[i] + ws[i + 1]) / 2)
  const notes = []
  for (const name of ["retention", "daily", "coverage", "through_course"]) {
    const p = m(name)
    if (!p) continue
    const f = view(p).frame.bbox
    for (const r of p.center) {
      if (!("x_units" in r) || r.x_units !== "screen" || !r.visible || !r.text) continue
      const w = Math.max(...r.text.split("\\n").map((l) => width(l, font(r, "text"))))
      const lo = r.text_align === "center" ? r.x - w / 2 : r.x
      notes.push({plot: name, text: r.text, fits: f.x0 <= lo && lo + w <= f.x1})
    }
  }
  const ret = m("retention"), tv = view(ret.title)
  const title_right = tv.bbox.x0 + width(ret.title.text, font(ret.title, "text"))
  return {labels, gaps, notes, title_right, toolbar_left: view(ret.toolbar).bbox.x0}
}"""


@pytest.fixture(scope="module")
def chromium():
    """Playwright driving Debian's Chromium, or a skip that says what is missing."""
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="the playwright package is not installed"
    )
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not found: install Debian's chromium to run the browser test")
    with sync_api.sync_playwright() as p:
        yield p.chromium


def _check_shown(state: dict, tables: dict[str, pd.DataFrame]) -> tuple[str, str]:
    """The shown video's numbers (summary text, retention data) equal the tables'."""
    key = (state["text"]["course_id"], state["text"]["video_id"])
    stats = tables["video_stats"]
    row = stats[(stats["course_id"] == key[0]) & (stats["video_id"] == key[1])]
    assert len(row) == 1, key
    row = row.iloc[0]
    shown = {
        k: int(v.split()[0].replace(",", ""))
        for k, v in state["text"].items()
        if k in ("viewers", "segments", "users_at_start", "users_at_end", "completed_viewers")
    }
    assert shown == {
        k: int(row[k])
        for k in ("viewers", "segments", "users_at_start", "users_at_end", "completed_viewers")
    }
    assert state["text"]["watched_hours"] == f"{row['watched_seconds'] / 3600:.2f}"
    tl = tables["video_timeline"]
    rows = tl[(tl["course_id"] == key[0]) & (tl["video_id"] == key[1])]
    assert state["bin"] == rows["bin"].tolist()
    assert state["num_users"] == rows["num_users"].tolist()
    assert state["num_views"] == rows["num_views"].tolist()
    return key


def _spill_days(t: dict[str, pd.DataFrame]) -> dict[str, int]:
    """Days of the tables holding at most a tenth of the day before's segments, all closed
    in the hour after midnight (UTC): the page must explain each."""
    seg = t["segments"].assign(day=t["segments"]["date"].astype(str).str.slice(0, 10))
    per_day = seg.groupby("day").size()
    out = {}
    for day, n in per_day.items():
        before = (pd.Timestamp(day) - pd.Timedelta(days=1)).strftime("%Y-%m-%d")
        last = seg.loc[seg["day"] == day, "time"].max()
        if n <= 0.1 * per_day.get(before, 0) and last <= pd.Timestamp(day, tz="UTC") + pd.Timedelta(
            hours=1
        ):
            out[day] = int(n)
    return out


def _check_items_7_to_11(page, first: dict, t: dict[str, pd.DataFrame], run: dict) -> None:
    """Issue 12 items 7-11 on the page of a real run."""
    # 7: it opens on the most watched video whose coverage is known
    stats = t["video_stats"]
    known = stats[stats["mean_coverage"].notna()]
    assert int(first["text"]["viewers"]) == known["viewers"].max()
    assert first["text"]["mean_coverage"] != "n/a"
    # 8: day labels never overlap; a day of only after-midnight ends is explained
    geo = page.evaluate(GEOMETRY)
    assert len(geo["labels"]) >= 2 and min(geo["gaps"]) > 4, geo
    spill = _spill_days(t)
    assert spill, "the generated run should end with a day of after-midnight ends"
    for day, n in spill.items():
        assert f"{day} holds only {n:,} segment(s)" in first["text"]["after_midnight"]
    # 9: segments are segments, viewers are viewers: "views" names nothing else
    views = re.compile(r"\bviews?\b", re.I)
    assert "Segments" in first["th"] and not any(views.search(h) for h in first["th"])
    assert "Segments" in first["heads"] and not any(views.search(h) for h in first["heads"])
    assert first["legends"] == [
        ["unique viewers", "segments", "users at start / at end"],
        ["viewers", "segments"],
    ]
    # 10: the run's health, from _run.json
    text = first["text"]
    assert text["lines_read"] == f"{run['lines']['lines']:,}"
    assert text["lines_rejected"] == f"{run['lines']['rejected']:,}"
    assert text["files"] == str(len(run["inputs"])) and text["files_with_errors"] == "0"
    reasons: dict[str, int] = {}
    for inp in run["inputs"]:
        for r, n in inp["rejected"].items():
            reasons[r] = reasons.get(r, 0) + n
    assert text["rejected_by"] == ", ".join(f"{r} {n:,}" for r, n in sorted(reasons.items()))
    assert text["window"] == "every day of the input (UTC)"
    # 11: the title ends before the toolbar; a search without a match says so
    assert geo["title_right"] < geo["toolbar_left"], geo
    _check_search(page)


def _check_search(page) -> None:
    box = page.locator(".bk-input").nth(2)  # course select, video select, search box
    box.fill("no such video zz")
    page.wait_for_function(
        "() => Bokeh.documents[0].get_model_by_name('search_note').text.includes('No video')"
    )
    note = page.evaluate("() => Bokeh.documents[0].get_model_by_name('search_note').text")
    assert "No video matches \u201cno such video zz\u201d" in note
    box.fill("")
    page.wait_for_function("() => !Bokeh.documents[0].get_model_by_name('search_note').text")


def _launch(chromium, tmp_path: Path):
    """A fresh browser: a new profile, offline, with the project's Chromium flags."""
    return chromium.launch_persistent_context(
        tempfile.mkdtemp(dir=tmp_path),
        executable_path=str(CHROMIUM),
        headless=True,
        args=CHROMIUM_ARGS,
        offline=True,
        viewport={"width": 1280, "height": 900},
    )


def _open(ctx, html: Path):
    """A new page of ``ctx`` showing the report, and the milliseconds from the navigation
    start to the plots rendered."""
    page = ctx.new_page()
    page.add_init_script(INK + ";" + READY_PROBE)
    page.goto(html.resolve().as_uri())
    page.wait_for_function("() => window.__reportReadyMs !== undefined", timeout=30_000)
    return page, page.evaluate("window.__reportReadyMs")


@pytest.mark.slow
def test_report_in_headless_chromium(
    chromium, run_out, report_html, tables, tmp_path, record_property
):
    """Acceptance 1-3 in a real browser, offline: no console errors, plots drawn, switching
    the video redraws the retention curve, numbers equal the tables (the time it takes to
    open: ``test_the_reports_open_in_under_3_s``)."""
    errors: list[str] = []
    requests: list[str] = []
    ctx = _launch(chromium, tmp_path)
    try:
        ctx.on("request", lambda r: requests.append(r.url))
        ctx.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        ctx.on("weberror", lambda e: errors.append(str(e.error)))
        page, _ = _open(ctx, report_html)
        size = report_html.stat().st_size
        record_property("report_bytes", size)

        for plot in ("retention", "daily", "coverage"):
            ink = page.evaluate("(c) => window.__reportInk(c)", plot)
            assert ink["width"] > 0 and ink["colored"] > 300, (plot, ink)
        first = page.evaluate(STATE)
        key1 = _check_shown(first, tables)
        assert first["options"] == (tables["video_stats"]["course_id"] == key1[0]).sum()

        overview = page.locator(".overview .slick-row")
        ref = _overview_reference(tables)
        assert overview.count() == len(ref)
        for i, r in ref.iterrows():
            cells = overview.nth(i).locator(".slick-cell").all_inner_texts()
            assert cells[0] == r["course_id"]
            assert [int(c.replace(",", "")) for c in (cells[1], cells[3])] == [
                r["videos"],
                r["viewers"],
            ]
            assert cells[4] == f"{r['hours_watched']:,.2f}"
            assert cells[5] == f"{r['mean_coverage'] * 100:.1f}"
            assert cells[6] == f"{r['completion'] * 100:.1f}"

        def switch(control, **option) -> dict:
            """Choose in a control; wait for the retention plot to be redrawn."""
            h = page.evaluate("() => window.__reportInk('retention').hash")
            if option:
                control.select_option(**option)
            else:
                control.click()
            page.wait_for_function(
                "(h) => window.__reportInk('retention').hash !== h", arg=h, timeout=10_000
            )
            return page.evaluate(STATE)

        # switching the video (another of the course) redraws the retention curve
        video_select = page.locator("select").nth(1)
        at = first["values"].index(first["video"])
        second = switch(video_select, index=1 if at == 0 else 0)
        key2 = _check_shown(second, tables)
        assert key2 != key1 and second["num_users"] != first["num_users"]
        # and back: the script shows the first video just as the page first drew it
        assert switch(video_select, index=at) == first
        # a click in the course's table of videos chooses that one
        rows = page.locator(".videos .slick-row")
        pick = next(i for i in range(rows.count()) if i != at)
        row = rows.nth(pick)
        short_id = row.locator(".slick-cell").first.inner_text()
        clicked = switch(row)
        assert clicked["text"]["video_id"].endswith(short_id)
        _check_shown(clicked, tables)

        # another course: its videos only, its most viewed first
        courses = list(ref["course_id"])
        other = next(i for i, c in enumerate(courses) if c != key1[0])
        page.locator("select").nth(0).select_option(index=other)
        page.wait_for_function(
            "(v) => Bokeh.documents[0].get_model_by_name('video_select').value !== v",
            arg=clicked["video"],
        )
        third = page.evaluate(STATE)
        key3 = _check_shown(third, tables)
        stats = tables["video_stats"]
        in_course = stats[stats["course_id"] == key3[0]]
        assert key3[0] == courses[other] and third["options"] == len(in_course)
        assert int(third["text"]["viewers"]) == in_course["viewers"].max()

        _check_items_7_to_11(page, first, tables, json.loads((run_out / "_run.json").read_text()))
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "report.png"), full_page=True)
        assert not errors, errors
        assert all(u.startswith(("file:", "data:", "blob:")) for u in requests), requests
        assert size < MAX_BYTES
    finally:
        ctx.close()


# ------------------------------------------------- issue 12 items 7-11, issue 11 item 4
def test_report_retypes_no_formula_of_the_tables():
    """The end bin and the completion threshold come from metrics, not a copy: no report
    module writes 0.95 or the 30 s margin, and the page's end bins are metrics'."""
    src = "\n".join(p.read_text() for p in (ROOT / "dask_pipeline" / "report").glob("*.py"))
    assert not re.search(r"0\.95|-\s*30(\.0)?\b|\b95(\.0)?\s*%", src)
    stats = pd.DataFrame(
        {
            "course_id": ["c"] * 4,
            "video_id": ["a", "b", "c", "d"],
            "duration": [10.0, 100.0, 601.0, np.nan],
            "duration_inferred": [False] * 4,
            "viewers": [4, 3, 2, 1],
            "segments": [4, 3, 2, 1],
            "watched_seconds": [1.0] * 4,
            "mean_coverage": [0.5] * 4,
            "completed_viewers": [0] * 4,
            "users_at_start": [1] * 4,
            "users_at_end": [1] * 4,
        }
    )
    idx = report.video_index(stats, schema.empty(schema.VIEWS), 5.0)
    want = metrics.users_at_end_bin(stats["duration"].to_numpy(), 5.0)
    assert idx["end_bin"].tolist() == want.tolist() == [1, 19, 114, -1]


def _run_summary() -> dict:
    """A ``_run.json`` of two inputs, one of them damaged, with a window."""
    return {
        "run_id": "r1",
        "options": {"rules": "insights", "tz": "Europe/Paris", "bin_seconds": 5},
        "inputs": [
            {
                "path": "a.log",
                "lines": 100,
                "accepted": 90,
                "skipped": 4,
                "rejected": {"not_json": 5, "bad_time": 1},
                "errors": [],
                "balanced": True,
            },
            {
                "path": "b.log.gz",
                "lines": 20,
                "accepted": 17,
                "skipped": 0,
                "rejected": {"not_json": 3},
                "balanced": True,
                "errors": [{"kind": "truncated_gzip", "detail": "after 20 lines"}],
            },
        ],
        "lines": {"lines": 120, "accepted": 107, "skipped": 4, "rejected": 9},
        "window": {"since": "2026-01-05", "until": "2026-01-14", "tz": "Europe/Paris"},
    }


def test_health_block_states_lines_reasons_files_and_window():
    from dask_pipeline.report import health

    html = health.health_html(_run_summary())
    cells = dict(re.findall(r'data-k="(\w+)">([^<]*)<', html))
    assert cells["lines_read"] == "120" and cells["lines_rejected"] == "9"
    assert cells["lines_accepted"] == "107" and cells["lines_skipped"] == "4"
    assert cells["files"] == "2" and cells["files_with_errors"] == "1"
    assert cells["rejected_by"] == "bad_time 1, not_json 8"
    assert cells["file_error"] == "b.log.gz: truncated_gzip (after 20 lines)"
    assert cells["window"] == "2026-01-05 to 2026-01-14 (Europe/Paris)"
    assert "every day of the input" in health.health_html({**_run_summary(), "window": {}})
    assert "No run summary" in health.health_html({})


def test_day_labels_are_few_and_evenly_spaced():
    from dask_pipeline.report import daily

    for n in (1, 2, 5, 6, 8, 13, 31, 90, 400):
        days = daily.DAY_MS * (20_000 + np.arange(n))
        major, minor = daily.day_ticks(days)
        assert 1 <= len(major) <= daily.MAX_DAY_LABELS, n
        assert major[0] == days[0] and minor == list(days)
        assert len(set(np.diff(major))) <= 1  # one spacing, whole days
        assert all(m in minor for m in major)


def test_a_day_holding_only_the_night_befores_ends_is_found():
    from dask_pipeline.report import daily

    def seg(date: str, time: str) -> dict:
        return {
            "date": date,
            "time": pd.Timestamp(time, tz="UTC"),
            "start_offset": 0.0,
            "end_offset": 60.0,
        }

    segments = pd.DataFrame(
        [
            seg("2026-01-09", "2026-01-09T00:05:00"),
            seg("2026-01-09", "2026-01-09T00:41:00"),
            seg("2026-01-10", "2026-01-10T00:05:00"),
            seg("2026-01-10", "2026-01-10T03:00:00"),
        ]
    )
    got = daily.after_midnight_days(segments, ["2026-01-09", "2026-01-10"], "UTC")
    assert got == {"2026-01-09": "00:41"}
    # in Paris 00:41 UTC is 01:41 local, past the hour after midnight; 23:30 UTC of the 8th
    # is 00:30 of the 9th there
    paris = pd.DataFrame([seg("2026-01-09", "2026-01-08T23:30:00")])
    assert daily.after_midnight_days(paris, ["2026-01-09"], "Europe/Paris") == {
        "2026-01-09": "00:30"
    }
    # candidates: at most a tenth of the day before's segments
    vd = pd.DataFrame(
        {"date": ["2026-01-08", "2026-01-09", "2026-01-11"], "segments": [100, 10, 1]}
    )
    assert daily.spill_candidates(vd) == ["2026-01-09"]


LONG_TITLE = (
    "Week 1 wrap-up: what the first assignments taught us about sampling, bias, and the "
    "central limit theorem (with worked examples)"
)


def _outline_tables(courses: int = 4, per_course: int = 25, days: int = 10) -> report.Tables:
    """Tables of ``courses`` x ``per_course`` videos, written here: the first courses have an
    outline (titles, 5 videos per section, one log video absent from the outline), the last
    has none. The most viewed video has no duration, so no coverage."""
    rng = np.random.default_rng(7)
    stats, tl, daily, views = [], [], [], []
    dates = pd.date_range("2026-01-05", periods=days).strftime("%Y-%m-%d")
    for c in range(courses):
        course = f"course-v1:U+C{c}+R"
        for j in range(per_course):
            video = f"block-v1:U+C{c}+R+type@video+block@{c:02d}{j:030x}"
            outlined = c < courses - 1 and j != per_course - 1
            duration = np.nan if (c, j) == (0, 3) else float(60 + 17 * j)
            n = 400 if (c, j) == (0, 3) else int(200 - 6 * j + rng.integers(0, 4))
            bins = 0 if np.isnan(duration) else int(duration // 5) + 1
            users = np.linspace(n, n // 3, bins).astype(int) if bins else np.zeros(0, int)
            cov = rng.random(n) if bins else np.full(n, np.nan)
            key = {"course_id": course, "video_id": video}
            tl.append(
                pd.DataFrame(
                    {
                        **key,
                        "bin": np.arange(bins),
                        "start_seconds": np.arange(bins) * 5.0,
                        "end_seconds": np.arange(1, bins + 1) * 5.0,
                        "num_users": users,
                        "num_views": users + 3,
                    }
                )
            )
            views.append(
                pd.DataFrame(
                    {
                        **key,
                        "username": [f"u{i}" for i in range(n)],
                        "segments": 1,
                        "watched_seconds": 30.0,
                        "covered_seconds": 30.0,
                        "coverage": cov,
                        "first_time": pd.Timestamp("2026-01-05", tz="UTC"),
                        "last_time": pd.Timestamp("2026-01-05", tz="UTC"),
                    }
                )
            )
            daily.append(
                pd.DataFrame(
                    {
                        **key,
                        "date": dates,
                        "viewers": rng.integers(1, 50, days),
                        "segments": rng.integers(50, 100, days),
                        "watched_seconds": rng.random(days) * 1e4,
                    }
                )
            )
            s, title = j // 5, (LONG_TITLE if (c, j) == (0, 0) else f"Lecture {c}.{j}")
            stats.append(
                {
                    **key,
                    "duration": duration,
                    "duration_inferred": False,
                    "viewers": n,
                    "segments": n,
                    "watched_seconds": 30.0 * n,
                    "mean_coverage": float(np.nanmean(cov)) if bins else np.nan,
                    "completed_viewers": int((cov >= 0.95).sum()),
                    "users_at_start": int(users[0]) if bins else 0,
                    "users_at_end": int(users[-1]) if bins else 0,
                    "title": title if outlined else None,
                    "section": f"Week {s + 1}" if outlined else None,
                    "subsection": f"Topic {s + 1}.{j % 5 + 1}" if outlined else None,
                    "unit": f"Unit {j + 1}" if outlined else None,
                    # outline order is not the order of the ids: the course runs backwards
                    "position": per_course - 1 - j if outlined else None,
                    "section_index": s + 1 if outlined else None,
                    "subsection_index": j % 5 + 1 if outlined else None,
                    "unit_index": 1 if outlined else None,
                }
            )
    st = pd.DataFrame(stats)
    for col in ("position", "section_index", "subsection_index", "unit_index"):
        st[col] = st[col].astype("Int64")
    return report.Tables(
        video_stats=st,
        views=pd.concat(views, ignore_index=True),
        video_timeline=pd.concat(tl, ignore_index=True),
        video_daily=pd.concat(daily, ignore_index=True),
        run=_run_summary(),
        segments=pd.DataFrame({"date": [], "time": [], "start_offset": [], "end_offset": []}),
    )


def _page_of(t: report.Tables, path: Path) -> Path:
    from bokeh.embed import file_html
    from bokeh.resources import INLINE

    path.write_text(file_html(report.build_document(report.build_data(t)), resources=INLINE))
    return path


def test_outline_gives_titles_outline_order_and_the_through_the_course_plot(tmp_path):
    t = _outline_tables()
    data = report.build_data(t)
    vi = data.videos
    c0 = vi[vi["course_id"] == "course-v1:U+C0+R"]
    # outline order within the course, then the video the outline does not know
    assert c0["position"].iloc[:-1].tolist() == list(range(1, 25))
    assert np.isnan(c0["position"].iloc[-1])
    assert c0["label"].iloc[-1] == c0["short_id"].iloc[-1]  # no title: its short id
    assert c0["label"].iloc[0] == "Lecture 0.23" and c0["place"].iloc[0] == (
        "Week 5 \u203a Topic 5.4 \u203a Unit 24"
    )
    from dask_pipeline.report import controls

    groups = controls.video_options(data, "course-v1:U+C0+R")
    assert list(groups) == [
        "Week 5",
        "Week 4",
        "Week 3",
        "Week 2",
        "Week 1",
        controls.NOT_IN_OUTLINE,
    ]
    assert isinstance(controls.video_options(data, "course-v1:U+C3+R"), list)
    # the page opens on the most watched video whose coverage is known (not (0, 3))
    k = data.videos.index[report.index.first_shown(vi)]
    assert vi.loc[k, "viewers"] == vi.loc[vi["mean_coverage"].notna(), "viewers"].max()
    models = _doc_models(_page_of(t, tmp_path / "o.html").read_text())
    assert "through_course" in models
    # without the outline columns the page is as before: hashes, no through-the-course plot
    bare = t.video_stats.drop(columns=[*report.index.OUTLINE_TEXT, *report.index.OUTLINE_NUMBERS])
    models = _doc_models(_page_of(replace(t, video_stats=bare), tmp_path / "b.html").read_text())
    assert "through_course" not in models
    labels = _source(models, "videos")["label"]
    assert list(labels) == list(_source(models, "videos")["short_id"])


@pytest.mark.slow
def test_outline_page_in_headless_chromium(chromium, tmp_path, record_property):
    """Issue 11 item 4 and issue 12 items 7, 8, 11 on a page of 100 videos with an outline:
    titles, outline order grouped by section, the through-the-course plot; a video without
    coverage says so in full; ten days of labels that do not overlap; a long title that
    does not reach the toolbar."""
    t = _outline_tables()
    html = _page_of(t, tmp_path / "outline.html")
    errors: list[str] = []
    ctx = _launch(chromium, tmp_path)
    try:
        ctx.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        ctx.on("weberror", lambda e: errors.append(str(e.error)))
        page, _ = _open(ctx, html)
        first = page.evaluate(STATE)
        stats = t.video_stats
        course = stats[stats["course_id"] == first["text"]["course_id"]]
        outline = course[course["position"].notna()].sort_values("position")
        # 7: the most watched video has no coverage: the page opens on the next one
        shown = stats[stats["video_id"] == first["text"]["video_id"]].iloc[0]
        assert shown["viewers"] == stats.loc[stats["mean_coverage"].notna(), "viewers"].max()
        # titles and place, outline order grouped by section
        assert first["text"]["label"] == shown["title"]
        assert first["text"]["place"] == " \u203a ".join(shown[["section", "subsection", "unit"]])
        assert first["groups"] == [*outline["section"].unique(), "Not in the outline"]
        # the rows on screen (the table scrolls to the shown video) follow the outline
        rows = page.locator(".videos .slick-row")
        cells = [rows.nth(i).locator(".slick-cell").all_inner_texts() for i in range(rows.count())]
        cells = sorted((c for c in cells if c[0]), key=lambda c: int(c[0]))
        by_pos = {int(r.position): r for r in outline.itertuples()}
        assert len(cells) >= 5
        for c in cells:
            r = by_pos[int(c[0])]
            assert c[1:3] == [r.section, r.title]
        assert [int(c[0]) for c in cells] == list(
            range(int(cells[0][0]), int(cells[0][0]) + len(cells))
        )
        optgroups = page.locator("select").nth(1).locator("optgroup")
        assert optgroups.count() == len(first["groups"])
        assert optgroups.first.get_attribute("label") == outline["section"].iloc[0]
        # through the course: bars drawn, one per video of the outline
        assert page.evaluate("() => window.__reportInk('through-course').colored") > 300
        # 7: the video without a duration says so, in full, inside the plot
        select = page.locator("select").nth(1)
        nodur = course[course["duration"].isna()]
        if nodur.empty:  # the no-duration video is in the first course of the tables
            page.locator("select").nth(0).select_option(index=0)
            page.wait_for_function(
                "(v) => Bokeh.documents[0].get_model_by_name('video_select').value !== v",
                arg=first["video"],
            )
        vi = report.build_data(t).videos
        # Bokeh's <option>s carry the label, not the row, as their value
        select.select_option(label=vi.loc[vi["duration"].isna(), "option_label"].iloc[0])
        page.wait_for_function(
            "() => Bokeh.documents[0].get_model_by_name('summary').text.includes('unknown')"
        )
        geo = page.evaluate(GEOMETRY)
        cov_notes = [n for n in geo["notes"] if n["plot"] == "coverage"]
        assert [n["text"] for n in cov_notes] == [report.page.EMPTY_NOTES["no_coverage"]]
        assert all(n["fits"] for n in geo["notes"]), geo["notes"]
        # 8: ten days, labels apart; 11: the long title sits above the plots, not in them
        assert len(geo["labels"]) >= 2 and min(geo["gaps"]) > 4, geo
        assert geo["title_right"] < geo["toolbar_left"]
        # a course without an outline: most viewed first, a note in the through plot
        page.locator("select").nth(0).select_option(index=3)
        page.wait_for_function(
            "() => Bokeh.documents[0].get_model_by_name('video_select').title.includes('most')"
        )
        geo = page.evaluate(GEOMETRY)
        assert [n["text"] for n in geo["notes"] if n["plot"] == "through_course"] == [
            report.course.NO_OUTLINE
        ]
        ARTIFACTS.mkdir(exist_ok=True)
        page.locator("select").nth(0).select_option(index=0)
        select.select_option(label=vi["option_label"].iloc[0])
        page.wait_for_timeout(300)
        page.screenshot(path=str(ARTIFACTS / "report-outline.png"), full_page=True)
        assert not errors, errors
    finally:
        ctx.close()


@pytest.mark.slow
@pytest.mark.timing
def test_the_reports_open_in_under_3_s(chromium, report_html, tmp_path, record_property):
    """Issues 6 and 12: the report of a run and the page of 100 videos with an outline each
    open offline, plots drawn, in under 3 s in a fresh browser. Wall time on this machine:
    ``scripts/test.sh`` runs the ``timing`` tests alone, after the others."""
    pages = {"report": report_html, "outline": _page_of(_outline_tables(), tmp_path / "o.html")}
    for name, html in pages.items():
        opens: list[float] = []
        # The page's cost, not a passing hiccup's: a page that is slow to open is slow in
        # every fresh browser, so on a miss try again (at most three cold opens in all).
        while not opens or (min(opens) >= MAX_OPEN_MS and len(opens) < 3):
            ctx = _launch(chromium, tmp_path)
            try:
                opens.append(_open(ctx, html)[1])
            finally:
                ctx.close()
        print(f"{name}: {html.stat().st_size / 1e6:.2f} MB, opened in {opens} ms")
        record_property(f"{name}_open_ms", [round(t) for t in opens])
        assert min(opens) < MAX_OPEN_MS, f"the {name} page took {opens} ms to open"


@pytest.mark.slow
def test_report_of_a_run_with_the_demo_course_outline(tmp_path):
    """Issue 11 item 4 through the CLI: a run of the real demo-course export (two videos
    never watched) gives a page whose videos carry the export's titles, in its outline
    order, grouped by its sections, with the through-the-course plot."""
    from .conftest import video_line
    from .test_outline import CURRENT, expected_olx

    course = "course-v1:OpenedX+DemoX+DemoCourse"
    rows = expected_olx(CURRENT)  # read from the export independently of the product
    lines, k = [], 0
    for r in rows[:-2]:
        vid = f"block-v1:OpenedX+DemoX+DemoCourse+type@video+block@{r['url_name']}"
        for u in range(30 - 2 * r["position"]):
            k += 1
            p = {"id": vid, "code": "html5", "currentTime": 0.0, "duration": 100.0}
            t = f"2026-01-05T10:{k // 60:02d}:{k % 60:02d}"
            lines.append(video_line(f"u{u}", course, "play_video", t + ".0+00:00", p))
            q = dict(p, currentTime=40.0 + u)
            lines.append(video_line(f"u{u}", course, "pause_video", t + ".5+00:00", q))
    (tmp_path / "tracking.log").write_text("\n".join(lines) + "\n")
    out, html = tmp_path / "out", tmp_path / "report.html"
    _cli(
        "run",
        *(str(tmp_path / "tracking.log"), "--out", str(out), "--workers", "1", "--quiet"),
        *("--course-structure", str(CURRENT), "--dashboard-address", "127.0.0.1:0"),
    )
    _cli("report", str(out), "--html", str(html))
    models = _doc_models(html.read_text())
    videos = _source(models, "videos")
    mine = [i for i, c in enumerate(videos["course_id"]) if c == course]
    assert [int(videos["position"][i]) for i in mine] == [r["position"] for r in rows]
    assert [videos["label"][i] for i in mine] == [r["title"] for r in rows]
    assert [videos["section"][i] for i in mine] == [r["section"] for r in rows]
    assert [int(videos["viewers"][i]) for i in mine][-2:] == [0, 0]  # never watched, listed
    groups = models["video_select"]["options"]
    sections = list(dict.fromkeys(r["section"] for r in rows))
    keys = [e[0] for e in groups["entries"]] if isinstance(groups, dict) else None
    assert keys == sections
    assert "through_course" in models
