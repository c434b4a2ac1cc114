"""Heads and the labeler without a model: what each kind of output means, and what a line gets."""

from __future__ import annotations

import io

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from PIL import Image  # noqa: E402

from totask_manifest._errors import JobError, UsageError  # noqa: E402
from totask_manifest._models.heads import HEADS, ClassifierHead, DetectorHead, SegmenterHead, head_for  # noqa: E402
from totask_manifest._models.labeler import Labeler, PendingMask  # noqa: E402
from totask_manifest._models.params import resolve_params  # noqa: E402
from totask_manifest._models.runners import ModelRunner, predict_each  # noqa: E402
from totask_manifest._outcomes import Failed, Item, Labeled, Routed  # noqa: E402

ITEM = Item(0, 7, {"source-ref": "x.jpg"})


def test_a_head_per_task_type_each_with_its_own_input():
    assert set(HEADS) == {"object-detection", "image-classification", "image-classification-multilabel",
                          "semantic-segmentation"}
    assert isinstance(head_for("object-detection"), DetectorHead)
    assert head_for("image-classification-multilabel").multilabel and not head_for("image-classification").multilabel
    with pytest.raises(UsageError, match="cannot label task type 'text-span'"):
        head_for("text-span")
    images = [np.full((4, 6, 3), 255, dtype=np.uint8), np.zeros((4, 6, 3), dtype=np.uint8)]
    det = DetectorHead().tensors(images, lambda t: t.permute(0, 3, 1, 2).float())
    assert isinstance(det, list) and det[0].shape == (3, 4, 6)
    stacked = SegmenterHead().tensors(images, lambda t: t.permute(0, 3, 1, 2).float() / 255)
    assert stacked.shape == (2, 3, 4, 6) and float(stacked[0].min()) == 1.0
    assert DetectorHead().input_size((8, 8), (9, 9)) is None
    assert SegmenterHead().input_size(None, (9, 9)) == (9, 9)
    assert ClassifierHead(False).input_size(None, None) == (224, 224)


def test_output_checks_name_the_shape_the_kind_needs():
    with pytest.raises(JobError, match=r"a classifier must return \[B, C\] for a batch of 2"):
        ClassifierHead(False).outputs(torch.zeros(2, 3, 4, 4), 2)
    assert len(SegmenterHead().outputs({"out": torch.zeros(2, 3, 4, 4)}, 2)) == 2
    with pytest.raises(JobError, match="a detector must return a list of 2 dicts"):
        DetectorHead().outputs([{}], 2)
    boxes = {"boxes": torch.tensor([[1.0, 2.0, 3.0, 4.0]]), "scores": torch.tensor([0.9]), "labels": torch.tensor([0])}
    assert DetectorHead().outputs((None, [boxes]), 1)[0]["boxes"].dtype == torch.float32
    scaled = DetectorHead().rescale(boxes, 2.0, 4.0)
    assert scaled["boxes"].tolist() == [[2.0, 8.0, 6.0, 16.0]]
    assert SegmenterHead().rescale(boxes, 2.0, 4.0) is boxes


def test_endpoint_probabilities_become_logits_for_both_classifiers():
    single = ClassifierHead(False).from_json({"probabilities": [0.25, 0.75]})
    assert single["logits"] == pytest.approx([np.log(0.25), np.log(0.75)])
    multi = ClassifierHead(True).from_json({"probabilities": [0.5]})
    assert multi["logits"] == pytest.approx([0.0])
    assert isinstance(ClassifierHead(False).from_json({"probabilities": ["x"]}), JobError)
    assert DetectorHead().from_json({"probabilities": [0.5]}) == {"probabilities": [0.5]}


def labeler(task_type: str, tmp_path, **params):
    return Labeler(head_for(task_type), resolve_params(params, task_type), task_type=task_type,
                   class_names=["bg", "cat", "dog"], review_below=0.6, job_url=str(tmp_path / "job"))


def test_labeler_routes_labels_and_names_mask_files(tmp_path):
    single = labeler("image-classification", tmp_path, confidence_threshold=0.5)
    assert isinstance(single.outcome(ITEM, RuntimeError("boom"), 0, 0, 0), Failed)
    sure = single.outcome(ITEM, torch.tensor([0.0, 5.0, 0.0]), 0, 0, 0)
    assert isinstance(sure, Labeled) and sure.value == 1
    unsure = single.outcome(ITEM, torch.tensor([0.0, 0.1, 0.0]), 0, 0, 0)
    assert isinstance(unsure, Routed) and "below confidence_threshold 0.5" in unsure.reason
    between = single.outcome(ITEM, torch.tensor([0.0, 0.9, 0.0]), 0, 0, 0)  # p = 0.55: labeled, but < 0.6
    assert isinstance(between, Routed) and "below --review-below 0.6" in between.reason

    seg = labeler("semantic-segmentation", tmp_path)
    logits = torch.zeros(3, 2, 2)
    logits[2] = 9.0
    pending = seg.outcome(ITEM, logits, 4, 4, 3)
    assert isinstance(pending, PendingMask) and pending.url.endswith("job/annotations/masks/7.png")
    written = pending.write()
    mask = Image.open(io.BytesIO((tmp_path / "job/annotations/masks/7.png").read_bytes()))
    assert written.value == pending.url and mask.mode == "P" and set(np.asarray(mask).flat) == {2}

    with pytest.raises(UsageError, match="unknown class name 'cow'"):
        labeler("object-detection", tmp_path, class_filter=["cow"])
    assert labeler("object-detection", tmp_path, class_filter=["dog", 1]).allowed == {1, 2}


class _Flaky(ModelRunner):
    """Fails any batch holding a negative input; the inputs are numbers."""

    description = "flaky"

    def predict(self, inputs):
        if any(v < 0 for v in inputs):
            raise RuntimeError("negative")
        if any(v == 99 for v in inputs):
            raise JobError("model output: wrong shape")
        return [v * 2 for v in inputs]

    def close(self):
        pass


def test_a_bad_input_fails_alone_and_a_misfit_model_stops():
    runner = _Flaky(ClassifierHead(False), None, None)
    assert predict_each(runner, [1, 2]) == [2, 4]
    out = predict_each(runner, [1, -1, 3])
    assert out[0] == 2 and out[2] == 6 and isinstance(out[1], JobError) and "RuntimeError: negative" in str(out[1])
    with pytest.raises(JobError, match="wrong shape"):
        predict_each(runner, [1, 99])
