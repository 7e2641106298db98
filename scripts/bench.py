#!/usr/bin/env python3
"""Benchmark the job, its peers and the floor on one generated dataset, in one run.

    python scripts/bench.py --lines 1000000 --workers 2
    python scripts/bench.py --lines 5000000 --peers ../shared/bench \\
        --peer-python /tmp/peervenv/bin/python --chdb-python /tmp/chdbvenv/bin/python
    python scripts/bench.py --lines 5000000 --video-share 0.05 --peers ../shared/bench ...

Datasets (made once, cached under --data) come from the project's own generator: by default
its natural mix (about 35% video events, JSON written like ``json.dumps``: ", " and ": "
separators). ``--video-share S`` makes a real-mix set instead: a generated base of about
N*S/0.35 lines, every line of it kept, with the base's own non-video lines repeated between
them until video events are a share S of the lines (real logs: 2.5-5%); the segments are the
base's. ``--compact`` rewrites every line with "," and ":" separators. ``--gzip-level``
recompresses (edx-platform's logrotate writes gzip -6; the generator writes level 1).

The job runs as ``dask-pipeline run`` on an embedded LocalCluster of W single-threaded
workers; the peers (DuckDB, Polars, chDB, the seed baseline) in their own venvs on the same
files, alternating with the job; the floor is ISA-L inflate plus a line split of the same
files on all cores. Printed: wall time, lines/s, peak memory, every ratio, the job's time per
step. ``--cpu-per-line`` also measures read+decode CPU per line of the first file standalone
and inside a Dask worker; ``--min-events N`` runs the job once more with that floor (its cost
given separately). Results also go to --json. Numbers are for reading, never asserted.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zlib
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PEERS = {
    "chdb": ["chdb_peer.py"],
    "polars": ["polars_peer.py"],
    "duckdb": ["duckdb_peer.py"],
    "seed": ["seed_oracle.py", "--impl", "seed"],
}
NATURAL_SHARE = 0.35  # video events among the generator's lines


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


# ------------------------------------------------------------------ datasets
def generated(lines: int, seed: int, root: Path, days: int = 7) -> tuple[Path, int]:
    """The cached generator output of about ``lines`` lines over ``days`` daily files, and
    its exact line count."""
    d = root / (f"lines{lines}-seed{seed}" + (f"-days{days}" if days != 7 else ""))
    meta = d / "dataset.json"
    if meta.exists():
        return d, json.loads(meta.read_text())["lines"]
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


def _is_video(line: bytes) -> bool:
    from dask_pipeline import vocabulary

    d = json.loads(line)
    et = vocabulary.legacy_name(d.get("event_type"), d.get("name"))
    return et in vocabulary.VIDEO_EVENTS


def _remix(job: tuple[str, str, float | None, bool, int]) -> tuple[int, int]:
    """One file of a derived dataset: (lines, video lines) written."""
    src, dst, share, compact, level = job
    with gzip.open(src, "rb") as f:
        lines = f.read().splitlines()
    video = [_is_video(x) for x in lines]
    n_video = sum(video)
    out = lines
    if share is not None:
        others = [x for x, v in zip(lines, video, strict=True) if not v]
        extra = max(0, round(n_video / share) - len(lines))
        out, k = [], len(others) // 2  # repeats start half a file away from their originals
        for i, x in enumerate(lines):
            out.append(x)
            for _ in range((i + 1) * extra // len(lines) - i * extra // len(lines)):
                out.append(others[k % len(others)])
                k += 1
    if compact:
        out = [json.dumps(json.loads(x), separators=(",", ":")).encode() for x in out]
    comp = zlib.compressobj(level, zlib.DEFLATED, 31)
    with open(dst, "wb") as f:
        for i in range(0, len(out), 10_000):
            f.write(comp.compress(b"".join(x + b"\n" for x in out[i : i + 10_000])))
        f.write(comp.flush())
    return len(out), n_video


def dataset(a: argparse.Namespace) -> tuple[Path, int, dict]:
    """The dataset the options describe (cached), its line count and its description."""
    share, compact, level = a.video_share, a.compact, a.gzip_level
    if share is None and not compact and level is None:
        d, n = generated(a.lines, a.seed, a.data, a.days)
        return d, n, {"video_share": "natural", "json": "spaced", "gzip_level": 1}
    level = 6 if level is None else level
    base_lines = a.lines if share is None else max(1000, round(a.lines * share / NATURAL_SHARE))
    base, _ = generated(base_lines, a.seed, a.data, a.days)
    name = f"{base.name}-share{share or 'natural'}-{'compact' if compact else 'spaced'}-gz{level}"
    d = a.data / name
    desc = {"video_share": share or "natural", "json": "compact" if compact else "spaced"}
    desc["gzip_level"] = level
    meta = d / "dataset.json"
    if meta.exists():
        m = json.loads(meta.read_text())
        return d, m["lines"], m["desc"]
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    shutil.copy(base / "staff.txt", d / "staff.txt")
    files = sorted(base.glob("tracking.log-*.gz"))
    print(f"deriving {d.name} from {base.name} ...", file=sys.stderr)
    jobs = [(str(f), str(d / f.name), share, compact, level) for f in files]
    with ProcessPoolExecutor(os.cpu_count()) as pool:
        got = list(pool.map(_remix, jobs))
    n = sum(x[0] for x in got)
    desc["measured_video_share"] = round(sum(x[1] for x in got) / n, 4)
    meta.write_text(json.dumps({"lines": n, "desc": desc, "base": base.name}))
    return d, n, desc


# ------------------------------------------------------------------ runs
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


def _segments(out: Path) -> int | None:
    """Rows of the segments table a run wrote (a Parquet dataset or file)."""
    import pyarrow.dataset as ds

    for seg in (out / "segments", out / "segments.parquet"):
        if seg.exists():
            return ds.dataset(str(seg), format="parquet").count_rows()
    return None


def run_job(data: Path, out: Path, workers: int, rules: str, min_events: int | None) -> dict:
    if out.exists():
        shutil.rmtree(out)
    cmd = [
        sys.executable, "-m", "dask_pipeline", "run", str(data),
        "--staff-file", str(data / "staff.txt"), "--out", str(out),
        "--workers", str(workers), "--threads-per-worker", "1",
        "--rules", rules, "--quiet", "--dashboard-address", "127.0.0.1:0",
    ]  # fmt: skip
    if min_events is not None:
        cmd += ["--min-events", str(min_events)]
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


def run_peer(name: str, a: argparse.Namespace, data: Path, out: Path) -> dict:
    if out.exists():
        shutil.rmtree(out)
    script, *extra = PEERS[name]
    python = a.chdb_python if name == "chdb" else a.peer_python
    cmd = [python, str(a.peers / script), str(data), "--staff-file", str(data / "staff.txt"),
           "--out", str(out), *extra]  # fmt: skip
    wall, rss, _ = _time_v(cmd)
    return {"wall_s": round(wall, 2), "peak_rss_mib": rss, "segments": _segments(out)}


def _inflate_split(path: str) -> int:
    """ISA-L inflate of one file, split into lines block by block; its line count."""
    from isal import isal_zlib

    dec = isal_zlib.decompressobj(wbits=31)
    lines, rest = 0, b""
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            while chunk:
                text = rest + dec.decompress(chunk)
                parts = text.split(b"\n")
                rest = parts.pop()
                lines += len(parts)
                chunk = b""
                if dec.eof:
                    chunk, dec = dec.unused_data, isal_zlib.decompressobj(wbits=31)
    return lines + (1 if rest else 0)


def run_floor(data: Path) -> dict:
    """ISA-L inflate + line split of the dataset's files on every core."""
    files = [str(p) for p in sorted(data.glob("tracking.log*"))]
    t = time.perf_counter()
    with ProcessPoolExecutor(os.cpu_count()) as pool:
        n = sum(pool.map(_inflate_split, files))
    return {"wall_s": round(time.perf_counter() - t, 2), "lines": n, "peak_rss_mib": None}


def _read_decode_cpu(path: str) -> dict:
    """CPU per line of reading and decoding one file, in this thread (and this process)."""
    import resource

    from dask_pipeline import decode, read

    r0 = resource.getrusage(resource.RUSAGE_SELF)
    t, tp = time.thread_time(), time.process_time()
    dec = decode.PartDecoder(path, 0, 1, decode.Window(), False)
    for block in read.iter_blocks(read.Part(0, path)):
        dec.feed(block)
    d = dec.finish()
    # this thread's CPU: a worker's process time also holds its event loop and profiler
    cpu, proc = time.thread_time() - t, time.process_time() - tp
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "us_per_line": round(cpu / d.lines * 1e6, 2),
        "process_us_per_line": round(proc / d.lines * 1e6, 2),
        "lines": d.lines,
        "minor_faults": r1.ru_minflt - r0.ru_minflt,
        "malloc_trim_threshold": os.environ.get("MALLOC_TRIM_THRESHOLD_"),
    }


def cpu_per_line(data: Path, repeat: int = 2) -> dict:
    """Read+decode CPU per line of the first file: standalone (a fresh process) and inside
    a Dask worker of a LocalCluster (nanny environment and all); the best of ``repeat``."""
    from distributed import Client, LocalCluster

    path = str(sorted(data.glob("tracking.log*"))[0])
    code = f"import sys, json; sys.path.insert(0, {str(ROOT)!r}); sys.path.insert(0, "
    code += f"{str(ROOT / 'scripts')!r}); import bench; "
    code += f"print(json.dumps(bench._read_decode_cpu({path!r})))"
    alone = []
    for _ in range(repeat):
        p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        alone.append(json.loads(p.stdout.strip().splitlines()[-1]))
    with (
        LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        worker = [client.submit(_read_decode_cpu, path, pure=False).result() for _ in range(repeat)]
    best = lambda rs: min(rs, key=lambda r: r["us_per_line"])  # noqa: E731
    a, w = best(alone), best(worker)
    return {"file": path, "standalone": a, "in_worker": w,
            "worker_over_standalone": round(w["us_per_line"] / a["us_per_line"], 2)}  # fmt: skip


# ------------------------------------------------------------------ report
def _print(report: dict) -> None:
    m = report["machine"]
    ds, best = report["dataset"], report["results"]
    print(f"\nmachine: {m['cores']} cores, {m['memory_mib']} MiB, {m['cpu']}; python {m['python']}")
    print(f"dataset: {ds['lines']:,} lines ({ds['path']}), {ds['desc']}")
    print(f"job on {report['workers']} worker(s) x 1 thread, rules {report['rules']}")
    print(
        f"\n{'impl':<10} {'wall s':>8} {'lines/s':>11} {'peak MiB':>9} {'segments':>9} {'job x':>7}"
    )
    for k, v in best.items():
        peak = v.get("peak_rss_mib")
        if "worker_peak_rss_mib" in v:
            peak = max(v["worker_peak_rss_mib"].values(), default=None)
        ratio = f"{report['ratios'][k]:.2f}" if k in report["ratios"] else ""
        ps = f"{peak:.0f}" if peak else "-"
        seg = v.get("segments")
        seg = f"{seg:,}" if seg is not None else "-"
        print(f"{k:<10} {v['wall_s']:>8.2f} {v['lines_per_s']:>11,} {ps:>9} {seg:>9} {ratio:>7}")
    print("('job x': the job's lines/s over that row's; for the floor, the job's share of it)")
    job = best["job"]
    print("\njob steps (wall s):", job["steps_wall_s"])
    print("job task seconds (summed over workers):", job["task_seconds"])
    print("job peak RSS per worker (MiB):", job["worker_peak_rss_mib"])
    if "cpu_per_line" in report:
        c = report["cpu_per_line"]
        print(
            f"read+decode CPU: standalone {c['standalone']['us_per_line']} us/line, in a worker "
            f"{c['in_worker']['us_per_line']} us/line ({c['worker_over_standalone']}x)"
        )


def _args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--lines", type=int, default=1_000_000, help="dataset size (default 1M)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument(
        "--days", type=int, default=7, help="daily files the lines are spread over (default 7)"
    )
    p.add_argument("--video-share", type=float, help="real-mix set: share of video lines")
    p.add_argument("--compact", action="store_true", help="',' and ':' separators")
    p.add_argument("--gzip-level", type=int, help="recompress at this level (derived sets: 6)")
    p.add_argument("--workers", type=int, default=2, help="LocalCluster workers (1 thread each)")
    p.add_argument("--rules", default="seed", choices=("seed", "insights"))
    p.add_argument("--min-events", type=int, help="also run the job with --min-events N")
    p.add_argument("--repeat", type=int, default=1, help="runs of each, alternating; median kept")
    p.add_argument("--data", type=Path, default=ROOT / "bench-data", help="dataset cache")
    p.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "dp-bench")
    p.add_argument("--peers", type=Path, help="folder of the peer implementations")
    p.add_argument("--peer-python", default=os.environ.get("PEER_PYTHON", sys.executable))
    p.add_argument("--chdb-python", default=os.environ.get("CHDB_PYTHON"))
    p.add_argument("--only", nargs="*", default=None, help="peers to run (default: all)")
    p.add_argument("--no-floor", dest="floor", action="store_false")
    p.add_argument("--cpu-per-line", action="store_true", help="standalone vs in-worker CPU")
    p.add_argument("--json", type=Path, default=ROOT / "bench-results" / "bench.json")
    a = p.parse_args(argv)
    if a.video_share is not None and not 0 < a.video_share < NATURAL_SHARE:
        p.error(f"--video-share must be between 0 and {NATURAL_SHARE}")
    if a.gzip_level is not None and not 1 <= a.gzip_level <= 9:
        p.error("--gzip-level must be 1 to 9")
    if a.peers and not a.peers.is_dir():
        p.error(f"--peers: no such folder: {a.peers}")
    a.chdb_python = a.chdb_python or a.peer_python
    return a


def main(argv: list[str] | None = None) -> int:
    a = _args(argv)
    data, n, desc = dataset(a)
    a.work.mkdir(parents=True, exist_ok=True)
    names = ["job"] + (["floor"] if a.floor else [])
    if a.min_events is not None:
        names.append("job_min_events")
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
                res = run_job(data, out, a.workers, a.rules, None)
            elif name == "job_min_events":
                res = run_job(data, out, a.workers, a.rules, a.min_events)
            elif name == "floor":
                res = run_floor(data)
            else:
                res = run_peer(name, a, data, out)
            res["lines_per_s"] = round(n / res["wall_s"])
            results[name].append(res)
            print(f"  {res['wall_s']:.2f} s, {res['lines_per_s']:,} lines/s", file=sys.stderr)

    def median(rs: list[dict]) -> dict:
        return sorted(rs, key=lambda x: x["wall_s"])[len(rs) // 2]

    best = {k: median(v) for k, v in results.items() if v}
    job = best["job"]
    report = {
        "machine": machine(),
        "dataset": {"path": str(data), "lines": n, "days": a.days, "desc": desc},
        "workers": a.workers,
        "rules": a.rules,
        "repeat": a.repeat,
        "results": best,
        "all_runs": results,
        "ratios": {
            k: float(f"{job['lines_per_s'] / v['lines_per_s']:.3g}")
            for k, v in best.items()
            if k != "job"
        },
    }
    if a.cpu_per_line:
        report["cpu_per_line"] = cpu_per_line(data)
    a.json.parent.mkdir(parents=True, exist_ok=True)
    a.json.write_text(json.dumps(report, indent=1))
    _print(report)
    print(f"results: {a.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
