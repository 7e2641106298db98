"""Get a Dask client: an existing scheduler (address or scheduler file, optionally TLS), or an
embedded LocalCluster sized to the machine with its dashboard on loopback."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

from distributed import Client, LocalCluster
from distributed.security import Security

from .config import ClusterOptions


def security(opts: ClusterOptions) -> Security | None:
    """TLS settings from the options, or None (Dask's own config then applies)."""
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


@contextlib.contextmanager
def connect(opts: ClusterOptions, timeout: str = "30s") -> Iterator[Client]:
    """A client for the run; closes what it started when done."""
    sec = security(opts)
    if opts.scheduler or opts.scheduler_file:
        kwargs = {"timeout": timeout}
        if sec is not None:
            kwargs["security"] = sec
        if opts.scheduler_file:
            client = Client(scheduler_file=str(opts.scheduler_file), **kwargs)
        else:
            client = Client(opts.scheduler, **kwargs)
        try:
            yield client
        finally:
            client.close()
        return
    workers, threads = default_size()
    cluster = LocalCluster(
        n_workers=opts.workers or workers,
        threads_per_worker=opts.threads_per_worker or threads,
        memory_limit=opts.memory_limit or "auto",
        dashboard_address=opts.dashboard_address,
        host="127.0.0.1",
        processes=True,
        silence_logs=40,  # logging.ERROR: the terminal shows our progress, not worker chatter
    )
    try:
        with Client(cluster) as client:
            yield client
    finally:
        cluster.close()


def dashboard_link(client: Client) -> str | None:
    try:
        return client.dashboard_link
    except Exception:  # noqa: BLE001 - no dashboard (bokeh missing or disabled)
        return None
