"""``resume`` of a job whose input manifest is gone says so in one line: the job's input is
missing, at which path, and what to do (restore it there; resume reads it again and checks its
checksum). Before, it said only ``no such file: PATH``. A job started with a relative input path
is resumed from any folder: ``input.read`` was recorded relative (``in.manifest``), so a resume
from another folder looked for it there. Real jobs (the toy annotator) as subprocesses."""

from __future__ import annotations

import os
import shutil

import orjson
import pytest

from tests.jobs_helpers import REPO, run_cli, toy_job_args, write_manifest

pytestmark = pytest.mark.slow  # CLI subprocesses


def failed_job(tmp_path, inp, *extra):
    """A FAILED job ``out/j`` over ``inp``: every line fails, so there is something to resume."""
    r = run_cli(*toy_job_args(inp, tmp_path / "out", "--toy-fail", "img", *extra))
    assert r.returncode == 1 and "no line was labeled" in r.stdout, r.stderr
    return tmp_path / "out" / "j"


def test_resume_with_the_input_gone_names_it_and_says_what_to_do(tmp_path):
    inp = write_manifest(tmp_path / "in.manifest", 8)
    job = failed_job(tmp_path, inp)
    kept = (job / "job.json").read_bytes()
    shutil.move(inp, tmp_path / "elsewhere.manifest")
    r = run_cli("resume", str(job))
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr == (
        f"totask-manifest resume: error: job 'j' cannot be resumed: its input manifest {inp} is missing; "
        "restore it at that path and run resume again (it reads the input again and checks that its "
        "checksum is the one the job started with)\n")
    assert (job / "job.json").read_bytes() == kept  # nothing recorded for a run that never started
    shutil.move(tmp_path / "elsewhere.manifest", inp)  # restored: resume runs the job again
    r = run_cli("resume", str(job))
    assert r.returncode == 1 and "no line was labeled" in r.stdout, r.stderr  # the toy fails them all again
    assert len(orjson.loads((job / "job.json").read_bytes())["runs"]) == 2


def test_resume_with_its_own_copy_of_the_input_gone_names_the_copy(tmp_path):
    inp = write_manifest(tmp_path / "in.manifest", 8)
    more = tmp_path / "more.manifest"
    more.write_bytes(b"".join(b'{"source-ref":"s3://b/img-more%d.jpg"}\n' % i for i in range(3)))
    job = failed_job(tmp_path, inp, "--append", str(more))
    copy = job / "manifests" / "input" / "input.manifest"
    os.remove(copy)
    r = run_cli("resume", str(job))
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.startswith(
        f"totask-manifest resume: error: job 'j' cannot be resumed: its input manifest {copy} (the copy it made "
        f"of {inp} with --append {more}) is missing; restore it at that path")
    assert r.stderr.count("\n") == 1


def test_a_job_started_with_a_relative_input_is_resumed_from_another_folder(tmp_path):
    write_manifest(tmp_path / "in.manifest", 8)
    r = run_cli(*toy_job_args("in.manifest", "out", "--toy-fail", "img"), cwd=tmp_path)
    assert r.returncode == 1, r.stderr
    job = tmp_path / "out" / "j"
    assert orjson.loads((job / "job.json").read_bytes())["input"]["read"] == str(tmp_path / "in.manifest")
    r = run_cli("resume", str(job), cwd=REPO)
    assert r.returncode == 1 and "no line was labeled" in r.stdout, r.stderr
    # a job written before: input.read relative; named as it is recorded, never as a copy
    data = orjson.loads((job / "job.json").read_bytes())
    (job / "job.json").write_bytes(orjson.dumps({**data, "input": {**data["input"], "read": "in.manifest"}}))
    r = run_cli("resume", str(job), cwd=REPO)
    assert r.returncode == 2 and r.stderr.startswith(
        "totask-manifest resume: error: job 'j' cannot be resumed: its input manifest in.manifest is missing; "), \
        r.stderr


def test_the_missing_copy_line_names_no_secret_of_an_appended_url(tmp_path):
    """A job written before URLs were recorded redacted may hold an ``--append`` URL with its
    password or signature in job.json (resume keeps it there, with a warning, for a job with
    ``--append``). The line naming what the missing copy was made of shows it redacted."""
    inp = write_manifest(tmp_path / "in.manifest", 8)
    more = tmp_path / "more.manifest"
    more.write_bytes(b"".join(b'{"source-ref":"s3://b/img-more%d.jpg"}\n' % i for i in range(3)))
    job = failed_job(tmp_path, inp, "--append", str(more))
    data = orjson.loads((job / "job.json").read_bytes())
    secret = "https://user:pw-s3cret@files.example.com/more.manifest?X-Amz-Signature=sig-s3cret"
    data["config"]["append"] = [secret]  # as a version before the redaction wrote it
    (job / "job.json").write_bytes(orjson.dumps(data))
    os.remove(job / "manifests" / "input" / "input.manifest")
    r = run_cli("resume", str(job))
    assert r.returncode == 2 and "is missing; restore it at that path" in r.stderr, r.stderr
    assert "with --append https://files.example.com/more.manifest" in r.stderr, r.stderr
    assert "s3cret" not in r.stderr + r.stdout, r.stderr


def test_status_of_a_job_whose_input_is_gone_says_what_resume_would(tmp_path):
    """``status`` is where a user looks before ``resume``: of a FAILED job whose input was moved
    away it said nothing of it (its ``changed:`` lines name a changed input, not a missing one),
    and ``resume`` then refused. It shows resume's line (``input-missing`` in ``--format json``)."""
    inp = write_manifest(tmp_path / "in.manifest", 8)
    job = failed_job(tmp_path, inp)
    shutil.move(inp, tmp_path / "elsewhere.manifest")
    said = (f"job 'j' cannot be resumed: its input manifest {inp} is missing; restore it at that path and run "
            "resume again (it reads the input again and checks that its checksum is the one the job started with)")
    r = run_cli("status", str(job))
    assert r.returncode == 0 and f"changed: {said}" in r.stdout.splitlines(), r.stdout
    assert orjson.loads(run_cli("status", str(job), "--format", "json").stdout)["input-missing"] == said
    shutil.move(tmp_path / "elsewhere.manifest", inp)
    assert "input-missing" not in orjson.loads(run_cli("status", str(job), "--format", "json").stdout)


def test_status_of_a_job_whose_input_store_refuses_does_not_call_it_missing(tmp_path):
    """A store that cannot say whether the input is there (a 403, a 5xx) was shown as
    ``input-missing``, "cannot be resumed: ... is missing; restore it": its own words are shown,
    under ``input-unreadable``."""
    from aiohttp import web

    from tests.support.http_server import LocalHTTPServer

    async def refuse(request: web.Request) -> web.Response:
        return web.Response(status=403, text="AccessDenied")

    inp = write_manifest(tmp_path / "in.manifest", 8)
    job = failed_job(tmp_path, inp)
    with LocalHTTPServer(refuse) as server:
        url = server.url("in.manifest")
        record = (job / "job.json").read_bytes().replace(orjson.dumps(str(inp)), orjson.dumps(url))
        (job / "job.json").write_bytes(record)
        shown = orjson.loads(run_cli("status", str(job), "--format", "json").stdout)
        text = run_cli("status", str(job)).stdout
    assert "input-missing" not in shown and "403" in shown["input-unreadable"], shown
    assert f"changed: {shown['input-unreadable']}" in text.splitlines(), text
