"""The report's evaluation section on a real chained review job, checked in headless Chromium."""

from __future__ import annotations

import base64
import io
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.evaluate_helpers import make_review_chain
from tests.support.browser import CHROMIUM, chromium
from totask_manifest._analytics.report import render_report, write_report
from totask_manifest._analytics.report_page import MARKER

MACHINE = [[("cat", 20, 20, 60, 60, 0.95), ("dog", 120, 120, 50, 50, 0.3)],
           [("dog", 30, 30, 80, 80, 0.85)],
           [("cat", 10, 100, 70, 70, 0.55), ("cat", 110, 10, 60, 60, 0.45)],
           [("dog", 40, 40, 90, 90, 0.9)],
           [("cat", 60, 60, 50, 50, 0.25)],
           [("dog", 20, 120, 60, 60, 0.75), ("cat", 120, 20, 60, 60, 0.65)]]
REVIEW = [[("cat", 20, 20, 60, 60)],
          [("dog", 32, 30, 80, 80)],
          [("cat", 10, 100, 70, 70), ("dog", 110, 10, 60, 60)],
          [("dog", 40, 40, 90, 90)],
          [("dog", 60, 60, 50, 50), ("cat", 140, 140, 40, 40)],
          [("dog", 20, 120, 60, 60), ("cat", 120, 20, 60, 60)]]


@pytest.fixture(scope="module")
def review_job(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_review_chain(tmp_path_factory.mktemp("ev"), MACHINE, REVIEW, images=True)


@pytest.mark.slow
def test_section_appears_for_a_chained_job_and_draws_both_sides(review_job: Path) -> None:
    html, _, _ = render_report(str(review_job), samples=6)
    assert "Evaluation: boxes against review" in html and "job lineage" in html
    for label in ("precision-recall curve", "review threshold sweep (lines)", "review threshold sweep (boxes)",
                  "per-class ap50, precision, recall"):
        assert f'aria-label="{label}"' in html, label
    assert "Worst images" in html
    # the worst line is line 5 (a cat called dog, a cat missed: 3 errors); its thumbnail shows both colours
    tiles = re.findall(r'<img src="data:image/jpeg;base64,([^"]+)" alt="line (\d+): (\d+) error', html)
    assert tiles and tiles[0][1:] == ("5", "3")
    img = np.asarray(Image.open(io.BytesIO(base64.b64decode(tiles[0][0]))).convert("RGB")).reshape(-1, 3).astype(int)
    assert (np.abs(img - [0x3C, 0xA9, 0x51]).sum(axis=1) < 60).sum() > 30  # reference boxes, green
    assert (np.abs(img - [0xFF, 0x72, 0x5C]).sum(axis=1) < 60).sum() > 30  # predicted boxes, red


@pytest.mark.slow  # the review_job fixture runs two jobs
def test_no_section_without_a_reference(review_job: Path) -> None:
    html, _, _ = render_report(str(review_job.parent / "model"), samples=0)  # not chained: nothing to compare
    assert "Evaluation:" not in html



@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (apt-get install -y chromium)")
def test_evaluation_section_renders_in_headlesschromium(review_job: Path, tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    write_report(str(review_job), str(page), samples=6)
    # the evaluation section first on the page, so the screenshot shows it
    html = page.read_text()
    start = html.index("<h2>Evaluation")
    end = html.index("<h2>Failures")
    body = html.index("<body>") + len("<body>")
    page.write_text(html[:body] + html[start:end] + html[body:start] + html[end:])
    url = page.resolve().as_uri()
    dom = chromium(["--dump-dom", url], tmp_path / "p1")
    assert f'id="{MARKER}"' in dom.stdout, dom.stderr[-2000:]
    assert "Uncaught" not in dom.stderr
    shot = tmp_path / "shot.png"
    run = chromium([f"--screenshot={shot}", "--window-size=1300,1500", url], tmp_path / "p2")
    assert shot.exists(), run.stderr[-2000:]
    if os.environ.get("EVALUATE_SCREENSHOT"):  # to look at it: EVALUATE_SCREENSHOT=/tmp/shot.png pytest ...
        shutil.copy(shot, os.environ["EVALUATE_SCREENSHOT"])
    arr = np.asarray(Image.open(shot).convert("RGB")).reshape(-1, 3).astype(int)
    assert (np.abs(arr - [0x42, 0x69, 0xD0]).sum(axis=1) < 30).sum() > 300  # bars and the PR curve
    assert (np.abs(arr - [0xD6, 0x45, 0x45]).sum(axis=1) < 40).sum() > 100  # the errors-caught curve
    assert (np.abs(arr - [250, 200, 40]).sum(axis=1) < 60).sum() > 200  # the thumbnails' yellow cats


def test_classification_section_has_the_confusion_matrix(tmp_path: Path) -> None:
    """Single-label lines: accuracy card, per-class bars, the confusion matrix as a table."""
    import orjson

    from totask_manifest._analytics.evaluate import evaluate_manifest
    from totask_manifest._analytics.evaluate.html import render_evaluation

    def side(name: str, human: str, conf: float) -> dict:
        return {"class-name": name, "confidence": conf, "type": "groundtruth/image-classification",
                "human-annotated": human, "job-name": "labeling-job/x", "creation-date": "2026-01-01T00:00:00.000000"}

    rows = [("cat", "cat", 0.9), ("cat", "dog", 0.4), ("dog", "dog", 0.8), ("dog", "dog", 0.7)]
    path = tmp_path / "c.manifest"
    path.write_bytes(b"".join(orjson.dumps({"source-ref": f"s3://b/{i}", "m": 0, "m-metadata": side(p, "no", c),
                                            "h": 0, "h-metadata": side(r, "yes", 1.0)}) + b"\n"
                              for i, (r, p, c) in enumerate(rows)))
    html = render_evaluation(evaluate_manifest(str(path)))
    assert "<b>0.750</b><span>accuracy</span>" in html
    assert 'aria-label="per-class precision, recall"' in html and 'aria-label="review threshold sweep (lines)"' in html
    cells = re.findall(r"<tr><th>(\w+)</th>(.*?)</tr>", html.split('<table class="cm">')[1])
    assert [(name, re.findall(r">(\d+)</td>", row)) for name, row in cells] == [("cat", ["1", "1"]), ("dog", ["2"])]
