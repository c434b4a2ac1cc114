"""``report`` reads images under the job's fetch policy: no file outside ``--allow-root``, no
redirect to a host outside ``--allow-host``, images over the pixel budget not decoded, and no
traceback for any of it; a real HTTP server on 127.0.0.1 and the real command in a subprocess."""

from __future__ import annotations

import base64
import io
import re
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from aiohttp import web
from PIL import Image

from tests.support.http_server import LocalHTTPServer
from tests.support.job_json import write_job_json
from tests.test_imaging import _png_header_only

REPO = Path(__file__).resolve().parents[1]
SECRET_COLOR = (13, 231, 77)


def _png(color: tuple[int, int, int], size: tuple[int, int] = (80, 60)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return buf.getvalue()


def _line(source: str) -> dict:
    return {"source-ref": source,
            "det": {"image_size": [{"width": 80, "height": 60, "depth": 3}],
                    "annotations": [{"class_id": 0, "left": 5, "top": 5, "width": 30, "height": 20}]},
            "det-metadata": {"objects": [{"confidence": 0.9}], "class-map": {"0": "kite"},
                             "type": "groundtruth/object-detection", "human-annotated": "no",
                             "job-name": "labeling-job/pol", "creation-date": "2026-01-01T00:00:00.0"}}


def _job(root: Path, sources: list[str], options: dict) -> Path:
    job = root / "out" / "pol"
    (job / "manifests" / "output").mkdir(parents=True)
    (job / "manifests" / "output" / "output.manifest").write_bytes(
        b"".join(orjson.dumps(_line(s)) + b"\n" for s in sources))
    (root / "in.manifest").write_bytes(b"".join(orjson.dumps({"source-ref": s}) + b"\n" for s in sources))
    write_job_json(job, root / "in.manifest", "det", "object-detection", options=options)
    return job


def _tiles(html: str) -> list[tuple[str, str]]:
    """(title, thumbnail data or error text) per tile, in order."""
    out = []
    for fig in re.findall(r"<figure>(.*?)</figure>", html, re.S):
        title = re.search(r"<b>(.*?)</b>", fig).group(1)
        img = re.search(r'src="data:image/jpeg;base64,([^"]+)"', fig)
        err = re.search(r'<div class="tile-error">(.*?)</div>', fig, re.S)
        out.append((title, img.group(1) if img else err.group(1)))
    return out


def _report(job: Path, out: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "totask_manifest", "report", str(job), "-o", str(out), *extra],
                          capture_output=True, text=True, timeout=300, check=False, cwd=REPO)


@pytest.mark.slow
def test_report_keeps_to_the_jobs_fetch_policy(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    (root / "inside.png").write_bytes(_png((200, 10, 10)))
    big = Image.new("L", (13000, 13000), 0)
    big.save(root / "big.png")
    (root / "bomb.png").write_bytes(_png_header_only(50_000, 50_000))
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.png").write_bytes(_png(SECRET_COLOR))

    async def handler(request: web.Request) -> web.StreamResponse:
        if request.path == "/redirect":  # the same server under a host name not allowed
            raise web.HTTPFound(f"http://localhost:{request.url.port}/b.png")
        if request.path == "/ok.png":
            return web.Response(body=_png((10, 10, 200)), content_type="image/png")
        return web.Response(body=_png(SECRET_COLOR), content_type="image/png")

    with LocalHTTPServer(handler) as server:
        sources = [str(root / "inside.png"), str(outside / "secret.png"), server.url("/redirect"),
                   server.url("/ok.png"), str(root / "big.png"), str(root / "bomb.png"), "../outside/secret.png"]
        job = _job(tmp_path, sources, {"allow_root": str(root), "allow_hosts": ["127.0.0.1"]})
        run = _report(job, tmp_path / "r.html")
        assert run.returncode == 0, run.stderr
        assert server.hits["/b.png"] == 0  # the redirect was refused before it was followed
        assert server.hits["/ok.png"] == 1
    assert "Traceback" not in run.stderr and "Warning" not in run.stderr
    tiles = _tiles((tmp_path / "r.html").read_text())
    assert len(tiles) == len(sources)
    shown = {title.split(": ", 1)[1]: body for title, body in tiles}
    assert not shown["inside.png"].startswith("image not available")
    assert "outside the allowed root" in shown["secret.png"]
    assert "is not in --allow-host" in shown["redirect"] and "localhost" in shown["redirect"]
    assert not shown["ok.png"].startswith("image not available")
    assert "too large: 13000x13000" in shown["big.png"]
    assert "too large" in shown["bomb.png"] and "decompression-bomb" in shown["bomb.png"]
    # no thumbnail shows the secret colour
    for _title, body in tiles:
        if body.startswith("image not available"):
            continue
        img = Image.open(io.BytesIO(base64.b64decode(body))).convert("RGB")
        assert SECRET_COLOR not in [c for _n, c in img.getcolors(1 << 16)]


@pytest.mark.slow
def test_report_flags_widen_or_narrow_the_policy(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    other = tmp_path / "other"
    other.mkdir()
    (other / "a.png").write_bytes(_png((10, 200, 10)))
    job = _job(tmp_path, [str(other / "a.png")], {"allow_root": str(root)})
    assert _report(job, tmp_path / "r1.html").returncode == 0
    assert "outside the allowed root" in (tmp_path / "r1.html").read_text()
    run = _report(job, tmp_path / "r2.html", "--allow-root", str(other))
    assert run.returncode == 0, run.stderr
    assert "image not available" not in (tmp_path / "r2.html").read_text()
    # a job without --allow-root shows no local image at all
    job2 = _job(tmp_path / "second", [str(other / "a.png")], {})
    assert _report(job2, tmp_path / "r3.html").returncode == 0
    assert "needs --allow-root" in (tmp_path / "r3.html").read_text()
    bad = _report(job, tmp_path / "r4.html", "--allow-root", str(tmp_path / "missing"))
    assert bad.returncode == 2 and "no such folder" in bad.stderr and "Traceback" not in bad.stderr
    assert not (tmp_path / "r4.html").exists()


def test_a_jpeg_over_the_budget_is_reduced_and_its_boxes_scaled(tmp_path):
    from totask_manifest._analytics.report import render_report

    root = tmp_path / "root"
    root.mkdir()
    Image.new("RGB", (800, 600), (255, 255, 255)).save(root / "photo.jpg", quality=95)
    rec = _line(str(root / "photo.jpg"))
    rec["det"] = {"image_size": [{"width": 800, "height": 600, "depth": 3}],
                  "annotations": [{"class_id": 0, "left": 400, "top": 300, "width": 200, "height": 150}]}
    job = tmp_path / "out" / "pol"
    (job / "manifests" / "output").mkdir(parents=True)
    (job / "manifests" / "output" / "output.manifest").write_bytes(orjson.dumps(rec) + b"\n")
    (tmp_path / "in.manifest").write_bytes(orjson.dumps({"source-ref": rec["source-ref"]}) + b"\n")
    write_job_json(job, tmp_path / "in.manifest", "det", "object-detection", options={"allow_root": str(root)})
    # 100,000 pixels: 1/2 (400x300) is over, 1/4 (200x150) fits
    html, n, _ = render_report(str(job), max_image_pixels=100_000)
    assert n == 1
    ((_title, body),) = _tiles(html)
    thumb = Image.open(io.BytesIO(base64.b64decode(body))).convert("RGB")
    assert thumb.size == (200, 150)
    px = thumb.load()
    box = (0x42, 0x69, 0xD0)  # class 0's colour, drawn at the box scaled by 1/4: (100, 75)-(150, 112)

    def near(p: tuple[int, int, int]) -> bool:
        return sum(abs(a - b) for a, b in zip(p, box, strict=True)) < 90

    assert near(px[125, 111]) or near(px[125, 112]) or near(px[125, 110])  # the bottom edge
    assert not near(px[50, 40])


@pytest.mark.slow
def test_s3_images_without_credentials_are_a_tile_not_a_traceback(tmp_path):
    import os

    job = _job(tmp_path, ["s3://no-such-bucket-for-totask/a.png"], {})
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update({"AWS_EC2_METADATA_DISABLED": "true", "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
                "AWS_CONFIG_FILE": str(tmp_path / "none"), "AWS_ENDPOINT_URL": "http://127.0.0.1:1"})
    run = subprocess.run([sys.executable, "-m", "totask_manifest", "report", str(job), "-o", str(tmp_path / "r.html")],
                         capture_output=True, text=True, timeout=300, check=False, cwd=REPO, env=env)
    assert run.returncode == 0, run.stderr
    assert "Traceback" not in run.stderr
    ((_title, body),) = _tiles((tmp_path / "r.html").read_text())
    assert "no storage credentials: NoCredentialsError" in body


def _allow_host_args(tmp_path: Path, command: str, host: str) -> list[str]:
    """``command`` run on sample data with ``--allow-host host`` (its job, page or figures under ``tmp_path``)."""
    from tests.jobs_helpers import sample_job_args

    if command == "annotate":
        return [*sample_job_args("j", str(tmp_path / "out")), "--allow-host", host]
    job = tmp_path / "job"
    (job / "manifests" / "output").mkdir(parents=True, exist_ok=True)
    (job / "manifests" / "output" / "output.manifest").write_bytes(b'{"source-ref":"https://x/a.png"}\n')
    if command == "report":
        return ["report", str(job), "-o", str(tmp_path / "r.html"), "--allow-host", host]
    return ["evaluate", str(job / "manifests" / "output" / "output.manifest"), "--allow-host", host]


@pytest.mark.parametrize("command", ["annotate", "report", "evaluate"])
@pytest.mark.parametrize(("host", "bare", "rule"), [
    ("https://images.example.com", "images.example.com", "not a URL or a path"),
    ("s3://my-bucket", "my-bucket", "not a URL or a path"),
    ("images.example.com/train", "images.example.com", "not a URL or a path"),
    ("http://127.0.0.1:8765/images", "127.0.0.1", "not a URL or a path"),
    ("127.0.0.1:8765", "127.0.0.1", "without a port"),
    ("*.example.com:443", "*.example.com", "without a port"),
    ("[::1]:8080", "[::1]", "without a port"),
    ("images.example.com:", "images.example.com", "without a port"),
])
def test_an_allow_host_written_as_a_url_or_with_a_port_is_refused_naming_the_host(
        tmp_path: Path, capsys: pytest.CaptureFixture, command: str, host: str, bare: str, rule: str) -> None:
    """``--allow-host https://images.example.com`` or ``127.0.0.1:8765`` never matched (hosts are
    compared bare: ``urlsplit().hostname``), so every image failed with "host 'images.example.com'
    is not in --allow-host", which the user had given, and annotate's job ended FAILED."""
    from totask_manifest._cli import main

    assert main(_allow_host_args(tmp_path, command, host)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"--allow-host {host}: a host name is expected ({bare}), {rule}" in err, err
    assert not (tmp_path / "out").exists() and not (tmp_path / "r.html").exists()


@pytest.mark.parametrize("host", ["user:s3cret@files.example.com", "user:s3cret@files.example.com:8443",
                                  "user@files.example.com"])
def test_an_allow_host_with_a_user_or_password_is_refused_without_saying_it(
        tmp_path: Path, capsys: pytest.CaptureFixture, host: str) -> None:
    """``--allow-host user:pw@host`` never matched (hosts are compared bare), and its refusal as a
    host "with a port" repeated the value, password included, on stderr. Refused now as user
    information, the value's credentials left out of the message."""
    from totask_manifest._cli import main

    assert main(_allow_host_args(tmp_path, "annotate", host)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "s3cret" not in err and "user@" not in err and "user:" not in err, err
    assert "--allow-host ***@files.example.com: a host name is expected (files.example.com), without a user" in err, err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("host", "said"), [
    ("", "--allow-host '': a host name is expected, not an empty value"),
    ("  ", "--allow-host '  ': a host name is expected, not an empty value"),
    ("127.0.0.1.", "--allow-host 127.0.0.1.: a host name is expected (127.0.0.1), without the trailing dot"),
])
def test_an_empty_allow_host_or_one_with_a_trailing_dot_is_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture, host: str, said: str) -> None:
    """``--allow-host ''`` (a script's unset ``$HOSTS``) was dropped as blank, which left no host:
    the policy then allowed every host, the job fetched from anywhere, exit 0. ``127.0.0.1.`` never
    matched (a URL's host has no trailing dot): every line failed ``host-not-allowed``."""
    from totask_manifest._cli import main

    for command in ("annotate", "report", "evaluate"):
        assert main(_allow_host_args(tmp_path, command, host)) == 2, command
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and said in err, (command, err)
    assert not (tmp_path / "out").exists() and not (tmp_path / "r.html").exists()


@pytest.mark.parametrize("host", ["::1", "[::1]", "fe80::1", "127.0.0.1", "*.example.com"])
def test_an_ipv6_literal_is_no_host_with_a_port(host: str) -> None:
    """An IPv6 literal's colons are no port: ``::1`` and ``[::1]`` both allow ``http://[::1]:8080/``."""
    from totask_manifest._fetch import FetchPolicy, check_fetch_options

    check_fetch_options({"allow_hosts": [host]})
    url = {"::1": "http://[::1]:8080/a.png", "[::1]": "http://[::1]:8080/a.png", "fe80::1": "http://[fe80::1]/a.png",
           "127.0.0.1": "http://127.0.0.1:8765/a.png", "*.example.com": "https://cdn.example.com:8443/a.png"}[host]
    assert FetchPolicy(allow_hosts=(host,)).classify(url) == ("http", url)
