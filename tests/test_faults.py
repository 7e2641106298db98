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
import time
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

FAILED = "dask-pipeline run: failed, nothing committed"
EVERY_TABLE = (*schema.TABLES, "rejects")


def snapshot(out: Path) -> dict[str, pd.DataFrame]:
    return {name: store.read_table(out, name) for name in TABLES}


def assert_tables_are(out: Path, tables: dict[str, pd.DataFrame]) -> None:
    for name, df in tables.items():
        pdt.assert_frame_equal(store.read_table(out, name), df, obj=name)
        # and readable the way a dashboard reads it: the table's directory, by pyarrow
        assert len(pd.read_parquet(out / name)) == len(df), name


def one_line_failure(r: subprocess.CompletedProcess) -> str:
    # the dashboard link is printed also with -q (so a nightly log has it): not the error
    lines = [x for x in r.stderr.splitlines() if x.strip() and not x.startswith("dashboard: ")]
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


@pytest.mark.slow
def test_disk_full_on_the_embedded_cluster_is_one_line_without_a_worker_traceback(
    request, small_input, tmp_path
):
    """The embedded workers log to the run's own stderr: a task that fails on a full disk
    once printed distributed's "Compute Failed" block with a traceback before the line."""
    reason = _tmpfs_unavailable(tmp_path)
    if reason:
        daemons.say_skip(request, reason)
    with small_tmpfs(tmp_path / "disk", "1m") as disk:
        fill(disk, leave_kib=40)
        r = run_job(small_input, disk / "out", "--workers", "1")
        line = one_line_failure(r)
        assert "no space left on the device of --out" in line, line
        assert "Traceback" not in r.stderr and "Compute Failed" not in r.stderr, r.stderr


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
        # The states a sequence A, B, A, B... goes through. Both inputs hold the same day, so
        # a run replaces that day whole (its segments and the per-day video partials that
        # `videos` is rebuilt from): the A and B states alternate.
        ref = tmp_path / "ref"
        states = set()
        for inp in (a, b, a, b):
            run_in_process(client, [inp], ref)
            states.add(fingerprints(ref))
        assert len(states) == 2

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
    return "\n".join(x for x in r.stderr.splitlines() if " partitions, " not in x)


# ---------------------------------------------------------------- item 5: network
NETEM = Path(__file__).with_name("netem.py")


def _in(ns: str) -> tuple[str, ...]:
    return ("ip", "netns", "exec", ns)


def _iptables(ns: str, *args: str) -> None:
    subprocess.run([*_in(ns), "iptables-legacy", *args], check=True, capture_output=True)


@contextlib.contextmanager
def impaired(ns: str, delay_ms: int, loss_pct: float) -> Iterator[str]:
    """Delay and loss on the egress of ``ns``'s eth0: ``tc netem`` where the kernel has it,
    else tests/netem.py on an NFQUEUE (this machine's kernel has no sch_netem). Yields which."""
    tc = [*_in(ns), "tc", "qdisc", "add", "dev", "eth0", "root", "netem"]
    tc += ["delay", f"{delay_ms}ms", "loss", f"{loss_pct}%"]
    if subprocess.run(tc, capture_output=True).returncode == 0:
        yield "tc netem"
        return
    rule = ("OUTPUT", "-o", "eth0", "-j", "NFQUEUE", "--queue-num", "0")
    proc = subprocess.Popen(
        [*_in(ns), sys.executable, str(NETEM), "--delay", str(delay_ms / 1000)]
        + ["--loss", str(loss_pct / 100), "--seed", "1"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout.readline().strip() == "ready"
        _iptables(ns, "-A", *rule)
        yield "NFQUEUE netem"
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            _iptables(ns, "-D", *rule)
        proc.terminate()
        proc.wait(timeout=10)


def _network_unavailable() -> str | None:
    from tests.test_cluster import _netns_unavailable

    reason = _netns_unavailable()
    if reason is None and shutil.which("iptables-legacy") is None:
        reason = "iptables-legacy (Debian iptables) is not installed"
    return reason


def _connect_seconds(ns: str, host: str, port: int) -> float:
    probe = (
        "import socket, sys, time; t = time.monotonic(); "
        "socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10).close(); "
        "print(time.monotonic() - t)"
    )
    r = subprocess.run(
        [*_in(ns), sys.executable, "-c", probe, host, str(port)],
        capture_output=True,
        text=True,
        check=True,
    )
    return float(r.stdout)


@contextlib.contextmanager
def netns_cluster(tmp_path: Path) -> Iterator[tuple[dict, dict, tuple[str, ...]]]:
    """Scheduler, two workers and the job each in its namespace (as test_cluster does)."""
    from tests.test_cluster import network

    addrs = {m: f"10.213.8.{n}" for m, n in (("s", 10), ("w0", 11), ("w1", 12), ("job", 20))}
    with network(addrs) as ns:
        args = ("--workers", "2", "--host", addrs["s"], "--scheduler-netns", ns["s"])
        args += ("--worker-netns", ns["w0"], "--worker-netns", ns["w1"])
        with running_cluster(tmp_path / "cluster", *args, prefix=_in(ns["job"])) as info:
            yield info, {"ns": ns, "addrs": addrs}, _in(ns["job"])


@pytest.mark.slow
def test_latency_and_loss_between_scheduler_and_workers(
    request, small_input, small_reference, tmp_path
):
    """100 ms and 2% loss on every packet the scheduler sends (to the workers and the job)
    for the whole run: the same tables."""
    reason = _network_unavailable()
    if reason:
        daemons.say_skip(request, reason)
    with netns_cluster(tmp_path) as (info, net, in_job):
        host, port = info["address"].removeprefix("tcp://").rsplit(":", 1)
        with impaired(net["ns"]["s"], 100, 2.0) as how:
            assert _connect_seconds(net["ns"]["job"], host, int(port)) >= 0.09, how
            r = run_job(
                small_input, tmp_path / "out", "--scheduler", info["address"], prefix=in_job
            )
        assert r.returncode == 0, r.stderr
        assert_same_tables(tmp_path / "out", small_reference)


@pytest.mark.slow
def test_a_worker_cut_off_for_20_s_mid_run(request, small_input, small_reference, tmp_path):
    """Every packet to and from one worker dropped for 20 s once the graph runs: the run
    finishes with the same tables."""
    reason = _network_unavailable()
    if reason:
        daemons.say_skip(request, reason)
    from tests.test_cluster import pipeline_cmd

    with netns_cluster(tmp_path) as (info, net, in_job):
        ns_w0 = net["ns"]["w0"]
        log = tmp_path / "job.log"
        out = tmp_path / "out"
        cmd = pipeline_cmd("run", str(small_input), "--out", str(out))
        cmd += ["--staff-file", str(small_input / "staff.txt"), "--scheduler", info["address"]]
        with open(log, "w") as err:
            job = subprocess.Popen([*in_job, *cmd], stdout=subprocess.DEVNULL, stderr=err)
        cut = ("INPUT", "-i", "eth0", "-j", "DROP"), ("OUTPUT", "-o", "eth0", "-j", "DROP")
        try:
            deadline = time.monotonic() + 120
            while " partitions, " not in log.read_text() and time.monotonic() < deadline:
                assert job.poll() is None, log.read_text()
                time.sleep(0.05)
            for rule in cut:
                _iptables(ns_w0, "-I", *rule)
            t_cut = time.monotonic()
            assert job.poll() is None, "the run ended before the worker was cut off"
            time.sleep(20)
            for rule in cut:
                _iptables(ns_w0, "-D", *rule)
            rc = job.wait(timeout=300)
        finally:
            if job.poll() is None:
                job.kill()
        assert rc == 0, log.read_text()
        assert time.monotonic() - t_cut >= 20
        assert_same_tables(out, small_reference)
