"""The ToTask action end to end (file and inference methods), its Synapse job reporting, ``run``, resume."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import orjson
import pytest
import yaml

from totask_manifest import ToTaskAction
from totask_manifest._cli import main
from totask_manifest._errors import UsageError
from totask_manifest._to_task.params import validate_params
from totask_manifest.testing import Fault
from totask_manifest.testing.builders import (
    TOKEN,
    fast_client,
    objects_doc,
    seed_tasks,
    token_headers,
)

pytest_plugins = ["totask_manifest.testing.fixtures"]

FAST = {"poll_interval": 0.01, "deferred_initial": 0.01}


def export_listings(synapse) -> list:
    """Listing requests made by export (apply's current-data reads carry ``id__in``)."""
    return [r for r in synapse.requests_to("GET", "^/sdk/tasks/$") if "id__in" not in r.query]


def file_params(pid: int, **extra) -> dict:
    return {"name": "File_Based_Annotation", "description": "from JSON files", "project": pid, "agent": 1,
            "task_filters": {"status": "pending"}, "method": "file",
            "target_specification_name": "annotation_data", "pre_processor_params": {}, **extra}


def test_file_method_end_to_end_reports_to_the_synapse_job(synapse, files, tmp_path, monkeypatch) -> None:
    pid = seed_tasks(synapse, files, 6)
    tasks = sorted(synapse.project_tasks(pid), key=lambda t: t["id"])
    tasks[5]["status"] = "done"  # filtered out
    job_id = synapse.add_job()
    monkeypatch.setenv("SYNAPSE_JOB_ID", str(job_id))
    result = ToTaskAction(params=file_params(pid), output_root=str(tmp_path)).start()
    job = tmp_path / "file-based-annotation"
    # the SDK's ToTaskResult keys, then ours under their own keys
    assert result == {"status": "SUCCEEDED", "message": "to_task completed. success=5, failed=0",
                      "total_tasks": 5, "success_count": 5, "failed_count": 0, "failures": [],
                      "metrics": {"total": 5, "success": 5, "failed": 0, "stand_by": 0},
                      "totask": {"job": str(job), "apply": {"applied": 5, "would-apply": 0, "unchanged": 0,
                                                            "conflict": 0, "failed": 0, "not-labeled": 0}}}
    for i, task in enumerate(tasks[:5]):
        # the SDK's pass-through: each task holds what its label file holds, unchanged
        assert task["data"] == objects_doc(i)
    assert tasks[5]["data"] == {}
    assert (job / "job.json").exists() and (job / "synapse-journal.jsonl").exists()
    assert orjson.loads((job / "job.json").read_bytes())["label-attribute"] == "file-based-annotation"
    # no token ever reached the storage host; every Synapse request carried it
    assert files.requests and token_headers(files.requests) == []
    assert token_headers(synapse.requests) == synapse.requests
    # the Synapse job: RUNNING first, SUCCEEDED last with the result, progress and metrics in the SDK's shapes
    patches = synapse.job_patches[job_id]
    assert patches[0]["status"] == "RUNNING" and patches[-1]["status"] == "SUCCEEDED"
    assert patches[-1]["result"] == result
    final = patches[-1]
    assert final["metrics_record"] == {"record": {"steps": {"annotate_task_data": {"success": 5, "failed": 0, "stand_by": 0}}}}
    steps = final["progress_record"]["record"]["steps"]
    # the SDK v2 ToTask steps and proportions (file method)
    assert [(name, s["proportion"], s["order"]) for name, s in steps.items()] == [
        ("initialize", 10, 0), ("prepare", 5, 1), ("fetch_tasks", 10, 2), ("annotate_task_data", 70, 3), ("finalize", 5, 4)]
    assert all(s["percent"] == 100.0 for s in steps.values())
    assert final["progress_record"]["current_progress"]["overall"] == 100.0
    assert final["progress_record"]["current_progress"]["step"] == "finalize"
    assert final["progress_record"]["current_progress"]["order"] == 4
    times = [r.at for r in synapse.requests_to("PATCH", f"^/jobs/{job_id}/")]
    assert all(b - a >= 0.9 for a, b in itertools.pairwise(times))  # at most one PATCH a second
    events = [e for e in synapse.logs if e["event"] == "annotate_task_data"]
    assert sorted(e["data"]["task_info"]["task_id"] for e in events) == [t["id"] for t in tasks[:5]]
    assert all(e["job"] == str(job_id) and e["data"]["status"] == "success" for e in events)
    assert all(e["step"] == "annotate_task_data" for e in events)
    # every log entry carries its step; the SDK's messages come in the SDK's steps
    assert all(e.get("step") for e in synapse.logs)
    step_of = {e["data"]["key"]: e["step"] for e in synapse.logs if e["event"] == "message"}
    assert step_of["TASK_INITIALIZING"] == "initialize" and step_of["TASK_DATA_COLLECTION_LOADED"] == "initialize"
    assert step_of["TASK_SPECIFICATION_VALIDATED"] == "prepare" and step_of["TASK_TASKS_FETCHED"] == "fetch_tasks"
    assert step_of["TASK_DATA_ANNOTATING"] == "annotate_task_data" and step_of["TASK_DATA_COMPLETED"] == "finalize"
    assert any(e["event"] == "message" and "to_task completed" in e["data"]["content"] for e in synapse.logs)
    # metrics were sent as the writes went on, stand_by counting down
    stand_by = [p["metrics_record"]["record"]["steps"]["annotate_task_data"]["stand_by"] for p in patches]
    assert stand_by == sorted(stand_by, reverse=True) and stand_by[-1] == 0


@pytest.mark.slow
def test_rerun_after_success_is_a_fresh_run_that_writes_only_what_is_new(synapse, files, tmp_path) -> None:
    pid = seed_tasks(synapse, files, 3)
    first = ToTaskAction(params=file_params(pid), output_root=str(tmp_path)).start()
    assert len(synapse.requests_to("PUT")) == 3
    # a new pending task appears; running the action again labels it and leaves the others alone
    unit = synapse.add_data_unit(dict(synapse.data_units[synapse.project_tasks(pid)[0]["data_unit"]]["files"]))
    new_task = synapse.add_task(pid, unit)
    second = ToTaskAction(params=file_params(pid), output_root=str(tmp_path)).start()
    assert first["metrics"]["total"] == 3 and second["status"] == "SUCCEEDED"
    assert second["metrics"] == {"total": 4, "success": 4, "failed": 0, "stand_by": 0}
    assert [p.path for p in synapse.requests_to("PUT")][3:] == [f"/tasks/{new_task}/annotate_task_data/"]
    assert len(export_listings(synapse)) == 2
    [archived] = list((tmp_path / ".totask-archive").iterdir())
    assert archived.name.startswith("file-based-annotation-")
    assert (archived / "synapse-journal.jsonl").exists()
    assert orjson.loads((tmp_path / "file-based-annotation" / "totask-run.json").read_bytes())["status"] == "SUCCEEDED"


@pytest.mark.slow
def test_inference_method_deploys_and_labels(synapse, files, tmp_path, monkeypatch) -> None:
    pid = seed_tasks(synapse, files, 4)
    monkeypatch.setenv("SYNAPSE_JOB_ID", str(synapse.add_job()))
    rel = synapse.add_release("yolo", version="8.1.0")
    synapse.defer_polls = 2
    empty_for = sorted(synapse.project_tasks(pid), key=lambda t: t["id"])[2]
    empty_url = synapse.data_units[empty_for["data_unit"]]["files"]["image_1"]["url"]

    def inference(body: dict) -> dict:
        if body["params"]["json"]["image_path"] == empty_url:
            return {}
        return {"objects": [{"class_id": 1, "type": "bbox", "coordinates": {"x": 2, "y": 3, "width": 4, "height": 5},
                             "properties": {"label": "dog", "confidence": 0.8}}]}

    synapse.inference = inference
    params = {"name": "AI_Auto_Annotation", "project": pid, "agent": 9, "task_filters": {"status": "pending"},
              "method": "inference", "pre_processor": rel, "model": 42, "pre_processor_params": {"confidence_threshold": 0.85}}
    result = ToTaskAction(params=params, output_root=str(tmp_path), timing=FAST).start()
    assert result["status"] == "SUCCEEDED" and result["metrics"] == {"total": 4, "success": 3, "failed": 1, "stand_by": 0}
    assert result["message"] == "to_task completed. success=3, failed=1"
    assert (result["total_tasks"], result["success_count"], result["failed_count"]) == (4, 3, 1)
    assert result["failures"] == [{"task_id": empty_for["id"], "error": "TASK_INFERENCE_EMPTY_RESULT: empty result, not submitted"}]
    [failed] = [e for e in synapse.logs if e["event"] == "message" and e["level"] == "error"]
    assert failed["data"]["content"].startswith(f"Task {empty_for['id']} failed: ") and "key" not in failed["data"]
    assert failed["step"] == "annotate_task_data"
    deploy = [r for r in synapse.requests_to("POST", "^/plugins/yolo/run/$") if r.body["action"] == "deployment"]
    assert len(deploy) == 1 and deploy[0].body["agent"] == 9
    first_calls = [r.body for r in synapse.requests_to("POST", "^/plugins/") if r.body["params"].get("json", {}).get("image_path")]
    assert len(first_calls) == 4
    assert all(b["version"] == "8.1.0" and b["params"]["model"] == 42 and
               b["params"]["json"]["confidence_threshold"] == 0.85 for b in first_calls)
    labeled = [t for t in synapse.project_tasks(pid) if t["id"] != empty_for["id"]]
    # the SDK's pass-through: the pre-processor's result is the task data, unchanged
    assert all(t["data"]["objects"][0]["properties"] == {"label": "dog", "confidence": 0.8} for t in labeled)
    assert empty_for["data"] == {}
    assert token_headers(files.requests) == []


@pytest.mark.slow  # over 1 s: the fast lane keeps a cheaper case of the same code
def test_inference_reporting_uses_the_sdks_inference_proportions_and_names_an_ignored_filter(
        synapse, files, tmp_path, monkeypatch) -> None:
    pid = seed_tasks(synapse, files, 3)
    tasks = sorted(synapse.project_tasks(pid), key=lambda t: t["id"])
    tasks[1]["status"] = "done"
    synapse.ignored_filters = {"status"}  # this backend lists every task whatever the status
    rel = synapse.add_release("yolo", version="8.1.0", required_resources={"required_cpu_count": 1,
                                                                           "required_gpu_count": 0})
    synapse.inference = lambda body: {"objects": [{"class_id": 1, "type": "bbox", "properties": {"label": "dog"},
                                                   "coordinates": {"x": 2, "y": 3, "width": 4, "height": 5}}]}
    job_id = synapse.add_job()
    monkeypatch.setenv("SYNAPSE_JOB_ID", str(job_id))
    params = {"name": "AI_Auto_Annotation", "project": pid, "agent": 9, "method": "inference", "pre_processor": rel,
              "task_filters": {"status": "pending"}}
    result = ToTaskAction(params=params, output_root=str(tmp_path), timing=FAST).start()
    assert result["status"] == "SUCCEEDED" and result["total_tasks"] == 2 and result["success_count"] == 2
    assert result["totask"]["filters_not_applied"] == {"status=pending": 1}
    assert tasks[1]["data"] == {}  # the task the backend should not have listed was left alone
    [deploy] = [r.body for r in synapse.requests_to("POST", "^/plugins/") if r.body["action"] == "deployment"]
    assert deploy["params"] == {"num_cpus": 1, "num_gpus": 0} and deploy["language"] == "ko"
    final = synapse.job_patches[job_id][-1]
    steps = final["progress_record"]["record"]["steps"]
    assert [(n, s["proportion"]) for n, s in steps.items()] == [
        ("initialize", 10), ("prepare", 20), ("fetch_tasks", 10), ("annotate_task_data", 60), ("finalize", 5)]
    assert final["progress_record"]["current_progress"]["overall"] == 100.0
    [warning] = [e for e in synapse.logs if e["data"].get("key") == "TOTASK_FILTER_NOT_APPLIED"]
    assert warning["level"] == "warning" and warning["step"] == "fetch_tasks"
    assert warning["data"]["content"].startswith("the backend did not apply filter status=pending: 1 listed task")
    # the pre-processor was made ready in prepare, before the tasks were fetched (the SDK's order)
    deploy_at = next(i for i, r in enumerate(synapse.requests) if r.method == "POST" and r.path.startswith("/plugins/"))
    listing_at = next(i for i, r in enumerate(synapse.requests) if r.path == "/sdk/tasks/")
    assert deploy_at < listing_at


def test_the_guides_inference_example_without_model_and_with_a_limit_filter_runs(synapse, files, tmp_path) -> None:
    pid = seed_tasks(synapse, files, 5)
    rel = synapse.add_release("yolo", version="8.1.0")
    synapse.inference = lambda body: {"objects": [{"class_id": 1, "type": "bbox", "properties": {"label": "dog"},
                                                   "coordinates": {"x": 2, "y": 3, "width": 4, "height": 5}}]}
    params = {"name": "AI_Auto_Annotation", "project": pid, "agent": 9, "method": "inference", "pre_processor": rel,
              "task_filters": {"status": "pending", "limit": 3}}
    result = ToTaskAction(params=params, output_root=str(tmp_path), timing=FAST).start()
    assert result["status"] == "SUCCEEDED", result
    assert result["metrics"] == {"total": 3, "success": 3, "failed": 0, "stand_by": 0}
    calls = [r.body["params"] for r in synapse.requests_to("POST") if r.body["action"] == "inference"]
    assert len(calls) == 3 and all("model" not in c for c in calls)
    assert all("limit" not in r.query for r in export_listings(synapse))
    with pytest.raises(UsageError, match="limit"):
        validate_params({**params, "task_filters": {"limit": "many"}})


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"name": "has space"}, "name: must not contain whitespace"),
        ({"project": "7"}, "project: required, a positive integer"),
        ({"target_specification_name": None}, "target_specification_name: required for the file method"),
        ({"method": "magic"}, "method: must be 'file' or 'inference'"),
        ({"method": "inference"}, "pre_processor: required for the inference method"),
        ({"task_type": "no-such-type"}, "task_type:"),
        ({"batch_size": 0}, "batch_size: must be an integer of at least 1"),
        ({"description": 5}, "description"),
    ],
)
def test_parameter_errors_fail_without_touching_synapse(synapse, tmp_path, change, message) -> None:
    result = ToTaskAction(params={**file_params(1), **change}, output_root=str(tmp_path)).start()
    assert result["status"] == "FAILED" and message in result["message"]
    assert result["message"].startswith("invalid parameters: ")
    assert synapse.requests == [] and list(tmp_path.iterdir()) == []


def test_name_becomes_job_name_and_label_attribute() -> None:
    assert validate_params(file_params(1)).slug == "file-based-annotation"
    with pytest.raises(Exception, match="job name and label attribute"):
        validate_params(file_params(1, name="x" * 70))


@pytest.mark.slow  # over 1 s: the fast lane keeps a cheaper case of the same code
@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("project", "Project not found"),
        ("spec", "Target specification not found"),
        ("tasks", "No tasks found matching filters"),
        ("deploy", "Pre-processor not active: serve application of yolo is DEPLOY_FAILED"),
    ],
)
def test_fatal_errors_give_failed_with_the_guides_message(synapse, files, tmp_path, monkeypatch, setup, message) -> None:
    pid = seed_tasks(synapse, files, 2)
    job_id = synapse.add_job()
    monkeypatch.setenv("SYNAPSE_JOB_ID", str(job_id))
    params = file_params(pid)
    if setup == "project":
        params["project"] = 4242
    elif setup == "spec":
        params["target_specification_name"] = "coco"
    elif setup == "tasks":
        params["task_filters"] = {"status": "archived"}
    else:
        rel = synapse.add_release("yolo")
        synapse.deploy_statuses = ["DEPLOYING", "DEPLOY_FAILED"]
        params = {**params, "method": "inference", "pre_processor": rel, "model": 1}
    result = ToTaskAction(params=params, output_root=str(tmp_path), timing=FAST).start()
    assert result["status"] == "FAILED" and message in result["message"]
    assert (result["total_tasks"], result["success_count"], result["failed_count"], result["failures"]) == (0, 0, 0, [])
    assert synapse.requests_to("PUT") == []
    final = synapse.job_patches[job_id][-1]
    assert final["status"] == "FAILED" and final["result"] == {**result, "error": result["message"]}
    failed_step = {"project": "initialize", "spec": "initialize", "tasks": "fetch_tasks", "deploy": "prepare"}[setup]
    assert final["progress_record"]["current_progress"]["step"] == failed_step
    [last] = [e for e in synapse.logs if e["data"].get("key") == "TO_TASK_FAILED"]
    assert last["step"] == failed_step and last["level"] == "danger"


@pytest.mark.slow
def test_a_failed_run_is_resumed_but_other_parameters_start_over(synapse, files, tmp_path) -> None:
    pid = seed_tasks(synapse, files, 2)
    synapse.add_fault(Fault(status=401, method="PUT", times=1))  # the token is refused once, mid-apply
    synapse.add_fault(Fault(status=401, method="GET", path=r"^/projects/\d+/$", skip=1, times=1))  # its token check refused too: revoked
    failed = ToTaskAction(params=file_params(pid), output_root=str(tmp_path)).start()
    assert failed["status"] == "FAILED" and "token was refused" in failed["message"]
    resumed = ToTaskAction(params=file_params(pid, description="second try"), output_root=str(tmp_path)).start()
    assert resumed["status"] == "SUCCEEDED" and len(export_listings(synapse)) == 1  # same job, resumed
    assert not (tmp_path / ".totask-archive").exists()
    state = orjson.loads((tmp_path / "file-based-annotation" / "totask-run.json").read_bytes())
    assert state["runs"] == 2 and state["status"] == "SUCCEEDED"
    other = ToTaskAction(params=file_params(pid, task_filters={"status": "done"}), output_root=str(tmp_path)).start()
    assert other["status"] == "FAILED" and "No tasks found matching filters" in other["message"]
    assert len(list((tmp_path / ".totask-archive").iterdir())) == 1  # the earlier run was kept aside


def test_fatal_error_during_apply_rolls_back_and_fails(synapse, files, tmp_path) -> None:
    pid = seed_tasks(synapse, files, 5)
    # 2 writes succeed, then 3 tasks fail every attempt (3 each) and so does the project's check that
    # follows (``Breaker``): the backend counts as down, then recovers; the writes go together (32 in
    # flight), so the outage begins while 3 of them are out
    synapse.add_outage(Fault(status=503, method="PUT", skip=2, times=9))
    client = fast_client(synapse)
    try:
        result = ToTaskAction(params=file_params(pid), output_root=str(tmp_path), client=client).start()
    finally:
        client.close()
    assert result["status"] == "FAILED" and "unavailable" in result["message"]
    assert "rollback: 2 restored" in result["message"]
    assert all(t["data"] == {} for t in synapse.project_tasks(pid))  # the 2 writes made were rolled back
    assert result["metrics"]["failed"] == 3 and len(result["failures"]) == 3


def test_run_command_with_yaml_params(synapse, files, tmp_path, capsys) -> None:
    pid = seed_tasks(synapse, files, 2)
    params_file = tmp_path / "params.yaml"
    params_file.write_text(yaml.safe_dump(file_params(pid)))
    assert main(["run", str(params_file), "--output", str(tmp_path / "jobs")]) == 0
    result = orjson.loads(capsys.readouterr().out)
    assert result["status"] == "SUCCEEDED" and result["metrics"]["success"] == 2
    bad = tmp_path / "bad.json"
    bad.write_text('{"name": "x y"')
    assert main(["run", str(bad)]) == 2
    assert "not valid JSON" in capsys.readouterr().err


@pytest.mark.slow
def test_rerun_after_kill_resumes_instead_of_starting_over(synapse, files, tmp_path) -> None:
    """kill -9 in the middle of apply; the same action run again finishes with each task written once."""
    n = 16
    pid = seed_tasks(synapse, files, n)
    synapse.add_fault(Fault(status=None, delay=0.25, method="PUT", times=None))  # slow writes
    enough = threading.Event()
    synapse.hooks.append(lambda server, rec: len(server.requests_to("PUT")) >= 5 and enough.set())
    params_file = tmp_path / "params.json"
    params_file.write_bytes(orjson.dumps(file_params(pid)))
    root = tmp_path / "jobs"
    command = [sys.executable, "-m", "totask_manifest._cli", "run", str(params_file), "--output", str(root),
               "--concurrency", "2"]
    env = {**os.environ, "SYNAPSE_HOST": synapse.url, "SYNAPSE_ACCESS_TOKEN": TOKEN}
    first = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert enough.wait(120), first.stderr.read().decode() if first.poll() is not None else "no PUT seen"
        first.send_signal(signal.SIGKILL)
    finally:
        first.wait(30)
    written_before = {r.path for r in synapse.requests_to("PUT")}
    assert 5 <= len(written_before) < n
    synapse.clear_faults()
    second = subprocess.run(command, env=env, capture_output=True, timeout=240)
    assert second.returncode == 0, second.stderr.decode()
    result = orjson.loads(second.stdout)
    assert result["metrics"] == {"total": n, "success": n, "failed": 0, "stand_by": 0}
    puts = [r.path for r in synapse.requests_to("PUT")]
    assert sorted(puts) == sorted(set(puts)) and len(puts) == n  # every task written exactly once
    assert len(export_listings(synapse)) == 1  # the export was not redone
    label_fetches = [r for r in files.requests if r.path.startswith("/labels/")]
    assert len(label_fetches) == n  # nor the annotation
    assert all(t["data"] for t in synapse.project_tasks(pid))
    assert Path(root / "file-based-annotation" / "synapse-journal.jsonl").exists()


def test_schema_any_is_passed_to_every_write(synapse, files, tmp_path) -> None:
    pid = seed_tasks(synapse, files, 2)
    result = ToTaskAction(params=file_params(pid, schema="any"), output_root=str(tmp_path)).start()
    assert result["status"] == "SUCCEEDED"
    assert [r.query for r in synapse.requests_to("PUT")] == [{"schema": "any"}] * 2


@pytest.mark.slow  # over 1 s: the fast lane keeps a cheaper case of the same code
def test_run_with_tenant_url_host_and_foreign_next_links_sends_everything_to_the_host_only(
        synapse, files, tmp_path, monkeypatch) -> None:
    """Access-token mode with a tenant (the backend refuses requests without it), ``url_host`` on
    every request, and a backend whose ``next`` links name another origin."""
    pid = seed_tasks(synapse, files, 5)
    synapse.tenant = "acme"
    synapse.max_page_size = 2  # three listing pages
    decoy = type(files)().start()  # the foreign origin the next links name
    try:
        synapse.next_base = decoy.url
        monkeypatch.setenv("SYNAPSE_PLUGIN_RUN_TENANT", "acme")
        monkeypatch.setenv("SYNAPSE_PLUGIN_RUN_URL_HOST", "internal")
        monkeypatch.setenv("SYNAPSE_JOB_ID", str(synapse.add_job()))
        result = ToTaskAction(params=file_params(pid), output_root=str(tmp_path)).start()
    finally:
        decoy.stop()
    assert result["status"] == "SUCCEEDED" and result["success_count"] == 5, result
    assert decoy.requests == []
    assert len(export_listings(synapse)) == 3
    for r in synapse.requests:
        assert r.status != 403 and r.header("Synapse-Tenant") == "Token acme"
        assert r.header("Synapse-Access-Token") == f"Token {TOKEN}"
        assert [v for k, v in r.query_items if k == "url_host"] == ["internal"], (r.method, r.path)
    assert {r.method for r in synapse.requests} == {"GET", "PUT", "PATCH", "POST"}
    assert files.requests and all("synapse-tenant" not in r.headers for r in files.requests)
    assert token_headers(files.requests) == []


@pytest.mark.slow
def test_a_ctrl_c_is_reported_as_interrupted_and_the_rerun_resumes(synapse, files, tmp_path, monkeypatch) -> None:
    """A Ctrl-C during the writes: the Synapse job and totask-run.json say the run was interrupted
    (they said "not started"), the interrupt still reaches the caller, and running again finishes."""
    import totask_manifest._to_task.action as action

    pid = seed_tasks(synapse, files, 3)
    job_id = synapse.add_job()
    monkeypatch.setenv("SYNAPSE_JOB_ID", str(job_id))
    real_apply = action.apply_job

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(action, "apply_job", interrupted)
    with pytest.raises(KeyboardInterrupt):
        ToTaskAction(params=file_params(pid), output_root=str(tmp_path)).start()
    final = synapse.job_patches[job_id][-1]
    assert final["status"] == "FAILED" and final["result"]["message"].startswith("interrupted"), final
    assert all("not started" not in str(p) for p in synapse.job_patches[job_id])
    monkeypatch.setattr(action, "apply_job", real_apply)
    again = ToTaskAction(params=file_params(pid), output_root=str(tmp_path)).start()
    assert again["status"] == "SUCCEEDED" and again["success_count"] == 3, again


@pytest.mark.slow
def test_an_annotation_job_stopped_early_reports_what_it_did_not_zeros(synapse, files, tmp_path) -> None:
    """The job stops after the first lines all fail the same configuration way (403 on every
    label): the result counts the tasks it was given, each failure, and the untried ones, not
    0 tasks; nothing was written, and running the action again resumes the job."""
    from totask_manifest._failure_rules import FAIL_FAST_LINES

    n = FAIL_FAST_LINES + 8
    pid = seed_tasks(synapse, files, n)
    files.add_fault(status=403, method="GET", path="/labels/", times=None)
    result = ToTaskAction(params=file_params(pid), output_root=str(tmp_path)).start()
    assert result["status"] == "FAILED" and "resume" in result["message"], result
    assert (result["total_tasks"], result["success_count"], result["failed_count"]) == (n, 0, FAIL_FAST_LINES)
    assert result["metrics"] == {"total": n, "success": 0, "failed": FAIL_FAST_LINES, "stand_by": 8}
    assert len(result["failures"]) == FAIL_FAST_LINES and all("403" in f["error"] for f in result["failures"])
    assert {f["task_id"] for f in result["failures"]} <= {t["id"] for t in synapse.project_tasks(pid)}
    assert synapse.requests_to("PUT") == []


def test_a_listing_short_every_time_stops_run_advising_to_run_it_again(synapse, files, tmp_path, monkeypatch) -> None:
    """The stop of a task listing that came back short said "export again" under ``run`` too, whose
    export is its own: the user's way on is the same action run again (which exports, none written)."""
    from tests.jobs_helpers import run_cli
    from tests.test_synapse_export import page_one_short

    pid = seed_tasks(synapse, files, 3)
    page_one_short(synapse, monkeypatch)
    params = tmp_path / "params.json"
    params.write_bytes(orjson.dumps(file_params(pid)))
    done = run_cli("run", str(params), "--output", str(tmp_path / "runs"), timeout=120)
    assert done.returncode == 1, (done.stdout, done.stderr)
    message = orjson.loads(done.stdout)["message"]
    assert message.startswith(f"the task listing of project {pid} came back short after 2 listings "), message
    assert message.endswith("nothing was exported; run the same action again to pick them up"), message
    assert "export again" not in done.stdout + done.stderr and synapse.requests_to("PUT") == []
