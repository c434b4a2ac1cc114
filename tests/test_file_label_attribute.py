"""A label file that is a whole Ground Truth manifest line holding two labels of the task type
(a chained adjustment job's line): the file method's ``--file-label-attribute`` names the one to
take, job.json keeps it for clone, chain and resume, and without it the line's failure names the
flag (``label_attribute``, the Python keyword it named before, is no flag). Real files, the real CLI."""

from __future__ import annotations

import json
from pathlib import Path

import orjson

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
