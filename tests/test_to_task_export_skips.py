"""A task the export cannot take (its data unit has no files, no primary file with a URL, or the
task answers 404 between the listing and its read) is a failed task of the run, as in the SDK:
its ``AnnotateTaskDataStep`` reads each listed task and counts any error there as that task's
failure (``failed_count``, ``failures`` with ``{task_id, error}``, ``total_tasks`` the tasks
listed). ``run`` left them out of its result (``success=2, failed=0`` for 4 tasks listed), so a
task no one annotated went unreported; a resumed run must still count them.
Real contract server and file server on 127.0.0.1."""

from __future__ import annotations

from totask_manifest import ToTaskAction
from totask_manifest.testing.builders import seed_tasks

pytest_plugins = ["totask_manifest.testing.fixtures"]


def params(pid: int) -> dict:
    return {"name": "Export_Skips", "project": pid, "agent": 1, "method": "file",
            "target_specification_name": "annotation_data"}


def seed_with_unexportable(synapse, files) -> tuple[int, int, int]:
    """Four tasks: the second's data unit has no files, the third's primary file no URL."""
    pid = seed_tasks(synapse, files, 4)
    tasks = sorted(t["id"] for t in synapse.project_tasks(pid))
    no_files, no_primary = tasks[1], tasks[2]
    synapse.data_units[synapse.tasks[no_files]["data_unit"]]["files"] = {}
    synapse.data_units[synapse.tasks[no_primary]["data_unit"]]["files"]["image_1"]["url"] = None
    return pid, no_files, no_primary


def test_tasks_the_export_skips_are_failed_tasks_of_the_result(synapse, files, tmp_path) -> None:
    pid, no_files, no_primary = seed_with_unexportable(synapse, files)
    gone = synapse.add_task(pid, synapse.tasks[no_files]["data_unit"])  # answers 404 when the export reads it
    synapse.add_fault(status=404, method="GET", path=f"^/tasks/{gone}/$", times=1)
    result = ToTaskAction(params=params(pid), output_root=str(tmp_path)).start()
    assert result["status"] == "SUCCEEDED", result
    assert result["message"] == "to_task completed. success=2, failed=3", result["message"]
    assert (result["total_tasks"], result["success_count"], result["failed_count"]) == (5, 2, 3)
    assert result["metrics"] == {"total": 5, "success": 2, "failed": 3, "stand_by": 0}
    assert result["failures"][:2] == [
        {"task_id": no_files, "error": "Data unit does not have files"},
        {"task_id": no_primary, "error": "Primary file URL not found for task"},
    ]
    assert result["failures"][2]["task_id"] == gone and "404" in result["failures"][2]["error"]


def test_a_resumed_run_still_counts_the_tasks_the_export_skipped(synapse, files, tmp_path) -> None:
    pid, no_files, no_primary = seed_with_unexportable(synapse, files)
    # the first run exports and annotates, then its first write is refused: it stops, FAILED
    synapse.add_fault(status=401, method="PUT", path="annotate_task_data", times=1)
    synapse.add_fault(status=401, method="GET", path=r"^/projects/\d+/$", skip=1, times=1)  # its token check refused too: revoked
    first = ToTaskAction(params=params(pid), output_root=str(tmp_path)).start()
    assert first["status"] == "FAILED" and "token was refused" in first["message"], first
    synapse.clear_faults()
    again = ToTaskAction(params=params(pid), output_root=str(tmp_path)).start()  # resumed: no new export
    assert again["status"] == "SUCCEEDED", again
    assert (again["total_tasks"], again["success_count"], again["failed_count"]) == (4, 2, 2), again
    assert [f["task_id"] for f in again["failures"]] == [no_files, no_primary]


def test_an_annotation_job_that_stops_still_counts_the_tasks_the_export_skipped(synapse, files, tmp_path) -> None:
    """The annotation job stops early (403 on every label): its result counts the skipped task too."""
    from totask_manifest._failure_rules import FAIL_FAST_LINES

    n = FAIL_FAST_LINES + 8
    pid = seed_tasks(synapse, files, n)
    no_files = sorted(t["id"] for t in synapse.project_tasks(pid))[3]
    synapse.data_units[synapse.tasks[no_files]["data_unit"]]["files"] = {}
    files.add_fault(status=403, method="GET", path="/labels/", times=None)
    result = ToTaskAction(params=params(pid), output_root=str(tmp_path)).start()
    assert result["status"] == "FAILED" and "resume" in result["message"], result
    assert result["metrics"] == {"total": n, "success": 0, "failed": FAIL_FAST_LINES + 1, "stand_by": 7}, result
    assert result["failures"][0] == {"task_id": no_files, "error": "Data unit does not have files"}
    assert synapse.requests_to("PUT") == []


def test_a_run_killed_as_its_export_ends_still_counts_the_tasks_it_skipped(synapse, files, tmp_path, monkeypatch) -> None:
    """The skipped tasks were noted in the run's record after the export's manifest was put in
    place: a run killed between the two left a manifest the next run does not export again, and
    the tasks it had skipped were in no count. They are noted before the manifest is committed."""
    import pytest

    from totask_manifest._to_task import action

    pid, no_files, no_primary = seed_with_unexportable(synapse, files)
    real = action.export_tasks

    def killed_after(*args, **kwargs):
        real(*args, **kwargs)
        raise KeyboardInterrupt  # as a kill -9 right after the export: nothing after it runs

    monkeypatch.setattr(action, "export_tasks", killed_after)
    with pytest.raises(KeyboardInterrupt):
        ToTaskAction(params=params(pid), output_root=str(tmp_path)).start()
    monkeypatch.setattr(action, "export_tasks", real)  # not undo(): the fixtures' environment stays
    again = ToTaskAction(params=params(pid), output_root=str(tmp_path)).start()  # the export is kept
    assert again["status"] == "SUCCEEDED", again
    assert (again["total_tasks"], again["success_count"], again["failed_count"]) == (4, 2, 2), again
    assert [f["task_id"] for f in again["failures"]] == [no_files, no_primary]
