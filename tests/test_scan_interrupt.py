"""Ctrl-C or SIGTERM while ``annotate`` takes its lease and scans its input, as real subprocesses.

A terminal sends Ctrl-C to the whole process group: the command, its lease's heartbeat thread,
the scan's pool workers and its checksum thread all see it. At each moment the job ends as the
README says an interrupted command does: exit 130 (143: SIGTERM) and one line, no traceback, no
lease file, no folder the command made and no pool worker left behind, and the same ``annotate``
run again completes. The
signal is placed exactly by ``tests/support/ctrl_c_at.py`` (a named point, no sleeps).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from tests.jobs_helpers import output_of, run_cli, toy_job_args
from tests.support.sessions import (
    assert_none_left_in_session,
    run_in_session,
    signals_as_a_terminal_gives_them,
    sigterm_ignored,
)

pytestmark = pytest.mark.slow
LINES = 1_000_000
#: the scan's pool has workers only where there are two CPUs (``map_ranges``: one per CPU)
POOL = pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="the input scan starts no pool worker on one CPU")


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A million lines (38 MB: ranges for the pool), all labeled under ``cls`` but one in 50,000:
    the scan takes a second or two, the job itself a moment."""
    path = tmp_path_factory.mktemp("scan") / "big.manifest"
    labeled, unlabeled = b'{"source-ref":"s3://b/a.jpg","cls":1,"cls-metadata":{"type":"groundtruth/image-classification"}}\n', b'{"source-ref":"s3://b/u.jpg"}\n'
    with path.open("wb") as f:
        for _ in range(LINES // 50_000):
            f.write(labeled * 49_999 + unlabeled)
    return path


def job_args(big: Path, out: Path) -> list[str]:
    return toy_job_args(big, out)


#: what stops the command (``tests/support/ctrl_c_at.py``): a terminal's Ctrl-C, to the group; a
#: SIGTERM to the group (``timeout``, systemd) or to the command alone (``kill PID``). A SIGTERM
#: killed the command at once (exit -15, no line, its lease file left behind) until the job's
#: own handlers were in place
SIGNALS = ["SIGINT", "SIGTERM", "SIGTERM-pid"]


def run_with_ctrl_c(point: str, args: list[str], *flags: str, sent: str = "SIGINT",
                    preexec=signals_as_a_terminal_gives_them) -> tuple[int, str]:
    """``annotate`` in a session of its own, Ctrl-C'd at ``point`` (or ``sent`` another signal,
    as ``SIGNALS`` says): its exit code and stderr. No process of its session outlives it (a pool
    worker left running)."""
    code, _out, err, sid = run_in_session(
        [sys.executable, "-m", "tests.support.ctrl_c_at", point, *flags, *args],
        env={"CTRL_C_AT_SIGNAL": sent}, preexec=preexec, hung=f"{args[0]} hung after a {sent} at {point}")
    assert_none_left_in_session(sid)
    return code, err


def assert_interrupted_cleanly(code: int, err: str, out: Path, sent: str = "SIGINT", command: str = "annotate") -> None:
    expected = 130 if sent == "SIGINT" else 143
    assert (code, err) == (expected, f"totask-manifest {command}: interrupted\n"), (code, err[-3000:])
    assert not out.exists(), sorted(str(p.relative_to(out)) for p in out.rglob("*"))  # no lease, no folder


def assert_runs_again(big: Path, out: Path) -> None:
    r = run_cli(*job_args(big, out))
    assert r.returncode == 0 and "COMPLETED" in r.stdout, r.stderr[-3000:]
    with output_of(out, "j").open("rb") as f:
        assert sum(1 for _ in f) == LINES


@pytest.mark.parametrize(
    "point",
    [
        "before-lease",
        "lease-created",  # the lease file was left behind (acquire had not returned)
        pytest.param("spawning", marks=POOL),  # the Ctrl-C was lost: the job ran on to COMPLETED, exit 0
        pytest.param("checksum", marks=POOL),
        "scanning",
    ],
)
@pytest.mark.parametrize("sent", SIGNALS)
def test_a_signal_while_the_job_starts_is_one_line_130_or_143_and_leaves_nothing(tmp_path, big, point, sent):
    """SIGTERM: one line and 143, as the README says of a signal during the scan."""
    out = tmp_path / "out"
    assert_interrupted_cleanly(*run_with_ctrl_c(point, job_args(big, out), sent=sent), out, sent)
    assert_runs_again(big, out)


@pytest.mark.parametrize("sent", SIGNALS)
def test_a_signal_as_the_one_process_scan_starts_its_checksum(tmp_path, big, sent):
    out = tmp_path / "out"
    assert_interrupted_cleanly(*run_with_ctrl_c("checksum", job_args(big, out), "--one-process", sent=sent), out,
                               sent)


@POOL
@pytest.mark.parametrize("sent", ["SIGINT", "SIGTERM-pid"])
def test_a_signal_while_a_worker_is_part_way_through_its_result(tmp_path, big, sent):
    """The command kills its workers (they ignore SIGINT; a ``kill PID`` reaches the command
    alone), one of them half way through sending a range's result: the pool's thread waited
    forever for the rest of it."""
    out = tmp_path / "out"
    assert_interrupted_cleanly(*run_with_ctrl_c("worker-mid-result", job_args(big, out), sent=sent), out, sent)
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


@pytest.mark.parametrize("sent", ["SIGTERM", "SIGTERM-pid"])
def test_a_sigterm_while_a_chained_job_scans_its_input(tmp_path, big, sent):
    """``chain`` scans the previous job's output manifest as ``annotate`` scans its input."""
    out = tmp_path / "out"
    assert_runs_again(big, out)
    args = ["chain", str(out / "j"), "--job-name", "next", "--label-attribute", "cls2"]
    assert_interrupted_cleanly(*run_with_ctrl_c("scanning", args, sent=sent), out / "next", sent, "chain")


def test_a_sigterm_inherited_as_ignored_stays_ignored_while_the_job_starts(tmp_path, big):
    """The job commands take SIGTERM as Ctrl-C from their start, but not one they were handed ignored."""
    out = tmp_path / "out"
    code, err = run_with_ctrl_c("scanning", job_args(big, out), sent="SIGTERM-pid", preexec=sigterm_ignored)
    assert code == 0 and "interrupted" not in err and "stopping" not in err, (code, err[-3000:])
    with output_of(out, "j").open("rb") as f:
        assert sum(1 for _ in f) == LINES


def test_a_start_killed_while_it_scans_is_told_to_run_again_and_does(tmp_path, big):
    """``kill -9`` while a job scans its input leaves its folder holding its lease and no
    ``job.json``: ``status`` and ``resume`` said only "job.json not found", though the same
    command again starts the job. They say so now, and it does."""
    out = tmp_path / "out"
    code, _err = run_with_ctrl_c("scanning", job_args(big, out), sent="SIGKILL-pid")
    assert code == -9
    assert not (out / "j" / "job.json").exists() and (out / "j" / ".lease").exists()
    for command in ("status", "resume"):
        said = run_cli(command, str(out / "j"))
        assert said.returncode == 2, said.stderr
        assert "killed before it began" in said.stderr and "run the command that made it again" in said.stderr, \
            said.stderr
    assert_runs_again(big, out)


def test_a_job_still_reading_its_input_is_said_to_be_starting_not_killed(tmp_path):
    """While a job reads its input, its folder holds its live lease and no ``job.json`` yet:
    ``status`` said it was killed before it began and to run the command again, which would be
    refused (the folder is in use)."""
    from totask_manifest._jobs.lease import hold

    job = tmp_path / "out" / "j"
    job.mkdir(parents=True)
    with hold(str(job), "annotate"):
        said = run_cli("status", str(job))
    # in use, in the line every command gives a job folder a live process holds
    assert said.returncode == 2 and f"is in use by pid {os.getpid()} on host" in said.stderr, said.stderr
    assert "killed" not in said.stderr
