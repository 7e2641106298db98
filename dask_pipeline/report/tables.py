"""The committed tables a report reads, and the run's summary."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .. import store
from .daily import day_str, spill_candidates

DEFAULT_BIN_SECONDS = 5.0


@dataclass(frozen=True)
class Tables:
    """The tables a report reads, as canonical pandas frames, and the run's summary."""

    video_stats: pd.DataFrame
    views: pd.DataFrame
    video_timeline: pd.DataFrame
    video_daily: pd.DataFrame
    run: dict
    #: the segments of the days that may only hold viewings begun the day before (see
    #: ``daily.spill_candidates``); empty when there are none
    segments: pd.DataFrame


def _spill_segments(out: Path, daily: pd.DataFrame) -> pd.DataFrame:
    """The stored segments of the spill candidates, read only when there are some."""
    days = spill_candidates(daily)
    if not days:
        return pd.DataFrame({"date": [], "time": [], "start_offset": [], "end_offset": []})
    seg = store.read_table(out, "segments")
    return seg.loc[day_str(seg["date"]).isin(days)].reset_index(drop=True)


def load_tables(out_dir: str | Path) -> Tables:
    """Read the committed tables of a ``run`` output directory (and its ``_run.json``)."""
    out = Path(out_dir)
    run_json = out / store.RUN_JSON
    try:
        run = json.loads(run_json.read_text()) if run_json.exists() else {}
    except (OSError, ValueError):
        run = {}  # the summary only decorates the header; the tables are what matters
    daily = store.read_table(out, "video_daily")
    return Tables(
        video_stats=store.read_table(out, "video_stats"),
        views=store.read_table(out, "views"),
        video_timeline=store.read_table(out, "video_timeline"),
        video_daily=daily,
        run=run if isinstance(run, dict) else {},
        segments=_spill_segments(out, daily),
    )


def bin_seconds(t: Tables) -> float:
    """The timeline's bin width: the run's ``--bin-seconds``, else read off the timeline."""
    b = (t.run.get("options") or {}).get("bin_seconds")
    if isinstance(b, int | float) and b > 0:
        return float(b)
    tl = t.video_timeline
    if len(tl):
        return float(tl["end_seconds"].iloc[0] - tl["start_seconds"].iloc[0])
    return DEFAULT_BIN_SECONDS
