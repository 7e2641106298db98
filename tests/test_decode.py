"""decode: real-format fixtures -> normalized rows (SPEC §2, §4), bad lines by reason (§3).

The fixtures under tests/fixtures/openedx-events/ are copies of ../shared/fixtures, each with
its provenance in PROVENANCE.md there (source repository, path, line, commit, license).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dask_pipeline import decode, prefilter, schema

from .test_trust import mixed_streams

FIXTURES = Path(__file__).parent / "fixtures" / "openedx-events"
TS = pd.Timestamp


def _one_line(path: Path) -> bytes:
    """A fixture as one tracking-log line (the eventtracking files are pretty-printed)."""
    text = path.read_bytes()
    if path.parent.name == "tracking-log":
        return text.rstrip(b"\n")
    return json.dumps(json.loads(text)).encode()


def _decode_one(line: bytes) -> decode.Decoded:
    d = decode.decode_bytes(line + b"\n", path="f")
    assert d.lines == 1
    assert d.lines == d.accepted + d.skipped + sum(d.rejected.values())
    return d


# Hand-checked expectations for every tracking-log video fixture: (file, course_id, username,
# time, event_type, video_id, code, duration, current_time, old_time, new_time).
NAN = math.nan
EXPECTED_TRACKING = [
    (
        "play_video.browser.json",
        "course-v1:edX+DemoX+Demo_Course",
        "verified",
        "2015-10-01T03:02:38.407715Z",
        "play_video",
        "01955efc9ba54c73a9aa7453a440cb06",
        "6FrbD6Ro5z8",
        NAN,
        630.437320479,
        NAN,
        NAN,
    ),
    (
        "play_video.browser.legacy-ids.json",
        "edX/DemoX/Demo_Course",
        "honor",
        "2015-04-16T21:03:23.823873Z",
        "play_video",
        "i4x-edX-DemoX-video-0b9e39477cf34507a7a48f74be381fdd",
        "b7xgknqkQk8",
        NAN,
        0.0,
        NAN,
        NAN,
    ),
    (
        "play_video.browser.with-duration.json",
        "course-v1:edX+DemoX+Test_2015",
        "dummy_username_1",
        "2014-05-02T17:47:25.605078Z",
        "play_video",
        "0b9e39477cf34507a7a48f74be381fdd1",
        "3_yD_cEKoCk",
        444.0,
        0.0,
        NAN,
        NAN,
    ),
    (
        "pause_video.browser.json",
        "edX/DemoX/Demo_Course",
        "honor",
        "2015-04-16T21:03:34.820709Z",
        "pause_video",
        "i4x-edX-DemoX-video-0b9e39477cf34507a7a48f74be381fdd",
        "b7xgknqkQk8",
        NAN,
        145.634928,
        NAN,
        NAN,
    ),
    (
        "seek_video.browser.json",
        "edX/DemoX/Demo_Course",
        "honor",
        "2015-04-16T21:03:28.759927Z",
        "seek_video",
        "i4x-edX-DemoX-video-0b9e39477cf34507a7a48f74be381fdd",
        "b7xgknqkQk8",
        NAN,
        NAN,
        2.545294,
        141.0,
    ),
    (
        "stop_video.browser.json",
        "course-v1:edX+DemoX+Test_2015",
        "dummy_username_1",
        "2014-05-02T17:47:35.605078Z",
        "stop_video",
        "0b9e39477cf34507a7a48f74be381fdd1",
        "3_yD_cEKoCk",
        444.0,
        4.0,
        NAN,
        NAN,
    ),
    (
        "load_video.browser.json",
        "course-v1:edX+DemoX+Test_2014",
        "staff",
        "2014-06-19T17:56:13.222226Z",
        "load_video",
        "636541acbae448d98ab484b028c9a7f6",
        "o2pLltkrhGM",
        NAN,
        NAN,
        NAN,
        NAN,
    ),
    (
        "show_transcript.browser.json",
        "edX/DemoX/Demo_Course",
        "honor",
        "2015-04-16T21:03:13.652016Z",
        "show_transcript",
        "i4x-edX-DemoX-video-8c0028eb2a724f48a074bc184cd8635f",
        "b7xgknqkQk8",
        NAN,
        0.0,
        NAN,
        NAN,
    ),
    (
        "hide_transcript.browser.json",
        "course-v1:edX+DemoX+Test_2014",
        "staff",
        "2014-08-26T17:56:12.571606Z",
        "hide_transcript",
        "636541acbae448d98ab484b028c9a7f6",
        "o2pLltkrhGM",
        NAN,
        0.0,
        NAN,
        NAN,
    ),
]


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


@pytest.mark.parametrize("row", EXPECTED_TRACKING, ids=[r[0] for r in EXPECTED_TRACKING])
def test_tracking_log_video_fixture(row):
    name, course, user, time, et, vid, code, dur, cur, old, new = row
    d = _decode_one(_one_line(FIXTURES / "tracking-log" / name))
    assert d.accepted == 1 and not d.rejected
    assert len(d.events) == 1
    e = d.events.iloc[0]
    assert (e.course_id, e.username, e.event_type, e.video_id, e.code) == (
        course,
        user,
        et,
        vid,
        code,
    )
    assert e.time == TS(time)
    for got, want in ((e.duration, dur), (e.current_time, cur), (e.old_time, old)):
        assert _same(got, want)
    assert _same(e.new_time, new)
    assert e.line == 1 and e.file == 0


NON_VIDEO = [
    p.name
    for p in sorted((FIXTURES / "tracking-log").iterdir())
    if p.name not in {r[0] for r in EXPECTED_TRACKING}
]


@pytest.mark.parametrize("name", NON_VIDEO)
def test_tracking_log_other_fixture(name):
    """Other traffic is accepted and only feeds the activity counts."""
    raw = _one_line(FIXTURES / "tracking-log" / name)
    d = _decode_one(raw)
    assert d.accepted == 1 and not d.rejected and len(d.events) == 0
    src = json.loads(raw)
    course = src["context"].get("course_id", "")
    if course and src["username"]:
        assert len(d.activity) == 1
        a = d.activity.iloc[0]
        assert (a.course_id, a.username, a.events) == (course, src["username"], 1)
        et = src["event_type"]
        assert bool(a.team) == ("studio" in et or "instructor" in et)
    else:
        assert len(d.activity) == 0


def test_course_team_fixtures_mark_team():
    for name in (
        "edx.instructor.report.downloaded.browser.json",
        "instructor.api.list_forum_members.server.json",
    ):
        d = _decode_one(_one_line(FIXTURES / "tracking-log" / name))
        assert d.activity["team"].tolist() == [True]


EVENTTRACKING = sorted((FIXTURES / "eventtracking-processed").glob("*.json"))


@pytest.mark.parametrize("path", EVENTTRACKING, ids=[p.name for p in EVENTTRACKING])
def test_eventtracking_fixture(path):
    """The eventtracking layout (name, timestamp, data, context.username) is read too; an
    independent reading of the source decides what the row must be."""
    src = json.loads(path.read_text())
    d = _decode_one(_one_line(path))
    data = src.get("data") or {}
    name = src["name"]
    from dask_pipeline.vocabulary import ALIASES, REQUIRED_NUMBERS, VIDEO_EVENTS

    et = ALIASES.get(name, name)
    if et not in VIDEO_EVENTS:
        assert len(d.events) == 0 and not d.rejected
        return
    cur = data.get("currentTime", data.get("current_time"))
    fields = {
        "current_time": cur,
        "old_time": data.get("old_time"),
        "new_time": data.get("new_time"),
        "old_speed": data.get("old_speed"),
        "new_speed": data.get("new_speed"),
    }
    if any(fields[f] is None for f in REQUIRED_NUMBERS.get(et, ())):
        assert d.rejected == {decode.MISSING_NUMBER: 1}
        assert len(d.events) == 0
        return
    assert len(d.events) == 1 and not d.rejected
    e = d.events.iloc[0]
    assert e.event_type == et
    assert e.username == src["context"]["username"]
    assert e.course_id == src["context"]["course_id"]
    assert e.video_id == data["id"]
    assert e.time == TS(src["timestamp"])
    dur = data.get("duration")
    assert _same(e.duration, float(dur) if dur is not None else NAN)
    for f, v in fields.items():
        assert _same(getattr(e, f), float(v) if v is not None else NAN)


def test_position_changed_without_old_time_is_dropped_and_counted():
    d = _decode_one(
        _one_line(FIXTURES / "eventtracking-processed" / "edx.video.position.changed.browser.json")
    )
    assert d.rejected == {decode.MISSING_NUMBER: 1}
    assert d.rejects["reason"].tolist() == [decode.MISSING_NUMBER]


def test_mobile_doc_example_payload_object_and_alias():
    """The documented mobile event (made valid JSON: its one trailing comma removed) maps
    edx.video.played to play_video; a mobile payload as an object is read as well."""
    text = (FIXTURES / "doc-examples" / "edx.video.played.mobile.doc-verbatim.txt").read_text()
    src = json.loads(text.replace('"version": "0.1.8",\n      }', '"version": "0.1.8"\n      }'))
    src["event_type"] = "edx.video.played"
    src["event"] = json.loads(src["event"])  # object payload, as mobile events send it
    d = _decode_one(json.dumps(src).encode())
    e = d.events.iloc[0]
    assert (e.event_type, e.code, e.current_time, e.username) == (
        "play_video",
        "mobile",
        114.0,
        "AAAAAAAAAA",
    )
    assert e.time == TS("2014-12-09T03:57:24Z")


def test_doc_verbatim_mobile_example_is_rejected_as_not_json():
    raw = (FIXTURES / "doc-examples" / "edx.video.played.mobile.doc-verbatim.txt").read_bytes()
    d = _decode_one(b" ".join(raw.split()))
    assert d.rejected == {decode.NOT_JSON: 1}


def _video(**over) -> dict:
    ev = {"id": " v1 ", "currentTime": 10.5, "code": "html5", "duration": 100}
    payload = over.pop("event", {})
    if isinstance(payload, str):  # a payload string given verbatim
        text = payload
    else:
        ev.update(payload)
        text = json.dumps(ev)
    line = {
        "username": " ann ",
        "event_type": "play_video",
        "time": "2026-01-05T10:00:00.5+02:00",
        "context": {"course_id": "course-v1:O+N+R"},
        "event": text,
    }
    line.update(over)
    return line


def test_quirks_strip_numeric_strings_offsets():
    d = _decode_one(json.dumps(_video(event={"currentTime": "12.5", "duration": "1e2"})).encode())
    e = d.events.iloc[0]
    assert (e.username, e.video_id, e.current_time, e.duration) == ("ann", "v1", 12.5, 100.0)
    assert e.time == TS("2026-01-05T08:00:00.5Z")


@pytest.mark.parametrize(
    "bad", ["abc", None, "NaN", "Infinity", "1.2.3", " 12", True, [1], {"a": 1}, "1e999"]
)
def test_non_numbers_are_missing(bad):
    d = _decode_one(json.dumps(_video(event={"currentTime": bad})).encode())
    assert d.rejected == {decode.MISSING_NUMBER: 1}


def test_syslog_prefix_comments_blank_crlf():
    good = json.dumps(_video()).encode()
    data = b"\n".join(
        [b"# a comment", b"", b"   ", b"Jan  5 10:00:00 host tracking: " + good, good + b"\r"]
    )
    d = decode.decode_bytes(data + b"\n")
    assert (d.lines, d.skipped, d.accepted, sum(d.rejected.values())) == (5, 3, 2, 0)
    assert d.events["line"].tolist() == [4, 5]


BAD_LINES = {
    decode.NOT_JSON: b'{"username": "x", "event_type": "play_video"',
    decode.NOT_OBJECT: b"[1, 2, 3]",
    decode.BAD_ENCODING: b'{"username": "\xff\xfe", "event_type": "x"}',
    decode.TOO_DEEP: b'{"event": ' + b"[" * 10000 + b"]" * 10000 + b"}",
    decode.BAD_TIME: json.dumps(_video(time="yesterday")).encode(),
    decode.MISSING_VIDEO_ID: json.dumps(_video(event={"id": "  "})).encode(),
    decode.MISSING_NUMBER: json.dumps(
        _video(event_type="seek_video", event=json.dumps({"id": "v", "new_time": 3}))
    ).encode(),
    decode.BAD_PAYLOAD: json.dumps(_video(event="{not json")).encode(),
}


@pytest.mark.parametrize("reason", sorted(BAD_LINES))
def test_bad_line_is_counted_written_and_neighbours_kept(reason):
    good = json.dumps(_video()).encode()
    data = b"\n".join([good, BAD_LINES[reason], good]) + b"\n"
    d = decode.decode_bytes(data, path="logs/x.log")
    assert d.rejected == {reason: 1}
    assert d.accepted == 2 and d.lines == 3
    assert d.rejects[["file", "line", "reason"]].values.tolist() == [["logs/x.log", 2, reason]]
    assert d.events["line"].tolist() == [1, 3]


def test_frames_follow_schema():
    d = decode.decode_bytes(json.dumps(_video()).encode())
    assert dict(d.events.dtypes) == schema.EVENTS
    assert list(d.activity.columns) == list(schema.ACTIVITY)
    assert list(d.rejects.columns) == list(schema.REJECTS)


def test_window_keeps_lookback_events_and_counts_activity_inside():
    lines = [
        _video(time="2026-01-04T23:00:00Z"),  # in the lookback
        _video(time="2026-01-05T01:00:00Z", event_type="pause_video"),  # inside
        _video(time="2026-01-02T00:00:00Z"),  # before the lookback
        _video(time="2026-01-06T00:00:00Z"),  # after the window
    ]
    us = lambda s: int(TS(s).value // 1000)  # noqa: E731
    w = decode.Window(us("2026-01-05"), us("2026-01-06"), us("2026-01-04"))
    d = decode.decode_bytes(("\n".join(json.dumps(x) for x in lines) + "\n").encode(), window=w)
    assert d.events["line"].tolist() == [1, 2]
    assert d.activity["events"].tolist() == [1]
    assert d.counts["video_events_outside_window"] == 2


# ---------------------------------------------------------------- the prefilter (issue 14)
def _feed_in_blocks(lines: list[bytes], cuts: list[int], count_activity: bool):
    dec = decode.PartDecoder("x.log", 0, 1, count_activity=count_activity)
    for a, b in zip([0, *cuts], [*cuts, len(lines)], strict=True):
        if a < b:
            dec.feed(b"".join(x + b"\n" for x in lines[a:b]))
    return dec.finish()


def _team(activity: pd.DataFrame) -> list:
    team = activity[activity["team"]]
    return sorted(zip(team["course_id"], team["username"], strict=True))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(entries=mixed_streams(), data=st.data())
def test_prefilter_path_keeps_what_decoding_every_line_keeps(entries, data):
    """Without --min-events only the prefilter's lines are decoded: the same video events,
    course-team flags and counts as decoding every line; a line is rejected exactly when
    decoding it rejects it and the prefilter does not accept it unread; every line counted."""
    lines = [e.mixed for e in entries]
    n = len(lines)
    cuts = sorted(data.draw(st.lists(st.integers(1, n), max_size=4, unique=True)))
    got = _feed_in_blocks(lines, cuts, count_activity=False)
    full = _feed_in_blocks(lines, cuts, count_activity=True)
    assert got.lines == n == got.accepted + got.skipped + sum(got.rejected.values())
    assert got.skipped == full.skipped
    by_line = lambda df: df.sort_values("line", kind="stable").reset_index(drop=True)  # noqa: E731
    pd.testing.assert_frame_equal(by_line(got.events), by_line(full.events))
    assert _team(got.activity) == _team(full.activity)
    assert +got.counts == +full.counts
    kept = [x for x in full.rejects["line"] if not prefilter.unread(lines[x - 1])]
    assert list(got.rejects["line"]) == kept
    assert list(got.rejects["reason"]) == [
        r for x, r in zip(full.rejects["line"], full.rejects["reason"], strict=True) if x in kept
    ]


@pytest.mark.parametrize(
    "line, candidate",
    [
        (b'{"event_type": "play_video"}', True),
        (b'{"event_type": "edx.instructor.report.downloaded"}', True),
        (b'{"event_type": "studio:preview"}', True),
        (b'{"event_type": "show_transcript"}', True),
        (b'{"event_type": "play\\u005fvideo"}', True),  # an escape may spell any marker
        (b'{"event_type": null, "name":"edx.video.played"}', True),
        (b'{"event_type": "x \\" studio"}', True),  # an escaped quote inside the value
        (b'{"event_type": "problem_check", "page": "x"}', False),
        # a handler of a video block is not a video event: "video" alone does not make one
        (b'{"event_type": "/courses/c/xblock/block-v1:O+C+R+type@video+block@1/handler/h"}', False),
        (b'{"event_type": "problem_check", "event": {"name": "play_video"}}', True),  # nested
    ],
)
def test_candidate_markers(line, candidate):
    assert prefilter.is_candidate(line) is candidate
    found = prefilter.needed(line + b"\n")
    assert found is not None and (len(found[0]) == 1) is candidate


@pytest.mark.parametrize(
    "line, unread",
    [
        (b'{"event_type": "problem_check"}', True),
        (b'{"event_type": "problem_check"}\r', True),
        (b'{"event_type": "problem_check", broken}', True),  # never read: nothing to lose
        (b'{"event_type": "problem_check"', False),  # cut: decoded, rejected as not JSON
        (b'Jan  5 host tracking: {"event_type": "problem_check"}', False),  # prefix: decoded
        (b"# a comment", False),
        (b"", False),
        (b"[1, 2]", False),
        (b'{"event_type": "play_video", broken}', False),  # a candidate is always decoded
    ],
)
def test_lines_accepted_unread(line, unread):
    """prefilter.unread (the per-line rule) and prefilter.needed (the block form) agree."""
    assert prefilter.unread(line) is unread
    block = b"\n".join([b'{"a": 1}', line, b'{"b": 2}']) + b"\n"
    idx, _, _ = prefilter.needed(block)
    assert list(idx) == ([] if unread else [1])


def test_non_utf8_block_takes_the_same_rule_line_by_line():
    lines = [b'{"username": "\xff", "x": 1}', b'{"event_type": "problem_check", broken}']
    lines.append(json.dumps(_video()).encode())
    d = _feed_in_blocks(lines, [], count_activity=False)
    assert d.rejected == {decode.BAD_ENCODING: 1} and list(d.rejects["line"]) == [1]
    assert d.accepted == 2 and d.events["line"].tolist() == [3]
