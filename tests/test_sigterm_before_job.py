"""SIGTERM (``timeout``, ``docker stop``, a batch scheduler) while ``annotate`` scans its input,
before its job exists: the job's own stop handlers are not installed yet, and Python died of the
signal at once. It left the job folder and its ``.lease`` (and ``--output``) behind, printed
nothing, and, the scan running in spawned worker processes, left those workers waiting for work for
ever. It is now taken as Ctrl-C is: the scan stops, its workers go, no folder is left, one line,
exit 143. A real subprocess on an input big enough to be scanned by workers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from tests.jobs_helpers import REPO, toy_job_args

pytestmark = pytest.mark.slow


def test_sigterm_during_the_input_scan_leaves_nothing(tmp_path):
    inp = tmp_path / "in.manifest"
    with inp.open("wb") as f:
        for i in range(50):
            f.write(
                b"".join(b'{"source-ref":"s3://b/%d-%d.jpg","x":[1,2,3]}\n' % (i, j) for j in range(10_000))
            )
    out = tmp_path / "new" / "out"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "totask_manifest",
            *toy_job_args(inp, out),
        ],
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "stderr").open("wb"),  # a file: a worker left behind would hold a pipe open
        cwd=REPO,
        start_new_session=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        deadline = time.monotonic() + 60
        while not (out / "j" / ".lease").is_dir():  # the lease is taken, then the input scanned
            assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "stderr").read_text()
            time.sleep(0.002)
        time.sleep(0.2)
        assert not (out / "j" / "job.json").exists(), (
            "the scan ended before the signal: a bigger input is needed"
        )
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        # the workers' own exit may trail the command's: waited for, not a fixed 0.5 s that a loaded
        # machine outlasts; the workers of the bug waited for work for ever
        deadline = time.monotonic() + 30
        while (left := _alive_in_group(proc.pid)) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    err = (tmp_path / "stderr").read_text()
    assert (
        proc.returncode == 143 and err.strip().splitlines()[-1] == "totask-manifest annotate: interrupted"
    ), err
    assert "Traceback" not in err and "leaked" not in err, err
    assert not left, f"worker processes of the scan outlived the command: {left}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.manifest", "stderr"], list(tmp_path.rglob("*"))


def _alive_in_group(group: int) -> list[str]:
    """The states of the processes still alive in process group ``group`` (a zombie is dead:
    reaped by init when it gets to it)."""
    states = subprocess.run(["ps", "-o", "stat=", "-g", str(group)], capture_output=True, text=True).stdout
    return [state for state in states.split() if not state.startswith("Z")]
