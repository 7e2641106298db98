"""Everything written to the output directory: Parquet parts, run summaries, the atomic swap.

Layout of an output directory ``OUT``::

    OUT/.versions/<run_id>/        one complete set of tables per committed run
        segments/date=YYYY-MM-DD/part-*.parquet
        videos/ views/ video_stats/ video_timeline/ video_daily/ rejects/   part-*.parquet
        _run.json
    OUT/current -> .versions/<run_id>      switched atomically by rename at commit
    OUT/segments -> current/segments       (and likewise every table, rejects, _run.json)

Readers open ``OUT/segments`` and so on; since every table link goes through ``current``,
one rename switches all tables at once: a reader, or a run killed at any point, sees either
the previous set or the new one, never a mix. Segment days a run does not replace are hard
links to the previous version's files, so they are neither copied nor touched.

This is the only module that writes under the output directory.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import time
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from . import schema

VERSIONS = ".versions"
CURRENT = "current"
RUN_JSON = "_run.json"
LINKED = (*schema.OUTPUTS, RUN_JSON)
SIDE = "_parts"  # per-input-part side outputs of a run, removed before commit


def new_run_id(out: str | Path) -> str:
    """A unique id for a run's version directory that sorts after every version already in
    ``out``, also for runs a second apart or after the clock stepped back: ``prune`` tells a
    committed version from a run that died before its commit by that order."""
    now = time.time()
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now)) + f".{int(now % 1 * 1e6):06d}"
    vdir = Path(out) / VERSIONS
    latest = max((p.name for p in vdir.iterdir()), default="") if vdir.is_dir() else ""
    if stamp + "-" <= latest:
        stamp = latest.split("-", 1)[0] + "z"
    return stamp + "-" + uuid.uuid4().hex[:8]


def version_dir(out: str | Path, run_id: str) -> Path:
    return Path(out) / VERSIONS / run_id


def current_version(out: str | Path) -> Path | None:
    """The committed version directory, or None before the first commit."""
    link = Path(out) / CURRENT
    if not link.is_symlink():
        return None
    target = link.resolve()
    return target if target.is_dir() else None


def _arrow_table(df: pd.DataFrame, table_schema: schema.Schema | None) -> pa.Table:
    if table_schema is not None:
        df = schema.conform(df, table_schema)
    return _readable_dates(pa.Table.from_pandas(df, preserve_index=False))


def _readable_dates(table: pa.Table) -> pa.Table:
    """The table with its pandas metadata naming date columns as datetimes: fastparquet
    cannot build an Arrow-backed date column, and for a date of Python objects it returns
    integers; as datetimes it gives midnight timestamps. pyarrow (and so pandas) reads
    the DATE column as dates whatever the metadata says."""
    meta = table.schema.pandas_metadata
    if not meta:
        return table
    dates = [c for c in meta["columns"] if c.get("pandas_type") == "date"]
    if not dates:
        return table
    for c in dates:
        c["numpy_type"] = "datetime64[ns]"
    return table.replace_schema_metadata({**table.schema.metadata, b"pandas": json.dumps(meta)})


def write_parquet(df: pd.DataFrame, path: str | Path, table_schema: schema.Schema | None = None):
    """Write one Parquet file atomically (a temporary name, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    pq.write_table(_arrow_table(df, table_schema), tmp, compression="zstd")
    os.replace(tmp, path)


def write_json(data: dict, path: str | Path) -> None:
    """Write JSON atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=False, default=str) + "\n")
    os.replace(tmp, path)


def write_table_part(stage: Path, table: str, part: int | str, df: pd.DataFrame) -> None:
    """One part of one of the non-segment tables (or rejects) of a run being built."""
    write_parquet(df, stage / table / f"part-{part}.parquet", schema.OUTPUTS.get(table))


def write_segments_part(stage: Path, part: int | str, segments: pd.DataFrame) -> list[str]:
    """Write a partition's segments into ``segments/date=D/``; returns the dates written.

    The ``date`` column lives in the directory name (Hive partitioning), not in the files.
    """
    segments = schema.conform(segments, schema.SEGMENTS)
    dates = []
    for date, grp in segments.groupby("date", sort=True):
        cols = [c for c in schema.SEGMENTS if c != "date"]
        df = grp[cols].sort_values(schema.KEYS["segments"], kind="stable")
        write_parquet(df, stage / "segments" / f"date={date}" / f"part-{part}.parquet")
        dates.append(str(date))
    return dates


def write_side(stage: Path, part: int, name: str, df: pd.DataFrame) -> None:
    """A side output of one read task (rejects, video partials), kept until commit."""
    write_parquet(df, stage / SIDE / name / f"part-{part:06d}.parquet")


def write_side_stats(stage: Path, part: int, stats: list[dict]) -> None:
    """The line stats of one read task's parts, kept until commit."""
    write_json({"parts": stats}, stage / SIDE / "stats" / f"part-{part:06d}.json")


def read_side_stats(stage: Path) -> list[dict]:
    """Every read task's part stats, in task order."""
    files = sorted((stage / SIDE / "stats").glob("part-*.json"))
    return [st for f in files for st in json.loads(f.read_text())["parts"]]


def side_parts(stage: Path, name: str) -> Iterator[tuple[str, pd.DataFrame]]:
    """(task name, frame) of each read task's side output ``name``, in task order."""
    for f in sorted((stage / SIDE / name).glob("part-*.parquet")):
        yield f.stem.split("-", 1)[1], pd.read_parquet(f)


def read_side(stage: Path, name: str) -> pd.DataFrame | None:
    """Every read task's side output ``name`` in one frame, or None when none was written."""
    frames = [df for _, df in side_parts(stage, name)]
    return pd.concat(frames, ignore_index=True) if frames else None


def segment_dates(version: Path) -> list[str]:
    """The dates that have a segments partition in a version directory."""
    seg = version / "segments"
    if not seg.is_dir():
        return []
    return sorted(p.name.split("=", 1)[1] for p in seg.iterdir() if p.name.startswith("date="))


def link_segment_days(previous: Path, stage: Path, dates: Iterable[str]) -> None:
    """Carry the previous version's segments of ``dates`` into the new version, by hard
    links (falling back to copies where the filesystem has none)."""
    for date in dates:
        src = previous / "segments" / f"date={date}"
        dst = stage / "segments" / f"date={date}"
        dst.mkdir(parents=True, exist_ok=True)
        for f in sorted(src.iterdir()):
            if f.name.startswith("."):
                continue
            target = dst / f"prev-{f.name}" if not f.name.startswith("prev-") else dst / f.name
            try:
                os.link(f, target)
            except OSError:
                shutil.copy2(f, target)


def table_files(version: Path, table: str) -> list[Path]:
    """The Parquet parts of a non-segment table in a version directory."""
    return sorted((version / table).glob("*.parquet"))


def segment_files(version: Path) -> list[Path]:
    return sorted((version / "segments").glob("date=*/*.parquet"))


def segments_dir(version: Path) -> str:
    """The segments dataset of a version (Hive-partitioned by ``date``), for Dask to read."""
    return str(version / "segments")


def read_table(out_or_version: str | Path, table: str) -> pd.DataFrame:
    """Read a committed table (from OUT or a version dir) as a canonical pandas frame."""
    path = Path(out_or_version) / table
    if table == "segments":
        files = sorted(path.glob("date=*/*.parquet"))
        frames = [pd.read_parquet(f).assign(date=f.parent.name.split("=", 1)[1]) for f in files]
        df = pd.concat(frames, ignore_index=True) if frames else schema.empty(schema.SEGMENTS)
        return schema.canonical(df, "segments")
    files = sorted(path.glob("*.parquet"))
    frames = [pd.read_parquet(f) for f in files]
    if table == "rejects":
        df = pd.concat(frames, ignore_index=True) if frames else schema.empty(schema.REJECTS)
        return schema.conform(df, schema.REJECTS)
    df = pd.concat(frames, ignore_index=True) if frames else schema.empty(schema.TABLES[table])
    return schema.canonical(df, table)


def outdated(version: Path) -> str | None:
    """Why ``version`` holds tables of an older layout (a table or a declared column
    missing), or None when this release reads it as is. Reads one Parquet footer per table."""
    for table, sch in schema.OUTPUTS.items():
        files = segment_files(version) if table == "segments" else table_files(version, table)
        files = files or sorted((version / table).glob("*.parquet"))  # segments of no day
        if not files:
            return f"it has no {table} table"
        names = set(pq.read_schema(files[0]).names)
        if table == "segments" and files[0].parent.name.startswith("date="):
            names.add("date")  # the Hive partition
        missing = [c for c in sch if c not in names]
        if missing:
            return f"its {table} lack {', '.join(missing[:4])}{' …' if len(missing) > 4 else ''}"
    return None


def ensure_empty_tables(stage: Path) -> None:
    """Give every table at least one (possibly empty) file, so readers find its columns.

    Segments without any day get one empty file at the top of ``segments/``, which carries
    ``date`` as a column since there is no ``date=`` directory to name it."""
    for table, sch in schema.OUTPUTS.items():
        d = stage / table
        if not any(d.glob("*.parquet")) and not any(d.glob("date=*/*.parquet")):
            write_parquet(schema.empty(sch), d / "part-empty.parquet", sch)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def commit(out: str | Path, run_id: str, keep: int = 2) -> Path:
    """Make version ``run_id`` the current one, atomically; prune old versions (see
    ``prune``: the previous one, and any replaced within ``REPLACED_KEPT_FOR``, stay)."""
    out = Path(out)
    stage = version_dir(out, run_id)
    shutil.rmtree(stage / SIDE, ignore_errors=True)
    _fsync_dir(stage)
    tmp = out / f".{CURRENT}.{uuid.uuid4().hex[:8]}"
    os.symlink(os.path.join(VERSIONS, run_id), tmp)
    os.replace(tmp, out / CURRENT)  # the commit point
    _fsync_dir(out)
    for name in LINKED:
        link = out / name
        if link.is_symlink():
            continue
        if link.exists():  # a stray real file or directory of that name: leave it be
            continue
        os.symlink(os.path.join(CURRENT, name), link)
    prune(out, keep)
    return stage


#: How long a replaced version stays (seconds) after the commit that replaced it: a reader
#: that resolved ``current`` just before a switch reads that version whole, even when runs
#: commit every second. Nightly runs keep one earlier version anyway (``keep``).
REPLACED_KEPT_FOR = 3600.0


def committed_at(version: Path) -> float:
    """When ``version`` was committed: its ``_run.json`` is the last file a run writes
    before the switch."""
    return (version / RUN_JSON).stat().st_mtime


def prune(
    out: str | Path, keep: int = 2, grace: float = REPLACED_KEPT_FOR, now: float | None = None
) -> None:
    """Keep the current version, the ``keep - 1`` committed versions before it, and every
    version replaced less than ``grace`` seconds ago (for readers that opened them); remove
    the rest, including versions newer than the current one, which are runs that died before
    their commit. Run ids sort by start time."""
    vdir = Path(out) / VERSIONS
    if not vdir.is_dir():
        return
    cur = current_version(out)
    # compare names, not paths: ``out`` may be relative while the link resolves absolute
    names = sorted(p.name for p in vdir.iterdir() if p.is_dir())
    keep_names = set() if cur is None else _kept(vdir, names, cur.name, keep, grace, now)
    for n in names:
        if n not in keep_names:
            shutil.rmtree(vdir / n, ignore_errors=True)


def _kept(vdir: Path, names: list[str], cur: str, keep: int, grace: float, now) -> set[str]:
    committed = [n for n in names if n <= cur and (n == cur or (vdir / n / RUN_JSON).exists())]
    kept = {cur, *committed[:-1][-(keep - 1) :]} if keep > 1 else {cur}
    now = time.time() if now is None else now
    for replaced, successor in zip(committed[:-1], committed[1:], strict=True):
        try:
            if now - committed_at(vdir / successor) < grace:
                kept.add(replaced)
        except FileNotFoundError:  # the current version always has one; a stray may not
            continue
    return kept


class Busy(RuntimeError):
    """Another run holds the output directory."""


@contextlib.contextmanager
def lock(out: str | Path) -> Iterator[None]:
    """Hold ``OUT/.lock`` for the run: two runs into one directory (an overlapping nightly
    job) would otherwise prune each other's unfinished versions."""
    path = Path(out) / ".lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise Busy(f"another run is writing to {out} (it holds {path})") from None
        yield
    finally:
        os.close(fd)  # closing releases the lock, also when the process dies


def abandon(out: str | Path, run_id: str) -> None:
    """Remove a run's unfinished version directory (the committed state is untouched)."""
    shutil.rmtree(version_dir(out, run_id), ignore_errors=True)


# ------------------------------------------------------------------ per-user video partials
#: Hidden table beside the segments: schema.USER_VIDEOS by day, for rebuilding ``videos``
USER_VIDEOS = "_user_videos"


def write_user_videos_part(stage: Path, part: int | str, df: pd.DataFrame) -> None:
    """One user partition's per-user video partials, by local day (Hive style)."""
    df = schema.conform(df, schema.USER_VIDEOS)
    cols = [c for c in schema.USER_VIDEOS if c != "date"]
    for date, grp in df.groupby("date", sort=True):
        write_parquet(grp[cols], stage / USER_VIDEOS / f"date={date}" / f"part-{part}.parquet")


def link_user_videos_days(previous: Path, stage: Path, dates: Iterable[str]) -> None:
    """Carry the previous version's per-user video partials of ``dates`` over (hard links)."""
    for date in dates:
        src = previous / USER_VIDEOS / f"date={date}"
        if not src.is_dir():
            continue
        dst = stage / USER_VIDEOS / f"date={date}"
        dst.mkdir(parents=True, exist_ok=True)
        for f in sorted(src.glob("*.parquet")):
            target = dst / (f.name if f.name.startswith("prev-") else f"prev-{f.name}")
            try:
                os.link(f, target)
            except OSError:
                shutil.copy2(f, target)


def has_user_videos(version: Path) -> bool:
    """Whether a version stores per-user video partials (versions before them do not)."""
    return (version / USER_VIDEOS).is_dir()


def read_user_videos(version: Path) -> pd.DataFrame:
    """Every stored day of per-user video partials (schema.USER_VIDEOS)."""
    frames = [
        pd.read_parquet(f).assign(date=f.parent.name.split("=", 1)[1])
        for f in sorted((version / USER_VIDEOS).glob("date=*/*.parquet"))
    ]
    if not frames:
        return schema.empty(schema.USER_VIDEOS)
    return schema.conform(pd.concat(frames, ignore_index=True), schema.USER_VIDEOS)


def drop_rows_in_days(stage: Path, table: str, dates: Iterable[str], gone) -> int:
    """Rewrite the files of ``table``'s ``dates`` in a version being built without the rows
    for which ``gone(frame)`` is true (a boolean array); returns the rows removed. Files are
    replaced, never edited: a hard-linked file of the previous version stays as it was."""
    removed = 0
    for date in dates:
        for f in sorted((stage / table / f"date={date}").glob("*.parquet")):
            df = pd.read_parquet(f)
            mask = gone(df)
            if mask.any():
                write_parquet(df[~mask], f)
                removed += int(mask.sum())
    return removed


def user_videos_dates(version: Path) -> list[str]:
    """The days that have per-user video partials in a version directory."""
    return sorted(p.name.split("=", 1)[1] for p in (version / USER_VIDEOS).glob("date=*"))
