"""A job's commit holds one checkpoint part's failures at a time, not every failed line of the job.

Measured with tracemalloc in a process of its own (a thread another test left running would count
in this one's window), on two finished jobs alike but for their length: the commit (the output
manifest, then ``failures.jsonl``) is run again on each, and the larger one's peak may not grow by
more than a small share of what holding every failure cost (about 540 bytes a failure).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from tests.jobs_helpers import REPO, TOY, write_manifest
from totask_manifest import _api as api
from totask_manifest._jobs.config import JobConfig
from totask_manifest._jobs.job import Job


def finished_job(root: Path, lines: int) -> str:
    """A COMPLETED job over ``lines`` lines, one in two failed (the toy fails a ``-bad`` source)."""
    inp = write_manifest(root / f"in-{lines}.manifest", lines, bad_every=0)
    raw = inp.read_bytes().splitlines(keepends=True)
    inp.write_bytes(b"".join(line.replace(b'.jpg"', b'-bad.jpg"') if i % 2 else line for i, line in enumerate(raw)))
    config = JobConfig(job_name=f"j{lines}", input=str(inp), output_root=str(root / "out"), label_attribute="cls",
                       task_type="image-classification", method=TOY, checkpoint_every=500)
    result = api.annotate(config)
    assert result.status == "COMPLETED"
    return result.job_url


_PEAKS = """
import sys, tracemalloc, orjson
from totask_manifest._jobs.commit import Coverage, write_output
from totask_manifest._jobs.job import Job
out = []
for url in sys.argv[1:]:
    state = Job.open(url).state
    commit = lambda: write_output(state.effective_input, state.layout, Coverage(), state.config.label_attribute,
                                  state.input_sha256, failures=True)
    commit()  # the first call imports and compiles what the second would count
    tracemalloc.start()
    try:
        n = commit()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    out.append([n, peak])
print(orjson.dumps(out).decode())
"""


@pytest.mark.slow
def test_commit_memory_does_not_grow_with_the_failures(tmp_path: Path) -> None:
    small, large = finished_job(tmp_path, 4_000), finished_job(tmp_path, 16_000)
    before = {url: Path(Job.open(url).layout.failures).read_bytes() for url in (small, large)}
    done = subprocess.run([sys.executable, "-c", _PEAKS, small, large], cwd=REPO, capture_output=True, text=True,
                          timeout=300, check=True)
    (small_n, small_peak), (large_n, large_peak) = orjson.loads(done.stdout)
    assert (small_n, large_n) == (2_000, 8_000)
    # holding every failure until the end cost about 540 bytes each: 3 MB more for the 6,000 more
    assert large_peak - small_peak < 512 << 10, (small_peak, large_peak)
    for url in (small, large):  # written again part by part: the same bytes the job wrote
        assert Path(Job.open(url).layout.failures).read_bytes() == before[url]
    first = orjson.loads(before[large].splitlines()[0])
    assert first == {"line": 2, "source": "s3://bucket/images/img00001-bad.jpg", "rule": first["rule"],
                     "reason": first["reason"]}
