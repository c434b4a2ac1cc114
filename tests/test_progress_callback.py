"""An exception from ``on_progress``, the caller's own code run in the job's thread. A
``KeyboardInterrupt`` it raised (outside the signal handler, which turns a Ctrl-C into a stop)
went through the job unhandled: job.json said RUNNING, as if the job were still going. Another
exception ended the job FAILED, then the callback was called once more with the final counters
and raised again, and that second exception reached the caller (the first was logged with its
traceback). Now: a ``KeyboardInterrupt`` from the callback ends the job STOPPED as Ctrl-C does (checkpoint kept,
output manifest of what is done, ``resume`` carries on); another exception ends it FAILED, its
error naming the callback; the callback is not called again after it raised, and what it raised
reaches the caller once, after job.json holds the final status."""

from __future__ import annotations

import logging
from pathlib import Path

import orjson
import pytest

from tests.jobs_helpers import TOY, write_manifest
from tests.support.toy_annotators import ToyClassifier
from totask_manifest import _api as api
from totask_manifest._jobs.config import JobConfig


def _config(tmp_path: Path, name: str, method: str = TOY) -> JobConfig:
    inp = write_manifest(tmp_path / "in.manifest", 40, bad_every=0)
    return JobConfig(job_name=name, input=str(inp), output_root=str(tmp_path / "out"), label_attribute="cls",
                     task_type="image-classification", method=method, checkpoint_every=1)


class InterruptedToy(ToyClassifier):
    """The toy, raising ``KeyboardInterrupt`` at its third batch (as code that is not ours may)."""

    batches = 0

    def annotate_batch(self, items):  # type: ignore[no-untyped-def]
        type(self).batches += 1
        if type(self).batches == 3:
            raise KeyboardInterrupt
        return super().annotate_batch(items)


class _Raising:
    """An ``on_progress`` that raises ``exc`` on its first call, and counts its calls."""

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc
        self.calls: list[dict[str, int]] = []

    def __call__(self, metrics: dict[str, int]) -> None:
        self.calls.append(dict(metrics))
        raise self.exc


def _job(config: JobConfig) -> dict:
    return orjson.loads((Path(config.output_root) / config.job_name / "job.json").read_bytes())


def test_a_keyboard_interrupt_from_on_progress_stops_the_job_as_ctrl_c_does(tmp_path: Path) -> None:
    config = _config(tmp_path, "kbd")
    callback = _Raising(KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt) as info:
        api.annotate(config, on_progress=callback)
    assert info.value is callback.exc and len(callback.calls) == 1
    job = _job(config)
    assert job["status"] == "STOPPED" and job["error"] is None, job["status"]
    assert job["runs"][-1]["status"] == "STOPPED"
    done = job["metrics"]["success"] + job["metrics"]["failed"]
    assert 1 <= done < 40 and job["metrics"]["stand_by"] == 40 - done
    assert Path(api.status(config.job_url)["output-manifest"]).exists()
    resumed = api.resume(config.job_url)  # from the checkpoint: the lines done are not redone
    assert resumed.status == "COMPLETED" and resumed.metrics["success"] == 40
    assert _job(config)["runs"][-1]["resumed_after_line"] == done  # 1-based: after the lines done


def test_a_keyboard_interrupt_an_annotator_raises_itself_fails_the_job_as_its_other_errors_do(tmp_path: Path) -> None:
    """Not the caller's Ctrl-C (no signal came): taken for one, the job ended STOPPED and every
    resume met it again. It ends FAILED naming it, what was done kept, as any error of the annotator's."""
    config = _config(tmp_path, "annotator", method=f"{__name__}:InterruptedToy")
    result = api.annotate(config)
    job = _job(config)
    assert result.status == job["status"] == "FAILED", job
    assert job["error"].startswith(f"method plugin '{__name__}:InterruptedToy' raised KeyboardInterrupt ("), job
    assert job["metrics"]["success"] == 8  # two batches of 4, checkpointed


def test_an_exception_from_on_progress_fails_the_job_and_reaches_the_caller_once(tmp_path: Path, caplog) -> None:
    config = _config(tmp_path, "boom")
    callback = _Raising(ValueError("the caller's bug"))
    with caplog.at_level(logging.INFO, logger="totask_manifest"), pytest.raises(ValueError) as info:
        api.annotate(config, on_progress=callback)
    assert info.value is callback.exc
    assert len(callback.calls) == 1  # not called again with the final counters, to raise again
    job = _job(config)
    assert job["status"] == "FAILED" and job["error"] == "on_progress raised ValueError: the caller's bug"
    assert not [r for r in caplog.records if r.exc_info], "the traceback is the caller's, not the log's too"
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == [
        "job boom failed: on_progress raised ValueError: the caller's bug"]
    resumed = api.resume(config.job_url)
    assert resumed.status == "COMPLETED" and resumed.metrics["success"] == 40


def test_on_progress_that_raises_at_the_last_call_leaves_the_job_as_it_ended(tmp_path: Path) -> None:
    """Raised by the call with the final counters: the job has ended (COMPLETED), and stays so."""
    config = _config(tmp_path, "last")
    calls: list[dict[str, int]] = []

    def at_the_end(metrics: dict[str, int]) -> None:
        calls.append(metrics)
        if metrics["stand_by"] == 0:
            raise RuntimeError("at the end")

    with pytest.raises(RuntimeError, match="at the end"):
        api.annotate(config, on_progress=at_the_end)
    assert _job(config)["status"] == "COMPLETED"
    assert sum(m["stand_by"] == 0 for m in calls) == 1
