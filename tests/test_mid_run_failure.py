"""A job's means breaking mid-run (``failure_rules.MID_RUN_RULES``): a streak of one such rule's
failures after lines worked stops the job FAILED, instead of failing every later line and
saying COMPLETED."""

from __future__ import annotations

import os
import re
from pathlib import Path

import orjson
import pytest
from aiohttp import web

from tests.jobs_helpers import assert_same_output, output_of, run_cli, write_manifest
from tests.support.http_server import LocalHTTPServer
from tests.test_failure_rules import manifest, objects_doc
from totask_manifest import BatchAnnotator, Failed, JobConfig, Labeled, annotate, resume
from totask_manifest._failure_rules import FAIL_FAST_LINES, MID_RUN_LINES

WORKING, LINES = 40, MID_RUN_LINES + 200


class BreaksMidRun(BatchAnnotator):
    """Labels the images numbered below ``WORKING`` and fails the others with the rule the job's
    name ends with (``j-http-404``), as a model whose GPU broke after them would; with
    ``BREAKS_FIXED`` set (the model fixed) it labels every image."""

    batch_size = 16

    def annotate_batch(self, items):
        rule = self.context.job_name.split("-", 1)[1]
        fixed = bool(os.environ.get("BREAKS_FIXED"))

        def works(item) -> bool:
            return fixed or int(re.search(r"img(\d+)", item.record["source-ref"])[1]) < WORKING

        return [Labeled(1, {"class-name": "cat", "confidence": 0.5}) if works(item)
                else Failed(f"{rule}: it broke", rule=rule) for item in items]


def _job(tmp_path: Path, rule: str, src: Path):
    return annotate(JobConfig(job_name=f"j-{rule}", input=str(src), output_root=str(tmp_path / "out"),
                              label_attribute="cls", task_type="image-classification",
                              method=f"{__name__}:BreaksMidRun"))


def _job_json(result) -> dict:
    return orjson.loads(Path(result.job_url, "job.json").read_bytes())


@pytest.mark.parametrize("rule", ["model-error", "http-401", "connection-error", "timeout", "http-403",
                                  "permission-denied", "storage-credentials-refused"])
def test_a_model_that_breaks_mid_run_stops_the_job_failed_not_completed(tmp_path: Path, rule: str) -> None:
    """Before: the first lines labeled, every later one failed one by one, COMPLETED (exit 0); for
    the 403s and a refused session token (S3's answers to credentials revoked or expired) as well."""
    result = _job(tmp_path, rule, write_manifest(tmp_path / "in.manifest", LINES, bad_every=0))
    job = _job_json(result)
    assert result.status == job["status"] == "FAILED", job
    assert job["error"].startswith(f"the last {MID_RUN_LINES} lines failed with {rule!r} after {WORKING} lines")
    # the streak shown failed (this run's output, failures.jsonl), the rest not tried: left for resume
    assert job["metrics"]["success"] == WORKING and job["metrics"]["failed"] == MID_RUN_LINES, job["metrics"]
    assert job["metrics"]["stand_by"] == LINES - WORKING - MID_RUN_LINES


def test_a_streak_of_a_data_rule_or_one_cut_short_goes_on(tmp_path: Path) -> None:
    """``http-404`` (files missing: data) in a long streak, and a mid-run rule's streak one line
    short of the limit before an image that works: the job goes on to the end."""
    result = _job(tmp_path, "http-404", write_manifest(tmp_path / "in.manifest", LINES, bad_every=0))
    assert result.status == "COMPLETED" and result.metrics["failed"] == LINES - WORKING
    short = write_manifest(tmp_path / "short.manifest", WORKING + MID_RUN_LINES - 1, bad_every=0)
    with short.open("ab") as f:  # then image 0 again, which works, and the streak ends one short
        f.write(short.read_bytes().splitlines(keepends=True)[0])
    result = _job(tmp_path, "model-error", short)
    assert result.status == "COMPLETED" and result.metrics["failed"] == MID_RUN_LINES - 1, result.error


def test_resume_after_a_mid_run_stop_labels_the_streak_and_what_was_not_tried(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = _job(tmp_path, "model-error", write_manifest(tmp_path / "in.manifest", LINES, bad_every=0))
    assert first.status == "FAILED"
    monkeypatch.setenv("BREAKS_FIXED", "1")
    again = resume(first.job_url)
    assert again.status == "COMPLETED", again.error
    # before: the failed streak stayed failed (only a chained job labeled it again)
    assert (again.metrics["success"], again.metrics["failed"]) == (LINES, 0)


def _file_job(tmp_path: Path, src: Path, out: str) -> list[str]:
    return ["annotate", str(src), "--job-name", "j", "--label-attribute", "boxes", "--task-type",
            "object-detection", "--method", "file", "--url-key", "label-url", "--retries", "0", "--native",
            "convert", "--output", str(tmp_path / out)]


@pytest.mark.parametrize("lines", [WORKING + MID_RUN_LINES + 60, FAIL_FAST_LINES + 8], ids=["mid-run", "fail-fast"])
def test_credentials_that_lapse_then_work_again_resume_to_a_clean_runs_output(tmp_path: Path, lines: int) -> None:
    """A real ``annotate`` process against a real server whose files answer 401 (from the 41st, or
    from the first) until its credentials work again: the run stops FAILED; ``resume`` ends
    COMPLETED with every line labeled, the output manifest that of a clean run. Before, the lines
    that stopped the run were recorded failed, and resume left them so."""
    refused = {"now": True}
    working = WORKING if lines > FAIL_FAST_LINES + 8 else 0

    async def files(request: web.Request) -> web.Response:
        number = int(request.path.strip("/f.json"))
        if refused["now"] and number >= working:
            return web.Response(status=401, text="token expired")
        return web.Response(body=objects_doc(), content_type="application/json")

    with LocalHTTPServer(files) as server:
        src = manifest(tmp_path / "in.manifest", [server.url(f"f{i}.json") for i in range(lines)])
        first = run_cli(*_file_job(tmp_path, src, "out"))
        job = tmp_path / "out" / "j"
        state = orjson.loads((job / "job.json").read_bytes())
        assert first.returncode == 1 and state["status"] == "FAILED", first.stderr[-2000:]
        assert "'http-401'" in state["error"] and "Traceback" not in first.stderr, state["error"]
        # the lines it stopped on are shown failed, but not recorded so: resume tries them again
        streak = MID_RUN_LINES if working else FAIL_FAST_LINES
        assert (state["metrics"]["success"], state["metrics"]["failed"]) == (working, streak), state["metrics"]
        assert len((job / "failures.jsonl").read_bytes().splitlines()) == streak
        refused["now"] = False  # the credentials work again
        again = run_cli("resume", str(job))
        assert again.returncode == 0, again.stderr[-2000:]
        clean = run_cli(*_file_job(tmp_path, src, "clean"))
        assert clean.returncode == 0, clean.stderr[-2000:]
    state = orjson.loads((job / "job.json").read_bytes())
    assert state["status"] == "COMPLETED" and state["metrics"]["success"] == lines, state["metrics"]
    assert not (job / "failures.jsonl").exists() or not (job / "failures.jsonl").read_bytes()
    assert_same_output(output_of(tmp_path / "out", "j"), output_of(tmp_path / "clean", "j"))
