"""The asynchronous Synapse client: one connection pool, timeouts, safe retries, a concurrency cap.

Requests go through the httpx API over the ``httpx-aiohttp`` transport: httpx's own async pool
loses throughput as concurrency grows (encode/httpx#3215) while aiohttp's keeps scaling
(performance-notes.md: about 2,700 requests/s at 32 concurrent requests).

Retry policy, by what the server may already have done:

* GET and PUT are idempotent: repeated after connection errors, timeouts and 5xx answers;
* POST and PATCH are repeated only when the connection was never made (nothing was sent),
  because a plugin run or a log entry sent twice is not the same as sent once;
* 429 means the request was refused before any work, so every method waits ``Retry-After``
  (all requests of the client pause together) and tries again.

Errors name the method, the path and the status, never a token (``SynapseSettings.redact``).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
import orjson

from ..errors import FatalSynapseError, SynapseError
from ..fetch import parse_retry_after
from .settings import SynapseSettings

log = logging.getLogger(__name__)

IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
RETRY_STATUSES = frozenset({500, 502, 503, 504})


class SynapseHTTPError(SynapseError):
    """The backend answered with an error status."""

    def __init__(self, message: str, *, status: int | None, method: str, path: str, detail: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.method = method
        self.path = path
        self.detail = detail


class BadRequest(SynapseHTTPError):
    """400: the backend refused this request's content (e.g. task data failing its schema)."""


class PermissionDenied(SynapseHTTPError):
    """403: this token may not touch this object."""


class NotFound(SynapseHTTPError):
    """404: no such object."""


class TokenRejected(SynapseHTTPError, FatalSynapseError):
    """401: the token is missing, wrong or revoked; nothing else can succeed."""


class BackendMoved(SynapseHTTPError, FatalSynapseError):
    """3xx: the backend redirects instead of answering; redirects are not followed (a token must
    not travel to another host), and when the host is wrong every request would be redirected, so
    this is fatal rather than one failure per task."""


class BackendUnavailable(SynapseHTTPError):
    """5xx after every retry, too many 429s, or no connection at all (``status`` is None)."""


def _error_class(status: int) -> type[SynapseHTTPError]:
    if status == 400:
        return BadRequest
    if status == 401:
        return TokenRejected
    if status == 403:
        return PermissionDenied
    if status == 404:
        return NotFound
    if status >= 500 or status == 429:
        return BackendUnavailable
    return SynapseHTTPError


def _nothing_sent(exc: httpx.TransportError) -> bool:
    """True when the request certainly never reached the server (so any method may be repeated).

    The aiohttp transport maps every ``aiohttp.ClientConnectionError`` (a dropped keep-alive
    connection included) to ``httpx.ConnectTimeout``, so the original aiohttp exception decides.
    """
    cause = exc.__cause__
    try:
        import aiohttp
    except ImportError:  # pragma: no cover - aiohttp is a dependency
        aiohttp = None  # type: ignore[assignment]
    if aiohttp is not None and isinstance(cause, aiohttp.ClientError):
        return isinstance(cause, aiohttp.ClientConnectorError)
    return isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)


def _retry_after(value: str | None, default: float) -> float:
    seconds = parse_retry_after(value)
    return default if seconds is None else seconds


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


def _make_http_client(max_connections: int, timeout: httpx.Timeout) -> httpx.AsyncClient:
    try:
        from httpx_aiohttp import AiohttpTransport
    except ImportError:  # pragma: no cover - a declared dependency; plain httpx still works
        return httpx.AsyncClient(timeout=timeout, limits=httpx.Limits(max_connections=max_connections))
    transport = AiohttpTransport(limits=httpx.Limits(max_connections=max_connections))
    return httpx.AsyncClient(transport=transport, timeout=timeout)


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
        backoff: float = 0.5,
        max_backoff: float = 8.0,
        rate_limit_retries: int = 10,
        max_retry_after: float = 60.0,
        page_size: int = 100,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self.settings = settings or SynapseSettings.from_env().require_credentials()
        self.max_concurrency = max(1, int(max_concurrency))
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.rate_limit_retries = rate_limit_retries
        self.max_retry_after = max_retry_after
        self.page_size = page_size
        self._timeout = httpx.Timeout(timeout, connect=connect_timeout, pool=None)
        self._http = http or _make_http_client(self.max_concurrency, self._timeout)
        self._slots = asyncio.Semaphore(self.max_concurrency)
        self._paused_until = 0.0
        #: requests actually put on the wire (retries included), for reports and benchmarks
        self.sent = 0

    async def aclose(self) -> None:
        await self._http.aclose()

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
    ) -> Any:
        """Send one request (with the retry policy above) and return the decoded JSON body."""
        method = method.upper()
        url = self.settings.url(path_or_url)
        headers = {"Accept": "application/json", **self.settings.auth_headers(url)}
        content = None
        if json is not None or has_body:
            content = orjson.dumps(json)
            headers["Content-Type"] = "application/json"
        query = _clean_params(params)
        failures = 0
        rate_limited = 0
        while True:
            await self._wait_if_paused()
            try:
                async with self._slots:
                    self.sent += 1
                    started = time.perf_counter()
                    response = await self._http.request(method, url, params=query, content=content, headers=headers)
                    body = response.content
            except httpx.TransportError as exc:
                failures += 1
                repeatable = method in IDEMPOTENT or _nothing_sent(exc)
                if repeatable and failures <= self.retries:
                    await self._sleep_backoff(failures)
                    continue
                kind = type(exc.__cause__ or exc).__name__
                raise BackendUnavailable(
                    self.settings.redact(
                        f"Synapse did not answer {method} {_path_of(url)}: {kind}"
                        + (f" ({exc})" if str(exc) else "")
                        + (f" after {failures} attempts" if failures > 1 else "")
                    ),
                    status=None,
                    method=method,
                    path=_path_of(url),
                ) from None
            status = response.status_code
            if log.isEnabledFor(logging.DEBUG):
                log.debug("%s %s -> %s in %.0f ms", method, _path_of(url), status, (time.perf_counter() - started) * 1e3)
            if status == 429 and rate_limited < self.rate_limit_retries:
                rate_limited += 1
                delay = min(_retry_after(response.headers.get("Retry-After"), 1.0), self.max_retry_after)
                self._paused_until = max(self._paused_until, time.monotonic() + delay)
                continue
            if status in RETRY_STATUSES and method in IDEMPOTENT and failures < self.retries:
                failures += 1
                await self._sleep_backoff(failures)
                continue
            if status >= 400:
                raise self._error(method, url, status, body)
            if 300 <= status < 400:
                raise self._redirect_error(method, url, status, response.headers.get("Location"))
            if not body:
                return None
            try:
                return orjson.loads(body)
            except orjson.JSONDecodeError:
                raise SynapseHTTPError(
                    f"Synapse answered {method} {_path_of(url)} with {status} but the body is not JSON",
                    status=status,
                    method=method,
                    path=_path_of(url),
                ) from None

    async def _wait_if_paused(self) -> None:
        while True:
            delay = self._paused_until - time.monotonic()
            if delay <= 0:
                return
            await asyncio.sleep(delay)

    async def _sleep_backoff(self, failures: int) -> None:
        delay = min(self.backoff * (2 ** (failures - 1)), self.max_backoff)
        await asyncio.sleep(delay * (0.75 + random.random() * 0.5))

    def _error(self, method: str, url: str, status: int, body: bytes) -> SynapseHTTPError:
        detail: Any = None
        text = ""
        if body:
            try:
                detail = orjson.loads(body)
                text = orjson.dumps(detail).decode()
            except orjson.JSONDecodeError:
                text = body[:300].decode("utf-8", "replace")
        if len(text) > 300:
            text = text[:297] + "..."
        reason = httpx.codes.get_reason_phrase(status)
        message = f"Synapse answered {status} {reason} to {method} {_path_of(url)}" + (f": {text}" if text else "")
        return _error_class(status)(
            self.settings.redact(message), status=status, method=method, path=_path_of(url), detail=detail
        )

    def _redirect_error(self, method: str, url: str, status: int, location: str | None) -> BackendMoved:
        """Names only where the redirect points (scheme and host): its path or query may hold secrets."""
        target = _origin(urljoin(url, location)) if location else None
        reason = httpx.codes.get_reason_phrase(status)
        message = (f"Synapse answered {status} {reason} to {method} {_path_of(url)}"
                   + (f", redirecting to {target}" if target else "")
                   + f"; redirects are not followed: check SYNAPSE_HOST (now {_origin(self.settings.host)})")
        return BackendMoved(self.settings.redact(message), status=status, method=method, path=_path_of(url))

    async def get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        return await self.request("GET", path, params=params)

    async def iter_results(self, path: str, params: Mapping[str, Any] | None = None) -> AsyncIterator[dict]:
        """Every result of a DRF page-number listing, following the absolute ``next`` links."""
        query: dict[str, Any] | None = {"page_size": self.page_size, **dict(params or {})}
        url: str | None = path
        while url:
            page = await self.get(url, query)
            query = None  # the next link carries the whole query
            if isinstance(page, list):
                for item in page:
                    yield item
                return
            for item in (page or {}).get("results") or []:
                yield item
            url = (page or {}).get("next")

    # -- endpoints -------------------------------------------------------------------------

    async def get_project(self, project_id: int) -> dict:
        return await self.get(f"projects/{project_id}/")

    async def get_data_collection(self, collection_id: int) -> dict:
        return await self.get(f"data_collections/{collection_id}/", {"expand": "file_specifications"})

    def iter_tasks(self, params: Mapping[str, Any]) -> AsyncIterator[dict]:
        return self.iter_results("sdk/tasks/", params)

    async def get_task(self, task_id: int, params: Mapping[str, Any] | None = None) -> dict:
        return await self.get(f"tasks/{task_id}/", params)

    async def get_data_unit(self, data_unit_id: int, params: Mapping[str, Any] | None = None) -> dict:
        return await self.get(f"data_units/{data_unit_id}/", params if params is not None else {"expand": "files"})

    async def annotate_task_data(self, task_id: int, data: Any, *, schema: str | None = None) -> Any:
        """``PUT tasks/{id}/annotate_task_data/`` with ``{"action": "submit", "data": data}``."""
        params = {"schema": schema} if schema else None
        return await self.request(
            "PUT", f"tasks/{task_id}/annotate_task_data/", params=params, json={"action": "submit", "data": data}
        )

    async def get_plugin_release(self, release_id: int) -> dict:
        return await self.get(f"plugin_releases/{release_id}/")

    async def list_serve_applications(self, params: Mapping[str, Any]) -> list[dict]:
        return [app async for app in self.iter_results("serve_applications/", params)]

    async def run_plugin(self, code: str, payload: dict) -> Any:
        """``POST plugins/{code}/run/``: deploys a serve application or calls inference. Never replayed."""
        return await self.request("POST", f"plugins/{code}/run/", json=payload)

    async def get_job(self, job_id: int | str) -> dict:
        return await self.get(f"jobs/{job_id}/")

    async def update_job(self, job_id: int | str, data: dict) -> Any:
        return await self.request("PATCH", f"jobs/{job_id}/", json=data)

    async def create_logs(self, entries: list[dict]) -> Any:
        return await self.request("POST", "logs/", json=entries)


def _clean_params(params: Mapping[str, Any] | None) -> dict[str, str] | None:
    """Query values as the backend's filters read them: lists comma-joined, ``None`` as ``null``."""
    if not params:
        return None
    out: dict[str, str] = {}
    for key, value in params.items():
        if isinstance(value, list | tuple | set):
            out[key] = ",".join(_scalar(v) for v in value)
        else:
            out[key] = _scalar(value)
    return out


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
