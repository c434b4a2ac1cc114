"""The fetch layer: URL policy, limits, retries, redirects, the sync bridge; against a real
HTTP server on 127.0.0.1 and real files."""

from __future__ import annotations

import asyncio
import email.utils
import os
import time

import fsspec
import pytest
from aiohttp import web

from tests.support.http_server import LocalHTTPServer, stream_chunks
from tests.support.tls import self_signed_context
from totask_manifest._errors import FetchError, UsageError
from totask_manifest._fetch import (
    Fetcher,
    FetchPolicy,
    SyncFetcher,
    base_of,
    parse_retry_after,
    redact_url,
    resolve_reference,
    scrub,
)
from totask_manifest._fetch.fetcher import HTTP_CLIENT_ENV, HTTP_CLIENTS

FAST = {"backoff": 0.01, "max_backoff": 0.05}


# ---------------------------------------------------------------- policy and URLs


def test_local_paths_need_allow_root(tmp_path):
    f = tmp_path / "a.json"
    f.write_text("{}")
    with pytest.raises(FetchError, match="needs --allow-root"):
        FetchPolicy().classify(str(f))
    with pytest.raises(FetchError, match="needs --allow-root"):
        FetchPolicy().classify(f"file://{f}")
    assert FetchPolicy(allow_root=str(tmp_path)).classify(f"file://{f}") == ("local", os.path.realpath(f))


def test_dotdot_and_symlink_escapes_are_refused(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    (tmp_path / "secret.txt").write_text("token")
    (root / "inside.json").write_text("{}")
    os.symlink(tmp_path / "secret.txt", root / "link.json")
    os.symlink(tmp_path, root / "up")
    policy = FetchPolicy(allow_root=str(root))
    assert policy.classify(str(root / "sub" / ".." / "inside.json"))[0] == "local"
    for bad in (str(root / ".." / "secret.txt"), str(root / "link.json"), str(root / "up" / "secret.txt"),
                f"file://{root}/../secret.txt", "/etc/passwd"):
        with pytest.raises(FetchError, match="outside the allowed root"):
            policy.classify(bad)
    # a sibling folder whose name starts with the root's name is not inside it
    (tmp_path / "root2").mkdir()
    with pytest.raises(FetchError, match="outside"):
        policy.classify(str(tmp_path / "root2" / "x.json"))


def test_file_url_with_host_and_chained_urls_are_refused(tmp_path):
    policy = FetchPolicy(allow_root=str(tmp_path))
    with pytest.raises(FetchError, match="names a host"):
        policy.classify("file://evil.example/etc/passwd")
    with pytest.raises(FetchError, match="chained"):
        policy.classify(f"zip://a.json::file://{tmp_path}/x.zip")


def test_allow_host():
    policy = FetchPolicy(allow_hosts=("files.example.com", "*.cdn.example.org", "my-bucket"))
    assert policy.classify("https://files.example.com/a.json")[0] == "http"
    assert policy.classify("https://FILES.example.com:8443/a.json")[0] == "http"
    assert policy.classify("https://eu.cdn.example.org/a.json")[0] == "http"
    assert policy.classify("s3://my-bucket/key.json") == ("fsspec", "s3://my-bucket/key.json")
    for url in ("https://evil.example.com/a.json", "https://cdn.example.org.evil.net/a", "s3://other/key"):
        with pytest.raises(FetchError, match="not in --allow-host"):
            policy.classify(url)


def test_bad_policy_values_are_usage_errors():
    for kwargs in ({"concurrency": 0}, {"timeout": 0}, {"retries": -1}, {"max_body_bytes": 0}):
        with pytest.raises(UsageError):
            FetchPolicy(**kwargs)


def test_redaction_removes_credentials():
    url = "https://user:pw@bucket.s3.amazonaws.com/a.json?X-Amz-Signature=abc&X-Amz-Credential=AKIA"
    shown = redact_url(url)
    assert "pw" not in shown and "abc" not in shown and "AKIA" not in shown
    assert shown.startswith("https://bucket.s3.amazonaws.com/a.json")
    text = scrub(f"Cannot connect to {url} (reason)")
    assert "abc" not in text and "pw@" not in text and "AKIA" not in text


def test_resolve_reference(tmp_path):
    assert resolve_reference("annotations/a.json", str(tmp_path)) == str(tmp_path / "annotations" / "a.json")
    assert resolve_reference("a.json", "s3://b/dir") == "s3://b/dir/a.json"
    assert resolve_reference("s3://x/y.json", str(tmp_path)) == "s3://x/y.json"
    assert resolve_reference("/abs/y.json", "s3://b/dir") == "/abs/y.json"
    assert base_of("s3://b/dir/manifest.jsonl") == "s3://b/dir"
    assert base_of("s3://b/dir/manifest.jsonl/") == "s3://b/dir"  # s3fs reads the object all the same
    assert base_of("s3://b/dir/manifest.jsonl?versionId=a/b") == "s3://b/dir"
    assert base_of("https://h/dir/m.jsonl?X-Amz-Credential=AKIA/20260101/us-east-1/s3") == "https://h/dir"
    assert base_of(str(tmp_path / "m.jsonl")) == str(tmp_path)
    assert base_of("rel/m.jsonl") == os.path.abspath("rel")


def test_parse_retry_after():
    assert parse_retry_after("3") == 3.0 and parse_retry_after(" 1.5 ") == 1.5
    assert parse_retry_after(None) is None and parse_retry_after("soon") is None
    now = time.time()
    date = email.utils.formatdate(now + 30, usegmt=True)
    assert 28 <= parse_retry_after(date, now=now) <= 31
    # no wait asked for: urllib3 counts these as no header, and the caller backs off
    assert parse_retry_after("0") is None and parse_retry_after("-2") is None and parse_retry_after("nan") is None
    assert parse_retry_after(email.utils.formatdate(now - 30, usegmt=True), now=now) is None


def test_retry_after_0_backs_off_instead_of_retrying_at_once():
    """A server answering ``Retry-After: 0`` again and again got every retry back to back."""
    async def handler(request: web.Request) -> web.StreamResponse:
        if server.hits[request.path] <= 2:
            return web.Response(status=503, headers={"Retry-After": "0"})
        return web.Response(body=b"ok")

    with LocalHTTPServer(handler) as server:
        started = time.monotonic()
        body, _ = _run(FetchPolicy(retries=2, backoff=0.2, max_backoff=1.0), lambda f: f.fetch(server.url("z")))
        waited = time.monotonic() - started
    assert body == b"ok" and server.hits["/z"] == 3
    assert waited >= 0.29  # the jittered backoff: 0.1-0.2 s, then 0.2-0.4 s


# ---------------------------------------------------------------- HTTP


def _run(policy: FetchPolicy, coro_fn):
    async def main():
        async with Fetcher(policy) as fetcher:
            return await coro_fn(fetcher), fetcher.stats

    return asyncio.run(main())


def test_fetch_http_and_stats():
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(body=b'{"n": "%s"}' % request.path.encode())

    with LocalHTTPServer(handler) as server:
        urls = [server.url(f"doc/{i}.json") for i in range(50)]
        results, stats = _run(FetchPolicy(concurrency=8), lambda f: f.fetch_many(urls))
    assert results == [b'{"n": "/doc/%d.json"}' % i for i in range(50)]
    assert stats.requests == 50 and stats.attempts == 50 and stats.failures == 0


def test_retries_until_success_and_counts_attempts():
    async def handler(request: web.Request) -> web.StreamResponse:
        if server.hits[request.path] <= 2:
            return web.Response(status=503)
        return web.Response(body=b"ok")

    with LocalHTTPServer(handler) as server:
        body, stats = _run(FetchPolicy(retries=3, **FAST), lambda f: f.fetch(server.url("x")))
        assert body == b"ok" and server.hits["/x"] == 3 and stats.retries == 2


def test_gives_up_after_retries_with_reason():
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(status=500)

    with LocalHTTPServer(handler) as server:
        with pytest.raises(FetchError, match=r"HTTP 500 \(http://127.0.0.1:\d+/x; 3 attempts\)"):
            _run(FetchPolicy(retries=2, **FAST), lambda f: f.fetch(server.url("x")))
        assert server.hits["/x"] == 3


@pytest.mark.parametrize("kind", HTTP_CLIENTS)
def test_a_fetch_closed_in_its_backoff_makes_no_more_attempts(kind, monkeypatch):
    """``aclose`` while a fetch waits out a retry's backoff: the fetch ends there. It used to try
    again after the close, through a new connection pool that nobody would close."""
    monkeypatch.setenv(HTTP_CLIENT_ENV, kind)

    async def handler(request: web.Request) -> web.StreamResponse:
        if server.hits[request.path] == 1:
            return web.Response(status=503, headers={"Retry-After": "1"})
        return web.Response(body=b"ok")

    async def main() -> None:
        fetcher = Fetcher(FetchPolicy(retries=3, **FAST))
        task = asyncio.create_task(fetcher.fetch(server.url("x")))
        while not server.hits["/x"]:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)  # the 503 is in: the fetch waits a second before its next attempt
        await fetcher.aclose()
        with pytest.raises(FetchError, match=r"^fetcher is closed \(http://127\.0\.0\.1:\d+/x\)$"):
            await task
        assert fetcher._client is None

    with LocalHTTPServer(handler) as server:
        asyncio.run(main())
        assert server.hits["/x"] == 1


def test_client_errors_are_not_retried():
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(status=404)

    with LocalHTTPServer(handler) as server:
        with pytest.raises(FetchError, match="HTTP 404"):
            _run(FetchPolicy(retries=3, **FAST), lambda f: f.fetch(server.url("missing")))
        assert server.hits["/missing"] == 1


def test_retry_after_seconds_is_honoured():
    async def handler(request: web.Request) -> web.StreamResponse:
        if server.hits[request.path] == 1:
            return web.Response(status=429, headers={"Retry-After": "1"})
        return web.Response(body=b"ok")

    with LocalHTTPServer(handler) as server:
        started = time.monotonic()
        body, _ = _run(FetchPolicy(retries=1, **FAST), lambda f: f.fetch(server.url("r")))
        waited = time.monotonic() - started
    assert body == b"ok"
    assert waited >= 0.95  # the jittered backoff alone would have waited about 10 ms


@pytest.mark.slow  # over 1 s: the fast lane keeps a cheaper case of the same code
def test_retry_after_http_date_is_honoured():
    async def handler(request: web.Request) -> web.StreamResponse:
        if server.hits[request.path] == 1:
            when = email.utils.formatdate(time.time() + 2, usegmt=True)
            return web.Response(status=503, headers={"Retry-After": when})
        return web.Response(body=b"ok")

    with LocalHTTPServer(handler) as server:
        started = time.monotonic()
        body, _ = _run(FetchPolicy(retries=1, **FAST), lambda f: f.fetch(server.url("d")))
    assert body == b"ok" and time.monotonic() - started >= 0.9  # whole seconds: at least 1 s left


def test_timeout_is_per_attempt_and_retried():
    async def handler(request: web.Request) -> web.StreamResponse:
        if server.hits[request.path] == 1:
            await asyncio.sleep(5)
        return web.Response(body=b"late but fine")

    with LocalHTTPServer(handler) as server:
        started = time.monotonic()
        body, _ = _run(FetchPolicy(timeout=0.5, retries=1, **FAST), lambda f: f.fetch(server.url("slow")))
        assert body == b"late but fine" and time.monotonic() - started < 4
        with pytest.raises(FetchError, match=r"timed out after 0.3 s .*1 attempt\)"):
            server.hits.clear()
            _run(FetchPolicy(timeout=0.3, retries=0), lambda f: f.fetch(server.url("slow2")))


def test_body_limit_is_enforced_while_streaming():
    async def handler(request: web.Request) -> web.StreamResponse:
        if request.path == "/declared":
            return web.Response(body=b"x" * 5000)
        return await stream_chunks(request, b"y" * 1000, 50)  # no Content-Length at all

    with LocalHTTPServer(handler) as server:
        policy = FetchPolicy(max_body_bytes=4096, retries=3, **FAST)
        with pytest.raises(FetchError, match="too large: Content-Length 5,000 bytes > limit 4,096"):
            _run(policy, lambda f: f.fetch(server.url("declared")))
        with pytest.raises(FetchError, match="too large: body passed the limit of 4,096"):
            _run(policy, lambda f: f.fetch(server.url("chunked")))
        assert server.hits["/chunked"] == 1  # not retried
        body, _ = _run(FetchPolicy(max_body_bytes=50_000), lambda f: f.fetch(server.url("chunked")))
        assert body == b"y" * 50_000


def test_redirects_are_checked_against_the_policy(tmp_path):
    async def handler(request: web.Request) -> web.StreamResponse:
        if request.path == "/hop":
            raise web.HTTPFound("/final")
        if request.path == "/to-file":
            raise web.HTTPFound(f"file://{tmp_path}/x.json")
        if request.path == "/to-other":
            raise web.HTTPFound("http://localhost:1/elsewhere")
        return web.Response(body=b"final")

    with LocalHTTPServer(handler) as server:
        body, _ = _run(FetchPolicy(), lambda f: f.fetch(server.url("hop")))
        assert body == b"final"
        with pytest.raises(FetchError, match="refused by policy: redirect"):
            _run(FetchPolicy(allow_root=str(tmp_path)), lambda f: f.fetch(server.url("to-file")))
        with pytest.raises(FetchError, match="not in --allow-host"):
            _run(FetchPolicy(allow_hosts=("127.0.0.1",)), lambda f: f.fetch(server.url("to-other")))


def test_connection_refused_is_retried_then_reported():
    policy = FetchPolicy(retries=1, timeout=2, **FAST)
    with pytest.raises(FetchError, match=r"connection error: .*2 attempts"):
        _run(policy, lambda f: f.fetch("http://127.0.0.1:1/nothing-listens"))


def test_untrusted_certificate_fails_without_retries(tmp_path):
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(body=b"secret")

    with LocalHTTPServer(handler, ssl_context=self_signed_context(tmp_path)) as server:
        with pytest.raises(FetchError, match="TLS certificate not trusted") as info:
            _run(FetchPolicy(retries=3, **FAST), lambda f: f.fetch(server.url("x")))
        assert "attempts" not in str(info.value) and server.hits["/x"] == 0


def test_no_credentials_in_reasons():
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(status=403)

    with LocalHTTPServer(handler) as server:
        url = server.url("a.json") + "?X-Amz-Signature=SECRETSIG&token=SECRETTOKEN"
        with pytest.raises(FetchError) as info:
            _run(FetchPolicy(), lambda f: f.fetch(url))
    assert "SECRET" not in str(info.value) and "HTTP 403" in str(info.value)


# ---------------------------------------------------------------- files, fsspec, sync bridge


def test_local_and_memory_files(tmp_path):
    (tmp_path / "a.json").write_bytes(b'{"a": 1}')
    (tmp_path / "big.bin").write_bytes(b"z" * 3000)
    fs = fsspec.filesystem("memory")
    fs.pipe("/fetch-test/m.json", b'{"m": 2}')
    with SyncFetcher(FetchPolicy(allow_root=str(tmp_path), max_body_bytes=2000)) as sync:
        assert sync.fetch(str(tmp_path / "a.json")) == b'{"a": 1}'
        assert sync.fetch(f"file://{tmp_path}/a.json") == b'{"a": 1}'
        assert sync.fetch("memory://fetch-test/m.json") == b'{"m": 2}'
        with pytest.raises(FetchError, match="too large"):
            sync.fetch(str(tmp_path / "big.bin"))
        with pytest.raises(FetchError, match="no such file"):
            sync.fetch(str(tmp_path / "missing.json"))
        with pytest.raises(FetchError, match="no such object"):
            sync.fetch("memory://fetch-test/missing.json")
        results = sync.fetch_many([str(tmp_path / "a.json"), "/etc/passwd"])
        assert results[0] == b'{"a": 1}' and isinstance(results[1], FetchError)


# map_unordered (LoopThread and InlineLoop alike): tests/test_inline_loop.py


@pytest.mark.parametrize("inline", [True, False])
def test_close_returns_once_the_idle_file_threads_have_ended(tmp_path, inline):
    """``close`` shut the file-reading pool down without waiting: its idle threads were still
    ending when the job looked for threads its annotator left, so the quick start's file job
    logged ``method 'file' left 8 thread(s) running after close(): 'totask-fetch_1', ...`` on
    most runs of a loaded machine (the command then skipped Python's exit). Twenty rounds of 64
    threads: before the fix, one round or more found a thread alive on nearly every run."""
    import threading

    names = [tmp_path / f"{i}.json" for i in range(64)]
    for name in names:
        name.write_bytes(b"{}")
    for _ in range(20):
        before = set(threading.enumerate())
        with SyncFetcher(FetchPolicy(allow_root=str(tmp_path), concurrency=64), inline=inline) as sync:
            assert sync.fetch_many([str(n) for n in names]) == [b"{}"] * 64
        left = [t.name for t in threading.enumerate() if t not in before and t.is_alive() and not t.daemon]
        assert left == []


def test_a_loop_thread_closed_with_fetches_pending_cancels_and_awaits_them(caplog):
    """A job that failed on a checkpoint it could not write (S3 credentials revoked mid-job) closed
    the inference annotator's ``SyncFetcher`` with image fetches still pending (``submit``): the
    loop stopped under them, and each, collected later, printed asyncio's ``Task was destroyed
    but it is pending!`` and its repr (45 of them). ``close`` cancels them and waits until each ended."""
    import gc

    from totask_manifest._fetch.loop import LoopThread

    loop = LoopThread()
    pending = [loop.submit(asyncio.sleep(3600)) for _ in range(3)]
    loop.run(asyncio.sleep(0))  # submitted after them: they are running (awaiting) once it is done
    with caplog.at_level("ERROR", logger="asyncio"):
        loop.close()
        assert [f.cancelled() for f in pending] == [True] * 3
        del pending
        gc.collect()
    assert "Task was destroyed" not in caplog.text
