"""Rollback puts a task back only where it still shows the image the job wrote it for. ``apply``
refuses a task bound to another data unit than the line was exported with; ``rollback`` read tasks
with ``fields=id,data`` alone, so pointed at another backend whose task ids collide (staging vs
production, a restored copy), or at a task rebound since the job wrote it, it put the data the job
found on one image's task onto another image's task: ``restored``, exit 0. Apply now journals the
data unit each write went to, and rollback reads ``fields=id,data,data_unit`` and refuses such a task,
naming both data units and ``SYNAPSE_HOST``, nothing sent.
"""

from __future__ import annotations

import orjson

from tests.jobs_helpers import run_cli
from totask_manifest._synapse.apply import apply_job
from totask_manifest._synapse.export import export_tasks
from totask_manifest._synapse.rollback import rollback_job
from totask_manifest.testing.builders import TOKEN, make_job, seed_tasks

pytest_plugins = ["totask_manifest.testing.fixtures"]


def _applied_job(synapse, files, client, tmp_path):
    pid = seed_tasks(synapse, files, 4)
    export = tmp_path / "export.manifest"
    export_tasks(pid, str(export), client=client)
    tasks = [dict(t) for t in sorted(synapse.project_tasks(pid), key=lambda t: t["id"])]  # as exported
    job = make_job(tmp_path, export)
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
