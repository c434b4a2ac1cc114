"""A model endpoint's credentials: from TOTASK_MODEL_AUTHORIZATION at run time, never in a file.

A real endpoint on 127.0.0.1 that answers 401 without the right ``Authorization`` header, the CLI
in a real subprocess: a job labels its lines only with the variable set, resume needs (and reads)
it again, and no byte of the token lands anywhere in the job folder. A ``--model`` URL that
carries a secret (user info, a query) is refused before the job exists, without being echoed.
"""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from aiohttp import web

from tests.jobs_helpers import run_cli
from tests.support.http_server import LocalHTTPServer

TOKEN = "Zq8sEcReTvAlUe41xw"
HEADER = f"Bearer {TOKEN}"
ENV = "TOTASK_MODEL_AUTHORIZATION"


async def endpoint(request: web.Request) -> web.Response:
    """Predicts only for the right header (or, for a job an older version stored, ``?key=old``)."""
    if request.headers.get("Authorization") != HEADER and request.query.get("key") != "old":
        return web.json_response({"detail": f"bad credentials: {request.headers.get('Authorization')}"}, status=401)
    body = await request.json()
    preds = [{"probabilities": [0.1, 0.9]} for _ in body["images"]]
    return web.json_response({"predictions": preds, "class_names": ["cat", "dog"]})


def manifest(tmp_path: Path, n: int) -> Path:
    path = tmp_path / "in.manifest"
    path.write_bytes(b"".join(orjson.dumps({"source-ref": f"s3://bucket/{i}.jpg"}) + b"\n" for i in range(n)))
    return path


def annotate(tmp_path: Path, model: str, env: dict | None = None, name: str = "ep"):
    return run_cli("annotate", str(manifest(tmp_path, 40)), "--job-name", name, "--label-attribute", "cls",
                   "--task-type", "image-classification", "--method", "inference", "--model", model,
                   "--batch-size", "8", "--output", str(tmp_path / "out"), env={ENV: "", **(env or {})})


def folder_bytes(folder: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file())


def labeled(job: Path) -> int:
    lines = [orjson.loads(x) for x in (job / "manifests" / "output" / "output.manifest").read_bytes().splitlines()]
    return sum("cls" in line for line in lines)


def test_the_token_comes_from_the_environment_and_no_byte_of_it_is_stored(tmp_path: Path) -> None:
    with LocalHTTPServer(endpoint) as server:
        url = server.url("predict")
        whole = annotate(tmp_path, url, {ENV: HEADER}, name="whole")
        assert whole.returncode == 0, whole.stderr
        first = annotate(tmp_path, url)  # no credentials: every request 401, the job stops FAILED
        job = tmp_path / "out" / "ep"
        assert first.returncode != 0, first.stderr
        assert orjson.loads((job / "job.json").read_bytes())["status"] == "FAILED"
        assert "HTTP 401" in first.stderr
        again = run_cli("resume", str(job), env={ENV: HEADER + "\n"})  # read again; a pasted newline stripped
        assert again.returncode == 0, again.stderr
        sent = [h.get("Authorization") for h in server.headers_seen]
    assert set(sent) == {None, HEADER}  # the first job's requests without it, the others with it exactly
    assert labeled(tmp_path / "out" / "whole") == 40
    # every line: the 32 the failed run stopped on are tried again (before, only the 8 it had not reached)
    assert labeled(job) == 40
    for name in ("whole", "ep"):
        state = orjson.loads((tmp_path / "out" / name / "job.json").read_bytes())
        assert state["status"] == "COMPLETED" and state["config"]["options"]["model"] == url
    printed = "".join(r.stdout + r.stderr for r in (whole, first, again)).encode()
    stored = folder_bytes(tmp_path / "out") + printed
    for piece in (TOKEN, TOKEN[:8], TOKEN[-8:]):
        assert piece.encode() not in stored


@pytest.mark.parametrize("model", [
    "http://user:PW-Zq8sEc@127.0.0.1:9/predict",
    "http://127.0.0.1:9/predict?token=Tk-Zq8sEc",
    "https://127.0.0.1:9/predict?v=1",  # any query: which parameter is a secret cannot be known
])
def test_a_model_url_with_a_secret_is_refused_before_the_job_exists(tmp_path: Path, model: str) -> None:
    r = annotate(tmp_path, model)
    assert r.returncode == 2, r.stderr
    err = r.stderr.strip()
    assert len(err.splitlines()) == 1 and ENV in err
    assert "Zq8sEc" not in r.stdout + r.stderr and "v=1" not in err
    assert not (tmp_path / "out").exists()


def test_a_job_an_older_version_stored_with_a_secret_url_still_resumes(tmp_path: Path) -> None:
    with LocalHTTPServer(endpoint) as server:
        first = annotate(tmp_path, server.url("predict"))
        job = tmp_path / "out" / "ep"
        assert first.returncode != 0
        state = orjson.loads((job / "job.json").read_bytes())
        state["config"]["options"]["model"] = server.url("predict") + "?key=old"  # as older versions kept it
        (job / "job.json").write_bytes(orjson.dumps(state))
        again = run_cli("resume", str(job), env={ENV: ""})
        assert again.returncode == 0, again.stderr
        assert "nothing new is stored" in again.stderr and "key=old" not in again.stderr
        # a new job from it must not copy the secret: clone is refused until given a plain URL
        cloned = run_cli("clone", str(job), "--job-name", "ep2")
        assert cloned.returncode == 2 and ENV in cloned.stderr and "key=old" not in cloned.stderr
        assert len(cloned.stderr.strip().splitlines()) == 1
    assert labeled(job) == 40


def test_a_variable_a_header_cannot_carry_is_refused_before_the_job_exists(tmp_path: Path) -> None:
    r = annotate(tmp_path, "http://127.0.0.1:9/predict", {ENV: "Bearer Zq8s\x07Ec"})
    assert r.returncode == 2 and ENV in r.stderr and "Zq8s" not in r.stdout + r.stderr, r.stderr
    assert not (tmp_path / "out").exists()


def _echo_cut(cut: str, form: str):
    """An endpoint that answers 400 with a long page echoing the Authorization header it got
    (``form``: the whole value, or the token alone), placed so that the cut of an error answer
    (``cut``: the 160 characters a reason quotes, or the 1024 bytes read of the answer, padded
    with white space that the reason collapses) falls 6 characters into the token."""
    async def handler(request: web.Request) -> web.Response:
        sent = request.headers.get("Authorization", "")
        echoed = sent if form == "header" else sent.split(" ", 1)[-1]
        to_token = echoed.index(TOKEN) + 6
        if cut == "reason":
            pad = ("this key is refused " * 20)[:159 - to_token]
        else:
            pad = " " * (1024 - to_token - len("refused: ")) + "refused: "
        return web.Response(status=400, text=pad + echoed + " (the rest of the page)")
    return handler


@pytest.mark.slow
@pytest.mark.parametrize("client", ["curl", "aiohttp"])
@pytest.mark.parametrize("cut", ["reason", "answer"], ids=["160-characters", "1024-bytes"])
@pytest.mark.parametrize("form", ["header", "token"])
def test_an_echoed_token_cut_by_an_error_answer_leaves_no_byte_of_it(tmp_path: Path, client: str, cut: str,
                                                                      form: str) -> None:
    """An endpoint's error page is cut (to the first 1024 bytes read, then to the 160 characters a
    reason quotes) before the runner hid the Authorization value in it: a token that the cut
    split no longer matched whole, and its first characters stayed in the reason, printed and
    stored in the job folder. A token echoed without its ``Bearer`` was not hidden at all."""
    with LocalHTTPServer(_echo_cut(cut, form)) as server:
        r = run_cli("annotate", str(manifest(tmp_path, 4)), "--job-name", "ep", "--label-attribute", "cls",
                    "--task-type", "image-classification", "--method", "inference", "--model", server.url("predict"),
                    "--batch-size", "4", "--output", str(tmp_path / "out"),
                    env={ENV: HEADER, "TOTASK_HTTP_CLIENT": client})
        assert server.headers_seen and all(h.get("Authorization") == HEADER for h in server.headers_seen)
    assert r.returncode == 1 and "HTTP 400" in r.stderr, r.stderr
    reasons = [orjson.loads(x)["reason"] for x in (tmp_path / "out" / "ep" / "failures.jsonl").read_bytes().splitlines()]
    assert reasons and all("HTTP 400: " in x and "***" in x for x in reasons), reasons
    stored = folder_bytes(tmp_path / "out") + (r.stdout + r.stderr).encode()
    assert TOKEN[:4].encode() not in stored
