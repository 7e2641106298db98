"""Real system daemons for the cluster tests, started by hand (no systemd) under a temporary
directory, on loopback, and stopped at the end: munge + slurmctld + slurmd (a single-node
SLURM for localhost) and sshd (key-based, one port).

Each ``*_unavailable()`` says why the daemon cannot run here (a missing package, not root),
or returns None; the tests skip with that reason, printed on the terminal.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

SLURM_PARTITION = "dptest"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def say_skip(request, reason: str) -> None:
    """Skip the test, printing why on the terminal (even without -rs)."""
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        print(f"\nSKIPPED {request.node.name}: {reason}")
    pytest.skip(reason)


def _missing(*commands: str) -> str | None:
    gone = [c for c in commands if shutil.which(c) is None]
    return f"not installed: {', '.join(gone)}" if gone else None


def _wait(what: str, ready, procs: list[subprocess.Popen], logs: list[Path], timeout=30.0):
    deadline = time.monotonic() + timeout
    while not ready():
        for p, log in zip(procs, logs, strict=True):
            if p.poll() is not None:
                raise RuntimeError(f"{what}: {p.args[0]} exited: {_tail(log)}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} not ready after {timeout:.0f} s: {_tail(logs[-1])}")
        time.sleep(0.2)


def _tail(log: Path, n: int = 5) -> str:
    try:
        return " | ".join(log.read_text(errors="replace").strip().splitlines()[-n:])
    except OSError:
        return "(no log)"


def _stop(procs: list[subprocess.Popen]) -> None:
    for p in reversed(procs):
        if p.poll() is None:
            p.terminate()
    for p in reversed(procs):
        try:
            p.wait(timeout=15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=15)


def _spawn(cmd: list[str], log: Path, env: dict | None = None) -> subprocess.Popen:
    with open(log, "ab") as f:
        return subprocess.Popen(
            cmd, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env
        )


# ---------------------------------------------------------------- SLURM
def slurm_unavailable() -> str | None:
    if sys.platform != "linux":
        return "SLURM needs Linux"
    if os.geteuid() != 0:
        return "the test SLURM runs its daemons as root"
    if importlib.util.find_spec("dask_jobqueue") is None:
        return "dask-jobqueue is not installed (pip install dask-jobqueue)"
    return _missing("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scontrol")


def _real_memory_mb() -> int:
    """A little under what slurmd measures (slurmd drains a node that has less than said)."""
    out = subprocess.run(["slurmd", "-C"], capture_output=True, text=True, check=True).stdout
    return int(re.search(r"RealMemory=(\d+)", out).group(1)) - 256


def _slurm_conf(d: Path, munge_socket: Path, cpus: int) -> str:
    ports = (free_port(), free_port())
    return f"""\
ClusterName=dptest
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort={ports[0]}
SlurmdPort={ports[1]}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={munge_socket}
CredType=cred/munge
StateSaveLocation={d}/ctld
SlurmdSpoolDir={d}/spool
SlurmctldPidFile={d}/slurmctld.pid
SlurmdPidFile={d}/slurmd.pid
SlurmctldLogFile={d}/slurmctld.log
SlurmdLogFile={d}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
MpiDefault=none
MailProg=/bin/true
ReturnToService=2
SlurmdTimeout=60
MinJobAge=600
NodeName=localhost NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={_real_memory_mb()} State=UNKNOWN
PartitionName={SLURM_PARTITION} Nodes=localhost Default=YES MaxTime=INFINITE State=UP \
OverSubscribe=FORCE:4
"""


@contextlib.contextmanager
def slurm(d: Path) -> Iterator[dict]:
    """munged, slurmctld and slurmd for node ``localhost`` with state under ``d``. Yields
    ``{"env": environment for SLURM commands, "conf": path, "dir": d}``."""
    d.mkdir(parents=True, exist_ok=True)
    for sub in ("ctld", "spool", "munge"):
        (d / sub).mkdir(exist_ok=True)
    os.chmod(d / "munge", 0o700)
    key = d / "munge" / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o600)
    sock = d / "munge" / "munge.socket"
    procs: list[subprocess.Popen] = []
    logs: list[Path] = []
    try:
        munged = ["munged", "-F", "--force", f"--socket={sock}", f"--key-file={key}"]
        munged += [f"--pid-file={d}/munge/munged.pid", f"--seed-file={d}/munge/seed"]
        munged += [f"--log-file={d}/munge/munged.log"]
        logs.append(d / "munged.out")
        procs.append(_spawn(munged, logs[-1]))
        _wait("munged", sock.exists, procs, logs)

        conf = d / "slurm.conf"
        conf.write_text(_slurm_conf(d, sock, os.cpu_count() or 1))
        env = os.environ | {"SLURM_CONF": str(conf)}
        logs.append(d / "slurmctld.out")
        procs.append(_spawn(["slurmctld", "-D", "-i", "-f", str(conf)], logs[-1], env))
        logs.append(d / "slurmd.out")
        procs.append(_spawn(["slurmd", "-D", "-N", "localhost", "-f", str(conf)], logs[-1], env))

        def idle() -> bool:
            r = subprocess.run(
                ["sinfo", "-h", "-N", "-o", "%T"], env=env, capture_output=True, text=True
            )
            return r.returncode == 0 and r.stdout.strip() in ("idle", "mixed")

        _wait("slurm", idle, procs, [*logs[:-1], d / "slurmctld.log"], timeout=60)
        yield {"env": env, "conf": conf, "dir": d, "partition": SLURM_PARTITION}
    finally:
        with contextlib.suppress(Exception):
            if procs and procs[-1].poll() is None:
                subprocess.run(["scancel", "--full", "-u", "root"], env=env, timeout=30)
        _stop(procs)


def squeue(env: dict) -> list[str]:
    r = subprocess.run(
        ["squeue", "-h", "-o", "%i %j %T %r"], env=env, capture_output=True, text=True
    )
    return [x for x in r.stdout.splitlines() if x.strip()]


# ---------------------------------------------------------------- sshd
def sshd_unavailable() -> str | None:
    if sys.platform != "linux":
        return "the test sshd needs Linux"
    if os.geteuid() != 0:
        return "the test sshd runs as root (it switches to the logged-in user)"
    if importlib.util.find_spec("paramiko") is None:
        return "paramiko (needed by `dask ssh`) is not installed"
    return _missing("sshd", "ssh-keygen")


@contextlib.contextmanager
def sshd(d: Path, listen: str = "127.0.0.1") -> Iterator[dict]:
    """An sshd of its own (config, host key, port) accepting only a key made here, for the
    current user. Yields ``{"port", "key", "user", "host", "config"}``; ``config`` is an
    ssh_config file naming the port, key and host key, for ``ssh -F``."""
    d.mkdir(parents=True, exist_ok=True)
    os.chmod(d, 0o700)
    host_key, user_key = d / "host_ed25519", d / "id_ed25519"
    for k in (host_key, user_key):
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(k)],
            check=True,
            capture_output=True,
        )
    (d / "authorized_keys").write_text(Path(f"{user_key}.pub").read_text())
    Path("/run/sshd").mkdir(parents=True, exist_ok=True)  # privilege separation directory
    port = free_port()
    (d / "sshd_config").write_text(
        f"Port {port}\nListenAddress {listen}\nHostKey {host_key}\n"
        f"AuthorizedKeysFile {d}/authorized_keys\nPidFile {d}/sshd.pid\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\n"
        "PermitRootLogin prohibit-password\nUsePAM no\nStrictModes no\n"
        "AllowTcpForwarding yes\nX11Forwarding no\nPrintMotd no\nLogLevel VERBOSE\n"
        # keep the test's PATH and environment in the sessions dask ssh opens
        "AcceptEnv *\n"
    )
    known = d / "known_hosts"
    pub = Path(f"{host_key}.pub").read_text().split()
    known.write_text(f"[{listen}]:{port} {pub[0]} {pub[1]}\n")
    user = os.environ.get("USER") or "root"
    (d / "ssh_config").write_text(
        f"Host {listen}\n  Port {port}\n  User {user}\n  IdentityFile {user_key}\n"
        f"  UserKnownHostsFile {known}\n  StrictHostKeyChecking yes\n  BatchMode yes\n"
    )
    log = d / "sshd.log"
    procs = [_spawn(["/usr/sbin/sshd", "-D", "-e", "-f", str(d / "sshd_config")], log)]
    try:

        def listening() -> bool:
            with contextlib.suppress(OSError), socket.create_connection((listen, port), 1):
                return True
            return False

        _wait("sshd", listening, procs, [log])
        yield {
            "port": port,
            "key": user_key,
            "user": user,
            "host": listen,
            "config": d / "ssh_config",
            "known_hosts": known,
            "log": log,
        }
    finally:
        _stop(procs)
