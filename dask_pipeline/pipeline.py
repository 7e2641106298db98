"""The Dask graph: read -> decode -> (shuffle by user) filter -> segments -> (shuffle by video)
metrics -> store. Composes the stages of ``stages``; holds no business rules.

Two graphs run one after the other:

1. ``dd.from_map`` runs ``ReadStage`` on each group of input parts (whole files or byte
   ranges); it hands on only the events the rule sets use plus per-user activity
   (schema.STAGED), its rejects, video partials and line stats going aside through ``store``.
   The staged rows are shuffled by username, and ``UserStage`` filters each user partition,
   runs the rule set and writes segment parts by date (schema.SEGMENTS).
2. All stored segments (the window's new days and the earlier days kept from the previous
   version) are shuffled by video, and ``VideoStage`` turns each video partition into views,
   video_stats, video_timeline and video_daily parts.

Between and after them the driver combines the videos (schema.VIDEOS), renumbers the rejects
(``ledger``), links the kept days; then ``ledger`` assembles ``_run.json`` and ``store``
commits the new version atomically.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import dask.dataframe as dd
import pandas as pd
from dask import delayed

from . import cluster, ingest, ledger, metrics, read, schema, store
from .config import RunConfig
from .errors import RunFailed
from .stages import ReadOptions, ReadStage, UserOptions, UserStage, VideoOptions, VideoStage

__all__ = ["RunFailed", "RunResult", "run", "shuffle_method"]

#: Dask's task-based shuffle: its fixed cost is far below P2P's for the few partitions a
#: night's logs make, but it holds every piece in memory until the last input is read.
SHUFFLE = "tasks"
#: Above this much input text (about 3.5M lines) the user shuffle goes peer to peer: P2P
#: stages its pieces on the workers' disks, so worker memory stays flat however much is read.
P2P_ABOVE = 4 << 30
#: At most this many video partitions in graph 2.
MAX_VIDEO_PARTITIONS = 64


def shuffle_method(text_bytes: int) -> str:
    """ "p2p" for large inputs (memory bounded), else the task shuffle (low fixed cost)."""
    return "p2p" if text_bytes > P2P_ABOVE else SHUFFLE


@dataclass
class RunResult:
    out: Path
    version: Path
    summary: dict
    warnings: list[str] = field(default_factory=list)


def run(cfg: RunConfig, client, argv: list[str] | None = None) -> RunResult:
    """Run the job on ``client``'s cluster and commit a new version of the tables.

    Raises RunFailed (nothing committed) when no input line could be read at all or the
    cluster fails, or another run holds the output directory; the previous version then
    stays current.
    """
    paths = read.list_inputs(cfg.inputs)
    parts = read.plan_parts(paths)
    out = Path(cfg.out).absolute()  # workers may not share this process's working directory
    out.mkdir(parents=True, exist_ok=True)
    try:
        with store.lock(out):
            return _Run(cfg, client, out).execute(argv, paths, parts)
    except store.Busy as e:
        raise RunFailed(str(e)) from None


class _Run:
    """One run into ``out``: its stage directory, the previous version, timings."""

    def __init__(self, cfg: RunConfig, client, out: Path):
        self.cfg, self.client, self.out = cfg, client, out
        store.prune(out)  # leftovers of runs that died before their commit
        self.run_id = store.new_run_id()
        self.stage = store.version_dir(out, self.run_id)
        self.previous = store.current_version(out)
        self.timings: dict[str, float] = {}

    def execute(self, argv: list[str] | None, paths: list[str], parts: list[read.Part]):
        t_start = time.perf_counter()
        self.stage.mkdir(parents=True)
        workers_at_start = len(self.client.scheduler_info().get("workers", {}))
        try:
            tasks = ingest.plan_tasks(parts)
            user_results = self._timed("read_to_segments", self._segments_graph, tasks, parts)
            stats = store.read_side_stats(self.stage)
            inputs = ledger.inputs_summary(paths, [read.file_size(p) for p in paths], stats)
            why = ledger.unreadable(inputs)
            if why:
                raise RunFailed(why)
            videos, n_rejects, replaced, kept = self._timed("videos_rejects", self._between, stats)
            video_results = self._timed("video_tables", self._videos_graph, videos, len(tasks))
            self.timings["total"] = round(time.perf_counter() - t_start, 3)
            summary = ledger.run_summary(
                self.cfg,
                run_id=self.run_id,
                argv=argv,
                inputs=inputs,
                results={"read": stats, "users": user_results, "videos": video_results},
                extra_counts={"rejected_lines": n_rejects, "videos": len(videos)},
                replaced=replaced,
                kept=kept,
                timings=self.timings,
                cluster=cluster.describe(self.client, workers_at_start),
            )
            store.write_json(summary, self.stage / store.RUN_JSON)
            store.commit(self.out, self.run_id)
        except BaseException:
            store.abandon(self.out, self.run_id)
            raise
        warnings = ledger.input_warnings(inputs)
        return RunResult(out=self.out, version=self.stage, summary=summary, warnings=warnings)

    def _timed(self, label: str, step, *args):
        t = time.perf_counter()
        result = step(*args)
        self.timings[label] = round(time.perf_counter() - t, 3)
        return result

    # -- graph 1: read, decode, shuffle by user, filter, segments -------------------------
    def _segments_graph(self, tasks: list[list[ingest.Task]], parts: list[read.Part]) -> list:
        staged = dd.from_map(
            ReadStage(ReadOptions.of(self.cfg, self.stage)),
            tasks,
            meta=ingest.empty_staged(),
            label="read-decode",
            enforce_metadata=False,
        )
        text_bytes = sum(read.text_size(p) for p in parts)
        by_user = staged.shuffle(
            on="username", npartitions=len(tasks), shuffle_method=shuffle_method(text_bytes)
        )
        user_stage = UserStage(UserOptions.of(self.cfg, self.stage))
        graph = [
            delayed(user_stage)(p, i, dask_key_name=f"user-stage-{self.run_id}-{i}")
            for i, p in enumerate(by_user.to_delayed())
        ]
        return cluster.compute(self.client, graph, "segments", self.cfg.progress)

    # -- between the graphs: videos, rejects, carried-over segment days -------------------
    def _between(self, stats: list[dict]) -> tuple[pd.DataFrame, int, list[str], list[str]]:
        partials = store.read_side(self.stage, "videos")
        if partials is None:
            partials = metrics.video_partials(schema.empty(schema.EVENTS))
        prev = store.read_table(self.previous, "videos") if self.previous else None
        videos = metrics.combine_videos(partials, prev)
        store.write_table_part(self.stage, "videos", "000000", videos)
        offsets = ledger.line_offsets(stats)
        n_rejects = 0
        for name, rejects in store.side_parts(self.stage, "rejects"):
            store.write_table_part(
                self.stage, "rejects", name, ledger.renumber_rejects(rejects, offsets)
            )
            n_rejects += len(rejects)
        replaced = ledger.replaced_dates(self.cfg, stats)
        kept: list[str] = []
        if self.previous is not None:
            kept = ledger.kept_dates(store.segment_dates(self.previous), replaced)
            store.link_segment_days(self.previous, self.stage, kept)
        return videos, n_rejects, replaced, kept

    # -- graph 2: per-video tables from every stored segment ------------------------------
    def _videos_graph(self, videos: pd.DataFrame, n_tasks: int) -> list:
        results = []
        if store.segment_files(self.stage):
            seg = dd.read_parquet(store.segments_dir(self.stage), engine="pyarrow")
            by_video = seg.shuffle(
                on=["course_id", "video_id"],
                npartitions=max(1, min(n_tasks, MAX_VIDEO_PARTITIONS)),
                shuffle_method=SHUFFLE,
            )
            vids = self.client.scatter(videos, broadcast=True)
            video_stage = VideoStage(VideoOptions.of(self.cfg, self.stage))
            graph = [
                delayed(video_stage)(p, i, vids, dask_key_name=f"video-stage-{self.run_id}-{i}")
                for i, p in enumerate(by_video.to_delayed())
            ]
            results = cluster.compute(self.client, graph, "videos", self.cfg.progress)
        watched = [r.pop("video_stats") for r in results]
        watched = (
            pd.concat(watched, ignore_index=True) if watched else schema.empty(schema.VIDEO_STATS)
        )
        store.write_table_part(
            self.stage, "video_stats", "unwatched", metrics.unwatched_stats(videos, watched)
        )
        store.ensure_empty_tables(self.stage)
        return results
