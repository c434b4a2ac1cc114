"""Where the Synapse backend is and who we are to it, read from the SDK's environment variables,
or, for what they leave out, from ``~/.synapse/config.json`` (``synapse login``), as the SDK reads them.

Tokens live only here. They are turned into headers per request, and only for a request whose
origin (scheme, host, port) is the configured host's, so a ``next`` page URL or a file URL that
points anywhere else never carries them. ``redact`` scrubs them from any text we show or log.

The SDK's wire details that come from the environment live here too: ``Synapse-Tenant`` with
either token kind, ``SYNAPSE_PLUGIN_RUN_URL_HOST`` (the ``url_host`` query parameter of every
request, so the backend signs file URLs for the worker's network) and ``SYNAPSE_LANGUAGE`` (the
``language`` of plugin runs, ``ko`` unless set, as the SDK's ``PluginRunRequest``).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

from .._credentials import env_token, sdk_config, sdk_config_path
from .._errors import UsageError
from .._redaction import hide_secrets, redact_url

DEFAULT_HOST = "https://api.synapse.sh"
DEFAULT_LANGUAGE = "ko"
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
    #: ``Synapse-Tenant: Token <tenant>``, sent with either token (as the SDK does)
    tenant: str | None = field(default=None, repr=False)
    #: ``url_host=<value>`` on every request (``SYNAPSE_PLUGIN_RUN_URL_HOST``); None: not sent
    url_host: str | None = None
    #: ``language`` of ``plugins/{code}/run/`` bodies (``SYNAPSE_LANGUAGE``; the SDK's default ``ko``)
    language: str = DEFAULT_LANGUAGE
    #: where ``host`` came from, as a message names it to the user who would change it: the variable
    #: (``SYNAPSE_HOST``, v1's ``SYNAPSE_PLUGIN_RUN_HOST``; also for the default host, where setting
    #: it is the fix) or the login file's key (``'host' in ~/.synapse/config.json``)
    host_from: str = "SYNAPSE_HOST"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> SynapseSettings:
        """``SYNAPSE_HOST`` (or v1's ``SYNAPSE_PLUGIN_RUN_HOST``), ``SYNAPSE_ACCESS_TOKEN``,
        ``SYNAPSE_PLUGIN_RUN_USER_TOKEN`` + ``SYNAPSE_PLUGIN_RUN_TENANT``, ``SYNAPSE_PLUGIN_RUN_URL_HOST``,
        ``SYNAPSE_LANGUAGE``; where the environment names no host or no token, ``host`` and
        ``access_token`` of ``~/.synapse/config.json`` (what ``synapse login`` saves), key by key
        as the SDK's ``load_credentials`` takes them: a variable set wins over the file's key.

        The file's token is sent only to the file's host: with a host variable naming another
        origin, the SDK would send it there; here that is refused (exit 2)."""
        env = os.environ if env is None else env
        name = next((n for n in ("SYNAPSE_HOST", "SYNAPSE_PLUGIN_RUN_HOST") if (env.get(n) or "").strip()), None)
        access_token = env_token(env, "SYNAPSE_ACCESS_TOKEN")
        user_token = env_token(env, "SYNAPSE_PLUGIN_RUN_USER_TOKEN")
        # read only for what the environment lacks: a file the run would not use cannot stop it
        config = (sdk_config(env, token=not (access_token or user_token))
                  if name is None or not (access_token or user_token) else None)
        saved_host = _checked_host(config.host, config.key("host")) if config is not None and config.host else None
        host = _checked_host(env[name].strip(), name) if name is not None else saved_host or DEFAULT_HOST
        if config is not None and config.access_token and not (access_token or user_token):
            if saved_host and origin(host) != origin(saved_host):
                raise UsageError(f"{name} ({redact_url(host)}) is not the host {config.path} keeps its access_token "
                                 f"for ({redact_url(config.host)}), and that token goes to no other host: set "
                                 f"SYNAPSE_ACCESS_TOKEN for {name}'s host, or unset {name}")
            access_token = config.access_token
        return cls(
            host=host,
            access_token=access_token,
            user_token=user_token,
            tenant=env_token(env, "SYNAPSE_PLUGIN_RUN_TENANT", secret=False),
            url_host=(env.get("SYNAPSE_PLUGIN_RUN_URL_HOST") or "").strip() or None,
            language=(env.get("SYNAPSE_LANGUAGE") or "").strip() or DEFAULT_LANGUAGE,
            host_from=name or (config.key("host") if saved_host else "SYNAPSE_HOST"),
        )

    def require_credentials(self) -> SynapseSettings:
        """Fail before any request when no token is configured (every request would get a 401)."""
        if not self.has_credentials:
            raise UsageError("no Synapse credentials: set SYNAPSE_ACCESS_TOKEN (a personal access token), or "
                             "SYNAPSE_PLUGIN_RUN_USER_TOKEN with SYNAPSE_PLUGIN_RUN_TENANT, or run `synapse login` "
                             f"(it saves the token in {sdk_config_path()})")
        return self

    def check_host(self, shown: str | None = None) -> str:
        """``check SYNAPSE_HOST (now https://...)``, naming where the host came from (a user who
        never set the variable would look for it in vain); ``shown``: the host as the message
        shows it (its origin alone), by default whole."""
        return f"check {self.host_from} (now {self.host if shown is None else shown})"

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

    def on_host(self, url: str) -> str:
        """``url`` moved onto the configured host: a link of another origin (a DRF backend behind
        a TLS proxy often writes ``http://`` or its internal name into ``next``) keeps its path
        and query and gets the configured scheme, host and port. Nothing is ever sent elsewhere."""
        if "://" not in url or self.is_own(url):
            return self.url(url)
        parts = urlsplit(url)
        own = urlsplit(self.host)
        return urlunsplit((own.scheme, own.netloc, parts.path or "/", parts.query, ""))

    def auth_headers(self, url: str) -> dict[str, str]:
        """The credentials for ``url``: none at all unless it is on the configured host.

        As the SDK's ``BackendClient._get_headers``: the plugin-run token (preferred) or the access
        token, and ``Synapse-Tenant`` whenever a tenant is configured, with either token."""
        if not self.is_own(url):
            return {}
        headers: dict[str, str] = {}
        if self.user_token:
            headers["Authorization"] = f"Token {self.user_token}"
        elif self.access_token:
            headers["Synapse-Access-Token"] = f"Token {self.access_token}"
        if headers and self.tenant:
            headers["Synapse-Tenant"] = f"Token {self.tenant}"
        return headers

    def secrets(self) -> list[str]:
        return [s for s in (self.access_token, self.user_token, self.tenant) if s]

    def redact(self, text: str) -> str:
        """``text`` with every token masked (``hide_secrets``: a tenant of a few letters only as a
        word of its own, one of one to three only as a credential, so none garbles the words around it)."""
        return hide_secrets(text, self.secrets())

    def redact_tokens(self, text: str) -> str:
        """``text`` with the tokens masked, but not the tenant: for text that is not an error of the
        client (a result, a plugin's message), where a tenant code is no secret to hide."""
        return hide_secrets(text, [s for s in (self.access_token, self.user_token) if s])


def _checked_host(host: str, name: str) -> str:
    """``host`` (from ``name``: a variable, or a key of the SDK's file) as the base URL of every
    request, or a usage error naming ``name``; without a trailing ``/``."""
    try:
        parts = urlsplit(host)
    except ValueError:  # an unbalanced '[' (a half-typed IPv6 host); the value may hold a secret: not echoed
        raise UsageError(f"{name} must be an http:// or https:// URL (e.g. {DEFAULT_HOST})") from None
    if "@" in parts.netloc or "@" in host.split("/")[0]:
        # ``user:password@`` would be persisted with the host (``totask-run.json``) and turned
        # by aiohttp into a Basic ``Authorization`` header that clashes with the plugin-run
        # token's (a ValueError on the first request); the value is a secret: never echoed
        raise UsageError(f"{name} must not carry a user name or password ('user:password@'): "
                         "Synapse takes its token from SYNAPSE_ACCESS_TOKEN or SYNAPSE_PLUGIN_RUN_USER_TOKEN")
    if parts.query or parts.fragment or host.endswith(("?", "#")):
        # every request's path is joined after the host, so it would land inside the query
        # (the backend asked for '/': 'Project not found'); the value may hold a secret: not echoed
        raise UsageError(f"{name} must not carry a query or fragment ('?...', '#...'): "
                         f"give the backend's base URL, e.g. {DEFAULT_HOST}")
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise UsageError(f"{name} must be an http:// or https:// URL (e.g. {DEFAULT_HOST}), got {host!r}")
    return host.rstrip("/")
