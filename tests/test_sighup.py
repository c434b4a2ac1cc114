"""SIGHUP (an ssh session that drops, a terminal window closed) stops a job as SIGTERM does, as
real subprocesses. A job in the foreground of the closed terminal died of it as of a ``kill -9``:
job.json still RUNNING, its lease naming a dead process, no output manifest for the lines it had
finished. It now stops taking lines, finishes those in flight, commits its output manifest and
ends STOPPED, exit 129 (128 + 1), though its terminal is gone (every write to it fails: EIO, or
EPIPE for pipes whose reader left). Before the job exists (its lease, its input scan) one line and
129, no folder. A SIGHUP ignored when the command starts (``nohup``) stays ignored."""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import subprocess
import sys
import termios
import time
from pathlib import Path

import orjson
import pytest

from tests.jobs_helpers import REPO, assert_same_output, output_of, run_cli, toy_job_args, write_manifest
from tests.support.sessions import (
    assert_none_left_in_session,
    run_in_session,
    signals_as_a_terminal_gives_them,
)
from tests.support.terminal import close_after_progress, job_on_terminal
from tests.test_resume import renamed_copy
from totask_manifest._jobs.layout import JobLayout

pytestmark = pytest.mark.slow
N = 300


def job_args(inp: Path, out: Path, job: str, delay: str) -> list[str]:
    return toy_job_args(inp, out, "--toy-delay", delay, "--checkpoint-every", "11", job=job)


def on_its_own_terminal() -> None:
    """In the child, after ``setsid``: the terminal on stdin becomes its controlling terminal, as a
    login shell's is; closing the terminal then sends it SIGHUP (the kernel's hangup)."""
    signals_as_a_terminal_gives_them()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def assert_stopped_with_valid_output(inp: Path, out: Path, job: str) -> dict:
    state = orjson.loads((out / job / "job.json").read_bytes())
    assert (state["status"], state["error"], state["runs"][-1]["signal"]) == ("STOPPED", None, 1), state
    src = inp.read_bytes().splitlines(keepends=True)
    got = output_of(out, job).read_bytes().splitlines(keepends=True)
    assert len(got) == len(src)
    labeled = [b for a, b in zip(src, got, strict=True) if a != b]
    assert 0 < len(labeled) < state["metrics"]["total"], len(labeled)
    assert all(b"labeling-job/" + job.encode() in b for b in labeled)
    leases = sorted((out / job / ".lease").glob("lease-*.json"))
    assert leases and all(orjson.loads(p.read_bytes()).get("released") for p in leases), \
        [p.read_bytes() for p in leases]
    return state


def assert_resume_gives_a_clean_runs_output(tmp_path: Path, inp: Path, out: Path, job: str) -> None:
    r = run_cli("resume", str(out / job))
    assert r.returncode == 0 and "COMPLETED" in r.stdout, r.stderr[-3000:]
    ref = run_cli(*job_args(inp, tmp_path / "ref", "ref", "0"))
    assert ref.returncode == 0, ref.stderr[-3000:]
    assert_same_output(output_of(tmp_path / "ref", "ref"), renamed_copy(output_of(out, job), job, tmp_path))


def test_a_closed_terminal_stops_the_job_then_resume_completes(tmp_path):
    inp = write_manifest(tmp_path / "in.manifest", N, prelabeled_every=9)
    out = tmp_path / "out"
    proc, master, seen = job_on_terminal(job_args(inp, out, "hup", "0.02"), preexec=on_its_own_terminal)
    close_after_progress(proc, master, seen, out / "hup", 2)  # the kernel hangs it up: the job gets SIGHUP
    try:
        rc = proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert rc == 128 + signal.SIGHUP, (rc, bytes(seen)[-3000:])
    assert_stopped_with_valid_output(inp, out, "hup")
    assert_resume_gives_a_clean_runs_output(tmp_path, inp, out, "hup")


def test_sighup_with_stdout_and_stderr_gone_still_commits(tmp_path):
    """``ssh host totask-manifest annotate ...`` without a terminal: stdout and stderr are pipes
    whose reader goes with the connection, and every write fails (EPIPE); the SIGHUP is sent on
    top. No print may end the job before its commit, nor change its exit code."""
    inp = write_manifest(tmp_path / "in.manifest", N, prelabeled_every=9)
    out = tmp_path / "out"
    read_end, write_end = os.pipe()
    proc = subprocess.Popen(
        [sys.executable, "-m", "totask_manifest", *job_args(inp, out, "hup", "0.02")],
        stdin=subprocess.DEVNULL, stdout=write_end, stderr=write_end, start_new_session=True,
        preexec_fn=signals_as_a_terminal_gives_them, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    os.close(write_end)
    os.close(read_end)  # the reader is gone from the start
    try:
        layout, deadline = JobLayout(str(out / "hup")), time.monotonic() + 60
        while len(layout.parts()) < 2:
            assert proc.poll() is None, proc.returncode
            assert time.monotonic() < deadline, "no checkpoint part in 60 s"
            time.sleep(0.01)
        os.killpg(proc.pid, signal.SIGHUP)
        rc = proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert rc == 128 + signal.SIGHUP, rc
    assert_stopped_with_valid_output(inp, out, "hup")


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Enough lines for the input scan to take a moment (the signal is placed inside it)."""
    path = tmp_path_factory.mktemp("scan") / "big.manifest"
    with path.open("wb") as f:
        for _ in range(10):
            f.write(b'{"source-ref":"s3://b/a.jpg","cls":1,"cls-metadata":{"type":"groundtruth/image-classification"}}\n' * 49_999 + b'{"source-ref":"s3://b/u.jpg"}\n')
    return path


@pytest.mark.parametrize("point", ["lease-created", "scanning"])
def test_sighup_while_the_job_starts_is_one_line_129_and_leaves_nothing(tmp_path, big, point):
    out = tmp_path / "out"
    code, _out, err, sid = run_in_session(
        [sys.executable, "-m", "tests.support.ctrl_c_at", point, *toy_job_args(big, out)],
        env={"CTRL_C_AT_SIGNAL": "SIGHUP"}, hung=f"annotate hung after a SIGHUP at {point}")
    assert_none_left_in_session(sid)
    assert (code, err) == (129, "totask-manifest annotate: interrupted\n"), (code, err[-3000:])
    assert not out.exists(), sorted(str(p.relative_to(out)) for p in out.rglob("*"))


def test_sighup_while_the_job_starts_with_its_terminal_gone(tmp_path, big):
    """The line that says so has no reader (EPIPE): still 129, nothing left behind."""
    out = tmp_path / "out"
    read_end, write_end = os.pipe()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.support.ctrl_c_at", "scanning", *toy_job_args(big, out)],
        stdin=subprocess.DEVNULL, stdout=write_end, stderr=write_end, start_new_session=True,
        preexec_fn=signals_as_a_terminal_gives_them, cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO), "CTRL_C_AT_SIGNAL": "SIGHUP"},
    )
    os.close(write_end)
    os.close(read_end)
    try:
        rc = proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert_none_left_in_session(proc.pid)
    assert rc == 129
    assert not out.exists(), sorted(str(p.relative_to(out)) for p in out.rglob("*"))


@pytest.mark.skipif(shutil.which("nohup") is None, reason="no nohup on this system")
def test_a_job_under_nohup_keeps_sighup_ignored(tmp_path):
    inp = write_manifest(tmp_path / "in.manifest", 200)
    out = tmp_path / "out"
    proc = subprocess.Popen(
        ["nohup", sys.executable, "-m", "totask_manifest", *job_args(inp, out, "bg", "0.01")],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
        preexec_fn=signals_as_a_terminal_gives_them, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        layout, deadline = JobLayout(str(out / "bg")), time.monotonic() + 60
        while len(layout.parts()) < 1:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no checkpoint part in 60 s"
            time.sleep(0.01)
        os.killpg(proc.pid, signal.SIGHUP)
        _stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, stderr
    job = orjson.loads((out / "bg" / "job.json").read_bytes())
    assert (job["status"], job["metrics"]["stand_by"]) == ("COMPLETED", 0), stderr
    assert b"stopping" not in stderr and b"interrupted" not in stderr, stderr
