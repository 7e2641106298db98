"""The Dask graph: read -> decode -> (shuffle by user) filter -> segments -> (shuffle by video)
metrics -> store. Composes the pure stages; holds no business rules.

Three graphs run one after the other:

1. ``dd.from_map`` reads and decodes each input part (a whole file or a byte range); each part
   writes its rejects, video partials and line counts aside and hands on only the events the
   rule sets use plus its per-user activity. Those are shuffled by username, and each user
   partition is filtered (course team, staff, activity floor), run through the rule set and
   written as segment parts partitioned by date.
2. All stored segments (the window's new days and the earlier days kept from the previous
   version) are shuffled by video, and each video partition yields views, video_stats,
   video_timeline and video_daily parts.
3. The views are shuffled by course, and each course partition yields course_stats parts.

Then the run summary is written and the new version committed atomically (``store``).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import hashlib
import hmac
import json
import re
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import dask.dataframe as dd
import numpy as np
import pandas as pd
from dask import delayed

from . import __version__, decode, filters, metrics, read, schema, segments, store, vocabulary
from .config import RunConfig

#: Dask's task-based shuffle: its fixed cost is far below P2P's for the few partitions a
#: night's logs make, but it holds every piece in memory until the last input is read.
SHUFFLE = "tasks"
#: Above this much input text (about 3.5M lines) the user shuffle goes peer to peer: P2P
#: stages its pieces on the workers' disks, so worker memory stays flat however much is read.
P2P_ABOVE = 4 << 30


#: Views up to this many bytes of Parquet (about a million views) make course_stats in the
#: client in one pandas call: well under a second, where a graph costs seconds.
COURSES_HERE_BELOW = 16 << 20


def shuffle_method(text_bytes: int) -> str:
    """ "p2p" for large inputs (memory bounded), else the task shuffle (low fixed cost)."""
    return "p2p" if text_bytes > P2P_ABOVE else SHUFFLE


#: The events the rule sets read; loads, speed changes and captions change no state.
RULE_EVENTS = (vocabulary.PLAY, vocabulary.PAUSE, vocabulary.STOP, vocabulary.SEEK)


class RunFailed(RuntimeError):
    """Nothing was committed (exit status 1)."""


@dataclass
class RunResult:
    out: Path
    version: Path
    summary: dict
    warnings: list[str] = field(default_factory=list)


# ------------------------------------------------------------------ stage 1: read + decode
def _empty_staged() -> pd.DataFrame:
    return schema.empty(schema.STAGED)


def _staged(events: pd.DataFrame, activity: pd.DataFrame) -> pd.DataFrame:
    """Events and activity rows in one frame (schema.STAGED) for the user shuffle."""
    ev = events.assign(events=np.zeros(len(events), "int64"), team=np.zeros(len(events), bool))
    act = schema.empty(schema.EVENTS).reindex(range(len(activity)))
    for c in ("course_id", "username"):
        act[c] = activity[c].to_numpy()
    act["events"] = activity["events"].to_numpy()
    act["team"] = activity["team"].to_numpy()
    act["file"] = 0
    act["line"] = 0
    return schema.conform(pd.concat([ev, act], ignore_index=True), schema.STAGED)


def stage_part(
    part: read.Part,
    index: int,
    first_line: int,
    window: decode.Window,
    count_activity: bool,
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, dict]:
    """Read and decode one input part: (staged rows, rejects, video partials, stats).

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
    partials = metrics.video_partials(d.events)
    staged = _staged(d.events[d.events["event_type"].isin(RULE_EVENTS)], d.activity)
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
    return staged, rejects, partials, stats


def stage_group(
    group: list[tuple[read.Part, int, int]],
    stage: str,
    window: decode.Window,
    count_activity: bool,
    key: bytes | None = None,
) -> pd.DataFrame:
    """One Dask partition: read and decode a group of (part, index, first line); write the
    group's rejects, video partials and stats aside; return the staged rows."""
    out = [stage_part(p, i, f, window, count_activity) for p, i, f in group]
    t0 = time.perf_counter()
    where = Path(stage)
    name = group[0][1]
    rejects = pd.concat([o[1] for o in out], ignore_index=True)
    if key is not None and len(rejects):
        # SPEC §9: not even the side outputs a killed run leaves behind hold a raw username
        texts = [_pseudonymize_text(t, key) for t in rejects["text"]]
        rejects["text"] = pd.array(texts, dtype=schema.STR)
    if len(rejects):
        store.write_side(where, name, "rejects", rejects)
    store.write_side(where, name, "videos", pd.concat([o[2] for o in out], ignore_index=True))
    stats = [o[3] for o in out]
    stats[0]["seconds"]["side_outputs"] = time.perf_counter() - t0
    store.write_json({"parts": stats}, where / store.SIDE / "stats" / f"part-{name:06d}.json")
    staged = [o[0] for o in out]
    return staged[0] if len(staged) == 1 else pd.concat(staged, ignore_index=True)


# ------------------------------------------------------------------ stage 2: users
def pseudonym(key: bytes, username: str) -> str:
    """SPEC §9: HMAC-SHA256 of the username keyed by ``key``, as hex."""
    return hmac.new(key, username.encode("utf-8"), hashlib.sha256).hexdigest()


def _local_dates(times: pd.Series, tz: str) -> pd.Series:
    local = times.dt.tz_convert(tz).dt.tz_localize(None).dt.normalize()
    uniq = local.unique()
    names = {u: pd.Timestamp(u).strftime("%Y-%m-%d") for u in uniq}
    return pd.Series(
        pd.array(local.map(names).to_numpy(), dtype=schema.STR), index=times.index, name="date"
    )


def user_stage(
    part: pd.DataFrame,
    index: int,
    stage: str,
    rules: str,
    staff: frozenset[str],
    min_events: int | None,
    since_us: int | None,
    until_us: int | None,
    tz: str,
    key: bytes | None,
) -> dict:
    """Filter one user partition, build its segments, write them; return counts and dates."""
    t0 = time.perf_counter()
    events, counts = filters.apply_filters(part, staff, min_events)
    t1 = time.perf_counter()
    segs, rule_counts = segments.RULES[rules](events)
    counts.update({f"{rules}.{k}": v for k, v in rule_counts.items()})
    t2 = time.perf_counter()
    us = segs["time"].astype("int64").to_numpy()
    inside = np.ones(len(segs), bool)
    if since_us is not None:
        inside &= us >= since_us
    if until_us is not None:
        inside &= us < until_us
    counts["segments_outside_window"] = int((~inside).sum())
    segs = segs[inside].reset_index(drop=True)
    if key is not None and len(segs):
        names = {u: pseudonym(key, u) for u in segs["username"].unique()}
        segs["username"] = pd.array(segs["username"].map(names).to_numpy(), dtype=schema.STR)
    segs["date"] = _local_dates(segs["time"], tz)
    counts["segments"] = len(segs)
    dates = store.write_segments_part(Path(stage), f"{index:06d}", segs)
    t3 = time.perf_counter()
    return {
        "counts": dict(counts),
        "dates": dates,
        "seconds": {"filter": t1 - t0, "segments": t2 - t1, "write_segments": t3 - t2},
    }


# ------------------------------------------------------------------ stage 3: videos
def video_stage(part: pd.DataFrame, index: int, stage: str, videos: pd.DataFrame, bins: int):
    """Per-video tables of one video partition, written as parts; returns counts."""
    t0 = time.perf_counter()
    part = part.assign(date=part["date"].astype(str))
    # a canonical row order makes float sums independent of how the work was partitioned
    segs = schema.canonical(part, "segments")
    tables = metrics.video_tables(segs, videos, bins)
    counters = tables.pop("counters", {})
    for name, df in tables.items():
        store.write_table_part(Path(stage), name, f"{index:06d}", df)
    return {"counts": dict(counters), "seconds": {"metrics": time.perf_counter() - t0}}


def course_stage(part: pd.DataFrame, index: int, stage: str, videos: pd.DataFrame) -> list:
    """course_stats of one course partition of views, written as a part; returns the
    courses written."""
    courses = part["course_id"].unique()
    stats = metrics.course_stats(part, videos[videos["course_id"].isin(courses)])
    if len(stats):
        store.write_table_part(Path(stage), "course_stats", f"{index:06d}", stats)
    return list(stats["course_id"])


def _course_stats(client, stage: Path, videos: pd.DataFrame, npartitions: int, cfg) -> None:
    """Graph 3: the views shuffled by course, a course_stats part per partition; courses
    nobody watched are added from ``videos``. Small views are done here in one call."""
    views_files = store.table_files(stage, "views")
    if sum(f.stat().st_size for f in views_files) <= COURSES_HERE_BELOW:
        stats = metrics.course_stats(store.read_table(stage, "views"), videos)
        store.write_table_part(stage, "course_stats", "000000", stats)
        return
    done: list = []
    if views_files:
        views = dd.read_parquet(str(stage / "views"), engine="pyarrow")
        n = max(1, min(npartitions, videos["course_id"].nunique()))
        by_course = views.shuffle(on="course_id", npartitions=n, shuffle_method=SHUFFLE)
        vids = client.scatter(videos, broadcast=True)
        key = f"course-stage-{stage.name}"  # the run id: unique on a long-lived cluster
        tasks = [
            delayed(course_stage)(p, i, str(stage), vids, dask_key_name=f"{key}-{i}")
            for i, p in enumerate(by_course.to_delayed())
        ]
        done = [c for r in _compute(client, tasks, "courses", cfg.progress) for c in r]
    rest = videos[~videos["course_id"].isin(done)]
    unwatched = metrics.course_stats(schema.empty(schema.VIEWS), rest)
    store.write_table_part(stage, "course_stats", "unwatched", unwatched)


# ------------------------------------------------------------------ driving
def _compute(client, tasks: list, label: str, show: bool) -> list:
    """Run delayed tasks on the cluster with a progress display; returns their results."""
    futures = client.compute(tasks)
    if show:
        _progress(futures, label)
    return client.gather(futures)


def _progress(futures, label: str) -> None:
    """Show progress until the futures finish or one fails. On a terminal, Dask's own bar
    over every task of the graph; elsewhere (logs of a nightly job) a line per tenth."""
    from distributed import wait

    total = len(futures)
    if total == 0:
        return
    if sys.stderr.isatty():
        from distributed.diagnostics.progressbar import progress

        print(f"{label}:", file=sys.stderr)
        with contextlib.suppress(Exception):
            progress(futures, notebook=False)
        return
    last = -1
    while True:
        finished = sum(f.status == "finished" for f in futures)
        if finished == total or finished - last >= max(1, total // 10):
            print(f"{label}: {finished}/{total} partitions done", file=sys.stderr)
            last = finished
        if finished == total or any(f.status in ("error", "cancelled") for f in futures):
            return
        with contextlib.suppress(Exception):
            wait(futures, timeout=0.5, return_when="FIRST_EXCEPTION")


def _first_lines(parts: list[read.Part]) -> list[int]:
    """The line numbering origin of each part: 1 for whole files; for a byte range, an
    origin past every line number of the file's earlier ranges (renumbered at commit)."""
    return [1 if p.start == 0 else p.start + 1 for p in parts]


def _merge_counts(items) -> Counter:
    total: Counter = Counter()
    for c in items:
        total.update(c)
    return total


def _sum_seconds(items) -> dict[str, float]:
    total: Counter = Counter()
    for s in items:
        total.update(s)
    return {k: round(v, 3) for k, v in total.items()}


def _inputs_summary(paths: list[str], stats: list[dict]) -> list[dict]:
    by_file: dict[int, dict] = {}
    for i, path in enumerate(paths):
        by_file[i] = {
            "path": path,
            "size": read.file_size(path),
            "lines": 0,
            "accepted": 0,
            "skipped": 0,
            "rejected": {},
            "errors": [],
        }
    for st in stats:
        f = by_file[st["file"]]
        for k in ("lines", "accepted", "skipped"):
            f[k] += st[k]
        rej = Counter(f["rejected"])
        rej.update(st["rejected"])
        f["rejected"] = dict(sorted(rej.items()))
        if st["error"]:
            f["errors"].append(st["error"])
    for f in by_file.values():
        f["rejected_total"] = sum(f["rejected"].values())
        f["balanced"] = f["lines"] == f["accepted"] + f["skipped"] + f["rejected_total"]
    return [by_file[i] for i in range(len(paths))]


def _commit_rejects(stage: Path, stats: list[dict]) -> int:
    """Move the side rejects into the rejects table with true line numbers (byte-range
    parts are renumbered from the line counts of the earlier ranges of their file)."""
    offset: dict[int, int] = {}
    done_lines: Counter = Counter()
    for st in sorted(stats, key=lambda s: (s["file"], s["start"])):
        offset[st["part"]] = done_lines[st["file"]] + 1 - st["first_line"]
        done_lines[st["file"]] += st["lines"]
    n = 0
    for f in store.side_files(stage, "rejects"):
        df = pd.read_parquet(f)
        shift = df["part"].map(offset).fillna(0).astype("int64").to_numpy()
        df["line"] = df["line"].to_numpy() + shift
        store.write_table_part(stage, "rejects", f.stem.split("-", 1)[1], df)
        n += len(df)
    return n


_USERNAME_FIELD = re.compile(r'"username"\s*:\s*"((?:[^"\\]|\\.)*)"')


def _pseudonymize_text(text: str, key: bytes) -> str:
    """Replace the line's usernames (the values of its ``username`` fields, JSON-decoded) by
    their pseudonyms wherever they occur in it: the fields themselves, but also URLs and event
    types that embed them, raw or JSON-escaped. A line in which some ``username`` is not a
    whole field (cut inside its value, escaped in a payload string, part of another key) is
    reduced to a placeholder."""
    fields = list(_USERNAME_FIELD.finditer(text))
    if text.count("username") != len(fields):
        return "<line withheld: it may name a user>"
    forms: dict[str, str] = {}
    for m in fields:
        try:
            name = json.loads(f'"{m.group(1)}"').strip()
        except ValueError:
            name = m.group(1).strip()
        if name:
            for form in (name, json.dumps(name)[1:-1]):
                forms[form] = pseudonym(key, name)
    if not forms:
        return text
    pat = re.compile("|".join(re.escape(f) for f in sorted(forms, key=len, reverse=True)))
    return pat.sub(lambda m: forms[m.group(0)], text)


def _replaced_dates(cfg: RunConfig, stats: list[dict]) -> list[str]:
    """The local dates whose segments this run replaces: the window's days, or without a
    window the days between the earliest and latest video event read."""
    lo = cfg.since
    hi = cfg.until
    if lo is None or hi is None:
        mins = [s["min_time"] for s in stats if s["min_time"] is not None]
        maxs = [s["max_time"] for s in stats if s["max_time"] is not None]
        if not mins:
            if lo is None or hi is None:
                return []
        else:

            def local(us: int) -> dt.date:
                ts = pd.Timestamp(us * 1000, tz="UTC").tz_convert(cfg.tz)
                return ts.date()

            lo = lo or local(min(mins))
            hi = hi or local(max(maxs))
    out = []
    d = lo
    while d <= hi:
        out.append(d.isoformat())
        d += dt.timedelta(days=1)
    return out


def run(cfg: RunConfig, client, argv: list[str] | None = None) -> RunResult:
    """Run the job on ``client``'s cluster and commit a new version of the tables.

    Raises RunFailed (nothing committed) when no input line could be read at all or the
    cluster fails, or another run holds the output directory; the previous version then
    stays current.
    """
    paths = read.list_inputs(cfg.inputs)
    parts = read.plan_parts(paths)
    out = Path(cfg.out).absolute()  # workers may not share this process's working directory
    out.mkdir(parents=True, exist_ok=True)
    try:
        with store.lock(out):
            return _run_locked(cfg, client, argv, paths, parts, out)
    except store.Busy as e:
        raise RunFailed(str(e)) from None


def _run_locked(
    cfg: RunConfig,
    client,
    argv: list[str] | None,
    paths: list[str],
    parts: list[read.Part],
    out: Path,
) -> RunResult:
    t_start = time.perf_counter()
    timings: dict[str, float] = {}
    store.prune(out)  # leftovers of runs that died before their commit
    run_id = store.new_run_id()
    stage = store.version_dir(out, run_id)
    stage.mkdir(parents=True)
    previous = store.current_version(out)
    window = decode.Window(cfg.since_us, cfg.until_us, cfg.events_from_us)
    key = cfg.pseudonymize_key
    workers_at_start = len(client.scheduler_info().get("workers", {}))
    try:
        # -- graph 1: read, decode, shuffle by user, filter, segments ---------------------
        t = time.perf_counter()
        indexed = list(zip(parts, range(len(parts)), _first_lines(parts), strict=True))
        sizes = iter(read.group_parts(parts))
        groups = []
        for g in sizes:
            groups.append(indexed[: len(g)])
            indexed = indexed[len(g) :]
        staged = dd.from_map(
            stage_group,
            groups,
            # counting every event per user is needed only for the activity floor
            args=(str(stage), window, cfg.min_events is not None, key),
            meta=_empty_staged(),
            label="read-decode",
            enforce_metadata=False,
        )
        text_bytes = sum(read.text_size(p) for p in parts)
        by_user = staged.shuffle(
            on="username", npartitions=len(groups), shuffle_method=shuffle_method(text_bytes)
        )
        tasks = [
            delayed(user_stage)(
                p,
                i,
                str(stage),
                cfg.rules,
                cfg.staff,
                cfg.min_events,
                cfg.since_us,
                cfg.until_us,
                cfg.tz,
                key,
                dask_key_name=f"user-stage-{run_id}-{i}",
            )
            for i, p in enumerate(by_user.to_delayed())
        ]
        user_results = _compute(client, tasks, "segments", cfg.progress)
        timings["read_to_segments"] = round(time.perf_counter() - t, 3)

        stats = [
            st
            for f in sorted((stage / store.SIDE / "stats").glob("*.json"))
            for st in json.loads(f.read_text())["parts"]
        ]
        inputs = _inputs_summary(paths, stats)
        if paths and all(f["lines"] == 0 and f["errors"] for f in inputs):
            raise RunFailed(
                "no input could be read: "
                + "; ".join(f"{f['path']}: {f['errors'][0]['kind']}" for f in inputs)
            )

        # -- between the graphs: videos, rejects, carried-over segment days -------------
        t = time.perf_counter()
        partials = store.read_side(stage, "videos")
        prev_videos = store.read_table(previous, "videos") if previous else None
        videos = metrics.combine_videos(
            partials
            if partials is not None
            else metrics.video_partials(schema.empty(schema.EVENTS)),
            prev_videos,
        )
        store.write_table_part(stage, "videos", "000000", videos)
        n_rejects = _commit_rejects(stage, stats)
        replaced = _replaced_dates(cfg, stats)
        kept_days: list[str] = []
        if previous is not None:
            kept_days = [d for d in store.segment_dates(previous) if d not in set(replaced)]
            store.link_segment_days(previous, stage, kept_days)
        timings["videos_rejects"] = round(time.perf_counter() - t, 3)

        # -- graph 2: per-video tables from every stored segment --------------------------
        t = time.perf_counter()
        video_results = []
        stats_parts = []
        if store.segment_files(stage):
            seg = dd.read_parquet(str(stage / "segments"), engine="pyarrow")
            n_out = max(1, min(len(groups), 64))
            by_video = seg.shuffle(
                on=["course_id", "video_id"], npartitions=n_out, shuffle_method=SHUFFLE
            )
            vids = client.scatter(videos, broadcast=True)
            tasks = [
                delayed(video_stage)(
                    p,
                    i,
                    str(stage),
                    vids,
                    cfg.bin_seconds,
                    dask_key_name=f"video-stage-{run_id}-{i}",
                )
                for i, p in enumerate(by_video.to_delayed())
            ]
            video_results = _compute(client, tasks, "videos", cfg.progress)
        for f in sorted((stage / "video_stats").glob("*.parquet")):
            stats_parts.append(pd.read_parquet(f))
        watched = (
            pd.concat(stats_parts, ignore_index=True)
            if stats_parts
            else schema.empty(schema.VIDEO_STATS)
        )
        store.write_table_part(
            stage, "video_stats", "unwatched", metrics.unwatched_stats(videos, watched)
        )
        timings["video_tables"] = round(time.perf_counter() - t, 3)
        t = time.perf_counter()
        _course_stats(client, stage, videos, max(1, min(len(groups), 64)), cfg)
        store.ensure_empty_tables(stage)
        timings["course_tables"] = round(time.perf_counter() - t, 3)

        # -- the summary, then the commit -----------------------------------------------
        counts = _merge_counts(s["counts"] for s in stats)
        counts.update(_merge_counts(r["counts"] for r in user_results))
        counts.update(_merge_counts(r["counts"] for r in video_results))
        counts["rejected_lines"] = n_rejects
        counts["videos"] = len(videos)
        task_seconds = _sum_seconds(
            [s["seconds"] for s in stats]
            + [r["seconds"] for r in user_results]
            + [r["seconds"] for r in video_results]
        )
        timings["total"] = round(time.perf_counter() - t_start, 3)
        summary = {
            "version": __version__,
            "run_id": run_id,
            "arguments": argv if argv is not None else [],
            "options": _options(cfg),
            "inputs": inputs,
            "lines": {k: sum(f[k] for f in inputs) for k in ("lines", "accepted", "skipped")}
            | {"rejected": sum(f["rejected_total"] for f in inputs)},
            "counts": dict(sorted(counts.items())),
            "window": {
                "since": cfg.since.isoformat() if cfg.since else None,
                "until": cfg.until.isoformat() if cfg.until else None,
                "tz": cfg.tz,
                "replaced_dates": replaced,
                "kept_dates": kept_days,
            },
            "timings": timings,
            "task_seconds": task_seconds,
            "cluster": _cluster_info(client, workers_at_start),
            "committed_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        }
        store.write_json(summary, stage / store.RUN_JSON)
        store.commit(out, run_id)
    except BaseException:
        store.abandon(out, run_id)
        raise
    warnings = [f"{f['path']}: {e['kind']} ({e['detail']})" for f in inputs for e in f["errors"]]
    return RunResult(out=out, version=stage, summary=summary, warnings=warnings)


def _options(cfg: RunConfig) -> dict:
    c = cfg.cluster
    return {
        "inputs": list(cfg.inputs),
        "out": str(cfg.out),
        "rules": cfg.rules,
        "staff_file": str(cfg.staff_file) if cfg.staff_file else None,
        "staff_users": len(cfg.staff),
        "min_events": cfg.min_events,
        "since": cfg.since.isoformat() if cfg.since else None,
        "until": cfg.until.isoformat() if cfg.until else None,
        "tz": cfg.tz,
        "lookback_hours": cfg.lookback_hours,
        "bin_seconds": cfg.bin_seconds,
        "pseudonymize_key_env": cfg.pseudonymize_key_env,
        "scheduler": c.scheduler,
        "scheduler_file": str(c.scheduler_file) if c.scheduler_file else None,
        "workers": c.workers,
        "threads_per_worker": c.threads_per_worker,
        "memory_limit": c.memory_limit,
        "dashboard_address": c.dashboard_address,
    }


def _cluster_info(client, workers_at_start: int) -> dict:
    info = client.scheduler_info()
    workers = info.get("workers", {})
    from .cluster import dashboard_link

    try:
        peaks = client.run(_peak_rss_mib)
    except Exception:  # noqa: BLE001 - a worker gone at the end must not fail the run
        peaks = {}
    return {
        "scheduler": client.scheduler.address,
        "dashboard": dashboard_link(client),
        "workers": max(workers_at_start, len(workers)),
        "workers_at_start": workers_at_start,
        "workers_at_end": len(workers),
        "threads": sum(w.get("nthreads", 0) for w in workers.values()),
        # lifetime peak of each worker process (a long-lived cluster's workers include
        # earlier work)
        "worker_peak_rss_mib": dict(sorted(peaks.items())),
        "client_peak_rss_mib": _peak_rss_mib(),
    }


def _peak_rss_mib() -> float:
    """This process's peak resident memory so far, in MiB (Linux reports KiB)."""
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
