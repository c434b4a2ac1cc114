"""A Ctrl-C while asyncio builds (or closes) an event loop (``report``'s image fetch, a Synapse client) left a
half-built loop: the command said ``interrupted`` in one line, then, as the loop was collected,
``Exception ignored in: <function BaseEventLoop.__del__ ...>`` and a traceback (``AttributeError:
'_UnixSelectorEventLoop' object has no attribute '_ssock'``). The loop is built with the stop
signals held now (``_signals.new_event_loop``): the signal is raised once it is whole, and it is
closed; a loop is closed with them held too (``close_event_loop``: a Ctrl-C inside ``close`` left a
half-closed loop that ``__del__`` closed again, with the same message).

The signal is real, sent from inside the loop's constructor (its self-pipe made): in process by
wrapping that method, and for the CLI by ``SIGNAL_AT_CALL`` (``tests/support/signal_at_import``).
"""

from __future__ import annotations

import gc
import os
import signal
import sys
from asyncio.base_events import BaseEventLoop
from asyncio.selector_events import BaseSelectorEventLoop
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.jobs_helpers import REPO
from tests.support.sessions import run_in_session
from tests.test_report import _hand_made_job
from totask_manifest._fetch.inline import InlineLoop
from totask_manifest._fetch.loop import LoopThread
from totask_manifest._synapse.settings import SynapseSettings
from totask_manifest._synapse.sync_client import SynapseClient

SITE = REPO / "tests" / "support" / "signal_at_import"
INSIDE_THE_LOOP = "asyncio.selector_events:BaseSelectorEventLoop._make_self_pipe"

BUILDERS: dict[str, Callable[[], object]] = {
    "LoopThread": LoopThread,  # report's and the file method's fetches
    "InlineLoop": InlineLoop,
    "SynapseClient": lambda: SynapseClient(SynapseSettings(host="http://127.0.0.1:9", access_token="tok-" + "x" * 20)),
}


@pytest.mark.parametrize("name", BUILDERS)
def test_a_ctrl_c_inside_the_loops_constructor_leaves_no_half_built_loop(name: str, monkeypatch) -> None:
    unraisable: list = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    original = BaseSelectorEventLoop._make_self_pipe

    def signal_here(self: BaseSelectorEventLoop) -> None:
        os.kill(os.getpid(), signal.SIGINT)  # Python's handler raises KeyboardInterrupt here
        original(self)

    monkeypatch.setattr(BaseSelectorEventLoop, "_make_self_pipe", signal_here)
    with pytest.raises(KeyboardInterrupt):
        BUILDERS[name]()
    gc.collect()  # the loop, if any was left, is collected: its __del__ runs
    assert [u.exc_value for u in unraisable] == []  # before: AttributeError ... '_ssock' from BaseEventLoop.__del__


@pytest.mark.parametrize("name", BUILDERS)
def test_a_ctrl_c_inside_the_loops_close_leaves_no_half_closed_loop(name: str, monkeypatch) -> None:
    unraisable: list = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    built = BUILDERS[name]()
    original = BaseEventLoop.close

    def signal_here(self: BaseEventLoop) -> None:  # reached from the selector loop's close, its self-pipe closed
        monkeypatch.setattr(BaseEventLoop, "close", original)  # once
        os.kill(os.getpid(), signal.SIGINT)
        original(self)

    monkeypatch.setattr(BaseEventLoop, "close", signal_here)
    with pytest.raises(KeyboardInterrupt):
        built.close()  # type: ignore[attr-defined]
    del built
    gc.collect()
    assert [u.exc_value for u in unraisable] == []  # before: AttributeError ... 'fileno' from BaseEventLoop.__del__


@pytest.mark.slow  # a CLI subprocess
def test_report_interrupted_while_its_fetch_loop_is_built_says_one_line(tmp_path: Path) -> None:
    job = _hand_made_job(tmp_path, ["http://127.0.0.1:9/a.png"], None)
    code, out, err, _sid = run_in_session(
        [sys.executable, "-m", "totask_manifest", "report", str(job), "-o", str(tmp_path / "r.html")],
        env={"PYTHONPATH": f"{SITE}{os.pathsep}{REPO}", "SIGNAL_AT_CALL": f"{INSIDE_THE_LOOP}:SIGINT"},
        hung="report hung after a SIGINT inside its event loop's constructor")
    assert (code, out, err) == (130, "", "totask-manifest report: interrupted\n"), err[-3000:]
    assert not (tmp_path / "r.html").exists()
