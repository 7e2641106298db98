"""Through the course: viewers of each video of the shown course, in outline order, which
shows where learners drop off across the course (issue 11)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from .style import NOTE_COLOR, VIEWERS_COLOR, VIEWERS_FILL

if TYPE_CHECKING:
    from bokeh.models import ColumnDataSource, GroupFilter, Label
    from bokeh.plotting import figure as Figure

#: Shown instead of the bars for a course without an outline.
NO_OUTLINE = "No course outline for this course: run with --course-structure"


def section_colors(section_index: pd.Series) -> list[str]:
    """Alternate colours by section, so that a course's sections read as blocks."""
    idx = section_index.to_numpy(dtype="float64")
    return [VIEWERS_COLOR if not np.isfinite(i) or int(i) % 2 else VIEWERS_FILL for i in idx]


def course_figure(
    videos: ColumnDataSource, course_filter: GroupFilter, outlined: bool
) -> tuple[Figure, Label]:
    """Bars of ``viewers`` at ``position`` for the videos the course filter lets through
    (the same filter as the videos table); a note in place of the bars for a course
    without an outline."""
    from bokeh.models import CDSView, DataRange1d, HoverTool, Label
    from bokeh.plotting import figure

    p = figure(
        width=1080,
        height=240,
        tools="save",
        toolbar_location=None,
        x_range=DataRange1d(range_padding=0.01),
        y_range=DataRange1d(start=0, range_padding=0.12),
        title="Viewers of each video, in outline order (colours alternate by section)",
        x_axis_label="Position of the video in the course outline",
        y_axis_label="Viewers",
        name="through_course",
        css_classes=["through-course"],
    )
    bars = p.vbar(
        x="position",
        top="viewers",
        width=0.8,
        source=videos,
        view=CDSView(filter=course_filter),
        fill_color="section_color",
        line_color="section_color",
        selection_fill_color="#e8702a",
        selection_line_color="#e8702a",
        nonselection_fill_alpha=1.0,
    )
    p.add_tools(
        HoverTool(
            renderers=[bars],
            tooltips=[("", "@position. @label"), ("in", "@place"), ("viewers", "@viewers")],
        )
    )
    note = Label(
        x=20,
        y=100,
        x_units="screen",
        y_units="screen",
        text=NO_OUTLINE,
        visible=not outlined,
        text_font_size="13px",
        text_color=NOTE_COLOR,
    )
    p.add_layout(note)
    p.toolbar.logo = None
    p.xgrid.grid_line_color = None
    return p, note
