"""A task deleted in Synapse after the job wrote it: rollback answered it ``failed`` with ``1 tasks
not restored yet (run rollback again)`` and exit 1, on every run again, forever: there is nothing
left to restore, and a script waiting for rollback to succeed never saw it. Such a task is now
said to be deleted, and counted apart; rollback completes.
"""

from __future__ import annotations

from tests.jobs_helpers import run_cli
from totask_manifest._synapse.apply import apply_job
from totask_manifest._synapse.export import export_tasks
from totask_manifest.testing.builders import TOKEN, make_job, seed_tasks

pytest_plugins = ["totask_manifest.testing.fixtures"]

ORIGINAL = {"annotations": {"image_1": []}, "annotationsData": {"image_1": []}, "extra": {"by": "human"}}


def test_rollback_of_a_task_deleted_since_completes_and_says_so(synapse, files, client, tmp_path) -> None:
    pid = seed_tasks(synapse, files, 4, data=ORIGINAL)
    export = tmp_path / "export.manifest"
    export_tasks(pid, str(export), client=client)
    job = make_job(tmp_path, export)
    assert apply_job(str(job), client=client).totals["applied"] == 4
    tasks = sorted(t["id"] for t in synapse.project_tasks(pid))
    del synapse.tasks[tasks[1]]

    for attempt in ("first", "again"):
        done = run_cli("rollback", str(job))
        assert done.returncode == 0, (attempt, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr and TOKEN not in done.stdout + done.stderr
        assert (f"task {tasks[1]}: deleted in Synapse (nothing to restore: Synapse answered 404 Not Found to "
                f"GET /tasks/{tasks[1]}/") in done.stdout, done.stdout
        restored = 3 if attempt == "first" else 0  # restores are journalled: the second run asks again only of the deleted
        assert done.stdout.splitlines()[-1] == (
            f"rollback: {restored} restored, 0 already as before, 0 changed by someone else (skipped), "
            "0 failed, 1 deleted in Synapse"), done.stdout
    assert all(synapse.tasks[t]["data"] == ORIGINAL for t in tasks if t != tasks[1])
