"""A label holding a NaN or an infinity is named as such (``label-not-json``), not as the ``null``
the schema check reads it as; a label file or a manifest line holding one (what Python's
``json.dumps`` writes by default) is named as such too, not as orjson's "unexpected character"."""

from __future__ import annotations

import json
import math
from pathlib import Path

import orjson
import pytest

from tests.jobs_helpers import run_cli, write_manifest
from totask_manifest import BatchAnnotator, JobConfig, Labeled, annotate
from totask_manifest.testing.builders import png_bytes


class NotANumber(BatchAnnotator):
    """A classification whose confidence is NaN, and a box label with an infinite width."""

    def annotate_batch(self, items):
        if self.context.task_type == "object-detection":
            box = {"class_id": 0, "left": 1, "top": 1, "width": math.inf, "height": 2}
            return [Labeled({"image_size": [{"width": 9, "height": 9, "depth": 3}], "annotations": [box]},
                            {"class-map": {"0": "cat"}, "objects": [{"confidence": 0.5}]}) for _ in items]
        return [Labeled(1, {"class-name": "cat", "confidence": math.nan}) for _ in items]


def test_a_nan_or_infinite_label_value_is_named_not_called_null(tmp_path: Path) -> None:
    src = write_manifest(tmp_path / "in.manifest", 2, bad_every=0)
    for task_type, says in (("image-classification", "metadata.confidence=nan"),
                            ("object-detection", "annotations[0].width=inf")):
        result = annotate(JobConfig(job_name=task_type, input=str(src), output_root=str(tmp_path / "out"),
                                    label_attribute="cls", task_type=task_type,
                                    method=f"{__name__}:NotANumber"))
        assert result.status == "FAILED"
        failures = [orjson.loads(x) for x in Path(result.failures_url).read_bytes().splitlines()]
        assert {f["rule"] for f in failures} == {"label-not-json"}, failures
        assert all(says in f["reason"] and "not a number JSON can hold" in f["reason"]
                   and "null" not in f["reason"] for f in failures), failures


BOX = {"class_id": 0, "left": 1, "top": 1, "width": 2, "height": 2}
SAID = "is not JSON (Python's json.dumps writes it for a float that is no number: pass allow_nan=False)"


@pytest.mark.parametrize(("value", "word"), [(math.nan, "NaN"), (math.inf, "Infinity"), (-math.inf, "-Infinity")])
def test_a_label_file_holding_nan_fails_its_line_saying_so(tmp_path: Path, value: float, word: str) -> None:
    doc = {"label": {"image_size": [{"width": 9, "height": 9, "depth": 3}], "annotations": [BOX]},
           "metadata": {"class-map": {"0": "cat"}, "objects": [{"confidence": value}]}}
    (tmp_path / "a.json").write_text(json.dumps(doc))  # allow_nan=True, json's default
    (tmp_path / "m.jsonl").write_text(json.dumps({"source-ref": "s3://b/a.jpg", "annotation-ref": "a.json"}) + "\n")
    r = run_cli("annotate", str(tmp_path / "m.jsonl"), "--job-name", "j", "--label-attribute", "boxes",
                "--task-type", "object-detection", "--method", "file", "--url-key", "annotation-ref",
                "--allow-root", str(tmp_path), "--output", str(tmp_path / "out"))
    assert r.returncode == 1, r.stderr
    [failure] = [orjson.loads(x) for x in (tmp_path / "out" / "j" / "failures.jsonl").read_bytes().splitlines()]
    assert failure["rule"] == "not-json", failure
    column = json.dumps(doc).index(word) + 1
    assert f"is not valid JSON ({word} {SAID}: line 1 column {column})" in failure["reason"], failure


def test_validate_names_nan_in_a_manifest_line(tmp_path: Path) -> None:
    meta = {"class-name": "cat", "confidence": math.nan, "type": "groundtruth/image-classification",
            "human-annotated": "no", "creation-date": "2024-01-01T00:00:00.000000", "job-name": "labeling-job/j"}
    text = json.dumps({"source-ref": "s3://b/a.jpg", "c": 0, "c-metadata": meta})
    (tmp_path / "m.manifest").write_text(text + "\n")
    r = run_cli("validate", str(tmp_path / "m.manifest"))
    assert r.returncode == 1
    column = text.index("NaN") + 1
    assert (f"line 1: error: line is not a single JSON object: NaN {SAID}: line 1 column {column} [line-json]"
            in r.stdout + r.stderr), r.stdout + r.stderr


@pytest.mark.parametrize(("rows", "token"), [("0 nan 0.5 0.1 0.1", "nan"), ("0 0.5 0.5 inf 0.1", "inf"),
                                             ("0 0.5 0.5 0.1 0.1\n0 0.5 -Infinity 0.1 0.1", "-Infinity"),
                                             ("0 0.5 0.5 0.1 0.1 NaN", "NaN")])
@pytest.mark.parametrize("input_format", ["auto", "yolo"])
def test_a_yolo_file_holding_nan_is_read_as_yolo_and_fails_saying_so(tmp_path: Path, rows: str, token: str,
                                                                      input_format: str) -> None:
    """Auto-detection took a YOLO row holding ``nan`` or ``inf`` for no YOLO row and failed the line
    as ``not-json`` ("unexpected content after document"): the YOLO reader's own words now, as
    with ``--input-format yolo``. A JSON file holding NaN stays JSON (the test above)."""
    (tmp_path / "a.txt").write_text(rows + "\n")
    (tmp_path / "a.png").write_bytes(png_bytes(64, 48))
    (tmp_path / "names.txt").write_text("cat\n")
    (tmp_path / "m.jsonl").write_text(json.dumps({"source-ref": "a.png", "annotation-ref": "a.txt"}) + "\n")
    r = run_cli("annotate", str(tmp_path / "m.jsonl"), "--job-name", "j", "--label-attribute", "boxes",
                "--task-type", "object-detection", "--method", "file", "--url-key", "annotation-ref",
                "--input-format", input_format, "--class-names", str(tmp_path / "names.txt"),
                "--allow-root", str(tmp_path), "--output", str(tmp_path / "out"))
    assert r.returncode == 1, r.stderr
    [failure] = [orjson.loads(x) for x in (tmp_path / "out" / "j" / "failures.jsonl").read_bytes().splitlines()]
    assert failure["rule"] == "format-invalid" and "[format-yolo]" in failure["reason"], failure
    assert f"{token!r} is not a finite number" in failure["reason"] and "JSON" not in failure["reason"], failure
