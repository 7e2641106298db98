"""Raw lines -> normalized video events, per-user activity and rejects (SPEC §2-§4).

Pure: bytes in, pandas frames out; no I/O, no Dask. ``PartDecoder`` is fed blocks of whole
lines and keeps only what the job needs: the video events (with their input order), the
per-(course, user) activity that the course-team and activity filters use, rejected lines
with their reason, and counts. Browser payloads (JSON strings) are decoded a second time,
only for video events.
"""

from __future__ import annotations

import gc
import json
import math
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import msgspec
import numpy as np
import pandas as pd
from msgspec.structs import astuple

from . import prefilter, schema, vocabulary

#: A numeric string in the payload (SPEC §2: "12.5", "1.25"); nothing else is a number.
NUM_RE = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
REJECT_TEXT_MAX = 4096  # characters of a rejected line kept in rejects/

# Reasons a line is rejected (SPEC §3).
BAD_ENCODING = "bad_encoding"
NOT_JSON = "not_json"
NOT_OBJECT = "not_object"
TOO_DEEP = "too_deep"
BAD_TIME = "bad_time"
BAD_PAYLOAD = "bad_payload"
MISSING_VIDEO_ID = "missing_video_id"
MISSING_NUMBER = "missing_number"


class _Ctx(msgspec.Struct):
    course_id: Any = None
    username: Any = None  # the eventtracking layout keeps the username here


class _Line(msgspec.Struct):
    username: Any = None
    time: Any = None
    event_type: Any = None
    name: Any = None
    event: msgspec.Raw = msgspec.Raw(b"null")
    context: _Ctx | None = None
    # eventtracking layout (event-routing-backends): time and payload under other names
    timestamp: Any = None
    data: msgspec.Raw = msgspec.Raw(b"null")


class _RawLine(msgspec.Struct):
    """Fallback layout: every field raw, decoded one by one, so that one odd field (a huge
    number, a context that is not an object) spoils only itself."""

    username: msgspec.Raw = msgspec.Raw(b"null")
    time: msgspec.Raw = msgspec.Raw(b"null")
    event_type: msgspec.Raw = msgspec.Raw(b"null")
    name: msgspec.Raw = msgspec.Raw(b"null")
    event: msgspec.Raw = msgspec.Raw(b"null")
    context: msgspec.Raw = msgspec.Raw(b"null")
    timestamp: msgspec.Raw = msgspec.Raw(b"null")
    data: msgspec.Raw = msgspec.Raw(b"null")


class _Payload(msgspec.Struct):
    id: Any = None
    code: Any = None
    duration: Any = None
    currentTime: Any = None  # noqa: N815 - the event's own field name
    current_time: Any = None
    old_time: Any = None
    new_time: Any = None
    old_speed: Any = None
    new_speed: Any = None


class _RawPayload(msgspec.Struct):
    id: msgspec.Raw = msgspec.Raw(b"null")
    code: msgspec.Raw = msgspec.Raw(b"null")
    duration: msgspec.Raw = msgspec.Raw(b"null")
    currentTime: msgspec.Raw = msgspec.Raw(b"null")  # noqa: N815
    current_time: msgspec.Raw = msgspec.Raw(b"null")
    old_time: msgspec.Raw = msgspec.Raw(b"null")
    new_time: msgspec.Raw = msgspec.Raw(b"null")
    old_speed: msgspec.Raw = msgspec.Raw(b"null")
    new_speed: msgspec.Raw = msgspec.Raw(b"null")


_line_dec = msgspec.json.Decoder(_Line)
_raw_line_dec = msgspec.json.Decoder(_RawLine)
_payload_dec = msgspec.json.Decoder(_Payload)
_raw_payload_dec = msgspec.json.Decoder(_RawPayload)
_ctx_dec = msgspec.json.Decoder(_Ctx)
_any_dec = msgspec.json.Decoder()
_str_dec = msgspec.json.Decoder(str)

_NO_PAYLOAD = _Payload()
_NULL = msgspec.Raw(b"null")


def number(x: object) -> float | None:
    """SPEC §2: a JSON number or a numeric string, as a finite float; else None."""
    t = type(x)
    if t is float:
        return x if x - x == 0.0 else None  # type: ignore[operator]  # finite
    if t is int:
        try:
            return float(x)  # type: ignore[arg-type]
        except OverflowError:
            return None
    if t is str and NUM_RE.fullmatch(x):  # type: ignore[arg-type]
        try:
            f = float(x)  # type: ignore[arg-type]
        except (ValueError, OverflowError):
            return None
        return f if math.isfinite(f) else None
    return None


_NON_FINITE = re.compile(rb"NaN|Infinity")


def _lenient(text: bytes | str) -> bytes | None:
    """SPEC §2: Python's json, which writes the tracking logs, spells NaN and infinities as
    the bare literals NaN, Infinity and -Infinity, which strict JSON lacks. Such text is read
    with Python's json and re-encoded by msgspec, which writes non-finite numbers as null: the
    value is then missing like any other non-number. None when it is not JSON even so."""
    raw = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else bytes(text)
    if not _NON_FINITE.search(raw):
        return None
    try:
        return msgspec.json.encode(json.loads(raw))
    except (ValueError, TypeError, OverflowError, RecursionError, msgspec.EncodeError):
        return None


def _decode_lenient_line(text: bytes) -> _Line | None:
    """A line that is JSON but for NaN / Infinity literals, decoded with them as null."""
    fixed = _lenient(text)
    if fixed is None:
        return None
    try:
        return _decode_line(fixed)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
        return None


def _offsets(et: str, p: _Payload) -> tuple:
    """(current_time, old_time, new_time, old_speed, new_speed, missing) of a video payload:
    only the numbers the event's rule needs decide ``missing`` (SPEC §2). currentTime and
    current_time stand in for each other, the event's own spelling first."""
    num = number
    if et == vocabulary.SEEK:
        old_t, new_t = num(p.old_time), num(p.new_time)
        return None, old_t, new_t, None, None, old_t is None or new_t is None
    if et == vocabulary.SPEED:
        cur = num(p.current_time)
        if cur is None:
            cur = num(p.currentTime)
        old_s, new_s = num(p.old_speed), num(p.new_speed)
        return cur, None, None, old_s, new_s, cur is None or old_s is None or new_s is None
    cur = num(p.currentTime)
    if cur is None:
        cur = num(p.current_time)
    return cur, None, None, None, None, cur is None and et in vocabulary.REQUIRED_NUMBERS


def _field(raw: msgspec.Raw) -> Any:
    try:
        return _any_dec.decode(raw)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
        return None


def _decode_line(text: bytes) -> _Line:
    """The fields the job reads; raises msgspec.DecodeError / RecursionError when the text
    is not JSON, msgspec.ValidationError when it is JSON but not an object."""
    try:
        return _line_dec.decode(text)
    except msgspec.ValidationError:
        pass
    r = _raw_line_dec.decode(text)  # raises ValidationError when not an object
    ctx = r.context
    try:
        context = _ctx_dec.decode(ctx)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
        context = None
    return _Line(
        username=_field(r.username),
        time=_field(r.time),
        event_type=_field(r.event_type),
        name=_field(r.name),
        event=r.event,
        context=context if isinstance(context, _Ctx) else None,
        timestamp=_field(r.timestamp),
        data=r.data,
    )


def _decode_payload(raw: msgspec.Raw) -> _Payload | None:
    """The video payload: a JSON object, or a string holding one (browser events). None
    when it is neither."""
    view = memoryview(raw)
    if view[:1] == b'"':  # browser: a JSON string holding the object
        try:
            inner = _str_dec.decode(view)
        except (msgspec.ValidationError, msgspec.DecodeError):
            return None
        try:
            return _payload_dec.decode(inner)
        except msgspec.ValidationError:
            return _decode_raw_payload(inner)
        except RecursionError:
            return None
        except msgspec.DecodeError:
            fixed = _lenient(inner)  # NaN / Infinity literals: missing numbers
            return None if fixed is None else _decode_payload(msgspec.Raw(fixed))
    try:
        return _payload_dec.decode(view)
    except msgspec.ValidationError:  # not an object, or an odd field inside it
        return _decode_raw_payload(view)
    except (msgspec.DecodeError, RecursionError):
        return None


def _decode_raw_payload(raw: bytes | str | msgspec.Raw) -> _Payload | None:
    try:
        r = _raw_payload_dec.decode(raw)
    except (msgspec.ValidationError, msgspec.DecodeError, RecursionError):
        return None
    return _Payload(**{f: _field(getattr(r, f)) for f in _Payload.__struct_fields__})


_payload_lines_dec = msgspec.json.Decoder(_Payload)
_strs_dec = msgspec.json.Decoder(list[str])


def _payloads(raws: list) -> list:
    """``_decode_payload`` of every raw payload, in a few decoder calls instead of one or two
    per event; a group holding any odd payload is decoded one by one."""
    out: list = [None] * len(raws)
    quoted = [memoryview(r)[0] == 34 for r in raws]  # a JSON string: a browser payload
    browser = [k for k, q in enumerate(quoted) if q]
    mobile = [k for k, q in enumerate(quoted) if not q]
    for group, is_str in ((browser, True), (mobile, False)):
        if not group:
            continue
        got = _bulk_payloads([raws[k] for k in group], is_str)
        if got is None:
            got = [_decode_payload(raws[k]) for k in group]
        for k, p in zip(group, got, strict=True):
            out[k] = p
    return out


def _bulk_payloads(raws: list, is_str: bool) -> list | None:
    """Payload objects (JSON strings holding them when ``is_str``) decoded as one
    newline-delimited text; None unless every one is a plain JSON object on its own line."""
    try:
        texts = _strs_dec.decode(b"[" + b",".join(raws) + b"]") if is_str else raws
        joined = "\n".join(texts) if is_str else b"\n".join(texts)
        if joined.count("\n" if is_str else b"\n") != len(raws) - 1:
            return None  # a payload holding a newline would span lines
        got = _payload_lines_dec.decode_lines(joined)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
        return None
    return got if len(got) == len(raws) else None


def _floats(values: list) -> np.ndarray:
    """``number`` of every value as float64 (NaN for None): NumPy converts them at once
    when they are all JSON numbers or null, else one by one."""
    if set(map(type, values)) <= _PLAIN_NUMBERS:
        try:
            a = np.array(values, dtype=np.float64)
        except OverflowError:  # an integer beyond float range: number() makes it None
            pass
        else:
            a[~np.isfinite(a)] = np.nan
            return a
    return np.array([None if v is None else number(v) for v in values], dtype=np.float64)


_PLAIN_NUMBERS = {float, int, type(None)}
_SEEK_K, _SPEED_K, _NEEDS_CUR_K = 1, 2, 3
_RULE_KIND = {vocabulary.SEEK: _SEEK_K, vocabulary.SPEED: _SPEED_K}
_RULE_KIND |= {e: _NEEDS_CUR_K for e in vocabulary.REQUIRED_NUMBERS if e not in _RULE_KIND}


def _offset_columns(ets: list[str], pays: list) -> tuple[dict, np.ndarray]:
    """``_offsets`` over many events at once: the float columns of ``_FLOAT_COLS`` and the
    mask of events missing a number their rule needs."""

    fields = dict(
        zip(_Payload.__struct_fields__, zip(*map(astuple, pays), strict=True), strict=True)
    )

    def col(name: str) -> np.ndarray:
        return _floats(fields[name])

    kind = np.array([_RULE_KIND.get(e, 0) for e in ets], dtype=np.int8)
    seek, speed = kind == _SEEK_K, kind == _SPEED_K
    a, b = col("currentTime"), col("current_time")  # each rule's own spelling first
    cur = np.where(speed, np.where(np.isnan(b), a, b), np.where(np.isnan(a), b, a))
    cur[seek] = np.nan
    old_t, new_t, old_s, new_s = (
        col("old_time"),
        col("new_time"),
        col("old_speed"),
        col("new_speed"),
    )
    old_t[~seek] = new_t[~seek] = np.nan
    old_s[~speed] = new_s[~speed] = np.nan
    nan = np.isnan
    missing = (seek & (nan(old_t) | nan(new_t))) | (kind == _NEEDS_CUR_K) & nan(cur)
    missing |= speed & (nan(cur) | nan(old_s) | nan(new_s))
    cols = dict(zip(_FLOAT_COLS, (col("duration"), cur, old_t, new_t, old_s, new_s), strict=True))
    return cols, missing


@dataclass
class Window:
    """Which events a run uses, as UTC microseconds (None: unbounded).

    Video events are kept from ``events_from`` (the window start less the lookback) to
    ``until``; activity (the filters' counts) from ``since`` to ``until``.
    """

    since: int | None = None
    until: int | None = None
    events_from: int | None = None

    @property
    def bounded(self) -> bool:
        return self.since is not None or self.until is not None


@dataclass
class Decoded:
    """What one part yields."""

    events: pd.DataFrame  # schema.EVENTS
    activity: pd.DataFrame  # schema.ACTIVITY
    rejects: pd.DataFrame  # schema.REJECTS (line numbers as numbered by the decoder)
    lines: int = 0
    accepted: int = 0
    skipped: int = 0
    rejected: Counter = field(default_factory=Counter)
    counts: Counter = field(default_factory=Counter)
    min_time: int | None = None  # UTC microseconds of the earliest accepted video event
    max_time: int | None = None


_EVENT_COLS = (
    "course_id",
    "username",
    "event_type",
    "video_id",
    "code",
    "duration",
    "current_time",
    "old_time",
    "new_time",
    "old_speed",
    "new_speed",
    "line",
)
_FLOAT_COLS = _EVENT_COLS[5:11]


def _row(
    course: str, user: str, et: str, vid: str, p: _Payload, offs: tuple, line_no: int
) -> tuple:
    """The one place a video event becomes a tuple of ``_EVENT_COLS`` (``offs`` as returned by
    ``_offsets``)."""
    code = p.code
    cur, old_t, new_t, old_s, new_s, _ = offs
    return (
        course,
        user,
        et,
        vid.strip(),
        code if type(code) is str else None,
        number(p.duration),
        cur,
        old_t,
        new_t,
        old_s,
        new_s,
        line_no,
    )


class PartDecoder:
    """Accumulates the decoded content of one part, block by block.

    ``path`` names the file in rejects; ``file`` is its index in the input order; line
    numbers start at ``first_line``.
    """

    def __init__(
        self,
        path: str,
        file: int,
        first_line: int = 1,
        window: Window | None = None,
        count_activity: bool = True,
    ):
        self.path = path
        self.count_activity = count_activity
        self._kind_cache: dict[str, int] = {}
        self.file = file
        self.next_line = first_line
        self.window = window or Window()
        self._rows: list[tuple] = []  # one tuple of _EVENT_COLS per video event of a block
        self._chunks: list[pd.DataFrame] = []  # the earlier blocks' rows, columnar
        self._times: list[str] = []  # time strings of this block's video rows
        self._time_index: list[int] = []  # their line index within the block
        self._time_chunks: list[np.ndarray] = []  # parsed times of earlier blocks (int64 µs)
        self._activity: dict[tuple[str, str], list] = {}
        self._act_times: list[str] = []
        self._act_keys: list[tuple[str, str, bool]] = []
        self._rejects: list[tuple[int, str, str]] = []
        self._scanner = prefilter.Scanner()
        self.lines = 0
        self.skipped = 0
        self.rejected: Counter = Counter()
        self.counts: Counter = Counter()

    # -- rejects ---------------------------------------------------------------------
    def _reject(self, line_no: int, reason: str, text: bytes) -> None:
        self.rejected[reason] += 1
        text = bytes(text[:REJECT_TEXT_MAX])  # a line may be a view of the block
        self._rejects.append((line_no, reason, text.decode("utf-8", "replace")))

    # -- the hot loop ----------------------------------------------------------------
    def feed(self, block: bytes | memoryview) -> None:
        """Decode a block of whole lines (the last line may lack its newline). The block is
        not kept: it may be a view of a buffer the reader reuses."""
        if not len(block):
            return
        gc_was = gc.isenabled()
        gc.disable()  # the loops allocate many small objects that are never cyclic
        try:
            if self.count_activity:
                self._feed_all(bytes(block))
            else:
                self._feed_needed(block)
            self._flush_rows()
        finally:
            if gc_was:
                gc.enable()

    def _advance(self, n: int) -> int:
        """Count ``n`` more lines; the number of the first."""
        first = self.next_line
        self.next_line += n
        self.lines += n
        return first

    def _feed_all(self, block: bytes) -> None:
        """Every line decoded: the activity floor counts every line's (course, user)."""
        nl = block.count(b"\n")
        n = nl if block.endswith(b"\n") else nl + 1
        first = self._advance(n)
        numbers = range(first, first + n)
        objs = self._decode_clean_block(block, n)
        if objs is None:
            lines = block.split(b"\n")[:n]
            self._feed_lines(lines, numbers)
        else:
            lines = _BlockLines(block)
            self._feed_objects(objs, lines, numbers)
        self._parse_block_times(lines.__getitem__)

    def _feed_needed(self, block: bytes | memoryview) -> None:
        """Only the lines ``prefilter`` says the job needs are decoded; the others are
        accepted unread (prefilter's docstring says which, and why nothing is lost)."""
        found = self._scanner.needed(block)
        if found is None:  # not UTF-8 somewhere: the same rule, line by line
            every = bytes(block).split(b"\n")
            if not every[-1]:
                every.pop()
            first = self._advance(len(every))
            keep = [i for i, text in enumerate(every) if not prefilter.unread(text)]
            lines = [every[i] for i in keep]
            numbers = [first + i for i in keep]
        else:
            idx, starts, ends = found
            first = self._advance(len(starts))
            view = memoryview(block)
            lines = [
                view[a:b] for a, b in zip(starts[idx].tolist(), ends[idx].tolist(), strict=True)
            ]
            numbers = (idx + first).tolist()
        if not lines:
            return
        objs = self._decode_clean_block(b"\n".join(lines), len(lines))
        if objs is None:
            lines = [bytes(x) for x in lines]  # views of the block until here
            self._feed_lines(lines, numbers)
        else:
            self._feed_objects(objs, lines, numbers)
        self._parse_block_times(lines.__getitem__)

    def _parse_block_times(self, line_at) -> None:
        """Parse the times of this block's video rows in one go; a row whose time is not a
        time is rejected (its text fetched by ``line_at(index in block)``)."""
        times = _parse_times(self._times).astype("int64")
        bad = times == _NAT
        if bad.any():
            for k in np.flatnonzero(bad).tolist():
                i = self._time_index[k]
                row = self._rows[len(self._rows) - len(times) + k]
                self._reject(row[-1], BAD_TIME, line_at(i))
        self._time_chunks.append(times)
        self._times, self._time_index = [], []

    @staticmethod
    def _decode_clean_block(block: bytes, n: int) -> list | None:
        """The block's lines decoded in one call, when every line is a plain JSON object
        (no blank, comment, prefixed, CRLF or non-UTF-8 line, no bad JSON); else None."""
        # A blank, comment or prefixed line makes decode_lines fail or return fewer objects.
        if block[:1] != b"{":
            return None
        try:
            block.decode("utf-8")
            objs = _line_dec.decode_lines(block)
        except (UnicodeDecodeError, msgspec.DecodeError, msgspec.ValidationError, RecursionError):
            return None
        return objs if len(objs) == n else None

    def _feed_objects(self, objs: list, lines, numbers) -> None:
        """Fast path: classify every line by its event type in bulk, then look closer only at
        the lines that matter (video events; team events; all when counting activity)."""
        cache = self._kind_cache
        kinds = []
        for o in objs:
            et = o.event_type
            k = cache.get(et) if type(et) is str else _ODD
            if k is None:
                k = cache[et] = _kind_of(et)
            kinds.append(k)
        kinds_a = np.array(kinds, dtype=np.int8)
        self._videos_fast(objs, np.flatnonzero(kinds_a == _VIDEO).tolist(), numbers, lines)
        if self.count_activity:
            rest = np.flatnonzero(kinds_a != _VIDEO).tolist()
        else:
            rest = np.flatnonzero((kinds_a != _VIDEO) & (kinds_a != _OTHER)).tolist()
        for i in rest:
            self._handle(objs[i], numbers[i], i, lines)

    def _videos_fast(self, objs: list, todo: list[int], numbers, lines) -> None:
        """The usual browser or mobile video events, as columns (``_video_columns``); anything
        unusual goes through ``_handle``. Same outcome as ``_handle`` for every line (the
        tests hold both)."""
        plain = []
        for i in todo:
            o = objs[i]
            ctx = o.context
            if (
                type(o.username) is str
                and type(o.time) is str
                and ctx is not None
                and type(ctx.course_id) is str
                and o.event != _NULL
            ):
                plain.append(i)
            else:
                self._handle(o, numbers[i], i, lines)
        if plain:
            self._video_columns([objs[i] for i in plain], plain, numbers, lines)

    def _video_columns(self, sel: list, where: list[int], numbers, lines) -> None:
        """Video events ``sel`` (lines ``where`` of the block) to a columnar chunk: payloads
        decoded in bulk, numbers converted by NumPy; rejects as ``_video`` makes them."""
        courses = [o.context.course_id.strip() for o in sel]
        users = [o.username.strip() for o in sel]
        pays = _payloads([o.event for o in sel])
        ok = []
        anonymous = 0
        for k, p in enumerate(pays):
            if not courses[k]:
                continue
            if not users[k]:
                anonymous += 1
                continue
            vid = p.id if p is not None else None
            if type(vid) is not str or not vid.strip():
                i = where[k]
                self._handle(sel[k], numbers[i], i, lines)  # rejects it, with its reason
                continue
            ok.append(k)
        if anonymous:
            self.counts["anonymous_video_events"] += anonymous
        if not ok:
            return
        aliases = vocabulary.ALIASES
        ets = [aliases.get(e, e) for e in (sel[k].event_type for k in ok)]
        cols, missing = _offset_columns(ets, [pays[k] for k in ok])
        for j in np.flatnonzero(missing).tolist():
            i = where[ok[j]]
            self._reject(numbers[i], MISSING_NUMBER, lines[i])
        keep = np.flatnonzero(~missing)
        ok = [ok[j] for j in keep.tolist()]
        if not ok:
            return
        cols = {c: v[keep] for c, v in cols.items()}
        cols["course_id"] = [courses[k] for k in ok]
        cols["username"] = [users[k] for k in ok]
        cols["event_type"] = [ets[j] for j in keep.tolist()]
        cols["video_id"] = [pays[k].id.strip() for k in ok]
        cols["code"] = [c if type(c) is str else None for c in (pays[k].code for k in ok)]
        cols["line"] = [numbers[where[k]] for k in ok]
        us = _parse_times([sel[k].time for k in ok]).astype("int64")
        for j in np.flatnonzero(us == _NAT).tolist():
            i = where[ok[j]]
            self._reject(numbers[i], BAD_TIME, lines[i])
        self._chunks.append(self._chunk(cols, us))

    def _feed_lines(self, lines: list[bytes], numbers) -> None:
        """Slow path, line by line: comments, prefixes, CRLF, bad lines."""
        for i, text in enumerate(lines):
            line_no = numbers[i]
            if text.endswith(b"\r"):
                text = text[:-1]
            if text[:1] != b"{":
                stripped = text.strip()
                if not stripped or stripped[:1] == b"#":
                    self.skipped += 1
                    continue
                brace = text.find(b"{")  # syslog prefix before the JSON object
                if brace < 0:
                    self._reject(line_no, _classify_non_object(stripped), text)
                    continue
                text = text[brace:]
            try:
                text.decode("utf-8")
            except UnicodeDecodeError:
                self._reject(line_no, BAD_ENCODING, text)
                continue
            try:
                d = _decode_line(text)
            except msgspec.ValidationError:
                self._reject(line_no, NOT_OBJECT, text)
                continue
            except msgspec.DecodeError:
                d = _decode_lenient_line(text)  # NaN / Infinity literals: missing numbers
                if d is None:
                    self._reject(line_no, NOT_JSON, text)
                    continue
            except RecursionError:
                self._reject(line_no, TOO_DEEP, text)
                continue
            self._handle(d, line_no, i, _Fixed(text))

    def _handle(self, d: _Line, line_no: int, index: int, lines) -> None:
        """One decoded line: a video event, or activity for the filters."""
        et = d.event_type
        if type(et) is str:
            et = vocabulary.ALIASES.get(et, et)
        else:
            et = vocabulary.legacy_name(et, d.name) or ""
        ctx = d.context
        course = ctx.course_id if ctx is not None else None
        user = d.username
        if user is None and ctx is not None:
            user = ctx.username
        user = user.strip() if type(user) is str else ""
        course = course.strip() if type(course) is str else ""
        if not course:
            return
        if et in vocabulary.VIDEO_EVENTS:
            if not user:
                self.counts["anonymous_video_events"] += 1
                return
            self._video(d, et, course, user, line_no, index, lines)
            return
        if not user:
            return
        team = vocabulary.is_team_event(et)
        if not (team or self.count_activity):
            return
        # times are parsed for a bounded run's window and for the days a team member was
        # seen; the other events of an unbounded run are only counted
        if self.window.bounded or team:
            t = d.time if d.time is not None else d.timestamp
            if type(t) is not str:
                if self.window.bounded:
                    self._reject(line_no, BAD_TIME, lines[index])
                    return
                t = ""  # counted, with no time
            self._act_times.append(t)
            self._act_keys.append((course, user, team))
            return
        a = self._activity.get((course, user))  # _count, inline: every line of --min-events
        if a is None:
            self._activity[(course, user)] = [1, False, _NAT, _NAT]
        else:
            a[0] += 1

    def _video(
        self, d: _Line, et: str, course: str, user: str, line_no: int, index: int, lines
    ) -> None:
        """Append one video event, or reject it (texts are fetched only for rejects)."""
        t = d.time if d.time is not None else d.timestamp
        if type(t) is not str:
            self._reject(line_no, BAD_TIME, lines[index])
            return
        raw = d.event if d.data == _NULL or d.event != _NULL else d.data
        p = _decode_payload(raw)
        if p is None:
            p = _NO_PAYLOAD
        vid = p.id
        if type(vid) is not str or not vid.strip():
            why = BAD_PAYLOAD if p is _NO_PAYLOAD else MISSING_VIDEO_ID
            self._reject(line_no, why, lines[index])
            return
        # only the numbers this event's rule needs decide whether it is usable
        offs = _offsets(et, p)
        if offs[-1]:
            self._reject(line_no, MISSING_NUMBER, lines[index])
            return
        self._rows.append(_row(course, user, et, vid, p, offs, line_no))
        self._times.append(t)
        self._time_index.append(index)

    # -- the end ---------------------------------------------------------------------
    def _flush_rows(self) -> None:
        """Turn the rows gathered so far into a columnar chunk: a frame takes a fraction of
        the memory of the Python tuples, so a large file never holds them all at once."""
        if not self._rows:
            self._time_chunks = []
            return
        c = dict(zip(_EVENT_COLS, map(list, zip(*self._rows, strict=True)), strict=True))
        self._rows = []
        us = np.concatenate(self._time_chunks)
        self._time_chunks = []
        self._chunks.append(self._chunk(c, us))

    def _chunk(self, c: dict, us: np.ndarray) -> pd.DataFrame:
        """A schema.EVENTS chunk from columns (lists or arrays) named as ``_EVENT_COLS`` and
        the times as int64 microseconds."""
        return pd.DataFrame(
            {
                "course_id": schema.strings(c["course_id"]),
                "username": schema.strings(c["username"]),
                "time": us,
                "event_type": schema.strings(c["event_type"]),
                "video_id": schema.strings(c["video_id"]),
                "code": schema.strings(c["code"]),
                **{f: np.asarray(c[f], dtype="float64") for f in _FLOAT_COLS},
                "file": np.full(len(us), self.file, dtype="int32"),
                "line": np.asarray(c["line"], dtype="int64"),
            }
        )

    def finish(self) -> Decoded:
        """The part's frames and counts. Video events with an unparseable time become
        rejects; events outside the window are dropped (counted)."""
        w = self.window
        self._flush_rows()
        if self._chunks:
            events = pd.concat(self._chunks, ignore_index=True)
        else:
            events = schema.empty(schema.EVENTS).assign(time=np.zeros(0, "int64"))
        self._chunks = []
        us = events["time"].to_numpy()
        keep = us != _NAT
        valid = keep.copy()
        if w.events_from is not None:
            keep &= us >= w.events_from
        if w.until is not None:
            keep &= us < w.until
        self.counts["video_events_outside_window"] += int(valid.sum() - keep.sum())
        if w.events_from is not None:  # older than the window less the lookback (SPEC §7)
            self.counts["late_video_events"] += int((valid & (us < w.events_from)).sum())
        events["time"] = pd.array(us.view("datetime64[us]"), dtype="datetime64[us]")
        events["time"] = events["time"].dt.tz_localize("UTC")
        all_valid = events[valid]
        min_time = int(us[valid].min()) if valid.any() else None
        max_time = int(us[valid].max()) if valid.any() else None
        events = events[keep].reset_index(drop=True)
        self._tally_activity(all_valid, us[valid])
        activity = self._activity_frame()
        rejects = pd.DataFrame(
            {
                "file": schema.strings([self.path] * len(self._rejects)),
                "line": np.array([r[0] for r in self._rejects], dtype="int64"),
                "reason": schema.strings([r[1] for r in self._rejects]),
                "text": schema.strings([r[2] for r in self._rejects]),
            }
        )
        self.counts["video_events"] += len(events)
        rejected_total = sum(self.rejected.values())
        return Decoded(
            events=schema.conform(events, schema.EVENTS),
            activity=activity,
            rejects=rejects.sort_values("line", kind="stable").reset_index(drop=True),
            lines=self.lines,
            accepted=self.lines - self.skipped - rejected_total,
            skipped=self.skipped,
            rejected=Counter(self.rejected),
            counts=Counter(self.counts),
            min_time=min_time,
            max_time=max_time,
        )

    def _tally_activity(self, video: pd.DataFrame, video_us: np.ndarray) -> None:
        """Add video events (when counting activity) and the timed other events (a bounded
        run's; team events always) to activity, counting only events inside [since, until)."""
        w = self.window
        in_window = np.ones(len(video_us), dtype=bool)
        if w.since is not None:
            in_window &= video_us >= w.since
        if w.until is not None:
            in_window &= video_us < w.until
        sub = video[in_window]
        if len(sub) and self.count_activity:
            grouped = sub.groupby(["course_id", "username"], sort=False).size()
            for (course, user), k in grouped.items():
                self._count(course, user, int(k), False, _NAT)
        if self._act_keys:
            times = _parse_times(self._act_times).astype("int64")
            ok = times != _NAT if w.bounded else np.ones(len(times), bool)
            if w.since is not None:
                ok &= times >= w.since
            if w.until is not None:
                ok &= times < w.until
            for keep, t, (course, user, team) in zip(
                ok.tolist(), times.tolist(), self._act_keys, strict=True
            ):
                if keep:
                    self._count(course, user, 1, team, t if team else _NAT)
            self._act_keys, self._act_times = [], []

    def _count(self, course: str, user: str, n: int, team: bool, t: int) -> None:
        """``n`` more events of (course, user); ``team`` when one is a team event, at UTC
        microseconds ``t`` (_NAT: no usable time)."""
        a = self._activity.get((course, user))
        if a is None:
            a = self._activity[(course, user)] = [0, False, _NAT, _NAT]
        a[0] += n
        if team:
            a[1] = True
            if t != _NAT:
                a[2] = t if a[2] == _NAT else min(a[2], t)
                a[3] = max(a[3], t)

    def _activity_frame(self) -> pd.DataFrame:
        """schema.ACTIVITY: a row per (course, user), and a second one (no events) with the
        last team-event time when it differs from the first."""
        keys = list(self._activity)
        vals = list(self._activity.values())
        last = [(k, v[3]) for k, v in zip(keys, vals, strict=True) if v[3] != v[2]]
        return pd.DataFrame(
            {
                "course_id": schema.strings([k[0] for k in keys] + [k[0] for k, _ in last]),
                "username": schema.strings([k[1] for k in keys] + [k[1] for k, _ in last]),
                "events": np.array([v[0] for v in vals] + [0] * len(last), dtype="int64"),
                "team": np.array([v[1] for v in vals] + [True] * len(last), dtype="bool"),
                "time": _utc([v[2] for v in vals] + [t for _, t in last]),
            }
        )


_OTHER, _VIDEO, _TEAM, _ODD = 0, 1, 2, 3


def _kind_of(event_type: str) -> int:
    """How the fast path treats an event type: video, team marker, or other."""
    et = vocabulary.ALIASES.get(event_type, event_type)
    if et in vocabulary.VIDEO_EVENTS:
        return _VIDEO
    if vocabulary.is_team_event(et):
        return _TEAM
    return _OTHER


_NAT = np.iinfo("int64").min


class _BlockLines:
    """Line ``i`` of a block, found on demand (the fast path keeps no line list)."""

    def __init__(self, block: bytes):
        self.block = block
        self.starts: np.ndarray | None = None

    def __getitem__(self, i: int) -> bytes:
        if self.starts is None:
            nl = np.flatnonzero(np.frombuffer(self.block, dtype=np.uint8) == 10)
            self.starts = np.concatenate([[0], nl + 1])
        start = int(self.starts[i])
        end = self.block.find(b"\n", start)
        return self.block[start:] if end < 0 else self.block[start:end]


class _Fixed:
    """The one line of the slow path, whatever index is asked."""

    def __init__(self, text: bytes):
        self.text = text

    def __getitem__(self, i: int) -> bytes:
        return self.text


def _classify_non_object(text: bytes) -> str:
    """Reason for a line with no ``{``: JSON of another kind, or not JSON at all."""
    try:
        _any_dec.decode(text)
    except RecursionError:
        return TOO_DEEP
    except (msgspec.DecodeError, msgspec.ValidationError):
        return NOT_JSON
    return NOT_OBJECT


def _utc(us: list[int]) -> pd.Series:
    """UTC microseconds (_NAT for none) as schema.TIME."""
    a = np.array(us, dtype="int64").view("datetime64[us]")
    return pd.Series(a).dt.tz_localize("UTC").astype(schema.TIME)


def _parse_times(strings: list[str]) -> np.ndarray:
    """ISO 8601 strings -> datetime64[us] in UTC (naive strings taken as UTC); NaT when
    a string is not a time."""
    if not strings:
        return np.array([], dtype="datetime64[us]")
    parsed = pd.to_datetime(
        np.array(strings, dtype=object), format="ISO8601", utc=True, errors="coerce"
    )
    return parsed.as_unit("us").tz_localize(None).to_numpy()


def decode_bytes(
    data: bytes, path: str = "<bytes>", file: int = 0, window: Window | None = None
) -> Decoded:
    """Decode a whole buffer of lines (convenience for tests and small inputs)."""
    dec = PartDecoder(path, file, 1, window)
    dec.feed(data)
    return dec.finish()
