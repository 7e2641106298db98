"""Get a Dask client: an existing scheduler (address or scheduler file, optionally TLS), or an
embedded LocalCluster sized to the machine with its dashboard on loopback.

With an existing scheduler the run fails fast and clearly when the scheduler goes away: Dask's
client would otherwise try to reconnect for its whole connect timeout, and a reconnected
client has lost every future of the run anyway (Dask cancels them on disconnect).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import warnings
from collections.abc import Iterator

from dask.utils import parse_timedelta
from distributed import Client, LocalCluster
from distributed.security import Security

from .config import ClusterOptions
from .pipeline import RunFailed


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
    connected, a
    scheduler that stops answering for ``lost_after`` ends the run with SchedulerLost (a
    RunFailed, so nothing is committed), and one that cannot be reached at all raises
    SchedulerUnreachable.
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
    workers, threads = default_size()
    with warnings.catch_warnings(), _children_ignore_sigint():
        # a busy dashboard port: the CLI says so on its dashboard line, not as a warning
        warnings.filterwarnings("ignore", message=r"Port \d+ is already in use")
        cluster = LocalCluster(
            n_workers=opts.workers or workers,
            threads_per_worker=opts.threads_per_worker or threads,
            memory_limit=opts.memory_limit or "auto",
            dashboard_address=opts.dashboard_address,
            host="127.0.0.1",
            processes=True,
            # the terminal shows our progress, not worker chatter (unless --verbose)
            silence_logs=logging.getLevelName(opts.dask_log_level),
        )
    try:
        with Client(cluster) as client:
            yield client
    finally:
        cluster.close()


def dashboard_link(client: Client) -> str | None:
    """The dashboard's ``/status`` URL of the client's scheduler, or None without one."""
    try:
        return client.dashboard_link
    except Exception:  # noqa: BLE001 - no dashboard (bokeh missing or disabled)
        return None
