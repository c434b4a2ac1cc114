"""Where a YOLO export writes: on a local disk, one change to the folder, whole or not at all.

A YOLO dataset is many files (a label file per image, ``index.jsonl``, ``images.txt``,
``classes.txt``, ``data.yaml``), where every other ``convert`` output is one file an
``AtomicWriter`` renames into place. Written straight into the folder, a ``kill -9`` left the
label files it had finished, a Ctrl-C as the last two files were written left a dataset without
them, and two exports to one folder at once removed each other's new folders. So, locally:

* the export holds an exclusive lock on the folder itself (``flock`` on its descriptor: no file
  is added to a user's folder for it); a second export to the same folder is refused, one line,
  exit 2. The kernel drops the lock when its holder ends, ``kill -9`` included;
* everything is written into a hidden ``.tmp-yolo-*`` folder inside it, all of it synced before
  the first move (as ``AtomicWriter`` syncs one file: a power cut leaves no empty file under its
  name). On Linux that is one ``syncfs`` of the stage's file system after the last write, not an
  ``fsync`` per file (1.6 ms each: half an hour of a million-image export); elsewhere each file
  and folder is synced on its own (``_syncfs``). Only when the last file is written does the dataset replace the previous one, entry by
  entry in an order journaled in the stage (``yolo_swap``: the folder never mixes two exports,
  even after a ``kill -9``, and holds exactly what the new export wrote), with Ctrl-C and
  SIGTERM held back until the moves are done (noted by handlers of their own, not masked: see
  ``_signals.held``);
* a ``.tmp-yolo-*`` folder found while the lock is held can only be a killed export's (only the
  lock's holder makes one): ``yolo_swap.recover`` settles the folder on one export, then it goes.

Elsewhere (S3) nothing can be renamed: the export is staged under a hidden prefix and put in
place only when whole (``yolo_remote``: a re-export stopped by an error leaves the previous
export as it was). Two exports to one prefix would interleave their files, so the export holds
the prefix's lease (the one a job folder has: ``_jobs.lease``, an S3 conditional write) while it
writes, and settles what an earlier export stopped there left before it writes.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import posixpath
import re
import shutil
import sys
import tempfile
from collections.abc import Iterator
from typing import IO, Any

import orjson

from .. import _signals
from .._errors import StorageError, UsageError, write_failure
from .._folders import missing_folders, not_a_folder, refused_write, remove_empty
from .._storage import (
    fcntl,
    fsync_dir,
    is_local,
    join,
    read_only_error,
    redact_url,
    refuse_folder_output,
    special_node,
    url_to_fs,
)
from .yolo_remote import RemoteStage, settle
from .yolo_swap import note_owner, recover, settle_unlocked, settled, swap

#: the staging folder's name: ``mkdtemp``'s 8 random characters after the prefix
STAGE_PREFIX = ".tmp-yolo-"
_STAGE = re.compile(r"\.tmp-yolo-[a-z0-9_]{8}\Z")
#: the files at the folder's top
TOP_FILES = ("images.txt", "classes.txt", "data.yaml", "index.jsonl")
#: object store: how many files are written between two checks that the lease is still this export's
LEASE_CHECK_EVERY = 256


def refuse_yolo_output(dst: str) -> None:
    """The checks of a YOLO folder ``dst`` that read no file, made by ``convert`` before the work
    (the export makes them again under the folder's lock): the folder's own path
    (``_storage.refuse_folder_output``), then what stands where its entries go."""
    refuse_folder_output(dst)
    fs, path = url_to_fs(dst)
    if is_local(fs):
        refuse_special_entries(dst, os.path.abspath(path))


def refuse_special_entries(dst: str, root: str) -> None:
    """Refuse a device, FIFO or socket (or a link to one) where the export's entries go in the
    local folder ``root``: a top file, ``labels``, anything under ``labels/`` (replaced whole).
    The swap moved such a node aside and removed it with the stage, exit 0, and a FIFO at
    ``index.jsonl`` hung the export, which reads that file to judge the folder, waiting for a
    writer. Only modes are read (``os.scandir`` gives most without a ``stat``); never opened."""
    labels = os.path.join(root, "labels")
    found = next((path for path in (*(os.path.join(root, n) for n in TOP_FILES), labels)
                  if special_node(path) is not None), None)
    if found is None and os.path.isdir(labels) and not os.path.islink(labels):
        found = _special_under(labels)
    if found is not None:
        rel = os.path.relpath(found, root).replace(os.sep, "/")
        raise StorageError(f"cannot write {redact_url(dst)}: {rel} is {special_node(found)}, not a regular file, "
                           "and the export would replace it with its own; move it away or write to another folder")


def _special_under(folder: str) -> str | None:
    """The first device, FIFO or socket (or link to one) found under ``folder``, or None."""
    pending = [folder]
    while pending:
        try:
            listing = os.scandir(pending.pop())
        except OSError:  # a folder that cannot be listed: the export's own reads say what it is
            continue
        with listing as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    pending.append(entry.path)
                elif not entry.is_file(follow_symlinks=False) and special_node(entry.path) is not None:
                    return entry.path
    return None


class YoloOutput:
    """``with YoloOutput(dst) as out``: ``out.write``/``out.open`` the dataset's files by their
    path in the folder; they take their names when the block ends without error, and are gone
    (with the folders made for them) when it ends with one, ``KeyboardInterrupt`` included."""

    def __init__(self, dst: str) -> None:
        self.dst = dst
        fs, path = url_to_fs(dst)
        self.fs = fs
        self.root = os.path.abspath(path) if is_local(fs) else None
        self.stage = ""
        self._lock_fd: int | None = None
        #: the stage, open from before its first file until the commit's ``syncfs`` (Linux): a
        #: write-back error of the file system since it was opened is that call's error
        self._stage_fd: int | None = None
        #: whether this export holds the folder's lock (not on Windows or a file system without
        #: locks): only then is a ``.tmp-yolo-*`` folder surely a killed export's, never a live one's
        self._locked = False
        #: flock's error where the file system has no locks ("" else): stages are then judged by owner
        self._no_lock = ""
        #: the folders this export made (``dst`` and its missing parents, deepest first): removed
        #: again when it ends with nothing in them, as a refused ``AtomicWriter`` removes its own
        self._made: list[str] = []
        self._folders: set[str] = set()
        #: object store: where the files are staged until they are all written
        self._remote: RemoteStage | None = None
        #: object store: label files written (the lease is checked every ``LEASE_CHECK_EVERY``)
        self._label_count = 0
        self._lease: contextlib.ExitStack | None = None

    # -- the block --------------------------------------------------------------------------

    def __enter__(self) -> YoloOutput:
        if self.root is None:
            self._hold_lease()
            self._remote = RemoteStage(self.fs, self.dst)
            return self
        refuse_folder_output(self.dst)  # convert made these first; the Python API's caller may not have
        try:
            self._made = missing_folders(self.root)
            os.makedirs(self.root, exist_ok=True)
            self._lock()
            for name in os.listdir(self.root) if self._locked or self._no_lock else ():
                path = os.path.join(self.root, name)
                if _STAGE.match(name) and os.path.isdir(path) and not os.path.islink(path):
                    if self._locked:  # a killed export's: see _locked
                        recover(self.root, path)
                    else:  # may be a live one's: judged by who wrote it
                        settle_unlocked(self.root, path, self.dst, self._no_lock)
            refuse_special_entries(self.dst, self.root)  # before index.jsonl is read: a FIFO there would hang it
            self._refuse_foreign_dataset()
            self.stage = tempfile.mkdtemp(prefix=STAGE_PREFIX, dir=self.root)
            if _syncfs is not None:
                self._stage_fd = os.open(self.stage, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
            if self._no_lock:
                note_owner(self.stage)
        except BaseException as exc:
            self._release()
            if isinstance(exc, FileExistsError | NotADirectoryError):  # os names no path: say which
                raise StorageError(f"cannot write {redact_url(self.dst)}: {not_a_folder(self.root)}") from None
            if isinstance(exc, OSError):
                raise self._storage_error(exc) from None
            raise
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if self.root is None:
            try:
                if exc_type is not None or self._remote is None:
                    if self._remote is not None:
                        self._remote.discard()
                else:
                    self._check_lease()  # still this export's prefix
                    self._remote.commit()
            finally:
                self._release_lease()
            return
        try:
            if exc_type is None:
                try:
                    self._commit()
                except OSError as err:
                    raise self._storage_error(err) from None
        finally:
            self._release()

    # -- writing ----------------------------------------------------------------------------

    def write(self, rel: str, data: bytes) -> None:
        """The file ``rel`` (``labels/a/x.txt``, ``classes.txt``) of the dataset."""
        if self._remote is not None:
            if rel.startswith("labels/"):
                self._label_count += 1
                if self._label_count % LEASE_CHECK_EVERY == 0:
                    self._check_lease()
            self._remote.write(rel, data)
            return
        with self.open(rel) as f:
            f.write(data)

    @contextlib.contextmanager
    def open(self, rel: str) -> Iterator[IO[bytes]]:
        """The file ``rel`` to write as a stream (``index.jsonl``)."""
        if self._remote is not None:
            with self._remote.open(rel) as f:
                yield f
            return
        path = os.path.join(self.stage, *rel.split("/"))
        try:
            folder = os.path.dirname(path)
            if folder not in self._folders:
                os.makedirs(folder, exist_ok=True)
                self._folders.add(folder)
            f = open(path, "wb")  # noqa: SIM115 (closed below, its errors named)
        except OSError as exc:
            raise self._storage_error(exc) from None
        try:  # the close too: it writes what is buffered, and a full disk fails it as a write
            with f:
                yield f
                if self._stage_fd is None:  # else synced with the rest of the stage (``_commit``)
                    f.flush()
                    os.fsync(f.fileno())  # whole on disk before its name can be
        except OSError as exc:
            raise self._storage_error(exc) from None

    # -- local ------------------------------------------------------------------------------

    def _lock(self) -> None:
        if fcntl is None:  # Windows: no flock, and a folder cannot be opened (PermissionError)
            return
        self._lock_fd = os.open(self.root, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            self._locked = True
        except BlockingIOError:
            raise UsageError(f"another convert is writing the YOLO folder {redact_url(self.dst)}; wait for it "
                             "to end, or write to another folder") from None
        except OSError as exc:  # a file system without locks: ``yolo_swap.settle_unlocked`` judges stages
            self._no_lock = f"flock: {exc.strerror or exc}"

    def _commit(self) -> None:
        """The staged files to their names; Ctrl-C and SIGTERM wait until they all are."""
        if self._stage_fd is not None:
            sync_stage(self._stage_fd)  # every file and folder of the stage, in one call
        else:
            _sync_folders(self.stage)  # the entries of the files synced (each file was, as written)
        taken = self._taken()
        if taken is not None:  # found before the first move: the folder stays as it was
            rel = os.path.relpath(taken, self.root).replace(os.sep, "/")
            held = "a folder" if os.path.isdir(taken) else "a file"
            raise StorageError(f"cannot write {redact_url(self.dst)}: {rel} is {held}, in the way of the "
                               "export's own; nothing in the folder was changed")
        with _signals.held():
            swap(self.root, self.stage)

    def _taken(self) -> str | None:
        """The first entry the swap must not replace, or None: a folder where a top file goes (a
        user's), or a ``labels`` that is no folder. Found before any move, so the folder stays
        as it was."""
        for name in TOP_FILES:
            path = os.path.join(self.root, name)
            if os.path.isdir(path) and not os.path.islink(path):
                return path
        labels = os.path.join(self.root, "labels")
        return labels if os.path.lexists(labels) and not os.path.isdir(labels) else None

    def _refuse_foreign_dataset(self) -> None:
        """An export replaces the dataset's entries (``labels/`` whole, and the top files): refused
        where, with no ``index.jsonl`` (the mark of this tool's export) beside them, a top file is
        there or ``labels/`` holds a file (other than a writer's ``.tmp-*`` temporary), i.e. no
        export of this tool's but the user's own files, which the export would replace or remove.
        Named by the first. (The top files were once replaced without a word: a user's own
        ``data.yaml`` was overwritten, exit 0.)"""
        def path(rel: str) -> str:
            return os.path.join(self.root, rel) if self.root is not None else url_to_fs(join(self.dst, rel))[1]

        labels = path("labels")
        with contextlib.suppress(Exception):  # s3fs caches listings (its parents' too): what is there now
            self.fs.invalidate_cache(labels)
        if self.fs.exists(path("index.jsonl")):
            self._refuse_unlisted_labels(labels, path("index.jsonl"))
            return
        for name in TOP_FILES[:-1]:  # index.jsonl, the last, is not there
            if self.fs.exists(path(name)):
                raise StorageError(f"cannot write {redact_url(self.dst)}: {name} is there and no index.jsonl "
                                   "beside it: no export of this tool's, and an export would replace it; move it "
                                   "away or write to another folder")
        if not self.fs.isdir(labels):
            return
        for entry in sorted(self.fs.find(labels)):  # files: an empty folder holds nothing to lose
            if not posixpath.basename(entry).startswith(".tmp-"):
                rel = "labels/" + entry[len(labels.rstrip("/")):].strip("/")
                raise StorageError(f"cannot write {redact_url(self.dst)}: labels/ holds {rel} and no index.jsonl "
                                   "beside it: no export of this tool's, and an export, replacing labels/ whole, "
                                   "would remove it; move it away or write to another folder")

    def _refuse_unlisted_labels(self, labels: str, index: str) -> None:
        """A folder an earlier export wrote: ``labels/`` is replaced whole, which drops that
        export's label files (its ``index.jsonl`` lists each) that the new one has not, as the
        README promises. A file it does not list is no export's but the user's own (added after
        it), and was removed without a word, exit 0: refused, naming the first and the count, as a
        user's file in a ``labels/`` with no ``index.jsonl`` is. Refused rather than noted: a
        note comes after the file is gone, and nothing else in the folder is the export's."""
        if not self.fs.isdir(labels):
            return
        listed = set()
        for raw in self.fs.cat_file(index).splitlines():
            with contextlib.suppress(ValueError):  # a damaged line lists nothing
                entry = orjson.loads(raw)
                if isinstance(entry, dict) and isinstance(entry.get("label"), str):
                    listed.add(entry["label"])
        base = labels.rstrip("/")
        unlisted = [rel for rel in ("labels/" + e[len(base):].strip("/") for e in sorted(self.fs.find(labels)))
                    if rel not in listed and not posixpath.basename(rel).startswith(".tmp-")]
        if unlisted:
            more = f" (and {len(unlisted) - 1} more such {'file' if len(unlisted) == 2 else 'files'})" if len(unlisted) > 1 else ""
            raise StorageError(f"cannot write {redact_url(self.dst)}: labels/ holds {unlisted[0]}{more}, which its "
                               "index.jsonl (the earlier export's) does not list: your own file, and an export, "
                               "replacing labels/ whole, would remove it; move it away or write to another folder")

    # -- object store -----------------------------------------------------------------------

    def _hold_lease(self) -> None:
        """The prefix's lease, as a job folder's is held: a second export there is refused."""
        from .._jobs.lease import JobBusyError, hold

        if _read_only(self.fs):  # said as every other output says it, not as the lease's listing fails
            raise read_only_error(self.dst, self.fs)
        stack = contextlib.ExitStack()
        try:
            stack.enter_context(hold(self.dst, "convert"))
        except JobBusyError as exc:
            stack.close()
            raise UsageError(f"another convert is writing the YOLO folder {redact_url(self.dst)} ({exc}); wait "
                             "for it to end, or write to another folder") from None
        self._lease = stack
        try:
            settle(self.fs, self.dst)  # an earlier export stopped here: finished or removed first
            self._refuse_foreign_dataset()
        except BaseException as exc:
            self._release_lease()
            if isinstance(exc, OSError):
                raise self._storage_error(exc) from None
            raise

    def _check_lease(self) -> None:
        """Raise ``LeaseLost`` when another export took the prefix over (this one looked stale)."""
        from .._jobs.lease import held_lease

        lease = held_lease(self.dst)
        if lease is not None:
            lease.verify()

    def _release_lease(self) -> None:
        if self._lease is not None:
            self._lease.close()
            self._lease = None

    def _release(self) -> None:
        """The stage gone (empty after a commit), the folders this export made too while nothing
        else is in them (``F/`` of ``F/yolo`` was once left, empty, by a refused export), and then
        the lock."""
        if self.stage:
            if settled(self.stage):  # else a swap neither done nor undone: the next export's recover
                shutil.rmtree(self.stage, ignore_errors=True)
            self.stage = ""
        if self._stage_fd is not None:
            os.close(self._stage_fd)
            self._stage_fd = None
        remove_empty(self._made)
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None
            self._locked = False

    def _storage_error(self, exc: OSError) -> StorageError:
        shown = redact_url(self.dst)
        if self.root is not None and (said := refused_write(shown, self.root, exc)):  # a folder that takes no file
            return StorageError(said)
        return StorageError(write_failure(shown, exc))  # a file size limit said as one


def _load_syncfs() -> Any:
    """Linux's ``syncfs(2)`` (not in ``os``), or None elsewhere. Since Linux 5.8 it reports a
    write-back error of any file of the file system since its descriptor was opened."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        fn = ctypes.CDLL(None, use_errno=True).syncfs
    except (AttributeError, OSError):
        return None
    fn.argtypes, fn.restype = [ctypes.c_int], ctypes.c_int
    return fn


_syncfs = _load_syncfs()


def sync_stage(fd: int) -> None:
    """Every written file's data, inode and folder entry on disk: ``syncfs`` of the file system
    ``fd`` (the stage) is on, once. Its cost does not grow with the files, as one ``fsync`` each
    did (one journal commit each)."""
    if _syncfs(fd) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def _sync_folders(top: str) -> None:
    """fsync every folder under ``top``, deepest first. Entries are read as they come: ``os.walk``
    made a list of every file name in a folder (``labels/`` holds one a line)."""
    with os.scandir(top) as entries:
        folders = [e.path for e in entries if e.is_dir(follow_symlinks=False)]
    for folder in folders:
        _sync_folders(folder)
    fsync_dir(top)


def _read_only(fs: Any) -> bool:
    """fsspec's HTTP filesystem has no writes (``NotImplementedError`` on the first one), and the
    prefix's lease, taken before any, would fail on its listing instead, naming a network error."""
    try:
        from fsspec.implementations.http import HTTPFileSystem
    except ImportError:  # aiohttp missing: then no HTTP filesystem either
        return False
    return isinstance(fs, HTTPFileSystem)
