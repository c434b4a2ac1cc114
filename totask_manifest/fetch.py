"""Fetching the bytes behind a URL, under a policy: which URLs, how long, how big, how often.

Both annotators read files named by manifest lines (annotation files, images), so this is the one
place that decides what may be read and how hard to try:

* ``http(s)://`` goes straight to aiohttp (``fetch_http``): one connection pool per ``Fetcher``,
  no request or response objects of another library around each GET.
* ``s3://`` and every other fsspec protocol are read in a thread pool, because fsspec's file API
  is synchronous.
* local paths and ``file://`` only inside ``allow_root`` (symlinks and ``..`` resolved first),
  and never without one: a manifest must not be able to read ``~/.aws/credentials``.

Retries (5xx, 429, connection errors, timeouts) back off exponentially with jitter and honour
``Retry-After`` (``retry.Backoff``, the policy every HTTP client of the project uses). Bodies are counted while streaming, so a lying or missing ``Content-Length``
cannot get past ``max_body_bytes``. Failures raise ``FetchError`` whose message names what went
wrong and the URL without its query string or user info: presigned URLs carry their credentials
there, and reasons end up in manifests and logs.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import email.utils
import errno
import os
import queue
import re
import stat
import threading
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from .errors import FetchError, StorageError, UsageError
from .options import Options, option
from .retry import Backoff
from .retry import Transient as _Transient
from .storage import redact_url

if TYPE_CHECKING:
    from .fetch_http import HttpClient

#: requests in flight. A latency-bound store caps a job at concurrency / latency (32 at 10 ms:
#: 3,200 lines/s, below what the client's CPU allows on 2 cores); 64 lifts that cap, and the raw
#: aiohttp client spent about half the CPU a request at 64 that it spent at 32; 128 gained
#: nothing once the CPU was the limit (benchmarks/file_annotate_bench.py --concurrency 32,64,128)
DEFAULT_CONCURRENCY = 64
DEFAULT_TIMEOUT = 30.0
DEFAULT_RETRIES = 3
DEFAULT_MAX_BODY_BYTES = 20 * 1024 * 1024
USER_AGENT = "totask-manifest"  # the header value; fetch_http sends it

_LOCAL_PROTOCOLS = frozenset({"file", "local"})
_HTTP_PROTOCOLS = frozenset({"http", "https"})
_CHUNK = 1 << 20
#: the bracketed IPv6 literal of a URL's host (RFC 3986 section 3.2.2)
_IPV6_HOST = re.compile(r"(?<=://)(?:[^/?#@\[]*@)?\[[0-9A-Za-z:.%_-]*\]")

T = TypeVar("T")
R = TypeVar("R")


# --------------------------------------------------------------------------- URLs


_QUERY_IN_TEXT = re.compile(r"([a-zA-Z][a-zA-Z0-9+.-]*://[^\s?#'\"<>]*)\?[^\s'\"<>]*")
_USERINFO_IN_TEXT = re.compile(r"([a-zA-Z][a-zA-Z0-9+.-]*://)[^\s/@'\"<>]*@")


def scrub(text: str, limit: int = 240) -> str:
    """Remove query strings and user info from URLs inside a library's error message, and shorten it."""
    text = _USERINFO_IN_TEXT.sub(r"\1", _QUERY_IN_TEXT.sub(r"\1?…", text))
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def has_scheme(ref: str) -> bool:
    """True for ``scheme://...`` (two or more letters, so ``C:/x`` stays a path)."""
    head, sep, _ = ref.partition("://")
    return bool(sep) and len(head) > 1 and head.replace("+", "").replace("-", "").replace(".", "").isalnum()


def base_of(manifest_url: str) -> str:
    """The folder a manifest lives in, against which its relative references resolve.

    Local folders come back absolute, so a job resumed from another working directory still
    finds the same files.
    """
    url = str(manifest_url)
    if has_scheme(url) and not url.startswith("file://"):
        return url.rsplit("/", 1)[0] if "/" in url.split("://", 1)[1] else url
    path = url[len("file://"):] if url.startswith("file://") else url
    return os.path.dirname(os.path.abspath(path))


#: the option naming where appended manifests' lines start and the folder each resolves against
APPENDED_BASES = "relative_to_appended"


def base_for_line(options: dict[str, Any], index: int, default: str | None) -> str | None:
    """The folder a line's relative references resolve against: its own manifest's.

    A job's input is the main manifest followed by the lines of each ``--append`` manifest;
    ``options[APPENDED_BASES]`` holds ``[first line index, folder]`` per appended manifest (in
    order), so a line at ``index`` from an appended manifest resolves against that manifest's
    folder, and every other line against ``default`` (the main manifest's).
    """
    base = default
    for first, folder in options.get(APPENDED_BASES) or ():
        if index < first:
            break
        base = folder
    return base


def resolve_reference(ref: str, base: str | None) -> str:
    """Turn a reference from a manifest line into a URL or path.

    URLs and absolute paths stand as they are; a relative path is taken relative to ``base``
    (the manifest's folder, see ``base_of``) or, without one, to the working directory.
    """
    ref = str(ref).strip()
    if has_scheme(ref) or os.path.isabs(ref):
        return ref
    if not base:
        return os.path.abspath(ref)
    if has_scheme(base) and not base.startswith("file://"):
        return base.rstrip("/") + "/" + ref
    base_path = base[len("file://"):] if base.startswith("file://") else base
    return os.path.normpath(os.path.join(base_path, ref))


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delay-seconds or an HTTP date (RFC 9110)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = datetime.now(UTC).timestamp() if now is None else now
    return max(0.0, when.timestamp() - current)


# --------------------------------------------------------------------------- policy


def _bare_host(host: Any) -> str:
    """An ``--allow-host`` value as ``urlsplit`` reports hosts: lower case, an IPv6 literal
    without its brackets (``[::1]`` and ``::1`` both match ``http://[::1]:8080/``)."""
    text = str(host).strip().lower()
    return text[1:-1] if text.startswith("[") and text.endswith("]") else text


def check_fetch_options(options: dict[str, Any]) -> None:
    """Refuse fetch options that cannot work, before a job exists (``UsageError``)."""
    root = options.get("allow_root")
    if root and not os.path.isdir(root[len("file://"):] if str(root).startswith("file://") else root):
        raise UsageError(f"--allow-root {root}: no such folder")
    FetchPolicy.from_options(options)


@dataclass(frozen=True)
class FetchOptions(Options):
    """How an annotator that fetches may fetch (composed into its options with ``nested``), and
    the folders relative references resolve against. Stored flat in job.json under the keys
    ``FetchPolicy.from_options`` reads."""

    concurrency: int = option(DEFAULT_CONCURRENCY, metavar="N",
                              help=f"requests in flight (default {DEFAULT_CONCURRENCY})")
    timeout: float = option(DEFAULT_TIMEOUT, metavar="SECONDS",
                            help=f"limit for one attempt at one file (default {DEFAULT_TIMEOUT:g})")
    retries: int = option(DEFAULT_RETRIES, metavar="N",
                          help="further attempts on 5xx, 429, dropped connections and timeouts "
                          f"(default {DEFAULT_RETRIES})")
    max_body_bytes: int = option(DEFAULT_MAX_BODY_BYTES, metavar="BYTES",
                                 help=f"largest file accepted (default {DEFAULT_MAX_BODY_BYTES:,})")
    allow_hosts: tuple[str, ...] = option((), flag="--allow-host", action="append", metavar="HOST",
                                          help="fetch only from these hosts ('*.example.com' for subdomains; an "
                                          "s3:// URL's host is its bucket); repeatable; default: any host")
    allow_root: str | None = option(None, metavar="DIR",
                                    help="the folder local paths and file:// URLs may read from (refused without it)")
    #: the input manifest's folder (set by the job): relative references resolve against it
    relative_to: str | None = option(None, cli=False, omit_default=True)
    #: ``[first line index, folder]`` per ``--append`` manifest (``APPENDED_BASES``, set by the job)
    relative_to_appended: list | None = option(None, cli=False, omit_default=True)

    def policy(self) -> FetchPolicy:
        """The policy these options give (``UsageError`` for values that cannot work)."""
        return FetchPolicy.from_options(self.to_dict())

    def check(self) -> None:
        """Refuse fetch options that cannot work, before a job exists (``UsageError``)."""
        check_fetch_options(self.to_dict())


@dataclass(frozen=True)
class FetchPolicy:
    """What may be fetched and how: built once per job from the method's options."""

    concurrency: int = DEFAULT_CONCURRENCY
    #: seconds for one whole attempt (connect, headers and body)
    timeout: float = DEFAULT_TIMEOUT
    #: further attempts after the first, for transient failures only
    retries: int = DEFAULT_RETRIES
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    #: remote hosts allowed (empty: any). ``*.example.com`` matches subdomains; for ``s3://`` the host is the bucket
    allow_hosts: tuple[str, ...] = ()
    #: the only folder local paths and ``file://`` URLs may point into; None refuses them all
    allow_root: str | None = None
    #: first backoff ceiling in seconds; doubles per attempt up to ``max_backoff``
    backoff: float = 0.25
    max_backoff: float = 20.0
    #: longest ``Retry-After`` honoured; longer waits are cut to this
    max_retry_after: float = 120.0
    max_redirects: int = 5

    def __post_init__(self) -> None:
        if int(self.concurrency) < 1:
            raise UsageError(f"--concurrency must be at least 1 (got {self.concurrency})")
        if not float(self.timeout) > 0:
            raise UsageError(f"--timeout must be more than 0 seconds (got {self.timeout})")
        if int(self.retries) < 0:
            raise UsageError(f"--retries must be 0 or more (got {self.retries})")
        if int(self.max_body_bytes) < 1:
            raise UsageError(f"--max-body-bytes must be at least 1 (got {self.max_body_bytes})")
        hosts = tuple(_bare_host(h) for h in (self.allow_hosts or ()) if str(h).strip())
        object.__setattr__(self, "allow_hosts", hosts)
        if self.allow_root:
            root = str(self.allow_root)
            if root.startswith("file://"):
                root = root[len("file://"):]
            object.__setattr__(self, "allow_root", os.path.realpath(root))

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> FetchPolicy:
        """Build from a method's options dict (the keys ``fetch_options`` writes)."""
        def pick(key: str, default: Any) -> Any:
            value = options.get(key)
            return default if value is None else value

        return cls(
            concurrency=int(pick("concurrency", DEFAULT_CONCURRENCY)),
            timeout=float(pick("timeout", DEFAULT_TIMEOUT)),
            retries=int(pick("retries", DEFAULT_RETRIES)),
            max_body_bytes=int(pick("max_body_bytes", DEFAULT_MAX_BODY_BYTES)),
            allow_hosts=tuple(options.get("allow_hosts") or ()),
            allow_root=options.get("allow_root") or None,
        )

    def classify(self, url: str) -> tuple[str, str]:
        """``("http" | "local" | "fsspec", target)`` for a URL this policy allows; else ``FetchError``.

        ``target`` is the URL to request, or the real path for local files.
        """
        url = str(url).strip()
        if not url:
            raise FetchError("refused by policy: empty URL")
        if "::" in url and "::" in _IPV6_HOST.sub("", url, count=1):  # an IPv6 literal ([::1]) is not a chain
            raise FetchError(f"refused by policy: chained fsspec URLs are not fetched ({redact_url(url)})")
        if not has_scheme(url):
            return "local", self._local_path(url, url)
        protocol = url.split("://", 1)[0].lower()
        if protocol in _LOCAL_PROTOCOLS:
            parts = urlsplit(url)
            if parts.netloc not in ("", "localhost"):
                raise FetchError(f"refused by policy: file URL names a host ({redact_url(url)})")
            return "local", self._local_path(parts.path, url)
        try:
            parts = urlsplit(url)
            host = (parts.hostname or "").lower()
            _ = parts.port  # a malformed port raises here, not deep inside a client
        except ValueError:
            raise FetchError(f"refused by policy: malformed URL {redact_url(url)}") from None
        if self.allow_hosts and not self._host_allowed(host):
            raise FetchError(f"refused by policy: host {host or '(none)'!r} is not in --allow-host ({redact_url(url)})")
        if protocol in _HTTP_PROTOCOLS:
            if not host:
                raise FetchError(f"refused by policy: no host in {redact_url(url)}")
            return "http", url
        return "fsspec", url

    def _host_allowed(self, host: str) -> bool:
        for allowed in self.allow_hosts:
            if allowed.startswith("*.") and host.endswith(allowed[1:]):
                return True
            if host == allowed:
                return True
        return False

    def _local_path(self, path: str, shown: str) -> str:
        if not self.allow_root:
            raise FetchError(f"refused by policy: local file {redact_url(shown)} needs --allow-root")
        try:
            real = os.path.realpath(os.path.abspath(path))
        except OSError:  # a link on the way swapped while it was resolved (readlink: EINVAL)
            raise FetchError(f"refused by policy: the path {redact_url(shown)} changed while it was checked; "
                             "nothing read") from None
        root = self.allow_root
        if real != root and not real.startswith(root.rstrip(os.sep) + os.sep):
            raise FetchError(f"refused by policy: {redact_url(shown)} is outside the allowed root {root}")
        return real


# --------------------------------------------------------------------------- fetcher


@dataclass
class FetchStats:
    """Counters a benchmark or a test can read; updated only on the fetcher's event loop."""

    requests: int = 0
    attempts: int = 0
    retries: int = 0
    failures: int = 0
    bytes: int = 0
    by_reason: dict[str, int] = field(default_factory=dict)


class Fetcher:
    """Fetches URLs under a ``FetchPolicy`` from one event loop, with one connection pool.

    Create and use it inside a running loop (``async with Fetcher(policy) as f``); synchronous
    code uses ``SyncFetcher`` or a ``LoopThread``.

    HTTP(S) goes through ``fetch_http.HttpClient`` (aiohttp, redirects followed here hop by hop
    under the policy); everything else through a thread pool. Every attempt, whatever the
    protocol, is bounded by ``policy.timeout`` and retried under ``retry.Backoff``.
    """

    def __init__(self, policy: FetchPolicy | None = None) -> None:
        self.policy = policy or FetchPolicy()
        self.stats = FetchStats()
        self._client: HttpClient | None = None
        self._slots = asyncio.Semaphore(self.policy.concurrency)
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self.backoff = Backoff(self.policy.backoff, self.policy.max_backoff,
                               max_retry_after=self.policy.max_retry_after)
        self._closed = False

    async def __aenter__(self) -> Fetcher:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- public

    async def fetch(self, url: str) -> bytes:
        """The body behind ``url``; ``FetchError`` with a short, token-free reason otherwise."""
        if self._closed:
            raise FetchError("fetcher is closed")
        self.stats.requests += 1
        kind, target = self.policy.classify(url)
        attempts = self.policy.retries + 1
        last: _Transient | None = None
        for attempt in range(attempts):
            if attempt:
                self.stats.retries += 1
                await asyncio.sleep(self.backoff.delay(attempt, last.retry_after if last else None))
            try:
                async with self._slots:
                    self.stats.attempts += 1
                    async with asyncio.timeout(self.policy.timeout):
                        if kind == "http":
                            body = await (self._client or self._http_client()).get(target)
                        else:
                            body = await self._in_thread(kind, target)
                self.stats.bytes += len(body)
                return body
            except TimeoutError:
                last = _Transient(f"timed out after {self.policy.timeout:g} s")
            except _Transient as exc:
                last = exc
            except FetchError as exc:
                self._count_failure(str(exc))
                raise FetchError(f"{exc} ({redact_url(url)})") from None
        assert last is not None
        tried = f"{attempts} attempts" if attempts > 1 else "1 attempt"
        self._count_failure(last.reason)
        raise FetchError(f"{last.reason} ({redact_url(url)}; {tried})")

    fetch_bytes = fetch

    async def fetch_many(self, urls: Iterable[str]) -> list[bytes | FetchError]:
        """Fetch all URLs concurrently (bounded by the policy); one result per URL, in order."""

        async def one(url: str) -> bytes | FetchError:
            try:
                return await self.fetch(url)
            except FetchError as exc:
                return exc

        return list(await asyncio.gather(*(one(u) for u in urls)))

    async def aclose(self) -> None:
        """Close the connection pool and the thread pool; pending fetches are not waited for."""
        if self._closed:
            return
        self._closed = True
        if self._client is not None:
            await self._client.aclose()
            self._client = None
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    # -- internals

    def _count_failure(self, reason: str) -> None:
        self.stats.failures += 1
        key = reason.split(" (", 1)[0][:60]
        self.stats.by_reason[key] = self.stats.by_reason.get(key, 0) + 1

    async def _in_thread(self, kind: str, target: str) -> bytes:
        if self._executor is None:
            self._executor = concurrent.futures.ThreadPoolExecutor(
                max_workers=min(self.policy.concurrency, 64), thread_name_prefix="totask-fetch"
            )
        loop = asyncio.get_running_loop()
        if kind == "local":
            assert self.policy.allow_root is not None  # classify refuses local paths without one
            return await loop.run_in_executor(
                self._executor, read_local, target, self.policy.allow_root, self.policy.max_body_bytes
            )
        return await loop.run_in_executor(self._executor, _read_fsspec, target, self.policy.max_body_bytes)

    def _http_client(self) -> HttpClient:
        from .fetch_http import HttpClient  # aiohttp is imported on the first HTTP fetch

        self._client = HttpClient(self.policy)
        return self._client


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
    from .storage import url_to_fs

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
        raise _Transient(f"storage error: {type(exc).__name__}: {scrub(str(exc), 120)}") from None


# --------------------------------------------------------------------------- sync bridge


class LoopThread:
    """An asyncio event loop in a daemon thread.

    Lets synchronous code (an annotator's ``annotate`` generator) keep many requests in flight
    on one loop and one connection pool, while it keeps reading input and writing output.
    """

    def __init__(self, name: str = "totask-fetch-loop") -> None:
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()
        self._ready.wait()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.call_soon(self._ready.set)
        self.loop.run_forever()

    def submit(self, coro: Awaitable[T]) -> concurrent.futures.Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)  # type: ignore[arg-type]

    def run(self, coro: Awaitable[T], timeout: float | None = None) -> T:
        """Run a coroutine on the loop and wait for its result here."""
        return self.submit(coro).result(timeout)

    def map_unordered(
        self, fn: Callable[[T], Awaitable[R]], items: Iterable[T], limit: int
    ) -> Iterator[tuple[T, R]]:
        """``(item, await fn(item))`` in completion order, with at most ``limit`` running.

        Items are pulled lazily, so the input is streamed; items are started in batches (one
        thread hop per batch, not per item). ``fn`` should not raise: an exception it raises is
        re-raised here. Closing the generator early cancels what is still running.
        """
        if limit < 1:
            raise ValueError("limit must be at least 1")
        done: queue.SimpleQueue[tuple[T, asyncio.Task[R]]] = queue.SimpleQueue()
        running: set[asyncio.Task[R]] = set()

        def start(batch: list[T]) -> None:
            for item in batch:
                task = self.loop.create_task(fn(item))  # type: ignore[arg-type]
                running.add(task)
                task.add_done_callback(lambda t, item=item: (running.discard(t), done.put((item, t))))

        def cancel_all() -> None:
            for task in list(running):
                task.cancel()

        source = iter(items)
        # an ItemStream's back-pressure: finish what runs before taking more (see annotators.base)
        wants_pause: Callable[[], bool] = getattr(items, "wants_pause", None) or (lambda: False)
        exhausted = False
        in_flight = 0
        try:
            while True:
                batch: list[T] = []
                while not exhausted and in_flight + len(batch) < limit and not (in_flight and wants_pause()):
                    try:
                        batch.append(next(source))
                    except StopIteration:
                        exhausted = True
                if batch:
                    self.loop.call_soon_threadsafe(start, batch)
                    in_flight += len(batch)
                if in_flight == 0:
                    return
                item, task = done.get()
                in_flight -= 1
                yield item, _task_result(task)
                while in_flight:
                    try:
                        item, task = done.get_nowait()
                    except queue.Empty:
                        break
                    in_flight -= 1
                    yield item, _task_result(task)
        finally:
            if in_flight and not self.loop.is_closed():
                self.loop.call_soon_threadsafe(cancel_all)

    def close(self, timeout: float = 5.0) -> None:
        if self.loop.is_closed():
            return
        if self._thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout)
        if not self._thread.is_alive():
            self.loop.close()


def _task_result(task: asyncio.Task[R]) -> R:
    if task.cancelled():
        raise asyncio.CancelledError()
    exc = task.exception()
    if exc is not None:
        raise exc
    return task.result()


class SyncFetcher:
    """A ``Fetcher`` on its own ``LoopThread``, for synchronous callers.

    ``fetch_many`` and ``map_unordered`` keep ``policy.concurrency`` requests in flight; ``close``
    closes the pool and stops the thread. ``inline=True`` runs the loop in the caller's thread
    instead (``inline_loop.InlineLoop``: no thread hops, for callers that only wait on
    ``map_unordered``/``fetch``; ``submit`` needs the thread).
    """

    def __init__(self, policy: FetchPolicy | None = None, *, inline: bool = False) -> None:
        self.policy = policy or FetchPolicy()
        if inline:
            from .inline_loop import InlineLoop

            self.loop_thread: LoopThread | InlineLoop = InlineLoop.for_this_thread()
        else:
            self.loop_thread = LoopThread()
        self.fetcher = Fetcher(self.policy)

    def __enter__(self) -> SyncFetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def fetch(self, url: str) -> bytes:
        return self.loop_thread.run(self.fetcher.fetch(url))

    def submit(self, url: str) -> concurrent.futures.Future[bytes]:
        assert isinstance(self.loop_thread, LoopThread), "submit needs SyncFetcher(inline=False)"
        return self.loop_thread.submit(self.fetcher.fetch(url))

    def fetch_many(self, urls: Sequence[str]) -> list[bytes | FetchError]:
        return self.loop_thread.run(self.fetcher.fetch_many(urls))

    def map_unordered(
        self, fn: Callable[[T], Awaitable[R]], items: Iterable[T], limit: int | None = None
    ) -> Iterator[tuple[T, R]]:
        """See ``LoopThread.map_unordered``; ``fn`` runs on this fetcher's loop and may await
        ``self.fetcher.fetch``. The default limit is twice the policy's concurrency, so
        requests stay queued while finished ones are being converted."""
        return self.loop_thread.map_unordered(fn, items, limit or 2 * self.policy.concurrency)

    def close(self) -> None:
        if not self.loop_thread.loop.is_closed():
            try:
                self.loop_thread.run(self.fetcher.aclose(), timeout=10)
            except (concurrent.futures.TimeoutError, RuntimeError):
                pass
        self.loop_thread.close()
