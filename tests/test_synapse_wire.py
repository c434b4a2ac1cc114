"""What the Synapse client puts on the wire now that it is aiohttp on the fetch layer's session
factory (it was httpx over the ``httpx-aiohttp`` transport): headers, a gzip answer, a query
merged into a URL that has one, and the CAs a TLS host is checked against; against a real
HTTP(S) server on 127.0.0.1."""

from __future__ import annotations

import gzip

import orjson
import pytest
from aiohttp import web

from tests.support.http_server import LocalHTTPServer
from tests.support.tls import self_signed_context
from totask_manifest._synapse.client import BackendUnavailable
from totask_manifest._synapse.settings import SynapseSettings
from totask_manifest._synapse.sync_client import SynapseClient

seen: list[web.Request] = []


async def backend(request: web.Request) -> web.StreamResponse:
    """Echo the request's query and body, gzipped as a proxy in front of Django may send it."""
    seen.append(request)
    body = orjson.dumps({"query": list(request.query.items()), "body": (await request.read()).decode()})
    return web.Response(body=gzip.compress(body), headers={"Content-Encoding": "gzip",
                                                           "Content-Type": "application/json"})


def test_headers_body_and_gzip():
    seen.clear()
    with LocalHTTPServer(backend) as server, \
            SynapseClient(SynapseSettings(host=server.url(""), access_token="t0k")) as client:
        answer = client.request("PUT", "tasks/1/annotate_task_data/", json={"action": "submit"})
    assert answer == {"query": [], "body": '{"action":"submit"}'}
    headers = seen[0].headers
    assert seen[0].method == "PUT" and seen[0].path == "/tasks/1/annotate_task_data/"
    assert headers["Synapse-Access-Token"] == "Token t0k"
    assert headers["Accept"] == "application/json" and headers["Content-Type"] == "application/json"
    assert headers["Accept-Encoding"] == "gzip, deflate" and headers["User-Agent"] == "totask-manifest"
    assert headers["Content-Length"] == str(len('{"action":"submit"}'))


def test_a_query_is_merged_into_the_urls_own_as_httpx_did():
    seen.clear()
    with LocalHTTPServer(backend) as server, \
            SynapseClient(SynapseSettings(host=server.url(""), access_token="tok-wire-1", url_host="internal")) as client:
        answer = client.request("GET", server.url("sdk/tasks/?page=2&page_size=5&fields=id,data"),
                                params={"page_size": 7, "status": ["a b", "c/d"]})
        again = client.request("GET", server.url("sdk/tasks/?page=3&url_host=given"))
    assert answer["query"] == [["page", "2"], ["fields", "id,data"], ["page_size", "7"],
                               ["status__in", "a b,c/d"], ["url_host", "internal"]]
    assert again["query"] == [["page", "3"], ["url_host", "given"]]  # a value the link carries wins


def test_tls_hosts_are_checked_against_certifi_or_ssl_cert_file(tmp_path, monkeypatch):
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    with LocalHTTPServer(backend, ssl_context=self_signed_context(tmp_path)) as server:
        host = server.url("")
        assert host.startswith("https://")
        with SynapseClient(SynapseSettings(host=host, access_token="tok-wire-1"), retries=0) as client, \
                pytest.raises(BackendUnavailable, match="ClientConnectorCertificateError"):
            client.request("GET", "projects/1/")
        monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "cert.pem"))
        with SynapseClient(SynapseSettings(host=host, access_token="tok-wire-1")) as client:
            assert client.request("GET", "projects/1/") == {"query": [], "body": ""}
