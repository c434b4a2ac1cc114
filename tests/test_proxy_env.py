"""Which proxy a request goes through, from the environment: the same choice as the SDK's
``requests`` makes (checked against requests itself), read once and cached per origin."""

from __future__ import annotations

import os

import pytest
import requests.utils

from totask_manifest._errors import UsageError
from totask_manifest._proxies import EnvProxies

PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY",
              "ALL_PROXY", "NO_PROXY", "REQUEST_METHOD")

ENVS = [
    {"HTTPS_PROXY": "http://proxy.corp:3128", "HTTP_PROXY": "http://plain.corp:8080"},
    {"https_proxy": "proxy.corp:3128"},  # no scheme: http://
    {"HTTPS_PROXY": "http://upper:1", "https_proxy": "http://lower:2"},  # lower case wins
    {"HTTPS_PROXY": "http://upper:1", "https_proxy": ""},  # an empty lower-case one cancels
    {"ALL_PROXY": "http://all.corp:3128"},
    {"ALL_PROXY": "http://all.corp:3128", "HTTP_PROXY": "http://plain.corp:8080"},
    {"HTTP_PROXY": "http://cgi:1", "REQUEST_METHOD": "GET"},  # CGI: HTTP_PROXY ignored
    {"HTTPS_PROXY": "http://u%40x:p%3Ass@proxy.corp:3128"},  # user info, quoted
    {"HTTPS_PROXY": "http://p:1", "HTTP_PROXY": "http://p:1",
     "NO_PROXY": "example.com, .internal,10.0.0.0/8,192.168.1.7,host.lan:8443,[::1],Upper.Case"},
    {"HTTPS_PROXY": "http://p:1", "no_proxy": "*"},
    {"HTTPS_PROXY": "http://p:1", "NO_PROXY": "*.example.com"},
    {"HTTPS_PROXY": "http://p:1", "no_proxy": "", "NO_PROXY": "example.com"},
    {"HTTPS_PROXY": "http://p:1", "no_proxy": "other.org", "NO_PROXY": "example.com"},
    {"HTTP_PROXY": "http://p:1", "NO_PROXY": "127.0.0.1"},
    {},
]
URLS = [
    "https://example.com/a", "https://api.example.com/b?x=1", "https://badexample.com/",
    "http://example.com:8080/x", "https://x.internal/", "https://internal/", "http://10.1.2.3/",
    "http://11.1.2.3/", "http://192.168.1.7:9000/f", "https://host.lan:8443/", "https://host.lan/",
    "http://[::1]:8000/", "https://UPPER.case/", "https://sub.upper.case/", "http://127.0.0.1:5000/",
    "http://localhost:5000/", "https://s3.amazonaws.com/bucket/key",
]


def _requests_choice(url: str) -> tuple[str, tuple[str, str]] | None:
    proxy = requests.utils.select_proxy(url, requests.utils.get_environ_proxies(url))
    if not proxy:
        return None
    proxy = requests.utils.prepend_scheme_if_needed(proxy, "http")
    auth = requests.utils.get_auth_from_url(proxy)
    return requests.utils.urldefragauth(proxy), auth


@pytest.mark.parametrize("env", ENVS, ids=lambda e: ",".join(f"{k}={v}" for k, v in e.items()) or "none")
def test_the_same_proxy_as_requests(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    for name in PROXY_VARS:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    chooser = EnvProxies.read()
    for url in URLS:
        expected = _requests_choice(url)
        for _ in range(2):  # the second answer comes from the cache
            chosen = chooser.for_url(url)
            got = None if chosen is None else (chosen.url, (chosen.user or "", chosen.password or ""))
            assert got == expected, url


def test_read_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The environment is read when the chooser is made: a later change is not seen (no lookup
    per request), and no proxy set costs nothing per request."""
    for name in PROXY_VARS:
        monkeypatch.delenv(name, raising=False)
    none = EnvProxies.read()
    assert not none and none.for_url("https://example.com/") is None
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.corp:3128")
    chooser = EnvProxies.read()
    monkeypatch.setenv("HTTPS_PROXY", "http://other:1")
    monkeypatch.setenv("NO_PROXY", "*")
    chosen = chooser.for_url("https://example.com/x")
    assert chosen is not None and chosen.url == "http://proxy.corp:3128"
    assert chosen.variable == "HTTPS_PROXY"
    assert none.for_url("https://example.com/") is None


def test_password_never_shown() -> None:
    chooser = EnvProxies.read({"HTTPS_PROXY": "http://me:s%40cret@proxy.corp:3128"})
    chosen = chooser.for_url("https://example.com/")
    assert chosen is not None and chosen.password == "s@cret"
    assert "cret" not in chosen.url and "cret" not in chosen.shown and "cret" not in repr(chosen)
    assert chosen.shown == "http://proxy.corp:3128 (from the environment variable HTTPS_PROXY)"
    assert chosen.hide("echo s@cret and s%40cret") == "echo *** and ***"
    assert os.environ.get("HTTPS_PROXY") != "http://me:s%40cret@proxy.corp:3128"


@pytest.mark.parametrize("value", ["socks5://u:pw-s3cret@127.0.0.1:1080", "socks5h://127.0.0.1:1080", "ftp://h:21"])
def test_a_proxy_that_speaks_no_http_is_refused_naming_its_variable(value: str) -> None:
    """aiohttp and libcurl were handed a SOCKS proxy as if it spoke HTTP: a connection error that
    said nothing of why (or, reached, an answer no request understood). Refused in one line."""
    with pytest.raises(UsageError) as caught:
        EnvProxies.read({"HTTPS_PROXY": value})
    message = str(caught.value)
    assert "HTTPS_PROXY" in message and "only http:// and https:// proxies" in message, message
    assert "pw-s3cret" not in message and "\n" not in message


@pytest.mark.parametrize("value", ["http://u:pw-s3cret@[::1", "http://[fe80::1%25eth0"])
def test_a_proxy_that_is_no_url_is_refused_naming_its_variable(value: str) -> None:
    """A proxy variable urllib cannot split (an IPv6 bracket left open) ended every command that
    read it in a ``ValueError`` traceback, exit 1. Refused in one line naming the variable, exit 2,
    without the value (it may hold a password)."""
    with pytest.raises(UsageError) as caught:
        EnvProxies.read({"HTTPS_PROXY": value})
    message = str(caught.value)
    assert "HTTPS_PROXY" in message and "not a URL" in message, message
    assert "pw-s3cret" not in message and "\n" not in message
