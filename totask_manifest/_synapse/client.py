"""The asynchronous Synapse client: one connection pool, timeouts, safe retries, a concurrency cap.

Requests go straight to an aiohttp session made by the fetch layer (``fetch.http.new_session``,
the one place sessions are made): httpx's own async pool loses throughput as concurrency grows
(encode/httpx#3215) while aiohttp's keeps scaling (performance-notes.md: about 2,700 requests/s
at 32 concurrent requests). The session is configured as the httpx-over-aiohttp client it
replaced: ``max_concurrency`` connections kept alive 5 s, a connect timeout and a read timeout
(no overall one), certifi's CA bundle unless ``SSL_CERT_FILE``/``SSL_CERT_DIR`` names another,
redirects never followed, and the proxy the environment names (``HTTPS_PROXY``, ``NO_PROXY`` ...,
read when the session is made), chosen per host as the SDK's ``requests`` chooses it
(``fetch.proxies``): an ``https://`` host's requests, credentials included, go inside the proxy's
CONNECT tunnel.

Retry policy, the SDK's (``clients/base.py``: urllib3 ``Retry(total=3, backoff_factor=2,
status_forcelist=[502, 503, 504])`` with POST and PATCH allowed, read errors not replayed for
them, SYN-7486), by what the server may already have done:

* 502, 503 and 504 mean the backend (or its proxy) did not handle the request: every method,
  POST and PATCH included, is sent again, up to ``retries`` times, after 0 s, then
  ``backoff * 2**(n-1)`` s (the defaults give 4 attempts over 0 + 4 + 8 = 12 s); a 503's
  ``Retry-After`` replaces that wait (``respect_retry_after_header``), cut to ``max_retry_after``
  (60 s, the SDK's ``MAX_RETRY_AFTER_SECONDS``), so a maintenance window the server announces is
  waited out as the SDK waits it out;
* a 413 that carries ``Retry-After`` is retried the same way (urllib3's
  ``RETRY_AFTER_STATUS_CODES``: the server asks for the request later); without it, it is final;
* a connection that was never made (nothing sent) is retried the same way for every method;
* GET and PUT are idempotent: also repeated after a dropped connection, a timeout or a 500;
  POST and PATCH are not (a plugin run or a log entry sent twice is not the same as sent once),
  and a 500 to them is final, as in the SDK;
* 429 means the request was refused before any work, so every method waits ``Retry-After``
  (all requests of the client pause together) and tries again, up to ``rate_limit_retries`` times
  (ours: the SDK gives up on a 429 without the header, and after ``total`` retries with it).

A ``Retry-After`` of 0 or a date gone by asks for no wait: as urllib3 does, it counts as no header
(``parse_retry_after``, the one parser), so the retry waits the backoff (1 s on a 429), never none.

Every request goes to the configured host: a ``next`` link on another origin is followed by
its path and query there (``SynapseSettings.on_host``), so neither the token nor anything else
is ever sent to another host. ``SYNAPSE_PLUGIN_RUN_URL_HOST`` adds ``url_host`` to every query
(a value the caller gives wins). Query values are encoded by one function, ``query.encode_query``;
the errors are ``errors``'s classes.

Errors name the method, the path and the status, never a token (``SynapseSettings.redact``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urljoin, urlsplit, urlunsplit

import aiohttp

from .._fetch import USER_AGENT, parse_retry_after
from .._fetch.http import new_session, proxy_options
from .._proxies import EnvProxies, Proxy
from .._retry import Backoff
from .errors import (  # noqa: F401 - the client's errors are importable from here too
    READS,
    BackendMoved,
    BackendUnavailable,
    BadRequest,
    NotFound,
    PermissionDenied,
    SynapseHTTPError,
    TokenRejected,
    error_class,
    http_error,
    proxy_refused,
    reason_phrase,
    unanswered,
    unexpected_answer,
    went_unanswered,
)
from .query import encode_query, split_lookup  # noqa: F401 - the one query encoder
from .settings import SynapseSettings
from .taskdata import dumps_exact, loads_exact

log = logging.getLogger(__name__)

IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
#: retried for every method (the SDK's ``status_forcelist``)
RETRY_STATUSES = frozenset({502, 503, 504})
#: retried for idempotent methods only
RETRY_STATUSES_IDEMPOTENT = frozenset({500})
#: retried for every method when they carry ``Retry-After`` (urllib3's ``RETRY_AFTER_STATUS_CODES``
#: but 429, which has its own count), the header's wait replacing the backoff's
RETRY_AFTER_STATUSES = frozenset({413, 503})
#: the wait after a 429 without a (positive) ``Retry-After``
RATE_LIMIT_WAIT = 1.0
#: sent with every request besides ``Accept`` and the credentials (the fetcher's user agent)
HEADERS = {"User-Agent": USER_AGENT, "Accept-Encoding": "gzip, deflate"}
#: an idle connection is closed after this long (httpx's ``Limits`` default, which the client had)
KEEPALIVE_SECONDS = 5.0
#: seconds the backend has to answer each try of ``probe`` (the ``Breaker``'s check): a backend slower
#: than this to answer one GET while tasks fail is not serving them
PROBE_TIMEOUT = 5.0
#: tries of ``probe`` after its first, on a 500/502/503/504 or no answer: one dropped connection or one
#: 503 of a busy load balancer is not the backend down (review25 #2)
PROBE_RETRIES = 2
#: the longest wait between two tries of ``probe``, whatever a ``Retry-After`` asks: with
#: ``PROBE_TIMEOUT``, the whole check takes at most 3 x 5 + 2 x 5 = 25 s, a hung backend judged within 30 s
PROBE_MAX_WAIT = 5.0


def _nothing_sent(exc: aiohttp.ClientError) -> bool:
    """True when the request certainly never reached the server (so any method may be repeated):
    the connection was never made. A dropped keep-alive connection may have carried the request."""
    return isinstance(exc, aiohttp.ClientConnectorError)


def _tls_context() -> ssl.SSLContext:
    """The CAs a Synapse host is checked against: ``SSL_CERT_FILE`` or ``SSL_CERT_DIR`` when set,
    else certifi's bundle (as the SDK's ``requests`` and httpx do), not the system's."""
    if os.environ.get("SSL_CERT_FILE"):
        return ssl.create_default_context(cafile=os.environ["SSL_CERT_FILE"])
    if os.environ.get("SSL_CERT_DIR"):
        return ssl.create_default_context(capath=os.environ["SSL_CERT_DIR"])
    import certifi

    return ssl.create_default_context(cafile=certifi.where())


def _merge_query(url: str, query: list[tuple[str, str]]) -> tuple[str, list[tuple[str, str]] | None]:
    """The URL to request and the query pairs to add: the URL's own pairs, then ``query``'s, a
    key in ``query`` replacing the URL's (as httpx merged them); the same whatever aiohttp's
    version does with a URL that has a query and ``params`` both."""
    if not query:
        return url, None
    parts = urlsplit(url)
    given = {k for k, _ in query}
    own = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in given]
    return urlunsplit(parts._replace(query="")), own + query


def _retryable(method: str, status: int, retry_after: str | None) -> bool:
    """Whether an answer other than a 429 is worth another attempt: the SDK's ``status_forcelist``
    for every method, a 413 that carries ``Retry-After`` (urllib3 retries one: the server asks for
    it later, any value, 0 too), and a 500 to an idempotent method (ours: the SDK never retries one)."""
    if status in RETRY_STATUSES or (status == 413 and retry_after):
        return True
    return status in RETRY_STATUSES_IDEMPOTENT and method in IDEMPOTENT


def _origin(url: str) -> str:
    """``scheme://host[:port]`` of a URL, without user info, path or query."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    return f"{parts.scheme}://{host}" + (f":{port}" if port else "")


def _path_of(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + ("?" + parts.query if parts.query else "")


def retrieved(future: asyncio.Future) -> None:
    """A done callback taking a future's error, for one its awaiter may never read (cancelled as it
    ended): asyncio would log it at collection as "exception was never retrieved", with a traceback."""
    if not future.cancelled():
        future.exception()


@dataclass
class _Tries:
    """What ``request`` knows of its attempts as ``_send`` makes them (``_unless_stopped`` may stop it
    anywhere): the 2xx count of its kind as its first attempt went out (``fresh``), how many of its
    tries went on the wire, and its phase's stop (``AsyncSynapseClient.stop``; None for a probe)."""

    since: int
    stop: asyncio.Future[str] | None
    on_wire: int = 0


class AsyncSynapseClient:
    """The endpoints ToTask uses, as coroutines. Use one instance per event loop."""

    def __init__(
        self,
        settings: SynapseSettings | None = None,
        *,
        max_concurrency: int = 32,
        timeout: float = 30.0,
        connect_timeout: float = 5.0,
        retries: int = 3,
        backoff: float = 2.0,
        max_backoff: float = 120.0,
        rate_limit_retries: int = 10,
        max_retry_after: float = 60.0,
        page_size: int = 100,
        probe_timeout: float = PROBE_TIMEOUT,
    ) -> None:
        self.settings = settings or SynapseSettings.from_env().require_credentials()
        self.max_concurrency = max(1, int(max_concurrency))
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.rate_limit_retries = rate_limit_retries
        self.max_retry_after = max_retry_after
        self.page_size = page_size
        self.probe_timeout = probe_timeout
        self._timeout = aiohttp.ClientTimeout(total=None, sock_connect=connect_timeout, sock_read=timeout)
        self._session: aiohttp.ClientSession | None = None  # made on the first request, in its loop
        self._proxies = EnvProxies({})  # read with the session
        self._tls = _tls_context()  # here, not on the first request: loading the CA bundle takes a while
        self._slots = asyncio.Semaphore(self.max_concurrency)
        self._paused_until = 0.0
        self._probe_session: aiohttp.ClientSession | None = None  # ``probe``'s own connection
        #: 2xx answers so far to reads and to writes (``READS``): a failed request whose kind had none since its
        #: first attempt was sent is ``fresh``; ``Breaker`` reads them to restart its count of fresh failures
        self.answered = {"read": 0, "write": 0}
        #: requests actually put on the wire (retries included), for reports and benchmarks
        self.sent = 0
        #: called with the error of a try that timed out (no answer), and whether no request of its kind was
        #: answered since it went out (``fresh``), before it is retried; what it returns (the check it asked or
        #: found under way) is waited for before the retry goes out. The phase under way sets it (export's reads,
        #: apply's, rollback's: ``workers.HungCheck``): a hung backend fails a request only after all its tries,
        #: so ``Breaker``'s check, asked at its third failure, came minutes after the first timeout
        self.on_timeout: Callable[[BackendUnavailable, bool], Awaitable[None] | None] | None = None
        #: the phase under way's stop (``workers.HungCheck``), done once its check found the backend hung (its
        #: result: why): a request of the phase still out then ends at once, unanswered, and none goes out again
        #: (the check's own aside), so that no request runs on behind the stop; None: requests run their course
        self.stop: asyncio.Future[str] | None = None

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        if self._probe_session is not None:
            await self._probe_session.close()
            self._probe_session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = new_session(self.max_concurrency, headers=HEADERS, timeout=self._timeout,
                                        keepalive_timeout=KEEPALIVE_SECONDS, tls=self._tls)
            self._proxies = EnvProxies.read()
        return self._session

    def _probe_http(self) -> aiohttp.ClientSession:
        """``probe``'s session: one connection of its own, so that the check never waits behind the
        requests that fill the pool (an export's window of 256 reads and their retries held it ~16 min)."""
        if self._probe_session is None:
            seconds = self.probe_timeout
            # no ``total``: aiohttp raises that one as a bare TimeoutError, not the ClientError every timeout is said as
            timeout = aiohttp.ClientTimeout(total=None, sock_connect=seconds, sock_read=seconds)
            self._probe_session = new_session(1, headers=HEADERS, timeout=timeout, tls=self._tls)
            self._http()  # the proxies are read with the main session
        return self._probe_session

    async def __aenter__(self) -> AsyncSynapseClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- the one request path ------------------------------------------------------------

    async def request(
        self,
        method: str,
        path_or_url: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        has_body: bool = False,
        on_attempt: Callable[[int], Awaitable[None]] | None = None,
        probe: bool = False,
    ) -> Any:
        """Send one request (with the retry policy above) and return the decoded JSON body.

        ``probe``: on a connection of its own within ``probe_timeout`` a try (no connection slot, no
        pause), tried again ``PROBE_RETRIES`` times at most on a 5xx or no answer, each wait at most
        ``PROBE_MAX_WAIT``, a 429 not waited out (an answer: ``Breaker`` takes it as one), and its
        answer not counted in ``answered``: ``Breaker``'s check. An error raised is ``fresh`` when no
        request of its kind (``READS`` or writes) got a 2xx since its *first* attempt went on the wire
        (after any pause and its wait for a connection slot: a request held back while others were
        answered is judged from when it went out, review25 #5). Not from its last attempt: a retry
        waits its backoff, so the last attempt of nearly every failure goes out after the others of
        its window were answered, and a broken task's quick 500 or 503 looked fresh whatever the
        backend's state (review8 #1, #3).

        ``on_attempt(attempt)`` is awaited before each attempt not sent at once: one after the first
        (2, 3, ...), or a first one that waited out a pause (another request's 429) or for a
        connection slot (every one of ``max_concurrency`` held by other requests); once its wait is
        over and a slot is held, right before it goes on the wire. Apply journals it there, so that
        a run killed while retrying one PUT for minutes, or holding it back, is known to have sent
        it lately (``journal.TaskHistory.landing``). What it raises stops the request unsent."""
        method = method.upper()
        url = self.settings.on_host(path_or_url)
        headers = {"Accept": "application/json", **self.settings.auth_headers(url)}
        content = None
        if json is not None or has_body:
            content = dumps_exact(json)  # Synapse reads integers of any size: send them exactly
            headers["Content-Type"] = "application/json"
        query = encode_query(params)
        if self.settings.url_host and not any(k == "url_host" for k, _ in query + parse_qsl(urlsplit(url).query)):
            query.append(("url_host", self.settings.url_host))  # a value the caller (or a next link) gives wins
        target, query = _merge_query(url, query)
        session = self._probe_http() if probe else self._http()
        proxy, headers, proxy_kwargs = proxy_options(self._proxies, target, headers)
        kind = "read" if method in READS else "write"
        tries = _Tries(self.answered[kind], None if probe else self.stop)
        try:
            sending = self._send(method, url, target, query, content, headers, session, proxy, proxy_kwargs,
                                 on_attempt, probe, tries)
            return await (sending if tries.stop is None else self._unless_stopped(sending, method, url, tries))
        except SynapseHTTPError as exc:
            exc.fresh = self.answered[kind] == tries.since
            raise

    async def _unless_stopped(self, sending: Awaitable[Any], method: str, url: str, tries: _Tries) -> Any:
        """``sending`` (``_send``), ended where the phase's stop comes first (``stop``): a try on the wire
        to a hung backend would otherwise wait out its read timeout, and its retries theirs, behind the
        stop. An answer that came with the stop is kept: a write answered is journalled as done."""
        assert tries.stop is not None
        send = asyncio.ensure_future(sending)
        send.add_done_callback(retrieved)  # its error is lost where the caller was cancelled as it ended
        try:
            await asyncio.wait([send, tries.stop], return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not send.done():  # stopped (or a Ctrl-C): nothing of it goes on behind the caller
                send.cancel()
                await asyncio.wait([send])
        if send.cancelled():
            raise self._stopped(method, url, tries)
        return send.result()

    def _stopped(self, method: str, url: str, tries: _Tries) -> BackendUnavailable:
        """The error of a request its phase stopped (``stop``): no answer, and a try of it may still
        reach the backend where one went out (``after_unanswered``, as a timeout leaves a write in doubt);
        where none did, nothing was sent (``unreachable``: ``errors.may_still_land``)."""
        assert tries.stop is not None
        path = _path_of(url)
        sent = tries.on_wire > 0
        said = f"Synapse did not answer {method} {path}" if sent else f"Synapse was not asked {method} {path}"
        text = self.settings.redact(f"{said}: the run stopped, as {tries.stop.result()}")
        return BackendUnavailable(text, status=None, method=method, path=path, unreachable=not sent,
                                  after_unanswered=sent)

    async def _send(self, method: str, url: str, target: str, query: list[tuple[str, str]] | None, content: Any,
                    headers: Mapping[str, str] | None, session: aiohttp.ClientSession, proxy: Proxy | None,
                    proxy_kwargs: dict, on_attempt: Callable[[int], Awaitable[None]] | None, probe: bool,
                    tries: _Tries) -> Any:
        """``request``'s attempts, by the retry policy above (``probe``: ``PROBE_RETRIES``, outside the
        pool's slots). ``tries.since`` is set to the count of 2xx answers to the request's kind as its
        first attempt goes out: what makes its failure ``fresh``. A try that times out is judged from
        its own send (``_timed_out``): a hung backend answers none of the tries sent since. No try goes
        out once the phase's ``stop`` is done (it may come while a retry waits for the check)."""
        retries, rate_limit_retries = (PROBE_RETRIES, 0) if probe else (self.retries, self.rate_limit_retries)
        most = PROBE_MAX_WAIT if probe else None
        kind = "read" if method in READS else "write"
        slots = contextlib.nullcontext() if probe else self._slots
        failures = 0
        rate_limited = 0
        attempt = 0
        after_unanswered = False  # an earlier attempt may still be processed (``errors.went_unanswered``)
        after_server_error = False  # an earlier attempt was answered 500 or 503: it may have been stored
        this_try = tries.since  # the 2xx count as the current attempt went out
        while True:
            paused = not probe and await self._wait_if_paused()
            attempt += 1
            queued = not probe and self._slots.locked()  # no slot free: it goes out when another request's ends
            try:
                async with slots:
                    if on_attempt is not None and (attempt > 1 or paused or queued):
                        await on_attempt(attempt)
                    if tries.stop is not None and tries.stop.done():
                        raise self._stopped(method, url, tries)
                    this_try = self.answered[kind]
                    if attempt == 1:
                        tries.since = this_try
                    self.sent += 1
                    tries.on_wire += 1
                    started = time.perf_counter()
                    async with session.request(method, target, params=query, data=content, headers=headers,
                                               allow_redirects=False, **proxy_kwargs) as response:
                        body = await response.read()
            except aiohttp.ClientError as exc:
                failures += 1
                if isinstance(exc, TimeoutError) and not probe:
                    await self._timed_out(method, url, exc, failures, proxy, self.answered[kind] == this_try)
                # the proxy refused the tunnel (a 407): another attempt has the same credentials
                refused = isinstance(exc, aiohttp.ClientHttpProxyError) and exc.status < 500
                repeatable = method in IDEMPOTENT or _nothing_sent(exc)
                if repeatable and not refused and failures <= retries:
                    # no answer (``went_unanswered(None)``), unless the connection was never made: nothing sent
                    after_unanswered = after_unanswered or not _nothing_sent(exc)
                    await self._sleep_backoff(failures, most=most)
                    continue
                raise unanswered(method, _path_of(url), exc, failures, proxy, self.settings.redact,
                                 after_unanswered=after_unanswered) from None
            status = response.status
            if status == 407 and proxy is not None:  # an http:// host's: the proxy answered
                raise proxy_refused(method, _path_of(url), status, proxy, self.settings.redact)
            if log.isEnabledFor(logging.DEBUG):
                log.debug("%s %s -> %s in %.0f ms", method, _path_of(url), status, (time.perf_counter() - started) * 1e3)
            retry_after = response.headers.get("Retry-After") if status >= 400 else None  # no look-up on a 2xx
            if status == 429 and rate_limited < rate_limit_retries:
                rate_limited += 1
                delay = self._backoff().delay(rate_limited, parse_retry_after(retry_after) or RATE_LIMIT_WAIT)
                self._paused_until = max(self._paused_until, time.monotonic() + delay)
                continue
            if _retryable(method, status, retry_after) and failures < retries:
                failures += 1
                if status != 413:  # a 413 was refused unread, as a 429: nothing of it is stored or on its way
                    after_unanswered = after_unanswered or went_unanswered(status)
                    after_server_error = after_server_error or not went_unanswered(status)
                asked = parse_retry_after(retry_after) if status in RETRY_AFTER_STATUSES else None
                await self._sleep_backoff(failures, asked, most=most)
                continue
            if status >= 400:
                raise self._error(method, url, status, body, after_unanswered=after_unanswered,
                                  after_server_error=after_server_error, proxy=proxy)
            if 300 <= status < 400:
                raise self._redirect_error(method, url, status, response.headers.get("Location"))
            if not probe:
                self.answered[kind] += 1
            if not body:
                return None
            try:
                return loads_exact(body)  # an integer beyond 64 bits stays one (task data goes back)
            except ValueError:
                raise SynapseHTTPError(
                    f"Synapse answered {method} {_path_of(url)} with {status} but the body is not JSON",
                    status=status,
                    method=method,
                    path=_path_of(url),
                    after_unanswered=after_unanswered,
                    after_server_error=after_server_error,
                ) from None

    async def _timed_out(self, method: str, url: str, exc: aiohttp.ClientError, failures: int, proxy: Proxy | None,
                         fresh: bool) -> None:
        """Tells ``on_timeout`` of a try that got no answer in time, and whether nothing of its kind was
        answered while it waited (``fresh``: a backend that answers others is slow to this request, not
        down), then waits for the check it names before the retry: sent during the check, the retry of a
        request to a hung backend went out a second time, and waited a whole read timeout more."""
        if self.on_timeout is None:
            return
        check = self.on_timeout(unanswered(method, _path_of(url), exc, failures, proxy, self.settings.redact), fresh)
        if check is not None:
            await asyncio.wait([asyncio.ensure_future(check)])  # never cancelled by this request's end: shared

    async def _wait_if_paused(self) -> bool:
        """Wait while every request is paused (a 429's ``Retry-After``); whether it waited."""
        waited = False
        while True:
            delay = self._paused_until - time.monotonic()
            if delay <= 0:
                return waited
            waited = True
            await asyncio.sleep(delay)

    def backoff_delay(self, failures: int) -> float:
        """Seconds before retry number ``failures`` (1-based): urllib3's formula, as the SDK uses it
        (0 before the first retry, then ``backoff * 2**(n-1)``, at most ``max_backoff``)."""
        return self._backoff().delay(failures)

    def _backoff(self) -> Backoff:
        """The project's one backoff policy with the SDK's settings: no jitter, first retry at once."""
        return Backoff(self.backoff, self.max_backoff, jitter=False, first=0.0, max_retry_after=self.max_retry_after)

    async def _sleep_backoff(self, failures: int, retry_after: float | None = None, *,
                             most: float | None = None) -> None:
        """Wait before retry ``failures``: the server's ``retry_after`` (capped) when it asked, else the backoff;
        at most ``most`` seconds where given (``probe``'s bound: the check must not wait out a maintenance window)."""
        delay = self._backoff().delay(failures, retry_after)
        if most is not None:
            delay = min(delay, most)
        if delay > 0:
            await asyncio.sleep(delay)

    def _error(self, method: str, url: str, status: int, body: bytes, *, after_unanswered: bool = False,
               after_server_error: bool = False, proxy: Proxy | None = None) -> SynapseHTTPError:
        """An error answer's error, the tokens masked, and the credentials of the ``proxy`` the request
        went through: an ``http://`` host's answer may be the proxy's own page, which may echo them."""
        secrets = [*self.settings.secrets(), *(proxy.secrets if proxy is not None else ())]
        return http_error(method, _path_of(url), status, body, secrets, after_unanswered=after_unanswered,
                          after_server_error=after_server_error)

    def _redirect_error(self, method: str, url: str, status: int, location: str | None) -> BackendMoved:
        """Names only where the redirect points (scheme and host): its path or query may hold secrets."""
        target = _origin(urljoin(url, location)) if location else None
        reason = reason_phrase(status)
        message = (f"Synapse answered {status} {reason} to {method} {_path_of(url)}"
                   + (f", redirecting to {target}" if target else "")
                   + f"; redirects are not followed: {self.settings.check_host(_origin(self.settings.host))}")
        return BackendMoved(self.settings.redact(message), status=status, method=method, path=_path_of(url))

    async def get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        return await self.request("GET", path, params=params)

    async def iter_results(self, path: str, params: Mapping[str, Any] | None = None,
                           counts: list[int] | None = None) -> AsyncIterator[dict]:
        """Every result of a DRF page-number listing, following the absolute ``next`` links.
        ``counts`` gets each page's ``count``: pages read while the listing changes shift under it.

        A ``next`` link on another origin (a backend behind a TLS proxy writes ``http://``, or its
        internal host name) is followed by its path and query on the configured host."""
        query: dict[str, Any] | None = {"page_size": self.page_size, **dict(params or {})}
        url: str | None = path
        warned = False
        while url:
            page = await self.get(url, query)
            query = None  # the next link carries the whole query
            items = page if isinstance(page, list) else page.get("results") if isinstance(page, dict) else None
            if not isinstance(items, list):
                raise unexpected_answer("GET", _path_of(self.settings.on_host(url)),
                                        page if not isinstance(page, dict) else items, "a page of results")
            if counts is not None and isinstance(page, dict) and isinstance(page.get("count"), int):
                counts.append(page["count"])
            for item in items:
                if not isinstance(item, dict):
                    raise unexpected_answer("GET", _path_of(self.settings.on_host(url)), item,
                                            "a listed object")
                yield item
            url = page.get("next") if isinstance(page, dict) else None
            if url is not None and not isinstance(url, str):
                raise unexpected_answer("GET", _path_of(self.settings.on_host(path)), url, "a next link (a string)")
            if url and "://" in url and not self.settings.is_own(url):
                if not warned:
                    log.info("the backend's next links point at %s; following them on %s", _origin(url),
                             _origin(self.settings.host))
                    warned = True
                url = self.settings.on_host(url)

    # -- endpoints -------------------------------------------------------------------------

    async def get_project(self, project_id: int) -> dict:
        return await self.get(f"projects/{project_id}/")

    async def probe_project(self, project_id: int) -> dict:
        """The project's GET as ``Breaker``'s check: on its own connection, each try within ``probe_timeout``
        (``request``'s ``probe``)."""
        return await self.request("GET", f"projects/{project_id}/", probe=True)

    async def get_data_collection(self, collection_id: int) -> dict:
        return await self.get(f"data_collections/{collection_id}/", {"expand": "file_specifications"})

    def iter_tasks(self, params: Mapping[str, Any], counts: list[int] | None = None) -> AsyncIterator[dict]:
        return self.iter_results("sdk/tasks/", params, counts)

    async def get_object(self, path: str, params: Mapping[str, Any] | None = None) -> dict:
        """``get`` of one object: any other answer (a list, a string, an empty body) is an error."""
        answer = await self.get(path, params)
        if not isinstance(answer, dict):
            raise unexpected_answer("GET", _path_of(self.settings.on_host(path)), answer, "an object")
        return answer

    async def get_task(self, task_id: int, params: Mapping[str, Any] | None = None) -> dict:
        return await self.get_object(f"tasks/{task_id}/", params)

    async def get_data_unit(self, data_unit_id: int, params: Mapping[str, Any] | None = None) -> dict:
        return await self.get_object(f"data_units/{data_unit_id}/", params if params is not None else {"expand": "files"})

    async def annotate_task_data(self, task_id: int, data: Any, *, schema: str | None = None,
                                 on_attempt: Callable[[int], Awaitable[None]] | None = None) -> Any:
        """``PUT tasks/{id}/annotate_task_data/`` with ``{"action": "submit", "data": data}``
        (``on_attempt``: as ``request``'s)."""
        params = {"schema": schema} if schema else None
        return await self.request(
            "PUT", f"tasks/{task_id}/annotate_task_data/", params=params, json={"action": "submit", "data": data},
            on_attempt=on_attempt,
        )

    async def get_plugin_release(self, release_id: int) -> dict:
        return await self.get(f"plugin_releases/{release_id}/")

    async def list_serve_applications(self, params: Mapping[str, Any]) -> list[dict]:
        return [app async for app in self.iter_results("serve_applications/", params)]

    async def run_plugin(self, code: str, payload: dict) -> Any:
        """``POST plugins/{code}/run/``: deploys a serve application or calls inference.

        The body carries ``language`` as the SDK's ``PluginRunRequest`` does (``SYNAPSE_LANGUAGE``,
        else ``ko``) unless the payload names one. Sent again only on 502/503/504, a 413 with
        ``Retry-After``, or when the connection was never made."""
        body = {**payload, "language": payload.get("language") or self.settings.language}
        return await self.request("POST", f"plugins/{code}/run/", json=body)

    async def list_agents(self, params: Mapping[str, Any] | None = None) -> list[dict]:
        """``GET agents/`` (the SDK's ``list_agents``; ``{"id": N}`` asks for one agent)."""
        page = await self.get("agents/", params)
        results = page.get("results") if isinstance(page, dict) else page
        return [a for a in results or [] if isinstance(a, dict)]

    async def get_job(self, job_id: int | str) -> dict:
        return await self.get(f"jobs/{job_id}/")

    async def update_job(self, job_id: int | str, data: dict) -> Any:
        return await self.request("PATCH", f"jobs/{job_id}/", json=data)

    async def create_logs(self, entries: list[dict]) -> Any:
        return await self.request("POST", "logs/", json=entries)
