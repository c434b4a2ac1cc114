"""The Synapse client against the contract server: auth, pagination, retries, 429, caps, redaction."""

from __future__ import annotations

import asyncio
import time

import pytest

from totask_manifest.errors import FatalSynapseError
from totask_manifest.synapse.client import BackendUnavailable, NotFound, TokenRejected
from totask_manifest.synapse.settings import SynapseSettings
from totask_manifest.synapse.sync_client import SynapseClient
from totask_manifest.testing import Fault
from totask_manifest.testing.builders import TOKEN, fast_client, token_headers

pytest_plugins = ["totask_manifest.testing.fixtures"]


def test_settings_from_env_prefers_plugin_run_token_and_sends_tenant() -> None:
    env = {"SYNAPSE_HOST": "https://syn.example.com/", "SYNAPSE_ACCESS_TOKEN": "pat",
           "SYNAPSE_PLUGIN_RUN_USER_TOKEN": "user", "SYNAPSE_PLUGIN_RUN_TENANT": "acme"}
    s = SynapseSettings.from_env(env)
    assert s.host == "https://syn.example.com"
    assert s.auth_headers("https://syn.example.com/tasks/1/") == {"Authorization": "Token user", "Synapse-Tenant": "Token acme"}
    only_pat = SynapseSettings.from_env({"SYNAPSE_HOST": "https://syn.example.com", "SYNAPSE_ACCESS_TOKEN": "pat"})
    assert only_pat.auth_headers("https://syn.example.com:443/x") == {"Synapse-Access-Token": "Token pat"}
    # another origin (host, scheme or port) gets nothing
    for url in ("https://files.example.com/a.json", "http://syn.example.com/x", "https://syn.example.com:8443/x"):
        assert s.auth_headers(url) == {}
    assert "pat" not in repr(only_pat) and "user" not in repr(s)
    assert s.redact("token user and acme") == "token *** and ***"


def test_env_settings_mistakes_are_usage_errors_that_never_show_the_token(monkeypatch) -> None:
    from totask_manifest.errors import UsageError

    assert SynapseSettings.from_env({"SYNAPSE_HOST": "https://s.example.com",
                                     "SYNAPSE_ACCESS_TOKEN": " pat-1\n"}).access_token == "pat-1"
    with pytest.raises(UsageError, match="SYNAPSE_ACCESS_TOKEN") as info:
        SynapseSettings.from_env({"SYNAPSE_ACCESS_TOKEN": "sécret\x00x"})
    assert "sécret" not in str(info.value)
    with pytest.raises(UsageError, match="http:// or https://"):
        SynapseSettings.from_env({"SYNAPSE_HOST": "syn.example.com", "SYNAPSE_ACCESS_TOKEN": "pat"})
    for name in ("SYNAPSE_ACCESS_TOKEN", "SYNAPSE_PLUGIN_RUN_USER_TOKEN", "SYNAPSE_PLUGIN_RUN_TENANT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SYNAPSE_HOST", "http://127.0.0.1:9")
    with pytest.raises(UsageError, match=r"SYNAPSE_ACCESS_TOKEN.*SYNAPSE_PLUGIN_RUN_USER_TOKEN.*TENANT"):
        SynapseClient()


def test_listing_follows_next_links_with_credentials_on_the_host(synapse, files) -> None:
    pid = synapse.seed(23)
    c = fast_client(synapse, page_size=5)
    try:
        ids = [t["id"] for t in c.iter_tasks({"project": pid, "fields": "id"})]
    finally:
        c.close()
    assert ids == sorted(t["id"] for t in synapse.project_tasks(pid))
    pages = synapse.requests_to("GET", "^/sdk/tasks/$")
    assert [r.query.get("page", "1") for r in pages] == ["1", "2", "3", "4", "5"]
    assert all(r.query["project"] == str(pid) and r.query["page_size"] == "5" for r in pages)
    assert all(r.header("Synapse-Access-Token") == f"Token {TOKEN}" for r in pages)


def test_next_link_to_another_host_never_gets_the_token(synapse, files) -> None:
    pid = synapse.seed(4)
    synapse.next_base = files.url  # a malicious or misconfigured backend sends the client elsewhere
    c = fast_client(synapse, page_size=2)
    try:
        with pytest.raises(NotFound):
            list(c.iter_tasks({"project": pid}))
    finally:
        c.close()
    assert len(files.requests) == 1 and files.requests[0].path == "/sdk/tasks/"
    assert token_headers(files.requests) == []
    assert "authorization" not in files.requests[0].headers and "synapse-access-token" not in files.requests[0].headers


def test_get_and_put_are_retried_post_and_patch_never_replayed(synapse, client) -> None:
    pid = synapse.seed(1)
    tid = synapse.project_tasks(pid)[0]["id"]
    synapse.add_fault(Fault(status=503, method="GET", path="^/projects/", times=2))
    assert client.get_project(pid)["id"] == pid
    assert len(synapse.requests_to("GET", "^/projects/")) == 3

    synapse.add_fault(Fault(reset=True, method="PUT", times=1))
    client.annotate_task_data(tid, {"annotations": {}})
    assert len(synapse.requests_to("PUT")) == 2  # a dropped PUT is sent again: PUT is idempotent

    job = synapse.add_job()
    synapse.add_fault(Fault(status=502, method="PATCH", times=1))
    with pytest.raises(BackendUnavailable):
        client.update_job(job, {"status": "RUNNING"})
    synapse.add_fault(Fault(reset=True, method="POST", path="^/logs/", times=1))
    with pytest.raises(BackendUnavailable):
        client.create_logs([{"event": "message"}])
    assert len(synapse.requests_to("PATCH")) == 1
    assert len(synapse.requests_to("POST", "^/logs/")) == 1
    assert synapse.logs == []  # the one POST was dropped before it was handled


def test_connection_refused_is_retried_for_any_method_then_reported() -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    c = SynapseClient(SynapseSettings(host=f"http://127.0.0.1:{port}", access_token=TOKEN), backoff=0.01, retries=2)
    try:
        with pytest.raises(BackendUnavailable) as info:
            c.create_logs([{"event": "x"}])
    finally:
        c.close()
    assert c.aio.sent == 3  # nothing reached a server, so even POST was tried again
    assert "after 3 attempts" in str(info.value) and TOKEN not in str(info.value)


def test_429_waits_retry_after_for_every_method(synapse, client) -> None:
    job = synapse.add_job()
    synapse.add_fault(Fault(status=429, retry_after=0.4, method="PATCH", times=1))
    started = time.monotonic()
    client.update_job(job, {"status": "RUNNING"})
    assert time.monotonic() - started >= 0.35
    patches = synapse.requests_to("PATCH")
    assert len(patches) == 2 and patches[1].at - patches[0].at >= 0.35
    assert synapse.jobs[job]["status"] == "RUNNING"


def test_401_is_fatal_and_errors_never_show_the_token(synapse, client) -> None:
    pid = synapse.seed(1)
    synapse.revoke(TOKEN)
    with pytest.raises(TokenRejected) as info:
        client.get_project(pid)
    assert isinstance(info.value, FatalSynapseError)
    assert info.value.status == 401 and f"/projects/{pid}/" in str(info.value)
    synapse.revoked.clear()
    synapse.add_fault(Fault(status=400, method="GET", body={"detail": f"bad token {TOKEN}"}))
    with pytest.raises(Exception) as echoed:
        client.get_project(pid)
    assert TOKEN not in str(echoed.value) and "***" in str(echoed.value)


def test_concurrency_is_capped(synapse) -> None:
    pid = synapse.seed(12)
    ids = [t["id"] for t in synapse.project_tasks(pid)]
    synapse.latency = 0.05
    c = fast_client(synapse, max_concurrency=3)

    async def fetch_all() -> list:
        return await asyncio.gather(*(c.aio.get_task(i) for i in ids))

    try:
        tasks = c.run(fetch_all())
    finally:
        c.close()
    assert [t["id"] for t in tasks] == ids
    assert synapse.max_in_flight == 3


def test_endpoints_send_the_documented_requests(synapse, client) -> None:
    pid = synapse.seed(1)
    task = synapse.project_tasks(pid)[0]
    detail = client.get_task(task["id"], {"fields": "id,data,data_unit", "expand": "data_unit"})
    assert detail["data_unit"]["files"]["image_1"]["is_primary"] is True
    unit = client.get_data_unit(task["data_unit"])
    assert set(unit["files"]) == {"image_1", "annotation_data"}
    assert synapse.requests[-1].query == {"expand": "files"}
    client.annotate_task_data(task["id"], {"objects": []}, schema="any")
    put = synapse.requests_to("PUT")[-1]
    assert put.path == f"/tasks/{task['id']}/annotate_task_data/" and put.query == {"schema": "any"}
    assert put.body == {"action": "submit", "data": {"objects": []}}
    rel = synapse.add_release("det", version="2.0.0")
    assert client.get_plugin_release(rel)["config"]["code"] == "det"
    synapse.add_serve_app("det", 5, "RUNNING")
    assert [a["status"] for a in client.list_serve_applications({"plugin_code": "det", "job__agent": 5})] == ["RUNNING"]
    assert client.list_serve_applications({"plugin_code": "det", "job__agent": 6}) == []
    assert client.get_data_collection(synapse.projects[pid]["data_collection"])["file_specifications"][0]["name"] == "image_1"


def test_a_redirect_is_a_fatal_error_naming_only_the_new_origin() -> None:
    import http.server
    import threading

    class Moved(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(301)
            self.send_header("Location", "https://user:pw@new.example.com:8443/api/x?secret=s3cr3t")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Moved)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    c = SynapseClient(SynapseSettings(host=f"http://127.0.0.1:{server.server_port}", access_token=TOKEN),
                      backoff=0.01, retries=2)
    try:
        with pytest.raises(FatalSynapseError) as info:
            c.get_project(1)
    finally:
        c.close()
        server.shutdown()
        server.server_close()
    message = str(info.value)
    assert info.value.status == 301 and c.aio.sent == 1  # not retried, not followed
    assert "https://new.example.com:8443" in message and "SYNAPSE_HOST" in message
    assert "s3cr3t" not in message and "/api/x" not in message and "pw" not in message and TOKEN not in message
