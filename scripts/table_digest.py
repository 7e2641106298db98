"""Print a content digest of every table of a ``dask-pipeline run`` output directory.

    python scripts/table_digest.py OUT [OUT ...]

One line per table: its name, rows and a SHA-256 over its columns (names, Arrow types) and
its rows sorted canonically (by every column), so two runs that wrote the same rows in other
files, other orders or with other Parquet metadata print the same digests. Also digests the
parts of ``_run.json`` that depend only on the data (lines, counts, inputs, window), not on
timings, run ids or the cluster. Used to check that a refactor changed no output.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

TABLES = (
    "segments",
    "videos",
    "views",
    "video_stats",
    "video_timeline",
    "video_daily",
    "rejects",
)
RUN_KEYS = ("lines", "counts", "window")


def _read(table_dir: Path) -> pa.Table | None:
    files = sorted(table_dir.rglob("*.parquet"))
    if not files:
        return None
    parts = []
    for f in files:
        t = pq.read_table(f).replace_schema_metadata(None)
        if f.parent.name.startswith("date="):  # Hive partition column kept in the path
            date = f.parent.name.split("=", 1)[1]
            t = t.append_column("date", pa.array([date] * len(t), pa.string()))
        parts.append(t)
    return pa.concat_tables(parts, promote_options="default")


def table_digest(table: pa.Table) -> str:
    """SHA-256 of the schema and of the rows sorted by every column."""
    table = table.select(sorted(table.column_names))
    keys = [(c, "ascending") for c in table.column_names]
    idx = pc.sort_indices(table, sort_keys=keys)
    table = table.take(idx).combine_chunks()
    h = hashlib.sha256()
    for field, col in zip(table.schema, table.columns, strict=True):
        h.update(f"{field.name}:{field.type}\n".encode())
        for value in col.to_pylist():
            h.update(repr(value).encode() + b"\x00")
    return h.hexdigest()


def run_digest(run_json: Path) -> str:
    data = json.loads(run_json.read_text())
    kept = {k: data.get(k) for k in RUN_KEYS}
    kept["inputs"] = [{k: v for k, v in f.items() if k != "path"} for f in data["inputs"]]
    return hashlib.sha256(json.dumps(kept, sort_keys=True).encode()).hexdigest()


def digests(out: Path) -> list[str]:
    lines = []
    for name in TABLES:
        t = _read(out / name)
        if t is None:
            lines.append(f"{name:15} {'-':>8} (no files)")
            continue
        lines.append(f"{name:15} {len(t):>8} {table_digest(t)}")
    run = out / "_run.json"
    if run.exists():
        lines.append(f"{'_run.json':15} {'':>8} {run_digest(run)}")
    return lines


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    for out in argv:
        print(f"# {out}")
        print("\n".join(digests(Path(out))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
