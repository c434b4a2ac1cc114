"""A job chained (or cloned) from a job that was applied: its lines carry the export's fingerprint
of each task, so every task, holding the first job's write, looked "changed in Synapse since
export": a conflict, and ``--force``, the only way through, also overwrote a reviewer's real
edit. A task holding a write of a job in the lineage (``chained-from``, ``cloned-from`` in
job.json, followed back) is now written, journalled with what it held; a task someone else
changed is still a conflict, and a rollback puts back the first job's write."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import orjson
import pytest

from totask_manifest._jobs.job import Job
from totask_manifest._synapse.apply import apply_job
from totask_manifest._synapse.rollback import rollback_job
from totask_manifest.testing.builders import applied_job, make_job

pytest_plugins = ["totask_manifest.testing.fixtures"]

REVIEWED = {"annotations": {"image_1": []}, "annotationsData": {"image_1": []}, "extra": {"by": "reviewer"}}


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def record_output(job) -> None:
    """The run record a finished job keeps of the output it wrote (``make_job`` writes none)."""
    out = job / "manifests" / "output" / "output.manifest"
    state = Job.open(str(job)).state
    state.input_sha256 = sha256(Path(state.config.input))
    state.runs = [{"ended": "2026-01-01T00:00:00.000000Z", "output": {"size": out.stat().st_size, "sha256": sha256(out)}}]
    state.save()


def next_job(root, parent, name: str, how: str, *, by: int = 40):
    """A finished job over the parent's export whose every label differs from the parent's (its
    first box moved), recorded as chained or cloned from ``parent``, with the checksums a real
    chain (the parent's output as its input) or clone (the same input) records."""
    record_output(parent)
    job = make_job(root, root / "export.manifest", name=name)
    out = job / "manifests" / "output" / "output.manifest"
    records = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    for record in records:
        record["boxes"]["annotations"][0]["left"] += by
    out.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    state = Job.open(str(job)).state
    setattr(state, how, str(parent))
    parent_state = Job.open(str(parent)).state
    state.input_sha256 = (parent_state.runs[-1]["output"]["sha256"] if how == "chained_from"
                          else parent_state.input_sha256)
    state.save()
    return job


@pytest.mark.parametrize("how", ["chained_from", "cloned_from"])
def test_a_job_applied_after_the_one_it_follows_writes_over_its_writes_not_over_an_edit(
        synapse, files, client, tmp_path, how: str) -> None:
    parent, tasks = applied_job(synapse, files, client, tmp_path, 4)
    after_parent = {tid: synapse.tasks[tid]["data"] for tid in tasks}
    child = next_job(tmp_path, parent, "child", how)
    synapse.tasks[tasks[1]]["data"] = REVIEWED  # a reviewer changed task 2 after the first job wrote it

    dry = apply_job(str(child), client=client, dry_run=True)
    assert [(r.task_id, r.status) for r in dry.results] == [
        (tasks[0], "would-apply"), (tasks[1], "conflict"), (tasks[2], "would-apply"), (tasks[3], "would-apply")]
    report = apply_job(str(child), client=client)
    assert report.totals["applied"] == 3 and report.totals["conflict"] == 1, report.totals
    assert synapse.tasks[tasks[1]]["data"] == REVIEWED  # the reviewer's edit is kept
    for tid in (tasks[0], tasks[2], tasks[3]):
        assert synapse.tasks[tid]["data"] != after_parent[tid]
        assert synapse.tasks[tid]["data"]["annotationsData"]  # the child's boxes

    undone = rollback_job(str(child), client=client)
    assert undone.totals["restored"] == 3, undone.totals
    assert {tid: synapse.tasks[tid]["data"] for tid in tasks} == {**after_parent, tasks[1]: REVIEWED}


def test_a_lineage_that_cannot_be_read_leaves_the_tasks_conflicts(synapse, files, client, tmp_path) -> None:
    """The safe side: the journal of the job chained from is gone, so nothing tells its writes from an edit."""
    parent, _ = applied_job(synapse, files, client, tmp_path, 2)
    child = next_job(tmp_path, parent, "child", "chained_from")
    (parent / "synapse-journal.jsonl").unlink()
    report = apply_job(str(child), client=client)
    assert report.totals["conflict"] == 2 and report.totals["applied"] == 0, report.totals


def test_apply_of_a_job_whose_output_was_moved_says_to_resume_it(synapse, files, client, tmp_path) -> None:
    from totask_manifest._errors import JobError

    job, _ = applied_job(synapse, files, client, tmp_path, 1)
    (job / "manifests" / "output" / "output.manifest").rename(tmp_path / "moved.manifest")
    with pytest.raises(JobError, match=rf"has no output manifest \(.*\): resume it to write it again from its "
                                       rf"checkpoint \(totask-manifest resume {job}\)"):
        apply_job(str(job), client=client)


def test_a_job_started_since_in_the_folder_chained_from_is_no_lineage(synapse, files, client, tmp_path, caplog) -> None:
    """The parent rolled back and deleted, another job started under its name and applied: its
    writes are no writes of the chained job's lineage, so they stay conflicts (the review's case)."""
    parent, tasks = applied_job(synapse, files, client, tmp_path, 3)
    (tmp_path / "c").mkdir()
    shutil.copy(tmp_path / "export.manifest", tmp_path / "c" / "export.manifest")
    child = next_job(tmp_path / "c", parent, "child", "chained_from")
    rollback_job(str(parent), client=client)
    shutil.rmtree(parent)
    other = make_job(tmp_path, tmp_path / "export.manifest", name=parent.name)
    assert other == parent and apply_job(str(other), client=client).totals["applied"] == 3
    record_output(other)
    others = {tid: synapse.tasks[tid]["data"] for tid in tasks}
    report = apply_job(str(child), client=client)
    assert report.totals["conflict"] == 3 and report.totals["applied"] == 0, report.totals
    assert {tid: synapse.tasks[tid]["data"] for tid in tasks} == others
    assert "is no longer the job child was chained from" in caplog.text


def test_a_reviewers_addition_a_rerun_recovered_is_no_write_of_the_lineage(synapse, files, client, tmp_path) -> None:
    """A kill between a PUT and its done; a reviewer adds to the task; the parent's re-run journals
    what the task holds as its recovered write (extra keys allowed): that is no write of the parent
    for the chained job, whose apply leaves the task a conflict (the review's case)."""
    parent, tasks = applied_job(synapse, files, client, tmp_path, 2)
    journal = parent / "synapse-journal.jsonl"
    records = [orjson.loads(line) for line in journal.read_bytes().splitlines()]
    journal.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records
                                 if not (r.get("op") == "done" and r.get("task_id") == tasks[0])))
    synapse.tasks[tasks[0]]["data"] = {**synapse.tasks[tasks[0]]["data"], "extra": {"by": "reviewer"}}
    assert apply_job(str(parent), client=client).totals["unchanged"] == 2
    (tmp_path / "c").mkdir()
    shutil.copy(tmp_path / "export.manifest", tmp_path / "c" / "export.manifest")
    child = next_job(tmp_path / "c", parent, "child", "chained_from")
    report = apply_job(str(child), client=client)
    assert [(r.task_id, r.status) for r in report.results] == [(tasks[0], "conflict"), (tasks[1], "applied")]
    assert synapse.tasks[tasks[0]]["data"]["extra"] == {"by": "reviewer"}
