"""One task's request refused or failed while the backend and the token work for every other one:
that task fails alone, as in the SDK (its ToTask counts any error of a task as that task's failure).

* a 5xx that persists on one task's read (``GET tasks/{id}/``, after the retries: a serializer bug
  on one task's data) aborted the whole export and ``run`` (nothing written, ``total_tasks 0``);
  only 5xx on ``Breaker``'s tasks in a row is the backend down, which still stops the command;
* a 401 on one request (one write, one read) ended the run as "token revoked" although the token
  kept working (a write's 401 even rolled back the good writes and still counted them as
  successes): a 401 is the token's only when ``GET projects/{id}/`` is refused too.

Real contract server and file server on 127.0.0.1."""

from __future__ import annotations

import pytest

from totask_manifest import ToTaskAction
from totask_manifest._cli import main
from totask_manifest._synapse.client import BackendUnavailable
from totask_manifest._synapse.export import export_tasks
from totask_manifest.testing.builders import TOKEN, fast_client, seed_tasks
from totask_manifest.testing.recording import Fault

pytest_plugins = ["totask_manifest.testing.fixtures"]


def file_params(pid: int) -> dict:
    return {"name": "One_Refused", "project": pid, "agent": 1, "method": "file",
            "target_specification_name": "annotation_data"}


def task_ids(synapse, pid: int) -> list[int]:
    return sorted(t["id"] for t in synapse.project_tasks(pid))


def run_action(synapse, pid: int, tmp_path) -> dict:
    """The ToTask action with a client of short backoffs (a 500 is retried 3 times)."""
    client = fast_client(synapse)
    try:
        return ToTaskAction(params=file_params(pid), output_root=str(tmp_path), client=client).start()
    finally:
        client.close()


def run_with_third_task_failing(synapse, files, tmp_path, status: int, method: str,
                                tail: str) -> tuple[int, list[int], dict]:
    """Five tasks, every ``method`` to the third's ``tasks/{id}/{tail}`` answered ``status``: the
    project, the task ids and the run's result, which succeeds with that task failed alone."""
    pid = seed_tasks(synapse, files, 5)
    ids = task_ids(synapse, pid)
    synapse.add_fault(Fault(status=status, method=method, path=rf"^/tasks/{ids[2]}/{tail}$", times=None))
    result = run_action(synapse, pid, tmp_path)
    assert result["status"] == "SUCCEEDED", result
    assert (result["total_tasks"], result["success_count"], result["failed_count"]) == (5, 4, 1), result
    return pid, ids, result


@pytest.mark.parametrize("status", [500, 502])
def test_a_5xx_on_one_tasks_read_skips_that_task_and_exports_the_rest(synapse, files, client, tmp_path,
                                                                      status) -> None:
    pid = seed_tasks(synapse, files, 5)
    broken = task_ids(synapse, pid)[2]
    synapse.add_fault(Fault(status=status, method="GET", path=rf"^/tasks/{broken}/$", times=None))
    result = export_tasks(pid, str(tmp_path / "out.manifest"), client=client)
    assert result.exported == 4 and [s["task_id"] for s in result.skipped] == [broken], result
    assert f"Synapse answered {status}" in result.skipped[0]["reason"], result.skipped
    assert len((tmp_path / "out.manifest").read_bytes().splitlines()) == 4


def test_5xx_on_three_tasks_in_a_row_is_the_backend_down_and_stops_the_export(synapse, files, client,
                                                                              tmp_path) -> None:
    pid = seed_tasks(synapse, files, 5)
    synapse.add_fault(Fault(status=500, method="GET", path=r"^/tasks/\d+/$", times=None))
    with pytest.raises(BackendUnavailable, match=r"^the Synapse backend is unavailable \(3 tasks in a row failed; "
                                                 r"last: Synapse answered 500"):
        export_tasks(pid, str(tmp_path / "out.manifest"), client=client)
    assert not (tmp_path / "out.manifest").exists()


def test_run_fails_only_the_task_whose_read_answers_500(synapse, files, tmp_path) -> None:
    _, ids, result = run_with_third_task_failing(synapse, files, tmp_path, 500, "GET", "")
    assert result["failures"][0]["task_id"] == ids[2] and "500" in result["failures"][0]["error"]
    assert sorted(int(p.path.split("/")[2]) for p in synapse.requests_to("PUT")) == ids[:2] + ids[3:]


def test_a_401_on_one_write_fails_that_task_alone_when_the_token_still_works(synapse, files, tmp_path) -> None:
    pid, ids, result = run_with_third_task_failing(synapse, files, tmp_path, 401, "PUT", "annotate_task_data/")
    assert result["failures"] == [{"task_id": ids[2], "error": (
        f"Synapse answered 401 to PUT /tasks/{ids[2]}/annotate_task_data/, while the same token was accepted for "
        f"GET projects/{pid}/: this request alone was refused (the token was not revoked)")}]
    assert len(synapse.requests_to("PUT")) == 5  # one each: no rollback of the 4 good writes
    assert sum(1 for t in synapse.project_tasks(pid) if t["data"]) == 4


def test_a_401_on_one_read_fails_that_task_alone_when_the_token_still_works(synapse, files, tmp_path,
                                                                            capsys, caplog) -> None:
    pid = seed_tasks(synapse, files, 5)
    ids = task_ids(synapse, pid)
    synapse.add_fault(Fault(status=401, method="GET", path=rf"^/tasks/{ids[2]}/$", times=None))
    assert main(["export", "--project", str(pid), "-o", str(tmp_path / "out.manifest")]) == 0
    out = capsys.readouterr().out
    assert "exported 4 tasks" in out and "(1 skipped)" in out, out
    assert f"task {ids[2]} not exported: Synapse answered 401 to GET /tasks/{ids[2]}/" in caplog.text


def test_a_401_the_tokens_check_confirms_still_stops_the_run(synapse, files, tmp_path) -> None:
    pid = seed_tasks(synapse, files, 3)

    def revoke_at_the_first_put(server, rec) -> None:
        if rec.method == "PUT":
            server.revoke(TOKEN)

    synapse.hooks.append(revoke_at_the_first_put)
    result = run_action(synapse, pid, tmp_path)
    assert result["status"] == "FAILED" and "token was refused" in result["message"], result
    assert synapse.requests_to("GET", r"^/projects/")[-1].status == 401  # the check, refused too


def test_writes_a_fatal_stops_rollback_undoes_are_not_counted_successes(synapse, files, tmp_path) -> None:
    """A fatal stop (here the backend moved: a 302 to the last write) rolls back the run's writes:
    they were counted in success_count all the same (``4 applied ... rollback: 4 restored``)."""
    pid = seed_tasks(synapse, files, 5)
    ids = task_ids(synapse, pid)
    synapse.add_fault(Fault(status=302, method="PUT", path=rf"^/tasks/{ids[-1]}/annotate_task_data/$", times=None))
    client = fast_client(synapse)
    try:
        result = ToTaskAction(params=file_params(pid), output_root=str(tmp_path), client=client,
                              concurrency=1).start()
    finally:
        client.close()
    assert result["status"] == "FAILED" and "rollback: 4 restored" in result["message"], result
    assert not any(t["data"] for t in synapse.project_tasks(pid))
    assert result["metrics"] == {"total": 5, "success": 0, "failed": 1, "stand_by": 4}, result
    assert result["success_count"] == 0, result
