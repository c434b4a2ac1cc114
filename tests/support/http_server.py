"""A real HTTP server on 127.0.0.1 for fetch tests: aiohttp.web on its own loop in a thread.

Tests give it one async handler; the server counts hits per path so a test can assert how many
attempts a retry policy made. Faults that need the raw connection (a body cut short) use
``cut_short``.
"""

from __future__ import annotations

import asyncio
import collections
import ssl
import threading
from collections.abc import Awaitable, Callable

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class LocalHTTPServer:
    def __init__(self, handler: Handler, *, ssl_context: ssl.SSLContext | None = None) -> None:
        self.handler = handler
        self.ssl_context = ssl_context
        self.hits: collections.Counter[str] = collections.Counter()
        self.headers_seen: list[dict[str, str]] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        self.hits[request.path] += 1
        self.headers_seen.append(dict(request.headers))
        return await self.handler(request)

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self.ssl_context)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    def start(self) -> LocalHTTPServer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def url(self, path: str) -> str:
        scheme = "https" if self.ssl_context is not None else "http"
        return f"{scheme}://127.0.0.1:{self.port}/{path.lstrip('/')}"

    def __enter__(self) -> LocalHTTPServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


async def cut_short(request: web.Request, body: bytes, *, declared: int | None = None) -> web.StreamResponse:
    """Promise ``declared`` bytes (default: twice the body), send ``body``, then drop the connection."""
    resp = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
    resp.content_length = declared if declared is not None else 2 * len(body) + 10
    await resp.prepare(request)
    await resp.write(body)
    transport = request.transport
    if transport is not None:
        transport.close()
    return resp


async def stream_chunks(request: web.Request, chunk: bytes, count: int) -> web.StreamResponse:
    """A chunked response without Content-Length: only counting while reading can stop it."""
    resp = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    for _ in range(count):
        await resp.write(chunk)
    await resp.write_eof()
    return resp
