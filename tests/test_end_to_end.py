"""The whole job on a real Dask cluster: tables, _run.json, other readers, rules vs a plain
loop written here from SPEC §5.1, bad lines, and the CLI's contract."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import math
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dask_pipeline import schema, store, tabledoc

from .conftest import other_line, run_job, video_line
from .readers import check_readers

T0 = dt.datetime(2026, 1, 5, 8, 0, tzinfo=dt.UTC)
ALIAS = {
    "edx.video.played": "play_video",
    "edx.video.paused": "pause_video",
    "edx.video.stopped": "stop_video",
    "edx.video.position.changed": "seek_video",
}


_run = run_job


# ---------------------------------------------------------------- a plain loop from §5.1
def seed_reference(events: list[dict]) -> list[tuple]:
    """SPEC §5.1 written as plainly as possible: events are dicts with course, user, t (UTC
    datetime), file, line, type (legacy name), vid, ct, old, new."""
    by_user = defaultdict(list)
    for e in events:
        by_user[(e["course"], e["user"])].append(e)
    out = []
    for (course, user), evs in by_user.items():
        evs.sort(key=lambda e: (e["t"], e["file"], e["line"]))
        video = start = action = None
        for e in evs:
            typ = e["type"]
            if typ == "play_video":
                video, start, action = e["vid"], e["ct"], "play"
            elif typ == "seek_video" and e["old"] < e["new"]:
                if video == e["vid"] and action == "play" and e["old"] <= e["new"]:
                    out.append((course, e["vid"], user, e["t"], e["old"], e["new"]))
                video, start, action = e["vid"], e["new"], "seek forward"
            elif typ == "seek_video" and e["old"] > e["new"]:
                if video == e["vid"] and action == "play" and start <= e["old"]:
                    out.append((course, e["vid"], user, e["t"], start, e["old"]))
                video, start, action = e["vid"], e["new"], "seek back"
            elif typ in ("pause_video", "stop_video"):
                if video == e["vid"] and action == "play" and start <= e["ct"]:
                    out.append((course, e["vid"], user, e["t"], start, e["ct"]))
                video, start, action = e["vid"], e["ct"], typ
    return sorted(out)


def _segments_rows(out: Path) -> list[tuple]:
    seg = store.read_table(out, "segments")
    return sorted(
        (r.course_id, r.video_id, r.username, r.time.to_pydatetime(), r.start_offset, r.end_offset)
        for r in seg.itertuples()
    )


# ---------------------------------------------------------------- random streams
USERS = ["ann", " ann ", "bob", "cy", "staffer", ""]
COURSES = ["course-v1:O+A+1", "O/B/2"]
VIDEOS = ["v1", " v2 ", "i4x-O-B-video-3"]
OFFSETS = [0.0, 1.5, 10.0, 10.0, 33.25, 60.0, 95.5]
TYPES = [
    "play_video",
    "pause_video",
    "stop_video",
    "seek_video",
    "load_video",
    "speed_change_video",
    "show_transcript",
    "edx.video.played",
    "edx.video.paused",
    "edx.video.position.changed",
]


@st.composite
def streams(draw):
    n = draw(st.integers(1, 60))
    events = []
    for _ in range(n):
        typ = draw(st.sampled_from(TYPES))
        events.append(
            {
                "user": draw(st.sampled_from(USERS)),
                "course": draw(st.sampled_from(COURSES)),
                "vid": draw(st.sampled_from(VIDEOS)),
                "sec": draw(st.integers(0, 12)),  # few distinct times: many ties
                "raw_type": typ,
                "ct": draw(st.sampled_from(OFFSETS)),
                "old": draw(st.sampled_from(OFFSETS)),
                "new": draw(st.sampled_from(OFFSETS)),
                "string_payload": draw(st.booleans()),
                "team": draw(st.integers(0, 30)) == 0,
            }
        )
    files = draw(st.integers(1, 4))
    cuts = sorted(draw(st.lists(st.integers(0, n), min_size=files - 1, max_size=files - 1)))
    # one partition per file, or all files in one partition
    group = draw(st.sampled_from([1, 1 << 26]))
    return events, cuts, group


def _write_stream(tmp: Path, events: list[dict], cuts: list[int]) -> tuple[list[Path], list]:
    """Write the stream into files split at ``cuts``; returns the files and the reference
    events (kept users only) with their (file, line)."""
    bounds = [0, *cuts, len(events)]
    files, ref = [], []
    team = {(e["course"], e["user"].strip()) for e in events if e["team"]}
    for fi in range(len(bounds) - 1):
        lines = []
        for e in events[bounds[fi] : bounds[fi + 1]]:
            t = T0 + dt.timedelta(seconds=e["sec"])
            ts = t.isoformat()
            typ = ALIAS.get(e["raw_type"], e["raw_type"])
            payload = {"id": e["vid"], "code": "html5", "duration": 100}
            if typ == "seek_video":
                payload |= {"old_time": e["old"], "new_time": e["new"], "type": "onSlideSeek"}
            elif typ == "speed_change_video":
                payload |= {"current_time": e["ct"], "old_speed": "1.0", "new_speed": "1.5"}
            else:
                payload["currentTime"] = e["ct"]
            if e["team"]:
                lines.append(other_line(e["user"], e["course"], "edx.instructor.x", ts))
            lines.append(
                video_line(
                    e["user"],
                    e["course"],
                    e["raw_type"],
                    ts,
                    payload,
                    as_string=e["string_payload"],
                )
            )
            user = e["user"].strip()
            if user and (e["course"], user) not in team:
                ref.append(
                    {
                        "course": e["course"],
                        "user": user,
                        "t": t,
                        "file": fi,
                        "line": len(lines),
                        "type": typ,
                        "vid": e["vid"].strip(),
                        "ct": e["ct"],
                        "old": e["old"],
                        "new": e["new"],
                    }
                )
        p = tmp / (f"tracking.log-{fi:02d}" + (".gz" if fi % 2 else ""))
        data = ("\n".join(lines) + "\n").encode() if lines else b""
        p.write_bytes(gzip.compress(data) if fi % 2 else data)
        files.append(p)
    return files, ref


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=streams())
def test_seed_segments_equal_plain_loop_on_dask(dask_client, tmp_path_factory, data):
    """Acceptance 3: whatever the files and partitions, the Dask run's segments equal the
    plain loop's, float-exact, ties kept in (file, line) order."""
    from dask_pipeline import read

    events, cuts, group = data
    tmp = tmp_path_factory.mktemp("stream")
    files, ref = _write_stream(tmp, events, cuts)
    saved = read.GROUP
    read.GROUP = group  # the partitioning is planned in this process
    try:
        _run(dask_client, files, tmp / "out")
    finally:
        read.GROUP = saved
    assert _segments_rows(tmp / "out") == seed_reference(ref)


# ---------------------------------------------------------------- a generated dataset
@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    from dask_pipeline.generate import generate

    d = tmp_path_factory.mktemp("gen")
    res = generate(d / "logs", users=60, courses=2, days=3, seed=7)
    return res


@pytest.fixture(scope="module")
def one_run(dask_client, generated, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "out"
    staff = frozenset(Path(generated.staff_file).read_text().split())
    res = _run(dask_client, [generated.files[0].parent], out, staff=staff)
    return out, res


def test_all_tables_and_run_json(one_run):
    out, res = one_run
    for table, sch in schema.TABLES.items():
        df = store.read_table(out, table)
        assert list(df.columns) == list(sch), table
        assert len(df) > 0, table
    run = json.loads((out / "_run.json").read_text())
    for k in ("version", "arguments", "inputs", "counts", "timings", "cluster"):
        assert k in run
    for f in run["inputs"]:
        assert f["lines"] == f["accepted"] + f["skipped"] + f["rejected_total"] > 0
    c = run["counts"]
    assert c["course_team_users"] > 0 and c["course_team_events"] > 0
    assert c["segments"] == len(store.read_table(out, "segments"))
    assert run["cluster"]["workers"] == 2


def test_tables_read_by_pandas_pyarrow_duckdb_fastparquet(one_run):
    """Acceptance 2: other engines read every table (through the OUT/<table> links), with
    the calls docs/tables.md shows, the columns and DuckDB types it documents."""
    import duckdb

    out, _ = one_run
    rows = check_readers(out)
    assert all(rows[t] > 0 for t in schema.TABLES), rows
    # values agree, not only shapes: sums of the numeric columns
    for table, sch in schema.TABLES.items():
        ours = store.read_table(out, table)
        files = tabledoc.read_examples(table, str(out))["duckdb"].split("'")[1]
        for col, t in sch.items():
            if t == schema.F64:
                got = duckdb.sql(f"SELECT sum({col}) FROM '{files}'").fetchall()[0][0]
                assert math.isclose(got, ours[col].sum(), rel_tol=1e-12, abs_tol=1e-9), col


def test_readme_reading_example_runs_as_written(one_run, tmp_path, monkeypatch):
    """The README's "Reading the tables" block, run as is against a real output."""
    out, _ = one_run
    text = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = text[text.index("### Reading the tables") :]
    start = section.index("```python\n") + len("```python\n")
    code = section[start : section.index("```", start)]
    (tmp_path / "tables").symlink_to(out)
    monkeypatch.chdir(tmp_path)
    ns: dict = {}
    exec(code, ns)
    assert "duckdb.sql" in code and "pd.read_parquet" in code
    per_day = ns["duckdb"].sql(code[code.index('"""') + 3 : code.rindex('"""')]).df()
    seg = store.read_table(out, "segments")
    assert list(per_day["date"].dt.date) == sorted(set(seg["date"]))
    assert per_day["seconds"].sum() == pytest.approx(
        (seg["end_offset"] - seg["start_offset"]).sum()
    )
    # the second block: several tables of one version, `current` resolved once
    rest = section[section.index("```", start) + 3 : section.index("\n## ")]
    start = rest.index("```python\n") + len("```python\n")
    ns = {}
    exec(rest[start : rest.index("```", start)], ns)
    assert ns["version"] == str(store.current_version(out))
    assert len(ns["views"]) == len(store.read_table(out, "views")) > 0


def test_course_stats_agree_with_sql_over_views(one_run):
    """course_stats against the same numbers computed by DuckDB from views and videos."""
    import duckdb

    out, _ = one_run
    views = tabledoc.read_examples("views", str(out))["duckdb"].split("'")[1]
    videos = tabledoc.read_examples("videos", str(out))["duckdb"].split("'")[1]
    want = duckdb.sql(f"""
        SELECT v.course_id, count(DISTINCT username) AS viewers,
               (SELECT count(*) FROM '{videos}' w WHERE w.course_id = v.course_id) AS videos,
               count(DISTINCT video_id) AS videos_watched, sum(segments) AS segments,
               sum(watched_seconds) AS watched_seconds,
               count(DISTINCT username) FILTER (WHERE completed) AS completed_viewers,
               count(*) FILTER (WHERE completed) AS completions,
               median(coverage) AS median_coverage
        FROM '{views}' v GROUP BY v.course_id ORDER BY v.course_id
    """).df()
    got = store.read_table(out, "course_stats")
    assert list(got["course_id"]) == list(want["course_id"])
    for col in want.columns[1:]:
        assert got[col].to_numpy() == pytest.approx(want[col].to_numpy(), rel=1e-12), col
    assert got["videos_in_outline"].isna().all()  # no course structure given


def test_course_stats_by_a_graph_equal_those_made_in_the_client(
    dask_client, generated, one_run, tmp_path, monkeypatch
):
    from dask_pipeline import pipeline

    out, _ = one_run
    monkeypatch.setattr(pipeline, "COURSES_HERE_BELOW", -1)  # always the Dask graph
    staff = frozenset(Path(generated.staff_file).read_text().split())
    _run(dask_client, [generated.files[0].parent], tmp_path / "graph", staff=staff)
    pd.testing.assert_frame_equal(
        store.read_table(tmp_path / "graph", "course_stats"), store.read_table(out, "course_stats")
    )
    assert (tmp_path / "graph" / "course_stats" / "part-unwatched.parquet").exists()


def test_empty_run_every_table_readable_with_its_columns(dask_client, tmp_path):
    """A log without any video event commits every table empty, each still readable with
    its columns by every engine."""
    log = tmp_path / "tracking.log"
    log.write_text(other_line("ann", "course-v1:O+A+1", "problem_check", "2026-01-05T08:00:00Z"))
    _run(dask_client, [log], tmp_path / "out")
    assert check_readers(tmp_path / "out") == dict.fromkeys(schema.OUTPUTS, 0)


def test_rerun_same_input_gives_same_tables(dask_client, generated, one_run, tmp_path):
    out, _ = one_run
    staff = frozenset(Path(generated.staff_file).read_text().split())
    _run(dask_client, [generated.files[0].parent], tmp_path / "again", staff=staff)
    for table in schema.TABLES:
        pd.testing.assert_frame_equal(
            store.read_table(out, table), store.read_table(tmp_path / "again", table)
        )


# ---------------------------------------------------------------- bad lines (§3)
def test_bad_lines_counted_written_and_good_lines_kept(dask_client, tmp_path):
    """Acceptance 6: a bad line of each kind is counted and written to rejects/, the good
    lines around it are processed, and _run.json balances lines per file."""
    course = "course-v1:O+N+R"
    t = lambda s: (T0 + dt.timedelta(seconds=s)).isoformat()  # noqa: E731
    good = [
        video_line("ann", course, "play_video", t(1), {"id": "v", "currentTime": 0}),
        video_line("ann", course, "pause_video", t(9), {"id": "v", "currentTime": 8}),
    ]
    bad = {
        "not_json": '{"username": "ann", "event_type": "play_video"',
        "not_object": "[1, 2]",
        "bad_encoding": None,
        "too_deep": '{"event_type": "play_video", "a": ' + "[" * 5000 + "]" * 5000 + "}",
        "bad_time": video_line("ann", course, "play_video", "noon", {"id": "v", "currentTime": 1}),
        "missing_video_id": video_line("ann", course, "play_video", t(2), {"currentTime": 1}),
        "missing_number": video_line("ann", course, "seek_video", t(3), {"id": "v"}),
        "bad_payload": json.dumps(
            {
                "username": "ann",
                "event_type": "play_video",
                "time": t(4),
                "event": "{cut at 512 cha",
                "context": {"course_id": course},
            }
        ),
    }
    body = [good[0].encode()]
    for _reason, line in bad.items():
        body.append(b'{"username": "\xff", "x": 1}' if line is None else line.encode())
    body += [b"# comment", b"", good[1].encode()]
    (tmp_path / "tracking.log-1").write_bytes(b"\n".join(body) + b"\n")
    res = _run(dask_client, [tmp_path / "tracking.log-1"], tmp_path / "out")
    rej = store.read_table(tmp_path / "out", "rejects")
    assert sorted(rej["reason"]) == sorted(bad)
    assert sorted(rej["line"]) == list(range(2, 2 + len(bad)))
    f = res.summary["inputs"][0]
    assert f["lines"] == len(body) == f["accepted"] + f["skipped"] + f["rejected_total"]
    assert f["skipped"] == 2 and f["rejected"] == {r: 1 for r in bad}
    seg = store.read_table(tmp_path / "out", "segments")
    assert seg[["start_offset", "end_offset"]].values.tolist() == [[0.0, 8.0]]


def test_damaged_files_reported_and_good_ones_processed(dask_client, tmp_path):
    course = "course-v1:O+N+R"
    lines = [
        video_line(f"u{i}", course, "play_video", T0.isoformat(), {"id": "v", "currentTime": 0})
        for i in range(2000)
    ]
    data = ("\n".join(lines) + "\n").encode()
    gz = gzip.compress(data)
    (tmp_path / "tracking.log-1.gz").write_bytes(gz[: len(gz) // 2])
    (tmp_path / "tracking.log-2.gz").write_bytes(b"plain text, not gzip\n")
    (tmp_path / "tracking.log-3").write_bytes(data)
    (tmp_path / "tracking.log-4").write_bytes(b"")
    res = _run(dask_client, [tmp_path], tmp_path / "out")
    by = {Path(f["path"]).name: f for f in res.summary["inputs"]}
    assert by["tracking.log-1.gz"]["errors"][0]["kind"] == "truncated_gzip"
    assert 0 < by["tracking.log-1.gz"]["lines"] < 2000
    assert by["tracking.log-2.gz"]["errors"][0]["kind"] == "not_gzip"
    assert by["tracking.log-3"]["accepted"] == 2000 and not by["tracking.log-3"]["errors"]
    assert by["tracking.log-4"]["lines"] == 0 and not by["tracking.log-4"]["errors"]
    for f in by.values():
        assert f["lines"] == f["accepted"] + f["skipped"] + f["rejected_total"]
    assert any("truncated_gzip" in w for w in res.warnings)


# ---------------------------------------------------------------- the command line
def _cli(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dask_pipeline", *args],
        capture_output=True,
        text=True,
        timeout=300,
        **kw,
    )


@pytest.mark.parametrize("cmd", [[], ["run"], ["generate"], ["report"]])
def test_help_is_clear(cmd):
    r = _cli(*cmd, "--help")
    assert r.returncode == 0
    assert "usage: dask-pipeline" in r.stdout
    if cmd == ["run"]:
        for opt in (
            "--out",
            "--rules",
            "--staff-file",
            "--min-events",
            "--since",
            "--until",
            "--tz",
            "--bin-seconds",
            "--scheduler",
            "--scheduler-file",
            "--workers",
            "--threads-per-worker",
            "--memory-limit",
            "--dashboard-address",
        ):
            assert opt in r.stdout, opt


@pytest.mark.parametrize(
    "args,needle",
    [
        (["run", "x.log"], "--out"),
        (["run", "{missing}", "--out", "{out}"], "no such file"),
        (["run", "{log}", "--out", "{out}", "--rules", "nope"], "--rules"),
        (["run", "{log}", "--out", "{out}", "--since", "2026-13-01"], "--since"),
        (["run", "{log}", "--out", "{out}", "--tz", "Mars/Olympus"], "--tz"),
        (["run", "{log}", "--out", "{out}", "--workers", "0"], "--workers"),
        (
            ["run", "{log}", "--out", "{out}", "--since", "2026-02-01", "--until", "2026-01-01"],
            "after",
        ),
        (
            ["run", "{log}", "--out", "{out}", "--scheduler", "tcp://x:1", "--workers", "2"],
            "embedded",
        ),
        (
            ["run", "{log}", "--out", "{out}", "--pseudonymize-key-env", "NO_SUCH_VAR_XYZ"],
            "NO_SUCH_VAR_XYZ",
        ),
        (["generate", "--out", "{out}", "--users", "-3"], "--users"),
        (["bogus"], "invalid choice"),
    ],
)
def test_wrong_argument_exits_2_with_one_line(tmp_path, args, needle):
    log = tmp_path / "t.log"
    log.write_text("")
    subs = {
        "{missing}": str(tmp_path / "nope.log"),
        "{out}": str(tmp_path / "o"),
        "{log}": str(log),
    }
    r = _cli(*[subs.get(a, a) for a in args])
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert needle in lines[0]
    assert not (tmp_path / "o" / "current").exists()


def test_cli_with_relative_paths_commits_readable_tables(generated, tmp_path):
    """Relative INPUT and --out (as the README's demo uses): the tables are there and the
    report reads them."""
    import shutil

    shutil.copytree(generated.files[0].parent, tmp_path / "logs")
    r = _cli("run", "logs", "--out", "tables", "--workers", "1", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    stats = store.read_table(tmp_path / "tables", "video_stats")
    assert len(stats) > 0 and stats["viewers"].sum() > 0
    assert "viewers" in r.stdout and " 0   over 0 videos" not in r.stdout
    r = _cli("report", "tables", "--html", "r.html", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "r.html").stat().st_size > 10_000
