"""Ctrl-C while worker processes read ranges of a file (a job's input scan, ``validate``,
``stats``): the clean-up kills the workers, and one killed while it sent a large result (a job's
selection of a big input) left half a frame in the pool's result pipe. The pool's manager thread
then waited for the rest forever: ``annotate`` hung at Ctrl-C during its input scan, holding the
job's lease (its heartbeat went on, so ``resume`` was refused). A real subprocess, its worker
leaving the half frame on purpose."""

from __future__ import annotations

import sys

import pytest

from tests.support.sessions import run_in_session

pytestmark = pytest.mark.slow

SCRIPT = """
import os, sys
from totask_manifest._manifest.ranges import map_ranges
from tests.support.ranges_faults import half_a_result_then_interrupt
try:
    map_ranges(half_a_result_then_interrupt, sys.argv[1], (os.getpid(),), workers=2, start_method="fork",
               min_bytes=1, per_worker=1)
except KeyboardInterrupt:
    print("interrupted")
"""


def test_ctrl_c_with_half_a_result_in_the_pipe_does_not_hang(tmp_path):
    data = tmp_path / "in.manifest"
    data.write_bytes(b'{"source":"a"}\n' * 100)
    _code, out, err, _sid = run_in_session([sys.executable, "-c", SCRIPT, str(data)], timeout=30, preexec=None,
                                           hung="map_ranges hung after Ctrl-C (a worker's half-sent result in the pipe)")
    assert out.strip() == "interrupted", err


KILLED = """
import os, sys
from totask_manifest._manifest.ranges import map_ranges
from tests.support.ranges_faults import mark_then_wait
map_ranges(mark_then_wait, sys.argv[1], (os.getpid(), sys.argv[2]), workers=3, start_method=sys.argv[3],
           min_bytes=1, per_worker=1)
"""


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie no reaper took is not running)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("method", ["spawn", "fork"])
def test_workers_end_when_their_command_is_killed(tmp_path, method):
    """``kill -9`` of a command while its workers read ranges (a job's input scan killed, the OOM
    killer): each worker waited for ever for its next range, holding both ends of the pool's
    pipe, so it never saw the command go. Every ``kill -9`` of a scan left the workers (one a
    core) and multiprocessing's resource tracker running. They end once their command is gone."""
    import os
    import signal
    import subprocess
    import time

    from tests.jobs_helpers import REPO

    data = tmp_path / "in.manifest"
    data.write_bytes(b'{"source":"a"}\n' * 100)
    marks = tmp_path / "marks"
    marks.mkdir()
    proc = subprocess.Popen([sys.executable, "-c", KILLED, str(data), str(marks), method], cwd=REPO,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    workers: list[int] = []
    try:
        deadline = time.monotonic() + 60
        while not workers:
            assert proc.poll() is None and time.monotonic() < deadline, "no worker started"
            time.sleep(0.02)
            workers = [int(p.name) for p in marks.iterdir()]
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        deadline = time.monotonic() + 30
        while any(map(_alive, workers)) and time.monotonic() < deadline:
            time.sleep(0.05)
        left = [pid for pid in workers if _alive(pid)]
        assert not left, f"worker(s) {left} still running after their command was killed"
    finally:
        proc.kill()
        for pid in workers:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
