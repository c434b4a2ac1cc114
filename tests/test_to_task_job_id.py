"""``RAY_JOB_ID``: the Synapse job a ToTask run reports to when ``SYNAPSE_JOB_ID`` is unset.

The SDK v2 job entry point (``synapse_sdk/plugins/entrypoint.py``, ``main``, synapse-sdk
2026.2.17) reads ``os.environ.get('SYNAPSE_JOB_ID') or os.environ.get('RAY_JOB_ID')``; ours read
``SYNAPSE_JOB_ID`` only, so a worker given the job's id as ``RAY_JOB_ID`` alone reported nothing
and its Synapse job stayed PENDING. These run the action and ``run`` against the local Synapse
server and look at which job was told.
"""

from __future__ import annotations

import json

import pytest

from tests.jobs_helpers import run_cli
from totask_manifest import ToTaskAction
from totask_manifest._to_task.job_id import synapse_job_id
from totask_manifest.testing.builders import TOKEN, seed_tasks

pytest_plugins = ["totask_manifest.testing.fixtures"]

REFUSED = {"name": "has space", "project": 7, "agent": 1, "method": "file", "target_specification_name": "a"}


@pytest.mark.parametrize(("env", "expected"), [
    ({"SYNAPSE_JOB_ID": "11"}, "11"),
    ({"RAY_JOB_ID": "22"}, "22"),
    ({"SYNAPSE_JOB_ID": "11", "RAY_JOB_ID": "22"}, "11"),  # the Synapse job's own id wins
    ({"SYNAPSE_JOB_ID": "", "RAY_JOB_ID": "22"}, "22"),  # the SDK's ``or``: empty is unset
    ({"SYNAPSE_JOB_ID": "", "RAY_JOB_ID": ""}, None),
    ({}, None),
    ({"RAY_JOB_ID": " 0a1b-uuid "}, " 0a1b-uuid "),  # used as it is, as the SDK does: nothing stripped
])
def test_the_job_id_is_read_as_the_sdk_reads_it(env: dict[str, str], expected: str | None) -> None:
    assert synapse_job_id(env) == expected


def test_ray_job_id_alone_gets_the_run_reported(synapse, files, tmp_path, monkeypatch) -> None:
    """A full run (export, annotate, apply) with only ``RAY_JOB_ID``: its job goes RUNNING, then
    SUCCEEDED with the result, and the log entries name it."""
    pid = seed_tasks(synapse, files, 2)
    job_id = synapse.add_job()
    monkeypatch.setenv("RAY_JOB_ID", str(job_id))
    params = {"name": "Ray", "project": pid, "agent": 1, "method": "file",
              "target_specification_name": "annotation_data", "pre_processor_params": {}}

    result = ToTaskAction(params=params, output_root=str(tmp_path)).start()

    assert result["status"] == "SUCCEEDED" and result["success_count"] == 2, result
    patches = synapse.job_patches[job_id]
    assert patches[0]["status"] == "RUNNING" and patches[-1]["status"] == "SUCCEEDED"
    assert patches[-1]["result"] == result
    assert synapse.logs and all(e["job"] == str(job_id) for e in synapse.logs)


def test_synapse_job_id_wins_over_ray_job_id(synapse, tmp_path, monkeypatch) -> None:
    ours, ray = synapse.add_job(), synapse.add_job()
    monkeypatch.setenv("SYNAPSE_JOB_ID", str(ours))
    monkeypatch.setenv("RAY_JOB_ID", str(ray))

    result = ToTaskAction(params=REFUSED, output_root=str(tmp_path)).start()

    assert result["status"] == "FAILED"
    assert [p["status"] for p in synapse.job_patches[ours]] == ["RUNNING", "FAILED"]
    assert synapse.job_patches[ray] == []
    assert {r.path for r in synapse.requests} == {f"/jobs/{ours}/"}


def test_an_empty_synapse_job_id_falls_back_to_ray_job_id(synapse, tmp_path, monkeypatch) -> None:
    job_id = synapse.add_job()
    monkeypatch.setenv("SYNAPSE_JOB_ID", "")
    monkeypatch.setenv("RAY_JOB_ID", str(job_id))

    ToTaskAction(params=REFUSED, output_root=str(tmp_path)).start()

    assert [p["status"] for p in synapse.job_patches[job_id]] == ["RUNNING", "FAILED"]


def test_neither_set_or_both_empty_sends_nothing(synapse, tmp_path, monkeypatch) -> None:
    job_id = synapse.add_job()
    assert ToTaskAction(params=REFUSED, output_root=str(tmp_path)).start()["status"] == "FAILED"
    monkeypatch.setenv("SYNAPSE_JOB_ID", "")
    monkeypatch.setenv("RAY_JOB_ID", "")
    assert ToTaskAction(params=REFUSED, output_root=str(tmp_path)).start()["status"] == "FAILED"
    assert synapse.requests == [] and synapse.job_patches[job_id] == []


def test_run_refused_tells_the_job_of_ray_job_id(synapse, tmp_path) -> None:
    """``totask-manifest run`` refusing its parameter file (exit 2) tells the job of ``RAY_JOB_ID``
    alone too: the CLI and the action ask the same place."""
    job_id = synapse.add_job()
    params = tmp_path / "params.json"
    params.write_text(json.dumps(REFUSED))

    done = run_cli("run", str(params), "--output", str(tmp_path / "out"), env={"RAY_JOB_ID": str(job_id)})

    assert done.returncode == 2, (done.stdout, done.stderr)
    assert TOKEN not in done.stdout + done.stderr
    patches = synapse.job_patches[job_id]
    assert [p["status"] for p in patches] == ["RUNNING", "FAILED"], patches
    said = done.stderr.removeprefix("totask-manifest run: error: ").strip()
    assert patches[-1]["result"]["error"] == said
