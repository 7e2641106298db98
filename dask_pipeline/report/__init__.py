"""The HTML report of a run: one standalone Bokeh page that works offline (SPEC §6 tables).

``write_report(OUT, path)`` reads the committed tables of ``OUT`` and writes one HTML file
with Bokeh's JavaScript inline (no CDN, no server): a per-course overview, a sortable table
of a course's videos, and for the chosen video its retention curve (``video_timeline``),
viewers and views per day (``video_daily``) and the distribution of viewer coverage
(``views``). Choosing a video (select, search or a click in the table) only slices data
already in the page, so it scales to hundreds of videos without one page per video.

Every number the page shows comes unchanged from the tables, or is a plain sum, count or
ratio of them computed once in :mod:`.index` and :mod:`.coverage`; the formulas shared with
the tables (the end bin, the completion threshold) come from :mod:`dask_pipeline.metrics`.
Pure pandas and Bokeh: imports neither Dask nor ``distributed``.

Modules: ``tables`` (reading), ``index`` (per-course and per-video numbers), ``data`` (the
columns the page ships), ``retention``, ``daily``, ``coverage`` (the plots), ``controls``
(tables, selects, search), ``script`` (the page's JavaScript), ``page`` (header, first
video), ``document`` (assembly and writing).
"""

from .coverage import COVERAGE_BINS, COVERAGE_EDGES, coverage_histogram
from .data import ReportData, build_data
from .document import build_document, render_html, write_report
from .index import clock, course_overview, short_id, video_index
from .tables import Tables, bin_seconds, load_tables

__all__ = [
    "COVERAGE_BINS",
    "COVERAGE_EDGES",
    "ReportData",
    "Tables",
    "bin_seconds",
    "build_data",
    "build_document",
    "clock",
    "coverage_histogram",
    "course_overview",
    "load_tables",
    "render_html",
    "short_id",
    "video_index",
    "write_report",
]
