"""Per-video tables (SPEC §6): views, timeline, stats, daily, videos, unwatched videos.

Expected values are worked out by hand from SPEC §6 in each test, or by the plain-loop
reference at the end of this file, which shares no code with ``dask_pipeline.metrics``.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import defaultdict

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dask_pipeline import schema
from dask_pipeline.metrics import (
    combine_videos,
    course_stats,
    unwatched_stats,
    video_partials,
    video_tables,
)

T0 = pd.Timestamp("2024-03-01T12:00:00Z")
NAN = float("nan")
COURSE = "course-v1:O+C+R"


def seg(user, start, end, t=0, video="v1", course=COURSE, date="2024-03-01") -> dict:
    return {
        "course_id": course,
        "video_id": video,
        "username": user,
        "time": T0 + pd.Timedelta(seconds=t),
        "start_offset": float(start),
        "end_offset": float(end),
        "date": date,
    }


def segments(rows: list[dict]) -> pd.DataFrame:
    if not rows:
        return schema.empty(schema.SEGMENTS)
    return schema.conform(pd.DataFrame(rows), schema.SEGMENTS)


def video(video_id, duration, code="html5", course=COURSE) -> dict:
    return {"course_id": course, "video_id": video_id, "duration": duration, "code": code}


def videos(*rows: tuple) -> pd.DataFrame:
    """``video(...)`` argument tuples as a VIDEOS frame."""
    if not rows:
        return schema.empty(schema.LOGGED_VIDEOS)
    return schema.conform(pd.DataFrame([video(*r) for r in rows]), schema.LOGGED_VIDEOS)


def tables(rows, vids, bin_seconds=5):
    out = video_tables(segments(rows), vids, bin_seconds)
    return {k: (v if k == "counters" else schema.canonical(v, k)) for k, v in out.items()}


def one(df: pd.DataFrame, **where) -> pd.Series:
    """The single row of ``df`` matching ``where``."""
    m = np.ones(len(df), bool)
    for k, v in where.items():
        m &= (df[k] == v).to_numpy()
    assert m.sum() == 1, (where, m.sum())
    return df.loc[m].iloc[0]


def timeline(out, video="v1") -> list[tuple[int, int, int]]:
    """(bin, num_users, num_views) rows of one video."""
    tl = out["video_timeline"]
    tl = tl[tl["video_id"] == video].sort_values("bin")
    return list(zip(tl["bin"], tl["num_users"], tl["num_views"], strict=True))


# --------------------------------------------------------------------------- views
def test_views_union_watched_and_times():
    rows = [seg("a", 0, 10, t=3), seg("a", 5, 15, t=1), seg("a", 20, 25, t=9), seg("b", 2, 4)]
    out = tables(rows, videos(("v1", 100.0)))
    a = one(out["views"], username="a")
    assert a["segments"] == 3
    assert a["watched_seconds"] == 25.0  # 10 + 10 + 5
    assert a["covered_seconds"] == 20.0  # [0, 15] and [20, 25]
    assert a["coverage"] == pytest.approx(0.2)
    assert a["first_time"] == T0 + pd.Timedelta(seconds=1)
    assert a["last_time"] == T0 + pd.Timedelta(seconds=9)
    b = one(out["views"], username="b")
    assert (b["segments"], b["covered_seconds"], b["coverage"]) == (1, 2.0, pytest.approx(0.02))
    assert dict(out["views"].dtypes) == schema.VIEWS


def test_views_union_nested_and_touching_intervals():
    rows = [seg("a", 0, 100), seg("a", 10, 20), seg("a", 15, 30), seg("a", 100, 110)]
    rows += [seg("a", 105, 107)]
    v = one(tables(rows, videos(("v1", 1000.0)))["views"], username="a")
    assert v["covered_seconds"] == 110.0
    assert v["watched_seconds"] == 100 + 10 + 15 + 10 + 2


def test_coverage_clipped_to_one():
    out = tables([seg("a", 0, 130)], videos(("v1", 100.0)))
    assert one(out["views"], username="a")["coverage"] == 1.0
    assert one(out["video_stats"], video_id="v1")["mean_coverage"] == 1.0


@pytest.mark.parametrize(
    "vids",
    [videos(("v1", NAN)), videos(("other", 50.0)), videos()],
    ids=["duration NaN", "video not listed", "no videos"],
)
def test_coverage_against_inferred_duration_when_unknown(vids):
    # B = 5: bins 0..2 viewed, users 2, 1, 1: no drop-off, final bin 2, duration 3 * 5 - 1
    out = tables([seg("a", 0, 10), seg("b", 0, 3)], vids)
    s = one(out["video_stats"], video_id="v1")
    assert (s["duration"], s["duration_inferred"]) == (14.0, True)
    views = out["views"]
    assert list(views["coverage"]) == [pytest.approx(10 / 14), pytest.approx(3 / 14)]
    assert views["duration_inferred"].all()
    assert s["mean_coverage"] == pytest.approx(13 / 28)


def test_coverage_known_duration_is_not_inferred():
    views = tables([seg("a", 0, 10)], videos(("v1", 40.0)))["views"]
    assert one(views, username="a")["coverage"] == 0.25
    assert not views["duration_inferred"].any()


def test_coverage_null_without_any_duration():
    # nothing binned and no known duration: no duration to infer either
    out = tables([seg("a", -5, 3), seg("b", 40000, 40010)], videos(("v1", NAN)))
    assert out["views"]["coverage"].isna().all()
    assert not out["views"]["duration_inferred"].any()
    assert not out["views"]["completed"].any()
    assert math.isnan(one(out["video_stats"], video_id="v1")["mean_coverage"])


def test_coverage_null_when_inferred_duration_is_zero():
    # one-second bins and every view in bin 0: inferred duration (0 + 1) * 1 - 1 = 0
    out = tables([seg("a", 0, 0.5)], videos(), bin_seconds=1)
    s = one(out["video_stats"], video_id="v1")
    assert (s["duration"], s["duration_inferred"]) == (0.0, True)
    assert out["views"]["coverage"].isna().all()


def test_mean_coverage_averages_viewers():
    out = tables([seg("a", 0, 50), seg("b", 0, 10), seg("b", 60, 70)], videos(("v1", 100.0)))
    assert one(out["video_stats"], video_id="v1")["mean_coverage"] == pytest.approx(0.35)


# --------------------------------------------------------------------------- timeline
def test_timeline_bins_views_and_users():
    # B = 5: [3, 12] covers bins 0, 1, 2; [11, 14] bin 2; same user counted once per bin
    rows = [seg("a", 3, 12), seg("a", 11, 14), seg("b", 26, 27)]
    out = tables(rows, videos(("v1", 29.0)))
    assert timeline(out) == [(0, 1, 1), (1, 1, 1), (2, 1, 2), (3, 0, 0), (4, 0, 0), (5, 1, 1)]
    tl = out["video_timeline"]
    assert list(tl["start_seconds"]) == [0, 5, 10, 15, 20, 25]
    assert list(tl["end_seconds"]) == [5, 10, 15, 20, 25, 30]
    assert dict(tl.dtypes) == schema.VIDEO_TIMELINE


def test_timeline_bin_size():
    out = tables([seg("a", 0, 25)], videos(("v1", 39.0)), bin_seconds=10)
    assert timeline(out) == [(0, 1, 1), (1, 1, 1), (2, 1, 1), (3, 0, 0)]
    assert list(out["video_timeline"]["end_seconds"]) == [10, 20, 30, 40]


def test_timeline_end_on_bin_edge_counts_that_bin():
    out = tables([seg("a", 0, 10)], videos(("v1", 14.0)))
    assert timeline(out) == [(0, 1, 1), (1, 1, 1), (2, 1, 1)]


def test_known_duration_cuts_later_bins_and_sets_users_at_start_and_end():
    # duration 20: final bin 4; end bin = bin(max(20 - 30, 19)) = 3
    rows = [seg("a", 0, 40), seg("b", 0, 16), seg("c", 7, 9), seg("d", 30, 35)]
    out = tables(rows, videos(("v1", 20.0)))
    assert timeline(out) == [(0, 2, 2), (1, 3, 3), (2, 2, 2), (3, 2, 2), (4, 1, 1)]
    s = one(out["video_stats"], video_id="v1")
    assert (s["duration"], s["duration_inferred"]) == (20.0, False)
    assert (s["users_at_start"], s["users_at_end"]) == (2, 2)


def test_users_at_end_uses_duration_minus_30_for_long_videos():
    # duration 1000: end bin = bin(max(970, 950)) = 194
    rows = [seg("a", 0, 975), seg("b", 960, 972), seg("c", 940, 960)]
    s = one(tables(rows, videos(("v1", 1000.0)))["video_stats"], video_id="v1")
    assert s["users_at_end"] == 2
    assert s["users_at_start"] == 1


def test_duration_inferred_at_five_percent_drop_off():
    # 20 users watch bins 0..4, one user goes on to bin 9: users(5) = 1 <= 0.05 * 21
    rows = [seg(f"u{i}", 0, 24) for i in range(20)] + [seg("late", 0, 49)]
    out = tables(rows, videos(("v1", NAN)))
    s = one(out["video_stats"], video_id="v1")
    assert s["duration_inferred"]
    assert s["duration"] == (4 + 1) * 5 - 1
    assert [b for b, _, _ in timeline(out)] == [0, 1, 2, 3, 4]  # bins after the final cut
    # duration 24: end bin = bin(max(-6, 22.8)) = 4
    assert (s["users_at_start"], s["users_at_end"]) == (21, 21)


def test_duration_inference_without_drop_off_takes_highest_viewed_bin():
    # 10 users on bins 0..4, one to bin 9: 1 > 0.05 * 11, no stop anywhere
    rows = [seg(f"u{i}", 0, 24) for i in range(10)] + [seg("late", 0, 49)]
    out = tables(rows, videos(("v1", NAN)))
    s = one(out["video_stats"], video_id="v1")
    assert s["duration"] == 10 * 5 - 1
    assert len(timeline(out)) == 10
    assert s["users_at_end"] == 1  # bin(max(19, 46.55)) = 9


def test_duration_inference_walks_down_from_the_top_and_skips_unviewed_bins():
    # bins 0..1: 40 users; bin 2: 2 users (2 <= 0.05 * 40, a lower drop); bin 10: 1 user
    # (1 <= 0.05 * 2 is false). Walking down from 10: at b = 2 (h = 10) no; at b = 1 (h = 2)
    # 2 <= 2.0 yes: final = 1.
    rows = [seg(f"u{i}", 0, 9) for i in range(38)]
    rows += [seg("x", 0, 14), seg("y", 0, 14), seg("z", 50, 52)]
    out = tables(rows, videos(("v1", NAN)))
    s = one(out["video_stats"], video_id="v1")
    assert s["duration"] == 2 * 5 - 1
    # a gap in viewed bins: h is the next *viewed* bin above b
    rows = [seg(f"u{i}", 0, 9) for i in range(20)] + [seg("z", 50, 52)]
    s = one(tables(rows, videos(("v1", NAN)))["video_stats"], video_id="v1")
    assert s["duration"] == 2 * 5 - 1


def test_drop_off_of_exactly_five_percent_stops():
    rows = [seg(f"u{i}", 0, 4) for i in range(20)] + [seg("z", 5, 6)]
    # users(0) = 20, users(1) = 1 = 0.05 * 20: the walk stops at 0
    s = one(tables(rows, videos(("v1", NAN)))["video_stats"], video_id="v1")
    assert s["duration"] == 4.0
    rows = [seg(f"u{i}", 0, 4) for i in range(19)] + [seg("z", 5, 6)]
    s = one(tables(rows, videos(("v1", NAN)))["video_stats"], video_id="v1")
    assert s["duration"] == 9.0


def test_segments_outside_offset_range_are_not_binned():
    rows = [seg("a", -1, 4), seg("b", 35990, 36001), seg("c", 0, 6), seg("d", 36000, 36000)]
    out = tables(rows, videos(("v1", 10.0)))
    assert out["counters"] == {"not_binned": 2}
    assert timeline(out) == [(0, 1, 1), (1, 1, 1), (2, 0, 0)]
    s = one(out["video_stats"], video_id="v1")
    assert (s["viewers"], s["segments"]) == (4, 4)  # still counted outside the timeline
    assert len(out["views"]) == 4


def test_video_with_no_binned_segment():
    out = tables([seg("a", -5, 3), seg("a", 40000, 40010, video="v2")], videos(("v1", 60.0)))
    assert out["counters"] == {"not_binned": 2}
    assert len(out["video_timeline"]) == 0
    s1 = one(out["video_stats"], video_id="v1")
    assert (s1["duration"], s1["duration_inferred"]) == (60.0, False)
    assert (s1["users_at_start"], s1["users_at_end"]) == (0, 0)
    s2 = one(out["video_stats"], video_id="v2")
    assert math.isnan(s2["duration"]) and not s2["duration_inferred"]
    assert (s2["users_at_start"], s2["users_at_end"], s2["completed_viewers"]) == (0, 0, 0)


def test_known_duration_past_offset_range_stops_timeline_at_36000():
    # no offset past 36000 s is ever binned, so the dense timeline stops at bin(36000)
    out = tables([seg("a", 35990, 36000)], videos(("v1", 40000.0)), bin_seconds=1000)
    assert timeline(out) == [
        (b, int(b == 35 or b == 36), int(b == 35 or b == 36)) for b in range(37)
    ]
    s = one(out["video_stats"], video_id="v1")
    assert (s["duration"], s["users_at_end"]) == (40000.0, 0)  # end bin 39 is past every view


# --------------------------------------------------------------------------- completion
def test_completed_by_coverage_or_by_reaching_the_end_bin():
    # duration 100: end bin = bin(max(70, 95)) = 19
    rows = [
        seg("cover", 0, 96),  # coverage 0.96, ends in bin 19 too
        seg("cover2", 0, 48),
        seg("cover2", 48, 95.5),  # coverage 0.955 via the union, ends in bin 19
        seg("skipper", 94, 97),  # coverage 0.03 but reaches bin 19
        seg("through", 90, 100),  # spans bin 19
        seg("short", 0, 90),  # coverage 0.9, stops before bin 19
        seg("past", 96, 99.9),  # starts in bin 19
        seg("after", 100, 101),  # bin 20 only: past the end bin
    ]
    s = one(tables(rows, videos(("v1", 100.0)))["video_stats"], video_id="v1")
    # skipper, through and past by the end bin alone; short and after neither way
    assert s["completed_viewers"] == 5
    assert s["users_at_end"] == 5


def test_completed_by_coverage_without_reaching_end_bin():
    # duration 1000, end bin = bin(970) = 194; coverage 0.96 from [0, 960]
    rows = [seg("a", 0, 960)]
    s = one(tables(rows, videos(("v1", 1000.0)))["video_stats"], video_id="v1")
    assert (s["users_at_end"], s["completed_viewers"]) == (0, 1)


def test_completed_with_inferred_duration():
    rows = [seg(f"u{i}", 0, 24) for i in range(20)] + [seg("early", 0, 9)]
    out = tables(rows, videos(("v1", NAN)))
    s = one(out["video_stats"], video_id="v1")
    assert s["duration_inferred"] and s["duration"] == 24.0
    assert s["completed_viewers"] == 20
    assert not one(out["views"], username="early")["completed"]


def test_completed_by_coverage_of_the_inferred_duration():
    # 20 viewers watch [0, 999]: no drop-off, final bin 199, inferred duration 999 s, end bin
    # bin(969) = 193. "a" covers [0, 964] (0.965) and stops in bin 192: completed by coverage
    rows = [seg(f"u{i}", 0, 999) for i in range(20)] + [seg("a", 0, 964)]
    out = tables(rows, videos(("v1", NAN)))
    s = one(out["video_stats"], video_id="v1")
    assert (s["duration"], s["duration_inferred"], s["users_at_end"]) == (999.0, True, 20)
    a = one(out["views"], username="a")
    assert a["coverage"] == pytest.approx(964 / 999)
    assert a["completed"] and a["duration_inferred"]
    assert s["completed_viewers"] == 21


def test_views_completed_is_what_video_stats_counts():
    rows = [seg("a", 0, 96), seg("b", 94, 97), seg("c", 0, 50), seg("d", 0, 5, video="v2")]
    out = tables(rows, videos(("v1", 100.0), ("v2", 100.0)))
    views = out["views"]
    assert dict(zip(views["username"], views["completed"], strict=True)) == {
        "a": True,  # coverage 0.96
        "b": True,  # reaches the end bin 19
        "c": False,
        "d": False,
    }
    per_video = views.groupby("video_id")["completed"].sum()
    stats = out["video_stats"].set_index("video_id")["completed_viewers"]
    assert per_video.to_dict() == stats.to_dict() == {"v1": 2, "v2": 0}


# --------------------------------------------------------------------------- stats and daily
def test_video_stats_counts():
    rows = [seg("a", 0, 10), seg("a", 20, 25), seg("b", 0, 1), seg("c", 5, 6, video="v2")]
    out = tables(rows, videos(("v1", 100.0), ("v2", 10.0), ("v3", 7.0)))
    st_ = out["video_stats"]
    assert list(st_["video_id"]) == ["v1", "v2"]  # only videos with segments
    s = one(st_, video_id="v1")
    assert (s["viewers"], s["segments"], s["watched_seconds"]) == (2, 3, 16.0)
    assert dict(st_.dtypes) == schema.VIDEO_STATS


def test_same_video_id_in_two_courses_is_two_videos():
    rows = [seg("a", 0, 10, course="c1"), seg("a", 0, 5, course="c2")]
    vids = pd.concat([videos(("v1", 10.0, "x", "c1")), videos(("v1", 100.0, "x", "c2"))])
    out = tables(rows, vids)
    assert list(out["views"]["coverage"]) == [1.0, 0.05]
    assert len(out["video_stats"]) == 2


def test_video_daily():
    rows = [
        seg("a", 0, 10, date="2024-03-01"),
        seg("a", 10, 12, date="2024-03-01"),
        seg("b", 0, 4, date="2024-03-01"),
        seg("a", 0, 1, date="2024-03-02"),
        seg("a", 0, 1, date="2024-03-02", video="v2"),
    ]
    daily = tables(rows, videos())["video_daily"]
    assert dict(daily.dtypes) == schema.VIDEO_DAILY
    got = [tuple(r) for r in daily[["video_id", "date", "viewers", "segments"]].itertuples(False)]
    d1, d2 = dt.date(2024, 3, 1), dt.date(2024, 3, 2)
    assert got == [("v1", d1, 2, 3), ("v1", d2, 1, 1), ("v2", d2, 1, 1)]
    assert list(daily["watched_seconds"]) == [16.0, 1.0, 1.0]


def test_empty_segments():
    out = video_tables(segments([]), videos(("v1", 10.0)))
    for name in ("views", "video_stats", "video_timeline", "video_daily"):
        assert len(out[name]) == 0
        assert dict(out[name].dtypes) == schema.TABLES[name]
    assert out["counters"] == {"not_binned": 0}


def test_bad_bin_size():
    with pytest.raises(ValueError):
        video_tables(segments([]), videos(), bin_seconds=0)


# --------------------------------------------------------------------------- videos
def events(*rows: tuple) -> pd.DataFrame:
    """(video_id, code, duration) tuples as an EVENTS frame."""
    recs = [
        {
            "course_id": COURSE,
            "username": "u",
            "time": T0,
            "event_type": "load_video",
            "video_id": vid,
            "code": code,
            "duration": dur,
            "current_time": NAN,
            "old_time": NAN,
            "new_time": NAN,
            "old_speed": NAN,
            "new_speed": NAN,
            "file": 0,
            "line": i,
        }
        for i, (vid, code, dur) in enumerate(rows)
    ]
    return schema.conform(pd.DataFrame(recs), schema.EVENTS)


def test_video_partials():
    p = video_partials(events(("v1", "yt", 10.0), ("v1", "yt", 0.0), ("v1", None, -3.0)))
    p = p.sort_values("code", na_position="last").reset_index(drop=True)
    assert list(p["n"]) == [2, 1]
    assert p["duration"].iloc[0] == 10.0 and math.isnan(p["duration"].iloc[1])


def test_combine_videos_across_partitions():
    part1 = video_partials(
        events(("v1", "yt", 10.0), ("v1", "html5", 0.0), ("v2", "b", NAN), ("v2", "a", NAN))
    )
    part2 = video_partials(
        events(("v1", "html5", 12.5), ("v1", "html5", 11.0), ("v3", None, 4.0), ("v1", "yt", 1))
    )
    v = combine_videos(pd.concat([part1, part2])).sort_values("video_id", ignore_index=True)
    assert dict(v.dtypes) == schema.LOGGED_VIDEOS
    assert list(v["video_id"]) == ["v1", "v2", "v3"]
    assert v["duration"].iloc[0] == 12.5  # largest positive duration
    assert math.isnan(v["duration"].iloc[1])  # none positive
    assert v["duration"].iloc[2] == 4.0
    assert v["code"].iloc[0] == "html5"  # 3 html5 against 2 yt
    assert v["code"].iloc[1] == "a"  # tie: smallest string
    assert pd.isna(v["code"].iloc[2])  # no code seen


def test_combine_videos_empty():
    empty = video_partials(schema.empty(schema.EVENTS))
    assert len(combine_videos(empty)) == 0
    v = combine_videos(empty, videos(("v1", 0.0, "x")))
    assert list(v["video_id"]) == ["v1"] and math.isnan(v["duration"].iloc[0])


def test_combine_videos_merges_previous():
    new = video_partials(events(("v1", "yt", 10.0), ("v2", None, 5.0), ("v3", "x", NAN)))
    previous = videos(("v1", 20.0, "old"), ("v2", 3.0, "kept"), ("v3", 8.0, "old3"), ("v4", NAN))
    v = combine_videos(new, previous).sort_values("video_id", ignore_index=True)
    got = {r.video_id: (r.duration, r.code) for r in v.itertuples()}
    assert got["v1"] == (20.0, "yt")  # largest duration wins; the code seen now wins
    assert got["v2"] == (5.0, "kept")  # no code now: the previous one stays
    assert got["v3"] == (8.0, "x")
    assert math.isnan(got["v4"][0]) and got["v4"][1] == "html5"  # only in previous
    assert len(v) == 4


def test_unwatched_stats():
    vids = videos(("v1", 100.0), ("v2", NAN), ("v3", 7.0))
    stats = tables([seg("a", 0, 10)], vids)["video_stats"]
    un = schema.canonical(unwatched_stats(vids, stats), "video_stats")
    assert dict(un.dtypes) == schema.VIDEO_STATS
    assert list(un["video_id"]) == ["v2", "v3"]
    assert list(un["viewers"]) == [0, 0] and list(un["segments"]) == [0, 0]
    assert list(un["users_at_start"]) == [0, 0] and list(un["completed_viewers"]) == [0, 0]
    assert math.isnan(un["duration"].iloc[0]) and un["duration"].iloc[1] == 7.0
    assert not un["duration_inferred"].any()
    assert un["mean_coverage"].isna().all()
    assert (un["watched_seconds"] == 0).all()


# --------------------------------------------------------------------------- splitting
def random_segments(rng, n, n_videos=5, n_users=8):
    rows = []
    for _ in range(n):
        s = float(rng.integers(-20, 400)) / 4
        rows.append(
            seg(
                f"u{rng.integers(0, n_users)}",
                s,
                s + float(rng.integers(0, 200)) / 4,
                t=int(rng.integers(0, 3 * 86400)),
                video=f"v{rng.integers(0, n_videos)}",
                course=f"c{rng.integers(0, 2)}",
                date=f"2024-03-0{rng.integers(1, 4)}",
            )
        )
    return rows


def test_split_by_video_equals_one_call():
    rng = np.random.default_rng(3)
    rows = random_segments(rng, 600)
    vids = pd.concat(
        [
            videos((f"v{i}", d, "x", c))
            for i, d in enumerate([NAN, 50.0, 120.0, NAN, 0.5])
            for c in ("c0", "c1")
        ]
    )
    whole = video_tables(segments(rows), vids)
    a = [r for r in rows if r["video_id"] in ("v0", "v2")]
    b = [r for r in rows if r["video_id"] not in ("v0", "v2")]
    parts = [video_tables(segments(x), vids) for x in (b, a)]
    for name in ("views", "video_stats", "video_timeline", "video_daily"):
        joined = pd.concat([p[name] for p in parts])
        pd.testing.assert_frame_equal(
            schema.canonical(joined, name), schema.canonical(whole[name], name), check_exact=True
        )
    assert sum(p["counters"]["not_binned"] for p in parts) == whole["counters"]["not_binned"] > 0


# --------------------------------------------------------------------------- plain-loop reference
def reference(rows: list[dict], durations: dict[str, float], B: int) -> dict:
    """SPEC §6 per video with plain loops: timeline rows and the stats that depend on them."""
    out = {}
    by_video = defaultdict(list)
    for r in rows:
        by_video[r["video_id"]].append(r)
    for vid, rs in by_video.items():
        known = durations.get(vid, NAN)
        known = known if known > 0 else NAN
        users, views = defaultdict(set), defaultdict(int)
        for r in rs:
            if (
                0 <= r["start_offset"]
                and r["end_offset"] <= 36000
                and r["start_offset"] <= r["end_offset"]
            ):
                for b in range(
                    math.floor(r["start_offset"] / B), math.floor(r["end_offset"] / B) + 1
                ):
                    users[b].add(r["username"])
                    views[b] += 1
        viewed = sorted(views)
        inferred = False
        if not math.isnan(known):
            final = math.floor(known / B)
            duration = known
        elif viewed:
            final = viewed[-1]
            for i in range(len(viewed) - 2, -1, -1):
                b, h = viewed[i], viewed[i + 1]
                if len(users[h]) <= 0.05 * len(users[b]):
                    final = b
                    break
            duration, inferred = (final + 1) * B - 1, True
        else:
            final, duration = -1, NAN
        end_bin = math.floor(max(duration - 30, 0.95 * duration) / B) if viewed else None
        covered = {}
        for u in {r["username"] for r in rs}:
            merged = []
            for s, e in sorted(
                (r["start_offset"], r["end_offset"]) for r in rs if r["username"] == u
            ):
                if merged and s <= merged[-1][1]:
                    merged[-1][1] = max(merged[-1][1], e)
                else:
                    merged.append([s, e])
            covered[u] = sum(e - s for s, e in merged)
        # coverage against the duration the stats report: known, else inferred
        coverage, done = {}, {}
        for u, cov in covered.items():
            coverage[u] = min(cov / duration, 1.0) if duration > 0 else NAN
            done[u] = coverage[u] >= 0.95 or bool(viewed and u in users[end_bin])
        completed = sum(done.values())
        out[vid] = {
            "timeline": [(b, len(users[b]), views[b]) for b in range(final + 1)] if viewed else [],
            "duration": duration,
            "duration_inferred": inferred,
            "users_at_start": len(users[0]) if viewed else 0,
            "users_at_end": len(users[end_bin]) if viewed else 0,
            "completed_viewers": completed,
            "covered": covered,
            "coverage": coverage,
            "completed": done,
        }
    return out


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["a", "b", "c", "d"]),
            st.sampled_from(["v1", "v2", "v3"]),
            st.integers(-4, 160),
            st.integers(0, 80),
        ),
        min_size=1,
        max_size=40,
    ),
    st.sampled_from([NAN, 0.0, 12.0, 37.5, 200.0]),
    st.sampled_from([NAN, 30.0]),
    st.sampled_from([1, 5, 7]),
)
def test_tables_match_plain_loop(recs, d1, d2, B):
    rows = [seg(u, s / 4, (s + n) / 4, video=v) for u, v, s, n in recs]
    durations = {"v1": d1, "v2": d2}
    vids = videos(("v1", d1), ("v2", d2))
    got = video_tables(segments(rows), vids, B)  # not canonical: timeline() sorts its rows
    want = reference(rows, durations, B)
    assert sorted(got["video_stats"]["video_id"]) == sorted(want)
    for vid, w in want.items():
        assert timeline(got, vid) == w["timeline"]
        s = one(got["video_stats"], video_id=vid)
        if math.isnan(w["duration"]):
            assert math.isnan(s["duration"])
        else:
            assert s["duration"] == w["duration"]
        assert s["duration_inferred"] == w["duration_inferred"]
        assert s["users_at_start"] == w["users_at_start"]
        assert s["users_at_end"] == w["users_at_end"]
        assert s["completed_viewers"] == w["completed_viewers"]
        views = got["views"][got["views"]["video_id"] == vid]
        assert dict(zip(views["username"], views["covered_seconds"], strict=True)) == pytest.approx(
            w["covered"]
        )
        got_cov = dict(zip(views["username"], views["coverage"], strict=True))
        assert got_cov == pytest.approx(w["coverage"], nan_ok=True)
        assert dict(zip(views["username"], views["completed"], strict=True)) == w["completed"]


# --------------------------------------------------------------------------- courses
def test_course_stats():
    c2 = "O/B/2"
    rows = [
        seg("a", 0, 96),  # completed v1 by coverage
        seg("a", 0, 10, video="v2"),
        seg("b", 0, 20),
        seg("b", 30, 40),
        seg("c", 0, 50, video="v2"),
        seg("a", 0, 5, video="v9", course=c2),
    ]
    vids = videos(("v1", 100.0), ("v2", 100.0), ("v3", 60.0), ("v9", 10.0, "x", c2))
    vids = pd.concat([vids, videos(("v0", 10.0, "x", "course-v1:O+Z+3"))], ignore_index=True)
    views = tables(rows, vids)["views"]
    out = schema.canonical(course_stats(views, vids), "course_stats")
    assert dict(out.dtypes) == schema.COURSE_STATS
    assert list(out["course_id"]) == [c2, COURSE, "course-v1:O+Z+3"]
    c = one(out, course_id=COURSE)
    # coverages: a 0.96 (v1), b 0.3 (v1), a 0.1 (v2), c 0.5 (v2)
    assert (c["viewers"], c["videos"], c["videos_watched"], c["segments"]) == (3, 3, 2, 5)
    assert c["watched_seconds"] == 96 + 10 + 20 + 10 + 50
    assert (c["completed_viewers"], c["completions"]) == (1, 1)
    assert c["median_coverage"] == pytest.approx(0.4)
    assert out["videos_in_outline"].isna().all()  # no course structure
    z = one(out, course_id="course-v1:O+Z+3")  # listed in videos, never watched
    assert (z["viewers"], z["videos"], z["videos_watched"], z["watched_seconds"]) == (0, 1, 0, 0)
    assert math.isnan(z["median_coverage"])


def test_course_stats_distinct_viewers_and_completions_across_videos():
    rows = [seg(u, 0, 10, video=v) for u in ("a", "b") for v in ("v1", "v2")]
    vids = videos(("v1", 10.0), ("v2", 10.0))
    c = one(course_stats(tables(rows, vids)["views"], vids), course_id=COURSE)
    assert (c["viewers"], c["completed_viewers"], c["completions"]) == (2, 2, 4)


def test_course_stats_videos_in_outline_from_positions():
    vids = videos(("v1", 10.0), ("v2", 10.0), ("v3", 10.0), ("w", 5.0, "x", "O/B/2"))
    vids["position"] = pd.array([1, 2, pd.NA, pd.NA], dtype="Int64")  # v3: not in the outline
    out = course_stats(schema.empty(schema.VIEWS), vids)
    assert one(out, course_id=COURSE)["videos_in_outline"] == 2
    assert pd.isna(one(out, course_id="O/B/2")["videos_in_outline"])  # no outline for it


def test_course_stats_empty():
    out = course_stats(schema.empty(schema.VIEWS), schema.empty(schema.VIDEOS))
    assert len(out) == 0 and dict(out.dtypes) == schema.COURSE_STATS
