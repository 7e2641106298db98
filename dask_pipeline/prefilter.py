"""Which lines of a block the decoder needs to read, found without a Python loop over lines.

Pure: bytes in, NumPy arrays out; no I/O, no Dask. A *candidate* is a line in which the
``PATTERN`` regex matches: a top-level-looking ``"event_type"`` or ``"name"`` whose value is a
video event name (SPEC §4, any spelling ``vocabulary`` knows), or one that holds a
``vocabulary.TEAM_MARKERS`` substring (a course-team event), or a ``\\u`` escape anywhere
(an escape could spell any of them; JSON has no other escape that makes a letter). The decoder
tells a video or team event only by those two fields, so a line the pattern does not match is
neither, whatever else it holds (nested keys of the same names only add candidates).

A line that is not a candidate is *accepted unread* when it has the shape of one JSON object
(its first byte is ``{``, its last ``}`` before an optional ``\\r``) and is UTF-8: the job reads
nothing in it, so nothing in it can be lost. Every other line goes through the decoder, which
skips blanks and comments, strips a syslog prefix, and rejects a bad line with its reason.
Activity counts (``--min-events``) need every line's (course, user), so the decoder then reads
every line and this module is not used.
"""

from __future__ import annotations

import re

import numpy as np
import pyarrow as pa

from . import vocabulary

try:  # a Rust regex over the whole block: about 5x faster than pyarrow's RE2 here
    import polars as pl
except ImportError:  # pragma: no cover - polars is a dependency
    pl = None


def _pattern() -> str:
    ws = r"[ \t\r]*"  # JSON whitespace (a line holds no newline)
    key = '"(?:event_type|name)"' + ws + ":" + ws + '"'
    names = sorted(vocabulary.VIDEO_EVENTS | set(vocabulary.ALIASES))
    video = key + "(?:" + "|".join(map(re.escape, names)) + ')"'
    team = key + r'(?:[^"\\]|\\.)*?(?:' + "|".join(map(re.escape, vocabulary.TEAM_MARKERS)) + ")"
    return f"{video}|{team}|\\\\u"


#: The candidate regex (same syntax for Rust's regex crate and Python's re).
PATTERN = _pattern()
_RE = re.compile(PATTERN.encode())

_OPEN, _CLOSE, _CR, _NL = ord("{"), ord("}"), ord("\r"), ord("\n")


def is_candidate(line: bytes) -> bool:
    """The rule for one line (the per-line form of ``needed``)."""
    return _RE.search(line) is not None


def unread(line: bytes) -> bool:
    """True when a line is accepted without being decoded (the per-line form of ``needed``)."""
    if is_candidate(line):
        return False
    body = line[:-1] if line.endswith(b"\r") else line
    if body[:1] != b"{" or body[-1:] != b"}":
        return False
    try:
        line.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


class Scanner:
    """``needed`` with a scratch buffer kept from block to block (a fresh 16 MB temporary per
    block would be page-faulted in again in a Dask worker)."""

    def __init__(self) -> None:
        self._scratch = np.empty(0, dtype=bool)

    def newlines(self, u8: np.ndarray) -> np.ndarray:
        if len(self._scratch) < len(u8):
            self._scratch = np.empty(len(u8) + (len(u8) >> 2), dtype=bool)
        mask = self._scratch[: len(u8)]
        np.equal(u8, _NL, out=mask)
        return np.flatnonzero(mask)

    def needed(self, block) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """(indexes of the lines the decoder must read, line starts, line ends) of a block;
        the other lines are accepted unread. None when the block is not UTF-8."""
        u8 = np.frombuffer(block, dtype=np.uint8)
        starts, ends = _bounds(self.newlines(u8), len(u8))
        cand = _contains(block, u8, starts, ends)
        if cand is None:
            return None
        return np.flatnonzero(cand | ~_shaped(u8, starts, ends)), starts, ends


def needed(block) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """``Scanner().needed(block)``."""
    return Scanner().needed(block)


def _bounds(nl: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(starts, ends) byte offsets of the lines, newlines excluded; a last line without a
    newline counts."""
    ends = nl if size == 0 or (len(nl) and nl[-1] == size - 1) else np.append(nl, size)
    ends = ends.astype(np.int64)
    starts = np.empty(len(ends), dtype=np.int64)
    starts[:1] = 0
    starts[1:] = ends[:-1] + 1
    return starts, ends


def _contains(block, u8: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray | None:
    """Candidate mask over the lines, by one regex pass over an Arrow view of the block (no
    copy of the text); None when the block is not UTF-8 (the caller goes line by line)."""
    offsets = np.empty(len(starts) + 1, dtype=np.int64)
    offsets[:-1] = starts
    offsets[-1] = ends[-1] if len(ends) else 0
    # each line's slice runs to the next line's start: the newline stays inside, harmlessly
    arr = pa.Array.from_buffers(
        pa.large_string(), len(starts), [None, pa.py_buffer(offsets), pa.py_buffer(block)]
    )
    if u8.max(initial=0) >= 0x80:  # ASCII is UTF-8 (Python's json writes ASCII by default)
        try:
            arr.validate(full=True)  # UTF-8 (polars trusts its input)
        except pa.ArrowInvalid:
            return None
    return _match(arr)


def _match(arr: pa.Array) -> np.ndarray:
    if pl is None:  # pragma: no cover
        import pyarrow.compute as pc

        return pc.match_substring_regex(arr, PATTERN).to_numpy(zero_copy_only=False)
    return pl.from_arrow(arr).str.contains(PATTERN).to_numpy()


def _shaped(u8: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Lines whose first byte is ``{`` and last ``}`` (before an optional ``\\r``)."""
    n = len(starts)
    nonempty = ends > starts
    first = np.zeros(n, dtype=np.uint8)
    first[nonempty] = u8[starts[nonempty]]
    last = np.zeros(n, dtype=np.uint8)
    last[nonempty] = u8[ends[nonempty] - 1]
    cr = nonempty & (last == _CR) & (ends - starts >= 2)
    last[cr] = u8[ends[cr] - 2]
    return (first == _OPEN) & (last == _CLOSE)
