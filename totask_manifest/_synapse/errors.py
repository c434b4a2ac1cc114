"""The Synapse client's errors: one class per answer a caller treats differently.

Messages name the method, the path and the status, never a token: ``http_error`` masks the
client's secrets in the message and in ``detail``, the answer's parsed JSON a caller may print.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from http import HTTPStatus
from typing import Any

import aiohttp
import orjson

from .._errors import FatalSynapseError, SynapseError
from .._proxies import Proxy
from .._redaction import hide_secrets

#: the methods whose 2xx shows that the backend serves reads; every other method is a write
READS = frozenset({"GET", "HEAD", "OPTIONS"})


class SynapseHTTPError(SynapseError):
    """The backend answered with an error status."""

    def __init__(self, message: str, *, status: int | None, method: str, path: str, detail: Any = None,
                 after_unanswered: bool = False, after_server_error: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.method = method
        self.path = path
        self.detail = detail
        #: an earlier attempt of the request went unanswered (``went_unanswered``: a timeout, a dropped
        #: connection, a gateway's 502 or 504): the backend may still do the work this answer refuses.
        #: An earlier 500 or 503 is the backend's own answer: nothing of it is on its way
        self.after_unanswered = after_unanswered
        #: an earlier attempt was answered 500 or 503: nothing of it is on its way, but the backend
        #: may have stored the write before it failed (a final 500 is in doubt for the same reason)
        self.after_server_error = after_server_error
        #: no request of its kind (read or write) got a 2xx from the backend since its first attempt went
        #: on the wire (set by the client; ``Breaker``: ``FRESH_OUTAGE`` fresh failures of an outage's
        #: status in a row are an outage of that kind even though the check is answered)
        self.fresh = True

    @property
    def kind(self) -> str:
        """"read" or "write": the requests whose 2xx tell whether the backend serves this one's kind."""
        return "read" if self.method.upper() in READS else "write"


class BadRequest(SynapseHTTPError):
    """400: the backend refused this request's content (e.g. task data failing its schema)."""


class PermissionDenied(SynapseHTTPError):
    """403: this token may not touch this object."""


class NotFound(SynapseHTTPError):
    """404: no such object."""


class TokenRejected(SynapseHTTPError, FatalSynapseError):
    """401: the token is missing, wrong or revoked; nothing else can succeed.

    A credential Synapse refuses is a configuration mistake, as a missing one is (``UsageError``,
    exit code 2): a command it stops (``export``) exits 2. ``apply``, ``rollback`` and ``run``
    report it as their fatal failure instead (exit 1), keeping their journal, as they do for a
    host that does not answer."""

    exit_code = 2


class BackendMoved(SynapseHTTPError, FatalSynapseError):
    """3xx: the backend redirects instead of answering; redirects are not followed (a token must
    not travel to another host), and when the host is wrong every request would be redirected, so
    this is fatal rather than one failure per task."""


class BackendUnavailable(SynapseHTTPError):
    """5xx after every retry, too many 429s, or no connection at all (``status`` is None).
    ``unreachable``: not even a connection could be opened, after every retry (refused, no such
    host, no route): no other request to that host can do better."""

    def __init__(self, message: str, *, unreachable: bool = False, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.unreachable = unreachable
        if self.status is None:  # nothing answered (refused, no such host): an I/O error, as the README's exit 2
            self.exit_code = 2


#: answers of a gateway that gave up waiting for the backend, which may still finish the request
GATEWAY_GAVE_UP = frozenset({502, 504})


def went_unanswered(status: int | None) -> bool:
    """Whether an attempt that ended with ``status`` (None: no answer at all, a timeout or a dropped
    connection) may still be processed by the backend: no one answered it, or a gateway gave up
    waiting for it (502, 504). The one rule for apply's journal (``unanswered``) and for the
    client's earlier attempts (``SynapseHTTPError.after_unanswered``): a 500 or a 503 is the
    backend's own answer, with nothing on its way."""
    return status is None or status in GATEWAY_GAVE_UP


def backend_down(error: BaseException | None) -> bool:
    """Synapse did not take a request for want of a backend (no answer, 5xx after the retries, too
    many 429s): another request now fails the same way, after its own retry schedule. An error
    answer (a 4xx) says nothing of the next request, which is still sent (``tell_refused``)."""
    return isinstance(error, BackendUnavailable)


def never_connected(error: BaseException | None) -> bool:
    """No connection to the host could be opened on any attempt (refused, no such host): the next
    request to it now fails the same way. Not a 5xx or 429s, which one endpoint may give alone
    (``logs/`` failing while ``jobs/`` answers): ``JobReporter.flush`` then still sends the job's
    status, which would otherwise never reach it."""
    return isinstance(error, BackendUnavailable) and error.unreachable


def may_still_land(exc: SynapseHTTPError) -> bool:
    """Whether the write a failed PUT carried may still reach the backend: its last attempt or an
    earlier one went unanswered (``went_unanswered``), so the backend may still be processing it.
    The one rule for what the journal keeps in doubt (``Journal.note_failure``: ``unanswered``, or
    ``failed`` without ``refused``) and for a restore sent unjournalled, which no record makes a
    later run wait for (``rollback._send_unjournalled``): a timed-out one was counted a plain failure.
    A connection never made on any attempt (refused, no such host: ``unreachable``, no earlier
    attempt that may have reached the backend) carried nothing: it was kept in doubt, and the
    summary said to wait a minute for a restore that never left."""
    if isinstance(exc, BackendUnavailable) and exc.unreachable and not exc.after_unanswered:
        return False
    return exc.after_unanswered or went_unanswered(exc.status)


def json_kind(value: Any) -> str:
    """What a JSON value is, in words (``a JSON list``), for a message about an answer's shape."""
    if value is None:
        return "an empty body"
    kind = {dict: "object", list: "list", str: "string", bool: "boolean"}.get(type(value), "number")
    return f"a JSON {kind}"


def unexpected_answer(method: str, path: str, value: Any, expected: str) -> SynapseHTTPError:
    """A 2xx answer of the wrong shape (a proxy's or a broken backend's): one line naming the
    request, never the body (status 200: it did answer, so it is no I/O error)."""
    return SynapseHTTPError(f"Synapse answered {method} {path} with {json_kind(value)} where {expected} was expected",
                            status=200, method=method, path=path)


def error_class(status: int) -> type[SynapseHTTPError]:
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


def reason_phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def http_error(method: str, path: str, status: int, body: bytes, secrets: Sequence[str], *,
               after_unanswered: bool = False, after_server_error: bool = False) -> SynapseHTTPError:
    """The error for an answer with an error status: the message quotes the body (its JSON, or
    an error page's first 600 bytes on one line; 300 characters at most) and ``detail`` holds its
    parsed JSON, each with ``secrets`` masked (``***``). ``detail`` was kept as received: a token
    the server echoed, masked in the message, was printed whole by a caller showing it."""
    detail: Any = None
    text = ""
    if body:
        try:
            detail = _masked(orjson.loads(body), secrets)
            text = orjson.dumps(detail).decode()
        except orjson.JSONDecodeError:
            # an error page (a proxy's HTML) over several lines: one line, as every reason is
            text = " ".join(body[:600].decode("utf-8", "replace").split())
    # tokens masked before the cut to 300: one a cut (or the 600 bytes) split kept its head
    text = hide_secrets(text, secrets, cut=detail is None and len(body) > 600)
    if len(text) > 300:
        text = text[:297] + "..."
    message = f"Synapse answered {status} {reason_phrase(status)} to {method} {path}" + (f": {text}" if text else "")
    if status == 401:  # what to change, as a missing token's error names it
        message += (" (check the token: SYNAPSE_ACCESS_TOKEN, SYNAPSE_PLUGIN_RUN_USER_TOKEN or the access_token "
                    "'synapse login' saved in ~/.synapse/config.json)")
    return error_class(status)(hide_secrets(message, secrets), status=status, method=method, path=path,
                               detail=detail, after_unanswered=after_unanswered,
                               after_server_error=after_server_error)


def _masked(value: Any, secrets: Sequence[str]) -> Any:
    """Parsed JSON with ``secrets`` masked in every string, keys included."""
    if isinstance(value, str):
        return hide_secrets(value, secrets)
    if isinstance(value, dict):
        return {hide_secrets(k, secrets): _masked(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [_masked(v, secrets) for v in value]
    return value


def unanswered(method: str, path: str, exc: aiohttp.ClientError, failures: int, proxy: Proxy | None,
               redact: Callable[[str], str], *, after_unanswered: bool = False) -> BackendUnavailable:
    """No answer came: one line naming the request, the error and the proxy it went through
    (its URL without user info and the variable that named it; ``redact`` hides the tokens).
    ``after_unanswered``: an earlier attempt may have reached the backend (``may_still_land``
    tells it from a connection never made on any attempt)."""
    if proxy is not None and isinstance(exc, aiohttp.ClientHttpProxyError):
        return proxy_refused(method, path, exc.status, proxy, redact)
    kind = type(exc).__name__
    detail = (f": {kind}" + (f" ({exc})" if str(exc) else "")
              + (f" after {failures} attempts" if failures > 1 else ""))
    if proxy is not None and isinstance(exc, aiohttp.ClientProxyConnectionError):
        message = f"the proxy {proxy.shown} cannot be reached, so Synapse was not asked {method} {path}"
    elif proxy is not None:
        message = f"Synapse did not answer {method} {path} through the proxy {proxy.shown}"
    else:
        message = f"Synapse did not answer {method} {path}"
    text = redact(message + detail)
    return BackendUnavailable(proxy.hide(text) if proxy else text, status=None, method=method, path=path,
                              unreachable=isinstance(exc, aiohttp.ClientConnectorError),
                              after_unanswered=after_unanswered)


def proxy_refused(method: str, path: str, status: int, proxy: Proxy,
                  redact: Callable[[str], str]) -> BackendUnavailable:
    """The proxy refused to pass the request on (407: it wants other credentials, which another
    attempt will not have): one line naming the proxy and its variable."""
    hint = f"; check the user and password in {proxy.variable}" if status == 407 else ""
    message = f"the proxy {proxy.shown} refused {method} {path}: {status} {reason_phrase(status)}{hint}"
    return BackendUnavailable(proxy.hide(redact(message)), status=None, method=method, path=path)
