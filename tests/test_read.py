"""read: input listing, byte ranges of plain files, gzip streaming and damage."""

from __future__ import annotations

import gzip
import os

import pytest

from dask_pipeline import read


def _lines(n: int, width: int = 20) -> list[bytes]:
    return [f"line {i:06d} ".encode().ljust(width, b"x") for i in range(n)]


def _collect(part: read.Part, block: int = 64) -> bytes:
    # each block is a view of a reused buffer: copied before the next is asked for
    return b"".join(bytes(b) for b in read.iter_blocks(part, block=block))


@pytest.mark.parametrize("split", [1, 7, 64, 100, 333, 10_000])
def test_byte_ranges_cover_every_line_once(tmp_path, split):
    lines = _lines(200, width=13) + [b"", b"last without newline"]
    data = b"\n".join(lines)
    p = tmp_path / "t.log"
    p.write_bytes(data)
    parts = read.plan_parts([str(p)], split=split)
    assert len(parts) == -(-len(data) // split)
    got = b"".join(_collect(pt, block=37) for pt in parts)
    assert got == data


def test_blocks_end_on_line_boundaries(tmp_path):
    p = tmp_path / "t.log"
    p.write_bytes(b"\n".join(_lines(500)) + b"\n")
    blocks = [bytes(b) for b in read.iter_blocks(read.Part(0, str(p)), block=100)]
    assert len(blocks) > 5
    assert all(b.endswith(b"\n") for b in blocks)


def test_gzip_whole_and_truncated(tmp_path):
    data = b"\n".join(_lines(5000)) + b"\n"
    p = tmp_path / "t.log.gz"
    p.write_bytes(gzip.compress(data))
    assert _collect(read.Part(0, str(p)), block=1 << 12) == data
    cut = tmp_path / "cut.log.gz"
    cut.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2])
    got = []
    with pytest.raises(read.ReadError) as e:
        for b in read.iter_blocks(read.Part(0, str(cut)), block=1 << 12):
            got.append(bytes(b))
    assert e.value.kind == "truncated_gzip"
    text = b"".join(got)
    assert len(text) > 1000 and data.startswith(text)


def test_not_gzip_and_unreadable(tmp_path):
    bad = tmp_path / "x.log.gz"
    bad.write_bytes(b"this is not gzip\n")
    with pytest.raises(read.ReadError) as e:
        list(read.iter_blocks(read.Part(0, str(bad))))
    assert e.value.kind == "not_gzip"
    locked = tmp_path / "locked.log"
    locked.write_bytes(b"{}\n")
    os.chmod(locked, 0)
    if os.access(locked, os.R_OK):  # root reads anything: use a path that cannot be opened
        locked = tmp_path / "missing.log"
    with pytest.raises(read.ReadError) as e:
        list(read.iter_blocks(read.Part(0, str(locked))))
    assert e.value.kind == "unreadable"


def test_list_inputs_orders_dirs_and_globs(tmp_path):
    for n in ("b.log", "a.log.gz", ".hidden", "c.txt"):
        (tmp_path / n).write_bytes(b"")
    (tmp_path / "sub").mkdir()
    got = read.list_inputs([str(tmp_path)])
    assert [os.path.basename(x) for x in got] == ["a.log.gz", "b.log", "c.txt"]
    got = read.list_inputs([str(tmp_path / "*.log*")])
    assert [os.path.basename(x) for x in got] == ["a.log.gz", "b.log"]
    with pytest.raises(read.InputError):
        read.list_inputs([str(tmp_path / "nope.log")])
    with pytest.raises(read.InputError):
        read.list_inputs([str(tmp_path / "*.nothing")])


def test_fsspec_url_memory_filesystem():
    import fsspec

    fs = fsspec.filesystem("memory")
    fs.pipe("/logs/b.log", b'{"a": 1}\n')
    fs.pipe("/logs/a.log.gz", gzip.compress(b'{"b": 2}\n'))
    paths = read.list_inputs(["memory://logs/"])
    assert [p.rsplit("/", 1)[1] for p in paths] == ["a.log.gz", "b.log"]
    assert _collect(read.Part(0, paths[0])) == b'{"b": 2}\n'
    assert _collect(read.Part(1, paths[1])) == b'{"a": 1}\n'


def test_truncated_gzip_yields_every_byte_inflated_before_the_cut(tmp_path):
    """Inflating in small pieces holds some text back until more input comes: at the cut it
    is flushed, so the text read is what zlib gets out of the same bytes, to a few bytes."""
    import zlib

    data = b"\n".join(_lines(20000, width=60)) + b"\n"
    gz = gzip.compress(data, 6)
    cut = tmp_path / "cut.log.gz"
    cut.write_bytes(gz[: len(gz) * 2 // 3])
    want = zlib.decompressobj(wbits=31).decompress(cut.read_bytes())
    got = []
    with pytest.raises(read.ReadError):
        for b in read.iter_blocks(read.Part(0, str(cut)), block=1 << 14):
            got.append(bytes(b))
    text = b"".join(got)
    # ISA-L may keep a few bytes of the last partial deflate symbol run that zlib lets out
    assert want.startswith(text) and len(want) - len(text) < 64


# ------------------------------------------------ a gzip file read as ranges of its bytes
def _random_log(rng, n: int) -> bytes:
    """Lines of random hex (compressing little, so the file has many inflate calls), with
    empty lines, lines longer than an inflate piece, and no final newline."""
    sizes = rng.choice([0, 1, 40, 300, 900, 70_000], size=n, p=[0.05, 0.05, 0.4, 0.3, 0.19, 0.01])
    return b"\n".join(rng.bytes(int(k) // 2 + 1).hex()[: int(k)].encode() for k in sizes)


def _gzip_parts(tmp_path, data: bytes, n: int, members: int = 1) -> list[read.Part]:
    p = tmp_path / "t.log.gz"
    step = -(-len(data) // members)
    p.write_bytes(b"".join(gzip.compress(data[i : i + step]) for i in range(0, len(data), step)))
    parts = read.plan_parts([str(p)], workers=n, gzip_min=1)
    assert len(parts) == n and parts[0].start == 0 and parts[-1].end is None
    return parts


def _read_all(part: read.Part) -> tuple[bytes, str | None]:
    got, kind = [], None
    try:
        for b in read.iter_blocks(part, block=1 << 16):
            got.append(bytes(b))
    except read.ReadError as e:
        kind = e.kind
    return b"".join(got), kind


@pytest.mark.parametrize("n,members,seed", [(2, 1, 0), (3, 1, 1), (5, 1, 2), (2, 3, 3), (4, 2, 4)])
def test_gzip_ranges_cover_every_line_once(tmp_path, n, members, seed):
    import numpy as np

    data = _random_log(np.random.default_rng(seed), 4000)
    parts = _gzip_parts(tmp_path, data, n, members)
    texts = [_read_all(p) for p in parts]
    assert [k for _, k in texts] == [None] * n
    assert b"".join(t for t, _ in texts) == data
    # every range ends on a line end (but the last) and holds a share of the text
    assert all(t.endswith(b"\n") and len(t) > len(data) // (4 * n) for t, _ in texts[:-1])


@pytest.mark.parametrize("damage", ["truncated", "corrupt"])
def test_gzip_ranges_report_damage_once_and_keep_every_line_before_it(tmp_path, damage):
    import numpy as np

    data = _random_log(np.random.default_rng(9), 4000)
    parts = _gzip_parts(tmp_path, data, 3)
    path = tmp_path / "t.log.gz"
    raw = bytearray(path.read_bytes())
    at = int(len(raw) * 0.55)  # inside the second range
    if damage == "truncated":
        raw = raw[:at]
    else:
        raw[at : at + 64] = bytes(64)
    path.write_bytes(bytes(raw))
    whole, kind = _read_all(read.Part(0, str(path)))
    assert kind == f"{damage}_gzip"
    texts = [_read_all(p) for p in parts]
    assert [k for _, k in texts].count(kind) == 1 and all(k in (None, kind) for _, k in texts)
    assert b"".join(t for t, _ in texts) == whole


def test_a_gzip_log_read_as_ranges_gives_the_events_rejects_and_counts_of_one_read(tmp_path):
    """The user stage sees the same events in the same order, and the ledger gives the
    rejects their file line numbers, as when the file is read whole."""
    import numpy as np
    import pandas as pd

    from dask_pipeline import decode, ingest, ledger

    from .conftest import video_line

    rng = np.random.default_rng(5)
    lines = []
    for i in range(30_000):
        t = f"2026-03-0{1 + i % 3}T10:{i % 60:02d}:{i % 59:02d}.{i:06d}+00:00"
        p = {"id": f"v{i % 7}", "code": "html5", "currentTime": float(i % 300)}
        lines.append(video_line(f"u{i % 97}", "course-v1:X+Y+Z", "play_video", t, p))
        if rng.random() < 0.01:
            lines.append("{not json" + rng.bytes(8).hex())
        lines.append(rng.bytes(200).hex())  # rejected: not JSON; and little to compress
    p = tmp_path / "t.log.gz"
    p.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))

    def read_parts(parts):
        out = [
            ingest.read_part(pt, i, first, decode.Window(), False)
            for i, (pt, first) in enumerate(zip(parts, ledger.first_lines(parts), strict=True))
        ]
        offsets = ledger.line_offsets([s for _, _, s in out])
        staged = pd.concat([st for st, _, _ in out], ignore_index=True)
        rejects = pd.concat([ledger.renumber_rejects(r, offsets) for _, r, _ in out])
        totals = {k: sum(s[k] for _, _, s in out) for k in ("lines", "accepted", "skipped")}
        return staged, rejects.drop(columns="part").reset_index(drop=True), totals

    one = read_parts([read.Part(0, str(p))])
    parts = read.plan_parts([str(p)], workers=3, gzip_min=1)
    assert len(parts) == 3
    many = read_parts(parts)
    assert many[2] == one[2] and one[2]["lines"] == len(lines)
    pd.testing.assert_frame_equal(many[1], one[1])
    ev1, evn = one[0], many[0]
    assert evn["line"].is_monotonic_increasing  # the order SPEC §5 breaks ties with
    cols = [c for c in ev1.columns if c != "line"]
    pd.testing.assert_frame_equal(evn[cols], ev1[cols])


def test_gzip_ranges_only_for_large_local_gzip_files_and_fewer_parts_than_threads(tmp_path):
    assert read.plan_parts([], workers=4) == []
    gz, plain = tmp_path / "a.log.gz", tmp_path / "b.log"
    gz.write_bytes(gzip.compress(b"x\n" * 1000))
    plain.write_bytes(b"x\n" * 1000)
    size = gz.stat().st_size
    assert len(read.plan_parts([str(gz)], workers=4, gzip_min=size + 1)) == 1  # too small
    assert len(read.plan_parts([str(gz)], workers=4, gzip_min=size)) == 4
    assert len(read.plan_parts([str(gz), str(plain)], workers=2, gzip_min=1)) == 2  # enough
    assert len(read.plan_parts([str(plain)], workers=4, gzip_min=1)) == 1  # not gzip
    assert len(read.plan_parts(["memory://a.log.gz"], workers=4, gzip_min=1)) == 1  # a URL
