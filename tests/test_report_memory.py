"""``report`` on a job with many failed lines holds the failures it shows, not all of them.

Measured with tracemalloc in a process of its own (a thread another test left running would count
in this one's window), on two jobs alike but for the length of ``failures.jsonl``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from tests.jobs_helpers import REPO
from totask_manifest._analytics.report_failures import MAX_FAILURE_ROWS
from totask_manifest._jobs.layout import JobLayout
from totask_manifest.testing.builders import make_job


def job_with_failures(root: Path, failures: int) -> str:
    """A finished job over 20 lines whose ``failures.jsonl`` holds ``failures`` lines."""
    root.mkdir()
    export = root / "export.manifest"
    export.write_bytes(b"".join(orjson.dumps({"source-ref": f"s3://b/{i}.jpg"}) + b"\n" for i in range(20)))
    job = make_job(root, export, name=f"many-{failures}")
    layout = JobLayout(str(job))
    with open(layout.failures, "wb") as f:
        for i in range(failures):
            f.write(orjson.dumps({"line": i + 1, "source": f"s3://bucket/images/{i:08d}.jpg", "task_id": None,
                                  "rule": "http-404", "reason": f"fetch: 404 Not Found for line {i + 1}"}) + b"\n")
    return str(job)


_PEAKS = """
import sys, tracemalloc, orjson
from totask_manifest._analytics.report import render_report
out = []
for job in sys.argv[1:]:
    render_report(job, samples=0)  # the first call imports and compiles what the second would count
    tracemalloc.start()
    try:
        html, _, n_failures = render_report(job, samples=0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    out.append([n_failures, html.count('<td class="reason">'), peak])
print(orjson.dumps(out).decode())
"""


@pytest.mark.slow
def test_report_memory_does_not_grow_with_the_failures(tmp_path: Path) -> None:
    small = job_with_failures(tmp_path / "small", 20_000)
    large = job_with_failures(tmp_path / "large", 80_000)
    done = subprocess.run([sys.executable, "-c", _PEAKS, small, large], cwd=REPO, capture_output=True, text=True,
                          timeout=300, check=True)
    (small_n, small_rows, small_peak), (large_n, large_rows, large_peak) = orjson.loads(done.stdout)
    assert (small_n, large_n) == (20_000, 80_000)  # counted, all of them
    assert small_rows == large_rows == MAX_FAILURE_ROWS  # shown, the first ones
    # holding every failure cost about 480 bytes each: 29 MB more for the 60,000 more (the reader itself holds at most a few MB of the file)
    assert large_peak - small_peak < 1 << 20, (small_peak, large_peak)
