"""Where a YOLO export writes: on a local disk, one change to the folder, whole or not at all.

A YOLO dataset is many files (a label file per image, ``index.jsonl``, ``images.txt``,
``classes.txt``, ``data.yaml``), where every other ``convert`` output is one file an
``AtomicWriter`` renames into place. Written straight into the folder, a ``kill -9`` left the
label files it had finished, a Ctrl-C as the last two files were written left a dataset without
them, and two exports to one folder at once removed each other's new folders. So, locally:

* the export holds an exclusive lock on the folder itself (``flock`` on its descriptor: no file
  is added to a user's folder for it); a second export to the same folder is refused, one line,
  exit 2. The kernel drops the lock when its holder ends, ``kill -9`` included;
* everything is written into a hidden ``.tmp-yolo-*`` folder inside it, and only when the last
  file is written are the files moved to their names (one rename of ``labels/`` when the folder
  has none yet), with Ctrl-C and SIGTERM held back until the moves are done;
* a ``.tmp-yolo-*`` folder found while the lock is held can only be a killed export's (only the
  lock's holder makes one): it is removed.

Elsewhere (S3) nothing can be locked or renamed as a folder: each file is written atomically
where it goes, and an export stopped by an error or a Ctrl-C removes the label files it made.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import tempfile
import threading
from collections.abc import Iterator
from typing import IO

from .._errors import StorageError, UsageError
from .._storage import (
    AtomicWriter,
    _not_a_folder,
    fcntl,
    fsync_dir,
    is_local,
    join,
    redact_url,
    url_to_fs,
    write_bytes_atomic,
)
from .new_files import NewFiles

#: the staging folder's name: ``mkdtemp``'s 8 random characters after the prefix
STAGE_PREFIX = ".tmp-yolo-"
_STAGE = re.compile(r"\.tmp-yolo-[a-z0-9_]{8}\Z")
#: the files at the folder's top, moved last (``labels/`` first: a top file names labels)
TOP_FILES = ("images.txt", "classes.txt", "data.yaml", "index.jsonl")


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
        self._made_root = False
        self._folders: set[str] = set()
        #: object store: new files, removed again when the export stops
        self._written = NewFiles()

    # -- the block --------------------------------------------------------------------------

    def __enter__(self) -> YoloOutput:
        if self.root is None:
            return self
        try:
            self._made_root = not os.path.isdir(self.root)
            os.makedirs(self.root, exist_ok=True)
            self._lock()
            for name in os.listdir(self.root):  # only the lock's holder makes one: a killed export's
                path = os.path.join(self.root, name)
                if _STAGE.match(name) and os.path.isdir(path) and not os.path.islink(path):
                    shutil.rmtree(path, ignore_errors=True)
            self.stage = tempfile.mkdtemp(prefix=STAGE_PREFIX, dir=self.root)
        except BaseException as exc:
            self._release()
            if isinstance(exc, FileExistsError | NotADirectoryError):  # os names no path: say which
                raise StorageError(f"cannot write {redact_url(self.dst)}: {_not_a_folder(self.root)}") from None
            if isinstance(exc, OSError):
                raise self._storage_error(exc) from None
            raise
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if self.root is None:
            if exc_type is not None:
                self._written.remove()
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
        if self.root is None:
            url = join(self.dst, rel)
            self._written.note(url)
            write_bytes_atomic(url, data)
            return
        with self.open(rel) as f:
            f.write(data)

    @contextlib.contextmanager
    def open(self, rel: str) -> Iterator[IO[bytes]]:
        """The file ``rel`` to write as a stream (``index.jsonl``)."""
        if self.root is None:
            with AtomicWriter(join(self.dst, rel)) as f:
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
        with f:
            try:
                yield f
            except OSError as exc:
                raise self._storage_error(exc) from None

    # -- local ------------------------------------------------------------------------------

    def _lock(self) -> None:
        self._lock_fd = os.open(self.root, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        if fcntl is None:
            return
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UsageError(f"another convert is writing the YOLO folder {redact_url(self.dst)}; wait for it "
                             "to end, or write to another folder") from None
        except OSError:  # a file system without locks: nothing to refuse a second export with
            pass

    def _commit(self) -> None:
        """The staged files to their names; Ctrl-C and SIGTERM wait until they all are."""
        with _signals_held():
            staged = os.path.join(self.stage, "labels")
            target = os.path.join(self.root, "labels")
            if os.path.isdir(staged):
                if not os.path.lexists(target):
                    os.rename(staged, target)
                else:
                    _move_tree(staged, target)
            for name in TOP_FILES:
                if os.path.exists(os.path.join(self.stage, name)):
                    os.replace(os.path.join(self.stage, name), os.path.join(self.root, name))
            fsync_dir(self.root)

    def _release(self) -> None:
        """The stage gone (empty after a commit), the folder too when this export made it and
        nothing else is in it, and then the lock."""
        if self.stage:
            shutil.rmtree(self.stage, ignore_errors=True)
            self.stage = ""
        if self._made_root:
            with contextlib.suppress(OSError):
                os.rmdir(self.root)
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def _storage_error(self, exc: OSError) -> StorageError:
        return StorageError(f"cannot write {redact_url(self.dst)}: {exc.strerror or exc}")


def _move_tree(staged: str, target: str) -> None:
    """Each staged file to its name below ``target``, which a previous export (or the user) made."""
    for folder, _dirs, names in os.walk(staged):
        dest = os.path.join(target, os.path.relpath(folder, staged))
        os.makedirs(dest, exist_ok=True)
        for name in names:
            os.replace(os.path.join(folder, name), os.path.join(dest, name))


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """SIGINT and SIGTERM blocked (delivered when the block ends) on the main thread."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "pthread_sigmask"):
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
