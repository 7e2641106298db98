#!/usr/bin/env python3
"""Run ``dask-pipeline run`` on SLURM with dask-jobqueue.

Run it where jobs can be submitted (a login node, or inside a small ``sbatch`` allocation for
long backfills), from the shared environment with ``dask-jobqueue`` installed::

    pip install dask-jobqueue
    python cluster/slurm/run_slurm.py --jobs 8 -- /shared/tracking/ --out /shared/tables \\
        --staff-file /shared/staff.txt --since 2026-01-05 --until 2026-01-11

It starts a Dask scheduler in this process, checks the worker job with ``sbatch --test-only``,
submits ``--jobs`` SLURM jobs of workers, waits for ``--min-workers`` of them, then runs
``dask-pipeline run ARGS --scheduler ADDRESS`` and cancels the jobs when it ends. The exit
status is the pipeline's (0 committed, 1 nothing committed, 2 usage error); a worker job that
SLURM refuses, that cannot start or that ends before its workers connect is one line on stderr
with SLURM's reason, and exit 1.

Job settings, later ones winning: dask-jobqueue's defaults, ``jobqueue.yaml`` next to this file
(or ``--config``), the site's own Dask config (``~/.config/dask``, ``/etc/dask``,
``DASK_CONFIG``, ``DASK_JOBQUEUE__SLURM__*`` variables), then the flags below.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CONFIG = HERE / "jobqueue.yaml"
PROG = "run_slurm.py"
# Pending reasons SLURM will not get over by waiting: fail at once with them.
HOPELESS = (
    "PartitionConfig", "PartitionNodeLimit", "PartitionTimeLimit", "PartitionDown",
    "PartitionInactive", "BadConstraints", "InvalidAccount", "InvalidQOS", "AccountNotAllowed",
    "QOSNotAllowed", "JobHeldAdmin", "JobHeldUser", "DependencyNeverSatisfied",
    "ReqNodeNotAvail", "NodeDown",
)  # fmt: skip
FLAGS = ("queue", "account", "cores", "processes", "memory", "walltime")


class SlurmError(Exception):
    """The worker jobs cannot give a cluster; the message is SLURM's reason, one line."""


def pipeline_command(scheduler_address: str, run_args: list[str]) -> list[str]:
    """The ``dask-pipeline run`` command line against ``scheduler_address``."""
    exe = shutil.which("dask-pipeline") or "dask-pipeline"
    return [exe, "run", *run_args, "--scheduler", scheduler_address]


def load_config(path: Path = CONFIG) -> dict:
    """A jobqueue.yaml as a dict (``{"jobqueue": {"slurm": {...}}}``)."""
    import yaml

    return yaml.safe_load(Path(path).read_text())


def slurm_settings(path: Path, flags: dict) -> dict:
    """The ``jobqueue.slurm`` settings: defaults < ``path`` < the site's config < ``flags``."""
    import dask
    import dask_jobqueue  # noqa: F401  (registers dask-jobqueue's defaults)

    site = dask.config.collect()  # config files and DASK_* variables, no defaults
    layers = [
        dask.config.config.get("jobqueue", {}).get("slurm", {}),
        load_config(path).get("jobqueue", {}).get("slurm", {}),
        site.get("jobqueue", {}).get("slurm", {}),
        {k: v for k, v in flags.items() if v is not None},
    ]
    return dask.config.merge(*[{k.replace("_", "-"): v for k, v in x.items()} for x in layers])


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[0])
    p.add_argument("--jobs", type=int, default=4, help="SLURM jobs of workers (default 4)")
    p.add_argument("--min-workers", type=int, default=1, help="start once this many are up")
    p.add_argument("--wait", type=float, default=1800, help="seconds to wait for them")
    p.add_argument("--config", type=Path, default=CONFIG, help="jobqueue.yaml to start from")
    p.add_argument("--queue", help="partition (default: the site's, else SLURM's default)")
    p.add_argument("--account", help="account to charge (default: the site's)")
    p.add_argument("--cores", type=int, help="cores per worker job")
    p.add_argument("--processes", type=int, help="worker processes per job")
    p.add_argument("--memory", help="memory per worker job, e.g. 16GiB")
    p.add_argument("--walltime", help="time limit per worker job, e.g. 04:00:00")
    p.add_argument("--show-job-script", action="store_true", help="print the worker job script")
    p.add_argument("run_args", nargs=argparse.REMAINDER, help="-- then `dask-pipeline run` args")
    return p


def main(argv: list[str] | None = None) -> int:
    """Start the SLURM cluster, run the pipeline on it, stop the cluster; the run's status."""
    p = _parser()
    a = p.parse_args(argv)
    run_args = a.run_args[1:] if a.run_args[:1] == ["--"] else a.run_args
    if not run_args:
        p.error("give the `dask-pipeline run` arguments after --")
    if a.jobs < 1 or not 1 <= a.min_workers:
        p.error("--jobs and --min-workers must be at least 1")
    if not a.config.is_file():
        p.error(f"--config: no such file: {a.config}")
    try:
        return _run(a, run_args)
    except SlurmError as e:
        print(f"{PROG}: failed, nothing committed: {e}", file=sys.stderr)
        return 1


def _run(a: argparse.Namespace, run_args: list[str]) -> int:
    import dask

    settings = slurm_settings(a.config, {k: getattr(a, k) for k in FLAGS})
    with dask.config.set({"jobqueue.slurm": settings}):
        from dask_jobqueue import SLURMCluster
        from distributed import Client

        with SLURMCluster() as cluster, Client(cluster) as client:
            script = cluster.job_script()
            if a.show_job_script:
                print(script, file=sys.stderr)
            check_job_script(script, settings)
            cluster.scale(jobs=a.jobs)
            wait_for_workers(cluster, client, a.min_workers, a.wait)
            print(dashboard_note(client, settings), file=sys.stderr)
            return subprocess.call(pipeline_command(cluster.scheduler_address, run_args))


def dashboard_note(client, settings: dict) -> str:
    """Where the dashboard listens and how to reach it from a laptop: it is on the loopback
    of the node running this script, which is a compute node under sbatch_run.sh."""
    port = client.scheduler_info()["services"].get("dashboard")
    if port is None:
        return "no dashboard"
    bind = str((settings.get("scheduler-options") or {}).get("dashboard_address") or "")
    host = bind.rsplit(":", 1)[0] if ":" in bind else ""
    node = socket.gethostname()
    return (
        f"dashboard http://{host or node}:{port}/status on {node}; from your machine: "
        f"ssh -J LOGIN-NODE -L {port}:localhost:{port} {node}"
    )


def check_job_script(script: str, settings: dict) -> None:
    """``sbatch --test-only`` the worker job: SLURM's refusal (no such partition, a shape no
    node has) is raised at once instead of after the wait."""
    with tempfile.NamedTemporaryFile("w", suffix=".sh", delete=False) as f:
        f.write(script)
    try:
        r = subprocess.run(
            ["sbatch", "--test-only", f.name], capture_output=True, text=True, timeout=60
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise SlurmError(f"sbatch --test-only: {e}") from None
    finally:
        Path(f.name).unlink(missing_ok=True)
    if r.returncode:
        shape = (
            f"{settings.get('cores')} cores, {settings.get('memory')}, "
            f"partition {settings.get('queue') or '(default)'}"
        )
        raise SlurmError(f"SLURM refuses the worker job ({shape}): {_last_line(r.stderr)}")


def _last_line(text: str) -> str:
    lines = [x.strip() for x in text.splitlines() if x.strip()]
    return lines[-1] if lines else "(no message)"


def job_states(job_ids: list[str]) -> dict[str, tuple[str, str, str]]:
    """{job id: (state, reason, stderr file)} from ``scontrol show job`` (it knows ended
    jobs too)."""
    out = {}
    for jid in job_ids:
        r = subprocess.run(
            ["scontrol", "show", "job", "-o", jid], capture_output=True, text=True, timeout=60
        )
        fields = dict(w.split("=", 1) for w in r.stdout.split() if "=" in w)
        if r.returncode == 0 and "JobState" in fields:
            reason = fields.get("Reason", "None")
            out[jid] = (fields["JobState"], reason, fields.get("StdErr", ""))
    return out


def wait_for_workers(cluster, client, n: int, timeout: float) -> None:
    """Until ``n`` workers are connected; SlurmError with SLURM's reason when the jobs are
    refused, held for a reason that waiting does not lift, end early, or stay pending."""
    deadline = time.monotonic() + timeout
    submitted_by = time.monotonic() + 60
    states: dict = {}
    while len(client.scheduler_info(n_workers=-1)["workers"]) < n:
        ids = [j.job_id for j in cluster.workers.values() if getattr(j, "job_id", None)]
        if not ids and time.monotonic() > submitted_by:
            raise SlurmError("no worker job was submitted in 60 s (see sbatch's error above)")
        states = job_states(ids)
        for jid, (state, reason, _) in states.items():
            if state == "PENDING" and reason.split(",")[0] in HOPELESS:
                raise SlurmError(f"worker job {jid} cannot start: pending, Reason={reason}")
        ended = [(j, s) for j, s in states.items() if s[0] not in ("PENDING", "RUNNING")]
        if ids and len(ended) == len(ids):
            jid, (state, reason, err) = ended[0]
            raise SlurmError(
                f"every worker job ended before its workers connected: job {jid} {state} "
                f"(Reason={reason}); see {err or 'its log'}"
            )
        if time.monotonic() > deadline:
            seen = "; ".join(f"job {j} {s[0]} Reason={s[1]}" for j, s in states.items())
            raise SlurmError(f"fewer than {n} workers after {timeout:.0f} s: {seen or 'no job'}")
        time.sleep(1)


if __name__ == "__main__":
    sys.exit(main())
