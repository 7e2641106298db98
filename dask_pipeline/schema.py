"""Column names and dtypes of every frame and table, declared once.

Each stage builds its frames with ``empty(SCHEMA)`` or ``conform(df, SCHEMA)`` so that the
columns agree without being retyped. Pure: imports neither Dask nor ``distributed``.
"""

from __future__ import annotations

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

Schema = dict[str, object]

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
#: instructor.
ACTIVITY: Schema = {
    "course_id": STR,
    "username": STR,
    "events": I64,
    "team": BOOL,
}

#: What one input part hands to the user shuffle: video events and activity rows together,
#: so one shuffle brings every row of a user to the same partition. Activity rows have
#: ``events > 0`` and a null ``event_type``; event rows have ``events == 0``.
STAGED: Schema = {**EVENTS, "events": I64, "team": BOOL}

#: A line that could not be used (SPEC §3).
REJECTS: Schema = {
    "file": STR,
    "line": I64,
    "reason": STR,
    "text": STR,
}

#: A watched segment (SPEC §6): ``time`` is the time of the event that closed it, ``date``
#: the local date of that time in the run's time zone, as ``YYYY-MM-DD``.
SEGMENTS: Schema = {
    "course_id": STR,
    "video_id": STR,
    "username": STR,
    "time": TIME,
    "start": F64,
    "end": F64,
    "date": STR,
}

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

#: One row per (course_id, video_id): the largest positive duration seen (NaN when none) and
#: the player code seen most often.
LOGGED_VIDEOS: Schema = {
    "course_id": STR,
    "video_id": STR,
    "duration": F64,
    "code": STR,
}
INT = pd.Int64Dtype()
LABELS: Schema = {
    "title": STR,
    "section": STR,
    "subsection": STR,
    "unit": STR,
    "position": INT,
    "section_index": INT,
    "subsection_index": INT,
    "unit_index": INT,
}
OUTLINE: Schema = {"course_id": STR, "url_name": STR, **LABELS, "duration": F64}
VIDEOS: Schema = {
    **LOGGED_VIDEOS,
    "duration_source": STR,
    "seen_in_logs": BOOL,
    **LABELS,
}

VIEWS: Schema = {
    "course_id": STR,
    "video_id": STR,
    "username": STR,
    "segments": I64,
    "watched_seconds": F64,
    "covered_seconds": F64,
    "coverage": F64,
    "first_time": TIME,
    "last_time": TIME,
}

VIDEO_STATS: Schema = {
    "course_id": STR,
    "video_id": STR,
    "duration": F64,
    "duration_inferred": BOOL,
    "viewers": I64,
    "segments": I64,
    "watched_seconds": F64,
    "mean_coverage": F64,
    "completed_viewers": I64,
    "users_at_start": I64,
    "users_at_end": I64,
    "duration_source": STR,
    **LABELS,
}

VIDEO_TIMELINE: Schema = {
    "course_id": STR,
    "video_id": STR,
    "segment": I64,
    "start_seconds": F64,
    "end_seconds": F64,
    "num_users": I64,
    "num_views": I64,
}

VIDEO_DAILY: Schema = {
    "course_id": STR,
    "video_id": STR,
    "date": STR,
    "viewers": I64,
    "segments": I64,
    "watched_seconds": F64,
}

#: The six output tables of SPEC §6, in the order they are written.
TABLES: dict[str, Schema] = {
    "segments": SEGMENTS,
    "videos": VIDEOS,
    "views": VIEWS,
    "video_stats": VIDEO_STATS,
    "video_timeline": VIDEO_TIMELINE,
    "video_daily": VIDEO_DAILY,
}

#: Sort keys that make each table's row order canonical (for writing and for comparing).
KEYS: dict[str, list[str]] = {
    "segments": ["course_id", "username", "time", "video_id", "start", "end"],
    "videos": ["course_id", "video_id"],
    "views": ["course_id", "video_id", "username"],
    "video_stats": ["course_id", "video_id"],
    "video_timeline": ["course_id", "video_id", "segment"],
    "video_daily": ["course_id", "video_id", "date"],
}


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
