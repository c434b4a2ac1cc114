"""``annotate --append`` reads each manifest it is given twice, not three times: once checked on
its own (its bad lines named by its own file and line number), once copied into the combined
input. The per-file check computed a checksum too, a full read of its own beside the scan, which
nothing kept (the job's checksum is the combined input's). Measured as the bytes this process
read (``/proc/self/io``'s ``rchar``) around the call, in a fresh interpreter, with inputs under
the size at which the scan starts worker processes, so every read is this process's."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from tests.jobs_helpers import REPO, write_manifest

pytestmark = pytest.mark.skipif(not Path("/proc/self/io").exists(), reason="needs /proc/self/io (Linux)")

SCRIPT = """
import sys
from totask_manifest import _api as api
from totask_manifest._jobs.config import JobConfig

def rchar():
    with open("/proc/self/io") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("rchar:"))

inp, more, out = sys.argv[1:4]
def run(name):
    return api.annotate(JobConfig(job_name=name, input=inp, output_root=out, label_attribute="cls",
                                  task_type="image-classification", method="tests.support.toy_annotators:ToyClassifier",
                                  append=[more]))
run("warm")  # every module the call imports, imported here: the second call reads only data
before = rchar()
result = run("measured")
print(result.status, rchar() - before)
"""


@pytest.mark.slow
def test_append_reads_each_manifest_twice(tmp_path: Path) -> None:
    inp = write_manifest(tmp_path / "in.manifest", 30_000, prelabeled_every=1)  # labeled: parts stay small
    raw = inp.read_bytes()
    more = tmp_path / "more.manifest"
    # one line to label (else the job would look for a data object: a read of its own), the rest labeled
    more.write_bytes(b'{"source-ref":"s3://bucket/new/one.jpg"}\n'
                     + raw.replace(b"/img", b"/app")[: len(raw) // 4].rsplit(b"\n", 1)[0] + b"\n")
    r = subprocess.run([sys.executable, "-c", SCRIPT, str(inp), str(more), str(tmp_path / "out")],
                       capture_output=True, text=True, timeout=300, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert r.returncode == 0, r.stderr
    status, read = r.stdout.split()
    combined = tmp_path / "out" / "measured" / "manifests" / "input" / "input.manifest"
    sizes = {"in": inp.stat().st_size, "more": more.stat().st_size, "combined": combined.stat().st_size}
    assert status == "COMPLETED" and sizes["combined"] >= sizes["in"] + sizes["more"] - 1  # an appended CRLF: LF
    assert sizes["in"] + sizes["more"] < 16 << 20  # one range: no worker processes (scan_ranges)
    # each given manifest: its check, its copy; the combined one: its scan, its checksum, the commit's copy
    expected = 2 * sizes["in"] + 2 * sizes["more"] + 3 * sizes["combined"]
    slack = 256 << 10  # job.json, selection.bin, the lease, one part: small
    assert int(read) <= expected + slack, (int(read) - expected, sizes)  # before: one more read of in and more
    lines = orjson.loads((tmp_path / "out" / "measured" / "job.json").read_bytes())["input"]["lines"]
    assert lines == raw.count(b"\n") + more.read_bytes().count(b"\n")  # every appended line in (no duplicates)
