"""The course team across runs (SPEC §4, §7): who one user partition reveals, the merge
into the stored ``course_team`` table, and leaving every known member out.

A member is stored under the name every table uses (the pseudonym with a key), so a run
compares its users' stored names with the table. Pure pandas.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from . import schema, window

EVENT = "event"
STAFF_LIST = "staff_list"
_KEY = ["course_id", "username"]

#: (course_id, stored username) pairs
Members = frozenset[tuple[str, str]]


def found(
    activity: pd.DataFrame,
    events: pd.DataFrame,
    staff: frozenset[str],
    tz: str,
    since_us: int | None = None,
    until_us: int | None = None,
) -> pd.DataFrame:
    """The course team one partition reveals (schema.COURSE_TEAM), one row per pair.

    ``known_by`` is ``event`` when the user had a team event in that course, else
    ``staff_list`` for a staff-list user with any row in that course. first_seen and
    last_seen are the local days (in ``tz``) of the first and last event inside
    [since_us, until_us) that makes the user course team: a team event, and for a
    staff-list user any video event too; null when there is none. So a member's days do not
    depend on how the days were split into runs (SPEC §7)."""
    cols = [*_KEY, "time"]  # an activity row's time is a team event's (or null)
    is_team = activity["team"].to_numpy(bool)
    rows = [activity.loc[is_team, cols].assign(known_by=EVENT)]
    if staff:
        listed = activity.loc[activity["username"].isin(staff), cols]
        ev = events.loc[events["username"].isin(staff), cols]
        ev["time"] = ev["time"].where(window.inside(ev["time"], since_us, until_us))
        rows += [listed.assign(known_by=STAFF_LIST), ev.assign(known_by=STAFF_LIST)]
    both = pd.concat(rows, ignore_index=True)
    if not len(both):
        return schema.empty(schema.COURSE_TEAM)
    g = both.groupby(_KEY, sort=True, observed=True)
    out = pd.DataFrame(
        {
            "known_by": g["known_by"].agg(_strongest),
            "first_seen": _days(g["time"].min(), tz),
            "last_seen": _days(g["time"].max(), tz),
        }
    ).reset_index()
    return schema.canonical(out, "course_team")


def merge(new: pd.DataFrame, previous: pd.DataFrame | None) -> pd.DataFrame:
    """The ``course_team`` table: the stored members and this run's (``new``, from
    ``found``). ``event`` wins over ``staff_list``; first_seen is the earliest day,
    last_seen the latest."""
    frames = [schema.conform(new, schema.COURSE_TEAM)]
    if previous is not None and len(previous):
        frames.append(schema.conform(previous, schema.COURSE_TEAM))
    both = pd.concat(frames, ignore_index=True)
    g = both.groupby(_KEY, sort=True, observed=True)
    out = pd.DataFrame(
        {
            "known_by": g["known_by"].agg(_strongest),
            "first_seen": g["first_seen"].min(),
            "last_seen": g["last_seen"].max(),
        }
    ).reset_index()
    return schema.canonical(out, "course_team")


def _strongest(known_by: pd.Series) -> str:
    return EVENT if (known_by == EVENT).any() else STAFF_LIST


def _days(times: pd.Series, tz: str) -> pd.Series:
    """UTC times (NaT allowed) -> their local dates in ``tz`` (schema.DATE, null for NaT)."""
    local = times.dt.tz_convert(tz).dt.tz_localize(None).to_numpy().astype("datetime64[D]")
    return pd.Series(local, index=times.index).astype(schema.DATE)


def members(table: pd.DataFrame | None) -> Members:
    """The (course_id, username) pairs of a ``course_team`` table (or of ``found`` rows)."""
    if table is None or not len(table):
        return frozenset()
    return frozenset(zip(table["course_id"].tolist(), table["username"].tolist(), strict=True))


def known_mask(
    df: pd.DataFrame, known: Members, stored_name: Callable[[str], str] | None = None
) -> np.ndarray:
    """Which rows of ``df`` (with course_id and username) belong to a known member;
    ``stored_name`` maps a raw username to the name the table stores (a pseudonym)."""
    if not known or not len(df):
        return np.zeros(len(df), bool)
    users = df["username"]
    if stored_name is not None:
        names = {u: stored_name(u) for u in users.dropna().unique()}
        users = users.map(names)
    idx = pd.MultiIndex.from_arrays([df["course_id"].to_numpy(object), users.to_numpy(object)])
    return np.asarray(idx.isin(list(known)), bool)


def drop_known(df: pd.DataFrame, known: Members, stored_name=None) -> tuple[pd.DataFrame, int]:
    """``df`` less the rows of known members, and how many rows went."""
    gone = known_mask(df, known, stored_name)
    return df[~gone].reset_index(drop=True), int(gone.sum())
