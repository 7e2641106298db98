"""store: version pruning and the atomic switch, on real directories."""

from __future__ import annotations

import os

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
    assert left == ["20260102T000000-b", "20260103T000000-c"]  # current and the one before


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
    left = sorted(p.name for p in (tmp_path / "rel" / store.VERSIONS).iterdir())
    assert left == ["20260102T000000-b", "20260103T000000-c"]
