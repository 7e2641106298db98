"""The run's window: local days of a time zone and the UTC instants that bound them.

One function gives the local date of UTC times (``local_dates``); its scalar form calls it.
Pure: pandas only.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import numpy as np
import pandas as pd

from . import schema


def midnight_us(day: dt.date, tz: str) -> int:
    """UTC microseconds of the local midnight that starts ``day`` in ``tz``."""
    ts = pd.Timestamp(dt.datetime.combine(day, dt.time()), tz=tz)
    return int(ts.tz_convert("UTC").value // 1000)


def local_dates(times: pd.Series, tz: str) -> pd.Series:
    """The local date in ``tz`` of each UTC time, as ``YYYY-MM-DD`` strings (named ``date``)."""
    local = times.dt.tz_convert(tz).dt.tz_localize(None).dt.normalize()
    # a partition spans few days: format each distinct day once
    names = {u: pd.Timestamp(u).strftime("%Y-%m-%d") for u in local.unique()}
    return pd.Series(
        pd.array(local.map(names).to_numpy(), dtype=schema.STR), index=times.index, name="date"
    )


def local_date(us: int, tz: str) -> dt.date:
    """The local date in ``tz`` of one time given in UTC microseconds."""
    times = pd.Series(pd.to_datetime([us], unit="us", utc=True))
    return dt.date.fromisoformat(local_dates(times, tz).iloc[0])


def inside(times: pd.Series, since_us: int | None, until_us: int | None) -> np.ndarray:
    """Which UTC times fall in [since_us, until_us) (an absent bound is no bound)."""
    us = times.astype("int64").to_numpy()
    mask = np.ones(len(us), bool)
    if since_us is not None:
        mask &= us >= since_us
    if until_us is not None:
        mask &= us < until_us
    return mask


def days(first: dt.date, last: dt.date) -> Iterator[dt.date]:
    """Every day from ``first`` to ``last``, both included."""
    d = first
    while d <= last:
        yield d
        d += dt.timedelta(days=1)
