"""Renaming a new file over a large one leaves the freeing of the old file to a thread
(``_write_behind.replace_behind``): the rename only drops a name, the name moves atomically, and
the old file's last descriptor is closed in the background, never leaked."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
import threading
import time

import pytest

from totask_manifest import _write_behind
from totask_manifest._storage import AtomicWriter


@pytest.fixture
def held(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Files from 1 kB are released behind; the descriptors the thread would close, kept open
    here (closed at the end) so the test can look at what they hold."""
    monkeypatch.setattr(_write_behind, "RELEASE_BEHIND", 1024)
    fds: list[int] = []
    release = _write_behind._release
    monkeypatch.setattr(_write_behind, "_release", fds.append)
    yield fds
    for fd in fds:
        release(fd)  # out of ``_HELD`` too: a later fork's child must not close what reuses the number


def test_a_large_replaced_file_is_still_open_after_the_rename_and_released_by_a_thread(tmp_path, held):
    target = tmp_path / "out.manifest"
    target.write_bytes(b"old\n" * 1000)
    with AtomicWriter(str(target)) as f:
        f.write(b"new\n")
    assert target.read_bytes() == b"new\n"
    deadline = time.monotonic() + 60  # 1 s, before: a thread a loaded machine runs late handed nothing yet
    while not held:  # the thread hands its descriptor over
        assert time.monotonic() < deadline, "no descriptor handed over"
        time.sleep(0.01)
    [fd] = held
    st = os.fstat(fd)
    # the old file outlived the rename: no link left, every byte still there for the thread to free
    assert st.st_nlink == 0 and st.st_size == 4000
    assert not [p for p in tmp_path.iterdir() if p.name != "out.manifest"]


def test_a_small_replaced_file_is_released_at_once(tmp_path, held):
    target = tmp_path / "out.manifest"
    target.write_bytes(b"old\n")
    with AtomicWriter(str(target)) as f:
        f.write(b"new\n")
    assert target.read_bytes() == b"new\n" and held == []


def test_the_release_thread_closes_the_descriptor(tmp_path, monkeypatch):
    monkeypatch.setattr(_write_behind, "RELEASE_BEHIND", 1024)
    target = tmp_path / "out.manifest"
    before = set(os.listdir("/proc/self/fd"))
    for k in range(3):
        target.write_bytes(b"old\n" * 1000)
        with AtomicWriter(str(target)) as f:
            f.write(b"new %d\n" % k)
    for t in [t for t in threading.enumerate() if t.name == "release-replaced"]:
        t.join(60)  # a safety net: ends as soon as the thread does
    assert set(os.listdir("/proc/self/fd")) <= before


def test_a_link_or_a_fifo_at_the_name_is_replaced_without_following_or_waiting(tmp_path, held):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_bytes(b"x" * 4096)
    link = tmp_path / "link.manifest"
    link.symlink_to(elsewhere)
    with AtomicWriter(str(link)) as f:
        f.write(b"new\n")
    assert not link.is_symlink() and link.read_bytes() == b"new\n"
    assert elsewhere.read_bytes() == b"x" * 4096 and held == []
    fifo = tmp_path / "fifo.manifest"
    os.mkfifo(fifo)
    new = tmp_path / "new"
    new.write_bytes(b"new\n")
    # ``AtomicWriter`` refuses a FIFO's name (tests/test_special_file_outputs.py); the rename under
    # it never waits on one all the same: opening a FIFO for reading would wait for a writer
    _write_behind.replace_behind(str(new), str(fifo))
    assert fifo.read_bytes() == b"new\n" and held == []


def test_a_failed_rename_closes_the_held_file(tmp_path, monkeypatch):
    monkeypatch.setattr(_write_behind, "RELEASE_BEHIND", 1024)
    target = tmp_path / "out.manifest"
    target.write_bytes(b"old\n" * 1000)
    before = set(os.listdir("/proc/self/fd"))
    with pytest.raises(FileNotFoundError):
        _write_behind.replace_behind(str(tmp_path / "missing"), str(target))
    assert set(os.listdir("/proc/self/fd")) == before
    assert target.read_bytes() == b"old\n" * 1000


def test_a_thread_that_cannot_start_leaves_the_rename_done_and_closes_the_old_file_at_once(
        tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``Thread.start`` can fail (no thread left to the process; Python 3.12 refuses new threads
    at interpreter shutdown) after the rename: the new file is in place, so the write succeeded,
    and the old file is closed there and then, not leaked."""
    monkeypatch.setattr(_write_behind, "RELEASE_BEHIND", 1024)
    closed: list[int] = []
    real_close = os.close
    monkeypatch.setattr(_write_behind.os, "close", lambda fd: (closed.append(fd), real_close(fd)))

    def refuse(self) -> None:
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(threading.Thread, "start", refuse)
    target = tmp_path / "out.manifest"
    target.write_bytes(b"old\n" * 1000)
    tmp = tmp_path / "new"
    tmp.write_bytes(b"new\n")
    _write_behind.replace_behind(str(tmp), str(target))
    assert target.read_bytes() == b"new\n"
    assert len(closed) == 1  # the held descriptor, closed by the caller's thread


def _open_files() -> str:
    """The files this process has open, as ``/proc/self/fd`` names them."""
    names = []
    for n in os.listdir("/proc/self/fd"):
        try:
            names.append(os.readlink("/proc/self/fd/" + n))
        except OSError:  # the listing's own descriptor, gone
            pass
    return repr(sorted(names))


#: the same, run in a new interpreter
LIST_FDS = "import os\n" + inspect.getsource(_open_files) + "print(_open_files())\n"


@pytest.mark.skipif(not hasattr(os, "fork") or not os.path.isdir("/proc/self/fd"), reason="os.fork and /proc")
def test_a_child_process_does_not_get_the_held_replaced_file(tmp_path, held):
    """While the replaced file is held (its release thread not done), a child made by
    ``subprocess`` (fork, then exec: ``O_CLOEXEC``) and one made by a bare ``os.fork`` (a fork
    start method's worker) list their descriptors: neither has it. Before: the forked child had
    ``out.manifest (deleted)``, and kept its blocks for as long as it lived (it has no release
    thread: threads do not survive a fork)."""
    target = tmp_path / "out.manifest"
    target.write_bytes(b"old\n" * 1000)
    with AtomicWriter(str(target)) as f:
        f.write(b"new\n")
    deadline = time.monotonic() + 60
    while not held:  # the thread hands its descriptor over
        assert time.monotonic() < deadline, "no descriptor handed over"
        time.sleep(0.01)
    gone = f"{target} (deleted)"
    assert os.readlink(f"/proc/self/fd/{held[0]}") == gone  # held here: the window a child can fall in
    execd = subprocess.run([sys.executable, "-c", LIST_FDS], capture_output=True, text=True, check=True,
                           close_fds=False).stdout
    assert gone not in execd and execd.startswith("["), execd
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child lists its descriptors (no exec: O_CLOEXEC would close it) and ends
        try:
            os.close(read)
            os.write(write, _open_files().encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as r:
        forked = r.read()
    assert os.waitpid(pid, 0)[1] == 0
    assert "out.manifest" not in forked and forked.startswith("["), forked
