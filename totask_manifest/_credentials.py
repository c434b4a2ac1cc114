"""Credentials the tool sends, read from the environment, or from what ``synapse login`` saved.

Every secret the tool sends (Synapse's tokens, a model endpoint's ``Authorization``) comes from an
environment variable read by each run, never from a flag, because flags and options are written
to job.json and a resumed, chained or cloned job would carry them. The one file read is the
SDK's own ``~/.synapse/config.json`` (``sdk_config``), for the Synapse host and access token the
environment does not name, as the SDK falls back to it. Each is checked here alike, and no
message ever shows the value.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._errors import UsageError
from ._redaction import MIN_SECRET_CHARS, hide_secrets, map_strings, replace_secret

log = logging.getLogger(__name__)


def env_token(env: Mapping[str, str], name: str, *, secret: bool = True) -> str | None:
    """A token from the environment, stripped (a pasted newline is common); it goes into a header,
    so anything but printable ASCII is refused, without ever showing the value. None when unset.

    ``secret``: the value is a credential, so one under ``MIN_SECRET_CHARS`` characters (its last
    word: ``Bearer x`` counts ``x``) is refused: no real token is that short (a placeholder such as
    ``x`` was set), and every message would have had that letter masked wherever it stood. A tenant
    code (``secret=False``) may be short: it names, it does not authorize."""
    return checked_token(env.get(name), name, secret=secret)


def checked_token(value: str | None, name: str, *, secret: bool = True) -> str | None:
    """``value`` stripped and checked as ``env_token`` checks a variable's; ``name`` says where it
    came from in the message (a variable, or a key of a file)."""
    value = (value or "").strip()
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


def sdk_config_path(env: Mapping[str, str] | None = None) -> Path:
    """``~/.synapse/config.json``, where ``synapse login`` saves the host and access token: the
    SDK's ``CONFIG_FILE`` (``Path.home()``, i.e. ``$HOME``; no variable moves it)."""
    env = os.environ if env is None else env
    home = env.get("HOME") or os.path.expanduser("~")
    return Path(home) / ".synapse" / "config.json"


@dataclass(frozen=True)
class SdkConfig:
    """What of ``~/.synapse/config.json`` the tool uses: the keys ``synapse login`` writes. Its
    ``user_token`` and ``tenant`` are not read, as the SDK's v1 client (the one its ToTask uses)
    takes those from the environment only."""

    path: Path
    host: str | None = None
    access_token: str | None = field(default=None, repr=False)

    def key(self, name: str) -> str:
        """How a message names one of the file's keys."""
        return f"'{name}' in {self.path}"


def _read_config(path: Path) -> tuple[dict | None, str | None]:
    """The file's JSON object (None: no file), or the reason it cannot be used (never its text:
    it holds a token)."""
    try:
        st = path.stat()
    except (FileNotFoundError, NotADirectoryError):  # as the SDK's ``CONFIG_FILE.exists()``: none
        return None, None
    except OSError as exc:
        return None, f"cannot be read ({exc.strerror or exc})"
    if not stat.S_ISREG(st.st_mode):  # a folder; a FIFO would block the read
        return None, "is not a file (a folder?)"
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        return None, f"cannot be read ({exc.strerror or exc})"
    except UnicodeDecodeError:
        return None, "is not UTF-8 text"
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:  # ``msg`` and the place only: the text holds the token
        return None, f"is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
    if not isinstance(data, dict):
        return None, f"must hold a JSON object, not a {type(data).__name__}"
    return data, None


def sdk_config(env: Mapping[str, str] | None = None, *, token: bool = True) -> SdkConfig | None:
    """``~/.synapse/config.json``'s host and access token, checked; None when there is no such file.

    The SDK ignores a file it cannot read or parse and goes on without it (a request then fails
    with 401, or goes to the default host); here it is a usage error naming the file (exit 2), as
    any other setting that cannot be used. A file others may read is used, with a warning (the
    SDK's ``synapse doctor`` warns of it; its runs say nothing). ``token`` False: only its host is
    wanted (the environment holds a token), so its token is neither checked nor warned of."""
    path = sdk_config_path(env)
    data, problem = _read_config(path)
    if problem:
        raise UsageError(f"{path} {problem}: it must be the JSON object `synapse login` writes "
                         "(fix it or run `synapse login` again), or set SYNAPSE_HOST and SYNAPSE_ACCESS_TOKEN")
    if data is None:
        return None
    config = SdkConfig(path)
    values = {}
    for key in ("host", "access_token") if token else ("host",):
        value = data.get(key)
        if value is not None and not isinstance(value, str):
            raise UsageError(f"{config.key(key)} must be a string, not {type(value).__name__}")
        values[key] = value
    saved = checked_token(values["access_token"], config.key("access_token")) if token else None
    if saved:
        _warn_if_others_read(path)
    return SdkConfig(path, (values["host"] or "").strip() or None, saved)


@functools.lru_cache(maxsize=4)
def _warn_if_others_read(path: Path) -> None:
    """One warning a process: a token in a file the group or others can read is not secret."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return
    if mode & 0o077:
        log.warning("warning: %s holds a Synapse token and others may read it (mode %s): run `chmod 600 %s`",
                    path, oct(mode & 0o777)[2:], path)


def _config_token(env: Mapping[str, str]) -> str | None:
    """The file's access token for masking: never an error (a file that cannot be used has none)."""
    path = sdk_config_path(env)
    try:
        st = path.stat()
    except OSError:
        return None
    return _cached_config_token(path, st.st_mtime_ns, st.st_size, st.st_ino)


@functools.lru_cache(maxsize=4)
def _cached_config_token(path: Path, _mtime: int, _size: int, _ino: int) -> str | None:
    data, _problem = _read_config(path)
    value = (data or {}).get("access_token")
    return value.strip() or None if isinstance(value, str) else None


def env_credentials(env: Mapping[str, str] | None = None) -> list[str]:
    """The credentials set in ``env`` (default ``os.environ``), longest first: each value of
    ``CREDENTIAL_VARIABLES`` and the access token of ``~/.synapse/config.json``, with its last word
    alone (``Bearer abc``: ``abc``), of ``STORAGE_VARIABLES``, and a proxy's password
    (``HTTPS_PROXY=http://user:pw@proxy``: as written, unquoted, and the Basic credential it is sent
    in). Never refused here (``env_token`` does)."""
    env = os.environ if env is None else env
    values = [(env.get(name) or "").strip() for name in CREDENTIAL_VARIABLES]
    values.append(_config_token(env) or "")
    found: set[str] = set()
    for value in values:
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
    """``text`` with the environment's credentials (and the saved login's token) masked: for what a
    method plugin wrote (a ``Failed`` reason, its exception's message), since a plugin is arbitrary
    code that can read them, and its words go to failures.jsonl, the output manifest, job.json and
    the log; and for whatever the CLI prints (its tracebacks included: ``_cli``)."""
    secrets = env_credentials()
    return hide_secrets(text, secrets) if secrets else text


#: the variables whose values a stored parameter may hold (a pre-processor's ``api_key`` given the
#: Synapse token, an ``auth_header: Bearer <token>``): stored as ``${NAME}``, alone or inside the
#: string (``stored_params``), and read again by each run (``run_params``)
REFERABLE_VARIABLES = CREDENTIAL_VARIABLES + STORAGE_VARIABLES
#: what a stored parameter keeps of a credential no variable holds whole (a proxy's password,
#: ``TOTASK_MODEL_AUTHORIZATION``'s key without its ``Bearer``): not ``***``, which a user's own
#: value may hold, so that ``run_params`` can tell the one it must refuse
MASKED = "${***}"
#: stored string -> the value it was stored from, for the strings holding ``MASKED``: the run of
#: this process, which was given the value, sends it; a job read from its files alone cannot
_GIVEN: dict[str, str | None] = {}
_REFERENCE = re.compile(r"\$\{(" + "|".join(map(re.escape, REFERABLE_VARIABLES)) + r")\}")


def _reference(name: str) -> str:
    return "${" + name + "}"


def _variable_value(name: str, env: Mapping[str, str]) -> str | None:
    """A variable's value as the tool reads it; ``SYNAPSE_ACCESS_TOKEN`` falls back to the saved
    login's token, as the Synapse client does."""
    value = (env.get(name) or "").strip() or None
    if value is None and name == "SYNAPSE_ACCESS_TOKEN":
        value = _config_token(env)
    return value


def stored_params(value: Any, env: Mapping[str, str] | None = None) -> Any:
    """``value`` (JSON-like parameters) as a file may keep it: each credential of the environment
    in a string, whole or inside it (``Bearer <token>``), becomes ``${VARIABLE}`` (``run_params``
    reads the value again there), and one no variable holds whole ``${***}`` (``MASKED``). The
    ToTask action's parameters went to totask-run.json and job.json whole: a pre-processor's
    ``api_key: <the Synapse token>`` was saved in plain text, three times; then one inside a
    longer string was kept as ``***`` and the job, which runs with what is stored, sent ``Bearer ***``."""
    env = os.environ if env is None else env
    secrets = env_credentials(env)
    if not secrets:
        return value
    held = sorted(((v, name) for name in REFERABLE_VARIABLES if (v := _variable_value(name, env))),
                  key=lambda pair: len(pair[0]), reverse=True)  # a token holding another is named whole

    def store(text: str) -> str:
        kept = text
        for secret, name in held:
            kept = replace_secret(kept, secret, _reference(name))
        kept = hide_secrets(kept, secrets, mask=MASKED)
        if MASKED in kept and kept != text:
            _GIVEN[kept] = None if _GIVEN.get(kept, text) != text else text  # two values stored alike: neither
        return kept

    return map_strings(value, store)


def run_params(value: Any, where: str, env: Mapping[str, str] | None = None) -> Any:
    """``value`` with each ``${VARIABLE}`` that ``stored_params`` wrote (or the user: the names of
    ``REFERABLE_VARIABLES`` are references wherever they stand) replaced by the variable's value now:
    a resumed job sends the credential it is given again, never one read from a file. Any other
    ``${...}`` is the user's own text, sent as written. A string holding ``${***}`` is sent as the
    value this process stored it from, else refused: never sent masked. ``where`` names the
    parameters in the one-line errors (exit 2)."""
    env = os.environ if env is None else env

    def reveal(text: str, path: str) -> str:
        if MASKED in text:
            if (given := _GIVEN.get(text)) is not None:
                return given
            raise UsageError(f"{path} held a credential no variable holds whole (job.json keeps it masked, "
                             f"{MASKED}): the job cannot send it again; set it in a variable the tool reads "
                             "(SYNAPSE_ACCESS_TOKEN, TOTASK_MODEL_AUTHORIZATION, ...) or run the action again with it")
        if "${" not in text:
            return text

        def value_of(match: re.Match[str]) -> str:
            name = match.group(1)
            found = _variable_value(name, env)
            if found is None:
                raise UsageError(f"{where} held {name}'s value when the job started, and the job keeps only its "
                                 f"name: set {name} again to resume it")
            return found

        return _REFERENCE.sub(value_of, text)

    return _walk(value, where, reveal)


def refuse_unsendable_params(options: Mapping[str, Any]) -> None:
    """Refuse (``UsageError``, exit 2) a job whose parameters (job.json's ``pre_processor_params``,
    ``converter_params``) name a credential this process cannot send: one kept masked, or a
    variable unset now. Called (``refuse_changed_files``) before a job's lines are labeled again: the annotator's own refusal came
    once the job had started, so the job was marked FAILED and the command ended in exit 1."""
    for key in ("pre_processor_params", "converter_params"):
        if isinstance(options.get(key), dict | list):
            run_params(options[key], key)


def _walk(value: Any, path: str, fn: Callable[[str, str], str]) -> Any:
    """``map_strings`` that also tells ``fn`` where each string stands (``params.key[0].key``)."""
    if isinstance(value, str):
        return fn(value, path)
    if isinstance(value, dict):
        return {k: _walk(v, f"{path}.{k}", fn) for k, v in value.items()}
    if isinstance(value, list):
        return [_walk(v, f"{path}[{i}]", fn) for i, v in enumerate(value)]
    return value
