"""Per-image converters: round trips on real Ground Truth manifests, and clear errors on bad documents."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.gt import GT_MANIFESTS as GT
from tests.support.gt import SKIP_REASON
from totask_manifest._errors import ManifestError
from totask_manifest._formats import (
    FormatError,
    coco_to_gt,
    detect_input_format,
    dm_v1_to_gt,
    from_groundtruth,
    gt_to_coco_image,
    gt_to_dm_v1,
    gt_to_objects,
    gt_to_yolo,
    objects_to_gt,
    to_groundtruth,
    to_label,
    yolo_names,
    yolo_to_gt,
)
from totask_manifest._formats.class_names import class_name_problem

OD_FILES = [
    "object-detection__aws-amazon-sagemaker-examples__yolov5-sample_output.manifest",
    "object-detection-chained-same-attribute__aws-samples-mxnet-dice-aim403-workshop__output.manifest",
    "object-detection-chained-adjustment__YeongJun-Jeon-1to100_Korean__output.manifest",
]
IC_FILES = [
    "image-classification__aws-amazon-sagemaker-examples__ic_data-output.manifest",
    "image-classification-output__kkr4353-aws-product-development__output.manifest",
]
OD = "object-detection"


def _labels(names: list[str]):
    """Every (file, line number, attribute, value, metadata) of the given manifests."""
    out = []
    for name in names:
        path = GT / name
        if not path.exists():
            pytest.skip(SKIP_REASON)
        for number, raw in enumerate(path.read_bytes().splitlines(), start=1):
            record = orjson.loads(raw)
            for key in record:
                if key.endswith("-metadata") and key[: -len("-metadata")] in record:
                    attr = key[: -len("-metadata")]
                    out.append((name, number, attr, record[attr], record[key], record))
    return out


def _size(value: dict) -> tuple[int, int, int]:
    s = value["image_size"][0]
    return (s["width"], s["height"], s["depth"])


def _used_class_map(value: dict, metadata: dict) -> dict:
    used = {str(a["class_id"]) for a in value["annotations"]}
    return {k: v for k, v in metadata["class-map"].items() if k in used}


@pytest.fixture(scope="module")
def od_labels():
    labels = _labels(OD_FILES)
    # all three files, two attributes per Korean line
    assert len(labels) == 50 + 315 + 100
    return labels


def test_groundtruth_reads_all_three_shapes_and_keeps_confidences(od_labels):
    for name, number, attr, value, meta, record in od_labels:
        whole = from_groundtruth(record, OD, label_attribute=attr)
        pair = from_groundtruth({"label": value, "metadata": meta}, OD)
        bare = from_groundtruth(value, OD, class_names=meta["class-map"])
        assert whole.value == value == pair.value == bare.value, (name, number)
        assert whole.metadata["objects"] == meta["objects"]
        assert whole.metadata["class-map"] == meta["class-map"]
        # job-level fields are the new job's business; an adjustment job's verdict stays with the label
        assert not {"type", "job-name", "creation-date", "human-annotated"} & set(whole.metadata)
        assert whole.metadata.get("adjustment-status") == meta.get("adjustment-status")
        assert whole.metadata_order == tuple(meta)
        assert bare.metadata["objects"] == [{}] * len(value["annotations"])  # no score, not 0.0
        assert from_groundtruth(to_groundtruth(value, meta), OD).metadata == pair.metadata


def test_groundtruth_line_with_two_attributes_needs_a_name():
    record = orjson.loads((GT / OD_FILES[2]).read_bytes().splitlines()[0])
    with pytest.raises(FormatError, match="several object-detection labels") as exc:
        from_groundtruth(record, OD)
    assert exc.value.rule == "format-groundtruth"
    chained = from_groundtruth(record, OD, label_attribute="suneung-korean-layout-detection-v2-chain")
    assert chained.value == record["suneung-korean-layout-detection-v2-chain"]


def test_a_failed_label_beside_its_value_is_no_label_in_any_shape():
    """A ``failure-reason`` fails the label even beside a value (validate's ``failure-with-label``):
    never read as a label, nor counted among "several"."""
    record = orjson.loads((GT / OD_FILES[2]).read_bytes().splitlines()[0])
    first, chain = "suneung-korean-layout-detection-v2", "suneung-korean-layout-detection-v2-chain"
    failed = {**record, f"{chain}-metadata": {**record[f"{chain}-metadata"], "failure-reason": "worker timed out"}}
    assert from_groundtruth(failed, OD).value == record[first]  # the one label left
    with pytest.raises(FormatError, match=f"no object-detection label \\('{chain}' holds a failure-reason\\)") as exc:
        from_groundtruth(failed, OD, label_attribute=chain)
    assert exc.value.key == f"{chain}-metadata"
    pair = {"label": record[chain], "metadata": failed[f"{chain}-metadata"]}
    with pytest.raises(FormatError, match="no object-detection label \\('label' holds a failure-reason\\)"):
        from_groundtruth(pair, OD)
    both = {**failed, f"{first}-metadata": {**record[f"{first}-metadata"], "failure-reason": "worker timed out"}}
    with pytest.raises(FormatError, match=f"no object-detection label \\('{first}' holds a failure-reason\\)"):
        from_groundtruth(both, OD)


def test_objects_round_trip_every_real_line(od_labels):
    for name, number, _, value, meta, _ in od_labels:
        doc = gt_to_objects(OD, value, meta)
        assert [o["id"] for o in doc["objects"]] == [f"obj_{i + 1:03d}" for i in range(len(value["annotations"]))]
        back = objects_to_gt(doc, OD, image_size=_size(value))
        assert back.value == value, (name, number)
        assert back.metadata["objects"] == meta["objects"]
        assert back.metadata["class-map"] == _used_class_map(value, meta)
        assert detect_input_format(doc) == "synapse-objects"
        assert to_label(orjson.dumps(doc), "auto", OD, image_size=_size(value)).value == value


@pytest.mark.slow
def test_dm_v1_round_trip_every_real_line(od_labels):
    for name, number, _, value, meta, _ in od_labels:
        doc = gt_to_dm_v1(OD, value, meta, confidence_attribute="confidence")
        assert doc == gt_to_dm_v1(OD, value, meta, confidence_attribute="confidence")  # deterministic
        anns, data = doc["annotations"]["image_1"], doc["annotationsData"]["image_1"]
        assert [a["id"] for a in anns] == [d["id"] for d in data]
        assert all(a["tool"] == "bounding_box" for a in anns)
        # names only: ids come back from the class list
        class_names = {int(k): v for k, v in meta["class-map"].items()}
        back = dm_v1_to_gt(doc, OD, image_size=_size(value), class_names=class_names)
        assert back.value == value, (name, number)
        assert back.metadata["objects"] == meta["objects"]
        assert detect_input_format(orjson.dumps(doc).decode()) == "dm-schema-v1"
        # without the confidence attribute the data carries no confidence at all
        plain = gt_to_dm_v1(OD, value, meta)
        assert all(set(a["classification"]) == {"class"} for a in plain["annotations"]["image_1"])
        assert dm_v1_to_gt(plain, OD, image_size=_size(value), class_names=class_names).metadata["objects"] == [
            {}
        ] * len(anns)


def test_coco_round_trip_every_real_line(od_labels):
    for name, number, _, value, meta, _ in od_labels:
        doc = gt_to_coco_image(value, meta, image_id=7, file_name="a.jpg")
        assert doc["images"] == [{"id": 7, "width": _size(value)[0], "height": _size(value)[1], "file_name": "a.jpg"}]
        assert all(a["image_id"] == 7 for a in doc["annotations"])
        back = coco_to_gt(doc, OD)
        assert back.value["annotations"] == value["annotations"], (name, number)
        assert back.value["image_size"][0]["width"] == _size(value)[0]
        # each box keeps its annotation's id (coco-id): the ids gt_to_coco_image gave, from 1
        assert [o.pop("coco-id") for o in back.metadata["objects"]] == list(range(1, len(value["annotations"]) + 1))
        assert back.metadata["objects"] == meta["objects"]
        assert back.metadata["class-map"] == _used_class_map(value, meta)
        assert detect_input_format(doc) == "coco"


@pytest.mark.slow
def test_yolo_round_trip_every_real_line(od_labels):
    for name, number, _, value, meta, _ in od_labels:
        text = gt_to_yolo(value, meta, confidence=True)
        assert len(text.splitlines()) == len(value["annotations"])
        if text:
            assert detect_input_format(text) == "yolo"
        back = yolo_to_gt(text, OD, image_size=_size(value), class_names=yolo_names(meta["class-map"]))
        assert back.metadata["objects"] == meta["objects"]
        assert back.metadata["class-map"] == _used_class_map(value, meta)
        for got, want in zip(back.value["annotations"], value["annotations"], strict=True):
            assert got["class_id"] == want["class_id"]
            for k in ("left", "top", "width", "height"):
                assert got[k] == pytest.approx(want[k], abs=1e-5), (name, number, k)
        without = yolo_to_gt(gt_to_yolo(value, meta), OD, image_size=_size(value), class_names=meta["class-map"])
        assert without.metadata["objects"] == [{}] * len(value["annotations"])


def test_yolo_names_keep_positions_for_sparse_ids():
    assert yolo_names({"5": "footer", "0": "header", "2": "q"}) == ["header", "class_1", "q", "class_3",
                                                                    "class_4", "footer"]


def test_yolo_reads_hand_written_text():
    text = "# comment\n0 0.5 0.5 0.5 0.25\n\n1 0.25 0.75 0.1 0.1 0.9\n"
    lab = yolo_to_gt(text.encode(), OD, image_size=(200, 100, 3), class_names=["cat", "dog"])
    assert lab.value == {
        "image_size": [{"width": 200, "height": 100, "depth": 3}],
        "annotations": [
            {"class_id": 0, "left": 50, "top": 37.5, "width": 100, "height": 25},
            {"class_id": 1, "left": 40, "top": 70, "width": 20, "height": 10},
        ],
    }
    assert lab.metadata == {"objects": [{}, {"confidence": 0.9}], "class-map": {"0": "cat", "1": "dog"}}


def test_classification_round_trips_on_real_lines():
    labels = _labels(IC_FILES)
    assert len(labels) == 100
    for name, number, _, value, meta, record in labels:
        lab = from_groundtruth(record, "image-classification")
        assert lab.value == value
        assert lab.metadata == {"class-name": meta["class-name"], "confidence": meta["confidence"]}
        names = {value: meta["class-name"]}
        dm = gt_to_dm_v1("image-classification", value, meta, confidence_attribute="confidence")
        assert dm["annotations"]["image_1"][0]["tool"] == "classification"
        back = dm_v1_to_gt(dm, "image-classification", class_names=names)
        assert (back.value, back.metadata) == (lab.value, lab.metadata), (name, number)
        objs = gt_to_objects("image-classification", value, meta)
        back = objects_to_gt(objs, "image-classification")
        assert (back.value, back.metadata) == (lab.value, lab.metadata), (name, number)
        assert to_label(value, "groundtruth", "image-classification", class_names=names).metadata["class-name"] == (
            meta["class-name"]
        )


def test_multilabel_through_dm_v1():
    meta = {"class-map": {"1": "bicycle", "0": "person", "8": "clothing"},
            "confidence-map": {"1": 0.95, "0": 0.77, "8": 0.2}}
    dm = gt_to_dm_v1("image-classification-multilabel", [1, 0, 8], meta, confidence_attribute="confidence")
    assert [a["classification"]["class"] for a in dm["annotations"]["image_1"]] == ["bicycle", "person", "clothing"]
    back = dm_v1_to_gt(dm, "image-classification-multilabel", class_names={0: "person", 1: "bicycle", 8: "clothing"})
    assert back.value == [1, 0, 8]
    assert back.metadata == meta


def test_dm_v1_names_get_first_seen_ids_or_class_list_ids():
    doc = {
        "annotations": {"image_1": [
            {"id": "a", "tool": "bounding_box", "classification": {"class": "dog"}},
            {"id": "b", "tool": "polygon", "classification": {"class": "road"}},
            {"id": "c", "tool": "bounding_box", "classification": {"class": "cat"}},
            {"id": "d", "tool": "bounding_box", "classification": {"class": "dog"}},
        ]},
        "annotationsData": {"image_1": [
            {"id": "c", "coordinate": {"x": 1, "y": 2, "width": 3, "height": 4}},
            {"id": "a", "coordinate": {"x": 5, "y": 6, "width": 7, "height": 8}},
            {"id": "b", "points": []},
            {"id": "d", "coordinate": {"x": 0, "y": 0, "width": 1, "height": 1}},
        ]},
    }
    first_seen = dm_v1_to_gt(doc, OD, image_size=(10, 10, 3))
    assert [a["class_id"] for a in first_seen.value["annotations"]] == [0, 1, 0]
    assert first_seen.value["annotations"][0] == {"class_id": 0, "left": 5, "top": 6, "width": 7, "height": 8}
    assert first_seen.metadata["class-map"] == {"0": "dog", "1": "cat"}
    listed = dm_v1_to_gt(doc, OD, image_size=(10, 10, 3), class_names=["bird", "cat", "dog"])
    assert [a["class_id"] for a in listed.value["annotations"]] == [2, 1, 2]
    assert listed.metadata["class-map"] == {"2": "dog", "1": "cat"}
    with pytest.raises(FormatError, match="'cat' is not among") as exc:
        dm_v1_to_gt(doc, OD, image_size=(10, 10, 3), class_names=["dog"])
    assert exc.value.key == "annotations.image_1[2].classification.class"


@pytest.mark.parametrize(
    ("doc", "fmt", "kwargs", "match", "key"),
    [
        ({"objects": [{"class_id": 0, "type": "bbox", "coordinates": {"x": 1, "y": 1, "width": 2, "height": 2},
                       "properties": {"label": "a"}}]}, "synapse-objects", {}, "no image size", "image_size"),
        ({"objects": [{"class_id": 0, "type": "bbox", "coordinates": {"x": "1", "y": 1, "width": 2, "height": 2},
                       "properties": {"label": "a"}}]}, "synapse-objects", {"image_size": (9, 9, 3)},
         "finite number", "objects[0].coordinates.x"),
        ({"objects": [{"type": "bbox", "coordinates": {}}]}, "synapse-objects", {"image_size": (9, 9, 3)},
         "class_id or properties.label", "objects[0]"),
        ({"objects": [{"class_id": 0, "properties": {"label": "a", "confidence": 1.5},
                       "coordinates": {"x": 1, "y": 1, "width": 2, "height": 2}}]}, "synapse-objects",
         {"image_size": (9, 9, 3)}, "between 0 and 1", "objects[0].properties.confidence"),
        ({"annotations": {"image_1": [{"id": "x", "tool": "bounding_box", "classification": {"class": "a"}}]},
          "annotationsData": {"image_1": []}}, "dm-schema-v1", {"image_size": (9, 9, 3)},
         "no annotationsData entry", "annotations.image_1[0].id"),
        ({"images": [{"id": 1, "width": 10, "height": 10}], "categories": [{"id": 1, "name": "a"}],
          "annotations": [{"image_id": 1, "category_id": 2, "bbox": [0, 0, 1, 1]}]}, "coco", {},
         "category_id 2 is not in", "annotations[0].category_id"),
        ({"images": [{"id": 1, "width": 10, "height": 10}], "categories": [{"id": 1, "name": "a"}],
          "annotations": [{"image_id": 1, "category_id": 1, "bbox": [0, 0, 1]}]}, "coco", {},
         "bbox", "annotations[0].bbox"),
        ({"images": [{"id": 1, "width": 0, "height": 10}], "categories": [], "annotations": []}, "coco", {},
         "width must be a positive integer", "image_size.width"),
        ("0 0.5 0.5 0.2", "yolo", {"image_size": (9, 9, 3), "class_names": ["a"]}, "got 4 fields", "row 1"),
        ("0 50 50 20 20", "yolo", {"image_size": (9, 9, 3), "class_names": ["a"]}, "not normalised", "row 1.cx"),
        ("3 0.5 0.5 0.2 0.2", "yolo", {"image_size": (9, 9, 3), "class_names": ["a"]},
         r"class id 3 is outside the class names given \(1 name, id 0\)",
         "row 1.class"),
        ("0 0.5 0.5 0.2 0.2", "yolo", {"image_size": (9, 9, 3)}, "--class-names FILE", "class_names"),
        ({"image_size": [{"width": 5, "height": 5, "depth": 3}], "annotations": [{"class_id": 0, "left": 1}]},
         "groundtruth", {"class_names": ["a"]}, "lacks top, width, height", "annotations[0]"),
        ({"image_size": [{"width": 5, "height": 5, "depth": 3}], "annotations": [{"class_id": 0, "left": 1,
          "top": 1, "width": 1, "height": 1}]}, "groundtruth", {}, "no name for class id 0", "annotations[0].class_id"),
        ({"label": 3, "metadata": {"type": "groundtruth/image-classification", "class-name": "x"}}, "groundtruth", {},
         "not 'object-detection'", "type"),
        ({"src": 1, "a-metadata": {"failure-reason": "boom"}}, "groundtruth", {}, "holds a failure-reason", "a"),
    ],
)
def test_bad_documents_fail_with_key_and_rule(doc, fmt, kwargs, match, key):
    with pytest.raises(FormatError, match=match) as exc:
        to_label(doc, fmt, OD, **kwargs)
    err = exc.value
    assert isinstance(err, ManifestError) and isinstance(err, ValueError)
    assert err.rule == f"format-{fmt}"
    assert err.key == key
    assert f"[format-{fmt}]" in str(err)


@pytest.mark.parametrize(
    ("doc", "match"),
    [
        (b"\xff\xfe", "not UTF-8"),
        ("{not json", "not a JSON document"),
        ("hello world", "neither JSON nor YOLO"),
        ({"foo": 1}, "cannot tell the format"),
        (True, "cannot tell the format"),
    ],
)
def test_detect_refuses_unknown_documents(doc, match):
    with pytest.raises(FormatError, match=match):
        to_label(doc, "auto", OD, image_size=(1, 1, 3))


def test_unknown_format_name_and_unforeseen_shapes_still_fail_cleanly():
    with pytest.raises(FormatError, match="unknown input format 'pascal'"):
        to_label({}, "pascal", OD)
    # annotations of the wrong type deep inside: one FormatError, no traceback
    with pytest.raises(FormatError):
        to_label({"objects": [{"class_id": 0, "coordinates": [1, 2], "properties": {"label": "a"}}]},
                 "synapse-objects", OD, image_size=(9, 9, 3))


def test_formats_that_do_not_carry_a_task_type_say_so():
    with pytest.raises(FormatError, match="does not carry task type 'semantic-segmentation'"):
        to_label("", "yolo", "semantic-segmentation", image_size=(1, 1, 3), class_names=[])


def test_empty_image_converts_everywhere():
    value = {"image_size": [{"width": 512, "height": 384, "depth": 3}], "annotations": []}
    meta = {"objects": [], "class-map": {}}
    assert gt_to_yolo(value, meta) == ""
    assert yolo_to_gt("", OD, image_size=(512, 384, 3), class_names=[]).value == value
    assert objects_to_gt(gt_to_objects(OD, value, meta), OD, image_size=(512, 384, 3)).metadata == meta
    assert dm_v1_to_gt({"annotations": {}, "annotationsData": {}}, OD, image_size=(512, 384, 3)).value == value
    assert coco_to_gt(gt_to_coco_image(value, meta), OD).value == value


# --- property-based: any boxes survive every format -----------------------------------------------

_coord = st.floats(min_value=0, max_value=4000, allow_nan=False, allow_infinity=False)


@st.composite
def _detections(draw):
    width = draw(st.integers(1, 5000))
    height = draw(st.integers(1, 5000))
    # names the class-name rule takes (a character other than white space: '\r' alone is refused)
    names = draw(st.lists(st.text(min_size=1, max_size=12).filter(lambda t: class_name_problem(t) is None),
                          min_size=1, max_size=6, unique=True))
    n = draw(st.integers(0, 12))
    anns, objs = [], []
    for _ in range(n):
        left = draw(st.floats(0, width, allow_nan=False))
        top = draw(st.floats(0, height, allow_nan=False))
        w = draw(st.floats(0, width - left, allow_nan=False))
        h = draw(st.floats(0, height - top, allow_nan=False))
        anns.append({"class_id": draw(st.integers(0, len(names) - 1)), "left": left, "top": top, "width": w,
                     "height": h})
        objs.append({"confidence": draw(st.floats(0, 1, allow_nan=False))})
    used = {str(a["class_id"]): names[a["class_id"]] for a in anns}
    value = {"image_size": [{"width": width, "height": height, "depth": 3}], "annotations": anns}
    return value, {"objects": objs, "class-map": used}, names


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_detections())
@pytest.mark.slow
def test_any_detection_round_trips(case):
    value, meta, names = case
    size = _size(value)
    coco = coco_to_gt(gt_to_coco_image(value, meta), OD)
    # each box keeps its COCO annotation's id (coco-id): the ids gt_to_coco_image gave, from 1
    assert [o.pop("coco-id") for o in coco.metadata["objects"]] == list(range(1, len(value["annotations"]) + 1))
    for back in (
        objects_to_gt(gt_to_objects(OD, value, meta), OD, image_size=size),
        dm_v1_to_gt(gt_to_dm_v1(OD, value, meta, confidence_attribute="confidence"), OD, image_size=size,
                    class_names=names),
        coco,
    ):
        assert back.value == value
        assert back.metadata == {"objects": meta["objects"], "class-map": meta["class-map"]}
    back = yolo_to_gt(gt_to_yolo(value, meta, confidence=True), OD, image_size=size, class_names=names)
    assert back.metadata["objects"] == meta["objects"]
    for got, want in zip(back.value["annotations"], value["annotations"], strict=True):
        for k in ("left", "top", "width", "height"):
            assert got[k] == pytest.approx(want[k], abs=1e-5 * max(size))


@pytest.mark.parametrize(("doc", "fmt"), [
    ({"objects": []}, "synapse-objects"),
    ({"objects": [{"class_id": 0}], "id": 3}, "synapse-objects"),
    ({"objects": [], "boxes": {}, "boxes-metadata": {}}, "groundtruth"),  # a manifest line holding "objects"
    ({"objects": {}, "image_size": [{"width": 1, "height": 1}]}, "groundtruth"),
    ({"objects": None, "images": [], "categories": []}, "coco"),
])
def test_a_parsed_document_is_named_as_its_text_is(doc, fmt):
    """``detect_input_format`` names a plain ``objects`` dict before its general checks (a file job
    meets one on every line); the text of the same document takes the general checks: both agree."""
    assert detect_input_format(doc) == detect_input_format(orjson.dumps(doc)) == fmt
