"""SLURM for real (issue 13, items 1 and 4): munge, slurmctld and slurmd for localhost,
started in the test; the job through cluster/slurm as shipped, from the login side
(run_slurm.py, dask-jobqueue) and as a driver job (sbatch_run.sh), gives the embedded run's
tables; a worker job SLURM cannot run fails in seconds with SLURM's reason in one line."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests import daemons
from tests.test_cluster import (
    ROOT,
    assert_same_tables,
    run_json,
)

RUN_SLURM = ROOT / "cluster" / "slurm" / "run_slurm.py"
SBATCH_RUN = ROOT / "cluster" / "slurm" / "sbatch_run.sh"
FAILED = "run_slurm.py: failed, nothing committed: "


@pytest.fixture(scope="module")
def slurm(request, tmp_path_factory):
    reason = daemons.slurm_unavailable()
    if reason:
        daemons.say_skip(request, reason)
    d = tmp_path_factory.mktemp("slurm")
    with daemons.slurm(d / "state") as s:
        yield s


def site_config(d: Path, **slurm_settings) -> Path:
    """A site's Dask config directory (what ~/.config/dask would hold): small worker jobs
    that fit this machine, logs under ``d``."""
    import yaml

    conf = d / "site-dask"
    conf.mkdir(parents=True, exist_ok=True)
    settings = {"cores": 1, "processes": 1, "memory": "1GiB", "walltime": "00:20:00"}
    settings |= {"log-directory": str(d / "dask-logs")} | slurm_settings
    (conf / "jobqueue.yaml").write_text(yaml.safe_dump({"jobqueue": {"slurm": settings}}))
    return conf


def env_for(slurm, dask_config: Path | None = None, **extra: str) -> dict:
    """The user's environment: SLURM's config, the project's venv on PATH, the site config."""
    env = slurm["env"] | {"PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    env = {k: v for k, v in env.items() if not k.startswith("DASK_")}
    if dask_config:
        env["DASK_CONFIG"] = str(dask_config)
    return env | extra


def run_slurm(env: dict, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(RUN_SLURM), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )


def assert_no_jobs_left(slurm) -> None:
    deadline = time.monotonic() + 30
    while daemons.squeue(slurm["env"]) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert daemons.squeue(slurm["env"]) == [], "worker jobs were left in the queue"


def pipeline_args(inputs: Path, out: Path) -> list[str]:
    return [str(inputs), "--out", str(out), "--staff-file", str(inputs / "staff.txt"), "--quiet"]


@pytest.mark.slow
def test_run_slurm_jobqueue_matches_embedded(slurm, small_input, small_reference, tmp_path):
    env = env_for(slurm, site_config(tmp_path))
    out = tmp_path / "out"
    r = run_slurm(env, "--jobs", "2", "--min-workers", "2", "--", *pipeline_args(small_input, out))
    assert r.returncode == 0, r.stderr
    assert_same_tables(out, small_reference)
    cluster = run_json(out)["cluster"]
    assert cluster["workers"] == 2
    assert "ssh -J LOGIN-NODE -L 8787:localhost:8787" in r.stderr or "ssh -J" in r.stderr
    # the workers ran as SLURM jobs: each wrote its log where the site config said
    logs = sorted((tmp_path / "dask-logs").glob("*.err"))
    assert len(logs) >= 2 and all("Starting Worker" in x.read_text() for x in logs[:2])
    assert_no_jobs_left(slurm)


@pytest.mark.slow
def test_sbatch_run_driver_job_matches_embedded(slurm, small_input, small_reference, tmp_path):
    """The driver as a SLURM job (scheduler on the compute node), the project's checkout and
    environment named by the environment, not hard-coded."""
    env = env_for(
        slurm,
        site_config(tmp_path),
        DASK_PIPELINE_HOME=str(ROOT),
        DASK_PIPELINE_VENV=sys.prefix,
        DASK_JOBS="2",
        RUN_SLURM_ARGS="--min-workers 2",
    )
    out = tmp_path / "out"
    log = tmp_path / "driver.log"
    r = subprocess.run(
        ["sbatch", "--wait", "-o", str(log), str(SBATCH_RUN), *pipeline_args(small_input, out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert r.returncode == 0, f"{r.stderr}\n{log.read_text() if log.exists() else ''}"
    assert_same_tables(out, small_reference)
    assert run_json(out)["cluster"]["workers"] == 2
    assert "dashboard http://127.0.0.1:8787" in log.read_text()
    assert_no_jobs_left(slurm)


def _assert_fails_fast(r: subprocess.CompletedProcess, took: float, *needles: str) -> str:
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr, r.stderr
    assert lines and lines[-1].startswith(FAILED), r.stderr
    for n in needles:
        assert n in lines[-1], lines[-1]
    assert took < 60, f"took {took:.0f} s to fail"
    return lines[-1]


@pytest.mark.slow
def test_run_slurm_fails_fast_with_slurms_reason(slurm, small_input, tmp_path):
    """Refused shapes and partitions, and held jobs, end in seconds with SLURM's words, not
    after the --wait; nothing is committed and no job is left."""
    out = tmp_path / "out"
    args = ["--wait", "600", "--", *pipeline_args(small_input, out)]
    cpus = os.cpu_count() or 1
    # the shipped shape (4 cores, 16 GiB per job) on a smaller node; or more cores than it has
    shape = [] if cpus < 4 else ["--cores", str(cpus + 1), "--processes", str(cpus + 1)]
    cases = [
        (env_for(slurm), shape, ("SLURM refuses the worker job", "node configuration")),
        # the site's setting (an environment variable) wins over the shipped file...
        (
            env_for(slurm, site_config(tmp_path), DASK_JOBQUEUE__SLURM__QUEUE="nope"),
            [],
            ("partition nope", "nvalid partition"),
        ),
        # ...and a flag wins over the site
        (env_for(slurm, site_config(tmp_path)), ["--queue", "nope2"], ("nope2",)),
        # a job SLURM accepts but holds: pending with a reason waiting will not lift
        (
            env_for(slurm, site_config(tmp_path / "held", **{"job-extra-directives": ["-H"]})),
            [],
            ("pending, Reason=JobHeldUser",),
        ),
    ]
    for env, flags, needles in cases:
        t0 = time.monotonic()
        r = run_slurm(env, *flags, *args)
        _assert_fails_fast(r, time.monotonic() - t0, *needles)
        assert not out.exists()
        assert_no_jobs_left(slurm)
