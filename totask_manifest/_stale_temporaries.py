"""Removing what a killed writer left: the atomic-write temporaries (``.tmp-<name>-*``) of
``_storage.AtomicWriter`` that no live writer holds, and on S3 their unfinished multipart uploads. Why apart from ``_storage``: only
``convert`` (its outputs are folders of many files, where a leftover would be mixed with the next
export), Synapse's ``export``, ``labeled`` and ``report`` (a killed one leaves a hidden partial file, as
large as what it had written) clean up after a ``kill -9``, and the rules for telling a dead writer's temporary from a
live one's differ by storage (a lock on a local disk, an age on an object store).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import stat
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from ._storage import fcntl, is_local, url_to_fs

if TYPE_CHECKING:
    import fsspec

#: an empty temporary younger than this may be one whose writer has not locked it yet
#: (``_storage._lock_temporary``); one that holds data was locked before its first byte
TEMPORARY_GRACE_S = 2.0
#: an object-store temporary older than this is a killed writer's (``_remove_stale_objects``):
#: far above the upload and copy of any manifest, and any clock skew between host and store
OBJECT_TEMPORARY_GRACE_S = 3600.0



#: the name ``AtomicWriter`` gives a local temporary: ``mkstemp``'s 8 random characters at the end
_TEMPORARY = re.compile(r"\.tmp-.+-[a-z0-9_]{8}\Z")
#: the name ``AtomicWriter`` gives a temporary object: a uuid's 32 hex digits at the end
_TEMPORARY_OBJECT = re.compile(r"\.tmp-.+-[0-9a-f]{32}\Z")


def remove_stale_temporaries(url: str, *, under: tuple[str, ...] | None = None) -> list[str]:
    """Remove the atomic-write temporaries a killed writer of ``url`` left: ``.tmp-<name>-*``
    beside the file ``url``; or, with ``under`` (a folder's output, as YOLO's), every temporary
    at the top of the folder ``url`` and anywhere below its subfolders ``under``, the places its
    writer writes: not the whole tree, which may be a user's (``convert m . --to yolo``) and hold
    files of their own named ``.tmp-*``, or millions of files to walk.

    A local temporary is stale when no process holds its lock (``_storage._lock_temporary``: a live
    writer, of this run or another, always does) and it holds data or is older than
    ``TEMPORARY_GRACE_S`` (a writer locks it a moment after creating it, before its first byte). Elsewhere (S3) nothing can be locked: see
    ``_remove_stale_objects``. Returns the paths removed."""
    fs, path = url_to_fs(url)
    if not is_local(fs):
        return _remove_stale_objects(fs, path, under)
    if fcntl is None:
        return []
    path = os.path.abspath(path)
    root, prefix = (path, ".tmp-") if under is not None else (os.path.dirname(path), f".tmp-{os.path.basename(path)}-")
    if not os.path.isdir(root):
        return []
    found = [(root, [], os.listdir(root))]
    for sub in under or ():
        found = itertools.chain(found, os.walk(os.path.join(root, sub)))
    removed = []
    for where, _dirs, names in found:
        for entry in names:
            candidate = os.path.join(where, entry)
            if entry.startswith(prefix) and _TEMPORARY.match(entry) and _remove_if_stale(candidate):
                removed.append(candidate)
    return removed


def _remove_stale_objects(fs: fsspec.AbstractFileSystem, path: str, under: tuple[str, ...] | None) -> list[str]:
    """``remove_stale_temporaries`` on an object store, in the same places and names. A temporary
    object becomes visible only when its upload completes, and its writer moves it into place at
    once (``AtomicWriter``): one older than ``OBJECT_TEMPORARY_GRACE_S`` (by its store's
    modification time; a multipart upload's counts from its start, hence the margin) is a killed
    writer's. A writer killed before its upload completed left no object but the upload itself,
    its parts stored (and billed) and unseen: ``_abort_stale_uploads``."""
    path = path.rstrip("/")
    root, prefix = (path, ".tmp-") if under is not None else (path.rsplit("/", 1)[0], f".tmp-{path.rsplit('/', 1)[-1]}-")
    fs.invalidate_cache(root)
    found: list[str] = []
    for folder, deep in [(root, False), *((f"{root}/{sub}", True) for sub in under or ())]:
        # a cleanup never fails the command (a read-only http:// output, a user who may not list):
        # the write that follows says what is wrong, naming the URL
        with contextlib.suppress(Exception):
            found += map(str, fs.find(folder) if deep else fs.ls(folder, detail=False))
    removed = _abort_stale_uploads(fs, root, prefix, under)
    for candidate in found:
        name = candidate.rstrip("/").rsplit("/", 1)[-1]
        if not (name.startswith(prefix) and _TEMPORARY_OBJECT.match(name)):
            continue
        try:
            age = time.time() - fs.modified(candidate).timestamp()
        except Exception:  # no modification time (or gone): never judged stale
            continue
        if age >= OBJECT_TEMPORARY_GRACE_S:
            with contextlib.suppress(Exception):
                fs.rm_file(candidate)
                removed.append(candidate)
    return removed


def _abort_stale_uploads(fs: fsspec.AbstractFileSystem, root: str, prefix: str,
                         under: tuple[str, ...] | None) -> list[str]:
    """Abort the unfinished multipart uploads of the temporaries ``_remove_stale_objects`` looks
    for, in the same places and names, initiated over ``OBJECT_TEMPORARY_GRACE_S`` ago."""
    top = root.rstrip("/") + "/"

    def wanted(path: str, deep: bool) -> bool:
        name = path.rsplit("/", 1)[-1]
        return (deep or "/" not in path[len(top):]) and name.startswith(prefix) and bool(_TEMPORARY_OBJECT.match(name))

    aborted = abort_uploads(fs, top + prefix, lambda path: wanted(path, False), OBJECT_TEMPORARY_GRACE_S)
    for sub in under or ():
        aborted += abort_uploads(fs, f"{top}{sub}/", lambda path: wanted(path, True), OBJECT_TEMPORARY_GRACE_S)
    return aborted


def abort_uploads(fs: fsspec.AbstractFileSystem, start: str, wanted: Callable[[str], bool], age_s: float) -> list[str]:
    """Abort the unfinished multipart uploads (S3's: s3fs writes a file over its block size as
    one) whose path (``bucket/key``) begins with ``start``, is ``wanted`` and was initiated at
    least ``age_s`` ago. Why: a writer killed part way (``kill -9``, the OOM killer) neither
    completes nor aborts its upload; its parts stay stored, and billed, seen by no listing but
    ``ListMultipartUploads``, unless the bucket has a lifecycle rule. A writer that fails or is
    interrupted in its own process aborts its own (``_storage.AtomicWriter._abort``). Other
    stores have no such uploads; a user who may not list or abort them still gets the command
    (the clean-up is skipped). Returns the paths of the uploads aborted."""
    if not (hasattr(fs, "call_s3") and hasattr(fs, "split_path")):  # s3fs's
        return []
    aborted = []
    with contextlib.suppress(Exception):
        bucket, prefix, _version = fs.split_path(start)  # a trailing ``/`` kept: ``labels/``, not ``labels-x/``
        for upload in _uploads(fs, bucket, prefix):
            path = f"{bucket}/{upload['Key']}"
            if wanted(path) and time.time() - upload["Initiated"].timestamp() >= age_s:
                fs.call_s3("abort_multipart_upload", Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
                aborted.append(path)
    return aborted


def _uploads(fs: fsspec.AbstractFileSystem, bucket: str, prefix: str) -> Iterator[dict]:
    """The bucket's unfinished multipart uploads of keys under ``prefix``, every page."""
    kwargs = {"Bucket": bucket, "Prefix": prefix}
    while True:
        page = fs.call_s3("list_multipart_uploads", **kwargs)
        yield from page.get("Uploads", [])
        if not page.get("IsTruncated"):
            return
        kwargs.update(KeyMarker=page["NextKeyMarker"], UploadIdMarker=page["NextUploadIdMarker"])


def _remove_if_stale(path: str) -> bool:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)  # a FIFO so named: no wait for a writer
    except OSError:
        return False
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or (not info.st_size and time.time() - info.st_mtime < TEMPORARY_GRACE_S):
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # held: its writer is alive
            return False
        with contextlib.suppress(FileNotFoundError):  # renamed into place since it was opened
            os.unlink(path)
            return True
        return False
    finally:
        os.close(fd)
