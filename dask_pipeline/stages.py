"""The three task bodies of the graph, each a callable holding one frozen options object (as
Dask's own ``from_map`` readers hold theirs), so the graph passes data and nothing else:

* ``ReadStage(options)(tasks)``: read and decode a group of input parts -> schema.STAGED
  rows; the group's rejects, video partials and line stats go to the stage directory through
  ``store`` (a killed run leaves nothing else behind, pseudonymized when asked).
* ``UserStage(options)(partition, index)``: one user partition (schema.STAGED) -> filtered
  (``filters``), cut into segments (``segments.RULES``), cut to the window, pseudonymized,
  dated, written (schema.SEGMENTS by date); returns its counts and dates.
* ``VideoStage(options)(partition, index, videos)``: one video partition of the stored
  segments (schema.SEGMENTS) and schema.VIDEOS -> views, video_stats, video_timeline,
  video_daily parts written; returns its counts and its video_stats frame.

Pure of Dask: each runs anywhere given its inputs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from . import (
    decode,
    filters,
    ingest,
    metrics,
    privacy,
    schema,
    segments,
    store,
    team,
    vocabulary,
    window,
)
from .config import RunConfig


# ------------------------------------------------------------------ read + decode
@dataclass(frozen=True)
class ReadOptions:
    """``stage``: the run's stage directory; ``count_activity``: count every event per user
    (only the activity floor needs it); ``key``: the pseudonymization key, or None."""

    stage: str
    window: decode.Window
    count_activity: bool
    key: bytes | None = field(default=None, repr=False)

    @classmethod
    def of(cls, cfg: RunConfig, stage: Path) -> ReadOptions:
        win = decode.Window(cfg.since_us, cfg.until_us, cfg.events_from_us)
        return cls(str(stage), win, cfg.min_events is not None, cfg.pseudonymize_key)


@dataclass(frozen=True)
class ReadStage:
    options: ReadOptions

    def __call__(self, tasks: list[ingest.Task]) -> pd.DataFrame:
        """One Dask partition: read and decode a group of (part, index, first line); write the
        group's rejects and stats aside; return the staged rows."""
        o = self.options
        out = [ingest.read_part(p, i, f, o.window, o.count_activity) for p, i, f in tasks]
        t0 = time.perf_counter()
        where = Path(o.stage)
        name = tasks[0][1]
        rejects = pd.concat([r[1] for r in out], ignore_index=True)
        if o.key is not None and len(rejects):
            # SPEC §9: not even the side outputs a killed run leaves behind hold a raw username
            rejects = privacy.pseudonymize_rejects(rejects, o.key)
        if len(rejects):
            store.write_side(where, name, "rejects", rejects)
        stats = [r[2] for r in out]
        stats[0]["seconds"]["side_outputs"] = time.perf_counter() - t0
        store.write_side_stats(where, name, stats)
        staged = [r[0] for r in out]
        return staged[0] if len(staged) == 1 else pd.concat(staged, ignore_index=True)


# ------------------------------------------------------------------ users
#: The events the rule sets read; loads, speed changes and captions change no state.
RULE_EVENTS = (vocabulary.PLAY, vocabulary.PAUSE, vocabulary.STOP, vocabulary.SEEK)


@dataclass(frozen=True)
class UserOptions:
    """What one user partition needs: the filters, the rule set, the window (UTC µs, bounds
    optional) and its time zone, the pseudonymization key (or None), and the course team
    earlier runs knew (``known``: (course_id, stored username) pairs)."""

    stage: str
    rules: str
    staff: frozenset[str]
    min_events: int | None
    since_us: int | None
    until_us: int | None
    tz: str
    key: bytes | None = field(default=None, repr=False)
    known: team.Members = frozenset()

    @classmethod
    def of(cls, cfg: RunConfig, stage: Path, known: team.Members = frozenset()) -> UserOptions:
        c = cfg
        return cls(
            str(stage),
            c.rules,
            c.staff,
            c.min_events,
            c.since_us,
            c.until_us,
            c.tz,
            c.pseudonymize_key,
            known,
        )

    def stored_name(self, username: str) -> str:
        """The name the tables store for a user: the pseudonym with a key."""
        return username if self.key is None else privacy.pseudonym(self.key, username)


@dataclass(frozen=True)
class UserStage:
    options: UserOptions

    def __call__(self, part: pd.DataFrame, index: int) -> dict:
        """Filter one user partition (SPEC §4, and every known course-team member), build its
        segments and per-user video partials, write them; return counts, dates and the
        course team the partition reveals (schema.COURSE_TEAM)."""
        o = self.options
        t0 = time.perf_counter()
        found = self._found(part)
        part, n_known = team.drop_known(part, o.known, o.stored_name if o.key else None)
        events, counts = filters.apply_filters(part, o.staff, o.min_events)
        counts["known_course_team_rows"] = n_known
        self._write_user_videos(events, index)
        events = events[events["event_type"].isin(RULE_EVENTS)].reset_index(drop=True)
        t1 = time.perf_counter()
        segs, rule_counts = segments.RULES[o.rules](events)
        counts.update({f"{o.rules}.{k}": v for k, v in rule_counts.items()})
        t2 = time.perf_counter()
        inside = window.inside(segs["time"], o.since_us, o.until_us)
        counts["segments_outside_window"] = int((~inside).sum())
        segs = segs[inside].reset_index(drop=True)
        if o.key is not None and len(segs):
            segs["username"] = privacy.pseudonymize_names(segs["username"], o.key)
        segs["date"] = window.local_dates(segs["time"], o.tz)
        counts["segments"] = len(segs)
        dates = store.write_segments_part(Path(o.stage), f"{index:06d}", segs)
        t3 = time.perf_counter()
        return {
            "counts": dict(counts),
            "dates": dates,
            "team": found,
            "seconds": {"filter": t1 - t0, "segments": t2 - t1, "write_segments": t3 - t2},
        }

    def _found(self, part: pd.DataFrame) -> pd.DataFrame:
        """The partition's course team, under stored names."""
        o = self.options
        events, activity = filters.split_staged(part)
        found = team.found(activity, events, o.staff, o.tz, o.since_us, o.until_us)
        if o.key is not None and len(found):
            found["username"] = privacy.pseudonymize_names(found["username"], o.key)
        return found

    def _write_user_videos(self, events: pd.DataFrame, index: int) -> None:
        """The partition's per-user video partials of the window's days, stored by day."""
        o = self.options
        ev = events[window.inside(events["time"], o.since_us, o.until_us)]
        partials = metrics.user_video_partials(ev, window.local_dates(ev["time"], o.tz))
        if o.key is not None and len(partials):
            partials["username"] = privacy.pseudonymize_names(partials["username"], o.key)
        store.write_user_videos_part(Path(o.stage), f"{index:06d}", partials)


# ------------------------------------------------------------------ videos
@dataclass(frozen=True)
class VideoOptions:
    stage: str
    bin_seconds: int

    @classmethod
    def of(cls, cfg: RunConfig, stage: Path) -> VideoOptions:
        return cls(str(stage), cfg.bin_seconds)


@dataclass(frozen=True)
class VideoStage:
    options: VideoOptions

    def __call__(self, part: pd.DataFrame, index: int, videos: pd.DataFrame) -> dict:
        """Per-video tables of one video partition, written as parts; returns counts and the
        partition's video_stats."""
        o = self.options
        t0 = time.perf_counter()
        part = part.assign(date=part["date"].astype(str))
        # a canonical row order makes float sums independent of how the work was partitioned
        segs = schema.canonical(part, "segments")
        tables = metrics.video_tables(segs, videos, o.bin_seconds)
        counters = tables.pop("counters", {})
        for name, df in tables.items():
            store.write_table_part(Path(o.stage), name, f"{index:06d}", df)
        return {
            "counts": dict(counters),
            "seconds": {"metrics": time.perf_counter() - t0},
            "video_stats": tables["video_stats"],
        }


# ------------------------------------------------------------------ courses
def course_stage(part: pd.DataFrame, index: int, stage: str, videos: pd.DataFrame) -> list:
    """course_stats of one course partition of views, written as a part; returns the
    courses written."""
    courses = part["course_id"].unique()
    stats = metrics.course_stats(part, videos[videos["course_id"].isin(courses)])
    if len(stats):
        store.write_table_part(Path(stage), "course_stats", f"{index:06d}", stats)
    return list(stats["course_id"])
