"""A job chained with another task type (a classifier chained from a detector) is no review.

Its lineage gave ``evaluate`` the detector's boxes against the classifier's classes: every line
"not comparable" (the kind cut short, ``reference is multi``), ``evaluate JOB`` exit 1 "nothing
evaluated", and ``report`` an Evaluation section of 0 lines. Real jobs, real subprocesses.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import orjson
import pytest

from tests.evaluate_helpers import make_review_chain
from tests.jobs_helpers import TOY, run_cli
from tests.support.browser import CHROMIUM, chromium

BOXES = [[("cat", 20, 20, 60, 60, 0.9)], [("dog", 30, 30, 80, 80, 0.8)]]


@pytest.fixture(scope="module")
def classifier_job(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A toy image classifier (attribute ``cls``) chained from a real object-detection job."""
    review = make_review_chain(tmp_path_factory.mktemp("other"), BOXES, BOXES, images=True)
    chained = run_cli("chain", str(review.parent / "model"), "--job-name", "cls", "--label-attribute", "cls",
                      "--task-type", "image-classification", "--method", TOY)
    assert chained.returncode == 0, chained.stderr
    return review.parent / "cls"


@pytest.mark.slow  # the fixture runs three jobs
def test_evaluate_of_a_job_chained_with_another_task_type_says_it_has_no_reference(classifier_job: Path) -> None:
    r = run_cli("evaluate", str(classifier_job))
    # 2, as evaluate gives every job whose pair of attributes it cannot tell (was 1: "nothing evaluated")
    assert r.returncode == 2, r.stderr
    assert r.stdout == "" and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    assert r.stderr.startswith(f"totask-manifest evaluate: error: job {classifier_job} has no reference to compare "
                               "with: it was chained from job 'model', whose attribute 'boxes' is object-detection, "
                               "not image-classification ("), r.stderr
    assert "give --predicted and --reference" in r.stderr


@pytest.mark.slow
def test_the_review_chained_with_the_same_task_type_is_still_evaluated(classifier_job: Path) -> None:
    r = run_cli("evaluate", str(classifier_job.parent / "review"), "--format", "json")
    assert r.returncode == 0, r.stderr
    got = orjson.loads(r.stdout)
    assert (got["predicted"], got["reference"]) == ("boxes", "review") and got["lines"]["evaluated"] == 2


@pytest.mark.slow
def test_the_lines_not_compared_name_both_kinds_in_full(classifier_job: Path) -> None:
    r = run_cli("evaluate", str(classifier_job), "--predicted", "boxes", "--reference", "cls", "--format", "json")
    assert r.returncode == 1 and "nothing evaluated" in r.stderr, r.stderr
    example = orjson.loads(r.stdout)["lines"]["examples"][0]
    assert example["reason"] == "predicted is object detection, reference is single-label classification"


def test_a_multilabel_side_is_named_in_full(tmp_path: Path) -> None:
    """The tester's case: boxes against a multi-label set said ``reference is multi``."""
    common = {"human-annotated": "no", "job-name": "labeling-job/x", "creation-date": "2026-01-01T00:00:00.000000"}
    line = {"source-ref": "s3://b/0.jpg",
            "boxes": {"annotations": [{"class_id": 0, "left": 1, "top": 1, "width": 5, "height": 5}],
                      "image_size": [{"width": 10, "height": 10, "depth": 3}]},
            "boxes-metadata": {"objects": [{"confidence": 0.9}], "class-map": {"0": "cat"},
                               "type": "groundtruth/object-detection", **common},
            "tags": [0], "tags-metadata": {"class-map": {"0": "cat"}, "confidence-map": {"0": 0.9},
                                           "type": "groundtruth/image-classification-multilabel", **common}}
    manifest = tmp_path / "in.manifest"
    manifest.write_bytes(orjson.dumps(line) + b"\n")
    r = run_cli("evaluate", str(manifest), "--predicted", "boxes", "--reference", "tags")
    assert r.returncode == 1, r.stderr
    assert "e.g. line 1 (both, not comparable): predicted is object detection, reference is multi-label " \
           "classification\n" in r.stdout, r.stdout


@pytest.mark.slow
def test_the_report_leaves_the_evaluation_section_out(classifier_job: Path, tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    r = run_cli("report", str(classifier_job), "-o", str(page))
    assert r.returncode == 0, r.stderr
    html = page.read_text()
    assert "Evaluation" not in html and "not comparable" not in html
    assert "Labels per class" in html  # the rest of the page is there


@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (apt-get install -y chromium)")
def test_the_report_without_the_section_renders_in_headless_chromium(classifier_job: Path, tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    assert run_cli("report", str(classifier_job), "-o", str(page)).returncode == 0
    dom = chromium(["--dump-dom", page.resolve().as_uri()], tmp_path / "p1")
    assert "Evaluation" not in dom.stdout and "<h2>Failures" in dom.stdout, dom.stderr[-2000:]
    shot = tmp_path / "shot.png"
    chromium([f"--screenshot={shot}", "--window-size=1300,1500", page.resolve().as_uri()], tmp_path / "p2")
    assert shot.exists() and shot.stat().st_size > 10_000
    if os.environ.get("KEEP_REPORT_SHOT"):  # a person looks at it: copied where they asked
        shutil.copy(shot, os.environ["KEEP_REPORT_SHOT"])
