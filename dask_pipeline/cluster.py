"""Get a Dask client: an existing scheduler (address or scheduler file, optionally TLS), or an
embedded LocalCluster sized to the machine with its dashboard on loopback; run delayed tasks
on it with a progress display; describe it for the run summary.

With an existing scheduler the run fails fast and clearly when the scheduler goes away: Dask's
client would otherwise try to reconnect for its whole connect timeout, and a reconnected
client has lost every future of the run anyway (Dask cancels them on disconnect).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
import time
import warnings
from collections.abc import Iterator

import dask
from dask.utils import parse_timedelta
from distributed import Client, LocalCluster, wait
from distributed.security import Security

from .config import ClusterOptions
from .errors import RunFailed


class SchedulerLost(RunFailed):
    """The scheduler of an existing cluster stopped answering during the run."""


class SchedulerUnreachable(RunFailed):
    """No connection could be made to the scheduler given (nothing was run)."""


def security(opts: ClusterOptions) -> Security | None:
    """TLS settings from the options, or None (Dask's own config then applies, e.g. a
    ``distributed.comm.tls`` section in a file named by ``DASK_CONFIG``)."""
    if not opts.tls_ca_file:
        return None
    return Security(
        tls_ca_file=str(opts.tls_ca_file),
        tls_client_cert=str(opts.tls_cert),
        tls_client_key=str(opts.tls_key),
        require_encryption=True,
    )


def default_size(cores: int | None = None) -> tuple[int, int]:
    """(workers, threads per worker) for this machine: one single-threaded worker process per
    core, since decoding holds the GIL."""
    cores = cores or os.cpu_count() or 1
    return cores, 1


def _lost(client: Client, exc: BaseException) -> bool:
    """Whether ``exc`` (raised during the run) comes from losing the scheduler."""
    from distributed.comm.core import CommClosedError

    if getattr(exc, "reason", None) == "scheduler-connection-lost":
        return True  # FutureCancelledError of the futures Dask cancels on disconnect
    if isinstance(exc, CommClosedError):
        return True
    return isinstance(exc, Exception) and client.status in ("connecting", "closing", "closed")


@contextlib.contextmanager
def _quiet_client_logs() -> Iterator[None]:
    """Silence ``distributed.client`` while connected: on a lost scheduler it logs tracebacks
    of its reconnect attempts, and the CLI reports the failure on one line instead.
    ``DASK_PIPELINE_DEBUG=1`` keeps them."""
    if os.environ.get("DASK_PIPELINE_DEBUG"):
        yield
        return
    log = logging.getLogger("distributed.client")
    level = log.level
    log.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        log.setLevel(level)


@contextlib.contextmanager
def _children_ignore_sigint() -> Iterator[None]:
    """Start worker processes with SIGINT ignored (an ignored signal stays ignored across
    exec): a ^C in a terminal reaches the whole process group, and the run, not each worker,
    answers it by stopping the cluster. A ^C while the workers start is ignored."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


@contextlib.contextmanager
def connect(opts: ClusterOptions, lost_after: str = "10s") -> Iterator[Client]:
    """A client for the run; closes what it started when done.

    With an existing scheduler: connecting may take up to ``opts.connect_timeout``; once
    connected, a scheduler that stops answering for ``lost_after`` ends the run with
    SchedulerLost (a RunFailed, so nothing is committed), and one that cannot be reached at
    all raises SchedulerUnreachable.
    """
    sec = security(opts)
    if opts.scheduler or opts.scheduler_file:
        where = opts.scheduler or f"in {opts.scheduler_file}"
        kwargs = {"timeout": opts.connect_timeout}
        if sec is not None:
            kwargs["security"] = sec
        with _quiet_client_logs():
            try:
                if opts.scheduler_file:
                    client = Client(scheduler_file=str(opts.scheduler_file), **kwargs)
                else:
                    client = Client(opts.scheduler, **kwargs)
            except TypeError as e:
                if "ssl" not in str(e).lower():
                    raise
                # Dask's way of saying that a tls:// address came without TLS settings
                raise SchedulerUnreachable(
                    f"cannot reach the scheduler {where}: a tls:// scheduler needs "
                    "--tls-ca-file, --tls-cert and --tls-key (or a Dask config file with "
                    "distributed.comm.tls)"
                ) from e
            except (OSError, TimeoutError) as e:  # refused, timed out, TLS handshake failed
                msg = str(e).splitlines()[0] if str(e) else type(e).__name__
                raise SchedulerUnreachable(f"cannot reach the scheduler {where}: {msg}") from e
            # Client._timeout also bounds the reconnect after a lost connection; a reconnect
            # cannot save the run (its futures are cancelled), so give up quickly.
            if hasattr(client, "_timeout"):
                client._timeout = parse_timedelta(lost_after, "s")
            address = client.scheduler.address
            try:
                yield client
            except BaseException as e:
                if _lost(client, e):
                    raise SchedulerLost(
                        f"lost the connection to the scheduler {address} during the run "
                        "(it stopped, or the network to it failed)"
                    ) from e
                raise
            finally:
                client.close()
        return
    cluster = _local_cluster(opts)
    try:
        with Client(cluster) as client:
            yield client
    finally:
        cluster.close()


def _local_cluster(opts: ClusterOptions) -> LocalCluster:
    """The embedded cluster: sized to the machine unless told, dashboard on loopback."""
    workers, threads = default_size()
    with warnings.catch_warnings(), _children_ignore_sigint(), _forked_workers():
        # a busy dashboard port: the CLI says so on its dashboard line, not as a warning
        warnings.filterwarnings("ignore", message=r"Port \d+ is already in use")
        return LocalCluster(
            n_workers=opts.workers or workers,
            threads_per_worker=opts.threads_per_worker or threads,
            memory_limit=opts.memory_limit or "auto",
            dashboard_address=opts.dashboard_address,
            host="127.0.0.1",
            processes=True,
            # the terminal shows our progress, not worker chatter (unless --verbose)
            silence_logs=logging.getLevelName(opts.dask_log_level),
        )


#: How the embedded cluster's workers first start on Linux: a fork of this process, which has
#: imported everything a worker needs, is up in about 1 s where a fresh interpreter takes
#: 2.5-3 s on 2 cores. A worker the nanny restarts later starts fresh. Elsewhere (macOS: a
#: fork of a process with threads is unsafe there), or when the Dask config names another
#: method than its default, Dask's setting stands.
FIRST_START = "fork"


def _child_defaults() -> None:
    """In a forked worker: the default SIGTERM (the run's handler raises in its thread);
    SIGINT stays as the parent had it while the workers start (ignored)."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


os.register_at_fork(after_in_child=_child_defaults)


@contextlib.contextmanager
def _forked_workers() -> Iterator[None]:
    """Workers started inside this context start as FIRST_START says (see there)."""
    dask_default = dask.config.get("distributed.worker.multiprocessing-method") == "spawn"
    if not (sys.platform.startswith("linux") and dask_default):
        yield
        return
    with dask.config.set({"distributed.worker.multiprocessing-method": FIRST_START}):
        yield


def dashboard_link(client: Client) -> str | None:
    """The dashboard's ``/status`` URL of the client's scheduler, or None without one."""
    try:
        return client.dashboard_link
    except Exception:  # noqa: BLE001 - no dashboard (bokeh missing or disabled)
        return None


def compute(client: Client, tasks: list, label: str, show: bool) -> list:
    """Run delayed tasks on the cluster with a progress display; returns their results.
    A run stopped meanwhile (a signal, a failure) cancels what is still queued."""
    futures = client.compute(tasks)
    try:
        if show:
            _progress(futures, label)
        return client.gather(futures)
    except BaseException:
        with contextlib.suppress(Exception):
            client.cancel(futures)
        raise


def _progress(futures: list, label: str) -> None:
    """Show progress until the futures finish or one fails. On a terminal, Dask's own bar
    over every task of the graph; elsewhere (logs of a nightly job) timestamped lines."""
    total = len(futures)
    if total == 0:
        return
    if sys.stderr.isatty():
        from distributed.diagnostics.progressbar import progress

        print(f"{label}:", file=sys.stderr)
        with contextlib.suppress(Exception):
            progress(futures, notebook=False)
        return
    _progress_lines(futures, label)


#: in a log, a progress line at least this often (seconds), so a stuck run shows
HEARTBEAT = 30.0


def progress_line(label: str, done: int, total: int, elapsed: float, now: float) -> str:
    """One progress line for a log: UTC timestamp, step, done/total, elapsed, estimate left
    (from the pace so far)."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
    if done >= total:
        left = "done"
    elif done == 0:
        left = "estimating"
    else:
        left = f"about {_secs(elapsed * (total - done) / done)} left"
    return f"{stamp} {label}: {done}/{total} partitions, {_secs(elapsed)} elapsed, {left}"


def _secs(x: float) -> str:
    x = int(round(x))
    return f"{x}s" if x < 60 else f"{x // 60}m{x % 60:02d}s"


def _progress_lines(futures: list, label: str) -> None:
    """A line per tenth of the partitions done (and every HEARTBEAT seconds) until the
    futures finish or one fails."""
    total = len(futures)
    t0 = time.monotonic()
    last, last_at = -1, t0
    while True:
        done = sum(f.status == "finished" for f in futures)
        now = time.monotonic()
        if done == total or done - last >= max(1, total // 10) or now - last_at >= HEARTBEAT:
            print(progress_line(label, done, total, now - t0, time.time()), file=sys.stderr)
            last, last_at = done, now
        if done == total or any(f.status in ("error", "cancelled") for f in futures):
            return
        with contextlib.suppress(Exception):
            wait(futures, timeout=0.5, return_when="FIRST_EXCEPTION")


def describe(client: Client, at_start: dict) -> dict:
    """The cluster as recorded in ``_run.json``: scheduler, dashboard, workers, memory.
    ``at_start``: the scheduler's workers when the run began (workers and threads are the
    larger of then and now: a worker may be away, reconnecting, as the run ends)."""
    info = client.scheduler_info()
    workers = info.get("workers", {})
    workers_at_start = len(at_start)

    def threads(ws: dict) -> int:
        return sum(w.get("nthreads", 0) for w in ws.values())

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
        "threads": max(threads(at_start), threads(workers)),
        # lifetime peak of each worker process (a long-lived cluster's workers include
        # earlier work)
        "worker_peak_rss_mib": dict(sorted(peaks.items())),
        "client_peak_rss_mib": _peak_rss_mib(),
    }


def _peak_rss_mib() -> float:
    """This process's peak resident memory so far, in MiB (Linux reports KiB)."""
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
