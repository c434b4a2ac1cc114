"""The libcurl client's two ways of watching its sockets (``fetch.curl``): a private epoll whose
descriptor the loop watches (Linux, the default) and each socket as the loop's own reader or
writer (``curl.EPOLL = False``, the other platforms' way). Both must fetch the same, against a
real server on 127.0.0.1, including where the epoll way could go wrong: a socket libcurl closes
and whose number a new connection takes (the kernel drops a closed descriptor from an epoll, so
the client must register the new socket, not take it for the old one), a kept-alive connection
the server drops while it is idle, and a client closed with connections still open."""

from __future__ import annotations

import asyncio
import select

import pytest
from aiohttp import web

from tests.support.http_server import LocalHTTPServer
from totask_manifest._errors import FetchError
from totask_manifest._fetch import FetchPolicy
from totask_manifest._retry import Transient

pycurl = pytest.importorskip("pycurl")

from totask_manifest._fetch import curl  # noqa: E402  # after the skip: it imports pycurl

pytestmark = pytest.mark.skipif(not hasattr(select, "epoll"), reason="epoll is Linux's")
WAYS = pytest.mark.parametrize("epoll", [True, False], ids=["epoll", "loop-readers"])


async def _answer(request: web.Request) -> web.StreamResponse:
    path = request.path
    if path.startswith("/close/"):  # the server closes the connection: libcurl closes its socket
        response = web.Response(body=path.encode())
        response.force_close()
        return response
    if path.startswith("/moved/"):
        raise web.HTTPFound("/ok/" + path.rsplit("/", 1)[1])
    if path.startswith("/missing/"):
        return web.Response(status=404)
    if path.startswith("/slow/"):
        await asyncio.sleep(0.02)
    return web.Response(body=path.encode())


def _run(epoll: bool, policy: FetchPolicy, use, monkeypatch) -> tuple[object, curl.CurlClient]:
    """``await use(client)`` on a fresh ``CurlClient`` watching its sockets the ``epoll`` way;
    the result (or the exception) and the closed client."""
    monkeypatch.setattr(curl, "EPOLL", epoll)

    async def main():
        client = curl.CurlClient(policy)
        try:
            return await use(client), client
        except (FetchError, Transient) as exc:
            return exc, client
        finally:
            await client.aclose()

    return asyncio.run(main())


def _outcome(result: object) -> object:
    return f"{type(result).__name__}: {result}" if isinstance(result, BaseException) else result


@WAYS
def test_the_way_asked_for_is_the_way_used(epoll, monkeypatch):
    """With requests in flight, the epoll way has the loop watch no socket of libcurl's (only its
    epoll's descriptor, registered when the client was made); the other way, libcurl's sockets
    themselves. Either way the client leaves nothing watched behind."""
    with LocalHTTPServer(_answer) as server:

        async def use(client):
            selector = asyncio.get_running_loop()._selector  # type: ignore[attr-defined]
            before = set(selector.get_map())
            requests = asyncio.gather(*(client.get(server.url(f"slow/{i}")) for i in range(6)))
            await asyncio.sleep(0.01)  # sent; the server holds each answer 20 ms
            during = set(selector.get_map()) - before
            await requests
            return during

        during, client = _run(epoll, FetchPolicy(concurrency=3), use, monkeypatch)
    if epoll:
        assert during == set() and client._epoll is not None and client._epoll.closed
    else:
        assert len(during) >= 3 and client._epoll is None  # a connection each (and the resolver's, at times)
    assert client._watched == {}


def test_both_ways_fetch_the_same(monkeypatch):
    """Kept-alive and closed connections, redirects, errors, many at once: the same results."""
    paths = [f"{kind}/{i}" for i in range(30) for kind in ("ok", "close", "moved", "missing", "slow")]

    with LocalHTTPServer(_answer) as server:

        async def use(client):
            async def one(path):
                try:
                    return await client.get(server.url(path))
                except (FetchError, Transient) as exc:
                    return exc
            async with asyncio.timeout(20):  # a socket left unwatched hangs its fetch: fail instead
                return [_outcome(r) for r in await asyncio.gather(*(one(p) for p in paths))]

        results = {epoll: _run(epoll, FetchPolicy(concurrency=8), use, monkeypatch)[0] for epoll in (True, False)}
    assert results[True] == results[False]
    assert results[True][:5] == [b"/ok/0", b"/close/0", b"/ok/0", "FetchError: HTTP 404", b"/slow/0"]


def test_a_closed_socket_whose_number_is_taken_again_is_watched_again(monkeypatch):
    """Every answer closes its connection, one request at a time: libcurl closes each socket and
    the next connection gets the same descriptor number. The epoll forgot the closed socket; the
    new one must be registered anew, or its answer would never be read (the fetch would hang)."""
    registered: list[int] = []
    on_socket = curl.CurlClient._on_socket_epoll

    def spy(self, event, fd, multi, data):
        if event != pycurl.POLL_REMOVE:
            registered.append(fd)
        return on_socket(self, event, fd, multi, data)

    monkeypatch.setattr(curl.CurlClient, "_on_socket_epoll", spy)
    with LocalHTTPServer(_answer) as server:

        async def use(client):
            async with asyncio.timeout(20):
                return [await client.get(server.url(f"close/{i}")) for i in range(20)]

        bodies, _client = _run(True, FetchPolicy(concurrency=1), use, monkeypatch)
        assert bodies == [f"/close/{i}".encode() for i in range(20)]
        assert len(registered) >= 20 and len(set(registered)) < len(registered)  # numbers were taken again


@WAYS
def test_a_kept_alive_connection_dropped_while_idle(epoll, monkeypatch):
    """The server drops the idle connection between two requests: the second still succeeds,
    and the dropped socket wakes nothing while libcurl does not watch it."""
    transports: list[asyncio.BaseTransport] = []

    async def answer(request: web.Request) -> web.StreamResponse:
        assert request.transport is not None
        transports.append(request.transport)
        return web.Response(body=b"ok")

    with LocalHTTPServer(answer) as server:

        async def use(client):
            async with asyncio.timeout(20):
                first = await client.get(server.url("a"))
                transports[0].get_extra_info("socket").shutdown(2)  # the server's side, from under aiohttp
                await asyncio.sleep(0.1)
                return [first, await client.get(server.url("b"))]

        bodies, _client = _run(epoll, FetchPolicy(concurrency=1, retries=0), use, monkeypatch)
    assert bodies == [b"ok", b"ok"]


@WAYS
def test_closing_twice_is_quiet(epoll, monkeypatch):
    """A second ``aclose`` finds nothing to do, either way (the epoll way used to ask the closed
    epoll for its descriptor and raise ``ValueError``)."""
    with LocalHTTPServer(_answer) as server:

        async def use(client):
            got = await client.get(server.url("x"))
            await client.aclose()
            return got

        result, client = _run(epoll, FetchPolicy(concurrency=2), use, monkeypatch)
    assert not isinstance(result, BaseException), result
    assert client._watched == {}
