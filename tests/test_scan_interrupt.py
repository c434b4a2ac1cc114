"""Ctrl-C while ``annotate`` takes its lease and scans its input, as real subprocesses.

A terminal sends Ctrl-C to the whole process group: the command, its lease's heartbeat thread,
the scan's pool workers and its checksum thread all see it. At each moment the job ends as the
README says an interrupted command does: exit 130 and one line, no traceback, no lease file and
no folder the command made left behind, and the same ``annotate`` run again completes. The
signal is placed exactly by ``tests/support/ctrl_c_at.py`` (a named point, no sleeps).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.jobs_helpers import REPO, output_of, run_cli, toy_job_args

pytestmark = pytest.mark.slow
LINES = 1_000_000
#: the scan's pool has workers only where there are two CPUs (``map_ranges``: one per CPU)
POOL = pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="the input scan starts no pool worker on one CPU")


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A million lines (38 MB: ranges for the pool), all labeled under ``cls`` but one in 50,000:
    the scan takes a second or two, the job itself a moment."""
    path = tmp_path_factory.mktemp("scan") / "big.manifest"
    labeled, unlabeled = b'{"source-ref":"s3://b/a.jpg","cls":1}\n', b'{"source-ref":"s3://b/u.jpg"}\n'
    with path.open("wb") as f:
        for _ in range(LINES // 50_000):
            f.write(labeled * 49_999 + unlabeled)
    return path


def job_args(big: Path, out: Path) -> list[str]:
    return toy_job_args(big, out)


def _sigint_as_a_terminal_gives_it() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # a runner in the background hands it down ignored


def run_with_ctrl_c(point: str, args: list[str], *flags: str) -> tuple[int, str]:
    """``annotate`` in a session of its own, Ctrl-C'd at ``point``: its exit code and stderr."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.support.ctrl_c_at", point, *flags, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        start_new_session=True,
        preexec_fn=_sigint_as_a_terminal_gives_it,
    )
    try:
        _out, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail(f"annotate hung after a Ctrl-C at {point}")
    return proc.returncode, err


def assert_interrupted_cleanly(code: int, err: str, out: Path) -> None:
    assert (code, err) == (130, "totask-manifest annotate: interrupted\n"), (code, err[-3000:])
    assert not out.exists(), sorted(str(p.relative_to(out)) for p in out.rglob("*"))  # no lease, no folder


def assert_runs_again(big: Path, out: Path) -> None:
    r = run_cli(*job_args(big, out))
    assert r.returncode == 0 and "COMPLETED" in r.stdout, r.stderr[-3000:]
    with output_of(out, "j").open("rb") as f:
        assert sum(1 for _ in f) == LINES


@pytest.mark.parametrize(
    "point",
    [
        "lease-created",  # the lease file was left behind (acquire had not returned)
        pytest.param("spawning", marks=POOL),  # the Ctrl-C was lost: the job ran on to COMPLETED, exit 0
        pytest.param("checksum", marks=POOL),
        "scanning",
    ],
)
def test_ctrl_c_while_the_job_starts_is_one_line_130_and_leaves_nothing(tmp_path, big, point):
    out = tmp_path / "out"
    assert_interrupted_cleanly(*run_with_ctrl_c(point, job_args(big, out)), out)
    assert_runs_again(big, out)


def test_ctrl_c_as_the_one_process_scan_starts_its_checksum(tmp_path, big):
    out = tmp_path / "out"
    assert_interrupted_cleanly(*run_with_ctrl_c("checksum", job_args(big, out), "--one-process"), out)


@POOL
def test_ctrl_c_while_a_worker_is_part_way_through_its_result(tmp_path, big):
    """The command kills its workers (they ignore SIGINT), one of them half way through sending
    a range's result: the pool's thread waited forever for the rest of it."""
    out = tmp_path / "out"
    assert_interrupted_cleanly(*run_with_ctrl_c("worker-mid-result", job_args(big, out)), out)
    assert_runs_again(big, out)


@POOL
def test_a_worker_killed_part_way_through_its_result_is_read_again_here(tmp_path, big):
    """No Ctrl-C: a worker dies (OOM killer, ``kill -9``) half way through sending a range's
    result. Its ranges are read in this process, as for any dead worker; the job hung."""
    out = tmp_path / "out"
    code, err = run_with_ctrl_c("worker-dies", job_args(big, out))
    assert code == 0 and "a worker process died" in err and "Traceback" not in err, (code, err[-3000:])
    with output_of(out, "j").open("rb") as f:
        assert sum(1 for _ in f) == LINES
