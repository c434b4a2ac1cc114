"""Manifest I/O over every storage the tool supports, atomic writes, streaming, line rules.

S3 is moto's server mode on 127.0.0.1 reached through s3fs (``tests/support/s3.py``).
"""

from __future__ import annotations

import io
import itertools
import tracemalloc
from pathlib import Path

import fsspec
import pytest

from tests.support.s3 import S3Endpoint
from totask_manifest._errors import StorageError, UsageError
from totask_manifest._manifest import ranges
from totask_manifest._manifest.io import iter_lines_from, read_lines, write_lines
from totask_manifest._manifest.line import BOM
from totask_manifest._storage import AtomicWriter, exists, join, read_bytes, size, write_bytes_atomic

SAMPLE = (
    BOM
    + b'{"source-ref":"s3://b/1.jpg","top":164.60000000000002}\r\n'
    + b"\n"
    + b'{"source": "caf\\u00e9", "lr": 1e-05}\n'
    + b"   \r\n"
    + b'{"source-ref":"s3://b/\xe2\x80\x8b.jpg","n":12345678901234567890}'
)


def roundtrip(src: str, dst: str) -> None:
    write_bytes_atomic(src, SAMPLE)
    n = write_lines(dst, read_lines(src))
    assert n == 5
    assert read_bytes(dst) == SAMPLE
    lines = list(read_lines(dst))
    assert [line.number for line in lines] == [1, 2, 3, 4, 5]
    assert lines[0].prefix == BOM and lines[0].record()["top"] == 164.60000000000002
    assert [line.newline for line in lines] == [b"\r\n", b"\n", b"\n", b"\r\n", b""]
    assert [line.is_blank for line in lines] == [False, True, False, True, False]
    assert lines[2].record() == {"source": "café", "lr": 1e-05}


def test_local_path(tmp_path: Path) -> None:
    roundtrip(str(tmp_path / "in.manifest"), str(tmp_path / "sub" / "out.manifest"))


def test_file_url(tmp_path: Path) -> None:
    roundtrip(f"file://{tmp_path}/in.manifest", f"file://{tmp_path}/deeper/out.manifest")
    assert (tmp_path / "deeper" / "out.manifest").read_bytes() == SAMPLE


def test_memory_url() -> None:
    roundtrip("memory://io-test/in.manifest", "memory://io-test/out/out.manifest")
    fs = fsspec.filesystem("memory")
    assert sorted(p.rsplit("/", 1)[-1] for p in fs.find("/io-test")) == ["in.manifest", "out.manifest"]
    fs.rm("/io-test", recursive=True)


def test_s3_url(s3: S3Endpoint) -> None:
    bucket = s3.new_bucket()
    roundtrip(f"{bucket}/jobs/in.manifest", f"{bucket}/jobs/out/output.manifest")
    names = sorted(p.rsplit("/", 1)[-1] for p in s3.filesystem().find(bucket))
    assert names == ["in.manifest", "output.manifest"]  # no temporary object left behind
    assert exists(f"{bucket}/jobs/in.manifest") and not exists(f"{bucket}/jobs/missing.manifest")
    assert size(f"{bucket}/jobs/in.manifest") == len(SAMPLE)


def test_s3_byte_ranges(s3: S3Endpoint) -> None:
    bucket = s3.new_bucket()
    url = f"{bucket}/ranges.manifest"
    write_bytes_atomic(url, SAMPLE)
    fs = s3.filesystem()
    whole = []
    with fs.open(url, "rb") as f:
        for start, end in ((0, 40), (40, 90), (90, None)):
            whole.extend(iter_lines_from(f, start=start, end=end))
    assert b"".join(line.raw for line in whole) == SAMPLE


# ---- atomic writing ------------------------------------------------------------------------------


class Boom(Exception):
    pass


def fail_midway(url: str) -> None:
    def lines():
        yield b'{"source":"a"}\n'
        yield b'{"source":"b"}\n'
        raise Boom("the job crashed")

    with pytest.raises(Boom):
        write_lines(url, lines())


def test_atomic_local_failure_leaves_nothing(tmp_path: Path) -> None:
    fail_midway(str(tmp_path / "out.manifest"))
    assert list(tmp_path.iterdir()) == []


def test_atomic_local_failure_removes_the_folders_it_made(tmp_path: Path) -> None:
    """Before: a write refused part way (``labeled`` or ``convert --to coco`` on a manifest with
    no label: "nothing was written") left the folders made for the file behind, empty. The
    folders the writer made go with its temporary; one there before, and one another file went
    into meanwhile, stay."""
    fail_midway(str(tmp_path / "a" / "b" / "out.manifest"))
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "kept").mkdir()
    fail_midway(str(tmp_path / "kept" / "a" / "out.manifest"))
    assert [p.name for p in tmp_path.rglob("*")] == ["kept"]
    writer = AtomicWriter(str(tmp_path / "c" / "d" / "out.manifest"))
    with pytest.raises(Boom), writer:
        (tmp_path / "c" / "theirs.txt").write_bytes(b"mine\n")
        raise Boom("stopped")
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == ["c", "c/theirs.txt", "kept"]


def test_atomic_local_failure_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "out.manifest"
    target.write_bytes(b'{"source":"old"}\n')
    fail_midway(str(target))
    assert target.read_bytes() == b'{"source":"old"}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["out.manifest"]


def test_atomic_local_file_appears_only_at_the_end(tmp_path: Path) -> None:
    target = tmp_path / "out.manifest"
    with AtomicWriter(str(target)) as f:
        f.write(b'{"source":"a"}\n')
        assert not target.exists()
        assert len(list(tmp_path.iterdir())) == 1  # the temporary file, beside the target
    assert target.read_bytes() == b'{"source":"a"}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["out.manifest"]


def test_a_close_error_after_the_rename_does_not_report_a_written_file_as_failed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The temporary is renamed into place before it is closed (its lock must outlive its name),
    and its bytes are synced before the rename: an error of ``close`` then (``EIO`` from a network
    file system) loses nothing, and raising it would report a failure while the new file stands."""
    import errno

    from totask_manifest._write_behind import WriteBehindFile

    def close_failing(self: WriteBehindFile) -> None:
        io.FileIO.close(self)  # the descriptor goes, as close(2) gives it up even when it fails
        raise OSError(errno.EIO, "Input/output error")

    target = tmp_path / "out.manifest"
    target.write_bytes(b'{"source":"old"}\n')
    monkeypatch.setattr(WriteBehindFile, "close", close_failing)
    with AtomicWriter(str(target)) as f:
        f.write(b'{"source":"new"}\n')
    assert target.read_bytes() == b'{"source":"new"}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["out.manifest"]


def test_atomic_memory_failure_leaves_nothing() -> None:
    fail_midway("memory://atomic-test/out.manifest")
    fs = fsspec.filesystem("memory")
    assert not fs.exists("/atomic-test/out.manifest")
    assert [p for p in fs.find("/atomic-test") if "tmp" in p] == []


def test_atomic_s3_failure_leaves_nothing(s3: S3Endpoint) -> None:
    bucket = s3.new_bucket()
    write_bytes_atomic(f"{bucket}/keep.manifest", b'{"source":"old"}\n')
    fail_midway(f"{bucket}/keep.manifest")
    fail_midway(f"{bucket}/new.manifest")
    assert s3.filesystem().find(bucket) == [f"{bucket[5:]}/keep.manifest"]
    assert read_bytes(f"{bucket}/keep.manifest") == b'{"source":"old"}\n'


def test_atomic_s3_failed_move_removes_the_temporary_object_despite_a_stale_listing(s3: S3Endpoint, monkeypatch) -> None:
    """s3fs answers ``exists`` (and the move's ``info``) from a cached listing of the folder. A
    listing taken by another thread while the temporary object was uploaded, stored again right
    after each invalidation, made the move fail (FileNotFoundError) and the abort's ``exists``
    say no: the temporary object stayed in the job folder. The abort now deletes it outright."""
    bucket = s3.new_bucket()
    write_bytes_atomic(f"{bucket}/job/a.bin", b"a")
    writer = AtomicWriter(f"{bucket}/job/b.bin")
    fs = writer.fs
    folder = f"{bucket[5:]}/job"
    stale = fs.ls(folder, detail=True)  # a.bin only: taken before b.bin's temporary object exists
    invalidate = fs.invalidate_cache

    def listing_lands_again(path: str | None = None) -> None:
        invalidate(path)
        fs.dircache[folder] = stale

    monkeypatch.setattr(fs, "invalidate_cache", listing_lands_again)
    try:
        with pytest.raises((StorageError, OSError)), writer as f:
            f.write(b"b")
    finally:
        monkeypatch.undo()
        fs.invalidate_cache()
    assert s3.filesystem().find(bucket, refresh=True) == [f"{folder}/a.bin"]


# ---- streaming -------------------------------------------------------------------------------------


@pytest.mark.slow
def test_reading_streams_in_constant_memory(tmp_path: Path) -> None:
    line = b'{"source-ref":"s3://bucket/images/0000.jpg","category":{"annotations":[]},"pad":"' + b"x" * 300 + b'"}\n'
    path = tmp_path / "big.manifest"
    with open(path, "wb") as f:
        for _ in range(64):
            f.write(line * 1000)  # 64,000 lines, about 25 MB
    tracemalloc.start()
    try:
        count = 0
        for parsed in read_lines(str(path)):
            count += 1
            if count % 997 == 0:
                parsed.record()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 64_000
    assert peak < 8 * (1 << 20), f"peak {peak / 2**20:.1f} MiB for a {path.stat().st_size / 2**20:.0f} MiB file"


# ---- line rules --------------------------------------------------------------------------------------


def test_crlf_no_final_newline_bom_and_blank_lines() -> None:
    lines = list(iter_lines_from(io.BytesIO(SAMPLE)))
    assert lines[0].body == b'{"source-ref":"s3://b/1.jpg","top":164.60000000000002}'
    assert lines[1].is_blank and lines[1].raw == b"\n"
    assert lines[3].is_blank and lines[3].body == b"   "
    assert lines[4].newline == b"" and lines[4].raw.endswith(b"}")
    assert all(line.prefix == b"" for line in lines[1:])


def test_bom_is_kept_only_at_the_start_of_the_file() -> None:
    raw = BOM + b'{"source":"a"}\n' + BOM + b'{"source":"b"}\n'
    first, second = iter_lines_from(io.BytesIO(raw))
    assert first.prefix == BOM and first.record() == {"source": "a"}
    assert second.prefix == b"" and second.body.startswith(BOM)  # not valid JSON: validation says so


def test_empty_file_has_no_lines() -> None:
    assert list(iter_lines_from(io.BytesIO(b""))) == []


@pytest.mark.parametrize("chunk", [1, 3, 7, 64, 1 << 20])
def test_byte_ranges_partition_the_file(monkeypatch: pytest.MonkeyPatch, chunk: int) -> None:
    monkeypatch.setattr(ranges, "CHUNK", chunk)
    whole = list(iter_lines_from(io.BytesIO(SAMPLE)))
    for cut in range(len(SAMPLE) + 1):
        f = io.BytesIO(SAMPLE)
        head = list(iter_lines_from(f, start=0, end=cut))
        tail = list(iter_lines_from(f, start=cut, end=None, first_number=len(head) + 1))
        assert [(x.number, x.raw) for x in head + tail] == [(x.number, x.raw) for x in whole], cut


def test_three_way_ranges_number_lines_like_the_whole() -> None:
    raw = b"".join(b'{"source":"%d"}\n' % i for i in range(100))
    cuts = [0, 333, 1000, len(raw)]
    f = io.BytesIO(raw)
    got = []
    for start, end in itertools.pairwise(cuts):
        got.extend(iter_lines_from(f, start=start, end=end, first_number=len(got) + 1))
    assert [x.number for x in got] == list(range(1, 101))
    assert [x.record()["source"] for x in got] == [str(i) for i in range(100)]


def test_write_lines_accepts_bytes_and_lines(tmp_path: Path) -> None:
    target = str(tmp_path / "mixed.manifest")
    lines = list(iter_lines_from(io.BytesIO(b'{"source":"a"}\r\n')))
    assert write_lines(target, [*lines, b'{"source":"b"}']) == 2
    assert Path(target).read_bytes() == b'{"source":"a"}\r\n{"source":"b"}'


@pytest.mark.parametrize(("item", "kind"), [({"source-ref": "s3://b/c.jpg"}, "dict"), ('{"source":"c"}', "str")])
def test_write_lines_refuses_what_is_no_line_in_one_line_writing_nothing(tmp_path: Path, item: object,
                                                                       kind: str) -> None:
    """It takes ``Line`` objects and bytes, as documented; a dict (a record, say) raised a bare
    ``TypeError`` (``a bytes-like object is required, not 'dict'``) from inside the writer. Now a
    ``UsageError`` naming the item and its type, and what it takes; the file is not written."""
    target = tmp_path / "out.manifest"
    target.write_bytes(b'{"source":"kept"}\n')
    with pytest.raises(UsageError) as info:
        write_lines(target, [b'{"source":"a"}\n', item])
    assert str(info.value) == (f"write_lines: item 2 is a {kind}, not a line; it takes Line objects (read_lines, "
                               "Line.with_values) or bytes, one line each (a record: orjson.dumps(record) + b'\\n')")
    assert target.read_bytes() == b'{"source":"kept"}\n' and list(tmp_path.iterdir()) == [target]


def test_missing_file_is_a_storage_error(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="no such file"):
        list(read_lines(str(tmp_path / "absent.manifest")))
    with pytest.raises(StorageError, match="no such file"):
        size(str(tmp_path / "absent.manifest"))


def test_unknown_protocol_is_a_storage_error() -> None:
    with pytest.raises(StorageError, match="no filesystem for protocol"):
        read_bytes("nosuchproto://bucket/key")


def test_join() -> None:
    assert join("s3://b/root/", "/job/", "manifests") == "s3://b/root/job/manifests"
    assert join("/tmp/x", "a") == "/tmp/x/a"


def test_atomic_writes_get_ordinary_permissions(tmp_path):
    """mkstemp creates 0600 files; the writer gives the result the mode a plain open() would."""
    import stat

    from totask_manifest import _storage as storage

    target = tmp_path / "out.manifest"
    storage.write_bytes_atomic(str(target), b'{"source-ref":"a"}\n')
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~storage._UMASK
    plain = tmp_path / "plain"
    plain.write_bytes(b"x")
    assert stat.S_IMODE(target.stat().st_mode) == stat.S_IMODE(plain.stat().st_mode)


def test_data_urls_are_read_as_fsspec_reads_them() -> None:
    """``data:,...`` is fsspec's one URL form without ``//`` (``split_protocol`` special-cases it):
    the refusal of ``s3:/bucket`` must not refuse it, nor send the user to ``data://``."""
    import base64

    line = b'{"source-ref":"a.jpg"}\n'
    assert read_bytes("data:," + line.decode()) == line
    encoded = "data:application/x-ndjson;base64," + base64.b64encode(line).decode()
    assert [x.record() for x in read_lines(encoded)] == [{"source-ref": "a.jpg"}]
