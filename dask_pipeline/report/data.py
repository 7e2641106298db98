"""Everything the page ships, as plain columns: the tables sliced per video."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .coverage import coverage_histogram
from .daily import after_midnight_days, day_str, spill_candidates
from .index import VIDEO_KEYS, course_overview, has_outline, video_index
from .tables import Tables, bin_seconds


@dataclass(frozen=True)
class ReportData:
    """Everything the page ships, as plain columns (``build_data``'s result)."""

    bin_seconds: float
    overview: pd.DataFrame
    videos: pd.DataFrame
    timeline: dict[str, np.ndarray]
    daily: dict[str, np.ndarray]
    coverage: np.ndarray
    days: list[str]
    run: dict
    #: days that only hold the ends of the night before's viewings -> their last segment's
    #: local time (``daily.after_midnight_days``)
    after_midnight: dict[str, str]
    #: segments per day, all videos
    day_segments: dict[str, int]
    #: whether any video has a place in a course outline
    outline: bool


def strings(s: pd.Series) -> list[str]:
    """A column as a list of str, "" for missing."""
    return ["" if pd.isna(x) else str(x) for x in s]


def day_ms(dates: list[str]) -> np.ndarray:
    """Milliseconds since the epoch of ``YYYY-MM-DD`` dates, at their UTC midnight: a local
    date drawn on a UTC datetime axis shows as itself."""
    d = np.array(dates, dtype="datetime64[D]") if dates else np.zeros(0, "datetime64[D]")
    return d.astype("datetime64[ms]").astype(np.int64).astype(np.float64)


def compact(a: np.ndarray) -> np.ndarray:
    """The same values in the smallest dtype that holds them exactly, so the page stays
    small (Bokeh ships numeric columns as base64 bytes of the array's dtype)."""
    a = np.asarray(a)
    if a.dtype.kind in "iu":
        if len(a) == 0:
            return a.astype(np.int32)
        lo, hi = int(a.min()), int(a.max())
        for t in (np.uint8, np.uint16, np.int32):
            info = np.iinfo(t)
            if info.min <= lo and hi <= info.max:
                return a.astype(t)
        return a.astype(np.float64)  # beyond int32: float64 holds integers up to 2**53
    if a.dtype.kind == "f":
        f32 = a.astype(np.float32)
        same = (f32.astype(np.float64) == a) | (np.isnan(a) & np.isnan(f32))
        return f32 if bool(same.all()) else a.astype(np.float64)
    return a


def _row_ranges(
    df: pd.DataFrame, idx: pd.DataFrame, order: list[str]
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """``df`` restricted to the videos of ``idx``, sorted by page order then ``order``,
    and the [lo, hi) row range of each video of ``idx`` in it."""
    key = idx[VIDEO_KEYS].assign(_k=np.arange(len(idx)))
    df = df.assign(**{c: df[c].astype(object) for c in VIDEO_KEYS})
    df = df.merge(key, on=VIDEO_KEYS, how="inner")
    df = df.sort_values(["_k", *order], kind="stable").reset_index(drop=True)
    k = df["_k"].to_numpy()
    ks = np.arange(len(idx))
    return df, np.searchsorted(k, ks, "left"), np.searchsorted(k, ks, "right")


def build_data(t: Tables) -> ReportData:
    """The page's data from the tables: the course overview, the video index (with each
    video's row ranges ``tl_lo``/``tl_hi`` and ``dy_lo``/``dy_hi`` into the long timeline and
    daily columns) and the coverage histogram, one row of counts per video."""
    bs = bin_seconds(t)
    idx = video_index(t.video_stats, t.views, bs)
    tl, tl_lo, tl_hi = _row_ranges(t.video_timeline, idx, ["bin"])
    dy, dy_lo, dy_hi = _row_ranges(t.video_daily, idx, ["date"])
    idx["tl_lo"], idx["tl_hi"] = tl_lo, tl_hi
    idx["dy_lo"], idx["dy_hi"] = dy_lo, dy_hi
    return ReportData(
        bin_seconds=bs,
        overview=course_overview(t.video_stats, t.views),
        videos=idx,
        timeline={
            "bin": tl["bin"].to_numpy(),
            "start_seconds": tl["start_seconds"].to_numpy(),
            "end_seconds": tl["end_seconds"].to_numpy(),
            "num_users": tl["num_users"].to_numpy(),
            "num_views": tl["num_views"].to_numpy(),
        },
        daily={
            # a local date drawn at its midnight on a UTC datetime axis
            "day": day_ms(strings(dy["date"])),
            "viewers": dy["viewers"].to_numpy(),
            "segments": dy["segments"].to_numpy(),
            "watched_hours": dy["watched_seconds"].to_numpy(dtype="float64") / 3600.0,
        },
        coverage=coverage_histogram(t.views, idx),
        days=sorted(set(strings(t.video_daily["date"]))),
        run=t.run,
        after_midnight=_after_midnight(t),
        day_segments={
            str(d): int(n)
            for d, n in t.video_daily.groupby(day_str(t.video_daily["date"]))["segments"]
            .sum()
            .items()
        },
        outline=has_outline(t.video_stats),
    )


def _after_midnight(t: Tables) -> dict[str, str]:
    tz = (t.run.get("options") or {}).get("tz") or "UTC"
    return after_midnight_days(t.segments, spill_candidates(t.video_daily), tz)
