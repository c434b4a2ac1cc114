"""``_signals.held``: a signal during a block that must not be cut is held until the block ends,
and a second one is raised at once. The block can wait on a store that stalls (a job's lease
given back over the network: up to the store's own timeouts); before, every further Ctrl-C was
noted too and the command could not be stopped until the store gave up. A real subprocess."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

from tests.jobs_helpers import REPO
from tests.support.sessions import signals_as_a_terminal_gives_them

SCRIPT = """
import sys, time
from totask_manifest import _signals
started = time.monotonic()
try:
    with _signals.held():
        print("ready", flush=True)  # inside the block: a signal sent once this is read is held
        time.sleep(float(sys.argv[1]))  # a store that stalls
    print("block ended", flush=True)
    time.sleep(5)
except KeyboardInterrupt:
    print(f"interrupted after {time.monotonic() - started:.1f}", flush=True)
    sys.exit(130)
"""


def _start(stall: float) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, str(stall)], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=signals_as_a_terminal_gives_them,
                            env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert proc.stdout is not None and proc.stdout.readline() == "ready\n", proc.stderr.read() if proc.stderr else ""
    return proc


def _finish(proc: subprocess.Popen) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        pytest.fail("a second Ctrl-C did not end a block held against signals")
    return proc.returncode, out, err


def test_a_second_ctrl_c_ends_a_held_block_at_once():
    proc = _start(stall=60)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.5)
    assert proc.poll() is None  # the first is held: the block goes on
    proc.send_signal(signal.SIGINT)
    code, out, err = _finish(proc)
    assert code == 130 and out.startswith("interrupted after "), (code, out, err)
    assert float(out.split()[-1]) < 10, out
    assert "Traceback" not in err, err


def test_one_ctrl_c_waits_for_the_block_then_is_raised():
    proc = _start(stall=1.5)
    proc.send_signal(signal.SIGINT)
    code, out, err = _finish(proc)
    assert code == 130, (code, out, err)
    assert "block ended" not in out and float(out.split()[-1]) >= 1.5, out  # raised when the block ended


def test_a_sigterm_after_a_ctrl_c_ends_it_too_and_the_ctrl_c_is_not_lost():
    proc = _start(stall=60)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.3)
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    code, out, err = _finish(proc)
    assert time.monotonic() - sent < 10
    assert code in (130, -signal.SIGTERM), (code, out, err)  # whichever handler runs first ends it
    assert "block ended" not in out, out
