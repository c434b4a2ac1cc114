"""The commit's range copies (``_jobs.byte_copy``): read and written by default, the kernel's
``copy_file_range`` on request where both files are local; the output is the same bytes either way."""

from __future__ import annotations

import errno
import functools
import hashlib
import os
import threading
from pathlib import Path

import pytest

from tests.jobs_helpers import TOY, write_manifest
from totask_manifest import _api as api
from totask_manifest._errors import JobError
from totask_manifest._jobs import byte_copy, hash_behind
from totask_manifest._jobs.byte_copy import Sink
from totask_manifest._jobs.commit import Coverage, write_output
from totask_manifest._jobs.config import JobConfig
from totask_manifest._jobs.job import Job
from totask_manifest._jobs.layout import JobLayout
from totask_manifest._manifest.line import BOM
from totask_manifest._storage import AtomicWriter


def _refuse(code: int):
    calls = []

    def copy_file_range(*args, **kwargs):
        calls.append(args)
        raise OSError(code, os.strerror(code))
    return copy_file_range, calls


@pytest.fixture
def job(tmp_path):
    """A finished job over a manifest with untouched (prelabeled) lines between finished ones,
    a byte order mark, a CRLF line and a last line without its terminator."""
    inp = write_manifest(tmp_path / "in.manifest", 60, bad_every=7, prelabeled_every=3)
    inp.write_bytes(BOM + inp.read_bytes()[:-1])
    config = JobConfig(job_name="j", input=str(inp), output_root=str(tmp_path / "out"), label_attribute="cls",
                       task_type="image-classification", method=TOY, checkpoint_every=4)
    result = api.annotate(config)
    assert result.status == "COMPLETED"
    return inp, Job.open(result.job_url)


def _commit(inp: Path, job: Job) -> tuple[bytes, Coverage]:
    coverage = Coverage()
    write_output(str(inp), job.layout, coverage, "cls")
    return Path(job.layout.output_manifest).read_bytes(), coverage


def test_kernel_copies_and_read_write_give_the_same_output(job, monkeypatch):
    inp, j = job
    calls = []
    real = os.copy_file_range

    def counted(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)
    monkeypatch.setattr(os, "copy_file_range", counted)
    plain, _ = _commit(inp, j)
    assert not calls  # the default: read and written
    from totask_manifest._jobs import commit

    monkeypatch.setattr(commit, "Sink", functools.partial(Sink, kernel=True))
    kernel, coverage = _commit(inp, j)
    assert coverage.exact and calls  # the ranges went through the kernel
    monkeypatch.setattr(os, "copy_file_range", _refuse(errno.EXDEV)[0])
    refused, _ = _commit(inp, j)
    assert kernel == plain == refused
    # lossless: every untouched input line is in the output byte for byte, in place
    ins, outs = inp.read_bytes().splitlines(keepends=True), kernel.splitlines(keepends=True)
    assert len(ins) == len(outs) and outs[0].startswith(BOM) and not outs[-1].endswith(b"\n")
    untouched = [i for i in range(len(ins)) if i % 3 == 0]
    assert untouched and all(outs[i] == ins[i] for i in untouched)
    assert all(outs[i] != ins[i] for i in range(len(ins)) if i % 3)


def test_a_refused_kernel_copy_falls_back_once_and_for_all(tmp_path, monkeypatch):
    src = tmp_path / "src"
    src.write_bytes(bytes(range(256)) * 4000)
    refuse, calls = _refuse(errno.ENOSYS)
    monkeypatch.setattr(os, "copy_file_range", refuse)
    with open(src, "rb") as f, open(tmp_path / "dst", "wb") as out:
        sink = Sink(out, kernel=True)
        sink.write(b"head")
        sink.copy(f, 10, 300_000)
        sink.copy(f, 5, 7)
        assert not sink.kernel_copies and len(calls) == 1
    assert (tmp_path / "dst").read_bytes() == b"head" + src.read_bytes()[10:300_010] + src.read_bytes()[5:12]


def test_a_kernel_copy_cut_short_is_finished_by_reading(tmp_path, monkeypatch):
    """The kernel copies part of a range, then refuses: the rest is read, in order, after it."""
    src = tmp_path / "src"
    src.write_bytes(os.urandom(3 * byte_copy.BLOCK))
    real, state = os.copy_file_range, {"n": 0}

    def first_then_refuse(fd_in, fd_out, count, offset_src=None, *rest):
        state["n"] += 1
        if state["n"] > 1:
            raise OSError(errno.EOPNOTSUPP, "no")
        return real(fd_in, fd_out, min(count, 1000), offset_src)
    monkeypatch.setattr(os, "copy_file_range", first_then_refuse)
    with open(src, "rb") as f, open(tmp_path / "dst", "wb") as out:
        sink = Sink(out, kernel=True)
        sink.write(b"x")
        sink.copy(f, 100, 2 * byte_copy.BLOCK)
        sink.write(b"y")
    assert (tmp_path / "dst").read_bytes() == b"x" + src.read_bytes()[100:100 + 2 * byte_copy.BLOCK] + b"y"


@pytest.mark.parametrize("kernel", [True, False])
def test_a_source_shorter_than_the_range_is_refused(tmp_path, monkeypatch, kernel):
    src = tmp_path / "src"
    src.write_bytes(b"0123456789")
    if not kernel:
        monkeypatch.setattr(os, "copy_file_range", _refuse(errno.EXDEV)[0])
    with open(src, "rb") as f, open(tmp_path / "dst", "wb") as out, pytest.raises(JobError, match="shorter"):
        Sink(out, kernel=kernel).copy(f, 4, 100)


def test_scattered_bodies_read_at_once_give_the_output_copied_by_range(job, monkeypatch):
    """A part whose records are several runs in the input (lines between them untouched) has its
    bodies read at once (one read, not a read and a write a run), up to ``BODIES_AT_ONCE``; the
    output is the one its runs copied by range write."""
    from totask_manifest._jobs import commit

    inp, j = job
    read = []
    real = commit.read_bodies
    monkeypatch.setattr(commit, "read_bodies", lambda part: read.append(part.url) or real(part))
    at_once, coverage = _commit(inp, j)
    assert coverage.exact and read  # the fixture's parts are runs of two lines, a prelabeled one between
    monkeypatch.setattr(commit, "BODIES_AT_ONCE", 0)
    read.clear()
    by_range, _ = _commit(inp, j)
    assert not read and by_range == at_once


@pytest.mark.parametrize("at_once", [True, False])
@pytest.mark.parametrize("kernel", [True, False])
def test_a_part_cut_after_its_heads_were_read_fails_the_commit(job, monkeypatch, kernel, at_once):
    """A local part's bodies are copied from the part file after its heads were checked (by
    the kernel or read into a block): a file that shrinks in between (a second writer) fails
    the commit; the old output stays."""
    inp, j = job
    before = Path(j.layout.output_manifest).read_bytes()
    part = Path(JobLayout(j.url).parts()[2])
    from totask_manifest._jobs import commit

    monkeypatch.setattr(commit, "Sink", functools.partial(Sink, kernel=kernel))
    if not at_once:
        monkeypatch.setattr(commit, "BODIES_AT_ONCE", 0)

    real = commit.iter_parts

    def cut_after_heads(layout, **kwargs):
        for p in real(layout, **kwargs):
            if p.url == str(part):
                part.write_bytes(part.read_bytes()[:p.body_offset + 3])
            yield p
    monkeypatch.setattr(commit, "iter_parts", cut_after_heads)
    with pytest.raises(JobError, match="shorter"):
        _commit(inp, j)
    assert Path(j.layout.output_manifest).read_bytes() == before
    assert not [n for n in os.listdir(Path(j.layout.output_manifest).parent) if n.startswith(".tmp-")]


def test_records_adjacent_in_the_input_are_one_run_and_a_gap_splits_them():
    from array import array

    from totask_manifest._jobs.checkpoint import Part
    from totask_manifest._jobs.commit import _runs

    part = Part("p", [4, 5, 6, 9], "llll", [10, 11, 12, 13], [7, 8, 9, 5], {})
    # lines 4, 5, 6 adjacent (100, 107, 115), line 9 after a gap
    assert _runs(part, array("q", [100, 107, 115, 140])) == [(0, 100, 124, 0, 33), (3, 140, 145, 33, 46)]
    assert _runs(part, array("q", [100, 107, 115, 124])) == [(0, 100, 129, 0, 46)]
    # a record longer than the gap to the next line: two runs, and the merge refuses the second
    assert _runs(part, array("q", [100, 106, 115, 124]))[1][1] == 106


def test_kernel_copies_start_background_syncs_as_written_bytes_do(tmp_path, monkeypatch):
    """Bytes the kernel copies into the atomic writer's file count toward its write-behind
    step: without that, a commit made of kernel copies left every byte to the final fsync."""
    from totask_manifest import _write_behind

    monkeypatch.setattr(_write_behind, "FLUSH_EVERY", 1 << 16)
    sizes: list[int] = []
    real = os.fdatasync

    def counting(fd: int) -> None:
        sizes.append(os.fstat(fd).st_size)
        real(fd)
    monkeypatch.setattr(_write_behind.os, "fdatasync", counting)
    src = tmp_path / "src"
    src.write_bytes(os.urandom(1 << 19))
    calls = []
    real_copy = os.copy_file_range

    def counted(*args, **kwargs):
        calls.append(args)
        return real_copy(*args, **kwargs)
    monkeypatch.setattr(os, "copy_file_range", counted)
    with AtomicWriter(str(tmp_path / "dst")) as out, open(src, "rb") as f:
        sink = Sink(out, kernel=True)
        for start in range(0, 1 << 19, 1 << 15):
            sink.copy(f, start, 1 << 15)
    assert calls and (tmp_path / "dst").read_bytes() == src.read_bytes()
    assert sizes, "no background sync started behind the kernel's copies"


def test_ranges_read_into_one_block_survive_short_writes_and_match_a_buffered_copy(tmp_path):
    """A local output takes ranges of a local file through one reused block written straight
    to its file: a file that takes fewer bytes than given gets the rest, in order, and the
    bytes are those a copy through Python objects (a store's output, no descriptor) writes."""
    import io

    class Short(io.FileIO):
        def write(self, data):
            return super().write(bytes(data)[:1000])

    src = tmp_path / "src"
    src.write_bytes(os.urandom(3 * byte_copy.BLOCK + 17))
    ranges = [(5, 2 * byte_copy.BLOCK + 3), (0, 10), (byte_copy.BLOCK, byte_copy.BLOCK + 17)]
    with open(src, "rb") as f, io.BufferedWriter(Short(str(tmp_path / "dst"), "wb")) as out:
        sink = Sink(out)
        for start, n in ranges:
            sink.write(b"<")
            sink.copy(f, start, n)
        assert sink._hash is not None and len(sink._hash._blocks) == hash_behind.RING  # reused blocks, not a read each
        written = sink.sha256()
    buffered = io.BytesIO()
    with open(src, "rb") as f:
        for start, n in ranges:
            Sink(buffered).write(b"<")
            Sink(buffered).copy(f, start, n)
    data = src.read_bytes()
    assert (tmp_path / "dst").read_bytes() == buffered.getvalue() == b"".join(b"<" + data[s:s + n] for s, n in ranges)
    assert written == hashlib.sha256(buffered.getvalue()).hexdigest()


def test_the_hash_on_its_own_thread_is_that_of_the_bytes_written_in_order(tmp_path):
    """The output's sha256 is computed on a thread while the commit writes (``hash_behind``): the
    blocks of its ring are reused only once hashed, small writes are gathered, and a memoryview's
    buffer changed right after its write changes nothing hashed. The digest is hashlib's of the
    file, whatever the mix of writes and range copies, however far ahead the writer runs."""
    src = tmp_path / "src"
    src.write_bytes(os.urandom(3 * byte_copy.BLOCK + 17))
    reused = bytearray(b"before" * 1000)
    before = set(threading.enumerate())
    with open(src, "rb") as f, AtomicWriter(str(tmp_path / "dst")) as out:
        sink = Sink(out)
        for i in range(40):  # ranges of blocks: the ring (4) runs round ten times
            sink.copy(f, (i * 7919) % byte_copy.BLOCK, byte_copy.BLOCK + i)
            sink.write(b"line %d\n" % i)
            sink.write(memoryview(reused)[: 100 + i])
            reused[:6] = b"after!"  # a part's buffer reused once written
            reused[:6] = b"before"
        for _ in range(3000):  # many small writes, gathered into a few items
            sink.write(b"x" * 700)
        digest = sink.sha256()
        sink.close()
    assert sink.size == len((tmp_path / "dst").read_bytes())
    assert digest == hashlib.sha256((tmp_path / "dst").read_bytes()).hexdigest()
    assert not [t for t in threading.enumerate() if t.name == "totask-output-sha256" and t not in before]


def test_a_commit_that_fails_leaves_no_hash_thread(tmp_path):
    src = tmp_path / "src"
    src.write_bytes(os.urandom(byte_copy.BLOCK))
    before = set(threading.enumerate())
    with open(src, "rb") as f, pytest.raises(JobError), AtomicWriter(str(tmp_path / "dst")) as out:
        sink = Sink(out)
        try:
            sink.copy(f, 0, 2 * byte_copy.BLOCK)  # longer than the file
        finally:
            sink.close()
    assert not [t for t in threading.enumerate() if t.name == "totask-output-sha256" and t not in before]
    assert not (tmp_path / "dst").exists()


def test_a_sink_dropped_unclosed_stops_its_hash_thread():
    """A Sink its owner drops without ``close`` (a caller of the library): its thread ends once
    the Sink is collected, rather than waiting on its queue for the life of the process."""
    import gc
    import io

    before = set(threading.enumerate())
    sink = Sink(io.BytesIO())
    sink.write(b"y" * (2 * hash_behind.GATHER))
    thread = next(t for t in threading.enumerate() if t.name == "totask-output-sha256" and t not in before)
    del sink
    gc.collect()
    thread.join(60)  # a safety net: ends as soon as the thread does
    assert not thread.is_alive()
