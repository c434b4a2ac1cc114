"""The Synapse client against the contract server: auth, pagination, retries, 429, caps, redaction."""

from __future__ import annotations

import asyncio
import email.utils
import itertools
import time

import pytest

from totask_manifest._errors import FatalSynapseError
from totask_manifest._synapse.client import BackendUnavailable, SynapseHTTPError, TokenRejected
from totask_manifest._synapse.settings import SynapseSettings
from totask_manifest._synapse.sync_client import SynapseClient
from totask_manifest.testing import Fault
from totask_manifest.testing.builders import TOKEN, fast_client

pytest_plugins = ["totask_manifest.testing.fixtures"]


def test_settings_from_env_prefers_plugin_run_token_and_sends_tenant() -> None:
    env = {"SYNAPSE_HOST": "https://syn.example.com/", "SYNAPSE_ACCESS_TOKEN": "pat-1",
           "SYNAPSE_PLUGIN_RUN_USER_TOKEN": "user", "SYNAPSE_PLUGIN_RUN_TENANT": "acme"}
    s = SynapseSettings.from_env(env)
    assert s.host == "https://syn.example.com"
    assert s.auth_headers("https://syn.example.com/tasks/1/") == {"Authorization": "Token user", "Synapse-Tenant": "Token acme"}
    only_pat = SynapseSettings.from_env({"SYNAPSE_HOST": "https://syn.example.com", "SYNAPSE_ACCESS_TOKEN": "pat-1"})
    assert only_pat.auth_headers("https://syn.example.com:443/x") == {"Synapse-Access-Token": "Token pat-1"}
    # the SDK sends the tenant in access-token mode too
    pat_tenant = SynapseSettings.from_env({"SYNAPSE_HOST": "https://syn.example.com", "SYNAPSE_ACCESS_TOKEN": "pat-1",
                                           "SYNAPSE_PLUGIN_RUN_TENANT": "acme"})
    assert pat_tenant.auth_headers("https://syn.example.com/x") == {"Synapse-Access-Token": "Token pat-1",
                                                                     "Synapse-Tenant": "Token acme"}
    # another origin (host, scheme or port) gets nothing
    for url in ("https://files.example.com/a.json", "http://syn.example.com/x", "https://syn.example.com:8443/x"):
        assert s.auth_headers(url) == {} and pat_tenant.auth_headers(url) == {}
    assert "pat" not in repr(only_pat) and "user" not in repr(s) and "acme" not in repr(pat_tenant)
    assert s.redact("token user and acme") == "token *** and ***"
    # url_host and language, as the SDK reads them
    assert (s.url_host, s.language) == (None, "ko")
    more = SynapseSettings.from_env({**env, "SYNAPSE_PLUGIN_RUN_URL_HOST": " internal ", "SYNAPSE_LANGUAGE": "en"})
    assert (more.url_host, more.language) == ("internal", "en")


def test_a_link_of_another_origin_is_moved_onto_the_configured_host() -> None:
    s = SynapseSettings(host="https://syn.example.com:8443/api", access_token="pat")
    assert s.on_host("http://backend.internal/api/sdk/tasks/?page=2&project=3") == \
        "https://syn.example.com:8443/api/sdk/tasks/?page=2&project=3"
    assert s.on_host("https://syn.example.com:8443/api/x/?a=1") == "https://syn.example.com:8443/api/x/?a=1"
    assert s.on_host("tasks/1/") == "https://syn.example.com:8443/api/tasks/1/"


def test_env_settings_mistakes_are_usage_errors_that_never_show_the_token(monkeypatch) -> None:
    from totask_manifest._errors import UsageError

    assert SynapseSettings.from_env({"SYNAPSE_HOST": "https://s.example.com",
                                     "SYNAPSE_ACCESS_TOKEN": " pat-1\n"}).access_token == "pat-1"
    with pytest.raises(UsageError, match="SYNAPSE_ACCESS_TOKEN") as info:
        SynapseSettings.from_env({"SYNAPSE_ACCESS_TOKEN": "sécret\x00x"})
    assert "sécret" not in str(info.value)
    with pytest.raises(UsageError, match="http:// or https://"):
        SynapseSettings.from_env({"SYNAPSE_HOST": "syn.example.com", "SYNAPSE_ACCESS_TOKEN": "pat-1"})
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


def test_next_link_to_another_origin_is_followed_on_the_host_and_the_other_host_gets_nothing(synapse, files) -> None:
    pid = synapse.seed(5)
    synapse.next_base = files.url  # a backend behind a proxy, or a misconfigured one, names another host
    c = fast_client(synapse, page_size=2)
    try:
        ids = [t["id"] for t in c.iter_tasks({"project": pid, "fields": "id"})]
    finally:
        c.close()
    assert ids == sorted(t["id"] for t in synapse.project_tasks(pid))
    assert files.requests == []  # nothing at all went to the foreign origin, let alone the token
    pages = synapse.requests_to("GET", "^/sdk/tasks/$")
    assert [r.query.get("page", "1") for r in pages] == ["1", "2", "3"]
    assert all(r.query["project"] == str(pid) and r.query["page_size"] == "2" for r in pages)
    assert all(r.header("Synapse-Access-Token") == f"Token {TOKEN}" for r in pages)


def test_the_tenant_header_goes_with_the_access_token_and_a_wrong_tenant_is_refused(files) -> None:
    from totask_manifest._synapse.client import PermissionDenied
    from totask_manifest.testing import SynapseServer

    server = SynapseServer(tokens=(TOKEN,), tenant="acme").start()
    try:
        pid = server.seed(3)
        server.next_base = files.url
        good = SynapseClient(SynapseSettings(host=server.url, access_token=TOKEN, tenant="acme"), backoff=0.01)
        bad = SynapseClient(SynapseSettings(host=server.url, access_token=TOKEN), backoff=0.01)
        try:
            assert len(list(good.iter_tasks({"project": pid, "page_size": 1}))) == 3
            assert good.get_project(pid)["id"] == pid
            with pytest.raises(PermissionDenied):
                bad.get_project(pid)
        finally:
            good.close()
            bad.close()
        sent = server.requests
        assert [r.header("Synapse-Tenant") for r in sent] == ["Token acme"] * (len(sent) - 1) + [None]
        assert [r.status for r in sent][-1] == 403
        assert files.requests == []  # the tenant, like the token, never leaves the host
    finally:
        server.stop()


def test_url_host_is_on_every_request_once(synapse, files) -> None:
    pid = synapse.seed(3)
    tid = synapse.project_tasks(pid)[0]["id"]
    rel = synapse.add_release("det")
    job = synapse.add_job()
    synapse.next_base = files.url
    settings = SynapseSettings(host=synapse.url, access_token=TOKEN, url_host="internal")
    c = SynapseClient(settings, backoff=0.01)
    try:
        assert len(list(c.iter_tasks({"project": pid, "page_size": 1}))) == 3
        c.get_project(pid)
        c.get_task(tid, {"fields": "id,data", "url_host": "external"})  # a value the caller gives wins
        c.annotate_task_data(tid, {"annotations": {"image_1": [{"id": "a", "tool": "bounding_box"}]}})
        c.run_plugin("det", {"agent": 1, "action": "deployment", "params": {}})
        c.update_job(job, {"status": "RUNNING"})
        c.create_logs([{"event": "x"}])
        c.list_agents({"id": 1})
    finally:
        c.close()
    assert synapse.releases[rel] and files.requests == []
    sent = synapse.requests
    assert len(sent) == 3 + 7
    assert {r.method for r in sent} == {"GET", "PUT", "POST", "PATCH"}
    for r in sent:
        values = [v for k, v in r.query_items if k == "url_host"]
        assert values == (["external"] if r.path == f"/tasks/{tid}/" else ["internal"]), (r.method, r.path, r.query_items)


def test_get_and_put_are_retried_post_and_patch_never_replayed(synapse, client) -> None:
    pid = synapse.seed(1)
    tid = synapse.project_tasks(pid)[0]["id"]
    synapse.add_fault(Fault(status=503, method="GET", path="^/projects/", times=2))
    assert client.get_project(pid)["id"] == pid
    assert len(synapse.requests_to("GET", "^/projects/")) == 3

    synapse.add_fault(Fault(status=500, method="GET", path="^/projects/", times=1))
    assert client.get_project(pid)["id"] == pid  # a 500 to an idempotent request is tried again
    assert len(synapse.requests_to("GET", "^/projects/")) == 5

    synapse.add_fault(Fault(reset=True, method="PUT", times=1))
    client.annotate_task_data(tid, {"annotations": {"image_1": [{"id": "a", "tool": "bounding_box"}]}})
    assert len(synapse.requests_to("PUT")) == 2  # a dropped PUT is sent again: PUT is idempotent

    job = synapse.add_job()
    synapse.add_fault(Fault(status=500, method="PATCH", times=1))
    with pytest.raises(BackendUnavailable):
        client.update_job(job, {"status": "RUNNING"})
    synapse.add_fault(Fault(reset=True, method="POST", path="^/logs/", times=1))
    with pytest.raises(BackendUnavailable):
        client.create_logs([{"event": "message"}])
    assert len(synapse.requests_to("PATCH")) == 1  # a 500 to PATCH is final, as in the SDK
    assert len(synapse.requests_to("POST", "^/logs/")) == 1  # started, then dropped: not replayed
    assert synapse.logs == []  # the one POST was dropped before it was handled


@pytest.mark.parametrize("status", [502, 503, 504])
def test_post_and_patch_are_retried_on_502_503_504_with_the_sdks_backoff(synapse, status) -> None:
    synapse.add_release("det")
    job = synapse.add_job()
    c = fast_client(synapse, retries=3, backoff=0.05, max_backoff=10.0)
    try:
        synapse.add_fault(Fault(status=status, method="POST", path="^/plugins/", times=3))
        assert c.run_plugin("det", {"agent": 1, "action": "deployment", "params": {}})["job_id"]
        synapse.add_fault(Fault(status=status, method="PATCH", times=1))
        c.update_job(job, {"status": "RUNNING"})
        synapse.add_fault(Fault(status=status, method="POST", path="^/plugins/", times=4))
        with pytest.raises(BackendUnavailable):
            c.run_plugin("det", {"agent": 1, "action": "deployment", "params": {}})
    finally:
        c.close()
    posts = synapse.requests_to("POST", "^/plugins/")
    assert [r.status for r in posts] == [status] * 3 + [200] + [status] * 4  # 4 attempts each at most
    assert [r.status for r in synapse.requests_to("PATCH")] == [status, 200]
    gaps = [b.at - a.at for a, b in itertools.pairwise(posts[:4])]
    assert gaps[1] >= 0.1 and gaps[2] >= 0.2  # 0, then backoff * 2, backoff * 4 (lower bounds only)
    assert len(synapse.serve_apps) == 1  # the one deployment the backend handled


def test_the_default_backoff_is_the_sdks_four_attempts_over_twelve_seconds() -> None:
    from totask_manifest._synapse.client import AsyncSynapseClient

    aio = AsyncSynapseClient(SynapseSettings(host="http://127.0.0.1:9", access_token=TOKEN))
    assert aio.retries == 3 and [aio.backoff_delay(n) for n in (1, 2, 3)] == [0.0, 4.0, 8.0]


def test_post_is_retried_on_429_and_500_is_final(synapse, client) -> None:
    synapse.add_release("det")
    synapse.add_fault(Fault(status=429, retry_after=0.05, method="POST", path="^/plugins/", times=2))
    assert client.run_plugin("det", {"agent": 1, "action": "deployment", "params": {}})["job_id"]
    synapse.add_fault(Fault(status=500, method="POST", path="^/plugins/", times=1))
    with pytest.raises(BackendUnavailable):
        client.run_plugin("det", {"agent": 1, "action": "deployment", "params": {}})
    assert [r.status for r in synapse.requests_to("POST")] == [429, 429, 200, 500]


def test_run_plugin_sends_language_as_the_sdk(synapse, monkeypatch) -> None:
    synapse.add_release("det")
    c = fast_client(synapse)
    monkeypatch.setenv("SYNAPSE_LANGUAGE", "en")
    e = SynapseClient(backoff=0.01)
    try:
        c.run_plugin("det", {"agent": 1, "action": "deployment", "params": {}})
        e.run_plugin("det", {"agent": 1, "action": "deployment", "params": {}})
        c.run_plugin("det", {"agent": 1, "action": "deployment", "params": {}, "language": "ja"})
    finally:
        c.close()
        e.close()
    assert [r.body["language"] for r in synapse.requests_to("POST")] == ["ko", "en", "ja"]


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


def _gaps(requests: list) -> list[float]:
    """Seconds between the requests the server saw, one after the other."""
    return [b.at - a.at for a, b in itertools.pairwise(requests)]


def _get_project_through(synapse, *faults: Fault) -> list:
    """``get_project`` of a new project while ``faults`` answer (a client backing off 10 ms): the
    GETs of it the server saw."""
    pid = synapse.seed(1)
    c = fast_client(synapse)
    try:
        for fault in faults:
            synapse.add_fault(fault)
        assert c.get_project(pid)["id"] == pid
    finally:
        c.close()
    return synapse.requests_to("GET", "^/projects/")


def test_a_503_with_retry_after_is_retried_after_it_not_after_the_backoff(synapse) -> None:
    """A 503 ``Retry-After: 1`` (a maintenance window the backend announces) is waited out, as the
    SDK's urllib3 waits it out; the 10 ms backoff alone used to try again at once."""
    gets = _get_project_through(synapse, Fault(status=503, retry_after=1, method="GET", path="^/projects/"))
    assert [r.status for r in gets] == [503, 200]
    assert _gaps(gets)[0] >= 0.95, _gaps(gets)


@pytest.mark.slow  # 3 s of Retry-After
def test_a_503_with_retry_after_is_tried_no_more_than_retries_times_and_reads_an_http_date(synapse) -> None:
    job = synapse.add_job()
    c = fast_client(synapse, retries=2)
    try:
        synapse.add_fault(Fault(status=503, retry_after=1, method="PATCH", times=None))
        with pytest.raises(BackendUnavailable, match=r"503 Service Unavailable to PATCH /jobs/"):
            c.update_job(job, {"status": "RUNNING"})
        synapse.clear_faults()
        when = email.utils.formatdate(time.time() + 2, usegmt=True)  # whole seconds: over 1 s left
        synapse.add_fault(Fault(status=503, retry_after=when, method="GET", path="^/jobs/", times=1))
        assert c.get_job(job)["id"] == job
    finally:
        c.close()
    patches = synapse.requests_to("PATCH")
    assert [r.status for r in patches] == [503] * 3  # the SDK's tries (``retries``), each a second apart
    assert all(gap >= 0.95 for gap in _gaps(patches)), _gaps(patches)
    gets = synapse.requests_to("GET", "^/jobs/")
    assert [r.status for r in gets] == [503, 200] and _gaps(gets)[0] >= 0.9


def test_a_413_is_retried_after_its_retry_after_and_final_without_one(synapse) -> None:
    """urllib3 retries a 413 that carries ``Retry-After`` (any method, after the header's wait);
    one without the header is final, as before."""
    synapse.add_release("det")
    c = fast_client(synapse)
    try:
        synapse.add_fault(Fault(status=413, retry_after=1, method="POST", path="^/plugins/", times=1))
        assert c.run_plugin("det", {"agent": 1, "action": "deployment", "params": {}})["job_id"]
        synapse.add_fault(Fault(status=413, method="POST", path="^/plugins/", times=1))
        with pytest.raises(SynapseHTTPError, match=r"413 Request Entity Too Large to POST /plugins/det/run/") as info:
            c.run_plugin("det", {"agent": 1, "action": "deployment", "params": {}})
    finally:
        c.close()
    assert not info.value.after_unanswered and not info.value.after_server_error
    posts = synapse.requests_to("POST", "^/plugins/")
    assert [r.status for r in posts] == [413, 200, 413]
    assert _gaps(posts)[0] >= 0.95


@pytest.mark.slow  # 2 s of waits
def test_a_retry_after_of_0_or_a_past_date_is_no_header_not_an_immediate_retry(synapse) -> None:
    """urllib3 counts ``Retry-After: 0`` (and a date gone by) as no header; taken literally, five
    such 429s gave six attempts in no time. A 429 without a wait asked for waits 1 s."""
    past = email.utils.formatdate(time.time() - 30, usegmt=True)
    gets = _get_project_through(synapse, Fault(status=429, retry_after=0, method="GET", path="^/projects/"),
                                Fault(status=429, retry_after=past, method="GET", path="^/projects/"))
    assert [r.status for r in gets] == [429, 429, 200]
    assert all(gap >= 0.95 for gap in _gaps(gets)), _gaps(gets)


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


def test_the_error_detail_a_library_user_prints_holds_no_token(synapse, client) -> None:
    """``SynapseHTTPError.detail`` kept the parsed error JSON as received: a token the server
    echoed (in a value, a nested list, a key) was masked in the message but printed whole by a
    caller showing ``exc.detail``. Masked there as in the message now; the rest as received."""
    body = {"detail": f"bad token {TOKEN}", "errors": [{"field": "auth", "got": [TOKEN, 3, None]}],
            f"echo-{TOKEN}": True}
    synapse.add_fault(Fault(status=400, method="GET", path="^/projects/", body=body))
    with pytest.raises(SynapseHTTPError) as info:
        client.get_project(synapse.seed(1))
    assert TOKEN not in repr(info.value.detail) and TOKEN not in str(info.value), info.value.detail
    assert info.value.detail == {"detail": "bad token ***", "errors": [{"field": "auth", "got": ["***", 3, None]}],
                                 "echo-***": True}


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


def test_encode_query_sends_each_python_value_as_django_filter_reads_it() -> None:
    from totask_manifest._synapse.client import encode_query

    assert encode_query({"status": "pending", "project": 3, "score__gte": 0.5, "is_locked": True, "done": False}) == [
        ("status", "pending"), ("project", "3"), ("score__gte", "0.5"), ("is_locked", "true"), ("done", "false")]
    assert encode_query({"assignee": None, "reviewer__exact": None}) == [("assignee__isnull", "true"),
                                                                         ("reviewer__isnull", "true")]
    assert encode_query({"status": ["pending", "in_progress"], "id__in": (3, 1), "tags": {"b", "a"}}) == [
        ("status__in", "pending,in_progress"), ("id__in", "3,1"), ("tags__in", "a,b")]
    assert encode_query({"data_unit__id": None, "created_at__range": ["2025-01-01", "2025-02-01"]}) == [
        ("data_unit__id__isnull", "true"), ("created_at__range", "2025-01-01,2025-02-01")]
    for bad, message in (({"status": []}, "empty list"), ({"a": {"b": 1}}, "dict"), ({"s": ["a,b"]}, "comma"),
                         ({"created_at__gte": None}, "None"), ({"created_at__gte": ["a"]}, "list"),
                         ({"status": ["a"], "status__in": "b"}, "both")):
        with pytest.raises(ValueError, match=message):
            encode_query(bad)


def test_the_contract_server_reads_the_last_of_repeated_keys_as_django(synapse) -> None:
    import httpx

    pid = synapse.seed(3)
    tasks = sorted(synapse.project_tasks(pid), key=lambda t: t["id"])
    tasks[0]["status"] = "done"
    url = f"{synapse.url}/sdk/tasks/?project={pid}&status=done&status=pending&fields=id"
    page = httpx.get(url, headers={"Synapse-Access-Token": f"Token {TOKEN}"}).json()
    assert [t["id"] for t in page["results"]] == [tasks[1]["id"], tasks[2]["id"]]
    assert synapse.requests[-1].query["status"] == "pending"
    assert synapse.requests[-1].query_items.count(("status", "done")) == 1


def test_the_contract_server_refuses_an_empty_submit_and_lists_agents(synapse, client) -> None:
    from totask_manifest._synapse.client import BadRequest

    pid = synapse.seed(1)
    tid = synapse.project_tasks(pid)[0]["id"]
    for empty in ({}, {"annotations": {"image_1": [], "image_2": []}, "annotationsData": {"image_1": []}}):
        with pytest.raises(BadRequest, match="no annotations"):
            client.annotate_task_data(tid, empty)
    assert synapse.project_tasks(pid)[0]["data"] == {} and all(r.status == 400 for r in synapse.requests_to("PUT"))
    client.annotate_task_data(tid, {}, schema="any")  # rollback restores an empty task this way
    aid = synapse.add_agent(name="gpu-1")
    synapse.add_agent(name="cpu-1")
    assert client.list_agents({"id": aid}) == [{"id": aid, "name": "gpu-1", "status": "connected"}]
    assert client.list_agents({"id": 99999}) == []
    assert synapse.requests_to("GET", "^/agents/$")[0].query["id"] == str(aid)


@pytest.mark.parametrize("page", ["json-300-characters", "html-600-bytes"])
def test_a_token_echoed_where_an_error_page_is_cut_keeps_no_character(synapse, client, page: str) -> None:
    """An error answer was cut (its first 600 bytes, then the 300 characters a message quotes)
    before the tokens were masked: a token that a cut split no longer matched whole, and its first
    characters stayed in the message (``tok-5…``), which apply prints and journals."""
    if page.startswith("json"):
        text_before = len('{"detail":"')  # as the client writes the JSON back
        body: object = {"detail": "r" * (297 - 5 - text_before) + TOKEN}  # the token's 6th character at the cut
    else:
        body = b" " * (600 - 5 - len(b"refused: ")) + b"refused: " + TOKEN.encode() + b" (the rest)"
    synapse.add_fault(Fault(status=400, method="GET", path="^/projects/", body=body))
    with pytest.raises(SynapseHTTPError) as info:
        client.get_project(1)
    message = str(info.value)
    assert message.startswith("Synapse answered 400 Bad Request to GET /projects/1/: ") and "***" in message, message
    assert TOKEN[:4] not in message, message
