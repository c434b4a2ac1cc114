"""A label file that is a whole Ground Truth manifest line holding two labels of the task type
(a chained adjustment job's line): the file method's ``--file-label-attribute`` names the one to
take, job.json keeps it for clone, chain and resume, and without it the line's failure names the
flag (``label_attribute``, the Python keyword it named before, is no flag). Real files, the real CLI."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest

from tests.jobs_helpers import output_of, run_cli

FIRST = {"class_id": 0, "left": 1, "top": 2, "width": 3, "height": 4}
ADJUSTED = {"class_id": 0, "left": 5, "top": 6, "width": 7, "height": 8}


def _attr(box: dict) -> tuple[dict, dict]:
    value = {"image_size": [{"width": 100, "height": 100, "depth": 3}], "annotations": [box]}
    meta = {"objects": [{"confidence": 0.9}], "class-map": {"0": "cat"}, "type": "groundtruth/object-detection",
            "human-annotated": "yes", "creation-date": "2024-01-01T00:00:00.000000", "job-name": "labeling-job/x"}
    return value, meta


def _chained_line_set_up(folder: Path) -> Path:
    """A manifest whose one line names a label file holding ``boxes`` and ``boxes-chain``."""
    (value, meta), (adjusted, adjusted_meta) = _attr(FIRST), _attr(ADJUSTED)
    doc = {"source-ref": "s3://b/a.jpg", "boxes": value, "boxes-metadata": meta,
           "boxes-chain": adjusted, "boxes-chain-metadata": adjusted_meta}
    (folder / "a.json").write_text(json.dumps(doc))
    manifest = folder / "m.jsonl"
    manifest.write_text(json.dumps({"source-ref": "s3://b/a.jpg", "annotation-ref": "a.json"}) + "\n")
    return manifest


def _annotate(folder: Path, manifest: Path, job: str, *flags: str):
    return run_cli("annotate", str(manifest), "--job-name", job, "--label-attribute", "pre",
                   "--task-type", "object-detection", "--method", "file", "--url-key", "annotation-ref",
                   "--allow-root", str(folder), "--output", str(folder / "out"), *flags)


def _label(folder: Path, job: str, attribute: str = "pre") -> dict:
    (line,) = output_of(folder / "out", job).read_bytes().splitlines()
    return orjson.loads(line)[attribute]


def test_without_the_flag_the_failure_names_it(tmp_path: Path) -> None:
    proc = _annotate(tmp_path, _chained_line_set_up(tmp_path), "plain")
    (reason,) = [line for line in proc.stderr.splitlines() if "failed:" in line]
    assert "several object-detection labels (boxes, boxes-chain)" in reason
    assert "--file-label-attribute NAME" in reason
    assert "name one with label_attribute" not in reason


def test_the_named_label_is_taken_and_clone_and_chain_keep_the_choice(tmp_path: Path) -> None:
    manifest = _chained_line_set_up(tmp_path)
    proc = _annotate(tmp_path, manifest, "adjusted", "--file-label-attribute", "boxes-chain")
    assert proc.returncode == 0, proc.stderr
    assert _label(tmp_path, "adjusted")["annotations"] == [ADJUSTED]
    options = json.loads((tmp_path / "out" / "adjusted" / "job.json").read_text())["config"]["options"]
    assert options["file_label_attribute"] == "boxes-chain"

    proc = run_cli("clone", str(tmp_path / "out" / "adjusted"), "--job-name", "cloned")
    assert proc.returncode == 0, proc.stderr
    assert _label(tmp_path, "cloned")["annotations"] == [ADJUSTED]

    proc = run_cli("chain", str(tmp_path / "out" / "adjusted"), "--job-name", "chained", "--label-attribute", "again")
    assert proc.returncode == 0, proc.stderr
    assert _label(tmp_path, "chained", "again")["annotations"] == [ADJUSTED]

    proc = _annotate(tmp_path, manifest, "first", "--file-label-attribute", "boxes")
    assert proc.returncode == 0, proc.stderr
    assert _label(tmp_path, "first")["annotations"] == [FIRST]


def test_a_format_that_holds_no_label_attributes_refuses_the_flag(tmp_path: Path) -> None:
    proc = _annotate(tmp_path, _chained_line_set_up(tmp_path), "coco", "--file-label-attribute", "boxes",
                     "--input-format", "coco")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == (
        "totask-manifest annotate: error: --file-label-attribute names a label of a Ground Truth manifest line; "
        "--input-format coco files hold none")
    assert not (tmp_path / "out" / "coco").exists()


def _failed_line_set_up(folder: Path, doc: dict) -> Path:
    """A manifest whose one line names a label file holding ``doc``."""
    (folder / "a.json").write_text(json.dumps(doc))
    manifest = folder / "m.jsonl"
    manifest.write_text(json.dumps({"source-ref": "s3://b/a.jpg", "annotation-ref": "a.json"}) + "\n")
    return manifest


def _failed(meta: dict) -> dict:
    return {**meta, "failure-reason": "worker timed out"}


def _failure_of(folder: Path, job: str) -> str:
    (line,) = (folder / "out" / job / "failures.jsonl").read_bytes().splitlines()
    return orjson.dumps(orjson.loads(line)).decode()


def test_a_failed_label_in_a_label_file_fails_the_line_as_one_without_a_value(tmp_path: Path) -> None:
    """A ``failure-reason`` beside a value is no label (docs/validate.md): before, the box was
    written as a machine label and the failure-reason dropped."""
    value, meta = _attr(FIRST)
    shapes = {
        "line": ({"source-ref": "s3://b/a.jpg", "boxes": value, "boxes-metadata": _failed(meta)}, "'boxes'"),
        "pair": ({"label": value, "metadata": _failed(meta)}, "'label'"),
        "empty": ({"source-ref": "s3://b/a.jpg", "boxes-metadata": _failed(meta)}, "'boxes'"),
    }
    for job, (doc, attr) in shapes.items():
        folder = tmp_path / job
        folder.mkdir()
        proc = _annotate(folder, _failed_line_set_up(folder, doc), job)
        assert proc.returncode == 1, proc.stderr
        assert f"document holds no object-detection label ({attr} holds a failure-reason)" in _failure_of(folder, job)
        (line,) = output_of(folder / "out", job).read_bytes().splitlines()
        assert "pre" not in orjson.loads(line)


def test_a_named_failed_label_fails_and_a_failed_label_is_not_one_of_several(tmp_path: Path) -> None:
    (value, meta), (adjusted, adjusted_meta) = _attr(FIRST), _attr(ADJUSTED)
    doc = {"source-ref": "s3://b/a.jpg", "boxes": value, "boxes-metadata": meta,
           "boxes-chain": adjusted, "boxes-chain-metadata": _failed(adjusted_meta)}
    manifest = _failed_line_set_up(tmp_path, doc)
    proc = _annotate(tmp_path, manifest, "named", "--file-label-attribute", "boxes-chain")
    assert proc.returncode == 1, proc.stderr
    assert "document holds no object-detection label ('boxes-chain' holds a failure-reason)" in _failure_of(
        tmp_path, "named")

    proc = _annotate(tmp_path, manifest, "plain")
    assert proc.returncode == 0, proc.stderr
    assert _label(tmp_path, "plain")["annotations"] == [FIRST]


@pytest.mark.parametrize(("name", "said"), [
    ("", "--file-label-attribute is empty; give the label attribute to take from each label file"),
    ("bad name!", "--file-label-attribute: label attribute 'bad name!' may hold only ASCII letters, digits and "
     "hyphens, and must start and end with a letter or digit (pattern [a-zA-Z0-9](-*[a-zA-Z0-9]){0,126})"),
    ("boxes-chain-metadata", "--file-label-attribute 'boxes-chain-metadata' is a metadata key; give the "
     "attribute, not its metadata key: --file-label-attribute boxes-chain"),
    # the task type's rule too (object-detection here): only each line's label refused it before
    ("boxes-ref", "--file-label-attribute: label attribute 'boxes-ref' must not end in '-ref': task type "
     "object-detection writes its label inline"),
])
def test_a_name_no_label_file_can_hold_is_refused_before_the_job_exists(tmp_path: Path, name: str, said: str) -> None:
    proc = _annotate(tmp_path, _chained_line_set_up(tmp_path), "bad", "--file-label-attribute", name)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [f"totask-manifest annotate: error: {said}"]
    assert not (tmp_path / "out" / "bad").exists()


def test_a_semantic_segmentation_attribute_without_ref_is_refused_before_the_job_exists(tmp_path: Path) -> None:
    """Ground Truth's semantic segmentation labels are file references: their attribute ends in
    ``-ref``. A ``--file-label-attribute`` without it could name no such label in any file."""
    proc = run_cli("annotate", str(_chained_line_set_up(tmp_path)), "--job-name", "seg", "--label-attribute",
                   "pre-ref", "--task-type", "semantic-segmentation", "--method", "file", "--url-key",
                   "annotation-ref", "--allow-root", str(tmp_path), "--output", str(tmp_path / "out"),
                   "--file-label-attribute", "masks")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "totask-manifest annotate: error: --file-label-attribute: label attribute 'masks' must end in '-ref': task "
        "type semantic-segmentation writes a file reference"], proc.stderr
    assert not (tmp_path / "out" / "seg").exists()
