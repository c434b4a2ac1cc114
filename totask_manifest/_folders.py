"""Local folders a writer makes for its output, and what stands where one was wanted.

A command refused part way ("nothing was written": ``labeled``, ``convert``, a job's lease or
input) removes what it made, the folders for its file included: otherwise a misspelt attribute
left ``out/a/`` behind, empty. Ground floor: ``_storage.AtomicWriter`` (every file output) and
``_jobs`` (a job's lease, its combined input) share these.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile

#: what making a file in a folder that takes none says: EACCES, EPERM (an immutable folder,
#: ``chattr +i``; ``/sys``) and ENOENT (``/proc``, whose file system makes no new files, so that
#: ``open`` says "No such file or directory" of a folder that is there)
NOT_WRITABLE_ERRNOS = frozenset({errno.EPERM, errno.EACCES, errno.ENOENT})


def missing_folders(directory: str) -> list[str]:
    """``directory`` and those of its parents that do not exist yet, deepest first: the folders
    a command writing there creates, to remove again (``remove_empty``) when it leaves nothing
    there: an atomic write (``_storage.AtomicWriter``), taking a job's lease (``lease.acquire``),
    combining a job's input (``combine``)."""
    missing: list[str] = []
    while directory and not os.path.isdir(directory):
        missing.append(directory)
        parent = os.path.dirname(directory)
        if parent == directory:
            break
        directory = parent
    return missing


def remove_empty(folders: list[str]) -> None:
    """Remove ``folders`` (deepest first) while they are empty; stop at the first that is not."""
    for directory in folders:
        try:
            os.rmdir(directory)
        except OSError:
            break


def not_a_folder(directory: str) -> str:
    """What stands where ``directory`` or a folder above it was wanted: the nearest path there is,
    a file or a link to nothing (``lexists``: a dangling link must be named, not the folder it
    sits in, which ``exists`` would reach and call a file)."""
    while not os.path.lexists(directory) and os.path.dirname(directory) != directory:
        directory = os.path.dirname(directory)
    if os.path.islink(directory) and not os.path.exists(directory):
        return f"{directory} is a link to {os.readlink(directory)}, which does not exist"
    return f"{directory} is a file, not a folder"


def not_writable(directory: str) -> str:
    """Why nothing can be written in ``directory`` (or the nearest folder above it there is, where
    a writer making it would write first), in words, or "" when a file can be: "out is not a
    writable folder (Operation not permitted)". Tried by making a file there and removing it, not
    by ``os.access``, which says yes to root in an immutable folder (``chattr +i``) where every
    write fails with EPERM, the errno some file systems also give ``link`` for "no hard links"
    (so a lease's failed link is judged by this: ``lease.acquire``)."""
    while not os.path.exists(directory) and os.path.dirname(directory) != directory:
        directory = os.path.dirname(directory)
    if not os.path.isdir(directory):
        return f"{directory} is not a writable folder"
    try:
        fd, probe = tempfile.mkstemp(prefix=".tmp-writable-", dir=directory)
    except OSError as exc:
        return f"{directory} is not a writable folder ({_refusal(exc)})"
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(probe)
    return ""


def _refusal(exc: OSError) -> str:
    """Why a file could not be made in a folder that is there, in words: ENOENT's own words ("No
    such file or directory", ``/proc``'s answer) would send the user looking for a missing path."""
    if exc.errno == errno.ENOENT:
        return "its file system makes no new files"
    return exc.strerror or str(exc)


def refused_write(shown: str, directory: str, exc: OSError) -> str | None:
    """What a local write refused by its folder says, as every writer says it: "cannot write
    out/x.json: /proc is not a writable folder (its file system makes no new files)", naming the
    file the user gave (``shown``, without secrets) and the folder that refused it (``directory``
    or the nearest one above it there is). None where ``exc`` is no such refusal, or a file can be
    made there after all (a folder removed meanwhile), for the caller's own words."""
    if exc.errno not in NOT_WRITABLE_ERRNOS or not (why := not_writable(directory)):
        return None
    return f"cannot write {shown}: {why}"
