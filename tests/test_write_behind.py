"""The atomic writer: large local files are synced while written (write-behind), every byte is
still synced before the rename, a background sync's error is not lost; on an object store, a
stale listing of the folder does not fail the move into place."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from tests.jobs_helpers import REPO
from totask_manifest import _write_behind
from totask_manifest._errors import StorageError
from totask_manifest._storage import AtomicWriter, write_bytes_atomic


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
        assert small_step.first.wait(60), "no background sync started past the step"
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
    fd = os.open(tmp_path / "f", os.O_WRONLY | os.O_CREAT)
    real_sync = os.fdatasync

    def slow(synced: int) -> None:
        if synced != fd:  # another test's thread still syncing its own file (the patch is process-wide)
            real_sync(synced)
            return
        seen.append(synced)
        started.set()
        release.wait(5)
        os.fstat(synced)  # raises EBADF if the descriptor was closed under the sync

    monkeypatch.setattr(_write_behind.os, "fdatasync", slow)
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


def test_an_object_store_write_survives_a_stale_listing_of_its_folder(s3, monkeypatch) -> None:
    """Another thread lists the folder while the temporary object is uploaded: s3fs would answer
    the move from that listing (no such object) unless the writer drops it (a checkpoint part
    write failed so in a CI run)."""
    from totask_manifest._storage import url_to_fs

    bucket = s3.new_bucket("stale")
    url = f"{bucket}/jobs/j/intermediate/part-000000.ckpt"
    write_bytes_atomic(f"{bucket}/jobs/j/intermediate/other", b"x")
    fs, folder = url_to_fs(f"{bucket}/jobs/j/intermediate")
    writer = AtomicWriter(url)
    f = writer.__enter__()
    f.write(b"part bytes")
    real_close = f.close

    def close_then_list() -> None:
        real_close()
        fs.invalidate_cache()
        fs.ls(folder)  # "another thread" lists the folder: as if just before the upload showed,
        fs.dircache[folder] = [e for e in fs.dircache[folder] if ".tmp-" not in e["name"]]  # without it

    monkeypatch.setattr(f, "close", close_then_list)
    writer.__exit__(None, None, None)
    assert fs.cat_file(url[len("s3://"):]) == b"part bytes"
    fs.invalidate_cache()
    assert not [p for p in fs.ls(folder, detail=False) if ".tmp-" in p]


_CLOSE_INTERRUPTED = """
import os, sys, threading, time
from pathlib import Path
from totask_manifest import _write_behind

_write_behind.FLUSH_EVERY = 1
mark, target, pause = Path(sys.argv[1]), sys.argv[2], float(sys.argv[3])
seen = []
ended = threading.Event()

def slow_sync(fd):
    mark.touch()
    time.sleep(pause)  # Ctrl-C comes meanwhile, while close waits for this sync
    try:
        os.fstat(fd)
        seen.append("open")
    except OSError as exc:
        seen.append("closed under the sync: " + exc.strerror)
    ended.set()

_write_behind.os.fdatasync = slow_sync
f = _write_behind.open_write_behind(os.open(target, os.O_WRONLY | os.O_CREAT))
f.write(b"x" * 10)
f.flush()
try:
    f.close()
except KeyboardInterrupt:
    print("interrupted")
print("closed" if f.closed else "left open", flush=True)
ended.wait(10)  # not the thread's join: an interrupted one took the thread for ended (Python 3.11)
print(seen)
"""


def _sigint_as_a_terminal_gives_it() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # a runner started in the background hands it down ignored


@pytest.mark.slow
def _interrupt_close(tmp_path, pause: float, signals: int) -> tuple[str, str, float]:
    """Run ``_CLOSE_INTERRUPTED`` with a sync that takes ``pause`` seconds, send ``signals``
    SIGINTs while close waits for it; its output, errors and the seconds from the first SIGINT
    to the line saying close ended."""
    mark = tmp_path / "syncing"
    proc = subprocess.Popen([sys.executable, "-c", _CLOSE_INTERRUPTED, str(mark), str(tmp_path / "f"), str(pause)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONPATH=str(REPO)), preexec_fn=_sigint_as_a_terminal_gives_it)
    try:
        deadline = time.monotonic() + 60
        while not mark.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert mark.exists(), "no background sync started"
        time.sleep(0.3)  # close is waiting for the sync now
        first = time.monotonic()
        for _ in range(signals):
            proc.send_signal(signal.SIGINT)
            time.sleep(0.2)
        assert proc.stdout is not None
        lines = [proc.stdout.readline(), proc.stdout.readline()]  # "interrupted", then "closed"
        ended = time.monotonic() - first
        proc.wait(timeout=60)
        out, err = proc.stdout.read(), proc.stderr.read()  # the rest (communicate would skip what readline buffered)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    return "".join(lines) + out, err, ended


@pytest.mark.slow
def test_ctrl_c_while_close_waits_for_the_sync_still_waits_for_it(tmp_path) -> None:
    """A Ctrl-C that lands while ``close`` waits for the background sync interrupted the wait,
    and the descriptor was closed while ``fdatasync`` still used it. ``close`` now waits for the
    sync to end, closes, then raises the ``KeyboardInterrupt``."""
    # a sync of 3 s: the Ctrl-C, sent 0.3 s after it began, must land while close still waits for
    # it; 1 s left a loaded machine 0.7 s, and a later Ctrl-C found close already ended
    out, err, _ = _interrupt_close(tmp_path, pause=3.0, signals=1)
    assert out.splitlines() == ["interrupted", "closed", "['open']"], (out, err)


@pytest.mark.slow
def test_a_second_ctrl_c_ends_a_wait_for_a_stuck_sync(tmp_path) -> None:
    """A sync stuck on its disk (here 30 s) does not make Ctrl-C powerless: the second one ends
    close's wait at once; the descriptor closes under the sync, which then finds it closed."""
    out, err, ended = _interrupt_close(tmp_path, pause=30.0, signals=2)
    assert out.splitlines()[:2] == ["interrupted", "closed"], (out, err)
    assert ended < 20, f"close waited {ended:.1f} s after two Ctrl-C, as long as the stuck sync"
