"""The synthetic tracking-log generator: deterministic, valid JSON, shaped like real logs."""

from __future__ import annotations

import datetime as dt
import gzip
import json
from pathlib import Path

import pytest

from dask_pipeline.generate import GenerateResult, generate

# SPEC §4: video events, legacy names and the other names that map to them.
ALIASES = {
    "edx.video.played": "play_video",
    "edx.video.paused": "pause_video",
    "edx.video.stopped": "stop_video",
    "edx.video.position.changed": "seek_video",
    "edx.video.loaded": "load_video",
    "edx.bi.video.speed.changed": "speed_change_video",
    "edx.video.transcript.shown": "show_transcript",
    "edx.video.transcript.hidden": "hide_transcript",
    "edx.video.completed": "complete_video",
}
VIDEO = {
    "play_video",
    "pause_video",
    "stop_video",
    "seek_video",
    "load_video",
    "speed_change_video",
    "show_transcript",
    "hide_transcript",
    "complete_video",
    "video_show_cc_menu",
    "video_hide_cc_menu",
    "edx.video.closed_captions.shown",
    "edx.video.closed_captions.hidden",
}
ARGS = {"users": 60, "courses": 3, "days": 3, "seed": 7, "videos_per_course": 6}


def is_video(row: dict) -> bool:
    return ALIASES.get(row["event_type"], row["event_type"]) in VIDEO


def is_team_event(row: dict) -> bool:
    return "studio" in row["event_type"] or "instructor" in row["event_type"]


def payload(row: dict) -> object:
    ev = row["event"]
    return json.loads(ev) if isinstance(ev, str) and ev.startswith("{") else ev


def read(result: GenerateResult) -> list[tuple[int, str, dict]]:
    """(file index, raw line, parsed object) for every line, in file then line order."""
    out = []
    for i, path in enumerate(result.files):
        with gzip.open(path, "rt", encoding="utf-8") as fh:
            for line in fh:
                out.append((i, line, json.loads(line)))
    return out


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> tuple[GenerateResult, list]:
    result = generate(tmp_path_factory.mktemp("gen"), **ARGS)
    return result, read(result)


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path) -> None:
    args = {**ARGS, "users": 30, "days": 2}
    a = generate(tmp_path / "a", **args)
    b = generate(tmp_path / "b", **args)
    c = generate(tmp_path / "c", **{**args, "seed": 8})
    assert [p.name for p in a.files] == [p.name for p in b.files]
    for pa, pb in zip(a.files, b.files, strict=True):
        assert pa.read_bytes() == pb.read_bytes(), pa.name
    assert a.staff_file.read_bytes() == b.staff_file.read_bytes()
    assert (a.lines, a.team_users) == (b.lines, b.team_users)
    assert [p.read_bytes() for p in a.files] != [p.read_bytes() for p in c.files]


def test_result_describes_the_files(sample: tuple[GenerateResult, list]) -> None:
    result, rows = sample
    assert [p.name for p in result.files] == [
        "tracking.log-20260105.gz",
        "tracking.log-20260106.gz",
        "tracking.log-20260107.gz",
    ]
    assert result.lines == len(rows)
    assert all(any(r[0] == i for r in rows) for i in range(len(result.files)))
    assert result.staff_file.name == "staff.txt"
    staff = result.staff_file.read_text().splitlines()
    assert staff == result.staff_users and len(staff) == 2
    assert set(staff) <= set(result.team_users)
    assert not list(result.staff_file.parent.glob("*.tmp"))


def test_every_line_is_a_tracking_log_json_object(sample: tuple[GenerateResult, list]) -> None:
    _, rows = sample
    for _, line, row in rows:
        assert line.endswith("}\n")
        assert isinstance(row, dict)
        for key in ("username", "event_type", "event_source", "time", "event", "context"):
            assert key in row, (key, line)
        assert dt.datetime.fromisoformat(row["time"]).tzinfo is not None


def test_about_a_third_of_lines_are_video_events(sample: tuple[GenerateResult, list]) -> None:
    _, rows = sample
    share = sum(is_video(r) for _, _, r in rows) / len(rows)
    assert 0.2 <= share <= 0.5, share


def test_mean_line_length_like_real_logs(sample: tuple[GenerateResult, list]) -> None:
    _, rows = sample
    mean = sum(len(line) for _, line, _ in rows) / len(rows)
    assert 900 <= mean <= 1500, mean


def test_browser_string_and_mobile_object_payloads(sample: tuple[GenerateResult, list]) -> None:
    _, rows = sample
    browser = [r for _, _, r in rows if is_video(r) and r["event_source"] == "browser"]
    mobile = [r for _, _, r in rows if is_video(r) and r["event_source"] == "mobile"]
    assert browser and mobile
    assert all(isinstance(r["event"], str) for r in browser)
    assert all(isinstance(json.loads(r["event"]), dict) for r in browser)
    assert all(isinstance(r["event"], dict) and r["event"]["code"] == "mobile" for r in mobile)
    assert all(r["event_type"].startswith("edx.video.") for r in mobile)
    # Newer browser events: legacy event_type with the edx.video.* name alongside.
    assert any(r.get("name", "").startswith("edx.video.") for r in browser)
    assert any("name" not in r for r in browser)
    # Numbers sometimes as numeric strings; mobile seeks sometimes without old_time.
    assert any(isinstance(r["event"].get("currentTime"), str) for r in mobile)
    seeks = [r["event"] for r in mobile if r["event_type"] == "edx.video.position.changed"]
    assert any("old_time" not in e for e in seeks) and any("old_time" in e for e in seeks)
    speed = [payload(r) for r in browser if r["event_type"] == "speed_change_video"]
    assert speed and all(isinstance(e["new_speed"], str) for e in speed)
    seek = [payload(r) for r in browser if r["event_type"] == "seek_video"]
    assert {e["type"] for e in seek} == {"onSlideSeek", "onSkipSeek"}


def test_same_time_ties_within_a_user(sample: tuple[GenerateResult, list]) -> None:
    _, rows = sample
    pairs = [
        (a[2]["event_type"], b[2]["event_type"])
        for a, b in zip(rows, rows[1:], strict=False)
        if a[2]["username"].strip() == b[2]["username"].strip() != ""
        and a[2]["time"] == b[2]["time"]
    ]
    assert ("pause_video", "play_video") in pairs


def test_user_times_increase_except_late_mobile(sample: tuple[GenerateResult, list]) -> None:
    result, rows = sample
    last: dict[tuple[int, str], dt.datetime] = {}
    late = 0
    previous = None
    for i, _, row in rows:
        t = dt.datetime.fromisoformat(row["time"])
        if row["event_source"] == "mobile":
            late += previous is not None and t < previous
            # Logged in the file of the day it arrived.
            received = dt.datetime.fromisoformat(row["context"]["received_at"])
            assert received >= t
            assert i == len(result.files) - 1 or received.date() == dt.date(2026, 1, 5 + i)
            continue
        previous = t
        user = row["username"].strip()
        if user:
            assert t >= last.get((i, user), t), (user, row["time"])
            last[(i, user)] = t
    assert late > 0


def test_time_formats(sample: tuple[GenerateResult, list]) -> None:
    _, rows = sample
    times = [r["time"] for _, _, r in rows]
    assert any("." not in t for t in times)
    offsets = {t[-6:] for t in times}
    assert "+00:00" in offsets and len(offsets) > 1
    start = dt.datetime(2026, 1, 4, tzinfo=dt.UTC)
    assert all(start <= dt.datetime.fromisoformat(t) < start + dt.timedelta(days=6) for t in times)


def test_course_team_watch_videos_and_staff_list_matters(
    sample: tuple[GenerateResult, list],
) -> None:
    result, rows = sample
    team = {r["username"].strip() for _, _, r in rows if is_team_event(r)}
    watchers = {r["username"].strip() for _, _, r in rows if is_video(r)}
    staff = set(result.staff_users)
    assert len(team) >= 2 * ARGS["courses"]
    assert team <= watchers
    assert staff <= watchers
    assert not staff & team  # only the staff list marks them
    assert set(result.team_users) == team | staff
    # Instructor events carry the course; Studio events do not.
    studio = [r for _, _, r in rows if "studio" in r["event_type"]]
    assert studio and all(r["context"]["course_id"] == "" for r in studio)
    instructor = [r for _, _, r in rows if "instructor" in r["event_type"]]
    assert instructor and all(r["context"]["course_id"] for r in instructor)


def test_anonymous_and_padded_usernames(sample: tuple[GenerateResult, list]) -> None:
    _, rows = sample
    anonymous = [r for _, _, r in rows if r["username"] == ""]
    assert anonymous and any(is_video(r) for r in anonymous)
    padded = {r["username"] for _, _, r in rows if r["username"] != r["username"].strip()}
    assert padded
    plain = {r["username"] for _, _, r in rows}
    assert {p.strip() for p in padded} <= plain


def test_course_and_video_id_quirks(sample: tuple[GenerateResult, list]) -> None:
    _, rows = sample
    courses = {r["context"]["course_id"] for _, _, r in rows} - {""}
    assert len(courses) == ARGS["courses"]
    assert sum(c.startswith("course-v1:") for c in courses) == ARGS["courses"] - 1
    assert sum(c.count("/") == 2 for c in courses) == 1
    events = [payload(r) for _, _, r in rows if is_video(r)]
    ids = [e["id"] for e in events if isinstance(e, dict) and "id" in e]
    assert any(i.startswith("i4x-") for i in ids)
    assert any(len(i) == 32 and int(i, 16) >= 0 for i in ids if "-" not in i and " " not in i)
    assert any(i != i.strip() for i in ids)
    durations = [e.get("duration", "missing") for e in events if isinstance(e, dict)]
    assert "missing" in durations and None in durations and 0 in durations
    positive = [d for d in durations if isinstance(d, int | float) and d > 0]
    assert positive and all(60 <= d <= 1800 for d in positive)


def test_videos_played_to_the_end(sample: tuple[GenerateResult, list]) -> None:
    _, rows = sample
    stops = [
        payload(r)
        for _, _, r in rows
        if r["event_type"] == "stop_video" and "duration" in payload(r)
    ]
    ends = [e for e in stops if e["duration"] and abs(e["currentTime"] - e["duration"]) < 0.01]
    assert ends


def test_non_video_traffic(sample: tuple[GenerateResult, list]) -> None:
    _, rows = sample
    types = {r["event_type"] for _, _, r in rows}
    for name in ("problem_check", "seq_goto", "edx.ui.lms.link_clicked", "page_close"):
        assert name in types
    assert "edx.course.enrollment.activated" in types
    page_views = [r for _, _, r in rows if r["event_type"].startswith("/courses/")]
    assert page_views and all(r["event_source"] == "server" for r in page_views)
    # Server events: an object, or (as older LMSs log it) a JSON string; both present.
    kinds = {type(r["event"]) for r in page_views}
    assert kinds == {dict, str}
    checks = [r for _, _, r in rows if r["event_type"] == "problem_check"]
    assert {type(r["event"]) for r in checks if r["event_source"] == "server"} == {dict}
    browser = [r["event"] for r in checks if r["event_source"] == "browser"]
    assert browser and all(e.startswith("input_") and "=" in e for e in browser)


def test_lines_target_is_met_and_spread_over_days(tmp_path: Path) -> None:
    calls: list[tuple[int, int]] = []
    result = generate(
        tmp_path,
        users=40,
        days=4,
        lines=12_000,
        seed=3,
        progress=lambda done, total: calls.append((done, total)),
    )
    assert abs(result.lines - 12_000) <= 1_200
    per_file = [sum(1 for _ in gzip.open(p)) for p in result.files]
    assert sum(per_file) == result.lines
    assert all(1_500 <= n <= 4_500 for n in per_file), per_file
    assert calls and calls[-1] == (result.lines, result.lines)
    assert [c[0] for c in calls] == sorted(c[0] for c in calls)


def test_default_volume_follows_users_and_days(tmp_path: Path) -> None:
    small = generate(tmp_path / "s", users=20, days=1)
    large = generate(tmp_path / "l", users=60, days=2)
    assert 4 * small.lines < large.lines < 8 * small.lines


@pytest.mark.parametrize(
    "kwargs",
    [{"users": 0}, {"days": 0}, {"courses": 0}, {"videos_per_course": 0}, {"lines": 0}],
)
def test_rejects_nonsense_arguments(tmp_path: Path, kwargs: dict) -> None:
    with pytest.raises(ValueError):
        generate(tmp_path, **kwargs)
