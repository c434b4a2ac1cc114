"""``clone`` of a job whose input manifest changed since the job read it (its checksum is in
``job.json``) says so, in one line, and goes on with the manifest as it is now. Before, it said
nothing: a clone meant to repeat a job labeled other data without a word."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.jobs_helpers import TOY, run_cli, write_manifest

pytestmark = pytest.mark.slow

CHANGED = "changed since job 'a' read it"


def _job(tmp_path: Path, *extra: str) -> Path:
    inp = write_manifest(tmp_path / "in.manifest", 6, bad_every=0)
    r = run_cli("annotate", str(inp), "--job-name", "a", "--label-attribute", "cls", "--task-type",
                "image-classification", "--method", TOY, "--output", str(tmp_path / "out"), *extra)
    assert r.returncode == 0, r.stderr
    return tmp_path / "out" / "a"


def test_a_clone_of_an_unchanged_input_says_nothing_of_it(tmp_path: Path) -> None:
    r = run_cli("clone", str(_job(tmp_path)), "--job-name", "b")
    assert r.returncode == 0, r.stderr
    assert "checksum differs" not in r.stderr, r.stderr


def test_a_clone_of_a_changed_input_says_so_once_and_goes_on(tmp_path: Path) -> None:
    job = _job(tmp_path)
    with (tmp_path / "in.manifest").open("ab") as f:
        f.write(b'{"source-ref":"s3://bucket/images/new.jpg"}\n')
    r = run_cli("clone", str(job), "--job-name", "b")
    assert r.returncode == 0, r.stderr
    said = [line for line in r.stderr.splitlines() if CHANGED in line]
    assert said == [f"the input manifest {tmp_path / 'in.manifest'} {CHANGED} (its checksum differs from the one "
                     f"in {job / 'job.json'}); the clone labels it as it is now"], r.stderr
    assert "metrics: total=7 success=7" in r.stdout


def test_a_changed_append_manifest_is_said_too(tmp_path: Path) -> None:
    more = tmp_path / "more.manifest"
    more.write_bytes(b'{"source-ref":"s3://bucket/images/more.jpg"}\n')
    job = _job(tmp_path, "--append", str(more))
    more.write_bytes(b'{"source-ref":"s3://bucket/images/other.jpg"}\n')
    r = run_cli("clone", str(job), "--job-name", "b")
    assert r.returncode == 0, r.stderr
    assert f"(with its --append manifests) {CHANGED}" in r.stderr, r.stderr
