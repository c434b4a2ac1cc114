"""What of a URL is safe to show, and whether a URL carries a secret: the one rule every output
(logs, errors, reports, failures, status) and every stored value (a model endpoint in job.json)
follows. Kept apart from ``_storage``, which re-exports it, because it needs no file system.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

#: where a chained fsspec URL (``simplecache::https://...``, ``zip://a::s3://...``) joins its links:
#: a ``::`` before a scheme (an IPv6 literal's ``[::1]`` is none)
_CHAIN_LINK = re.compile(r"::(?=[A-Za-z][A-Za-z0-9+.-]*(?:://|::))")
#: a URL's query, and its user info, inside free text (a library's error message)
_QUERY_IN_TEXT = re.compile(r"([a-zA-Z][a-zA-Z0-9+.-]*://[^\s?#'\"<>]*)\?[^\s'\"<>]*")
_USERINFO_IN_TEXT = re.compile(r"([a-zA-Z][a-zA-Z0-9+.-]*://)[^\s/@'\"<>]*@")


def redact_url(url: str) -> str:
    """The URL without user info, query or fragment: what is safe to print. Each link of a
    chained URL is redacted (the whole parses as a scheme without a host: it was printed as it was)."""
    links = _CHAIN_LINK.split(url)
    if len(links) > 1:
        return "::".join(map(redact_url, links))
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    if not parts.scheme or len(parts.scheme) == 1:  # a local path (or a Windows drive letter)
        return url.split("?", 1)[0]
    netloc = parts.hostname or ""
    if ":" in netloc:  # an IPv6 literal keeps its brackets
        netloc = f"[{netloc}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    if port:
        netloc += f":{port}"
    suffix = "?…" if parts.query else ""
    return urlunsplit((parts.scheme, netloc, parts.path, "", "")) + suffix


def scrub_urls(text: str) -> str:
    """``text`` with the query and user info of every URL in it cut out (``?…`` marks a query):
    for messages written by libraries, which quote the URL they were given whole."""
    return _USERINFO_IN_TEXT.sub(r"\1", _QUERY_IN_TEXT.sub(r"\1?…", text))


#: loggers whose debug lines print signing material: botocore's canonical request and request
#: repr hold the session token (``x-amz-security-token:...``), the ``Authorization`` header and
#: signatures; ``-v`` leaves them at INFO (``quiet_credential_loggers``)
CREDENTIAL_LOGGERS = ("botocore", "aiobotocore", "boto3", "s3transfer")

#: a credential header as a library prints it: ``'Authorization': b'...'`` in a dict repr, or
#: ``x-amz-security-token:...`` on a canonical request's line
_CREDENTIAL_HEADER = re.compile(
    r"""(?i)(['"]?(?:authorization|proxy-authorization|x-amz-security-token|cookie|set-cookie|x-api-key)['"]?"""
    r"""\s*[:=]\s*)(?:b?(['"]).*?\2|(?:(?:bearer|token|basic|digest|aws4-hmac-sha256)\s+)?[^\s,;}]+)""")


#: request headers whose values are credentials: what an error answer that echoes one must not keep
CREDENTIAL_HEADERS = frozenset({"authorization", "proxy-authorization", "x-amz-security-token", "cookie", "x-api-key"})


def sent_secrets(headers: Mapping[str, str] | None) -> list[str]:
    """The credential values among a request's ``headers``: each whole and, for ``Scheme value``
    (``Bearer <token>``), the value alone too, since a page may echo either (longest first)."""
    found: set[str] = set()
    for name, value in (headers or {}).items():
        if name.lower() in CREDENTIAL_HEADERS and value.strip():
            found.add(value.strip())
            _scheme, _, credential = value.strip().partition(" ")
            if credential.strip():
                found.add(credential.strip())
    return sorted(found, key=len, reverse=True)


#: a secret this long is masked wherever it stands, inside a word too: ordinary text holds such a
#: run of characters by chance almost never, and a page may glue it to anything
WHOLE_SECRET_CHARS = 8
#: a secret shorter than this is masked only where text gives it as a credential (after ``Token``,
#: ``Bearer``, ``Authorization:``, ``token=``, ``"tenant": "``, a URL's ``user:``): a letter or a
#: word of two or three (a tenant ``a``, a proxy password ``to``) masked everywhere garbled every
#: message (``Synaps*** answ***r***d 401``), and so short a value keeps nothing secret anyway
#: (Synapse's tokens and the model's credential are refused below it: ``_credentials``)
MIN_SECRET_CHARS = 4
#: what a secret of ``MIN_SECRET_CHARS`` to ``WHOLE_SECRET_CHARS`` characters must not touch to be
#: masked: a letter, digit or ``_`` beside it makes it part of another word (``hunter`` in ``hunters``)
_WORD_EDGE = "A-Za-z0-9_"
#: where a short secret stands as a credential: a scheme word, a credential header or parameter
#: (``Authorization: Token``, ``token=``, ``"tenant": "``), or a URL's user info (``://user:``)
_CREDENTIAL_CONTEXT = (
    r"""(?:(?i:\b(?:token|bearer|basic|digest)\s+)"""
    r"""|(?i:(?:authorization|access[-_]token|user[-_]token|x-amz-security-token|x-api-key|api[-_]?key|"""
    r"""token|tenant|password|passwd|pwd|secret|signature|credential)s?)['"]?\s*[:=]\s*['"]?"""
    r"""|://[^\s/@:'"<>]*:)""")


def _where(secret: str, shown: str, *, at_end: bool = False) -> re.Pattern[str] | None:
    """Where ``shown`` (``secret`` or, ``at_end``, a head of it that ends a cut text) is masked:
    None for anywhere (a secret of ``WHOLE_SECRET_CHARS`` or more), else a pattern whose group 1
    (the credential context a short secret needs) is kept."""
    if len(secret) >= WHOLE_SECRET_CHARS:
        return None
    context = f"({_CREDENTIAL_CONTEXT})" if len(secret) < MIN_SECRET_CHARS else "()"
    after = r"\Z" if at_end else f"(?![{_WORD_EDGE}])"
    return re.compile(f"{context}(?<![{_WORD_EDGE}]){re.escape(shown)}{after}")


def replace_secret(text: str, secret: str, mask: str = "***") -> str:
    """``text`` with ``secret`` replaced by ``mask`` where ``hide_secrets`` would mask it (the same
    rules for a short secret): also how a stored parameter names the variable holding one."""
    pattern = _where(secret, secret)
    return text.replace(secret, mask) if pattern is None else pattern.sub(lambda m: m.group(1) + mask, text)


def _cut_tail(text: str, secret: str) -> int:
    """How many characters at the end of a cut ``text`` begin ``secret`` where it would be masked."""
    for n in range(len(secret) - 1, 0, -1):
        if text.endswith(secret[:n]):
            pattern = _where(secret, secret[:n], at_end=True)
            if pattern is None or pattern.search(text):
                return n
    return 0


def hide_secrets(text: str, secrets: Sequence[str], *, cut: bool = False, mask: str = "***") -> str:
    """``text`` with each of ``secrets`` replaced by ``***``: anywhere for one of
    ``WHOLE_SECRET_CHARS`` or more, as a whole word for a shorter one, only as a credential (after
    ``Token``, ``token=``, ...) for one under ``MIN_SECRET_CHARS``. ``cut``: ``text`` is the head of
    a longer answer, so a secret may be split at its end: a tail that begins one of them (where it
    would be masked) becomes ``***`` too (a few characters of ordinary text lost at most, at a cut
    anyway). ``mask``: what stands for each (a stored parameter's ``${***}``).

    Done before any cut to a length: a secret split by a cut no longer matches whole, and the
    first characters of a token echoed near a reason's 160th character stayed in it."""
    if not secrets:
        return text
    secrets = sorted(secrets, key=len, reverse=True)  # a token holding another is hidden whole
    for secret in secrets:
        text = replace_secret(text, secret, mask)
    if cut:
        tail = max((_cut_tail(text, secret) for secret in secrets), default=0)
        if tail:
            text = text[:-tail] + "***"
    return text


def quiet_credential_loggers() -> None:
    """``-v`` asks for every library's debug lines; those of ``CREDENTIAL_LOGGERS`` print the
    session token and signatures of each S3 request (seen: ``x-amz-security-token:<token>`` three
    times per request), so they stay at INFO."""
    for name in CREDENTIAL_LOGGERS:
        logging.getLogger(name).setLevel(logging.INFO)


def scrub_log_text(text: str) -> str:
    """``text`` with the URLs' queries and user info cut and credential headers' values replaced."""
    if "://" in text:
        text = scrub_urls(text)
    return _CREDENTIAL_HEADER.sub(r"\1…", text)


class ScrubSecrets(logging.Filter):
    """A log handler's filter: each record goes out with the query and user info of the URLs in it
    cut (``scrub_urls``) and credential headers' values replaced, its traceback too. Our own lines
    redact what they name; a library's debug lines (``-v``) do not: fsspec's HTTP file system
    logged an input URL whole on each read (``Retrieve file size for
    https://host/in.manifest?X-Amz-Signature=...``). ``secrets`` (the environment's credentials,
    given by the CLI) are masked as well (``hide_secrets``): a job whose own code broke logs its
    traceback, and the exception's text quoted the token a plugin had read."""

    def __init__(self, secrets: Sequence[str] = ()) -> None:
        super().__init__()
        self.secrets = sorted(secrets, key=len, reverse=True)

    def scrub(self, text: str) -> str:
        """``text`` as a record may show it: ``secrets`` masked, then ``scrub_log_text``."""
        return scrub_log_text(hide_secrets(text, self.secrets))

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a library's malformed call: left to the handler, which reports it
            return True
        scrubbed = self.scrub(message)
        if scrubbed != message:
            record.msg, record.args = scrubbed, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:  # formatted here or before (a record given to another handler first)
            record.exc_text = self.scrub(record.exc_text)
        if record.stack_info:
            record.stack_info = self.scrub(record.stack_info)
        return True


def map_strings(value: Any, fn: Callable[[str], str]) -> Any:
    """``value`` (JSON-like: dicts, lists, scalars) with ``fn`` applied to every string value in it."""
    if isinstance(value, str):
        return fn(value)
    if isinstance(value, dict):
        return {k: map_strings(v, fn) for k, v in value.items()}
    if isinstance(value, list):
        return [map_strings(v, fn) for v in value]
    return value


def redact_secret_url(text: str) -> str:
    """``text`` through ``redact_url`` when it is a URL carrying user info or a query (a password, a
    signature, an API key); any other string as it is."""
    if "://" not in text or ("@" not in text and "?" not in text):
        return text
    links = _CHAIN_LINK.split(text)
    if len(links) > 1:  # a chained URL: its links are the URLs
        return "::".join(map(redact_secret_url, links))
    return redact_url(text) if carries_secret(text) else text


def escape_undecodable(text: str) -> str:
    """``text`` as it is shown: a byte that is not valid UTF-8 in a path (a folder named ``caf\\xe9``
    on a Latin-1 system, which Python keeps as the surrogate ``\\udce9``) written as its escape,
    ``\\xe9``. A JSON document cannot hold the surrogate (orjson: "str is not valid UTF-8"), and a
    terminal given the raw byte shows no character; the escape names the byte to look for. Any
    other lone surrogate is written as ``\\udXXX``, as Python's ``backslashreplace`` does."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        try:
            raw = text.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:  # a lone surrogate no byte stands for
            return text.encode("utf-8", "backslashreplace").decode("utf-8")
        return raw.decode("utf-8", "backslashreplace")
    return text


def carries_secret(url: str) -> bool:
    """Whether ``url`` carries user info or a query: any query, since which parameter is a password,
    a signature or an API key cannot be known. The one rule for what is redacted when shown and
    what a value the tool would store (a model endpoint in job.json) must not hold; an unparseable
    URL counts as carrying one (nothing of it is shown). Each link of a chained URL is looked at:
    ``simplecache::https://user:pw@host/x`` parses whole as a scheme without a host, its password
    in the path, so it counted as carrying none (and job.json kept it)."""
    links = _CHAIN_LINK.split(url)
    if len(links) > 1:
        return any(map(carries_secret, links))
    try:
        parts = urlsplit(url)
    except ValueError:
        return True
    return len(parts.scheme) > 1 and ("@" in parts.netloc or bool(parts.query))
