"""A SIGINT or SIGTERM the job inherited as ignored stays ignored (a shell's ``cmd &`` in a
script, ``trap '' INT``, ``trap '' TERM``): the job's own handler took it over, and a signal sent to
a background job, meant for nothing, stopped it (STOPPED, exit 130 or 143). A SIGTERM was kept
handled a session longer; the commands that are no job already kept it ignored."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import orjson
import pytest

from tests.jobs_helpers import REPO, TOY, output_of, write_manifest
from tests.test_resume import wait_for_parts


def _ignore(signum: int):
    """What a non-interactive shell does for ``cmd &`` (SIGINT), or ``trap '' TERM``: the child
    starts with the signal ignored."""
    return lambda: signal.signal(signum, signal.SIG_IGN)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_inherited_as_ignored_does_not_stop_the_job(tmp_path, signum):
    inp = write_manifest(tmp_path / "in.manifest", 200)
    out = tmp_path / "out"
    args = ("annotate", str(inp), "--job-name", "bg", "--label-attribute", "cls", "--task-type",
            "image-classification", "--method", TOY, "--output", str(out), "--toy-delay", "0.02",
            "--checkpoint-every", "5")
    proc = subprocess.Popen([sys.executable, "-m", "totask_manifest", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(REPO)}, cwd=REPO,
                            preexec_fn=_ignore(signum))
    try:
        wait_for_parts(out, "bg", minimum=1)  # the job runs: its handlers are in place
        proc.send_signal(signum)
        _stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, stderr
    job = orjson.loads((out / "bg" / "job.json").read_bytes())
    assert job["status"] == "COMPLETED", stderr
    assert b"stopping" not in stderr
    assert job["metrics"]["stand_by"] == 0
    assert output_of(out, "bg").read_bytes().count(b"labeling-job/bg") == job["metrics"]["total"]
