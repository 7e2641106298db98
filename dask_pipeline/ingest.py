"""Ingest one input part: read its blocks, decode them, and keep the accounting of every line.

``read_part`` is the body of the read task (``stages.ReadStage`` calls it per part of its
group): it returns the rows the user shuffle needs (schema.STAGED: every video event, since
videos and durations are taken after the filters), the part's rejects (schema.REJECTS plus
``part``) and its line stats (a dict; ``ledger`` sums them). Pure of Dask.
"""

from __future__ import annotations

import gc
import time

import numpy as np
import pandas as pd

from . import decode, ledger, read, schema


def empty_staged() -> pd.DataFrame:
    return schema.empty(schema.STAGED)


def staged_rows(events: pd.DataFrame, activity: pd.DataFrame) -> pd.DataFrame:
    """Events and activity rows in one frame (schema.STAGED) for the user shuffle."""
    ev = events.assign(events=np.zeros(len(events), "int64"), team=np.zeros(len(events), bool))
    act = schema.empty(schema.EVENTS).reindex(range(len(activity)))
    for c in schema.ACTIVITY:
        act[c] = activity[c].array  # positional: no index alignment
    act["file"] = 0
    act["line"] = 0
    return schema.conform(pd.concat([ev, act], ignore_index=True), schema.STAGED)


def read_part(
    part: read.Part,
    index: int,
    first_line: int,
    window: decode.Window,
    count_activity: bool,
) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Read and decode one input part: (staged rows, rejects, stats).

    Never raises for bad data: a file that cannot be read (or is damaged part way) is
    reported in its stats with the lines read before the damage kept.
    """
    t0 = time.perf_counter()
    dec = decode.PartDecoder(part.path, part.file, first_line, window, count_activity)
    error = None
    # The decoder keeps millions of small acyclic objects until finish(): a collection pass
    # would walk them all again and again, for nothing.
    gc_was = gc.isenabled()
    gc.disable()
    try:
        for block in read.iter_blocks(part):
            dec.feed(block)
    except read.ReadError as e:
        error = {"kind": e.kind, "detail": e.detail}
    finally:
        if gc_was:
            gc.enable()
    d = dec.finish()
    # every video event goes on to the user stage: videos and their durations are taken
    # there, from the events that survive the filters (SPEC §4)
    staged = staged_rows(d.events, d.activity)
    rejects = d.rejects.assign(part=np.full(len(d.rejects), index, "int64"))
    stats = {
        "part": index,
        "file": part.file,
        "path": part.path,
        "start": part.start,
        "first_line": first_line,
        "lines": d.lines,
        "accepted": d.accepted,
        "skipped": d.skipped,
        "rejected": dict(d.rejected),
        "counts": dict(d.counts),
        "error": error,
        "min_time": d.min_time,
        "max_time": d.max_time,
        "seconds": {"read_decode": time.perf_counter() - t0},
    }
    return staged, rejects, stats


#: One read task's work: (part, its index in the plan, the origin of its line numbers).
Task = tuple[read.Part, int, int]


def plan_tasks(parts: list[read.Part]) -> list[list[Task]]:
    """The parts grouped into read tasks (``read.group_parts``), each with its index and the
    origin of its line numbers (``ledger.first_lines``)."""
    indexed = list(zip(parts, range(len(parts)), ledger.first_lines(parts), strict=True))
    groups = []
    for g in read.group_parts(parts):
        groups.append(indexed[: len(g)])
        indexed = indexed[len(g) :]
    return groups
