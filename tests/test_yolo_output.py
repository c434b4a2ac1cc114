"""``YoloOutput``'s commit, in process: a Ctrl-C or SIGTERM that arrives while the staged files
are moved to their names waits until they all are, even with another thread alive (a remote
input's fsspec I/O thread): a signal mask held by the main thread alone does not hold it back,
since the kernel hands a process's signal to any thread that does not block it."""

from __future__ import annotations

import errno
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from totask_manifest._analytics import yolo_output, yolo_swap
from totask_manifest._analytics.yolo_output import STAGE_PREFIX, YoloOutput
from totask_manifest._jobs.holder import Holder


def _export(dst: Path, *extra: str) -> None:
    """An export as ``convert`` writes one: its ``index.jsonl`` lists each label file."""
    labels = [f"labels/a/img{i}.txt" for i in range(5)] + list(extra)
    with YoloOutput(str(dst)) as out:
        for label in labels:
            out.write(label, b"0 0.5 0.5 0.1 0.1\n")
        out.write("index.jsonl", b"".join(b'{"label": "%s"}\n' % label.encode() for label in labels))
        out.write("classes.txt", b"cat\n")
        out.write("data.yaml", b"names: [cat]\n")


@pytest.fixture
def other_thread():
    """A thread that does not block SIGINT or SIGTERM, alive during the test."""
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait, name="other", daemon=True)
    thread.start()
    yield thread
    stop.set()
    thread.join()


@pytest.fixture
def signal_at_first_move(monkeypatch: pytest.MonkeyPatch):
    """Sends the process ``signum`` as the commit moves its first file."""
    sent = []

    def arm(signum: int) -> None:
        real = os.replace

        def replace(src, dst, *a, **k):
            # the export's own moves only (out of its stage, on the main thread): ``os`` is patched for
            # the whole process, and a thread an earlier test left (a lease heartbeat replacing its
            # file) sent the signal before the commit in the full suite, so the export was undone
            if not sent and threading.current_thread() is threading.main_thread() and STAGE_PREFIX in os.fspath(src) + os.fspath(dst):
                sent.append(signum)
                os.kill(os.getpid(), signum)
            return real(src, dst, *a, **k)

        monkeypatch.setattr(yolo_output.os, "replace", replace)
        monkeypatch.setattr(yolo_output.os, "rename", replace)

    return arm


def _files(dst: Path) -> list[str]:
    return sorted(str(p.relative_to(dst)) for p in dst.rglob("*") if p.is_file())


WHOLE = ["classes.txt", "data.yaml", "index.jsonl"] + [f"labels/a/img{i}.txt" for i in range(5)]


def test_a_ctrl_c_during_the_moves_lets_them_finish_with_another_thread_alive(
        tmp_path: Path, other_thread: threading.Thread, signal_at_first_move) -> None:
    dst = tmp_path / "ds"
    # Python's own Ctrl-C handler, whatever an earlier test in this process left installed
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        signal_at_first_move(signal.SIGINT)
        with pytest.raises(KeyboardInterrupt):
            _export(dst)
        assert _files(dst) == WHOLE  # before: the KeyboardInterrupt stopped the moves after labels/
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, previous)


def test_a_sigterm_during_the_moves_waits_for_them(tmp_path: Path, other_thread: threading.Thread,
                                                  signal_at_first_move) -> None:
    got: list[int] = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: got.append(signum))
    try:
        dst = tmp_path / "ds"
        signal_at_first_move(signal.SIGTERM)
        seen_during: list[list[int]] = []
        real_fsync_dir = yolo_swap.fsync_dir

        def fsync_dir(path: str) -> None:  # the swap's syncs, between its moves and the last step
            seen_during.append(list(got))
            real_fsync_dir(path)

        yolo_swap.fsync_dir, saved = fsync_dir, yolo_swap.fsync_dir
        try:
            _export(dst)
        finally:
            yolo_swap.fsync_dir = saved
        assert seen_during and not any(seen_during)  # held back while the files moved
        assert got == [signal.SIGTERM]  # and delivered to the handler after
        assert _files(dst) == WHOLE
    finally:
        signal.signal(signal.SIGTERM, previous)


@pytest.mark.parametrize("no_lock", ["no fcntl", "flock refused"])
def test_a_stage_is_removed_only_under_a_lock_the_export_holds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                              no_lock: str) -> None:
    """Without the lock (Windows, a file system without locks) a ``.tmp-yolo-*`` folder may be a
    live export's stage, which removing would break in the middle of its moves: it stays."""
    dst = tmp_path / "ds"
    live = dst / ".tmp-yolo-abcd1234" / "labels"
    live.mkdir(parents=True)
    (live / "x.txt").write_bytes(b"0 0.5 0.5 0.1 0.1\n")
    if no_lock == "no fcntl":
        monkeypatch.setattr(yolo_output, "fcntl", None)
    else:
        class NoLocks:
            LOCK_EX = LOCK_NB = 0

            @staticmethod
            def flock(fd: int, op: int) -> None:
                raise OSError(95, "Operation not supported")

        monkeypatch.setattr(yolo_output, "fcntl", NoLocks)
    _export(dst)
    assert (live / "x.txt").read_bytes() == b"0 0.5 0.5 0.1 0.1\n"
    assert [f for f in _files(dst) if not f.startswith(".tmp-yolo-")] == WHOLE


def test_a_killed_exports_stage_is_removed_under_the_lock(tmp_path: Path) -> None:
    dst = tmp_path / "ds"
    dead = dst / ".tmp-yolo-abcd1234" / "labels"
    dead.mkdir(parents=True)
    _export(dst)
    assert not dead.parent.exists()
    assert _files(dst) == WHOLE


def _export_n(dst: Path, n: int) -> None:
    with YoloOutput(str(dst)) as out:
        for i in range(n):
            out.write(f"labels/a/img{i}.txt", b"0 0.5 0.5 0.1 0.1\n")
        out.write("index.jsonl", b"{}\n")
        out.write("classes.txt", b"cat\n")


def test_every_file_and_folder_is_synced_before_the_moves_each_on_its_own_without_syncfs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each file used to be written by an ``AtomicWriter`` (fsync, rename, folder fsync): after a
    power cut an export reported done held its files whole. Staged files moved unsynced could be
    found empty under their names. Where there is no ``syncfs`` (not Linux), every file and folder
    is synced on its own before its first move."""
    monkeypatch.setattr(yolo_output, "_syncfs", None)
    synced: set[int] = set()
    moved: list[int] = []
    real_fsync, real_rename, real_replace = os.fsync, os.rename, os.replace

    def fsync(fd: int) -> None:
        synced.add(os.fstat(fd).st_ino)
        real_fsync(fd)

    def check(move):
        def moving(src, dst, *a, **k):
            moved.append(os.stat(src).st_ino)
            return move(src, dst, *a, **k)
        return moving

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(yolo_output.os, "rename", check(real_rename))
    monkeypatch.setattr(yolo_output.os, "replace", check(real_replace))
    dst = tmp_path / "ds"
    _export(dst)
    inodes = {p.stat().st_ino for p in dst.rglob("*")}
    assert inodes <= synced  # every file and folder of the dataset (labels/ and labels/a/ too)
    assert moved and set(moved) <= synced
    _export(dst)  # again: labels/ is there, each label file moved into it, its folder synced after
    assert {p.stat().st_ino for p in dst.rglob("*")} <= synced


@pytest.mark.skipif(yolo_output._syncfs is None, reason="syncfs is Linux's")
def test_the_whole_stage_is_synced_once_after_the_last_write_and_before_the_first_move(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An ``fsync`` per label file cost 1.6 ms each (a million-image export spent half an hour in
    them). On Linux the stage's file system is synced once (``syncfs``), when every file is
    written and before any moves: as many syncs for 40 images as for 4, and none of the files
    (written whole, then synced with the rest) moved before it."""
    real_sync, real_fsync, real_rename = yolo_output.sync_stage, os.fsync, os.rename
    events: list[str] = []
    files_at_sync: list[set[str]] = []

    def sync_stage(fd: int) -> None:
        events.append("syncfs")
        files_at_sync.append({p.name for p in Path(f"/proc/self/fd/{fd}").resolve().rglob("*.txt")})
        real_sync(fd)

    def fsync(fd: int) -> None:
        if os.path.isfile(f"/proc/self/fd/{fd}"):
            events.append("fsync file")
        real_fsync(fd)

    def rename(src, dst, *a, **k):
        events.append("move")
        return real_rename(src, dst, *a, **k)

    monkeypatch.setattr(yolo_output, "sync_stage", sync_stage)
    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(yolo_output.os, "rename", rename)
    counts = []
    for n in (4, 40):
        events.clear()
        _export_n(tmp_path / f"ds{n}", n)
        assert events.count("syncfs") == 1
        assert events.index("syncfs") < events.index("move")
        assert files_at_sync[-1] >= {f"img{i}.txt" for i in range(n)} | {"classes.txt"}
        counts.append(events.count("fsync file"))
        assert sorted(p.name for p in (tmp_path / f"ds{n}" / "labels" / "a").iterdir()) == \
            sorted(f"img{i}.txt" for i in range(n))
    assert counts[0] == counts[1]  # the swap's own journal; none a label file


def test_a_failed_syncfs_stops_the_export_before_any_move(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A write-back error (a disk that failed, a full thin volume) is ``syncfs``'s error: the
    export stops in one line naming the folder, which holds the previous export as it was."""
    if yolo_output._syncfs is None:
        pytest.skip("syncfs is Linux's")
    dst = tmp_path / "ds"
    _export(dst)
    before = _files(dst)

    def failing(fd: int) -> None:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(yolo_output, "sync_stage", failing)
    with pytest.raises(yolo_output.StorageError, match=r"cannot write .*ds: Input/output error"):
        _export_n(dst, 2)
    assert _files(dst) == before
    assert not [p for p in dst.iterdir() if p.name.startswith(STAGE_PREFIX)]


def test_without_fcntl_the_folder_is_not_opened(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Windows has no ``fcntl`` and cannot ``os.open`` a folder (PermissionError): the export
    opened one only to lock it, so every local YOLO export there failed."""
    monkeypatch.setattr(yolo_output, "fcntl", None)
    monkeypatch.setattr(yolo_output, "_syncfs", None)  # nor syncfs
    real_open = os.open

    def windows_open(path, flags, *a, **k):
        if os.path.isdir(path):
            raise PermissionError(13, "Permission denied", path)
        return real_open(path, flags, *a, **k)

    monkeypatch.setattr(yolo_output.os, "open", windows_open)
    dst = tmp_path / "ds"
    _export(dst)
    assert _files(dst) == WHOLE


@pytest.mark.parametrize("taken", ["data.yaml", "labels"])
def test_a_name_taken_by_a_folder_or_a_file_stops_the_export_before_any_move(tmp_path: Path, taken: str) -> None:
    """A top file's name taken by a folder, or ``labels`` by a file (the user's): refused before
    anything moved, the folder as it was, and the error named only the dataset's folder."""
    dst = tmp_path / "ds"
    _export(dst)
    for p in dst.rglob("*"):
        if p.is_file() and p.name != "index.jsonl":  # which lists the label files: none is the user's
            p.write_bytes(b"old\n")
    spot = dst / taken
    if spot.is_dir():
        for p in sorted(spot.rglob("*"), reverse=True):
            p.unlink() if p.is_file() else p.rmdir()
        spot.rmdir()
        spot.write_bytes(b"mine\n")
    else:
        spot.unlink()
        spot.mkdir()
    before = {str(p.relative_to(dst)): p.read_bytes() for p in dst.rglob("*") if p.is_file()}
    with pytest.raises(yolo_output.StorageError) as err:
        _export(dst)
    assert taken in str(err.value)
    assert {str(p.relative_to(dst)): p.read_bytes() for p in dst.rglob("*") if p.is_file()} == before
    assert not list(dst.glob(".tmp-yolo-*"))


@pytest.mark.parametrize("inside", ["labels/a/img3.txt", "labels/b/old.txt"])
def test_a_re_export_replaces_labels_whole(tmp_path: Path, inside: str) -> None:
    """Before: each label file was moved into the previous export's ``labels/``, so a label file
    left out of the new export stayed (a dataset with images it no longer lists), and a folder
    where a label file goes stopped the export. ``labels/`` is the export's own: after a
    re-export it holds exactly what that export wrote."""
    dst = tmp_path / "ds"
    _export(dst, "labels/b/old.txt")  # the earlier export had one image more
    spot = dst / inside
    if inside != "labels/b/old.txt":
        spot.unlink()
        spot.mkdir()
    _export(dst)
    assert _files(dst) == WHOLE


@pytest.mark.parametrize("mine", ["labels/my_extra.txt", "labels/a"])
def test_a_label_file_the_earlier_exports_index_does_not_list_is_refused(tmp_path: Path, mine: str) -> None:
    """A file the user added to ``labels/`` of a folder this tool wrote (``index.jsonl`` there)
    was removed by the re-export without a word, exit 0: ``labels/`` is replaced whole, but the
    earlier export's label files are the ones its ``index.jsonl`` lists, and this one is the
    user's. Refused before anything moves, naming it, as one in a ``labels/`` of no export is."""
    dst = tmp_path / "ds"
    _export(dst)
    spot = dst / mine
    if spot.is_dir():
        for p in spot.iterdir():
            p.unlink()
        spot.rmdir()
    spot.write_bytes(b"0 0.5 0.5 0.2 0.2\n")
    before = {str(p.relative_to(dst)): p.read_bytes() for p in dst.rglob("*") if p.is_file()}
    with pytest.raises(yolo_output.StorageError, match=rf"labels/ holds {re.escape(mine)}, which its index\.jsonl"):
        _export(dst)
    assert {str(p.relative_to(dst)): p.read_bytes() for p in dst.rglob("*") if p.is_file()} == before
    assert not list(dst.glob(".tmp-yolo-*"))


def test_a_labels_folder_of_no_export_is_refused(tmp_path: Path) -> None:
    """A ``labels/`` with no ``index.jsonl`` beside it is the user's (another tool's dataset):
    replacing it whole would remove their label files, so the export stops before writing."""
    dst = tmp_path / "ds"
    (dst / "labels").mkdir(parents=True)
    (dst / "labels" / "theirs.txt").write_bytes(b"1 0.5 0.5 0.2 0.2\n")
    with pytest.raises(yolo_output.StorageError, match=r"labels/ holds labels/theirs\.txt and no index\.jsonl"):
        _export(dst)
    assert _files(dst) == ["labels/theirs.txt"] and not list(dst.glob(".tmp-yolo-*"))


@pytest.mark.parametrize("failing", ["out:labels", "in:labels", "in:index.jsonl", "sync:journal"])
def test_a_move_that_fails_mid_swap_leaves_the_previous_export_whole(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing: str) -> None:
    """A rename the swap makes fails (EIO, a quota, a permission): the previous export, moved out
    into the stage's ``.old`` already, was removed with the stage, so the folder was left with no
    export (or a part of the new one). The swap undoes its moves, and the export fails naming
    the error, the previous export whole in the folder."""
    dst = tmp_path / "ds"
    _export(dst)
    before = {str(p.relative_to(dst)): p.read_bytes() for p in dst.rglob("*") if p.is_file()}
    real = os.rename
    direction, name = failing.split(":")
    failed: list[str] = []

    def rename(src, target, *a, **k):
        src, target = os.fspath(src), os.fspath(target)
        moving_in = STAGE_PREFIX in src and STAGE_PREFIX not in target
        moving_out = STAGE_PREFIX in target and STAGE_PREFIX not in src
        if not failed and os.path.basename(src) == name and (moving_in if direction == "in" else moving_out):
            failed.append(src)  # once: the moves back succeed
            raise OSError(5, "Input/output error")
        return real(src, target, *a, **k)

    real_sync = yolo_swap.fsync_dir

    def sync(path):  # the swap's first sync (the stage's, its journal just written) fails
        if not failed:
            failed.append(path)
            raise OSError(5, "Input/output error")
        real_sync(path)

    if direction == "sync":
        monkeypatch.setattr(yolo_swap, "fsync_dir", sync)
    else:
        monkeypatch.setattr(yolo_output.os, "rename", rename)
    with pytest.raises(yolo_output.StorageError, match="Input/output error"), YoloOutput(str(dst)) as out:
        out.write("labels/b/new.txt", b"1 0.5 0.5 0.1 0.1\n")  # the new export: other files, classes
        out.write("index.jsonl", b"{\"new\": 1}\n")
        out.write("classes.txt", b"dog\n")
    monkeypatch.undo()
    assert {str(p.relative_to(dst)): p.read_bytes() for p in dst.rglob("*") if p.is_file()} == before
    assert not list(dst.glob(".tmp-yolo-*"))


class NoLocks:
    """``fcntl`` on a file system without locks (some network mounts): ``flock`` fails."""

    LOCK_EX = LOCK_NB = 0

    @staticmethod
    def flock(fd: int, op: int) -> None:
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))


def _half_swapped(dst: Path, owner: bytes | None) -> Path:
    """A previous export whole, then what a killed re-export left mid-swap: its journal written,
    the old ``index.jsonl`` moved out into the stage's ``.old``, nothing moved in yet."""
    _export(dst)
    stage = dst / ".tmp-yolo-dead1234"
    (stage / "labels" / "b").mkdir(parents=True)
    (stage / "labels" / "b" / "new.txt").write_bytes(b"1 0.5 0.5 0.1 0.1\n")
    (stage / "index.jsonl").write_bytes(b'{"new": 1}\n')
    (stage / yolo_swap.PLAN).write_bytes(b"labels\nindex.jsonl\n")
    (stage / yolo_swap.OLD).mkdir()
    os.rename(dst / "index.jsonl", stage / yolo_swap.OLD / "index.jsonl")
    if owner is not None:
        (stage / yolo_swap.OWNER).write_bytes(owner)
    return stage


def test_without_locks_a_recent_half_done_swap_of_an_unknown_export_is_refused_saying_why(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before: the next export, unable to lock the folder, left the stage alone and then refused
    the folder as 'no export of this tool's' (labels/ without index.jsonl), which it was. Now the
    refusal names the folder, the reason (no locks there) and what to do; once the swap is older
    than the lease timeout it is settled as a killed export's."""
    dst = tmp_path / "ds"
    stage = _half_swapped(dst, owner=None)  # no owner: a stage of an export that did not record one
    monkeypatch.setattr(yolo_output, "fcntl", NoLocks)
    with pytest.raises(yolo_output.UsageError) as err:
        _export(dst)
    message = str(err.value)
    assert f"the YOLO folder {dst}" in message and ".tmp-yolo-dead1234 holds a swap begun" in message
    assert "locks are not supported on that file system (flock: No locks available)" in message
    assert "try again in" in message and "TOTASK_LEASE_TIMEOUT" in message
    assert stage.exists()
    old = time.time() - 3600
    os.utime(stage / yolo_swap.PLAN, (old, old))
    _export(dst)
    assert _files(dst) == WHOLE and not stage.exists()


def test_without_locks_a_stage_of_a_gone_process_on_this_host_is_settled_at_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    holder = Holder.me("convert")
    holder.pid, holder.pid_start = int(gone.stdout), ""
    dst = tmp_path / "ds"
    stage = _half_swapped(dst, owner=holder.to_json())
    monkeypatch.setattr(yolo_output, "fcntl", NoLocks)
    _export(dst)
    assert _files(dst) == WHOLE and not stage.exists()


def test_without_locks_a_live_exports_stage_on_this_host_refuses_a_second_export(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dst = tmp_path / "ds"
    stage = _half_swapped(dst, owner=Holder.me("convert").to_json())  # this process: alive
    before = {str(p.relative_to(dst)): p.read_bytes() for p in dst.rglob("*") if p.is_file()}
    monkeypatch.setattr(yolo_output, "fcntl", NoLocks)
    with pytest.raises(yolo_output.UsageError, match=rf"another convert \(pid {os.getpid()} on host .*\) is writing "
                       rf"the YOLO folder {re.escape(str(dst))}; wait for it to end"):
        _export(dst)
    assert {str(p.relative_to(dst)): p.read_bytes() for p in dst.rglob("*") if p.is_file()} == before
    assert stage.exists()


def test_without_locks_an_export_records_its_process_in_its_stage(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(yolo_output, "fcntl", NoLocks)
    dst = tmp_path / "ds"
    with YoloOutput(str(dst)) as out:
        owner = Holder.from_json((Path(out.stage) / yolo_swap.OWNER).read_bytes())
        out.write("index.jsonl", b"{}\n")
    assert owner is not None and owner.pid == os.getpid() and owner.on_this_host()
    assert _files(dst) == ["index.jsonl"]
