"""``evaluate`` of a job that combined ``--append`` manifests reads the output in one process (a
line's folder goes by its number in the whole file, which a worker's range does not know), and
dropped ``--workers N`` to it without a word. It now says so, in one line on stderr, and evaluates
as before; only where the workers would have read the file (16 MiB or more: a smaller one is read
in one process anyway, as ``stats`` and ``validate`` read it, without a word). The jobs are real
(the toy annotator); the command runs as a subprocess."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from tests.jobs_helpers import run_cli, toy_job_args
from totask_manifest._manifest.ranges import MIN_RANGE_BYTES

NOTE = ("note: --workers 2 not taken: the job's --append manifests' lines resolve against their own folders by "
        "their number in the whole file, which only one process reading it all knows; evaluated in this process")


def _manifest(path: Path, n: int, first: int, pad: int = 0) -> Path:
    """``n`` lines, each with a reviewed label under ``ref`` (and ``pad`` characters beside it, in
    keys of 18,000: Ground Truth takes at most 20,000 an attribute)."""
    meta = {"class-name": "cat", "type": "groundtruth/image-classification", "human-annotated": "yes",
            "job-name": "labeling-job/h", "creation-date": "2020-01-01T00:00:00.000000"}
    extra = {f"pad{k}": "x" * 18_000 for k in range(pad // 18_000)}
    path.write_bytes(b"".join(orjson.dumps({"source-ref": f"s3://b/{first + i}.jpg", "ref": 1, "ref-metadata": meta,
                                            **extra}) + b"\n" for i in range(n)))
    return path


def _two_jobs(root: Path, first: int, then: int, pad: int = 0) -> tuple[Path, Path]:
    """The same ``first + then`` lines labeled by two toy jobs: ``appended`` (``first`` lines,
    ``then`` ``--append``-ed) and ``whole``."""
    a, b = _manifest(root / "a.manifest", first, 0, pad), _manifest(root / "b.manifest", then, first, pad)
    (root / "all.manifest").write_bytes(a.read_bytes() + b.read_bytes())
    for job, extra in (("appended", [str(a), "--append", str(b)]), ("whole", [str(root / "all.manifest")])):
        r = run_cli(*toy_job_args(extra[0], root / "out", *extra[1:], job=job))
        assert r.returncode == 0, r.stderr
    return root / "out" / "appended", root / "out" / "whole"


@pytest.fixture(scope="module")
def jobs(tmp_path_factory) -> tuple[Path, Path]:
    """7 lines (4 and 3 ``--append``-ed): a file far under the 16 MiB that workers split."""
    return _two_jobs(tmp_path_factory.mktemp("evaluate-append-workers"), 4, 3)


@pytest.fixture(scope="module")
def big_jobs(tmp_path_factory) -> tuple[Path, Path]:
    """190 lines of some 90 KB (100 and 90 ``--append``-ed): an output manifest over 16 MiB,
    which ``--workers 2`` reads in two processes unless the job combined ``--append`` manifests."""
    jobs = _two_jobs(tmp_path_factory.mktemp("evaluate-append-workers-big"), 100, 90, pad=90_000)
    assert (jobs[0] / "manifests" / "output" / "output.manifest").stat().st_size >= 2 * MIN_RANGE_BYTES
    return jobs


def _evaluate(job: Path, *workers: str):
    return run_cli("evaluate", str(job), "--predicted", "cls", "--reference", "ref", "--format", "json", *workers)


@pytest.mark.slow  # two toy jobs over 17 MB each, and three evaluate subprocesses
def test_workers_not_taken_is_said(big_jobs):
    appended = big_jobs[0]
    r = _evaluate(appended, "--workers", "2")
    assert r.returncode == 0, r.stderr
    assert r.stderr.splitlines() == [NOTE]
    alone = _evaluate(appended)  # the figures one process finds, unasked
    assert alone.returncode == 0 and orjson.loads(r.stdout) == orjson.loads(alone.stdout)
    assert b'"evaluated":190' in orjson.dumps(orjson.loads(r.stdout))
    whole = _evaluate(big_jobs[1], "--workers", "2")  # the same file without --append: split, unsaid
    assert whole.returncode == 0 and whole.stderr == "", whole.stderr


def test_a_small_file_read_in_one_process_anyway_is_not_noted(jobs):
    """7 lines: ``--workers 2`` would not have split them, as ``stats`` and ``validate`` do not."""
    r = _evaluate(jobs[0], "--workers", "2")
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert b'"evaluated":7' in orjson.dumps(orjson.loads(r.stdout))


@pytest.mark.parametrize("workers", [(), ("--workers", "1")])
def test_nothing_is_said_where_nothing_was_asked(jobs, workers):
    r = _evaluate(jobs[0], *workers)
    assert r.returncode == 0 and r.stderr == "", r.stderr


def test_a_job_without_append_takes_its_workers_silently(jobs):
    r = _evaluate(jobs[1], "--workers", "2")
    assert r.returncode == 0 and r.stderr == "", r.stderr
