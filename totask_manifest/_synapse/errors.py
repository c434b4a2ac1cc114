"""The Synapse client's errors: one class per answer a caller treats differently.

Messages name the method, the path and the status, never a token (the client redacts them with
``SynapseSettings.redact`` before raising).
"""

from __future__ import annotations

from typing import Any

from .._errors import FatalSynapseError, SynapseError


class SynapseHTTPError(SynapseError):
    """The backend answered with an error status."""

    def __init__(self, message: str, *, status: int | None, method: str, path: str, detail: Any = None,
                 retried: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.method = method
        self.path = path
        self.detail = detail
        #: an earlier attempt of the request went unanswered or failed with a status that is retried
        #: (a 502 from a gateway, a dropped connection): it may have done the work this answer refuses
        self.retried = retried


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
    """5xx after every retry, too many 429s, or no connection at all (``status`` is None)."""

    def __init__(self, message: str, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        if self.status is None:  # nothing answered (refused, no such host): an I/O error, as the README's exit 2
            self.exit_code = 2


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
