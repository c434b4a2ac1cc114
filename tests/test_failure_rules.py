"""Failure rules and systematic failure, through real jobs of the ``file`` method: a real HTTP
server on 127.0.0.1, real files, the real CLI.

* every failed line carries ``failure-rule`` in its ``-metadata`` and in ``failures.jsonl``;
* when the first ``min(32, selected)`` lines of a run all fail with one configuration rule the
  job stops FAILED with that reason, without trying the rest;
* a job that labeled nothing is FAILED (exit 1), even when its failures are data failures;
* an empty body is a failure unless the format is declared YOLO;
* a box without a score is written without one and counted as unscored.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import orjson
import pytest
from aiohttp import web

from tests.jobs_helpers import REPO, run_cli
from tests.support.http_server import LocalHTTPServer
from totask_manifest import _api as api
from totask_manifest._analytics.stats import manifest_stats
from totask_manifest._annotators.base import Failed
from totask_manifest._annotators.failure_rules import FAIL_FAST_LINES, rule_of
from totask_manifest._jobs.config import JobConfig

CLASSES = ["cat", "dog"]


def objects_doc(named: bool = True, score: bool = True) -> bytes:
    props = {"label": "dog"} if named else {}
    if score:
        props["confidence"] = 0.7
    return json.dumps({"objects": [{"id": "o1", "class_id": 1, "type": "bbox",
                                    "coordinates": {"x": 1, "y": 2, "width": 3, "height": 4},
                                    "properties": props}]}).encode()


def manifest(path: Path, urls: list[str]) -> Path:
    path.write_bytes(b"".join(orjson.dumps({"source-ref": f"s3://b/{i}.jpg", "label-url": u,
                                            "image_size": [{"width": 10, "height": 10, "depth": 3}]}) + b"\n"
                              for i, u in enumerate(urls)))
    return path


def job(tmp_path: Path, inp: Path, name: str = "j", **options) -> tuple[api.JobResult, dict]:
    config = JobConfig(job_name=name, input=str(inp), output_root=str(tmp_path / "out"), label_attribute="boxes",
                       task_type="object-detection", method="file",
                       # converted to Ground Truth boxes (an ``objects`` file would otherwise be kept as it is)
                       options={"url_key": "label-url", "retries": 0, "timeout": 5, "native": "convert", **options})
    result = api.annotate(config)
    return result, orjson.loads((tmp_path / "out" / name / "job.json").read_bytes())


def failures(tmp_path: Path, name: str = "j") -> list[dict]:
    return [orjson.loads(x) for x in (tmp_path / "out" / name / "failures.jsonl").read_bytes().splitlines()]


@pytest.fixture
def server():
    async def handler(request: web.Request) -> web.StreamResponse:
        name = request.path.strip("/")
        if name.startswith("denied"):
            return web.Response(status=401)
        if name.startswith("gone"):
            return web.Response(status=404)
        if name.startswith("empty"):
            return web.Response(body=b"")
        if name.startswith("nameless"):
            return web.Response(body=objects_doc(named=False))
        if name.startswith("no-objects"):
            return web.Response(body=b'{"objects": []}')
        if name.startswith("unscored"):
            return web.Response(body=objects_doc(score=False))
        return web.Response(body=objects_doc())

    with LocalHTTPServer(handler) as s:
        yield s


def test_the_rule_is_read_from_the_reason_when_an_annotator_gives_none():
    assert Failed("fetch: HTTP 404 (https://h/x.json)").rule == "http-404"
    assert Failed("no URL: the line has no key 'u'").rule == "url-key-missing"
    assert Failed("something new").rule == "failed"
    assert Failed("anything", rule="my-rule").rule == "my-rule"
    with pytest.raises(ValueError, match="lower-case words"):
        Failed("x", rule="Has Spaces")
    assert rule_of("fetch: refused by policy: local file /a/b needs --allow-root") == "allow-root-missing"


@pytest.mark.parametrize("case, rule", [
    ("denied", "http-401"),
    ("nameless", "class-name-missing"),
    ("url-key", "url-key-missing"),
    ("allow-root", "allow-root-missing"),
])
def test_a_configuration_failure_on_every_first_line_stops_the_job(tmp_path, server, case, rule):
    n = 400  # up to 2 x --concurrency (64) lines are started before the first 32 are recorded
    if case == "allow-root":
        (tmp_path / "doc.json").write_bytes(objects_doc())
        urls = [str(tmp_path / "doc.json")] * n
    else:
        urls = [server.url(f"{case}{i}.json") for i in range(n)]
    options = {"url_key": "other-key"} if case == "url-key" else {}
    result, state = job(tmp_path, manifest(tmp_path / "in.manifest", urls), **options)
    assert result.status == "FAILED"
    assert f"each of the first {FAIL_FAST_LINES} lines failed with {rule!r}" in state["error"]
    assert result.metrics["failed"] == FAIL_FAST_LINES and result.metrics["stand_by"] == n - FAIL_FAST_LINES
    if case in ("denied", "nameless"):
        assert sum(server.hits.values()) < n / 2  # it did not try every line
    assert {f["rule"] for f in failures(tmp_path)} == {rule}


@pytest.mark.slow
def test_the_cli_exits_1_with_the_one_reason(tmp_path, server):
    inp = manifest(tmp_path / "in.manifest", [server.url(f"denied{i}.json") for i in range(50)])
    r = run_cli("annotate", str(inp), "--job-name", "j", "--label-attribute", "boxes", "--task-type",
                "object-detection", "--url-key", "label-url", "--retries", "0", "--output", str(tmp_path / "out"))
    assert r.returncode == 1, r.stderr
    assert "'http-401'" in r.stderr and "FAILED" in r.stdout and "Traceback" not in r.stderr


def test_data_failures_do_not_stop_the_job_but_a_job_that_labeled_nothing_fails(tmp_path, server):
    n = 40
    result, state = job(tmp_path, manifest(tmp_path / "in.manifest", [server.url(f"gone{i}.json") for i in range(n)]))
    assert result.status == "FAILED" and result.metrics["failed"] == n  # every line tried: 404 is data
    assert "no line was labeled" in state["error"]
    got = failures(tmp_path)
    assert [f["rule"] for f in got] == ["http-404"] * n
    assert all("gone" in f["reason"] for f in got)  # the reason keeps the detail, the rule groups
    out = tmp_path / "out" / "j" / "manifests" / "output" / "output.manifest"
    metas = [orjson.loads(x)["boxes-metadata"] for x in out.read_bytes().splitlines()]
    assert {m["failure-rule"] for m in metas} == {"http-404"}
    stats = manifest_stats(str(out), workers=1)
    assert stats.attributes["boxes"].failures == {"http-404": n}


def test_one_good_line_among_the_first_keeps_the_job_going(tmp_path, server):
    urls = [server.url(f"denied{i}.json") for i in range(60)]
    urls[FAIL_FAST_LINES - 1] = server.url("ok.json")
    result, _ = job(tmp_path, manifest(tmp_path / "in.manifest", urls))
    assert result.status == "COMPLETED" and result.metrics == {
        "total": 60, "success": 1, "failed": 59, "routed": 0, "stand_by": 0}


def test_an_empty_body_fails_unless_the_format_is_declared_yolo(tmp_path, server):
    urls = [server.url("ok.json"), server.url("empty1.txt"), server.url("empty2.txt")]
    result, _ = job(tmp_path, manifest(tmp_path / "in.manifest", urls))
    assert result.metrics["success"] == 1 and result.metrics["failed"] == 2
    assert [f["rule"] for f in failures(tmp_path)] == ["empty-annotation-file"] * 2
    names = tmp_path / "classes.txt"
    names.write_text("cat\ndog\n")
    result, _ = job(tmp_path, manifest(tmp_path / "in2.manifest", urls[1:]), name="y", input_format="yolo",
                    class_names=str(names))
    assert result.status == "COMPLETED" and result.metrics["success"] == 2
    out = tmp_path / "out" / "y" / "manifests" / "output" / "output.manifest"
    assert all(orjson.loads(x)["boxes"]["annotations"] == [] for x in out.read_bytes().splitlines())


def test_a_box_without_a_score_is_unscored_not_zero(tmp_path, server):
    urls = [server.url("ok.json"), server.url("unscored.json"), server.url("unscored2.json")]
    result, _ = job(tmp_path, manifest(tmp_path / "in.manifest", urls))
    assert result.status == "COMPLETED"
    out = tmp_path / "out" / "j" / "manifests" / "output" / "output.manifest"
    objects = [orjson.loads(x)["boxes-metadata"]["objects"] for x in out.read_bytes().splitlines()]
    assert objects == [[{"confidence": 0.7}], [{}], [{}]]
    a = manifest_stats(str(out), workers=1).attributes["boxes"]
    assert (a.confidence_count, a.unscored, a.confidence_histogram[0]) == (1, 2, 0)


@pytest.mark.slow
def test_a_systematic_failure_on_every_line_a_run_tries_does_not_claim_lines_were_left(tmp_path):
    """The sample job with a wrong ``--url-key`` stops after 32 of its 50 lines, which its output
    shows failed but its checkpoint leaves for ``resume``: resume tries them again and stops the
    same way. A run whose every line (fewer than 32)
    fails so says each line it tried failed, not "stopped without trying the rest" (before, the
    resume of the first job tried the 18 left, stand_by 0, and said it)."""

    def args(src: Path, name: str) -> list[str]:
        return ["annotate", str(src), "--job-name", name, "--label-attribute", "boxes", "--task-type",
                "object-detection", "--method", "file", "--url-key", "no-such-key", "--output", str(tmp_path)]

    sample = REPO / "sample_data" / "manifest.jsonl"
    first = run_cli(*args(sample, "wrong-key"))
    assert first.returncode == 1 and "stopped without trying the rest" in first.stdout + first.stderr
    again = run_cli("resume", str(tmp_path / "wrong-key"))
    assert again.returncode == 1 and "stopped without trying the rest" in again.stderr, again.stderr
    job = json.loads((tmp_path / "wrong-key" / "job.json").read_text())
    assert job["metrics"]["stand_by"] == 18 and job["metrics"]["failed"] == 32, job["metrics"]
    few = tmp_path / "few.jsonl"
    few.write_bytes(b"".join(sample.read_bytes().splitlines(keepends=True)[:18]))
    short = run_cli(*args(few, "few"))
    assert short.returncode == 1, short.stderr
    job = json.loads((tmp_path / "few" / "job.json").read_text())
    assert job["metrics"]["stand_by"] == 0 and job["metrics"]["failed"] == 18
    assert "without trying the rest" not in job["error"], job["error"]
    assert "each of the 18 lines this run tried failed with 'url-key-missing'" in job["error"], job["error"]


def test_an_empty_result_gets_its_own_rule(tmp_path, server):
    """``TASK_INFERENCE_EMPTY_RESULT`` (a kept document with no annotation, never submitted) is
    grouped as ``empty-result`` in the line's metadata, ``failures.jsonl`` and ``stats``, not as
    the generic ``failed``."""
    from totask_manifest._analytics.stats import manifest_stats
    from totask_manifest._formats.native import EMPTY_RESULT, empty_document

    assert rule_of(EMPTY_RESULT) == "empty-result"
    urls = [server.url("ok.json"), server.url("no-objects1.json"), server.url("no-objects2.json")]
    result, _ = job(tmp_path, manifest(tmp_path / "in.manifest", urls), native="keep")
    assert result.metrics["success"] == 1 and result.metrics["failed"] == 2
    assert [f["rule"] for f in failures(tmp_path)] == ["empty-result"] * 2
    out = tmp_path / "out" / "j" / "manifests" / "output" / "output.manifest"
    metas = [orjson.loads(x)["boxes-metadata"] for x in out.read_bytes().splitlines()]
    assert [m.get("failure-rule") for m in metas] == [None, "empty-result", "empty-result"]
    # the file method's own reason, naming the file (not the SDK's inference code)
    assert metas[1]["failure-reason"] == empty_document(urls[1])
    assert rule_of(empty_document(urls[1])) == "empty-result"
    assert manifest_stats(str(out)).attributes["boxes"].failures == {"empty-result": 2}
    # a manifest written before the rule existed (no ``failure-rule``): stats reads it from the reason
    older = tmp_path / "older.manifest"
    older.write_bytes(b"".join(orjson.dumps({**r, "boxes-metadata": {k: v for k, v in r["boxes-metadata"].items()
                                                                     if k != "failure-rule"}}) + b"\n"
                               for r in map(orjson.loads, out.read_bytes().splitlines())))
    assert manifest_stats(str(older)).attributes["boxes"].failures == {"empty-result": 2}


def test_keep_going_records_every_failure_instead_of_stopping(tmp_path, server):
    """``keep_going``: the run never stops on a configuration rule; each failure is final (in the
    checkpoint, so a resume has nothing left), and a job that labeled nothing is still FAILED."""
    urls = [server.url(f"denied{i}.json") for i in range(FAIL_FAST_LINES + 8)] + [server.url("ok.json")]
    inp = manifest(tmp_path / "in.manifest", urls)
    config = JobConfig(job_name="k", input=str(inp), output_root=str(tmp_path / "out"), label_attribute="boxes",
                       task_type="object-detection", method="file",
                       options={"url_key": "label-url", "retries": 0, "timeout": 5, "native": "convert"})
    result = api.annotate(config, keep_going=True)
    assert result.status == "COMPLETED" and result.metrics == {
        "total": 41, "success": 1, "failed": 40, "routed": 0, "stand_by": 0}
    assert [f["rule"] for f in failures(tmp_path, "k")] == ["http-401"] * 40
    assert api.resume(result.job_url).status == "COMPLETED"  # recorded: nothing left to try
    everyone = manifest(tmp_path / "all-denied.manifest", urls[:-1])
    result = api.annotate(replace(config, job_name="none", input=str(everyone)), keep_going=True)
    assert result.status == "FAILED" and result.metrics["failed"] == 40 and result.metrics["stand_by"] == 0
    state = orjson.loads((tmp_path / "out" / "none" / "job.json").read_bytes())
    assert state["error"].startswith("no line was labeled"), state["error"]


def test_a_chained_job_keeps_going_when_asked(tmp_path, server):
    urls = [server.url(f"denied{i}.json") for i in range(FAIL_FAST_LINES)] + [server.url("ok.json")]
    first, _ = job(tmp_path, manifest(tmp_path / "in.manifest", urls))
    assert first.status == "FAILED" and first.metrics["stand_by"] == 1  # stopped on the first 32
    again = api.chain(first.job_url, "again")
    assert again.status == "FAILED" and again.metrics["stand_by"] == 1  # the same lines, the same stop
    kept = api.chain(first.job_url, "kept", keep_going=True)
    assert kept.status == "COMPLETED" and (kept.metrics["success"], kept.metrics["failed"]) == (1, FAIL_FAST_LINES)


@pytest.mark.slow
def test_a_resume_whose_last_lines_fail_so_finishes_with_keep_going(tmp_path):
    """A job killed with its last lines left, whose files its credentials may not read (403, a rule
    that points at the configuration): each plain resume tries only those lines and stops FAILED on
    them, for ever; ``resume --keep-going`` records them failed and the job ends COMPLETED."""
    released = threading.Event()

    async def handler(request: web.Request) -> web.StreamResponse:
        if request.path.startswith("/forbidden"):
            while not released.is_set():  # the first run is killed while it waits here
                await asyncio.sleep(0.02)
            return web.Response(status=403)
        return web.Response(body=objects_doc())

    with LocalHTTPServer(handler) as s:
        urls = [s.url(f"ok{i}.json") for i in range(8)] + [s.url(f"forbidden{i}.json") for i in range(4)]
        inp = manifest(tmp_path / "in.manifest", urls)
        folder = tmp_path / "out" / "j"
        argv = [sys.executable, "-m", "totask_manifest", "annotate", str(inp), "--job-name", "j",
                "--label-attribute", "boxes", "--task-type", "object-detection", "--url-key", "label-url",
                "--native", "convert", "--retries", "0", "--concurrency", "1", "--checkpoint-every", "1",
                "--output", str(tmp_path / "out")]
        proc = subprocess.Popen(argv, env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                # the live counters (``status``: from the checkpoint parts; job.json's are saved every few seconds)
                metrics = api.status(str(folder))["metrics"] if (folder / "job.json").exists() else {}
                if metrics.get("success") == 8 and s.hits["/forbidden0.json"]:
                    break
                time.sleep(0.05)
            else:
                raise AssertionError("the first run did not reach its forbidden lines")
        finally:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
        released.set()
        for _ in range(2):  # every plain resume stops on the same four lines
            r = run_cli("resume", str(folder))
            assert r.returncode == 1, r.stderr
            assert "each of the 4 lines this run tried failed with 'http-403'" in r.stderr, r.stderr
            assert "resume --keep-going" in r.stderr and "Traceback" not in r.stderr
        r = run_cli("resume", str(folder), "--keep-going")
        assert r.returncode == 0, r.stderr
        assert "COMPLETED" in r.stdout and "success=8 failed=4" in r.stdout, r.stdout
    assert [f["rule"] for f in failures(tmp_path)] == ["http-403"] * 4
    out = [orjson.loads(x) for x in (folder / "manifests" / "output" / "output.manifest").read_bytes().splitlines()]
    assert [o["boxes-metadata"].get("failure-rule") for o in out] == [None] * 8 + ["http-403"] * 4
    assert all(o["boxes"]["annotations"] for o in out[:8])
    assert run_cli("resume", str(folder)).returncode == 0  # COMPLETED: nothing to do


@pytest.mark.slow
def test_a_stop_on_refused_s3_credentials_leaves_no_warning_of_the_methods_own_threads(tmp_path):
    """The ``file`` method stopped by the first-32-lines rule while its fetch threads still waited
    on S3 (later lines' reads in flight) warned "method 'file' left 12 threads running after
    close(): 'totask-fetch_34', ..." and told the user to fix "an annotator": its own pool,
    which the command leaves behind as it ends (a read only). A real HTTP server on 127.0.0.1
    answers as S3 does to a refused key: 403 at once for the first 32 objects, after 4 s for the
    rest, so that their reads are in flight when the job stops."""
    async def s3_refusing(request: web.Request) -> web.StreamResponse:
        number = int(request.path.rsplit("/", 1)[-1].split(".")[0])
        if number >= FAIL_FAST_LINES:
            await asyncio.sleep(4)
        return web.Response(status=403, content_type="application/xml", body=(
            b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>InvalidAccessKeyId</Code>"
            b"<Message>The AWS Access Key Id you provided does not exist in our records.</Message></Error>"))

    with LocalHTTPServer(s3_refusing) as s3:
        inp = manifest(tmp_path / "in.manifest", [f"s3://b/ann/{i}.json" for i in range(100)])
        env = {"AWS_ENDPOINT_URL": s3.url(""), "AWS_ACCESS_KEY_ID": "AKIAREVOKEDKEY", "AWS_SECRET_ACCESS_KEY": "x",
               "AWS_DEFAULT_REGION": "us-east-1", "AWS_SESSION_TOKEN": ""}
        r = run_cli("annotate", str(inp), "--job-name", "j", "--label-attribute", "boxes", "--task-type",
                    "object-detection", "--url-key", "label-url", "--retries", "0", "--output", str(tmp_path / "out"),
                    env=env)
    assert r.returncode == 1, r.stderr
    assert "'permission-denied'" in r.stderr, r.stderr
    assert "threads running after close()" not in r.stderr and "Traceback" not in r.stderr, r.stderr
