"""Real clusters (SPEC §8, issue 4): the job on separate `dask scheduler` / `dask worker`
processes started by cluster/local_cluster.py, over TCP, TLS and network namespaces; a lost
worker is survived, a lost scheduler fails the run cleanly; the Kubernetes, SLURM, SSH and
Docker files are checked against the real commands they run."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import shlex
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import tomllib
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pandas.testing as pdt
import pytest
import yaml

from dask_pipeline import __version__, store
from dask_pipeline.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
CLUSTER = ROOT / "cluster"
LAUNCHER = CLUSTER / "local_cluster.py"
BIN = Path(sys.executable).parent
TABLES = ("segments", "videos", "views", "video_stats", "video_timeline", "video_daily")


# ---------------------------------------------------------------- helpers
def pipeline_cmd(*args: str) -> list[str]:
    exe = BIN / "dask-pipeline"
    base = [str(exe)] if exe.exists() else [sys.executable, "-m", "dask_pipeline"]
    return [*base, *args]


def launcher(*args: str, prefix: tuple[str, ...] = (), timeout: float = 120) -> str:
    """Run cluster/local_cluster.py; its stdout (fails the test on a non-zero exit)."""
    r = subprocess.run(
        [*prefix, sys.executable, str(LAUNCHER), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert r.returncode == 0, f"local_cluster.py {args[0]} failed:\n{r.stderr}"
    return r.stdout


def alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


@contextlib.contextmanager
def running_cluster(d: Path, *args: str, prefix: tuple[str, ...] = ()) -> Iterator[dict]:
    """A cluster started by the launcher (separate processes); stopped on exit. Yields the
    launcher's record (address, dashboard, pids, worker_pids by address)."""
    try:
        launcher("start", "--dir", str(d), *args, prefix=prefix)
        yield json.loads((d / "pids.json").read_text())
    finally:
        if (d / "pids.json").exists():
            launcher("stop", "--dir", str(d))


def generate(out: Path, *args: str) -> Path:
    subprocess.run(pipeline_cmd("generate", "--out", str(out), *args), check=True, timeout=120)
    return out


def run_job(inputs: Path, out: Path, *args: str, prefix: tuple[str, ...] = ()):
    return subprocess.run(
        [*prefix, *pipeline_cmd("run", str(inputs), "--staff-file", str(inputs / "staff.txt"))]
        + ["--out", str(out), "--quiet", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


def start_job(inputs: Path, out: Path, log: Path, *args: str) -> subprocess.Popen:
    """The job in the background, with progress lines (stderr) into ``log``."""
    with open(log, "w") as f:
        return subprocess.Popen(
            pipeline_cmd("run", str(inputs), "--staff-file", str(inputs / "staff.txt"))
            + ["--out", str(out), *args],
            stdout=subprocess.DEVNULL,
            stderr=f,
        )


def assert_same_tables(a: Path, b: Path) -> None:
    for name in TABLES:
        left, right = store.read_table(a, name), store.read_table(b, name)
        pdt.assert_frame_equal(left, right, obj=name)
    assert len(store.read_table(a, "segments")) > 0


def run_json(out: Path) -> dict:
    return json.loads((out / "_run.json").read_text())


def scheduler_tasks(client) -> dict[str, dict[str, list]]:
    """{task prefix: {state: [worker address or None]}} as the scheduler sees them."""

    # Nested, so cloudpickle ships it by value (the scheduler cannot import this module).
    def states(dask_scheduler) -> dict:
        out: dict = {}
        for ts in dask_scheduler.tasks.values():
            where = ts.processing_on.address if ts.processing_on else None
            out.setdefault(ts.prefix.name, {}).setdefault(ts.state, []).append(where)
        return out

    return client.run_on_scheduler(states)


@pytest.fixture(scope="module")
def big_input(tmp_path_factory) -> Path:
    """Four daily files of ~60k lines: each read task takes seconds, so a run can be hit
    while its graph runs."""
    d = tmp_path_factory.mktemp("big")
    return generate(
        d, "--users", "300", "--courses", "3", "--days", "4", "--seed", "2", "--lines", "240000"
    )


@pytest.fixture(scope="module")
def big_cluster_run(big_input, tmp_path_factory) -> Iterator[dict]:
    """A launcher cluster of two workers and an undisturbed run of the big input on it, with
    the dashboard's /status fetched while the run went on. The cluster stays up for the
    worker-kill test."""
    base = tmp_path_factory.mktemp("big-run")
    with running_cluster(base / "cluster", "--workers", "2") as info:
        out = base / "out"
        log = base / "job.log"
        job = start_job(big_input, out, log, "--scheduler", info["address"])
        hits = []
        try:
            while job.poll() is None:
                if "segments" in log.read_text():  # the graph was submitted
                    try:
                        with urllib.request.urlopen(info["dashboard"], timeout=2) as resp:
                            hits.append((resp.status, resp.read().decode("utf-8", "replace")))
                    except OSError as e:
                        hits.append((None, str(e)))
                time.sleep(0.3)
            rc = job.wait(timeout=300)
        finally:
            if job.poll() is None:
                job.kill()
        assert rc == 0, log.read_text()
        yield {"info": info, "out": out, "hits": hits, "dir": base / "cluster"}


# ---------------------------------------------------------------- acceptance 1
@pytest.mark.slow
def test_launcher_cluster_run_matches_embedded(small_input, small_reference, tmp_path):
    """Scheduler and two workers as separate processes on 127.0.0.1; the job through
    --scheduler and --scheduler-file gives the embedded LocalCluster's tables."""
    d = tmp_path / "cluster"
    with running_cluster(d, "--workers", "2", "--host", "127.0.0.1") as info:
        assert info["address"].startswith("tcp://127.0.0.1:")
        pids = [info["scheduler"]["pid"]] + [w["pid"] for w in info["workers"]]
        assert len(set(pids)) == 3 and all(alive(p) for p in pids)
        assert os.getpid() not in pids
        # no nanny: the recorded worker pids are the processes that run tasks
        assert sorted(info["worker_pids"].values()) == sorted(pids[1:])
        status = json.loads(launcher("status", "--dir", str(d), "--json"))
        assert status["connected_workers"] == 2
        assert all(p["alive"] for p in status["processes"])

        r = run_job(small_input, tmp_path / "out", "--scheduler", info["address"])
        assert r.returncode == 0, r.stderr
        assert_same_tables(tmp_path / "out", small_reference)
        cluster = run_json(tmp_path / "out")["cluster"]
        assert cluster["scheduler"] == info["address"] and cluster["workers"] == 2

        r = run_job(small_input, tmp_path / "out2", "--scheduler-file", str(d / "scheduler.json"))
        assert r.returncode == 0, r.stderr
        assert_same_tables(tmp_path / "out2", small_reference)
    deadline = time.monotonic() + 15
    while any(alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(alive(p) for p in pids), "stop left processes running"
    assert not (d / "scheduler.json").exists()


# ---------------------------------------------------------------- acceptance 6
@pytest.mark.slow
def test_dashboard_answers_during_run_and_run_json_records_cluster(big_cluster_run):
    hits = big_cluster_run["hits"]
    info = big_cluster_run["info"]
    assert info["dashboard"].endswith("/status")
    ok = [body for code, body in hits if code == 200]
    assert ok, f"the dashboard never answered during the run: {hits[:3]}"
    assert "dask" in ok[0].lower()
    cluster = run_json(big_cluster_run["out"])["cluster"]
    assert cluster["scheduler"] == info["address"]
    assert cluster["dashboard"] == info["dashboard"]
    assert cluster["workers"] == 2 and cluster["threads"] == 2


# ---------------------------------------------------------------- acceptance 2
@pytest.mark.slow
def test_worker_killed_mid_run_still_gives_same_tables(big_input, big_cluster_run, tmp_path):
    """SIGKILL one worker process while the graph runs (some tasks done, others running on
    it): Dask recomputes its tasks and lost results on the other worker; the tables and
    every count equal the undisturbed run's."""
    from distributed import Client

    info = big_cluster_run["info"]
    out = tmp_path / "out"
    log = tmp_path / "job.log"
    killed = None
    with Client(info["address"], timeout=30) as client:
        job = start_job(big_input, out, log, "--scheduler", info["address"])
        try:
            first_seen = None
            while job.poll() is None and killed is None:
                tasks = scheduler_tasks(client).values()
                running = [w for t in tasks for w in t.get("processing", []) if w]
                done = any(t.get("memory") for t in tasks)
                if running and first_seen is None:
                    first_seen = time.monotonic()
                # Best moment: some tasks of the graph done, others running on the worker.
                if running and (done or time.monotonic() - first_seen > 2):
                    killed = running[0]
                    os.kill(info["worker_pids"][killed], signal.SIGKILL)
                time.sleep(0.05)
            rc = job.wait(timeout=300)
        finally:
            if job.poll() is None:
                job.kill()
        assert killed is not None, "the run ended before a worker could be killed"
        assert rc == 0, log.read_text()
        assert not alive(info["worker_pids"][killed])
        assert killed not in client.nthreads()
    assert_same_tables(out, big_cluster_run["out"])
    before, after = run_json(big_cluster_run["out"]), run_json(out)
    assert after["lines"] == before["lines"]
    assert after["counts"] == before["counts"]  # re-run tasks were not counted twice
    log_text = (big_cluster_run["dir"] / "scheduler.log").read_text()
    assert f"Remove worker addr: {killed}" in log_text


# ---------------------------------------------------------------- acceptance 3
@pytest.mark.slow
def test_scheduler_killed_mid_run_exits_1_and_keeps_previous_tables(
    big_input, small_reference, tmp_path
):
    from distributed import Client

    out = tmp_path / "out"
    shutil.copytree(small_reference, out, symlinks=True)  # a previous commit
    current = os.readlink(out / "current")
    before = {name: store.read_table(out, name) for name in TABLES}
    log = tmp_path / "job.log"
    with running_cluster(tmp_path / "cluster", "--workers", "2") as info:
        client = Client(info["address"], timeout=30)
        job = start_job(big_input, out, log, "--scheduler", info["address"])
        try:
            deadline = time.monotonic() + 120
            while job.poll() is None and time.monotonic() < deadline:
                tasks = scheduler_tasks(client)
                if any(s.get("processing") for s in tasks.values()):
                    break
                time.sleep(0.05)
            assert job.poll() is None, "the run ended before the scheduler could be killed"
            client.close()  # before the kill: this client must not hang on a dead scheduler
            os.kill(info["scheduler"]["pid"], signal.SIGKILL)
            t_kill = time.monotonic()
            rc = job.wait(timeout=120)
            took = time.monotonic() - t_kill
        finally:
            if job.poll() is None:
                job.kill()
    err = log.read_text()
    # the terminal's progress lines (timestamp, step, partitions done, time left)
    progress = re.compile(r"^(cluster: .*|\S+ \S+: \d+/\d+ partitions, .*)$")
    lines = [x for x in err.splitlines() if x.strip() and not progress.match(x)]
    assert rc == 1, err
    assert lines == [lines[-1]], f"expected one line of error, got:\n{err}"
    assert lines[-1].startswith("dask-pipeline run: failed, nothing committed: lost the ")
    assert info["address"] in lines[-1]
    assert took < 60
    assert os.readlink(out / "current") == current
    for name in TABLES:
        pdt.assert_frame_equal(store.read_table(out, name), before[name], obj=name)
    versions = [p for p in (out / ".versions").iterdir() if (p / "_run.json").exists()]
    assert [p.name for p in versions] == [Path(current).name]  # nothing else committed


# ---------------------------------------------------------------- acceptance 4
@pytest.mark.slow
@pytest.mark.skipif(shutil.which("openssl") is None, reason="the openssl command makes the certs")
def test_tls_cluster_runs_the_job_and_refuses_clients_without_the_certificate(
    small_input, small_reference, tmp_path
):
    from distributed import Client
    from distributed.security import Security

    certs = tmp_path / "certs"
    launcher("certs", "--dir", str(certs))
    rogue = tmp_path / "rogue"  # same layout, another CA
    launcher("certs", "--dir", str(rogue))
    with running_cluster(tmp_path / "cluster", "--workers", "2", "--tls-dir", str(certs)) as info:
        addr = info["address"]
        assert addr.startswith("tls://127.0.0.1:")
        assert all(w.startswith("tls://") for w in info["worker_pids"])
        r = run_job(
            small_input,
            tmp_path / "out",
            "--scheduler",
            addr,
            "--tls-ca-file",
            str(certs / "ca.pem"),
            "--tls-cert",
            str(certs / "client.pem"),
            "--tls-key",
            str(certs / "client-key.pem"),
        )
        assert r.returncode == 0, r.stderr
        assert_same_tables(tmp_path / "out", small_reference)
        assert run_json(tmp_path / "out")["cluster"]["scheduler"] == addr

        # A Dask config file instead of options: what `certs` writes, named by DASK_CONFIG.
        probe = "import sys, distributed; print(len(distributed.Client(sys.argv[1]).nthreads()))"
        env = os.environ | {"DASK_CONFIG": str(certs / "dask-tls.yaml")}
        r = subprocess.run(
            [sys.executable, "-c", probe, addr], env=env, capture_output=True, text=True, timeout=60
        )
        assert r.stdout.strip() == "2", r.stderr

        # Refused: no TLS settings at all, a certificate from another CA, and a TLS client
        # that trusts the cluster's CA but shows no certificate (mutual TLS).
        t0 = time.monotonic()
        with pytest.raises((OSError, TypeError, TimeoutError)):
            Client(addr, timeout=5, security=Security(require_encryption=False))
        wrong = Security(
            tls_ca_file=str(certs / "ca.pem"),
            tls_client_cert=str(rogue / "client.pem"),
            tls_client_key=str(rogue / "client-key.pem"),
            require_encryption=True,
        )
        with pytest.raises(OSError, match="(?i)certificate|ssl|tls"):
            Client(addr, timeout=5, security=wrong)
        host, port = addr.removeprefix("tls://").rsplit(":", 1)
        ctx = ssl.create_default_context(cafile=str(certs / "ca.pem"))
        ctx.check_hostname = False
        with pytest.raises((ssl.SSLError, OSError)):
            with socket.create_connection((host, int(port)), timeout=5) as raw:
                with ctx.wrap_socket(raw) as tls:
                    tls.sendall(b"\0" * 8)  # TLS 1.3: the server's refusal arrives on read
                    if not tls.recv(1):
                        raise ConnectionResetError("closed by the scheduler")
        assert time.monotonic() - t0 < 30
        # and the job itself, given the wrong certificate, fails with one line
        r = run_job(
            small_input,
            tmp_path / "out-rogue",
            "--scheduler",
            addr,
            "--tls-ca-file",
            str(certs / "ca.pem"),
            "--tls-cert",
            str(rogue / "client.pem"),
            "--tls-key",
            str(rogue / "client-key.pem"),
        )
        assert r.returncode == 1
        assert r.stderr.strip().startswith("dask-pipeline run: failed, nothing committed:")
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr


# ---------------------------------------------------------------- acceptance 5
NETNS_SUBNET = "10.213.7"  # exists only inside the namespaces made below


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=30)


def _netns_unavailable() -> str | None:
    """Why network namespaces cannot be used here, or None."""
    if sys.platform != "linux":
        return "network namespaces need Linux"
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "the ip command (iproute2) is not installed"
    probe = f"dpprobe{os.getpid()}"
    r = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if r.returncode:
        return f"`ip netns add` failed: {r.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


@contextlib.contextmanager
def network(members: dict[str, str]) -> Iterator[dict[str, str]]:
    """One namespace per member with address ``members[m]`` on its eth0, all joined by a
    bridge inside a hub namespace of their own: nothing is added to this host's network.
    Yields member -> namespace name; deletes every namespace on exit."""
    tag = f"dp{os.getpid() % 100000}"
    hub = f"{tag}-hub"
    names = {m: f"{tag}-{m}" for m in members}
    made: list[str] = []
    try:
        for ns in (hub, *names.values()):
            _ip("netns", "add", ns)
            made.append(ns)
            _ip("-n", ns, "link", "set", "lo", "up")
        _ip("-n", hub, "link", "add", "br0", "type", "bridge")
        _ip("-n", hub, "link", "set", "br0", "up")
        for i, (m, ns) in enumerate(names.items()):
            port = f"p{i}"
            _ip("-n", hub, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns)
            _ip("-n", hub, "link", "set", port, "master", "br0", "up")
            _ip("-n", ns, "addr", "add", f"{members[m]}/24", "dev", "eth0")
            _ip("-n", ns, "link", "set", "eth0", "up")
        yield names
    finally:
        for ns in reversed(made):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def _bytes(ns: str, direction: str) -> int:
    r = subprocess.run(
        ["ip", "netns", "exec", ns, "cat", f"/sys/class/net/eth0/statistics/{direction}_bytes"],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(r.stdout)


@pytest.fixture(scope="module")
def netns_usable(request) -> None:
    """Skip (saying why on the terminal, even without -rs) where namespaces cannot be made;
    requested first, so no other fixture runs for nothing."""
    reason = _netns_unavailable()
    if reason:
        capture = request.config.pluginmanager.get_plugin("capturemanager")
        with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
            print(f"\nSKIPPED test_cluster_across_network_namespaces: {reason}")
        pytest.skip(reason)


@pytest.mark.slow
def test_cluster_across_network_namespaces(netns_usable, small_input, small_reference, tmp_path):
    """Scheduler, each worker and the job in their own network namespace and address: every
    message crosses a veth interface and a bridge."""
    addrs = {m: f"{NETNS_SUBNET}.{n}" for m, n in (("s", 10), ("w0", 11), ("w1", 12), ("job", 20))}
    with network(addrs) as ns:
        in_job = ("ip", "netns", "exec", ns["job"])
        d = tmp_path / "cluster"
        args = ("--workers", "2", "--host", addrs["s"], "--scheduler-netns", ns["s"])
        args += ("--worker-netns", ns["w0"], "--worker-netns", ns["w1"])
        # The launcher runs in the job's namespace: it waits for the workers over the network.
        with running_cluster(d, *args, prefix=in_job) as info:
            assert info["address"].startswith(f"tcp://{addrs['s']}:")
            hosts = sorted(a.removeprefix("tcp://").rsplit(":", 1)[0] for a in info["worker_pids"])
            assert hosts == [addrs["w0"], addrs["w1"]]
            before = {m: _bytes(ns[m], "tx") for m in ("job", "w0", "w1")}
            r = run_job(
                small_input, tmp_path / "out", "--scheduler", info["address"], prefix=in_job
            )
            assert r.returncode == 0, r.stderr
            assert_same_tables(tmp_path / "out", small_reference)
            cluster = run_json(tmp_path / "out")["cluster"]
            assert cluster["scheduler"] == info["address"] and cluster["workers"] == 2
            assert cluster["dashboard"].startswith(f"http://{addrs['s']}:")
            # the graph left the job, and the workers' messages left them, by their interfaces
            # (a run sends some 20 kB from the job and 80 kB from the workers)
            sent = {m: _bytes(ns[m], "tx") - b for m, b in before.items()}
            assert sent["job"] > 5_000 and sent["w0"] + sent["w1"] > 5_000, sent


# ---------------------------------------------------------------- acceptance 7: the files
def _docs(path: Path) -> list[dict]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _containers(pod_spec: dict) -> list[dict]:
    return pod_spec.get("initContainers", []) + pod_spec["containers"]


def _check_dask_args(args: list[str]) -> None:
    """``dask scheduler|worker ...`` parses with distributed's own command line."""
    from distributed.cli import dask_scheduler, dask_worker

    assert args[0] == "dask", args
    command = {"scheduler": dask_scheduler.main, "worker": dask_worker.main}[args[1]]
    command.make_context(f"dask {args[1]}", list(args[2:]))  # raises on an unknown option


def _check_pipeline_args(args: list[str]):
    """A real ``dask-pipeline`` command line; returns its parsed arguments."""
    assert Path(args[0]).name == "dask-pipeline", args
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert "dask-pipeline" in scripts
    return build_parser().parse_args(args[1:])


def test_kubernetes_manifests_are_consistent():
    k8s = CLUSTER / "k8s"
    docs = {d["kind"]: d for f in sorted(k8s.glob("*.yaml")) for d in _docs(f)}
    assert set(docs) >= {"DaskCluster", "Job", "PersistentVolumeClaim"}
    dc, job, pvc = docs["DaskCluster"], docs["Job"], docs["PersistentVolumeClaim"]
    assert dc["apiVersion"] == "kubernetes.dask.org/v1"
    assert job["apiVersion"] == "batch/v1"
    assert "ReadWriteMany" in pvc["spec"]["accessModes"]  # every worker writes parts

    sched_pod = dc["spec"]["scheduler"]["spec"]
    worker_pod = dc["spec"]["worker"]["spec"]
    job_pod = job["spec"]["template"]["spec"]
    pods = {"scheduler": sched_pod, "worker": worker_pod, "job": job_pod}
    images = {c["image"] for p in pods.values() for c in _containers(p)}
    assert len(images) == 1, f"one image for scheduler, workers and job: {images}"
    (image,) = images
    assert image.rsplit("/", 1)[-1] == f"dask-pipeline:{__version__}"

    (sched,) = sched_pod["containers"]
    (worker,) = worker_pod["containers"]
    (run,) = job_pod["containers"]
    _check_dask_args(sched["args"])
    _check_dask_args(worker["args"])
    a = _check_pipeline_args(run["args"])
    assert a.command == "run"

    # the job reaches the operator's scheduler Service (<cluster name>-scheduler)
    m = re.fullmatch(r"tcp://([^:]+):(\d+)", a.scheduler)
    assert m, a.scheduler
    assert m.group(1) == f"{dc['metadata']['name']}-scheduler"
    svc_ports = {p["name"]: p for p in dc["spec"]["scheduler"]["service"]["ports"]}
    assert int(m.group(2)) == svc_ports["tcp-comm"]["port"]
    selector = dc["spec"]["scheduler"]["service"]["selector"]
    assert selector["dask.org/cluster-name"] == dc["metadata"]["name"]
    named = {p["name"]: p["containerPort"] for p in sched["ports"]}
    for p in svc_ports.values():
        assert p["targetPort"] in named
    assert named["tcp-comm"] == 8786  # `dask scheduler --port`
    assert sched["args"][sched["args"].index("--port") + 1] == "8786"

    # inputs and output live on the shared claim, mounted at the same path in workers and job
    def data_mounts(pod: dict, container: dict) -> dict[str, str]:
        claims = {
            v["name"]: v["persistentVolumeClaim"]["claimName"]
            for v in pod.get("volumes", [])
            if "persistentVolumeClaim" in v
        }
        return {
            m["mountPath"]: claims[m["name"]]
            for m in container.get("volumeMounts", [])
            if m["name"] in claims
        }

    wmounts, jmounts = data_mounts(worker_pod, worker), data_mounts(job_pod, run)
    assert wmounts == jmounts and set(wmounts.values()) == {pvc["metadata"]["name"]}
    for path in [*a.inputs, str(a.out), str(a.staff_file)]:
        assert any(path.startswith(mp.rstrip("/") + "/") for mp in wmounts), path
    assert job_pod["restartPolicy"] == "Never"


def _load_module(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


JOBQUEUE_SLURM_KEYS = {  # dask-jobqueue's jobqueue.slurm settings (dask_jobqueue/jobqueue.yaml)
    "name", "cores", "memory", "processes", "python", "interface", "death-timeout",
    "local-directory", "shared-temp-directory", "worker-command", "worker-extra-args",
    "shebang", "queue", "account", "walltime", "job-script-prologue", "job-cpu", "job-mem",
    "job-extra-directives", "job-directives-skip", "log-directory", "scheduler-options",
}  # fmt: skip


def test_slurm_example_is_consistent():
    slurm = CLUSTER / "slurm"
    mod = _load_module(slurm / "run_slurm.py")  # imports dask_jobqueue only when run
    conf = mod.load_config()
    settings = conf["jobqueue"]["slurm"]
    assert set(settings) <= JOBQUEUE_SLURM_KEYS, set(settings) - JOBQUEUE_SLURM_KEYS
    assert settings["cores"] >= 1 and settings["processes"] >= 1 and settings["memory"]
    assert settings["cores"] % settings["processes"] == 0
    # each worker process single-threaded, as the embedded cluster does (decoding holds the GIL)
    assert settings["cores"] // settings["processes"] == 1
    from distributed.cli import dask_worker

    dask_worker.main.make_context("dask worker", list(settings.get("worker-extra-args", [])))
    assert isinstance(settings["job-script-prologue"], list)  # the site adds `module load`s

    cmd = mod.pipeline_command("tcp://10.0.0.1:8786", ["/shared/logs/", "--out", "/shared/t"])
    a = _check_pipeline_args(cmd)
    assert (a.command, a.scheduler, str(a.out)) == ("run", "tcp://10.0.0.1:8786", "/shared/t")
    sbatch = (slurm / "sbatch_run.sh").read_text()
    assert "#SBATCH" in sbatch and "run_slurm.py" in sbatch
    assert subprocess.run(["bash", "-n", str(slurm / "sbatch_run.sh")]).returncode == 0


def _shell_command(script: str, first_word: str) -> list[str]:
    """The first command line of ``script`` starting with ``first_word``, joined across
    backslash continuations and split like the shell would (variables left as text)."""
    text = script.replace("\\\n", " ")
    for line in text.splitlines():
        if line.strip().startswith(first_word + " "):
            return shlex.split(line.strip().rstrip("&").strip())
    raise AssertionError(f"no `{first_word}` command")


def test_ssh_example_is_consistent():
    ssh = CLUSTER / "ssh"
    script = (ssh / "run_ssh.sh").read_text()
    assert subprocess.run(["bash", "-n", str(ssh / "run_ssh.sh")]).returncode == 0
    from distributed.cli import dask_ssh

    words = _shell_command(script, "dask ssh")
    assert words[:2] == ["dask", "ssh"]
    values = {"$SCHEDULER": "node01", "$PORT": "8786", "$NWORKERS": "2", "${HOSTS[@]}": "node01"}
    args = [values.get(w, w) for w in words[2:]]
    args = ["/tmp" if w == "$LOGDIR" else w for w in args]
    ctx = dask_ssh.main.make_context("dask ssh", args)
    assert ctx.params["nthreads"] == 1 and ctx.params["scheduler_port"] == 8786

    run = _shell_command(script, "dask-pipeline")
    run = [{"$@": "/shared/logs/"}.get(w, w) for w in run]
    run = [w.replace("$SCHEDULER", "node01").replace("$PORT", "8786") for w in run]
    a = _check_pipeline_args([*run, "--out", "/shared/tables"])
    assert a.scheduler == "tcp://node01:8786"
    hosts = [
        h.split("#")[0].strip()
        for h in (ssh / "hosts.txt").read_text().splitlines()
        if h.split("#")[0].strip()
    ]
    assert hosts and all(" " not in h for h in hosts)


def test_dockerfile_installs_the_project_and_runs_real_commands():
    text = (CLUSTER / "Dockerfile").read_text()
    lines = [x.strip() for x in text.replace("\\\n", " ").splitlines()]
    lines = [x for x in lines if x and not x.startswith("#")]
    base = next(x for x in lines if x.startswith("FROM "))
    m = re.match(r"FROM python:(\d+)\.(\d+)", base)
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert m and (int(m.group(1)), int(m.group(2))) >= tuple(
        int(x) for x in re.findall(r"\d+", requires)[:2]
    )
    copies = " ".join(x for x in lines if x.startswith("COPY "))
    assert "pyproject.toml" in copies and "dask_pipeline" in copies
    assert any(re.search(r"pip install (\S+ )*\.(\s|$)", x) for x in lines if x.startswith("RUN "))
    # every file the package build reads is copied (setuptools fails on a missing readme)
    readme = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"].get("readme")
    if readme:
        assert readme in copies
    cmd = json.loads(next(x for x in lines if x.startswith("CMD ")).removeprefix("CMD "))
    with pytest.raises(SystemExit) as exit_:  # `dask-pipeline --help`: prints help, status 0
        _check_pipeline_args(cmd)
    assert exit_.value.code == 0
    entry = json.loads(next(x for x in lines if x.startswith("ENTRYPOINT ")).split(" ", 1)[1])
    assert entry[0] == "tini" and "tini" in text.split("apt-get install", 1)[1].split("&&")[0]
    ignore = (CLUSTER / "Dockerfile.dockerignore").read_text().split()
    assert "!dask_pipeline/" in ignore and "!pyproject.toml" in ignore


def test_readme_covers_every_piece():
    text = (CLUSTER / "README.md").read_text()
    low = text.lower()
    for f in sorted(CLUSTER.rglob("*")):
        if f.is_file() and f.name != "README.md" and "__pycache__" not in f.parts:
            assert f.name in text, f"cluster/README.md does not mention {f.name}"
    assert "shared filesystem" in low and "object store" in low
    assert "tls://" in text and "--tls-ca-file" in text
    for cmd in ("local_cluster.py start", "local_cluster.py status", "local_cluster.py stop"):
        assert cmd in text
