"""Per-video tables from segments and events (SPEC §6): videos, views, video_stats,
video_timeline, video_daily; and per course, course_stats.

Pure: imports pandas and numpy only. Every function takes frames and returns frames conformed
to their ``schema`` table; none sorts its output rows (``schema.canonical`` does that). The
work is vectorised on integer codes of the keys, so a partition of a few million segments
costs a few sorts, not a Python loop.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from . import outline, schema
from .schema import (
    F64,
    LOGGED_VIDEOS,
    VIDEO_DAILY,
    VIDEO_STATS,
    VIDEO_TIMELINE,
    VIEWS,
    conform,
)
from .segments import MAX_OFFSET  # offsets past it are not binned (SPEC §6)

#: A viewer with at least this coverage completed the video (SPEC §6).
COMPLETE_COVERAGE = 0.95
#: Duration inference: the walk stops at bin b when users(h) <= DROP_OFF * users(b) (SPEC §6).
DROP_OFF = 0.05
#: users_at_end's bin is bin(max(duration - END_MARGIN, END_SHARE * duration)) (SPEC §6).
END_MARGIN = 30.0
END_SHARE = 0.95

#: What ``video_partials`` returns: per (course_id, video_id, code) the event count and the
#: largest positive duration, which ``combine_videos`` merges across partitions.

_VIDEO_KEYS = ["course_id", "video_id"]


# --------------------------------------------------------------------------- videos
def video_partials(events: pd.DataFrame) -> pd.DataFrame:
    """Per (course_id, video_id, code) of ``events``: ``n`` events and the largest positive
    ``duration`` (NaN if none). Rows without a course or video id are left out."""
    keep = events["course_id"].notna() & events["video_id"].notna()
    df = events.loc[keep, [*_VIDEO_KEYS, "code", "duration"]]
    df = df.assign(duration=df["duration"].where(df["duration"] > 0))
    g = df.groupby([*_VIDEO_KEYS, "code"], dropna=False, sort=False, observed=True)
    out = g["duration"].agg(["size", "max"]).reset_index()
    return conform(out.rename(columns={"size": "n", "max": "duration"}), schema.VIDEO_PARTIALS)


def user_video_partials(events: pd.DataFrame, dates: pd.Series) -> pd.DataFrame:
    """Per (course_id, video_id, code, username, date) of ``events`` (``dates``: each event's
    local date): ``n`` events and the largest positive ``duration`` (schema.USER_VIDEOS).
    ``combine_videos`` takes these like any partials."""
    keys = [*_VIDEO_KEYS, "code", "username", "date"]
    df = events[[*_VIDEO_KEYS, "code", "username", "duration"]].assign(date=dates.to_numpy())
    df = df.loc[df["course_id"].notna() & df["video_id"].notna()]
    df = df.assign(duration=df["duration"].where(df["duration"] > 0))
    g = df.groupby(keys, dropna=False, sort=False, observed=True)["duration"]
    out = g.agg(["size", "max"]).reset_index()
    return conform(out.rename(columns={"size": "n", "max": "duration"}), schema.USER_VIDEOS)


def combine_videos(partials: pd.DataFrame, previous: pd.DataFrame | None = None) -> pd.DataFrame:
    """``schema.VIDEOS`` from any number of ``video_partials`` frames concatenated.

    duration: the largest positive duration (NaN when none); code: the code seen most often,
    ties going to the smallest string (NaN when none). ``previous``, an earlier run's videos
    table, is merged in (SPEC §7): the largest duration wins, the code seen now wins when
    there is one.
    """
    p = partials.loc[partials["course_id"].notna() & partials["video_id"].notna()]
    p = p.groupby([*_VIDEO_KEYS, "code"], dropna=False, sort=False, observed=True).agg(
        n=("n", "sum"), duration=("duration", "max")
    )
    p = p.reset_index()
    dur = p.groupby(_VIDEO_KEYS, sort=False, observed=True)["duration"].max().reset_index()
    mode = p.loc[p["code"].notna()].sort_values(
        [*_VIDEO_KEYS, "n", "code"], ascending=[True, True, False, True], kind="stable"
    )
    mode = mode.drop_duplicates(_VIDEO_KEYS)[[*_VIDEO_KEYS, "code"]]
    videos = dur.merge(mode, on=_VIDEO_KEYS, how="left")
    if previous is not None and len(previous):
        prev = conform(previous, LOGGED_VIDEOS)
        both = videos.merge(prev, on=_VIDEO_KEYS, how="outer", suffixes=("", "_prev"))
        videos = pd.DataFrame(
            {
                "course_id": both["course_id"],
                "video_id": both["video_id"],
                # fmax: a NaN on one side loses to a number on the other
                "duration": np.fmax(
                    both["duration"].to_numpy(F64), both["duration_prev"].to_numpy(F64)
                ),
                "code": both["code"].where(both["code"].notna(), both["code_prev"]),
            }
        )
    # a stored table may still hold a zero or negative duration: that is no duration
    videos = videos.assign(duration=videos["duration"].where(videos["duration"] > 0))
    return conform(videos, LOGGED_VIDEOS)


def users_at_end_bin(duration: np.ndarray, bin_seconds: float) -> np.ndarray:
    """The timeline bin of users_at_end for each duration (SPEC §6):
    ``floor(max(duration - END_MARGIN, END_SHARE * duration) / bin_seconds)``, -1 where the
    duration is unknown (NaN)."""
    d = np.asarray(duration, dtype=F64)
    with np.errstate(invalid="ignore"):
        b = np.floor(np.fmax(d - END_MARGIN, END_SHARE * d) / bin_seconds)
    return np.where(np.isfinite(b), b, -1).astype(np.int64)


# --------------------------------------------------------------------------- helpers
def _codes(s: pd.Series | np.ndarray) -> tuple[np.ndarray, int]:
    """Dense int64 codes (a null is a value of its own) and their count."""
    codes, uniques = pd.factorize(s, use_na_sentinel=False)
    return codes.astype(np.int64, copy=False), len(uniques)


def _pair(a: np.ndarray, na: int, b: np.ndarray, nb: int) -> tuple[np.ndarray, int]:
    """Dense codes of the pairs (a, b)."""
    if na * nb < 2**62:
        return _codes(a * nb + b)
    return _codes(pd.MultiIndex.from_arrays([a, b]))


def _first_rows(codes: np.ndarray, k: int) -> np.ndarray:
    """A row index for each code 0..k-1 (all rows of a code share its key columns)."""
    rows = np.zeros(k, np.int64)
    rows[codes] = np.arange(len(codes))
    return rows


def _starts(sorted_codes: np.ndarray) -> np.ndarray:
    """Positions where a run of equal values begins in a sorted array."""
    if len(sorted_codes) == 0:
        return np.zeros(0, np.int64)
    return np.flatnonzero(np.r_[True, sorted_codes[1:] != sorted_codes[:-1]])


def _cummax_by(values: np.ndarray, sorted_groups: np.ndarray) -> np.ndarray:
    """Running maximum of ``values`` restarting at each group (groups contiguous)."""
    return pd.Series(values).groupby(sorted_groups, sort=False).cummax().to_numpy(F64)


def _prev_in_group(values: np.ndarray, sorted_groups: np.ndarray, fill: float) -> np.ndarray:
    """Each row's previous value within its group, ``fill`` for a group's first row."""
    out = np.empty(len(values), dtype=np.result_type(values, type(fill)))
    if len(values):
        out[0] = fill
        out[1:] = values[:-1]
        out[_starts(sorted_groups)] = fill
    return out


def _utc(i8: np.ndarray) -> pd.arrays.DatetimeArray:
    """int64 microseconds -> a UTC timestamp array."""
    return pd.array(i8.astype("datetime64[us]")).tz_localize("UTC")


# --------------------------------------------------------------------------- tables
class _Keys(NamedTuple):
    """Integer keys of a segments frame: video ``v`` = (course, video), view ``w`` = (video,
    user), user ``u``; ``vrow``/``wrow`` a row of each video/view, ``wv`` each view's video."""

    v: np.ndarray
    nv: int
    w: np.ndarray
    nw: int
    u: np.ndarray
    nu: int
    vrow: np.ndarray
    wrow: np.ndarray
    wv: np.ndarray


def _keys(seg: pd.DataFrame) -> _Keys:
    c, nc = _codes(seg["course_id"])
    vid, nvid = _codes(seg["video_id"])
    v, nv = _pair(c, nc, vid, nvid)
    u, nu = _codes(seg["username"])
    w, nw = _pair(v, nv, u, nu)
    vrow, wrow = _first_rows(v, nv), _first_rows(w, nw)
    return _Keys(v, nv, w, nw, u, nu, vrow, wrow, v[wrow])


def _take(seg: pd.DataFrame, rows: np.ndarray, *cols: str) -> dict[str, Any]:
    """Columns of ``seg`` at ``rows``, by name."""
    return {c: seg[c].array.take(rows) for c in cols}


def _views(seg: pd.DataFrame, k: _Keys, duration: np.ndarray) -> pd.DataFrame:
    """SPEC §6 views: segments, watched (sum of lengths), covered (union length), coverage
    against ``duration`` (per video, NaN when unknown)."""
    start, end = seg["start_offset"].to_numpy(F64), seg["end_offset"].to_numpy(F64)
    t = seg["time"].astype(pd.DatetimeTZDtype("us", "UTC")).array.asi8
    order = np.lexsort((start, k.w))
    ws, s, e, ts = k.w[order], start[order], end[order], t[order]
    # sorted by start, an interval adds what reaches past every earlier interval's end
    reach = _prev_in_group(_cummax_by(e, ws), ws, -np.inf)
    add = np.nan_to_num(np.fmax(e - np.fmax(s, reach), 0.0))
    covered = np.bincount(ws, weights=add, minlength=k.nw)
    starts = _starts(ws)
    empty = np.zeros(0, np.int64)
    dur = duration[k.wv]
    return pd.DataFrame(
        {
            **_take(seg, k.wrow, "course_id", "video_id", "username"),
            "segments": np.bincount(k.w, minlength=k.nw),
            "watched_seconds": np.bincount(k.w, weights=end - start, minlength=k.nw),
            "covered_seconds": covered,
            # NaN when the duration is unknown (or an inferred 0, with one-second bins)
            "coverage": np.minimum(covered / np.where(dur > 0, dur, np.nan), 1.0),
            "first_time": _utc(np.minimum.reduceat(ts, starts) if len(ts) else empty),
            "last_time": _utc(np.maximum.reduceat(ts, starts) if len(ts) else empty),
        }
    )


class _Timeline(NamedTuple):
    frame: pd.DataFrame  # the video_timeline rows
    duration: np.ndarray  # per video: known, else inferred, else NaN
    inferred: np.ndarray
    users_at_start: np.ndarray
    users_at_end: np.ndarray
    reached_end: np.ndarray  # per view: a binned segment reaches users_at_end's bin
    not_binned: int


def _walk_down(
    final: np.ndarray,
    unknown: np.ndarray,
    views_at: np.ndarray,
    users_at: np.ndarray,
    span: np.ndarray,
    off: np.ndarray,
) -> np.ndarray:
    """The final bin of each video: bin(duration) when known (``final`` as given); for the
    ``unknown`` ones, walk down the viewed bins from the highest and stop at the first b whose
    next higher viewed bin h has users(h) <= 5% users(b) (else keep ``final``)."""
    viewed = np.flatnonzero(views_at > 0)
    if len(viewed) <= 1:
        return final
    pos_video = np.repeat(np.arange(len(final)), span)
    b, h = viewed[:-1], viewed[1:]
    # users(h) <= 0.05 * users(b), exactly, in integers: 20 * users(h) <= users(b)
    drop = (pos_video[b] == pos_video[h]) & (users_at[h] * round(1 / DROP_OFF) <= users_at[b])
    stop = np.full(len(final), -1, np.int64)
    # walking from the top down, the walk stops at the highest such b
    np.maximum.at(stop, pos_video[b[drop]], b[drop] - off[pos_video[b[drop]]])
    return np.where(unknown & (stop >= 0), stop, final)


def _timeline(seg: pd.DataFrame, k: _Keys, vdur: np.ndarray, bs: float) -> _Timeline:
    """SPEC §6 timeline, the Insights way, and the per-video numbers that depend on it."""
    start, end = seg["start_offset"].to_numpy(F64), seg["end_offset"].to_numpy(F64)
    binned = (start >= 0) & (end <= MAX_OFFSET) & (start <= end)
    bi = np.flatnonzero(binned)
    b0 = np.floor(start[bi] / bs).astype(np.int64)
    b1 = np.floor(end[bi] / bs).astype(np.int64)
    bv, bw = k.v[bi], k.w[bi]

    # one dense run of bins per video with binned segments, laid end to end: video v owns
    # positions off[v] .. off[v] + span[v] - 1, its last one past every bin it may write
    top = np.full(k.nv, -1, np.int64)  # highest viewed bin, -1 when none
    np.maximum.at(top, bv, b1)
    has_bins = top >= 0
    max_bin = int(MAX_OFFSET // bs)
    # a known duration may reach past every view, but nothing past 36000 s is ever binned
    known_final = np.where(np.isnan(vdur), -1, np.floor(np.nan_to_num(vdur) / bs))
    known_final = np.minimum(known_final, max_bin).astype(np.int64)
    span = np.where(has_bins, np.maximum(top, known_final) + 2, 0)
    off = np.zeros(k.nv + 1, np.int64)
    np.cumsum(span, out=off[1:])
    total = int(off[-1])
    pad = total + 1  # a spare slot past the last video, always 0, for videos without bins

    def count(lo: np.ndarray, hi: np.ndarray, video: np.ndarray) -> np.ndarray:
        """Per position, how many of the ranges lo..hi (inclusive) of ``video`` cover it."""
        at = off[video]
        diff = np.bincount(at + lo, minlength=pad) - np.bincount(at + hi + 1, minlength=pad)
        return np.cumsum(diff)

    # a segment counts one view in every bin from bin(start) to bin(end)
    views_at = count(b0, b1, bv)
    # ... and its user once in each: sorted by (view, b0), a segment adds only the bins past
    # every earlier segment of that viewer (running max of b1 per view, via an offset key)
    o = np.lexsort((b0, bw))
    ow, ob0, ob1, ov = bw[o], b0[o], b1[o], bv[o]
    kk = max_bin + 2
    seen = np.maximum.accumulate(ow * kk + ob1) - ow * kk if len(o) else ob1
    lo = np.maximum(ob0, _prev_in_group(seen, ow, -1) + 1)
    new = lo <= ob1
    users_at = count(lo[new], ob1[new], ov[new])

    final = np.where(np.isnan(vdur), top, known_final)
    final = _walk_down(final, np.isnan(vdur), views_at, users_at, span, off)
    inferred = np.isnan(vdur) & has_bins
    duration = np.where(inferred, (final + 1) * bs - 1, vdur)

    # users_at_start = users(0); users_at_end = users(end_bin)
    end_bin = users_at_end_bin(duration, bs)
    at_end = has_bins & (end_bin >= 0) & (end_bin < span)
    users_at_start = users_at[np.where(has_bins, off[:-1], total)]
    users_at_end = users_at[np.where(at_end, off[:-1] + end_bin, total)]
    eb = end_bin[bv]
    reached_end = np.bincount(bw[(b0 <= eb) & (eb <= b1)], minlength=k.nw) > 0

    # rows 0..final of each video with binned segments; bins after the final bin are cut
    rows = np.where(has_bins, final + 1, 0)
    video = np.repeat(np.arange(k.nv), rows)
    bin_ = np.arange(len(video)) - np.repeat(np.cumsum(rows) - rows, rows)
    pos = off[video] + bin_
    frame = pd.DataFrame(
        {
            **_take(seg, k.vrow[video], "course_id", "video_id"),
            "bin": bin_,
            "start_seconds": bin_ * bs,
            "end_seconds": (bin_ + 1) * bs,
            "num_users": users_at[pos],
            "num_views": views_at[pos],
        }
    )
    not_binned = int(len(seg) - len(bi))
    return _Timeline(
        frame, duration, inferred, users_at_start, users_at_end, reached_end, not_binned
    )


def _daily(seg: pd.DataFrame, k: _Keys) -> pd.DataFrame:
    """SPEC §6 video_daily: per (course, video, date) viewers, segments, watched seconds."""
    date, ndate = _codes(seg["date"])
    d, nd = _pair(k.v, k.nv, date, ndate)
    du, ndu = _pair(d, nd, k.u, k.nu)
    length = seg["end_offset"].to_numpy(F64) - seg["start_offset"].to_numpy(F64)
    return pd.DataFrame(
        {
            **_take(seg, _first_rows(d, nd), "course_id", "video_id", "date"),
            "viewers": np.bincount(d[_first_rows(du, ndu)], minlength=nd),
            "segments": np.bincount(d, minlength=nd),
            "watched_seconds": np.bincount(d, weights=length, minlength=nd),
        }
    )


def video_tables(
    segments: pd.DataFrame, videos: pd.DataFrame, bin_seconds: int = 5
) -> dict[str, Any]:
    """views, video_stats, video_timeline and video_daily (SPEC §6) of the videos in
    ``segments``, which must hold every segment of each of its videos; ``videos`` gives the
    known durations (it may list more videos, which are ignored here: see unwatched_stats).

    Returns ``{"views", "video_stats", "video_timeline", "video_daily": frame, "counters":
    {"not_binned": n}}``, ``not_binned`` counting segments with an offset outside
    [0, 36000] s (or end < start), which count in views and daily but not in the timeline.
    """
    if bin_seconds <= 0:
        raise ValueError(f"bin_seconds must be positive, got {bin_seconds}")
    seg = segments.reset_index(drop=True)
    k = _keys(seg)
    # known duration of each video: positive, else NaN
    known = seg[_VIDEO_KEYS].iloc[k.vrow].reset_index(drop=True)
    vd = videos.groupby(_VIDEO_KEYS, sort=False, observed=True)["duration"].max().reset_index()
    vdur = known.merge(vd, on=_VIDEO_KEYS, how="left")["duration"].to_numpy(F64)
    vdur = np.where(vdur > 0, vdur, np.nan)

    tl = _timeline(seg, k, vdur, float(bin_seconds))
    # coverage against the duration video_stats reports: known, else inferred
    views = _views(seg, k, tl.duration)
    coverage = views["coverage"].to_numpy(F64)
    # completed: coverage >= 0.95, or reached users_at_end's bin
    completed = (coverage >= COMPLETE_COVERAGE) | tl.reached_end
    views["duration_inferred"] = tl.inferred[k.wv]
    views["completed"] = completed
    has_cov = ~np.isnan(coverage)
    n_cov = np.bincount(k.wv[has_cov], minlength=k.nv)
    sum_cov = np.bincount(k.wv[has_cov], weights=coverage[has_cov], minlength=k.nv)
    stats = pd.DataFrame(
        {
            **_take(seg, k.vrow, "course_id", "video_id"),
            "duration": tl.duration,
            "duration_inferred": tl.inferred,
            "viewers": np.bincount(k.wv, minlength=k.nv),
            "segments": np.bincount(k.v, minlength=k.nv),
            "watched_seconds": np.bincount(
                k.wv, weights=views["watched_seconds"].to_numpy(F64), minlength=k.nv
            ),
            "mean_coverage": np.where(n_cov > 0, sum_cov / np.maximum(n_cov, 1), np.nan),
            "completed_viewers": np.bincount(k.wv, weights=completed, minlength=k.nv),
            "users_at_start": tl.users_at_start,
            "users_at_end": tl.users_at_end,
        }
    )
    return {
        "views": conform(views, VIEWS),
        "video_stats": conform(outline.attach_labels(stats, videos), VIDEO_STATS),
        "video_timeline": conform(tl.frame, VIDEO_TIMELINE),
        "video_daily": conform(_daily(seg, k), VIDEO_DAILY),
        "counters": {"not_binned": tl.not_binned},
    }


def unwatched_stats(videos: pd.DataFrame, stats: pd.DataFrame) -> pd.DataFrame:
    """``schema.VIDEO_STATS`` rows for the videos of ``videos`` without a row in ``stats``:
    nobody watched them (zero counts, mean_coverage NaN), duration as stored, not inferred."""
    have = stats[_VIDEO_KEYS].drop_duplicates().assign(_have=True)
    left = videos.groupby(_VIDEO_KEYS, sort=False, observed=True)["duration"].max().reset_index()
    left = left.merge(have, on=_VIDEO_KEYS, how="left")
    left = left.loc[left["_have"].isna()].reset_index(drop=True)
    n = len(left)
    zeros = np.zeros(n, np.int64)
    out = pd.DataFrame(
        {
            "course_id": left["course_id"],
            "video_id": left["video_id"],
            "duration": left["duration"].where(left["duration"] > 0),
            "duration_inferred": np.zeros(n, bool),
            "viewers": zeros,
            "segments": zeros,
            "watched_seconds": np.zeros(n, F64),
            "mean_coverage": np.full(n, np.nan),
            "completed_viewers": zeros,
            "users_at_start": zeros,
            "users_at_end": zeros,
        }
    )
    return conform(outline.attach_labels(out, videos), VIDEO_STATS)


# --------------------------------------------------------------------------- courses
#: The ``videos`` column that places a video in its course's outline (course structure).
OUTLINE_POSITION = "position"


def course_stats(views: pd.DataFrame, videos: pd.DataFrame) -> pd.DataFrame:
    """``schema.COURSE_STATS`` for every course of ``views`` or ``videos``; ``views`` must
    hold every view of each of its courses.

    ``videos_in_outline`` counts the course's videos with a non-null ``position`` column
    (set from a course structure); it is null when ``videos`` has no such column or none
    of the course's videos has a position.
    """
    v = schema.canonical(views, "views")  # float sums in one order however views came
    g = v.groupby("course_id", sort=False, observed=True)
    done = v.loc[v["completed"]].groupby("course_id", sort=False, observed=True)
    per_course = pd.DataFrame(
        {
            "viewers": g["username"].nunique(),
            "videos_watched": g["video_id"].nunique(),
            "segments": g["segments"].sum(),
            "watched_seconds": g["watched_seconds"].sum(),
            "completed_viewers": done["username"].nunique(),
            "completions": g["completed"].sum(),
            "median_coverage": g["coverage"].median(),
        }
    )
    vg = videos.groupby("course_id", sort=False, observed=True)
    listed = pd.DataFrame({"videos": vg["video_id"].nunique()})
    if OUTLINE_POSITION in videos.columns:
        placed = vg[OUTLINE_POSITION].count()
        listed["videos_in_outline"] = placed.where(placed > 0).astype(schema.INT)
    out = listed.join(per_course, how="outer")
    # a course nobody watched: zero counts and seconds, median_coverage null
    zero = [c for c in out.columns if c not in ("videos_in_outline", "median_coverage")]
    out[zero] = out[zero].fillna(0)
    if "videos_in_outline" not in out:
        out["videos_in_outline"] = pd.array([pd.NA] * len(out), dtype=schema.INT)
    out = out.rename_axis("course_id").reset_index()
    return conform(out, schema.COURSE_STATS)
