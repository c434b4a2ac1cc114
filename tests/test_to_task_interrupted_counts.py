"""``run`` stopped (SIGTERM) while it writes to Synapse: the Synapse job was told ``FAILED``
(``interrupted``) with ``total_tasks 0, success_count 0``, though the tasks were exported and
some already written; a job page said nothing had happened. The interrupted result now counts
the tasks of the run and those written so far, as a finished or failed run's does, and ``run``
prints it on stdout as it prints every other ending's (it printed nothing).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.jobs_helpers import REPO
from totask_manifest.testing import Fault
from totask_manifest.testing.builders import TOKEN, seed_tasks

pytest_plugins = ["totask_manifest.testing.fixtures"]


def _wait(condition, what: str, limit: float = 60.0) -> None:
    end = time.monotonic() + limit
    while not condition():
        if time.monotonic() > end:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.05)


def _run_stopped_by_sigterm(synapse, tmp_path: Path, project: int, job_id: int, when, what: str
                            ) -> tuple[int, bytes, bytes]:
    """``run`` (a CLI subprocess) on ``project`` for the Synapse job ``job_id``, sent SIGTERM once
    ``when()`` holds: its exit code, stdout and stderr. Killed if it outlives the test."""
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"name": "Stopped", "project": project, "agent": 1, "method": "file",
                                      "target_specification_name": "annotation_data"}))
    env = {**os.environ, "PYTHONPATH": str(REPO), "SYNAPSE_HOST": synapse.url, "SYNAPSE_ACCESS_TOKEN": TOKEN,
           "SYNAPSE_JOB_ID": str(job_id)}
    proc = subprocess.Popen([sys.executable, "-m", "totask_manifest", "run", str(params), "--output",
                             str(tmp_path / "jobs")], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        _wait(when, what)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, out, err


@pytest.mark.slow  # a CLI subprocess; the held writes keep the server's shutdown waiting (10 s)
def test_a_run_stopped_while_it_writes_reports_what_it_wrote(synapse, files, tmp_path: Path) -> None:
    pid = seed_tasks(synapse, files, 4)
    job_id = synapse.add_job()
    # the first two writes go through; the others are held until the run is stopped
    synapse.add_fault(Fault(status=None, method="PUT", skip=2, delay=600, times=None))
    journal = tmp_path / "jobs" / "stopped" / "synapse-journal.jsonl"
    code, out, err = _run_stopped_by_sigterm(
        synapse, tmp_path, pid, job_id, lambda: journal.exists() and journal.read_text().count('"op":"done"') == 2
        and len(synapse.requests_to("PUT")) == 4, "two writes done and two held")
    assert code == 143, err
    final = synapse.job_patches[job_id][-1]["result"]
    assert final["status"] == "FAILED" and final["message"].startswith("interrupted"), final
    assert (final["total_tasks"], final["success_count"], final["failed_count"]) == (4, 2, 0), final
    assert final["metrics"]["stand_by"] == 2, final
    # and on stdout, as every other ending's result (it printed nothing: the counts were only in the records)
    printed = json.loads(out)
    assert printed == {k: v for k, v in final.items() if k != "error"}, (printed, final)
    assert TOKEN not in err.decode()


class _GoneStdout:
    """Standard output whose reader has gone (a closed ssh session's pipe)."""

    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")

    def flush(self) -> None:
        raise BrokenPipeError(32, "Broken pipe")


def test_an_interrupted_run_whose_stdout_is_gone_exits_as_the_signal_says(tmp_path: Path, monkeypatch, capsys) -> None:
    """Printing the interrupted result to a stdout gone raised, which replaced the interrupt: exit
    141 and no 'interrupted' line, where the README promises 129 for a SIGHUP."""
    from totask_manifest import ToTaskAction
    from totask_manifest._cli import main

    def interrupted(self):
        self.last_result = {"status": "FAILED", "message": "interrupted; run the same action again to resume it"}
        stop = KeyboardInterrupt()
        stop.signum = signal.SIGHUP
        raise stop

    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"name": "Gone", "project": 1, "agent": 1, "method": "file",
                                      "target_specification_name": "annotation_data"}))
    monkeypatch.setattr(ToTaskAction, "start", interrupted)
    monkeypatch.setattr(sys, "stdout", _GoneStdout())
    code = main(["run", str(params), "--output", str(tmp_path / "jobs")])
    assert code == 128 + signal.SIGHUP
    assert "interrupted" in capsys.readouterr().err


@pytest.mark.slow  # a CLI subprocess waiting on held file fetches
def test_a_run_stopped_while_it_annotates_reports_its_tasks_not_zero(synapse, files, tmp_path: Path) -> None:
    """``run`` stopped (SIGTERM) while the annotation job runs, before any write: the result said
    ``total_tasks 0`` and every count 0, though the tasks were exported (and some labeled). It
    counts them now: the tasks exported, none written (``success_count`` 0), the rest ``stand_by``."""
    pid = seed_tasks(synapse, files, 6)
    job_id = synapse.add_job()
    # the first two label files come at once, the others 3 s late: the signal comes while they are fetched
    files.add_fault(Fault(status=None, path="^/labels/", skip=2, delay=3, times=None))
    code, out, err = _run_stopped_by_sigterm(synapse, tmp_path, pid, job_id,
                                             lambda: len(files.requests_to("GET", "^/labels/")) >= 3,
                                             "the label files being fetched")
    assert code == 143, err
    assert not synapse.requests_to("PUT")  # stopped before the writes
    final = synapse.job_patches[job_id][-1]["result"]
    assert final["status"] == "FAILED" and final["message"].startswith("interrupted"), final
    assert (final["total_tasks"], final["success_count"], final["failed_count"]) == (6, 0, 0), final
    assert final["metrics"] == {"total": 6, "success": 0, "failed": 0, "stand_by": 6}, final
    assert json.loads(out)["total_tasks"] == 6
