"""Ctrl-C, SIGTERM and SIGHUP while a command is still loading: one line, 128 + the signal's
number, no traceback, nothing half written, as real subprocesses.

Before: SIGTERM and SIGHUP at their defaults ended ``validate``, ``convert``, ``report`` and
``annotate`` by the signal itself (returncode -15, not a word) while the package, the command or
its libraries (numpy, jsonschema_rs) were being imported: the CLI's handlers came only after.
A Ctrl-C inside jsonschema_rs's import of ``decimal`` became a ``PanicException`` whose text is
the import's traceback, which ``validate`` printed whole (exit 1).

The signal is sent from inside one named import (``tests/support/signal_at_import``: a finder that
sends it there, every time): ``totask_manifest._cli.<command>`` is loaded while the command line
is read (the start-up's handler: exit at once, nothing written yet); the other point is an import
of the command's own run, where the command cleans up as on any signal.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.jobs_helpers import REPO, TOY, write_manifest
from tests.support.sessions import run_in_session
from tests.test_report import _hand_made_job

SITE = REPO / "tests" / "support" / "signal_at_import"
#: SIGTERM in the fast lane (the one that killed them); Ctrl-C and SIGHUP take the same path
SIGNALS = ["SIGTERM", pytest.param("SIGINT", marks=pytest.mark.slow), pytest.param("SIGHUP", marks=pytest.mark.slow)]


def _validate(tmp: Path) -> list[str]:
    (tmp / "in.manifest").write_bytes(b'{"source-ref":"s3://b/a.jpg"}\n')
    return ["validate", str(tmp / "in.manifest")]


def _convert(tmp: Path) -> list[str]:
    write_manifest(tmp / "in.manifest", 20)
    (tmp / "out").mkdir()
    return ["convert", str(tmp / "in.manifest"), str(tmp / "out" / "o.parquet"), "--to", "parquet"]


def _report(tmp: Path) -> list[str]:
    job = _hand_made_job(tmp, ["s3://none/a.png"], None)
    (tmp / "out").mkdir()
    return ["report", str(job), "-o", str(tmp / "out" / "page.html"), "--samples", "0"]


def _annotate(tmp: Path) -> list[str]:
    write_manifest(tmp / "in.manifest", 20)
    return ["annotate", str(tmp / "in.manifest"), "--job-name", "j", "--label-attribute", "cls", "--task-type",
            "image-classification", "--method", TOY, "--output", str(tmp / "out")]


#: command -> (its arguments in a folder, an import of its run: jsonschema_rs's of ``decimal``
#: for ``validate``, numpy for ``convert`` and ``report``, the job's runner for ``annotate``)
COMMANDS: dict[str, tuple[Callable[[Path], list[str]], str]] = {
    "validate": (_validate, "decimal"),
    "convert": (_convert, "numpy"),
    "report": (_report, "numpy"),
    "annotate": (_annotate, "totask_manifest._jobs.execute"),
}


def run_with_signal_at(module: str, sent: str, args: list[str]) -> tuple[int, str, str]:
    """``python -m totask_manifest ARGS``, sent ``sent`` from inside the import of ``module``."""
    code, out, err, _sid = run_in_session(
        [sys.executable, "-m", "totask_manifest", *args],
        env={"PYTHONPATH": f"{SITE}{os.pathsep}{REPO}", "SIGNAL_AT_IMPORT": f"{module}:{sent}"},
        hung=f"{args[0]} hung after {sent} inside the import of {module}")
    return code, out, err


def assert_interrupted_and_nothing_written(command: str, tmp: Path, sent: str, code: int, out: str,
                                           err: str) -> None:
    """Exit 128 + the signal, one line that says so, no traceback, nothing written: no output, no
    temporary, no job folder (the signal is raised as the import it came in returns, before any work)."""
    assert code == 128 + getattr(signal, sent), (code, out, err[-3000:])
    assert (err, out) == (f"totask-manifest {command}: interrupted\n", ""), err[-3000:]
    assert not (tmp / "out").exists() or not any((tmp / "out").iterdir()), list((tmp / "out").iterdir())


@pytest.mark.parametrize("sent", SIGNALS)
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_signal_while_the_command_line_is_read_is_one_line(tmp_path, command, sent):
    args = COMMANDS[command][0](tmp_path)
    code, out, err = run_with_signal_at(f"totask_manifest._cli.{command}", sent, args)
    assert_interrupted_and_nothing_written(command, tmp_path, sent, code, out, err)


@pytest.mark.parametrize("sent", SIGNALS)
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_signal_while_the_command_loads_its_libraries_is_one_line(tmp_path, command, sent):
    args_of, module = COMMANDS[command]
    args = args_of(tmp_path)
    code, out, err = run_with_signal_at(module, sent, args)
    assert_interrupted_and_nothing_written(command, tmp_path, sent, code, out, err)


def test_a_second_signal_during_a_slow_import_is_not_held(tmp_path):
    """The first signal inside an import waits for it to end; a second one is raised at once, so an
    import that hangs never makes Ctrl-C powerless."""
    script = ("import os, signal, sys, time\n"
              "from totask_manifest._cli._terminate import stops_raised\n"
              "class Slow:\n"
              "    @classmethod\n"
              "    def find_spec(cls, name, path=None, target=None):\n"
              "        if name == 'slow_module':\n"
              "            os.kill(os.getpid(), signal.SIGTERM)\n"
              "            print('held', flush=True)\n"
              "            os.kill(os.getpid(), signal.SIGTERM)\n"
              "            print('not raised', flush=True)\n"
              "sys.meta_path.insert(0, Slow)\n"
              "try:\n"
              "    with stops_raised():\n"
              "        import slow_module\n"
              "except KeyboardInterrupt as exc:\n"
              "    print(type(exc).__name__, exc.signum)\n")
    code, out, err, _sid = run_in_session([sys.executable, "-c", script])
    assert (code, out, err) == (0, "held\nTerminated 15\n", ""), (code, out, err)


def test_main_called_from_python_puts_the_handlers_back(tmp_path):
    """``main(argv)`` in a process that goes on: the stop signals' handlers as they were, whatever
    the command did; called from another thread, it sets none (Python refuses it there)."""
    script = (
        "import signal, sys, threading\n"
        "from totask_manifest._cli import main\n"
        "mine = lambda *a: None\n"
        "signal.signal(signal.SIGHUP, mine)\n"
        "before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}\n"
        f"assert main(['validate', {str(tmp_path / 'in.manifest')!r}]) == 0\n"
        f"assert main(['validate', {str(tmp_path / 'missing.manifest')!r}]) == 2\n"
        "after = {s: signal.getsignal(s) for s in before}\n"
        "assert after == before, (before, after)\n"
        "codes = []\n"
        f"t = threading.Thread(target=lambda: codes.append(main(['validate', {str(tmp_path / 'in.manifest')!r}])))\n"
        "t.start(); t.join()\n"
        "assert codes == [0] and {s: signal.getsignal(s) for s in before} == before, codes\n"
        "print('restored')\n")
    (tmp_path / "in.manifest").write_bytes(b'{"source-ref":"s3://b/a.jpg"}\n')
    code, out, err, _sid = run_in_session([sys.executable, "-c", script])
    assert code == 0 and out.endswith("restored\n"), (code, out, err[-3000:])
