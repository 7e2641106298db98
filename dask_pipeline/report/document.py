"""The page: the Bokeh Document of a report, its standalone HTML and the file written."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from .controls import Controls, build_controls, video_options
from .coverage import COVERAGE_BINS, bin_edges_pct, coverage_figure
from .daily import daily_figure
from .data import ReportData, build_data, compact, day_ms, strings
from .page import first_video, header_html
from .retention import retention_figure
from .script import SCRIPT
from .style import CSS, NOTE_COLOR
from .tables import load_tables

if TYPE_CHECKING:
    from bokeh.document import Document


def _long_columns(data: ReportData) -> dict[str, dict]:
    """Every video's timeline, daily and coverage rows, end to end, in compact dtypes."""
    return {
        "timeline": {k: compact(v) for k, v in data.timeline.items()},
        "daily": {k: compact(v) for k, v in data.daily.items()},
        "coverage": {"count": compact(data.coverage.reshape(-1))},
    }


def _empty_labels(plots: list, notes: list[str]) -> list:
    """A centred note in each plot, shown while it has nothing to draw."""
    from bokeh.models import Label

    labels = []
    for p, note in zip(plots, notes, strict=True):
        label = Label(
            x=p.width / 2 - 40,
            y=p.height / 2 - 60,
            x_units="screen",
            y_units="screen",
            text=note,
            visible=bool(note),
            text_align="center",
            text_font_size="13px",
            text_color=NOTE_COLOR,
        )
        p.add_layout(label)
        labels.append(label)
    return labels


def _plots(data: ReportData, first: dict) -> dict:
    """The three plots of the shown video and the sources and marks the script updates."""
    from bokeh.models import BasicTicker, ColumnDataSource

    src = {
        "timeline": ColumnDataSource(first["timeline"], name="retention_source"),
        "daily": ColumnDataSource(first["daily"], name="daily_source"),
        "coverage": ColumnDataSource(first["coverage"], name="coverage_source"),
        "marks": ColumnDataSource(first["marks"], name="marks_source"),
    }
    retention, end_span = retention_figure(
        src["timeline"], src["marks"], first["title"], first["duration"]
    )
    plots = [
        retention,
        daily_figure(src["daily"], day_ms(data.days)),
        coverage_figure(src["coverage"]),
    ]
    labels = _empty_labels(plots, first["empty"])
    for p in plots:
        p.toolbar.logo = None
        p.title.text_font_size = "14px"
        p.yaxis.ticker = BasicTicker(min_interval=1, num_minor_ticks=0)  # counts: no 0.5
        p.xgrid.grid_line_color = None
    return {**src, "plots": plots, "end_span": end_span, "empty_labels": labels}


def _callback(c: Controls, plots: dict, long: dict, summary, bin_s: float) -> None:
    """One CustomJS for every control and for the page's first render."""
    from bokeh.models import ColumnDataSource, CustomJS

    lo, hi = bin_edges_pct()
    args = {
        "videos": c.videos,
        "overview": c.overview,
        "timeline_all": ColumnDataSource(long["timeline"], name="timeline_all"),
        "daily_all": ColumnDataSource(long["daily"], name="daily_all"),
        "coverage_all": ColumnDataSource(long["coverage"], name="coverage_all"),
        "timeline": plots["timeline"],
        "daily": plots["daily"],
        "coverage": plots["coverage"],
        "marks": plots["marks"],
        "summary": summary,
        "end_span": plots["end_span"],
        "empty_labels": plots["empty_labels"],
        "retention_plot": plots["plots"][0],
        "plots": plots["plots"],
        "course_select": c.course_select,
        "video_select": c.video_select,
        "course_filter": c.course_filter,
        "search": c.search,
        "bin_seconds": bin_s,
        "coverage_bins": COVERAGE_BINS,
        "coverage_lo": lo,
        "coverage_hi": hi,
    }
    cb = CustomJS(args=args, code=SCRIPT)
    c.course_select.js_on_change("value", cb)
    c.video_select.js_on_change("value", cb)
    c.videos.selected.js_on_change("indices", cb)
    c.overview.selected.js_on_change("indices", cb)
    c.search.js_on_change("value", cb)
    return cb


def build_document(data: ReportData, title: str = "Video engagement report") -> Document:
    """The Bokeh Document of the page (a header and a note when there are no videos)."""
    from bokeh.document import Document
    from bokeh.layouts import column, row
    from bokeh.models import Div, InlineStyleSheet

    css = InlineStyleSheet(css=CSS)
    doc = Document()
    doc.title = title
    header = Div(text=header_html(data), stylesheets=[css], width=1180)
    if data.videos.empty:
        note = Div(
            text="<p>The run's tables hold no videos: nothing to show.</p>", stylesheets=[css]
        )
        doc.add_root(column(header, note))
        return doc

    course = strings(data.overview["course_id"])[0]
    k = int(video_options(data, course)[0][0])  # page order: the course's most viewed first
    c = build_controls(data, course, k)
    long = _long_columns(data)
    plots = _plots(data, first_video(data, k, long))
    summary = Div(text="", width=300, stylesheets=[css], name="summary")
    doc.js_on_event("document_ready", _callback(c, plots, long, summary, data.bin_seconds))

    def h2(text: str, note: str = "") -> Div:
        sub = f'<p class="muted">{note}</p>' if note else ""
        return Div(text=f"<h2>{text}</h2>{sub}", stylesheets=[css], width=1080)

    retention, daily_plot, coverage_plot = plots["plots"]
    doc.add_root(
        column(
            header,
            h2("Courses", "Click a course to explore its videos."),
            c.overview_table,
            h2("Videos of the course", "Click a row, pick a video or search one by its id."),
            row(c.course_select, c.video_select, c.search),
            c.videos_table,
            h2("The selected video"),
            row(summary, column(retention, row(daily_plot, coverage_plot))),
        )
    )
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
