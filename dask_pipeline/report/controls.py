"""The page's tables and controls: the course overview, a course's videos, the course and
video selects and the search box."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .course import section_colors
from .data import ReportData, strings
from .index import OUTLINE_NUMBERS, OUTLINE_TEXT

if TYPE_CHECKING:
    from bokeh.models import (
        AutocompleteInput,
        ColumnDataSource,
        DataTable,
        GroupFilter,
        Select,
    )

#: Text and number columns of the ``videos`` source (one row per video, in page order).
VIDEO_TEXT = ["course_id", "video_id", "short_id", "label", "place", *OUTLINE_TEXT]
VIDEO_TEXT += ["duration_text", "option_label", "search_label"]
VIDEO_NUMBERS = [
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
    *OUTLINE_NUMBERS,
]

#: The video select's title, as its options are ordered.
SELECT_TITLES = {"outline": "Video (in outline order)", "viewers": "Video (most viewed first)"}
#: Option groups of the video select for the videos of an outlined course.
NO_SECTION = "(no section)"
NOT_IN_OUTLINE = "Not in the outline"


@dataclass(frozen=True)
class Controls:
    """The models the page's script reads and drives."""

    overview: ColumnDataSource
    overview_table: DataTable
    videos: ColumnDataSource
    videos_table: DataTable
    course_filter: GroupFilter
    course_select: Select
    video_select: Select
    search: AutocompleteInput


def _formatters():
    from bokeh.models import NumberFormatter

    return (
        NumberFormatter(format="0,0", text_align="right"),
        NumberFormatter(format="0.0", text_align="right", nan_format="n/a"),
        NumberFormatter(format="0,0.00", text_align="right"),
    )


def _position_format():
    from bokeh.models import NumberFormatter

    return NumberFormatter(format="0", text_align="right", nan_format="")


def overview_table(data: ReportData) -> tuple[ColumnDataSource, DataTable]:
    """One row per course: videos, watched, viewers, hours, mean coverage, completion."""
    from bokeh.models import ColumnDataSource, DataTable, TableColumn

    ov = data.overview
    source = ColumnDataSource(
        {
            "course_id": strings(ov["course_id"]),
            "videos": ov["videos"].to_numpy(),
            "watched_videos": ov["watched_videos"].to_numpy(),
            "viewers": ov["viewers"].to_numpy(),
            "hours_watched": ov["hours_watched"].to_numpy(),
            "mean_coverage_pct": ov["mean_coverage"].to_numpy() * 100.0,
            "completion_pct": ov["completion"].to_numpy() * 100.0,
        },
        name="overview",
    )
    f_int, f_pct, f_hours = _formatters()
    columns = [
        TableColumn(field="course_id", title="Course", width=420),
        TableColumn(field="videos", title="Videos", formatter=f_int, width=90),
        TableColumn(field="watched_videos", title="Watched", formatter=f_int, width=90),
        TableColumn(field="viewers", title="Viewers", formatter=f_int, width=90),
        TableColumn(field="hours_watched", title="Hours watched", formatter=f_hours, width=120),
        TableColumn(field="mean_coverage_pct", title="Mean coverage %", formatter=f_pct, width=130),
        TableColumn(field="completion_pct", title="Completion %", formatter=f_pct, width=120),
    ]
    table = DataTable(
        source=source,
        columns=columns,
        width=1080,
        height=min(32 + 28 * len(ov), 260),
        index_position=None,
        autosize_mode="none",
        reorderable=False,
        name="overview_table",
        css_classes=["overview"],
    )
    return source, table


def _video_columns(outline: bool) -> list:
    """The columns of the videos table; with an outline, its place first."""
    from bokeh.models import TableColumn

    f_int, f_pct, f_hours = _formatters()
    place = [
        TableColumn(field="position", title="#", formatter=_position_format(), width=40),
        TableColumn(field="section", title="Section", width=150),
    ]
    # 1080 px in all, with or without the outline's two columns
    return [
        *(place if outline else []),
        TableColumn(field="label", title="Video", width=230 if outline else 300),
        TableColumn(field="duration_text", title="Duration", width=100 if outline else 120),
        TableColumn(field="viewers", title="Viewers", formatter=f_int, width=65 if outline else 75),
        TableColumn(
            field="segments", title="Segments", formatter=f_int, width=70 if outline else 75
        ),
        TableColumn(field="watched_hours", title="Hours watched", formatter=f_hours, width=100),
        TableColumn(field="mean_coverage_pct", title="Mean coverage %", formatter=f_pct, width=115),
        TableColumn(field="completion_pct", title="Completion %", formatter=f_pct, width=100),
        TableColumn(
            field="users_at_start", title="At start", formatter=f_int, width=55 if outline else 97
        ),
        TableColumn(
            field="users_at_end", title="At end", formatter=f_int, width=55 if outline else 98
        ),
    ]


def videos_table(data: ReportData, course: str) -> tuple[ColumnDataSource, DataTable, GroupFilter]:
    """Every video (one source), shown course by course through a filter."""
    from bokeh.models import CDSView, ColumnDataSource, DataTable, GroupFilter

    vi = data.videos
    source = ColumnDataSource(
        {
            **{c: strings(vi[c]) for c in VIDEO_TEXT},
            **{
                c: vi[c].to_numpy(dtype="float64" if c in OUTLINE_NUMBERS else None)
                for c in VIDEO_NUMBERS
            },
            "duration_inferred": vi["duration_inferred"].to_numpy(dtype=bool),
            "section_color": section_colors(vi["section_index"]),
        },
        name="videos",
    )
    course_filter = GroupFilter(column_name="course_id", group=course)
    table = DataTable(
        source=source,
        view=CDSView(filter=course_filter),
        columns=_video_columns(data.outline),
        width=1080,
        height=300,
        index_position=None,
        autosize_mode="none",
        reorderable=False,
        name="videos_table",
        css_classes=["videos"],
    )
    return source, table, course_filter


def video_options(data: ReportData, course: str) -> list | dict[str, list]:
    """The video select's options for a course: (row of ``videos``, label) in page order;
    grouped by section when the course has an outline (the same as ``options_of`` of the
    page's script)."""
    vi = data.videos
    rows = [k for k, c in enumerate(vi["course_id"]) if c == course]
    flat = [(str(k), vi["option_label"].iat[k]) for k in rows]
    pos = vi["position"].to_numpy(dtype="float64")
    if not any(np.isfinite(pos[k]) for k in rows):
        return flat
    groups: dict[str, list] = {}
    for k, opt in zip(rows, flat, strict=True):
        g = (vi["section"].iat[k] or NO_SECTION) if np.isfinite(pos[k]) else NOT_IN_OUTLINE
        groups.setdefault(g, []).append(opt)
    return groups


def outlined(options: list | dict) -> bool:
    return isinstance(options, dict)


def build_controls(data: ReportData, course: str, first: int) -> Controls:
    """Every table and control, showing ``course`` and its video ``first``."""
    from bokeh.models import AutocompleteInput, Select

    overview, ov_table = overview_table(data)
    videos, v_table, course_filter = videos_table(data, course)
    courses = strings(data.overview["course_id"])
    course_select = Select(
        title="Course", options=courses, value=course, width=330, name="course_select"
    )
    options = video_options(data, course)
    video_select = Select(
        title=SELECT_TITLES["outline" if outlined(options) else "viewers"],
        options=options,
        value=str(first),
        width=420,
        name="video_select",
    )
    search = AutocompleteInput(
        title="Find a video in any course (part of its title or id)",
        completions=strings(data.videos["search_label"]),
        search_strategy="includes",
        case_sensitive=False,
        min_characters=2,
        max_completions=30,
        width=420,
        name="video_search",
    )
    return Controls(
        overview, ov_table, videos, v_table, course_filter, course_select, video_select, search
    )
