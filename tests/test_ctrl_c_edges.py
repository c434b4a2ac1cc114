"""Ctrl-C at the very end of a command, once its work is done, as real subprocesses.

A terminal sends Ctrl-C to the whole process group. When it lands after a job's commit (the
output manifest whole, job.json about to say or saying COMPLETED), while the lease is given back,
while the summary prints, or after the command's handler returned, the command prints its summary
whole, gives its lease back, and says in one line that the job had completed before the Ctrl-C:
exit 130 (README, *Command reference*). Before, it said only "interrupted" with the summary cut
short or missing, left the lease naming the dead process, died by SIGINT without a word (the
``KeyboardInterrupt`` raised after ``main`` returned), or printed a traceback at exit. Once
``main`` has returned its code, a Ctrl-C while the interpreter exits changes nothing: exit 0.
The same for ``resume``, ``chain``, ``apply`` and ``convert``. The signal is placed by
``tests/support/ctrl_c_at.py`` (a named point, no sleeps).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from tests.jobs_helpers import REPO, TOY, output_of, write_manifest
from tests.support.sessions import run_in_session
from totask_manifest._jobs.config import JobConfig
from totask_manifest._jobs.job import Job

pytest_plugins = ["totask_manifest.testing.fixtures"]

#: where the line comes from: the job's own summary (a signal during the commit) or the CLI
DURING_COMMIT = "signal 2 received: no line was left to stop, so the job completed"
#: every point from the commit to ``main``'s return
AFTER_COMMIT = ["committed", "recorded", "restoring", "restored", "done", "lease-release", "summary", "returned"]
#: after ``main`` returned: the command has said everything, with its exit code
AFTER_MAIN = ["main-returned", "exit", "finalizing"]


def run_at(point: str, *args: str, sent: str = "SIGINT") -> tuple[int, str, str]:
    """The CLI in a session of its own, Ctrl-C'd at ``point`` (or ``sent`` SIGTERM, to its group):
    its exit code, stdout and stderr."""
    code, out, err, _sid = run_in_session([sys.executable, "-m", "tests.support.ctrl_c_at", point, *args],
                                          env={"CTRL_C_AT_SIGNAL": sent},
                                          hung=f"{args[0]} hung after a Ctrl-C at {point}")
    return code, out, err


def job_args(src: Path, out: Path, name: str = "j") -> list[str]:
    return ["annotate", str(src), "--job-name", name, "--label-attribute", "cls", "--task-type",
            "image-classification", "--method", TOY, "--output", str(out)]


@pytest.fixture
def src(tmp_path: Path) -> Path:
    return write_manifest(tmp_path / "in.manifest", 20)


def assert_no_lease_held(job: Path) -> None:
    """Every lease file of the folder says released: none names the ended process."""
    leases = sorted((job / ".lease").glob("lease-*.json"))
    assert leases and all(orjson.loads(p.read_bytes()).get("released") for p in leases), \
        [p.read_bytes() for p in leases]


def assert_completed_then_interrupted(command: str, code: int, out: str, err: str, job: Path, *,
                                      exit_code: int = 130) -> None:
    """The summary whole, then one line saying the job completed before the Ctrl-C; exit 130
    (143: a SIGTERM); job.json (and its last run) COMPLETED; the lease given back."""
    assert code == exit_code, (code, out, err[-3000:])
    assert "Traceback" not in err, err[-3000:]
    summary = out.splitlines()
    assert summary[0] == f"job {job}: COMPLETED" and summary[1].startswith("metrics: total=20 "), out
    assert f"output manifest: {output_of(job.parent, job.name)}" in summary, out
    late = f"totask-manifest {command}: interrupted after the job COMPLETED; nothing was cut short"
    said = [line for line in err.splitlines() if "interrupted" in line] + \
           [line for line in summary if line == DURING_COMMIT]
    assert said in ([late], [DURING_COMMIT]), (out, err[-3000:])
    state = Job(str(job)).state
    assert state.status == "COMPLETED" and state.runs[-1]["status"] == "COMPLETED", state.runs
    with output_of(job.parent, job.name).open("rb") as f:
        assert sum(1 for _ in f) == 20
    assert_no_lease_held(job)


@pytest.mark.parametrize("sent", ["SIGINT", "SIGTERM", "SIGHUP"])
def test_ctrl_c_while_the_summary_prints_keeps_it_whole(tmp_path, src, sent):
    """The summary was cut after its first line; the command said only "interrupted"."""
    out = tmp_path / "out"
    assert_completed_then_interrupted("annotate", *run_at("summary", *job_args(src, out), sent=sent), out / "j",
                                      exit_code=128 + int(getattr(signal, sent)))


@pytest.mark.slow
@pytest.mark.parametrize("point", [p for p in AFTER_COMMIT if p != "summary"])
def test_ctrl_c_after_the_commit_says_the_job_completed(tmp_path, src, point):
    """``restoring``, ``restored``, ``done``: "interrupted" and no summary at all, though the job
    was COMPLETED; ``lease-release``: the lease left naming the dead process; ``returned``:
    "interrupted" after a whole summary, as if the job had not completed."""
    out = tmp_path / "out"
    assert_completed_then_interrupted("annotate", *run_at(point, *job_args(src, out)), out / "j")


@pytest.mark.slow
@pytest.mark.parametrize("point", AFTER_MAIN)
def test_ctrl_c_once_main_returned_changes_nothing(tmp_path, src, point):
    """``main-returned``: the ``KeyboardInterrupt`` escaped the console script's ``sys.exit(main())``,
    and the process died by SIGINT (returncode -2) without a word; ``exit``: a traceback
    ("Exception ignored in atexit callback") after the summary; ``finalizing``: past the exit
    hooks Python had put SIGINT's default back, and the process died of it (-2)."""
    out = tmp_path / "out"
    code, stdout, err = run_at(point, *job_args(src, out))
    assert (code, err.count("interrupted"), "Traceback" in err) == (0, 0, False), (code, err[-3000:])
    assert stdout.splitlines()[0] == f"job {out / 'j'}: COMPLETED", stdout
    assert Job(str(out / "j")).state.status == "COMPLETED"
    assert_no_lease_held(out / "j")


def stopped_job(src: Path, out: Path) -> Path:
    """A job STOPPED after a few lines, as a Ctrl-C leaves it (its ``on_progress`` raises
    ``KeyboardInterrupt``: the Python API's Ctrl-C)."""
    from totask_manifest._api import annotate

    def stop(metrics: dict[str, int]) -> None:
        raise KeyboardInterrupt

    config = JobConfig("j", str(src), str(out), "cls", "image-classification", method=TOY, checkpoint_every=1)
    with pytest.raises(KeyboardInterrupt):
        annotate(config, on_progress=stop)
    assert Job(str(out / "j")).state.status == "STOPPED"
    return out / "j"


@pytest.mark.slow
@pytest.mark.parametrize("point", ["recorded", "lease-release", "summary", "returned"])
def test_ctrl_c_as_resume_completes_the_job(tmp_path, src, point):
    job = stopped_job(src, tmp_path / "out")
    assert_completed_then_interrupted("resume", *run_at(point, "resume", str(job)), job)


@pytest.mark.slow
def test_ctrl_c_as_resume_reports_a_job_already_completed(tmp_path, src):
    """Nothing to run: the summary of the COMPLETED job, printed whole."""
    job = stopped_job(src, tmp_path / "out")
    assert subprocess.run([sys.executable, "-m", "totask_manifest", "resume", str(job)], cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True).returncode == 0
    assert_completed_then_interrupted("resume", *run_at("summary", "resume", str(job)), job)


@pytest.mark.slow
@pytest.mark.parametrize("point", ["lease-release", "summary"])
def test_ctrl_c_as_a_chained_job_completes(tmp_path, src, point):
    job = stopped_job(src, tmp_path / "out")
    assert subprocess.run([sys.executable, "-m", "totask_manifest", "resume", str(job)], cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True).returncode == 0
    code, out, err = run_at(point, "chain", str(job), "--job-name", "next", "--label-attribute", "cls2")
    assert_completed_then_interrupted("chain", code, out, err, tmp_path / "out" / "next")


@pytest.mark.slow
@pytest.mark.parametrize("point", ["done", "lease-release", "summary", "returned"])
def test_ctrl_c_as_apply_ends(synapse, files, client, tmp_path, point):
    """Every task applied: the counts printed whole, then one line; the lease given back. Before:
    "interrupted: the counts above are the tasks finished before the stop", with no counts
    (``done``) or half of them (``summary``), or the lease left naming the dead process."""
    from totask_manifest._synapse.export import export_tasks
    from totask_manifest.testing.builders import make_job, seed_tasks

    export = tmp_path / "export.manifest"
    export_tasks(seed_tasks(synapse, files, 4), str(export), client=client)
    job = make_job(tmp_path, export)
    code, out, err = run_at(point, "apply", str(job))
    assert code == 130 and "Traceback" not in err, (code, out, err[-3000:])
    assert out.splitlines()[-1].startswith("4 applied, 0 unchanged, 0 conflicts (skipped), 0 failed"), out
    assert err.splitlines()[-1] == \
        "totask-manifest apply: interrupted after the apply run ended; nothing was cut short", err[-3000:]
    assert_no_lease_held(job)


@pytest.mark.slow
@pytest.mark.parametrize("point", ["done", "summary", "returned"])
@pytest.mark.parametrize("sent", ["SIGINT", "SIGTERM", "SIGHUP"])
def test_ctrl_c_as_convert_ends(tmp_path, src, point, sent):
    """The output written whole: its line printed whole, then one line, exit 130 (before: the
    printed line cut or missing, and "interrupted", as if the output might be partial). A SIGTERM
    while the line printed killed the command without a word: leaving, SIGTERM's handler for the
    convert had put back the default over the one that notes a signal once the work is done."""
    parquet = tmp_path / "out.parquet"
    code, out, err = run_at(point, "convert", str(src), str(parquet), "--to", "parquet", sent=sent)
    assert code == 128 + int(getattr(signal, sent)) and "Traceback" not in err, (code, out, err[-3000:])
    assert out.startswith("manifest -> parquet: ") and out.endswith(")\n"), out
    assert err.splitlines() == ["totask-manifest convert: interrupted after the output was written whole; "
                                "nothing was cut short"], err[-3000:]
    assert parquet.stat().st_size > 0 and not list(tmp_path.glob(".tmp-*"))


@pytest.mark.slow
@pytest.mark.parametrize("sent", ["SIGINT", "SIGTERM", "SIGHUP"])
def test_a_stop_signal_while_python_tears_down_changes_nothing(tmp_path, src, sent):
    """Past the exit hooks Python puts the default disposition back for every signal whose handler
    is a Python function, then tears its modules down (tens of milliseconds): a Ctrl-C, SIGTERM or
    SIGHUP there killed ``stats`` by the signal (-2, -15, -1) without a word, after its whole output
    and with its code returned (the flaky pool test of ``tests/test_startup_interrupt.py``)."""
    code, out, err = run_at("finalizing", "stats", str(src), sent=sent)
    assert (code, err) == (0, ""), (code, err[-3000:])
    assert out.startswith(f"{src}\n  lines: 20 "), out
