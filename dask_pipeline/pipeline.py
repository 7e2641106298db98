"""The Dask graph: read -> decode -> (shuffle by user) filter -> segments -> (shuffle by video)
metrics -> store. Composes the stages of ``stages``; holds no business rules.

Three graphs run one after the other:

1. ``dd.from_map`` runs ``ReadStage`` on each group of input parts (whole files or byte
   ranges); it hands on the video events plus per-user activity (schema.STAGED), its
   rejects and line stats going aside through ``store``. The staged rows are shuffled by
   username, and ``UserStage`` filters each user partition (also every course-team member
   earlier runs knew), runs the rule set and writes segment parts and per-user video
   partials by date (schema.SEGMENTS, schema.USER_VIDEOS).
2. All stored segments (the window's new days and the earlier days kept from the previous
   version) are shuffled by video, and ``VideoStage`` turns each video partition into views,
   video_stats, video_timeline and video_daily parts.
3. The views are shuffled by course, and ``course_stage`` writes course_stats parts.

Between them the driver merges the course team (``team``), links the kept days and removes
newly known members from them, rebuilds the videos (schema.VIDEOS) from every stored day's
partials, renumbers the rejects (``ledger``); then ``ledger`` assembles ``_run.json`` and
``store`` commits the new version atomically.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import dask.dataframe as dd
import pandas as pd
from dask import delayed

from . import checks, cluster, ingest, ledger, metrics, outline, read, schema, store, team
from .config import RunConfig
from .errors import RunFailed, older_tables
from .stages import (
    ReadOptions,
    ReadStage,
    UserOptions,
    UserStage,
    VideoOptions,
    VideoStage,
    course_stage,
)

__all__ = ["RunFailed", "RunResult", "run", "shuffle_method"]

#: Dask's task-based shuffle: its fixed cost is far below P2P's for the few partitions a
#: night's logs make, but it holds every piece in memory until the last input is read.
SHUFFLE = "tasks"
#: Above this much input text (about 3.5M lines) the user shuffle goes peer to peer: P2P
#: stages its pieces on the workers' disks, so worker memory stays flat however much is read.
P2P_ABOVE = 4 << 30
#: At most this many video partitions in graph 2 (and course partitions in graph 3).
MAX_VIDEO_PARTITIONS = 64
#: Views up to this many bytes of Parquet (about a million views) make course_stats in the
#: client in one pandas call: well under a second, where a graph costs seconds.
COURSES_HERE_BELOW = 16 << 20


def shuffle_method(text_bytes: int) -> str:
    """ "p2p" for large inputs (memory bounded), else the task shuffle (low fixed cost)."""
    return "p2p" if text_bytes > P2P_ABOVE else SHUFFLE


@dataclass
class RunResult:
    out: Path
    version: Path
    summary: dict
    warnings: list[str] = field(default_factory=list)


def run(cfg: RunConfig, client, argv: list[str] | None = None, locked: bool = False) -> RunResult:
    """Run the job on ``client``'s cluster and commit a new version of the tables.

    Raises RunFailed (nothing committed) when no input line could be read at all, when
    ``--strict`` finds a warning, when the cluster fails, or another run holds the output
    directory; the previous version then stays current. ``locked``: the caller already
    holds the output directory's lock (the CLI takes it before any cluster starts).
    """
    paths = read.list_inputs(cfg.inputs)
    # one night's single file is split across the cluster's threads
    parts = read.plan_parts(paths, workers=sum(client.nthreads().values()))
    out = Path(cfg.out).absolute()  # workers may not share this process's working directory
    out.mkdir(parents=True, exist_ok=True)
    if locked:
        return _Run(cfg, client, out).execute(argv, paths, parts)
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
        self.run_id = store.new_run_id(out)
        self.stage = store.version_dir(out, self.run_id)
        self.previous = None if cfg.rebuild else store.current_version(out)
        why = store.outdated(self.previous) if self.previous is not None else None
        if why:
            raise RunFailed(older_tables(out, why))
        self.timings: dict[str, float] = {}
        # the course team every earlier run knew (SPEC §7)
        self.prev_team = store.read_table(self.previous, "course_team") if self.previous else None
        self.known = team.members(self.prev_team)
        self.counts: dict[str, int] = {}
        self.prev_videos = store.read_table(self.previous, "videos") if self.previous else None
        self.labelled: outline.Labelled | None = None

    def execute(self, argv: list[str] | None, paths: list[str], parts: list[read.Part]):
        t_start = time.perf_counter()
        self.stage.mkdir(parents=True)
        at_start = self.client.scheduler_info().get("workers", {})
        try:
            tasks = ingest.plan_tasks(parts)
            user_results = self._timed("read_to_segments", self._segments_graph, tasks, parts)
            stats = store.read_side_stats(self.stage)
            inputs = ledger.inputs_summary(paths, [read.file_size(p) for p in paths], stats)
            why = ledger.unreadable(inputs)
            if why:
                raise RunFailed(why)
            notes = self._input_checks(inputs)
            videos, n_rejects, replaced, kept = self._timed(
                "videos_rejects", self._between, stats, user_results
            )
            video_results = self._timed("video_tables", self._videos_graph, videos, len(tasks))
            self._timed("course_tables", self._course_stats, videos, len(tasks))
            store.ensure_empty_tables(self.stage)
            self.timings["total"] = round(time.perf_counter() - t_start, 3)
            summary = ledger.run_summary(
                self.cfg,
                run_id=self.run_id,
                argv=argv,
                inputs=inputs,
                results={"read": stats, "users": user_results, "videos": video_results},
                extra_counts={"rejected_lines": n_rejects, "videos": len(videos), **self.counts},
                replaced=replaced,
                kept=kept,
                timings=self.timings,
                cluster=cluster.describe(self.client, at_start),
            )
            summary = {**summary, **notes, "outlines": self.labelled.courses}
            summary["window"]["late_before"] = _iso_us(self.cfg.events_from_us)
            summary["window"]["late_video_events"] = summary["counts"].get("late_video_events", 0)
            store.write_json(summary, self.stage / store.RUN_JSON)
            store.commit(self.out, self.run_id)
        except BaseException:
            store.abandon(self.out, self.run_id)
            raise
        warnings = ledger.input_warnings(inputs) + notes["warnings"]
        warnings += [*self.cfg.outline_warnings, *self.labelled.warnings]
        return RunResult(out=self.out, version=self.stage, summary=summary, warnings=warnings)

    def _input_checks(self, inputs: list[dict]) -> dict:
        """Files skipped by name and files that look like no tracking log (SPEC §7): for
        ``_run.json`` and the terminal; fatal with ``--strict``."""
        skipped = read.skipped_by_name(self.cfg.inputs)
        warnings = checks.skipped_warnings(skipped) + checks.file_warnings(inputs)
        if self.cfg.strict and warnings:
            more = f" (and {len(warnings) - 1} more)" if len(warnings) > 1 else ""
            raise RunFailed(f"--strict: {warnings[0]}{more}")
        return {"skipped_files": skipped, "warnings": warnings}

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
        user_stage = UserStage(UserOptions.of(self.cfg, self.stage, self.known))
        graph = [
            delayed(user_stage)(p, i, dask_key_name=f"user-stage-{self.run_id}-{i}")
            for i, p in enumerate(by_user.to_delayed())
        ]
        return cluster.compute(self.client, graph, "segments", self.cfg.progress)

    # -- between the graphs: videos, rejects, carried-over segment days -------------------
    def _between(
        self, stats: list[dict], user_results: list[dict]
    ) -> tuple[pd.DataFrame, int, list[str], list[str]]:
        offsets = ledger.line_offsets(stats)
        n_rejects = 0
        for name, rejects in store.side_parts(self.stage, "rejects"):
            store.write_table_part(
                self.stage, "rejects", name, ledger.renumber_rejects(rejects, offsets)
            )
            n_rejects += len(rejects)
        replaced = ledger.replaced_dates(self.cfg, stats)
        kept = self._carry_over(replaced)
        course_team = _course_team(user_results, self.prev_team)
        store.write_table_part(self.stage, "course_team", "000000", course_team)
        self._forget_new_members(kept, course_team)
        self.labelled = outline.label_videos(
            self._videos(course_team), self.cfg.outlines, self.prev_videos
        )
        videos = self.labelled.videos
        self.counts.update(self.labelled.counts)
        store.write_table_part(self.stage, "videos", "000000", videos)
        return videos, n_rejects, replaced, kept

    def _carry_over(self, replaced: list[str]) -> list[str]:
        """Link the previous version's segment and per-user video days this run does not
        replace; returns the segment days kept."""
        if self.previous is None:
            return []
        kept = ledger.kept_dates(store.segment_dates(self.previous), replaced)
        store.link_segment_days(self.previous, self.stage, kept)
        uv_days = ledger.kept_dates(store.user_videos_dates(self.previous), replaced)
        store.link_user_videos_days(self.previous, self.stage, uv_days)
        return kept

    def _forget_new_members(self, kept: list[str], course_team: pd.DataFrame) -> None:
        """Remove users who turned out to be course team in this run from the segment days
        kept from earlier runs (SPEC §7: also for days processed before they were known)."""
        new = team.members(course_team) - self.known
        n = 0
        if new and kept:
            n = store.drop_rows_in_days(
                self.stage, "segments", kept, lambda df: team.known_mask(df, new)
            )
        self.counts["course_team_segments_removed_from_earlier_days"] = n
        self.counts["course_team_known"] = len(course_team)

    def _videos(self, course_team: pd.DataFrame) -> pd.DataFrame:
        """``videos`` from every stored day of per-user partials less every known member of
        the course team; a version from before those partials is merged in the old way."""
        partials = store.read_user_videos(self.stage)
        partials, _ = team.drop_known(partials, team.members(course_team))
        old = None
        if self.previous is not None and not store.has_user_videos(self.previous):
            old = outline.logged_videos(self.prev_videos)
        return metrics.combine_videos(partials, old)

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
        return results

    # -- graph 3: course_stats from the views -----------------------------------------------
    def _course_stats(self, videos: pd.DataFrame, n_tasks: int) -> None:
        """The views shuffled by course, a course_stats part per partition; courses nobody
        watched are added from ``videos``. Small views are done here in one call."""
        views_files = store.table_files(self.stage, "views")
        if sum(f.stat().st_size for f in views_files) <= COURSES_HERE_BELOW:
            stats = metrics.course_stats(store.read_table(self.stage, "views"), videos)
            store.write_table_part(self.stage, "course_stats", "000000", stats)
            return
        views = dd.read_parquet(str(self.stage / "views"), engine="pyarrow")
        n = max(1, min(n_tasks, MAX_VIDEO_PARTITIONS, videos["course_id"].nunique()))
        by_course = views.shuffle(on="course_id", npartitions=n, shuffle_method=SHUFFLE)
        vids = self.client.scatter(videos, broadcast=True)
        graph = [
            delayed(course_stage)(
                p, i, str(self.stage), vids, dask_key_name=f"course-stage-{self.run_id}-{i}"
            )
            for i, p in enumerate(by_course.to_delayed())
        ]
        results = cluster.compute(self.client, graph, "courses", self.cfg.progress)
        done = [c for r in results for c in r]
        rest = videos[~videos["course_id"].isin(done)]
        unwatched = metrics.course_stats(schema.empty(schema.VIEWS), rest)
        store.write_table_part(self.stage, "course_stats", "unwatched", unwatched)


def _course_team(user_results: list[dict], previous: pd.DataFrame | None) -> pd.DataFrame:
    """The merged course_team table: the members earlier runs knew and this run's."""
    found = [r["team"] for r in user_results]
    new = pd.concat(found, ignore_index=True) if found else schema.empty(schema.COURSE_TEAM)
    return team.merge(new, previous)


def _iso_us(us: int | None) -> str | None:
    return None if us is None else pd.Timestamp(us * 1000, tz="UTC").isoformat()
