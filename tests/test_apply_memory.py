"""What ``apply`` holds while it runs does not grow with the job's lines, asked to count only.

The contract server runs in this process on 127.0.0.1; apply runs in a process of its own under
tracemalloc (the server's tasks, and a thread another test left running, would count in this
one's window), on two jobs alike but for their number of tasks, both past the reader's 1 MiB
chunk (each line carries 400 bytes apply does not read). The larger one's peak may grow by the
compact map of the task ids seen (16 bytes a slot, at most 64 bytes a task of the larger job
while it grows), not by a result object per task (about 270 bytes a task with the dict of task
ids seen, measured).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from tests.jobs_helpers import REPO
from totask_manifest.testing.builders import make_job

pytest_plugins = ["totask_manifest.testing.fixtures"]

ORIGINAL = {"annotations": {"image_1": []}, "annotationsData": {"image_1": []}}


def labeled_job(synapse, root: Path, tasks: int) -> str:
    """A finished job whose every line labels one of ``tasks`` new tasks (as exported)."""
    pid = synapse.seed(tasks, data=ORIGINAL)
    root.mkdir()
    export = root / "export.manifest"
    ids = sorted(t["id"] for t in synapse.project_tasks(pid))
    export.write_bytes(b"".join(orjson.dumps({"source-ref": f"https://files.example.com/image_1/{i}.jpg",
                                              "synapse": {"task_id": tid, "project": pid}, "note": "x" * 400}) + b"\n"
                                for i, tid in enumerate(ids)))
    return str(make_job(root, export, name=f"apply-{tasks}"))


_PEAKS = """
import sys, tracemalloc, orjson
from totask_manifest._synapse.apply import apply_job
dry = sys.argv[1] == "dry"
out = []
for job in sys.argv[2:]:
    apply_job(job, dry_run=dry, keep_results=False)  # imports and compiles what the second would count
    tracemalloc.start()
    try:
        report = apply_job(job, dry_run=dry, keep_results=False)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    out.append([report.totals, len(report.results), peak])
print(orjson.dumps(out).decode())
"""


def peaks(mode: str, *jobs: str) -> list:
    done = subprocess.run([sys.executable, "-c", _PEAKS, mode, *jobs], cwd=REPO, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr[-3000:]
    return orjson.loads(done.stdout)


@pytest.mark.slow
def test_apply_counting_only_holds_no_result_per_task(synapse, tmp_path: Path) -> None:
    small, large = labeled_job(synapse, tmp_path / "small", 3_000), labeled_job(synapse, tmp_path / "large", 12_000)
    (small_totals, small_kept, small_peak), (large_totals, large_kept, large_peak) = peaks("dry", small, large)
    assert small_totals["would-apply"] == 3_000 and large_totals["would-apply"] == 12_000
    assert small_kept == large_kept == 0
    # a TaskResult a task and a dict of the task ids seen: about 2.4 MB more for the 9,000 more tasks
    assert large_peak - small_peak < 12_000 * 64, (small_peak, large_peak)
    assert not synapse.requests_to("PUT")  # a dry run: nothing sent


def test_int_map_answers_as_a_dict_for_any_int() -> None:
    """The compact map of task ids seen: every int a key, the reserved one and those past 64 bits too."""
    import random

    from totask_manifest._compact import IntMap

    rng = random.Random(7)
    keys = [rng.randint(-(1 << 70), 1 << 70) for _ in range(2_000)] + list(range(3_000)) + list(range(0, 90_000, 30))
    keys += [-(1 << 63), (1 << 63) - 1, 1 << 63, -(1 << 63) - 1, 0, -1]
    m, d = IntMap(), {}
    for value, key in enumerate(keys):
        assert m.setdefault(key, value) == d.setdefault(key, value)
    assert len(m) == len(d)
    for key in [*keys, 12_345_678_901, -7, 1 << 80]:
        assert m.get(key) == d.get(key) and (key in m) == (key in d)


def test_a_report_copied_with_dataclasses_replace_counts_each_result_once() -> None:
    """``ApplyReport`` is public and a dataclass: ``dataclasses.replace`` passes its counts along
    with its results, and the counts were added to again from the results (every total doubled)."""
    import dataclasses

    from totask_manifest import ApplyReport
    from totask_manifest._synapse.apply_report import NO_TASK_ID, TaskResult

    report = ApplyReport("job", False, results=[TaskResult(1, 5, "applied"), TaskResult(2, None, "failed", NO_TASK_ID)])
    copy = dataclasses.replace(report, run_id="r")
    assert copy.totals == report.totals and copy.totals["lines"] == 2 and copy.totals["applied"] == 1
    assert copy.missing_task_ids == report.missing_task_ids and copy.missing_task_ids.startswith("1 line has")
    counted = ApplyReport("job", False, keep_results=False)
    counted.add(TaskResult(1, 5, "applied"))
    assert dataclasses.replace(counted, run_id="r").totals == counted.totals  # no results to count again


def test_a_counting_report_copied_with_dataclasses_replace_counts_apart() -> None:
    """A copy made by ``dataclasses.replace`` of a report that counts only (no results to count
    from) starts from the same counts, then counts on its own: they shared one ``Counter``, so a
    result added to the copy changed the original's totals too."""
    import dataclasses

    from totask_manifest import ApplyReport
    from totask_manifest._synapse.apply_report import TaskResult

    counted = ApplyReport("job", False, keep_results=False)
    counted.add(TaskResult(1, 5, "applied"))
    copy = dataclasses.replace(counted, run_id="r")
    copy.add(TaskResult(2, 6, "failed", "refused"))
    assert counted.totals["lines"] == 1 and counted.totals["failed"] == 0
    assert copy.totals["lines"] == 2 and copy.totals["failed"] == 1


# -- a re-run over a journal that already holds every task -------------------------------------------------


def _old_stored_hashes(records: list[dict]) -> dict[tuple[int, str], set[str]]:
    """What apply held before the journal was indexed: every ``done``'s stored hash."""
    out: dict[tuple[int, str], set[str]] = {}
    for rec in records:
        if rec.get("op") == "done" and rec.get("stored_hash") and rec.get("new_hash"):
            out.setdefault((rec["task_id"], rec["new_hash"]), set()).add(rec["stored_hash"])
    return out


def _old_writes_in_doubt(records: list[dict]) -> set[tuple[int, str]]:
    from totask_manifest._synapse.journal import open_writes

    return {(h.task_id, w["new_hash"]) for h in open_writes(records).values() for w in h.in_doubt}


def _old_rerun(job: str, synapse) -> dict[str, set[int]]:
    """What the re-run decides per task, derived as apply did before: the whole journal read
    (``read_journal``), the stored hashes and writes in doubt from it, each task's data as the
    server holds it now."""
    from totask_manifest._synapse.apply import converter, load_job_target
    from totask_manifest._synapse.apply_plan import plan_writes
    from totask_manifest._synapse.journal import contains, read_journal
    from totask_manifest._synapse.taskdata import data_hash

    records = read_journal(job)
    stored, in_doubt = _old_stored_hashes(records), _old_writes_in_doubt(records)
    convert, schema = converter("dm-schema-v1")
    out: dict[str, set[int]] = {"unchanged": set(), "recovered": set(), "conflict": set(), "applied": set()}
    for p in plan_writes(load_job_target(job), convert, schema, None, lambda result: None):
        current = synapse.tasks[p.task_id]["data"]
        now = data_hash(current)
        if now == p.new_hash or now in stored.get((p.task_id, p.new_hash), ()):
            out["unchanged"].add(p.task_id)
        elif (p.task_id, p.new_hash) in in_doubt and contains(current, p.data):
            out["recovered"].add(p.task_id)
        elif p.export_hash is not None and now != p.export_hash:
            out["conflict"].add(p.task_id)
        else:
            out["applied"].add(p.task_id)
    return out


def applied_job(synapse, root: Path, tasks: int) -> str:
    """A job applied once to a backend that adds a key to what it stores (so every ``done`` holds
    a stored hash of its own), then left as a kill -9, a rollback and a colleague leave tasks:
    a kill -9 lost the ``done`` of 40 writes stored (in doubt, held) and of 40 it never sent (in
    doubt, not held: the data as before), every 10th task was changed by someone (conflict),
    every 10th + 1 restored by rollback; the rest unchanged."""
    from totask_manifest._synapse.apply import apply_job
    from totask_manifest._synapse.taskdata import data_hash

    pid = synapse.seed(tasks, data=ORIGINAL)
    root.mkdir()
    export = root / "export.manifest"
    ids = sorted(t["id"] for t in synapse.project_tasks(pid))
    export.write_bytes(b"".join(orjson.dumps({"source-ref": f"https://files.example.com/image_1/{i}.jpg", "note": "x" * 400,
                                              "synapse": {"task_id": tid, "project": pid, "data_hash": data_hash(ORIGINAL)}})
                                + b"\n" for i, tid in enumerate(ids)))
    job = str(make_job(root, export, name=f"rerun-{tasks}"))
    assert apply_job(job, keep_results=False).totals["applied"] == tasks
    kind = {tid: i % 10 if i % 10 in (2, 3) or i < 400 else 9 for i, tid in enumerate(ids)}
    journal = Path(job) / "synapse-journal.jsonl"
    kept = [raw for raw in journal.read_bytes().splitlines(keepends=True)
            if not (orjson.loads(raw)["op"] == "done" and kind[orjson.loads(raw)["task_id"]] in (0, 1))]
    kept += [orjson.dumps({"op": "restored", "run": "r", "task_id": tid, "hash": data_hash(ORIGINAL)}) + b"\n"
             for tid in ids if kind[tid] == 3]
    journal.write_bytes(b"".join(kept))
    for tid in ids:
        if kind[tid] in (1, 3):
            synapse.tasks[tid]["data"] = ORIGINAL
        elif kind[tid] == 2:
            synapse.tasks[tid]["data"] = {**ORIGINAL, "edited": True}
    return job


_RERUN = """
import sys, tracemalloc, orjson
from totask_manifest._synapse.apply import apply_job
from totask_manifest._synapse.journal_index import index_journal
job = sys.argv[1]
apply_job(job, dry_run=True, keep_results=False)  # imports and compiles what the re-run would count
tracemalloc.start()
try:
    index = index_journal(job)  # what the re-run keeps of the journal, and its peak while reading it
    _, index_peak = tracemalloc.get_traced_memory()
    del index
    tracemalloc.reset_peak()
    report = apply_job(job, keep_results=False)
    _, peak = tracemalloc.get_traced_memory()
finally:
    tracemalloc.stop()
print(orjson.dumps([report.totals, report.run_id, index_peak, peak]).decode())
"""


def rerun(job: str) -> list:
    done = subprocess.run([sys.executable, "-c", _RERUN, job], cwd=REPO, capture_output=True, text=True,
                          timeout=300, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr[-3000:]
    return orjson.loads(done.stdout)


@pytest.mark.slow
def test_a_rerun_holds_a_few_bytes_a_task_of_the_journal_and_decides_as_before(synapse, tmp_path: Path) -> None:
    """A re-run read the whole journal into a list of records (every task's previous and new data:
    about 1.5 KB a task here) to find what the backend stored and the writes in doubt."""
    from totask_manifest._synapse.journal import read_journal

    synapse.normalise = lambda data: {**data, "reviewed": False}
    index_peaks, peaks = [], []
    for tasks in (2_000, 8_000):
        job = applied_job(synapse, tmp_path / f"job-{tasks}", tasks)
        expected = _old_rerun(job, synapse)
        assert all(len(ids) >= 40 for ids in expected.values()), {k: len(v) for k, v in expected.items()}
        totals, run_id, index_peak, peak = rerun(job)
        assert totals["unchanged"] == len(expected["unchanged"]) + len(expected["recovered"])
        assert totals["conflict"] == len(expected["conflict"]) and totals["applied"] == len(expected["applied"])
        assert totals["failed"] == 0
        this_run = [r for r in read_journal(job) if r.get("run") == run_id]
        assert {r["task_id"] for r in this_run if r["op"] == "done" and r.get("recovered")} == expected["recovered"]
        assert {r["task_id"] for r in this_run if r["op"] == "before"} == expected["applied"]
        index_peaks.append(index_peak)
        peaks.append(peak)
    # 32 bytes a task the backend stored normalised (what it sent would need none): not a journal record
    assert index_peaks[1] - index_peaks[0] < 6_000 * 64, index_peaks
    # the whole re-run: that, the task ids seen (at most 48 bytes a task) and windows in flight; the
    # journal read whole cost about 7 KB a task here
    assert peaks[1] - peaks[0] < 8_000 * 160, peaks


def test_the_journal_index_answers_as_the_whole_journal_read(tmp_path: Path) -> None:
    """Every way a write settles (done, failed, refused, done without new_hash, another run's done,
    restored), and stored hashes equal to, unlike and of another type than the new hash."""
    from totask_manifest._synapse.journal_index import index_journal

    hashes = ["a", "b", "c", "d"]
    records = [
        {"op": "before", "run": "r1", "task_id": 1, "previous_hash": "p", "new_hash": "a"},
        {"op": "done", "run": "r1", "task_id": 1, "new_hash": "a", "stored_hash": "b"},
        {"op": "before", "run": "r1", "task_id": 2, "previous_hash": "p", "new_hash": "a"},
        {"op": "before", "run": "r2", "task_id": 2, "previous_hash": "p", "new_hash": "a"},
        {"op": "done", "run": "r2", "task_id": 2, "new_hash": "a", "stored_hash": "a"},
        {"op": "before", "run": "r1", "task_id": 3, "previous_hash": "p", "new_hash": "b"},
        {"op": "before", "run": "r1", "task_id": 3, "previous_hash": "p", "new_hash": "c"},
        {"op": "failed", "run": "r1", "task_id": 3, "refused": True},
        {"op": "before", "run": "r1", "task_id": 4, "previous_hash": "p", "new_hash": "c"},
        {"op": "done", "run": "r1", "task_id": 4, "new_hash": "c", "stored_hash": 7},
        {"op": "restored", "run": "r3", "task_id": 4},
        {"op": "before", "run": "r3", "task_id": 4, "previous_hash": "p", "new_hash": "d"},
        {"op": "before", "run": "r1", "task_id": 5, "previous_hash": "p", "new_hash": "d"},
        {"op": "restored", "run": "r3", "task_id": 5},
        {"op": "done", "run": "r1", "task_id": 5, "new_hash": "d", "stored_hash": "c"},
        {"op": "failed", "run": "r4", "task_id": 6, "new_hash": "a"},
        {"op": "done", "run": "r1", "task_id": 1 << 70, "new_hash": "a", "stored_hash": "c"},
    ]
    records = [r for r in records if not (isinstance(r["task_id"], int) and r["task_id"] >= 1 << 63)]  # orjson: 64 bits
    (tmp_path / "synapse-journal.jsonl").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    index = index_journal(str(tmp_path))
    stored, in_doubt = _old_stored_hashes(records), _old_writes_in_doubt(records)
    assert in_doubt and stored  # the cases are there to compare
    for tid in range(8):
        for new in hashes:
            assert index.in_doubt(tid, new) == ((tid, new) in in_doubt), (tid, new)
            for now in hashes:
                assert index.stored(tid, new, now) == (now == new or now in stored.get((tid, new), ())), (tid, new, now)
