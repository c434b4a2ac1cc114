"""Proxies from the environment, with real parts: a real HTTP proxy on 127.0.0.1
(``tests/support/proxy.py``: absolute-URI forwarding and CONNECT tunnels, optional Basic auth)
in front of the contract server, a TLS server and the file server, as the SDK's ``requests``
would use them. Every test sets the variables with monkeypatch (or for one subprocess only)."""

from __future__ import annotations

import pytest
from aiohttp import web

from tests.jobs_helpers import closed_port
from tests.support.http_server import LocalHTTPServer
from tests.support.proxy import LocalProxy
from tests.support.tls import self_signed_context
from totask_manifest._errors import FetchError
from totask_manifest._fetch import FetchPolicy
from totask_manifest._fetch.fetcher import HTTP_CLIENT_ENV, HTTP_CLIENTS
from totask_manifest._fetch.sync import SyncFetcher
from totask_manifest._manifest.validate import validate_manifest
from totask_manifest._synapse.client import BackendUnavailable
from totask_manifest._synapse.settings import SynapseSettings
from totask_manifest._synapse.sync_client import SynapseClient
from totask_manifest.testing.builders import TOKEN, fast_client

pytest_plugins = ["totask_manifest.testing.fixtures"]

PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY",
              "ALL_PROXY", "NO_PROXY")
SECRET = "pr0xy-s3cret"


@pytest.fixture(autouse=True)
def _no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in PROXY_VARS:
        monkeypatch.delenv(name, raising=False)


def test_the_synapse_client_goes_through_http_proxy(synapse, monkeypatch) -> None:
    with LocalProxy() as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        with fast_client(synapse) as client:
            client.list_agents()
        assert [(s.method, s.target.split("?")[0]) for s in proxy.seen] == [("GET", f"{synapse.url}/agents/")]
        # an http:// host: the request goes to the proxy as it is, as requests sends it
        assert proxy.seen[0].headers.get("Synapse-Access-Token") == f"Token {TOKEN}"
    assert len(synapse.requests) == 1


def test_an_https_host_is_reached_through_a_connect_tunnel_the_proxy_cannot_read(tmp_path, monkeypatch) -> None:
    async def backend(request: web.Request) -> web.Response:
        return web.json_response({"token": request.headers.get("Synapse-Access-Token")})

    with LocalHTTPServer(backend, ssl_context=self_signed_context(tmp_path)) as server, LocalProxy() as proxy:
        monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "cert.pem"))
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        with SynapseClient(SynapseSettings(host=server.url(""), access_token="tok-tunnel")) as client:
            assert client.request("GET", "projects/1/") == {"token": "Token tok-tunnel"}
        assert [(s.method, s.target) for s in proxy.seen] == [("CONNECT", f"127.0.0.1:{server.port}")]
        assert "tok-tunnel" not in repr(proxy.seen)  # the token travelled inside the tunnel only


def test_no_proxy_bypasses_the_proxy(synapse, monkeypatch) -> None:
    with LocalProxy() as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1")
        with fast_client(synapse) as client:
            client.list_agents()
        assert proxy.seen == [] and len(synapse.requests) == 1


def test_proxy_credentials_are_sent_and_never_shown(synapse, monkeypatch) -> None:
    with LocalProxy(auth=("me", SECRET)) as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url_with_auth("me", SECRET))
        with fast_client(synapse) as client:
            client.list_agents()
        assert proxy.seen[-1].headers["Proxy-Authorization"].startswith("Basic ")
        assert "Proxy-Authorization" not in synapse.requests[-1].headers
        monkeypatch.setenv("HTTP_PROXY", proxy.url_with_auth("me", "wrong-" + SECRET))
        asked = len(proxy.seen)
        with fast_client(synapse) as client, pytest.raises(BackendUnavailable) as info:
            client.list_agents()
    message = str(info.value)
    assert message == (f"the proxy {proxy.url} (from the environment variable HTTP_PROXY) refused GET "
                       "/agents/: 407 Proxy Authentication Required; check the user and password in HTTP_PROXY")
    assert len(proxy.seen) == asked + 1  # a 407 is not asked again


def test_a_407_to_connect_is_one_line_and_not_retried(tmp_path, monkeypatch) -> None:
    async def backend(request: web.Request) -> web.Response:
        return web.json_response({})

    with LocalHTTPServer(backend, ssl_context=self_signed_context(tmp_path)) as server, \
            LocalProxy(auth=("me", SECRET)) as proxy:
        monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "cert.pem"))
        monkeypatch.setenv("HTTPS_PROXY", proxy.url_with_auth("me", "wrong-" + SECRET))
        with SynapseClient(SynapseSettings(host=server.url(""), access_token=TOKEN), backoff=0.01) as client, \
                pytest.raises(BackendUnavailable) as info:
            client.request("GET", "projects/1/")
        assert len(proxy.seen) == 1
    assert str(info.value).startswith(f"the proxy {proxy.url} (from the environment variable HTTPS_PROXY) "
                                      "refused GET /projects/1/: 407")
    assert SECRET not in str(info.value) and TOKEN not in str(info.value)


def test_an_unreachable_proxy_is_one_line_naming_it(synapse, monkeypatch) -> None:
    port = closed_port()
    monkeypatch.setenv("HTTP_PROXY", f"http://me:{SECRET}@127.0.0.1:{port}")
    with fast_client(synapse) as client, pytest.raises(BackendUnavailable) as info:
        client.list_agents()
    message = str(info.value)
    assert message.startswith(f"the proxy http://127.0.0.1:{port} (from the environment variable HTTP_PROXY) "
                              "cannot be reached, so Synapse was not asked GET /agents/: ClientProxyConnectionError")
    assert "\n" not in message and SECRET not in message and "after 3 attempts" in message
    assert synapse.requests == []


def test_a_proxy_that_closes_the_connection_is_named(synapse, monkeypatch) -> None:
    with LocalProxy(close=True) as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        with fast_client(synapse) as client, pytest.raises(BackendUnavailable) as info:
            client.list_agents()
    assert f"through the proxy {proxy.url} (from the environment variable HTTP_PROXY)" in str(info.value)


@pytest.mark.parametrize("kind", HTTP_CLIENTS)
def test_a_data_file_is_fetched_through_the_proxy_and_no_proxy_bypasses_it(files, monkeypatch, kind) -> None:
    monkeypatch.setenv(HTTP_CLIENT_ENV, kind)
    url = files.add("a.json", {"x": 1})
    with LocalProxy(auth=("me", SECRET)) as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url_with_auth("me", SECRET))
        with SyncFetcher(FetchPolicy(retries=0)) as fetcher:
            assert fetcher.fetch(url) == b'{"x":1}'
        assert [(s.method, s.target) for s in proxy.seen] == [("GET", url)]
        assert proxy.seen[0].headers["Proxy-Authorization"].startswith("Basic ")
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        with SyncFetcher(FetchPolicy(retries=0)) as fetcher:
            assert fetcher.fetch(url) == b'{"x":1}'
        assert len(proxy.seen) == 1
        monkeypatch.delenv("NO_PROXY")
        monkeypatch.setenv("HTTP_PROXY", proxy.url_with_auth("me", "wrong-" + SECRET))
        with SyncFetcher(FetchPolicy(retries=2, backoff=0.01)) as fetcher, pytest.raises(FetchError) as info:
            fetcher.fetch(url)
        assert len(proxy.seen) == 2  # refused: not asked again
    assert str(info.value).startswith(f"HTTP 407: the proxy {proxy.url} (from the environment variable "
                                      "HTTP_PROXY) refused the request (Proxy Authentication Required)")
    assert SECRET not in str(info.value)


@pytest.mark.parametrize("kind", HTTP_CLIENTS)
def test_a_fetch_through_an_unreachable_or_refusing_proxy_names_it(tmp_path, files, monkeypatch, kind) -> None:
    monkeypatch.setenv(HTTP_CLIENT_ENV, kind)
    url = files.add("a.json", {"x": 1})
    port = closed_port()
    monkeypatch.setenv("HTTP_PROXY", f"http://me:{SECRET}@127.0.0.1:{port}")
    with SyncFetcher(FetchPolicy(retries=0)) as fetcher, pytest.raises(FetchError) as info:
        fetcher.fetch(url)
    assert f"connection error: the proxy http://127.0.0.1:{port} (from the environment variable HTTP_PROXY): " \
           f"ConnectionRefusedError: [Errno 111] Connect call failed ('127.0.0.1', {port})" in str(info.value)
    assert SECRET not in str(info.value)

    async def backend(request: web.Request) -> web.Response:
        return web.Response(body=b"x")

    with LocalHTTPServer(backend, ssl_context=self_signed_context(tmp_path)) as server, \
            LocalProxy(auth=("me", SECRET)) as proxy:
        monkeypatch.setenv("HTTPS_PROXY", proxy.url_with_auth("me", "wrong-" + SECRET))
        with SyncFetcher(FetchPolicy(retries=2, backoff=0.01)) as fetcher, pytest.raises(FetchError) as info:
            fetcher.fetch(server.url("f.bin"))
        assert [s.method for s in proxy.seen] == ["CONNECT"]
    assert str(info.value).startswith(f"HTTP 407: the proxy {proxy.url} (from the environment variable "
                                      "HTTPS_PROXY) refused the request (Proxy Authentication Required)")


# -- the command line, as a user behind a proxy runs it (the variables for the subprocess only) ----

def _export(tmp_path, synapse, project: int = 1, **env: str):
    from tests.jobs_helpers import run_cli

    out = tmp_path / "out" / "x.manifest"
    r = run_cli("-v", "export", "--project", str(project), "-o", str(out),
                env={"SYNAPSE_HOST": synapse.url, "SYNAPSE_ACCESS_TOKEN": TOKEN, **env})
    assert "Traceback" not in r.stderr and SECRET not in r.stdout + r.stderr, r.stderr
    return r, out


def test_export_through_a_proxy_with_a_password(tmp_path, synapse, files) -> None:
    from totask_manifest.testing.builders import seed_tasks

    project = seed_tasks(synapse, files, 3)
    with LocalProxy(auth=("me", SECRET)) as proxy:
        r, out = _export(tmp_path, synapse, project, HTTP_PROXY=proxy.url_with_auth("me", SECRET))
        assert r.returncode == 0, r.stderr
        assert out.read_bytes().count(b"\n") == 3
        assert proxy.seen and all(s.target.startswith(synapse.url) for s in proxy.seen)
        bypassed = len(proxy.seen)
        r, out = _export(tmp_path, synapse, project, HTTP_PROXY=proxy.url_with_auth("me", SECRET),
                         NO_PROXY="127.0.0.1")
        assert r.returncode == 0 and len(proxy.seen) == bypassed  # NO_PROXY: straight to the host
        r, out = _export(tmp_path / "refused", synapse, project, HTTP_PROXY=proxy.url_with_auth("me", "wrong"))
    assert r.returncode == 2 and not out.exists()
    lines = [line for line in r.stderr.splitlines() if "refused" in line]
    assert lines == [f"totask-manifest export: error: the proxy {proxy.url} (from the environment variable HTTP_PROXY) "
                     f"refused GET /projects/{project}/: 407 Proxy Authentication Required; check the user and "
                     "password in HTTP_PROXY"], r.stderr


@pytest.mark.slow
def test_export_with_an_unreachable_proxy_is_one_line_exit_2(tmp_path, synapse) -> None:
    port = closed_port()
    r, out = _export(tmp_path, synapse, HTTPS_PROXY=f"http://me:{SECRET}@127.0.0.1:{port}",
                     SYNAPSE_HOST=synapse.url.replace("http://", "https://"))
    assert r.returncode == 2 and not out.exists(), r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith("totask-manifest export:")]
    assert len(errors) == 1 and errors[0].startswith(
        f"totask-manifest export: error: the proxy http://127.0.0.1:{port} (from the environment variable HTTPS_PROXY) "
        "cannot be reached, so Synapse was not asked GET /projects/1/"), r.stderr


@pytest.mark.parametrize("auth", [None, ("u", SECRET)])
def test_an_http_input_manifest_is_read_through_the_proxy_too(files, tmp_path, monkeypatch, auth) -> None:
    """fsspec's http session is made without the environment: an input manifest at an http(s)
    URL went around the proxy (and, behind one, could not be read) while its data files went
    through it. It now takes the same proxy, with its credentials, which appear nowhere."""
    manifest = files.add("in.manifest", b'{"source-ref":"s3://b/0.jpg"}\n{"source-ref":"s3://b/1.jpg"}\n')
    with LocalProxy(auth=auth) as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url_with_auth(*auth) if auth else proxy.url)
        report = validate_manifest(manifest)
        assert report.lines == 2
        assert {(s.method, s.target.split("?")[0]) for s in proxy.seen} >= {("GET", manifest)}
        if auth:
            assert all("Proxy-Authorization" in s.headers for s in proxy.seen)
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        before = len(proxy.seen)
        assert validate_manifest(manifest).lines == 2
        assert len(proxy.seen) == before  # bypassed


# -- an error page of the proxy itself (an http:// target's) may echo its credentials ------------

async def _echoing_proxy(request: web.Request) -> web.Response:
    """A proxy whose error page quotes the request it was sent, headers included, and its password."""
    sent = "; ".join(f"{k}: {v}" for k, v in request.headers.items())
    return web.Response(status=403, text=f"upstream refused {request.method}, password={SECRET}: {request.url} ({sent})")


def _basic() -> str:
    import base64

    return base64.b64encode(f"me:{SECRET}".encode()).decode()


def test_an_error_page_of_the_proxy_that_echoes_its_credentials_is_quoted_without_them(tmp_path, synapse) -> None:
    with LocalHTTPServer(_echoing_proxy) as proxy:
        r, out = _export(tmp_path, synapse, HTTP_PROXY=f"http://me:{SECRET}@127.0.0.1:{proxy.port}", NO_PROXY="")
    assert r.returncode == 1 and not out.exists(), r.stderr
    assert "Synapse answered 403 Forbidden to GET /projects/1/: upstream refused GET, password=***: http" in r.stderr
    assert "Proxy-Authorization: Basic ***)" in r.stderr, r.stderr
    assert _basic() not in r.stderr


@pytest.mark.parametrize("kind", HTTP_CLIENTS)
def test_a_post_whose_proxy_echoes_its_credentials_fails_without_them(files, monkeypatch, kind) -> None:
    """A model endpoint's POST (its error answer is quoted) through a proxy that answers with its own page."""
    monkeypatch.setenv(HTTP_CLIENT_ENV, kind)
    with LocalHTTPServer(_echoing_proxy) as proxy:
        monkeypatch.setenv("HTTP_PROXY", f"http://me:{SECRET}@127.0.0.1:{proxy.port}")
        with SyncFetcher(FetchPolicy(retries=0)) as fetcher, pytest.raises(FetchError) as info:
            fetcher.post(files.url_for("predict"), b"{}", {"Content-Type": "application/json"})
    message = str(info.value)
    assert message.startswith("HTTP 403: upstream refused POST, password=***: http"), message
    assert SECRET not in message and _basic() not in message
