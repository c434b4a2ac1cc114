"""The atomic writer's write-behind: large local files are synced while written, every byte is
still synced before the rename, and a background sync's error is not lost."""

from __future__ import annotations

import errno
import os
import threading

import pytest

from totask_manifest import _write_behind
from totask_manifest._errors import StorageError
from totask_manifest._storage import AtomicWriter


class Syncs:
    """The file sizes at each background sync, and an event set by the first one."""

    def __init__(self) -> None:
        self.sizes: list[int] = []
        self.first = threading.Event()


@pytest.fixture
def small_step(monkeypatch: pytest.MonkeyPatch) -> Syncs:
    """Background syncs every 64 kB behind a 4 kB buffer (really 64 MB behind 1 MB)."""
    monkeypatch.setattr(_write_behind, "FLUSH_EVERY", 1 << 16)
    monkeypatch.setattr(_write_behind, "BUFFER", 1 << 12)
    syncs = Syncs()
    real = os.fdatasync

    def counting(fd: int) -> None:
        syncs.sizes.append(os.fstat(fd).st_size)
        real(fd)
        syncs.first.set()

    monkeypatch.setattr(_write_behind.os, "fdatasync", counting)
    return syncs


def _lines(n: int) -> list[bytes]:
    return [b'{"source-ref":"s3://b/%08d.jpg","k":%d}\n' % (i, i * 7) for i in range(n)]


def test_large_file_is_synced_while_written_and_ends_byte_identical(tmp_path, small_step) -> None:
    target = tmp_path / "out.manifest"
    lines = _lines(20_000)  # about 900 kB
    with AtomicWriter(str(target)) as f:
        for line in lines[:2_000]:  # about 90 kB: past the step
            f.write(line)
        assert small_step.first.wait(5), "no background sync started past the step"
        for line in lines[2_000:]:
            f.write(line)
    assert target.read_bytes() == b"".join(lines)
    assert small_step.sizes[0] < len(b"".join(lines[:2_000])), "the first sync started late"
    assert not [t for t in threading.enumerate() if t.name == "write-behind"], "a sync outlived the file"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]


def test_small_file_starts_no_background_sync(tmp_path, small_step) -> None:
    target = tmp_path / "small.manifest"
    with AtomicWriter(str(target)) as f:
        f.write(b'{"a":1}\n')
    assert target.read_bytes() == b'{"a":1}\n'
    assert small_step.sizes == []


def test_background_sync_error_fails_the_write_and_leaves_nothing(tmp_path, monkeypatch) -> None:
    """Linux reports a writeback error to a file description once: if the background sync saw
    it, the final fsync might not, so the writer must raise it itself."""
    monkeypatch.setattr(_write_behind, "FLUSH_EVERY", 1 << 16)
    monkeypatch.setattr(_write_behind, "BUFFER", 1 << 12)

    def failing(fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(_write_behind.os, "fdatasync", failing)
    target = tmp_path / "out.manifest"
    target.write_bytes(b"previous\n")
    with (pytest.raises(StorageError, match=r"cannot write .*out\.manifest: Input/output error"),
          AtomicWriter(str(target)) as f):
        for line in _lines(5_000):
            f.write(line)
    assert target.read_bytes() == b"previous\n", "the old file must stay whole"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.manifest"]


def test_close_waits_for_the_background_sync(tmp_path, monkeypatch) -> None:
    """The descriptor is closed only after its sync returns: a sync running on a closed (and maybe
    reused) descriptor number would sync or fail on another file."""
    monkeypatch.setattr(_write_behind, "FLUSH_EVERY", 1)
    started, release = threading.Event(), threading.Event()
    seen: list[int] = []

    def slow(fd: int) -> None:
        seen.append(fd)
        started.set()
        release.wait(5)
        os.fstat(fd)  # raises EBADF if the descriptor was closed under the sync

    monkeypatch.setattr(_write_behind.os, "fdatasync", slow)
    fd = os.open(tmp_path / "f", os.O_WRONLY | os.O_CREAT)
    f = _write_behind.open_write_behind(fd)
    f.write(b"x" * 10)
    f.flush()
    assert started.wait(5)
    closer = threading.Thread(target=f.close)
    closer.start()
    closer.join(0.2)
    assert closer.is_alive(), "close returned while the sync was running"
    release.set()
    closer.join(5)
    assert not closer.is_alive() and f.closed
    assert seen == [fd]
