"""Counts of one read as one: a job whose one selected line failed said "each of the 1 selected
line failed"; ``labeled`` of a one-line file "kept 1 of 1 lines", ``status`` of an ``--append`` job
"(1 lines: ...)", ``evaluate``'s suggested threshold "catches 1 of 1 errors". Each now says the
count with its noun (``_errors.counted``), and "each of" only of two or more."""

from __future__ import annotations

import pytest

from tests.jobs_helpers import run_cli, toy_job_args, write_manifest
from totask_manifest._analytics.evaluate.html import threshold_curve
from totask_manifest._analytics.evaluate.text import _sweep
from totask_manifest._analytics.labeled_only import labeled_only
from totask_manifest._errors import each_of
from totask_manifest._jobs.state import input_text


def test_each_of_says_the_one_thing_without_each():
    assert each_of(1, "selected line") == "the 1 selected line"
    assert each_of(2, "selected line") == "each of the 2 selected lines"
    assert each_of(3, "box", "boxes") == "each of the 3 boxes"


@pytest.mark.slow  # a CLI subprocess
def test_a_job_whose_one_line_failed_says_the_line_failed(tmp_path):
    inp = write_manifest(tmp_path / "in.manifest", 1)
    r = run_cli(*toy_job_args(inp, tmp_path / "out", "--toy-fail", "img"))
    assert r.returncode == 1, r.stderr
    assert "no line was labeled: the 1 selected line failed (see failures.jsonl)" in r.stdout
    assert "each of the" not in r.stdout + r.stderr
    status = run_cli("status", str(tmp_path / "out" / "j"))
    assert "the 1 selected line failed" in status.stdout and "each of the" not in status.stdout


def test_labeled_of_a_one_line_file_says_line(tmp_path):
    src = tmp_path / "one.manifest"
    src.write_bytes(b'{"source-ref":"s3://b/a.jpg","cls":1,"cls-metadata":{"class-name":"cat",'
                    b'"type":"groundtruth/image-classification","job-name":"labeling-job/j",'
                    b'"creation-date":"2026-01-01T00:00:00.000000"}}\n')
    result = labeled_only(str(src), str(tmp_path / "l.manifest"), "cls")
    assert "kept 1 of 1 line labeled under 'cls'" in result.summary()


@pytest.mark.parametrize("starts", [[[0, "/in"], [1, "/more"]], None])
def test_the_input_of_an_append_job_with_one_line_says_line(starts):
    """One line in all (the appended manifest's lines were duplicates), with the starts recorded
    and without them (another version's record)."""
    record = {"input": {"url": "/in.manifest", "read": "/job/input.manifest", "lines": 1},
              "config": {"append": ["/more.manifest"], "options": {"relative_to_appended": starts}}}
    text = input_text(record)
    assert "(1 line: " in text and "lines" not in text


def _one_error_sweep() -> dict:
    rows = [{"threshold": t / 100, "routed": 1 if t > 50 else 0, "errors_caught": 1 if t > 50 else 0}
            for t in range(101)]
    return {"unit": "box", "items": 4, "errors": 1, "share": 0.9, "thresholds": rows,
            "without_confidence": {"items": 0, "errors": 0},
            "suggested": {"threshold": 0.51, "routed": 1, "errors_caught": 1}}


def test_the_suggested_threshold_of_one_error_says_error():
    text = "\n".join(_sweep("box", _one_error_sweep()))
    assert "catches 1 of 1 error (target 90%)" in text
    assert "catches 1 of 1 error<" in threshold_curve(_one_error_sweep()) + "<"
