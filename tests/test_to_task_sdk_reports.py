"""What a ToTask run tells its Synapse job and its result, held to synapse-sdk 2026.2.17's own job
(tester5's request-by-request comparison):

- ``Fetched N tasks for annotation`` counts the tasks listed (the SDK's ``fetch_tasks`` count, our
  ``total_tasks``), a task whose data unit has no files included: it logged the exported tasks only;
- the last ``POST logs/`` goes before the final status PATCH, as the SDK sends them (a backend may
  refuse logs to a finished job): it went after;
- an empty label file in the file method fails with a reason naming the file, not the SDK's
  inference code; an inference reply with no annotation that is not falsy is sent as the SDK sends
  it (only ``if not result`` is empty there), and the backend's 400 is the task's failure.

Real contract server and file server on 127.0.0.1."""

from __future__ import annotations

from totask_manifest import ToTaskAction
from totask_manifest.testing.builders import objects_doc, seed_tasks

pytest_plugins = ["totask_manifest.testing.fixtures"]

EMPTY_DM = {"annotations": {"image_1": []}, "annotationsData": {"image_1": []}}
FAST = {"poll_interval": 0.01, "deferred_initial": 0.01}


def file_params(pid: int) -> dict:
    return {"name": "Sdk_Reports", "project": pid, "agent": 1, "method": "file",
            "target_specification_name": "annotation_data"}


def sorted_ids(synapse, pid: int) -> list[int]:
    return sorted(t["id"] for t in synapse.project_tasks(pid))


def message(synapse, key: str) -> str:
    [entry] = [e for e in synapse.logs if e["event"] == "message" and e["data"].get("key") == key]
    return entry["data"]["content"]


def test_fetched_counts_the_listed_tasks_and_the_logs_go_before_the_final_status(synapse, files, tmp_path,
                                                                                 monkeypatch) -> None:
    pid = seed_tasks(synapse, files, 4)
    no_files = sorted_ids(synapse, pid)[1]
    synapse.data_units[synapse.tasks[no_files]["data_unit"]]["files"] = {}
    job_id = synapse.add_job()
    monkeypatch.setenv("SYNAPSE_JOB_ID", str(job_id))

    result = ToTaskAction(params=file_params(pid), output_root=str(tmp_path)).start()

    assert result["status"] == "SUCCEEDED" and result["total_tasks"] == 4, result
    assert message(synapse, "TASK_TASKS_FETCHED") == "Fetched 4 tasks for annotation"  # was 3: the exported ones
    to_job = [r for r in synapse.requests if r.path in (f"/jobs/{job_id}/", "/logs/")]
    final = max(i for i, r in enumerate(to_job) if r.method == "PATCH" and r.body.get("status") == "SUCCEEDED")
    last_logs = max(i for i, r in enumerate(to_job) if r.path == "/logs/")
    assert last_logs < final and final == len(to_job) - 1, [(r.method, r.path) for r in to_job]
    assert message(synapse, "TO_TASK_COMPLETED") == result["message"]  # the last message did reach the job


def test_an_empty_label_file_fails_naming_the_file_not_an_inference_code(synapse, files, tmp_path) -> None:
    pid = seed_tasks(synapse, files, 3, label=lambda i: EMPTY_DM if i == 1 else objects_doc(i))
    empty = sorted_ids(synapse, pid)[1]

    result = ToTaskAction(params=file_params(pid), output_root=str(tmp_path)).start()

    assert result["status"] == "SUCCEEDED" and result["failed_count"] == 1, result
    [failure] = result["failures"]
    assert failure["task_id"] == empty
    error = failure["error"]
    assert "TASK_INFERENCE" not in error, error
    assert error.startswith("not-labeled: empty document: http://127.0.0.1:") and "/labels/1.json holds no annotation" in error
    assert "?" not in error.split("empty document: ", 1)[1].split(" ", 1)[0]  # the URL redacted as other messages are
    assert synapse.tasks[empty].get("writes") is None and len(synapse.requests_to("PUT")) == 2  # not sent


def test_an_inference_reply_without_annotations_is_sent_as_the_sdk_sends_it(synapse, files, tmp_path) -> None:
    pid = seed_tasks(synapse, files, 3)
    rel = synapse.add_release("yolo", version="8.1.0")
    tasks = sorted(synapse.project_tasks(pid), key=lambda t: t["id"])
    url_of = {synapse.data_units[t["data_unit"]]["files"]["image_1"]["url"]: t["id"] for t in tasks}
    no_annotation, falsy = tasks[1]["id"], tasks[2]["id"]

    def inference(body: dict) -> dict:
        task_id = url_of[body["params"]["json"]["image_path"]]
        return {"image_1": []} if task_id == no_annotation else {} if task_id == falsy else objects_doc(task_id)

    synapse.inference = inference
    params = {"name": "Sdk_Reports", "project": pid, "agent": 9, "method": "inference", "pre_processor": rel,
              "model": 42}
    result = ToTaskAction(params=params, output_root=str(tmp_path), timing=FAST).start()

    assert result["status"] == "SUCCEEDED" and result["failed_count"] == 2, result
    errors = {f["task_id"]: f["error"] for f in result["failures"]}
    assert errors[falsy] == "not-labeled: TASK_INFERENCE_EMPTY_RESULT: empty result, not submitted"  # never sent
    assert "400" in errors[no_annotation], errors  # sent, and refused by the backend as the SDK's submit is
    put = {r.path for r in synapse.requests_to("PUT")}
    assert f"/tasks/{no_annotation}/annotate_task_data/" in put and f"/tasks/{falsy}/annotate_task_data/" not in put
