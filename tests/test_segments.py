"""Segments rule sets (SPEC §5): plain-loop references, property tests and one case per rule.

The references below are written straight from SPEC §5 as per-(course, user) Python loops and
deliberately share no code with ``dask_pipeline.segments``.
"""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dask_pipeline import schema
from dask_pipeline.segments import RULES, insights_segments, seed_segments

T0 = pd.Timestamp("2024-03-01T12:00:00Z")
NAN = float("nan")


# --------------------------------------------------------------------------- building events
def ev(event_type: str, t: float = 0, **kw) -> dict:
    """One event row; ``t`` in seconds after T0; offsets default to missing."""
    row = {
        "course_id": "course-v1:O+C+R",
        "username": "alice",
        "time": T0 + pd.Timedelta(seconds=t),
        "event_type": event_type,
        "video_id": "v1",
        "code": "html5",
        "duration": NAN,
        "current_time": NAN,
        "old_time": NAN,
        "new_time": NAN,
        "old_speed": NAN,
        "new_speed": NAN,
        "file": 0,
        "line": 0,
    }
    row.update(kw)
    return row


def play(t, ct, **kw):
    return ev("play_video", t, current_time=ct, **kw)


def pause(t, ct, **kw):
    return ev("pause_video", t, current_time=ct, **kw)


def stop(t, ct, **kw):
    return ev("stop_video", t, current_time=ct, **kw)


def seek(t, old, new, **kw):
    return ev("seek_video", t, old_time=old, new_time=new, **kw)


def frame(rows: list[dict]) -> pd.DataFrame:
    """Rows as a schema.EVENTS frame; ``line`` defaults to the row's position."""
    cols = {c: [r[c] for r in rows] for c in schema.EVENTS}
    cols["line"] = [ln or i + 1 for i, ln in enumerate(cols["line"])]
    return pd.DataFrame({c: pd.array(v, dtype=schema.EVENTS[c]) for c, v in cols.items()})


def as_tuples(segs: pd.DataFrame) -> list[tuple]:
    """Segments as sorted (course, video, user, time, start, end) tuples."""
    cols = ["course_id", "video_id", "username", "time", "start_offset", "end_offset"]
    return sorted(tuple(r) for r in segs[cols].itertuples(index=False))


def spans(segs: pd.DataFrame) -> list[tuple[float, float]]:
    return sorted(zip(segs["start_offset"], segs["end_offset"], strict=True))


# --------------------------------------------------------------------------- references
def _ordered(rows: list[dict], key) -> dict:
    """Rows grouped by ``key``, each group in SPEC §5 order: time, file, line, input order."""
    groups = defaultdict(list)
    for i, r in enumerate(rows):
        groups[key(r)].append((r["time"], r["file"], r["line"], i, r))
    return {k: [x[-1] for x in sorted(v, key=lambda x: x[:4])] for k, v in groups.items()}


def _missing(r: dict) -> bool:
    """A play/pause/stop/seek lacking a number its rule needs (counted, ignored)."""
    if r["event_type"] == "seek_video":
        return math.isnan(r["old_time"]) or math.isnan(r["new_time"])
    if r["event_type"] in ("play_video", "pause_video", "stop_video"):
        return math.isnan(r["current_time"])
    return False


def seed_reference(rows: list[dict]) -> tuple[list[tuple], dict[str, int]]:
    """SPEC §5.1 as a plain loop per (course, user)."""
    segs, malformed, missing = [], 0, 0
    for (course, user), evs in _ordered(rows, lambda r: (r["course_id"], r["username"])).items():
        video = start = action = None  # state = (video, start, last action)
        for r in evs:
            et, vid = r["event_type"], r["video_id"]
            if _missing(r):
                missing += 1
                continue
            emit = None
            if et == "play_video":
                video, start, action = vid, r["current_time"], "play"
            elif et == "seek_video" and r["old_time"] < r["new_time"]:  # forward
                old, new = r["old_time"], r["new_time"]
                if video == vid and action == "play":
                    emit = (old, new)
                video, start, action = vid, new, "seek forward"
            elif et == "seek_video" and r["old_time"] > r["new_time"]:  # back
                old, new = r["old_time"], r["new_time"]
                if video == vid and action == "play":
                    emit = (start, old)
                video, start, action = vid, new, "seek back"
            elif et in ("pause_video", "stop_video"):
                if video == vid and action == "play":
                    emit = (start, r["current_time"])
                video, start, action = vid, r["current_time"], et
            # everything else (load, equal seeks, speed, captions...): no change
            if emit is not None:
                if emit[0] <= emit[1]:
                    segs.append((course, vid, user, r["time"], *emit))
                else:
                    malformed += 1
    return sorted(segs), {"missing_value": missing, "malformed": malformed}


def insights_reference(rows: list[dict]) -> tuple[list[tuple], dict[str, int]]:
    """SPEC §5.2 as a plain loop per (course, user, video)."""
    c = dict.fromkeys(
        [
            "missing_value",
            "invalid_offset",
            "replaced",
            "unclosed",
            "end_before_start",
            "too_short",
            "past_duration",
        ],
        0,
    )
    segs = []

    def key(r: dict) -> tuple:
        return r["course_id"], r["username"], r["video_id"]

    for (course, user, vid), evs in _ordered(rows, key).items():
        viewing = None  # (start, known duration or None)
        prev = None  # previous counted event
        for r in evs:
            et = r["event_type"]
            if et not in ("play_video", "pause_video", "stop_video", "seek_video"):
                continue  # loads, speed changes, captions: not events here
            if _missing(r):
                c["missing_value"] += 1
                continue
            needed = [r["old_time"], r["new_time"]] if et == "seek_video" else [r["current_time"]]
            if any(x < 0 or x > 36000 for x in needed):
                c["invalid_offset"] += 1
                continue
            if et == "play_video":
                if viewing is not None:
                    c["replaced"] += 1
                if prev is not None and prev["event_type"] == "seek_video":
                    start = prev["new_time"]
                else:
                    start = r["current_time"]
                d = r["duration"]
                viewing = (start, d if d > 0 else None)
            elif viewing is not None:
                end = r["old_time"] if et == "seek_video" else r["current_time"]
                start, d = viewing
                if end < start:
                    c["end_before_start"] += 1
                elif end - start < 0.25:
                    c["too_short"] += 1
                elif d is not None and end > d + 1:
                    c["past_duration"] += 1
                else:
                    segs.append((course, vid, user, r["time"], start, end))
                viewing = None
            prev = r
        if viewing is not None:
            c["unclosed"] += 1
    return sorted(segs), c


# --------------------------------------------------------------------------- property tests
EVENT_TYPES = [
    "play_video",
    "play_video",
    "pause_video",
    "stop_video",
    "seek_video",
    "seek_video",
    "load_video",
    "speed_change_video",
    "show_transcript",
    "video_show_cc_menu",
    "complete_video",
]
OFFSETS = [0.0, 0.1, 0.3, 1.0, 2.5, 3.0, 7.25, 10.0, 35999.5, 36000.0, 36000.5, -1.0, -0.01, 1e9]


@st.composite
def event_rows(draw, max_size=40, allow_nan=True):
    offset = st.sampled_from(OFFSETS + ([NAN] if allow_nan else []))
    row = st.fixed_dictionaries(
        {
            "course_id": st.sampled_from(["course-v1:A+1+R", "A/2/R"]),
            "username": st.sampled_from(["u1", "u2", "ü3"]),
            "t": st.integers(0, 6),
            "event_type": st.sampled_from(EVENT_TYPES),
            "video_id": st.sampled_from(["v1", "v2", "v3"]),
            "duration": st.sampled_from([NAN, 0.0, -5.0, 2.0, 9.0, 600.0]),
            "current_time": offset,
            "old_time": offset,
            "new_time": offset,
            "file": st.integers(0, 1),
            "line": st.integers(1, 4),
        }
    )
    rows = draw(st.lists(row, max_size=max_size))
    return [ev(**r) for r in rows]


PROPERTY = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(event_rows())
def test_seed_matches_plain_loop(rows):
    segs, counters = seed_segments(frame(rows))
    want, want_counters = seed_reference(rows)
    assert as_tuples(segs) == want
    assert counters == want_counters


@PROPERTY
@given(event_rows())
def test_insights_matches_plain_loop(rows):
    segs, counters = insights_segments(frame(rows))
    want, want_counters = insights_reference(rows)
    assert as_tuples(segs) == want
    assert counters == want_counters


@settings(max_examples=20, deadline=None)
@given(event_rows(max_size=60, allow_nan=False), st.randoms(use_true_random=False))
def test_row_order_does_not_matter(rows, rnd):
    # distinct (time, file, line) per user: the order is then fully given by SPEC §5
    rows = [dict(r, line=i + 1) for i, r in enumerate(rows)]
    shuffled = rows[:]
    rnd.shuffle(shuffled)
    for rule in RULES.values():
        a, ca = rule(frame(rows))
        b, cb = rule(frame(shuffled))
        assert as_tuples(a) == as_tuples(b)
        assert ca == cb


def test_large_random_stream_matches_plain_loop():
    # many groups and long runs: exercises the sort and the tie fix-up at scale
    rng = np.random.default_rng(7)
    n = 4000
    rows = [
        ev(
            rng.choice(EVENT_TYPES),
            float(rng.integers(0, 50)),
            course_id=f"c{rng.integers(0, 3)}",
            username=f"u{rng.integers(0, 20)}",
            video_id=f"v{rng.integers(0, 3)}",
            duration=float(rng.choice([NAN, 0.0, 30.0, 100.0])),
            current_time=float(rng.integers(-2, 120) / 4),
            old_time=float(rng.integers(-2, 120) / 4),
            new_time=float(rng.integers(-2, 120) / 4),
            file=int(rng.integers(0, 2)),
            line=int(rng.integers(1, 10_000)),
        )
        for _ in range(n)
    ]
    df = frame(rows)
    for rule, ref in ((seed_segments, seed_reference), (insights_segments, insights_reference)):
        segs, counters = rule(df)
        want, want_counters = ref(rows)
        assert len(want) > 50
        assert as_tuples(segs) == want
        assert counters == want_counters


# --------------------------------------------------------------------------- frame contract
@pytest.mark.parametrize("name", sorted(RULES))
def test_output_schema_and_empty_input(name):
    rule = RULES[name]
    want = {c: t for c, t in schema.SEGMENTS.items() if c != "date"}
    segs, counters = rule(frame([]))
    assert dict(segs.dtypes) == want and len(segs) == 0
    assert counters and set(counters.values()) == {0}
    segs, _ = rule(frame([play(0, 1.0), pause(5, 4.0)]))
    assert dict(segs.dtypes) == want
    assert segs["time"].iloc[0] == T0 + pd.Timedelta(seconds=5)


@pytest.mark.parametrize("name", sorted(RULES))
def test_counters_always_have_every_key(name):
    _, empty = RULES[name](frame([]))
    _, some = RULES[name](frame([play(0, 1.0), pause(1, 0.5), pause(2, NAN)]))
    assert set(empty) == set(some)


def test_index_and_extra_columns_are_ignored():
    df = frame([play(0, 1.0), pause(5, 4.0)])
    df.index = [10, 3]
    df["events"] = 0
    for rule in RULES.values():
        segs, _ = rule(df)
        assert spans(segs) == [(1.0, 4.0)]


# --------------------------------------------------------------------------- seed: one per rule
SEED_CASES = {
    "play then pause emits (start, currentTime)": (
        [play(0, 10.0), pause(5, 15.0)],
        [(10.0, 15.0)],
        0,
    ),
    "stop closes like pause": ([play(0, 10.0), stop(5, 12.0)], [(10.0, 12.0)], 0),
    "pause before start is malformed": ([play(0, 10.0), pause(5, 9.0)], [], 1),
    "pause at start emits empty segment": ([play(0, 10.0), pause(5, 10.0)], [(10.0, 10.0)], 0),
    "play replaces state start": ([play(0, 1.0), play(1, 5.0), pause(2, 8.0)], [(5.0, 8.0)], 0),
    "defect: forward seek records the skipped range": (
        [play(0, 10.0), seek(5, 15.0, 100.0)],
        [(15.0, 100.0)],
        0,
    ),
    "seek back emits (start, old)": ([play(0, 10.0), seek(5, 20.0, 3.0)], [(10.0, 20.0)], 0),
    "seek back before start is malformed": ([play(0, 10.0), seek(5, 8.0, 3.0)], [], 1),
    "defect: after a seek the next pause closes nothing": (
        [play(0, 10.0), seek(5, 20.0, 30.0), pause(9, 40.0)],
        [(20.0, 30.0)],
        0,
    ),
    "equal seek changes nothing": (
        [play(0, 10.0), seek(3, 12.0, 12.0), pause(5, 15.0)],
        [(10.0, 15.0)],
        0,
    ),
    "load, speed change, transcript, captions change nothing": (
        [
            play(0, 10.0),
            ev("load_video", 1),
            ev("speed_change_video", 2, current_time=11.0, old_speed=1.0, new_speed=2.0),
            ev("show_transcript", 3),
            ev("video_show_cc_menu", 3),
            pause(5, 15.0),
        ],
        [(10.0, 15.0)],
        0,
    ),
    "pause of another video closes nothing": (
        [play(0, 10.0), pause(5, 15.0, video_id="v2")],
        [],
        0,
    ),
    "another video's pause still replaces the state": (
        [play(0, 10.0), pause(3, 1.0, video_id="v2"), pause(5, 15.0)],
        [],
        0,
    ),
    "state is per course and user": (
        [play(0, 10.0), play(1, 0.0, username="bob"), pause(5, 15.0), pause(6, 3.0, course_id="x")],
        [(10.0, 15.0)],
        0,
    ),
    "pause with no play closes nothing": ([pause(0, 10.0), stop(1, 12.0)], [], 0),
    "negative offsets are fine under seed": ([play(0, -3.0), pause(5, -1.0)], [(-3.0, -1.0)], 0),
}


@pytest.mark.parametrize("case", sorted(SEED_CASES))
def test_seed_rule(case):
    rows, want, malformed = SEED_CASES[case]
    segs, counters = seed_segments(frame(rows))
    assert spans(segs) == want
    assert counters["malformed"] == malformed


def test_seed_segment_time_is_closing_time():
    segs, _ = seed_segments(frame([play(0, 1.0), seek(7, 30.0, 2.0)]))
    assert list(segs["time"]) == [T0 + pd.Timedelta(seconds=7)]


def test_seed_ties_follow_file_then_line():
    # same timestamp: file 0 before file 1 whatever the line, then line order
    rows = [
        pause(5, 8.0, file=1, line=1),
        play(5, 2.0, file=0, line=9),
        pause(5, 4.0, file=0, line=10),
    ]
    segs, _ = seed_segments(frame(rows))
    assert spans(segs) == [(2.0, 4.0)]
    rows = [play(5, 2.0, file=1, line=1), pause(5, 4.0, file=0, line=2)]
    assert spans(seed_segments(frame(rows))[0]) == []
    rows = [pause(5, 4.0, line=2), play(5, 2.0, line=1)]
    assert spans(seed_segments(frame(rows))[0]) == [(2.0, 4.0)]


def test_seed_time_beats_file_and_line():
    rows = [pause(6, 4.0, file=0, line=1), play(5, 2.0, file=1, line=9)]
    assert spans(seed_segments(frame(rows))[0]) == [(2.0, 4.0)]


def test_seed_missing_number_is_ignored_and_counted():
    rows = [play(0, 1.0), pause(1, NAN), seek(2, NAN, 3.0), pause(3, 4.0)]
    segs, counters = seed_segments(frame(rows))
    assert spans(segs) == [(1.0, 4.0)]
    assert counters == {"missing_value": 2, "malformed": 0}


# --------------------------------------------------------------------------- insights: one per rule
# (events, expected (start, end) list, expected non-zero counters)
INSIGHTS_CASES = {
    "play opens, pause closes at currentTime": (
        [play(0, 10.0), pause(5, 15.0)],
        [(10.0, 15.0)],
        {},
    ),
    "stop closes at currentTime": ([play(0, 10.0), stop(5, 12.0)], [(10.0, 12.0)], {}),
    "seek closes at old_time": ([play(0, 10.0), seek(5, 14.0, 50.0)], [(10.0, 14.0)], {}),
    "start is the previous seek's new_time": (
        [seek(0, 40.0, 20.0), play(1, 21.0), pause(5, 25.0)],
        [(20.0, 25.0)],
        {},
    ),
    "equal seek is a seek too": (
        [seek(0, 20.0, 20.0), play(1, 22.0), pause(5, 25.0)],
        [(20.0, 25.0)],
        {},
    ),
    "start is currentTime when the previous event was not a seek": (
        [seek(0, 40.0, 20.0), pause(1, 20.0), play(2, 21.0), pause(5, 25.0)],
        [(21.0, 25.0)],
        {},
    ),
    "play replaces the open viewing": (
        [play(0, 1.0), play(1, 5.0), pause(2, 8.0)],
        [(5.0, 8.0)],
        {"replaced": 1},
    ),
    "closing without open viewing does nothing": (
        [pause(0, 3.0), stop(1, 4.0), seek(2, 5.0, 1.0)],
        [],
        {},
    ),
    "unclosed viewing dropped": ([play(0, 3.0)], [], {"unclosed": 1}),
    "end before start dropped": ([play(0, 10.0), pause(5, 9.0)], [], {"end_before_start": 1}),
    "shorter than 0.25 s dropped": ([play(0, 10.0), pause(5, 10.2)], [], {"too_short": 1}),
    "exactly 0.25 s kept": ([play(0, 10.0), pause(5, 10.25)], [(10.0, 10.25)], {}),
    "end past duration + 1 dropped": (
        [play(0, 10.0, duration=20.0), pause(5, 21.5)],
        [],
        {"past_duration": 1},
    ),
    "end at duration + 1 kept": (
        [play(0, 10.0, duration=20.0), pause(5, 21.0)],
        [(10.0, 21.0)],
        {},
    ),
    "known duration is the opening play's, not the closing event's": (
        [play(0, 10.0), pause(5, 21.5, duration=20.0)],
        [(10.0, 21.5)],
        {},
    ),
    "zero or negative duration is unknown": (
        [play(0, 10.0, duration=0.0), pause(5, 50.0), play(6, 50.0, duration=-1.0), pause(9, 90)],
        [(10.0, 50.0), (50.0, 90.0)],
        {},
    ),
    "negative offset ignored": (
        [play(0, 10.0), pause(3, -1.0), pause(5, 15.0)],
        [(10.0, 15.0)],
        {"invalid_offset": 1},
    ),
    "offset above 36000 ignored": (
        [play(0, 36000.5), play(1, 10.0), seek(3, 36001.0, 4.0), pause(5, 15.0)],
        [(10.0, 15.0)],
        {"invalid_offset": 2},
    ),
    "offsets 0 and 36000 are valid": (
        [play(0, 0.0), pause(5, 36000.0)],
        [(0.0, 36000.0)],
        {},
    ),
    "ignored seek is not the previous event": (
        [seek(0, 40.0, -3.0), play(1, 21.0), pause(5, 25.0)],
        [(21.0, 25.0)],
        {"invalid_offset": 1},
    ),
    "loads, speed changes, captions are not the previous event": (
        [
            seek(0, 40.0, 20.0),
            ev("load_video", 1),
            ev("speed_change_video", 1, current_time=20.0, old_speed=1.0, new_speed=2.0),
            ev("video_show_cc_menu", 1),
            play(2, 21.0),
            ev("load_video", 3),
            pause(5, 25.0),
        ],
        [(20.0, 25.0)],
        {},
    ),
    "state is per video": (
        [play(0, 10.0), pause(3, 12.0, video_id="v2"), pause(5, 15.0)],
        [(10.0, 15.0)],
        {},
    ),
    "seek of another video is not the previous event": (
        [seek(0, 40.0, 20.0, video_id="v2"), play(1, 21.0), pause(5, 25.0)],
        [(21.0, 25.0)],
        {},
    ),
}


@pytest.mark.parametrize("case", sorted(INSIGHTS_CASES))
def test_insights_rule(case):
    rows, want, nonzero = INSIGHTS_CASES[case]
    segs, counters = insights_segments(frame(rows))
    assert spans(segs) == want
    assert {k: v for k, v in counters.items() if v} == nonzero


def test_insights_counters_keys():
    _, counters = insights_segments(frame([]))
    assert set(counters) >= {
        "invalid_offset",
        "unclosed",
        "end_before_start",
        "too_short",
        "past_duration",
    }


def test_insights_segment_time_and_ids_are_the_closing_events():
    rows = [play(0, 10.0, username="bob"), seek(7, 14.0, 50.0, username="bob")]
    segs, _ = insights_segments(frame(rows))
    assert list(segs["time"]) == [T0 + pd.Timedelta(seconds=7)]
    assert list(segs["username"]) == ["bob"]
    assert list(segs["video_id"]) == ["v1"]


def test_rules_differ_where_seed_defects_apply():
    # seed records the skipped range and misses the pause after the seek; insights does not
    rows = [play(0, 10.0), seek(5, 20.0, 60.0), play(6, 60.0), pause(9, 70.0)]
    assert spans(seed_segments(frame(rows))[0]) == [(20.0, 60.0), (60.0, 70.0)]
    assert spans(insights_segments(frame(rows))[0]) == [(10.0, 20.0), (60.0, 70.0)]
    rows = [play(0, 10.0), seek(5, 20.0, 60.0), pause(9, 70.0)]
    assert spans(seed_segments(frame(rows))[0]) == [(20.0, 60.0)]


@pytest.mark.parametrize(
    ("t_step", "ngroups"),
    [(1, 5), (2**37, 50), (2**59, 7), (1, 2**40)],
    ids=["seconds", "long window", "time ranks", "sparse group codes"],
)
def test_order_equals_stable_lexsort(t_step, ngroups):
    # the fast ordering must equal a stable sort by (group, time, file, line), whatever
    # branch the key sizes send it down
    from dask_pipeline.segments import _order

    rng = np.random.default_rng(5)
    n = 3000
    g = rng.integers(0, min(ngroups, 60), n) * (ngroups // min(ngroups, 60))
    t = rng.integers(0, 8, n) * t_step
    f = rng.integers(0, 2, n).astype(np.int32)
    ln = rng.integers(0, 5, n)
    want = np.lexsort((np.arange(n), ln, f, t, g))
    np.testing.assert_array_equal(_order(g, ngroups, t, f, ln), want)
