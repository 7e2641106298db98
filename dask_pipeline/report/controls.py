"""The page's tables and controls: the course overview, a course's videos, the course and
video selects and the search box."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .data import ReportData, strings

if TYPE_CHECKING:
    from bokeh.models import (
        AutocompleteInput,
        ColumnDataSource,
        DataTable,
        GroupFilter,
        Select,
    )

#: Text and number columns of the ``videos`` source (one row per video, in page order).
VIDEO_TEXT = ["course_id", "video_id", "short_id", "duration_text", "option_label", "search_label"]
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
]


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


def videos_table(data: ReportData, course: str) -> tuple[ColumnDataSource, DataTable, GroupFilter]:
    """Every video (one source), shown course by course through a filter."""
    from bokeh.models import CDSView, ColumnDataSource, DataTable, GroupFilter, TableColumn

    vi = data.videos
    source = ColumnDataSource(
        {
            **{c: strings(vi[c]) for c in VIDEO_TEXT},
            **{c: vi[c].to_numpy() for c in VIDEO_NUMBERS},
            "duration_inferred": vi["duration_inferred"].to_numpy(dtype=bool),
        },
        name="videos",
    )
    f_int, f_pct, f_hours = _formatters()
    columns = [
        TableColumn(field="short_id", title="Video", width=300),
        TableColumn(field="duration_text", title="Duration", width=120),
        TableColumn(field="viewers", title="Viewers", formatter=f_int, width=75),
        TableColumn(field="segments", title="Views", formatter=f_int, width=75),
        TableColumn(field="watched_hours", title="Hours watched", formatter=f_hours, width=110),
        TableColumn(field="mean_coverage_pct", title="Mean coverage %", formatter=f_pct, width=125),
        TableColumn(field="completion_pct", title="Completion %", formatter=f_pct, width=110),
        TableColumn(field="users_at_start", title="At start", formatter=f_int, width=75),
        TableColumn(field="users_at_end", title="At end", formatter=f_int, width=75),
    ]
    course_filter = GroupFilter(column_name="course_id", group=course)
    table = DataTable(
        source=source,
        view=CDSView(filter=course_filter),
        columns=columns,
        width=1080,
        height=300,
        index_position=None,
        autosize_mode="none",
        reorderable=False,
        name="videos_table",
        css_classes=["videos"],
    )
    return source, table, course_filter


def video_options(data: ReportData, course: str) -> list[tuple[str, str]]:
    """The video select's options for a course: (row of ``videos``, label), page order."""
    vi = data.videos
    return [
        (str(k), label)
        for k, (c, label) in enumerate(zip(vi["course_id"], vi["option_label"], strict=True))
        if c == course
    ]


def build_controls(data: ReportData, course: str, first: int) -> Controls:
    """Every table and control, showing ``course`` and its video ``first``."""
    from bokeh.models import AutocompleteInput, Select

    overview, ov_table = overview_table(data)
    videos, v_table, course_filter = videos_table(data, course)
    courses = strings(data.overview["course_id"])
    course_select = Select(
        title="Course", options=courses, value=course, width=330, name="course_select"
    )
    video_select = Select(
        title="Video (most viewed first)",
        options=video_options(data, course),
        value=str(first),
        width=420,
        name="video_select",
    )
    search = AutocompleteInput(
        title="Find a video in any course (type part of its id)",
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
