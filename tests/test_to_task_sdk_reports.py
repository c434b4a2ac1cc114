"""What a ToTask run tells its Synapse job and its result, held to synapse-sdk 2026.2.17's own job
(tester5's request-by-request comparison):

- ``Fetched N tasks for annotation`` counts the tasks listed (the SDK's ``fetch_tasks`` count, our
  ``total_tasks``), a task whose data unit has no files included: it logged the exported tasks only;
- the last ``POST logs/`` goes before the final status PATCH, as the SDK sends them (a backend may
  refuse logs to a finished job): it went after;
- an empty label file in the file method fails with a reason naming the file, not the SDK's
  inference code; an inference reply with no annotation that is not falsy is sent as the SDK sends
  it (only ``if not result`` is empty there), and the backend's 400 is the task's failure;
- ``Annotating N tasks (file method)`` says the SDK's count (the tasks listed), a resumed run's too
  (from its record, else its job): it said "Annotating tasks", and only on a fresh run;
- the per-task events come in listing order, ``index`` the task's place in the listing, as the
  SDK's sequential step sends them: failed tasks came first, then the writes as they ended;
- a ``--converter`` that returns an empty result in the file method fails with the file method's
  reason naming the file (``empty_failure``), not the SDK's inference code.

Real contract server and file server on 127.0.0.1."""

from __future__ import annotations

import orjson

from totask_manifest import ToTaskAction
from totask_manifest._to_task.task_events import ListingOrder
from totask_manifest.testing import Fault
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
    assert error.startswith("empty document: http://127.0.0.1:") and "/labels/1.json holds no annotation" in error
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
    assert errors[falsy] == "TASK_INFERENCE_EMPTY_RESULT: empty result, not submitted"  # never sent
    assert "400" in errors[no_annotation], errors  # sent, and refused by the backend as the SDK's submit is
    put = {r.path for r in synapse.requests_to("PUT")}
    assert f"/tasks/{no_annotation}/annotate_task_data/" in put and f"/tasks/{falsy}/annotate_task_data/" not in put


def annotating_messages(synapse) -> list[str]:
    return [e["data"]["content"] for e in synapse.logs
            if e["event"] == "message" and e["data"].get("key") == "TASK_DATA_ANNOTATING"]


def test_annotating_says_the_listed_count_fresh_and_resumed(synapse, files, tmp_path, monkeypatch) -> None:
    pid = seed_tasks(synapse, files, 4)
    monkeypatch.setenv("SYNAPSE_JOB_ID", str(synapse.add_job()))
    no_files = sorted_ids(synapse, pid)[1]
    synapse.data_units[synapse.tasks[no_files]["data_unit"]]["files"] = {}
    synapse.add_fault(Fault(status=401, method="PUT"))  # the token refused mid-apply: the run fails
    synapse.add_fault(Fault(status=401, method="GET", path=r"^/projects/\d+/$", skip=1))  # its token check refused too: revoked
    first = ToTaskAction(params=file_params(pid), output_root=str(tmp_path)).start()
    assert first["status"] == "FAILED", first
    assert annotating_messages(synapse) == ["Annotating 4 tasks (file method)"]  # was "Annotating tasks"

    # resumed without a fresh export: the count the run noted as it exported
    synapse.logs.clear()
    synapse.add_fault(Fault(status=401, method="PUT"))  # and again
    synapse.add_fault(Fault(status=401, method="GET", path=r"^/projects/\d+/$"))  # resumed: its check is the first
    assert ToTaskAction(params=file_params(pid), output_root=str(tmp_path)).start()["status"] == "FAILED"
    assert annotating_messages(synapse) == ["Annotating 4 tasks (file method)"]  # was not said at all

    # a record an older version noted (no count): the job's own count of the export, and the skipped task
    record = tmp_path / "sdk-reports" / "totask-run.json"
    noted = orjson.loads(record.read_bytes())
    del noted["export_listed"]
    record.write_bytes(orjson.dumps(noted))
    synapse.logs.clear()
    assert ToTaskAction(params=file_params(pid), output_root=str(tmp_path)).start()["status"] == "SUCCEEDED"
    assert annotating_messages(synapse) == ["Annotating 4 tasks (file method)"]


def test_task_events_come_in_listing_order_numbered_by_their_place(synapse, files, tmp_path, monkeypatch) -> None:
    pid = seed_tasks(synapse, files, 5, label=lambda i: EMPTY_DM if i == 3 else objects_doc(i))
    monkeypatch.setenv("SYNAPSE_JOB_ID", str(synapse.add_job()))
    ids = sorted_ids(synapse, pid)
    synapse.data_units[synapse.tasks[ids[1]]["data_unit"]]["files"] = {}  # skipped by the export
    # the first task's write ends last: its event must still come first
    synapse.add_fault(Fault(status=None, delay=0.3, method="PUT", path=f"^/tasks/{ids[0]}/"))

    result = ToTaskAction(params=file_params(pid), output_root=str(tmp_path)).start()

    assert result["status"] == "SUCCEEDED" and result["failed_count"] == 2, result
    events = [(e["data"]["index"], e["data"]["task_info"]["task_id"], e["data"]["status"], e["data"]["total"])
              for e in synapse.logs if e["event"] == "annotate_task_data"]
    status = ["success", "failed", "success", "failed", "success"]
    assert events == [(i + 1, tid, status[i], 5) for i, tid in enumerate(ids)]
    failed = [e["data"]["content"].split(" failed:", 1)[0] for e in synapse.logs
              if e["event"] == "message" and e["level"] == "error"]
    assert failed == [f"Task {ids[1]}", f"Task {ids[3]}"]  # each right after its task's event, in listing order


def test_a_failed_tasks_error_is_the_same_string_in_its_event_message_and_result(synapse, files, tmp_path,
                                                                                monkeypatch) -> None:
    """The SDK records one string per failed task (``_record_failure``): the ``failures`` entry's
    ``error``, the event's ``error`` and ``Task N failed: <error>``. Ours put the apply status first in
    the result and the message (``not-labeled: empty document: ...``), not in the event."""
    pid = seed_tasks(synapse, files, 3, label=lambda i: EMPTY_DM if i == 1 else objects_doc(i))
    monkeypatch.setenv("SYNAPSE_JOB_ID", str(synapse.add_job()))
    empty = sorted_ids(synapse, pid)[1]

    result = ToTaskAction(params=file_params(pid), output_root=str(tmp_path)).start()

    [failure] = result["failures"]
    [event] = [e["data"] for e in synapse.logs if e["event"] == "annotate_task_data" and e["data"]["status"] == "failed"]
    [said] = [e["data"]["content"] for e in synapse.logs if e["event"] == "message" and e["level"] == "error"]
    assert failure["task_id"] == event["task_info"]["task_id"] == empty
    assert said == f"Task {empty} failed: {failure['error']}" and event["error"] == failure["error"], (said, event)
    assert failure["error"].startswith("empty document: "), failure


def test_listing_order_holds_a_bounded_number_of_events_and_loses_none() -> None:
    """Past ``held_max`` events held behind a task still in flight, the held ones go out of listing
    order (a run's every event is never held); each keeps its place as ``index``, none is lost."""
    sent: list[tuple] = []
    skipped = [{"task_id": "s1", "reason": "no files", "line": 2}, {"task_id": "s2", "reason": "gone", "line": 6}]
    order = ListingOrder(skipped, lambda *event: sent.append(event[:2]), held_max=2)
    assert [order.position(line) for line in (1, 2, 3, 4, 5)] == [1, 3, 4, 5, 6]
    for line in (2, 3, 4):  # line 1 in flight: 2 and 3 held, the third one too many
        order.add(line, f"t{line}", None, "")
    assert sent == [(2, "s1"), (3, "t2"), (4, "t3"), (5, "t4")]
    order.add(1, "t1", None, "")  # the late one: sent at once, with its own place
    order.close()  # the skipped task listed after the last line
    assert sent[4:] == [(1, "t1"), (7, "s2")]


def test_a_converters_empty_result_in_the_file_method_names_the_file(synapse, files, tmp_path) -> None:
    pid = seed_tasks(synapse, files, 2)
    params = {**file_params(pid), "converter": "tests.support.totask_plugins:Empty"}

    result = ToTaskAction(params=params, output_root=str(tmp_path)).start()

    assert result["failed_count"] == 2 and synapse.requests_to("PUT") == [], result
    for failure in result["failures"]:
        error = failure["error"]
        assert "TASK_INFERENCE" not in error, error  # no pre-processor was asked
        assert error.startswith("empty document: the converter's convert_data_from_file returned no "
                                "annotation for http://127.0.0.1:") and "/labels/" in error, error
    failures = [orjson.loads(x) for x in (tmp_path / "sdk-reports" / "failures.jsonl").read_bytes().splitlines()]
    assert [f["rule"] for f in failures] == ["empty-result"] * 2


def test_a_task_changed_between_the_runs_export_and_its_apply_is_said_in_runs_words(synapse, files, tmp_path,
                                                                                     monkeypatch) -> None:
    """A task someone changes in Synapse after the run's export read it and before its apply
    writes it is a conflict, not overwritten. Its error was apply's ``--force overwrites it``:
    ``run`` has no --force. It says what is true under run, the one string in the ``failures``
    entry, the event and ``Task N failed: ...``."""
    pid = seed_tasks(synapse, files, 3)
    monkeypatch.setenv("SYNAPSE_JOB_ID", str(synapse.add_job()))
    changed = sorted_ids(synapse, pid)[1]
    someone = {"annotations": {"image_1": []}, "annotationsData": {"image_1": []}, "extra": {"by": "reviewer"}}

    def edit_before_apply_reads(server, rec) -> None:
        # apply reads the tasks' current data by ``id__in``: the export's reads are done by then
        if rec.method == "GET" and "id__in" in rec.query and server.tasks[changed]["data"] != someone:
            server.tasks[changed]["data"] = someone

    synapse.hooks.append(edit_before_apply_reads)
    result = ToTaskAction(params=file_params(pid), output_root=str(tmp_path)).start()

    assert synapse.tasks[changed]["data"] == someone  # not overwritten
    [failure] = result["failures"]
    [event] = [e["data"] for e in synapse.logs if e["event"] == "annotate_task_data" and e["data"]["status"] == "failed"]
    [said] = [e["data"]["content"] for e in synapse.logs if e["event"] == "message" and e["level"] == "error"]
    assert failure == {"task_id": changed, "error": "changed in Synapse since this run exported it; not overwritten"}
    assert event["task_info"]["task_id"] == changed and event["error"] == failure["error"], event
    assert said == f"Task {changed} failed: {failure['error']}", said
    assert result["totask"]["apply"]["conflict"] == 1 and result["success_count"] == 2, result
