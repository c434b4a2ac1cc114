"""``Fetcher``: bytes behind URLs under a ``FetchPolicy``, concurrently, in an event loop."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .._errors import FetchError, UsageError
from .._retry import Backoff
from .._retry import Transient as _Transient
from .._storage import redact_url
from .local import _read_fsspec, read_local
from .policy import FetchPolicy, timed_out
from .pool_threads import TrackedPool
from .slots import Slots

if TYPE_CHECKING:
    from .hops import HopClient

#: names the library that sends a ``Fetcher``'s HTTP: ``curl`` (libcurl through pycurl, the
#: default: a third of aiohttp's CPU a request, docs/file-annotator.md) or ``aiohttp``
HTTP_CLIENT_ENV = "TOTASK_HTTP_CLIENT"
HTTP_CLIENTS = ("curl", "aiohttp")


def http_client_kind() -> str:
    """The HTTP client ``Fetcher`` uses (``HTTP_CLIENT_ENV``); ``UsageError`` for an unknown one.
    Both behave the same (``hops.HopClient``); the Synapse client stays on aiohttp. Windows
    defaults to aiohttp: its event loop (proactor) cannot watch libcurl's sockets."""
    default = "aiohttp" if sys.platform == "win32" else HTTP_CLIENTS[0]
    kind = os.environ.get(HTTP_CLIENT_ENV, "").strip().lower() or default
    if kind not in HTTP_CLIENTS:
        raise UsageError(f"{HTTP_CLIENT_ENV}={kind}: expected one of {', '.join(HTTP_CLIENTS)}")
    return kind


def new_http_client(policy: FetchPolicy, kind: str) -> HopClient:
    """The one place a fetcher's HTTP client is made; its library is imported only here, on
    the first HTTP request."""
    if kind == "curl":
        from .curl import CurlClient

        return CurlClient(policy)
    from .http import HttpClient

    return HttpClient(policy)


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

    HTTP(S) goes through the client ``new_http_client`` makes (libcurl or aiohttp; redirects
    followed hop by hop under the policy, ``hops.HopClient``); everything else through a
    thread pool. Every attempt, whatever the
    protocol, is bounded by ``policy.timeout`` and retried under ``retry.Backoff``.
    """

    def __init__(self, policy: FetchPolicy | None = None) -> None:
        self.policy = policy or FetchPolicy()
        self.stats = FetchStats()
        self._client_kind = http_client_kind()
        self._client: HopClient | None = None
        self._slots = Slots(self.policy.concurrency)
        self._executor: TrackedPool | None = None
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
        self._check_open()
        self.stats.requests += 1
        kind, target = self.policy.classify(url)
        if kind == "http":
            client = self._http()
            return await self._with_retries(url, lambda: client.send("GET", target), client.bounds_attempts)
        return await self._with_retries(url, lambda: self._in_thread(kind, target))

    async def post(self, url: str, data: bytes, headers: Mapping[str, str] | None = None) -> bytes:
        """POST ``data`` to an http(s) ``url`` and return the 2xx body, under the same policy and
        retries as ``fetch`` (a model endpoint: the request is a prediction, safe to repeat).
        A 3xx is not followed; another status's reason holds the start of the answer."""
        self._check_open()
        self.stats.requests += 1
        kind, target = self.policy.classify(url)
        if kind != "http":
            raise FetchError(f"refused by policy: POST needs an http(s) URL ({redact_url(url)})")
        client = self._http()
        return await self._with_retries(url, lambda: client.send("POST", target, data=data, headers=headers),
                                        client.bounds_attempts)

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
            executor, self._executor = self._executor, None
            executor.close()  # its idle threads ended: not taken for threads the job left running

    # -- internals

    def _check_open(self) -> None:
        if self._closed:
            raise FetchError("fetcher is closed")

    async def _with_retries(self, url: str, attempt: Callable[[], Awaitable[bytes]], bounded: bool = False) -> bytes:
        """``attempt()`` until it succeeds, under the policy: each try bounded by ``timeout`` (here,
        unless the attempt bounds itself: ``bounded``) and a concurrency slot, ``Transient``
        failures tried again after ``backoff``'s wait."""
        attempts = self.policy.retries + 1
        slots = self._slots
        last: _Transient | None = None
        for n in range(attempts):
            if n:
                self.stats.retries += 1
                await asyncio.sleep(self.backoff.delay(n, last.retry_after if last else None))
            try:
                if not slots.take():
                    await slots.wait()
                try:
                    self._check_open()  # closed while this waited (a backoff, a slot): no new client
                    self.stats.attempts += 1
                    if bounded:
                        body = await attempt()
                    else:
                        async with asyncio.timeout(self.policy.timeout):
                            body = await attempt()
                finally:
                    slots.give()
                self.stats.bytes += len(body)
                return body
            except TimeoutError:
                last = timed_out(self.policy.timeout)
            except _Transient as exc:
                last = exc
            except FetchError as exc:
                self._count_failure(str(exc))
                raise FetchError(f"{exc} ({redact_url(url)})") from None
        assert last is not None
        tried = f"{attempts} attempts" if attempts > 1 else "1 attempt"
        self._count_failure(last.reason)
        raise FetchError(f"{last.reason} ({redact_url(url)}; {tried})")

    def _count_failure(self, reason: str) -> None:
        self.stats.failures += 1
        key = reason.split(" (", 1)[0][:60]
        self.stats.by_reason[key] = self.stats.by_reason.get(key, 0) + 1

    async def _in_thread(self, kind: str, target: str) -> bytes:
        if self._executor is None:
            self._executor = TrackedPool(max_workers=min(self.policy.concurrency, 64), thread_name_prefix="totask-fetch")
        loop = asyncio.get_running_loop()
        if kind == "local":
            root = self.policy.root_of(target)
            assert root is not None  # classify refuses local paths outside both
            return await loop.run_in_executor(self._executor, read_local, target, root, self.policy.max_body_bytes)
        return await loop.run_in_executor(self._executor, _read_fsspec, target, self.policy.max_body_bytes)

    def _http(self) -> HopClient:
        if self._client is None:
            self._client = new_http_client(self.policy, self._client_kind)
        return self._client

