"""SSH for real (issue 13, items 2 and 3): an sshd of the test's own on loopback, key-based;
cluster/ssh/run_ssh.sh as shipped gives the embedded run's tables, makes its log directory,
takes the SSH port, user and key, and leaves no process behind, also when the cluster does
not come up."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests import daemons
from tests.test_cluster import (
    ROOT,
    assert_same_tables,
    run_json,
)

RUN_SSH = ROOT / "cluster" / "ssh" / "run_ssh.sh"


@pytest.fixture(scope="module")
def sshd(request, tmp_path_factory):
    reason = daemons.sshd_unavailable()
    if reason:
        daemons.say_skip(request, reason)
    with daemons.sshd(tmp_path_factory.mktemp("sshd")) as s:
        yield s


def dask_processes(port: int) -> list[psutil.Process]:
    """Scheduler and workers of the cluster on ``port`` still running, wherever started."""
    found = []
    for p in psutil.process_iter(["cmdline"]):
        cmd = " ".join(p.info["cmdline"] or [])
        if "distributed.cli.dask_" in cmd and (f"--port {port}" in cmd or f":{port}" in cmd):
            found.append(p)
    return found


def run_ssh(sshd, tmp_path: Path, args: list[str], **env: str) -> subprocess.CompletedProcess:
    hostfile = tmp_path / "hosts.txt"
    # two host names for one sshd: the scheduler and one worker on each
    hostfile.write_text("# test hosts\n127.0.0.1   # scheduler\nlocalhost\n")
    port = daemons.free_port()
    full = (
        os.environ
        | {
            "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
            "HOSTFILE": str(hostfile),
            "PORT": str(port),
            "NWORKERS": "1",
            "MIN_WORKERS": "2",
            "REMOTE_PYTHON": sys.executable,
            "SSH_PORT": str(sshd["port"]),
            "SSH_USER": sshd["user"],
            "SSH_KEY": str(sshd["key"]),
            "LOGDIR": str(tmp_path / "not-yet" / "logs"),  # does not exist: the script makes it
        }
        | env
    )
    t0 = time.monotonic()
    r = subprocess.run(
        ["bash", str(RUN_SSH), *args],
        env=full,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
    )
    r.took = time.monotonic() - t0
    # and nothing stays up once the script returned
    deadline = time.monotonic() + 30
    while dask_processes(port) and time.monotonic() < deadline:
        time.sleep(0.5)
    left = [" ".join(p.cmdline()) for p in dask_processes(port)]
    assert not left, f"run_ssh.sh left processes running: {left}"
    return r


@pytest.mark.slow
def test_run_ssh_matches_embedded(sshd, small_input, small_reference, tmp_path):
    """Tables equal, log directory made, key-based login, and no process left after."""
    out = tmp_path / "out"
    args = [str(small_input), "--out", str(out), "--staff-file", str(small_input / "staff.txt")]
    r = run_ssh(sshd, tmp_path, [*args, "--quiet"])
    assert r.returncode == 0, r.stderr
    assert_same_tables(out, small_reference)
    assert run_json(out)["cluster"]["workers"] == 2
    assert "cluster up: 2 workers" in r.stderr
    logs = tmp_path / "not-yet" / "logs"
    assert (logs / "dask-ssh.log").exists()
    assert any(p.name.startswith("dask_scheduler_") for p in logs.rglob("*.log"))
    assert f"Accepted publickey for {sshd['user']}" in sshd["log"].read_text()


@pytest.mark.slow
def test_run_ssh_with_a_key_sshd_refuses_fails_in_one_line(sshd, small_input, tmp_path):
    wrong = tmp_path / "wrong_key"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(wrong)],
        check=True,
        capture_output=True,
    )
    out = tmp_path / "out"
    r = run_ssh(sshd, tmp_path, [str(small_input), "--out", str(out)], SSH_KEY=str(wrong))
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert r.returncode == 1, r.stderr
    assert lines == [lines[-1]] and lines[-1].startswith("run_ssh.sh: failed, nothing committed:")
    assert "dask ssh exited at start" in lines[-1], lines[-1]
    assert r.took < 60
    assert not out.exists()
