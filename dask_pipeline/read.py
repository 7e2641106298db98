"""Input listing and streaming of raw lines from plain or gzip files, local or fsspec URLs.

A *part* is what one Dask partition reads: a whole file, a byte range of a large plain
file, or, when there are fewer files than the cluster has threads, a range of a large gzip
file's compressed bytes (``_GzipRange``). ``iter_blocks`` yields a part's bytes in large
blocks that end on a line boundary, so that decoding works over whole lines without ever
holding a whole file.
"""

from __future__ import annotations

import contextlib
import glob
import io
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

try:  # ISA-L inflates about three times faster than zlib
    from isal import isal_zlib as _zlib
except ImportError:  # pragma: no cover - isal is a dependency, this is a safety net
    import zlib as _zlib

BLOCK = 16 << 20  # bytes of text handed to the decoder at a time
SPLIT = 256 << 20  # plain files larger than this are read as several byte ranges


class InputError(ValueError):
    """An input argument names nothing readable (a usage error, exit status 2)."""


class ReadError(Exception):
    """A file could not be read (wholly or from some point on); ``kind`` names why."""

    def __init__(self, kind: str, detail: str):
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail


@dataclass(frozen=True)
class Part:
    """One partition's input: file ``file`` of the ordered input list, bytes [start, end)
    (``end`` None: to the end; of a gzip file, compressed bytes). ``first`` is True for the
    part that starts the file."""

    file: int
    path: str
    start: int = 0
    end: int | None = None

    @property
    def first(self) -> bool:
        return self.start == 0

    @property
    def gzip(self) -> bool:
        return _is_gzip(self.path)


def _is_url(p: str) -> bool:
    return "://" in p and not p.startswith("file://")


def _is_gzip(path: str) -> bool:
    return path.endswith(".gz")


def list_inputs(inputs: Sequence[str]) -> list[str]:
    """Expand files, directories (their ``tracking.log*`` files, or if none every visible
    file, in name order) and globs (in name order) into an ordered list of files; fsspec
    URLs are expanded by their filesystem.

    Raises InputError when an argument matches nothing. Local paths come back absolute,
    since the workers that read them may run elsewhere than this process.
    """
    found = _list(inputs)
    return [f if _is_url(f) else os.path.abspath(f) for f in found]


def _list(inputs: Sequence[str]) -> list[str]:
    out: list[str] = []
    for arg in inputs:
        if _is_url(arg):
            out += _list_url(arg)
            continue
        arg = arg.removeprefix("file://")
        if os.path.isdir(arg):
            files = _dir_files(arg)
            if not files:
                raise InputError(f"no file in directory {arg!r}")
            out += files
        elif glob.has_magic(arg):
            found = sorted(p for p in glob.glob(arg) if os.path.isfile(p))
            if not found:
                raise InputError(f"no file matches {arg!r}")
            out += found
        elif os.path.exists(arg):
            out.append(arg)
        else:
            raise InputError(f"no such file or directory: {arg!r}")
    return out


def skipped_by_name(inputs: Sequence[str]) -> list[str]:
    """The files of the local directories among ``inputs`` that the naming rule leaves out
    (visible files beside ``tracking.log*`` ones), for the run to name them."""
    out: list[str] = []
    for arg in inputs:
        arg = arg.removeprefix("file://")
        if _is_url(arg) or not os.path.isdir(arg):
            continue
        names = [n for n in os.listdir(arg) if os.path.isfile(os.path.join(arg, n))]
        picked = set(_pick_logs(names))
        out += [
            os.path.abspath(os.path.join(arg, n))
            for n in sorted(names)
            if n not in picked and not n.startswith(".")
        ]
    return out


def _pick_logs(names: list[str]) -> list[str]:
    """In a directory, the ``tracking.log*`` files when there are any (so a staff list or a
    README beside the logs is not read as a log), else every visible file; in name order."""
    names = sorted(n for n in names if not n.startswith("."))
    logs = [n for n in names if n.startswith("tracking.log")]
    return logs or names


def _dir_files(path: str) -> list[str]:
    names = [n for n in os.listdir(path) if os.path.isfile(os.path.join(path, n))]
    return [os.path.join(path, n) for n in _pick_logs(names)]


def _list_url(url: str) -> list[str]:
    import fsspec

    fs, _, paths = fsspec.get_fs_token_paths(url)
    found: list[str] = []
    for p in sorted(paths):
        if fs.isdir(p):
            files = {os.path.basename(f): f for f in fs.find(p, maxdepth=1)}
            found += [files[n] for n in _pick_logs(list(files))]
        else:
            found.append(p)
    if not found:
        raise InputError(f"no file matches {url!r}")
    proto = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    return [f if "://" in f else f"{proto}://{f}" for f in found]


def _size(path: str) -> int:
    if _is_url(path):
        import fsspec

        fs, _, (p,) = fsspec.get_fs_token_paths(path)
        return int(fs.size(p))
    return os.path.getsize(path)


def file_size(path: str) -> int | None:
    """Size in bytes, or None when it cannot be read."""
    try:
        return _size(path)
    except OSError:
        return None


def plan_parts(
    paths: Sequence[str], split: int | None = None, workers: int = 1, gzip_min: int | None = None
) -> list[Part]:
    """One part per file; plain files larger than ``split`` (default SPLIT) become byte
    ranges; with fewer parts than ``workers``, large local gzip files become ranges of
    compressed bytes too (``_GzipRange``; not below ``gzip_min``, default GZIP_SPLIT_MIN), so
    that one night's file keeps every worker busy."""
    split = split or SPLIT
    parts: list[Part] = []
    for i, path in enumerate(paths):
        size = file_size(path)
        if _is_gzip(path) or size is None or size <= split:
            parts.append(Part(i, path))
            continue
        for start in range(0, size, split):
            parts.append(Part(i, path, start, min(start + split, size)))
    if 0 < len(parts) < workers:
        n = -(-workers // len(parts))
        parts = [r for p in parts for r in _gzip_ranges(p, n, gzip_min or GZIP_SPLIT_MIN)]
    return parts


GZIP_SPLIT_MIN = 16 << 20  # compressed bytes: a smaller gzip file is read whole
#: At most this many lines per compressed byte (deflate inflates at most 1032-fold, a line is
#: at least one byte): the line numbers of a gzip range start past its predecessors'.
GZIP_LINES_PER_BYTE = 2048


#: Inflating a stretch of gzip costs about this share of decoding it (ISA-L against the
#: prefilter and decoder, real-mix logs): it sets where ``_gzip_ranges`` cuts.
INFLATE_PER_DECODE = 1 / 3


def _gzip_ranges(part: Part, n: int, smallest: int) -> list[Part]:
    """A whole local gzip file as ``n`` ranges of compressed bytes (itself when smaller than
    ``smallest``).

    Range j inflates the file up to its end e_j and decodes from e_{j-1}: with inflate cost
    i and decode cost d, i*e_j + d*(e_j - e_{j-1}) is the same for every range when
    e_j = (1 - r**j) / (1 - r**n), r = d / (i + d)."""
    size = file_size(part.path)
    whole = part.end is not None or not _is_gzip(part.path) or _is_url(part.path)
    if n < 2 or whole or size is None or size < smallest:
        return [part]
    r = 1 / (1 + INFLATE_PER_DECODE)
    cuts = [int(size * (1 - r**j) / (1 - r**n)) for j in range(1, n)]
    bounds = zip([0, *cuts], [*cuts, None], strict=True)
    return [Part(part.file, part.path, a, b) for a, b in bounds]


GZIP_RATIO = 8  # tracking logs inflate about eightfold
GROUP = 64 << 20  # small inputs are read together until about this much text


def text_size(part: Part) -> int:
    """About how many bytes of text a part holds (gzip sizes scaled by GZIP_RATIO)."""
    end = part.end if part.end is not None else file_size(part.path) or 0
    return (end - part.start) * (GZIP_RATIO if part.gzip else 1)


def group_parts(parts: Sequence[Part], target: int | None = None) -> list[list[Part]]:
    """Consecutive parts packed into groups of about ``target`` bytes of text, one Dask
    partition each: a directory of many small logs then makes a few tasks, not thousands.
    A part is never split and order is kept."""
    target = target or GROUP
    groups: list[list[Part]] = []
    size = 0
    for p in parts:
        n = text_size(p)
        if groups and size + n <= target:
            groups[-1].append(p)
            size += n
        else:
            groups.append([p])
            size = n
    return groups


def _open_raw(path: str) -> io.BufferedIOBase:
    if _is_url(path):
        import fsspec

        return fsspec.open(path, "rb").open()
    return open(path, "rb")  # noqa: SIM115 - closed by the caller


def iter_blocks(part: Part, block: int = BLOCK) -> Iterator[memoryview]:
    """Yield the part's text in blocks that end on a line boundary (the last may not).

    Each block is a view into one buffer that the next block reuses: use it (or copy it)
    before asking for the next. Reusing the buffer spares the page faults of a fresh
    allocation per block, which a Dask worker pays in full (its nanny sets
    MALLOC_TRIM_THRESHOLD_, so every large allocation is a new mapping).

    A line belongs to the part in which it starts. Raises ReadError("unreadable") when the
    file cannot be opened, ReadError("not_gzip") for a ``.gz`` that is not gzip, and
    ReadError("truncated_gzip") / ("corrupt_gzip") after yielding every line read before
    the damage (the cut line included, as the last block).
    """
    try:
        raw = _open_raw(part.path)
    except OSError as e:
        raise ReadError("unreadable", str(e)) from e
    with raw:
        try:
            if _is_gzip(part.path):
                yield from _gzip_blocks(raw, block, part.start, part.end)
            else:
                yield from _plain_blocks(raw, part, block)
        except OSError as e:  # a read failing after the open (EIO, a lost network mount)
            raise ReadError("unreadable", str(e)) from e


class _LineBuffer:
    """A reused buffer: text goes in, blocks of whole lines come out as views of it."""

    def __init__(self, block: int):
        self.block = block
        self.buf = bytearray(block + (block >> 2))
        self.view = memoryview(self.buf)
        self.fill = 0  # bytes of text held
        self.taken = 0  # bytes handed out by take(), dropped at the next call

    def _settle(self) -> None:
        """Drop what take() handed out; the partial line after it moves to the front."""
        if self.taken:
            tail = bytes(self.view[self.taken : self.fill])
            self.view[: len(tail)] = tail
            self.fill, self.taken = len(tail), 0

    def room(self, want: int) -> memoryview:
        """A writable view of at least ``want`` bytes after the text held."""
        self._settle()
        if len(self.buf) - self.fill < want:
            # a new buffer: a view handed out earlier stays valid over the old one
            bigger = bytearray(max(2 * len(self.buf), self.fill + want))
            bigger[: self.fill] = self.view[: self.fill]
            self.buf, self.view = bigger, memoryview(bigger)
        return self.view[self.fill :]

    def add(self, data) -> None:
        k = len(data)
        self.room(k)[:k] = data
        self.fill += k

    @property
    def full(self) -> bool:
        return self.fill - self.taken >= self.block

    def take(self) -> memoryview | None:
        """The whole lines held (valid until the next call), or None if no line ended."""
        self._settle()
        cut = self.buf.rfind(b"\n", 0, self.fill)
        if cut < 0:
            return None
        self.taken = cut + 1
        return self.view[: cut + 1]

    def rest(self) -> Iterator[memoryview]:
        """Everything still held, the last line's end or not."""
        self._settle()
        if self.fill:
            self.taken = self.fill
            yield self.view[: self.fill]


COMPRESSED_CHUNK = 64 << 10  # gzip input read at a time
PIECE = 32 << 10  # inflated text at most per call: small pieces come from reused memory


def _gzip_pieces(raw) -> Iterator[tuple[bytes, int]]:
    """Inflate member after member: (text, compressed bytes consumed so far) per inflate
    call, the same calls for every reader of the file. Raises ReadError after the last good
    piece (``not_gzip``, ``corrupt_gzip``, ``truncated_gzip``, ``unreadable``)."""
    src = bytearray(COMPRESSED_CHUNK)
    src_view = memoryview(src)
    readinto = getattr(raw, "readinto", None)
    dec = _zlib.decompressobj(wbits=31)
    started = False  # some input was accepted as gzip
    in_member = False  # inside a member that has not ended yet
    total = 0
    while True:
        try:
            k = readinto(src) if readinto else _read_into(raw, src)
        except OSError as e:
            raise ReadError("unreadable", str(e)) from e
        if not k:
            break
        total += k
        data = src_view[:k]
        while data:
            in_member = True
            try:
                piece = dec.decompress(data, PIECE)
            except (_zlib.error, ValueError) as e:
                raise ReadError("corrupt_gzip" if started else "not_gzip", str(e)) from e
            started = True
            if dec.eof:  # a member ended; another may follow
                in_member = False
                data = dec.unused_data
                dec = _zlib.decompressobj(wbits=31)
                if data.strip(b"\0") == b"":
                    data = b""
            else:
                data = dec.unconsumed_tail
            yield piece, total - len(data)
    if in_member:
        # output the PIECE limit held back, for want of input to push it out
        with contextlib.suppress(_zlib.error, ValueError):
            yield dec.flush(), total
        raise ReadError("truncated_gzip", "the file ends inside a gzip member")


class _GzipRange:
    """Which text of a gzip file belongs to the part of compressed bytes [start, end).

    The file's text is cut where the first inflate call that reaches a part's compressed
    start begins; a line belongs to the part in which it starts. Every part inflates from
    the file's beginning, so neighbours agree on the cut. States: ``wait`` (before the
    start), ``find`` (at the start, looking for a line start), ``emit``, ``tail`` (past the
    end, finishing the line that straddles it), ``done``."""

    def __init__(self, start: int, end: int | None):
        self.start, self.end = start, end
        self.state = "emit" if start == 0 else "wait"
        self.newline_before = True  # the text so far ends with a newline (or is empty)

    def cut(self, piece: bytes, consumed: int) -> bytes:
        """The part's share of one inflate call's text (``consumed``: after the call)."""
        if self.state == "wait" and consumed >= self.start:
            self.state = "emit" if self.newline_before else "find"
        if self.end is not None and consumed >= self.end and self.state in ("find", "emit"):
            self.state = "done" if self.state == "find" or self.newline_before else "tail"
        out = b""
        if self.state == "find":
            nl = piece.find(b"\n")
            if nl >= 0:
                self.state, out = "emit", piece[nl + 1 :]
        elif self.state == "emit":
            out = piece
        elif self.state == "tail":
            nl = piece.find(b"\n")
            out = piece if nl < 0 else piece[: nl + 1]
            if nl >= 0:
                self.state = "done"
        if piece:
            self.newline_before = piece.endswith(b"\n")
        return out

    @property
    def responsible(self) -> bool:
        """Whether damage met now is this part's to report (an earlier part still reads
        while this one waits)."""
        return self.state != "wait"


def _gzip_blocks(raw, block: int, start: int = 0, end: int | None = None) -> Iterator[memoryview]:
    """A gzip part's text in blocks of whole lines, handed on as soon as they are out, so
    that the lines before any damage are kept."""
    lines = _LineBuffer(block)
    rng = _GzipRange(start, end)
    try:
        for piece, consumed in _gzip_pieces(raw):
            text = rng.cut(piece, consumed)
            if text:
                lines.add(text)
            if rng.state == "done":
                break
            if lines.full:
                out = lines.take()
                if out is not None:
                    yield out
    except ReadError:
        yield from lines.rest()
        if rng.responsible:
            raise
        return
    yield from lines.rest()


def _read_into(raw, buf: bytearray) -> int:
    data = raw.read(len(buf))
    buf[: len(data)] = data
    return len(data)


def _plain_blocks(raw, part: Part, block: int) -> Iterator[memoryview]:
    if part.start:
        # Skip the line that started in the previous part (it belongs there).
        raw.seek(part.start - 1)
        head = raw.read(1)
        if head != b"\n":
            raw.readline()
    lines = _LineBuffer(block)
    pos = raw.tell()
    end = part.end
    readinto = getattr(raw, "readinto", None)
    while end is None or pos < end:
        want = block if end is None else min(block, end - pos)
        room = lines.room(want)[:want]
        k = raw.readinto(room) if readinto else _read_into_view(raw, room)
        if not k:
            break
        lines.fill += k
        pos += k
        if lines.full:
            out = lines.take()
            if out is not None:
                yield out
    if end is not None and pos >= end and lines.fill and lines.buf[lines.fill - 1] != 10:
        lines.add(raw.readline())  # finish the line that straddles the end
    out = lines.take()
    if out is not None:
        yield out
    yield from lines.rest()


def _read_into_view(raw, room: memoryview) -> int:
    data = raw.read(len(room))
    room[: len(data)] = data
    return len(data)
