"""Reading local files only inside ``allow_root`` (symlinks refused at every step), and other
fsspec stores, with a size cap."""

from __future__ import annotations

import errno
import os
import stat
from typing import Any

from .._errors import FetchError, StorageError, credentials_refusal
from .._retry import Transient as _Transient
from .urls import scrub

_CHUNK = 1 << 20


def _read_capped(f: Any, limit: int) -> bytes:
    chunks: list[bytes] = []
    total = 0
    while True:
        chunk = f.read(min(_CHUNK, limit + 1 - total))
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        total += len(chunk)
        if total > limit:
            raise FetchError(f"too large: file passed the limit of {limit:,} bytes")


def read_local(path: str, root: str, limit: int) -> bytes:
    """The bytes of ``path`` (a real path inside the real folder ``root``), opened so that the
    file read is the one checked: see ``open_inside``."""
    try:
        fd = open_inside(root, path)
    except FileNotFoundError:
        raise FetchError("no such file") from None
    except IsADirectoryError:
        raise FetchError("is a folder, not a file") from None
    except PermissionError:
        raise FetchError("permission denied") from None
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR, errno.EMLINK):
            raise FetchError(
                "refused by policy: the path changed while it was opened (a symlink where the check saw a "
                "folder or file); nothing read"
            ) from None
        raise FetchError(f"cannot open: {exc.strerror or type(exc).__name__}") from None
    with os.fdopen(fd, "rb") as f:
        return _read_capped(f, limit)


_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)


def open_inside(root: str, path: str) -> int:
    """A read-only descriptor of the regular file ``path``, which must lie inside ``root`` (both
    real paths, as ``FetchPolicy`` computes them).

    The check that ``path`` lies inside ``root`` was made on names; a folder on the way can be
    swapped for a symlink to elsewhere before the file is opened. So the file is opened component
    by component from the root's descriptor (``openat``) with ``O_NOFOLLOW``: every step is a real
    folder inside the root, and a symlink met on the way, which the real path had none of, fails
    the open (``ELOOP``/``ENOTDIR``) instead of leaving the root. Without ``dir_fd`` support
    (Windows) the file is opened by name and its identity compared with the checked path.
    """
    rel = os.path.relpath(path, root)
    parts = [] if rel == os.curdir else rel.split(os.sep)
    if not parts or parts[0] == os.pardir or os.path.isabs(rel):
        raise IsADirectoryError(path) if not parts else PermissionError(path)
    if os.open not in os.supports_dir_fd or not _NOFOLLOW:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
        if not os.path.samestat(os.fstat(fd), os.stat(path)):
            os.close(fd)
            raise OSError(errno.ELOOP, "the file changed while it was opened")
        return _regular(fd, path)
    fd = os.open(root, os.O_RDONLY | _DIRECTORY | _CLOEXEC)
    try:
        for part in parts[:-1]:
            step = os.open(part, os.O_RDONLY | _DIRECTORY | _NOFOLLOW | _CLOEXEC, dir_fd=fd)
            os.close(fd)
            fd = step
        # O_NONBLOCK: a FIFO planted in the root must not hang the reader (no effect on files)
        last = os.open(parts[-1], os.O_RDONLY | _NOFOLLOW | _CLOEXEC | _NONBLOCK, dir_fd=fd)
    finally:
        os.close(fd)
    return _regular(last, path)


def _regular(fd: int, path: str) -> int:
    mode = os.fstat(fd).st_mode
    if stat.S_ISREG(mode):
        return fd
    os.close(fd)
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(path)
    raise OSError(errno.EINVAL, "not a regular file")  # a device, FIFO or socket


_CREDENTIAL_ERRORS = frozenset({"NoCredentialsError", "PartialCredentialsError", "CredentialRetrievalError"})


def _read_fsspec(url: str, limit: int) -> bytes:
    from .._storage import url_to_fs

    try:
        fs, path = url_to_fs(url)
    except StorageError as exc:
        raise FetchError(scrub(str(exc), 160)) from None
    try:
        with fs.open(path, "rb") as f:
            return _read_capped(f, limit)
    except FetchError:
        raise
    except FileNotFoundError:
        raise FetchError("no such object") from None
    except PermissionError:
        raise FetchError("permission denied") from None
    except (IsADirectoryError, NotADirectoryError):
        raise FetchError("is a folder, not an object") from None
    except Exception as exc:  # network and service errors of any backend: worth another attempt
        if type(exc).__name__ in _CREDENTIAL_ERRORS:  # botocore's; another attempt finds none either
            raise FetchError(f"no storage credentials: {type(exc).__name__}: {scrub(str(exc), 120)}") from None
        if (refused := credentials_refusal(exc)) is not None:  # a configuration rule, as for the commands' reads
            raise FetchError(f"storage credentials refused: {scrub(refused)}") from None
        raise _Transient(f"storage error: {type(exc).__name__}: {scrub(str(exc), 120)}") from None
