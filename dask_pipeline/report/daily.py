"""Viewers and views per day of the shown video."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .style import SEGMENTS_COLOR, VIEWERS_COLOR

if TYPE_CHECKING:
    import numpy as np
    from bokeh.models import ColumnDataSource
    from bokeh.plotting import figure as Figure

DAY_MS = 86_400_000.0


def daily_figure(source: ColumnDataSource, days: np.ndarray) -> Figure:
    """Two bars per day (viewers, views) over every day of the run (``days``, in ms)."""
    from bokeh.models import DataRange1d, DatetimeTickFormatter, HoverTool, Range1d
    from bokeh.plotting import figure
    from bokeh.transform import dodge

    d0, d1 = (days.min(), days.max()) if len(days) else (0.0, DAY_MS)
    p = figure(
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
    bar = {"width": 0.34 * DAY_MS, "source": source}
    r_viewers = p.vbar(
        x=dodge("day", -0.18 * DAY_MS),
        top="viewers",
        color=VIEWERS_COLOR,
        legend_label="viewers",
        **bar,
    )
    r_views = p.vbar(
        x=dodge("day", 0.18 * DAY_MS),
        top="segments",
        color=SEGMENTS_COLOR,
        legend_label="views",
        **bar,
    )
    # outside, at the right, so both small charts keep frames of the same height
    p.legend.border_line_color = None
    p.add_layout(p.legend[0], "right")
    p.xaxis.formatter = DatetimeTickFormatter(days="%a %b %d", months="%b %Y")
    p.add_tools(
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
    return p
