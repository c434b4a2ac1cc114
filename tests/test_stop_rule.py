"""A job stopped on a configuration rule records the rule in job.json (``stop-rule``), and
``apply``'s advice for a rule one of the job's own options fixes reads it there, not from the
error's words; a job.json an older version wrote, without the key, is read by those words."""

from __future__ import annotations

import shutil
from pathlib import Path

import orjson

from tests.jobs_helpers import run_cli

SAMPLE = Path(__file__).resolve().parents[1] / "sample_data"


def _stopped_job(tmp_path: Path) -> Path:
    """The quick start's job without --allow-root: it stops on ``allow-root-missing``."""
    data = tmp_path / "data"
    shutil.copytree(SAMPLE, data, ignore=shutil.ignore_patterns("models", "*.py"))
    r = run_cli("annotate", str(data / "manifest.jsonl"), "--job-name", "m1", "--task-type", "object-detection",
                "--method", "file", "--url-key", "annotation-ref", "--output", str(tmp_path / "out"), cwd=tmp_path)
    assert r.returncode == 1 and "allow-root-missing" in r.stderr, r.stderr
    return tmp_path / "out" / "m1"


def _rewrite(job: Path, **changes: object) -> None:
    """job.json with ``changes`` (a value None: the key taken out, as an older version wrote it)."""
    data = orjson.loads((job / "job.json").read_bytes())
    for key, value in changes.items():
        if value is None:
            del data[key]
        else:
            data[key] = value
    (job / "job.json").write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2))


def _advice(job: Path, cwd: Path) -> str:
    r = run_cli("apply", str(job), "--dry-run", cwd=cwd)
    assert r.returncode == 1 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    return r.stderr.strip()


CHAIN = "label them in a job chained from this one with it given (totask-manifest chain {job} --job-name NEW --allow-root DIR)"


def test_the_stop_rule_is_recorded_and_read_rather_than_the_errors_words(tmp_path: Path) -> None:
    job = _stopped_job(tmp_path)
    data = orjson.loads((job / "job.json").read_bytes())
    assert data["status"] == "FAILED" and data["stop-rule"] == "allow-root-missing"
    # words that no longer name the rule as the stop wrote it: the recorded rule still says the way on
    _rewrite(job, error="each of the first 3 line(s) failed (reworded)")
    assert _advice(job, tmp_path).endswith(CHAIN.format(job=job))


def test_a_recorded_absence_of_a_stop_is_not_overruled_by_the_errors_words(tmp_path: Path) -> None:
    job = _stopped_job(tmp_path)
    data = orjson.loads((job / "job.json").read_bytes())
    data["stop-rule"] = None  # written by this version where the run stopped on no rule
    (job / "job.json").write_bytes(orjson.dumps(data))
    advice = _advice(job, tmp_path)
    assert "chain" not in advice.rpartition("):")[2] and "resume it" in advice


def test_an_older_job_json_without_the_key_is_read_by_its_errors_words(tmp_path: Path) -> None:
    job = _stopped_job(tmp_path)
    _rewrite(job, **{"stop-rule": None})
    assert _advice(job, tmp_path).endswith(CHAIN.format(job=job))


def test_a_one_line_job_stopped_so_says_it_and_status_says_the_same(tmp_path: Path) -> None:
    """The quick start's job on its first line only: the stop read "the 1 line ... label them ...
    records them failed", on stderr and in ``status``, which shows job.json's error."""
    data = tmp_path / "data"
    shutil.copytree(SAMPLE, data, ignore=shutil.ignore_patterns("models", "*.py"))
    one = tmp_path / "one.manifest"
    one.write_bytes((data / "manifest.jsonl").read_bytes().splitlines(keepends=True)[0])
    r = run_cli("annotate", str(one), "--job-name", "m1", "--task-type", "object-detection", "--method", "file",
                "--url-key", "annotation-ref", "--output", str(tmp_path / "out"), cwd=data)
    assert r.returncode == 1, r.stderr
    status = run_cli("status", str(tmp_path / "out" / "m1"), cwd=tmp_path)
    for said in (r.stderr, status.stdout):
        assert "the 1 line this run tried failed with 'allow-root-missing'" in said, said
        assert "label it in a job chained from this one" in said and "records it failed and goes on" in said, said
        assert " them" not in said.partition("the 1 line")[2], said
