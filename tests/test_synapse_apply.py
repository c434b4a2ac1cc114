"""``apply`` and ``rollback``: idempotence, dry run, conflicts, the journal, fatal errors, rollback."""

from __future__ import annotations

import asyncio
import concurrent.futures
from pathlib import Path

import fsspec
import orjson
import pytest

from totask_manifest._cli import main
from totask_manifest._errors import JobError, StorageError
from totask_manifest._formats.synapse import gt_to_dm_v1, gt_to_objects
from totask_manifest._synapse.apply import apply_job
from totask_manifest._synapse.export import export_tasks
from totask_manifest._synapse.journal import read_journal
from totask_manifest._synapse.rollback import rollback_job
from totask_manifest._synapse.taskdata import data_hash
from totask_manifest.testing import Fault
from totask_manifest.testing.builders import TOKEN, fast_client, gt_label, make_job, seed_tasks

pytest_plugins = ["totask_manifest.testing.fixtures"]

ORIGINAL = {"annotations": {"image_1": []}, "annotationsData": {"image_1": []}, "extra": {"by": "human"}}


@pytest.fixture
def job(synapse, files, client, tmp_path) -> tuple[int, Path, list[dict]]:
    """A project of 6 tasks holding ``ORIGINAL``, exported, labeled by a finished job."""
    pid = seed_tasks(synapse, files, 6, data=ORIGINAL)
    export = tmp_path / "export.manifest"
    export_tasks(pid, str(export), client=client)
    tasks = sorted(synapse.project_tasks(pid), key=lambda t: t["id"])
    return pid, make_job(tmp_path, export), tasks


def expected(line: int) -> dict:
    # confidences travel as a classification attribute (DM v1 has no field of its own for them)
    return gt_to_dm_v1("object-detection", *gt_label(line), confidence_attribute="confidence")


def puts(synapse, task_id: int | None = None) -> list:
    return synapse.requests_to("PUT", f"^/tasks/{task_id}/" if task_id else None)


def test_apply_writes_dm_v1_once_and_is_idempotent(synapse, client, job) -> None:
    _, job_dir, tasks = job
    report = apply_job(str(job_dir), client=client)
    assert report.ok and report.totals["applied"] == 6
    assert report.not_reached == 0 and "not reached" not in report.summary()
    for line, task in enumerate(tasks, start=1):
        assert task["data"] == expected(line)
        [put] = puts(synapse, task["id"])
        assert put.body == {"action": "submit", "data": expected(line)} and put.query == {}
    again = apply_job(str(job_dir), client=client)
    assert again.totals["unchanged"] == 6 and again.totals["applied"] == 0
    assert len(puts(synapse)) == 6  # the second run sent nothing
    records = read_journal(str(job_dir))
    befores = [r for r in records if r["op"] == "before"]
    assert sorted(r["task_id"] for r in befores) == [t["id"] for t in tasks]
    assert all(r["previous"] == ORIGINAL and r["previous_hash"] == data_hash(ORIGINAL) for r in befores)
    assert sorted(r["task_id"] for r in records if r["op"] == "done") == [t["id"] for t in tasks]


def test_journal_record_is_on_disk_before_its_put_arrives(synapse, client, job) -> None:
    _, job_dir, _ = job
    seen_before_put: dict[int, bool] = {}

    def check(_server, rec) -> None:
        if rec.method == "PUT":
            tid = int(rec.path.split("/")[2])
            text = (job_dir / "synapse-journal.jsonl").read_bytes()
            seen_before_put[tid] = any(
                (r := orjson.loads(line))["op"] == "before" and r["task_id"] == tid for line in text.splitlines())

    synapse.hooks.append(check)
    apply_job(str(job_dir), client=client, concurrency=4)
    assert len(seen_before_put) == 6 and all(seen_before_put.values())


def test_dry_run_sends_and_writes_nothing(synapse, client, job, capsys) -> None:
    _, job_dir, tasks = job
    tasks[2]["data"] = {"changed": "by someone"}
    assert main(["apply", str(job_dir), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert puts(synapse) == []
    assert not (job_dir / "synapse-journal.jsonl").exists()
    assert f"task {tasks[0]['id']}: would-apply (0 -> 2 annotations)" in out
    assert f"task {tasks[1]['id']}: would-apply (0 -> 3 annotations)" in out
    assert f"task {tasks[2]['id']}: conflict" in out
    assert "dry run: 5 would-apply, 0 unchanged, 1 conflicts" in out


def test_conflicts_are_skipped_unless_forced(synapse, client, job) -> None:
    _, job_dir, tasks = job
    tasks[3]["data"] = {"annotations": {"image_1": [{"id": "x", "tool": "bounding_box"}]}}  # a human edited it
    report = apply_job(str(job_dir), client=client)
    [conflict] = [r for r in report.results if r.status == "conflict"]
    assert conflict.task_id == tasks[3]["id"] and "--force" in conflict.detail
    assert puts(synapse, tasks[3]["id"]) == [] and report.totals["applied"] == 5
    forced = apply_job(str(job_dir), client=client, force=True)
    assert forced.totals == {**forced.totals, "applied": 1, "unchanged": 5, "conflict": 0}
    assert tasks[3]["data"] == expected(4)


def test_unlabeled_lines_and_per_task_failures_do_not_stop_the_run(synapse, files, client, tmp_path) -> None:
    pid = seed_tasks(synapse, files, 5)
    export = tmp_path / "e.manifest"
    export_tasks(pid, str(export), client=client)
    job_dir = make_job(tmp_path, export, fail_lines=frozenset({2}))
    tasks = sorted(synapse.project_tasks(pid), key=lambda t: t["id"])
    synapse.add_fault(Fault(status=400, method="PUT", path=f"^/tasks/{tasks[3]['id']}/", times=None,
                            body={"error": {"code": "VALIDATION_ERROR", "message": "bad box"}}))
    report = apply_job(str(job_dir), client=client)
    by_task = {r.task_id: r for r in report.results}
    assert by_task[tasks[1]["id"]].status == "not-labeled" and "404" in by_task[tasks[1]["id"]].detail
    assert by_task[tasks[3]["id"]].status == "failed" and "bad box" in by_task[tasks[3]["id"]].detail
    assert report.ok and report.totals["applied"] == 3
    assert len(puts(synapse, tasks[3]["id"])) == 1  # a 400 is not retried
    assert {r["op"] for r in read_journal(str(job_dir)) if r["task_id"] == tasks[3]["id"]} == {"before", "failed"}



def _edited_job(synapse, files, client, tmp_path, n: int, edit) -> tuple:
    """A completed job over ``n`` exported tasks whose output manifest's records ``edit`` changed
    (in place), and the tasks by id: lines apply must read as the job never wrote them."""
    pid = seed_tasks(synapse, files, n)
    export = tmp_path / "e.manifest"
    export_tasks(pid, str(export), client=client)
    job_dir = make_job(tmp_path, export)
    out = job_dir / "manifests" / "output" / "output.manifest"
    records = [orjson.loads(raw) for raw in out.read_bytes().splitlines()]
    edit(records)
    out.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    return job_dir, sorted(synapse.project_tasks(pid), key=lambda t: t["id"])

def test_a_value_beside_a_failure_or_a_routing_is_no_label_to_apply(synapse, files, client, tmp_path) -> None:
    """A line whose metadata says it failed (``failure-reason``) or was routed to review
    (``review-status: routed``) holds no label of the job's, even beside a value (a chained job
    keeps the earlier value when it fails or routes the line): ``validate``, ``stats``, ``labeled``
    and the exports say so, and apply sent that value to Synapse as the job's label."""
    def edit(records: list[dict]) -> None:
        records[1]["boxes-metadata"]["failure-reason"] = "fetch: 404 Not Found"
        records[2]["boxes-metadata"]["review-status"] = "routed"

    job_dir, tasks = _edited_job(synapse, files, client, tmp_path, 4, edit)
    report = apply_job(str(job_dir), client=client)
    by_task = {r.task_id: r for r in report.results}
    assert by_task[tasks[1]["id"]].status == "not-labeled" and "404" in by_task[tasks[1]["id"]].detail
    assert by_task[tasks[2]["id"]].status == "not-labeled" and "routed" in by_task[tasks[2]["id"]].detail
    assert puts(synapse, tasks[1]["id"]) == [] and puts(synapse, tasks[2]["id"]) == []
    assert report.totals["applied"] == 2



def test_a_null_value_is_no_label_to_apply(synapse, files, client, tmp_path) -> None:
    """A line whose label attribute is null holds no label, as the chain's selection reads it
    (``needs_label``: Ground Truth labels it again): apply counted it labeled and failed its task
    converting null, where it is not-labeled and nothing is sent."""
    job_dir, tasks = _edited_job(synapse, files, client, tmp_path, 3, lambda records: records[1].update(boxes=None))
    report = apply_job(str(job_dir), client=client)
    by_task = {r.task_id: r for r in report.results}
    assert (by_task[tasks[1]["id"]].status, by_task[tasks[1]["id"]].detail) == (
        "not-labeled", "no 'boxes' label ('boxes' is null)")
    assert puts(synapse, tasks[1]["id"]) == [] and report.ok and report.totals["applied"] == 2

def test_objects_format_is_sent_with_schema_any(synapse, client, job) -> None:
    _, job_dir, tasks = job
    assert main(["apply", str(job_dir), "--data-format", "synapse-objects", "--quiet"]) == 0
    put = puts(synapse, tasks[0]["id"])[0]
    assert put.query == {"schema": "any"}
    assert put.body["data"] == gt_to_objects("object-detection", *gt_label(1))


@pytest.mark.slow
def test_revoked_token_stops_and_the_journal_lets_rollback_finish(synapse, client, job, capsys) -> None:
    _, job_dir, tasks = job

    def revoke_after_three_puts(server, rec) -> None:
        if rec.method == "PUT" and len(server.requests_to("PUT")) == 3:
            server.revoke(TOKEN)

    synapse.hooks.append(revoke_after_three_puts)
    assert main(["apply", str(job_dir), "--concurrency", "1"]) == 1
    err = capsys.readouterr().err
    assert "stopped: the token was refused" in err and f"totask-manifest rollback {job_dir}" in err
    assert TOKEN not in err
    changed = [t for t in tasks if t["data"] != ORIGINAL]
    assert len(changed) == 2  # the third PUT arrived after the token was revoked
    assert len(puts(synapse)) <= 4  # stopped at once: no more tasks attempted

    synapse.hooks.clear()
    synapse.revoked.clear()  # a new token, same value for the test
    assert main(["rollback", str(job_dir)]) == 0
    out = capsys.readouterr().out
    assert "2 restored" in out
    assert all(t["data"] == ORIGINAL for t in tasks)
    restore_puts = [p for p in puts(synapse) if p.query == {"schema": "any"}]
    assert [p.body for p in restore_puts] == [{"action": "submit", "data": ORIGINAL}] * 2
    sent = len(puts(synapse))
    assert main(["rollback", str(job_dir)]) == 0  # idempotent: nothing left to do
    assert "rollback: nothing to restore" in capsys.readouterr().out and len(puts(synapse)) == sent


def test_backend_down_mid_run_rolls_back_when_it_recovers(synapse, client, job) -> None:
    _, job_dir, tasks = job
    # two PUTs succeed, then the backend fails every request for a while (3 tasks × 3 attempts, and
    # the project's check that then asks whether it answers at all)
    synapse.add_outage(Fault(status=503, skip=2 * 2, times=9))  # each task costs a GET and a PUT
    report = apply_job(str(job_dir), client=client, concurrency=1)
    assert not report.ok and "unavailable" in report.fatal
    assert report.rollback is not None and report.rollback.complete
    assert report.rollback.totals["restored"] == 2
    assert all(t["data"] == ORIGINAL for t in tasks)
    assert "rollback: 2 restored" in report.summary()
    # the three tasks in a row that found no backend are the outage's: said once, in the summary, not
    # one line each before it (they were held until the third said the backend was down)
    failed = [r for r in report.results if r.status == "failed"]
    assert len(failed) == 3 and all(r.fatal for r in failed), report.results
    # 6 lines: 2 applied (rolled back), 3 failed, and the last one never reached, which the counts alone left unsaid
    assert report.not_reached == 1 and report.totals["lines"] == 5
    assert "\n1 line not reached: nothing was sent for them; apply again" in report.summary()


def test_project_gone_is_fatal_and_rollback_can_be_declined(synapse, client, job) -> None:
    pid, job_dir, tasks = job

    def delete_project(server, rec) -> None:
        if rec.method == "PUT" and len(server.requests_to("PUT")) == 2:
            server.projects.pop(pid, None)

    synapse.hooks.append(delete_project)
    report = apply_job(str(job_dir), client=client, concurrency=1, rollback_on_fatal=False)
    assert report.fatal.startswith(f"project {pid} is gone (404); if it still exists in Synapse, check SYNAPSE_HOST")
    assert report.rollback is None and "undo with: totask-manifest rollback" in report.summary()
    synapse.projects[pid] = {"id": pid, "title": "p", "data_collection": None}  # restored by an admin
    assert [t["data"] == ORIGINAL for t in tasks] == [False, True, True, True, True, True]
    assert rollback_job(str(job_dir), client=client).complete
    assert all(t["data"] == ORIGINAL for t in tasks)


def test_rollback_skips_tasks_changed_since_unless_forced(synapse, client, job, capsys) -> None:
    _, job_dir, tasks = job
    apply_job(str(job_dir), client=client)
    tasks[0]["data"] = {"extra": {"reviewed": True}}
    report = rollback_job(str(job_dir), client=client)
    assert report.totals["restored"] == 5 and report.totals["conflict"] == 1
    assert tasks[0]["data"] == {"extra": {"reviewed": True}}
    assert main(["rollback", str(job_dir), "--force"]) == 0
    assert tasks[0]["data"] == ORIGINAL and "1 restored" in capsys.readouterr().out


@pytest.mark.slow
def test_no_task_is_written_twice_under_concurrency(synapse, files, tmp_path) -> None:
    pid = seed_tasks(synapse, files, 40)
    synapse.latency = 0.01
    c = fast_client(synapse, max_concurrency=16)
    try:
        export = tmp_path / "e.manifest"
        export_tasks(pid, str(export), client=c)
        job_dir = make_job(tmp_path, export)
        report = apply_job(str(job_dir), client=c, concurrency=16)
    finally:
        c.close()
    assert report.totals["applied"] == 40
    counts: dict[str, int] = {}
    for put in puts(synapse):
        counts[put.path] = counts.get(put.path, 0) + 1
    assert len(counts) == 40 and set(counts.values()) == {1}
    assert synapse.max_in_flight > 1


def test_unfinished_or_missing_jobs_are_refused(synapse, files, client, tmp_path, capsys) -> None:
    pid = seed_tasks(synapse, files, 1)
    export = tmp_path / "e.manifest"
    export_tasks(pid, str(export), client=client)
    running = make_job(tmp_path, export, name="running", status="RUNNING")
    with pytest.raises(JobError, match="RUNNING"):
        apply_job(str(running), client=client)
    assert main(["apply", str(tmp_path / "nope")]) == 2  # as any missing input
    assert "not a job folder" in capsys.readouterr().err
    assert main(["rollback", str(tmp_path / "nope")]) == 2
    assert "not a job folder" in capsys.readouterr().err
    assert not (tmp_path / "nope").exists()


def test_job_on_an_object_store_keeps_its_journal_there(synapse, files, client, tmp_path) -> None:
    pid = seed_tasks(synapse, files, 3, data=ORIGINAL)
    export = tmp_path / "e.manifest"
    export_tasks(pid, str(export), client=client)
    local = make_job(tmp_path, export)
    mem = fsspec.filesystem("memory")
    remote = "memory://jobs/job"
    for name in ("job.json", "manifests/output/output.manifest"):
        mem.pipe_file(f"{remote}/{name}", (local / name).read_bytes())
    assert apply_job(remote, client=client).totals["applied"] == 3
    assert mem.ls("memory://jobs/job/synapse-journal", detail=False)
    assert len([r for r in read_journal(remote) if r["op"] == "before"]) == 3
    assert rollback_job(remote, client=client).totals["restored"] == 3
    assert all(t["data"] == ORIGINAL for t in synapse.project_tasks(pid))


@pytest.mark.parametrize("listing", ["honoured", "ignored", "failing"])
@pytest.mark.slow
def test_current_data_is_read_a_window_at_a_time_when_the_listing_allows(synapse, files, tmp_path, listing) -> None:
    pid = seed_tasks(synapse, files, 250, data=ORIGINAL)
    c = fast_client(synapse)
    try:
        export = tmp_path / "e.manifest"
        export_tasks(pid, str(export), client=c)
        job_dir = make_job(tmp_path, export)
        tasks = sorted(synapse.project_tasks(pid), key=lambda t: t["id"])
        tasks[120]["data"] = {"extra": {"edited": True}}  # a conflict inside the second window
        synapse.honour_id_in = listing != "ignored"
        if listing == "failing":
            synapse.add_fault(Fault(status=400, method="GET", path="^/sdk/tasks/$", times=None))
        synapse.requests.clear()
        report = apply_job(str(job_dir), client=c, concurrency=8)
    finally:
        c.close()
    assert report.totals["applied"] == 249 and report.totals["conflict"] == 1
    assert [r.task_id for r in report.results if r.status == "conflict"] == [tasks[120]["id"]]
    gets = synapse.requests_to("GET", "^/tasks/")
    listings = synapse.requests_to("GET", "^/sdk/tasks/$")
    if listing == "honoured":
        assert len(listings) == 3 and len(gets) == 1  # 3 windows; one GET checks the listing once
        assert listings[0].query["id__in"] == ",".join(str(t["id"]) for t in tasks[:100])
        assert listings[0].query["fields"] == "id,data,data_unit"  # the data unit: the label's image
    elif listing == "ignored":
        # the first page happens to be the first window, so it is used (checked); the second
        # window's answer is the same page again, which turns the listing off for the rest
        assert len(listings) == 2 and len(gets) == 1 + 150
    else:
        assert len(listings) == 1 and len(gets) == 250  # tried once, then one GET per task
    assert all(t["data"] == expected(i + 1) for i, t in enumerate(tasks) if i != 120)


@pytest.mark.slow
def test_backend_gone_for_good_leaves_the_journal_to_finish_later(synapse, client, job, capsys, monkeypatch) -> None:
    from totask_manifest._synapse import rollback as rollback_module

    _, job_dir, tasks = job

    def go_down_at_the_second_put(server, rec) -> None:
        if rec.method == "PUT" and len(server.requests_to("PUT")) == 2:
            server.hooks.clear()
            server.down = "reset"  # from this request on, connections are dropped unanswered

    synapse.hooks.append(go_down_at_the_second_put)
    report = apply_job(str(job_dir), client=client, concurrency=1)
    assert "unavailable" in report.fatal and "ServerDisconnected" in report.fatal
    assert report.rollback is not None and not report.rollback.complete
    assert f"finish with: totask-manifest rollback {job_dir}" in report.summary()
    assert [t["data"] != ORIGINAL for t in tasks] == [True, False, False, False, False, False]
    synapse.down = None
    # the write the backend dropped unanswered may still have been processed: a rollback at once
    # leaves its task open (it could land after), one a minute later closes it
    assert main(["rollback", str(job_dir)]) == 1
    assert "with a write that may still land (run rollback again in" in capsys.readouterr().err
    monkeypatch.setattr(rollback_module, "LANDING_SECONDS", 0.0)  # a minute later
    assert main(["rollback", str(job_dir)]) == 0
    assert all(t["data"] == ORIGINAL for t in tasks)
    assert "restored" in capsys.readouterr().out


def test_a_backend_that_normalises_data_still_sees_a_rerun_as_unchanged(synapse, client, job) -> None:
    _, job_dir, tasks = job
    synapse.normalise = lambda data: {**data, "assignmentId": 7}  # it stores a little more than it was sent
    assert apply_job(str(job_dir), client=client).totals["applied"] == 6
    assert all(t["data"]["assignmentId"] == 7 for t in tasks)
    again = apply_job(str(job_dir), client=client)
    assert again.totals["unchanged"] == 6 and len(puts(synapse)) == 6
    report = rollback_job(str(job_dir), client=client)
    assert report.totals["restored"] == 6 and report.totals["conflict"] == 0


def test_a_torn_journal_tail_does_not_swallow_the_next_runs_first_record(synapse, client, job, caplog) -> None:
    _, job_dir, tasks = job
    journal = job_dir / "synapse-journal.jsonl"
    journal.write_bytes(b'{"op":"before","task_id":99,"prev')  # an earlier run killed mid-write
    report = apply_job(str(job_dir), client=client, concurrency=1)
    assert report.totals["applied"] == 6
    assert "torn line" in caplog.text and "synapse-journal.jsonl" in caplog.text
    befores = [r["task_id"] for r in read_journal(str(job_dir)) if r["op"] == "before"]
    assert sorted(befores) == [t["id"] for t in tasks]  # the first record survived
    assert rollback_job(str(job_dir), client=client).totals["restored"] == 6
    assert all(t["data"] == ORIGINAL for t in tasks)


def test_a_redirected_backend_stops_the_run_instead_of_failing_every_task(synapse, client, job) -> None:
    _, job_dir, tasks = job
    synapse.add_fault(Fault(status=307, method="PUT", times=None, body={}))
    report = apply_job(str(job_dir), client=client, concurrency=1)
    assert not report.ok and "backend moved" in report.fatal and "SYNAPSE_HOST" in report.fatal
    assert report.totals["applied"] == 0 and len(puts(synapse)) == 1  # stopped at the first redirect
    assert all(t["data"] == ORIGINAL for t in tasks)


def test_rollback_keeps_a_human_edit_that_a_later_forced_run_failed_to_overwrite(synapse, client, job) -> None:
    _, job_dir, tasks = job
    task = tasks[0]
    assert apply_job(str(job_dir), client=client).totals["applied"] == 6
    human = {"annotations": {"image_1": []}, "annotationsData": {"image_1": []}, "extra": {"by": "human, later"}}
    task["data"] = human
    synapse.add_fault(Fault(status=400, method="PUT", path=f"^/tasks/{task['id']}/", times=1))
    forced = apply_job(str(job_dir), client=client, force=True)
    assert forced.totals["failed"] == 1 and task["data"] == human
    report = rollback_job(str(job_dir), client=client)
    by_task = {r.task_id: r.status for r in report.results}
    assert by_task[task["id"]] == "conflict" and task["data"] == human
    assert report.totals["restored"] == 5
    assert rollback_job(str(job_dir), client=client, force=True).totals["restored"] == 1
    assert task["data"] == ORIGINAL


def test_a_fatal_error_rolls_back_only_the_current_run(synapse, client, job) -> None:
    _, job_dir, tasks = job
    ids = [t["id"] for t in tasks]
    synapse.add_fault(Fault(status=400, method="PUT", path=f"^/tasks/({ids[3]}|{ids[4]}|{ids[5]})/", times=None))
    first = apply_job(str(job_dir), client=client)
    assert first.ok and first.totals["applied"] == 3 and first.totals["failed"] == 3
    synapse.clear_faults()
    synapse.add_outage(Fault(status=503, method="PUT", times=9))  # the second run dies on its first tasks
    second = apply_job(str(job_dir), client=client, concurrency=1)
    assert not second.ok and second.rollback is not None and second.rollback.complete
    assert [t["data"] == expected(n) for n, t in enumerate(tasks[:3], start=1)] == [True] * 3  # run 1 kept
    assert all(t["data"] == ORIGINAL for t in tasks[3:])
    assert rollback_job(str(job_dir), client=client).totals["restored"] == 3  # the command undoes every run
    assert all(t["data"] == ORIGINAL for t in tasks)


def test_lines_without_a_task_id_are_said_once_not_per_line(synapse, client, job, capsys) -> None:
    """Two lines whose ``synapse`` was removed: one line names how many and the first, the other
    tasks are applied and printed as usual."""
    _, job_dir, tasks = job
    out_manifest = job_dir / "manifests" / "output" / "output.manifest"
    records = [orjson.loads(x) for x in out_manifest.read_bytes().splitlines()]
    for i in (2, 4):
        del records[i]["synapse"]
    out_manifest.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    assert main(["apply", str(job_dir), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "has no synapse.task_id" not in out and "line 3: failed" not in out
    said = [x for x in out.splitlines() if "synapse.task_id" in x]
    assert said == ["2 lines have no synapse.task_id (first: line 3): apply writes to the Synapse tasks a "
                    "manifest was exported from; export them first ('totask-manifest export') and run the job "
                    "on that manifest"]
    assert f"task {tasks[0]['id']}: would-apply" in out
    assert "dry run: 4 would-apply, 0 unchanged, 0 conflicts (skipped), 2 failed" in out


def test_a_job_never_exported_from_synapse_is_one_error_line(tmp_path) -> None:
    """A real ``apply`` process on a job over a plain manifest: no line per task, one error
    naming the count, the first line and what to do (exit 1); no server is reached (none listens)."""
    import os
    import subprocess
    import sys

    plain = tmp_path / "plain.manifest"
    plain.write_bytes(b"".join(orjson.dumps({"source-ref": f"s3://b/{i}.jpg"}) + b"\n" for i in range(50)))
    job_dir = make_job(tmp_path, plain)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
           "SYNAPSE_HOST": "http://127.0.0.1:9", "SYNAPSE_ACCESS_TOKEN": TOKEN}
    done = subprocess.run([sys.executable, "-m", "totask_manifest", "apply", str(job_dir)], capture_output=True,
                          text=True, env=env, timeout=120, check=False)
    assert done.returncode == 1
    assert done.stdout.splitlines() == ["0 applied, 0 unchanged, 0 conflicts (skipped), 50 failed, 0 not labeled"]
    assert done.stderr.splitlines() == [
        "totask-manifest apply: error: nothing was applied: 50 lines have no synapse.task_id (first: line 1): "
        "apply writes to the Synapse tasks a manifest was exported from; export them first ('totask-manifest "
        "export') and run the job on that manifest"]


def test_tasks_that_found_no_backend_are_failures_of_their_own_once_it_answers(synapse, client, job) -> None:
    """Two tasks in a row without an answer, then the backend answers: no outage. The two were held
    until the next task said so, then said as failures each, and the run went on."""
    _, job_dir, tasks = job
    synapse.add_fault(Fault(status=503, skip=2 * 2, times=6))  # 2 tasks x 3 attempts, after two tasks
    seen: list = []
    written_when_said: dict[int, int] = {}

    def said(result) -> None:
        seen.append(result)
        written_when_said[result.line] = sum(t["data"] != ORIGINAL for t in tasks)

    report = apply_job(str(job_dir), client=client, concurrency=1, on_result=said)
    assert report.ok and report.not_reached == 0, report.summary()
    failed = [r for r in report.results if r.status == "failed"]
    assert [r.line for r in failed] == [3, 4] and not any(r.fatal for r in failed), report.results
    assert report.totals["applied"] == 4
    assert sorted(r.line for r in seen) == list(range(1, 7))  # every line said once, the held two included
    # held: said once line 5 was written (the backend answered), not as each failed
    assert written_when_said[3] == written_when_said[4] == 3 and written_when_said[2] == 2, written_when_said


def test_rollback_refuses_another_backend_than_apply_wrote_to(synapse, client, job, capsys, monkeypatch) -> None:
    """The journal names the host each write went to: a rollback with SYNAPSE_HOST set to another
    backend (staging's job, production's host) would look at that backend's tasks of the same ids,
    each a conflict, or with ``--force`` overwritten with the other backend's data. Refused in one
    line, before any request."""
    _, job_dir, tasks = job
    assert main(["apply", str(job_dir)]) == 0
    capsys.readouterr()
    records = [orjson.loads(line) for line in (job_dir / "synapse-journal.jsonl").read_bytes().splitlines()]
    assert {r["host"] for r in records if r["op"] == "before"} == {synapse.url.rstrip("/")}
    elsewhere = "http://127.0.0.1:9"  # nothing answers there: a request would fail, not be refused
    monkeypatch.setenv("SYNAPSE_HOST", elsewhere)
    sent = len(synapse.requests)
    assert main(["rollback", str(job_dir), "--force"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert (f"went to {synapse.url.rstrip('/')} (apply's host, in the job's journal), not to {elsewhere}: "
            f"set SYNAPSE_HOST to {synapse.url.rstrip('/')} to roll them back") in err, err
    # nor does apply mix a second backend's writes into the job's journal: no rollback could undo both
    assert main(["apply", str(job_dir)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert (f"the job's earlier writes went to {synapse.url.rstrip('/')} (its journal), not to {elsewhere}: "
            "one job's journal holds one backend's writes") in err and "totask-manifest clone" in err, err
    monkeypatch.setenv("SYNAPSE_HOST", synapse.url)  # the same backend, as apply's client saw it
    assert main(["rollback", str(job_dir)]) == 0
    assert all(t["data"] == ORIGINAL for t in tasks) and len(synapse.requests) > sent


def test_a_write_whose_done_record_cannot_be_journalled_is_counted_failed_not_unreached(
        synapse, client, job, monkeypatch) -> None:
    """The PUT went out, then its ``done`` record could not be written (a full disk): the run stops.
    That line had no result, so the summary counted it among the lines "not reached: nothing was
    sent for them". It is a failure with the stop now."""
    from totask_manifest._synapse.journal import Journal

    _, job_dir, _tasks = job
    write_ahead = Journal.write_ahead

    async def done_fails(self, op, **fields):
        if op == "done":  # as the journal says a failed write
            raise StorageError("cannot write the journal: No space left on device")
        return await write_ahead(self, op, **fields)

    monkeypatch.setattr(Journal, "write_ahead", done_fails)
    report = apply_job(str(job_dir), client=client, concurrency=1, rollback_on_fatal=False)
    assert not report.ok and "No space left on device" in report.fatal
    assert len(puts(synapse)) == 1  # the first write went out
    [failed] = [r for r in report.results if r.status == "failed"]
    assert failed.line == 1 and failed.fatal, report.results
    assert report.not_reached == 5 and "\n5 lines not reached" in report.summary(), report.summary()


def test_failures_held_when_a_ctrl_c_comes_are_said_and_counted(synapse, client, job, monkeypatch) -> None:
    """Two tasks found no backend (held until the next says whether it is down), then Ctrl-C: the
    two still reach ``on_result``, whose counts the CLI prints as what was done before the stop."""
    from totask_manifest._synapse import apply as apply_module

    _, job_dir, _tasks = job
    synapse.add_fault(Fault(status=503, skip=2 * 2, times=6))  # lines 3 and 4 find no backend
    decide = apply_module._ApplyRun._decide_and_write

    async def interrupted_at_line_5(self, p, own):
        if p.line == 5:  # what a Ctrl-C does to the run: the client cancels the coroutine it waits for
            raise asyncio.CancelledError
        return await decide(self, p, own)

    monkeypatch.setattr(apply_module._ApplyRun, "_decide_and_write", interrupted_at_line_5)
    seen: list = []
    with pytest.raises(concurrent.futures.CancelledError):
        apply_job(str(job_dir), client=client, concurrency=1, on_result=seen.append)
    assert [(r.line, r.status) for r in seen] == [(1, "applied"), (2, "applied"), (3, "failed"), (4, "failed")], seen


def test_a_backend_whose_writes_were_all_rolled_back_leaves_the_job_free_to_apply_elsewhere(
        synapse, client, job) -> None:
    """The journal's hosts that bind the job are those of writes still open: once rollback undid
    every write on one backend, applying the job to another is no mix of two."""
    from totask_manifest._synapse.journal_index import index_journal

    _, job_dir, _tasks = job
    here, elsewhere = synapse.url.rstrip("/"), "https://staging.example"
    assert apply_job(str(job_dir), client=client).ok
    assert index_journal(str(job_dir), elsewhere).hosts == {here}
    assert index_journal(str(job_dir), here).hosts == set()
    assert rollback_job(str(job_dir), client=client).complete
    assert index_journal(str(job_dir), elsewhere).hosts == set()


def test_a_host_with_user_info_in_a_journal_is_never_shown(synapse, client, job, capsys) -> None:
    _, job_dir, tasks = job
    record = {"op": "before", "run": "old", "task_id": tasks[0]["id"], "host": "https://alice:s3cret@old.example",
              "previous": ORIGINAL, "previous_hash": "x", "new": ORIGINAL, "new_hash": "y", "line": 1}
    (job_dir / "synapse-journal.jsonl").write_bytes(orjson.dumps(record) + b"\n")
    for command in (["apply", str(job_dir), "--dry-run"], ["rollback", str(job_dir)]):
        assert main(command) == 2, command
        err = capsys.readouterr().err
        assert "old.example" in err and "s3cret" not in err and "alice" not in err, err


def test_a_rewrite_whose_done_record_cannot_be_journalled_stops_the_second_look_too(
        synapse, client, job, monkeypatch) -> None:
    """A re-run's tasks that look changed and hold this job's earlier writes are written on a second
    look (``_recheck``): a journal that fails there stopped nothing (every queued PUT still went
    out) and left the lines without a result, said as "not reached: nothing was sent"."""
    from totask_manifest._synapse import journal_index
    from totask_manifest._synapse.journal import Journal

    _, job_dir, _tasks = job
    assert apply_job(str(job_dir), client=client).ok
    before = len(puts(synapse))
    monkeypatch.setattr(journal_index.RerunIndex, "stored", lambda self, *a: False)  # each task looks changed
    write_ahead = Journal.write_ahead

    async def done_fails(self, op, **fields):
        if op == "done":
            raise StorageError("cannot write the journal: No space left on device")
        return await write_ahead(self, op, **fields)

    monkeypatch.setattr(Journal, "write_ahead", done_fails)
    report = apply_job(str(job_dir), client=client, concurrency=1, rollback_on_fatal=False)
    assert not report.ok and "No space left on device" in report.fatal
    assert len(puts(synapse)) - before == 1, "the stop stops the second look's writes too"
    failed = [r for r in report.results if r.status == "failed"]
    assert len(failed) == 1 and failed[0].fatal, report.results
    assert report.totals["lines"] == 6 and report.not_reached == 0, report.summary()


@pytest.mark.parametrize("raised", [ValueError("the caller's bug"), StorageError("the caller's log is full")])
def test_an_on_result_that_raises_stops_the_run_and_is_raised_with_nothing_rolled_back(
        synapse, client, job, raised) -> None:
    """A Python caller's ``on_result`` that raises: the caller's error, not the task's. Before, it
    became a failure in the worker, which rolled back the run's writes; a ``StorageError`` also
    gave the line a second result (a journal failure). Now the run stops after that result, keeps
    its writes (journalled), and raises the error; a second apply finds them done."""
    _, job_dir, tasks = job
    seen: list = []

    def said(result) -> None:
        seen.append(result)
        if len(seen) == 2:
            raise raised

    with pytest.raises(type(raised), match="the caller's"):
        apply_job(str(job_dir), client=client, concurrency=1, on_result=said)
    assert [(r.line, r.status) for r in seen] == [(1, "applied"), (2, "applied")], seen
    assert len(puts(synapse)) == 2 and sum(t["data"] != ORIGINAL for t in tasks) == 2  # no rollback, nothing after
    report = apply_job(str(job_dir), client=client, concurrency=1)
    assert report.ok and report.totals["unchanged"] == 2 and report.totals["applied"] == 4, report.summary()


def test_a_backend_that_takes_no_connection_stops_apply_at_the_first_window(synapse, files, client, tmp_path) -> None:
    """Nothing listens at the host: the task listing gets no connection, after every retry. Before,
    the run went back to one GET per task, each retried as long, and stopped after three: 36 s
    with the SDK's retries. Now the listing's failure stops it: no GET per task, every line not
    reached, nothing counted as failed."""
    from totask_manifest._synapse.client import SynapseSettings
    from totask_manifest._synapse.sync_client import SynapseClient

    pid = seed_tasks(synapse, files, 40, data=ORIGINAL)
    export = tmp_path / "export.manifest"
    export_tasks(pid, str(export), client=client)
    job_dir = make_job(tmp_path, export)
    dead = SynapseClient(SynapseSettings(host="http://127.0.0.1:9", access_token=TOKEN), backoff=0.01, max_backoff=0.05,
                         retries=2)
    try:
        report = apply_job(str(job_dir), client=dead, concurrency=8)
    finally:
        dead.close()
    assert not report.ok and report.fatal.startswith("the Synapse backend is unavailable (Synapse did not answer "
                                                     "GET /sdk/tasks/: ClientConnectorError"), report.fatal
    assert report.totals["failed"] == 0 and report.not_reached == 40, report.summary()
    assert dead.aio.sent == 3  # the listing, retried twice; not one GET a task


def test_a_write_in_flight_when_apply_stopped_is_left_open_by_a_rollback_before_it_lands(
        synapse, client, job, monkeypatch) -> None:
    """Ctrl-C on apply while a PUT is on its way, then rollback at once, as the message advises:
    the task still held its data from before, so the write was closed as "already as before";
    then the PUT landed, and no rollback could ever undo it. Now a write in doubt journalled
    under ``LANDING_SECONDS`` ago is left open; once it has landed, the next rollback restores it.
    Past that window (a run killed long ago, its write never sent), it is closed as before."""
    from totask_manifest._synapse import rollback as rollback_module
    from totask_manifest._synapse.client import AsyncSynapseClient

    _, job_dir, tasks = job
    first = tasks[0]["id"]
    on_its_way: list = []
    put = AsyncSynapseClient.annotate_task_data

    async def stopped_while_sending(self, task_id, data, **kw):
        if task_id == first:  # the request went out; the run is stopped before its answer
            on_its_way.append(data)
            raise asyncio.CancelledError
        return await put(self, task_id, data, **kw)

    monkeypatch.setattr(AsyncSynapseClient, "annotate_task_data", stopped_while_sending)
    with pytest.raises(concurrent.futures.CancelledError):
        apply_job(str(job_dir), client=client, concurrency=1)
    monkeypatch.undo()
    early = rollback_job(str(job_dir), client=client)
    assert [(r.task_id, r.status) for r in early.results] == [(first, "landing")], early.results
    assert not early.complete and "1 with a write that may still land (run rollback again in 6" \
        in early.summary() and "not restored yet (run rollback again)" not in early.summary(), early.summary()
    assert not puts(synapse) and tasks[0]["data"] == ORIGINAL
    client.run(client.aio.annotate_task_data(first, on_its_way[0]))  # the stopped run's write lands
    assert [r.status for r in rollback_job(str(job_dir), client=client).results] == ["landing"]  # landed or not
    monkeypatch.setattr(rollback_module, "LANDING_SECONDS", 0.0)  # a minute later
    late = rollback_job(str(job_dir), client=client)
    assert [(r.task_id, r.status) for r in late.results] == [(first, "restored")] and late.complete, late.summary()
    assert tasks[0]["data"] == ORIGINAL
    # the same stop, its write never landing: past the window, the task is as before for good
    monkeypatch.setattr(AsyncSynapseClient, "annotate_task_data", stopped_while_sending)
    with pytest.raises(concurrent.futures.CancelledError):
        apply_job(str(job_dir), client=client, concurrency=1)
    monkeypatch.setattr(AsyncSynapseClient, "annotate_task_data", put)
    closed = rollback_job(str(job_dir), client=client)
    assert [(r.task_id, r.status) for r in closed.results] == [(first, "already")] and closed.complete


def test_an_on_result_that_raises_after_a_fatal_stop_leaves_that_stops_rollback_to_run(
        synapse, client, job, monkeypatch) -> None:
    """The run stopped for a fatal error of its own (the journal cannot be written), then the
    caller's callback raised on that result: the run's rollback was skipped as if the callback had
    stopped it. It goes on: the task written is restored, and the caller's error is raised."""
    from totask_manifest._synapse.journal import Journal

    _, job_dir, tasks = job
    write_ahead = Journal.write_ahead

    async def done_fails(self, op, **fields):
        if op == "done":
            raise StorageError("cannot write the journal: No space left on device")
        return await write_ahead(self, op, **fields)

    def said(result) -> None:
        if result.fatal:
            raise ValueError("the caller's bug")

    monkeypatch.setattr(Journal, "write_ahead", done_fails)
    with pytest.raises(ValueError, match="the caller's bug"):
        apply_job(str(job_dir), client=client, concurrency=1, on_result=said)
    assert len(puts(synapse)) == 2 and all(t["data"] == ORIGINAL for t in tasks)  # the write, then its restore


def test_apply_own_rollback_leaves_open_a_write_a_gateway_gave_up_on(synapse, client, job, monkeypatch) -> None:
    """A fatal stop (the journal cannot be written) rolls back the run's writes at once, but not one
    a gateway answered 504 on every attempt: the backend may still be processing it, and a
    journal saying it was restored would leave it, landed after, on the task for good."""
    from totask_manifest._synapse.journal import Journal

    _, job_dir, tasks = job
    ids = [t["id"] for t in tasks]
    synapse.add_fault(Fault(status=504, method="PUT", path=f"^/tasks/{ids[1]}/", times=None))
    write_ahead = Journal.write_ahead

    async def done_fails_at_the_fourth(self, op, **fields):
        if op == "done" and fields.get("task_id") == ids[3]:
            raise StorageError("cannot write the journal: No space left on device")
        return await write_ahead(self, op, **fields)

    monkeypatch.setattr(Journal, "write_ahead", done_fails_at_the_fourth)
    report = apply_job(str(job_dir), client=client, concurrency=1)
    assert not report.ok and "No space left on device" in report.fatal
    statuses = {r.task_id: r.status for r in report.rollback.results}
    assert statuses == {ids[0]: "restored", ids[1]: "landing", ids[2]: "restored", ids[3]: "restored"}, statuses
    assert not report.rollback.complete and f"finish with: totask-manifest rollback {job_dir}" in report.summary()
