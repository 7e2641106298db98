"""The distribution of viewer coverage: its histogram and its plot."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from .. import metrics
from .index import VIDEO_KEYS
from .style import MARK_COLOR, VIEWERS_COLOR

if TYPE_CHECKING:
    from bokeh.models import ColumnDataSource
    from bokeh.plotting import figure as Figure

#: Bins of 5 points, so the last bin starts at the completion threshold (metrics).
COVERAGE_BINS = int(round(1.0 / (1.0 - metrics.COMPLETE_COVERAGE)))
COVERAGE_EDGES = np.linspace(0.0, 1.0, COVERAGE_BINS + 1)
#: The completion threshold in percent, as the plot and the header show it.
COMPLETE_PCT = metrics.COMPLETE_COVERAGE * 100.0


def coverage_histogram(views: pd.DataFrame, idx: pd.DataFrame) -> np.ndarray:
    """Counts of the non-null coverages of each video's views in ``COVERAGE_EDGES`` bins
    (numpy.histogram's: half-open, the last one closed), shape (len(idx), COVERAGE_BINS)."""
    key = idx[VIDEO_KEYS].assign(_k=np.arange(len(idx)))
    v = views.loc[views["coverage"].notna(), [*VIDEO_KEYS, "coverage"]]
    v = v.assign(**{c: v[c].astype(object) for c in VIDEO_KEYS}).merge(key, on=VIDEO_KEYS)
    b = np.searchsorted(COVERAGE_EDGES, v["coverage"].to_numpy(), side="right") - 1
    b = np.clip(b, 0, COVERAGE_BINS - 1)  # coverage 1.0 falls in the last, closed bin
    out = np.zeros((len(idx), COVERAGE_BINS), dtype=np.int64)
    np.add.at(out, (v["_k"].to_numpy(), b), 1)
    return out


def bin_edges_pct() -> tuple[list[float], list[float]]:
    """The histogram's bins in percent: their low and high edges."""
    edges = COVERAGE_EDGES * 100.0
    return edges[:-1].round(6).tolist(), edges[1:].round(6).tolist()


def coverage_figure(source: ColumnDataSource) -> Figure:
    """The coverage histogram of the shown video, with the completion threshold marked."""
    from bokeh.models import DataRange1d, HoverTool, Label, Range1d, Span
    from bokeh.plotting import figure

    p = figure(
        width=440,
        height=300,
        tools="save",
        toolbar_location=None,
        x_range=Range1d(0, 100),
        y_range=DataRange1d(start=0, range_padding=0.25),
        title="How much of the video each viewer watched",
        x_axis_label="Coverage (% of the video watched at least once)",
        y_axis_label="Viewers",
        name="coverage",
        css_classes=["coverage"],
    )
    bars = p.quad(
        left="lo",
        right="hi",
        bottom=0,
        top="count",
        source=source,
        fill_color=VIEWERS_COLOR,
        line_color="white",
    )
    p.add_layout(
        Span(location=COMPLETE_PCT, dimension="height", line_color=MARK_COLOR, line_dash="dashed")
    )
    p.add_layout(
        Label(
            x=COMPLETE_PCT - 1,
            y=190,
            x_units="data",
            y_units="screen",
            text=f"{COMPLETE_PCT:g}%: completed",
            text_align="right",
            text_font_size="11px",
            text_color=MARK_COLOR,
        )
    )
    p.add_tools(
        HoverTool(
            renderers=[bars], tooltips=[("coverage", "@lo{0}\u2013@hi{0} %"), ("viewers", "@count")]
        )
    )
    return p
