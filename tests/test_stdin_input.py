"""A job's input given as ``/dev/stdin`` (``annotate /dev/stdin < in.manifest``).

A pipe is refused (``ranges.refuse_pipe``). Redirected from a file, ``/dev/stdin`` is a regular
file, and ``job.json`` recorded ``/dev/stdin``: relative references resolved against ``/dev``
(every line of the sample job failed ``outside-allow-root``), and ``status`` and ``resume`` later
read their own standard input as the job's input ("changed since the job read it"; a terminal
was waited on). The job now records the file behind it; a terminal or a device is refused; a
job an older version recorded so is named for what it is by ``status``, ``resume`` and ``clone``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from .jobs_helpers import REPO, sample_job_args, toy_job_args


def _cli(*args: str, stdin: object = subprocess.DEVNULL) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "totask_manifest", *args], stdin=stdin, capture_output=True,
                          text=True, timeout=120, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)})


@pytest.mark.slow
def test_annotate_of_dev_stdin_redirected_from_a_file_records_that_file(tmp_path: Path) -> None:
    args = sample_job_args("si", tmp_path / "out")
    manifest = args[1]
    args[1] = "/dev/stdin"
    with open(manifest, "rb") as f:
        done = _cli(*args, stdin=f)
    assert done.returncode == 0, done.stderr
    assert "metrics: total=50 success=49 failed=1" in done.stdout, done.stdout  # relative references found
    state = orjson.loads((tmp_path / "out" / "si" / "job.json").read_bytes())
    assert state["input"]["url"] == state["config"]["input"] == manifest
    status = _cli("status", str(tmp_path / "out" / "si"))
    assert f"input: {manifest} (50 lines)" in status.stdout and "changed:" not in status.stdout, status.stdout


def test_annotate_of_dev_stdin_from_a_terminal_or_device_is_refused(tmp_path: Path) -> None:
    inp = tmp_path / "in.manifest"
    inp.write_bytes(b'{"source-ref":"s3://b/0.jpg"}\n')
    done = _cli(*toy_job_args("/dev/stdin", tmp_path / "out"))  # stdin: /dev/null, a character device
    assert done.returncode == 2, (done.stdout, done.stderr)
    line = done.stderr.strip()
    assert "\n" not in line and "/dev/stdin is not a file" in line and "save it to a file first" in line, line
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
@pytest.mark.parametrize("status", ["COMPLETED", "STOPPED"])
def test_a_job_recorded_with_dev_stdin_is_named_for_what_it_is(tmp_path: Path, status: str) -> None:
    """As an older version wrote it: status says so (never reading its own stdin), resume and clone refuse it."""
    inp = tmp_path / "in.manifest"
    inp.write_bytes(b"".join(b'{"source-ref":"s3://b/%d.jpg"}\n' % i for i in range(3)))
    assert _cli(*toy_job_args(inp, tmp_path / "out")).returncode == 0
    job = tmp_path / "out" / "j"
    state = orjson.loads((job / "job.json").read_bytes())
    state["config"]["input"] = state["input"]["url"] = state["input"]["read"] = "/dev/stdin"
    state["status"] = status
    (job / "job.json").write_bytes(orjson.dumps(state))
    with open(inp, "rb") as f:  # its stdin is the very file: still not the job's input to trust
        shown = _cli("status", str(job), stdin=f)
    assert shown.returncode == 0, shown.stderr
    assert "changed: the input manifest of job 'j' was recorded as /dev/stdin" in shown.stdout, shown.stdout
    assert "checksum differs" not in shown.stdout, shown.stdout
    for argv in (["resume", str(job)], ["clone", str(job), "--job-name", "j2"]):
        done = _cli(*argv)
        if argv[0] == "resume" and status == "COMPLETED":  # nothing to do: it reads no input
            assert done.returncode == 0, done.stderr
            continue
        assert done.returncode == 2, (argv, done.stdout, done.stderr)
        err = done.stderr.strip().splitlines()
        assert len(err) == 1 and "recorded as /dev/stdin" in err[0] and "start a new job" in err[0], err
    assert not (tmp_path / "out" / "j2").exists()
