"""scripts/bench.py runs end to end on a tiny dataset (its numbers are never asserted)."""

from __future__ import annotations

import json
import subprocess
import sys

from .conftest import ROOT


def test_bench_script_runs_on_a_tiny_dataset(tmp_path):
    out = tmp_path / "bench.json"
    r = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "bench.py"),
            "--lines",
            "3000",
            "--workers",
            "1",
            "--data",
            str(tmp_path / "data"),
            "--work",
            str(tmp_path / "work"),
            "--json",
            str(out),
            "--video-share",
            "0.1",
            "--compact",
        ],  # fmt: skip
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    res = json.loads(out.read_text())
    job = res["results"]["job"]
    assert res["dataset"]["lines"] > 2000
    assert job["lines_per_s"] > 0 and job["segments"] > 0
    assert set(job["task_seconds"]) >= {"read_decode", "filter", "segments", "metrics"}
    assert job["worker_peak_rss_mib"] and job["client_peak_rss_mib"] > 0
    assert "lines/s" in r.stdout and "machine:" in r.stdout
    # the real-mix set: video lines thinned to the share asked, compact JSON, gzip -6
    desc = res["dataset"]["desc"]
    assert abs(desc["measured_video_share"] - 0.1) < 0.02 and desc["json"] == "compact"
    # the floor read the same files, line for line, and the job's share of it is reported
    assert res["results"]["floor"]["lines"] == res["dataset"]["lines"]
    assert 0 < res["ratios"]["floor"]
