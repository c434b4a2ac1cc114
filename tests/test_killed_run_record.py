"""A run killed with ``kill -9`` stays in ``job.json``'s ``runs``: each run is recorded when it
starts (``RUNNING``, its pid and host) and completed when it ends. A run was recorded only at its
end, so after ``kill -9`` and ``resume`` the job read as if it had run once. ``status`` and
``report`` show a run whose process is gone ``INTERRUPTED`` (read only); ``resume`` records it so."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import orjson
import pytest

from tests.jobs_helpers import popen_cli, run_cli, write_manifest
from tests.test_resume import start_args, wait_for_parts


def _runs(job) -> list[dict]:
    return orjson.loads((job / "job.json").read_bytes())["runs"]


def _killed_job(tmp_path: Path) -> tuple[Path, Path, subprocess.Popen]:
    """(input, job folder, process) of a job killed (``kill -9``) once it checkpointed a part."""
    inp = write_manifest(tmp_path / "in.manifest", 120)
    out = tmp_path / "out"
    proc = popen_cli(*start_args(inp, out, "killed", delay="0.02", every="5"))
    try:
        wait_for_parts(out, "killed", minimum=1, timeout=120)
    finally:
        proc.kill()  # SIGKILL: the run cannot record its end
        proc.communicate(timeout=60)
    return inp, out / "killed", proc


def test_a_killed_run_is_recorded_interrupted_and_shown_by_status_and_report(tmp_path):
    _, job, proc = _killed_job(tmp_path)

    (first,) = _runs(job)  # recorded when it started
    assert first["status"] == "RUNNING" and first["pid"] == proc.pid and first["command"] == "annotate"

    # status reads only: it shows the run interrupted, with what the checkpoint held, and writes nothing
    before = (job / "job.json").read_bytes()
    r = run_cli("status", str(job))
    assert r.returncode == 0, r.stderr
    assert "runs: 1" in r.stdout
    assert f"run 1 (started {first['started']}) interrupted: holder pid {proc.pid}" in r.stdout, r.stdout
    said = re.search(r"; (\d+) (selected lines?) checkpointed by then", r.stdout)
    assert said and said[2] == ("selected line" if said[1] == "1" else "selected lines"), r.stdout
    assert (job / "job.json").read_bytes() == before

    r = run_cli("resume", str(job))
    assert r.returncode == 0, r.stderr
    runs = _runs(job)
    assert [run["status"] for run in runs] == ["INTERRUPTED", "COMPLETED"], runs
    killed, resumed = runs
    assert killed["pid"] == proc.pid and killed["started"] == first["started"]
    assert f"pid {proc.pid}" in killed["interrupted"]
    # what the killed run left in the checkpoint is what the resume started from
    assert killed["lines_done_at_end"] == resumed["lines_done_at_start"] > 0
    assert resumed["ended"] and resumed["lines_done_at_end"] == 120

    r = run_cli("status", str(job))
    assert r.returncode == 0, r.stderr
    assert "runs: 2" in r.stdout and f"run 1 (started {first['started']}) interrupted: pid {proc.pid}" in r.stdout
    r = run_cli("status", str(job), "--format", "json")
    assert [run["status"] for run in orjson.loads(r.stdout)["runs"]] == ["INTERRUPTED", "COMPLETED"]

    page = tmp_path / "report.html"
    r = run_cli("report", str(job), "-o", str(page), "--samples", "0")
    assert r.returncode == 0, r.stderr
    html = page.read_text()
    assert "<dt>runs</dt><dd>2; run 1 (started " in html and f"interrupted: pid {proc.pid} on host" in html


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_refused_resume_leaves_the_killed_runs_lease_and_status_as_they_were(tmp_path):
    """After a ``kill -9``, a ``resume`` refused (an engine that cannot run: ``--ray-address`` where
    nothing answers, as ``auto`` with no cluster; an input changed since the job read it) took the
    lease and released it as its own: ``status`` then said "its last run (pid of the refused resume)
    ended without a final status", a run job.json never had. Checked before the lease, or the
    record taken over written back, the killed run stays the job's last one; a plain resume ends it."""
    pytest.importorskip("ray")
    inp, job, proc = _killed_job(tmp_path)
    recorded = (job / "job.json").read_bytes()
    headline = f"status: RUNNING (interrupted: holder pid {proc.pid} on host "

    def as_before() -> None:
        r = run_cli("status", str(job))
        assert r.returncode == 0, r.stderr
        assert r.stdout.splitlines()[1].startswith(headline) and "runs: 1" in r.stdout, r.stdout
        assert (job / "job.json").read_bytes() == recorded
        (lease,) = (job / ".lease").glob("lease-*.json")
        assert orjson.loads(lease.read_bytes())["pid"] == proc.pid

    as_before()
    r = run_cli("resume", str(job), "--engine", "ray", "--ray-address", f"127.0.0.1:{_closed_port()}")
    assert r.returncode == 2 and "nothing answers at 127.0.0.1:" in r.stderr, r.stderr
    assert "taking over the lease" not in r.stderr  # refused before it
    as_before()

    given = inp.read_bytes()
    inp.write_bytes(given + given.splitlines(keepends=True)[0])
    r = run_cli("resume", str(job))
    assert r.returncode == 1 and "changed since job 'killed' read it" in r.stderr, r.stderr
    as_before()

    inp.write_bytes(given)
    r = run_cli("resume", str(job))
    assert r.returncode == 0, r.stderr
    assert [run["status"] for run in _runs(job)] == ["INTERRUPTED", "COMPLETED"]
    assert _runs(job)[0]["pid"] == proc.pid
    r = run_cli("status", str(job))
    assert r.returncode == 0 and r.stdout.splitlines()[1] == "status: COMPLETED", r.stdout
