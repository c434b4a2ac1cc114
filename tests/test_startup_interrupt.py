"""Ctrl-C while the command is still importing the package: one line and exit 130, no traceback.

Python's own SIGINT handler raises ``KeyboardInterrupt`` wherever the interpreter is, and the
package's import (fsspec, asyncio, orjson: a few hundred milliseconds) runs before any
``try`` of ``__main__`` can catch it. These tests reproduce that moment exactly: a real
interpreter imports the package the way ``python -m totask_manifest`` or the console script
does, then receives SIGINT while still importing, here right after the package itself.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.jobs_helpers import REPO

# sys.argv as runpy leaves it while it imports the package of ``-m``, or as the console script has it
_AS_MODULE = "sys.argv[:] = ['-m']; sys.orig_argv = [sys.executable, '-X', 'utf8', '-m', 'totask_manifest', 'validate']"
_AS_SCRIPT = "sys.argv[:] = ['/usr/local/bin/totask-manifest', 'validate']"
_AS_LIBRARY = "sys.argv[:] = ['train.py']"


def _sigint_as_a_terminal_gives_it() -> None:
    """The children start with SIGINT at its default, as from a terminal: a test runner started
    in the background (``cmd &`` in a script) hands SIGINT down ignored, and Python then keeps it
    ignored, which is right for the command (nothing to do on a Ctrl-C that cannot come) and
    would make these tests measure the runner instead of the package."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _interrupt_after_import(argv_setup: str) -> subprocess.CompletedProcess:
    code = (f"import sys; {argv_setup}\n"
            "import totask_manifest, os, signal, time\n"
            "os.kill(os.getpid(), signal.SIGINT)\n"
            "time.sleep(10)\n"
            "print('still running')\n")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60,
                          preexec_fn=_sigint_as_a_terminal_gives_it)


def test_ctrl_c_while_the_command_imports_is_one_line_and_130():
    """The line names the command where argv holds one, as every other ``interrupted`` line does
    (README: ``totask-manifest annotate: interrupted``); before, it never did."""
    no_command = "sys.argv[:] = ['/usr/local/bin/totask-manifest', '-v']"
    for setup, said in ((_AS_MODULE, "totask-manifest validate"), (_AS_SCRIPT, "totask-manifest validate"),
                        (no_command, "totask-manifest")):
        r = _interrupt_after_import(setup)
        assert r.returncode == 130, (setup, r.returncode, r.stderr)
        assert r.stderr == f"{said}: interrupted\n", r.stderr
        assert "still running" not in r.stdout


def test_a_library_import_leaves_sigint_alone():
    r = _interrupt_after_import(_AS_LIBRARY)
    assert r.returncode != 130 and "KeyboardInterrupt" in r.stderr, (r.returncode, r.stderr)


@pytest.mark.slow
def test_the_command_puts_pythons_handler_back_once_parsed(tmp_path):
    """After parsing, a command catches KeyboardInterrupt itself (a job stops cleanly, STOPPED)."""
    code = ("import sys; sys.argv[:] = ['-m']; sys.orig_argv = [sys.executable, '-m', 'totask_manifest']\n"
            "import signal, totask_manifest\n"
            "from totask_manifest._cli import main\n"
            "assert signal.getsignal(signal.SIGINT) is not signal.default_int_handler\n"
            f"main(['validate', {str(tmp_path / 'missing.manifest')!r}])\n"
            "assert signal.getsignal(signal.SIGINT) is signal.default_int_handler\n"
            "print('restored')\n")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60,
                          preexec_fn=_sigint_as_a_terminal_gives_it)
    assert r.returncode == 0 and "restored" in r.stdout, r.stderr


def _workers_of(pid: int) -> list[int]:
    """The pool processes ``multiprocessing`` started for ``pid`` (Linux ``/proc``): spawned ones
    say so on their command line, forked ones (``stats``) have their parent's."""
    found = []
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        own = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return found
    for child in children:
        try:
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:
            continue
        if b"--multiprocessing-fork" in cmdline or cmdline == own:
            found.append(int(child))
    return found


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux /proc to find the pool's workers")
@pytest.mark.parametrize("command", ["stats", "evaluate"])
@pytest.mark.slow
def test_ctrl_c_reaching_the_pool_workers_too_is_one_line_and_130(tmp_path, command):
    """A terminal's Ctrl-C goes to the whole foreground process group: the command and the workers
    it started (spawned, or forked for ``stats``) to read a big file in ranges. Each worker used to print a KeyboardInterrupt traceback
    (often from inside an import), and the pool's thread one more; now the command says it once."""
    line = (b'{"source-ref":"s3://b/a.jpg","category":{"annotations":[{"class_id":0,"left":1,"top":2,"width":3,'
            b'"height":4}],"image_size":[{"width":10,"height":10,"depth":3}]},"category-metadata":{"objects":'
            b'[{"confidence":0.9}],"class-map":{"0":"cat"},"type":"groundtruth/object-detection",'
            b'"human-annotated":"yes","creation-date":"2020-01-01T00:00:00","job-name":"labeling-job/a"}}')
    pair = line[:-1] + b',"pred":{"annotations":[{"class_id":0,"left":1,"top":2,"width":3,"height":4}],' \
        b'"image_size":[{"width":10,"height":10,"depth":3}]},"pred-metadata":{"objects":[{"confidence":0.8}],' \
        b'"class-map":{"0":"cat"},"type":"groundtruth/object-detection","human-annotated":"no",' \
        b'"creation-date":"2020-01-01T00:00:00","job-name":"labeling-job/b"}}\n'
    # JSON objects, as the comparison reads them: the lines were not (a brace short), so the command
    # counted them broken and ended within a second, at times before the Ctrl-C, which then came
    # after its work (no line, its exit code) or while Python tore down (-2: ``_signals``)
    assert json.loads(pair)["pred-metadata"]["job-name"] == "labeling-job/b"
    big = tmp_path / "big.manifest"
    with big.open("wb") as f:
        for _ in range((160 << 20) // len(pair) // 1000 + 1):
            f.write(pair * 1000)  # 160 MiB of JSON lines: several ranges for two workers, and seconds of work
    args = ["stats", str(big)] if command == "stats" else ["evaluate", str(big), "--predicted", "pred",
                                                          "--reference", "category"]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, "-m", "totask_manifest", *args, "--workers", "2"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=_sigint_as_a_terminal_gives_it)
    try:
        deadline = time.monotonic() + 60
        workers: list[int] = []
        while not workers and proc.poll() is None and time.monotonic() < deadline:
            workers = _workers_of(proc.pid)
            time.sleep(0.02)
        assert workers, "the command started no pool worker"
        time.sleep(0.3)  # the workers are importing what their first range needs
        os.killpg(proc.pid, signal.SIGINT)
        _out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, (proc.returncode, err[-3000:])
    assert err == f"totask-manifest {command}: interrupted\n", err[-3000:]
    deadline = time.monotonic() + 60  # a safety net: a loaded machine may take seconds to end them
    while any(Path(f"/proc/{w}").exists() for w in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(Path(f"/proc/{w}").exists() for w in workers), "a pool worker outlived its command"
