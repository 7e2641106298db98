"""The ``dask-pipeline`` command: ``run``, ``generate`` and ``report``.

Parses arguments into a validated RunConfig and maps outcomes to exit statuses (SPEC §7):
0 committed, 1 nothing committed, 2 usage error (one line on stderr).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from . import __version__
from .config import ClusterOptions, ConfigError, RunConfig, parse_date, validate

EXAMPLES_RUN = """\
examples:
  dask-pipeline run /var/log/tracking/ --out tables/
  dask-pipeline run 'logs/tracking.log-2026*.gz' --out tables/ --since 2026-01-05 \\
      --until 2026-01-11 --tz Europe/Paris --rules insights
  dask-pipeline run s3://bucket/logs/ --out /shared/tables --scheduler tcp://10.0.0.5:8786

exit status: 0 committed (even with rejected lines), 1 nothing committed, 2 usage error.
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


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="dask-pipeline",
        description="Open edX tracking logs -> video-engagement tables in Parquet, on Dask.",
    )
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

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
        choices=("seed", "insights"),
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
    r.add_argument("--since", metavar="YYYY-MM-DD", help="first local day of the window")
    r.add_argument("--until", metavar="YYYY-MM-DD", help="last local day of the window (included)")
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
    c = r.add_argument_group("cluster")
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
    r.add_argument("--quiet", action="store_true", help="no progress bars or summary")

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
    g.add_argument("--start", default="2026-01-05", metavar="YYYY-MM-DD", help="first day")
    g.add_argument("--videos-per-course", type=_positive_int, default=10, help="default 10")
    g.add_argument("--lines", type=_positive_int, metavar="N", help="aim for about N lines in all")

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
    return p


def config_from_args(a: argparse.Namespace) -> RunConfig:
    """The validated RunConfig of parsed ``run`` arguments (raises ConfigError)."""
    from .config import pseudonymize_key_from_env, read_course_structures, read_staff

    staff = read_staff(a.staff_file) if a.staff_file else frozenset()
    outlines, outline_warnings = read_course_structures(tuple(a.course_structure))
    key = pseudonymize_key_from_env(a.pseudonymize_key_env) if a.pseudonymize_key_env else None
    cfg = RunConfig(
        inputs=tuple(a.inputs),
        out=a.out,
        rules=a.rules,
        staff=staff,
        staff_file=a.staff_file,
        min_events=a.min_events,
        since=parse_date(a.since, "--since") if a.since else None,
        until=parse_date(a.until, "--until") if a.until else None,
        tz=a.tz,
        lookback_hours=a.lookback_hours,
        bin_seconds=a.bin_seconds,
        pseudonymize_key=key,
        pseudonymize_key_env=a.pseudonymize_key_env,
        cluster=ClusterOptions(
            scheduler=a.scheduler,
            scheduler_file=a.scheduler_file,
            workers=a.workers,
            threads_per_worker=a.threads_per_worker,
            memory_limit=a.memory_limit,
            dashboard_address=a.dashboard_address,
            tls_ca_file=a.tls_ca_file,
            tls_cert=a.tls_cert,
            tls_key=a.tls_key,
        ),
        progress=not a.quiet,
        course_structures=tuple(a.course_structure),
        outlines=outlines,
        outline_warnings=tuple(outline_warnings),
    )
    return validate(cfg)


def _usage_error(prog: str, message: str) -> int:
    sys.stderr.write(f"{prog}: error: {message}\n")
    return 2


def cmd_run(a: argparse.Namespace, argv: list[str]) -> int:
    from . import read

    try:
        cfg = config_from_args(a)
        read.list_inputs(cfg.inputs)  # a missing input is a usage error, before any cluster
    except (ConfigError, read.InputError) as e:
        return _usage_error("dask-pipeline run", str(e))
    if cfg.out.exists() and not cfg.out.is_dir():
        return _usage_error("dask-pipeline run", f"--out: {cfg.out} exists and is not a directory")

    from . import cluster, pipeline, summary

    t0 = time.perf_counter()
    try:
        with cluster.connect(cfg.cluster) as client:
            link = cluster.dashboard_link(client)
            if not a.quiet:
                where = (
                    cfg.cluster.scheduler or cfg.cluster.scheduler_file or "embedded LocalCluster"
                )
                print(f"cluster: {where}; dashboard: {link or 'none'}", file=sys.stderr)
            result = pipeline.run(cfg, client, argv)
    except pipeline.RunFailed as e:
        print(f"dask-pipeline run: failed, nothing committed: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("dask-pipeline run: interrupted, nothing committed", file=sys.stderr)
        return 1
    except Exception as e:  # noqa: BLE001 - a lost scheduler, a full disk...: one clear line
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        print(
            f"dask-pipeline run: failed, nothing committed ({type(e).__name__}): {msg}",
            file=sys.stderr,
        )
        if os.environ.get("DASK_PIPELINE_DEBUG"):
            raise
        return 1
    for w in result.warnings:
        print(f"warning: {w}", file=sys.stderr)
    if not a.quiet:
        print(summary.terminal_summary(result.out, result.summary, time.perf_counter() - t0))
    return 0


def cmd_generate(a: argparse.Namespace) -> int:
    from .generate import generate

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
    print(
        f"wrote {res.lines} lines in {len(res.files)} files under {a.out} (staff: {res.staff_file})"
    )
    return 0


def cmd_report(a: argparse.Namespace) -> int:
    from . import report

    html = a.html or (a.out_dir / "report.html")
    if not (a.out_dir / "video_stats").exists():
        return _usage_error("dask-pipeline report", f"{a.out_dir} holds no tables of a run")
    path = report.write_report(a.out_dir, html)
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
