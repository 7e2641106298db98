"""Column names and dtypes of every frame and table, declared once.

Each stage builds its frames with ``empty(SCHEMA)`` or ``conform(df, SCHEMA)`` so that the
columns agree without being retyped. Pure: imports neither Dask nor ``distributed``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

#: Strings: pandas' own string dtype backed by Arrow, with NaN as the missing value
#: (the default ``str`` dtype of pandas 3).
STR = pd.StringDtype("pyarrow", na_value=np.nan)
TIME = pd.DatetimeTZDtype("us", "UTC")
F64 = np.dtype("float64")
I64 = np.dtype("int64")
I32 = np.dtype("int32")
BOOL = np.dtype("bool")
#: A calendar date (Parquet DATE, Arrow date32): DuckDB and pyarrow read it as a date.
DATE = pd.ArrowDtype(pa.date32())
#: An integer that may be null.
INT = pd.Int64Dtype()

#: Column name -> dtype, in column order. A ``Table`` is one too.
Schema = Mapping[str, object]

#: One video event after decode and normalisation (SPEC §2, §4). ``current_time`` carries
#: ``currentTime`` (play, pause, stop) and ``current_time`` (speed change, captions).
#: ``file`` is the input's index in the ordered input list and ``line`` its 1-based line
#: number: together with ``time`` they give the total order of SPEC §5.
EVENTS: Schema = {
    "course_id": STR,
    "username": STR,
    "time": TIME,
    "event_type": STR,
    "video_id": STR,
    "code": STR,
    "duration": F64,
    "current_time": F64,
    "old_time": F64,
    "new_time": F64,
    "old_speed": F64,
    "new_speed": F64,
    "file": I32,
    "line": I64,
}

#: Per (course, user) activity of one input part, for the course-team and activity filters
#: (SPEC §4). ``team`` is true when any event of that user in that course names studio or
#: instructor. ``time`` is the time of the first of those (null when none had a usable
#: time); a second row of the pair, with no events, carries the time of the last.
ACTIVITY: Schema = {
    "course_id": STR,
    "username": STR,
    "events": I64,
    "team": BOOL,
    "time": TIME,
}

#: What one input part hands to the user shuffle: video events and activity rows together,
#: so one shuffle brings every row of a user to the same partition. Activity rows have
#: a null ``event_type``; event rows have ``events == 0``.
STAGED: Schema = {**EVENTS, "events": I64, "team": BOOL}


# --------------------------------------------------------------------------- output tables
@dataclass(frozen=True)
class Column:
    """One column of an output table: its dtype and, for the table reference, what it means
    (``doc``) and its unit (``unit``, empty when it has none)."""

    dtype: object
    doc: str
    unit: str = ""


@dataclass(frozen=True, eq=False)
class Table(Mapping):
    """An output table (SPEC §6). As a mapping it is the table's schema (column -> dtype),
    so ``empty`` and ``conform`` take it like any other; ``row`` says what one row is,
    ``keys`` sort its rows canonically and ``doc`` is its paragraph in the reference."""

    row: str
    columns: dict[str, Column]
    keys: tuple[str, ...]
    doc: str = ""

    def __getitem__(self, name: str) -> object:
        return self.columns[name].dtype

    def __iter__(self) -> Iterator[str]:
        return iter(self.columns)

    def __len__(self) -> int:
        return len(self.columns)


# columns that several tables share, declared once
COURSE_ID = Column(
    STR,
    "Course run id as logged in `context.course_id`: `course-v1:Org+Num+Run`, or the "
    "legacy `Org/Num/Run`.",
)
VIDEO_ID = Column(
    STR,
    "Video block id as the player logged it (`event.id`, whitespace stripped): the "
    "block's url_name (often a 32-hex hash), or an `i4x-…`/`block-v1:…` form of it. A "
    "video is the pair (course_id, video_id).",
)
USERNAME = Column(
    STR,
    "Learner's username, or with `--pseudonymize-key-env` its keyed HMAC-SHA256 "
    "pseudonym (64 hex digits). Anonymous and course-team users never appear.",
)
SEGMENT_COUNT = Column(I64, "Watched segments (rows of `segments`) counted in this row.")
WATCHED = Column(
    F64,
    "Sum of the lengths `end_offset - start_offset` of the segments "
    "counted in this row (overlaps counted each time).",
    "s",
)
DURATION_INFERRED = Column(
    BOOL,
    "True when no event reported the video's duration and `video_stats.duration` was "
    "inferred from the timeline: the end, less one second, of the highest bin after which "
    "the viewers drop to 5% or fewer (or of the highest viewed bin).",
)

#: A watched segment (SPEC §5, §6). Hive-partitioned: ``date`` is the directory name
#: ``date=YYYY-MM-DD``, not a column of the files.
SEGMENTS = Table(
    row="watched segment",
    keys=("course_id", "username", "time", "video_id", "start_offset", "end_offset"),
    doc="One viewer's stretch of a video, as the rule set (`--rules`) rebuilt it from the "
    "player's events. Partitioned by `date` (Hive style: `segments/date=YYYY-MM-DD/`).",
    columns={
        "course_id": COURSE_ID,
        "video_id": VIDEO_ID,
        "username": USERNAME,
        "time": Column(
            TIME,
            "When the segment closed: the time of the pause, stop or seek event that "
            "ended it, as logged (mobile events may arrive late).",
            "UTC",
        ),
        "start_offset": Column(F64, "Position in the video where the segment starts.", "s"),
        "end_offset": Column(F64, "Position in the video where the segment ends.", "s"),
        "date": Column(
            DATE,
            "Local date of `time` in the run's `--tz` (default UTC); the partition key.",
            "date",
        ),
    },
)

#: What the rule sets return: SEGMENTS without ``date`` (the pipeline adds it in its time zone).
RULE_SEGMENTS: Schema = {c: t for c, t in SEGMENTS.items() if c != "date"}

#: Per (course_id, video_id, code) of one input part: events seen and the largest positive
#: duration (NaN when none); summed across parts into VIDEOS.
VIDEO_PARTIALS: Schema = {
    "course_id": STR,
    "video_id": STR,
    "code": STR,
    "n": I64,
    "duration": F64,
}

#: Per (course_id, video_id, code, username, date) of the events that survive the filters:
#: stored day by day beside the segments (not a public table), so that ``videos`` is rebuilt
#: from every stored day less every known course-team user.
USER_VIDEOS: Schema = {
    "course_id": STR,
    "video_id": STR,
    "code": STR,
    "username": STR,
    "n": I64,
    "duration": F64,
    "date": STR,
}

# the outline columns of videos and video_stats (``--course-structure``), declared once
_NO_OUTLINE = " Null for a video its course's structure lacks, and without one."
LABELS: dict[str, Column] = {
    "title": Column(STR, "The video's display name in the course structure." + _NO_OUTLINE),
    "section": Column(STR, "Display name of the video's section (chapter)." + _NO_OUTLINE),
    "subsection": Column(
        STR,
        "Display name of the video's subsection (sequential); a video placed straight in a "
        "section is its own subsection." + _NO_OUTLINE,
    ),
    "unit": Column(
        STR,
        "Display name of the video's unit (vertical); a video placed straight in a "
        "subsection is its own unit." + _NO_OUTLINE,
    ),
    "position": Column(
        INT,
        "1-based order of the video in its course's outline, as the course shows it." + _NO_OUTLINE,
    ),
    "section_index": Column(
        INT, "1-based place of the section among the course's sections." + _NO_OUTLINE
    ),
    "subsection_index": Column(
        INT, "1-based place of the subsection in its section." + _NO_OUTLINE
    ),
    "unit_index": Column(INT, "1-based place of the unit in its subsection." + _NO_OUTLINE),
}
DURATION_SOURCE = Column(
    STR,
    "Where `duration` comes from: `events` (learners' events), `outline` (the course "
    "structure, used only when no event gave one), in `video_stats` also `inferred`; null "
    "when there is no duration.",
)

#: One video of a course structure (``outline.outline_frame``): its labels under the course
#: id the structure names, and the structure's duration (NaN when it has none).
OUTLINE: Schema = {
    "course_id": STR,
    "url_name": STR,
    **{c: col.dtype for c, col in LABELS.items()},
    "duration": F64,
}

VIDEOS = Table(
    row="video (course_id, video_id)",
    keys=("course_id", "video_id"),
    doc="Every video seen in learners' events and, with `--course-structure`, every video "
    "of its course's outline; merged run by run (the largest duration wins).",
    columns={
        "course_id": COURSE_ID,
        "video_id": VIDEO_ID,
        "duration": Column(
            F64,
            "Largest positive duration any learner's event reported for the video; "
            "else the course structure's (see `duration_source`); null when neither has one.",
            "s",
        ),
        "code": Column(
            STR,
            "Player source the events name most often (`event.code`): a YouTube video "
            "id, `html5`, `mobile` or `hls`; null when none is given.",
        ),
        "duration_source": DURATION_SOURCE,
        "seen_in_logs": Column(
            BOOL,
            "False for a video of the outline that no learner's event named (its `video_id` "
            "is then the block's url_name); true for every video of the logs.",
        ),
        **LABELS,
    },
)

#: The columns of VIDEOS that the logs give (``metrics.combine_videos``); the outline join
#: (``outline.label_videos``) adds the others.
LOGGED_VIDEOS: Schema = {c: VIDEOS[c] for c in ("course_id", "video_id", "duration", "code")}

VIEWS = Table(
    row="view: (course_id, video_id, username)",
    keys=("course_id", "video_id", "username"),
    doc="What one viewer watched of one video, over every stored day.",
    columns={
        "course_id": COURSE_ID,
        "video_id": VIDEO_ID,
        "username": USERNAME,
        "segments": SEGMENT_COUNT,
        "watched_seconds": WATCHED,
        "covered_seconds": Column(
            F64, "Length of the union of the viewer's segments: each second counted once.", "s"
        ),
        "coverage": Column(
            F64,
            "`covered_seconds` / the video's duration in `video_stats` (known, else "
            "inferred), at most 1; null when the video has no duration at all.",
            "fraction 0-1",
        ),
        "duration_inferred": DURATION_INFERRED,
        "completed": Column(
            BOOL,
            "The viewer completed the video: coverage >= 0.95, or a segment reached "
            "the bin `users_at_end` counts (what `video_stats.completed_viewers` counts).",
        ),
        "first_time": Column(TIME, "`time` of the viewer's first segment.", "UTC"),
        "last_time": Column(TIME, "`time` of the viewer's last segment.", "UTC"),
    },
)

VIDEO_STATS = Table(
    row="video (course_id, video_id)",
    keys=("course_id", "video_id"),
    doc="One row for every video of `videos`, with zero viewers when nobody watched it.",
    columns={
        "course_id": COURSE_ID,
        "video_id": VIDEO_ID,
        "duration": Column(
            F64,
            "The video's duration: `videos.duration` when known, else inferred from the "
            "timeline (see `duration_inferred`); null when neither is possible.",
            "s",
        ),
        "duration_inferred": DURATION_INFERRED,
        "viewers": Column(I64, "Distinct viewers (rows of `views`)."),
        "segments": SEGMENT_COUNT,
        "watched_seconds": WATCHED,
        "mean_coverage": Column(
            F64,
            "Mean of the viewers' non-null `coverage`; null when there is none.",
            "fraction 0-1",
        ),
        "completed_viewers": Column(I64, "Viewers whose view is `completed`."),
        "users_at_start": Column(I64, "Viewers in the timeline's first bin (bin 0)."),
        "users_at_end": Column(
            I64, "Viewers in the bin of max(duration - 30, 0.95 × duration) seconds."
        ),
        "duration_source": DURATION_SOURCE,
        **LABELS,
    },
)

VIDEO_TIMELINE = Table(
    row="bin of a video (course_id, video_id, bin)",
    keys=("course_id", "video_id", "bin"),
    doc="The Insights timeline: the video cut into bins of `--bin-seconds` (default 5) "
    "seconds, from bin 0 to the video's final bin. Total viewed seconds in Insights terms "
    "is sum(num_views) × bin seconds.",
    columns={
        "course_id": COURSE_ID,
        "video_id": VIDEO_ID,
        "bin": Column(I64, "Bin index: offset x seconds falls in bin floor(x / bin seconds)."),
        "start_seconds": Column(F64, "Offset where the bin starts.", "s"),
        "end_seconds": Column(F64, "Offset where the bin ends (the next bin's start).", "s"),
        "num_users": Column(I64, "Distinct viewers with a segment touching the bin."),
        "num_views": Column(I64, "Segments touching the bin (from bin(start) to bin(end))."),
    },
)

VIDEO_DAILY = Table(
    row="video and local day (course_id, video_id, date)",
    keys=("course_id", "video_id", "date"),
    doc="Daily activity per video, by the local date segments closed on.",
    columns={
        "course_id": COURSE_ID,
        "video_id": VIDEO_ID,
        "date": Column(DATE, "Local date (`--tz`) of the segments' `time`.", "date"),
        "viewers": Column(I64, "Distinct viewers with a segment that day."),
        "segments": SEGMENT_COUNT,
        "watched_seconds": WATCHED,
    },
)

COURSE_STATS = Table(
    row="course (course_id)",
    keys=("course_id",),
    doc="One row for every course of `videos`, summing up its views.",
    columns={
        "course_id": COURSE_ID,
        "viewers": Column(I64, "Distinct viewers of any video of the course."),
        "videos": Column(I64, "Videos of the course in `videos`."),
        "videos_watched": Column(I64, "Videos with at least one viewer."),
        "videos_in_outline": Column(
            INT,
            "Videos placed in the course outline (`--course-structure`); null without an outline.",
        ),
        "segments": SEGMENT_COUNT,
        "watched_seconds": WATCHED,
        "completed_viewers": Column(I64, "Distinct viewers who completed at least one video."),
        "completions": Column(
            I64, "Completed views: the sum of `video_stats.completed_viewers` over the course."
        ),
        "median_coverage": Column(
            F64,
            "Median of the course's non-null view `coverage`; null when there is none.",
            "fraction 0-1",
        ),
    },
)

#: The course team as known from every run so far (SPEC §4, §7).
COURSE_TEAM = Table(
    row="course-team member (course_id, username)",
    keys=("course_id", "username"),
    doc="Users known as course team in a course, remembered run by run: their events are "
    "left out of every other table, also on days processed before they were known.",
    columns={
        "course_id": COURSE_ID,
        "username": Column(
            STR,
            "The course-team member's username, or with `--pseudonymize-key-env` its "
            "keyed HMAC-SHA256 pseudonym (as in the other tables).",
        ),
        "known_by": Column(
            STR,
            "How the user was known: `event` (an event whose type names studio or "
            "instructor, in that course) or `staff_list` (only by `--staff-file`).",
        ),
        "first_seen": Column(
            DATE,
            "First local day with an event that makes the user course team in that course: "
            "a studio or instructor event, or for a staff-list user any video event too "
            "(null when no such event had a usable time).",
            "date",
        ),
        "last_seen": Column(
            DATE, "Last local day with such an event, over every run so far.", "date"
        ),
    },
)

#: A line that could not be used (SPEC §3).
REJECTS = Table(
    row="rejected input line",
    keys=("file", "line"),
    doc="Every line that could not be used, with why; comment and blank lines are skipped, "
    "not rejected.",
    columns={
        "file": Column(STR, "Input file the line came from, as given or expanded."),
        "line": Column(I64, "1-based line number in that file (after decompression)."),
        "reason": Column(
            STR,
            "Why the line was rejected: a reason as counted in `_run.json`, such as "
            "`not_json`, `not_object`, `bad_time`, `bad_payload` or `missing_number`.",
        ),
        "text": Column(STR, "The line as read (pseudonymized with `--pseudonymize-key-env`)."),
    },
)

#: The output tables of SPEC §6, in the order they are written.
TABLES: dict[str, Table] = {
    "segments": SEGMENTS,
    "videos": VIDEOS,
    "views": VIEWS,
    "video_stats": VIDEO_STATS,
    "video_timeline": VIDEO_TIMELINE,
    "video_daily": VIDEO_DAILY,
    "course_stats": COURSE_STATS,
    "course_team": COURSE_TEAM,
}

#: Every table under the output directory, for the reference: TABLES and rejects.
OUTPUTS: dict[str, Table] = {**TABLES, "rejects": REJECTS}

#: Sort keys that make each table's row order canonical (for writing and for comparing).
KEYS: dict[str, list[str]] = {name: list(t.keys) for name, t in OUTPUTS.items()}


def strings(values: list) -> pd.api.extensions.ExtensionArray:
    """A list of str (None for missing) as a STR array, built through Arrow: several times
    faster than ``pd.array(values, dtype=STR)``."""
    return pd.array(pa.array(values, type=pa.large_string()), dtype=STR)


def empty(schema: Schema) -> pd.DataFrame:
    """An empty frame with exactly the columns and dtypes of ``schema``."""
    return pd.DataFrame({c: pd.Series([], dtype=t) for c, t in schema.items()})


def conform(df: pd.DataFrame, schema: Schema) -> pd.DataFrame:
    """``df`` with the columns of ``schema``, in that order and with those dtypes.

    Raises KeyError when a column is missing: stages must agree, not guess.
    """
    out = {}
    for c, t in schema.items():
        s = df[c]
        if s.dtype != t:
            s = s.astype(t)
        out[c] = s.reset_index(drop=True)
    return pd.DataFrame(out)


def canonical(df: pd.DataFrame, table: str) -> pd.DataFrame:
    """The table conformed to its schema and sorted by its keys, with a fresh index."""
    df = conform(df, TABLES[table])
    return df.sort_values(KEYS[table], kind="stable").reset_index(drop=True)
