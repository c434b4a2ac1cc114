"""``RAY_JOB_ID`` is not a Synapse job's id: a ToTask run reports to ``SYNAPSE_JOB_ID`` only.

The SDK v2 job entry point (``synapse_sdk/plugins/entrypoint.py``, ``main``, synapse-sdk
2026.2.17) reads ``os.environ.get('SYNAPSE_JOB_ID') or os.environ.get('RAY_JOB_ID')``. Ray sets
``RAY_JOB_ID`` in every worker to its own internal id (``ffffffff`` in a task, ``01000000`` for a
driver), so the fallback would tell a job that is not the run's (``_to_task/job_id.py`` says
more). These run the action and ``run`` against the local Synapse server and look at which job
was told.
"""

from __future__ import annotations

import json

import pytest

from tests.jobs_helpers import run_cli
from totask_manifest import ToTaskAction
from totask_manifest._to_task.job_id import synapse_job_id
from totask_manifest.testing.builders import TOKEN

pytest_plugins = ["totask_manifest.testing.fixtures"]

REFUSED = {"name": "has space", "project": 7, "agent": 1, "method": "file", "target_specification_name": "a"}


@pytest.mark.parametrize(("env", "expected"), [
    ({"SYNAPSE_JOB_ID": "11"}, "11"),
    ({"RAY_JOB_ID": "22"}, None),  # Ray's own id: never a Synapse job's
    ({"SYNAPSE_JOB_ID": "11", "RAY_JOB_ID": "22"}, "11"),
    ({"SYNAPSE_JOB_ID": "", "RAY_JOB_ID": "22"}, None),  # empty is unset (the SDK's ``or``); no fallback
    ({}, None),
    ({"SYNAPSE_JOB_ID": " 0a1b-uuid "}, " 0a1b-uuid "),  # used as it is, as the SDK does: nothing stripped
])
def test_the_job_id_is_synapse_job_id_only(env: dict[str, str], expected: str | None) -> None:
    assert synapse_job_id(env) == expected


@pytest.mark.parametrize("ray_id", ["ffffffff", "01000000"])
def test_ray_job_id_alone_tells_no_job(synapse, tmp_path, monkeypatch, ray_id) -> None:
    """Inside a Ray worker without ``SYNAPSE_JOB_ID``: no job is marked (``01000000`` could name job
    1000000 on a backend that reads ids as integers)."""
    job_id = synapse.add_job()
    monkeypatch.setenv("RAY_JOB_ID", ray_id)

    assert ToTaskAction(params=REFUSED, output_root=str(tmp_path)).start()["status"] == "FAILED"

    assert synapse.requests == [] and synapse.job_patches[job_id] == []


def test_synapse_job_id_is_told_whatever_ray_job_id_holds(synapse, tmp_path, monkeypatch) -> None:
    ours, other = synapse.add_job(), synapse.add_job()
    monkeypatch.setenv("SYNAPSE_JOB_ID", str(ours))
    monkeypatch.setenv("RAY_JOB_ID", str(other))

    result = ToTaskAction(params=REFUSED, output_root=str(tmp_path)).start()

    assert result["status"] == "FAILED"
    assert [p["status"] for p in synapse.job_patches[ours]] == ["RUNNING", "FAILED"]
    assert synapse.job_patches[other] == []
    assert {r.path for r in synapse.requests} == {f"/jobs/{ours}/"}


def test_run_refused_with_ray_job_id_alone_says_one_line_and_tells_no_job(synapse, tmp_path) -> None:
    """``totask-manifest run`` refusing its parameter file (exit 2) asks the same place as the action."""
    job_id = synapse.add_job()
    params = tmp_path / "params.json"
    params.write_text(json.dumps(REFUSED))

    done = run_cli("run", str(params), "--output", str(tmp_path / "out"), env={"RAY_JOB_ID": str(job_id)})

    assert done.returncode == 2, (done.stdout, done.stderr)
    assert len(done.stderr.strip().splitlines()) == 1 and TOKEN not in done.stdout + done.stderr
    assert synapse.requests == [] and synapse.job_patches[job_id] == []
