"""Parameters the ToTask action refuses, with ``SYNAPSE_JOB_ID`` set: the action returned its
``FAILED`` result and told the Synapse job nothing, so the job the platform started for it stayed
PENDING for ever, where the SDK's job entry point marks it RUNNING, then FAILED with the error, for
any action whose parameters fail. The job is now told the same; nothing else is sent, nothing written.
"""

from __future__ import annotations

from totask_manifest import ToTaskAction

pytest_plugins = ["totask_manifest.testing.fixtures"]

PARAMS = {"name": "has space", "project": 7, "agent": 1, "method": "file", "target_specification_name": "a"}


def test_refused_parameters_fail_the_synapse_job_as_the_sdk_does(synapse, tmp_path, monkeypatch) -> None:
    job_id = synapse.add_job()
    monkeypatch.setenv("SYNAPSE_JOB_ID", str(job_id))

    result = ToTaskAction(params=PARAMS, output_root=str(tmp_path)).start()

    assert result["status"] == "FAILED" and result["message"].startswith("invalid parameters: name:")
    patches = synapse.job_patches.get(job_id, [])
    assert [p["status"] for p in patches] == ["RUNNING", "FAILED"], patches
    assert patches[-1]["result"] == {**result, "error": result["message"]}
    assert {r.path for r in synapse.requests} == {f"/jobs/{job_id}/"}  # no task, project or log asked
    assert list(tmp_path.iterdir()) == []


def test_without_a_synapse_job_refused_parameters_send_nothing(synapse, tmp_path) -> None:
    result = ToTaskAction(params=PARAMS, output_root=str(tmp_path)).start()
    assert result["status"] == "FAILED" and synapse.requests == []
