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
    assert copy.missing_task_ids == report.missing_task_ids and copy.missing_task_ids.startswith("1 line(s)")
    counted = ApplyReport("job", False, keep_results=False)
    counted.add(TaskResult(1, 5, "applied"))
    assert dataclasses.replace(counted, run_id="r").totals == counted.totals  # no results to count again
