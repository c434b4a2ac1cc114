"""A manifest read over HTTP in byte ranges from a server that answers them wrong: every reader
(``validate``, ``stats``, a job's input scan) reads through ``_storage.open_read``, whose range
answers ``_http_ranges`` checks. Before, a server that ignores ``Range`` (``python -m
http.server``) ended each command past the first block in a ``ValueError`` traceback (exit 1),
a chunked answer in another, and a ``206`` with other bytes than asked (a shifted range, a body
cut short) or from a file replaced half way was read as it came: lines counted twice or cut in
two, with no word of it. Now each is one line naming the URL without its secrets, exit 2, no job
folder. Real parts: an HTTP server on 127.0.0.1 (fsspec's block size made 64 KiB, so a 1.2 MB
manifest is read in 20 ranges), the CLI in-process."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import fsspec.config
import pytest
from aiohttp import web

from tests.support.http_server import LocalHTTPServer, stream_chunks
from tests.support.remote_commands import assert_refused_in_one_line, range_reading_commands
from totask_manifest._cli import main

#: over the 1 MiB a reader asks for at once: a ranged answer that is not a whole file is read
BODY = b"".join(b'{"source-ref": "s3://b/img-%05d.jpg"}\n' % i for i in range(32_768))
CHANGED = BODY.replace(b"img-", b"IMG-")  # the same size: only the ETag tells
SECRETS = ("s3cr3tPW", "SIGSECRET")
#: read whole in one request; the line to label is its last, read again at its offset by the job
LABELED_FIRST = (b'{"source-ref": "a.jpg", "boxes": {"annotations": []}}\n' * 50
                 + b'{"source-ref": "b.jpg", "ann": "b.json"}\n')


def _range(request: web.Request) -> tuple[int, int]:
    m = re.fullmatch(r"bytes=(\d+)-(\d+)", request.headers["Range"])
    assert m is not None
    return int(m[1]), int(m[2]) + 1


def _partial(body: bytes, start: int, end: int, etag: str = '"v1"') -> web.Response:
    return web.Response(status=206, body=body[start:end],
                        headers={"Content-Range": f"bytes {start}-{end - 1}/{len(body)}", "ETag": etag})


async def _answer(request: web.Request) -> web.StreamResponse:
    kind = request.path.split("/")[1]
    if kind == "chunked":  # no size anywhere
        return await stream_chunks(request, BODY, 1)
    body = LABELED_FIRST if kind == "small" else BODY
    if request.method == "HEAD":
        return web.Response(headers={"Content-Length": str(len(body)), "ETag": '"v1"'})
    if "Range" not in request.headers:
        return web.Response(body=body)
    start, end = _range(request)
    if kind in ("ignores", "small"):  # python -m http.server: the whole file, 200
        return web.Response(body=body)
    if kind == "shifted" and start > 0:  # honest about it: other bytes than asked
        return _partial(BODY, start - 7, end - 7)
    if kind == "short" and start > 0:  # says the range asked, sends less
        return web.Response(status=206, body=BODY[start:end - 5],
                            headers={"Content-Range": f"bytes {start}-{end - 1}/{len(BODY)}", "ETag": '"v1"'})
    if kind == "replaced" and start > 1 << 18:  # a new version of the file from the fifth block on
        return _partial(CHANGED, start, end, '"v2"')
    return _partial(BODY, start, end)


@pytest.fixture(scope="module")
def server():
    with LocalHTTPServer(_answer) as srv:
        yield srv


@pytest.fixture(autouse=True)
def _small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(fsspec.config.conf, "http", {"block_size": 1 << 16})


@pytest.mark.slow  # each reads a 1.2 MB manifest three times in 20 ranges; the small-file test stays fast
@pytest.mark.parametrize(("kind", "says"), [
    ("ignores", "the server does not serve byte ranges (asked for bytes "),
    ("shifted", "the server answered bytes "),
    ("short", "the server sent "),
    ("chunked", "the server does not say its size"),
    ("replaced", "the file changed while it was read (its ETag/Last-Modified is now \"v2\", it was \"v1\")"),
])
def test_a_range_answered_wrong_is_one_line_naming_the_url_with_exit_code_2(
        server: LocalHTTPServer, tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str, says: str) -> None:
    host = server.url("").split("://", 1)[1].rstrip("/")
    shown = f"http://{host}/{kind}/in.manifest"
    for secret in (False, True):
        url = f"http://bob:s3cr3tPW@{host}/{kind}/in.manifest?X-Amz-Signature=SIGSECRET" if secret else shown
        for name, argv in range_reading_commands(url, tmp_path / "out").items():
            assert main(argv) == 2, (name, url)
            prefix = f"totask-manifest {name}: error: cannot read {shown}{'?…' if secret else ''}: "
            assert_refused_in_one_line(capsys.readouterr(), name, prefix, says, SECRETS)
            assert not (tmp_path / "out").exists(), name


@pytest.mark.slow
def test_ranges_answered_right_read_every_line_once(
        server: LocalHTTPServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The same server, answering each range as asked: every line read once, as from a local copy."""
    local = tmp_path / "in.manifest"
    local.write_bytes(BODY)
    assert main(["validate", str(local)]) == 0
    assert "valid: 32,768 lines" in capsys.readouterr().out
    assert main(["validate", server.url("good/in.manifest")]) == 0
    assert "valid: 32,768 lines, 0 errors" in capsys.readouterr().out
    assert main(["stats", server.url("good/in.manifest")]) == 0
    assert "lines: 32,768 (0 blank)" in capsys.readouterr().out


def test_a_job_over_a_small_file_from_a_server_that_ignores_ranges_is_refused_before_it_exists(
        server: LocalHTTPServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A file read whole by the scan, then at its selected line's offset by the job: the job was
    created and ended FAILED when it read that line; it is now refused before it exists, as
    ``validate`` (which reads it whole) still reads it."""
    url = server.url("small/in.manifest")
    argv = range_reading_commands(url, tmp_path / "out")["annotate"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"totask-manifest annotate: error: cannot read {url}: the server does not serve byte "
                          "ranges"), err
    assert not (tmp_path / "out").exists()
    assert main(["stats", url]) == 0
    assert "lines: 51 (0 blank)" in capsys.readouterr().out


async def _gzipping(request: web.Request) -> web.StreamResponse:
    """A server that compresses what the client accepts compressed (nginx with ``gzip on`` for the
    type): a compressed answer cannot be a range, so it sends the whole file, compressed, 200; asked
    for ``identity`` it serves ranges. Its ``HEAD`` (fsspec asks it with ``identity``) says the size."""
    body = LABELED_FIRST if request.path.startswith("/small/") else BODY
    if request.method == "HEAD":
        return web.Response(headers={"Content-Length": str(len(body)), "ETag": '"v1"'})
    if "gzip" in request.headers.get("Accept-Encoding", ""):
        return web.Response(body=gzip.compress(body), headers={"Content-Encoding": "gzip", "ETag": '"v1"'})
    start, end = _range(request)
    return _partial(body, start, end)


def test_a_server_that_compresses_what_the_client_accepts_compressed_is_read_in_ranges(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Byte ranges are ranges of the file as stored, so they are asked uncompressed
    (``Accept-Encoding: identity``, as fsspec asks its ``HEAD``). Asked with aiohttp's default
    (``gzip, deflate``), a small file's compressed whole-file answer was refused as "the file
    changed while it was read (its size is now 77 bytes, it was 2,745)", a larger file's as "the
    server does not serve byte ranges": false alarms, on every read."""
    with LocalHTTPServer(_gzipping) as srv:
        assert main(["stats", srv.url("small/in.manifest")]) == 0, capsys.readouterr().err
        assert "lines: 51 (0 blank)" in capsys.readouterr().out
        assert main(["stats", srv.url("big/in.manifest")]) == 0, capsys.readouterr().err
        assert "lines: 32,768 (0 blank)" in capsys.readouterr().out


async def _no_stream_needed(request: web.Request) -> web.StreamResponse:
    """An empty file (``Content-Length: 0``), and a file whose server says ``Accept-Ranges: none``:
    fsspec opens both as a streaming file, as a file with no size."""
    body = b"" if request.path.startswith("/empty/") else LABELED_FIRST
    headers = {} if request.path.startswith("/empty/") else {"Accept-Ranges": "none"}
    if request.method == "HEAD":
        return web.Response(headers={"Content-Length": str(len(body)), **headers})
    return web.Response(body=body, headers=headers)


def test_an_empty_file_is_read_and_a_server_that_says_no_ranges_is_named_so(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Both were refused as "the server does not say its size (no Content-Length ...)", untrue of
    either: an empty manifest over HTTP is now read as a local one is (0 lines: counted by stats,
    refused by validate as a job refuses it, input-empty), and a server that says it serves no
    ranges is refused in a line that says so."""
    local = tmp_path / "empty.manifest"
    local.write_bytes(b"")
    with LocalHTTPServer(_no_stream_needed) as srv:
        for url in (str(local), srv.url("empty/in.manifest")):
            assert main(["stats", url]) == 0, capsys.readouterr().err
            assert "lines: 0 (0 blank)" in capsys.readouterr().out
            assert main(["validate", url]) == 1
            assert "holds no data object (no line)" in capsys.readouterr().err
        url = srv.url("none/in.manifest")
        assert main(["validate", url]) == 2
        err = capsys.readouterr().err.strip()
        assert err == (f"totask-manifest validate: error: cannot read {url}: the server says it does not serve "
                       "byte ranges (Accept-Ranges: none): download it first (curl -o) and give the local file")


@pytest.mark.parametrize(("says_size", "says"), [
    (True, "the file changed while it was read (its size is now 100 bytes, it was 1277952)"),
    (False, "the file changed while it was read (the server says bytes "),
])
def test_a_file_cut_short_between_its_ranges_is_said_to_have_changed(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], says_size: bool, says: str) -> None:
    """A file cut short after its first range was read: the server answers the next range with a
    ``416`` (aiohttp's own file handler, as nginx, with ``Content-Range: bytes */100``; the second
    server without it). Each command said "ClientResponseError: HTTP 416 Requested Range Not
    Satisfiable", as if the server had failed; it is the same refusal as a file replaced while
    read, exit 2, no job folder."""
    path = tmp_path / "served.manifest"

    async def cut_after_first_range(request: web.Request) -> web.StreamResponse:
        if request.headers.get("Range", "bytes=0-").startswith("bytes=0-") or path.stat().st_size < len(BODY):
            return web.FileResponse(path)
        path.write_bytes(BODY[:100])
        if says_size:
            return web.FileResponse(path)
        return web.Response(status=416)

    with LocalHTTPServer(cut_after_first_range) as srv:
        url = srv.url("in.manifest")
        for name, argv in range_reading_commands(url, tmp_path / "out").items():
            path.write_bytes(BODY)
            assert main(argv) == 2, name
            assert_refused_in_one_line(capsys.readouterr(), name, f"totask-manifest {name}: error: cannot read {url}: ",
                                       says, SECRETS)
            assert not (tmp_path / "out").exists(), name
