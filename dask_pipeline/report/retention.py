"""The retention curve of the shown video: unique viewers and segments per timeline bin,
with the users-at-start and users-at-end marks."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .style import MARK_COLOR, SEGMENTS_COLOR, VIEWERS_FILL

if TYPE_CHECKING:
    import pandas as pd
    from bokeh.models import ColumnDataSource, Span
    from bokeh.plotting import figure as Figure

# m:ss (or h:mm:ss) ticks of the position axis
TICK_JS = """
const s = Math.round(tick), h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60)
const p2 = (x) => String(x).padStart(2, "0")
return h ? `${h}:${p2(m)}:${p2(s % 60)}` : `${m}:${p2(s % 60)}`
"""


def retention_title(bin_s: float) -> str:
    """The plot's title: short and the same for every video (the video's name is the
    heading above the plots, where a long title cannot run into the toolbar)."""
    return f"Unique viewers and segments per {bin_s:g}-second bin"


def marks(video: pd.Series, centers: np.ndarray, bin_s: float) -> dict[str, list]:
    """The users-at-start and users-at-end marks, at the centre of their bins (the same as
    the script's ``show``); the end label goes left of its mark so it stays in the plot."""
    out: dict[str, list] = {"x": [], "y": [], "text": [], "align": [], "dx": []}

    def add(x: float, y: int, text: str, align: str, dx: int) -> None:
        for c, val in zip(out, (x, y, text, align, dx), strict=True):
            out[c].append(val)

    if len(centers):
        at_start = int(video["users_at_start"])
        add(float(centers[0]), at_start, f"start: {at_start:,}", "left", 6)
        if video["end_bin"] >= 0:
            at_end = int(video["users_at_end"])
            add((video["end_bin"] + 0.5) * bin_s, at_end, f"end: {at_end:,}", "right", -6)
    return out


def retention_figure(
    timeline: ColumnDataSource, mark_source: ColumnDataSource, bin_s: float, duration: float | None
) -> tuple[Figure, Span]:
    """The retention plot and its dashed end-of-video line."""
    from bokeh.models import DataRange1d, Legend, Span
    from bokeh.plotting import figure

    p = figure(
        width=880,
        height=360,
        tools="xpan,xwheel_zoom,reset,save",
        toolbar_location="above",
        title=retention_title(bin_s),
        x_range=DataRange1d(start=0, range_padding=0.02),
        y_range=DataRange1d(start=0, range_padding=0.12),
        x_axis_label="Position in the video (m:ss)",
        y_axis_label="Viewers / segments",
        name="retention",
        css_classes=["retention"],
    )
    bars = p.quad(
        left="start_seconds",
        right="end_seconds",
        bottom=0,
        top="num_users",
        source=timeline,
        fill_color=VIEWERS_FILL,
        line_color=VIEWERS_FILL,
        fill_alpha=0.9,
    )
    line = p.line(
        x="center", y="num_views", source=timeline, line_color=SEGMENTS_COLOR, line_width=2
    )
    dots = _add_marks(p, mark_source)
    end_span = Span(
        location=duration,
        visible=duration is not None,
        dimension="height",
        line_color="#777",
        line_dash="dashed",
        line_width=1,
    )
    p.add_layout(end_span)
    legend = Legend(
        items=[
            ("unique viewers", [bars]),
            ("segments", [line]),
            ("users at start / at end", [dots]),
        ],
        orientation="horizontal",
        border_line_color=None,
    )
    p.add_layout(legend, "above")  # outside the data: inside, it hid the end mark of short videos
    _axes_and_hover(p, bars)
    return p, end_span


def _add_marks(p: Figure, source: ColumnDataSource):
    """The start / end diamonds and their labels; returns the diamonds' renderer."""
    from bokeh.models import LabelSet

    dots = p.scatter(x="x", y="y", source=source, size=11, marker="diamond", color=MARK_COLOR)
    p.add_layout(
        LabelSet(
            x="x",
            y="y",
            text="text",
            source=source,
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
    return dots


def _axes_and_hover(p: Figure, bars) -> None:
    from bokeh.models import AdaptiveTicker, CustomJSTickFormatter, HoverTool

    p.add_tools(
        HoverTool(
            renderers=[bars],
            tooltips=[
                ("bin", "@bin: @start_seconds{0.[00]}\u2013@end_seconds{0.[00]} s"),
                ("unique viewers", "@num_users"),
                ("segments", "@num_views"),
            ],
            mode="vline",
        )
    )
    p.xaxis.ticker = AdaptiveTicker(
        base=60, mantissas=[1, 2, 5, 10, 15, 30], min_interval=1, num_minor_ticks=0
    )
    p.xaxis.formatter = CustomJSTickFormatter(code=TICK_JS)
