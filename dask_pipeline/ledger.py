"""The run's ledger: line accounting per input, the numbering of rejected lines, the days a
run replaces, counts per step, and the ``_run.json`` summary (SPEC §7, §8).

Pure: takes the stats the read tasks return (``ingest.read_part``) and the results of the
user and video tasks, returns plain dicts and frames; knows nothing of Dask or the disk.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable, Sequence

import pandas as pd

from . import __version__, read, window
from .config import RunConfig

#: The per-input line accounting fields summed over its parts.
LINE_FIELDS = ("lines", "accepted", "skipped")


def first_lines(parts: Sequence[read.Part]) -> list[int]:
    """The line numbering origin of each part: 1 for whole files; for a byte range, an
    origin past every line number of the file's earlier ranges (renumbered at commit)."""
    per_byte = {True: read.GZIP_LINES_PER_BYTE, False: 1}
    return [1 if p.start == 0 else p.start * per_byte[p.gzip] + 1 for p in parts]


def line_offsets(stats: Iterable[dict]) -> dict[int, int]:
    """Per part, what to add to its decoder's line numbers to get the file's true ones: a
    byte range's lines follow those counted in the earlier ranges of its file."""
    offset: dict[int, int] = {}
    done_lines: Counter = Counter()
    for st in sorted(stats, key=lambda s: (s["file"], s["start"])):
        offset[st["part"]] = done_lines[st["file"]] + 1 - st["first_line"]
        done_lines[st["file"]] += st["lines"]
    return offset


def renumber_rejects(rejects: pd.DataFrame, offsets: dict[int, int]) -> pd.DataFrame:
    """Rejects of read tasks (with their ``part``) with true line numbers."""
    shift = rejects["part"].map(offsets).fillna(0).astype("int64").to_numpy()
    return rejects.assign(line=rejects["line"].to_numpy() + shift)


def merge_counts(items: Iterable[dict]) -> Counter:
    total: Counter = Counter()
    for c in items:
        total.update(c)
    return total


def sum_seconds(items: Iterable[dict]) -> dict[str, float]:
    return {k: round(v, 3) for k, v in merge_counts(items).items()}


def inputs_summary(
    paths: Sequence[str], sizes: Sequence[int | None], stats: Iterable[dict]
) -> list[dict]:
    """Per input file: its size, lines read, accepted, skipped and rejected (by reason), read
    errors, and whether the lines balance."""
    by_file = [
        {
            "path": path,
            "size": size,
            "lines": 0,
            "accepted": 0,
            "skipped": 0,
            "rejected": {},
            "errors": [],
        }
        for path, size in zip(paths, sizes, strict=True)
    ]
    for st in stats:
        f = by_file[st["file"]]
        for k in LINE_FIELDS:
            f[k] += st[k]
        rej = Counter(f["rejected"])
        rej.update(st["rejected"])
        f["rejected"] = dict(sorted(rej.items()))
        if st["error"]:
            f["errors"].append(st["error"])
    for f in by_file:
        f["rejected_total"] = sum(f["rejected"].values())
        f["balanced"] = f["lines"] == f["accepted"] + f["skipped"] + f["rejected_total"]
    return by_file


def unreadable(inputs: Sequence[dict]) -> str | None:
    """Why the run must fail when no input could be read at all, else None."""
    if inputs and all(f["lines"] == 0 and f["errors"] for f in inputs):
        return "no input could be read: " + "; ".join(
            f"{f['path']}: {f['errors'][0]['kind']}" for f in inputs
        )
    return None


def input_warnings(inputs: Iterable[dict]) -> list[str]:
    """One line per read error, for the terminal."""
    return [f"{f['path']}: {e['kind']} ({e['detail']})" for f in inputs for e in f["errors"]]


def replaced_dates(cfg: RunConfig, stats: Sequence[dict]) -> list[str]:
    """The local dates whose segments this run replaces: the window's days, or without a
    window the days between the earliest and latest video event read."""
    lo, hi = cfg.since, cfg.until
    if lo is None or hi is None:
        mins = [s["min_time"] for s in stats if s["min_time"] is not None]
        maxs = [s["max_time"] for s in stats if s["max_time"] is not None]
        if not mins:
            return []
        lo = lo or window.local_date(min(mins), cfg.tz)
        hi = hi or window.local_date(max(maxs), cfg.tz)
    return [d.isoformat() for d in window.days(lo, hi)]


def kept_dates(previous_dates: Iterable[str], replaced: Iterable[str]) -> list[str]:
    """The previous version's segment days this run carries over unchanged."""
    gone = set(replaced)
    return [d for d in previous_dates if d not in gone]


def options_record(cfg: RunConfig) -> dict:
    """The run's options as recorded in ``_run.json`` (the key itself never)."""
    c = cfg.cluster
    return {
        "inputs": list(cfg.inputs),
        "out": str(cfg.out),
        "rules": cfg.rules,
        "staff_file": str(cfg.staff_file) if cfg.staff_file else None,
        "staff_users": len(cfg.staff),
        "min_events": cfg.min_events,
        "since": _iso(cfg.since),
        "until": _iso(cfg.until),
        "tz": cfg.tz,
        "lookback_hours": cfg.lookback_hours,
        "bin_seconds": cfg.bin_seconds,
        "pseudonymize_key_env": cfg.pseudonymize_key_env,
        "course_structures": list(cfg.course_structures),
        "scheduler": c.scheduler,
        "scheduler_file": str(c.scheduler_file) if c.scheduler_file else None,
        "workers": c.workers,
        "threads_per_worker": c.threads_per_worker,
        "memory_limit": c.memory_limit,
        "dashboard_address": c.dashboard_address,
    }


def _iso(day: dt.date | None) -> str | None:
    return day.isoformat() if day else None


def run_summary(
    cfg: RunConfig,
    *,
    run_id: str,
    argv: list[str] | None,
    inputs: list[dict],
    results: dict[str, list[dict]],
    extra_counts: dict[str, int],
    replaced: list[str],
    kept: list[str],
    timings: dict[str, float],
    cluster: dict,
) -> dict:
    """The ``_run.json`` of a run. ``results`` holds, per step ("read", "users", "videos"),
    the dicts its tasks returned, each with ``counts`` and ``seconds``; ``extra_counts`` are
    counts of the whole run (they replace any of the same name)."""
    steps = list(results.values())
    counts = {**merge_counts(r["counts"] for step in steps for r in step), **extra_counts}
    return {
        "version": __version__,
        "run_id": run_id,
        "arguments": argv if argv is not None else [],
        "options": options_record(cfg),
        "inputs": inputs,
        "lines": {k: sum(f[k] for f in inputs) for k in LINE_FIELDS}
        | {"rejected": sum(f["rejected_total"] for f in inputs)},
        "counts": dict(sorted(counts.items())),
        "window": {
            "since": _iso(cfg.since),
            "until": _iso(cfg.until),
            "tz": cfg.tz,
            "replaced_dates": replaced,
            "kept_dates": kept,
        },
        "timings": timings,
        "task_seconds": sum_seconds(r["seconds"] for step in steps for r in step),
        "cluster": cluster,
        "committed_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
