"""A manifest read over HTTP (``annotate``, ``validate``, ``stats`` on an ``http://`` URL, which fsspec
reads) whose server fails: each failure is one line naming the URL without its secrets, exit code 2
(a storage URL that cannot be read), and no job folder. Before, a 500 and a redirect loop read
"not found" (fsspec's HTTP ``exists`` says False for any error, its ``open`` raises
``FileNotFoundError``), and a body cut short was a traceback (aiohttp's ``ClientPayloadError``)
with exit code 1. Real parts: an HTTP server on 127.0.0.1, the CLI in-process."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import fsspec
import pytest
from aiohttp import web

from tests.support.http_server import LocalHTTPServer, cut_short
from tests.support.remote_commands import assert_refused_in_one_line, range_reading_commands
from totask_manifest._cli import main

BODY = b'{"source-ref": "a.jpg"}\n' * 40
SECRETS = ("s3cr3tPW", "SIGSECRET")
#: set when the module's tests are done: a stalled answer waits for it, never for a clock
RELEASE = threading.Event()


async def _answer(request: web.Request) -> web.StreamResponse:
    kind = request.path.split("/")[1]
    if kind == "fails":
        return web.Response(status=500, text="upstream down")
    if kind == "loops":
        raise web.HTTPFound(request.path)
    if kind == "cut":
        if request.method == "HEAD":  # fsspec asks for the size first; the body then comes short
            return web.Response(status=200, headers={"Content-Length": str(len(BODY))})
        return await cut_short(request, BODY[:30], declared=len(BODY))
    if kind == "stalls":  # the headers and the start of the body, then nothing more
        if request.method == "HEAD":
            return web.Response(status=200, headers={"Content-Length": str(len(BODY))})
        resp = web.StreamResponse(status=200)
        resp.content_length = len(BODY)
        await resp.prepare(request)
        await resp.write(BODY[:30])
        while not RELEASE.is_set():
            await asyncio.sleep(0.05)
        return resp
    if kind == "ok":
        return web.Response(body=BODY)
    return web.Response(status=404, text="not found")


@pytest.fixture(scope="module")
def server():
    with LocalHTTPServer(_answer) as srv:
        try:
            yield srv
        finally:
            RELEASE.set()


@pytest.mark.parametrize(("kind", "says"), [
    ("fails", "HTTP 500 Internal Server Error"),
    ("loops", "TooManyRedirects"),
    ("cut", "ClientPayloadError: Response payload is not completed"),
])
def test_a_manifest_server_that_fails_is_named_in_one_line_with_exit_code_2(
        server: LocalHTTPServer, tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str, says: str) -> None:
    host = server.url("").split("://", 1)[1].rstrip("/")
    url = f"http://bob:s3cr3tPW@{host}/{kind}/in.manifest?X-Amz-Signature=SIGSECRET"
    shown = f"http://{host}/{kind}/in.manifest?…"
    for name, argv in range_reading_commands(url, tmp_path / "out").items():
        assert main(argv) == 2, name
        assert_refused_in_one_line(capsys.readouterr(), name, f"totask-manifest {name}: error: cannot read {shown}: ",
                                   says, SECRETS)
    assert not (tmp_path / "out" / "j").exists()


def test_a_missing_manifest_still_reads_not_found_and_a_good_one_is_read(
        server: LocalHTTPServer, capsys: pytest.CaptureFixture[str]) -> None:
    """Only a 404 is "not found"; the same server's good manifest validates."""
    assert main(["validate", server.url("gone/in.manifest")]) == 2
    assert capsys.readouterr().err.strip() == f"totask-manifest validate: error: no such file: {server.url('gone/in.manifest')}"
    assert main(["validate", server.url("ok/in.manifest")]) == 0


def test_a_manifest_server_that_stalls_is_a_timeout_in_one_line(
        server: LocalHTTPServer, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """aiohttp's whole-request limit (5 minutes in fsspec's http file system; 1 s here, through
    fsspec's configuration) raises a bare ``TimeoutError``: the error line said nothing at all,
    ``totask-manifest validate: error: ``."""
    import aiohttp

    monkeypatch.setitem(fsspec.config.conf, "http", {"client_kwargs": {"timeout": aiohttp.ClientTimeout(total=1)}})
    host = server.url("").split("://", 1)[1].rstrip("/")
    url = f"http://bob:s3cr3tPW@{host}/stalls/in.manifest?X-Amz-Signature=SIGSECRET"
    for name, argv in range_reading_commands(url, tmp_path / "out").items():
        assert main(argv) == 2, name
        err = capsys.readouterr().err.strip()
        assert err == f"totask-manifest {name}: error: cannot read http://{host}/stalls/in.manifest?…: timed out", err
