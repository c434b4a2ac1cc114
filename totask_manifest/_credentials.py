"""Credentials read from the environment, the one place the tool takes secrets from.

Every secret the tool sends (Synapse's tokens, a model endpoint's ``Authorization``) comes from an
environment variable read by each run, never from a flag or a file, because flags and options
are written to job.json and a resumed, chained or cloned job would carry them. Each is checked
here alike, and no message ever shows the value.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from ._errors import UsageError
from ._redaction import MIN_SECRET_CHARS, hide_secrets


def env_token(env: Mapping[str, str], name: str, *, secret: bool = True) -> str | None:
    """A token from the environment, stripped (a pasted newline is common); it goes into a header,
    so anything but printable ASCII is refused, without ever showing the value. None when unset.

    ``secret``: the value is a credential, so one under ``MIN_SECRET_CHARS`` characters (its last
    word: ``Bearer x`` counts ``x``) is refused: no real token is that short (a placeholder such as
    ``x`` was set), and every message would have had that letter masked wherever it stood. A tenant
    code (``secret=False``) may be short: it names, it does not authorize."""
    value = (env.get(name) or "").strip()
    if not value:
        return None
    if not (value.isascii() and value.isprintable()):
        raise UsageError(f"{name} holds characters a token cannot have (control or non-ASCII "
                         "characters); set it to the token alone")
    if secret and len(value.split()[-1]) < MIN_SECRET_CHARS:
        raise UsageError(f"{name} is too short to be a token (under {MIN_SECRET_CHARS} characters); "
                         "set it to the whole token")
    return value


#: the whole ``Authorization`` value for a --model endpoint (``Bearer abc``)
MODEL_AUTHORIZATION = "TOTASK_MODEL_AUTHORIZATION"
#: the variables holding credentials the tool sends (a tenant names, it does not authorize)
CREDENTIAL_VARIABLES = ("SYNAPSE_ACCESS_TOKEN", "SYNAPSE_PLUGIN_RUN_USER_TOKEN", MODEL_AUTHORIZATION)
#: the storage back ends' credentials botocore reads from the environment: not the tool's to send,
#: but a plugin, or a library's exception, can quote them as well (the key id only names a key, yet
#: it is half of the pair: nothing the tool says needs it)
STORAGE_VARIABLES = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ACCESS_KEY_ID")


def env_credentials(env: Mapping[str, str] | None = None) -> list[str]:
    """The credentials set in ``env`` (default ``os.environ``), longest first: each value of
    ``CREDENTIAL_VARIABLES`` and its last word alone (``Bearer abc``: ``abc``), of
    ``STORAGE_VARIABLES``, and a proxy's password (``HTTPS_PROXY=http://user:pw@proxy``: as written,
    unquoted, and the Basic credential it is sent in). Never refused here (``env_token`` does)."""
    env = os.environ if env is None else env
    found: set[str] = set()
    for name in CREDENTIAL_VARIABLES:
        value = (env.get(name) or "").strip()
        if value:
            found.update((value, value.split()[-1]))
    found.update(value.strip() for name in STORAGE_VARIABLES if (value := env.get(name) or "").strip())
    found.update(_proxy_secrets(env))
    return sorted(found, key=len, reverse=True)


#: the variables a proxy comes from (``_proxies``: any case; the upper- and lower-case spellings)
PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")


def _proxy_secrets(env: Mapping[str, str]) -> list[str]:
    """The passwords of the proxies ``env`` names (``_proxies.proxy_secrets``, imported only where
    a proxy variable holds user info: it loads ``urllib.request``). The variables are looked up by
    name: going through the whole environment made each line's failure reason 10 times slower."""
    named = {name: value for name in PROXY_VARIABLES if "@" in (value := env.get(name) or "")}
    if not named:
        return []
    from ._proxies import proxy_secrets

    return proxy_secrets(named)


def hide_env_credentials(text: str) -> str:
    """``text`` with the environment's credentials masked: for what a method plugin wrote (a
    ``Failed`` reason, its exception's message), since a plugin is arbitrary code that can read
    them, and its words go to failures.jsonl, the output manifest, job.json and the log; and for
    whatever the CLI prints (its tracebacks included: ``_cli``)."""
    secrets = env_credentials()
    return hide_secrets(text, secrets) if secrets else text
