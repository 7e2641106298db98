"""The course team across runs (SPEC §4, §7): who one user partition reveals, the merge
into the stored ``course_team`` table, and leaving every known member out.

A member is stored under the name every table uses (the pseudonym with a key), so a run
compares its users' stored names with the table. Pure pandas.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import numpy as np
import pandas as pd

from . import schema

EVENT = "event"
STAFF_LIST = "staff_list"
_KEY = ["course_id", "username"]

#: (course_id, stored username) pairs
Members = frozenset[tuple[str, str]]


def found(activity: pd.DataFrame, events: pd.DataFrame, staff: frozenset[str]) -> pd.DataFrame:
    """The course team one partition reveals: (course_id, username, known_by), one row per
    pair; ``event`` when the user had a team event in that course, else ``staff_list``
    for a staff-list user with any row in that course."""
    team = activity.loc[activity["team"].to_numpy(bool), _KEY].drop_duplicates()
    rows = [team.assign(known_by=EVENT)]
    if staff:
        seen = pd.concat([activity[_KEY], events[_KEY]], ignore_index=True)
        listed = seen[seen["username"].isin(staff)].drop_duplicates()
        rows.append(listed.assign(known_by=STAFF_LIST))
    out = pd.concat(rows, ignore_index=True).drop_duplicates(_KEY, keep="first")
    return out.astype(schema.STR).reset_index(drop=True)


def merge(
    new: pd.DataFrame, previous: pd.DataFrame | None, first: dt.date | None, last: dt.date | None
) -> pd.DataFrame:
    """The ``course_team`` table: the stored members and this run's (``new``, from ``found``,
    its run spanning local days ``first``..``last``). ``event`` wins over ``staff_list``;
    first_seen is the earliest day, last_seen the latest."""
    days = pd.Series([first, last], dtype=schema.DATE)
    now = new.assign(first_seen=days.iloc[0], last_seen=days.iloc[1])
    frames = [schema.conform(now, schema.COURSE_TEAM)]
    if previous is not None and len(previous):
        frames.append(schema.conform(previous, schema.COURSE_TEAM))
    both = pd.concat(frames, ignore_index=True)
    g = both.groupby(_KEY, sort=True, observed=True)
    out = pd.DataFrame(
        {
            "known_by": g["known_by"].agg(lambda s: EVENT if (s == EVENT).any() else STAFF_LIST),
            "first_seen": g["first_seen"].min(),
            "last_seen": g["last_seen"].max(),
        }
    ).reset_index()
    return schema.canonical(out, "course_team")


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
