"""Where the Synapse backend is and who we are to it, read from the SDK's environment variables.

Tokens live only here. They are turned into headers per request, and only for a request whose
origin (scheme, host, port) is the configured host's, so a ``next`` page URL or a file URL that
points anywhere else never carries them. ``redact`` scrubs them from any text we show or log.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from ..errors import UsageError

DEFAULT_HOST = "https://api.synapse.sh"
_DEFAULT_PORTS = {"http": 80, "https": 443}


def origin(url: str) -> tuple[str, str, int]:
    """``(scheme, host, port)`` with the default port filled in, lower-cased."""
    parts = urlsplit(url)
    scheme = (parts.scheme or "").lower()
    host = (parts.hostname or "").lower()
    port = parts.port or _DEFAULT_PORTS.get(scheme, 0)
    return scheme, host, port


@functools.lru_cache(maxsize=16)
def _host_origin(host: str) -> tuple[str, str, int]:
    return origin(host)


@dataclass(frozen=True)
class SynapseSettings:
    host: str = DEFAULT_HOST
    #: ``Synapse-Access-Token: Token <access_token>`` (a user's personal access token)
    access_token: str | None = field(default=None, repr=False)
    #: ``Authorization: Token <user_token>``: the plugin-run token, preferred when set
    user_token: str | None = field(default=None, repr=False)
    #: ``Synapse-Tenant: Token <tenant>``, sent with the plugin-run token
    tenant: str | None = field(default=None, repr=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> SynapseSettings:
        """``SYNAPSE_HOST`` (or v1's ``SYNAPSE_PLUGIN_RUN_HOST``), ``SYNAPSE_ACCESS_TOKEN``,
        ``SYNAPSE_PLUGIN_RUN_USER_TOKEN`` + ``SYNAPSE_PLUGIN_RUN_TENANT``."""
        env = os.environ if env is None else env
        name = "SYNAPSE_HOST" if env.get("SYNAPSE_HOST") else "SYNAPSE_PLUGIN_RUN_HOST"
        host = (env.get(name) or DEFAULT_HOST).strip()
        parts = urlsplit(host)
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            raise UsageError(f"{name} must be an http:// or https:// URL (e.g. {DEFAULT_HOST}), got {host!r}")
        return cls(
            host=host.rstrip("/"),
            access_token=_token(env, "SYNAPSE_ACCESS_TOKEN"),
            user_token=_token(env, "SYNAPSE_PLUGIN_RUN_USER_TOKEN"),
            tenant=_token(env, "SYNAPSE_PLUGIN_RUN_TENANT"),
        )

    def require_credentials(self) -> SynapseSettings:
        """Fail before any request when no token is configured (every request would get a 401)."""
        if not self.has_credentials:
            raise UsageError("no Synapse credentials: set SYNAPSE_ACCESS_TOKEN (a personal access token), or "
                             "SYNAPSE_PLUGIN_RUN_USER_TOKEN with SYNAPSE_PLUGIN_RUN_TENANT")
        return self

    @property
    def has_credentials(self) -> bool:
        return bool(self.user_token or self.access_token)

    def url(self, path_or_url: str) -> str:
        """An absolute URL: ``path`` joined to the host, absolute URLs (``next`` links) kept."""
        if "://" in path_or_url:
            return path_or_url
        return self.host.rstrip("/") + "/" + path_or_url.lstrip("/")

    def is_own(self, url: str) -> bool:
        return origin(url) == _host_origin(self.host)

    def auth_headers(self, url: str) -> dict[str, str]:
        """The credentials for ``url``: none at all unless it is on the configured host."""
        if not self.is_own(url):
            return {}
        if self.user_token:
            headers = {"Authorization": f"Token {self.user_token}"}
            if self.tenant:
                headers["Synapse-Tenant"] = f"Token {self.tenant}"
            return headers
        if self.access_token:
            return {"Synapse-Access-Token": f"Token {self.access_token}"}
        return {}

    def secrets(self) -> list[str]:
        return [s for s in (self.access_token, self.user_token, self.tenant) if s]

    def redact(self, text: str) -> str:
        """``text`` with every token replaced by ``***`` (longest first, so none leaks in part)."""
        for secret in sorted(self.secrets(), key=len, reverse=True):
            text = text.replace(secret, "***")
        return text


def _token(env: Mapping[str, str], name: str) -> str | None:
    """A token from the environment, stripped (a pasted newline is common); it goes into a header,
    so anything but printable ASCII is refused, without ever showing the value."""
    value = (env.get(name) or "").strip()
    if not value:
        return None
    if not (value.isascii() and value.isprintable()):
        raise UsageError(f"{name} holds characters a token cannot have (control or non-ASCII "
                         "characters); set it to the token alone")
    return value
