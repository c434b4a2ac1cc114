"""``rollback`` of a ToTask job folder whose earlier run a later ``run`` archived
(``ROOT/.totask-archive/<name>-<UTC time>``, its journal with it): the folder's own journal holds
nothing to undo, and rollback said "nothing to restore ... (never applied, or every write undone
already)" while the tasks held the archived run's writes. It now names the archived runs with
writes left to undo, newest first, as the ``rollback`` commands that undo them."""

from __future__ import annotations

import pytest

from tests.jobs_helpers import run_cli
from totask_manifest import ToTaskAction
from totask_manifest.testing.builders import seed_tasks

pytest_plugins = ["totask_manifest.testing.fixtures"]


def _run(pid: int, root) -> None:
    params = {"name": "Archived_Run", "project": pid, "agent": 1, "method": "file",
              "target_specification_name": "annotation_data"}
    assert ToTaskAction(params=params, output_root=str(root)).start()["status"] == "SUCCEEDED"


def _data(synapse, pid: int) -> dict[int, object]:
    return {t["id"]: t["data"] for t in synapse.project_tasks(pid)}


@pytest.mark.slow
def test_rollback_names_the_archived_run_that_holds_writes(synapse, files, tmp_path) -> None:
    pid = seed_tasks(synapse, files, 2)
    before = _data(synapse, pid)
    _run(pid, tmp_path)
    written = _data(synapse, pid)
    assert written != before
    _run(pid, tmp_path)  # the tasks hold the first run's writes already: this run writes nothing
    _run(pid, tmp_path)  # nor this one: of the two runs archived, the first alone holds writes
    archives = sorted((tmp_path / ".totask-archive").iterdir())
    assert len(archives) == 2
    job = tmp_path / "archived-run"

    r = run_cli("rollback", str(job))

    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    assert (r.stdout + r.stderr).strip().splitlines()[-1] == (
        "rollback: nothing to restore: the job's journal holds no write left to undo, but its earlier run "
        f"{archives[0]} holds writes not undone (moved there when a new run started); to undo it: "
        f"rollback {archives[0]}")
    assert _data(synapse, pid) == written  # nothing restored by it
    assert run_cli("rollback", str(archives[0])).returncode == 0
    assert _data(synapse, pid) == before
    again = run_cli("rollback", str(job))  # every archived write undone: said as before
    assert (again.stdout + again.stderr).strip().splitlines()[-1] == (
        "rollback: nothing to restore: the job's journal holds no write left to undo (never applied, or every "
        "write undone already)")


@pytest.mark.slow
def test_several_archived_runs_are_named_newest_first(synapse, files, tmp_path) -> None:
    """Each run's journal holds what the tasks held before it wrote: undone newest first, the
    tasks end as before the first run."""
    pid = seed_tasks(synapse, files, 2)
    before = _data(synapse, pid)
    _run(pid, tmp_path)
    for task in synapse.project_tasks(pid):  # someone puts the tasks back by hand: the next run writes again
        task["data"] = before[task["id"]]
    _run(pid, tmp_path)
    _run(pid, tmp_path)  # writes nothing
    older, newer = sorted((tmp_path / ".totask-archive").iterdir())  # the third run's folder is not archived

    r = run_cli("rollback", str(tmp_path / "archived-run"))

    assert r.returncode == 0, r.stderr
    assert (r.stdout + r.stderr).strip().splitlines()[-1] == (
        "rollback: nothing to restore: the job's journal holds no write left to undo, but 2 earlier runs of it "
        f"archived under {tmp_path / '.totask-archive'} hold writes not undone (moved there when a new run "
        f"started); to undo them, newest first: rollback {newer}; rollback {older}")
    for archived in (newer, older):
        assert run_cli("rollback", str(archived)).returncode == 0
    assert _data(synapse, pid) == before


@pytest.mark.slow
def test_a_rollback_that_undid_the_folder_names_the_archived_run_left(synapse, files, tmp_path) -> None:
    """The folder's own run had writes, undone: the tasks then held the archived run's writes, and
    the summary said nothing of it."""
    pid = seed_tasks(synapse, files, 2)
    before = _data(synapse, pid)
    _run(pid, tmp_path)
    first = _data(synapse, pid)
    for task in synapse.project_tasks(pid):  # put back by hand: the second run writes again
        task["data"] = before[task["id"]]
    _run(pid, tmp_path)
    [archived] = sorted((tmp_path / ".totask-archive").iterdir())

    r = run_cli("rollback", str(tmp_path / "archived-run"))

    assert r.returncode == 0, r.stderr
    assert (r.stdout + r.stderr).strip().splitlines()[-1] == (
        "rollback: 2 restored, 0 already as before, 0 changed by someone else (skipped), 0 failed; its earlier run "
        f"{archived} holds writes not undone too: to undo it: rollback {archived}")
    assert _data(synapse, pid) == before  # the second run's writes undone: as the hand put them back
    assert run_cli("rollback", str(archived)).returncode == 0
    assert _data(synapse, pid) == before
    assert first != before
