"""POST through the fetch layer (``Fetcher.post``, ``SyncFetcher.post``): the one request path the
model endpoint uses, with the fetcher's retries, host rules, body limit and redaction; against a
real HTTP server on 127.0.0.1."""

from __future__ import annotations

import concurrent.futures

import pytest
from aiohttp import web

from tests.support.http_server import LocalHTTPServer
from totask_manifest._errors import FetchError
from totask_manifest._fetch import FetchPolicy, SyncFetcher

FAST = {"backoff": 0.01, "max_backoff": 0.05}
JSON = {"Content-Type": "application/json"}


def test_post_sends_the_body_and_retries_transient_answers():
    seen: list[tuple[str, bytes, str]] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        seen.append((request.method, await request.read(), request.headers.get("Content-Type", "")))
        if server.hits[request.path] <= 2:
            return web.Response(status=503)
        return web.Response(body=b'{"ok": true}')

    with LocalHTTPServer(handler) as server, SyncFetcher(FetchPolicy(retries=3, **FAST)) as sync:
        assert sync.post(server.url("predict"), b'{"images": []}', JSON) == b'{"ok": true}'
        assert sync.fetcher.stats.retries == 2
    assert seen == [("POST", b'{"images": []}', "application/json")] * 3


def test_post_errors_name_the_answer_and_are_not_retried():
    async def handler(request: web.Request) -> web.StreamResponse:
        if request.path == "/moved":
            raise web.HTTPFound("/predict")  # a POST's redirect is its answer, never followed
        return web.Response(status=400, text="model not loaded\n" + "x" * 5000)

    with LocalHTTPServer(handler) as server, SyncFetcher(FetchPolicy(retries=3, **FAST)) as sync:
        with pytest.raises(FetchError, match=r"^HTTP 400: model not loaded x+… \(http://127.0.0.1:\d+/p\?…\)$"):
            sync.post(server.url("p") + "?token=secret", b"{}")  # the query (a token) is never shown
        with pytest.raises(FetchError, match=r"^HTTP 302: "):
            sync.post(server.url("moved"), b"{}")
        assert server.hits == {"/p": 1, "/moved": 1}


def test_post_keeps_the_policy():
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(body=b"y" * 5000)

    with LocalHTTPServer(handler) as server:
        with SyncFetcher(FetchPolicy(max_body_bytes=1000)) as sync, pytest.raises(FetchError, match="too large"):
            sync.post(server.url("big"), b"{}")
        with (SyncFetcher(FetchPolicy(allow_hosts=("example.com",))) as sync,
              pytest.raises(FetchError, match="not in --allow-host")):
            sync.post(server.url("p"), b"{}")
        with SyncFetcher(FetchPolicy()) as sync, pytest.raises(FetchError, match="POST needs an http"):
            sync.post("s3://bucket/key", b"{}")
    assert server.hits["/p"] == 0


def test_post_from_several_threads_shares_one_pool():
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(body=await request.read())

    with LocalHTTPServer(handler) as server, SyncFetcher(FetchPolicy()) as sync:
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            bodies = list(pool.map(lambda i: sync.post(server.url("echo"), b"%d" % i), range(40)))
        assert bodies == [b"%d" % i for i in range(40)]
        assert sync.fetcher._client is not None  # one session made every request
