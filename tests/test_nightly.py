"""Issue 10: nightly runs from cron and batch schedulers (SPEC §7).

Fail fast before any cluster (no inputs, a held lock, a bad memory limit), no traceback for a
user mistake, relative windows, the log levels and dashboard line, the connect timeout,
signals, and the course team remembered across runs.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dask_pipeline import cli
from dask_pipeline.config import ConfigError, resolve_window, today_in

RUN_TIMEOUT = 300


def _cli(*args: str, timeout: float = RUN_TIMEOUT) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dask_pipeline", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


@pytest.fixture(scope="module")
def logs(tmp_path_factory) -> Path:
    from dask_pipeline.generate import generate

    res = generate(tmp_path_factory.mktemp("nightly") / "logs", users=12, courses=2, days=2, seed=5)
    return res.files[0].parent


# ================================================================== 4. fail fast
@pytest.mark.parametrize("kind", ["empty_dir", "glob"])
def test_no_inputs_is_a_usage_error_before_any_cluster(tmp_path, kind):
    empty = tmp_path / "empty"
    empty.mkdir()
    arg = str(empty) if kind == "empty_dir" else str(tmp_path / "tracking.log-*.gz")
    r = _cli("run", arg, "--out", str(tmp_path / "out"), timeout=60)
    assert r.returncode == 2
    line = _one_line(r.stderr)  # no "cluster: ..." line: none was started
    assert "error:" in line and ("no file" in line)
    assert not (tmp_path / "out").exists()


def test_memory_limit_not_a_size_is_a_usage_error(tmp_path, logs):
    r = _cli("run", str(logs), "--out", str(tmp_path / "out"), "--memory-limit", "lots")
    assert r.returncode == 2
    assert "--memory-limit" in _one_line(r.stderr)
    for good in ("2GiB", "500MB", "0.5", "auto", "0"):
        assert cli.config_from_args(_run_args(logs, tmp_path, "--memory-limit", good))


def test_lock_is_taken_before_the_cluster_starts(tmp_path, logs):
    """A second run into a directory another run holds is refused at once, without starting
    a cluster (it used to start one and be refused ~30 s later)."""
    out = tmp_path / "out"
    out.mkdir()
    fd = os.open(out / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        r = _cli("run", str(logs), "--out", str(out), "--dashboard-address", "127.0.0.1:0")
    finally:
        os.close(fd)
    assert r.returncode == 1
    line = _one_line(r.stderr)  # no "cluster: ..." line: none was started
    assert "another run" in line and "cluster:" not in r.stderr
    assert not (out / ".versions").exists()


# ================================================================== 6. no tracebacks
def test_generate_out_on_a_regular_file_is_one_line(tmp_path):
    f = tmp_path / "afile"
    f.write_text("x")
    for out in (f, f / "sub"):
        r = _cli("generate", "--out", str(out), "--users", "2", "--days", "1")
        assert r.returncode == 2
        assert "--out" in _one_line(r.stderr)
    assert f.read_text() == "x"


def test_generate_bad_start_names_the_option(tmp_path):
    r = _cli("generate", "--out", str(tmp_path / "g"), "--start", "2026-13-01")
    assert r.returncode == 2
    assert "--start" in _one_line(r.stderr)
    assert not (tmp_path / "g").exists()
    from dask_pipeline.generate import generate

    with pytest.raises(ValueError, match="start"):
        generate(tmp_path / "g2", start="05/01/2026")
    assert not (tmp_path / "g2").exists()


def test_report_html_on_a_directory_is_one_line_and_leaves_no_temp(tmp_path):
    from dask_pipeline import schema, store

    out = tmp_path / "out"
    store.ensure_empty_tables(out)  # a run's (empty) tables are enough to get past the check
    assert (out / "video_stats").is_dir() and "video_stats" in schema.TABLES
    target = tmp_path / "html"
    target.mkdir()
    r = _cli("report", str(out), "--html", str(target))
    assert r.returncode == 2
    assert "--html" in _one_line(r.stderr)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["html", "out"]
    assert list(target.iterdir()) == []


# ================================================================== 7. relative windows
def test_days_is_the_last_complete_local_days():
    today = dt.date(2026, 3, 10)
    assert resolve_window(None, None, 1, "UTC", today) == (dt.date(2026, 3, 9),) * 2
    assert resolve_window(None, None, 3, "UTC", today) == (dt.date(2026, 3, 7), dt.date(2026, 3, 9))
    assert resolve_window("yesterday", None, None, "UTC", today) == (dt.date(2026, 3, 9), None)
    assert resolve_window("yesterday", "today", None, "UTC", today) == (
        dt.date(2026, 3, 9),
        dt.date(2026, 3, 10),
    )
    assert resolve_window("2026-03-01", None, None, "UTC", today) == (dt.date(2026, 3, 1), None)
    with pytest.raises(ConfigError, match="--days"):
        resolve_window("2026-03-01", None, 2, "UTC", today)
    with pytest.raises(ConfigError, match="--since"):
        resolve_window("tomorrow", None, None, "UTC", today)


def _run_args(logs: Path, tmp_path: Path, *extra: str):
    return cli.build_parser().parse_args(["run", str(logs), "--out", str(tmp_path / "o"), *extra])


@pytest.mark.parametrize("tz", ["Pacific/Kiritimati", "Etc/GMT+12", "Europe/Paris"])
def test_days_and_yesterday_follow_the_local_day_of_tz(tmp_path, logs, tz):
    """Kiritimati (UTC+14) and GMT-12 are a whole day apart: 'yesterday' is each one's own."""
    before = today_in(tz)
    cfg = cli.config_from_args(_run_args(logs, tmp_path, "--days", "2", "--tz", tz))
    y = cli.config_from_args(_run_args(logs, tmp_path, "--since", "yesterday", "--tz", tz))
    after = today_in(tz)
    assert any(
        (cfg.since, cfg.until) == (d - dt.timedelta(days=2), d - dt.timedelta(days=1))
        and y.since == d - dt.timedelta(days=1)
        for d in {before, after}
    )
    assert y.until is None


def test_days_and_since_together_is_a_usage_error(tmp_path, logs):
    r = _cli("run", str(logs), "--out", str(tmp_path / "o"), "--days", "2", "--since", "today")
    assert r.returncode == 2
    assert "--days" in _one_line(r.stderr)


# ================================================================== 9. logs and the dashboard
def test_quiet_prints_the_dashboard_and_a_busy_port_is_one_line(tmp_path, logs):
    """With the default dashboard port taken, the run says where the dashboard went on one
    line (no Python warning), also with --quiet, and prints nothing else on success."""
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    port = busy.getsockname()[1]
    try:
        r = _cli(
            "run", str(logs), "--out", str(tmp_path / "out"), "--workers", "1", "-q",
            "--dashboard-address", f"127.0.0.1:{port}",
        )  # fmt: skip
    finally:
        busy.close()
    assert r.returncode == 0, r.stderr
    line = _one_line(r.stderr)
    assert line.startswith("dashboard: http://127.0.0.1:")
    assert f"; {port} busy" in line and "Warning" not in r.stderr
    assert r.stdout == ""


def test_log_level_error_is_silent_and_verbose_shows_dask(tmp_path, logs):
    r = _cli(
        "run", str(logs), "--out", str(tmp_path / "out"), "--workers", "1",
        "--log-level", "error", "--dashboard-address", "127.0.0.1:0",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert r.stderr == "" and r.stdout == ""
    r = _cli(
        "run", str(logs), "--out", str(tmp_path / "out"), "--workers", "1", "-v",
        "--dashboard-address", "127.0.0.1:0",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "distributed.scheduler - INFO" in r.stderr
    r = _cli("run", str(logs), "--out", str(tmp_path / "o2"), "-q", "-v")
    assert r.returncode == 2


def test_connect_timeout_bounds_an_unreachable_scheduler(tmp_path, logs):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    t = time.perf_counter()
    r = _cli(
        "run", str(logs), "--out", str(tmp_path / "out"),
        "--scheduler", f"tcp://127.0.0.1:{port}", "--connect-timeout", "2",
    )  # fmt: skip
    took = time.perf_counter() - t
    assert r.returncode == 1
    assert "cannot reach the scheduler" in _one_line(r.stderr)
    assert took < 25  # the fixed timeout was 30 s
    r = _cli("run", str(logs), "--out", str(tmp_path / "out"), "--connect-timeout", "0")
    assert r.returncode == 2


# ================================================================== 8. signals
@pytest.fixture(scope="module")
def big_logs(tmp_path_factory) -> Path:
    """Enough lines that a run is still reading when the signal comes."""
    from dask_pipeline.generate import generate

    res = generate(
        tmp_path_factory.mktemp("big") / "logs", users=150, courses=2, days=3, seed=9, lines=150_000
    )
    return res.files[0].parent


def _tables_digest(out: Path) -> dict:
    from dask_pipeline import schema, store

    return {t: store.read_table(out, t).to_csv(index=False) for t in schema.TABLES}


@pytest.mark.slow
def test_embedded_workers_start_forked_with_the_signals_a_worker_needs(tmp_path, logs):
    """The embedded cluster's workers are forks of the run (quick to start), yet they do not
    inherit the run's SIGTERM handler (the nanny stops a worker with SIGTERM), and ^C stays
    ignored in them (the run, not each worker, answers it)."""
    import signal as sig

    from dask_pipeline import cli, cluster, pipeline  # noqa: F401 - imported as a run does

    cfg = cli.config_from_args(
        cli.build_parser().parse_args(["run", str(logs), "--out", str(tmp_path)])
    )
    with cli._signals_stop_the_run(), cluster.connect(cfg.cluster) as client:
        got = client.run(
            lambda: (
                os.getppid(),
                sig.getsignal(sig.SIGTERM) == sig.SIG_DFL,
                sig.getsignal(sig.SIGINT) == sig.SIG_IGN,
                "dask_pipeline.pipeline" in sys.modules,  # inherited: imported by the run
            )
        )
    assert got and set(got.values()) == {(os.getpid(), True, True, True)}, got


@pytest.mark.slow
@pytest.mark.parametrize("signum,to_group", [(2, True), (15, False)])
def test_signal_stops_the_run_cleanly(tmp_path, logs, big_logs, signum, to_group):
    """SIGINT (a ^C reaches the whole process group) exits 130, SIGTERM (cron, SLURM,
    Kubernetes) 143: one line, on its own line, staging removed, previous tables intact."""
    out = tmp_path / "out"
    r = _cli("run", str(logs), "--out", str(out), "--workers", "1", "-q",
             "--dashboard-address", "127.0.0.1:0")  # fmt: skip
    assert r.returncode == 0, r.stderr
    current = os.readlink(out / "current")
    before = _tables_digest(out)
    p = subprocess.Popen(
        [sys.executable, "-m", "dask_pipeline", "run", str(big_logs), "--out", str(out),
         "--workers", "2", "--dashboard-address", "127.0.0.1:0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        versions = out / ".versions"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and p.poll() is None:
            if any((v / "_parts").is_dir() for v in versions.iterdir()):
                break  # the new version is being built: the workers are reading
            time.sleep(0.2)
        assert p.poll() is None, "the run ended before it could be stopped"
        time.sleep(1.0)
        (os.killpg if to_group else os.kill)(p.pid, signum)
        _, err = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, 9)
    assert p.returncode == 128 + signum, (p.returncode, err)
    last = err.splitlines()[-1]
    assert last.startswith("dask-pipeline run: stopped by SIG") and "nothing committed" in last
    assert "Traceback" not in err and err.endswith("\n")
    assert sum("stopped by" in ln for ln in err.splitlines()) == 1
    assert os.readlink(out / "current") == current
    assert [v.name for v in versions.iterdir()] == [Path(current).name]  # staging removed
    assert _tables_digest(out) == before


# ================================================================== 1-2. course team across runs
COURSE = "course-v1:Nightly+T1+2026"


def _viewing(user: str, video: str, day: int, hour: int, duration: float, end: float) -> list[str]:
    from tests.conftest import video_line

    t0 = dt.datetime(2026, 1, day, hour, 0, tzinfo=dt.UTC)
    p = {"id": video, "code": "html5", "duration": duration}
    return [
        video_line(user, COURSE, "load_video", (t0).isoformat(), p),
        video_line(user, COURSE, "play_video", (t0 + dt.timedelta(seconds=5)).isoformat(),
                   {**p, "currentTime": 0.0}),
        video_line(user, COURSE, "pause_video", (t0 + dt.timedelta(seconds=90)).isoformat(),
                   {**p, "currentTime": end}),
    ]  # fmt: skip


def _team_logs(tmp_path: Path) -> Path:
    """Day 5: learners and the instructor watch; the instructor's only team event is on day 6
    (and a video only the instructor opened, with a duration nobody else reports)."""
    from tests.conftest import other_line

    logs = tmp_path / "logs"
    logs.mkdir()
    day5 = _viewing("ann", "v1", 5, 9, 100.0, 60.0) + _viewing("bob", "v1", 5, 10, 100.0, 80.0)
    day5 += _viewing("prof", "v1", 5, 11, 339.0, 90.0) + _viewing("prof", "v2", 5, 12, 50.0, 40.0)
    day6 = _viewing("ann", "v1", 6, 9, 100.0, 70.0)
    day6.append(
        other_line("prof", COURSE, f"/courses/{COURSE}/instructor/api/get_students_features",
                   "2026-01-06T15:00:00+00:00")
    )  # fmt: skip
    (logs / "tracking.log-20260105").write_text("\n".join(day5) + "\n")
    (logs / "tracking.log-20260106").write_text("\n".join(day6) + "\n")
    return logs


def _all_tables(out: Path) -> dict:
    from dask_pipeline import schema, store

    return {t: store.read_table(out, t) for t in schema.TABLES}


@pytest.mark.slow
def test_course_team_is_remembered_and_day_by_day_equals_one_run(dask_client, tmp_path):
    """Items 1-2: the instructor, known only from a day-6 event, is left out of day 5's
    tables retroactively; videos and durations come only from learners' events."""
    import pandas as pd

    from tests.conftest import run_job

    logs = _team_logs(tmp_path)
    day5, day6 = dt.date(2026, 1, 5), dt.date(2026, 1, 6)
    run_job(dask_client, [logs], tmp_path / "one", since=day5, until=day6)
    for d in (day5, day6):
        run_job(dask_client, [logs], tmp_path / "daily", since=d, until=d)
    one, daily = _all_tables(tmp_path / "one"), _all_tables(tmp_path / "daily")
    for t in one:
        pd.testing.assert_frame_equal(one[t], daily[t], obj=t)
    assert "prof" not in set(one["segments"]["username"])
    assert set(one["views"]["username"]) == {"ann", "bob"}
    v = one["videos"].set_index("video_id")
    assert list(v.index) == ["v1"] and v.loc["v1", "duration"] == 100.0  # not prof's 339
    ct = daily["course_team"]
    assert ct[["course_id", "username", "known_by"]].values.tolist() == [[COURSE, "prof", "event"]]
    # seen on the day of the team event, not on day 5 when the instructor only watched
    assert ct[["first_seen", "last_seen"]].values.tolist() == [[day6, day6]]


@pytest.mark.slow
def test_course_team_from_the_staff_list_is_remembered(dask_client, tmp_path):
    """A staff-list member of one run stays out of later runs that no longer list them,
    under a pseudonym when the outputs are pseudonymized."""
    from dask_pipeline import store
    from dask_pipeline.privacy import pseudonym
    from tests.conftest import run_job

    logs = _team_logs(tmp_path)
    day5 = dt.date(2026, 1, 5)
    out = tmp_path / "out"
    key = b"k" * 16
    run_job(dask_client, [logs], out, since=day5, until=day5, staff=frozenset({"bob"}),
            pseudonymize_key=key)  # fmt: skip
    ct = store.read_table(out, "course_team")
    assert ct["username"].tolist() == [pseudonym(key, "bob")]
    assert ct["known_by"].tolist() == ["staff_list"]
    (logs / "tracking.log-20260107").write_text(
        "\n".join(
            _viewing("bob", "v1", 7, 9, 100.0, 50.0) + _viewing("ann", "v1", 7, 8, 100.0, 9.0)
        )
        + "\n"
    )
    run_job(dask_client, [logs], out, since=dt.date(2026, 1, 7), until=dt.date(2026, 1, 7),
            pseudonymize_key=key)  # fmt: skip
    views = store.read_table(out, "views")
    assert pseudonym(key, "bob") not in set(views["username"])
    assert pseudonym(key, "ann") in set(views["username"])
    assert len(store.read_table(out, "course_team")) == 1


# ================================================================== 5, 10. warnings, late events
def _messy_logs(tmp_path: Path) -> Path:
    logs = tmp_path / "logs"
    logs.mkdir()
    late = _viewing("cat", "v1", 1, 9, 100.0, 30.0)
    late = [ln.replace("2026-01-01", "2025-12-01") for ln in late]  # a phone a month late
    (logs / "tracking.log-20260105").write_text(
        "\n".join(_viewing("ann", "v1", 5, 9, 100.0, 60.0) + late) + "\n"
    )
    (logs / "tracking.log-20260106").write_text(
        "\n".join(["garbage", "<html>", "{not json", *_viewing("bob", "v1", 6, 9, 100.0, 9.0)[:1]])
        + "\n"
    )
    (logs / "tracking.log-20260107").write_text("")
    (logs / "good.log.gz").write_bytes(b"")
    (logs / "README").write_text("not a log, skipped without a warning\n")
    return logs


def test_skipped_and_suspicious_files_warn_and_late_events_are_counted(tmp_path):
    import json

    logs = _messy_logs(tmp_path)
    out = tmp_path / "out"
    common = ["--since", "2026-01-05", "--until", "2026-01-07", "--workers", "1",
              "--dashboard-address", "127.0.0.1:0"]  # fmt: skip
    r = _cli("run", str(logs), "--out", str(out), "-q", *common)
    assert r.returncode == 0, r.stderr
    warnings = [ln for ln in r.stderr.splitlines() if ln.startswith("warning:")]
    assert any("good.log.gz" in w and "skipped" in w for w in warnings), r.stderr
    assert any("tracking.log-20260106" in w and "rejected" in w for w in warnings), r.stderr
    assert any("tracking.log-20260107" in w and "empty" in w for w in warnings), r.stderr
    run = json.loads((out / "_run.json").read_text())
    assert run["skipped_files"] == [str(logs / "README"), str(logs / "good.log.gz")]
    assert not any("README" in w for w in warnings)
    assert len(run["warnings"]) == 3
    assert run["window"]["late_video_events"] == 3  # cat's load, play and pause
    assert run["window"]["late_before"].startswith("2026-01-04T00:00:00")
    assert run["counts"]["late_video_events"] == 3

    current = os.readlink(out / "current")
    (logs / "good.log.gz").unlink()
    r = _cli("run", str(logs), "--out", str(out), "--strict", "-q", *common)
    assert r.returncode == 1
    assert "--strict" in r.stderr and "nothing committed" in r.stderr
    assert os.readlink(out / "current") == current
    (logs / "good.log.gz").write_bytes(b"")
    r = _cli("run", str(logs), "--out", str(out), "--strict", *common)
    # refused before any cluster started: the one line is not the cluster's
    assert r.returncode == 1 and "good.log.gz" in _one_line(r.stderr)


# ================================================================== 9. progress in a log
def test_progress_line_has_timestamp_elapsed_and_estimate():
    from dask_pipeline.cluster import progress_line

    now = dt.datetime(2026, 1, 6, 2, 0, 5, tzinfo=dt.UTC).timestamp()
    line = progress_line("segments", 2, 8, 30.0, now)
    assert line == "2026-01-06T02:00:05Z segments: 2/8 partitions, 30s elapsed, about 1m30s left"
    assert progress_line("videos", 0, 4, 1.0, now).endswith("1s elapsed, estimating")
    assert progress_line("videos", 4, 4, 75.0, now).endswith("1m15s elapsed, done")


def test_progress_in_a_log_is_timestamped_lines(tmp_path, logs):
    import re

    r = _cli("run", str(logs), "--out", str(tmp_path / "out"), "--workers", "1",
             "--dashboard-address", "127.0.0.1:0")  # fmt: skip
    assert r.returncode == 0, r.stderr
    pat = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ \w+: \d+/\d+ partitions, "
                     r"\d+(m\d\d)?s elapsed, (estimating|about .+ left|done)$")  # fmt: skip
    progress = [ln for ln in r.stderr.splitlines() if pat.match(ln)]
    assert any(ln.endswith("done") and " segments: " in ln for ln in progress), r.stderr
    others = [ln for ln in r.stderr.splitlines() if not pat.match(ln)]
    assert len(others) == 1 and others[0].startswith("cluster: "), r.stderr


# ================================================================== 3. empty tables
def test_every_table_of_an_empty_run_is_readable_with_its_columns(dask_client, tmp_path):
    """A run that finds no video event still leaves every table readable, with its columns,
    by pandas, pyarrow, DuckDB (the README's queries) and fastparquet."""
    from dask_pipeline import schema
    from tests.conftest import other_line, run_job

    log = tmp_path / "tracking.log"
    log.write_text(other_line("ann", COURSE, "problem_check", "2026-01-05T10:00:00+00:00") + "\n")
    out = tmp_path / "out"
    run_job(dask_client, [log], out)
    for table, sch in schema.TABLES.items():
        for name, df in _read_everyhow(out / table).items():
            assert len(df) == 0, (table, name)
            assert set(sch) <= set(df.columns), (table, name, list(df.columns))


def _read_everyhow(path: Path) -> dict:
    import duckdb
    import fastparquet
    import pandas as pd
    import pyarrow.dataset as ds

    glob = f"{path}/**/*.parquet"
    files = sorted(str(p) for p in path.rglob("*.parquet"))
    return {
        "pandas": pd.read_parquet(path),
        "pyarrow": ds.dataset(str(path), format="parquet", partitioning="hive")
        .to_table()
        .to_pandas(),
        "duckdb": duckdb.sql(f"SELECT * FROM read_parquet('{glob}', hive_partitioning=true)").df(),
        "fastparquet": fastparquet.ParquetFile(files, root=str(path)).to_pandas(),
    }


# ================================================================== upgrading
def _as_older_release(version: Path) -> None:
    """Rewrite a committed version the way the first release laid it out: segments with
    ``start``/``end`` (now ``start_offset``/``end_offset``), no course_team table."""
    import shutil

    import pyarrow.parquet as pq

    for f in version.glob("segments/date=*/*.parquet"):
        t = pq.read_table(f, partitioning=None)
        names = {"start_offset": "start", "end_offset": "end"}
        pq.write_table(t.rename_columns([names.get(n, n) for n in t.column_names]), f)
    shutil.rmtree(version / "course_team")


def _files(version: Path) -> dict[str, bytes]:
    return {str(f.relative_to(version)): f.read_bytes() for f in version.rglob("*") if f.is_file()}


def test_an_older_releases_output_fails_in_one_line_until_rebuild(tmp_path, logs):
    """After an upgrade the nightly run into an older release's --out must not die in a
    KeyError (it did): one line naming what is older and the way out, exit 1 before any
    cluster, the old tables untouched; ``report`` says the same; ``--rebuild`` then gives
    the tables of a fresh run."""
    out, fresh = tmp_path / "out", tmp_path / "fresh"
    for o in (out, fresh):
        r = _cli("run", str(logs), "--out", str(o), "-q", "--dashboard-address", "127.0.0.1:0")
        assert r.returncode == 0, r.stderr
    old = Path(os.path.realpath(out / "current"))
    _as_older_release(old)
    before = _files(old)
    r = _cli("run", str(logs), "--out", str(out), "-q", "--dashboard-address", "127.0.0.1:0")
    assert r.returncode == 1
    line = _one_line(r.stderr)
    assert "older dask-pipeline" in line and "start_offset" in line and "--rebuild" in line
    assert "dashboard" not in r.stderr  # refused before any cluster
    assert Path(os.path.realpath(out / "current")) == old and _files(old) == before
    r = _cli("report", str(out), "--html", str(tmp_path / "r.html"))
    assert r.returncode == 2 and "older dask-pipeline" in _one_line(r.stderr)
    r = _cli("run", str(logs), "--out", str(out), "-q", "--rebuild",
             "--dashboard-address", "127.0.0.1:0")  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert _tables_digest(out) == _tables_digest(fresh)
