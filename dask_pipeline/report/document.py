"""The page: the Bokeh Document of a report, its standalone HTML and the file written."""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .controls import (
    NO_SECTION,
    NOT_IN_OUTLINE,
    SELECT_TITLES,
    Controls,
    build_controls,
    outlined,
)
from .course import course_figure
from .coverage import COVERAGE_BINS, bin_edges_pct, coverage_figure
from .daily import daily_figure
from .data import ReportData, build_data, compact, day_ms
from .health import health_html
from .index import first_shown
from .page import EMPTY_NOTES, days_note, first_video, header_html
from .retention import retention_figure
from .script import SCRIPT, SEARCH_FEEDBACK
from .style import CSS, NOTE_COLOR
from .tables import load_tables

if TYPE_CHECKING:
    from bokeh.document import Document
    from bokeh.models import CustomJS, Div


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
        src["timeline"], src["marks"], data.bin_seconds, first["duration"]
    )
    daily = daily_figure(src["daily"], day_ms(data.days))
    plots = [retention, daily, coverage_figure(src["coverage"])]
    labels = _empty_labels(plots, first["empty"])
    for p in plots:
        p.toolbar.logo = None
        p.title.text_font_size = "14px"
        p.yaxis.ticker = BasicTicker(min_interval=1, num_minor_ticks=0)  # counts: no 0.5
        p.xgrid.grid_line_color = None
    return {**src, "plots": plots, "end_span": end_span, "empty_labels": labels}


def _callback(c: Controls, plots: dict, long: dict, texts: dict, extra: dict) -> CustomJS:
    """One CustomJS for every control and for the page's first render."""
    from bokeh.models import ColumnDataSource, CustomJS

    lo, hi = bin_edges_pct()
    args = {
        "videos": c.videos,
        "overview": c.overview,
        "timeline_all": ColumnDataSource(long["timeline"], name="timeline_all"),
        "daily_all": ColumnDataSource(long["daily"], name="daily_all"),
        "coverage_all": ColumnDataSource(long["coverage"], name="coverage_all"),
        **{k: plots[k] for k in ("timeline", "daily", "coverage", "marks", "end_span")},
        "empty_labels": plots["empty_labels"],
        "plots": plots["plots"],
        "course_select": c.course_select,
        "video_select": c.video_select,
        "course_filter": c.course_filter,
        "search": c.search,
        "coverage_bins": COVERAGE_BINS,
        "coverage_lo": lo,
        "coverage_hi": hi,
        "notes": EMPTY_NOTES,
        "select_titles": SELECT_TITLES,
        "no_section": NO_SECTION,
        "not_in_outline": NOT_IN_OUTLINE,
        **texts,
        **extra,
    }
    cb = CustomJS(args=args, code=SCRIPT)
    c.course_select.js_on_change("value", cb)
    c.video_select.js_on_change("value", cb)
    c.videos.selected.js_on_change("indices", cb)
    c.overview.selected.js_on_change("indices", cb)
    c.search.js_on_change("value", cb)
    return cb


def _search_feedback(c: Controls, search_note: Div) -> None:
    from bokeh.models import CustomJS

    feedback = CustomJS(args={"search": c.search, "search_note": search_note}, code=SEARCH_FEEDBACK)
    c.search.js_on_change("value_input", feedback)


def _through_course(data: ReportData, c: Controls, divs: _Divs) -> tuple[list, dict]:
    """The through-the-course plot, with an outline only (without one the page is as it
    was); the layout rows and the script's argument for its note."""
    if not data.outline:
        return [], {"through_note": None}
    outlined_first = outlined(c.video_select.options)
    fig, note = course_figure(c.videos, c.course_filter, outlined_first)
    title = divs.h2(
        "Through the course", "Viewers of each video in outline order: where learners drop off."
    )
    return [title, fig], {"through_note": note}


@dataclass(frozen=True)
class _Divs:
    """Makes the page's blocks of text, all sharing one style sheet (one model, not one per
    block: fewer models to build when the page opens)."""

    css: object

    def div(self, text: str, width: int, name: str | None = None) -> Div:
        from bokeh.models import Div

        return Div(text=text, width=width, stylesheets=[self.css], name=name)

    def h2(self, text: str, note: str = "") -> Div:
        sub = f'<p class="muted">{note}</p>' if note else ""
        return self.div(f"<h2>{text}</h2>{sub}", 1080)


def build_document(data: ReportData, title: str = "Video engagement report") -> Document:
    """The Bokeh Document of the page (a header and a note when there are no videos)."""
    from bokeh.document import Document
    from bokeh.layouts import column, row
    from bokeh.models import InlineStyleSheet

    divs = _Divs(InlineStyleSheet(css=CSS))
    doc = Document()
    doc.title = title
    header = divs.div(header_html(data), 1180)
    health = column(divs.h2("The run"), divs.div(health_html(data.run), 1080, "health"))
    if data.videos.empty:
        note = divs.div("<p>The run's tables hold no videos: nothing to show.</p>", 1080)
        doc.add_root(column(header, health, note))
        return doc

    k = first_shown(data.videos)
    c = build_controls(data, str(data.videos["course_id"].iat[k]), k)
    long = _long_columns(data)
    plots = _plots(data, first_video(data, k, long))
    texts = {
        "heading": divs.div("", 1080, "heading"),
        "summary": divs.div("", 300, "summary"),
        "bin_seconds": data.bin_seconds,
    }
    search_note = divs.div("", 420, "search_note")
    _search_feedback(c, search_note)
    through, extra = _through_course(data, c, divs)
    doc.js_on_event("document_ready", _callback(c, plots, long, texts, extra))
    retention, daily_plot, coverage_plot = plots["plots"]
    days_div = divs.div(days_note(data.after_midnight, data.day_segments), 880, "days_note")
    doc.add_root(
        column(
            header,
            health,
            divs.h2("Courses", "Click a course to explore its videos."),
            c.overview_table,
            divs.h2(
                "Videos of the course",
                "Click a row, pick a video or search one by its title or id.",
            ),
            row(c.course_select, c.video_select, column(c.search, search_note)),
            c.videos_table,
            *through,
            divs.h2("The selected video"),
            texts["heading"],
            row(texts["summary"], column(retention, row(daily_plot, coverage_plot), days_div)),
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
