"""A job whose terminal goes away while it runs (an ssh session closed under a job started with
``disown``, ``setsid`` or ``trap '' HUP``), as a real subprocess on a pseudo-terminal: every write
to the terminal fails then (EIO). The progress bar and the last lines are for a person who is no
longer there; the job carries on, ends as it would have, and exits with its own code."""

from __future__ import annotations

import orjson
import pytest

from tests.jobs_helpers import assert_same_output, output_of, run_cli, toy_job_args, write_manifest
from tests.support.terminal import close_after_progress, job_on_terminal

pytestmark = pytest.mark.slow


def job_args(inp, out, job, delay):
    return toy_job_args(inp, out, "--toy-delay", delay, "--checkpoint-every", "11", job=job)


def test_a_job_carries_on_when_its_terminal_closes(tmp_path):
    inp = write_manifest(tmp_path / "in.manifest", 200, prelabeled_every=9)
    ref = run_cli(*job_args(inp, tmp_path / "ref", "j", "0"))
    assert ref.returncode == 0, ref.stderr
    out = tmp_path / "out"
    # its own session: no SIGHUP when the terminal closes, as under disown
    proc, master, seen = job_on_terminal(job_args(inp, out, "j", "0.02"))
    close_after_progress(proc, master, seen, out / "j", 1)  # each later write to it fails (EIO)
    rc = proc.wait(timeout=120)
    job = orjson.loads((out / "j" / "job.json").read_bytes())
    assert (rc, job["status"], job["error"]) == (0, "COMPLETED", None)
    assert job["metrics"]["stand_by"] == 0
    assert_same_output(output_of(tmp_path / "ref", "j"), output_of(out, "j"))
