"""The fetch policy against a symlink swap between the check and the open, and with IPv6
literals; real files, real symlinks and a real HTTP server bound to ::1."""

from __future__ import annotations

import asyncio
import errno
import os
import socket

import pytest
from aiohttp import web

from totask_manifest._errors import FetchError
from totask_manifest._fetch import FetchPolicy, SyncFetcher, open_inside, redact_url

SECRET = b"SECRET-OUTSIDE-THE-ROOT"


@pytest.fixture
def tree(tmp_path):
    """``root/dir/data.json`` inside the root; ``outside/data.json`` (same name) outside it."""
    root = tmp_path / "root"
    (root / "dir").mkdir(parents=True)
    (root / "dir" / "data.json").write_bytes(b'{"inside": true}')
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "data.json").write_bytes(SECRET)
    return root, outside


def _swap_after_check(monkeypatch, root, outside) -> list[str]:
    """Replace ``root/dir`` by a symlink to ``outside`` right after the policy has checked the
    path (and passed it) and before the file is opened: the race, made deterministic."""
    swapped: list[str] = []
    original = FetchPolicy._local_path

    def checked_then_swapped(self, path, shown):
        real = original(self, path, shown)
        if not swapped:
            os.rename(root / "dir", root / "dir-moved")
            os.symlink(outside, root / "dir")
            swapped.append(real)
        return real

    monkeypatch.setattr(FetchPolicy, "_local_path", checked_then_swapped)
    return swapped


def test_a_folder_swapped_for_a_symlink_after_the_check_reads_nothing_outside(tree, monkeypatch):
    root, outside = tree
    swapped = _swap_after_check(monkeypatch, root, outside)
    with (SyncFetcher(FetchPolicy(allow_root=str(root))) as sync,
          pytest.raises(FetchError, match="path changed while it was opened") as err):
        sync.fetch(str(root / "dir" / "data.json"))
    assert swapped, "the swap did not happen between check and open"
    assert (root / "dir" / "data.json").read_bytes() == SECRET  # the name now leads outside
    assert "SECRET" not in str(err.value)


def test_a_file_swapped_for_a_symlink_after_the_check_reads_nothing_outside(tree, monkeypatch):
    root, outside = tree
    original = FetchPolicy._local_path

    def checked_then_swapped(self, path, shown):
        real = original(self, path, shown)
        os.unlink(root / "dir" / "data.json")
        os.symlink(outside / "data.json", root / "dir" / "data.json")
        return real

    monkeypatch.setattr(FetchPolicy, "_local_path", checked_then_swapped)
    with SyncFetcher(FetchPolicy(allow_root=str(root))) as sync, pytest.raises(FetchError, match="path changed"):
        sync.fetch(str(root / "dir" / "data.json"))


def test_symlinks_that_stay_inside_the_root_still_work(tree):
    root, outside = tree
    os.symlink(root / "dir", root / "alias")
    os.symlink(outside, root / "escape")
    with SyncFetcher(FetchPolicy(allow_root=str(root))) as sync:
        assert sync.fetch(str(root / "alias" / "data.json")) == b'{"inside": true}'
        with pytest.raises(FetchError, match="outside the allowed root"):
            sync.fetch(str(root / "escape" / "data.json"))
        with pytest.raises(FetchError, match="is a folder"):
            sync.fetch(str(root / "dir"))


def test_open_inside_refuses_what_is_not_a_regular_file(tree):
    root, _ = tree
    fifo = root / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(OSError, match="not a regular file"):
        open_inside(str(root), str(fifo))  # and does not hang on the FIFO
    fd = open_inside(str(root), str(root / "dir" / "data.json"))
    try:
        assert os.read(fd, 100) == b'{"inside": true}'
    finally:
        os.close(fd)


# ---------------------------------------------------------------- IPv6


def _has_ipv6_loopback() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


class _IPv6Server:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.runner: web.AppRunner | None = None
        self.port = 0

    async def _start(self) -> None:
        async def handler(request: web.Request) -> web.StreamResponse:
            if request.path == "/elsewhere":
                raise web.HTTPFound("http://127.0.0.1:1/x.json")
            return web.Response(body=b'{"v6": true}')

        app = web.Application()
        app.router.add_get("/{tail:.*}", handler)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "::1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    def __enter__(self) -> _IPv6Server:
        import threading

        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self.runner is not None
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.mark.skipif(not _has_ipv6_loopback(), reason="no IPv6 loopback on this machine")
def test_ipv6_literal_urls_are_fetched_and_matched_by_allow_host():
    with _IPv6Server() as server:
        url = f"http://[::1]:{server.port}/x.json"
        for hosts in ((), ("::1",), ("[::1]",)):
            with SyncFetcher(FetchPolicy(allow_hosts=hosts, retries=0)) as sync:
                assert sync.fetch(url) == b'{"v6": true}'
        with (SyncFetcher(FetchPolicy(allow_hosts=("127.0.0.1",), retries=0)) as sync,
              pytest.raises(FetchError, match="host '::1' is not in --allow-host")):
            sync.fetch(url)
        with (SyncFetcher(FetchPolicy(allow_hosts=("::1",), retries=0)) as sync,
              pytest.raises(FetchError, match=r"'127\.0\.0\.1' is not in --allow-host")):
            sync.fetch(f"http://[::1]:{server.port}/elsewhere")


def test_ipv6_literals_in_the_policy_and_in_messages():
    policy = FetchPolicy(allow_hosts=("[2001:db8::1]",))
    assert policy.classify("http://[2001:DB8::1]:8080/a.json")[0] == "http"
    with pytest.raises(FetchError, match="chained fsspec URLs"):
        policy.classify("simplecache::http://[2001:db8::1]/a.json")
    assert redact_url("http://user:pw@[::1]:8080/a.json?sig=x") == "http://[::1]:8080/a.json?…"


def test_a_link_swapped_while_the_path_is_resolved_is_a_refusal_not_an_internal_error(tree, monkeypatch):
    """``os.path.realpath`` raises EINVAL when a symlink on the way becomes a folder between its
    lstat and its readlink (met with a live swap loop: 7 of 1,500 lines were 'internal-error')."""
    root, _ = tree

    def readlink_of_a_link_that_just_became_a_folder(path, *args, **kwargs):
        raise OSError(errno.EINVAL, "Invalid argument", path)

    os.symlink(root / "dir", root / "link")
    monkeypatch.setattr(os, "readlink", readlink_of_a_link_that_just_became_a_folder)
    with SyncFetcher(FetchPolicy(allow_root=str(root))) as sync, pytest.raises(FetchError) as err:
        sync.fetch(str(root / "link" / "data.json"))
    assert "changed while it was checked" in str(err.value) and "refused by policy" in str(err.value)


def test_a_chained_urls_password_is_not_in_the_refusal_nor_in_what_the_tool_prints():
    """A chained fsspec URL (``simplecache::https://bob:pw@host/x``) parses as scheme
    ``simplecache`` with no host, so both redactions returned it whole: the policy's refusal
    (failures.jsonl, the log) and a failure's ``source`` printed the password."""
    from totask_manifest._storage import redact_secret_url

    url = "simplecache::https://bob:s3cr3tPW@example.com/a.jpg?X-Amz-Signature=SIGSECRET"
    with pytest.raises(FetchError, match="chained fsspec URLs") as refused:
        FetchPolicy().classify(url)
    for shown in (str(refused.value), redact_url(url), redact_secret_url(url)):
        assert "s3cr3tPW" not in shown and "SIGSECRET" not in shown, shown
        assert "simplecache::https://example.com/a.jpg?…" in shown, shown
    nested = "zip://a.txt::simplecache::s3://bob:pw@bucket/a.zip"
    assert redact_url(nested) == redact_secret_url(nested) == "zip://a.txt::simplecache::s3://bucket/a.zip"
    # an IPv6 literal is no chain, and a chain without secrets is printed as it is
    assert redact_secret_url("http://[::1]:8080/a.json") == "http://[::1]:8080/a.json"
    assert redact_secret_url("simplecache::s3://bucket/a.json") == "simplecache::s3://bucket/a.json"
