"""What a model's output means, one class per kind of head: detector, classifier, segmenter.

A head owns everything that differs between kinds, so no other module asks which kind it has:
the input size images are resized to, how decoded pixels become the model's input tensors, the
check of the raw output, how an endpoint's JSON prediction is read, and the draft of the label
made from one prediction (thresholds, NMS, class filter: ``postprocess``). Routing for review and
writing masks are the labeler's (``models.labeler``).

torch is imported inside the methods, so this module imports without the ``inference`` extra.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from .._errors import JobError, UsageError
from .._outcomes import Routed
from . import postprocess as pp
from .transfers import detections_to_cpu, images_by_size

if TYPE_CHECKING:
    import torch

#: (height, width) a classifier or segmenter input is resized to when neither the flag nor the
#: model says
DEFAULT_INPUT_SIZE = 224


@dataclass(frozen=True)
class LabelRules:
    """What turns a prediction into a label: the job's parameters and the known classes."""

    class_names: Sequence[str]
    confidence_threshold: float
    nms_threshold: float | None = None
    min_object_size: float = 0.0
    max_objects: int = 100
    allowed: set[int] | None = None


@dataclass
class Draft:
    """A label made from one prediction, before routing: its value, metadata and the image's
    confidence (None: unscored). A segmenter's value is a mask still to be written (``mask``)."""

    value: Any
    metadata: dict
    confidence: float | None
    mask: pp.Segmentation | None = None


class Head(ABC):
    """One kind of model output. ``kind`` names it in messages and the log only."""

    kind: ClassVar[str]
    #: inputs are stacked into one ``[B, 3, H, W]`` tensor of a fixed size (else a list of images)
    stacked: ClassVar[bool] = True
    #: labels need the image's width and height (an endpoint may not send them)
    needs_image_size: ClassVar[bool] = True
    #: its output's width is the number of classes whatever the image (``class_count_of``), so
    #: one forward at load can check it against the class names; a detector's is not
    counts_classes: ClassVar[bool] = False

    def input_size(self, given: tuple[int, int] | None, declared: tuple[int, int] | None) -> tuple[int, int] | None:
        """(height, width) images are resized to: the flag, else the model's, else 224."""
        return given or declared or (DEFAULT_INPUT_SIZE, DEFAULT_INPUT_SIZE)

    def tensors(self, images: Sequence[Any], prepare: Callable[[torch.Tensor], torch.Tensor]) -> Any:
        """The model input for decoded uint8 ``H x W x 3`` arrays; ``prepare`` makes the uint8
        ``[B, H, W, 3]`` batch a ``[B, 3, H, W]`` one on the device, in the unit range (on a GPU
        the channels are moved there, not by the CPU)."""
        import numpy as np
        import torch

        return prepare(torch.from_numpy(np.stack(list(images))))

    @abstractmethod
    def outputs(self, out: Any, n: int) -> list[Any]:
        """One raw CPU prediction per image from a module's output for ``n`` images; ``JobError``
        when the output has the wrong shape (the model does not fit the task type)."""

    def class_count_of(self, pred: Any) -> tuple[int, str] | None:
        """How many classes one raw prediction scores and what they are called (``(3, "logits")``),
        where that is certain (``counts_classes``); None otherwise."""
        return None

    def class_names_needed(self, count: int, names: int) -> str | None:
        """None when ``names`` class names fit ``count`` outputs (``class_count_of``); else the rule
        they break, as the end of a message: one name per output."""
        return None if names == count else "it needs one class name per logit, in order"

    def rescale(self, pred: Any, scale_x: float, scale_y: float) -> Any:
        """A prediction on a reduced image back to the image as stored."""
        return pred

    def from_json(self, pred: dict[str, Any]) -> Any:
        """An endpoint's prediction in the form ``outputs`` gives (JSON lists instead of tensors)."""
        return pred

    @abstractmethod
    def draft(self, pred: Any, *, width: int, height: int, depth: int, rules: LabelRules) -> Draft | Routed:
        """The label of one prediction; ``Routed`` when the head itself has nothing to label."""


class DetectorHead(Head):
    kind = "detector"
    stacked = False

    def input_size(self, given: tuple[int, int] | None, declared: tuple[int, int] | None) -> None:
        return None  # a detector takes each image at its own size

    def tensors(self, images: Sequence[Any], prepare: Callable[[torch.Tensor], torch.Tensor]) -> list[torch.Tensor]:
        """One tensor per image at its own size; images of one size go to the device together."""
        return images_by_size(images, lambda group: super(DetectorHead, self).tensors(group, prepare))

    def outputs(self, out: Any, n: int) -> list[Any]:
        if isinstance(out, tuple) and len(out) == 2 and isinstance(out[1], list):
            out = out[1]  # torchvision detectors scripted return (losses, detections)
        if not isinstance(out, list | tuple) or len(out) != n:
            got = f"{type(out).__name__} of {len(out)}" if isinstance(out, list | tuple) else type(out).__name__
            raise JobError(f"model output: a detector must return a list of {n} dicts (one per image); got {got}")
        return detections_to_cpu(out)

    def rescale(self, pred: Any, scale_x: float, scale_y: float) -> Any:
        if (scale_x == 1.0 and scale_y == 1.0) or not isinstance(pred, dict) or pred.get("boxes") is None:
            return pred
        import torch

        boxes = pred["boxes"]
        if isinstance(boxes, torch.Tensor) and boxes.dim() == 2 and boxes.shape[-1] == 4:
            factor = torch.tensor([scale_x, scale_y, scale_x, scale_y], dtype=boxes.dtype)
            return {**pred, "boxes": boxes * factor}
        return pred

    def draft(self, pred: Any, *, width: int, height: int, depth: int, rules: LabelRules) -> Draft:
        det = pp.filter_detections(
            pred, width=width, height=height, confidence_threshold=rules.confidence_threshold,
            nms_threshold=rules.nms_threshold, min_object_size=rules.min_object_size,
            max_objects=rules.max_objects, allowed=rules.allowed,
        )
        value, meta = pp.detection_label(det, width=width, height=height, depth=depth, class_names=rules.class_names)
        return Draft(value, meta, det.confidence)


class _TensorHead(Head):
    """A head whose output is one tensor for the batch, ``dims`` dimensions."""

    dims: ClassVar[int]
    shape: ClassVar[str]

    def outputs(self, out: Any, n: int) -> list[Any]:
        import torch

        if not isinstance(out, torch.Tensor):
            out = first_tensor(out)
        if out.dim() != self.dims or out.shape[0] != n:
            raise JobError(
                f"model output: a {self.kind} must return {self.shape} for a batch of {n}; got shape {list(out.shape)}"
            )
        return list(out.float().cpu().unbind(0))  # one call: iterating the tensor is one per image


class ClassifierHead(_TensorHead):
    kind = "classifier"
    dims = 2
    shape = "[B, C]"
    needs_image_size = False
    counts_classes = True

    def __init__(self, multilabel: bool) -> None:
        self.multilabel = multilabel

    def class_count_of(self, pred: Any) -> tuple[int, str]:
        return pred.numel(), "logits"

    def from_json(self, pred: dict[str, Any]) -> Any:
        """Probabilities from an endpoint become logits (log p for softmax, logit p for sigmoid),
        so one post-processing path serves remote and local models."""
        if "logits" in pred or not isinstance(pred.get("probabilities"), list):
            return pred
        try:
            raw = [float(p) for p in pred["probabilities"]]
        except (TypeError, ValueError):
            return JobError("model endpoint: a prediction's 'probabilities' must be numbers")
        for i, p in enumerate(raw):  # 3.0 clamped to 1 read as a sure class: a logit sent as one
            if not -pp.SCORE_SLACK <= p <= 1 + pp.SCORE_SLACK:
                return JobError(f"model endpoint: a prediction's probabilities[{i}] is {p:g}, not between 0 and 1 "
                                "(send 'logits' for scores of another range)")
        probs = [min(max(p, 1e-7), 1 - 1e-7) for p in raw]
        logits = [math.log(p / (1 - p)) if self.multilabel else math.log(p) for p in probs]
        return {**pred, "logits": logits}

    def draft(self, pred: Any, *, width: int, height: int, depth: int, rules: LabelRules) -> Draft | Routed:
        logits = pred.get("logits") if isinstance(pred, dict) else pred
        if self.multilabel:
            c = pp.classify_multi(logits, class_names=rules.class_names,
                                  confidence_threshold=rules.confidence_threshold, allowed=rules.allowed)
            return Draft(c.value, c.metadata, c.confidence)
        c = pp.classify_single(logits, class_names=rules.class_names,
                               confidence_threshold=rules.confidence_threshold, allowed=rules.allowed)
        if c.below_threshold:
            return Routed(
                f"top confidence {c.confidence:.3f} is below confidence_threshold {rules.confidence_threshold:g}",
                {"review-status": "routed", "confidence": round(c.confidence, pp.SCORE_DECIMALS)},
            )
        return Draft(c.value, c.metadata, c.confidence)


class SegmenterHead(_TensorHead):
    kind = "segmenter"
    dims = 4
    shape = "[B, C, H, W]"
    counts_classes = True

    def class_count_of(self, pred: Any) -> tuple[int, str]:
        return pred.shape[0], "channels"

    def class_names_needed(self, count: int, names: int) -> str | None:
        """Every channel named, or the foreground ones (``postprocess.segmentation_class_names``)."""
        if names in (count, count - 1):
            return None
        return (f"it needs {count} names (the first, the background's, written {pp.BACKGROUND}) or the "
                f"{count - 1} foreground names, in order")

    def draft(self, pred: Any, *, width: int, height: int, depth: int, rules: LabelRules) -> Draft:
        logits = pred.get("logits") if isinstance(pred, dict) else pred
        seg = pp.segment(logits, width=width, height=height, class_names=rules.class_names,
                         confidence_threshold=rules.confidence_threshold, allowed=rules.allowed)
        return Draft(None, seg.metadata, seg.confidence, mask=seg)


#: the head for each task type the inference method labels
HEADS: dict[str, Callable[[], Head]] = {
    "object-detection": DetectorHead,
    "image-classification": lambda: ClassifierHead(multilabel=False),
    "image-classification-multilabel": lambda: ClassifierHead(multilabel=True),
    "semantic-segmentation": SegmenterHead,
}


def head_for(task_type: str) -> Head:
    """The head that labels ``task_type``; ``UsageError`` for a task type no model labels."""
    make = HEADS.get(task_type)
    if make is None:
        raise UsageError(f"--method inference cannot label task type {task_type!r}; it labels {', '.join(HEADS)}")
    return make()


def first_tensor(out: Any) -> torch.Tensor:
    """The tensor of a module output that is a dict (``out``/``logits``) or a tuple/list."""
    import torch

    if isinstance(out, dict):
        for key in ("out", "logits"):
            if isinstance(out.get(key), torch.Tensor):
                return out[key]
    if isinstance(out, list | tuple) and out and isinstance(out[0], torch.Tensor):
        return out[0]
    raise JobError(f"model output: expected a tensor (or a dict with 'out'/'logits'); got {type(out).__name__}")

