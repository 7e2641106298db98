"""The run's health, from its ``_run.json``: lines read, rejected by reason, files with
errors and the window, so a reader knows what the numbers below stand on."""

from __future__ import annotations

from collections import Counter
from html import escape


def _int(x: object) -> int:
    return int(x) if isinstance(x, int | float) else 0


def rejected_by_reason(run: dict) -> Counter:
    """Rejected lines per reason, summed over the run's inputs."""
    out: Counter = Counter()
    for inp in run.get("inputs") or []:
        for reason, n in (inp.get("rejected") or {}).items():
            out[str(reason)] += _int(n)
    return out


def _error_text(e: object) -> str:
    if isinstance(e, dict):
        kind, detail = e.get("kind", "error"), e.get("detail")
        return f"{kind} ({detail})" if detail else str(kind)
    return str(e)


def files_with_errors(run: dict) -> list[tuple[str, str]]:
    """(path, first error) of every input with an error or whose lines do not add up."""
    out = []
    for inp in run.get("inputs") or []:
        errors = inp.get("errors") or []
        if errors or inp.get("balanced") is False:
            first = _error_text(errors[0]) if errors else "lines do not add up"
            out.append((str(inp.get("path", "?")), first))
    return out


def window_text(run: dict) -> str:
    """The run's window as the reader gave it: its days, or everything given."""
    w = run.get("window") or {}
    opts = run.get("options") or {}
    since, until = w.get("since", opts.get("since")), w.get("until", opts.get("until"))
    tz = w.get("tz") or opts.get("tz") or "UTC"
    if not since and not until:
        return f"every day of the input ({tz})"
    return f"{since or 'the start'} to {until or 'the end'} ({tz})"


def health_html(run: dict) -> str:
    """The run-health block: a line of counts, the reasons, the files with errors."""
    if not run.get("lines"):
        return '<p class="muted" data-k="health">No run summary (_run.json) found.</p>'
    lines = run["lines"]
    inputs = run.get("inputs") or []
    reasons = rejected_by_reason(run)
    bad = files_with_errors(run)
    cells = [
        ("Lines read", f"{_int(lines.get('lines')):,}", "lines_read"),
        ("Accepted", f"{_int(lines.get('accepted')):,}", "lines_accepted"),
        ("Skipped", f"{_int(lines.get('skipped')):,}", "lines_skipped"),
        ("Rejected", f"{_int(lines.get('rejected')):,}", "lines_rejected"),
        ("Files", f"{len(inputs):,}", "files"),
        ("Files with errors", f"{len(bad):,}", "files_with_errors"),
        ("Window", escape(window_text(run)), "window"),
    ]
    head = "".join(f"<th>{h}</th>" for h, _, _ in cells)
    row = "".join(f'<td data-k="{k}">{v}</td>' for _, v, k in cells)
    html = f'<table class="health"><tr>{head}</tr><tr>{row}</tr></table>'
    if reasons:
        by = ", ".join(f"{escape(r)} {n:,}" for r, n in sorted(reasons.items()))
        html += f'<p class="muted">Rejected by reason: <span data-k="rejected_by">{by}</span></p>'
    for path, err in bad:
        html += f'<div class="note" data-k="file_error">{escape(path)}: {escape(err)}</div>'
    return html
