"""Apply again after the output manifest's labels were edited (a label fixed by hand, a job
resumed or redone into the same folder): a task that holds this job's own earlier write was
reported as a conflict, "changed in Synapse since export; --force overwrites it", and only
``--force`` wrote the fixed label, overwriting with it every task a person had really changed.
Such a task is now written; a task someone else changed is still a conflict.
"""

from __future__ import annotations

import orjson

from totask_manifest._synapse.apply import apply_job
from totask_manifest._synapse.rollback import rollback_job
from totask_manifest.testing.builders import applied_job

pytest_plugins = ["totask_manifest.testing.fixtures"]

ORIGINAL = {"annotations": {"image_1": []}, "annotationsData": {"image_1": []}, "extra": {"by": "human"}}
HUMAN = {"annotations": {"image_1": []}, "annotationsData": {"image_1": []}, "extra": {"by": "reviewer"}}


def edit_labels(job, lines: set[int]) -> None:
    """Move the first box of each of ``lines`` (1-based), as a user fixing a label by hand."""
    out = job / "manifests" / "output" / "output.manifest"
    records = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    for n in lines:
        records[n - 1]["boxes"]["annotations"][0]["left"] += 40
    out.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))


def test_a_task_holding_this_jobs_earlier_write_takes_the_edited_label(synapse, files, client, tmp_path) -> None:
    job, tasks = applied_job(synapse, files, client, tmp_path, 4, data=ORIGINAL)
    synapse.tasks[tasks[1]]["data"] = HUMAN  # a reviewer changed task 2 after the job wrote it
    edit_labels(job, {1, 2})

    dry = apply_job(str(job), client=client, dry_run=True)
    assert [(r.task_id, r.status) for r in dry.results] == [
        (tasks[0], "would-apply"), (tasks[1], "conflict"), (tasks[2], "unchanged"), (tasks[3], "unchanged")]
    report = apply_job(str(job), client=client)
    assert [(r.task_id, r.status) for r in report.results] == [
        (tasks[0], "applied"), (tasks[1], "conflict"), (tasks[2], "unchanged"), (tasks[3], "unchanged")]
    assert synapse.tasks[tasks[0]]["data"]["annotationsData"]["image_1"][0]["coordinate"]["x"] == 45
    assert synapse.tasks[tasks[1]]["data"] == HUMAN
    assert apply_job(str(job), client=client).totals["unchanged"] == 3

    # rollback: the job's tasks back to what they held before its first write; the reviewer's kept
    summary = rollback_job(str(job), client=client).summary()
    assert summary == "rollback: 3 restored, 0 already as before, 1 changed by someone else (skipped), 0 failed"
    assert [synapse.tasks[t]["data"] for t in tasks] == [ORIGINAL, HUMAN, ORIGINAL, ORIGINAL]


def test_a_write_left_in_doubt_by_a_kill_then_edited_is_written_too(synapse, files, client, tmp_path,
                                                                    monkeypatch) -> None:
    """A ``kill -9`` lost the ``done`` of task 1's write (it reached the backend), then its label
    was edited: the task holds that write, in doubt, not someone else's change."""
    monkeypatch.setattr("totask_manifest._synapse.rollback.LANDING_SECONDS", 0.0)  # rolled back past the minute a
    # write of the killed run could still land in (``rollback.LANDING``)
    job, tasks = applied_job(synapse, files, client, tmp_path, 2, data=ORIGINAL)
    first = tasks[0]
    journal = job / "synapse-journal.jsonl"
    journal.write_bytes(b"".join(line for line in journal.read_bytes().splitlines(keepends=True)
                                 if not (orjson.loads(line)["op"] == "done" and orjson.loads(line)["task_id"] == first)))
    edit_labels(job, {1})
    report = apply_job(str(job), client=client)
    assert [r.status for r in report.results] == ["applied", "unchanged"], report.results
    assert rollback_job(str(job), client=client).summary().startswith("rollback: 2 restored")
    assert all(synapse.tasks[t]["data"] == ORIGINAL for t in tasks)
