#!/usr/bin/env python3
"""A real multi-process Dask cluster on this machine: ``dask scheduler`` + N ``dask worker``.

Usage (run with the project's virtualenv Python)::

    python cluster/local_cluster.py start --workers 2 --dir D [--host 127.0.0.1] [--tls-dir CERTS]
    python cluster/local_cluster.py status --dir D
    python cluster/local_cluster.py stop --dir D
    python cluster/local_cluster.py certs --dir CERTS [--host 10.0.0.5 ...]

``start`` spawns the scheduler and each worker as separate, detached processes (their own
session, so they outlive this command and a Ctrl-C in its terminal), writes the scheduler file
``D/scheduler.json``, records every pid in ``D/pids.json``, waits until all workers are
connected and prints the scheduler address (only that, on stdout, so
``ADDR=$(python cluster/local_cluster.py start ...)`` works). Logs go to ``D/*.log``.

Workers run without a nanny by default: the pid recorded for a worker is the process that
runs tasks, so killing it loses that worker for good (``--nanny`` restarts it instead).

``--tls-dir CERTS`` runs everything over ``tls://`` with the files ``certs`` writes: ``ca.pem``
and ``scheduler.pem``/``worker.pem``/``client.pem`` with their ``*-key.pem`` keys.

``--scheduler-netns NS`` / ``--worker-netns NS`` (repeatable, one per worker) start the
processes inside existing network namespaces (``ip netns exec``, root only). A worker in a
namespace binds the address of the interface that routes to the scheduler.

Uses only the ``dask`` command next to this Python and the ``distributed`` package.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

SCHEDULER_FILE = "scheduler.json"
PIDS_FILE = "pids.json"
TLS_FILES = {
    "ca": "ca.pem",
    "scheduler": ("scheduler.pem", "scheduler-key.pem"),
    "worker": ("worker.pem", "worker-key.pem"),
    "client": ("client.pem", "client-key.pem"),
}


class LauncherError(RuntimeError):
    """The cluster could not be started, inspected or stopped (one-line message)."""


# ------------------------------------------------------------------ commands
def dask_executable() -> str:
    """The ``dask`` command installed next to this Python (the project's virtualenv)."""
    exe = Path(sys.executable).parent / "dask"
    if not exe.exists():
        raise LauncherError(f"no dask command next to {sys.executable}; install the project")
    return str(exe)


def tls_args(tls_dir: Path | None, role: str) -> list[str]:
    """``dask scheduler``/``dask worker`` TLS flags for ``role`` from a certs directory."""
    if tls_dir is None:
        return []
    cert, key = TLS_FILES[role]
    files = [tls_dir / TLS_FILES["ca"], tls_dir / cert, tls_dir / key]
    for f in files:
        if not f.is_file():
            raise LauncherError(f"--tls-dir: missing {f} (make them with `certs --dir`)")
    return [
        "--protocol",
        "tls",
        "--tls-ca-file",
        str(files[0]),
        "--tls-cert",
        str(files[1]),
        "--tls-key",
        str(files[2]),
    ]


def client_security(tls_dir: Path | None):
    """A ``distributed.Security`` for a client of a cluster using ``tls_dir``, or None."""
    if tls_dir is None:
        return None
    from distributed.security import Security

    cert, key = TLS_FILES["client"]
    return Security(
        tls_ca_file=str(tls_dir / TLS_FILES["ca"]),
        tls_client_cert=str(tls_dir / cert),
        tls_client_key=str(tls_dir / key),
        require_encryption=True,
    )


def _netns(ns: str | None) -> list[str]:
    if ns is None:
        return []
    ip = shutil.which("ip")
    if ip is None:
        raise LauncherError("--*-netns needs the `ip` command (iproute2)")
    # `ip netns exec` execs the command: the recorded pid is the dask process itself.
    return [ip, "netns", "exec", ns]


def scheduler_command(
    d: Path,
    host: str,
    port: int,
    dashboard_address: str | None,
    tls_dir: Path | None,
    netns: str | None = None,
) -> list[str]:
    """The ``dask scheduler`` command line of a cluster in directory ``d``."""
    cmd = [*_netns(netns), dask_executable(), "scheduler", "--host", host, "--port", str(port)]
    cmd += ["--scheduler-file", str(d / SCHEDULER_FILE)]
    # The dashboard binds to the scheduler's host (loopback by default, SPEC §9).
    cmd += ["--dashboard-address", dashboard_address or f"{host}:0"]
    return cmd + tls_args(tls_dir, "scheduler")


def worker_command(
    d: Path,
    index: int,
    host: str | None,
    nthreads: int,
    memory_limit: str,
    nanny: bool,
    tls_dir: Path | None,
    netns: str | None = None,
) -> list[str]:
    """The ``dask worker`` command line of worker ``index`` of a cluster in directory ``d``."""
    cmd = [*_netns(netns), dask_executable(), "worker", "--scheduler-file", str(d / SCHEDULER_FILE)]
    cmd += ["--name", f"worker-{index}", "--nthreads", str(nthreads)]
    cmd += ["--memory-limit", memory_limit, "--local-directory", str(d / f"worker-{index}")]
    cmd += ["--nanny" if nanny else "--no-nanny", "--no-dashboard"]
    if host is not None:
        cmd += ["--host", host]
    return cmd + tls_args(tls_dir, "worker")


def _spawn(cmd: list[str], log: Path) -> int:
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # detached: survives this command and its terminal
            close_fds=True,
        )
    return proc.pid


# ------------------------------------------------------------------ process bookkeeping
def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    os.replace(tmp, path)


def _alive(pid: int, created: float | None = None) -> bool:
    """Whether ``pid`` runs and is the process we started (not a zombie or a reused pid)."""
    import psutil

    try:
        p = psutil.Process(pid)
        if p.status() == psutil.STATUS_ZOMBIE:
            return False
        return created is None or abs(p.create_time() - created) < 1.0
    except psutil.Error:
        return False


def _create_time(pid: int) -> float | None:
    import psutil

    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


def _processes(d: Path) -> list[dict]:
    pids = _read_json(d / PIDS_FILE) or {}
    procs = []
    if pids.get("scheduler"):
        procs.append(pids["scheduler"] | {"role": "scheduler"})
    procs += [w | {"role": "worker"} for w in pids.get("workers", [])]
    return procs


# ------------------------------------------------------------------ start / status / stop
def start(
    d: Path,
    workers: int = 2,
    host: str = "127.0.0.1",
    port: int = 0,
    dashboard_address: str | None = None,
    nthreads: int = 1,
    memory_limit: str = "auto",
    nanny: bool = False,
    tls_dir: Path | None = None,
    scheduler_netns: str | None = None,
    worker_netns: Sequence[str] = (),
    timeout: float = 60.0,
) -> dict:
    """Start a scheduler and ``workers`` workers as detached processes; return the cluster's
    description (address, dashboard, pids) once every worker is connected.

    Raises LauncherError (after stopping what it started) when they are not up in time.
    """
    d = Path(d).resolve()
    tls_dir = Path(tls_dir).resolve() if tls_dir else None
    if worker_netns and len(worker_netns) != workers:
        raise LauncherError(
            f"--worker-netns: give one per worker ({workers}), not {len(worker_netns)}"
        )
    d.mkdir(parents=True, exist_ok=True)
    if any(_alive(p["pid"], p.get("created")) for p in _processes(d)):
        raise LauncherError(f"a cluster from {d} is still running; stop it first")
    (d / SCHEDULER_FILE).unlink(missing_ok=True)  # a stale file would point at a dead scheduler

    sched_cmd = scheduler_command(d, host, port, dashboard_address, tls_dir, scheduler_netns)
    pid = _spawn(sched_cmd, d / "scheduler.log")
    record: dict = {
        "scheduler": {"pid": pid, "created": _create_time(pid), "cmd": sched_cmd},
        "workers": [],
        "tls_dir": str(tls_dir) if tls_dir else None,
    }
    _write_json(d / PIDS_FILE, record)
    try:
        _wait_for_file(d / SCHEDULER_FILE, pid, timeout, d / "scheduler.log")
        for i in range(workers):
            ns = worker_netns[i] if worker_netns else None
            # In a namespace the worker finds its own address; on one box it binds ``host``.
            cmd = worker_command(
                d, i, None if ns else host, nthreads, memory_limit, nanny, tls_dir, ns
            )
            wpid = _spawn(cmd, d / f"worker-{i}.log")
            record["workers"].append({"pid": wpid, "created": _create_time(wpid), "cmd": cmd})
            _write_json(d / PIDS_FILE, record)
        info = _wait_for_workers(d, workers, tls_dir, timeout)
    except BaseException:
        stop(d)
        raise
    record |= info
    _write_json(d / PIDS_FILE, record)
    return record


def _wait_for_file(path: Path, pid: int, timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if not _alive(pid):
            raise LauncherError(f"the scheduler exited at start; see {log}: {_tail(log)}")
        if time.monotonic() > deadline:
            raise LauncherError(f"no scheduler file after {timeout:.0f} s; see {log}")
        time.sleep(0.1)


def _tail(log: Path) -> str:
    try:
        lines = [x for x in log.read_text(errors="replace").splitlines() if x.strip()]
    except OSError:
        return ""
    return lines[-1] if lines else ""


def _wait_for_workers(d: Path, n: int, tls_dir: Path | None, timeout: float) -> dict:
    from distributed import Client

    sec = client_security(tls_dir)
    kwargs = {"security": sec} if sec is not None else {}
    deadline = time.monotonic() + timeout
    with Client(scheduler_file=str(d / SCHEDULER_FILE), timeout=timeout, **kwargs) as client:
        while True:
            info = client.scheduler_info(n_workers=-1)
            if len(info["workers"]) >= n:
                break
            for p in _processes(d):
                if not _alive(p["pid"], p.get("created")):
                    raise LauncherError(
                        f"a {p['role']} exited at start (pid {p['pid']}); see {d}/*.log"
                    )
            if time.monotonic() > deadline:
                raise LauncherError(f"{len(info['workers'])} of {n} workers after {timeout:.0f} s")
            time.sleep(0.2)
        return {
            "address": client.scheduler.address,
            "dashboard": client.dashboard_link,
            # address -> pid of the process running tasks (the worker, or a nanny's child)
            "worker_pids": dict(sorted(client.run(os.getpid).items())),
        }


def status(d: Path, timeout: float = 5.0) -> dict:
    """Which recorded processes run, and what the scheduler reports (if it answers)."""
    d = Path(d).resolve()
    record = _read_json(d / PIDS_FILE)
    if record is None:
        raise LauncherError(f"no cluster recorded in {d}")
    procs = [
        {"role": p["role"], "pid": p["pid"], "alive": _alive(p["pid"], p.get("created"))}
        for p in _processes(d)
    ]
    out = {"dir": str(d), "address": record.get("address"), "processes": procs}
    out["dashboard"] = record.get("dashboard")
    out["connected_workers"] = None
    if procs and procs[0]["alive"] and (d / SCHEDULER_FILE).exists():
        from distributed import Client

        sec = client_security(Path(record["tls_dir"]) if record.get("tls_dir") else None)
        kwargs = {"security": sec} if sec is not None else {}
        try:
            with Client(scheduler_file=str(d / SCHEDULER_FILE), timeout=timeout, **kwargs) as c:
                out["connected_workers"] = len(c.scheduler_info(n_workers=-1)["workers"])
        except (OSError, TimeoutError):
            pass
    return out


def stop(d: Path, grace: float = 10.0) -> list[int]:
    """Stop every recorded process (workers first, then the scheduler): SIGTERM, then SIGKILL
    after ``grace`` seconds. Returns the pids signalled. Removes the scheduler file."""
    d = Path(d).resolve()
    procs = _processes(d)
    signalled = []
    order = [p for p in procs if p["role"] == "worker"] + [
        p for p in procs if p["role"] == "scheduler"
    ]
    for p in order:
        if _alive(p["pid"], p.get("created")):
            try:
                os.kill(p["pid"], signal.SIGTERM)
                signalled.append(p["pid"])
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(_alive(pid) for pid in signalled):
        time.sleep(0.1)
    for pid in signalled:
        if _alive(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    (d / SCHEDULER_FILE).unlink(missing_ok=True)
    return signalled


# ------------------------------------------------------------------ certificates
def make_certs(d: Path, hosts: Sequence[str] = ("127.0.0.1",), days: int = 30) -> Path:
    """Write a private CA and scheduler/worker/client certificates (EC P-256) into ``d`` with
    the ``openssl`` command. Every certificate is good for both ends of a TLS connection
    (Dask nodes are servers and clients) and names ``hosts`` and localhost.

    Also writes ``dask-tls.yaml``, a Dask config file for a client (``DASK_CONFIG=...``).
    """
    openssl = shutil.which("openssl")
    if openssl is None:
        raise LauncherError("certs: needs the openssl command")
    d = Path(d).resolve()
    d.mkdir(parents=True, exist_ok=True)

    def run(*args: str) -> None:
        r = subprocess.run([openssl, *args], capture_output=True, text=True)
        if r.returncode:
            raise LauncherError(f"openssl {args[0]} failed: {r.stderr.strip()}")

    def key(path: Path) -> None:
        run("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", str(path))
        path.chmod(0o600)

    key(d / "ca-key.pem")
    run(
        "req", "-x509", "-new", "-key", str(d / "ca-key.pem"), "-out", str(d / "ca.pem"),
        "-days", str(days), "-subj", "/CN=dask-pipeline cluster CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    )  # fmt: skip
    names = ["DNS:localhost", "IP:127.0.0.1"]
    for h in hosts:
        name = f"IP:{h}" if h.replace(".", "").isdigit() or ":" in h else f"DNS:{h}"
        if name not in names:
            names.append(name)
    san = ",".join(names)
    # Strict X.509 checking (Python >= 3.13) wants key identifiers and key usage on leaves.
    ext = (
        "basicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyAgreement\n"
        "extendedKeyUsage=serverAuth,clientAuth\n"
        "subjectKeyIdentifier=hash\n"
        "authorityKeyIdentifier=keyid,issuer\n"
        f"subjectAltName={san}\n"
    )
    with tempfile.TemporaryDirectory() as tmp:
        extfile = Path(tmp) / "ext.cnf"
        extfile.write_text(ext)
        for serial, role in enumerate(("scheduler", "worker", "client"), start=1):
            cert, keyname = TLS_FILES[role]
            key(d / keyname)
            csr = Path(tmp) / f"{role}.csr"
            run(
                "req",
                "-new",
                "-key",
                str(d / keyname),
                "-subj",
                f"/CN=dask-{role}",
                "-out",
                str(csr),
            )
            run(
                "x509", "-req", "-in", str(csr), "-CA", str(d / "ca.pem"),
                "-CAkey", str(d / "ca-key.pem"), "-set_serial", str(1000 + serial),
                "-days", str(days), "-extfile", str(extfile), "-out", str(d / cert),
            )  # fmt: skip
    (d / "dask-tls.yaml").write_text(
        "# Dask config for a client of the TLS cluster: DASK_CONFIG=this-file\n"
        "distributed:\n"
        "  comm:\n"
        "    require-encryption: true\n"
        "    tls:\n"
        f"      ca-file: {d / 'ca.pem'}\n"
        "      client:\n"
        f"        cert: {d / 'client.pem'}\n"
        f"        key: {d / 'client-key.pem'}\n"
    )
    return d


# ------------------------------------------------------------------ command line
def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="local_cluster.py",
        description="Start, inspect and stop a multi-process Dask cluster on this machine.",
    )
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("start", help="start a scheduler and N workers, print the address")
    s.add_argument(
        "--dir", required=True, type=Path, help="state directory (scheduler file, pids, logs)"
    )
    s.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    s.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    s.add_argument("--port", type=int, default=0, help="scheduler port (default: any free)")
    s.add_argument("--dashboard-address", help="dashboard HOST:PORT (default HOST:any free)")
    s.add_argument("--nthreads", type=int, default=1, help="threads per worker (default 1)")
    s.add_argument("--memory-limit", default="auto", help="memory per worker (default auto)")
    s.add_argument("--nanny", action="store_true", help="run workers under a restarting nanny")
    s.add_argument("--tls-dir", type=Path, help="certificates from `certs`: serve tls://")
    s.add_argument("--scheduler-netns", metavar="NS", help="run the scheduler in netns NS")
    s.add_argument(
        "--worker-netns",
        metavar="NS",
        action="append",
        default=[],
        help="netns of a worker (repeat)",
    )
    s.add_argument("--timeout", type=float, default=60.0, help="seconds to wait (default 60)")
    st = sub.add_parser("status", help="which processes run; workers connected")
    st.add_argument("--dir", required=True, type=Path)
    st.add_argument("--json", action="store_true", help="print the status as JSON")
    sp = sub.add_parser("stop", help="stop the workers, then the scheduler")
    sp.add_argument("--dir", required=True, type=Path)
    c = sub.add_parser("certs", help="make a CA and scheduler/worker/client certificates")
    c.add_argument("--dir", required=True, type=Path)
    c.add_argument("--host", action="append", default=[], help="an address or name to certify")
    c.add_argument("--days", type=int, default=30)
    return p


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point: 0 on success, 1 on failure (one line on stderr)."""
    a = _parser().parse_args(argv)
    try:
        if a.command == "start":
            info = start(
                a.dir,
                workers=a.workers,
                host=a.host,
                port=a.port,
                dashboard_address=a.dashboard_address,
                nthreads=a.nthreads,
                memory_limit=a.memory_limit,
                nanny=a.nanny,
                tls_dir=a.tls_dir,
                scheduler_netns=a.scheduler_netns,
                worker_netns=a.worker_netns,
                timeout=a.timeout,
            )
            print(info["address"])
            print(
                f"scheduler file {Path(a.dir).resolve() / SCHEDULER_FILE}; "
                f"{len(info['workers'])} workers; dashboard {info['dashboard']}",
                file=sys.stderr,
            )
        elif a.command == "status":
            st = status(a.dir)
            if a.json:
                print(json.dumps(st, indent=1))
            else:
                print(f"scheduler {st['address']}  dashboard {st['dashboard']}")
                for p in st["processes"]:
                    print(
                        f"  {p['role']:<9} pid {p['pid']:<8} {'running' if p['alive'] else 'gone'}"
                    )
                print(f"  workers connected: {st['connected_workers']}")
            return 0 if any(p["alive"] for p in st["processes"]) else 1
        elif a.command == "stop":
            pids = stop(a.dir)
            print(f"stopped {len(pids)} processes", file=sys.stderr)
        elif a.command == "certs":
            d = make_certs(a.dir, a.host or ["127.0.0.1"], a.days)
            print(d)
    except LauncherError as e:
        print(f"local_cluster.py {a.command}: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
