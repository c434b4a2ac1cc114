"""A run killed with ``kill -9`` stays in ``job.json``'s ``runs``: each run is recorded when it
starts (``RUNNING``, its pid and host) and completed when it ends. A run was recorded only at its
end, so after ``kill -9`` and ``resume`` the job read as if it had run once. ``status`` and
``report`` show a run whose process is gone ``INTERRUPTED`` (read only); ``resume`` records it so."""

from __future__ import annotations

import re

import orjson

from tests.jobs_helpers import popen_cli, run_cli, write_manifest
from tests.test_resume import start_args, wait_for_parts


def _runs(job) -> list[dict]:
    return orjson.loads((job / "job.json").read_bytes())["runs"]


def test_a_killed_run_is_recorded_interrupted_and_shown_by_status_and_report(tmp_path):
    inp = write_manifest(tmp_path / "in.manifest", 120)
    out = tmp_path / "out"
    job = out / "killed"
    proc = popen_cli(*start_args(inp, out, "killed", delay="0.02", every="5"))
    try:
        wait_for_parts(out, "killed", minimum=1, timeout=120)
    finally:
        proc.kill()  # SIGKILL: the run cannot record its end
        proc.communicate(timeout=60)

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
