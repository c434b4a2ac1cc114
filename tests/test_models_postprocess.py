"""Post-processing without a model: detections to GT boxes, classification, segmentation, params."""

from __future__ import annotations

import io
import math

import pytest

torch = pytest.importorskip("torch")

from totask_manifest._errors import JobError, UsageError  # noqa: E402
from totask_manifest._imaging import class_colors, mask_png  # noqa: E402
from totask_manifest._manifest.validate import check_label  # noqa: E402
from totask_manifest._models import postprocess as pp  # noqa: E402
from totask_manifest._models.params import load_params_file, resolve_params  # noqa: E402

META = {"type": "groundtruth/object-detection", "job-name": "labeling-job/x", "human-annotated": "no",
        "creation-date": "2026-01-01T00:00:00.000000"}


def detect(pred, **kw):
    args = {"width": 100, "height": 50, "confidence_threshold": 0.5, "nms_threshold": 0.5, **kw}
    return pp.filter_detections(pred, **args)


def test_boxes_are_clipped_ordered_and_converted():
    pred = {
        "boxes": torch.tensor([[-5.0, 10, 20, 30], [90, 40, 120, 70], [10, 10, 30, 30], [50, 5, 50.5, 9]]),
        "scores": torch.tensor([0.6, 0.95, 0.7, 0.9]),
        "labels": torch.tensor([0, 1, 2, 0]),
    }
    det = detect(pred)
    # clipped to the image; ordered by score
    assert det.boxes == [[90, 40, 100, 50], [50, 5, 50.5, 9], [10, 10, 30, 30], [0, 10, 20, 30]]
    value, meta = pp.detection_label(det, width=100, height=50, depth=3, class_names=["a", "b", "c"])
    assert value["annotations"][0] == {"class_id": 1, "left": 90, "top": 40, "width": 10, "height": 10}
    assert value["annotations"][1] == {"class_id": 0, "left": 50, "top": 5, "width": 0.5, "height": 4}
    assert isinstance(value["annotations"][0]["left"], int)
    assert meta["class-map"] == {"1": "b", "0": "a", "2": "c"}
    assert [o["confidence"] for o in meta["objects"]] == [0.95, 0.9, 0.7, 0.6]
    assert check_label("object-detection", value, {**meta, **META}) == []
    assert detect(pred, min_object_size=5).labels == [1, 2, 0]  # the 0.5-wide box is gone
    assert detect(pred, allowed={0}).labels == [0, 0]


def test_a_box_under_min_object_size_counts_in_no_confidence():
    """The image's confidence is over the boxes written: a box under ``min_object_size`` is no
    candidate, so one the threshold drops too is not the best dropped (an image whose every box is
    too small reads as one with no box: confidence 1), as a box the class filter leaves out."""
    none = detect({"boxes": torch.zeros(0, 4), "scores": torch.zeros(0), "labels": torch.zeros(0)})
    small = {"boxes": [[2, 2, 4, 4], [10, 10, 12, 40]], "scores": [0.45, 0.95], "labels": [0, 0]}
    assert detect(small).confidence == pytest.approx(0.95)
    assert detect(small, min_object_size=5) == none and none.confidence == 1.0
    big = {"boxes": [[2, 2, 4, 4], [10, 10, 40, 40], [50, 10, 80, 40]], "scores": [0.45, 0.3, 0.9], "labels": [0, 0, 0]}
    kept = detect(big, min_object_size=5)
    assert kept.boxes == [[50, 10, 80, 40]] and kept.confidence == pytest.approx(0.9)
    assert detect({**big, "scores": [0.45, 0.3, 0.2]}, min_object_size=5).confidence == pytest.approx(0.7)


@pytest.mark.parametrize(("box", "axis"), [([30.5, 10, 10, 20], "x2 < x1"), ([10, 30, 20, 10], "y2 < y1")])
def test_a_reversed_box_is_refused_not_turned_around(box, axis):
    """x1 y1 x2 y2 with x2 < x1 (or y2 < y1) breaks torchvision's box protocol (a model giving
    x, y, width, height, say); it used to be swapped into a box the model never drew."""
    pred = {"boxes": [[2, 2, 8, 8], box], "scores": [0.9, 0.8], "labels": [0, 1]}
    with pytest.raises(pp.PredictionRefused) as err:
        detect(pred)
    assert str(err.value) == (f"boxes[1] is {box} (x1 y1 x2 y2), so {axis}: a detector's boxes are x1 y1 x2 y2 "
                              "with x1 <= x2 and y1 <= y2 (torchvision's convention); is it x y width height?")
    assert isinstance(err.value, JobError)
    # a reversed box the threshold or the class filter leaves out is never written: nothing refused
    assert detect(pred, confidence_threshold=0.85).boxes == [[2, 2, 8, 8]]
    assert detect(pred, allowed={0}).boxes == [[2, 2, 8, 8]]


def test_nonfinite_degenerate_and_empty_predictions():
    pred = {"boxes": [[0, 0, math.nan, 5], [1, 1, 4, 9], [2, 2, 8, 8]], "scores": [0.9, 0.2, math.inf], "labels": [0, 0, 0]}
    assert detect(pred).boxes == []
    empty = detect({"boxes": torch.zeros(0, 4), "scores": torch.zeros(0), "labels": torch.zeros(0)})
    assert empty.boxes == [] and empty.confidence == 1.0
    value, meta = pp.detection_label(empty, width=3, height=4, depth=1, class_names=[])
    assert value == {"image_size": [{"width": 3, "height": 4, "depth": 1}], "annotations": []}
    assert meta == {"objects": [], "class-map": {}}
    assert check_label("object-detection", value, {**meta, **META}) == []


def _refused_second(box: list[float], said: str) -> dict:
    """A sure good box and ``box``: the prediction refused, whatever min_object_size, as ``said``
    (the words between "boxes[1] is" and the rule's reason). Returns the prediction."""
    pred = {"boxes": [[2, 2, 8, 8], box], "scores": [0.9, 0.8], "labels": [0, 0]}
    for min_size in (0, 5):
        with pytest.raises(pp.PredictionRefused) as err:
            detect(pred, min_object_size=min_size)
        assert str(err.value) == (f"boxes[1] is {said}: a box with no area marks nothing in the image "
                                  "(does the model collapse its boxes?)")
    return pred


@pytest.mark.parametrize(("box", "side"), [([3, 3, 3, 3], "zero width and height"), ([1, 1, 1, 9], "zero width"),
                                          ([2, 40, 9.5, 40], "zero height")])
def test_a_sure_box_of_zero_area_fails_its_line_as_one_wholly_outside_does(box, side):
    """A detector that collapses its boxes (x2 = x1) had each one dropped by the clip's size
    filter, even with min_object_size 0: the line read as an image with no object, confidence
    1, and --review-below routed nothing. Nothing is left of it once clipped, as of a box wholly
    outside, so the one rule (docs/inference.md) refuses both."""
    pred = _refused_second(box, f"{box} (x1 y1 x2 y2), of {side}")
    # under the threshold or filtered out, it is never written: nothing refused
    assert detect(pred, confidence_threshold=0.85).boxes == [[2, 2, 8, 8]]
    assert detect({**pred, "labels": [0, 1]}, allowed={0}).boxes == [[2, 2, 8, 8]]
    # wholly outside and flat: named as outside, the cause a detector more likely has
    with pytest.raises(pp.PredictionRefused, match=r"boxes\[0\] is \[120, 3, 120, 3\] .* wholly outside the 100x50 image"):
        detect({"boxes": [[120, 3, 120, 3]], "scores": [0.9], "labels": [0]})


@pytest.mark.parametrize(("box", "said"), [
    ([0, 0, 1e-9, 1e-9], "[0, 0, 0, 0] (x1 y1 x2 y2), of zero width and height once clipped and written to 2 decimals "
                         "(1e-09 x 1e-09 px)"),
    ([3, 3, 3.004, 10], "[3, 3, 3.004, 10] (x1 y1 x2 y2), of zero width once clipped and written to 2 decimals "
                        "(0.004 px wide)"),
    ([3, 3, 9, 3.004], "[3, 3, 9, 3.004] (x1 y1 x2 y2), of zero height once clipped and written to 2 decimals "
                       "(0.004 px high)"),
    # partly outside: what is left once clipped is 0.003 px wide
    ([-5, 3, 0.003, 10], "[-5, 3, 0.003, 10] (x1 y1 x2 y2), of zero width once clipped and written to 2 decimals "
                         "(0.003 px wide)"),
])
def test_a_box_under_half_a_hundredth_of_a_pixel_fails_its_line_as_written(box, said):
    """The zero-area rule looked at the box before its 2-decimal rounding: a box 0.004 px wide
    passed it and was written ``"width": 0``, the job COMPLETED, validate and COCO (area 0) took
    it. The rule holds on what is written; the message shows the digits that rounding hides."""
    _refused_second(box, said)


def test_a_box_a_hundredth_of_a_pixel_wide_is_written_so():
    """The boundary is the one rounding draws: 0.005 px is written 0.01 and passes, with the
    sizes ``detection_label`` writes (never 0)."""
    det = detect({"boxes": [[3, 3, 3.005, 10], [20, 3, 20.006, 10]], "scores": [0.9, 0.8], "labels": [0, 0]})
    value, meta = pp.detection_label(det, width=100, height=50, depth=3, class_names=["a"])
    assert [(a["width"], a["height"]) for a in value["annotations"]] == [(0.01, 7), (0.01, 7)]
    assert check_label("object-detection", value, {**meta, **META}) == []


def test_confidence_for_review_is_min_kept_or_one_minus_best_dropped():
    pred = {"boxes": [[0, 0, 5, 5], [10, 10, 20, 20], [30, 30, 40, 40]], "scores": [0.9, 0.7, 0.3], "labels": [0, 1, 0]}
    assert detect(pred).confidence == pytest.approx(0.7)
    only_dropped = detect(pred, confidence_threshold=0.95)
    assert only_dropped.scores == [] and only_dropped.confidence == pytest.approx(0.1)


def test_malformed_model_outputs_stop_with_a_clear_error():
    with pytest.raises(JobError, match="'boxes', 'scores' and 'labels'"):
        detect({"boxes": []})
    with pytest.raises(JobError, match=r"must be \[N, 4\]"):
        detect({"boxes": torch.zeros(2, 5), "scores": torch.zeros(2), "labels": torch.zeros(2)})
    with pytest.raises(JobError, match="differ in length"):
        detect({"boxes": torch.zeros(2, 4), "scores": torch.zeros(3), "labels": torch.zeros(2)})
    det = detect({"boxes": [[0, 0, 5, 5]], "scores": [0.9], "labels": [7]})
    with pytest.raises(JobError, match="class id 7 but only 2 class name"):
        pp.detection_label(det, width=9, height=9, depth=3, class_names=["a", "b"])


def test_classification_single_and_multi():
    names = ["cat", "dog", "bird"]
    c = pp.classify_single([2.0, 1.0, 0.0], class_names=names, confidence_threshold=0.0)
    assert c.value == 0 and c.metadata["class-name"] == "cat"
    assert c.metadata["confidence"] == round(math.exp(2) / (math.exp(2) + math.exp(1) + 1), 4)
    assert pp.classify_single([2.0, 1.0, 0.0], class_names=names, confidence_threshold=0.0, allowed={1, 2}).value == 1
    assert pp.classify_single([2.0, 1.0, 0.0], class_names=names, confidence_threshold=0.9).below_threshold
    with pytest.raises(JobError, match="3 logits but 2 class names"):
        pp.classify_single([1.0, 2.0, 3.0], class_names=["a", "b"], confidence_threshold=0)
    m = pp.classify_multi([3.0, -3.0, 0.5], class_names=names, confidence_threshold=0.5)
    assert m.value == [0, 2] and m.metadata["class-map"] == {"0": "cat", "2": "bird"}
    assert m.confidence == pytest.approx(1 / (1 + math.exp(-0.5)))  # the least sure decision
    assert pp.classify_multi([3.0, -3.0, 0.5], class_names=names, confidence_threshold=0.5, allowed={1}).value == []


def test_segmentation_names_colors_and_png():
    logits = torch.zeros(3, 2, 2)
    logits[1, 0, 0] = 10
    logits[2, 1, 1] = 10
    seg = pp.segment(logits, width=4, height=4, class_names=["road", "car"], confidence_threshold=0.0)
    assert seg.mask.tolist() == [[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 2, 2], [0, 0, 2, 2]]
    cmap = seg.metadata["internal-color-map"]
    assert [cmap[k]["class-name"] for k in "012"] == ["BACKGROUND", "road", "car"]
    assert cmap["0"]["hex-color"] == "#ffffff" and len({v["hex-color"] for v in cmap.values()}) == 3
    # unsure pixels become background
    unsure = pp.segment(logits, width=2, height=2, class_names=["road", "car"], confidence_threshold=0.9)
    assert unsure.mask.tolist() == [[1, 0], [0, 2]]
    from PIL import Image

    img = Image.open(io.BytesIO(mask_png(seg.mask, seg.palette)))
    assert img.mode == "P" and img.getpixel((3, 3)) == 2
    with pytest.raises(JobError, match="3 channels"):
        pp.segment(logits, width=2, height=2, class_names=["a"], confidence_threshold=0)
    assert len(set(class_colors(60))) == 60


def test_params_defaults_aliases_and_errors(tmp_path):
    p = resolve_params({})
    assert p == {"confidence_threshold": None, "nms_threshold": 0.5, "class_filter": None, "min_object_size": 0.0,
                 "max_objects": 100, "model_config": {"batch_size": 16, "device": "auto", "use_fp16": False},
                 "include_masks": None, "output_format": "groundtruth"}
    # the guide's example, word for word
    guide = {"confidence_threshold": 0.85, "nms_threshold": 0.5,
             "model_config": {"batch_size": 16, "device": "cuda", "use_fp16": True},
             "class_filter": [1, 2, 3], "min_object_size": 20}
    assert resolve_params(guide, "object-detection")["class_filter"] == [1, 2, 3]
    bad = [
        ({"max_objects": 0}, "max_objects must be at least 1"),
        ({"max_objects": 2.5}, "max_objects must be an integer"),
        ({"model_config": {"batch_size": "16"}}, "model_config.batch_size must be an integer"),
        ({"model_config": {"gpu": 1}}, "unknown parameter.*'gpu'.*in model_config"),
        ({"model_config": {"use_fp16": "yes"}}, "use_fp16 must be true or false"),
        ({"class_filter": []}, "class_filter must be a non-empty list"),
        ({"class_filter": [True]}, "class_filter must hold class ids"),
        ({"post_processing": {"min_size": -1}}, "min_object_size must be at least 0"),
        ({"nms_threshold": "0.5"}, "nms_threshold must be a number"),
    ]
    for raw, message in bad:
        with pytest.raises(UsageError, match=message):
            resolve_params(raw, source="p.yaml")
    (tmp_path / "p.yaml").write_text("pre_processor_params:\n  confidence_threshold: 0.7\n  model_config:\n    device: cpu\n")
    loaded = load_params_file(str(tmp_path / "p.yaml"))
    assert resolve_params(loaded)["model_config"]["device"] == "cpu"
    (tmp_path / "p.json").write_text('{"confidence_threshold": 0.7,}')
    with pytest.raises(UsageError, match=r"p\.json: not valid JSON"):
        load_params_file(str(tmp_path / "p.json"))
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(UsageError, match="must hold a mapping"):
        load_params_file(str(tmp_path / "list.yaml"))
    with pytest.raises(UsageError, match="no such file"):
        load_params_file(str(tmp_path / "absent.yaml"))
    with pytest.raises(UsageError, match="unknown class name 'dog'"):
        pp.resolve_class_filter(["dog"], ["cat"])


def test_a_box_reversed_by_less_than_the_written_precision_is_named_by_its_real_axis():
    """x2 below x1 by less than a hundredth of a pixel: rounded, the two were equal and the
    reason said ``y2 < y1`` of a box whose y were in order."""
    pred = {"boxes": [[10.004, 10, 10.001, 20]], "scores": [0.9], "labels": [0]}
    with pytest.raises(pp.PredictionRefused) as err:
        detect(pred)
    message = str(err.value)
    assert "so x2 < x1" in message
    assert message.startswith("boxes[0] is [10.004, 10, 10.001, 20] (x1 y1 x2 y2)")
