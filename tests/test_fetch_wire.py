"""What the HTTP fetch path puts on the wire and how it reads the answer, pinned against a real
server on 127.0.0.1: the request line and headers, compression, redirects (followed hop by hop
under the policy, never to another scheme), retries on 5xx and dropped connections, timeouts,
and connection reuse. These held when requests went through httpx; they hold for the direct
aiohttp path (``totask_manifest._fetch.http``) that replaced it."""

from __future__ import annotations

import asyncio
import gzip
import socket
import threading

import pytest
from aiohttp import web

from tests.support.http_server import LocalHTTPServer, cut_short
from totask_manifest._errors import FetchError
from totask_manifest._fetch import Fetcher, FetchPolicy, SyncFetcher

FAST = {"backoff": 0.01, "max_backoff": 0.05}


def _run(policy: FetchPolicy, coro_fn):
    async def main():
        async with Fetcher(policy) as fetcher:
            return await coro_fn(fetcher), fetcher.stats

    return asyncio.run(main())


def _fetch(policy: FetchPolicy, url: str) -> bytes:
    return _run(policy, lambda f: f.fetch(url))[0]


def test_request_line_and_headers_are_exactly_these():
    seen: list[tuple[str, str, dict[str, str]]] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        seen.append((request.method, request.raw_path, {k.lower(): v for k, v in request.headers.items()}))
        return web.Response(body=b"ok")

    with LocalHTTPServer(handler) as server:
        assert _fetch(FetchPolicy(), server.url("a/b.json?X-Amz-Signature=ab%2Fcd&x=1")) == b"ok"
    method, path, headers = seen[0]
    # yarl (aiohttp's URL type) requotes the query: %2F travels as "/", which S3 accepts (it
    # canonicalises the query before checking a signature); so it went through httpx as well
    assert method == "GET" and path == "/a/b.json?X-Amz-Signature=ab/cd&x=1"
    assert headers == {
        "host": f"127.0.0.1:{server.port}",
        "user-agent": "totask-manifest",
        "accept": "*/*",
        "accept-encoding": "gzip, deflate",
    }


@pytest.mark.parametrize(("path", "raw"), [
    ("a b.json", "/a%20b.json"),
    ("caf\u00e9.json", "/caf%C3%A9.json"),
    ("x%2Fy.json", "/x%2Fy.json"),
    ("q.json?sig=a+b%3D&e=%7E", "/q.json?sig=a+b%3D&e=~"),  # unreserved characters travel unescaped
])
def test_paths_and_queries_reach_the_server_as_written_or_percent_encoded(path, raw):
    seen: list[str] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        seen.append(request.raw_path)
        return web.Response(body=b"ok")

    with LocalHTTPServer(handler) as server:
        _fetch(FetchPolicy(), f"{server.url('')}{path}")
    assert seen == [raw]


def test_gzip_and_deflate_bodies_are_decoded_and_a_corrupt_one_is_not_retried():
    doc = b'{"objects": []}' * 100

    async def handler(request: web.Request) -> web.StreamResponse:
        if request.path == "/gz":
            return web.Response(body=gzip.compress(doc), headers={"Content-Encoding": "gzip"})
        return web.Response(body=b"\x1f\x8bnot gzip at all", headers={"Content-Encoding": "gzip"})

    with LocalHTTPServer(handler) as server:
        assert _fetch(FetchPolicy(), server.url("gz")) == doc
        with pytest.raises(FetchError, match=r"^undecodable body: .*\(http://127\.0\.0\.1:\d+/bad\)$"):
            _fetch(FetchPolicy(retries=3, **FAST), server.url("bad"))
        assert server.hits["/bad"] == 1


def test_body_limit_counts_decoded_bytes():
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(body=gzip.compress(b"z" * 10_000), headers={"Content-Encoding": "gzip"})

    with LocalHTTPServer(handler) as server, pytest.raises(FetchError, match="too large: body passed the limit"):
        _fetch(FetchPolicy(max_body_bytes=5_000), server.url("bomb"))


def test_redirects_relative_absolute_and_their_limits():
    async def handler(request: web.Request) -> web.StreamResponse:
        path = request.path
        if path == "/rel":
            raise web.HTTPMovedPermanently("next/doc.json")
        if path == "/abs":
            raise web.HTTPTemporaryRedirect(f"http://127.0.0.1:{server.port}/final")
        if path == "/nowhere":
            return web.Response(status=302)
        if path == "/ftp":
            raise web.HTTPFound("ftp://127.0.0.1/x")
        if path.startswith("/loop"):
            raise web.HTTPFound(f"/loop{int(path[5:] or 0) + 1}")
        return web.Response(body=path.encode())

    with LocalHTTPServer(handler) as server:
        assert _fetch(FetchPolicy(), server.url("rel")) == b"/next/doc.json"
        assert _fetch(FetchPolicy(), server.url("abs")) == b"/final"
        with pytest.raises(FetchError, match=r"^HTTP 302 without a Location header \("):
            _fetch(FetchPolicy(retries=2, **FAST), server.url("nowhere"))
        with pytest.raises(FetchError, match=r"^refused by policy: redirect to a ftp: URL \("):
            _fetch(FetchPolicy(), server.url("ftp"))
        with pytest.raises(FetchError, match=r"^too many redirects \(more than 5\) \("):
            _fetch(FetchPolicy(retries=2, **FAST), server.url("loop"))
        assert server.hits["/nowhere"] == 1 and server.hits["/loop5"] == 1 and server.hits["/loop6"] == 0


def test_5xx_and_dropped_connections_are_retried_4xx_are_not():
    async def handler(request: web.Request) -> web.StreamResponse:
        n = server.hits[request.path]
        if request.path == "/flaky" and n == 1:
            return web.Response(status=502)
        if request.path == "/flaky" and n == 2:
            assert request.transport is not None
            request.transport.close()  # no answer at all
            return web.Response(body=b"never sent")
        if request.path == "/flaky" and n == 3:
            return await cut_short(request, b'{"objects": [')
        if request.path == "/gone":
            return web.Response(status=410)
        return web.Response(body=b"fine")

    with LocalHTTPServer(handler) as server:
        body, stats = _run(FetchPolicy(retries=3, **FAST), lambda f: f.fetch(server.url("flaky")))
        # aiohttp itself sends a request again, once, when a reused connection closes unanswered
        assert body == b"fine" and server.hits["/flaky"] == 4 and stats.attempts == 3 and stats.retries == 2
        with pytest.raises(FetchError, match=r"^HTTP 410 \("):
            _fetch(FetchPolicy(retries=3, **FAST), server.url("gone"))
        assert server.hits["/gone"] == 1


def test_reasons_for_dropped_and_cut_connections():
    async def handler(request: web.Request) -> web.StreamResponse:
        if request.path == "/drop":
            assert request.transport is not None
            request.transport.close()
            return web.Response(body=b"never sent")
        return await cut_short(request, b'{"objects": [')

    with LocalHTTPServer(handler) as server:
        with pytest.raises(FetchError, match=r"^connection error: ServerDisconnectedError: Server disconnected "
                                             r"\(http://127\.0\.0\.1:\d+/drop; 2 attempts\)$"):
            _fetch(FetchPolicy(retries=1, **FAST), server.url("drop"))
        with pytest.raises(FetchError, match=r"^body cut short: ContentLengthError: 400, message: Not enough data "
                                             r"to satisfy content length header .*; 2 attempts\)$"):
            _fetch(FetchPolicy(retries=1, **FAST), server.url("cut"))


def test_a_stalled_body_times_out_per_attempt():
    async def handler(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Length": "100"})
        await resp.prepare(request)
        await resp.write(b"x" * 10)
        await asyncio.sleep(5)
        return resp

    with LocalHTTPServer(handler) as server:
        with pytest.raises(FetchError, match=r"^timed out after 0\.3 s \(.*; 2 attempts\)$"):
            _fetch(FetchPolicy(timeout=0.3, retries=1, **FAST), server.url("stall"))
        assert server.hits["/stall"] == 2


def test_a_server_that_never_answers_times_out():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    port = listener.getsockname()[1]
    try:
        with pytest.raises(FetchError, match=r"^timed out after 0\.2 s \(.*; 1 attempt\)$"):
            _fetch(FetchPolicy(timeout=0.2, retries=0), f"http://127.0.0.1:{port}/silent")
    finally:
        listener.close()


@pytest.mark.slow
def test_connections_are_reused_and_bounded_by_concurrency():
    peers: set[tuple[str, int]] = set()
    lock = threading.Lock()

    async def handler(request: web.Request) -> web.StreamResponse:
        with lock:
            peers.add(request.transport.get_extra_info("peername"))  # type: ignore[union-attr]
        await asyncio.sleep(0.01)
        return web.Response(body=b"ok")

    with LocalHTTPServer(handler) as server, SyncFetcher(FetchPolicy(concurrency=4)) as sync:
        results = sync.fetch_many([server.url(f"d/{i}") for i in range(60)])
    assert results == [b"ok"] * 60
    assert 1 <= len(peers) <= 4
