"""Synapse task data (DM v1, ``objects``) to and from a manifest: what it cannot say exactly is refused.

Before, a negative box width was written into a manifest that ``validate`` refuses (exit 0), and
two DM v1 annotations sharing one id both got the coordinates of the last ``annotationsData``
entry of that id: the first box was lost and the second written twice. Each is now one line naming
the line and the key, exit 1, nothing written."""

from __future__ import annotations

import copy
from pathlib import Path

import orjson
import pytest

from tests.support.gt import GT_MANIFESTS as GT
from tests.support.gt import requires_gt
from tests.test_user_mistakes import cli, one_line_error

DM = {"line": 1, "source-ref": "s3://b/a.jpg", "task_id": None, "task_type": "object-detection",
      "image_size": [100, 80, 3], "class_map": {"0": "cat", "1": "dog"},
      "data": {"extra": {}, "relations": {}, "annotationGroups": {},
               "annotations": {"image_1": [
                   {"id": "a1", "tool": "bounding_box", "classification": {"class": "cat", "confidence": 0.9}},
                   {"id": "a2", "tool": "bounding_box", "classification": {"class": "dog", "confidence": 0.7}}]},
               "annotationsData": {"image_1": [{"id": "a1", "coordinate": {"x": 10, "y": 10, "width": 20, "height": 20}},
                                               {"id": "a2", "coordinate": {"x": 30, "y": 5, "width": 8, "height": 4}}]}}}
OBJECTS = {"line": 1, "source-ref": "s3://b/a.jpg", "task_id": None, "task_type": "object-detection",
           "image_size": [100, 80, 3], "class_map": {"0": "cat"},
           "data": {"objects": [{"id": "o1", "class_id": 0, "type": "bbox",
                                 "coordinates": {"x": 10, "y": 10, "width": 20, "height": 20},
                                 "properties": {"confidence": 0.9, "label": "cat"}}]}}


def _refused(tmp_path: Path, name: str, doc: dict) -> str:
    (tmp_path / name).write_bytes(orjson.dumps(doc) + b"\n")
    r = cli("convert", name, "out.manifest", "--to", "manifest", cwd=tmp_path)
    line = one_line_error(r, "convert")
    assert r.returncode == 1, r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]
    return line


def test_the_documents_as_written_are_read(tmp_path: Path) -> None:
    """The two documents the refusals below start from are read, with every box."""
    for name, doc, n in (("t.dm.jsonl", DM, 2), ("t.objects.jsonl", OBJECTS, 1)):
        (tmp_path / name).write_bytes(orjson.dumps(doc) + b"\n")
        r = cli("convert", name, f"{name}.manifest", "--to", "manifest", cwd=tmp_path)
        assert r.returncode == 0, r.stderr
        assert len(orjson.loads((tmp_path / f"{name}.manifest").read_bytes())["label"]["annotations"]) == n


@pytest.mark.parametrize("field", ["width", "height"])
def test_a_negative_dm_v1_box_size_is_refused_not_written(tmp_path: Path, field: str) -> None:
    doc = copy.deepcopy(DM)
    doc["data"]["annotationsData"]["image_1"][1]["coordinate"][field] = -4
    line = _refused(tmp_path, "t.dm.jsonl", doc)
    assert f"line 1, key 'annotationsData.image_1.a2.coordinate.{field}'" in line
    assert f"{field} -4 is negative" in line and "[format-dm-schema-v1]" in line


@pytest.mark.parametrize("field", ["width", "height"])
def test_a_negative_objects_box_size_is_refused_not_written(tmp_path: Path, field: str) -> None:
    doc = copy.deepcopy(OBJECTS)
    doc["data"]["objects"][0]["coordinates"][field] = -2.5
    line = _refused(tmp_path, "t.objects.jsonl", doc)
    assert f"line 1, key 'objects[0].coordinates.{field}'" in line
    assert f"{field} -2.5 is negative" in line and "[format-synapse-objects]" in line


def test_two_dm_v1_annotations_with_one_id_are_refused_not_given_one_box(tmp_path: Path) -> None:
    doc = copy.deepcopy(DM)
    doc["data"]["annotations"]["image_1"][1]["id"] = "a1"
    doc["data"]["annotationsData"]["image_1"][1]["id"] = "a1"
    line = _refused(tmp_path, "t.dm.jsonl", doc)
    assert "line 1, key 'annotationsData.image_1[1].id'" in line
    assert "id 'a1' is also annotationsData.image_1[0]'s" in line


def test_two_dm_v1_boxes_naming_one_annotations_data_entry_are_refused(tmp_path: Path) -> None:
    """Both read the one entry's coordinate: a box written twice, the other's entry unread."""
    doc = copy.deepcopy(DM)
    doc["data"]["annotations"]["image_1"][1]["id"] = "a1"
    line = _refused(tmp_path, "t.dm.jsonl", doc)
    assert "line 1, key 'annotations.image_1[1].id'" in line and "id 'a1' is also annotations.image_1[0]'s" in line


def test_an_annotation_id_that_is_a_list_is_named_not_a_traceback(tmp_path: Path) -> None:
    doc = copy.deepcopy(DM)
    doc["data"]["annotations"]["image_1"][0]["id"] = ["a1"]
    doc["data"]["annotationsData"]["image_1"][0]["id"] = ["a1"]
    line = _refused(tmp_path, "t.dm.jsonl", doc)
    assert "key 'annotations.image_1[0].id'" in line and "no annotationsData entry with id ['a1']" in line


@requires_gt
@pytest.mark.parametrize(("name", "attr", "task_type"), [
    ("text-classification-multilabel__aws-samples-amazon-comprehend-examples__DocumentClassifier-output.manifest",
     "cutomDocClassification", "text-classification-multilabel"),
    ("custom-task__aws-samples-aws-legal-entity-extraction__output.manifest",
     "legal-entity-label-job-labeling-job-20220104T172242", "custom")])
@pytest.mark.parametrize(("fmt", "out"), [("dm-schema-v1", "t.dm.jsonl"), ("synapse-objects", "t.objects.jsonl")])
def test_a_label_of_a_type_task_data_cannot_hold_is_named_as_such(tmp_path: Path, name: str, attr: str,
                                                                  task_type: str, fmt: str, out: str) -> None:
    """Said as COCO and YOLO say it: it was "no line holds a label under 'A' ... label attributes
    seen: A", which contradicts itself and sends the user looking for a misspelt name."""
    r = cli("convert", str(GT / name), out, "--to", fmt, "--label-attribute", attr, cwd=tmp_path)
    line = one_line_error(r, "convert")
    assert r.returncode == 1
    assert line.endswith(f"line 1, key '{attr}-metadata': {fmt} holds object-detection, image-classification and "
                         f"image-classification-multilabel labels and documents kept as they are, not {task_type} "
                         "[task-data-type]")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("data_object", "said"), [
    ({"source-ref": ""}, "key 'source-ref': 'source-ref' must name the data object (a non-empty string), got \"\""),
    ({"source-ref": 7}, "key 'source-ref': 'source-ref' must name the data object (a non-empty string), got 7"),
    ({}, "key 'source-ref': the line names no data object: give 'source-ref' (or 'source' for inline text)"),
    ({"source-ref": "s3://b/a.jpg", "source": "text"}, "key 'source': the line holds both 'source-ref' and 'source'"),
], ids=["empty", "number", "none", "both"])
@pytest.mark.parametrize(("name", "base"), [("t.dm.jsonl", DM), ("t.objects.jsonl", OBJECTS)])
def test_a_line_that_names_no_one_data_object_is_refused(tmp_path: Path, name: str, base: dict,
                                                          data_object: dict, said: str) -> None:
    """A line with ``"source-ref": ""`` (or none, or a number) became a manifest line with an empty
    ``source-ref``, exit 0: a manifest ``validate`` refuses and every job fails. A line with both
    ``source-ref`` and ``source`` kept the first and dropped the text unsaid."""
    doc = {k: v for k, v in copy.deepcopy(base).items() if k != "source-ref"} | data_object
    line = _refused(tmp_path, name, doc)
    assert f"line 1, {said}" in line, line


@pytest.mark.parametrize(("fmt", "out"), [("dm-schema-v1", "t.dm.jsonl"), ("synapse-objects", "t.objects.jsonl")])
def test_a_confidence_of_a_class_not_chosen_is_refused_not_dropped(tmp_path: Path, fmt: str, out: str) -> None:
    """A multi-label whose confidence-map also scores a class it did not choose (a model's score
    for 'bird' below its threshold): task data holds the chosen classes only, so that score was
    left out with exit 0, and the way back had no trace of it. Refused naming the line and key."""
    meta = {"job-name": "labeling-job/j", "class-map": {"0": "cat", "1": "bird"}, "human-annotated": "no",
            "creation-date": "2026-01-01T00:00:00.000000", "confidence-map": {"0": 0.9, "1": 0.1},
            "type": "groundtruth/image-classification-multilabel"}
    (tmp_path / "m.manifest").write_bytes(orjson.dumps({"source-ref": "s3://b/a.jpg", "m": [0], "m-metadata": meta})
                                          + b"\n")
    r = cli("convert", "m.manifest", out, "--to", fmt, cwd=tmp_path)
    line = one_line_error(r, "convert")
    assert r.returncode == 1
    assert "line 1, key 'm-metadata.confidence-map.1'" in line and "class 1 ('bird')" in line and "--allow-drop" in line, line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.manifest"]
    meta["confidence-map"] = {"0": 0.9}
    (tmp_path / "m.manifest").write_bytes(orjson.dumps({"source-ref": "s3://b/a.jpg", "m": [0], "m-metadata": meta})
                                          + b"\n")
    assert cli("convert", "m.manifest", out, "--to", fmt, cwd=tmp_path).returncode == 0
