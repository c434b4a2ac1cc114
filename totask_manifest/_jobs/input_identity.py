"""Where a job's input stands before its scan: the file a ``/dev/stdin`` stands for, the store's
fingerprint of its version, and (over ``http(s)://``) whether its server serves the byte ranges a
job reads its lines by.

Out of ``scan_ranges`` (at its size limit); it imports both from here."""

from __future__ import annotations

import logging
import os
import stat
from typing import Any

from .._errors import UsageError
from .._storage import open_read, url_to_fs

log = logging.getLogger(__name__)


def fingerprint(url: str) -> dict[str, Any] | None:
    """What the store says identifies this version of the file (size and modification time,
    or an ETag), or None when it says nothing that would change with the content."""
    fs, path = url_to_fs(url)
    try:
        info = fs.info(path)
    except (OSError, ValueError):
        return None
    marks = {k: str(info[k]) for k in ("mtime", "LastModified", "ETag", "etag", "ino", "generation") if info.get(k)}
    if not marks:
        return None
    return {"size": int(info.get("size") or 0), **marks}


def require_ranges(url: str) -> None:
    """A job reads its input again at its selected lines' offsets: over ``http(s)://`` the server
    must serve byte ranges, asked once (its last byte) before the job exists. A small file the
    scan reads in one request said nothing about it, and the job failed once it existed."""
    if not url[:8].lower().startswith(("http://", "https://")):
        return
    with open_read(url) as f:
        size = f.seek(0, os.SEEK_END)
        if size > 1:
            f.seek(size - 1)
            f.read(1)  # a range that does not start at 0: checked by ``_http_ranges``


#: where the entries stand for a process's open files (``/dev/stdin``, ``/dev/fd/3``,
#: ``/proc/self/fd/0``): a name that means another file in every process that reads it
_FD_FOLDERS = ("/dev/", "/proc/")


def file_behind(path: str, what: str) -> str:
    """The file a local path that stands for an open file (``annotate /dev/stdin < in.manifest``)
    is, where it is a regular file: ``job.json`` recorded ``/dev/stdin``, so ``status`` and
    ``resume`` later read whatever the standard input of *their* command was (the terminal, another
    file: "changed since the job read it"), and relative references resolved against ``/dev``.
    A pipe or a FIFO is left as given, for ``ranges.refuse_pipe`` to name (a job input must be a
    file; an ``--append`` manifest is copied once); anything else is refused, a terminal or a
    device being no manifest a job can read again."""
    if "://" in path or not path.startswith(_FD_FOLDERS):
        return path
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return path  # not there: the caller's "not found" names it
    real = os.path.realpath(path)
    if stat.S_ISREG(mode) and os.path.isfile(real):
        if real != path:
            log.info("%s %s is the file %s: the job reads and records that file", what, path, real)
        return real
    if not (stat.S_ISREG(mode) or stat.S_ISCHR(mode) or stat.S_ISBLK(mode)):
        return path  # a pipe (named by ``refuse_pipe`` where a file is needed), a folder: as any path
    kind = "a file without a name (deleted?)" if stat.S_ISREG(mode) else "not a file (a terminal or a device)"
    raise UsageError(f"{what} {path} is {kind}: a job reads its input in byte ranges and again when it resumes; "
                     "save it to a file first and give that file")


def stands_for_open_file(path: str) -> bool:
    """Whether a recorded input is a name for an open file of the process that reads it
    (``/dev/stdin``, ``/dev/fd/0``, ``/proc/self/fd/0``), not a file: what an older version
    recorded for ``annotate /dev/stdin < in.manifest`` (``file_behind`` records the file now).
    Read later, it is the reading command's own standard input (a terminal: ``status`` waited
    on it), never the job's input."""
    return "://" not in path and (path in ("/dev/stdin", "/dev/fd") or path.startswith("/dev/fd/")
                                  or (path.startswith("/proc/") and "/fd/" in path))


def open_file_text(job_name: str, path: str) -> str:
    """What ``status`` and ``resume`` say of such an input (``stands_for_open_file``)."""
    return (f"the input manifest of job {job_name!r} was recorded as {path}, which names the standard input (an open "
            "file) of the command that started it, not a file: nothing can read it again; start a new job from the "
            "manifest file itself (annotate FILE, another --job-name)")


def refuse_open_file(job_name: str, path: str) -> None:
    """``clone`` of a job whose recorded input is such a name: it would read the clone command's
    own standard input (another file, or the terminal) as the job's input."""
    if stands_for_open_file(path):
        raise UsageError(open_file_text(job_name, path))
