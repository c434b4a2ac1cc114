"""Ctrl-C while the command is still importing the package: one line and exit 130, no traceback.

Python's own SIGINT handler raises ``KeyboardInterrupt`` wherever the interpreter is, and the
package's import (fsspec, asyncio, orjson: a few hundred milliseconds) runs before any
``try`` of ``__main__`` can catch it. These tests reproduce that moment exactly: a real
interpreter imports the package the way ``python -m totask_manifest`` or the console script
does, then receives SIGINT while still importing, here right after the package itself.
"""

from __future__ import annotations

import os
import subprocess
import sys

from tests.jobs_helpers import REPO

# sys.argv as runpy leaves it while it imports the package of ``-m``, or as the console script has it
_AS_MODULE = "sys.argv[:] = ['-m']; sys.orig_argv = [sys.executable, '-X', 'utf8', '-m', 'totask_manifest', 'validate']"
_AS_SCRIPT = "sys.argv[:] = ['/usr/local/bin/totask-manifest', 'validate']"
_AS_LIBRARY = "sys.argv[:] = ['train.py']"


def _interrupt_after_import(argv_setup: str) -> subprocess.CompletedProcess:
    code = (f"import sys; {argv_setup}\n"
            "import totask_manifest, os, signal, time\n"
            "os.kill(os.getpid(), signal.SIGINT)\n"
            "time.sleep(10)\n"
            "print('still running')\n")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)


def test_ctrl_c_while_the_command_imports_is_one_line_and_130():
    for setup in (_AS_MODULE, _AS_SCRIPT):
        r = _interrupt_after_import(setup)
        assert r.returncode == 130, (setup, r.returncode, r.stderr)
        assert r.stderr == "totask-manifest: interrupted\n", r.stderr
        assert "still running" not in r.stdout


def test_a_library_import_leaves_sigint_alone():
    r = _interrupt_after_import(_AS_LIBRARY)
    assert r.returncode != 130 and "KeyboardInterrupt" in r.stderr, (r.returncode, r.stderr)


def test_the_command_puts_pythons_handler_back_once_parsed(tmp_path):
    """After parsing, a command catches KeyboardInterrupt itself (a job stops cleanly, STOPPED)."""
    code = ("import sys; sys.argv[:] = ['-m']; sys.orig_argv = [sys.executable, '-m', 'totask_manifest']\n"
            "import signal, totask_manifest\n"
            "from totask_manifest.cli import main\n"
            "assert signal.getsignal(signal.SIGINT) is not signal.default_int_handler\n"
            f"main(['validate', {str(tmp_path / 'missing.manifest')!r}])\n"
            "assert signal.getsignal(signal.SIGINT) is signal.default_int_handler\n"
            "print('restored')\n")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0 and "restored" in r.stdout, r.stderr
