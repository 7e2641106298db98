"""Viewers and segments per day of the shown video, and what the days mean."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from .style import SEGMENTS_COLOR, VIEWERS_COLOR

if TYPE_CHECKING:
    from bokeh.models import ColumnDataSource
    from bokeh.plotting import figure as Figure

DAY_MS = 86_400_000.0
#: At most this many day labels on the axis: "Jan 05" is about 45 px at the axis' font and
#: the plot's frame about 290 px wide, so six would touch.
MAX_DAY_LABELS = 5
#: A day is checked for holding only viewings that began the day before when its segments
#: are at most this share of the previous day's.
SPILL_SHARE = 0.1
#: ... and all of them closed within this many hours after its midnight.
SPILL_HOURS = 1


def day_str(s: pd.Series) -> pd.Series:
    """A date column (``YYYY-MM-DD`` strings, dates or timestamps) as ``YYYY-MM-DD``."""
    return s.astype(str).str.slice(0, 10)


def spill_candidates(daily: pd.DataFrame) -> list[str]:
    """Days whose segments are at most SPILL_SHARE of the day before's (video_daily)."""
    tot = daily.assign(_d=day_str(daily["date"])).groupby("_d")["segments"].sum()
    prev = pd.Series(tot.to_numpy(), index=pd.to_datetime(tot.index) + pd.Timedelta(days=1))
    prev = prev.reindex(pd.to_datetime(tot.index)).to_numpy()
    keep = np.isfinite(prev) & (tot.to_numpy() <= SPILL_SHARE * np.nan_to_num(prev))
    return [d for d, k in zip(tot.index, keep, strict=True) if k]


def after_midnight_days(segments: pd.DataFrame, days: list[str], tz: str) -> dict[str, str]:
    """Of ``days``, those whose every segment closed within SPILL_HOURS after the day's
    local midnight, with the local time of the last one (``HH:MM``): days that only hold the
    ends of viewings of the night before."""
    out: dict[str, str] = {}
    if segments.empty:
        return out
    d = day_str(segments["date"])
    for day in days:
        on = (d == day).to_numpy()
        if not on.any():
            continue
        midnight = pd.Timestamp(day).tz_localize(tz)
        last = segments["time"][on].max()
        if last - midnight <= pd.Timedelta(hours=SPILL_HOURS):
            out[day] = last.tz_convert(tz).strftime("%H:%M")
    return out


def day_ticks(days_ms: np.ndarray) -> tuple[list[float], list[float]]:
    """Major ticks (labelled, at most MAX_DAY_LABELS, evenly spaced whole days) and minor
    ticks (every day) over the days of the run."""
    if len(days_ms) == 0:
        return [], []
    d0, d1 = float(days_ms.min()), float(days_ms.max())
    n = int(round((d1 - d0) / DAY_MS)) + 1
    step = max(1, math.ceil(n / MAX_DAY_LABELS))
    major = [d0 + i * DAY_MS for i in range(0, n, step)]
    return major, [d0 + i * DAY_MS for i in range(n)]


def daily_figure(source: ColumnDataSource, days: np.ndarray) -> Figure:
    """Two bars per day (viewers, segments) over every day of the run (``days``, in ms)."""
    from bokeh.models import DataRange1d, FixedTicker, HoverTool, Range1d
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
        title="Viewers and segments per day",
        y_axis_label="Viewers / segments",
        name="daily",
        css_classes=["daily"],
    )
    bar = {"width": 0.34 * DAY_MS, "source": source}
    kw = {"top": "viewers", "color": VIEWERS_COLOR, "legend_label": "viewers"}
    r_viewers = p.vbar(x=dodge("day", -0.18 * DAY_MS), **kw, **bar)
    kw = {"top": "segments", "color": SEGMENTS_COLOR, "legend_label": "segments"}
    r_segments = p.vbar(x=dodge("day", 0.18 * DAY_MS), **kw, **bar)
    # outside, at the right, so both small charts keep frames of the same height
    p.legend.border_line_color = None
    p.add_layout(p.legend[0], "right")
    major, minor = day_ticks(days)
    p.xaxis.ticker = FixedTicker(ticks=major, minor_ticks=minor, name="day_ticker")
    p.xaxis.formatter = _day_formatter()
    p.add_tools(
        HoverTool(
            renderers=[r_viewers, r_segments],
            tooltips=[
                ("day", "@day{%F}"),
                ("viewers", "@viewers"),
                ("segments", "@segments"),
                ("hours watched", "@watched_hours{0.00}"),
            ],
            formatters={"@day": "datetime"},
        )
    )
    return p


def _day_formatter():
    from bokeh.models import DatetimeTickFormatter

    # the same short form whatever the spacing of the ticks, so every label has one width
    day = "%b %d"
    return DatetimeTickFormatter(days=day, months=day, years=day, context=None)
