"""The HTML report (issue 6): its numbers equal the tables, it stays small, and a real headless
Chromium opens it offline, draws the plots and switches videos.

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
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dask_pipeline import report, schema, store

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
    names = ("video_stats", "views", "video_timeline", "video_daily")
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
        for c in ("segment", "start_seconds", "end_seconds", "num_users", "num_views"):
            np.testing.assert_array_equal(tl_all[c][lo:hi], rows[c].to_numpy(), err_msg=c)
        lo, hi = int(videos["dy_lo"][k]), int(videos["dy_hi"][k])
        rows = dy_groups.get(key, schema.empty(schema.VIDEO_DAILY))
        np.testing.assert_array_equal(dy_all["viewers"][lo:hi], rows["viewers"].to_numpy())
        np.testing.assert_array_equal(dy_all["segments"][lo:hi], rows["segments"].to_numpy())
        days = pd.to_datetime(pd.Series(dy_all["day"][lo:hi]), unit="ms").dt.strftime("%Y-%m-%d")
        assert list(days) == list(rows["date"])
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
    for name, df in frames.items():
        store.write_parquet(df, out / name / "part-0.parquet", schema.TABLES[name])


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
                    "segment": np.arange(bins),
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
  const text = {}
  const find = (root) => {
    for (const el of root.querySelectorAll("[data-k]")) text[el.dataset.k] = el.textContent
    for (const el of root.querySelectorAll("*")) if (el.shadowRoot) find(el.shadowRoot)
  }
  find(document)
  return {
    course: m("course_select").value, video: m("video_select").value,
    options: m("video_select").options.length,
    segment: get("segment"), num_users: get("num_users"), num_views: get("num_views"),
    marks: m("marks_source").data, text,
  }
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
    assert state["segment"] == rows["segment"].tolist()
    assert state["num_users"] == rows["num_users"].tolist()
    assert state["num_views"] == rows["num_views"].tolist()
    return key


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
def test_report_in_headless_chromium(chromium, report_html, tables, tmp_path, record_property):
    """Acceptance 1-3 in a real browser, offline: no console errors, plots drawn, switching
    the video redraws the retention curve, numbers equal the tables, opens in under 3 s."""
    errors: list[str] = []
    requests: list[str] = []
    ctx = _launch(chromium, tmp_path)
    try:
        ctx.on("request", lambda r: requests.append(r.url))
        ctx.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        ctx.on("weberror", lambda e: errors.append(str(e.error)))
        page, open_ms = _open(ctx, report_html)
        opens = [open_ms]
        # The page's cost, not a busy machine's: a page that is slow to open is slow in every
        # fresh browser, so on a miss try again (at most three cold opens in all).
        while min(opens) >= MAX_OPEN_MS and len(opens) < 3:
            other = _launch(chromium, tmp_path)
            try:
                opens.append(_open(other, report_html)[1])
            finally:
                other.close()
        size = report_html.stat().st_size
        print(f"report: {size / 1e6:.2f} MB, opened in {', '.join(f'{t:.0f}' for t in opens)} ms")
        record_property("report_bytes", size)
        record_property("report_open_ms", [round(t) for t in opens])

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

        # switching the video (the second of the course) redraws the retention curve
        video_select = page.locator("select").nth(1)
        second = switch(video_select, index=1)
        key2 = _check_shown(second, tables)
        assert key2 != key1 and second["num_users"] != first["num_users"]
        # and back: the script shows the first video just as the page first drew it
        assert switch(video_select, index=0) == first
        # a click in the course's table of videos chooses that one
        row = page.locator(".videos .slick-row").nth(2)
        short_id = row.locator(".slick-cell").first.inner_text()
        clicked = switch(row)
        assert clicked["text"]["video_id"].endswith(short_id)
        _check_shown(clicked, tables)

        # another course: its videos only, its most viewed first
        page.locator("select").nth(0).select_option(index=1)
        page.wait_for_function(
            "(v) => Bokeh.documents[0].get_model_by_name('video_select').value !== v",
            arg=clicked["video"],
        )
        third = page.evaluate(STATE)
        key3 = _check_shown(third, tables)
        stats = tables["video_stats"]
        in_course = stats[stats["course_id"] == key3[0]]
        assert third["options"] == len(in_course)
        assert int(third["text"]["viewers"]) == in_course["viewers"].max()

        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "report.png"), full_page=True)
        assert not errors, errors
        assert all(u.startswith(("file:", "data:", "blob:")) for u in requests), requests
        assert size < MAX_BYTES
        assert min(opens) < MAX_OPEN_MS, f"the report took {opens} ms to open"
    finally:
        ctx.close()
