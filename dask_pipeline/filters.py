"""Course-team, staff-list and activity-floor filters (SPEC §4), over one user partition.

The pipeline shuffles video events and per-part activity rows by username together, so every
row of a user sits in one partition: the groupby over (course_id, username) that decides who
is course team is then complete inside each partition. Pure pandas.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd

from . import schema


def split_staged(staged: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(video events, activity rows) of a staged frame (schema.STAGED)."""
    is_activity = staged["event_type"].isna().to_numpy()
    events = staged.loc[~is_activity, list(schema.EVENTS)]
    activity = staged.loc[is_activity, list(schema.ACTIVITY)]
    return events, activity


def removed_users(
    activity: pd.DataFrame, staff: frozenset[str], min_events: int | None
) -> tuple[pd.DataFrame, Counter]:
    """The (course_id, username) pairs to remove, with a ``why`` column, and counts.

    ``activity`` may hold several rows per pair (one per input part): they are summed.
    Course team: any team event, or the username is in ``staff``. Low activity: not more
    than ``min_events`` events in that course (only when ``min_events`` is given).
    """
    per_user = activity.groupby(["course_id", "username"], sort=False, observed=True).agg(
        events=("events", "sum"), team=("team", "any")
    )
    per_user = per_user.reset_index()
    team = per_user["team"].to_numpy() | per_user["username"].isin(staff).to_numpy()
    low = ~team
    if min_events is None:
        low[:] = False
    else:
        low &= per_user["events"].to_numpy() <= min_events
    why = pd.Series(pd.NA, index=per_user.index, dtype=schema.STR)
    why[team] = "team"
    why[low] = "low_activity"
    out = per_user.assign(why=why)[team | low][["course_id", "username", "why", "events"]]
    counts = Counter(
        course_team_users=int(team.sum()),
        low_activity_users=int(low.sum()),
    )
    return out.reset_index(drop=True), counts


def apply_filters(
    staged: pd.DataFrame, staff: frozenset[str], min_events: int | None
) -> tuple[pd.DataFrame, Counter]:
    """Video events (schema.EVENTS) of the users that are kept, and counts of what went.

    Staff-list users are dropped by name directly: activity rows are only kept for users
    that matter to the other filters, so a staff user may have none.
    """
    events, activity = split_staged(staged)
    gone, counts = removed_users(activity, staff, min_events)
    is_staff = events["username"].isin(staff).to_numpy() if staff else np.zeros(len(events), bool)
    counts["staff_list_events"] = int(is_staff.sum())
    counts["staff_list_users"] = int(events.loc[is_staff, "username"].nunique())
    events = events[~is_staff]
    if len(gone) and len(events):
        key = ["course_id", "username"]
        m = events[key].merge(gone[key + ["why"]], on=key, how="left")["why"].to_numpy()
        removed = pd.notna(m)
        counts["course_team_events"] = int((m[removed] == "team").sum())
        counts["low_activity_events"] = int((m[removed] == "low_activity").sum())
        events = events[~removed]
    else:
        counts["course_team_events"] = 0
        counts["low_activity_events"] = 0
    counts["kept_video_events"] = len(events)
    return events.reset_index(drop=True), counts
