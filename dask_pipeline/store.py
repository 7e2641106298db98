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


def new_run_id() -> str:
    """A sortable, unique id for a run's version directory."""
    import time

    return time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + "-" + uuid.uuid4().hex[:8]


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
    """A side output of one input part (rejects, video partials), kept until commit."""
    write_parquet(df, stage / SIDE / name / f"part-{part:06d}.parquet")


def side_files(stage: Path, name: str) -> list[Path]:
    return sorted((stage / SIDE / name).glob("part-*.parquet"))


def read_side(stage: Path, name: str) -> pd.DataFrame | None:
    files = side_files(stage, name)
    if not files:
        return None
    return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)


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
    """Make version ``run_id`` the current one, atomically; prune old versions.

    Keeps the ``keep`` newest versions (the previous one stays for readers that opened it).
    """
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


def prune(out: str | Path, keep: int = 2) -> None:
    """Keep the current version and the ``keep - 1`` committed versions before it (for
    readers that opened them); remove the rest, including versions newer than the current
    one, which are runs that died before their commit. Run ids sort by start time."""
    vdir = Path(out) / VERSIONS
    if not vdir.is_dir():
        return
    cur = current_version(out)
    # compare names, not paths: ``out`` may be relative while the link resolves absolute
    names = sorted(p.name for p in vdir.iterdir() if p.is_dir())
    keep_names: set[str] = set()
    if cur is not None:
        older = [n for n in names if n < cur.name and (vdir / n / RUN_JSON).exists()]
        keep_names = {cur.name, *older[len(older) - (keep - 1) :]} if keep > 1 else {cur.name}
    for n in names:
        if n not in keep_names:
            shutil.rmtree(vdir / n, ignore_errors=True)


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
