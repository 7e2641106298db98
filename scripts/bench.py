#!/usr/bin/env python3
"""Benchmark the job, and optionally its peers, on a generated dataset.

    python scripts/bench.py --lines 1000000 --workers 2
    python scripts/bench.py --lines 5000000 --workers 2 --peers ../shared/bench \\
        --peer-python /tmp/peervenv/bin/python --repeat 2

Generates (once, cached under --data) a dataset of about N lines with the project's own
generator, runs `dask-pipeline run` on an embedded LocalCluster of W single-threaded workers,
and prints lines/s, wall time, time per step (task seconds summed over workers), peak memory
per worker and of the client, and the machine. With --peers it also runs the peer
implementations in that folder (DuckDB, Polars, the seed baseline) on the same files,
alternating with the job, and prints each ratio. Results also go to --json.
Numbers are for reading, never asserted: machines are noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PEERS = {
    "duckdb": ["duckdb_peer.py"],
    "polars": ["polars_peer.py"],
    "seed": ["seed_oracle.py", "--impl", "seed"],
}


def machine() -> dict:
    mem = None
    try:
        with open("/proc/meminfo") as f:
            mem = int(f.readline().split()[1]) // 1024
    except OSError:
        pass
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "cores": os.cpu_count(),
        "memory_mib": mem,
        "cpu": cpu,
        "python": sys.version.split()[0],
    }


def dataset(lines: int, seed: int, root: Path, days: int = 7) -> tuple[Path, int]:
    """The cached dataset directory of about ``lines`` lines over ``days`` daily files, and
    its exact line count."""
    d = root / (f"lines{lines}-seed{seed}" + (f"-days{days}" if days != 7 else ""))
    meta = d / "dataset.json"
    if meta.exists():
        return d, json.loads(meta.read_text())["lines"]
    sys.path.insert(0, str(ROOT))
    from dask_pipeline.generate import generate

    if d.exists():
        shutil.rmtree(d)
    users = max(200, lines // 300)
    print(f"generating about {lines:,} lines into {d} ...", file=sys.stderr)
    t = time.perf_counter()
    res = generate(d, users=users, courses=8, days=days, seed=seed, lines=lines)
    print(f"  {res.lines:,} lines in {time.perf_counter() - t:.1f} s", file=sys.stderr)
    meta.write_text(json.dumps({"lines": res.lines, "files": [p.name for p in res.files]}))
    return d, res.lines


def _time_v(cmd: list[str], env: dict | None = None) -> tuple[float, float | None, str]:
    """Run a command; (wall seconds, peak RSS MiB of the process tree's largest, output)."""
    tv = shutil.which("time") or ("/usr/bin/time" if os.path.exists("/usr/bin/time") else None)
    with tempfile.NamedTemporaryFile("r", suffix=".time") as tf:
        full = [tv, "-v", "-o", tf.name, *cmd] if tv else cmd
        t = time.perf_counter()
        p = subprocess.run(full, capture_output=True, text=True, env=env)
        wall = time.perf_counter() - t
        rss = None
        if tv:
            m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", tf.read())
            rss = int(m.group(1)) / 1024 if m else None
    if p.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed ({p.returncode}):\n{p.stderr[-2000:]}")
    return wall, rss, p.stdout + p.stderr


def run_job(data: Path, out: Path, workers: int, rules: str) -> dict:
    if out.exists():
        shutil.rmtree(out)
    cmd = [
        sys.executable, "-m", "dask_pipeline", "run", str(data),
        "--staff-file", str(data / "staff.txt"), "--out", str(out),
        "--workers", str(workers), "--threads-per-worker", "1",
        "--rules", rules, "--quiet", "--dashboard-address", "127.0.0.1:0",
    ]  # fmt: skip
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    wall, _, _ = _time_v(cmd, env)
    run = json.loads((out / "_run.json").read_text())
    return {
        "wall_s": round(wall, 2),
        "job_s": run["timings"]["total"],
        "steps_wall_s": run["timings"],
        "task_seconds": run["task_seconds"],
        "worker_peak_rss_mib": run["cluster"]["worker_peak_rss_mib"],
        "client_peak_rss_mib": run["cluster"]["client_peak_rss_mib"],
        "segments": run["counts"].get("segments"),
    }


def run_peer(name: str, peers: Path, python: str, data: Path, out: Path) -> dict:
    if out.exists():
        shutil.rmtree(out)
    script, *extra = PEERS[name]
    cmd = [python, str(peers / script), str(data), "--staff-file", str(data / "staff.txt"),
           "--out", str(out), *extra]  # fmt: skip
    wall, rss, _ = _time_v(cmd)
    return {"wall_s": round(wall, 2), "peak_rss_mib": rss}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--lines", type=int, default=1_000_000, help="dataset size (default 1M)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument(
        "--days", type=int, default=7, help="daily files the lines are spread over (default 7)"
    )
    p.add_argument("--workers", type=int, default=2, help="LocalCluster workers (1 thread each)")
    p.add_argument("--rules", default="seed", choices=("seed", "insights"))
    p.add_argument("--repeat", type=int, default=1, help="runs of each, alternating; median kept")
    p.add_argument("--data", type=Path, default=ROOT / "bench-data", help="dataset cache")
    p.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "dp-bench")
    p.add_argument("--peers", type=Path, help="folder of the peer implementations")
    p.add_argument("--peer-python", default=os.environ.get("PEER_PYTHON", sys.executable))
    p.add_argument("--only", nargs="*", default=None, help="peers to run (default: all)")
    p.add_argument("--json", type=Path, default=ROOT / "bench-results" / "bench.json")
    a = p.parse_args(argv)

    data, n = dataset(a.lines, a.seed, a.data, a.days)
    a.work.mkdir(parents=True, exist_ok=True)
    names = ["job"]
    if a.peers:
        names += [x for x in PEERS if a.only is None or x in a.only]
    results: dict[str, list[dict]] = {k: [] for k in names}
    for r in range(a.repeat):
        for name in names:
            if name == "seed" and r > 0:
                continue  # the baseline is slow: once is enough
            print(f"run {r + 1}/{a.repeat}: {name} ...", file=sys.stderr)
            out = a.work / name
            if name == "job":
                res = run_job(data, out, a.workers, a.rules)
            else:
                res = run_peer(name, a.peers, a.peer_python, data, out)
            res["lines_per_s"] = round(n / res["wall_s"])
            results[name].append(res)
            print(f"  {res['wall_s']:.2f} s, {res['lines_per_s']:,} lines/s", file=sys.stderr)

    def median(rs: list[dict]) -> dict:
        return sorted(rs, key=lambda x: x["wall_s"])[len(rs) // 2]

    best = {k: median(v) for k, v in results.items() if v}
    job = best["job"]
    report = {
        "machine": machine(),
        "dataset": {"path": str(data), "lines": n, "days": a.days},
        "workers": a.workers,
        "rules": a.rules,
        "repeat": a.repeat,
        "results": best,
        "all_runs": results,
        "ratios": {
            k: round(job["lines_per_s"] / v["lines_per_s"], 2)
            for k, v in best.items()
            if k != "job"
        },
    }
    a.json.parent.mkdir(parents=True, exist_ok=True)
    a.json.write_text(json.dumps(report, indent=1))

    m = report["machine"]
    print(f"\nmachine: {m['cores']} cores, {m['memory_mib']} MiB, {m['cpu']}; python {m['python']}")
    print(
        f"dataset: {n:,} lines ({data}); job on {a.workers} worker(s) x 1 thread, rules {a.rules}"
    )
    print(f"\n{'impl':<8} {'wall s':>8} {'lines/s':>10} {'peak MiB':>10} {'job/peer':>9}")
    for k, v in best.items():
        peak = v.get("peak_rss_mib")
        if k == "job":
            peak = max(v["worker_peak_rss_mib"].values(), default=None)
        ratio = "" if k == "job" else f"{report['ratios'][k]:.2f}x"
        ps = f"{peak:.0f}" if peak else "-"
        print(f"{k:<8} {v['wall_s']:>8.2f} {v['lines_per_s']:>10,} {ps:>10} {ratio:>9}")
    print("\njob steps (wall s):", job["steps_wall_s"])
    print("job task seconds (summed over workers):", job["task_seconds"])
    print(
        "job peak RSS per worker (MiB):",
        job["worker_peak_rss_mib"],
        "client:",
        job["client_peak_rss_mib"],
    )
    print(f"results: {a.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
