"""The course team's days (SPEC §4, §7), through the pure core: decoded lines -> the rows the
user shuffle carries -> ``team.found`` -> ``team.merge``. A member's first and last seen days
are those of the events that make them course team, so splitting the days into runs does not
change them."""

from __future__ import annotations

import datetime as dt

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from dask_pipeline import decode, filters, ingest, schema, team, window

from .conftest import other_line, video_line

COURSE = "course-v1:T+T1+2026"
INSTRUCTOR = f"/courses/{COURSE}/instructor/api/list_course_role_members"
TZ = "America/New_York"


def _at(day: int, hour: int) -> str:
    return dt.datetime(2026, 3, day, hour, tzinfo=dt.UTC).isoformat()


def _play(user: str, day: int, hour: int) -> str:
    p = {"id": "v1", "code": "html5", "currentTime": 1.0, "duration": 90.0}
    return video_line(user, COURSE, "play_video", _at(day, hour), p)


def _found(lines: list[str], staff=frozenset(), since=None, until=None) -> pd.DataFrame:
    """The course team of ``lines`` decoded as one part, for local days since..until (and
    a day of lookback before)."""
    since_us = None if since is None else window.midnight_us(since, TZ)
    until_us = None if until is None else window.midnight_us(until + dt.timedelta(days=1), TZ)
    lookback = None if since_us is None else since_us - 86_400_000_000  # a day
    w = decode.Window(since_us, until_us, lookback)
    d = decode.decode_bytes(("\n".join(lines) + "\n").encode(), window=w)
    events, activity = filters.split_staged(ingest.staged_rows(d.events, d.activity))
    return team.found(activity, events, frozenset(staff), TZ, since_us, until_us)


def _days(table: pd.DataFrame) -> list[list]:
    return table[["username", "known_by", "first_seen", "last_seen"]].values.tolist()


def test_an_instructor_is_seen_on_the_days_of_team_events_not_of_watching():
    # watches on the 2nd and 9th; instructor events at 03:00 UTC on the 5th (the 4th in New
    # York) and on the 7th
    lines = [_play("prof", 2, 12), _play("prof", 9, 12)]
    lines += [other_line("prof", COURSE, INSTRUCTOR, _at(d, 3)) for d in (5, 7)]
    lines += [_play("ann", 3, 12)]
    assert _days(_found(lines)) == [["prof", "event", dt.date(2026, 3, 4), dt.date(2026, 3, 6)]]


def test_a_team_event_without_a_usable_time_still_makes_a_member_with_unknown_days():
    line = other_line("prof", COURSE, INSTRUCTOR, _at(5, 12)).replace(
        '"time": ', '"time": 1, "x": '
    )
    [[user, known_by, first, last]] = _days(_found([line]))
    assert (user, known_by) == ("prof", "event") and pd.isna(first) and pd.isna(last)


def test_a_staff_list_member_is_seen_on_watching_days_inside_the_window():
    lines = [_play("ta", 1, 23), _play("ta", 3, 12), _play("ta", 5, 12)]
    # the window is the 2nd..4th (New York): the 1st at 23:00 UTC is lookback, the 5th after
    got = _found(lines, staff={"ta"}, since=dt.date(2026, 3, 2), until=dt.date(2026, 3, 4))
    assert _days(got) == [["ta", "staff_list", dt.date(2026, 3, 3), dt.date(2026, 3, 3)]]
    # only lookback events: still known (so left out), with no day of its own
    got = _found(lines[:1], staff={"ta"}, since=dt.date(2026, 3, 2), until=dt.date(2026, 3, 4))
    assert got["username"].tolist() == ["ta"] and got["first_seen"].isna().all()


def test_merge_keeps_the_earliest_first_the_latest_last_and_event_over_staff_list():
    a = _found([_play("ta", 3, 12)], staff={"ta"})
    b = _found([other_line("ta", COURSE, INSTRUCTOR, _at(9, 12))])
    c = _found([_play("ta", 6, 12)], staff={"ta"})
    merged = team.merge(c, team.merge(b, a))
    assert _days(merged) == [["ta", "event", dt.date(2026, 3, 3), dt.date(2026, 3, 9)]]
    assert list(merged.columns) == list(schema.COURSE_TEAM)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["ann", "prof", "ta"]),
            st.sampled_from(["play", "team"]),
            st.integers(1, 10),
            st.integers(0, 23),
        ),
        max_size=25,
    ),
    st.integers(1, 9),
)
def test_days_split_into_two_runs_give_the_same_members_as_one_run(events, cut):
    lines = [
        _play(u, d, h) if kind == "play" else other_line(u, COURSE, INSTRUCTOR, _at(d, h))
        for u, kind, d, h in events
    ]
    first, last = dt.date(2026, 3, 1), dt.date(2026, 3, 9)
    split = dt.date(2026, 3, cut)
    one = _found(lines, {"ta"}, first, last)
    early = _found(lines, {"ta"}, first, split)
    late = _found(lines, {"ta"}, split + dt.timedelta(days=1), last)
    pd.testing.assert_frame_equal(team.merge(late, team.merge(early, None)), team.merge(one, None))
