"""The schema files, the label checks built on them, and the cross-field rules beside them.

Good examples are the developer guide's own output examples (shared/reference/ground-truth.md
section 2) and real lines from ../shared/gt-manifests; each bad example breaks one rule.
"""

from __future__ import annotations

import copy
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import jsonschema_rs
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.gt import GT_MANIFESTS, requires_gt
from totask_manifest._errors import UsageError
from totask_manifest._manifest import semantics
from totask_manifest._manifest.schemas import BASE_URI, load_schema, schema_dir, schema_names, validator
from totask_manifest._manifest.validate import Problem, check_label, explain_label
from totask_manifest._task_types import TASK_TYPES

pytestmark = requires_gt

ROOT = Path(__file__).resolve().parents[1]
SCHEMA_FILES = sorted((ROOT / "schemas").glob("*.json"))
DATE = "2018-10-18T22:18:13.527256"


def meta(kind: str, **fields: Any) -> dict:
    return {"type": f"groundtruth/{kind}", "job-name": "labeling-job/example", "human-annotated": "yes",
            "creation-date": DATE, **fields}


def errors(problems: list[Problem]) -> list[tuple[str, str]]:
    return [(p.key, p.rule) for p in problems if p.severity == "error"]


def warnings(problems: list[Problem]) -> list[str]:
    return [p.rule for p in problems if p.severity == "warning"]


# ---- the files ---------------------------------------------------------------------------------


@pytest.mark.parametrize("path", SCHEMA_FILES, ids=lambda p: p.name)
def test_schema_file_is_valid_2020_12(path: Path) -> None:
    schema = orjson.loads(path.read_bytes())
    jsonschema.Draft202012Validator.check_schema(schema)  # raises on any metaschema violation
    assert jsonschema_rs.meta.is_valid(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == BASE_URI + path.name
    assert schema.get("title") and schema.get("description")


def test_a_broken_schema_would_be_caught_by_the_metaschema() -> None:
    with pytest.raises(jsonschema.SchemaError):
        jsonschema.Draft202012Validator.check_schema({"type": "objekt"})


def test_every_task_type_has_its_schema_file() -> None:
    names = set(schema_names())
    for tt in TASK_TYPES.values():
        assert tt.schema in names, tt.name
        assert load_schema(tt.schema)["properties"]["metadata"]["properties"]["type"]
    for extra in ("failure", "routed", "seqlabel", "synapse-objects", "dm-schema-v1", "totask-params", "worker-response"):
        assert extra in names
    assert "_defs" not in names
    assert set(names) | {"_defs"} == {p.stem for p in SCHEMA_FILES}


def test_schemas_are_found_in_the_checkout_and_shipped_in_the_wheel() -> None:
    assert schema_dir() == ROOT / "schemas"
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert config["tool"]["hatch"]["build"]["targets"]["wheel"]["force-include"]["schemas"] == "totask_manifest/schemas"


def test_unknown_schema_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match=r"unknown schema 'nope'; known schemas: .*object-detection"):
        load_schema("nope")
    with pytest.raises(UsageError):
        validator("_defs")


def test_errors_report_path_and_keyword() -> None:
    compiled = validator("object-detection")
    pair = {"label": {"image_size": [{"width": 1, "height": 1}], "annotations": [
        {"class_id": 0, "left": 0, "top": 0, "width": -1, "height": 2}]}, "metadata": meta("object-detection")}
    assert not compiled.is_valid(pair)
    found = {(e.path, e.keyword) for e in compiled.errors(pair)}
    assert (("label", "annotations", 0, "width"), "minimum") in found
    assert (("metadata",), "required") in found  # objects and class-map are missing


# ---- the developer guide's examples are valid --------------------------------------------------

GUIDE_EXAMPLES: list[tuple[str, Any, dict]] = [
    ("image-classification", "0", {**meta("image-classification"), "class-name": "dog", "confidence": 0.00}),
    ("image-classification-multilabel", [1, 0, 8], meta("image-classification-multilabel", **{
        "class-map": {"1": "bicycle", "0": "person", "8": "clothing"}, "confidence-map": {"1": 0.95, "0": 0.77, "8": 0.2}})),
    ("text-classification", "1", meta("text-classification", **{"class-name": "positive", "confidence": 0.8})),
    ("text-classification-multilabel", [1], meta("text-classification-multilabel", **{
        "class-map": {"1": "optimism"}, "confidence-map": {"1": 0.86, "0": 0.37, "2": 0.4}})),
    ("object-detection", {"image_size": [{"width": 500, "height": 400, "depth": 3}], "annotations": [
        {"class_id": 0, "left": 111, "top": 134, "width": 61, "height": 128},
        {"class_id": 5, "left": 161, "top": 250, "width": 30, "height": 30}]},
     meta("object-detection", objects=[{"confidence": 0.8}, {"confidence": 0.9}], **{"class-map": {"0": "dog", "5": "bone"}})),
    ("object-detection", {"image_size": [{"width": 5, "height": 4}], "annotations": []},
     meta("object-detection", objects=[], **{"class-map": {}, "adjustment-status": "unadjusted"})),
    ("label-verification", "1", meta("label-verification", **{"class-name": "bad", "confidence": 0.93, "worker-feedback": [
        {"comment": "The bounding box on the bird is too wide on the right side."}]})),
    ("semantic-segmentation", "s3://bucket/mask.png", meta("semantic-segmentation", **{"internal-color-map": {
        "0": {"class-name": "BACKGROUND", "confidence": 0.9, "hex-color": "#ffffff"},
        "1": {"class-name": "buildings", "confidence": 0.9, "hex-color": "#2acf59"}}})),
    ("text-span", {"annotations": {"labels": [{"label": "Date", "shortDisplayName": "dt"}, {"label": "Thing"}],
                                   "entities": [{"label": "Thing", "startOffset": 22, "endOffset": 53},
                                                {"label": "Date", "startOffset": 75, "endOffset": 88}]}},
     meta("text-span", entities=[{"confidence": 0}, {"confidence": 0}])),
    ("video-object-detection", "s3://b/out/SeqLabel.json", meta("video-object-detection", **{"class-map": {"0": "car"}})),
    ("video-object-tracking", "s3://b/out/SeqLabel.json", meta("video-object-tracking", **{
        "class-map": {"0": "car", "1": "bus"}, "adjustment-status": "adjusted"})),
    ("video-classification", 2, meta("video-classification", **{"class-name": "sports", "confidence": 0.5})),
    ("point_cloud_object_detection", {"annotations": [{"label-category-attributes": {}, "object-name": "Car:1",
        "class-id": 0, "center-x": -2.6, "center-y": 116.3, "center-z": 1.8, "length": 4.1, "width": 2, "height": 1.7,
        "roll": 0, "pitch": 0, "yaw": 1.9}]}, meta("point_cloud_object_detection", objects=[], **{"class-map": {"0": "Car"}})),
    ("point_cloud_object_tracking", "s3://b/SeqLabel.json", meta("point_cloud_object_tracking", objects=[
        {"frame-no": 0, "confidence": []}, {"frame-no": 1, "confidence": [0.5]}], **{"class-map": {"0": "Car"}})),
    ("point_cloud_single_frame_semantic_segmentation", "s3://b/0.txt.pcd.zlib",
     meta("point_cloud_single_frame_semantic_segmentation", **{"color-map": {
         "0": {"class-name": "Car", "hex-color": "#467ce6", "confidence": 1}}})),
    ("custom", {"annotation-ref": "s3://b/ann.json"}, meta("custom")),
    ("custom", [1, "anything", None], meta("custom")),
]


@pytest.mark.parametrize(("task_type", "label", "metadata"), GUIDE_EXAMPLES, ids=[e[0] for e in GUIDE_EXAMPLES])
def test_guide_examples_are_valid(task_type: str, label: Any, metadata: dict) -> None:
    assert check_label(task_type, label, metadata) == []


def test_each_task_type_has_a_guide_example() -> None:
    assert {e[0] for e in GUIDE_EXAMPLES} == set(TASK_TYPES)


def test_the_metadata_type_must_match_the_task_type() -> None:
    label, metadata = GUIDE_EXAMPLES[0][1], copy.deepcopy(GUIDE_EXAMPLES[0][2])
    metadata["type"] = "groundtruth/text-classification"
    assert errors(check_label("image-classification", label, metadata)) == [("metadata.type", "schema-const")]


def test_key_paths_name_the_attribute_when_given() -> None:
    _, label, metadata = GUIDE_EXAMPLES[4]
    broken = copy.deepcopy(label)
    broken["annotations"][1]["width"] = -30
    assert errors(check_label("object-detection", broken, metadata, attribute="boxes")) == [
        ("boxes.annotations[1].width", "schema-minimum")]
    problem = check_label("object-detection", broken, metadata)[0]
    assert str(problem) == "label: error: label.annotations[1].width: -30 is less than the minimum of 0 [schema-minimum]"


# ---- one broken rule at a time -----------------------------------------------------------------


def example(task_type: str) -> tuple[Any, dict]:
    found = next(e for e in GUIDE_EXAMPLES if e[0] == task_type)
    return copy.deepcopy(found[1]), copy.deepcopy(found[2])


def broken(task_type: str, change: Any) -> list[tuple[str, str]]:
    label, metadata = example(task_type)
    label = change(label, metadata) or label
    return errors(check_label(task_type, label, metadata))


def set_(obj: dict, key: str, value: Any) -> None:
    obj[key] = value


def drop(obj: dict | list, key: Any = -1) -> None:
    obj.pop(key)


BROKEN = [
    # common metadata
    ("image-classification", lambda lab, m: set_(m, "human-annotated", "maybe"), [("metadata.human-annotated", "schema-enum")]),
    ("image-classification", lambda lab, m: set_(m, "creation-date", "18/10/2018 22:18"), [("metadata.creation-date", "creation-date-invalid")]),
    ("image-classification", lambda lab, m: set_(m, "creation-date", ""), [("metadata.creation-date", "schema-minLength")]),
    ("image-classification", lambda lab, m: set_(m, "creation-date", "2018-02-30T22:18:13.527256"), [("metadata.creation-date", "creation-date-invalid")]),
    ("image-classification", lambda lab, m: drop(m, "creation-date"), [("metadata", "schema-required")]),
    ("image-classification", lambda lab, m: set_(m, "confidence", 1.5), [("metadata.confidence", "schema-maximum")]),
    ("image-classification", lambda lab, m: set_(m, "confidence", -0.1), [("metadata.confidence", "schema-minimum")]),
    ("image-classification", lambda lab, m: set_(m, "job-name", ""), [("metadata.job-name", "schema-minLength")]),
    ("image-classification", lambda lab, m: drop(m, "class-name"), [("metadata", "schema-required")]),
    ("image-classification", lambda lab, m: -1, [("label", "schema-anyOf")]),
    ("image-classification", lambda lab, m: "dog", [("label", "schema-anyOf")]),
    # multi-label
    ("image-classification-multilabel", lambda lab, m: [1, 1], [("label", "schema-uniqueItems")]),
    ("image-classification-multilabel", lambda lab, m: [1, 3], [("label[1]", "class-map-missing-class")]),
    ("text-classification-multilabel", lambda lab, m: set_(m, "class-map", {"one": "optimism"}), [("metadata.class-map", "schema-pattern")]),
    ("text-classification-multilabel", lambda lab, m: set_(m, "confidence-map", {"1": 2}), [("metadata.confidence-map.1", "schema-maximum")]),
    # bounding boxes
    ("object-detection", lambda lab, m: set_(lab["annotations"][0], "height", -128), [("label.annotations[0].height", "schema-minimum")]),
    ("object-detection", lambda lab, m: set_(lab["annotations"][0], "class_id", 0.5), [("label.annotations[0].class_id", "schema-type")]),
    ("object-detection", lambda lab, m: lab["image_size"].append({"width": 1, "height": 1}), [("label.image_size", "schema-maxItems")]),
    ("object-detection", lambda lab, m: drop(m["objects"]), [("metadata.objects", "objects-count")]),
    ("object-detection", lambda lab, m: set_(m["objects"][1], "confidence", 1.01), [("metadata.objects[1].confidence", "schema-maximum")]),
    ("object-detection", lambda lab, m: drop(m["class-map"], "5"), [("label.annotations[1].class_id", "class-map-missing-class")]),
    ("object-detection", lambda lab, m: set_(m, "adjustment-status", "changed"), [("metadata.adjustment-status", "schema-enum")]),
    # semantic segmentation
    ("semantic-segmentation", lambda lab, m: set_(m["internal-color-map"]["1"], "hex-color", "green"),
     [("metadata.internal-color-map.1.hex-color", "schema-pattern")]),
    ("semantic-segmentation", lambda lab, m: {"mask": "s3://b/m.png"}, [("label", "schema-type")]),
    # named entities
    ("text-span", lambda lab, m: drop(m["entities"]), [("metadata.entities", "entities-count")]),
    ("text-span", lambda lab, m: set_(lab["annotations"]["entities"][0], "startOffset", 60), [("label.annotations.entities[0]", "entity-offsets")]),
    ("text-span", lambda lab, m: set_(lab["annotations"]["entities"][1], "label", "Place"), [("label.annotations.entities[1].label", "entity-label-unknown")]),
    ("text-span", lambda lab, m: set_(lab["annotations"]["entities"][1], "endOffset", -1), [("label.annotations.entities[1].endOffset", "schema-minimum")]),
    # video and point clouds
    ("video-object-tracking", lambda lab, m: drop(m, "class-map"), [("metadata", "schema-required")]),
    ("video-object-detection", lambda lab, m: "  ", [("label", "schema-pattern")]),
    ("point_cloud_object_detection", lambda lab, m: set_(lab["annotations"][0], "length", -4), [("label.annotations[0].length", "schema-minimum")]),
    ("point_cloud_object_detection", lambda lab, m: set_(lab["annotations"][0], "class-id", 3), [("label.annotations[0].class-id", "class-map-missing-class")]),
    ("point_cloud_object_tracking", lambda lab, m: set_(m["objects"][1], "confidence", [1.2]), [("metadata.objects[1].confidence[0]", "schema-maximum")]),
    ("point_cloud_single_frame_semantic_segmentation", lambda lab, m: drop(m, "color-map"), [("metadata", "schema-required")]),
    ("custom", lambda lab, m: set_(m, "type", "groundtruth/customs"), [("metadata.type", "schema-pattern")]),
]


@pytest.mark.parametrize(("task_type", "change", "expected"), BROKEN, ids=[f"{b[0]}-{i}" for i, b in enumerate(BROKEN)])
def test_broken_examples_name_key_and_rule(task_type: str, change: Any, expected: list) -> None:
    assert broken(task_type, change) == expected


def test_departures_are_warnings_not_errors() -> None:
    label, metadata = example("custom")
    metadata.update({"type": "groundTruth/custom", "job-name": "legal-entity-job", "creation-date": "2020-05-25T12:53:54+0000"})
    problems = check_label("custom", label, metadata)
    assert errors(problems) == []
    # a custom workflow names its job bare (the real output): not a departure
    assert sorted(warnings(problems)) == ["departure-creation-date-zone", "departure-type-spelling"]
    label, metadata = example("object-detection")
    metadata["job-name"] = "dogs"  # a built-in 2D type writes labeling-job/<name>
    assert warnings(check_label("object-detection", label, metadata)) == ["departure-job-name-prefix"]
    for task_type in ("point_cloud_object_detection", "point_cloud_object_tracking",
                      "point_cloud_single_frame_semantic_segmentation", "custom"):
        label, metadata = example(task_type)
        for name in ("pointcloud", "labeling-job/pointcloud"):
            assert check_label(task_type, label, {**metadata, "job-name": name}) == [], (task_type, name)
            assert explain_label(task_type, label, {**metadata, "job-name": name}) == [], (task_type, name)
    label, metadata = example("point_cloud_object_detection")
    metadata["class_map"] = metadata.pop("class-map")
    problems = check_label("point_cloud_object_detection", label, metadata)
    assert errors(problems) == [] and warnings(problems) == ["departure-class-map-spelling"]
    problems = check_label("custom", {"anything": 1}, {"type": "groundtruth/custom"})
    assert errors(problems) == [] and warnings(problems) == ["departure-job-name-missing"]


def test_failure_metadata() -> None:
    failed = {"failure-reason": "FetchError: HTTP 404 for https://example.invalid/a.json",
              "type": "groundtruth/object-detection", "job-name": "labeling-job/dogs", "creation-date": DATE}
    assert check_label("object-detection", None, failed) == []
    assert check_label("object-detection", None, {"failure-reason": "timeout"}) == []
    assert errors(check_label("object-detection", None, {"failure-reason": ""})) == [
        ("metadata.failure-reason", "schema-minLength")]
    assert errors(check_label("object-detection", None, {"failure-reason": 3})) == [
        ("metadata.failure-reason", "schema-type")]
    # the job-name form follows the type the failure names; with no type, the built-in form is expected
    bare = {**failed, "job-name": "dogs"}
    assert warnings(check_label("object-detection", None, bare)) == ["departure-job-name-prefix"]
    assert check_label("custom", None, {**bare, "type": "groundtruth/custom"}) == []
    assert check_label("point_cloud_object_tracking", None,
                       {**bare, "type": "groundtruth/point_cloud_object_tracking"}) == []
    untyped = {k: v for k, v in bare.items() if k != "type"}
    assert warnings(check_label("custom", None, untyped)) == ["departure-job-name-prefix"]


def test_real_labels_pass_check_label() -> None:
    """Every label in the real output files is valid (departures aside)."""
    checked = 0
    for path in GT_MANIFESTS.glob("*.manifest"):
        for raw in path.read_bytes().splitlines():
            record = orjson.loads(raw)
            for key, value in record.items():
                if key.endswith("-metadata") and isinstance(value, dict) and "type" in value:
                    attribute = key[: -len("-metadata")]
                    kind = value["type"].split("/", 1)[1].lower()
                    if kind == "point_cloud_object_detection" and attribute.endswith("-ref"):
                        kind = "point_cloud_object_tracking"  # the sample's own type mismatch (see validate)
                        value = {**value, "type": "groundtruth/" + kind}
                    problems = check_label(kind, record[attribute], value, attribute=attribute)
                    assert errors(problems) == [], (path.name, problems)
                    checked += 1
    assert checked > 600


# ---- the other formats -------------------------------------------------------------------------


def schema_errors(name: str, document: Any) -> list[tuple[str, str]]:
    compiled = validator(name)
    from totask_manifest._manifest.schemas import format_path

    if compiled.is_valid(document):
        return [(format_path(f.path), f.rule) for f in semantics.check_document(name, document)]
    return [(format_path(e.path), f"schema-{e.keyword}") for e in compiled.errors(document)]


def test_seqlabel_real_file_and_breakage() -> None:
    path = GT_MANIFESTS / "video-object-tracking__iprivit-object-tracking-project__SeqLabel.jsonl"
    doc = orjson.loads(path.read_bytes())
    assert schema_errors("seqlabel", doc) == []
    frame = doc["tracking-annotations"][3]
    frame["annotations"][0]["width"] = -29
    del doc["tracking-annotations"][5]["frame-no"]
    assert sorted(schema_errors("seqlabel", doc)) == [
        ("tracking-annotations[3].annotations[0].width", "schema-minimum"),
        ("tracking-annotations[5]", "schema-anyOf"),
    ]
    assert schema_errors("seqlabel", {"detection-annotations": [{"frame-no": 0, "frame": "a.jpg", "polylines": []}]}) == []
    three_d = {"tracking-annotations": [{"frame-number": 0, "frame-name": "0.txt.pcd", "frame-attributes": {},
                                          "annotations": [{"class-id": 0, "object-id": "x", "length": 1}]}]}
    assert schema_errors("seqlabel", three_d) == []
    assert schema_errors("seqlabel", {"lidar": three_d, "camera-0": three_d}) == []
    assert schema_errors("seqlabel", {"frames": []}) != []


def test_worker_response_real_file() -> None:
    path = GT_MANIFESTS / "image-classification__aws-amazon-sagemaker-examples__ic_data-worker-response.jsonl"
    doc = orjson.loads(path.read_bytes())
    assert schema_errors("worker-response", doc) == []
    del doc["answers"][0]["workerId"]
    assert schema_errors("worker-response", doc) == [("answers[0]", "schema-required")]


SYNAPSE_OBJECTS = {"objects": [{"id": "obj_001", "class_id": 1, "type": "bbox",
                                "coordinates": {"x": 100, "y": 150, "width": 200, "height": 180},
                                "properties": {"confidence": 0.95, "label": "person"}}]}


def test_synapse_objects_format() -> None:
    assert schema_errors("synapse-objects", SYNAPSE_OBJECTS) == []
    doc = copy.deepcopy(SYNAPSE_OBJECTS)
    doc["objects"][0]["coordinates"]["width"] = -200
    doc["objects"][0]["properties"]["confidence"] = 95
    assert sorted(schema_errors("synapse-objects", doc)) == [
        ("objects[0].coordinates.width", "schema-minimum"), ("objects[0].properties.confidence", "schema-maximum")]
    doc = copy.deepcopy(SYNAPSE_OBJECTS)
    del doc["objects"][0]["coordinates"]
    assert schema_errors("synapse-objects", doc) == [("objects[0]", "schema-required")]
    assert schema_errors("synapse-objects", {"objects": [{"type": "polygon", "coordinates": {"points": []}}]}) == []


DM_V1 = {
    "extra": {},
    "annotations": {"image_1": [
        {"id": "bbox_1", "tool": "bounding_box", "isLocked": False, "isVisible": True, "classification": {"class": "person"}},
        {"id": "bbox_2", "tool": "bounding_box", "classification": {"class": "car", "color": "red"}}]},
    "annotationsData": {"image_1": [{"id": "bbox_1", "coordinate": {"x": 1, "y": 2, "width": 3, "height": 4}},
                                    {"id": "bbox_2", "coordinate": {"x": 5, "y": 6, "width": 7, "height": 8, "rotation": 0.1}}]},
    "relations": {"image_1": [{"id": "rel_1", "tool": "relation", "annotationId": "bbox_1", "targetAnnotationId": "bbox_2",
                               "classification": {}}]},
    "annotationGroups": {"image_1": [{"id": "grp_1", "tool": "annotationGroup", "classification": {},
                                      "annotationList": [{"annotationId": "bbox_1", "children": []}]}]},
}


def test_dm_schema_v1() -> None:
    assert schema_errors("dm-schema-v1", DM_V1) == []
    doc = copy.deepcopy(DM_V1)
    doc["annotationsData"]["image_1"].pop()
    doc["relations"]["image_1"][0]["targetAnnotationId"] = "bbox_9"
    doc["annotationsData"]["image_1"][0]["coordinate"]["width"] = -3
    assert sorted(schema_errors("dm-schema-v1", doc)) == [
        ("annotations.image_1[1]", "dm-annotation-data-missing"),
        ("annotationsData.image_1[0].coordinate.width", "schema-minimum"),
        ("relations.image_1[0]", "dm-reference-unknown"),
    ]
    doc = copy.deepcopy(DM_V1)
    doc["annotations"]["image_1"][1]["id"] = "bbox_1"
    assert ("annotations.image_1[1].id", "dm-duplicate-id") in schema_errors("dm-schema-v1", doc)
    doc = copy.deepcopy(DM_V1)
    doc["annotations"]["Image-1"] = doc["annotations"].pop("image_1")
    assert schema_errors("dm-schema-v1", doc) == [("annotations", "schema-pattern")]
    assert schema_errors("dm-schema-v1", {"annotationsData": {}}) == [("", "schema-required")]


FILE_PARAMS = {"name": "File_Based_Annotation", "description": "Annotate tasks from JSON files", "project": 123,
               "agent": 1, "task_filters": {"status": "pending", "data_collection": 456}, "method": "file",
               "target_specification_name": "annotation_data", "pre_processor_params": {}}
INFERENCE_PARAMS = {"name": "Inference_Based_Annotation", "project": 123, "agent": 1,
                    "task_filters": {"status": "pending", "assignee": None}, "method": "inference",
                    "pre_processor": 789, "model": 5, "pre_processor_params": {"confidence_threshold": 0.8},
                    "batch_size": 16, "schema": "any"}


def test_totask_params() -> None:
    assert schema_errors("totask-params", FILE_PARAMS) == []
    assert schema_errors("totask-params", INFERENCE_PARAMS) == []
    cases = [
        ({**FILE_PARAMS, "name": "File Based"}, [("name", "schema-pattern")]),
        ({**FILE_PARAMS, "method": "magic"}, [("method", "schema-enum")]),
        ({k: v for k, v in FILE_PARAMS.items() if k != "target_specification_name"}, [("", "schema-required")]),
        ({k: v for k, v in INFERENCE_PARAMS.items() if k != "pre_processor"}, [("", "schema-required")]),
        ({**INFERENCE_PARAMS, "batch_size": 0}, [("batch_size", "schema-minimum")]),
        ({**INFERENCE_PARAMS, "schema": "dm_schema_v2"}, [("schema", "schema-enum")]),
        ({**FILE_PARAMS, "project": "123"}, [("project", "schema-type")]),
        ({k: v for k, v in FILE_PARAMS.items() if k != "agent"}, [("", "schema-required")]),
    ]
    for params, expected in cases:
        assert schema_errors("totask-params", params) == expected, params


# ---- the fast path agrees with the full checks ---------------------------------------------------
# check_label answers "no problem" from one compiled schema and a few predicates; explain_label
# works every problem out. For any input, the first says [] exactly when the second does.

CLASS_IDS = st.integers(0, 3)
BOXES = st.lists(st.fixed_dictionaries({"class_id": CLASS_IDS, "left": st.just(1), "top": st.just(1),
                                        "width": st.sampled_from([2, -1]), "height": st.just(2)}), max_size=4)
COMMON = st.fixed_dictionaries(
    {"human-annotated": st.sampled_from(["yes", "no", "maybe"])},
    optional={
        "job-name": st.sampled_from(["labeling-job/dogs", "dogs", "labeling-job/", "", 3]),
        "creation-date": st.sampled_from([
            DATE, "2020-05-25T12:53:54+0000", "2021-02-29T00:00:00", "2020-02-29T23:59:59.1", "2020-04-31T00:00:00",
            "2020-12-31T23:59:59.999999", "0000-01-01T00:00:00", "2020-13-01T00:00:00", "2020-01-01T24:00:00",
            "2020-01-01", "2020-01-01T00:00:00Z", "2020-01-01T09:00:00+09:00", "Wed Jan 01 2020 00:00:00 GMT+0000",
            "Thu, 01 Jan 2020 00:00:00 GMT", "2020-01-01 00:00:00", "20200101T000000Z", "soon"]),
    },
)
KINDS = st.sampled_from(["groundtruth/object-detection", "groundTruth/object-detection", "groundtruth/text-span"])


def agree(task_type: str, label: Any, metadata: Any) -> None:
    fast = check_label(task_type, label, metadata)
    full = explain_label(task_type, label, metadata)
    assert (fast == []) == (full == []), (fast, full)
    assert fast == full


@settings(max_examples=400, deadline=None)
@given(BOXES, st.integers(0, 4), st.sets(st.sampled_from(["0", "1", "2", "3"])), COMMON, KINDS)
@pytest.mark.slow
def test_fast_path_agrees_on_object_detection(boxes: list, n_objects: int, classes: set, common: dict, kind: str) -> None:
    label = {"image_size": [{"width": 9, "height": 9}], "annotations": boxes}
    metadata = {**common, "type": kind, "objects": [{"confidence": 0.5}] * n_objects, "class-map": dict.fromkeys(classes, "c")}
    agree("object-detection", label, metadata)


@settings(max_examples=300, deadline=None)
@given(st.lists(CLASS_IDS), st.sets(st.sampled_from(["0", "1", "2", "3", "x"])), COMMON, st.sampled_from(sorted(TASK_TYPES)))
@pytest.mark.slow
def test_fast_path_agrees_on_every_task_type(label: list, classes: set, common: dict, task_type: str) -> None:
    metadata = {**common, "type": "groundtruth/" + task_type, "class-map": dict.fromkeys(classes, "c")}
    agree(task_type, label, metadata)
    agree(task_type, GUIDE_BY_TYPE[task_type][0], {**GUIDE_BY_TYPE[task_type][1], **common})


GUIDE_BY_TYPE = {e[0]: (e[1], e[2]) for e in reversed(GUIDE_EXAMPLES)}


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 9), st.integers(0, 9), st.sampled_from(["A", "B"])), max_size=3),
       st.integers(0, 3), st.booleans(), COMMON)
@pytest.mark.slow
def test_fast_path_agrees_on_text_span(entities: list, n_conf: int, with_labels: bool, common: dict) -> None:
    annotations: dict = {"entities": [{"label": lab, "startOffset": s, "endOffset": e} for s, e, lab in entities]}
    if with_labels:
        annotations["labels"] = [{"label": "A"}]
    metadata = {**common, "type": "groundtruth/text-span", "entities": [{"confidence": 0}] * n_conf}
    agree("text-span", {"annotations": annotations}, metadata)


def test_fast_path_skips_failures() -> None:
    failed = {"failure-reason": ""}
    assert check_label("custom", None, failed) == explain_label("custom", None, failed) != []
