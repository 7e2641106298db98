"""The ``dask-pipeline`` command: ``run``, ``generate`` and ``report``.

Parses arguments into a validated RunConfig and maps outcomes to exit statuses (SPEC §7):
0 committed, 1 nothing committed, 2 usage error (one line on stderr).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import errno
import os
import signal
import sys
import time
import urllib.parse
from dataclasses import fields
from pathlib import Path

from . import __version__
from .config import RULE_SETS, ClusterOptions, ConfigError, RunConfig, resolve_window, validate

EXAMPLES_RUN = """\
examples:
  dask-pipeline run /var/log/tracking/ --out tables/
  dask-pipeline run 'logs/tracking.log-2026*.gz' --out tables/ --since 2026-01-05 \\
      --until 2026-01-11 --tz Europe/Paris --rules insights
  dask-pipeline run s3://bucket/logs/ --out /shared/tables --scheduler tcp://10.0.0.5:8786
  dask-pipeline run /var/log/tracking/ --out tables/ --days 3 --tz Europe/Paris -q  # cron

exit status: 0 committed (even with rejected lines), 1 nothing committed, 2 usage error,
130 interrupted (SIGINT), 143 terminated (SIGTERM); never a partial commit.
"""


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error and exit status 2."""

    def error(self, message: str):  # type: ignore[override]
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        raise SystemExit(2)


def _at_least(minimum: float, kind: type = int):
    """An argparse type: a number of ``kind`` (int or float) no smaller than ``minimum``."""
    noun = "a whole number" if kind is int else "a number"

    def convert(text: str):
        try:
            v = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {noun}, got {text!r}") from None
        if not v >= minimum:  # also refuses NaN
            raise argparse.ArgumentTypeError(f"must be {minimum:g} or more, got {text}")
        return v

    return convert


_positive_int = _at_least(1)
_nonneg_int = _at_least(0)
_nonneg_float = _at_least(0, float)
_positive_float = _at_least(0.001, float)


def _iso_day(text: str) -> str:
    """An argparse type: a calendar date YYYY-MM-DD (kept as text)."""
    try:
        dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a date YYYY-MM-DD, got {text!r}") from None
    return text


#: --log-level values, least talkative first
LOG_LEVELS = ("error", "warning", "info", "debug")


def _shows(a: argparse.Namespace, level: str) -> bool:
    """Whether messages of ``level`` are printed at the run's --log-level."""
    return LOG_LEVELS.index(level) <= LOG_LEVELS.index(a.log_level or "info")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="dask-pipeline",
        description="Open edX tracking logs -> video-engagement tables in Parquet, on Dask.",
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    _add_run(sub)
    _add_generate(sub)
    _add_report(sub)
    return p


def _add_run(sub) -> None:
    r = sub.add_parser(
        "run",
        help="process tracking logs into Parquet tables",
        description="Read tracking logs, rebuild each viewer's watched segments and write the "
        "segments, videos, views, video_stats, video_timeline, video_daily and course_stats "
        "tables (and rejects/ and _run.json) under --out; docs/tables.md describes every "
        "column. Without --scheduler it starts an "
        "embedded LocalCluster sized to this machine.",
        epilog=EXAMPLES_RUN,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    r.add_argument(
        "inputs",
        nargs="+",
        metavar="INPUT",
        help="tracking log files (plain or .gz), directories (their tracking.log* files, "
        "or every file when none is so named; in name order), "
        "globs, or fsspec URLs; ties in time keep this order",
    )
    r.add_argument("--out", required=True, type=Path, help="output directory (created if missing)")
    r.add_argument(
        "--rules",
        choices=RULE_SETS,
        default="seed",
        help="segment rules: 'seed' reproduces the original dashboard exactly, "
        "'insights' follows the Open edX Insights pipeline (default: seed)",
    )
    r.add_argument("--staff-file", type=Path, help="usernames to drop as course team, one a line")
    r.add_argument(
        "--min-events",
        type=_nonneg_int,
        metavar="N",
        help="keep only users with more than N events in a course and window (default: off)",
    )
    _add_window(r)
    r.add_argument(
        "--bin-seconds",
        type=_positive_int,
        default=5,
        metavar="B",
        help="width of the timeline bins in seconds (default 5)",
    )
    r.add_argument(
        "--course-structure",
        action="append",
        default=[],
        metavar="[COURSE_ID=]PATH",
        help="name and place videos from a course's structure: an OLX export (its directory "
        "or .tar.gz), a Course Blocks API response (.json, one per line too) or a directory "
        "of them; COURSE_ID= applies it to another run of the course (repeatable)",
    )
    r.add_argument(
        "--pseudonymize-key-env",
        metavar="VAR",
        help="replace every username in every output by HMAC-SHA256 keyed by the value of "
        "environment variable VAR",
    )
    r.add_argument(
        "--strict",
        action="store_true",
        help="fail (exit 1, nothing committed) instead of warning when a directory holds "
        "files its naming rule skips, or a file holds no tracking-log line or mostly "
        "rejected lines",
    )
    r.add_argument(
        "--rebuild",
        action="store_true",
        help="ignore the tables already in --out (for example an older release's): the new "
        "version holds only what these logs give; the old one stays readable until the commit",
    )
    _add_cluster(r.add_argument_group("cluster"))
    _add_output(r.add_argument_group("output").add_mutually_exclusive_group())


def _add_window(r) -> None:
    """The window options of ``run``: which local days it processes."""
    r.add_argument(
        "--since",
        metavar="DAY",
        help="first local day of the window: YYYY-MM-DD, 'today' or 'yesterday' (in --tz)",
    )
    r.add_argument(
        "--until",
        metavar="DAY",
        help="last local day of the window, included: YYYY-MM-DD, 'today' or 'yesterday'",
    )
    r.add_argument(
        "--days",
        type=_positive_int,
        metavar="N",
        help="the window is the last N complete local days in --tz (yesterday and the N-1 "
        "days before it); instead of --since/--until",
    )
    r.add_argument(
        "--tz", default="UTC", help="time zone of the window and of `date` (default UTC)"
    )
    r.add_argument(
        "--lookback-hours",
        type=_nonneg_float,
        default=24.0,
        metavar="H",
        help="also read events up to H hours before --since, so viewings that started "
        "before the window close inside it (default 24)",
    )


def _add_cluster(c) -> None:
    """The cluster options of ``run``; their names are ClusterOptions' fields."""
    c.add_argument("--scheduler", metavar="ADDRESS", help="an existing scheduler, tcp:// or tls://")
    c.add_argument("--scheduler-file", type=Path, metavar="F", help="an existing scheduler's file")
    c.add_argument("--workers", type=_positive_int, metavar="N", help="embedded cluster: workers")
    c.add_argument(
        "--threads-per-worker", type=_positive_int, metavar="N", help="embedded cluster: threads"
    )
    c.add_argument(
        "--memory-limit", metavar="M", help="embedded cluster: memory per worker, e.g. 2GiB"
    )
    c.add_argument(
        "--dashboard-address",
        default="127.0.0.1:8787",
        metavar="ADDR",
        help="embedded cluster: where the Dask dashboard listens (default 127.0.0.1:8787)",
    )
    c.add_argument("--tls-ca-file", type=Path, metavar="F", help="TLS: CA certificate")
    c.add_argument("--tls-cert", type=Path, metavar="F", help="TLS: this client's certificate")
    c.add_argument("--tls-key", type=Path, metavar="F", help="TLS: this client's private key")
    c.add_argument(
        "--connect-timeout",
        type=_positive_float,
        default=30.0,
        metavar="S",
        help="give up on an unreachable --scheduler after S seconds (default 30)",
    )


def _add_output(v) -> None:
    """How talkative a run is: -q, -v or --log-level (one of them)."""
    v.add_argument(
        "-q",
        "--quiet",
        dest="log_level",
        action="store_const",
        const="warning",
        help="only the dashboard link, warnings and errors (same as --log-level warning)",
    )
    v.add_argument(
        "-v",
        "--verbose",
        dest="log_level",
        action="store_const",
        const="debug",
        help="also Dask's own log messages (same as --log-level debug)",
    )
    v.add_argument(
        "--log-level",
        choices=LOG_LEVELS,
        default="info",
        help="error: errors only; warning: also warnings and the dashboard link; info "
        "(default): also progress and the summary; debug: also Dask's log messages",
    )


def _add_generate(sub) -> None:
    g = sub.add_parser(
        "generate",
        help="write realistic synthetic tracking logs",
        description="Write daily tracking.log-YYYYMMDD.gz files that look like real Open edX "
        "logs (browser and mobile video events, course team, anonymous rows, other "
        "traffic), deterministic for a seed, plus staff.txt.",
    )
    g.add_argument("--out", required=True, type=Path, help="directory to write into")
    g.add_argument("--users", type=_positive_int, default=200, help="learners (default 200)")
    g.add_argument("--courses", type=_positive_int, default=3, help="courses (default 3)")
    g.add_argument("--days", type=_positive_int, default=7, help="days of logs (default 7)")
    g.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    g.add_argument(
        "--start", default="2026-01-05", type=_iso_day, metavar="YYYY-MM-DD", help="first day"
    )
    g.add_argument("--videos-per-course", type=_positive_int, default=10, help="default 10")
    g.add_argument("--lines", type=_positive_int, metavar="N", help="aim for about N lines in all")


def _add_report(sub) -> None:
    rep = sub.add_parser(
        "report",
        help="write an HTML report of a run's tables",
        description="Read the tables under OUT_DIR and write one standalone HTML file "
        "(works offline) with per-course overviews and per-video retention curves.",
    )
    rep.add_argument("out_dir", type=Path, metavar="OUT_DIR", help="a `run` output directory")
    rep.add_argument(
        "--html", type=Path, default=None, help="where to write (default OUT_DIR/report.html)"
    )


def config_from_args(a: argparse.Namespace) -> RunConfig:
    """The validated RunConfig of parsed ``run`` arguments (raises ConfigError)."""
    from .config import check_tz, pseudonymize_key_from_env, read_course_structures, read_staff

    staff = read_staff(a.staff_file) if a.staff_file else frozenset()
    outlines, outline_warnings = read_course_structures(tuple(a.course_structure))
    key = pseudonymize_key_from_env(a.pseudonymize_key_env) if a.pseudonymize_key_env else None
    since, until = resolve_window(a.since, a.until, a.days, check_tz(a.tz))
    cfg = RunConfig(
        inputs=tuple(a.inputs),
        out=a.out,
        rules=a.rules,
        staff=staff,
        staff_file=a.staff_file,
        min_events=a.min_events,
        since=since,
        until=until,
        tz=a.tz,
        lookback_hours=a.lookback_hours,
        bin_seconds=a.bin_seconds,
        pseudonymize_key=key,
        pseudonymize_key_env=a.pseudonymize_key_env,
        cluster=ClusterOptions(
            **{f.name: getattr(a, f.name) for f in fields(ClusterOptions) if hasattr(a, f.name)},
            dask_log_level="INFO" if _shows(a, "debug") else "CRITICAL",
        ),
        progress=_shows(a, "info"),
        strict=a.strict,
        rebuild=a.rebuild,
        course_structures=tuple(a.course_structure),
        outlines=outlines,
        outline_warnings=tuple(outline_warnings),
    )
    return validate(cfg)


def _usage_error(prog: str, message: str) -> int:
    sys.stderr.write(f"{prog}: error: {message}\n")
    return 2


class Interrupted(BaseException):
    """SIGINT or SIGTERM arrived: the run stops, nothing is committed."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextlib.contextmanager
def _signals_stop_the_run():
    """Turn SIGINT and SIGTERM (cron, SLURM, Kubernetes) into Interrupted in this thread, so
    the run unwinds through its clean-up; a second signal during the clean-up is ignored."""

    def handler(signum, frame):
        for s in (signal.SIGINT, signal.SIGTERM):
            signal.signal(s, signal.SIG_IGN)
        raise Interrupted(signum)

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def _dashboard_line(cfg: RunConfig, link: str | None) -> str:
    """``dashboard: URL``, saying which port was asked for when it was busy."""
    if not link:
        return "dashboard: none"
    asked = cfg.cluster.dashboard_address.rpartition(":")[2]
    got = urllib.parse.urlsplit(link).port
    embedded = not (cfg.cluster.scheduler or cfg.cluster.scheduler_file)
    if embedded and asked.isdigit() and int(asked) > 0 and got and got != int(asked):
        return f"dashboard: {link} (on :{got}; {asked} busy)"
    return f"dashboard: {link}"


def cmd_run(a: argparse.Namespace, argv: list[str]) -> int:
    from . import checks, read, store

    a.log_level = a.log_level or "info"
    try:
        cfg = config_from_args(a)
        read.list_inputs(cfg.inputs)  # a missing input is a usage error, before any cluster
    except (ConfigError, read.InputError) as e:
        return _usage_error("dask-pipeline run", str(e))
    skipped = checks.skipped_warnings(read.skipped_by_name(cfg.inputs))
    if skipped and cfg.strict:  # known before any cluster starts
        print(
            f"dask-pipeline run: failed, nothing committed: --strict: {skipped[0]}", file=sys.stderr
        )
        return 1
    problem = _writable_dir("--out", cfg.out)
    if problem:
        return _usage_error("dask-pipeline run", problem)
    out = cfg.out.absolute()
    current = None if cfg.rebuild else store.current_version(out)
    why = store.outdated(current) if current is not None else None
    if why:  # known before any cluster starts
        from .errors import older_tables

        print(f"dask-pipeline run: failed, nothing committed: {older_tables(out, why)}",
              file=sys.stderr)  # fmt: skip
        return 1
    t0 = time.perf_counter()
    try:
        with _signals_stop_the_run(), store.lock(out):
            try:
                result = _run_on_cluster(a, cfg, argv)
            finally:
                store.prune(out)  # whatever a stopped run's tasks still wrote
    except Interrupted as e:
        code = 128 + e.signum
        lead = "\n" if sys.stderr.isatty() else ""  # after a ^C or a progress bar
        sys.stderr.write(
            f"{lead}dask-pipeline run: stopped by {e}, nothing committed "
            f"(the previous tables are intact); exit {code}\n"
        )
        return code
    except store.Busy as e:
        print(f"dask-pipeline run: failed, nothing committed: {e}", file=sys.stderr)
        return 1
    if result is None:
        return 1
    if _shows(a, "warning"):
        for w in result.warnings:
            print(f"warning: {w}", file=sys.stderr)
    if _shows(a, "info"):
        from . import summary

        print(summary.terminal_summary(result.out, result.summary, time.perf_counter() - t0))
    return 0


def _run_on_cluster(a: argparse.Namespace, cfg: RunConfig, argv: list[str]):
    """Connect (or start the embedded cluster) and run; the RunResult, or None after a
    failure reported on one line."""
    from . import cluster, pipeline
    from .errors import RunFailed

    try:
        with cluster.connect(cfg.cluster) as client:
            line = _dashboard_line(cfg, cluster.dashboard_link(client))
            if _shows(a, "info"):
                where = (
                    cfg.cluster.scheduler or cfg.cluster.scheduler_file or "embedded LocalCluster"
                )
                print(f"cluster: {where}; {line}", file=sys.stderr)
            elif _shows(a, "warning"):
                print(line, file=sys.stderr)
            return pipeline.run(cfg, client, argv, locked=True)
    except RunFailed as e:
        print(f"dask-pipeline run: failed, nothing committed: {e}", file=sys.stderr)
    except Exception as e:  # noqa: BLE001 - a lost scheduler, a full disk...: one clear line
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        if _disk_full(e):
            print(
                f"dask-pipeline run: failed, nothing committed: no space left on the device of "
                f"--out {cfg.out} ({msg}); the previous tables are intact: free space, run again",
                file=sys.stderr,
            )
            return None
        if type(e).__name__ == "KilledWorker":  # distributed's: a task outlived its workers
            msg = (
                f"the workers running task {e.args[0]!r} died {e.args[2] + 1} times (most "
                "often its partition needs more than a worker's memory limit; see their logs)"
            )
        print(
            f"dask-pipeline run: failed, nothing committed ({type(e).__name__}): {msg}",
            file=sys.stderr,
        )
        if os.environ.get("DASK_PIPELINE_DEBUG"):
            raise
    return None


def _writable_dir(option: str, path: Path) -> str | None:
    """Why ``path`` cannot be used as an output directory, or None when it can."""
    if path.exists() and not path.is_dir():
        return f"{option}: {path} exists and is not a directory"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        return f"{option}: cannot create {path}: {e.strerror}"
    return None


def _disk_full(e: BaseException | None) -> bool:
    """Whether ``e`` (or what caused it, maybe on a worker) is a full disk or quota."""
    seen = 0
    while e is not None and seen < 10:
        if isinstance(e, OSError) and (
            e.errno in (errno.ENOSPC, errno.EDQUOT) or "No space left on device" in str(e)
        ):
            return True
        e, seen = e.__cause__ or e.__context__, seen + 1
    return False


def cmd_generate(a: argparse.Namespace) -> int:
    from .generate import generate

    problem = _writable_dir("--out", a.out)
    if problem:
        return _usage_error("dask-pipeline generate", problem)
    try:
        res = generate(
            a.out,
            users=a.users,
            courses=a.courses,
            days=a.days,
            seed=a.seed,
            start=a.start,
            videos_per_course=a.videos_per_course,
            lines=a.lines,
        )
    except ValueError as e:
        return _usage_error("dask-pipeline generate", str(e))
    except OSError as e:  # a full disk, a file vanishing under us: one line, not a traceback
        print(f"dask-pipeline generate: failed: {e}", file=sys.stderr)
        return 1
    print(
        f"wrote {res.lines} lines in {len(res.files)} files under {a.out} (staff: {res.staff_file})"
    )
    return 0


def cmd_report(a: argparse.Namespace) -> int:
    from . import report

    html = a.html or (a.out_dir / "report.html")
    if not (a.out_dir / "video_stats").exists():
        return _usage_error("dask-pipeline report", f"{a.out_dir} holds no tables of a run")
    from . import store
    from .errors import older_tables

    version = store.current_version(a.out_dir) or a.out_dir  # OUT, or a version directory
    why = store.outdated(version)
    if why:
        return _usage_error("dask-pipeline report", older_tables(a.out_dir, why))
    if html.is_dir():
        return _usage_error("dask-pipeline report", f"--html: {html} is a directory; give a file")
    if html.parent.exists() and not html.parent.is_dir():
        return _usage_error("dask-pipeline report", f"--html: {html.parent} is not a directory")
    try:
        path = report.write_report(a.out_dir, html)
    except OSError as e:
        print(f"dask-pipeline report: cannot write {html}: {e.strerror or e}", file=sys.stderr)
        return 1
    print(f"report: {path}")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    a = build_parser().parse_args(argv)
    if a.command == "run":
        return cmd_run(a, argv)
    if a.command == "generate":
        return cmd_generate(a)
    if a.command == "report":
        return cmd_report(a)
    return 2  # pragma: no cover - argparse requires a command
