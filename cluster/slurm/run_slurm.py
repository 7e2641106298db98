#!/usr/bin/env python3
"""Run ``dask-pipeline run`` on SLURM with dask-jobqueue.

Run it where jobs can be submitted (a login node, or inside a small ``sbatch`` allocation for
long backfills), from the shared environment with ``dask-jobqueue`` installed::

    pip install dask-jobqueue
    python cluster/slurm/run_slurm.py --jobs 8 -- /shared/tracking/ --out /shared/tables \\
        --staff-file /shared/staff.txt --since 2026-01-05 --until 2026-01-11

It starts a Dask scheduler in this process, submits ``--jobs`` SLURM jobs of workers (shape
from ``jobqueue.yaml`` next to this file), waits for ``--min-workers`` of them, then runs
``dask-pipeline run ARGS --scheduler ADDRESS`` and cancels the jobs when it ends. The exit
status is the pipeline's (0 committed, 1 nothing committed, 2 usage error).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
CONFIG = HERE / "jobqueue.yaml"


def pipeline_command(scheduler_address: str, run_args: list[str]) -> list[str]:
    """The ``dask-pipeline run`` command line against ``scheduler_address``."""
    exe = shutil.which("dask-pipeline") or "dask-pipeline"
    return [exe, "run", *run_args, "--scheduler", scheduler_address]


def load_config(path: Path = CONFIG) -> dict:
    """This directory's ``jobqueue.yaml`` as a dict (``{"jobqueue": {"slurm": {...}}}``)."""
    import yaml

    return yaml.safe_load(path.read_text())


def main(argv: list[str] | None = None) -> int:
    """Start the SLURM cluster, run the pipeline on it, stop the cluster; the run's status."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--jobs", type=int, default=4, help="SLURM jobs of workers (default 4)")
    p.add_argument("--min-workers", type=int, default=1, help="start once this many are up")
    p.add_argument("--wait", type=float, default=1800, help="seconds to wait for them")
    p.add_argument("run_args", nargs=argparse.REMAINDER, help="-- then `dask-pipeline run` args")
    a = p.parse_args(argv)
    run_args = a.run_args[1:] if a.run_args[:1] == ["--"] else a.run_args
    if not run_args:
        p.error("give the `dask-pipeline run` arguments after --")

    import dask
    from dask_jobqueue import SLURMCluster
    from distributed import Client

    # "new": this file wins over dask-jobqueue's built-in defaults (nulls for cores, memory)
    dask.config.update(dask.config.config, load_config(), priority="new")
    with SLURMCluster() as cluster, Client(cluster) as client:
        cluster.scale(jobs=a.jobs)
        print(f"scheduler {cluster.scheduler_address}; dashboard {client.dashboard_link}")
        print(cluster.job_script(), file=sys.stderr)
        client.wait_for_workers(a.min_workers, timeout=a.wait)
        return subprocess.call(pipeline_command(cluster.scheduler_address, run_args))


if __name__ == "__main__":
    sys.exit(main())
