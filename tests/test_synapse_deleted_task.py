"""A task deleted in Synapse after the job wrote it: rollback answered it ``failed`` with ``1 tasks
not restored yet (run rollback again)`` and exit 1, on every run again, forever: there is nothing
left to restore, and a script waiting for rollback to succeed never saw it. Such a task is now
said to be deleted, and counted apart; rollback completes.
"""

from __future__ import annotations

from tests.jobs_helpers import run_cli
from totask_manifest.testing.builders import TOKEN, applied_job

pytest_plugins = ["totask_manifest.testing.fixtures"]

ORIGINAL = {"annotations": {"image_1": []}, "annotationsData": {"image_1": []}, "extra": {"by": "human"}}


def test_rollback_of_a_task_deleted_since_completes_and_says_so(synapse, files, client, tmp_path) -> None:
    job, tasks = applied_job(synapse, files, client, tmp_path, 4, data=ORIGINAL)
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
