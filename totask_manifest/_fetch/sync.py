"""``SyncFetcher``: ``Fetcher`` for synchronous code (the loop inline, or in a thread)."""

from __future__ import annotations

import concurrent.futures
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from typing import TypeVar

from .._errors import FetchError
from .fetcher import Fetcher
from .loop import LoopThread
from .policy import FetchPolicy

T = TypeVar("T")
R = TypeVar("R")


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
            from .inline import InlineLoop

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

    def post(self, url: str, data: bytes, headers: Mapping[str, str] | None = None) -> bytes:
        """``Fetcher.post`` from synchronous code; safe from several threads at once (each call
        waits for its own request on the one loop)."""
        return self.loop_thread.run(self.fetcher.post(url, data, headers))

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
        requests stay queued while finished ones are being converted. Inline, one worker per
        item that may be pulled (``InlineLoop.map_unordered``): the fetcher's slots bound
        the requests in flight, and a line waiting out a retry's backoff (outside the slots)
        holds a worker, not a request slot."""
        return self.loop_thread.map_unordered(fn, items, limit or 2 * self.policy.concurrency)

    def close(self) -> None:
        if not self.loop_thread.loop.is_closed():
            try:
                self.loop_thread.run(self.fetcher.aclose(), timeout=10)
            except (concurrent.futures.TimeoutError, RuntimeError):
                pass
        self.loop_thread.close()
