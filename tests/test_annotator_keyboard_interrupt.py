"""A ``KeyboardInterrupt`` that annotator code raises itself (a method plugin's ``annotate_batch``, a
``--converter`` plugin's hook) was taken for the user's Ctrl-C: the job ended STOPPED (exit 130) and
every resume met it again. It is now that code's error, under the rule its other errors follow: a
converter's fails its line (``convert: KeyboardInterrupt: ...``), a method plugin's fails the job
naming it. A real SIGINT or SIGTERM still stops the job. Real CLI subprocesses, plugins the test
writes."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import orjson
import pytest

from tests.jobs_helpers import REPO, plugin_job_argv
from tests.support.sessions import signal_once_marked

PLUGIN = '''
import os
import time

from totask_manifest import BatchAnnotator, Labeled


class Convert:
    def convert_data_from_file(self, primary_file_url, primary_file_name, data_file_url, data_file_name,
                               task_data=None):
        if data_file_url.endswith("l1.json"):
            raise KeyboardInterrupt("the converter gave up")
        return {"annotations": {"image_1": [{"id": "a000000001", "tool": "classification",
                                             "classification": {"class": "a"}}]},
                "annotationsData": {"image_1": [{"id": "a000000001"}]}}


class GivesUp(BatchAnnotator):
    name = "gives-up"
    batch_size = 1

    def annotate_batch(self, items):
        if items[0].index == 1:
            if os.environ.get("MARK"):  # wait for the test's signal
                open(os.environ["MARK"], "w").close()
                time.sleep(30)
            else:
                raise KeyboardInterrupt("the plugin gave up")
        return [Labeled(0, {"class-name": "a", "confidence": 0.5}) for _ in items]
'''


def _annotate(tmp_path: Path, *method: str, **env: str) -> subprocess.Popen:
    args = plugin_job_argv(tmp_path, "kbplug", PLUGIN, *method)
    return subprocess.Popen(args, env=dict(os.environ, PYTHONPATH=f"{REPO}{os.pathsep}{tmp_path}", **env),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)


def _job(tmp_path: Path) -> dict:
    return orjson.loads((tmp_path / "out/j/job.json").read_bytes())


def test_a_converter_that_raises_keyboard_interrupt_fails_its_line(tmp_path: Path) -> None:
    proc = _annotate(tmp_path, "--method", "file", "--url-key", "label-ref", "--converter", "kbplug:Convert",
                     "--allow-root", str(tmp_path))
    _out, err = proc.communicate(timeout=120)
    job = _job(tmp_path)
    assert job["status"] == "COMPLETED", (job, err)
    assert job["metrics"]["success"] == 2 and job["metrics"]["failed"] == 1, job
    failures = [orjson.loads(x) for x in (tmp_path / "out/j/failures.jsonl").read_bytes().splitlines()]
    assert [f["reason"] for f in failures] == ["convert: KeyboardInterrupt: the converter gave up"], failures
    assert "interrupted" not in err and "Traceback" not in err, err


def test_a_method_plugin_that_raises_keyboard_interrupt_fails_the_job_naming_it(tmp_path: Path) -> None:
    """As any exception of ``annotate_batch`` (not one bad item's): the job FAILED, what was done kept."""
    proc = _annotate(tmp_path, "--method", "kbplug:GivesUp")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, out + err
    job = _job(tmp_path)
    # named as any exception of a plugin's is: the plugin, what it raised, and where in its own code
    said = "method plugin 'kbplug:GivesUp' raised KeyboardInterrupt: the plugin gave up ("
    assert job["status"] == "FAILED" and job["error"].startswith(said), job
    assert "kbplug.py line " in job["error"] and job["error"].endswith(", in annotate_batch)"), job
    assert job["metrics"]["success"] == 1, job
    assert f"error: {said}" in out and "interrupted" not in err and "Traceback" not in err, out + err


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_real_signal_while_a_plugin_annotates_still_stops_the_job(tmp_path: Path, signum: int, code: int) -> None:
    proc = _annotate(tmp_path, "--method", "kbplug:GivesUp", MARK=str(tmp_path / "mark"))
    out, err = signal_once_marked(proc, tmp_path / "mark", signum, wait=60)
    assert proc.returncode == code, out + err
    assert _job(tmp_path)["status"] == "STOPPED"
