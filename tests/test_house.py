"""The house rules that can be checked by reading the package (no import circle, short
functions, pure modules free of Dask, demo data off the runtime path), and the pure pieces the
pipeline composes: the ledger's line accounting, the local date of a time, pseudonymization."""

from __future__ import annotations

import ast
import datetime as dt
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dask_pipeline import ledger, privacy, read, schema, window
from dask_pipeline.config import RunConfig

PACKAGE = Path(__file__).resolve().parent.parent / "dask_pipeline"
#: Modules that must import neither Dask nor distributed (ARCHITECTURE "Rules of the house").
PURE = (
    "schema",
    "vocabulary",
    "decode",
    "read",
    "filters",
    "segments",
    "metrics",
    "store",
    "ingest",
    "ledger",
    "privacy",
    "window",
    "stages",
    "config",
    "errors",
)


def _imports(path: Path) -> set[str]:
    """The package modules ``path`` imports, at the top or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                found.add(node.module.split(".")[0])
            else:
                found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("dask_pipeline."):
            found.add(node.module.split(".")[1])
    return {m for m in found if (PACKAGE / f"{m}.py").exists()}


def test_no_import_circle():
    graph = {p.stem: _imports(p) for p in PACKAGE.glob("*.py")}

    def reach(start: str) -> set[str]:
        seen, todo = set(), list(graph[start])
        while todo:
            m = todo.pop()
            if m not in seen:
                seen.add(m)
                todo.extend(graph.get(m, ()))
        return seen

    circles = sorted(m for m in graph if m in reach(m))
    assert circles == []


def test_no_function_over_80_lines():
    long = []
    for p in sorted(PACKAGE.glob("*.py")):
        if p.name == "report.py":  # split by its own issue
            continue
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                n = node.end_lineno - node.lineno + 1
                if n > 80:
                    long.append(f"{p.name}:{node.lineno} {node.name} ({n} lines)")
    assert long == []


def test_pure_modules_and_runtime_path():
    code = (
        "import sys\n"
        + "".join(f"import dask_pipeline.{m}\n" for m in PURE)
        + "heavy = sorted({'dask', 'distributed'} & set(sys.modules))\n"
        + "import dask_pipeline.cli, dask_pipeline.pipeline\n"
        + "print(heavy, 'dask_pipeline.generate' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["[]", "False"]


# ------------------------------------------------------------------ ledger
def _stat(part: int, file: int, start: int, first_line: int, lines: int, **kw) -> dict:
    base = {"accepted": lines, "skipped": 0, "rejected": {}, "error": None}
    base.update(kw)
    return {
        "part": part,
        "file": file,
        "start": start,
        "first_line": first_line,
        "lines": lines,
        **base,
    }


def test_byte_range_rejects_get_their_file_line_numbers():
    parts = [
        read.Part(0, "a.log", 0, 100),
        read.Part(0, "a.log", 100, 200),
        read.Part(0, "a.log", 200, 300),
        read.Part(1, "b.log", 0, None),
    ]
    origins = ledger.first_lines(parts)
    assert origins == [1, 101, 201, 1]
    # stats come back in any order; the ranges hold 7, 5 and 9 lines
    stats = [
        _stat(2, 0, 200, 201, 9),
        _stat(0, 0, 0, 1, 7),
        _stat(3, 1, 0, 1, 4),
        _stat(1, 0, 100, 101, 5),
    ]
    offsets = ledger.line_offsets(stats)
    rejects = pd.DataFrame({"line": [3, 101, 205, 2], "part": [0, 1, 2, 3]})
    lines = ledger.renumber_rejects(rejects, offsets)["line"].tolist()
    # 3rd line of range 0; 1st of range 1 (after 7); 5th of range 2 (after 7 + 5); file b
    assert lines == [3, 8, 17, 2]


def test_inputs_summary_balances_and_reports_errors():
    stats = [
        _stat(0, 0, 0, 1, 10, accepted=6, skipped=2, rejected={"not_json": 2}),
        _stat(1, 0, 50, 51, 5, accepted=5),
        _stat(2, 1, 0, 1, 0, accepted=0, error={"kind": "bad_gzip", "detail": "CRC"}),
    ]
    inputs = ledger.inputs_summary(["a", "b"], [123, None], stats)
    a, b = inputs
    assert (a["lines"], a["accepted"], a["skipped"], a["rejected_total"]) == (15, 11, 2, 2)
    assert a["balanced"] and a["size"] == 123 and a["errors"] == []
    assert b["errors"] == [{"kind": "bad_gzip", "detail": "CRC"}]
    assert ledger.unreadable(inputs) is None
    assert ledger.input_warnings(inputs) == ["b: bad_gzip (CRC)"]
    assert ledger.unreadable([b]) == "no input could be read: b: bad_gzip"


def test_replaced_dates_window_or_span_of_events():
    paris = RunConfig(inputs=(), out=Path("o"), tz="Europe/Paris")
    # 2026-01-05 23:30 UTC is already the 6th in Paris; 2026-01-07 22:59 UTC still the 7th
    lo = int(pd.Timestamp("2026-01-05T23:30Z").value // 1000)
    hi = int(pd.Timestamp("2026-01-07T22:59Z").value // 1000)
    stats = [{"min_time": lo, "max_time": lo}, {"min_time": None, "max_time": None}]
    stats.append({"min_time": hi, "max_time": hi})
    assert ledger.replaced_dates(paris, stats) == ["2026-01-06", "2026-01-07"]
    assert ledger.replaced_dates(paris, stats[1:2]) == []
    windowed = RunConfig(
        inputs=(), out=Path("o"), since=dt.date(2026, 3, 30), until=dt.date(2026, 4, 1)
    )
    assert ledger.replaced_dates(windowed, []) == ["2026-03-30", "2026-03-31", "2026-04-01"]
    assert ledger.kept_dates(["2026-03-29", "2026-03-31"], ["2026-03-31"]) == ["2026-03-29"]


def test_run_summary_counts_replace_and_sum():
    cfg = RunConfig(inputs=("x",), out=Path("o"))
    results = {
        "read": [{"counts": {"a": 1}, "seconds": {"read": 0.5}}],
        "users": [{"counts": {"a": 2, "rejected_lines": 9}, "seconds": {"read": 0.25}}],
    }
    s = ledger.run_summary(
        cfg,
        run_id="r",
        argv=None,
        inputs=[],
        results=results,
        extra_counts={"rejected_lines": 4},
        replaced=[],
        kept=[],
        timings={},
        cluster={},
    )
    assert s["counts"] == {"a": 3, "rejected_lines": 4}
    assert s["task_seconds"] == {"read": 0.75}
    assert s["arguments"] == [] and s["options"]["inputs"] == ["x"]
    assert "pseudonymize_key" not in s["options"]


# ------------------------------------------------------------------ local dates
@pytest.mark.parametrize("tz", ["UTC", "Europe/Paris", "America/New_York", "Pacific/Kiritimati"])
def test_local_date_scalar_agrees_with_vectorised(tz):
    # every half hour across the spring DST change of the northern hemisphere
    us = np.arange(0, 96) * 1_800_000_000 + int(pd.Timestamp("2026-03-07T00:00Z").value // 1000)
    times = pd.Series(pd.array(us.astype("datetime64[us]")).tz_localize("UTC"))
    vector = window.local_dates(times, tz)
    assert vector.dtype == schema.STR
    scalar = [window.local_date(int(u), tz).isoformat() for u in us]
    assert vector.tolist() == scalar
    expected = [pd.Timestamp(int(u) * 1000, tz="UTC").tz_convert(tz).date().isoformat() for u in us]
    assert scalar == expected


def test_window_bounds_are_local_midnights():
    cfg = RunConfig(
        inputs=(), out=Path("o"), since=dt.date(2026, 3, 29), until=dt.date(2026, 3, 29)
    )
    paris = RunConfig(**{**cfg.__dict__, "tz": "Europe/Paris"})
    since, until = paris.since_us, paris.until_us
    # the day of the DST change in Paris is 23 hours long and starts at 23:00 UTC
    assert until - since == 23 * 3600 * 1_000_000
    assert since == int(pd.Timestamp("2026-03-28T23:00Z").value // 1000)
    t = pd.Series(pd.to_datetime([since - 1, since, until - 1, until], unit="us", utc=True))
    assert window.inside(t, since, until).tolist() == [False, True, True, False]
    assert window.inside(t, None, None).all()


# ------------------------------------------------------------------ pseudonymization
KEY = b"k"


def test_pseudonymize_text_replaces_every_form_or_withholds():
    p = privacy.pseudonym(KEY, "zoë")
    line = '{"username": "zo\\u00eb", "event_type": "/u/zoë/x", "page": "zo\\u00eb"}'
    out = privacy.pseudonymize_text(line, KEY)
    assert "zoë" not in out and "zo\\u00eb" not in out and out.count(p) == 3
    cut = '{"username": "zoë", "event": "{\\"username\\": \\"zoë\\"}"}'
    assert privacy.pseudonymize_text(cut, KEY) == privacy.WITHHELD
    assert privacy.pseudonymize_text('{"time": 1}', KEY) == '{"time": 1}'


def test_pseudonymize_names_keeps_index_and_dtype():
    names = pd.Series(pd.array(["b", "a", "b"], dtype=schema.STR), index=[5, 6, 7])
    out = privacy.pseudonymize_names(names, KEY)
    assert out.index.tolist() == [5, 6, 7] and out.dtype == schema.STR
    assert out.tolist() == [privacy.pseudonym(KEY, n) for n in ("b", "a", "b")]
    assert out[5] != "b" and len(out[5]) == 64
