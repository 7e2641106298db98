"""RunConfig: the validated options of one ``run`` (built by the CLI, read by the pipeline)."""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass, field
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from . import outline, segments, window

#: The rule sets by name, in the order the command line lists them.
RULE_SETS = tuple(segments.RULES)


class ConfigError(ValueError):
    """An option is wrong: the CLI prints the message on one line and exits 2."""


@dataclass(frozen=True)
class ClusterOptions:
    """Where the graph runs: an existing scheduler, or an embedded LocalCluster."""

    scheduler: str | None = None
    scheduler_file: Path | None = None
    workers: int | None = None
    threads_per_worker: int | None = None
    memory_limit: str | None = None
    dashboard_address: str = "127.0.0.1:8787"
    tls_ca_file: Path | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    connect_timeout: float = 30.0
    #: the embedded cluster's own log records shown: none (a failed task's traceback block
    #: from a worker would stand before the run's one-line error); ``-v``: INFO and above
    dask_log_level: str = "CRITICAL"


@dataclass(frozen=True)
class RunConfig:
    inputs: tuple[str, ...]
    out: Path
    rules: str = "seed"
    staff: frozenset[str] = frozenset()
    staff_file: Path | None = None
    min_events: int | None = None
    since: dt.date | None = None
    until: dt.date | None = None
    tz: str = "UTC"
    lookback_hours: float = 24.0
    bin_seconds: int = 5
    pseudonymize_key: bytes | None = field(default=None, repr=False)
    pseudonymize_key_env: str | None = None
    cluster: ClusterOptions = field(default_factory=ClusterOptions)
    progress: bool = True
    #: warnings about the inputs (skipped files, files that are no tracking log) are fatal
    strict: bool = False
    #: build the new version from these inputs alone, ignoring the tables already in ``out``
    rebuild: bool = False
    #: ``--course-structure`` arguments as given, and the outlines read from them
    course_structures: tuple[str, ...] = ()
    outlines: tuple[outline.Outline, ...] = field(default=(), repr=False)
    outline_warnings: tuple[str, ...] = ()

    # -- the window in UTC microseconds ------------------------------------------------
    @property
    def since_us(self) -> int | None:
        return None if self.since is None else window.midnight_us(self.since, self.tz)

    @property
    def until_us(self) -> int | None:
        """Exclusive end: local midnight after ``until`` (the until day is included)."""
        if self.until is None:
            return None
        return window.midnight_us(self.until + dt.timedelta(days=1), self.tz)

    @property
    def events_from_us(self) -> int | None:
        s = self.since_us
        return None if s is None else s - int(self.lookback_hours * 3600 * 1_000_000)


#: Words a scheduler's command line may use instead of a date, as days before today
RELATIVE_DAYS = {"today": 0, "yesterday": 1}


def today_in(tz: str) -> dt.date:
    """The current local date in ``tz``."""
    return dt.datetime.now(ZoneInfo(check_tz(tz))).date()


def parse_date(text: str, option: str, today: dt.date | None = None) -> dt.date:
    """A day given as YYYY-MM-DD, ``today`` or ``yesterday`` (relative to ``today``)."""
    word = text.strip().lower()
    if word in RELATIVE_DAYS:
        if today is None:
            raise ConfigError(f"{option}: {text!r} needs a time zone to know today")
        return today - dt.timedelta(days=RELATIVE_DAYS[word])
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise ConfigError(
            f"{option}: expected a date YYYY-MM-DD, 'today' or 'yesterday', got {text!r}"
        ) from None


def resolve_window(
    since: str | None,
    until: str | None,
    days: int | None,
    tz: str,
    today: dt.date | None = None,
) -> tuple[dt.date | None, dt.date | None]:
    """The window's first and last local day from --since/--until/--days; ``--days N`` is
    the last N complete local days in ``tz`` (yesterday and the N - 1 days before it)."""
    relative = [x for x in (since, until) if x and x.strip().lower() in RELATIVE_DAYS]
    if today is None and (days is not None or relative):
        today = today_in(tz)
    if days is not None:
        if since or until:
            raise ConfigError("give --days or --since/--until, not both")
        if days < 1:
            raise ConfigError("--days: must be 1 or more")
        return today - dt.timedelta(days=days), today - dt.timedelta(days=1)
    first = parse_date(since, "--since", today) if since else None
    last = parse_date(until, "--until", today) if until else None
    return first, last


def check_memory_limit(text: str | None) -> str | None:
    """What Dask accepts as a worker's memory limit: ``auto``, a size (``2GiB``, ``500MB``,
    a byte count), a fraction of the machine's memory (``0.5``), or 0 for none."""
    if text is None or text == "auto":
        return text
    from dask.utils import parse_bytes

    try:
        fraction = float(text)
    except ValueError:
        fraction = None
    if fraction is not None and 0 < fraction <= 1:
        return text
    try:
        n = parse_bytes(text)
    except (ValueError, TypeError):
        n = -1
    if n < 0:
        raise ConfigError(
            f"--memory-limit: expected a size such as 2GiB or 500MB, a fraction such as 0.5, "
            f"or auto; got {text!r}"
        )
    return text


def check_tz(tz: str) -> str:
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"--tz: unknown time zone {tz!r}") from None
    return tz


def read_staff(path: Path) -> frozenset[str]:
    """Usernames, one a line; blank lines and ``#`` comments ignored."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"--staff-file: cannot read {path}: {e.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"--staff-file: {path} is not UTF-8 text") from None
    names = (x.strip() for x in text.splitlines())
    return frozenset(n for n in names if n and not n.startswith("#"))


def read_course_structures(args: tuple[str, ...]) -> tuple[tuple[outline.Outline, ...], list[str]]:
    """The outlines of ``--course-structure [COURSE_ID=]PATH`` arguments, and warnings."""
    try:
        return outline.read_sources(outline.parse_source(a) for a in args)
    except outline.OutlineError as e:
        raise ConfigError(f"--course-structure: {e}") from None


def pseudonymize_key_from_env(var: str) -> bytes:
    value = os.environ.get(var)
    if not value:
        raise ConfigError(f"--pseudonymize-key-env: environment variable {var} is unset or empty")
    return value.encode("utf-8")


def validate(cfg: RunConfig) -> RunConfig:
    """Check cross-option rules; returns the config unchanged or raises ConfigError."""
    if cfg.rules not in RULE_SETS:
        raise ConfigError(f"--rules: expected one of {', '.join(RULE_SETS)}, got {cfg.rules!r}")
    if cfg.since and cfg.until and cfg.since > cfg.until:
        raise ConfigError(f"--since {cfg.since} is after --until {cfg.until}")
    if cfg.min_events is not None and cfg.min_events < 0:
        raise ConfigError("--min-events: must be 0 or more")
    if cfg.bin_seconds < 1:
        raise ConfigError("--bin-seconds: must be 1 or more")
    if cfg.lookback_hours < 0:
        raise ConfigError("--lookback-hours: must be 0 or more")
    c = cfg.cluster
    if c.scheduler and c.scheduler_file:
        raise ConfigError("give --scheduler or --scheduler-file, not both")
    if c.scheduler_file is not None and not Path(c.scheduler_file).is_file():
        raise ConfigError(f"--scheduler-file: no such file: {c.scheduler_file}")
    if (c.scheduler or c.scheduler_file) and (c.workers or c.threads_per_worker or c.memory_limit):
        raise ConfigError(
            "--workers/--threads-per-worker/--memory-limit size an embedded cluster; "
            "they cannot be used with --scheduler or --scheduler-file"
        )
    check_memory_limit(c.memory_limit)
    if not c.connect_timeout > 0:
        raise ConfigError("--connect-timeout: must be more than 0 seconds")
    for name in ("workers", "threads_per_worker"):
        v = getattr(c, name)
        if v is not None and v < 1:
            raise ConfigError(f"--{name.replace('_', '-')}: must be 1 or more")
    tls = [c.tls_ca_file, c.tls_cert, c.tls_key]
    if any(tls) and not all(tls):
        raise ConfigError("TLS needs all of --tls-ca-file, --tls-cert and --tls-key")
    for p in tls:
        if p is not None and not Path(p).is_file():
            raise ConfigError(f"TLS file not found: {p}")
    check_tz(cfg.tz)
    return cfg
