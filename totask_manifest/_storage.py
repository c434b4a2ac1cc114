"""Every storage URL goes through fsspec: local paths, ``file://``, ``s3://``, ``memory://``, ...

Object stores have no rename, so "atomic" means: write the whole object under a temporary name,
then move it into place; a reader sees the old object or the new one, never half of one.

fsspec is imported on first use (about 80 ms: it loads asyncio and ssl): reading a plain local
path (``open_read``), as ``validate`` and ``stats`` of a local file do, never needs it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import random
import stat
import tempfile
import uuid
from collections.abc import Iterator
from typing import IO, TYPE_CHECKING, Any

from . import _http_ranges
from ._errors import (
    WRITE_ERRNOS,
    StorageError,
    StoreRefusedError,
    backend_error_message,
    backend_refusal,
    file_changed,
    is_file_expired,
    write_failure,
)
from ._folders import missing_folders, not_a_folder, refused_write, remove_empty

# re-exported: the redaction rules are imported from here across the package
from ._redaction import carries_secret as carries_secret
from ._redaction import escape_undecodable as escape_undecodable
from ._redaction import map_strings as map_strings
from ._redaction import redact_secret_url as redact_secret_url
from ._redaction import redact_url as redact_url
from ._url_forms import local_file_url as local_file_url
from ._url_forms import refuse_half_scheme as refuse_half_scheme
from ._write_behind import open_write_behind, replace_behind, sync

if TYPE_CHECKING:
    import fsspec

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: temporaries are never judged stale
    fcntl = None  # type: ignore[assignment]

def _with_env_proxy(url: str, storage_options: dict[str, Any]) -> dict[str, Any]:
    """An ``http(s)://`` URL (an input manifest, a report's images) through the proxy the
    environment names for its host, as data files and Synapse go (``_proxies``): fsspec's http
    session is made without the environment. The proxy's credentials go in its URL, which aiohttp
    sends as ``Proxy-Authorization`` to the proxy only; no other option is changed."""
    if not url[:8].lower().startswith(("http://", "https://")) or "client_kwargs" in storage_options:
        return storage_options
    from ._proxies import EnvProxies

    proxy = EnvProxies.read().for_url(url)
    if proxy is None:
        return storage_options
    return {**storage_options, "client_kwargs": {"proxy": proxy.url_with_credentials()}}


def url_to_fs(url: str, **storage_options: Any) -> tuple[fsspec.AbstractFileSystem, str]:
    refuse_half_scheme(url)
    url = local_file_url(url)
    import fsspec.core

    storage_options = _with_env_proxy(str(url), storage_options)
    try:
        return fsspec.core.url_to_fs(str(url), **storage_options)
    except (ImportError, ValueError) as exc:
        protocol = str(url).split("://", 1)[0] if "://" in str(url) else "file"
        # fsspec's own words for a missing s3fs ("Install s3fs to access S3") say less than the extra
        said = "install s3fs: pip install 'totask-manifest[s3]'" if protocol in ("s3", "s3a") else str(exc)
        raise StorageError(f"cannot open {redact_url(url)}: no filesystem for protocol {protocol!r}: {said}") from None
    except Exception as exc:  # fsspec implementations raise anything on a URL they cannot use
        raise StorageError(f"cannot open {redact_url(url)}: {type(exc).__name__}: {exc}") from None


def refuse_output_over_input(src: str, dst: str) -> None:
    """Refuse a command whose output is its own input (``labeled m -o m``, ``convert m m``): the
    atomic commit would replace the input with what was derived from it, so the lines left out
    (or the format it was in) are gone. Local paths are compared after resolving links."""
    (fs_src, path_src), (fs_dst, path_dst) = url_to_fs(src), url_to_fs(dst)
    if type(fs_src) is not type(fs_dst):
        return
    local = is_local(fs_src)
    if (os.path.realpath(path_src) == os.path.realpath(path_dst) if local
            else path_src.rstrip("/") == path_dst.rstrip("/")):
        raise StorageError(f"the output {redact_url(dst)} is the input {redact_url(src)}: writing it would "
                           "replace the input; give another output path")


def refuse_folder_name(url: str) -> None:
    """Refuse a file's output named as a folder (``-o reports/``): the slash was dropped on the
    way and a file named ``reports`` written, exit 0, where the user asked for a folder."""
    if os.fspath(url).endswith(("/", os.sep)):  # a pathlib.Path too (write_lines takes one)
        raise StorageError(f"cannot write {redact_url(url)}: it ends in '/', a folder's name; give the file's name")


#: what a node that is not a regular file is called, by its ``stat`` test (a folder is refused by the write itself)
_SPECIAL_FILES = ((stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                  (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"))


def refuse_special_file(url: str) -> None:
    """Refuse a local output path where a device, FIFO or socket stands (``-o /dev/null``,
    ``convert m dev/fifo``): the atomic write renames a regular file over whatever holds the
    name, so the node was replaced, exit 0 (run as root, ``-o /dev/full`` replaced the system's).
    The rename replaces a link itself, never its target: a link to a regular file is replaced by
    the output (the file it named stays as it was); a link to such a node (``/dev/stdout`` on a
    terminal or a pipe) is refused as the node is, since the link is what the user meant to write.
    A link through ``/proc`` and a name in ``/dev`` itself are refused whatever they resolve to
    (``refuse_process_link``, ``refuse_device_folder``)."""
    local = _local_path(url)
    if local is None:
        return
    refuse_process_link(url, local)
    if (kind := special_node(local)) is not None:
        raise StorageError(f"cannot write {redact_url(url)}: it is {kind}, not a regular file, and the "
                           "output would replace it; give a regular file's path")
    refuse_device_folder(url, local)


def _reached(local: str) -> tuple[int, str]:
    """The mode of what ``local`` names, a link followed (0: nothing there, or a link to nothing),
    and ``"a link to "`` where a link led there (else ``""``): a link is judged as its target is."""
    try:
        mode, link = os.lstat(local).st_mode, ""
        if stat.S_ISLNK(mode):
            mode, link = os.stat(local).st_mode, "a link to "
    except (OSError, ValueError):  # nothing there yet (or a link to nothing): the write says what it finds
        return 0, ""
    return mode, link


def special_node(local: str) -> str | None:
    """What stands at the local path ``local`` in words (``"a FIFO"``, ``"a link to a socket"``)
    when it is a device, a FIFO or a socket, or a link to one; None for anything else. Only its
    mode is read: opening a FIFO with no writer would wait for one."""
    return _special_kind(*_reached(local))


def _special_kind(mode: int, link: str) -> str | None:
    """``special_node``'s words for a mode already read (``_reached``)."""
    return next((link + kind for is_kind, kind in _SPECIAL_FILES if is_kind(mode)), None)


#: the folder of the kernel's process files, whose links (``fd/1``) are magic: ``os.stat`` follows one
#: to the open file itself, a regular file when the output stream is redirected to one
PROCESS_FOLDER = "/proc"
#: the folder of the system's devices and their links (``stdout``, ``fd``, ``core``)
DEVICE_FOLDER = "/dev"
#: the most links followed along a chain (Linux's own limit, past which ``open`` says ``ELOOP``)
_MAX_LINKS = 40
#: the standard streams, by descriptor
_STREAMS = {"0": "standard input", "1": "standard output", "2": "standard error"}


def _link_chain(local: str) -> Iterator[tuple[str, str]]:
    """Each name a write to ``local`` reaches, its folders' links resolved (``/dev/fd/1`` is
    ``/proc/<pid>/fd/1``), with the words that led to it: ``local`` itself, then what each link
    names in turn. ``os.path.realpath`` cannot tell this: it resolves ``/proc/self/fd/1`` to the
    file the stream was redirected to, so the ``/proc`` link on the way is not seen."""
    said = local
    for _ in range(_MAX_LINKS):
        folder, name = os.path.split(local)
        try:
            local = os.path.join(os.path.realpath(folder), name)
        except ValueError:  # a NUL in the name: the write says so
            return
        yield local, said
        try:
            said = os.readlink(local)
        except (OSError, ValueError):  # not a link, or nothing there: the chain ends
            return
        local = os.path.join(os.path.dirname(local), said)


def _process_file(local: str) -> str | None:
    """What the name ``local`` under ``/proc`` is, in words: one of this command's descriptors
    (``/proc/<pid>/fd/N``, ``/proc/<pid>/task/<tid>/fd/N``), another process's, or another of the
    kernel's links (``/proc/self/exe``); None for any other name there, which no write can make
    (the write says so: ``/proc/sys/vm is not a writable folder``)."""
    parts = local[len(PROCESS_FOLDER):].strip("/").split("/")
    if len(parts) >= 3 and parts[-2] == "fd" and parts[0].isdigit():
        if int(parts[0]) != os.getpid():
            return f"process {parts[0]}'s descriptor {parts[-1]}"
        return f"the command's own {_STREAMS.get(parts[-1], f'descriptor {parts[-1]}')}"
    return f"a link the kernel keeps in {PROCESS_FOLDER}" if os.path.islink(local) else None


def _is_under(local: str, folder: str) -> bool:
    return local == folder or local.startswith(folder + "/")


def refuse_process_link(url: str, local: str, wanted: str = "a regular file") -> None:
    """Refuse an output whose name or link chain reaches ``/proc`` (``-o /dev/stdout``, ``/dev/fd/1``,
    ``/proc/self/fd/1``): such a name is one of the command's own streams, never a file. On a
    terminal or a pipe the special-file check caught it, but with the stream redirected to a file
    (``-o /dev/stdout > out.parquet``) the magic link resolves to that regular file: the check passed,
    the output went into a temporary and the rename replaced the link itself (as root, the system's
    ``/dev/stdout``), exit 0, with nothing written to the stream."""
    for hop, (reached, said) in enumerate(_link_chain(local)):
        if _is_under(reached, PROCESS_FOLDER) and (what := _process_file(reached)) is not None:
            if hop:
                what = f"a link to {said}, {what}"
            raise StorageError(f"cannot write {redact_url(url)}: it is {what}, not {wanted}, and the "
                               f"output cannot replace it atomically; give {wanted}'s path")


def refuse_device_folder(url: str, local: str) -> None:
    """Refuse an output named in ``/dev`` itself, whatever stands there (the nodes were refused
    before): its names are the system's devices and their links, and a regular file there is
    only ever a misspelt one (``-o /dev/nul``) that, run as root, was written among them, exit 0.
    A folder below (``/dev/shm``, a RAM disk people keep scratch files on) is written as usual."""
    with contextlib.suppress(ValueError):  # a NUL in the name: the write says so
        if os.path.realpath(os.path.dirname(local)) == DEVICE_FOLDER:
            raise StorageError(f"cannot write {redact_url(url)}: it is a name in {DEVICE_FOLDER}, the system's "
                               f"folder of devices, not a place for an output; give a path outside {DEVICE_FOLDER}")


def refuse_file_output(url: str) -> None:
    """The checks of a file's output path that need nothing read: every atomic write makes them
    (``AtomicWriter``), and the commands make them first, before the work the file holds."""
    refuse_folder_name(url)
    refuse_folder(url)
    refuse_special_file(url)
    refuse_file_above(url)


def refuse_file_above(url: str) -> None:
    """Refuse a local output (a file, or a YOLO export's folder) whose path goes through a regular
    file or a link to nothing (``-o afile/out.jsonl``, ``afile/ds --to yolo``): no folder can be
    made there. A YOLO export failed only when it made its folder, after the whole manifest was
    read, and ``report`` after its page was made; said in the words the write says it in
    (``not_a_folder``). One ``stat`` where the folder is there: every atomic write makes it."""
    local = _local_path(url)
    if local is None:
        return
    directory = os.path.dirname(os.path.abspath(local))
    try:
        if stat.S_ISDIR(os.stat(directory).st_mode):
            return
    except (OSError, ValueError):  # not there (made by the write), or a NUL in the name (the write says so)
        pass
    nearest = directory
    while not os.path.lexists(nearest) and os.path.dirname(nearest) != nearest:
        nearest = os.path.dirname(nearest)
    if not os.path.isdir(nearest):
        raise StorageError(f"cannot write {redact_url(url)}: {not_a_folder(directory)}")


def refuse_folder(url: str) -> None:
    """Refuse a local file output where a folder stands (``export -o exports``, the folder there):
    only the atomic write's final rename failed on it, after the whole work (every task fetched,
    every line converted). A link to a folder is refused too and called one (the rename would
    replace the link by the file). Local paths only: an object store has no folder a key would replace."""
    local = _local_path(url)
    if local is not None and os.path.isdir(local):
        # a link is named as one: "it is a folder" sent the user looking for a folder where a link stands
        what = "a link to a folder" if os.path.islink(local) else "a folder"
        raise StorageError(f"cannot write {redact_url(url)}: it is {what}, not a regular file; give the file's "
                           "name (a name inside it, say)")


def refuse_folder_output(url: str) -> None:
    """The checks of a folder's output path (a YOLO export's) that need nothing read, made before
    the work as ``refuse_file_output``'s are for a file, and by the export again: a device, FIFO
    or socket there, a regular file, a link to one of these, a link through ``/proc``, ``/dev``
    itself or a name in it, any path in ``/proc``. Each failed only when the export made its
    folder, after the whole manifest was read (``/dev/null is a file, not a folder``, a FIFO
    called a file too), and a new name in ``/dev`` was made a folder of the export among the
    system's devices, exit 0. A folder below ``/dev`` (``/dev/shm``) is written as usual."""
    local = _local_path(url)
    if local is None:
        return
    refuse_process_link(url, local, wanted="a folder")
    mode, link = _reached(local)  # read once: the special-file words and the regular file's alike
    what = _special_kind(mode, link) or (f"{link}a file" if stat.S_ISREG(mode) else None)
    if what is not None:
        raise StorageError(f"cannot write {redact_url(url)}: it is {what}, not a folder, and the export writes a "
                           "folder of files there; give a folder's path")
    refuse_file_above(url)
    refuse_device_folder(url, local)
    _refuse_system_folder(url, local)


def _refuse_system_folder(url: str, local: str) -> None:
    """Refuse a folder output that resolves into ``/proc`` (``/proc/self/fd``: the kernel makes no
    file there) or is ``/dev`` itself (the system's devices: a name in it is ``refuse_device_folder``'s)."""
    try:
        real = os.path.realpath(local)
    except ValueError:  # a NUL in the name: the write says so
        return
    if _is_under(real, PROCESS_FOLDER):
        folder, held = PROCESS_FOLDER, "the kernel's folder of process files"
    elif real == DEVICE_FOLDER:
        folder, held = DEVICE_FOLDER, "the system's folder of devices"
    else:
        return
    where = folder if real == folder else f"a name in {folder}"
    raise StorageError(f"cannot write {redact_url(url)}: it is {where}, {held}, not a place for an output; "
                       f"give a path outside {folder}")


def _local_path(url: str) -> str | None:
    """The local path ``url`` names, or None for a URL of another file system."""
    if (local := plain_local_path(url)) is not None:
        return local
    fs, path = url_to_fs(url)
    return path if is_local(fs) else None


def is_local(fs: fsspec.AbstractFileSystem) -> bool:
    from fsspec.implementations.local import LocalFileSystem  # loaded already: ``fs`` is fsspec's

    return isinstance(fs, LocalFileSystem)


def plain_local_path(url: str) -> str | None:
    """``url`` when it is a local path that fsspec would open unchanged (relative to the working
    folder, as ``open`` does), else None: no scheme or drive (``:``), no ``~`` (fsspec expands
    it), no trailing ``/`` (fsspec strips it), not empty. Such a path is read without fsspec."""
    text = str(url)
    if os.sep != "/" or not text or ":" in text or text.startswith("~") or text.endswith("/"):
        return None
    return text


def join(base: str, *parts: str) -> str:
    """Join URL path segments with ``/`` (also for local paths, which accept it everywhere)."""
    out = str(base).rstrip("/")
    for p in parts:
        out = out + "/" + p.strip("/")
    return out


@contextlib.contextmanager
def backend_errors(url: str, verb: str = "read") -> Iterator[None]:
    """A storage back end's own exceptions (no credentials, access denied, ...) as one
    ``StorageError`` naming the URL; everything else passes unchanged. s3fs turns S3's 403
    (wrong credentials, a policy that denies) into a plain ``PermissionError("Forbidden")``, and
    its other refusals into a bare ``OSError`` (``backend_refusal``): neither names a URL."""
    try:
        yield
    except PermissionError as exc:
        raise StoreRefusedError(f"cannot {verb} {redact_url(url)}: {exc.strerror or exc}") from None
    except TimeoutError as exc:  # aiohttp's whole-request limit (fsspec's http: 5 min): a bare, empty TimeoutError
        raise StoreRefusedError(f"cannot {verb} {redact_url(url)}: timed out{f': {exc}' if str(exc) else ''}") from None
    except OSError as exc:  # aiohttp's connection errors are OSErrors too: named as before
        if is_file_expired(exc):  # replaced between two block reads: said as every reader says it
            raise file_changed(url) from None
        if (refused := backend_refusal(exc) or backend_error_message(exc)) is None:
            raise
        raise StoreRefusedError(f"cannot {verb} {redact_url(url)}: {refused}") from None
    except Exception as exc:
        message = backend_error_message(exc)
        if message is None:
            raise
        raise StoreRefusedError(f"cannot {verb} {redact_url(url)}: {message}") from None


def exists(url: str) -> bool:
    """Whether ``url`` exists. Over HTTP, only a 404 (or 410) means it does not: fsspec's own
    ``exists`` says False for any error, so a 500 or a redirect loop read "not found"."""
    fs, path = url_to_fs(url)
    with backend_errors(url):
        if _is_http(fs):
            return bool(fs.exists(path, strict=True))
        return fs.exists(path)


def _protocols(fs: fsspec.AbstractFileSystem) -> set[str]:
    protocol = fs.protocol
    return set((protocol,) if isinstance(protocol, str) else protocol)


def _is_http(fs: fsspec.AbstractFileSystem) -> bool:
    return bool({"http", "https"} & _protocols(fs))


#: stores of objects under keys: no folder to make before a write, and their ``makedirs`` of
#: ``bucket/key`` creates the bucket when it is missing (a misspelt bucket became a new one)
_OBJECT_STORES = frozenset({"s3", "s3a", "gs", "gcs"})


def _not_found(url: str, exc: FileNotFoundError) -> StorageError:
    """What a missing file says. fsspec's HTTP file system raises ``FileNotFoundError`` for any
    failed request, the real one as its cause: a 500 or a redirect loop is named as such."""
    cause = exc.__cause__
    status = getattr(cause, "status", None)
    message = backend_error_message(cause) if cause is not None else None
    if message is None or status in (404, 410):
        return StorageError(f"no such file: {redact_url(url)}")
    return StoreRefusedError(f"cannot read {redact_url(url)}: {message}")


def is_dir(url: str) -> bool:
    """Whether ``url`` is a folder (on S3: a prefix with keys under it), with a refusal (wrong
    credentials, a policy that denies) as one ``StorageError`` naming the URL."""
    fs, path = url_to_fs(url)
    with backend_errors(url):
        return bool(fs.isdir(path))


@contextlib.contextmanager
def open_read(url: str) -> Iterator[IO[bytes]]:
    local = plain_local_path(url)
    if local is None:
        fs, path = url_to_fs(url)
        if is_local(fs):
            local = path
    try:
        with backend_errors(url):
            f = open(local, "rb") if local is not None else fs.open(path, "rb")  # noqa: SIM115
            if local is None and _is_http(fs):  # each ranged answer checked (``_http_ranges``)
                f = _http_ranges.checked(f, url)
    except FileNotFoundError as exc:
        raise _not_found(url, exc) from None
    except IsADirectoryError:
        raise StorageError(f"is a folder, not a file: {redact_url(url)}") from None
    except (OSError, PermissionError) as exc:
        raise StorageError(f"cannot read {redact_url(url)}: {backend_refusal(exc) or exc.strerror or exc}") from None
    with f, backend_errors(url):
        yield f


def read_bytes(url: str) -> bytes:
    with open_read(url) as f:
        return f.read()


def size(url: str) -> int:
    fs, path = url_to_fs(url)
    try:
        with backend_errors(url):
            return int(fs.size(path))
    except FileNotFoundError as exc:
        raise _not_found(url, exc) from None


#: read once at import, while no other thread can be creating files (reading it means setting it)
_UMASK = os.umask(0)
os.umask(_UMASK)


def read_only_error(url: str, fs: Any) -> StorageError:
    """What a write to a filesystem without writes (fsspec raised ``NotImplementedError``) says."""
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    return StorageError(f"cannot write {redact_url(url)}: the {protocol} filesystem is read-only; "
                        "write to a local path, file:// or s3://")


#: ``mkstemp``'s: the characters of a temporary's name, and how it is opened
_NAME_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789_"
_TEMPORARY_FLAGS = os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


class AtomicWriter:
    """A binary file that appears at ``url`` only when the ``with`` block ends without error."""

    def __init__(self, url: str) -> None:
        refuse_file_output(url)
        self.url = url
        self.fs, self.path = url_to_fs(url)
        self._file: Any = None
        self._tmp = ""
        #: local folders made for the file, deepest first: removed with the temporary
        self._made: list[str] = []

    def __enter__(self) -> IO[bytes]:
        try:
            try:
                with backend_errors(self.url, "write"):
                    return self._open()
            except OSError as exc:
                raise StorageError(f"cannot write {redact_url(self.url)}: {exc.strerror or exc}") from None
            except NotImplementedError:  # fsspec's answer for a filesystem without writes (http, https, zip...)
                raise read_only_error(self.url, self.fs) from None
        except BaseException:  # a SIGTERM or Ctrl-C the moment the temporary appeared: no ``__exit__`` follows
            self._abort()
            raise

    def _open(self) -> IO[bytes]:
        if is_local(self.fs):
            directory = os.path.dirname(os.path.abspath(self.path)) or "."
            self._made = missing_folders(directory)
            try:
                os.makedirs(directory, exist_ok=True)
                fd = self._local_temporary(directory)
            except (FileExistsError, NotADirectoryError):  # os says "File exists", naming nothing
                raise NotADirectoryError(errno.ENOTDIR, not_a_folder(directory)) from None
            except OSError as exc:
                remove_empty(self._made)
                if said := refused_write(redact_url(self.url), directory, exc):  # /proc said "No such file or directory"
                    raise StorageError(said) from None
                raise
            _lock_temporary(fd)
            os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes private files; a manifest is an ordinary file
            self._file = open_write_behind(fd)
        else:
            parent = self.path.rsplit("/", 1)[0] if "/" in self.path else ""
            name = self.path.rsplit("/", 1)[-1]
            self._tmp = (parent + "/" if parent else "") + f".tmp-{name}-{uuid.uuid4().hex}"
            if not _protocols(self.fs) & _OBJECT_STORES:  # s3fs's makedirs would create a missing bucket
                with contextlib.suppress(Exception):
                    self.fs.makedirs(parent, exist_ok=True)
            self._file = self.fs.open(self._tmp, "wb")
        return self._file

    def _local_temporary(self, directory: str) -> int:
        """A file as ``mkstemp`` makes one (``.tmp-<name>-`` and 8 characters, ``O_EXCL``, mode
        0600), whose name ``_tmp`` holds before it exists: a signal between the two (SIGTERM the
        moment the temporary appears, a CI run found) leaves ``_abort`` a name to remove."""
        for _ in range(tempfile.TMP_MAX):
            self._tmp = os.path.join(directory, f".tmp-{os.path.basename(self.path)}-{''.join(random.choices(_NAME_CHARS, k=8))}")
            try:
                return os.open(self._tmp, _TEMPORARY_FLAGS, 0o600)
            except FileExistsError:
                continue
        raise FileExistsError(errno.EEXIST, f"no temporary name left in {directory}")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            try:
                with backend_errors(self.url, "write"):
                    self._commit()
            except OSError as exc:  # a full disk, a quota: nothing half-written stays behind
                raise StorageError(write_failure(redact_url(self.url), exc)) from None
        else:
            self._abort()
            if isinstance(exc, OSError) and exc.errno in WRITE_ERRNOS:  # a full disk while writing
                raise StorageError(write_failure(redact_url(self.url), exc)) from None

    def _commit(self) -> None:
        try:
            if is_local(self.fs):
                sync(self._file)  # every write error is raised here, before the rename
                replace_behind(self._tmp, self.path)  # then close: the lock is held until the name is gone
                self._close_committed()
                fsync_dir(os.path.dirname(os.path.abspath(self.path)))
            else:
                self._file.close()
                self._move()
        except BaseException:
            self._abort()
            raise

    def _close_committed(self) -> None:
        """Close the file renamed into place. Its bytes were synced before the rename, so closing
        has nothing left to lose; an error of ``close`` (``EIO`` from a network file system) is
        not raised, which would report a failed write while the new file stands at its name
        (``FileIO.close`` gives up the descriptor even when ``close(2)`` fails)."""
        with contextlib.suppress(OSError):
            self._file.close()

    def _move(self) -> None:
        """The temporary object to its name. s3fs answers the move's ``info`` from a cached
        listing of the folder when it has one, and says FileNotFoundError for a name it lacks: a
        listing taken by another thread of this process while the object was uploaded (a job
        lists its parts while it writes one) made a checkpoint write fail in a CI run. The cached
        listings are dropped first, and once more before a second try."""
        self.fs.invalidate_cache(self._tmp)
        try:
            self.fs.mv(self._tmp, self.path)
        except FileNotFoundError:
            self.fs.invalidate_cache(self._tmp)
            self.fs.mv(self._tmp, self.path)

    def _abort(self) -> None:
        """Throw the temporary away. On S3, ``discard`` aborts the multipart upload of a file over
        s3fs's block size, whose parts would otherwise stay stored, and billed, unseen by any
        listing (``tests/test_s3_multipart.py``); ``close`` would complete it instead."""
        with contextlib.suppress(Exception):
            if hasattr(self._file, "discard"):
                self._file.discard()
                self._file.closed = True  # else its __del__ flushes the discarded buffer (s3fs)
            else:
                self._file.close()
        with contextlib.suppress(Exception):  # not there (nothing was uploaded): nothing to remove
            if is_local(self.fs):
                os.unlink(self._tmp)
                remove_empty(self._made)  # nothing was written: no folder made for it either
            else:  # deleted outright: s3fs answers ``exists`` from a cached listing (see ``_move``), maybe stale
                self.fs.rm_file(self._tmp)


def _lock_temporary(fd: int) -> None:
    """Lock a local temporary for as long as its writer holds it open: the kernel drops the lock
    when the writer's process ends in any way (``kill -9`` included), so a later run can tell a
    temporary left behind from one being written (``_stale_temporaries``)."""
    if fcntl is not None:
        with contextlib.suppress(OSError):  # a file system without locks: nothing is ever judged stale
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)


def fsync_dir(directory: str) -> None:
    """Make a rename or link inside ``directory`` durable (a crash could otherwise lose the entry)."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_bytes_atomic(url: str, data: bytes) -> None:
    with AtomicWriter(url) as f:
        f.write(data)


def remove_file(url: str) -> None:
    """Remove the file at ``url``; one already gone is no error. ``StorageError`` otherwise."""
    fs, path = url_to_fs(url)
    try:
        with backend_errors(url, "write"):
            fs.rm_file(path)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise StorageError(f"cannot remove {redact_url(url)}: {exc.strerror or exc}") from None
