"""``evaluate`` of a job that combined ``--append`` manifests reads the output in one process (a
line's folder goes by its number in the whole file, which a worker's range does not know), and
dropped ``--workers N`` to it without a word. It now says so, in one line on stderr, and evaluates
as before. The job is real (the toy annotator); the command runs as a subprocess."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from tests.jobs_helpers import run_cli, toy_job_args

NOTE = ("note: --workers 2 not taken: the job's --append manifests' lines resolve against their own folders by "
        "their number in the whole file, which only one process reading it all knows; evaluated in this process")


def _manifest(path: Path, n: int, first: int) -> Path:
    """``n`` lines, each with a reviewed label under ``ref``."""
    meta = {"class-name": "cat", "type": "groundtruth/image-classification", "human-annotated": "yes",
            "job-name": "labeling-job/h", "creation-date": "2020-01-01T00:00:00.000000"}
    path.write_bytes(b"".join(orjson.dumps({"source-ref": f"s3://b/{first + i}.jpg", "ref": 1, "ref-metadata": meta})
                              + b"\n" for i in range(n)))
    return path


@pytest.fixture(scope="module")
def jobs(tmp_path_factory) -> tuple[Path, Path]:
    """The same 7 lines labeled by two toy jobs: ``appended`` (4 lines, 3 ``--append``-ed), ``whole``."""
    root = tmp_path_factory.mktemp("evaluate-append-workers")
    a, b = _manifest(root / "a.manifest", 4, 0), _manifest(root / "b.manifest", 3, 4)
    (root / "all.manifest").write_bytes(a.read_bytes() + b.read_bytes())
    for job, extra in (("appended", [str(a), "--append", str(b)]), ("whole", [str(root / "all.manifest")])):
        r = run_cli(*toy_job_args(extra[0], root / "out", *extra[1:], job=job))
        assert r.returncode == 0, r.stderr
    return root / "out" / "appended", root / "out" / "whole"


def _evaluate(job: Path, *workers: str):
    return run_cli("evaluate", str(job), "--predicted", "cls", "--reference", "ref", "--format", "json", *workers)


def test_workers_not_taken_is_said(jobs):
    appended = jobs[0]
    r = _evaluate(appended, "--workers", "2")
    assert r.returncode == 0, r.stderr
    assert r.stderr.splitlines() == [NOTE]
    alone = _evaluate(appended)  # the figures one process finds, unasked
    assert alone.returncode == 0 and orjson.loads(r.stdout) == orjson.loads(alone.stdout)
    assert b'"evaluated":7' in orjson.dumps(orjson.loads(r.stdout))


@pytest.mark.parametrize("workers", [(), ("--workers", "1")])
def test_nothing_is_said_where_nothing_was_asked(jobs, workers):
    r = _evaluate(jobs[0], *workers)
    assert r.returncode == 0 and r.stderr == "", r.stderr


def test_a_job_without_append_takes_its_workers_silently(jobs):
    r = _evaluate(jobs[1], "--workers", "2")
    assert r.returncode == 0 and r.stderr == "", r.stderr
