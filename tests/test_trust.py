"""Trust (issue 5): bad input never crashes a run nor loses a good line (SPEC §2, §3), damaged
and unreadable files are reported per file (§3, §7), windows and lookback (§7), idempotent
re-runs (§7), atomic commits under SIGKILL (§7), pseudonymized outputs (§9), the dashboard's
binding (§8, §9) and a skewed user.

The fuzz tests compare a run over "good lines mixed with mutated lines" with a run over the
*expected* form of every line: the good line itself, the line without the field a wrong value
stands for (SPEC §2: a wrong type, NaN or infinity is a missing value), or a blank line where the
mutation made the line bad (a blank keeps the line numbers, so rejects can be compared too).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gzip
import hashlib
import hmac
import json
import os
import re
import signal
import subprocess
import sys
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
from hypothesis import HealthCheck, Phase, assume, given, settings
from hypothesis import strategies as st

from dask_pipeline import decode, prefilter, schema, store

from .conftest import run_job
from .test_end_to_end import TYPES as VIDEO_TYPES  # legacy and edx.video.* names, mixed

FIXTURES = Path(__file__).parent / "fixtures" / "openedx-events" / "tracking-log"
T0 = dt.datetime(2026, 1, 5, 8, 0, tzinfo=dt.UTC)
COURSE = "course-v1:Trust+T101+2026"
CLI_TIMEOUT = 240


# ================================================================== helpers
_run = run_job


def _tables(out: Path) -> dict[str, pd.DataFrame]:
    return {t: store.read_table(out, t) for t in schema.TABLES}


def _snapshot(out: Path) -> dict[str, pd.DataFrame]:
    """Every table and rejects/ as read through OUT's links (rejects in a fixed order)."""
    snap = _tables(out)
    rej = store.read_table(out, "rejects")
    snap["rejects"] = rej.sort_values(["file", "line"], kind="stable").reset_index(drop=True)
    return snap


def _assert_tables_equal(got: dict, want: dict, tables=tuple(schema.TABLES)) -> None:
    for t in tables:
        try:
            pd.testing.assert_frame_equal(got[t], want[t])
        except AssertionError as e:
            raise AssertionError(f"table {t} differs: {e}") from None


def _same(a: dict, b: dict) -> bool:
    try:
        _assert_tables_equal(a, b, tuple(a))
    except AssertionError:
        return False
    return True


def _iso(t: dt.datetime) -> str:
    return t.isoformat()


def _cli_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "dask_pipeline", *args]


def _cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        _cli_cmd(*args), capture_output=True, text=True, timeout=CLI_TIMEOUT, env=env
    )


def _group_alive(pgid: int) -> bool:
    """Whether any non-zombie process of the group is left (zombies are harmless and may
    linger when the container's init does not reap orphans)."""
    import psutil

    for p in psutil.process_iter(["pid", "status"]):
        try:
            if os.getpgid(p.pid) == pgid and p.info["status"] != psutil.STATUS_ZOMBIE:
                return True
        except (ProcessLookupError, psutil.Error):
            continue
    return False


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the CLI and everything it started (scheduler, nannies, workers share its
    process group because it was started in a new session), then wait until all are gone."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)
    deadline = time.monotonic() + 60
    while _group_alive(proc.pid):
        assert time.monotonic() < deadline, "processes of the killed run are still alive"
        time.sleep(0.05)


def _lines_of(path: Path) -> list[bytes]:
    data = path.read_bytes()
    if path.suffix == ".gz":
        data = gzip.decompress(data)
    return data.split(b"\n")[:-1] if data.endswith(b"\n") else data.split(b"\n")


# ================================================================== a line model for the fuzz
ABSENT = object()  # the line has no such field


@dataclass
class Line:
    """One tracking-log line as data, so that a field can be given a wrong value or removed.
    ``payload`` is the value of ``event``; browser lines write it as a JSON string."""

    fields: dict
    payload: Any = ABSENT
    browser: bool = False
    video: bool = False  # a video event (SPEC §4)

    def render(self) -> bytes:
        d = dict(self.fields)
        if self.payload is not ABSENT:
            p = self.payload
            d["event"] = _dumps(p) if self.browser and isinstance(p, dict) else p
        return _dumps(d).encode()


class Raw(str):
    """A number written verbatim (1e400 cannot come out of json.dumps)."""


def _dumps(obj: Any) -> str:
    """json.dumps (NaN and infinities written as Python writes them: NaN, Infinity) with Raw
    values spliced in as they are."""
    raws: dict[str, str] = {}

    def mark(o):
        if isinstance(o, Raw):
            key = f"@@raw{len(raws)}@@"
            raws[key] = str(o)
            return key
        if isinstance(o, dict):
            return {k: mark(v) for k, v in o.items()}
        if isinstance(o, list):
            return [mark(v) for v in o]
        return o

    text = json.dumps(mark(obj))
    for key, value in raws.items():
        text = text.replace(f'"{key}"', value)
    return text


def _copy(line: Line) -> Line:
    return Line(
        json.loads(json.dumps(line.fields)),
        line.payload if not isinstance(line.payload, dict) else dict(line.payload),
        line.browser,
        line.video,
    )


def _set(line: Line, where: str, name: str, value: Any) -> Line:
    """A copy of ``line`` with field ``name`` of ``where`` (top, context or payload) set to
    ``value``, or removed when ``value`` is ABSENT."""
    out = _copy(line)
    if where == "top" and name == "event":
        out.payload, out.browser = value, False
        return out
    if where == "top":
        target = out.fields
    elif where == "context":
        target = out.fields["context"]
    else:
        target = out.payload
    if value is ABSENT:
        target.pop(name, None)
    else:
        target[name] = value
    return out


LEGACY_TO_NEW = {
    "play_video": "edx.video.played",
    "pause_video": "edx.video.paused",
    "stop_video": "edx.video.stopped",
    "seek_video": "edx.video.position.changed",
}
USERS = ["ann.fuzz", "bob.fuzz", " cy.fuzz ", "dee.fuzz"]
COURSES = [COURSE, "Trust/B202/2026"]
VIDEOS = ["v1", " v2 ", "i4x-Trust-B202-video-3"]
OFFSETS = [0.0, 1.5, 10, 33.25, 60.0, 95.5]


def video_event(user, course, typ, sec, vid, a, b, *, browser=True, name=None, duration=120):
    """A video line of type ``typ`` with the numbers its rule reads (``a``, ``b``)."""
    legacy = {v: k for k, v in LEGACY_TO_NEW.items()}.get(typ, typ)
    payload: dict = {"id": vid, "code": "html5" if browser else "mobile"}
    if duration is not None:
        payload["duration"] = duration
    if legacy == "seek_video":
        payload |= {"old_time": a, "new_time": b, "type": "onSlideSeek"}
    elif legacy == "speed_change_video":
        payload |= {"current_time": a, "old_speed": "1.0", "new_speed": "1.5"}
    elif legacy in ("show_transcript", "hide_transcript"):
        payload["current_time"] = a
    elif legacy != "load_video":
        payload["currentTime"] = a
    fields = {
        "username": user,
        "event_source": "browser" if browser else "mobile",
        "event_type": typ,
        "time": _iso(T0 + dt.timedelta(seconds=sec)),
        "context": {"course_id": course, "user_id": 7, "org_id": "Trust", "path": "/event"},
        "agent": "pytest",
    }
    if name:
        fields["name"] = name
    return Line(fields, payload, browser, video=True)


def other_event(user, course, event_type, sec) -> Line:
    fields = {
        "username": user,
        "event_source": "server",
        "event_type": event_type,
        "time": _iso(T0 + dt.timedelta(seconds=sec)),
        "context": {"course_id": course, "user_id": 8, "org_id": "Trust", "path": "/x"},
    }
    return Line(fields, {"GET": {}, "POST": {}}, False)


def _fixture_lines() -> list[Line]:
    """The real tracking-log fixtures (see PROVENANCE.md there) as Lines."""
    out = []
    for p in sorted(FIXTURES.glob("*.json")):
        d = json.loads(p.read_text())
        ev = d.pop("event", ABSENT)
        browser = False
        if isinstance(ev, str):
            with contextlib.suppress(ValueError):
                inner = json.loads(ev)
                if isinstance(inner, dict):
                    ev, browser = inner, True
        video = "video" in str(d.get("event_type")) or "transcript" in str(d.get("event_type"))
        out.append(Line(d, ev, browser, video))
    return out


FIXTURE_LINES = _fixture_lines()


@st.composite
def good_lines(draw) -> Line:
    kind = draw(st.sampled_from(["video"] * 6 + ["other", "team", "fixture"]))
    user = draw(st.sampled_from(USERS))
    course = draw(st.sampled_from(COURSES))
    sec = draw(st.integers(0, 30))  # few distinct times: ties are kept in line order
    if kind == "other":
        return other_event(user, course, f"/courses/{course.strip()}/courseware/", sec)
    if kind == "team":
        return other_event(user, course, "edx.instructor.report.downloaded", sec)
    if kind == "fixture":
        return _copy(draw(st.sampled_from(FIXTURE_LINES)))
    typ = draw(st.sampled_from(VIDEO_TYPES))
    browser = draw(st.booleans())
    name = LEGACY_TO_NEW.get(typ) if browser and draw(st.booleans()) else None
    return video_event(
        user,
        course,
        typ,
        sec,
        draw(st.sampled_from(VIDEOS)),
        draw(st.sampled_from(OFFSETS)),
        draw(st.sampled_from(OFFSETS)),
        browser=browser,
        name=name,
        duration=draw(st.sampled_from([120, 95.5, None, 0])),
    )


def _no_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def oracle(line: bytes) -> str:
    """SPEC §2/§3 for one line on its own: 'skip' (blank or # comment), 'good' (a JSON object,
    possibly after a syslog-style prefix), else 'bad'. Strict JSON: no NaN literals, text must
    be UTF-8 (lone surrogates are not text)."""
    s = line.strip()
    if not s or s[:1] == b"#":
        return "skip"
    i = line.find(b"{")
    if i < 0:
        return "bad"
    try:
        obj = json.loads(line[i:].decode("utf-8"), parse_constant=_no_constant)
        json.dumps(obj, ensure_ascii=False).encode("utf-8")
    except (ValueError, UnicodeError, RecursionError):
        return "bad"
    return "good" if isinstance(obj, dict) else "bad"


NOT_STRINGS = [None, True, 0, -7, 2.5, [], ["x"], {}, {"k": "v"}]
NOT_NUMBERS = [None, True, False, "", "abc", "1.2.3", "0x1F", "nan", "Infinity", [], [1.5], {}]
NOT_OBJECTS = [None, True, 3, "text", "[1, 2]", [], [{"id": "v1"}]]
PAYLOAD_NUMBERS = [
    "duration",
    "currentTime",
    "current_time",
    "old_time",
    "new_time",
    "old_speed",
    "new_speed",
]
# every field the job reads, with values of a wrong JSON type for it
WRONG = {
    ("top", "username"): NOT_STRINGS,
    ("top", "time"): NOT_STRINGS,
    ("top", "event_type"): NOT_STRINGS,
    ("top", "name"): NOT_STRINGS,
    ("top", "event"): NOT_OBJECTS,
    ("top", "context"): NOT_OBJECTS,
    ("context", "course_id"): NOT_STRINGS,
    ("payload", "id"): NOT_STRINGS,
    ("payload", "code"): NOT_STRINGS,
    **{("payload", f): NOT_NUMBERS for f in PAYLOAD_NUMBERS},
}
HUGE = [Raw("1e400"), Raw("-1e400"), Raw("1" + "0" * 400), Raw("-2.5e999")]
NAN = [float("nan"), float("inf"), float("-inf")]
INVALID_UTF8 = [b"\xff", b"\xc3", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\x80"]
SYSLOG = b"Jan  5 08:00:00 lms-1 tracking-log: "
BOM = b"\xef\xbb\xbf"


@dataclass
class Entry:
    """One line of the mixed input: its bytes, the bytes of its expected form, and its class:
    'good' (same meaning as ``expected``), 'typed' (a field with a wrong value: means the same
    as ``expected``, the line without it), 'skip' or 'bad' (expected is a blank line)."""

    mixed: bytes
    expected: bytes
    cls: str
    how: str = ""


@st.composite
def mutation(draw, line: Line) -> Entry:
    raw = line.render()
    kinds = ["truncate", "flip", "insert", "bad_utf8", "nul", "bom", "crlf", "prefix"]
    kinds += ["wrong_type"] * 4
    if isinstance(line.payload, dict):
        kinds += ["huge", "huge_unread"]
        if line.video:
            # SPEC §2 makes NaN and infinities missing video numbers; elsewhere it is silent
            kinds.append("nan")
        if any(type(line.payload.get(f)) in (int, float) for f in PAYLOAD_NUMBERS):
            kinds.append("numstr")
    kind = draw(st.sampled_from(kinds))
    if kind in ("truncate", "flip", "insert", "bad_utf8", "nul"):
        if kind == "truncate":
            k = draw(st.integers(1, len(raw) - 1))
            m = raw[:k]
        elif kind == "flip":
            pos = draw(st.integers(0, len(raw) - 1))
            b = raw[pos] ^ draw(st.integers(1, 255))
            assume(b != 0x0A)  # a newline would make two lines of one
            m = raw[:pos] + bytes([b]) + raw[pos + 1 :]
        elif kind == "insert":
            pos = draw(st.integers(0, len(raw)))
            b = draw(st.integers(0, 255).filter(lambda x: x != 0x0A))
            m = raw[:pos] + bytes([b]) + raw[pos:]
        else:
            # after the opening brace: before it the bytes would be a (tolerated) prefix
            pos = draw(st.integers(1, len(raw)))
            ins = draw(st.sampled_from(INVALID_UTF8)) if kind == "bad_utf8" else b"\x00"
            m = raw[:pos] + ins + raw[pos:]
        cls = oracle(m)
        return Entry(m, m if cls == "good" else b"", cls, kind)
    if kind == "bom":
        return Entry(BOM + raw, raw, "good", kind)
    if kind == "crlf":
        return Entry(raw + b"\r", raw, "good", kind)
    if kind == "prefix":
        return Entry(SYSLOG + raw, raw, "good", kind)
    if kind == "numstr":
        f = draw(
            st.sampled_from(
                [f for f in PAYLOAD_NUMBERS if type(line.payload.get(f)) in (int, float)]
            )
        )
        m = _set(line, "payload", f, repr(line.payload[f])).render()
        return Entry(m, raw, "good", f"numstr {f}")
    if kind == "huge_unread":
        # a huge number where the job reads nothing: the line keeps its meaning
        huge = draw(st.sampled_from(HUGE))
        if isinstance(line.fields.get("context"), dict):
            m = _set(line, "context", "user_id", huge)
        else:
            m = _set(line, "top", "user_id", huge)
        return Entry(m.render(), raw, "good", kind)
    if kind in ("nan", "huge"):
        f = draw(st.sampled_from(PAYLOAD_NUMBERS))
        v = draw(st.sampled_from(NAN if kind == "nan" else HUGE))
        m = _set(line, "payload", f, v).render()
        return Entry(m, _set(line, "payload", f, ABSENT).render(), "typed", f"{kind} {f}")
    keys = [
        k
        for k in WRONG
        if k[0] == "top"
        or (k[0] == "context" and isinstance(line.fields.get("context"), dict))
        or (k[0] == "payload" and isinstance(line.payload, dict))
    ]
    where, name = draw(st.sampled_from(keys))
    value = draw(st.sampled_from(WRONG[(where, name)]))
    m = _set(line, where, name, value).render()
    return Entry(m, _set(line, where, name, ABSENT).render(), "typed", f"{where}.{name}={value!r}")


@st.composite
def mixed_streams(draw, max_lines: int = 40, max_mutated: int = 12) -> list[Entry]:
    lines = draw(st.lists(good_lines(), min_size=1, max_size=max_lines))
    picked = draw(st.lists(st.integers(0, len(lines) - 1), max_size=max_mutated, unique=True))
    entries = []
    for i, line in enumerate(lines):
        if i in picked:
            entries.append(draw(mutation(line)))
        else:
            raw = line.render()
            entries.append(Entry(raw, raw, "good"))
    return entries


def _join(lines: list[bytes]) -> bytes:
    return b"".join(x + b"\n" for x in lines)


def _in_line_order(events: pd.DataFrame) -> pd.DataFrame:
    # rows may come in any order (the fast path takes plain video lines first); what counts is
    # each line's row, and the order of SPEC §5 is rebuilt from time, file and line
    return events.sort_values("line", kind="stable").reset_index(drop=True)


def _check_rejects_vs_expected(
    entries: list[Entry], got: set[int], want: set[int], unread: bool = False
) -> None:
    """Rejected line numbers of the mixed input = those of the expected input plus every bad
    line: no good line is lost, no bad line is let through, and none goes unreported. With
    ``unread`` (a run without --min-events), a bad line that the prefilter accepts unread (no
    marker, the shape of an object: it holds nothing the job reads) is not a reject."""
    bad = {
        i + 1
        for i, e in enumerate(entries)
        if e.cls == "bad" and not (unread and prefilter.unread(e.mixed))
    }
    assert bad <= got, [(i, entries[i - 1].how) for i in sorted(bad - got)]
    extra = got - want - bad
    missing = want - got
    assert not extra and not missing, {
        "rejected, expected kept": [(i, entries[i - 1].how) for i in sorted(extra)],
        "kept, expected rejected": [(i, entries[i - 1].how) for i in sorted(missing)],
    }


# ================================================================== 1. fuzz: decode, many examples
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(entries=mixed_streams(), data=st.data())
def test_fuzz_decode_never_crashes_and_accounts_for_every_line(entries, data):
    """Acceptance 1 (pure, many examples): whatever the mutations, decoding never raises,
    lines = accepted + skipped + rejected, every bad line is a reject with its line number and
    a reason, and the events, activity and counts equal those of the expected lines alone.
    The mixed input is fed in random blocks of whole lines (the fast and the slow path)."""
    n = len(entries)
    cuts = sorted(data.draw(st.lists(st.integers(1, n), max_size=4, unique=True)))
    dec = decode.PartDecoder("mixed.log", 0, 1)
    for a, b in zip([0, *cuts], [*cuts, n], strict=True):
        if a < b:
            dec.feed(_join([e.mixed for e in entries[a:b]]))
    got = dec.finish()
    want = decode.decode_bytes(_join([e.expected for e in entries]), path="expected.log")

    assert got.lines == n
    assert got.accepted + got.skipped + sum(got.rejected.values()) == n
    assert got.skipped == sum(e.cls == "skip" for e in entries)
    rej = got.rejects
    assert len(rej) == sum(got.rejected.values())
    assert (rej["file"] == "mixed.log").all()
    assert rej["line"].between(1, n).all() and rej["line"].is_unique
    assert rej["reason"].str.len().gt(0).all()
    _check_rejects_vs_expected(entries, set(rej["line"]), set(want.rejects["line"]))

    pd.testing.assert_frame_equal(_in_line_order(got.events), _in_line_order(want.events))
    keys = ["course_id", "username"]
    pd.testing.assert_frame_equal(
        got.activity.sort_values(keys).reset_index(drop=True),
        want.activity.sort_values(keys).reset_index(drop=True),
    )
    assert +got.counts == +want.counts


def _play_pause(user="ann.w", course=COURSE, vid="v1", browser=True) -> list[Line]:
    """A viewing with three seed segments: play-pause, a forward seek while playing (the seed
    rules count the skipped range), play-stop."""
    steps = [
        ("play_video", 1, 0.0, 0),
        ("pause_video", 9, 8.0, 0),
        ("play_video", 10, 8.0, 0),
        ("seek_video", 11, 9.0, 30.0),
        ("play_video", 12, 30.0, 0),
        ("stop_video", 20, 38.0, 0),
    ]
    return [video_event(user, course, t, s, vid, a, b, browser=browser) for t, s, a, b in steps]


@pytest.mark.parametrize("browser", [True, False], ids=["browser", "mobile"])
@pytest.mark.parametrize("where_name", list(WRONG), ids="{0[0]}.{0[1]}".format)
def test_wrong_type_of_every_read_field_means_missing(where_name, browser):
    """Acceptance 1, every field the job reads: a value of a wrong JSON type is treated as if
    the field were missing (SPEC §2), on every line of a play/pause/seek/stop session."""
    where, name = where_name
    speed = video_event("ann.w", COURSE, "speed_change_video", 11, "v1", 9.0, 0, browser=browser)
    # lines with both offset fields: when the one a rule prefers is missing, the other is used
    both = [
        _set(_play_pause(browser=browser)[2], "payload", "current_time", 8.5),
        _set(speed, "payload", "currentTime", 9.5),
    ]
    lines = _play_pause(browser=browser) + [speed, *both]
    for value in WRONG[where_name]:
        mixed = [_set(x, where, name, value).render() for x in lines]
        expected = [_set(x, where, name, ABSENT).render() for x in lines]
        got = decode.decode_bytes(_join(mixed))
        want = decode.decode_bytes(_join(expected))
        assert got.lines == got.accepted + got.skipped + sum(got.rejected.values())
        assert list(got.rejects["line"]) == list(want.rejects["line"]), value
        pd.testing.assert_frame_equal(_in_line_order(got.events), _in_line_order(want.events))


@pytest.mark.parametrize("literal", NAN, ids=["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_literals_are_missing_numbers(literal):
    """SPEC §2: NaN and infinities are missing numbers. Python's json (which edx-platform
    writes logs with) spells them NaN / Infinity; a play that has its currentTime is still
    kept when its duration (a number it does not need) is such a literal, in a browser payload
    string as in a mobile payload object; a pause whose currentTime is one is dropped."""
    for browser in (True, False):
        play = video_event("ann.nan", COURSE, "play_video", 1, "v1", 0.0, 0, browser=browser)
        play = _set(play, "payload", "duration", literal)
        pause = video_event("ann.nan", COURSE, "pause_video", 9, "v1", 8.0, 0, browser=browser)
        bad_pause = _set(pause, "payload", "currentTime", literal)
        d = decode.decode_bytes(_join([play.render(), bad_pause.render(), pause.render()]))
        assert d.lines == d.accepted + d.skipped + sum(d.rejected.values()) == 3
        ev = _in_line_order(d.events)
        style = "browser" if browser else "mobile"
        assert list(ev["event_type"]) == ["play_video", "pause_video"], (style, d.rejected)
        assert ev["duration"].isna().tolist() == [True, False]
        assert list(ev["current_time"]) == [0.0, 8.0]
        assert list(d.rejects["line"]) == [2], style


# ================================================================== 1. fuzz: on Dask
def _write_inputs(where: Path, lines: list[bytes], cut: int) -> list[Path]:
    """The lines as two inputs: a plain file and a gzip file."""
    where.mkdir(parents=True)
    a, b = where / "tracking.log-1", where / "tracking.log-2.gz"
    a.write_bytes(_join(lines[:cut]))
    b.write_bytes(gzip.compress(_join(lines[cut:])))
    return [a, b]


def _rejected_by_file(out: Path) -> dict[str, set[int]]:
    rej = store.read_table(out, "rejects")
    assert rej["reason"].str.len().gt(0).all() and rej["line"].ge(1).all()
    by: dict[str, set[int]] = {}
    for f, line in zip(rej["file"], rej["line"], strict=True):
        by.setdefault(Path(f).name, set()).add(int(line))
    return by


@pytest.mark.slow
@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    # no shrinking: each step costs two runs on the cluster, and the failure message already
    # names the mutation of every line in question (the pure fuzz above shrinks cheaply)
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
)
@given(entries=mixed_streams(max_lines=60, max_mutated=20), data=st.data())
def test_fuzz_on_dask_tables_equal_those_of_the_good_lines(
    dask_client, tmp_path_factory, entries, data
):
    """Acceptance 1 on a real cluster: the job never fails on the mixed input, _run.json
    balances every file, every bad line is in rejects/ with its file and line number, and the
    six tables equal those of a run over the expected lines alone."""
    tmp = tmp_path_factory.mktemp("fuzz")
    cut = data.draw(st.integers(0, len(entries)))
    mixed_files = _write_inputs(tmp / "mixed", [e.mixed for e in entries], cut)
    want_files = _write_inputs(tmp / "want", [e.expected for e in entries], cut)
    res = _run(dask_client, mixed_files, tmp / "out_mixed")
    _run(dask_client, want_files, tmp / "out_want")

    got_rej = _rejected_by_file(tmp / "out_mixed")
    want_rej = _rejected_by_file(tmp / "out_want")
    for k, (path, part) in enumerate(zip(mixed_files, (entries[:cut], entries[cut:]), strict=True)):
        f = res.summary["inputs"][k]
        assert f["path"] == str(path)
        assert f["lines"] == len(part) == f["accepted"] + f["skipped"] + f["rejected_total"]
        assert f["skipped"] == sum(e.cls == "skip" for e in part)
        assert not f["errors"]
        got = got_rej.get(path.name, set())
        assert f["rejected_total"] == len(got)
        _check_rejects_vs_expected(part, got, want_rej.get(path.name, set()), unread=True)
    _assert_tables_equal(_tables(tmp / "out_mixed"), _tables(tmp / "out_want"))


# ================================================================== 1. explicit monsters
def _session_lines() -> list[Line]:
    """Good lines with segments for several users, videos and both payload styles."""
    lines = []
    for k, user in enumerate(["pat.pad", "ria.deep", "sam.big"]):
        vid = f"v{k}"
        lines += _play_pause(user=user, vid=vid, browser=k % 2 == 0)
        lines.append(other_event(user, COURSE, f"/courses/{COURSE}/courseware/", 20))
    return lines


@pytest.fixture(scope="module")
def session_run(dask_client, tmp_path_factory):
    """The tables of the good session lines alone (shared by the 20 MB and nesting tests)."""
    tmp = tmp_path_factory.mktemp("sessions")
    (tmp / "tracking.log").write_bytes(_join([x.render() for x in _session_lines()]))
    _run(dask_client, [tmp / "tracking.log"], tmp / "out")
    tables = _tables(tmp / "out")
    assert len(tables["segments"]) == 9  # three per user
    return tables


def test_nesting_10000_deep(dask_client, session_run, tmp_path):
    """Acceptance 1: lines nested 10,000 deep (a bare array, an object, a video payload as
    object and as string, an unread field of a page view) neither crash the run nor disturb
    the good lines; the unusable ones are rejects with line number and reason."""
    deep_list = "[" * 10_000 + "]" * 10_000
    deep_obj = '{"a": ' * 10_000 + "1" + "}" * 10_000
    good = [x.render() for x in _session_lines()]
    video = video_event("ria.deep", COURSE, "play_video", 3, "v1", 1.0, 0, browser=False)
    # spliced in as text: json.dumps itself cannot nest that deep
    obj_payload = _set(video, "top", "event", Raw(deep_list)).render()
    str_payload = _set(video, "top", "event", Raw(json.dumps(deep_list))).render()
    page = _copy(_session_lines()[-1])
    page.fields["extra"] = Raw(deep_obj)
    page = page.render()
    bad = [deep_list.encode(), deep_obj.encode(), obj_payload, str_payload, page]
    lines = good[:3] + bad[:2] + good[3:6] + bad[2:] + good[6:]
    (tmp_path / "tracking.log").write_bytes(_join(lines))
    res = _run(dask_client, [tmp_path / "tracking.log"], tmp_path / "out")
    f = res.summary["inputs"][0]
    assert f["lines"] == len(lines) == f["accepted"] + f["skipped"] + f["rejected_total"]
    rej = store.read_table(tmp_path / "out", "rejects")
    # the bare deep array and the video payloads; the deep object (line 5) holds no marker
    # and has an object's shape, so it is accepted unread (dask_pipeline.prefilter)
    assert {4, 9, 10} <= set(rej["line"]) and 5 not in set(rej["line"])
    assert (
        rej["reason"].str.len().gt(0).all()
        and (rej["file"] == str(tmp_path / "tracking.log")).all()
    )
    _assert_tables_equal(_tables(tmp_path / "out"), session_run)


@pytest.mark.slow
def test_line_of_20_mb(dask_client, session_run, tmp_path):
    """Acceptance 1: a 20 MB video line (padding in a field the job does not read) is used like
    its short form, and a 20 MB line that is not JSON is one reject whose stored text stays
    small; the good lines around them are kept."""
    good = [x.render() for x in _session_lines()]
    play = _session_lines()[0]
    padded = _copy(play)
    padded.fields["agent"] = "A" * (20 << 20)
    junk = b'{"username": "pat.pad", "blob": "' + b"x" * (20 << 20)
    lines = [padded.render()] + good[1:3] + [junk] + good[3:]
    (tmp_path / "tracking.log").write_bytes(_join(lines))
    res = _run(dask_client, [tmp_path / "tracking.log"], tmp_path / "out")
    f = res.summary["inputs"][0]
    assert f["lines"] == len(lines) == f["accepted"] + f["skipped"] + f["rejected_total"]
    rej = store.read_table(tmp_path / "out", "rejects")
    assert list(rej["line"]) == [4] and rej["text"].str.len().max() < 1 << 20
    _assert_tables_equal(_tables(tmp_path / "out"), session_run)


# ================================================================== 2. damaged and unreadable files
def _unreadable(path: Path) -> bool:
    """Make ``path`` a regular file that cannot be opened for reading. chmod 000 does it for
    an ordinary user; root reads through it, so then use a link to a write-only sysfs file
    (open for reading fails with EACCES even for root)."""
    path.write_bytes(b'{"username": "nobody.reads"}\n')
    path.chmod(0)
    try:
        with open(path, "rb"):
            pass
    except PermissionError:
        return True
    path.chmod(0o644)
    path.unlink()
    for cand in ["/sys/bus/pci/rescan", *sorted(map(str, Path("/sys/bus").glob("*/uevent")))]:
        try:
            open(cand, "rb").close()
        except PermissionError:
            if os.path.isfile(cand):
                path.symlink_to(cand)
                return True
        except OSError:
            pass
    return False


def _viewing_lines(users: list[str], day: int, vid: str = "v1") -> list[bytes]:
    """One play/pause pair per user on day ``day`` (0-based, from T0), distinct times."""
    out = []
    for i, u in enumerate(users):
        s = day * 86400 + i * 60
        out.append(video_event(u, COURSE, "play_video", s, vid, 0.0, 0).render())
        out.append(video_event(u, COURSE, "pause_video", s + 30, vid, 25.0, 0).render())
    return out


@pytest.mark.slow
def test_damaged_and_unreadable_files_in_a_directory(dask_client, tmp_path):
    """Acceptance 2: an empty file, a truncated .gz, a .gz that is not gzip and an unreadable
    file beside good ones: the CLI commits (exit 0), every problem is reported per file in
    _run.json and as a warning on the terminal, and the tables are those of the readable
    lines. With nothing readable at all the run exits 1 and leaves the tables as they were; a
    missing input is a usage error (2)."""
    logs = tmp_path / "logs"
    logs.mkdir()
    good1 = _viewing_lines([f"a{i}.files" for i in range(20)], 0)
    good3 = _viewing_lines([f"b{i}.files" for i in range(1500)], 1, "v2")
    good6 = _viewing_lines([f"c{i}.files" for i in range(20)], 2, "v3")
    (logs / "tracking.log-1").write_bytes(_join(good1))
    (logs / "tracking.log-2").write_bytes(b"")
    gz = gzip.compress(_join(good3))
    (logs / "tracking.log-3.gz").write_bytes(gz[: len(gz) // 2])
    (logs / "tracking.log-4.gz").write_bytes(b"this is not gzip\n" + good1[0] + b"\n")
    unreadable = _unreadable(logs / "tracking.log-5")
    (logs / "tracking.log-6.gz").write_bytes(gzip.compress(_join(good6)))
    (logs / "README").write_text("not a log: a directory with tracking.log* files reads only those")

    out = tmp_path / "out"
    r = _cli(
        "run", str(logs), "--out", str(out), "--workers", "1", "--dashboard-address", "127.0.0.1:0"
    )
    assert r.returncode == 0, r.stderr
    run = json.loads((out / "_run.json").read_text())
    by = {Path(f["path"]).name: f for f in run["inputs"]}
    assert "README" not in by
    for f in by.values():
        assert f["lines"] == f["accepted"] + f["skipped"] + f["rejected_total"], f
    assert by["tracking.log-1"]["accepted"] == len(good1) and not by["tracking.log-1"]["errors"]
    assert by["tracking.log-2"]["lines"] == 0 and not by["tracking.log-2"]["errors"]
    prefix = zlib.decompressobj(wbits=31).decompress(gz[: len(gz) // 2])
    assert by["tracking.log-3.gz"]["errors"][0]["kind"] == "truncated_gzip"
    assert by["tracking.log-3.gz"]["lines"] == prefix.count(b"\n") + (not prefix.endswith(b"\n"))
    assert by["tracking.log-4.gz"]["errors"][0]["kind"] == "not_gzip"
    assert by["tracking.log-6.gz"]["accepted"] == len(good6)
    problems = ["tracking.log-3.gz", "tracking.log-4.gz"]
    if unreadable:
        assert by["tracking.log-5"]["lines"] == 0
        assert by["tracking.log-5"]["errors"][0]["kind"] == "unreadable"
        problems.append("tracking.log-5")
    warnings = [x for x in r.stderr.splitlines() if x.startswith("warning:")]
    for name in problems:
        kind = by[name]["errors"][0]["kind"]
        assert any(name in w and kind in w for w in warnings), (name, r.stderr)

    # the tables are those of the readable lines alone (the truncated file's readable prefix)
    want = tmp_path / "want"
    want.mkdir()
    (want / "tracking.log-1").write_bytes(_join(good1))
    (want / "tracking.log-3").write_bytes(prefix)
    (want / "tracking.log-6.gz").write_bytes(gzip.compress(_join(good6)))
    _run(dask_client, [want], tmp_path / "out_want")
    before = _snapshot(out)
    _assert_tables_equal(before, _tables(tmp_path / "out_want"))
    assert len(before["segments"]) > 40

    # nothing readable at all: nothing committed (exit 1), the previous tables stay
    dead = tmp_path / "dead"
    dead.mkdir()
    (dead / "tracking.log-4.gz").write_bytes(b"not gzip either\n")
    if unreadable:
        _unreadable(dead / "tracking.log-5")
    cur = os.readlink(out / "current")
    r = _cli(
        "run",
        str(dead),
        "--out",
        str(out),
        "--workers",
        "1",
        "--quiet",
        "--dashboard-address",
        "127.0.0.1:0",
    )
    assert r.returncode == 1, r.stderr
    assert "nothing committed" in r.stderr
    assert os.readlink(out / "current") == cur
    _assert_tables_equal(_snapshot(out), before, tuple(before))

    r = _cli("run", str(tmp_path / "no-such-dir"), "--out", str(out))
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1


def test_read_error_after_open_is_reported_not_fatal(dask_client, tmp_path):
    """Acceptance 2: a file that opens but fails on read (EIO, as on a failing disk or network
    filesystem; /proc/self/mem gives exactly that) is reported per file like any unreadable
    file; the run still commits the other files' lines."""
    logs = tmp_path / "logs"
    logs.mkdir()
    good = _viewing_lines([f"e{i}.eio" for i in range(5)], 0)
    (logs / "tracking.log-1").write_bytes(_join(good))
    (logs / "tracking.log-2").symlink_to("/proc/self/mem")
    try:
        (logs / "tracking.log-2").read_bytes()
    except OSError:
        pass
    else:  # pragma: no cover - not Linux
        pytest.skip("/proc/self/mem does not fail on read here")
    res = _run(dask_client, [logs], tmp_path / "out")
    by = {Path(f["path"]).name: f for f in res.summary["inputs"]}
    assert by["tracking.log-1"]["accepted"] == len(good)
    assert by["tracking.log-2"]["errors"] and by["tracking.log-2"]["lines"] == 0
    assert any("tracking.log-2" in w for w in res.warnings)  # what the CLI prints
    assert len(store.read_table(tmp_path / "out", "segments")) == 5


# ================================================================== 3. windows
NY = "America/New_York"


@pytest.mark.slow
def test_window_selects_local_days_with_lookback(dask_client, tmp_path):
    """Acceptance 3: --since/--until are local days of --tz (until included); a viewing that
    opened before the window and closes inside it is counted thanks to the lookback (24 h by
    default), and not without it."""
    utc = dt.UTC
    # (user, play time, pause time) in UTC; New York is UTC-5 in January
    viewings = {
        "a.lookback": (
            dt.datetime(2026, 1, 5, 4, 50, tzinfo=utc),
            dt.datetime(2026, 1, 5, 5, 10, tzinfo=utc),
        ),
        "b.before": (
            dt.datetime(2026, 1, 5, 3, 0, tzinfo=utc),
            dt.datetime(2026, 1, 5, 3, 30, tzinfo=utc),
        ),
        "c.after": (
            dt.datetime(2026, 1, 6, 4, 50, tzinfo=utc),
            dt.datetime(2026, 1, 6, 5, 5, tzinfo=utc),
        ),
        "d.lateutc": (
            dt.datetime(2026, 1, 6, 4, 0, tzinfo=utc),
            dt.datetime(2026, 1, 6, 4, 59, 59, tzinfo=utc),
        ),
        "e.earlyutc": (
            dt.datetime(2026, 1, 5, 1, 0, tzinfo=utc),
            dt.datetime(2026, 1, 5, 1, 30, tzinfo=utc),
        ),
        "f.longago": (
            dt.datetime(2026, 1, 4, 3, 0, tzinfo=utc),
            dt.datetime(2026, 1, 5, 5, 30, tzinfo=utc),
        ),
    }
    lines = []
    for user, (t1, t2) in viewings.items():
        for typ, t, x in (("play_video", t1, 2.0), ("pause_video", t2, 50.0)):
            ln = video_event(user, COURSE, typ, 0, "v1", x, 0)
            ln.fields["time"] = _iso(t)
            lines.append(ln.render())
    (tmp_path / "tracking.log").write_bytes(_join(lines))
    day = dt.date(2026, 1, 5)
    expect = {None: {"a.lookback", "d.lateutc"}, 0.0: {"d.lateutc"}}
    expect[30.0] = expect[None] | {"f.longago"}
    for hours, users in expect.items():
        out = tmp_path / f"out-{hours}"
        if hours == 30.0:
            # once through the command line, so that the flags themselves are what is tested
            r = _cli(
                "run",
                str(tmp_path / "tracking.log"),
                "--out",
                str(out),
                "--since",
                "2026-01-05",
                "--until",
                "2026-01-05",
                "--tz",
                NY,
                "--lookback-hours",
                "30",
                "--workers",
                "1",
                "--quiet",
                "--dashboard-address",
                "127.0.0.1:0",
            )
            assert r.returncode == 0, r.stderr
        else:
            kw = {} if hours is None else {"lookback_hours": hours}
            files = [tmp_path / "tracking.log"]
            _run(dask_client, files, out, since=day, until=day, tz=NY, **kw)
        seg = store.read_table(out, "segments")
        assert set(seg["username"]) == users, hours
        assert set(seg["date"]) == {dt.date(2026, 1, 5)}
        assert seg[["start_offset", "end_offset"]].drop_duplicates().values.tolist() == [
            [2.0, 50.0]
        ]


WEEK_TZ = "America/Los_Angeles"


@pytest.fixture(scope="module")
def week(tmp_path_factory):
    from dask_pipeline.generate import generate

    return generate(tmp_path_factory.mktemp("week") / "logs", users=25, courses=2, days=7, seed=11)


def _week_kw(week) -> dict:
    # the generator's whole course team as the staff list: who counts as course team then
    # does not depend on which days a window holds (SPEC §4 judges it per window)
    return {"tz": WEEK_TZ, "staff": frozenset(week.team_users)}


@pytest.fixture(scope="module")
def week_whole(dask_client, week, tmp_path_factory):
    """One run over the whole week (local days of WEEK_TZ), and a snapshot of its tables."""
    out = tmp_path_factory.mktemp("whole") / "out"
    first, last = dt.date(2026, 1, 4), dt.date(2026, 1, 11)
    _run(dask_client, week.files, out, since=first, until=last, **_week_kw(week))
    snap = _snapshot(out)
    assert len(set(snap["segments"]["date"])) >= 7
    return out, (first, last), snap


@pytest.mark.slow
def test_day_by_day_equals_one_run_over_the_week(dask_client, week, week_whole, tmp_path):
    """Acceptance 3: running each local day of a week into the same output directory gives
    exactly the segments of one run over the whole week."""
    _, (first, last), whole = week_whole
    out = tmp_path / "daily"
    d = first
    while d <= last:
        _run(dask_client, week.files, out, since=d, until=d, **_week_kw(week))
        d += dt.timedelta(days=1)
    pd.testing.assert_frame_equal(store.read_table(out, "segments"), whole["segments"])


# ================================================================== 4. idempotent
def _day_files(out: Path) -> dict[str, set[tuple[int, int]]]:
    """(inode, mtime) of the segment files of each date of the committed version."""
    ver = store.current_version(out)
    files: dict[str, set[tuple[int, int]]] = {}
    for f in store.segment_files(ver):
        st_ = f.stat()
        files.setdefault(f.parent.name.split("=", 1)[1], set()).add((st_.st_ino, st_.st_mtime_ns))
    return files


@pytest.mark.slow
def test_rerun_is_idempotent_and_replaces_only_its_days(dask_client, week, week_whole, tmp_path):
    """Acceptance 4: the same window twice gives identical tables; re-running one day replaces
    that day's segments partition (new files) and rebuilds the other tables, while the other
    days' files are the previous version's files (hard links: same inode and mtime)."""
    out, (first, last), whole = week_whole
    kw = _week_kw(week)
    _run(dask_client, week.files, out, since=first, until=last, **kw)
    _assert_tables_equal(_snapshot(out), whole, tuple(whole))

    day = dt.date(2026, 1, 7)
    before = _day_files(out)
    _run(dask_client, week.files, out, since=day, until=day, **kw)
    after = _day_files(out)
    _assert_tables_equal(_snapshot(out), whole)
    assert set(after) == set(before)
    for d in before:
        if d == day.isoformat():
            assert not (after[d] & before[d]), "the re-run day's partition was not replaced"
        else:
            assert after[d] == before[d], f"{d} was touched"

    # the same day again with one more viewing on it and one on the next day: the day gains
    # its viewing, the next day (outside the window) is left alone, views are rebuilt
    extra = tmp_path / "extra.log"
    noon = dt.datetime(2026, 1, 7, 12, tzinfo=ZoneInfo(WEEK_TZ))
    lines = []
    for k, t in enumerate((noon, noon + dt.timedelta(days=1))):
        for typ, s, x in (("play_video", 0, 1.0), ("pause_video", 20, 19.0)):
            ln = video_event("zz.new", COURSE, typ, 0, f"late{k}", x, 0)
            ln.fields["time"] = _iso(t + dt.timedelta(seconds=s))
            lines.append(ln.render())
    extra.write_bytes(_join(lines))
    before = after
    _run(dask_client, [*week.files, extra], out, since=day, until=day, **kw)
    after = _day_files(out)
    seg = store.read_table(out, "segments")
    new = seg[seg["username"] == "zz.new"]
    assert new[["video_id", "date", "start_offset", "end_offset"]].values.tolist() == [
        ["late0", dt.date(2026, 1, 7), 1.0, 19.0]
    ]
    for d in before:
        if d != day.isoformat():
            assert after[d] == before[d], f"{d} was touched"
    pd.testing.assert_frame_equal(
        seg[seg["username"] != "zz.new"].reset_index(drop=True), whole["segments"]
    )
    views = store.read_table(out, "views")
    assert views[views["username"] == "zz.new"]["video_id"].tolist() == ["late0"]
    assert len(views) == len(whole["views"]) + 1


# ================================================================== 5. atomic under SIGKILL
def _check_consistent(out: Path) -> str:
    """OUT is readable: current names a complete version, every link resolves through it and
    _run.json belongs to that version. Returns the version's name."""
    cur = store.current_version(out)
    assert cur is not None and (cur / store.RUN_JSON).is_file()
    for name in store.LINKED:
        link = out / name
        assert link.is_symlink() and link.resolve() == (cur / name).resolve(), name
        assert link.exists(), name
    assert json.loads((out / store.RUN_JSON).read_text())["run_id"] == cur.name
    for t in schema.TABLES:
        pd.read_parquet(out / t)  # another reader than ours opens it too
    return cur.name


@pytest.mark.slow
def test_sigkill_at_any_point_leaves_previous_or_new_state(dask_client, tmp_path):
    """Acceptance 5: the CLI killed with SIGKILL (with its whole process group: scheduler and
    workers) at several points, during start-up, while reading, while writing the segments and
    while writing the video tables, leaves OUT readable and equal to the previous state or
    (when the kill came after the commit) the new one, never a mix; the next run succeeds."""
    from dask_pipeline.generate import generate

    gen = generate(tmp_path / "logs", users=60, courses=2, days=4, seed=5, lines=10000)
    out = tmp_path / "out"
    # the previous state: two days, committed by an earlier run (in-process: it is quicker)
    _run(dask_client, gen.files[:2], out, staff=frozenset(gen.staff_users))
    _check_consistent(out)
    previous = _snapshot(out)
    base = [
        "run",
        "--out",
        str(out),
        "--workers",
        "1",
        "--quiet",
        "--dashboard-address",
        "127.0.0.1:0",
        "--staff-file",
        str(gen.staff_file),
    ]
    versions = out / store.VERSIONS

    def new_dirs(known: set[str]) -> list[Path]:
        return [p for p in versions.iterdir() if p.name not in known]

    points = {
        "0.5 s": lambda known: False,
        "2 s": lambda known: False,
        "segments": lambda known: any(
            any(p.glob("segments/date=*/*.parquet")) for p in new_dirs(known)
        ),
        "video tables": lambda known: any((p / "video_stats").exists() for p in new_dirs(known)),
    }
    observed = []
    log = tmp_path / "killed.err"
    for point, ready in points.items():
        known = {p.name for p in versions.iterdir()}
        with open(log, "w") as err:
            proc = subprocess.Popen(
                _cli_cmd(*base, str(gen.files[0].parent)),
                stdout=subprocess.DEVNULL,
                stderr=err,
                start_new_session=True,  # its own process group: we kill all of it
            )
        t0 = time.monotonic()
        wait = {"0.5 s": 0.5, "2 s": 2.0}.get(point, CLI_TIMEOUT)
        while time.monotonic() - t0 < wait and proc.poll() is None:
            if ready(known):
                break
            time.sleep(0.002)
        finished = proc.poll() is not None
        _kill_group(proc)
        committed = store.current_version(out).name not in known
        observed.append((point, finished, committed, _check_consistent(out), _snapshot(out)))

    r = _cli(*base, str(gen.files[0].parent))
    assert r.returncode == 0, r.stderr
    _check_consistent(out)
    new = _snapshot(out)
    assert not _same(previous, new)  # else the test could not tell the states apart
    before_commit = 0
    for point, finished, committed, _, snap in observed:
        want = new if committed else previous
        assert _same(snap, want), f"killed at {point}: OUT is neither the previous nor new state"
        before_commit += not committed and not finished
    # at least the start-up, reading and one write-phase kill landed before the commit
    assert before_commit >= 3, [(p, f, c) for p, f, c, *_ in observed]


# ================================================================== 6. privacy
KEY_ENV = "TRUST_TEST_PSEUDONYM_KEY"
KEY = "k3y-for-trust-tests-9f1c2d"


def _pseudo(name: str) -> str:
    return hmac.new(KEY.encode(), name.encode("utf-8"), hashlib.sha256).hexdigest()


def _usernames(paths: list[Path], extra: list[str]) -> set[str]:
    """Every username in the inputs: the username fields of every line (also of lines that
    are not valid JSON), whitespace stripped."""
    names = set(extra)
    pat = re.compile(rb'"username"\s*:\s*"((?:[^"\\]|\\.)*)"')
    for p in paths:
        for raw in _lines_of(p):
            for m in pat.finditer(raw):
                with contextlib.suppress(ValueError):
                    names.add(json.loads(b'"' + m.group(1) + b'"'))
    return {n.strip() for n in names if n.strip()}


def _scan_for(out: Path, names: set[str], key: str) -> list[str]:
    """Where any raw username (as UTF-8 or JSON-escaped) or the key occurs under OUT: the raw
    bytes of every file (.versions included), and the decoded values of every Parquet file
    (compression could hide them from a byte scan)."""
    import pyarrow.parquet as pq

    forms = {n.encode(): n for n in names} | {json.dumps(n)[1:-1].encode(): n for n in names}
    byte_pat = re.compile(b"|".join(re.escape(f) for f in sorted(forms, key=len, reverse=True)))
    text_pat = re.compile("|".join(re.escape(n) for n in sorted(names, key=len, reverse=True)))
    found = []
    for root, _, files in os.walk(out):
        for fn in files:
            p = Path(root) / fn
            if p.is_symlink():
                continue
            data = p.read_bytes()
            if key.encode() in data:
                found.append(f"{p}: the key")
            m = byte_pat.search(data)
            if m:
                found.append(f"{p}: {forms[m.group(0)]!r} in the bytes")
            if fn.endswith(".parquet"):
                table = pq.read_table(p)
                for col in table.column_names:
                    for v in table.column(col).to_pylist():
                        if isinstance(v, str) and (m := text_pat.search(v)):
                            found.append(f"{p}: {m.group(0)!r} in column {col}")
                            break
    return found


@pytest.mark.slow
def test_pseudonymized_outputs_name_no_user(dask_client, tmp_path):
    """Acceptance 6: with --pseudonymize-key-env every username in every table, in rejects/ and
    in _run.json is HMAC-SHA256(key, username); no file under OUT holds any raw username of the
    input (learners, course team, staff, users of rejected lines) nor the key; the same key
    gives the same pseudonyms in another run; a missing or empty variable exits 2."""
    from dask_pipeline.generate import generate

    gen = generate(tmp_path / "logs", users=15, courses=2, days=2, seed=9)
    # lines written for this test: a learner's viewing, then rejected lines that name users in
    # every way a log does: a bad time, a non-ASCII name (escaped by Python's json), a username
    # only under context, a cut line with the name also in a URL, a line cut inside the name
    hand = tmp_path / "hand" / "tracking.log-extra"
    hand.parent.mkdir()
    v = video_event("quinn.private", COURSE, "play_video", 5, "v1", 0.0, 0)
    p = video_event("quinn.private", COURSE, "pause_video", 40, "v1", 30.0, 0)
    bad_time = _set(v, "top", "time", "yesterday-ish")
    zoe = _set(_set(v, "top", "username", "zoë.privé"), "top", "time", "soon")
    ctx_only = _set(_set(v, "top", "username", ABSENT), "top", "time", "never")
    ctx_only.fields["context"]["username"] = "ctx.only.user"
    url = other_event(
        "ursula.url", COURSE, "/api/mobile/v0.5/users/ursula.url/course_enrollments/", 7
    )
    url_line = url.render()
    # a line cut inside a username: the visible part of the name must not show either
    cut_name = b'{"username": "victor.cut.in.half'
    full = other_event("victor.cut.in.half.x", COURSE, "/courses/x/", 8).render()
    lines = [
        v.render(),
        p.render(),
        bad_time.render(),
        zoe.render(),
        ctx_only.render(),
        url_line[: len(url_line) - 20],
        cut_name,
        full,
    ]
    hand.write_bytes(_join(lines))
    inputs = [*gen.files, hand]
    hand_names = ["quinn.private", "zoë.privé", "ctx.only.user", "ursula.url", "victor.cut.in.half"]
    names = _usernames(inputs, hand_names + list(gen.team_users) + list(gen.staff_users))

    out = tmp_path / "out"
    env = os.environ | {KEY_ENV: KEY}
    args = [
        "run",
        *map(str, inputs),
        "--out",
        str(out),
        "--staff-file",
        str(gen.staff_file),
        "--pseudonymize-key-env",
        KEY_ENV,
        "--workers",
        "1",
        "--quiet",
        "--dashboard-address",
        "127.0.0.1:0",
    ]
    r = _cli(*args, env=env)
    assert r.returncode == 0, r.stderr
    assert KEY not in r.stdout + r.stderr

    seg = store.read_table(out, "segments")
    assert _pseudo("quinn.private") in set(seg["username"])
    assert set(seg["username"].str.len()) == {64}
    assert set(store.read_table(out, "views")["username"]) <= set(seg["username"])
    rej = store.read_table(out, "rejects")
    texts = "\n".join(rej["text"])
    assert len(rej) >= 5
    assert _pseudo("quinn.private") in texts  # the bad-time line, pseudonymized not dropped
    assert _pseudo("zoë.privé") in texts  # the pseudonym of the name, not of its escaped text
    leaks = _scan_for(out, names, KEY)
    assert not leaks, leaks[:10]

    # the same key in another run gives the same pseudonyms
    res = _run(
        dask_client,
        inputs,
        tmp_path / "again",
        staff=frozenset(gen.staff_users),
        pseudonymize_key=KEY.encode(),
    )
    assert res.summary["counts"]["segments"] == len(seg)
    pd.testing.assert_frame_equal(store.read_table(tmp_path / "again", "segments"), seg)

    for value in (None, ""):
        env = {k: x for k, x in os.environ.items() if k != KEY_ENV}
        if value is not None:
            env[KEY_ENV] = value
        never = tmp_path / "never"
        r = _cli("run", str(hand), "--out", str(never), "--pseudonymize-key-env", KEY_ENV, env=env)
        assert r.returncode == 2, r.stderr
        assert KEY_ENV in r.stderr and len(r.stderr.strip().splitlines()) == 1
        assert not never.exists()


@pytest.mark.slow
def test_killed_pseudonymized_run_leaves_no_raw_username(tmp_path):
    """Acceptance 5 + 6: a pseudonymized run killed mid-way leaves no raw username under OUT
    either (the next run only clears its leftovers when it starts, maybe much later)."""
    from dask_pipeline.generate import generate

    gen = generate(tmp_path / "logs", users=15, courses=2, days=2, seed=9)
    bad = [
        _set(
            video_event(f"kim{i}.raw", COURSE, "play_video", i, "v1", 0.0, 0),
            "top",
            "time",
            "garbled",
        ).render()
        for i in range(50)
    ]
    hand = tmp_path / "hand.log"
    hand.write_bytes(_join(bad))
    out = tmp_path / "out"
    proc = subprocess.Popen(
        _cli_cmd(
            "run",
            str(gen.files[0].parent),
            str(hand),
            "--out",
            str(out),
            "--pseudonymize-key-env",
            KEY_ENV,
            "--workers",
            "1",
            "--quiet",
            "--dashboard-address",
            "127.0.0.1:0",
        ),
        env=os.environ | {KEY_ENV: KEY},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    t0 = time.monotonic()
    try:
        # kill as soon as anything of the run is on disk past the read stage
        while proc.poll() is None and time.monotonic() - t0 < CLI_TIMEOUT:
            if any((out / store.VERSIONS).glob("*/*/rejects/*.parquet")) or any(
                (out / store.VERSIONS).glob("*/segments/date=*/*.parquet")
            ):
                break
            time.sleep(0.002)
        assert proc.poll() is None, "the run ended before it could be killed"
    finally:
        _kill_group(proc)
    names = {f"kim{i}.raw" for i in range(50)} | _usernames(gen.files, [])
    leaks = _scan_for(out, names, KEY)
    assert not leaks, leaks[:10]


# ================================================================== 7. the dashboard's address
def _listening(pid: int) -> list[tuple[str, int]]:
    """(address, port) of every listening TCP socket of a process and its children."""
    import psutil

    root = psutil.Process(pid)
    out = []
    for p in [root, *root.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            out += [
                (c.laddr.ip, c.laddr.port)
                for c in p.net_connections(kind="inet")
                if c.status == psutil.CONN_LISTEN
            ]
    return out


@pytest.mark.slow
@pytest.mark.parametrize("address", [None, "0.0.0.0:0"], ids=["default", "all-interfaces"])
def test_dashboard_listens_on_loopback_unless_told(tmp_path, week, address):
    """Acceptance 7: the embedded cluster's dashboard (and every other socket it opens)
    listens on 127.0.0.1 by default; --dashboard-address 0.0.0.0:0 opens it on all
    interfaces. Checked on the live process while it runs, then in _run.json."""
    out = tmp_path / "out"
    err_path = tmp_path / "stderr"
    extra = [] if address is None else ["--dashboard-address", address]
    with open(err_path, "w") as err:
        proc = subprocess.Popen(
            _cli_cmd("run", str(week.files[0]), "--out", str(out), "--workers", "1", *extra),
            stdout=subprocess.DEVNULL,
            stderr=err,
            start_new_session=True,
        )
    try:
        t0 = time.monotonic()
        link = None
        while link is None and time.monotonic() - t0 < CLI_TIMEOUT and proc.poll() is None:
            m = re.search(r"dashboard: (http://\S+)", err_path.read_text())
            link = m.group(1) if m else None
            time.sleep(0.02)
        assert link, err_path.read_text()
        port = int(re.search(r":(\d+)/", link).group(1))
        sockets = _listening(proc.pid)
        on_port = {ip for ip, p in sockets if p == port}
        if address is None:
            assert on_port == {"127.0.0.1"}, sockets
            assert {ip for ip, _ in sockets} == {"127.0.0.1"}, sockets
            assert link.startswith("http://127.0.0.1:")
            assert proc.wait(timeout=CLI_TIMEOUT) == 0, err_path.read_text()
            run = json.loads((out / "_run.json").read_text())
            assert run["cluster"]["dashboard"].startswith("http://127.0.0.1:")
            assert run["options"]["dashboard_address"] == "127.0.0.1:8787"
        else:
            assert on_port and on_port <= {"0.0.0.0", "::"}, sockets
    finally:
        _kill_group(proc)


# ================================================================== 8. skew
@pytest.mark.slow
def test_a_bot_with_a_fifth_of_all_events_under_2gib_workers(tmp_path):
    """Acceptance 8: one user with a fifth of all events (a bot replaying videos all day) does
    not break a run on two workers limited to 2 GiB each, and all its segments are there."""
    from dask_pipeline.generate import generate

    gen = generate(tmp_path / "logs", users=60, courses=2, days=2, seed=13, lines=24000)
    pairs = gen.lines // 8  # bot lines = pairs * 2 = a quarter of the others: 1/5 of all
    bot = tmp_path / "bot" / "tracking.log-bot"
    bot.parent.mkdir()
    step = 2 * 86400 / pairs
    with open(bot, "wb") as f:
        for i in range(pairs):
            t = i * step
            vid = f"bot-v{i % 3}"
            f.write(video_event("crawler.bot", COURSE, "play_video", t, vid, 0.0, 0).render())
            f.write(b"\n")
            f.write(video_event("crawler.bot", COURSE, "pause_video", t + 1, vid, 1.0, 0).render())
            f.write(b"\n")
    out = tmp_path / "out"
    r = _cli(
        "run",
        str(gen.files[0].parent),
        str(bot),
        "--out",
        str(out),
        "--workers",
        "2",
        "--memory-limit",
        "2GiB",
        "--quiet",
        "--dashboard-address",
        "127.0.0.1:0",
    )
    assert r.returncode == 0, r.stderr
    seg = store.read_table(out, "segments")
    mine = seg[seg["username"] == "crawler.bot"]
    assert len(mine) == pairs
    assert mine[["start_offset", "end_offset"]].drop_duplicates().values.tolist() == [[0.0, 1.0]]
    run = json.loads((out / "_run.json").read_text())
    assert run["options"]["memory_limit"] == "2GiB" and run["cluster"]["workers"] == 2
    assert all(v < 2048 for v in run["cluster"]["worker_peak_rss_mib"].values())
