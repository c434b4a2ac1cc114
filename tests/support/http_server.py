"""A real HTTP server on 127.0.0.1 for fetch tests that answers with the test's own async handler.

It is ``totask_manifest.testing.background.BackgroundApp`` (aiohttp on its own loop in a thread,
the harness the Synapse and file servers use too) with one catch-all route. It counts hits per
path so a test can assert how many attempts a retry policy made. Faults that need the raw
connection (a body cut short) use ``cut_short``. ``slow_labels`` is a plain threaded server whose
label files come slowly: a file-method job long enough to be stopped or broken mid-run.
"""

from __future__ import annotations

import collections
import contextlib
import ssl
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from aiohttp import web

from totask_manifest.testing.background import BackgroundApp

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class LocalHTTPServer(BackgroundApp):
    handler_cancellation = True

    def __init__(self, handler: Handler, *, ssl_context: ssl.SSLContext | None = None) -> None:
        super().__init__(ssl_context=ssl_context)
        self.handler = handler
        self.hits: collections.Counter[str] = collections.Counter()
        self.headers_seen: list[dict[str, str]] = []

    def make_app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        return app

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        self.hits[request.path] += 1
        self.headers_seen.append(dict(request.headers))
        return await self.handler(request)

    def url(self, path: str) -> str:  # type: ignore[override]  # a method here: one server, many paths
        return f"{super().url}/{path.lstrip('/')}"


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


class _SlowLabels(BaseHTTPRequestHandler):
    """One image-classification label file for any path, each after ``delay`` seconds."""

    delay = 0.2

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        time.sleep(self.delay)
        body = b'{"label":1,"metadata":{"class-name":"cat"}}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _ThreadingServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # a job's requests at once, without SYN retries (1 s, 3 s, ...)

    def handle_error(self, request: object, client_address: object) -> None:
        """A job's connections, dropped when it ends mid-request: no traceback in the test's log."""


@contextlib.contextmanager
def slow_labels(delay: float = 0.2) -> Iterator[str]:
    """A threaded HTTP server on 127.0.0.1 (its base URL) answering every GET with a label file
    after ``delay`` seconds: a file-method job that runs long enough to be stopped or broken mid-run."""
    handler = type("SlowLabels", (_SlowLabels,), {"delay": delay})
    server = _ThreadingServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
