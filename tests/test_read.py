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
