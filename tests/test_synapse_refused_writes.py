"""A PUT that Synapse refuses (401 once the token is revoked, 403) wrote nothing: rollback must not
count its task as one to restore. ``run`` stopped by a 401 part way reported its rollback as
``0 restored, 27 already as before, ..., 5 failed`` (the 27 were never written), and with the
token refused for every request as ``32 failed; 32 tasks not restored yet``; a later ``rollback``
then called the 27 ``already as before``.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from totask_manifest import ToTaskAction
from totask_manifest._synapse.apply import apply_job
from totask_manifest._synapse.apply_report import ApplyReport
from totask_manifest._synapse.export import export_tasks
from totask_manifest._synapse.journal import read_journal
from totask_manifest._synapse.rollback import rollback_job
from totask_manifest.testing import Fault
from totask_manifest.testing.builders import TOKEN, fast_client, make_job, seed_tasks

pytest_plugins = ["totask_manifest.testing.fixtures"]

ORIGINAL = {"annotations": {"image_1": []}, "annotationsData": {"image_1": []}, "extra": {"by": "human"}}


def file_params(pid: int) -> dict:
    return {"name": "Revoked_Mid_Apply", "project": pid, "agent": 1, "method": "file",
            "target_specification_name": "annotation_data"}


@pytest.mark.slow
def test_puts_refused_with_401_are_not_tasks_to_restore(synapse, files, tmp_path) -> None:
    pid = seed_tasks(synapse, files, 40)
    # from the 6th PUT on the token is refused: 5 tasks are written, the PUTs in flight beside them are not
    synapse.add_fault(Fault(status=401, method="PUT", path="annotate_task_data", skip=5, times=None))
    synapse.add_fault(Fault(status=401, method="GET", path=r"^/projects/\d+/$", skip=1, times=None))  # its token check refused too: revoked
    result = ToTaskAction(params=file_params(pid), output_root=str(tmp_path)).start()
    written = [t["id"] for t in synapse.project_tasks(pid) if t["data"]]
    assert len(written) == 5
    assert result["status"] == "FAILED" and "token was refused" in result["message"], result["message"]
    # the check found the token refused: no rollback is tried with it (tester10 F3), the journal keeps the 5
    assert "not rolled back: the rollback cannot run with the refused token" in result["message"], result["message"]
    synapse.clear_faults()  # a new token
    report = rollback_job(str(tmp_path / "revoked-mid-apply"))
    assert report.summary() == "rollback: 5 restored, 0 already as before, 0 changed by someone else (skipped), 0 failed"
    assert sorted(r.task_id for r in report.results) == sorted(written)
    assert all(not t["data"] for t in synapse.project_tasks(pid))


@pytest.mark.slow
def test_a_revoked_token_leaves_only_the_written_tasks_to_restore(synapse, files, tmp_path) -> None:
    """The token revoked at the 6th PUT: every request after is refused, the rollback's reads too."""
    pid = seed_tasks(synapse, files, 40)
    puts = []

    def revoke_at_sixth_put(server, rec) -> None:
        if rec.method == "PUT":
            puts.append(rec)
            if len(puts) == 6:
                server.revoke(TOKEN)

    synapse.hooks.append(revoke_at_sixth_put)
    result = ToTaskAction(params=file_params(pid), output_root=str(tmp_path)).start()
    written = [t["id"] for t in synapse.project_tasks(pid) if t["data"]]
    assert len(written) == 5
    assert result["message"].startswith("5 applied, ") and "; stopped: the token was refused" in result["message"], (
        result["message"])
    assert "; not rolled back: the rollback cannot run with the refused token" in result["message"], result["message"]
    synapse.revoked.clear()
    report = rollback_job(str(tmp_path / "revoked-mid-apply"))
    assert report.summary() == "rollback: 5 restored, 0 already as before, 0 changed by someone else (skipped), 0 failed"


#: what the first task's first PUT meets before its retry is refused 403, by whether that attempt
#: may still land: no answer (a gateway that gave up, a timeout: the backend may still write it), or
#: the backend's own 500 or 503 (nothing of it on its way)
UNANSWERED = {"502": Fault(status=502, times=1),
              "timeout": Fault(status=403, times=1, delay=2.0)}  # answered after the client's 0.5 s
ANSWERED = {"500": Fault(status=500, times=1), "503": Fault(status=503, times=1)}


def refused_after(synapse, files, client, tmp_path, first_attempt: Fault, *,
                  fatal_at_the_last: bool = False) -> tuple[Path, int, int, ApplyReport]:
    """A job applied where the first task's PUT meets ``first_attempt`` (its method and path set
    here), then 403 on its retry: its job folder, its project, that task's id and the report.
    ``fatal_at_the_last``: the last task's PUT is answered 404 and so is its project (gone), which stops
    the run and rolls it back (a refused token would not: its rollback cannot run)."""
    pid = seed_tasks(synapse, files, 3, data=ORIGINAL)
    export = tmp_path / "e.manifest"
    export_tasks(pid, str(export), client=client)
    job = make_job(tmp_path, export)
    ids = sorted(t["id"] for t in synapse.project_tasks(pid))
    synapse.add_fault(replace(first_attempt, method="PUT", path=f"^/tasks/{ids[0]}/"))
    synapse.add_fault(Fault(status=403, method="PUT", path=f"^/tasks/{ids[0]}/", times=None))
    if fatal_at_the_last:
        synapse.add_fault(Fault(status=404, method="PUT", path=f"^/tasks/{ids[-1]}/", times=None))
        synapse.add_fault(Fault(status=404, method="GET", path=r"^/projects/\d+/$", times=None))  # the project gone
    impatient = fast_client(synapse, timeout=0.5)
    try:
        report = apply_job(str(job), client=impatient, concurrency=1)
    finally:
        impatient.close()
    synapse.clear_faults()
    return job, pid, ids[0], report


def failed_records(job: Path) -> list[tuple[int, bool | None]]:
    """The task and ``refused`` of each ``failed`` record of the job's journal."""
    return [(r["task_id"], r.get("refused")) for r in read_journal(str(job)) if r["op"] == "failed"]


@pytest.mark.parametrize("first_attempt", UNANSWERED.values(), ids=UNANSWERED.keys())
def test_a_refusal_after_an_unanswered_attempt_is_still_restored(synapse, files, client, tmp_path, monkeypatch,
                                                                  first_attempt) -> None:
    """A PUT retried after a 502 or a timeout (the backend may have written it behind the gateway,
    or be writing it still) and then refused is not proof that nothing was written: rollback still
    looks at that task. Within a minute of its run's last record it leaves the task open, as for a
    write no one answered: that attempt's write may still land. It was closed as "already as
    before" at once, and the write that landed a moment later stayed on the task for good."""
    job, pid, first, report = refused_after(synapse, files, client, tmp_path, first_attempt)
    assert report.totals["applied"] == 2 and report.totals["failed"] == 1, report.summary()
    assert failed_records(job) == [(first, False)]
    early = rollback_job(str(job), client=client)
    assert early.summary().startswith(
        "rollback: 2 restored, 0 already as before, 0 changed by someone else (skipped), 0 failed, 1 with a write "
        "that may still land (run rollback again in "), early.summary()
    assert [r.task_id for r in early.results if r.status == "landing"] == [first]
    landed = next(r.body["data"] for r in synapse.requests_to("PUT", f"^/tasks/{first}/"))
    client.annotate_task_data(first, landed)  # the unanswered attempt's write reaches the backend after all
    monkeypatch.setattr("totask_manifest._synapse.rollback.LANDING_SECONDS", 0.0)  # a minute later
    assert rollback_job(str(job), client=client).summary() == (
        "rollback: 1 restored, 0 already as before, 0 changed by someone else (skipped), 0 failed")
    assert all(t["data"] == ORIGINAL for t in synapse.project_tasks(pid))


def answered_records(job: Path) -> list[tuple[int, int]]:
    """The task and status of each ``answered`` record of the job's journal (in doubt, none on its way)."""
    return [(r["task_id"], r["status"]) for r in read_journal(str(job)) if r["op"] == "answered"]


@pytest.mark.parametrize("stored", [False, True], ids=["not-stored", "stored"])
@pytest.mark.parametrize("first_attempt", ANSWERED.values(), ids=ANSWERED.keys())
def test_a_refusal_after_a_500_or_503_is_looked_at_without_waiting(synapse, files, client, tmp_path, first_attempt,
                                                                    stored) -> None:
    """A 500 or a 503 is the backend's own answer: nothing of that attempt is on its way, but it
    may have stored the write before failing (a final 500 is in doubt for that reason). A refusal
    of the retry was journalled as after an unanswered attempt (any retry counted), so a rollback
    at once left the task open for a minute, waiting for a write that could not land; settling it
    as refused instead would leave a write the 500 stored on the task for good. It is noted
    ``answered`` now: rollback looks at the task at once and restores it only where it was stored."""
    job, pid, first, report = refused_after(synapse, files, client, tmp_path, first_attempt)
    assert report.totals["applied"] == 2 and report.totals["failed"] == 1, report.summary()
    assert failed_records(job) == [] and answered_records(job) == [(first, 403)]
    if stored:  # the 500's attempt had stored it
        client.annotate_task_data(first, next(r.body["data"] for r in synapse.requests_to("PUT", f"^/tasks/{first}/")))
    early = rollback_job(str(job), client=client)
    assert early.summary() == (f"rollback: {2 + stored} restored, {1 - stored} already as before, 0 changed by someone "
                               "else (skipped), 0 failed"), early.summary()
    assert early.complete
    assert all(t["data"] == ORIGINAL for t in synapse.project_tasks(pid))


@pytest.mark.parametrize(("first_attempt", "left_open"), [(ANSWERED["500"], False), (UNANSWERED["502"], True)],
                         ids=["500", "502"])
def test_apply_own_rollback_waits_only_for_a_refusal_after_an_unanswered_attempt(synapse, files, client, tmp_path,
                                                                                  first_attempt, left_open) -> None:
    """A fatal stop rolls the run's writes back at once: a refusal after a 500 is looked at
    there and then (the task holds what it held), nothing is left open; after a 502 that attempt
    may still land, so its task is left for a later rollback (``finish with``). After a 500 it was
    left open too."""
    job, pid, first, report = refused_after(synapse, files, client, tmp_path, first_attempt, fatal_at_the_last=True)
    assert "is gone (404)" in report.fatal, report.summary()
    statuses = {r.task_id: r.status for r in report.rollback.results}
    second = sorted(t["id"] for t in synapse.project_tasks(pid))[1]
    assert statuses == {first: "landing" if left_open else "already", second: "restored"}, statuses
    assert report.rollback.complete is not left_open, report.summary()
    assert (f"finish with: totask-manifest rollback {job}" in report.summary()) is left_open, report.summary()


def test_a_rerun_finds_the_write_of_a_refusal_after_an_unanswered_attempt(synapse, files, client, tmp_path) -> None:
    """The 502's write landed, stored normalised: a re-run counts the task ``unchanged`` (the write
    in doubt found stored), not a conflict, and rollback then restores it."""
    job, _, first, _ = refused_after(synapse, files, client, tmp_path, UNANSWERED["502"])
    synapse.normalise = lambda data: {**data, "meta": {"normalised": True}}
    client.annotate_task_data(first, next(r.body["data"] for r in synapse.requests_to("PUT", f"^/tasks/{first}/")))
    report = apply_job(str(job), client=client)
    assert report.totals["unchanged"] == 3 and report.totals["conflict"] == 0, report.summary()
    assert [(r["task_id"], r.get("recovered")) for r in read_journal(str(job)) if r["op"] == "done"][-1] == (first, True)


def test_a_task_refused_with_403_is_not_rolled_back(synapse, files, client, tmp_path) -> None:
    pid = seed_tasks(synapse, files, 3)
    export = tmp_path / "e.manifest"
    export_tasks(pid, str(export), client=client)
    job = make_job(tmp_path, export)
    first = min(t["id"] for t in synapse.project_tasks(pid))
    synapse.add_fault(Fault(status=403, method="PUT", path=f"^/tasks/{first}/", times=None))
    assert apply_job(str(job), client=client).totals["failed"] == 1
    synapse.clear_faults()
    report = rollback_job(str(job), client=client)
    assert report.summary() == "rollback: 2 restored, 0 already as before, 0 changed by someone else (skipped), 0 failed"
    assert first not in {r.task_id for r in report.results}


@pytest.mark.parametrize("body", [b"<html><body>Request accepted</body></html>", b'{"id": 1, "data": {"annot'])
def test_a_write_answered_200_with_a_body_that_is_not_json_is_restored(synapse, files, client, tmp_path, body) -> None:
    """A proxy (or a backend cut short) that answers the PUT 200 with an HTML page or truncated
    JSON: the backend may have stored the write. It was journalled as refused, so rollback left
    the task holding the job's data and the annotation it had before was lost."""
    original = {"annotations": {"image_1": []}, "annotationsData": {"image_1": []}, "extra": {"by": "human"}}
    pid = seed_tasks(synapse, files, 3, data=original)
    export = tmp_path / "e.manifest"
    export_tasks(pid, str(export), client=client)
    job = make_job(tmp_path, export)
    first = min(t["id"] for t in synapse.project_tasks(pid))

    def store_then_answer_html(server, rec) -> None:  # the backend writes; what answers is not its JSON
        if rec.method == "PUT" and rec.path.startswith(f"/tasks/{first}/"):
            server.tasks[first]["data"] = rec.body["data"]

    synapse.hooks.append(store_then_answer_html)
    synapse.add_fault(Fault(status=200, method="PUT", path=f"^/tasks/{first}/", body=body, times=None))
    report = apply_job(str(job), client=client)
    assert report.totals["applied"] == 2 and report.totals["failed"] == 1, report.summary()
    assert [r.detail for r in report.results if r.status == "failed"] == [
        f"Synapse answered PUT /tasks/{first}/annotate_task_data/ with 200 but the body is not JSON"]
    assert not [r for r in read_journal(str(job)) if r["op"] == "failed" and r.get("refused")]
    synapse.hooks.clear()
    synapse.clear_faults()
    assert apply_job(str(job), client=client).totals["unchanged"] == 3
    assert rollback_job(str(job), client=client).summary() == (
        "rollback: 3 restored, 0 already as before, 0 changed by someone else (skipped), 0 failed")
    assert all(t["data"] == original for t in synapse.project_tasks(pid))
