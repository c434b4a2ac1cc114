"""Parameters the ToTask action refuses, with ``SYNAPSE_JOB_ID`` set: the action returned its
``FAILED`` result and told the Synapse job nothing, so the job the platform started for it stayed
PENDING for ever, where the SDK's job entry point marks it RUNNING, then FAILED with the error, for
any action whose parameters fail. The job is now told the same; nothing else is sent, nothing written.
"""

from __future__ import annotations

import json

from tests.jobs_helpers import run_cli
from totask_manifest import ToTaskAction
from totask_manifest.testing.builders import TOKEN

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


def test_run_with_refused_parameters_fails_the_synapse_job_as_the_action_does(synapse, tmp_path) -> None:
    """``run`` checked the parameter file itself (exit 2, one line naming it) before the action
    started, so with ``SYNAPSE_JOB_ID`` set its Synapse job was told nothing and stayed PENDING,
    where the Python action marks it RUNNING, then FAILED with the error. Both go through one
    piece of code now: the job gets the same result (with the line ``run`` says), ``run`` still exits
    2 naming the file."""
    job_id = synapse.add_job()
    params = tmp_path / "params.json"
    params.write_text(json.dumps(PARAMS))

    done = run_cli("run", str(params), "--output", str(tmp_path / "out"), env={"SYNAPSE_JOB_ID": str(job_id)})

    assert done.returncode == 2, (done.stdout, done.stderr)
    assert done.stderr.startswith(f"totask-manifest run: error: parameter file {params}: invalid parameters: name:"), done.stderr
    assert "Traceback" not in done.stderr and TOKEN not in done.stdout + done.stderr
    patches = synapse.job_patches.get(job_id, [])
    assert [p["status"] for p in patches] == ["RUNNING", "FAILED"], patches
    # the action's FAILED result (no job id here: nothing sent), with the line run says (it names the file)
    expected = ToTaskAction(params=PARAMS, output_root=str(tmp_path / "py")).start()
    said = done.stderr.removeprefix("totask-manifest run: error: ").strip()
    assert said == f"parameter file {params}: {expected['message']}"
    assert patches[-1]["result"] == {**expected, "message": said, "error": said}
    assert {r.path for r in synapse.requests} == {f"/jobs/{job_id}/"}  # no task, project or log asked
    assert not (tmp_path / "out").exists()


def test_run_with_an_unreadable_parameter_file_fails_the_synapse_job(synapse, tmp_path) -> None:
    """A parameter file that is not YAML is refused before the action too: the job is told, with the line ``run`` says."""
    job_id = synapse.add_job()
    params = tmp_path / "params.yaml"
    params.write_text("name: [unclosed\n")

    done = run_cli("run", str(params), env={"SYNAPSE_JOB_ID": str(job_id)})

    assert done.returncode == 2, (done.stdout, done.stderr)
    said = done.stderr.removeprefix("totask-manifest run: error: ").strip()
    assert said.startswith(f"parameter file {params} is not valid YAML"), done.stderr
    patches = synapse.job_patches.get(job_id, [])
    assert [p["status"] for p in patches] == ["RUNNING", "FAILED"], patches
    assert patches[-1]["result"]["status"] == "FAILED"
    assert patches[-1]["result"]["message"] == said and patches[-1]["result"]["error"] == said
