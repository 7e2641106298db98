"""store: version pruning and the atomic switch, on real directories."""

from __future__ import annotations

import os
import time

from dask_pipeline import schema, store


def _version(out, run_id, committed=True):
    v = store.version_dir(out, run_id)
    store.ensure_empty_tables(v)
    if committed:
        store.write_json({"run_id": run_id}, v / store.RUN_JSON)
    return v


def test_commit_switches_all_tables_at_once_and_prunes(tmp_path):
    out = tmp_path / "out"
    for rid in ("20260101T000000-a", "20260102T000000-b", "20260103T000000-c"):
        _version(out, rid)
        store.commit(out, rid)
        for table in schema.TABLES:
            assert os.path.realpath(out / table).startswith(str(store.version_dir(out, rid)))
    left = sorted(p.name for p in (out / store.VERSIONS).iterdir())
    assert len(left) == 3  # replaced seconds ago: a reader may still be in any of them
    store.prune(out, now=time.time() + store.REPLACED_KEPT_FOR + 1)
    left = sorted(p.name for p in (out / store.VERSIONS).iterdir())
    assert left == ["20260102T000000-b", "20260103T000000-c"]  # current and the one before


def test_a_version_replaced_within_the_grace_stays_then_goes(tmp_path):
    """The grace counts from the commit that replaced a version (its successor's
    ``_run.json``), not from the version's own age."""
    out, now = tmp_path / "out", time.time()
    for rid, committed in (
        ("20260101T000000-a", 5000),
        ("20260102T000000-b", 4000),
        ("20260103T000000-c", 100),
        ("20260104T000000-d", 50),
    ):
        v = _version(out, rid)
        os.utime(v / store.RUN_JSON, (now - committed, now - committed))
        os.symlink(os.path.join(store.VERSIONS, rid), out / "current.tmp")
        os.replace(out / "current.tmp", out / store.CURRENT)
    store.prune(out, grace=200, now=now)
    # a: replaced by b 4000 s ago, gone; b: replaced by c 100 s ago, kept; c: the one before d
    left = sorted(p.name for p in (out / store.VERSIONS).iterdir())
    assert left == ["20260102T000000-b", "20260103T000000-c", "20260104T000000-d"]
    store.prune(out, grace=200, now=now + 150)  # c's commit now 250 s old: b goes
    left = sorted(p.name for p in (out / store.VERSIONS).iterdir())
    assert left == ["20260103T000000-c", "20260104T000000-d"]


def test_prune_removes_versions_of_runs_that_died_before_commit(tmp_path):
    out = tmp_path / "out"
    _version(out, "20260101T000000-a")
    store.commit(out, "20260101T000000-a")
    _version(out, "20260102T000000-dead", committed=True)  # wrote _run.json, then died
    _version(out, "20260103T000000-dead", committed=False)
    store.prune(out)
    assert sorted(p.name for p in (out / store.VERSIONS).iterdir()) == ["20260101T000000-a"]
    assert store.current_version(out).name == "20260101T000000-a"


def test_a_second_run_cannot_take_the_same_output(tmp_path):
    import pytest

    with store.lock(tmp_path):
        with pytest.raises(store.Busy):
            with store.lock(tmp_path):
                pass
    with store.lock(tmp_path):  # released: free again
        pass


def test_relative_output_directory_keeps_the_committed_version(tmp_path, monkeypatch):
    """Regression: with a relative OUT, pruning once compared relative and absolute paths
    and removed the version it had just committed."""
    monkeypatch.chdir(tmp_path)
    for rid in ("20260101T000000-a", "20260102T000000-b", "20260103T000000-c"):
        _version("rel", rid)
        store.commit("rel", rid)
        assert store.current_version("rel").name == rid
        assert (tmp_path / "rel" / "video_stats").is_dir()
    store.prune("rel", now=time.time() + store.REPLACED_KEPT_FOR + 1)
    left = sorted(p.name for p in (tmp_path / "rel" / store.VERSIONS).iterdir())
    assert left == ["20260102T000000-b", "20260103T000000-c"]


def test_run_ids_sort_after_every_version_within_a_second_and_after_a_clock_step(tmp_path):
    """Regression: ids were a second's time stamp and a random suffix, so a run committed in
    the same second as the current version could sort before it, and pruning took the then
    current version for a dead run and removed it under a reader."""
    out = tmp_path / "out"
    ids = []
    for _ in range(50):
        rid = store.new_run_id(out)
        _version(out, rid)
        store.commit(out, rid)
        ids.append(rid)
        assert store.current_version(out).name == rid
    assert ids == sorted(ids) and len(set(ids)) == 50
    ahead = "29991231T235959.000000-ffffffff"  # a version from a clock that was ahead
    _version(out, ahead)
    rid = store.new_run_id(out)
    assert rid > ahead


def test_outdated_names_the_missing_table_or_columns(tmp_path):
    import pyarrow.parquet as pq

    v = _version(tmp_path, "20260101T000000-a")
    assert store.outdated(v) is None
    f = next((v / "video_timeline").glob("*.parquet"))
    t = pq.read_table(f)
    pq.write_table(t.rename_columns(["segment" if n == "bin" else n for n in t.column_names]), f)
    assert store.outdated(v) == "its video_timeline lack bin"
    v = _version(tmp_path, "20260102T000000-b")
    for p in (v / "course_team").iterdir():
        p.unlink()
    assert store.outdated(v) == "it has no course_team table"
