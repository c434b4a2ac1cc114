"""Rollback puts a task back only where it still shows the image the job wrote it for. ``apply``
refuses a task bound to another data unit than the line was exported with; ``rollback`` read tasks
with ``fields=id,data`` alone, so pointed at another backend whose task ids collide (staging vs
production, a restored copy), or at a task rebound since the job wrote it, it put the data the job
found on one image's task onto another image's task: ``restored``, exit 0. Apply now journals the
data unit each write went to, and rollback reads ``fields=id,data,data_unit`` and refuses such a task,
naming both data units and ``SYNAPSE_HOST``, nothing sent.

Its closing summary then said ``1 tasks not restored yet (run rollback again)``, as for a 503: a
rerun meets the same refusal until the host or the task's data unit changes. The summary now
counts such tasks apart and says what to check; the tasks a rerun can restore keep ``run rollback
again``; a rollback with both says both, each with its count.
"""

from __future__ import annotations

import orjson

from tests.jobs_helpers import run_cli
from tests.test_synapse_data_unit_check import _exported_job
from totask_manifest._synapse.apply import apply_job
from totask_manifest._synapse.rollback import rollback_job
from totask_manifest.testing.builders import TOKEN
from totask_manifest.testing.recording import Fault

pytest_plugins = ["totask_manifest.testing.fixtures"]


def _applied_job(synapse, files, client, tmp_path):
    job, tasks = _exported_job(synapse, files, client, tmp_path)
    report = apply_job(str(job), client=client)
    assert report.totals["applied"] == 4, report.totals
    return job, tasks


def test_rollback_leaves_a_task_bound_to_another_data_unit_alone(synapse, files, client, tmp_path) -> None:
    job, tasks = _applied_job(synapse, files, client, tmp_path)
    moved = tasks[1]
    written = synapse.tasks[moved["id"]]["data"]
    synapse.tasks[moved["id"]]["data_unit"] = tasks[3]["data_unit"]  # the task now shows another image
    puts = len(synapse.requests_to("PUT", f"^/tasks/{moved['id']}/"))

    report = rollback_job(str(job), client=client)

    assert report.totals["restored"] == 3 and report.totals["failed"] == 1, report.summary()
    [failed] = [r for r in report.results if r.status == "failed"]
    assert failed.task_id == moved["id"]
    assert (f"task {moved['id']} holds data unit {tasks[3]['data_unit']}, not data unit {moved['data_unit']}"
            in failed.detail), failed.detail
    assert "SYNAPSE_HOST" in failed.detail
    assert synapse.tasks[moved["id"]]["data"] == written  # nothing put back onto the other image's task
    assert len(synapse.requests_to("PUT", f"^/tasks/{moved['id']}/")) == puts
    assert not report.complete  # that task's write is not undone


def test_rollback_against_a_backend_whose_ids_name_other_data_units_restores_nothing(synapse, files, client,
                                                                                    tmp_path) -> None:
    job, tasks = _applied_job(synapse, files, client, tmp_path)
    for task, other in zip(tasks, tasks[1:] + tasks[:1], strict=True):  # every id now shows another image
        synapse.tasks[task["id"]]["data_unit"] = other["data_unit"]
    puts = len(synapse.requests_to("PUT"))

    done = run_cli("rollback", str(job), "--force")  # --force does not change it

    assert done.returncode == 1, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr and TOKEN not in done.stdout + done.stderr
    first = tasks[0]["id"]
    assert (f"task {first}: failed (Synapse's task {first} holds data unit {tasks[1]['data_unit']}, not data unit "
            f"{tasks[0]['data_unit']}") in done.stdout, done.stdout
    assert len(synapse.requests_to("PUT")) == puts
    assert all(r.query.get("fields") == "id,data,data_unit" for r in synapse.requests_to("GET", "^/tasks/"))
    summary = done.stderr.strip().splitlines()[-1]  # the summary of a rollback that left tasks: on stderr
    assert summary.startswith("rollback: 0 restored"), done.stderr
    assert (f"; 4 tasks not restored as they hold another data unit than the job wrote them for (first: task "
            f"{first}), and running rollback again will not restore them: check SYNAPSE_HOST (now {synapse.url})"
            in summary), summary
    assert "run rollback again" not in done.stdout + done.stderr and "not restored yet" not in summary


def _as_an_older_version_wrote_it(job) -> None:
    """The journal without ``data_unit`` in its records, as apply wrote it before it recorded it."""
    journal = job / "synapse-journal.jsonl"
    records = [orjson.loads(line) for line in journal.read_bytes().splitlines()]
    assert any("data_unit" in r for r in records)
    journal.write_bytes(b"".join(orjson.dumps({k: v for k, v in r.items() if k != "data_unit"}) + b"\n"
                                 for r in records))


def test_an_older_journal_takes_the_data_unit_from_the_manifest_line(synapse, files, client, tmp_path) -> None:
    job, tasks = _applied_job(synapse, files, client, tmp_path)
    _as_an_older_version_wrote_it(job)
    moved = tasks[2]
    synapse.tasks[moved["id"]]["data_unit"] = tasks[0]["data_unit"]

    report = rollback_job(str(job), client=client)

    assert report.totals["restored"] == 3 and report.totals["failed"] == 1, report.summary()
    [failed] = [r for r in report.results if r.status == "failed"]
    assert failed.task_id == moved["id"] and f"not data unit {moved['data_unit']}" in failed.detail
    assert synapse.tasks[moved["id"]]["data"] != {}


def test_an_older_journal_whose_manifest_line_names_another_task_is_not_checked(synapse, files, client,
                                                                               tmp_path) -> None:
    job, tasks = _applied_job(synapse, files, client, tmp_path)
    _as_an_older_version_wrote_it(job)
    output = job / "manifests" / "output" / "output.manifest"
    lines = output.read_bytes().splitlines(keepends=True)
    output.write_bytes(b"".join([lines[1], lines[0], *lines[2:]]))  # edited since: lines 1 and 2 swapped
    synapse.tasks[tasks[0]["id"]]["data_unit"] = tasks[1]["data_unit"]  # its line now names another task

    report = rollback_job(str(job), client=client)

    assert report.totals["restored"] == 4, report.summary()  # proves nothing: restored, as before


def test_an_older_journal_still_checks_the_other_tasks_past_a_line_that_is_not_json(synapse, files, client,
                                                                                   tmp_path) -> None:
    job, tasks = _applied_job(synapse, files, client, tmp_path)
    _as_an_older_version_wrote_it(job)
    output = job / "manifests" / "output" / "output.manifest"
    lines = output.read_bytes().splitlines(keepends=True)
    output.write_bytes(b"".join([b"{not json\n", *lines[1:]]))  # line 1 damaged since
    synapse.tasks[tasks[2]["id"]]["data_unit"] = tasks[0]["data_unit"]

    report = rollback_job(str(job), client=client)

    assert report.totals["restored"] == 3 and report.totals["failed"] == 1, report.summary()
    assert [r.task_id for r in report.results if r.status == "failed"] == [tasks[2]["id"]]


_RERUN = "(run rollback again)"
_UNIT = "another data unit than the job wrote"


def _unavailable(synapse, task_id: int) -> None:
    """Every GET of one task answered 503 (after the client's retries: a transient failure)."""
    synapse.add_fault(Fault(status=503, method="GET", path=rf"^/tasks/{task_id}/$", times=None))


def test_a_data_unit_refusal_is_not_advised_a_rerun_but_what_to_check(synapse, files, client, tmp_path) -> None:
    job, tasks = _applied_job(synapse, files, client, tmp_path)
    moved = tasks[1]["id"]
    synapse.tasks[moved]["data_unit"] = tasks[3]["data_unit"]

    summary = rollback_job(str(job), client=client).summary()

    assert summary == ("rollback: 3 restored, 0 already as before, 0 changed by someone else (skipped), 1 failed; "
                       f"1 task not restored as it holds another data unit than the job wrote it for (task {moved}), "
                       f"and running rollback again will not restore it: check SYNAPSE_HOST (now {synapse.url}): "
                       "is it the Synapse the job was applied to? If it is, see why the task was bound to another "
                       "data unit since"), summary
    assert TOKEN not in summary
    again = rollback_job(str(job), client=client)  # the advice holds: a rerun meets the same refusal
    assert again.totals["failed"] == 1 and not again.complete and _RERUN not in again.summary(), again.summary()


def test_a_transient_failure_keeps_run_rollback_again(synapse, files, client, tmp_path) -> None:
    job, tasks = _applied_job(synapse, files, client, tmp_path)
    _unavailable(synapse, tasks[2]["id"])

    report = rollback_job(str(job), client=client)

    summary = report.summary()
    assert report.totals["restored"] == 3 and report.totals["failed"] == 1 and report.fatal is None, summary
    assert summary.endswith(f"1 failed; 1 tasks not restored yet {_RERUN}"), summary
    assert _UNIT not in summary and "SYNAPSE_HOST" not in summary
    synapse.clear_faults()
    again = rollback_job(str(job), client=client)  # the advice holds: the backend back, a rerun finishes
    assert again.complete and again.totals["restored"] == 1, again.summary()


def test_both_kinds_left_are_each_said_with_their_count(synapse, files, client, tmp_path) -> None:
    job, tasks = _applied_job(synapse, files, client, tmp_path)
    _unavailable(synapse, tasks[0]["id"])
    for task, other in ((tasks[1], tasks[3]), (tasks[2], tasks[0])):  # two tasks now show other images
        synapse.tasks[task["id"]]["data_unit"] = other["data_unit"]

    report = rollback_job(str(job), client=client)

    summary = report.summary()
    assert report.totals["restored"] == 1 and report.totals["failed"] == 3 and report.remaining == 3, summary
    assert (f"3 failed; 1 tasks not restored yet {_RERUN}; 2 tasks not restored as they hold another data unit "
            f"than the job wrote them for (first: task {tasks[1]['id']}), and running rollback again will not "
            f"restore them: check SYNAPSE_HOST (now {synapse.url})") in summary, summary
    assert summary.endswith("see why those tasks were bound to another data unit since"), summary
    assert summary.count(_RERUN) == 1
    synapse.clear_faults()
    again = rollback_job(str(job), client=client)  # the transient one restored; the other two still refused
    assert again.totals["restored"] == 1 and again.totals["failed"] == 2, again.summary()
    assert _RERUN not in again.summary() and "2 tasks not restored as they hold" in again.summary()


def test_tasks_that_found_no_backend_before_it_was_called_down_are_said_in_the_summary_only(
        synapse, files, client, tmp_path) -> None:
    """Three tasks in a row without an answer stop the rollback: the two before the third are the
    outage's too, marked fatal (said once, in the summary), not a ``task N: failed`` line each."""
    job, _tasks = _applied_job(synapse, files, client, tmp_path)
    synapse.add_fault(Fault(status=503, method="GET", times=None))

    report = rollback_job(str(job), client=client, concurrency=1)

    assert report.fatal is not None and "unavailable (3 tasks in a row failed" in report.fatal, report.summary()
    failed = [r for r in report.results if r.status == "failed"]
    assert len(failed) == 3 and all(r.fatal for r in failed), report.results
