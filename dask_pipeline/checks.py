"""What a run warns about its inputs (SPEC §7): files a directory's naming rule skipped
whose names look like logs, files that hold no usable line, files whose lines are mostly
rejected. ``--strict`` makes any of these fatal. Pure.
"""

from __future__ import annotations

import os

#: a file is suspicious when more than this share of its lines is rejected
MOSTLY_REJECTED = 0.5


#: endings of a file name that may well be a log the naming rule left out
LOG_LIKE = (".gz", ".json", ".jsonl", ".ndjson")


def looks_like_log(path: str) -> bool:
    """Whether a skipped file's name suggests a log (not a staff list or a README)."""
    name = os.path.basename(path).lower()
    return "log" in name or name.endswith(LOG_LIKE)


def skipped_warnings(skipped: list[str]) -> list[str]:
    """One warning naming the skipped files that look like logs (every skipped file is
    listed in ``_run.json``)."""
    skipped = [p for p in skipped if looks_like_log(p)]
    if not skipped:
        return []
    return [
        f"skipped {len(skipped)} file(s) not named tracking.log* beside the logs: "
        + ", ".join(skipped)
        + " (name them as inputs to read them)"
    ]


def file_warnings(inputs: list[dict]) -> list[str]:
    """Loud warnings for the files of a run summary's ``inputs`` that look like no tracking
    log: no line accepted at all, or most lines rejected. Read errors are reported apart."""
    out = []
    for f in inputs:
        lines, accepted, rejected = f["lines"], f["accepted"], f["rejected_total"]
        if f["errors"] and lines == 0:
            continue  # unreadable: its read error says so
        if accepted == 0:
            why = (
                "is empty"
                if lines == 0
                else f"has {lines} line(s) and none is a tracking-log event"
            )
            out.append(f"{f['path']} {why}: is it a tracking log?")
        elif rejected > MOSTLY_REJECTED * lines:
            top = sorted(f["rejected"].items(), key=lambda kv: -kv[1])[:3]
            reasons = ", ".join(f"{k} {v}" for k, v in top)
            out.append(
                f"{f['path']}: {rejected} of its {lines} lines ({rejected / lines:.0%}) were "
                f"rejected ({reasons}): is it a tracking log?"
            )
    return out
