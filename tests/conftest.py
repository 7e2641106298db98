"""Shared fixtures: a real Dask LocalCluster (worker processes) and tracking-line builders."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def dask_client():
    """A LocalCluster of two single-threaded worker processes, shared by the session."""
    from distributed import Client, LocalCluster

    cluster = LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        dashboard_address="127.0.0.1:0",
        host="127.0.0.1",
        silence_logs=40,
    )
    client = Client(cluster)
    yield client
    client.close()
    cluster.close()


def run_job(client, inputs, out, **kw):
    """``pipeline.run`` on ``client`` with a RunConfig of these inputs and options."""
    from dask_pipeline import pipeline
    from dask_pipeline.config import ClusterOptions, RunConfig

    cfg = RunConfig(
        inputs=tuple(str(i) for i in inputs),
        out=Path(out),
        cluster=ClusterOptions(),
        progress=False,
        **kw,
    )
    return pipeline.run(cfg, client)


def video_line(
    user: str,
    course: str,
    event_type: str,
    time: str,
    payload: dict,
    *,
    as_string: bool = True,
    name: str | None = None,
) -> str:
    """One tracking-log line for a video event, browser style (payload as a JSON string) or
    mobile style (payload as an object)."""
    d = {
        "username": user,
        "event_source": "browser" if as_string else "mobile",
        "event_type": event_type,
        "time": time,
        "event": json.dumps(payload) if as_string else payload,
        "context": {"course_id": course, "user_id": 7, "org_id": "O", "path": "/event"},
        "agent": "pytest",
    }
    if name:
        d["name"] = name
    return json.dumps(d)


def other_line(user: str, course: str, event_type: str, time: str) -> str:
    return json.dumps(
        {
            "username": user,
            "event_type": event_type,
            "time": time,
            "event": {"GET": {}, "POST": {}},
            "context": {"course_id": course, "user_id": 8},
        }
    )


@pytest.fixture(scope="session")
def small_input(tmp_path_factory) -> Path:
    """A small generated input, shared by the cluster, SLURM, SSH and fault tests."""
    from tests.test_cluster import generate

    d = tmp_path_factory.mktemp("small")
    return generate(d, "--users", "40", "--courses", "2", "--days", "2", "--seed", "4")


@pytest.fixture(scope="session")
def small_reference(small_input, tmp_path_factory) -> Path:
    """The small input through the embedded LocalCluster: what every cluster must match."""
    from tests.test_cluster import run_job

    out = tmp_path_factory.mktemp("small-ref") / "out"
    r = run_job(small_input, out, "--workers", "2", "--dashboard-address", "127.0.0.1:0")
    assert r.returncode == 0, r.stderr
    return out
