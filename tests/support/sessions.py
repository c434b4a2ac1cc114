"""A command run in a session of its own, as a terminal runs it: the signal tests' one runner.

Why a session: a terminal's Ctrl-C reaches the whole foreground process group, and a command's
pool workers belong to it; in its own session the test can signal that group, kill it whole if
it hangs, and then look in ``/proc`` for any process of the session left running.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from tests.jobs_helpers import REPO


def signals_as_a_terminal_gives_them() -> None:
    """SIGINT, SIGTERM and SIGHUP at their defaults: a runner in the background (or under ``nohup``)
    hands them down ignored."""
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_DFL)


def sigterm_ignored() -> None:
    """``trap '' TERM``, a supervisor that shields its children: the command starts with SIGTERM ignored."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def run_in_session(argv: Sequence[str], *, env: dict[str, str] | None = None, timeout: float = 120,
                   hung: str = "the command hung",
                   preexec: Callable[[], None] | None = signals_as_a_terminal_gives_them,
                   ) -> tuple[int, str, str, int]:
    """``argv`` from the repository's root in a new session (``PYTHONPATH`` the repository,
    ``env`` added to this environment): its exit code, stdout, stderr and pid (the session's id).
    A run past ``timeout`` has its whole group killed and fails the test with ``hung``."""
    proc = subprocess.Popen(
        list(argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})}, start_new_session=True,
        preexec_fn=preexec,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(hung)
    return proc.returncode, out, err, proc.pid


def processes_in_session(sid: int) -> list[str]:
    """The processes of session ``sid`` still running (not zombies): ``/proc/PID/stat``'s pid and name."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:  # gone meanwhile
                continue
            fields = stat.rsplit(")", 1)[1].split()  # after "(comm)": state, ppid, pgrp, session...
            if int(fields[3]) == sid and fields[0] != "Z":
                found.append(stat.split(")", 1)[0] + ")")
    return found


def assert_none_left_in_session(sid: int) -> None:
    """The command's pool workers died with it. Python's resource tracker, which leaves once the
    command's end of its pipe closes, is given a moment to see that."""
    if not Path("/proc/self/stat").exists():
        return
    left = processes_in_session(sid)
    for _ in range(100):
        if not left:
            return
        threading.Event().wait(0.1)
        left = processes_in_session(sid)
    os.killpg(sid, signal.SIGKILL)
    pytest.fail(f"left running after the command exited: {left}")


def signal_once_marked(proc: subprocess.Popen, mark: Path, signum: int, *, wait: float = 120) -> tuple[str, str]:
    """Send ``signum`` to ``proc`` once it has written ``mark`` (a code path reached: a plugin or a
    model waiting there), and its output once it has ended."""
    deadline = time.monotonic() + wait
    while not mark.exists():
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(signum)
    return proc.communicate(timeout=60)
