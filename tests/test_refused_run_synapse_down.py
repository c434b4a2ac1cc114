"""A refused ``run`` (bad parameters) with ``SYNAPSE_JOB_ID`` set while Synapse is down: telling
the job went through the client's whole retry schedule (4 attempts over 12 s for each of the two
PATCHes, a second apart), so the user waited about 25 s to learn their parameter was wrong, and
was not told that the job had not been marked. The report is now best-effort: each PATCH tried
twice at most, at once, no ``FAILED`` after a ``RUNNING`` Synapse could not take, then exit 2 with
the refusal and one line saying the job was not told (naming the host, never the token).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from tests.jobs_helpers import closed_port, run_cli
from totask_manifest import ToTaskAction
from totask_manifest._to_task.refused import REPORT_OPTIONS
from totask_manifest.testing.builders import TOKEN

pytest_plugins = ["totask_manifest.testing.fixtures"]

PARAMS = {"name": "has space", "project": 7, "agent": 1, "method": "file", "target_specification_name": "a"}
#: the most attempts a refused run's report makes of one request
ATTEMPTS = 1 + REPORT_OPTIONS["retries"]
ERROR = "totask-manifest run: error: parameter file {}: invalid parameters: name:"


def _params(tmp_path: Path) -> Path:
    path = tmp_path / "params.json"
    path.write_text(json.dumps(PARAMS))
    return path


def test_refused_run_with_synapse_unreachable_exits_2_at_once_saying_the_job_was_not_told(synapse, tmp_path) -> None:
    host = f"http://127.0.0.1:{closed_port()}"
    params = _params(tmp_path)

    done = run_cli("run", str(params), "--output", str(tmp_path / "out"),
                   env={"SYNAPSE_HOST": host, "SYNAPSE_JOB_ID": "41"}, timeout=60)

    assert done.returncode == 2, (done.stdout, done.stderr)
    lines = done.stderr.splitlines()
    assert len(lines) == 2, done.stderr
    assert lines[0].startswith(ERROR.format(params)), done.stderr
    assert lines[1].startswith(f"totask-manifest run: the Synapse job 41 at {host} was not told of this refusal"), lines
    assert "PATCH /jobs/41/" in lines[1] and f"after {ATTEMPTS} attempts" in lines[1], lines  # the bounded schedule
    assert TOKEN not in done.stdout + done.stderr and "Traceback" not in done.stderr
    assert done.stdout == "" and not (tmp_path / "out").exists()


def test_refused_run_with_synapse_unavailable_makes_the_bounded_attempts_only(synapse, tmp_path) -> None:
    """503 to everything: ``RUNNING`` is tried ``ATTEMPTS`` times (the client's default is 4 over
    12 s), and ``FAILED`` is not sent after it, where it was 8 requests before exit."""
    job_id = synapse.add_job()
    synapse.down = "503"
    params = _params(tmp_path)

    done = run_cli("run", str(params), env={"SYNAPSE_JOB_ID": str(job_id)}, timeout=60)

    assert done.returncode == 2, (done.stdout, done.stderr)
    lines = done.stderr.splitlines()
    assert len(lines) == 2 and lines[0].startswith(ERROR.format(params)), done.stderr
    assert lines[1].startswith(f"totask-manifest run: the Synapse job {job_id} at {synapse.url} was not told"), lines
    assert "503" in lines[1] and TOKEN not in done.stderr, lines
    assert [(r.method, r.path) for r in synapse.requests] == [("PATCH", f"/jobs/{job_id}/")] * ATTEMPTS
    assert [r.body["status"] for r in synapse.requests] == ["RUNNING"] * ATTEMPTS


def test_refused_run_with_synapse_up_tells_the_job_and_says_nothing_more(synapse, tmp_path) -> None:
    job_id = synapse.add_job()
    params = _params(tmp_path)

    done = run_cli("run", str(params), env={"SYNAPSE_JOB_ID": str(job_id)}, timeout=60)

    assert done.returncode == 2, (done.stdout, done.stderr)
    assert done.stderr.splitlines() == [done.stderr.strip()] and done.stderr.startswith(ERROR.format(params))
    patches = synapse.job_patches.get(job_id, [])
    assert [p["status"] for p in patches] == ["RUNNING", "FAILED"], patches
    assert patches[-1]["result"]["error"] == done.stderr.removeprefix("totask-manifest run: error: ").strip()
    assert len(synapse.requests) == 2  # one attempt each


def test_a_job_refusing_running_is_still_told_failed(synapse, tmp_path) -> None:
    """A 4xx to ``RUNNING`` is an answer, not an outage: ``FAILED`` is still sent, and it was told."""
    job_id = synapse.add_job()
    synapse.add_fault(status=400, method="PATCH", path=f"/jobs/{job_id}/", times=1)
    params = _params(tmp_path)

    done = run_cli("run", str(params), env={"SYNAPSE_JOB_ID": str(job_id)}, timeout=60)

    assert done.returncode == 2 and len(done.stderr.splitlines()) == 1, done.stderr
    assert [p["status"] for p in synapse.job_patches.get(job_id, [])] == ["FAILED"]


def test_the_action_refusing_parameters_with_synapse_down_warns_after_the_bounded_attempts(
        synapse, tmp_path, monkeypatch, caplog) -> None:
    """The Python action refuses through the same code: its ``FAILED`` result, and a warning that the job was not told."""
    job_id = synapse.add_job()
    synapse.down = "503"
    monkeypatch.setenv("SYNAPSE_JOB_ID", str(job_id))

    with caplog.at_level(logging.WARNING, logger="totask_manifest"):
        result = ToTaskAction(params=PARAMS, output_root=str(tmp_path)).start()

    assert result["status"] == "FAILED" and result["message"].startswith("invalid parameters: name:")
    assert len(synapse.requests) == ATTEMPTS
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and warnings[0].startswith(f"the Synapse job {job_id} at {synapse.url} was not told"), warnings
    assert TOKEN not in warnings[0]


def test_a_run_that_is_not_refused_keeps_the_client_s_retries(synapse) -> None:
    """Only the refusal's client is cut short: the client every other path makes retries as the SDK does."""
    from totask_manifest._synapse.sync_client import SynapseClient

    job_id = synapse.add_job()
    synapse.add_fault(status=503, method="PATCH", path=f"/jobs/{job_id}/", times=3)
    with SynapseClient(max_concurrency=1, backoff=0.0) as client:  # the default schedule, its waits cut
        client.update_job(job_id, {"status": "RUNNING"})
    assert len(synapse.requests) == 4 and synapse.job_patches[job_id][-1]["status"] == "RUNNING"
