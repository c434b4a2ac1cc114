"""The package used from Python leaves the caller's process as it found it: ``main(argv)`` puts
stdout's error mode back, and ``_signals.held`` neither replaces nor resets a signal handler that
was installed outside Python (``signal.getsignal`` reports it as None: Python could not put it back)."""

from __future__ import annotations

import io
import signal
import sys

import pytest

from tests.jobs_helpers import REPO
from totask_manifest import _signals
from totask_manifest._cli import main


def test_main_from_python_puts_stdouts_error_mode_back(monkeypatch: pytest.MonkeyPatch) -> None:
    out = io.TextIOWrapper(io.BytesIO(), encoding="latin-1", errors="strict")
    monkeypatch.setattr(sys, "stdout", out)
    code = main(["validate", str(REPO / "sample_data" / "manifest.jsonl")])
    assert code == 0
    assert out.errors == "strict"  # the command wrote with backslashreplace; the caller's mode is back


def test_held_leaves_a_handler_set_outside_python_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    set_calls: list[int] = []
    real_signal, real_getsignal = signal.signal, signal.getsignal

    def getsignal(signum: int):
        return None if signum == signal.SIGTERM else real_getsignal(signum)

    def record(signum: int, handler):
        set_calls.append(signum)
        return real_signal(signum, handler)

    monkeypatch.setattr(signal, "getsignal", getsignal)
    monkeypatch.setattr(signal, "signal", record)
    before = real_getsignal(signal.SIGINT)
    with _signals.held():
        pass
    assert signal.SIGTERM not in set_calls  # it was SIG_DFL'd on the way out before
    assert set_calls.count(signal.SIGINT) == 2 and real_getsignal(signal.SIGINT) is before
