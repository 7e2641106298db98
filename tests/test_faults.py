"""Faults a cluster has (issue 13, items 5-8), each on real components: the job on separate
`dask scheduler` / `dask worker` processes (cluster/local_cluster.py). Each fault leaves either
the same tables as an undisturbed run, or exit 1 with one line and the previous tables intact
and readable."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pandas.testing as pdt
import pytest

from dask_pipeline import schema, store
from tests import daemons
from tests.conftest import run_job as run_in_process
from tests.test_cluster import (
    TABLES,
    assert_same_tables,
    generate,
    run_job,
    running_cluster,
)

FAILED = "dask-pipeline run: failed, nothing committed: "
EVERY_TABLE = (*schema.TABLES, "rejects")


def snapshot(out: Path) -> dict[str, pd.DataFrame]:
    return {name: store.read_table(out, name) for name in TABLES}


def assert_tables_are(out: Path, tables: dict[str, pd.DataFrame]) -> None:
    for name, df in tables.items():
        pdt.assert_frame_equal(store.read_table(out, name), df, obj=name)
        # and readable the way a dashboard reads it: the table's directory, by pyarrow
        assert len(pd.read_parquet(out / name)) == len(df), name


def one_line_failure(r: subprocess.CompletedProcess) -> str:
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert r.returncode == 1, r.stderr
    assert len(lines) == 1, f"expected one line on stderr:\n{r.stderr}"
    assert lines[0].startswith(FAILED), lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[dict]:
    """Two workers as separate processes, for the runs of this module."""
    with running_cluster(tmp_path_factory.mktemp("faults") / "cluster", "--workers", "2") as c:
        yield c


# ---------------------------------------------------------------- item 6: disk full
@contextlib.contextmanager
def small_tmpfs(path: Path, size: str) -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def _tmpfs_unavailable(tmp_path: Path) -> str | None:
    if sys.platform != "linux" or os.geteuid() != 0:
        return "mounting a tmpfs needs root on Linux"
    probe = tmp_path / "probe"
    probe.mkdir()
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(probe)],
        capture_output=True,
        text=True,
    )
    if r.returncode:
        return f"cannot mount a tmpfs: {r.stderr.strip()}"
    subprocess.run(["umount", str(probe)], check=False)
    return None


def fill(mount: Path, leave_kib: int) -> Path:
    """A file taking all but ``leave_kib`` KiB of ``mount``."""
    st = os.statvfs(mount)
    free = st.f_bavail * st.f_frsize
    filler = mount / "filler"
    with open(filler, "wb") as f:
        f.truncate(0)
        f.write(b"\0" * max(0, free - leave_kib * 1024))
    return filler


@pytest.mark.slow
def test_disk_full_during_the_write_fails_cleanly_and_the_next_run_succeeds(
    request, cluster, small_input, small_reference, tmp_path
):
    reason = _tmpfs_unavailable(tmp_path)
    if reason:
        daemons.say_skip(request, reason)
    with small_tmpfs(tmp_path / "disk", "1m") as disk:
        out = disk / "out"
        sched = ("--scheduler", cluster["address"])
        r = run_job(small_input, out, *sched)
        assert r.returncode == 0, r.stderr
        before, current = snapshot(out), os.readlink(out / "current")

        filler = fill(disk, leave_kib=40)  # the next version's parts do not fit
        r = run_job(small_input, out, *sched)
        line = one_line_failure(r)
        assert "no space left on the device of --out" in line and str(out) in line, line
        assert os.readlink(out / "current") == current
        assert_tables_are(out, before)
        versions = sorted(p.name for p in (out / ".versions").iterdir())
        assert versions == [Path(current).name], "the failed run left its version behind"

        filler.unlink()  # space again
        r = run_job(small_input, out, *sched)
        assert r.returncode == 0, r.stderr
        assert os.readlink(out / "current") != current
        assert_same_tables(out, small_reference)


# ---------------------------------------------------------------- item 8: readers
READER = textwrap.dedent(
    """
    import json, os, sys, time
    import pandas as pd
    out, tables, stop, log = sys.argv[1], sys.argv[2].split(","), sys.argv[3], sys.argv[4]
    with open(log, "w") as f:
        while not os.path.exists(stop):
            # the documented way: resolve `current` once, then read every table of that version
            version = os.path.realpath(os.path.join(out, "current"))
            rec = {"version": os.path.basename(version), "tables": {}}
            try:
                for t in tables:
                    df = pd.read_parquet(os.path.join(version, t))
                    rows = pd.util.hash_pandas_object(
                        df.reindex(sorted(df.columns), axis=1), index=False
                    )
                    rec["tables"][t] = [len(df), int(rows.sum())]
            except Exception as e:
                rec["error"] = f"{type(e).__name__}: {e}"
            f.write(json.dumps(rec) + "\\n")
            f.flush()
            time.sleep(0.02)  # leave the CPU to the runs
    """
)


def fingerprints(out: Path) -> tuple:
    """What the reader computes for the current version, computed the same way here."""
    version = os.path.realpath(out / "current")
    fp = []
    for t in EVERY_TABLE:
        df = pd.read_parquet(os.path.join(version, t))
        rows = pd.util.hash_pandas_object(df.reindex(sorted(df.columns), axis=1), index=False)
        fp.append((t, len(df), int(rows.sum())))
    return tuple(fp)


@pytest.mark.slow
def test_a_reader_during_20_commits_sees_whole_versions_only(cluster, tmp_path):
    """Runs alternate between two inputs, so versions differ; a reader process looping over
    every table meanwhile only ever reads a whole version, one the runs really made. The runs
    go from this process (``pipeline.run`` on the cluster's client), saving 20 start-ups."""
    from distributed import Client

    a = generate(tmp_path / "a", "--users", "12", "--courses", "2", "--days", "1", "--seed", "5")
    b = generate(tmp_path / "b", "--users", "12", "--courses", "2", "--days", "1", "--seed", "6")
    with Client(cluster["address"], timeout=30) as client:
        # The states a sequence A, B, A, B... goes through: after the first A, after a B
        # (videos merged), after a later A; then the B and A states repeat.
        ref = tmp_path / "ref"
        states = set()
        for inp in (a, b, a, b):
            run_in_process(client, [inp], ref)
            states.add(fingerprints(ref))
        assert len(states) == 3

        out = tmp_path / "out"
        run_in_process(client, [a], out)
        stop, log = tmp_path / "stop", tmp_path / "reader.jsonl"
        reader = subprocess.Popen(
            [sys.executable, "-c", READER, str(out), ",".join(EVERY_TABLE), str(stop), str(log)]
        )
        commits = set()
        try:
            for i in range(20):
                run_in_process(client, [b if i % 2 == 0 else a], out)
                commits.add(Path(os.readlink(out / "current")).name)
        finally:
            stop.touch()
            reader.wait(timeout=60)
    records = [json.loads(x) for x in log.read_text().splitlines()]
    errors = [x for x in records if "error" in x]
    assert not errors, errors[:3]
    seen = {x["version"] for x in records}
    assert len(records) > 40 and len(seen & commits) >= 10, (len(records), len(seen))
    for x in records:
        fp = tuple((t, *x["tables"][t]) for t in EVERY_TABLE)
        assert fp in states, f"version {x['version']}: tables of no single run"


# ---------------------------------------------------------------- item 7: memory
BOT_EVENTS = 2_000_000
BOT_MEMORY_LIMIT = "400MB"  # per worker; the bot's file is one partition of 2M events


def write_bot_log(path: Path, events: int) -> Path:
    """One gzip file of ``events`` play/pause events of one user ("bot") in one course:
    one partition far larger than the other users'."""
    import gzip

    line = (
        '{"username":"bot","event_source":"browser","event_type":"%s",'
        '"time":"2026-01-%02dT%02d:%02d:%02d.%06d+00:00",'
        '"event":"{\\"id\\":\\"v%d\\",\\"currentTime\\":%s,\\"code\\":\\"html5\\",'
        '\\"duration\\":600}","context":{"course_id":"course-v1:Bot+B1+2026","user_id":7,'
        '"path":"/event"},"agent":"bot"}\n'
    )
    with gzip.open(path, "wt", compresslevel=1) as f:
        for start in range(0, events, 100_000):
            chunk = []
            for i in range(start, min(events, start + 100_000)):
                sec = i // 2
                kind, offset = ("play_video", sec % 500) if i % 2 == 0 else ("pause_video", 0.9)
                chunk.append(
                    line
                    % (
                        kind,
                        5 + sec // 86400,
                        (sec // 3600) % 24,
                        (sec // 60) % 60,
                        sec % 60,
                        i % 1_000_000,
                        sec % 7,
                        offset if i % 2 == 0 else sec % 500 + offset,
                    )
                )
            f.write("".join(chunk))
    return path


@pytest.mark.slow
def test_a_partition_over_the_memory_limit(small_input, small_reference, tmp_path):
    """A bot user with millions of events, workers under a nanny with a small memory limit:
    the nanny restarts the worker the partition overflows; the run then either succeeds with
    the tables of an unconstrained run, or fails in one line with the previous tables intact.
    Measured here: at 400MB per worker it fails (the task killed 4 workers) in one line."""
    bot = tmp_path / "bot"
    bot.mkdir()
    write_bot_log(bot / "tracking.log-20260105.gz", BOT_EVENTS)
    (bot / "staff.txt").write_text("")
    out = tmp_path / "out"
    shutil.copytree(small_reference, out, symlinks=True)  # a previous commit
    before, current = snapshot(out), os.readlink(out / "current")
    d = tmp_path / "cluster"
    args = ("--workers", "2", "--nanny", "--memory-limit", BOT_MEMORY_LIMIT)
    with running_cluster(d, *args) as info:
        r = run_job(bot, out, "--scheduler", info["address"])
    logs = "".join(p.read_text(errors="replace") for p in d.glob("worker-*.log"))
    assert "exceeded 95% memory budget. Restarting" in logs, "no worker was restarted"
    if r.returncode == 0:
        print(f"\nmemory limit {BOT_MEMORY_LIMIT}: the run succeeded after nanny restarts")
        ref = tmp_path / "ref"
        assert run_job(bot, ref, "--workers", "2").returncode == 0
        assert_same_tables(out, ref)
    else:
        line = one_line_failure(r.__class__(r.args, r.returncode, r.stdout, _no_progress(r)))
        assert "(KilledWorker): the workers running task" in line, line
        assert "memory limit" in line
        assert os.readlink(out / "current") == current
        assert_tables_are(out, before)
        print(f"\nmemory limit {BOT_MEMORY_LIMIT}: the run failed cleanly: {line}")


def _no_progress(r: subprocess.CompletedProcess) -> str:
    return "\n".join(x for x in r.stderr.splitlines() if " partitions done" not in x)
