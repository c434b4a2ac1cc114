"""``report`` of a job whose ``job.json`` is damaged as the job loader finds it
(``_jobs.state.damage``: ``"input": null``, a required key missing, a status no job writes...):
only a bad ``relative_to_appended`` was said; the rest got a page and exit 0, where ``status``
and every other command refuse the job. The page is still written from what the file holds, and
report says the damage in ``status``'s words, exit 1. A real toy job; the command as a subprocess."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from tests.jobs_helpers import run_cli, toy_job_args, write_manifest


@pytest.fixture(scope="module")
def job(tmp_path_factory) -> Path:
    """A COMPLETED toy job ``out/j`` over 4 lines."""
    root = tmp_path_factory.mktemp("report-damaged")
    r = run_cli(*toy_job_args(write_manifest(root / "a.manifest", 4, bad_every=0), root / "out"))
    assert r.returncode == 0, r.stderr
    return root / "out" / "j"


def _null_input(data: dict) -> None:
    data["input"] = None


def _no_input(data: dict) -> None:
    del data["input"]


def _unknown_status(data: dict) -> None:
    data["status"] = "DONE"


def _metrics_not_numbers(data: dict) -> None:
    data["metrics"] = {"total": "4"}


@pytest.mark.parametrize(("damage", "problem"), [
    (_null_input, "input is null, not an object"),
    (_no_input, "input is missing"),
    (_unknown_status, "status 'DONE' is none of"),
    (_metrics_not_numbers, "metrics is not an object of integers"),
])
def test_report_writes_its_page_and_says_the_damage(job: Path, tmp_path: Path, damage: Callable[[dict], None],
                                                    problem: str) -> None:
    folder = tmp_path / "out" / "j"
    shutil.copytree(job, folder)
    data = orjson.loads((folder / "job.json").read_bytes())
    damage(data)
    (folder / "job.json").write_bytes(orjson.dumps(data))
    status = run_cli("status", str(folder))
    assert status.returncode == 1 and problem in status.stderr, status.stderr  # the loader's own words
    page = tmp_path / "page.html"
    r = run_cli("report", str(folder), "-o", str(page), "--samples", "0")
    assert r.returncode == 1, (r.stdout, r.stderr)
    (said,) = r.stderr.splitlines()
    assert said.startswith(f"totask-manifest report: error: {folder / 'job.json'} is damaged ({problem}"), said
    assert said.endswith("; the page shows what it holds"), said
    assert page.exists() and "<h2>Progress</h2>" in page.read_text()


def test_a_job_json_that_is_no_object_is_said_too(job: Path, tmp_path: Path) -> None:
    folder = tmp_path / "out" / "j"
    shutil.copytree(job, folder)
    (folder / "job.json").write_bytes(b"[]")
    r = run_cli("report", str(folder), "-o", str(tmp_path / "page.html"), "--samples", "0")
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert r.stderr == (f"totask-manifest report: error: {folder / 'job.json'} is not a totask-manifest job.json "
                        "(no 'config' key); the page was written without it\n"), r.stderr
    assert (tmp_path / "page.html").exists()


def test_a_sound_job_json_is_no_error(job: Path, tmp_path: Path) -> None:
    r = run_cli("report", str(job), "-o", str(tmp_path / "page.html"), "--samples", "0")
    assert r.returncode == 0 and r.stderr == "", r.stderr
