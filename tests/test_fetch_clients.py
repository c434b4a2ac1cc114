"""Both HTTP clients of the fetch layer (aiohttp's ``HttpClient``, libcurl's ``CurlClient``)
behave the same, against real servers on 127.0.0.1: what goes on the wire, redirects walked by
us under the policy, which failures are ``Transient`` and which ``FetchError`` and in what
words, the body limit after decoding, TLS trust, and a connection pool that survives
cancelled attempts. ``tests/test_fetch_wire.py`` pins the same through ``Fetcher`` with the
default client; here every test runs once per client, and ``test_same_reasons`` compares the
two clients' reasons with each other."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import zlib

import pytest
from aiohttp import web
from hypothesis import example, given, settings
from hypothesis import strategies as st
from yarl import URL

from tests.support.http_server import LocalHTTPServer, cut_short, stream_chunks
from tests.support.tls import self_signed_context
from totask_manifest._errors import FetchError, UsageError
from totask_manifest._fetch import Fetcher, FetchPolicy
from totask_manifest._fetch.fetcher import HTTP_CLIENT_ENV, HTTP_CLIENTS, http_client_kind, new_http_client
from totask_manifest._retry import Transient

pytest.importorskip("pycurl")

from totask_manifest._fetch.curl import requoted  # after the skip: it imports pycurl

clients = pytest.mark.parametrize("kind", HTTP_CLIENTS)


def _with_client(kind: str, policy: FetchPolicy, use):
    """``await use(client)`` with a fresh client of ``kind``; its result, or the exception."""

    async def main():
        client = new_http_client(policy, kind)
        try:
            return await use(client)
        except (FetchError, Transient) as exc:
            return exc
        finally:
            await client.aclose()

    return asyncio.run(main())


def _get(kind: str, url: str, policy: FetchPolicy | None = None):
    return _with_client(kind, policy or FetchPolicy(), lambda c: c.get(url))


def test_the_client_is_chosen_in_one_place(monkeypatch):
    monkeypatch.delenv(HTTP_CLIENT_ENV, raising=False)
    assert http_client_kind() == "curl"
    monkeypatch.setenv(HTTP_CLIENT_ENV, " AIOHTTP ")
    assert http_client_kind() == "aiohttp"
    monkeypatch.setenv(HTTP_CLIENT_ENV, "requests")
    with pytest.raises(UsageError, match="TOTASK_HTTP_CLIENT=requests: expected one of curl, aiohttp"):
        Fetcher(FetchPolicy())


@clients
def test_fetcher_uses_the_chosen_client(kind, monkeypatch):
    monkeypatch.setenv(HTTP_CLIENT_ENV, kind)

    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(body=b"ok")

    async def main(url):
        async with Fetcher(FetchPolicy()) as fetcher:
            body = await fetcher.fetch(url)
            return body, type(fetcher._client).__name__

    with LocalHTTPServer(handler) as server:
        body, name = asyncio.run(main(server.url("x")))
    assert body == b"ok" and name == {"curl": "CurlClient", "aiohttp": "HttpClient"}[kind]


@clients
def test_requests_on_the_wire(kind):
    seen: list[tuple[str, str, str, dict[str, str], bytes]] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        headers = {k.lower(): v for k, v in request.headers.items()}
        seen.append((request.method, request.raw_path, request.version.minor, headers, await request.read()))
        return web.Response(body=b"ok")

    with LocalHTTPServer(handler) as server:
        async def use(client):
            await client.get(server.url("a b/caf\u00e9.json?sig=a+b%3D&e=%7E&s=ab%2Fcd"))
            await client.send("POST", server.url("p"), data=b'{"x": 1}')
            await client.send("POST", server.url("p"), data=b"{}", headers={"Content-Type": "application/json",
                                                                           "Authorization": "Bearer t"})
            return await client.get(server.url("after-post"))

        assert _with_client(kind, FetchPolicy(), use) == b"ok"
    host = f"127.0.0.1:{server.port}"
    base = {"host": host, "user-agent": "totask-manifest", "accept": "*/*", "accept-encoding": "gzip, deflate"}
    get, post, post_json, after = seen
    assert get == ("GET", "/a%20b/caf%C3%A9.json?sig=a+b%3D&e=~&s=ab/cd", 1, base, b"")
    assert post == ("POST", "/p", 1, {**base, "content-type": "application/octet-stream", "content-length": "8"},
                    b'{"x": 1}')
    assert post_json[3] == {**base, "content-type": "application/json", "authorization": "Bearer t",
                            "content-length": "2"}
    assert after[:4] == ("GET", "/after-post", 1, base)  # a handle that sent a POST is a GET handle again


@clients
def test_redirects_are_walked_by_us_under_the_policy(kind):
    async def handler(request: web.Request) -> web.StreamResponse:
        path = request.path
        if path == "/see-other":
            raise web.HTTPSeeOther("rel/next")
        if path == "/rel/next":
            raise web.HTTPPermanentRedirect(f"http://127.0.0.1:{server.port}/final?x=%7E")
        if path == "/other-host":
            raise web.HTTPFound(f"http://localhost:{server.port}/final")
        if path == "/file":
            raise web.HTTPFound("file:///etc/passwd")
        if path == "/bad-location":
            return web.Response(status=301, headers={"Location": "http://[::1"})
        return web.Response(body=request.raw_path.encode())

    with LocalHTTPServer(handler) as server:
        assert _get(kind, server.url("see-other")) == b"/final?x=~"
        assert [server.hits[p] for p in ("/see-other", "/rel/next", "/final")] == [1, 1, 1]  # each hop is ours
        refused = _get(kind, server.url("other-host"), FetchPolicy(allow_hosts=("127.0.0.1",)))
        assert isinstance(refused, FetchError) and "host 'localhost' is not in --allow-host" in str(refused)
        refused = _get(kind, server.url("file"), FetchPolicy(allow_hosts=("127.0.0.1",)))
        assert isinstance(refused, FetchError) and str(refused) == "refused by policy: redirect to a file: URL"
        assert str(_get(kind, server.url("bad-location"))) == "HTTP 301 with a malformed Location header"
        posted = _with_client(kind, FetchPolicy(), lambda c: c.send("POST", server.url("see-other"), data=b"{}"))
        assert isinstance(posted, FetchError) and str(posted).startswith("HTTP 303: ")  # a POST's 3xx is its answer
        assert server.hits["/final"] == 1 and server.hits["/see-other"] == 2


@clients
def test_a_location_in_utf_8_leads_to_the_same_place(kind):
    """A Location header with raw UTF-8 (sent unquoted by many servers) is read as UTF-8, as
    aiohttp reads header values: the curl client read it as latin-1 and went to a mojibake URL."""
    async def handler(request: web.Request) -> web.StreamResponse:
        if request.path == "/moved":
            return web.Response(status=302, headers={"Location": "/caf\u00e9?q=\u00fc"})  # sent as UTF-8
        return web.Response(body=request.raw_path.encode())

    with LocalHTTPServer(handler) as server:
        assert _get(kind, server.url("moved")) == b"/caf%C3%A9?q=%C3%BC"


@clients
def test_retryable_statuses_carry_retry_after_others_are_final(kind):
    async def handler(request: web.Request) -> web.StreamResponse:
        if request.path == "/busy":
            return web.Response(status=503, headers={"Retry-After": "7"}, text="x" * 50_000)
        if request.path == "/slow-down":
            return web.Response(status=429)
        if request.path == "/missing":
            return web.Response(status=404, text="<html>not here</html>")
        return web.Response(status=422, text="model not loaded\n" + "y" * 3000)

    with LocalHTTPServer(handler) as server:
        busy = _get(kind, server.url("busy"))
        assert isinstance(busy, Transient) and busy.reason == "HTTP 503" and busy.retry_after == 7
        slow = _get(kind, server.url("slow-down"))
        assert isinstance(slow, Transient) and slow.reason == "HTTP 429" and slow.retry_after is None
        missing = _get(kind, server.url("missing"))
        assert isinstance(missing, FetchError) and str(missing) == "HTTP 404"  # a GET's error page is noise
        posted = _with_client(kind, FetchPolicy(), lambda c: c.send("POST", server.url("p"), data=b"{}"))
        assert isinstance(posted, FetchError) and str(posted) == "HTTP 422: model not loaded " + "y" * 142 + "…"
        again = _get(kind, server.url("missing"))  # the connections survive error answers
        assert str(again) == "HTTP 404"


async def _faults(request: web.Request) -> web.StreamResponse:
    """One server for every failure a client must name the same way."""
    path = request.path
    if path == "/cut":
        return await cut_short(request, b'{"objects": [')
    if path == "/chunk-cut":
        resp = web.StreamResponse()
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        await resp.write(b"x" * 100)
        request.transport.close()  # type: ignore[union-attr]
        return resp
    if path == "/drop":
        request.transport.close()  # type: ignore[union-attr]
        return web.Response(body=b"never sent")
    if path == "/reset":
        sock = request.transport.get_extra_info("socket")  # type: ignore[union-attr]
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        request.transport.abort()  # type: ignore[union-attr]
        return web.Response()
    if path == "/declared-big":
        return web.Response(body=b"z" * 3000)
    if path == "/chunked-big":
        return await stream_chunks(request, b"z" * 700, 5)
    if path == "/bomb":
        return web.Response(body=gzip.compress(b"z" * 1_000_000), headers={"Content-Encoding": "gzip"})
    if path == "/deflate":
        return web.Response(body=zlib.compress(b"d" * 1500), headers={"Content-Encoding": "deflate"})
    if path == "/gzip":
        return web.Response(body=gzip.compress(b"g" * 1500), headers={"Content-Encoding": "gzip"})
    if path == "/short-declared":  # a Content-Length under the body: only that much is the answer
        resp = web.StreamResponse(headers={"Content-Length": "5"})
        await resp.prepare(request)
        await resp.write(b"12345-and-more-that-is-not-read")
        return resp
    return web.Response(body=b"\x1f\x8b not gzip", headers={"Content-Encoding": "gzip"})


def _outcome(result) -> tuple[str, str]:
    if isinstance(result, bytes):
        return "bytes", result.decode()[:40]
    return type(result).__name__, str(result)


def test_same_reasons():
    """Every failure is the same class with the same words from both clients (one difference,
    the undecodable body's detail, which comes from zlib in one and libcurl in the other)."""
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    refused = f"http://127.0.0.1:{closed.getsockname()[1]}/x"
    closed.close()
    paths = ["cut", "chunk-cut", "drop", "reset", "declared-big", "chunked-big", "bomb", "gzip", "deflate",
             "short-declared"]
    policy = FetchPolicy(max_body_bytes=2000)
    with LocalHTTPServer(_faults) as server:
        urls = [server.url(p) for p in paths] + [refused]
        seen = {kind: [_outcome(_get(kind, url, policy)) for url in urls] for kind in HTTP_CLIENTS}
        undecodable = {kind: _outcome(_get(kind, server.url("corrupt"), policy)) for kind in HTTP_CLIENTS}
    assert seen["curl"] == seen["aiohttp"]
    port = refused.split(":")[2].split("/")[0]
    assert dict(zip([*paths, "refused"], seen["curl"], strict=True)) == {
        "cut": ("Transient", "body cut short: ContentLengthError: 400, message: Not enough data to satisfy "
                             "content length header (received 13 of 36 bytes)."),
        "chunk-cut": ("Transient", "body cut short: TransferEncodingError: 400, message: Not enough data to "
                                   "satisfy transfer length header."),
        "drop": ("Transient", "connection error: ServerDisconnectedError: Server disconnected"),
        "reset": ("Transient", "connection error: ConnectionResetError: [Errno 104] Connection reset by peer"),
        "declared-big": ("FetchError", "too large: Content-Length 3,000 bytes > limit 2,000"),
        "chunked-big": ("FetchError", "too large: body passed the limit of 2,000 bytes"),
        "bomb": ("FetchError", "too large: body passed the limit of 2,000 bytes"),
        "gzip": ("bytes", "g" * 40),
        "deflate": ("bytes", "d" * 40),
        "short-declared": ("bytes", "12345"),
        "refused": ("Transient", f"connection error: ConnectionRefusedError: [Errno 111] Connect call failed "
                                 f"('127.0.0.1', {port})"),
    }
    for kind, (name, reason) in undecodable.items():
        assert name == "FetchError" and reason.startswith("undecodable body: "), kind


@clients
def test_a_cancelled_attempt_frees_its_connection(kind):
    async def handler(request: web.Request) -> web.StreamResponse:
        if request.path == "/stall":
            await asyncio.sleep(5)
        return web.Response(body=request.path.encode())

    async def use(client):
        for _ in range(3):  # more cancelled attempts than connections: each one's slot comes back
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.1):
                    await client.get(server.url("stall"))
        return await asyncio.gather(*(client.get(server.url(f"ok/{i}")) for i in range(4)))

    with LocalHTTPServer(handler) as server:
        assert _with_client(kind, FetchPolicy(concurrency=2), use) == [f"/ok/{i}".encode() for i in range(4)]


@clients
def test_connections_are_kept_alive_and_bounded(kind):
    peers: list[int] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        peers.append(request.transport.get_extra_info("peername")[1])  # type: ignore[union-attr]
        await asyncio.sleep(0.01)
        return web.Response(body=b"ok")

    async def use(client):
        for i in range(5):
            await client.get(server.url(f"seq/{i}"))
        sequential = set(peers)
        await asyncio.gather(*(client.get(server.url(f"par/{i}")) for i in range(40)))
        return sequential

    with LocalHTTPServer(handler) as server:
        sequential = _with_client(kind, FetchPolicy(concurrency=3), use)
    assert len(sequential) == 1 and 1 <= len(set(peers)) <= 3


@clients
def test_an_untrusted_certificate_is_final(kind, tmp_path):
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(body=b"secret")

    with LocalHTTPServer(handler, ssl_context=self_signed_context(tmp_path)) as server:
        result = _get(kind, server.url("x"))
    assert isinstance(result, FetchError) and str(result).startswith("TLS certificate not trusted: ")
    assert server.hits["/x"] == 0


_TRUST_PROBE = """
import asyncio, json, sys
from totask_manifest._fetch import FetchPolicy
from totask_manifest._fetch.fetcher import HTTP_CLIENTS, new_http_client

async def main():
    out = {}
    for kind in HTTP_CLIENTS:
        client = new_http_client(FetchPolicy(), kind)
        for url in sys.argv[1:]:
            try:
                out[f"{kind} {url}"] = (await client.get(url)).decode()
            except Exception as exc:
                out[f"{kind} {url}"] = f"{type(exc).__name__}: {str(exc)[:27]}"
        await client.aclose()
    print(json.dumps(out))

asyncio.run(main())
"""


def test_both_clients_trust_the_cas_python_finds(tmp_path):
    """``SSL_CERT_FILE`` (read by Python's ``ssl`` when the process starts) makes the test's CA
    trusted by both clients, and the host name is checked by both; in a fresh process, as
    aiohttp reads the CAs once, when it is imported."""

    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(body=b"trusted")

    with LocalHTTPServer(handler, ssl_context=self_signed_context(tmp_path)) as server:
        by_ip, by_name = server.url("x"), server.url("x").replace("127.0.0.1", "localhost")
        env = {**os.environ, "SSL_CERT_FILE": str(tmp_path / "cert.pem"), "PYTHONPATH": os.getcwd()}
        env.pop("SSL_CERT_DIR", None)
        done = subprocess.run([sys.executable, "-c", _TRUST_PROBE, by_ip, by_name], env=env, capture_output=True,
                              text=True, timeout=60, check=True)
    out = json.loads(done.stdout)
    for kind in HTTP_CLIENTS:
        assert out[f"{kind} {by_ip}"] == "trusted"
        assert out[f"{kind} {by_name}"] == "FetchError: TLS certificate not trusted"


_LABEL = st.from_regex(r"[a-zA-Z0-9]([a-zA-Z0-9-]{0,5}[a-zA-Z0-9])?", fullmatch=True)
_PART = st.lists(st.sampled_from([*"aZ09!$&'()*+,;=:@._~/-?%# \u00e9", "/.", "/..", "%7E", "%2F", "%zz", "+"]),
                 max_size=10).map("".join)


@settings(max_examples=600, deadline=None)
@example(scheme="http", labels=["h"], port=None, path="a/./b", query=None)  # dot segments are removed
@example(scheme="http", labels=["h"], port=80, path="x", query="")  # a default port and an empty query dropped
@given(scheme=st.sampled_from(["http", "https", "HTTP"]), labels=st.lists(_LABEL, min_size=1, max_size=3),
       port=st.one_of(st.none(), st.sampled_from([80, 443, 8080, 805, 4430, 65535]), st.integers(1, 65535)),
       path=_PART, query=st.one_of(st.none(), _PART))
def test_requoted_urls_are_what_aiohttp_sends(scheme, labels, port, path, query):
    """The curl client's shortcut past yarl sends what yarl (aiohttp's URL type) would."""
    url = f"{scheme}://{'.'.join(labels)}{'' if port is None else f':{port}'}/{path}"
    url += "" if query is None else f"?{query}"
    try:
        expected = str(URL(url))
    except ValueError:
        return
    assert requoted(url) == expected


class _RawServer:
    """A 127.0.0.1 server that answers every request with the same raw bytes and closes: for
    what aiohttp's server cannot send (trailers after a chunked body, a cut answer). Counts the
    requests; ``also`` answers the paths it names with their own bytes."""

    def __init__(self, answer: bytes, also: dict[str, bytes] | None = None) -> None:
        self.answer = answer
        self.also = also or {}
        self.requests = 0
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(8)
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:  # closed: the test is over
                return
            with conn:
                path = conn.recv(65536).split(b" ", 2)[1].decode()
                self.requests += 1
                conn.sendall(self.also.get(path, self.answer))

    def __enter__(self) -> _RawServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accept (close alone does not)
        self.listener.close()
        self.thread.join(timeout=5)


_EMPTY_CHUNKED = b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n0\r\n"


@clients
def test_a_trailer_is_not_a_header(kind):
    """Trailers after a chunked body are not the answer's headers: a Location sent only as a
    trailer is no redirect target (libcurl hands trailers to the header callback too, and the
    curl client read them as headers when the body was empty)."""
    answer = b"HTTP/1.1 302 Found\r\n" + _EMPTY_CHUNKED + b"Location: /elsewhere\r\n\r\n"
    with _RawServer(answer) as server:
        result = _get(kind, server.url + "/moved")
    assert isinstance(result, FetchError) and str(result) == "HTTP 302 without a Location header"
    assert server.requests == 1


def test_a_content_length_trailer_is_not_read():
    """A Content-Length trailer (whose digits ``str.isdigit`` accepts and ``int`` refuses, or
    over the limit) neither breaks the curl client with a ValueError nor fails an empty body.
    aiohttp refuses such an answer as malformed (``Transient``)."""
    for value in ("\N{SUPERSCRIPT TWO}", "99999999999"):
        answer = b"HTTP/1.1 200 OK\r\n" + _EMPTY_CHUNKED + f"Content-Length: {value}\r\n\r\n".encode("latin-1")
        with _RawServer(answer) as server:
            assert _get("curl", server.url + "/empty") == b""


class _Leave(BaseException):
    """What a job's second Ctrl-C raises (``_jobs.execute.HardStop``): not an ``Exception``."""


def test_a_signal_handlers_exception_inside_a_libcurl_callback_reaches_the_caller(monkeypatch):
    """A signal that arrives while libcurl works runs its Python handler inside the next libcurl
    callback (the body's): what the handler raises must leave the fetch, not be printed and
    dropped by pycurl (as pycurl before 7.46 did) and turned into a retried 'CurlError 23'."""
    from totask_manifest._fetch import SyncFetcher
    from totask_manifest._fetch import curl as curl_client

    monkeypatch.setenv(HTTP_CLIENT_ENV, "curl")
    write = curl_client.Transfer.write
    fired: list[int] = []

    def write_after_a_signal(self, data: bytes):
        if not fired:
            fired.append(1)
            signal.raise_signal(signal.SIGUSR1)  # its handler runs here, inside libcurl's callback
        return write(self, data)

    def handler(_signum: int, _frame: object) -> None:
        raise _Leave

    async def answer(request: web.Request) -> web.StreamResponse:
        return web.Response(body=b"x" * 100)

    monkeypatch.setattr(curl_client.Transfer, "write", write_after_a_signal)
    previous = signal.signal(signal.SIGUSR1, handler)
    try:
        with LocalHTTPServer(answer) as server, SyncFetcher(FetchPolicy(retries=0), inline=True) as fetcher:
            with pytest.raises(_Leave):  # through map_unordered, as a file job fetches
                list(fetcher.map_unordered(fetcher.fetcher.fetch, [server.url("x")], 1))
            assert fired and server.hits["/x"] == 1
    finally:
        signal.signal(signal.SIGUSR1, previous)


@clients
def test_a_status_line_without_a_reason_phrase(kind):
    """'HTTP/1.1 200' with nothing after the code (libcurl and aiohttp both accept it) is a 200,
    and a bare 503 is retried: the curl client read no status from such a line ('HTTP 0')."""
    tail = b"Content-Length: 5\r\nConnection: close\r\n\r\nhello"
    with _RawServer(b"HTTP/1.1 200\r\n" + tail) as server:
        assert _get(kind, server.url + "/ok") == b"hello"
    with _RawServer(b"HTTP/1.1 503\r\nRetry-After: 3\r\n" + tail) as server:
        busy = _get(kind, server.url + "/busy")
    assert isinstance(busy, Transient) and busy.reason == "HTTP 503" and busy.retry_after == 3


@clients
def test_a_cut_in_an_error_or_redirect_body_changes_nothing(kind):
    """Once a non-2xx answer's headers are in, the status is the answer: a connection dropped in
    its body (which is at most quoted) neither turns a 404 into a retried 'body cut short' nor
    stops a redirect (libcurl's error there decided, aiohttp does not read such a body)."""
    final = {"/final": b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfinal"}
    with _RawServer(b"HTTP/1.1 404 Not Found\r\nContent-Length: 1000\r\n\r\nnot h") as server:
        missing = _get(kind, server.url + "/missing")
        assert isinstance(missing, FetchError) and str(missing) == "HTTP 404"
        posted = _with_client(kind, FetchPolicy(), lambda c: c.send("POST", server.url + "/p", data=b"{}"))
        assert isinstance(posted, FetchError) and str(posted) == "HTTP 404: not h"
    with _RawServer(b"HTTP/1.1 302 Found\r\nLocation: /final\r\nContent-Length: 100\r\n\r\nmov", final) as server:
        assert _get(kind, server.url + "/moved") == b"final"


@clients
def test_an_answer_cut_in_its_headers_is_a_broken_connection(kind):
    """A connection closed before the headers' empty line is a broken connection (retried), as
    aiohttp says: libcurl takes such an answer as whole, and the curl client returned an empty
    body for a 200 (even one that declared five bytes) and followed a half-sent redirect."""
    final = {"/final": b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfinal"}
    for head in (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n", b"HTTP/1.1 200 OK\r\n",
                 b"HTTP/1.1 302 Found\r\nLocation: /final\r\n"):
        with _RawServer(head, final) as server:
            cut = _get(kind, server.url + "/cut")
        assert isinstance(cut, Transient), (head, cut)
        assert cut.reason.startswith("connection error: ServerDisconnectedError"), cut.reason


@clients
def test_a_content_encoding_libcurl_does_not_know_hands_the_bytes_over(kind):
    """An object stored with a wrong Content-Encoding (``utf-8``: S3 serves whatever metadata
    an upload set) is handed over as sent, as aiohttp does; libcurl refuses such an answer, and
    the curl client failed the line as 'undecodable body'. The client still decodes gzip next."""
    packed = gzip.compress(b"g" * 100)
    answers = {"/gz": b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(packed)
               + packed}
    with _RawServer(b"HTTP/1.1 200 OK\r\nContent-Encoding: utf-8\r\nContent-Length: 5\r\n\r\nhello", answers) as s:

        async def use(client):
            return [await client.get(s.url + "/text"), await client.get(s.url + "/gz")]

        assert _with_client(kind, FetchPolicy(), use) == [b"hello", b"g" * 100]


@clients
def test_an_attempts_time_limit_covers_all_its_redirect_hops(kind, monkeypatch):
    """Each hop is quick enough alone; together they pass the attempt's limit. libcurl's own
    timer (``TIMEOUT_MS``) gets what is left of the attempt, not the whole limit per hop, and
    the reason is the one the fetcher's asyncio timer gives (aiohttp)."""
    monkeypatch.setenv(HTTP_CLIENT_ENV, kind)

    async def handler(request: web.Request) -> web.StreamResponse:
        hop = int(request.match_info.get("tail", "0") or 0)
        await asyncio.sleep(0.25)
        raise web.HTTPFound(f"/{hop + 1}")

    async def main() -> str:
        async with Fetcher(FetchPolicy(timeout=0.6, retries=0, max_redirects=10)) as fetcher:
            try:
                await fetcher.fetch(server.url("0"))
            except FetchError as exc:
                return str(exc)
        return "fetched"

    with LocalHTTPServer(handler) as server:
        reason = asyncio.run(main())
        assert reason.startswith("timed out after 0.6 s (") and reason.endswith("; 1 attempt)")
        assert 2 <= len(server.hits) <= 3  # the third hop ran out of time, a fourth never started
