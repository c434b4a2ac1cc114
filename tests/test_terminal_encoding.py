"""A terminal or log file whose encoding cannot show a path's characters (a Latin-1 terminal, a
Windows console redirected to a cp1252 file; here ``PYTHONIOENCODING=latin-1``): a job in a folder
named ``标注`` completed, then its last lines ended in a ``UnicodeEncodeError`` traceback, exit 1,
and ``status`` of it did the same. What cannot be shown is written as ``\\u6807`` escapes, as stderr
already did."""

from __future__ import annotations

import pytest

from tests.jobs_helpers import run_cli, toy_job_args, write_manifest

pytestmark = pytest.mark.slow


def test_a_job_and_its_status_print_a_path_the_terminal_cannot_show(tmp_path):
    inp = write_manifest(tmp_path / "in.manifest", 5)
    out = tmp_path / "标注"
    latin1 = {"PYTHONIOENCODING": "latin-1"}
    r = run_cli(*toy_job_args(inp, out), env=latin1)
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    assert r.stdout.startswith(f"job {tmp_path}/\\u6807\\u6ce8/j: COMPLETED\n"), r.stdout
    s = run_cli("status", str(out / "j"), env=latin1)
    assert s.returncode == 0 and "Traceback" not in s.stderr, s.stderr
    assert "status: COMPLETED" in s.stdout and "\\u6807\\u6ce8/j" in s.stdout, s.stdout
