"""A label is for the image of the data unit it was exported with. ``apply`` matched tasks by id
alone: pointed at another backend whose task ids collide (staging vs production, a restored copy),
or at a task bound to another data unit since the export, a fresh task there (``{}``, the same
fingerprint as the exported one) was written with a label made for another image, ``applied``,
exit 0. Each task's ``data_unit`` is now read with its data; a task bound to another data unit
than the line's ``synapse.data_unit_id`` fails, naming both, and nothing is sent to it.
"""

from __future__ import annotations

import pytest

from tests.jobs_helpers import run_cli
from totask_manifest._synapse.apply import apply_job
from totask_manifest._synapse.export import export_tasks
from totask_manifest.testing.builders import TOKEN, make_job, seed_tasks

pytest_plugins = ["totask_manifest.testing.fixtures"]


def _exported_job(synapse, files, client, tmp_path):
    pid = seed_tasks(synapse, files, 4)
    export = tmp_path / "export.manifest"
    export_tasks(pid, str(export), client=client)
    tasks = [dict(t) for t in sorted(synapse.project_tasks(pid), key=lambda t: t["id"])]  # as exported
    return make_job(tmp_path, export), tasks


def _rebind(synapse, task: dict, other: dict) -> None:
    """The task now shows another data unit's image (what a colliding id on another backend is)."""
    synapse.tasks[task["id"]]["data_unit"] = other["data_unit"]


@pytest.mark.parametrize("bulk_reads", [True, False], ids=["listing", "one-get-per-task"])
def test_a_task_bound_to_another_data_unit_is_not_written(synapse, files, client, tmp_path, bulk_reads) -> None:
    job, tasks = _exported_job(synapse, files, client, tmp_path)
    moved, kept = tasks[1], tasks[0]
    exported_unit = moved["data_unit"]
    _rebind(synapse, moved, tasks[3])

    report = apply_job(str(job), client=client, bulk_reads=bulk_reads)

    assert report.totals["applied"] == 3 and report.totals["failed"] == 1, report.totals
    [failed] = [r for r in report.results if r.status == "failed"]
    assert failed.task_id == moved["id"]
    assert f"data unit {tasks[3]['data_unit']}" in failed.detail and f"data unit {exported_unit}" in failed.detail
    assert synapse.tasks[moved["id"]]["data"] == {}  # nothing sent to it
    assert not synapse.requests_to("PUT", f"^/tasks/{moved['id']}/")
    assert synapse.tasks[kept["id"]]["data"] != {}


def test_apply_against_a_backend_whose_ids_name_other_data_units_writes_nothing(synapse, files, client,
                                                                               tmp_path) -> None:
    job, tasks = _exported_job(synapse, files, client, tmp_path)
    for task, other in zip(tasks, tasks[1:] + tasks[:1], strict=True):  # every id now shows another image
        synapse.tasks[task["id"]]["data_unit"] = other["data_unit"]

    done = run_cli("apply", str(job))

    assert done.returncode == 1, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr and TOKEN not in done.stdout + done.stderr
    first = tasks[0]["id"]
    assert (f"task {first}: failed (Synapse's task {first} holds data unit {tasks[1]['data_unit']}, not data unit "
            f"{tasks[0]['data_unit']} the line was exported with") in done.stdout, done.stdout
    assert "nothing was applied" in done.stderr + done.stdout
    assert not synapse.requests_to("PUT")
    assert all(synapse.tasks[t["id"]]["data"] == {} for t in tasks)
