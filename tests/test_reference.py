"""A fixed generated dataset, read with the standard ``json`` module and run through a plain
per-(course, user) loop written here from SPEC §2, §4 and §5.1, must give exactly the
segments of the Dask job. This holds the job's results through any speed work."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import math
import re
from pathlib import Path

import pytest

from dask_pipeline import store
from dask_pipeline.vocabulary import ALIASES

from .test_end_to_end import _run, seed_reference

NUM = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def _num(x):
    if isinstance(x, bool):
        return None
    if isinstance(x, str):
        if not NUM.fullmatch(x):
            return None
        x = float(x)
    if isinstance(x, int | float):
        x = float(x)
        return x if math.isfinite(x) else None
    return None


def reference_events(files: list[Path], staff: set[str]) -> list[dict]:
    """The kept play/pause/stop/seek events of the files, read plainly."""
    rows, team = [], set()
    for fi, path in enumerate(files):
        with gzip.open(path, "rt", encoding="utf-8") as f:
            for li, line in enumerate(f, start=1):
                d = json.loads(line)
                et = d.get("event_type")
                et = ALIASES.get(et, et) if isinstance(et, str) else None
                course = (d.get("context") or {}).get("course_id")
                user = d.get("username")
                if not (isinstance(course, str) and course.strip() and isinstance(et, str)):
                    continue
                user = user.strip() if isinstance(user, str) else ""
                course = course.strip()
                if "studio" in et or "instructor" in et:
                    team.add((course, user))
                if et not in ("play_video", "pause_video", "stop_video", "seek_video") or not user:
                    continue
                ev = d.get("event")
                if isinstance(ev, str):
                    try:
                        ev = json.loads(ev)
                    except ValueError:
                        continue
                if not isinstance(ev, dict):
                    continue
                vid = ev.get("id")
                if not isinstance(vid, str) or not vid.strip():
                    continue
                ct, old, new = _num(ev.get("currentTime")), None, None
                if et == "seek_video":
                    old, new = _num(ev.get("old_time")), _num(ev.get("new_time"))
                    if old is None or new is None:
                        continue
                elif ct is None:
                    continue
                t = dt.datetime.fromisoformat(d["time"]).astimezone(dt.UTC)
                rows.append(
                    {
                        "course": course,
                        "user": user,
                        "t": t,
                        "file": fi,
                        "line": li,
                        "type": et,
                        "vid": vid.strip(),
                        "ct": ct,
                        "old": old,
                        "new": new,
                    }
                )
    return [r for r in rows if (r["course"], r["user"]) not in team and r["user"] not in staff]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    from dask_pipeline.generate import generate

    return generate(tmp_path_factory.mktemp("ref") / "logs", users=120, courses=3, days=3, seed=11)


def test_generated_dataset_segments_equal_plain_reading(dask_client, dataset, tmp_path):
    staff = set(Path(dataset.staff_file).read_text().split())
    ref = seed_reference(reference_events(dataset.files, staff))
    assert len(ref) > 500  # the dataset is rich enough for the comparison to mean something
    _run(dask_client, dataset.files, tmp_path / "out", staff=frozenset(staff))
    seg = store.read_table(tmp_path / "out", "segments")
    got = sorted(
        (r.course_id, r.video_id, r.username, r.time.to_pydatetime(), r.start_offset, r.end_offset)
        for r in seg.itertuples()
    )
    assert got == ref


def test_split_plain_files_give_the_same_segments(dask_client, dataset, tmp_path, monkeypatch):
    """Byte ranges of large plain files: the same segments as whole gzip files."""
    from dask_pipeline import read

    plain = []
    for p in dataset.files:
        q = tmp_path / p.name.removesuffix(".gz")
        q.write_bytes(gzip.decompress(p.read_bytes()))
        plain.append(q)
    monkeypatch.setattr(read, "SPLIT", 1 << 20)  # many ranges per file
    monkeypatch.setattr(read, "GROUP", 1 << 20)
    staff = frozenset(Path(dataset.staff_file).read_text().split())
    _run(dask_client, dataset.files, tmp_path / "gz", staff=staff)
    _run(dask_client, plain, tmp_path / "plain", staff=staff)
    for table in ("segments", "views", "video_stats", "video_timeline"):
        a = store.read_table(tmp_path / "gz", table)
        b = store.read_table(tmp_path / "plain", table)
        assert a.equals(b), table


def test_one_worker_and_two_workers_give_identical_tables(dask_client, dataset, tmp_path):
    from distributed import Client, LocalCluster

    staff = frozenset(Path(dataset.staff_file).read_text().split())
    _run(dask_client, dataset.files, tmp_path / "two", staff=staff)
    with (
        LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=":0") as cluster,
        Client(cluster) as one,
    ):
        _run(one, dataset.files, tmp_path / "one", staff=staff)
    for table in ("segments", "videos", "views", "video_stats", "video_timeline", "video_daily"):
        a = store.read_table(tmp_path / "two", table)
        b = store.read_table(tmp_path / "one", table)
        assert a.equals(b), table
