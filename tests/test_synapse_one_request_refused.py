"""One task's request refused or failed while the backend and the token work for every other one:
that task fails alone, as in the SDK (its ToTask counts any error of a task as that task's failure).

* a 5xx that persists on one task's read (``GET tasks/{id}/``, after the retries: a serializer bug
  on one task's data) aborted the whole export and ``run`` (nothing written, ``total_tasks 0``);
  only 5xx on ``Breaker``'s tasks in a row whose project's check then gets no answer either is
  the backend down, which still stops the command (an outage that begins mid-window included);
* a 401 on one request (one write, one read) ended the run as "token revoked" although the token
  kept working (a write's 401 even rolled back the good writes and still counted them as
  successes): a 401 is the token's only when ``GET projects/{id}/`` is refused too.

Real contract server and file server on 127.0.0.1."""

from __future__ import annotations

import orjson
import pytest

from tests.support.parity_seed import seed_parity
from tests.test_sdk_parity import PAGE, _run_ours
from tests.test_sdk_parity import TOKEN as PARITY_TOKEN
from totask_manifest import ToTaskAction
from totask_manifest._cli import main
from totask_manifest._synapse.apply import apply_job
from totask_manifest._synapse.client import PROBE_RETRIES, BackendUnavailable
from totask_manifest._synapse.export import export_tasks
from totask_manifest.testing.builders import TOKEN, fast_client, make_job, seed_tasks
from totask_manifest.testing.file_server import FileServer
from totask_manifest.testing.recording import Fault
from totask_manifest.testing.synapse_server import SynapseServer

pytest_plugins = ["totask_manifest.testing.fixtures"]


def file_params(pid: int) -> dict:
    return {"name": "One_Refused", "project": pid, "agent": 1, "method": "file",
            "target_specification_name": "annotation_data"}


def task_ids(synapse, pid: int) -> list[int]:
    return sorted(t["id"] for t in synapse.project_tasks(pid))


def run_action(synapse, pid: int, tmp_path, **options) -> dict:
    """The ToTask action with a client of short backoffs (a 500 is retried 3 times)."""
    client = fast_client(synapse)
    try:
        return ToTaskAction(params=file_params(pid), output_root=str(tmp_path), client=client, **options).start()
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
    synapse.add_outage(Fault(status=500, method="GET", path=r"^/tasks/\d+/$", times=None), checks=None)
    with pytest.raises(BackendUnavailable, match=rf"^the Synapse backend is unavailable \(3 tasks in a row failed, "
                                                 rf"and its check, GET /projects/{pid}/, failed too: "
                                                 r"Synapse answered 500 .*; last: Synapse answered 500"):
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
        f"GET /projects/{pid}/: this request alone was refused (the token was not revoked)")}]
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


def test_writes_a_fatal_stops_rollback_undoes_are_not_counted_successes(synapse, files, tmp_path,
                                                                        monkeypatch) -> None:
    """A fatal stop (here the backend moved: a 302 to the last write) rolls back the run's writes:
    they were counted in success_count all the same (``4 applied ... rollback: 4 restored``), and the
    Synapse job's log kept their ``success`` events with nothing after them to say they were undone."""
    pid = seed_tasks(synapse, files, 5)
    ids = task_ids(synapse, pid)
    monkeypatch.setenv("SYNAPSE_JOB_ID", str(synapse.add_job()))
    synapse.add_fault(Fault(status=302, method="PUT", path=rf"^/tasks/{ids[-1]}/annotate_task_data/$", times=None))
    result = run_action(synapse, pid, tmp_path, concurrency=1)
    assert result["status"] == "FAILED" and "rollback: 4 restored" in result["message"], result
    assert not any(t["data"] for t in synapse.project_tasks(pid))
    assert result["metrics"] == {"total": 5, "success": 0, "failed": 1, "stand_by": 4}, result
    assert result["success_count"] == 0, result
    # the log is append-only and the SDK's task events say only success or failed (it never rolls
    # back): each undone task's success event is followed by a message, as a failed task's is
    events = [(e["data"]["task_info"]["task_id"], e["data"]["status"]) for e in synapse.logs
              if e["event"] == "annotate_task_data"]
    assert events == [(i, "success") for i in ids[:4]] + [(ids[4], "failed")], events
    undone = [e for e in synapse.logs if e["event"] == "message" and "rolled back" in e["data"]["content"]]
    assert [(e["data"]["content"], e["level"], e["step"]) for e in undone] == [
        (f"Task {i} rolled back: its write was undone after the run stopped (counted stand_by, not success)",
         "warning", "annotate_task_data") for i in ids[:4]], undone
    last_event = max(k for k, e in enumerate(synapse.logs) if e["event"] == "annotate_task_data")
    assert synapse.logs.index(undone[0]) > last_event  # said after the events it corrects


def test_three_broken_tasks_scattered_in_one_window_fail_alone(synapse, files, client, tmp_path) -> None:
    """Their reads, retried, finish after the window's 17 good reads: counted in the order reads
    finish, they were "3 tasks in a row" and stopped the export as a backend down (nothing written)."""
    pid = seed_tasks(synapse, files, 20)
    ids = task_ids(synapse, pid)
    broken = [ids[3], ids[10], ids[17]]
    for task in broken:
        synapse.add_fault(Fault(status=500, method="GET", path=rf"^/tasks/{task}/$", times=None))
    result = export_tasks(pid, str(tmp_path / "out.manifest"), client=client)
    assert result.exported == 17 and [s["task_id"] for s in result.skipped] == broken, result.skipped
    assert len((tmp_path / "out.manifest").read_bytes().splitlines()) == 17


def test_apply_fails_three_broken_writes_alone_among_concurrent_good_ones(synapse, files, client, tmp_path) -> None:
    """apply's writes in flight together: the three refused with 500 (retried at the end) finish after
    the good ones, and were an outage by the order they finished in: the 9 good writes rolled back."""
    pid = seed_tasks(synapse, files, 12)
    export = tmp_path / "export.manifest"
    export_tasks(pid, str(export), client=client)
    ids = task_ids(synapse, pid)
    broken = [ids[1], ids[5], ids[9]]
    for task in broken:
        synapse.add_fault(Fault(status=500, method="PUT", path=rf"^/tasks/{task}/annotate_task_data/$", times=None))
    report = apply_job(str(make_job(tmp_path, export)), client=client, concurrency=12)
    assert report.fatal is None, report.summary()
    assert report.totals["applied"] == 9 and sorted(r.task_id for r in report.results if r.status == "failed") == broken
    assert sum(1 for t in synapse.project_tasks(pid) if t["data"]) == 9


def test_apply_judges_a_401_on_the_bulk_reads_probe_as_any_other_read(synapse, files, client, tmp_path,
                                                                     capsys) -> None:
    """The window's listing is checked against its first task's own GET: a 401 there stopped the run
    as "token was refused" with no check, where the same 401 on another task failed that task alone."""
    pid = seed_tasks(synapse, files, 6)
    export = tmp_path / "export.manifest"
    export_tasks(pid, str(export), client=client)
    ids = task_ids(synapse, pid)
    refused = ids[0]  # the probe: the first task of the first window
    synapse.add_fault(Fault(status=401, method="GET", path=rf"^/tasks/{refused}/$", times=None))
    assert main(["apply", str(make_job(tmp_path, export))]) == 0, capsys.readouterr()
    out = capsys.readouterr().out
    assert "5 applied" in out and "1 failed" in out, out
    assert sorted(t["id"] for t in synapse.project_tasks(pid) if not t["data"]) == [refused]


def test_a_401_whose_check_gets_no_answer_says_so_not_accepted(synapse, files, tmp_path) -> None:
    """Only an answered check proves the token works: a 500 to it was said "the same token was
    accepted for GET projects/P/ ... (the token was not revoked)"."""
    pid = seed_tasks(synapse, files, 5)
    ids = task_ids(synapse, pid)
    synapse.add_fault(Fault(status=401, method="GET", path=rf"^/tasks/{ids[2]}/$", times=None))
    synapse.add_fault(Fault(status=500, method="GET", path=rf"^/projects/{pid}/$", skip=1, times=None))
    result = export_tasks(pid, str(tmp_path / "out.manifest"), client=fast_client(synapse))
    assert result.exported == 4 and [s["task_id"] for s in result.skipped] == [ids[2]]
    reason = result.skipped[0]["reason"]
    assert reason.startswith(f"Synapse answered 401 to GET /tasks/{ids[2]}/; the token's check, GET /projects/{pid}/, "
                             "got no answer that tells whether the token was revoked (Synapse answered 500"), reason
    assert reason.endswith("): this task alone failed") and "accepted" not in reason, reason


def test_a_project_that_is_no_id_is_not_asked_a_401_is_the_tokens(synapse, files, client, tmp_path) -> None:
    """apply's project comes from the line: ``"project": true`` asked ``GET projects/True/`` (a 404),
    then said the token was not revoked."""
    pid = seed_tasks(synapse, files, 3)
    export = tmp_path / "export.manifest"
    export_tasks(pid, str(export), client=client)
    lines = [orjson.loads(line) for line in export.read_bytes().splitlines()]
    for line in lines:
        line["synapse"]["project"] = True
    export.write_bytes(b"".join(orjson.dumps(line) + b"\n" for line in lines))
    ids = task_ids(synapse, pid)
    synapse.add_fault(Fault(status=401, method="PUT", path=rf"^/tasks/{ids[1]}/annotate_task_data/$", times=None))
    report = apply_job(str(make_job(tmp_path, export)), client=client, concurrency=1, bulk_reads=False)
    assert report.fatal is not None and "token was refused" in report.fatal, report.summary()
    assert not synapse.requests_to("GET", r"^/projects/True/")


def _inference_run(tmp_path, revoked: bool) -> tuple[int, dict | None, str, SynapseServer]:
    """``run`` with the inference method (the parity seed: 7 tasks, pages of 3), the 3rd inference
    POST answered 401; ``revoked``: the token's check refused too."""
    files = FileServer().start()
    server = SynapseServer(tokens=(PARITY_TOKEN,), max_page_size=PAGE).start()
    try:
        seed = seed_parity(server, files)
        server.add_fault(Fault(status=401, method="POST", path="^/plugins/", skip=2, times=1))
        if revoked:
            server.add_fault(Fault(status=401, method="GET", path=r"^/projects/\d+/$", skip=1, times=None))
        rc, result, tail = _run_ours(server, seed, seed.inference_params(), tmp_path)
        return rc, result, tail, server
    finally:
        server.stop()
        files.stop()


def test_run_inference_a_lone_401_fails_that_line_alone(tmp_path) -> None:
    rc, result, tail, server = _inference_run(tmp_path, revoked=False)
    assert rc == 0 and result is not None and result["status"] == "SUCCEEDED", tail
    lone = [f for f in result["failures"] if "401" in f["error"]]
    assert len(lone) == 1 and lone[0]["error"].startswith("inference: Synapse answered 401 to POST "), lone
    assert "while the same token was accepted for GET /projects/" in lone[0]["error"], lone
    assert server.requests_to("PUT"), tail


def test_run_inference_a_401_the_check_confirms_stops_the_run(tmp_path) -> None:
    rc, result, tail, server = _inference_run(tmp_path, revoked=True)
    assert rc == 1 and result is not None and result["status"] == "FAILED", tail
    assert "401" in result["message"], result
    assert not server.requests_to("PUT"), tail


def test_an_outage_that_begins_mid_window_stops_the_export_nothing_written(synapse, files, client,
                                                                           tmp_path) -> None:
    """review15 F1: the backend dies after 10 of a window's 20 reads, all sent together. Counted only
    when sent after the last answer, none of the 10 failures counted: exit 0, "10 skipped", and
    ``run`` would annotate and apply half the project. At the 3rd the project's check is answered 503 too."""
    pid = seed_tasks(synapse, files, 20)
    synapse.add_outage(Fault(status=503, method="GET", path=r"^/tasks/\d+/$", skip=10, times=None), checks=None)
    out = tmp_path / "out.manifest"
    with pytest.raises(BackendUnavailable, match=rf"^the Synapse backend is unavailable \(3 tasks in a row failed, "
                                                 rf"and its check, GET /projects/{pid}/, failed too: Synapse answered 503"):
        export_tasks(pid, str(out), client=client)
    assert not out.exists() and list(tmp_path.iterdir()) == []  # nothing written, no temporary file left
    assert len(synapse.requests_to("GET", rf"^/projects/{pid}/$")) == 1 + 1 + PROBE_RETRIES  # the start's, then one check (its tries)


def test_broken_tasks_scattered_are_checked_and_fail_alone(synapse, files, client,
                                                                         tmp_path) -> None:
    """Six broken reads among good ones (retried, they finish after most good reads, so 3 of them
    finish in a row): the project's check is answered, so they are the tasks' own and the count
    starts again; no stop."""
    pid = seed_tasks(synapse, files, 20)
    ids = task_ids(synapse, pid)
    broken = ids[1:20:3][:6]
    for task in broken:
        synapse.add_fault(Fault(status=500, method="GET", path=rf"^/tasks/{task}/$", times=None))
    result = export_tasks(pid, str(tmp_path / "out.manifest"), client=client)
    assert result.exported == 14 and sorted(s["task_id"] for s in result.skipped) == broken, result.skipped
    assert len(synapse.requests_to("GET", rf"^/projects/{pid}/$")) >= 1 + 1  # the start's, and a check


def test_apply_stops_and_rolls_back_when_every_write_after_the_2nd_fails(synapse, files, client, tmp_path) -> None:
    """review15 F1: at the default concurrency the failing writes are all out before the outage, and
    apply ended with "2 applied, 3 failed": no stop, no rollback, however long the backend stayed down."""
    pid = seed_tasks(synapse, files, 5)
    export = tmp_path / "export.manifest"
    export_tasks(pid, str(export), client=client)
    synapse.add_outage(Fault(status=503, method="PUT", skip=2, times=9))  # 3 writes x 3 tries, then the check
    report = apply_job(str(make_job(tmp_path, export)), client=client)
    assert report.fatal is not None and report.fatal.startswith("the Synapse backend is unavailable"), report.summary()
    assert report.rollback is not None and report.rollback.totals["restored"] == 2, report.summary()
    assert all(not t["data"] for t in synapse.project_tasks(pid))
    failed = [r for r in report.results if r.status == "failed"]
    assert len(failed) == 3 and all(r.fatal for r in failed), report.results  # said once, as the outage


def test_a_project_given_as_digits_is_asked_a_lone_401_fails_that_task_alone(synapse, files, client,
                                                                            tmp_path) -> None:
    """review15 F6: ``"project": "7"`` (a converted or hand-edited manifest) was taken as no id, and a
    lone 401 on its line stopped the whole apply as "the token was refused", with the rollback."""
    pid = seed_tasks(synapse, files, 3)
    export = tmp_path / "export.manifest"
    export_tasks(pid, str(export), client=client)
    lines = [orjson.loads(line) for line in export.read_bytes().splitlines()]
    for line in lines:
        line["synapse"]["project"] = str(pid)
    export.write_bytes(b"".join(orjson.dumps(line) + b"\n" for line in lines))
    ids = task_ids(synapse, pid)
    synapse.add_fault(Fault(status=401, method="PUT", path=rf"^/tasks/{ids[1]}/annotate_task_data/$", times=None))
    report = apply_job(str(make_job(tmp_path, export)), client=client, concurrency=1, bulk_reads=False)
    assert report.fatal is None, report.summary()
    failed = [r for r in report.results if r.status == "failed"]
    assert [r.task_id for r in failed] == [ids[1]] and "this request alone was refused" in failed[0].detail, failed
    assert report.totals["applied"] == 2
