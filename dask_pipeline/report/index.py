"""The per-course and per-video numbers the page shows: plain sums, counts and ratios of the
tables, computed here once."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .. import metrics

VIDEO_KEYS = ["course_id", "video_id"]


def course_overview(stats: pd.DataFrame, views: pd.DataFrame) -> pd.DataFrame:
    """One row per course, sorted by course_id: ``videos`` (rows of video_stats),
    ``watched_videos`` (with viewers), ``viewers`` (distinct usernames in views),
    ``hours_watched`` (sum of watched_seconds / 3600), ``mean_coverage`` (mean of the
    non-null coverages of its views, NaN when none) and ``completion`` (sum of
    completed_viewers / sum of viewers, NaN when nobody watched)."""
    g = stats.groupby("course_id", sort=True, observed=True)
    out = pd.DataFrame(
        {
            "videos": g.size(),
            "watched_videos": g["viewers"].apply(lambda s: int((s > 0).sum())),
            "watched_seconds": g["watched_seconds"].sum(),
            "viewers_sum": g["viewers"].sum(),
            "completed_sum": g["completed_viewers"].sum(),
        }
    )
    vg = views.groupby("course_id", sort=True, observed=True)
    out["viewers"] = vg["username"].nunique().reindex(out.index).fillna(0).astype("int64")
    out["mean_coverage"] = vg["coverage"].mean().reindex(out.index)
    out["hours_watched"] = out["watched_seconds"] / 3600.0
    with np.errstate(invalid="ignore", divide="ignore"):
        out["completion"] = np.where(
            out["viewers_sum"] > 0, out["completed_sum"] / out["viewers_sum"], np.nan
        )
    out = out.reset_index()
    out["course_id"] = out["course_id"].astype(object)
    cols = ["course_id", "videos", "watched_videos", "viewers", "hours_watched"]
    return out[[*cols, "mean_coverage", "completion"]]


def short_id(video_id: str) -> str:
    """A video id without the parts that repeat the course: the block hash of a
    ``block-v1:...@<hash>`` id, the name of an ``i4x-...-video-<name>`` id, else the id."""
    if "@" in video_id:
        return video_id.rsplit("@", 1)[1] or video_id
    if "-video-" in video_id:
        return video_id.split("-video-", 1)[1] or video_id
    return video_id


def clock(seconds: float) -> str:
    """``m:ss`` (or ``h:mm:ss``) of a duration in seconds; an em dash when unknown."""
    if seconds is None or not np.isfinite(seconds):
        return "\u2014"
    s = int(round(float(seconds)))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


def _coverage_unknown(views: pd.DataFrame) -> pd.DataFrame:
    """Per video: how many of its views have a null coverage."""
    unknown = (
        views.assign(_u=views["coverage"].isna())
        .groupby(VIDEO_KEYS, observed=True)["_u"]
        .sum()
        .rename("coverage_unknown")
        .reset_index()
    )
    for c in VIDEO_KEYS:
        unknown[c] = unknown[c].astype(object)
    return unknown


#: The outline columns of video_stats when a course structure was given (issue 11).
OUTLINE_TEXT = ["title", "section", "subsection", "unit"]
OUTLINE_NUMBERS = ["position", "section_index", "subsection_index", "unit_index"]


def has_outline(stats: pd.DataFrame) -> bool:
    """Whether any video of video_stats has a place in a course outline."""
    return "position" in stats.columns and bool(stats["position"].notna().any())


def _text(s: pd.Series) -> list[str]:
    return ["" if pd.isna(x) else str(x) for x in s]


def _labels(idx: pd.DataFrame) -> pd.DataFrame:
    """The display texts of each video: duration, short id, its name (its title, else its
    short id), where it sits in the outline, the select and search labels."""
    idx["duration_text"] = [
        clock(x) + (" (inferred)" if inf else "")
        for x, inf in zip(idx["duration"], idx["duration_inferred"], strict=True)
    ]
    short = pd.Series([short_id(v) for v in idx["video_id"]], index=idx.index)
    # a short id must name one video of its course; where two collide keep the full ids
    clash = short.groupby(idx["course_id"]).transform(lambda s: s.duplicated(keep=False))
    idx["short_id"] = np.where(clash, idx["video_id"], short)
    for c in OUTLINE_TEXT:
        idx[c] = _text(idx[c]) if c in idx.columns else ""
    titles = idx["title"].to_numpy(dtype=object)
    idx["label"] = np.where(titles != "", titles, idx["short_id"])
    idx["place"] = [
        " \u203a ".join(p for p in parts if p)
        for parts in zip(idx["section"], idx["subsection"], idx["unit"], strict=True)
    ]
    # with an outline, its position first: the select shows it and it tells apart two
    # videos of one title (Bokeh's select tells its options apart by their labels)
    pos = [f"{int(p)}. " if np.isfinite(p) else "" for p in idx["position"].astype("float64")]
    idx["option_label"] = [
        f"{p}{s}  ({clock(d)}, {n} viewers)"
        for p, s, d, n in zip(pos, idx["label"], idx["duration"], idx["viewers"], strict=True)
    ]
    idx["search_label"] = [
        f"{lab} ({s}) \u00b7 {c}" if lab != s else f"{s} \u00b7 {c}"
        for lab, s, c in zip(idx["label"], idx["short_id"], idx["course_id"], strict=True)
    ]
    return idx


def _page_order(stats: pd.DataFrame) -> pd.DataFrame:
    """Videos by course, then in outline order where the outline places them (the others
    after), then most viewers first."""
    df = stats.copy()
    has_pos = "position" in df.columns
    df["_pos"] = df["position"].astype("float64") if has_pos else np.nan
    df = df.sort_values(
        ["course_id", "_pos", "viewers", "video_id"],
        ascending=[True, True, False, True],
        na_position="last",
        kind="stable",
    )
    return df.drop(columns="_pos").reset_index(drop=True)


def first_shown(idx: pd.DataFrame) -> int:
    """The row of ``idx`` the page opens on: the most watched video whose coverage is known
    (its duration known or inferred), else the most watched one (page order breaks ties)."""
    known = idx["mean_coverage"].notna().to_numpy()
    order = np.lexsort((np.arange(len(idx)), -idx["viewers"].to_numpy(), ~known))
    return int(order[0]) if len(order) else 0


def video_index(stats: pd.DataFrame, views: pd.DataFrame, bin_s: float) -> pd.DataFrame:
    """One row per video of video_stats, in page order (:func:`_page_order`), with its
    stats, display labels, ``coverage_unknown`` (views with a null coverage),
    ``completion`` (completed_viewers / viewers) and ``end_bin`` (the bin of users_at_end,
    :func:`metrics.users_at_end_bin`, -1 when unknown)."""
    idx = _page_order(stats)
    for c in VIDEO_KEYS:
        idx[c] = idx[c].astype(object)
    idx = idx.merge(_coverage_unknown(views), on=VIDEO_KEYS, how="left")
    idx["coverage_unknown"] = idx["coverage_unknown"].fillna(0).astype("int64")
    with np.errstate(invalid="ignore", divide="ignore"):
        idx["completion"] = np.where(
            idx["viewers"] > 0, idx["completed_viewers"] / idx["viewers"].clip(lower=1), np.nan
        )
    idx["end_bin"] = metrics.users_at_end_bin(idx["duration"].to_numpy(dtype="float64"), bin_s)
    idx["watched_hours"] = idx["watched_seconds"] / 3600.0
    idx["mean_coverage_pct"] = idx["mean_coverage"] * 100.0
    idx["completion_pct"] = idx["completion"] * 100.0
    for c in OUTLINE_NUMBERS:
        idx[c] = idx[c].astype("float64") if c in idx.columns else np.nan
    return _labels(idx)
