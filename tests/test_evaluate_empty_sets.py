"""A multi-label line where neither side chose a class is a line both got right, not one to skip.

A multi-label model (``--method inference``, ``image-classification-multilabel``) writes ``[]``
for an image where no class reaches the threshold, and a person confirming "none of these" writes
the same. `evaluate` left every such line out ("not comparable: predicted is multi, reference is
multi"), so the exact-set accuracy and each class's true negatives were computed without the lines
the model got right by choosing nothing.
"""

from __future__ import annotations

from pathlib import Path

import orjson

from tests.jobs_helpers import run_cli
from totask_manifest._analytics.evaluate import evaluate_manifest

NAMES = {0: "cat", 1: "dog"}


def _label(ids: list[int], human: str) -> tuple[list[int], dict]:
    return ids, {"class-map": {str(i): NAMES[i] for i in ids}, "confidence-map": {str(i): 0.9 for i in ids},
                 "type": "groundtruth/image-classification-multilabel", "human-annotated": human,
                 "job-name": "labeling-job/x", "creation-date": "2026-01-01T00:00:00.000000"}


def _manifest(path: Path, rows: list[tuple[list[int], list[int]]]) -> Path:
    out = []
    for i, (p, r) in enumerate(rows):
        pv, pm = _label(p, "no")
        rv, rm = _label(r, "yes")
        out.append(orjson.dumps({"source-ref": f"s3://b/{i}.jpg", "m": pv, "m-metadata": pm, "h": rv, "h-metadata": rm}))
    path.write_bytes(b"\n".join(out) + b"\n")
    return path


def test_both_sides_choosing_no_class_count_as_a_correct_line(tmp_path: Path) -> None:
    path = _manifest(tmp_path / "ml.manifest", [([0], [0]), ([], []), ([], []), ([1], [0])])
    ev = evaluate_manifest(str(path), predicted="m", reference="h")
    assert ev.evaluated == 4 and ev.not_evaluated == 0
    c = ev.classification_multilabel
    assert c["lines"] == 4 and c["correct"] == 3 and c["accuracy"] == 0.75
    per = {r["class"]: r for r in c["per_class"]}
    assert per["cat"]["true_negatives"] == 2 and per["dog"]["true_negatives"] == 3


def test_a_job_scored_against_itself_is_perfect_with_empty_sets_among_its_lines(tmp_path: Path) -> None:
    path = _manifest(tmp_path / "ml.manifest", [([0, 1], [0, 1]), ([], []), ([1], [1])])
    done = run_cli("evaluate", str(path), "--predicted", "m", "--reference", "h", "--format", "json")
    assert done.returncode == 0, done.stderr
    out = orjson.loads(done.stdout)
    assert "not comparable" not in done.stdout
    assert out["lines"]["evaluated"] == 3 and out["lines"]["not_evaluated"] == 0
    assert out["classification_multilabel"]["accuracy"] == 1.0 and out["classification_multilabel"]["lines"] == 3
