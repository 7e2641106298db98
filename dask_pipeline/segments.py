"""Watched segments from video events: the ``seed`` and ``insights`` rule sets (SPEC §5).

Both rule sets take a frame with the columns of ``schema.EVENTS`` (normalised, filtered video
events of kept users, in any row order, any number of courses, users and videos) and return
``(segments, counters)``: the segments with the columns of ``schema.SEGMENTS`` except ``date``,
and a count per reason of every event or viewing that was dropped or malformed (every key
always present).

The rules are vectorised over arrays sorted into SPEC §5's order, (course, user[, video]) then
(time, file, line) with input order breaking exact ties, and read as follows. Each rule set
only ever needs the event just before (and for insights, two before) in its group:

* seed: every state-changing event (play, pause, stop, seek forward, seek back) *sets* the
  whole state, so the state an event sees is the previous state-changing event of its
  (course, user); a segment closes when that event is a play of the same video.
* insights: a closing event (pause, stop, seek) closes a viewing when the previous counted
  event of its (course, user, video) is a play; that play's start looks one event further back.

Pure: imports pandas and numpy only.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from .schema import RULE_SEGMENTS, conform
from .vocabulary import PAUSE, PLAY, SEEK, STOP

#: Insights: offsets outside [0, MAX_OFFSET] seconds are invalid (SPEC §2).
MAX_OFFSET = 36000.0
#: Insights: viewings shorter than this many seconds are dropped (SPEC §5.2).
MIN_VIEWING = 0.25
#: Insights: with a known duration, a viewing may end at most this far past it (SPEC §5.2).
DURATION_SLACK = 1.0

#: Counter keys of each rule set, in the order they are reported.
SEED_COUNTERS = ("missing_value", "malformed")
INSIGHTS_COUNTERS = (
    "missing_value",
    "invalid_offset",
    "replaced",
    "unclosed",
    "end_before_start",
    "too_short",
    "past_duration",
)

# Event kinds the rules distinguish; every other event type is OTHER.
OTHER, PLAYED, STOPPED, SEEKED = 0, 1, 2, 3
_KINDS = {PLAY: PLAYED, PAUSE: STOPPED, STOP: STOPPED, SEEK: SEEKED}


# --------------------------------------------------------------------------- array helpers
def _codes(s: pd.Series) -> tuple[np.ndarray, int]:
    """Dense int64 codes of a column and their count; a null is a value of its own."""
    codes, uniques = pd.factorize(s, use_na_sentinel=False)
    return codes.astype(np.int64, copy=False), len(uniques)


def _combine(a: np.ndarray, na: int, b: np.ndarray, nb: int) -> tuple[np.ndarray, int]:
    """Codes of the pairs (a, b), ordered by a then b, and an upper bound of their count."""
    if na * nb >= 2**62:
        a, na = _dense(a)
        b, nb = _dense(b)
        if na * nb >= 2**62:  # only with more than 2**31 rows
            raise OverflowError("too many distinct keys")
    return a * nb + b, na * nb


def _dense(a: np.ndarray) -> tuple[np.ndarray, int]:
    """Ranks of the values of ``a`` (same order, no gaps) and their count."""
    uniques, ranks = np.unique(a, return_inverse=True)
    return ranks.astype(np.int64, copy=False), len(uniques)


def _kind(event_type: pd.Series) -> np.ndarray:
    """OTHER / PLAYED / STOPPED / SEEKED per event, via the few distinct names (fast)."""
    codes, uniques = pd.factorize(event_type, use_na_sentinel=False)
    lut = np.array([_KINDS.get(u, OTHER) if isinstance(u, str) else OTHER for u in uniques])
    return lut[codes].astype(np.int8) if len(lut) else np.zeros(0, np.int8)


def _time_i8(s: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Event times as int64 (in the column's unit: only their order matters), and NaT."""
    if not isinstance(s.dtype, pd.DatetimeTZDtype):
        s = pd.to_datetime(s, utc=True)
    return s.array.asi8, s.isna().to_numpy()


def _order(group: np.ndarray, ngroups: int, t: np.ndarray, f: np.ndarray, ln: np.ndarray):
    """Positions that sort rows by (group, t, f, ln), input order breaking remaining ties.

    Same result as a stable lexsort on four keys, ~5x faster: one unstable argsort on a single
    int64 key (group, t), then only the rows that tie on that key are re-sorted by (f, ln, row).
    """
    n = len(group)
    if n == 0:
        return np.zeros(0, np.int64)
    t0 = t.min()
    span = int(t.max()) - int(t0) + 1
    # the rare overflow cases: ranks order the same as the values they replace
    if ngroups * span >= 2**62:
        group, ngroups = _dense(group)
    if ngroups * span >= 2**62:
        (t, span), t0 = _dense(t), 0
    key = group * span + (t - t0)
    order = np.argsort(key)
    sk = key[order]
    tie = sk[1:] == sk[:-1]
    if tie.any():
        m = np.zeros(n, bool)
        m[1:] |= tie
        m[:-1] |= tie
        sub = order[m]
        # the tied rows keep their positions, sorted among themselves: key first keeps each
        # run in place, then SPEC §5's (file, line), then input order
        order[m] = sub[np.lexsort((sub, ln[sub], f[sub], key[sub]))]
    return order


def _frame(events: pd.DataFrame, rows: np.ndarray, start: np.ndarray, end: np.ndarray):
    """Segments frame: ids and time of the closing events at ``rows``, with their offsets."""
    out = pd.DataFrame(
        {
            "course_id": events["course_id"].array.take(rows),
            "video_id": events["video_id"].array.take(rows),
            "username": events["username"].array.take(rows),
            "time": events["time"].array.take(rows),
            "start_offset": np.asarray(start, dtype=np.float64),
            "end_offset": np.asarray(end, dtype=np.float64),
        }
    )
    return conform(out, RULE_SEGMENTS)


def _prepared(events: pd.DataFrame):
    """Per-row arrays both rule sets use, and the rows lacking a key or a needed number."""
    kind = _kind(events["event_type"])
    t, nat = _time_i8(events["time"])
    ct = events["current_time"].to_numpy(np.float64)
    old = events["old_time"].to_numpy(np.float64)
    new = events["new_time"].to_numpy(np.float64)
    keys_missing = (
        nat
        | events["course_id"].isna().to_numpy()
        | events["username"].isna().to_numpy()
        | events["video_id"].isna().to_numpy()
    )
    needed_missing = np.where(kind == SEEKED, np.isnan(old) | np.isnan(new), np.isnan(ct))
    missing = (kind != OTHER) & (keys_missing | needed_missing)
    return kind, t, ct, old, new, missing


def _same_as_prev(g: np.ndarray, k: int) -> np.ndarray:
    """True where the row k places earlier exists and is in the same group."""
    out = np.zeros(len(g), bool)
    if len(g) > k:
        out[k:] = g[k:] == g[:-k]
    return out


def _shift(a: np.ndarray, k: int, fill) -> np.ndarray:
    """``a`` moved k places later, the first k entries being ``fill``."""
    m = max(len(a) - k, 0)
    out = np.full_like(a, fill)
    out[len(a) - m :] = a[:m]
    return out


def _unshift(a: np.ndarray, k: int, fill) -> np.ndarray:
    """``a`` moved k places earlier, the last k entries being ``fill``."""
    m = max(len(a) - k, 0)
    out = np.full_like(a, fill)
    out[:m] = a[len(a) - m :]
    return out


# --------------------------------------------------------------------------- seed (SPEC §5.1)
def seed_segments(events: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int]]:
    """SPEC §5.1: the original dashboard's state machine per (course, user), defects included.

    Counters: ``malformed`` (a closing event whose pair has end < start) and
    ``missing_value`` (a state-changing event lacking a key or a number it needs; ignored).
    """
    kind, t, ct, old, new, missing = _prepared(events)
    # everything else (load, equal seeks, speed changes, captions, transcripts): no change,
    # so those events are left out before ordering
    changes = ((kind == PLAYED) | (kind == STOPPED) | ((kind == SEEKED) & (old != new))) & ~missing
    rows = np.flatnonzero(changes)
    course, nc = _codes(events["course_id"])
    user, nu = _codes(events["username"])
    video, _ = _codes(events["video_id"])
    course, user, video = course[rows], user[rows], video[rows]
    group, ng = _combine(course, nc, user, nu)
    f = events["file"].to_numpy()[rows]
    ln = events["line"].to_numpy()[rows]
    o = _order(group, ng, t[rows], f, ln)
    rows, group, video = rows[o], group[o], video[o]
    k, c, a, b = kind[rows], ct[rows], old[rows], new[rows]

    # the state an event sees = the previous state-changing event of its (course, user);
    # "if state is (same video, play)"
    open_ = (
        _same_as_prev(group, 1) & (_shift(k, 1, OTHER) == PLAYED) & (_shift(video, 1, -1) == video)
    )
    state_start = _shift(c, 1, np.nan)  # a play's state start is its currentTime
    # seek forward (old < new): emit (old, new)
    # seek back (old > new):    emit (state start, old)
    # pause or stop:            emit (state start, currentTime)
    forward = (k == SEEKED) & (a < b)
    start = np.where(forward, a, state_start)
    end = np.where(k == SEEKED, np.where(forward, b, a), c)
    # ... when start <= end, else count a malformed pair; a play never closes anything
    closing = open_ & (k != PLAYED)
    ok = closing & (start <= end)
    counters = {
        "missing_value": int(missing.sum()),
        "malformed": int((closing & ~ok).sum()),
    }
    return _frame(events, rows[ok], start[ok], end[ok]), counters


# --------------------------------------------------------------------------- insights (SPEC §5.2)
def insights_segments(events: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, int]]:
    """SPEC §5.2: the Open edX Insights viewing rules, per (course, user, video).

    Counters: ``missing_value`` and ``invalid_offset`` (ignored play/pause/stop/seek events),
    ``replaced`` (a viewing re-opened by a play before closing), ``unclosed`` (a viewing
    still open at the end of the events), ``end_before_start``, ``too_short`` and
    ``past_duration`` (closed viewings dropped, each counted under the first rule it fails).
    """
    kind, t, ct, old, new, missing = _prepared(events)

    # an event whose needed offset is outside [0, 36000] s is ignored
    def invalid(x: np.ndarray) -> np.ndarray:
        return (x < 0) | (x > MAX_OFFSET)

    bad = np.where(kind == SEEKED, invalid(old) | invalid(new), invalid(ct))
    bad_offset = (kind != OTHER) & ~missing & bad
    # "the previous event" counts only plays, pauses, stops and seeks that were not ignored
    counted = (kind != OTHER) & ~missing & ~bad_offset
    rows = np.flatnonzero(counted)
    course, nc = _codes(events["course_id"])
    user, nu = _codes(events["username"])
    video, nv = _codes(events["video_id"])
    course, user, video = course[rows], user[rows], video[rows]
    group, ng = _combine(*_combine(course, nc, user, nu), video, nv)
    f = events["file"].to_numpy()[rows]
    ln = events["line"].to_numpy()[rows]
    o = _order(group, ng, t[rows], f, ln)
    rows, group = rows[o], group[o]
    k, c, a, b = kind[rows], ct[rows], old[rows], new[rows]
    dur = events["duration"].to_numpy(np.float64)[rows]
    prev1 = _same_as_prev(group, 1)
    prev2 = _same_as_prev(group, 2)
    next1 = _unshift(prev1, 1, False)  # the next row is in the same group

    # play opens a viewing; pause and stop close it at currentTime, a seek at old_time;
    # a closing event with no open viewing does nothing
    opened_by_play = prev1 & (_shift(k, 1, OTHER) == PLAYED)
    closed = opened_by_play & (k != PLAYED)
    # its start is the previous seek's new_time when the event before the play was a seek
    # (of the same course, user, video), else the play's currentTime
    after_seek = prev2 & (_shift(k, 2, OTHER) == SEEKED)
    start = np.where(after_seek, _shift(b, 2, np.nan), _shift(c, 1, np.nan))
    end = np.where(k == SEEKED, a, c)
    # known duration: the positive duration carried by the play that opened the viewing
    play_dur = _shift(dur, 1, np.nan)
    known = play_dur > 0
    # a play while a viewing is open replaces it; a viewing never closed is dropped
    plays = k == PLAYED
    replaced = plays & next1 & (_unshift(k, 1, OTHER) == PLAYED)
    unclosed = plays & ~next1
    # dropped when end < start, when end - start < 0.25 s, or when end > duration + 1
    before = closed & (end < start)
    short = closed & ~before & (end - start < MIN_VIEWING)
    past = closed & ~before & ~short & known & (end > play_dur + DURATION_SLACK)
    ok = closed & ~before & ~short & ~past
    counters = {
        "missing_value": int(missing.sum()),
        "invalid_offset": int(bad_offset.sum()),
        "replaced": int(replaced.sum()),
        "unclosed": int(unclosed.sum()),
        "end_before_start": int(before.sum()),
        "too_short": int(short.sum()),
        "past_duration": int(past.sum()),
    }
    return _frame(events, rows[ok], start[ok], end[ok]), counters


#: Rule sets by the name the command line uses.
RULES: dict[str, Callable[[pd.DataFrame], tuple[pd.DataFrame, dict[str, int]]]] = {
    "seed": seed_segments,
    "insights": insights_segments,
}
