"""One HTTP exchange under the fetch policy on libcurl (pycurl), driven by the asyncio event loop.

Why: on a latency-bound store every line of the file method is one small GET, and aiohttp's
own Python per request (request and response objects, the stream reader, the connector) was
most of the job's CPU. libcurl does the same exchange in C; what is left in Python is a few
callbacks a request (``benchmarks/file_annotate_bench.py``; figures in docs/file-annotator.md).

The design is tornado's ``curl_httpclient``: one ``CurlMulti`` (its connection cache is the
keep-alive pool, ``policy.concurrency`` connections at most, per host and in all) tells the
loop which sockets to watch (``M_SOCKETFUNCTION``) and when to wake it (``M_TIMERFUNCTION`` ->
``call_later``); the loop answers with ``socket_action``. Curl handles are reused.

Where the platform has ``epoll`` (Linux), libcurl's sockets are watched by a private epoll
whose own descriptor is the one the loop watches (``_on_epoll``): a socket libcurl starts or
stops watching (twice a request on a kept-alive connection) costs one ``epoll_ctl``, where the
loop's ``add_reader``/``remove_reader`` cost ~16 µs of Python (a handle, a selector key, two
system calls), and the sockets ready in one pass of the loop are served by one callback.
Elsewhere each socket is the loop's own reader or writer (``_on_socket``).

libcurl never follows a redirect (``hops.HopClient`` walks them under the policy) and never
reads a proxy from the environment itself: each request is given the one ``proxies.EnvProxies``
chooses (the environment read once, as the aiohttp client does), or none.

What is the same as ``http.HttpClient`` (``tests/test_fetch_clients.py`` runs both): the
request (requoted by yarl as aiohttp does, the same headers, HTTP/1.1), gzip and deflate
decoded (by libcurl) and counted after decoding against ``max_body_bytes``, a declared
``Content-Length`` over it refused before the body, trust in the CAs Python's ``ssl`` finds
(``SSL_CERT_FILE``/``SSL_CERT_DIR`` included), and the reasons: libcurl's error codes are
named in the words the aiohttp client used (``curl_transfer.describe_curl_error``), so reasons in manifests
and the failure rules do not depend on the library.
"""

from __future__ import annotations

import asyncio
import math
import re
import select
import ssl
from collections.abc import Mapping

import pycurl
from yarl import URL

from .._errors import FetchError
from .._proxies import EnvProxies, refused_reason
from .._retry import Transient
from .curl_transfer import SERVER_DISCONNECTED, TIMED_OUT, Transfer, UnknownEncoding, curl_failure
from .hops import (
    REDIRECTS,
    HopClient,
    error_text,
    merged_headers,
    status_failure,
    wants_text,
)
from .policy import FetchPolicy, timed_out

#: a URL yarl (aiohttp's URL type) sends as it is written: lower-case host, a port that is not a
#: scheme's default, path and query of characters that need no quoting, no dot segment, no empty
#: query (``tests/test_fetch_clients.py`` checks this against yarl); others are requoted by yarl
_PLAIN_URL = re.compile(
    r"https?://(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)*[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.?"
    r"(?::(?!80(?![0-9])|443(?![0-9]))[1-9][0-9]{0,4})?"
    r"(?:/[A-Za-z0-9!$&'()*+,;=:@._~/-]*)?(?:\?[A-Za-z0-9!$&'()*+,;=:@._~/?-]+)?")
#: how much sooner than ``Transfer.deadline`` libcurl may see it pass (it counts whole milliseconds
#: from when it starts the transfer); a timeout further from it is libcurl's own (connecting, 300 s)
_CLOCKS_APART = 0.05
#: watch libcurl's sockets on a private epoll where there is one (the module docstring); False
#: makes every client watch them as the loop's own readers and writers (the other platforms' way)
EPOLL = True
if hasattr(select, "epoll"):
    #: libcurl's POLL_IN / POLL_OUT / POLL_INOUT as epoll event masks
    _EPOLL_EVENTS = {pycurl.POLL_IN: select.EPOLLIN, pycurl.POLL_OUT: select.EPOLLOUT,
                     pycurl.POLL_INOUT: select.EPOLLIN | select.EPOLLOUT}
    #: asyncio's ``EpollSelector``: any event but EPOLLOUT wakes a reader, any but EPOLLIN a writer
    _NOT_ONLY_OUT, _NOT_ONLY_IN = ~select.EPOLLOUT, ~select.EPOLLIN
class CurlClient(HopClient):
    """One ``CurlMulti`` (``policy.concurrency`` connections) and one Curl handle per exchange.

    Create it inside the event loop that will use it; ``aclose`` closes the connections.
    Each exchange is bounded by libcurl's own timer (``TIMEOUT_MS``, what is left of the
    attempt's ``deadline``), not by an asyncio timer per attempt.
    """

    bounds_attempts = True

    def __init__(self, policy: FetchPolicy) -> None:
        self.policy = policy
        self._loop = asyncio.get_running_loop()
        n = policy.concurrency
        self._multi = pycurl.CurlMulti()
        self._multi.setopt(pycurl.M_SOCKETFUNCTION, self._on_socket)
        self._multi.setopt(pycurl.M_TIMERFUNCTION, self._on_timer)
        self._multi.setopt(pycurl.M_MAX_HOST_CONNECTIONS, n)
        self._multi.setopt(pycurl.M_MAX_TOTAL_CONNECTIONS, n)
        self._multi.setopt(pycurl.M_MAXCONNECTS, n)
        paths = ssl.get_default_verify_paths()  # the CAs aiohttp's default context trusts
        self._ca = (paths.cafile, paths.capath)
        self.proxies = EnvProxies.read()
        self._idle: list[pycurl.Curl] = []
        self._running: dict[pycurl.Curl, Transfer] = {}
        self._watched: dict[int, int] = {}
        self._timer: asyncio.Handle | None = None
        self._timer_due = 0.0  # when ``_timer`` fires (the loop's clock)
        self._closed = False
        #: libcurl's sockets, where the platform has epoll (see the module docstring)
        self._epoll: select.epoll | None = select.epoll() if hasattr(select, "epoll") and EPOLL else None
        if self._epoll is not None:
            self._multi.setopt(pycurl.M_SOCKETFUNCTION, self._on_socket_epoll)
            self._loop.add_reader(self._epoll.fileno(), self._on_epoll)

    async def aclose(self) -> None:
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for curl, transfer in list(self._running.items()):
            self._release(curl)
            if not transfer.future.done():
                transfer.future.set_exception(Transient("connection error: client closed"))
        for curl in self._idle:
            curl.close()
        self._idle.clear()
        self._multi.close()
        if self._epoll is not None:
            self._watched.clear()
            if not self._epoll.closed:  # a second close finds nothing to do, as without epoll
                self._loop.remove_reader(self._epoll.fileno())
                self._epoll.close()
            return
        for fd in list(self._watched):
            self._on_socket(pycurl.POLL_REMOVE, fd, None, None)

    def deadline(self) -> float:
        return self._loop.time() + self.policy.timeout

    async def _exchange(self, method: str, url: str, data: bytes | None,
                        headers: Mapping[str, str] | None, follow: bool,
                        deadline: float | None) -> tuple[bytes, str | None]:
        url = requoted(url)
        try:
            transfer = await self._transfer(method, url, data, headers, True, deadline)
        except UnknownEncoding:  # aiohttp hands such a body over as sent: asked again, so do we
            transfer = await self._transfer(method, url, data, headers, False, deadline)
        status = transfer.status
        if status == 407 and transfer.proxy is not None:  # an http:// target's: the proxy answered
            raise FetchError(refused_reason(transfer.proxy, status))
        if follow and status in REDIRECTS:
            return b"", self.next_hop(URL(url, encoded=True), status, transfer.header(b"location"))
        if 200 <= status < 300:
            return transfer.body(), None
        text = error_text(transfer.body(), headers, transfer.proxy) if wants_text(status, follow) else None
        raise status_failure(status, transfer.header(b"retry-after"), text)

    async def _transfer(self, method: str, url: str, data: bytes | None,
                        headers: Mapping[str, str] | None, decode: bool, deadline: float | None) -> Transfer:
        """One request and its answer on a Curl handle; ``decode=False`` leaves the body as sent.
        libcurl ends it at ``deadline`` (error 28, named as ``Fetcher`` names its own timeout)."""
        left = math.inf if deadline is None else deadline - self._loop.time()
        if left <= 0:  # an earlier hop used the attempt's time up
            raise timed_out(self.policy.timeout)
        curl = self._idle.pop() if self._idle else self._new_curl()
        transfer = Transfer(url, self._loop.create_future(), self.policy.max_body_bytes,
                            math.inf if deadline is None else deadline)
        self._prepare(curl, method, url, data, headers, transfer)
        curl.setopt(pycurl.TIMEOUT_MS, 0 if left == math.inf else max(1, math.ceil(left * 1000)))
        if not decode:
            curl.non_get = True  # type: ignore[attr-defined]  # reset when released
            curl.setopt(pycurl.HTTP_CONTENT_DECODING, 0)
        self._running[curl] = transfer
        self._multi.add_handle(curl)
        try:
            await transfer.future
        except asyncio.CancelledError:  # the caller gave up (Ctrl-C, a closing job): the connection is dropped
            if self._running.get(curl) is transfer:
                self._release(curl)
            raise
        return transfer

    # -- curl handles

    def _new_curl(self) -> pycurl.Curl:
        curl = pycurl.Curl()
        self._configure(curl)
        return curl

    def _configure(self, curl: pycurl.Curl) -> None:
        """What every exchange shares; set once per handle (``reset`` after a non-GET)."""
        curl.setopt(pycurl.NOSIGNAL, 1)
        curl.setopt(pycurl.PROTOCOLS, pycurl.PROTO_HTTP | pycurl.PROTO_HTTPS)
        curl.setopt(pycurl.FOLLOWLOCATION, 0)
        curl.setopt(pycurl.PROXY, "")  # not from the environment: aiohttp's trust_env=False
        curl.setopt(pycurl.HTTP_VERSION, pycurl.CURL_HTTP_VERSION_1_1)
        curl.setopt(pycurl.ACCEPT_ENCODING, "gzip, deflate")  # sent, and decoded by libcurl
        curl.setopt(pycurl.HTTPHEADER, _header_lines(None))
        cafile, capath = self._ca
        if cafile:
            curl.setopt(pycurl.CAINFO, cafile)
        if capath:
            curl.setopt(pycurl.CAPATH, capath)

    def _prepare(self, curl: pycurl.Curl, method: str, url: str, data: bytes | None,
                 headers: Mapping[str, str] | None, transfer: Transfer) -> None:
        curl.setopt(pycurl.URL, url)
        curl.setopt(pycurl.WRITEFUNCTION, transfer.write)
        curl.setopt(pycurl.HEADERFUNCTION, transfer.headers.append)
        if self.proxies:  # a handle serves any host: each request says its proxy, or none
            proxy = transfer.proxy = self.proxies.for_url(url)
            curl.setopt(pycurl.PROXY, "" if proxy is None else proxy.url)
            if proxy is not None and (proxy.user is not None or proxy.password is not None):
                curl.setopt(pycurl.PROXYUSERNAME, proxy.user or "")
                curl.setopt(pycurl.PROXYPASSWORD, proxy.password or "")
            else:
                curl.unsetopt(pycurl.PROXYUSERNAME)
                curl.unsetopt(pycurl.PROXYPASSWORD)
        if method == "GET" and data is None and not headers:
            return
        # a handle that sent anything else is reset afterwards (``_release``), so GETs set nothing
        curl.non_get = True  # type: ignore[attr-defined]
        curl.setopt(pycurl.HTTPHEADER, _header_lines(headers, data is not None))
        if method == "HEAD":
            curl.setopt(pycurl.NOBODY, 1)
        elif data is not None:
            curl.setopt(pycurl.POSTFIELDSIZE, len(data))
            curl.setopt(pycurl.COPYPOSTFIELDS, data)
        if method not in ("GET", "HEAD", "POST" if data is not None else "GET"):
            curl.setopt(pycurl.CUSTOMREQUEST, method)

    def _release(self, curl: pycurl.Curl) -> None:
        """Take ``curl`` off the multi handle and back to the idle list, as a plain GET handle."""
        del self._running[curl]
        self._multi.remove_handle(curl)
        if getattr(curl, "non_get", False):
            curl.reset()
            curl.non_get = False  # type: ignore[attr-defined]
            self._configure(curl)
        self._idle.append(curl)

    # -- the event loop's side

    def _on_socket(self, event: int, fd: int, _multi: object, _data: object) -> None:
        """libcurl says which events ``fd`` waits for; always re-registered, never modified,
        since libcurl may close a socket and open one with the same number in between."""
        old = self._watched.pop(fd, 0)
        if old & pycurl.POLL_IN:
            self._loop.remove_reader(fd)
        if old & pycurl.POLL_OUT:
            self._loop.remove_writer(fd)
        if event == pycurl.POLL_REMOVE:
            return
        if event & pycurl.POLL_IN:
            self._loop.add_reader(fd, self._act, fd, pycurl.CSELECT_IN)
        if event & pycurl.POLL_OUT:
            self._loop.add_writer(fd, self._act, fd, pycurl.CSELECT_OUT)
        self._watched[fd] = event

    def _on_socket_epoll(self, event: int, fd: int, _multi: object, _data: object) -> None:
        """``_on_socket`` on the private epoll. Re-registered, never modified, for the same
        reason. libcurl removes a socket before it closes it, so the removal finds it; were it
        closed first, the kernel would have dropped it from the epoll only if no other descriptor
        shares it (a forked child's, a dup), and the removal's error is ignored either way."""
        epoll = self._epoll
        assert epoll is not None
        if self._watched.pop(fd, 0):
            try:
                epoll.unregister(fd)
            except OSError:  # closed by libcurl: already gone from the epoll
                pass
        mask = _EPOLL_EVENTS.get(event & pycurl.POLL_INOUT) if event != pycurl.POLL_REMOVE else None
        if mask is not None:
            epoll.register(fd, mask)
            self._watched[fd] = event

    def _on_epoll(self) -> None:
        """The private epoll is ready: ``socket_action`` for each ready socket libcurl still
        watches, with the events the loop's own selector would have reported (an error or a
        hang-up wakes both a reader and a writer), then the finished transfers."""
        epoll = self._epoll
        if epoll is None or epoll.closed:
            return
        watched = self._watched
        multi = self._multi
        try:
            for fd, ready in epoll.poll(0):
                wanted = watched.get(fd, 0)  # 0: libcurl stopped watching it earlier in this pass
                events = 0
                if wanted & pycurl.POLL_IN and ready & _NOT_ONLY_OUT:
                    events |= pycurl.CSELECT_IN
                if wanted & pycurl.POLL_OUT and ready & _NOT_ONLY_IN:
                    events |= pycurl.CSELECT_OUT
                if events:
                    try:
                        multi.socket_action(fd, events)
                    except pycurl.error:  # the handles' own errors come back through info_read
                        pass
        finally:  # an error out of one socket (a callback's) still hands over what finished
            self._collect()

    def _on_timer(self, msecs: int) -> None:
        """libcurl asks to be woken in ``msecs`` (-1: never). One timer at most, and one that
        fires sooner is kept: libcurl asks on every request added (0 ms) and again whenever its
        nearest deadline moves (each request's ``TIMEOUT_MS``), and an early wake-up only costs
        a look (``_on_due`` asks libcurl when it wants the next one). A timer left armed after
        -1 fires for nothing the same way."""
        if msecs < 0:
            return
        loop = self._loop
        due = loop.time() + msecs / 1000
        if self._timer is not None:
            if self._timer_due <= due:
                return
            self._timer.cancel()
        self._timer_due = due
        self._timer = loop.call_soon(self._on_due) if msecs == 0 else loop.call_at(due, self._on_due)

    def _on_due(self) -> None:
        """The timer fired: libcurl's timeouts are served, and the next wake-up it wants is asked
        for (libcurl does not repeat a deadline it already gave, which a kept earlier timer hid)."""
        self._timer = None
        self._act(pycurl.SOCKET_TIMEOUT, 0)
        if self._timer is None and not self._closed:
            msecs = self._multi.timeout()
            if msecs >= 0:
                self._on_timer(msecs)

    def _act(self, fd: int, events: int) -> None:
        try:
            self._multi.socket_action(fd, events)
        except pycurl.error:  # the handles' own errors come back through info_read
            pass
        self._collect()

    def _collect(self) -> None:
        """Hand every transfer libcurl has finished to its waiting request."""
        while True:
            queued, done, failed = self._multi.info_read()
            for curl in done:
                self._finish(curl, 0, "")
            for curl, code, message in failed:
                self._finish(curl, code, message)
            if not queued:
                return

    def _finish(self, curl: pycurl.Curl, code: int, message: str) -> None:
        transfer = self._running.get(curl)
        if transfer is None:
            return
        try:
            if not transfer.status and not transfer.stopped:
                transfer.begin()  # no body bytes came: the status is read here
            failure: BaseException | None = transfer.failure
            if failure is None and code == TIMED_OUT and transfer.deadline <= self._loop.time() + _CLOCKS_APART:
                failure = timed_out(self.policy.timeout)  # the attempt's own limit (TIMEOUT_MS)
            elif failure is None and code and not transfer.stopped and not transfer.settled():
                failure = curl_failure(curl, code, message, transfer)  # libcurl's own error
            elif failure is None and not code and not transfer.headers_ended():
                failure = Transient(SERVER_DISCONNECTED)  # closed inside the headers: no answer
        except Exception as exc:  # a fault here must reach the waiting request, not strand it
            failure = exc
        self._release(curl)
        if transfer.future.done():
            return
        if failure is None:
            transfer.future.set_result(None)
        else:
            transfer.future.set_exception(failure)


def requoted(url: str) -> str:
    """``url`` as aiohttp would send it (yarl's requoting: ``%7E`` as ``~``, a space as ``%20``,
    a default port dropped), without building a ``URL`` for the usual URL that needs none."""
    if _PLAIN_URL.fullmatch(url) and "/." not in url:
        return url
    return str(URL(url))


def _header_lines(headers: Mapping[str, str] | None, has_body: bool = False) -> list[str]:
    """``hops.HEADERS`` with the request's own over them, as libcurl takes them. libcurl's own
    extras are switched off: ``Expect: 100-continue`` (a round trip aiohttp never waits for)
    and a form Content-Type on a body (aiohttp says octet-stream unless told)."""
    merged = merged_headers(headers)
    lines = [f"{k}: {v}" for k, v in merged.items() if k.lower() != "accept-encoding"]
    lines.append("Expect:")
    if has_body and not any(k.lower() == "content-type" for k in merged):
        lines.append("Content-Type: application/octet-stream")
    return lines
