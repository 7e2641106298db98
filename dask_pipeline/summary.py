"""The short terminal summary printed at the end of ``run``."""

from __future__ import annotations

from pathlib import Path

from . import schema, store


def terminal_summary(out: Path, run: dict, seconds: float, top: int = 5) -> str:
    """Lines read and rejected, segments, viewers, the top videos by viewers, and where
    the tables are."""
    lines = run["lines"]
    counts = run["counts"]
    stats = store.read_table(out, "video_stats")
    views = store.read_table(out, "views")
    rate = lines["lines"] / seconds if seconds > 0 else 0.0
    rows = [
        f"done in {seconds:.1f} s ({rate:,.0f} lines/s)",
        f"lines read     {lines['lines']:>12,}   accepted {lines['accepted']:,}, "
        f"skipped {lines['skipped']:,}, rejected {lines['rejected']:,}",
        f"segments       {counts.get('segments', 0):>12,}   (this run's window)",
        f"viewers        {views['username'].nunique():>12,}   over {len(stats):,} videos",
    ]
    watched = stats[stats["viewers"] > 0].sort_values(
        ["viewers", "course_id", "video_id"], ascending=[False, True, True]
    )
    if len(watched):
        rows.append("top videos by viewers:")
        for r in watched.head(top).itertuples():
            cov = "" if r.mean_coverage != r.mean_coverage else f", coverage {r.mean_coverage:.0%}"
            rows.append(f"  {r.viewers:>6,}  {r.course_id}  {r.video_id}{cov}")
    rows.append(f"tables in {out}/ ({', '.join(schema.TABLES)}; rejects/ and _run.json)")
    return "\n".join(rows)
