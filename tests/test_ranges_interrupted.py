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
