"""From raw model outputs to Ground Truth labels: NMS (``nms``), thresholds, filters, and the GT
formats.

Everything here works on CPU tensors of one image and returns plain Python values, so it is
tested without a model. torch is imported inside the functions so that this package imports
without the ``inference`` extra.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .._errors import JobError, counted
from .._imaging import class_colors
from .nms import batched_nms

if TYPE_CHECKING:
    import numpy as np
    import torch

#: decimals kept in written coordinates and confidences (keeps lines short, loses nothing useful)
COORD_DECIMALS = 2
SCORE_DECIMALS = 4
BACKGROUND = "BACKGROUND"


# -- detection -------------------------------------------------------------------------------

@dataclass
class Detections:
    """Boxes kept for one image, highest score first (plain lists, image pixels)."""

    boxes: list[list[float]]
    scores: list[float]
    labels: list[int]
    #: the best score among boxes dropped by the confidence threshold (0 when none)
    best_dropped: float = 0.0

    @property
    def confidence(self) -> float:
        """The image's confidence for review routing: the lowest kept box score; with no box
        kept, 1 minus the best score the threshold dropped (how sure the model is that the
        image is empty)."""
        if self.scores:
            return min(self.scores)
        return 1.0 - self.best_dropped


#: float32 rounding a score may carry past 0 or 1 (written to 4 decimals: 0 or 1)
SCORE_SLACK = 1e-6


class PredictionRefused(JobError):
    """One image's prediction cannot be written as it is (a reversed box): its line fails with
    this reason (``labeler.Labeler.outcome``), the job goes on."""


class NotClassIds(JobError):
    """A detector's labels that are no whole class ids (1.7, NaN): a value its output holds, not its
    form, so the blank-image form check before the job (``sources.check_detector_output``) leaves it
    to the job, which stops saying so, where it was refused as a model of another task type."""


def _as_tensor(value: Any, name: str, dtype: torch.dtype) -> torch.Tensor:
    import torch

    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", dtype)
    try:
        return torch.as_tensor(value, dtype=dtype)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise JobError(f"model output: {name!r} is not numeric: {exc}") from None


def detection_tensors(pred: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``boxes`` [N, 4], ``scores`` [N], ``labels`` [N] from one torchvision-style prediction."""
    import torch

    if not isinstance(pred, dict) or not {"boxes", "scores", "labels"} <= set(pred):
        keys = sorted(pred) if isinstance(pred, dict) else type(pred).__name__
        raise JobError(
            f"model output: a detector must return, per image, a dict with 'boxes', 'scores' and 'labels'; got {keys}"
        )
    boxes = _as_tensor(pred["boxes"], "boxes", torch.float32)
    if boxes.numel() == 0:
        boxes = boxes.reshape(0, 4)
    elif boxes.dim() != 2 or boxes.shape[1] != 4:
        raise JobError(f"model output: 'boxes' must be [N, 4] (x1 y1 x2 y2); got shape {list(boxes.shape)}")
    scores = _as_tensor(pred["scores"], "scores", torch.float32).reshape(-1)
    labels = _class_ids(_as_tensor(pred["labels"], "labels", torch.float64).reshape(-1))
    if not boxes.shape[0] == scores.shape[0] == labels.shape[0]:
        raise JobError(
            f"model output: boxes, scores and labels differ in length "
            f"({boxes.shape[0]}, {scores.shape[0]}, {labels.shape[0]})"
        )
    return boxes, scores, labels


def _class_ids(raw: torch.Tensor) -> torch.Tensor:
    """Whole class ids: ``2.0`` (a float tensor, an endpoint's JSON) is class 2; ``1.7`` or NaN is
    none, where a cast would write class 1 as if the model said so."""
    whole = raw.isfinite() & (raw == raw.round())
    if not bool(whole.all()):
        i = int((~whole).nonzero()[0])
        raise NotClassIds(f"model output: labels[{i}] is {round(float(raw[i]), 6)}, not a class id (a whole number)")
    return raw.long()


def _refuse_improbable(scores: torch.Tensor, finite: torch.Tensor) -> None:
    """Scores are probabilities: one outside 0..1 (a logit) failed each line's schema check one
    by one, or passed the threshold meaning nothing: the model breaks the protocol."""
    out = finite & ((scores < -SCORE_SLACK) | (scores > 1 + SCORE_SLACK))
    if bool(out.any()):
        i = int(out.nonzero()[0])
        raise JobError(
            f"model output: scores[{i}] is {round(float(scores[i]), 6)}; a detector's scores are probabilities "
            "between 0 and 1 (give the model a sigmoid or softmax if it returns logits)"
        )


def filter_detections(
    pred: Any,
    *,
    width: int,
    height: int,
    confidence_threshold: float,
    nms_threshold: float | None,
    min_object_size: float = 0.0,
    max_objects: int = 100,
    allowed: set[int] | None = None,
) -> Detections:
    """Class filter, confidence threshold, clip to the image, minimum size, class-wise NMS,
    then the ``max_objects`` best boxes."""
    import torch

    boxes, scores, labels = detection_tensors(pred)
    finite = torch.isfinite(boxes).all(dim=1) & torch.isfinite(scores)
    if boxes.shape[0] and not bool(finite.any()):
        # Every box gone to NaN/inf (a broken or overflowing model) would otherwise be written
        # as an image with no object, indistinguishable from a real empty image; classifier
        # logits that are not finite stop the job the same way.
        raise JobError(
            f"model output: every one of the {boxes.shape[0]} box(es) has a NaN or infinite "
            "coordinate or score; the model is broken, not the image"
        )
    _refuse_improbable(scores, finite)
    wanted = finite
    if allowed is not None:
        wanted = wanted & torch.tensor([int(v) in allowed for v in labels.tolist()], dtype=torch.bool)
    unsure = wanted & (scores < confidence_threshold)
    clipped = _clipped(boxes, width, height)
    # a box min_object_size removes is no candidate, as one the class filter leaves out: not the
    # best the threshold dropped either (an image whose every box is too small reads as empty)
    dropped = unsure & _big_enough(clipped, min_object_size)
    best_dropped = float(scores[dropped].max()) if bool(dropped.any()) else 0.0
    kept = wanted & ~unsure
    _refuse_reversed(boxes, kept)
    _refuse_empty(boxes, clipped, kept, width, height)
    boxes, scores, labels = clipped[kept], scores[kept], labels[kept]
    if boxes.shape[0]:
        big = _big_enough(boxes, min_object_size)  # none is written empty: _refuse_empty
        boxes, scores, labels = boxes[big], scores[big], labels[big]
    if nms_threshold is not None and boxes.shape[0] > 1:
        keep_idx = batched_nms(boxes, scores, labels, nms_threshold)
    else:
        keep_idx = torch.sort(scores, descending=True, stable=True).indices
    keep_idx = keep_idx[:max_objects]
    return Detections(
        boxes=boxes[keep_idx].tolist(),
        scores=scores[keep_idx].tolist(),
        labels=[int(v) for v in labels[keep_idx].tolist()],
        best_dropped=best_dropped,
    )


def _big_enough(clipped: torch.Tensor, min_object_size: float) -> torch.Tensor:
    """Which clipped boxes are at least ``min_object_size`` wide and high; every one at 0, no
    size rule (a reversed box under the threshold, of negative width, still counts as dropped)."""
    w, h = clipped[:, 2] - clipped[:, 0], clipped[:, 3] - clipped[:, 1]
    if min_object_size <= 0:
        return w.new_ones(w.shape[0]).bool()
    return (w >= min_object_size) & (h >= min_object_size)


def _refuse_reversed(boxes: torch.Tensor, kept: torch.Tensor) -> None:
    """``PredictionRefused`` for the first box to be written with x2 < x1 or y2 < y1. Turning it
    around would write a box the model never drew (a model giving x y width height reads as
    x1 y1 x2 y2 with some boxes reversed); one left out by the threshold or the class filter is
    never written, so it is not looked at."""
    import torch

    reversed_ = kept & ((boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1]))
    if not bool(reversed_.any()):
        return
    i = int(torch.nonzero(reversed_)[0])
    raw = boxes[i].tolist()
    axis = "x2 < x1" if raw[2] < raw[0] else "y2 < y1"  # not from the rounded box, which may tie
    box = [_pixels(float(v)) for v in raw]
    if not (box[2] < box[0] or box[3] < box[1]):  # reversed by less than COORD_DECIMALS: show it
        box = _fine(raw)
    raise PredictionRefused(
        f"boxes[{i}] is {box} (x1 y1 x2 y2), so {axis}: a detector's boxes are x1 y1 x2 y2 with x1 <= x2 "
        "and y1 <= y2 (torchvision's convention); is it x y width height?"
    )


def _clipped(boxes: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """The boxes clipped to the ``width`` x ``height`` image, as they are written."""
    import torch

    x1, x2 = boxes[:, 0].clamp(0, width), boxes[:, 2].clamp(0, width)
    y1, y2 = boxes[:, 1].clamp(0, height), boxes[:, 3].clamp(0, height)
    return torch.stack([x1, y1, x2, y2], dim=1)


def _refuse_empty(boxes: torch.Tensor, clipped: torch.Tensor, kept: torch.Tensor, width: int, height: int) -> None:
    """``PredictionRefused`` for the first box to be written that has nothing left once clipped
    to the image: one wholly outside it (a detector answering in another frame, its own input
    size say, draws such boxes) or one written with zero width or height (a detector that
    collapses its boxes, x2 = x1; or one under half a ``COORD_DECIMALS`` step, 0.004 px, which
    the 2 decimals write as 0). Dropped, it would vanish while its line reads as labeled, with no
    object and full confidence; written, it is a box of no area that validate and COCO take. The
    rule holds on what is written, so ``_written_flat`` looks at the clipped, rounded sizes. A box
    partly inside is clipped as before."""
    import torch

    outside = (boxes[:, 0] >= width) | (boxes[:, 1] >= height) | (boxes[:, 2] <= 0) | (boxes[:, 3] <= 0)
    empty = kept & (outside | _written_flat(clipped, kept & ~outside))
    if not bool(empty.any()):
        return
    i = int(torch.nonzero(empty)[0])
    if bool(outside[i]):
        box = [_pixels(float(v)) for v in boxes[i].tolist()]
        raise PredictionRefused(
            f"boxes[{i}] is {box} (x1 y1 x2 y2), wholly outside the {width}x{height} image: a detector's boxes "
            "are in the pixels of the image it was given (is it answering in its input size's frame?)"
        )
    box, side = _flat_words(boxes[i].tolist(), clipped[i].tolist())
    raise PredictionRefused(
        f"boxes[{i}] is {box} (x1 y1 x2 y2), of {side}: a box with no area marks nothing in the image "
        "(does the model collapse its boxes?)"
    )


def _flat_words(raw: list[float], clipped: list[float]) -> tuple[list[int | float], str]:
    """The box and the sides a message names for a box written flat: ``zero width`` of a box
    with x2 = x1; for one above 0 until clipped and rounded, the digits that rounding took
    (``[3, 3, 3.004, 10]``, ``0.004 px wide``), which the box at 2 decimals would hide."""
    x1, y1, x2, y2 = clipped
    w, h = x2 - x1, y2 - y1
    no_w, no_h = _pixels(w) == 0, _pixels(h) == 0
    side = "zero width and height" if no_w and no_h else "zero width" if no_w else "zero height"
    if not ((no_w and w) or (no_h and h)):
        return [_pixels(float(v)) for v in raw], side
    sizes = f"{w:.3g} x {h:.3g} px" if no_w and no_h else f"{w:.3g} px wide" if no_w else f"{h:.3g} px high"
    return _fine(raw), f"{side} once clipped and written to {COORD_DECIMALS} decimals ({sizes})"


def _written_flat(clipped: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
    """Which of the ``candidates`` boxes (clipped) ``detection_label`` would write with a width
    or height of 0: the sizes are rounded as it rounds them (Python's ``round`` of the float
    difference), only for the few a tensor test finds under one ``COORD_DECIMALS`` step, so a
    boundary like 0.005 px is judged exactly as it is written, and a frame of many boxes costs
    one comparison."""
    import torch

    step = 10.0 ** -COORD_DECIMALS
    near = candidates & ((clipped[:, 2] - clipped[:, 0] < step) | (clipped[:, 3] - clipped[:, 1] < step))
    if not bool(near.any()):  # the common case: no box that thin
        return near
    flat = torch.zeros_like(candidates)
    for i in torch.nonzero(near).flatten().tolist():
        x1, y1, x2, y2 = clipped[i].tolist()
        flat[i] = _pixels(x2 - x1) == 0 or _pixels(y2 - y1) == 0
    return flat


def _fine(raw: Sequence[float]) -> list[int | float]:
    """A box to 6 decimals, for a message about what its 2 written decimals hide (a box reversed
    or made empty by less than a hundredth of a pixel)."""
    return [int(r) if r.is_integer() else r for r in (round(float(v), 6) for v in raw)]


def _class_name(class_names: Sequence[str], index: int) -> str:
    if 0 <= index < len(class_names):
        return class_names[index]
    if index < 0:  # no names file can fix this: the model's labels are wrong (an 'ignore' id, say)
        known = f" (0..{len(class_names) - 1} here, one per class name)" if class_names else ""
        raise JobError(f"model output: class id {index} is negative; class ids count from 0{known}")
    raise JobError(
        f"model output: class id {index} but only {counted(len(class_names), 'class name')} {'is' if len(class_names) == 1 else 'are'} known; "
        "pass --class-names with one name per class id"
    )


def _pixels(x: float) -> int | float:
    """A coordinate rounded to ``COORD_DECIMALS``; whole numbers are written as integers, as
    Ground Truth's own output does."""
    r = round(x, COORD_DECIMALS)
    return int(r) if r.is_integer() else r


def detection_label(
    det: Detections, *, width: int, height: int, depth: int, class_names: Sequence[str]
) -> tuple[dict, dict]:
    """The Ground Truth bounding-box value and its type-specific metadata."""
    annotations = []
    objects = []
    class_map: dict[str, str] = {}
    for (x1, y1, x2, y2), score, label in zip(det.boxes, det.scores, det.labels, strict=True):
        class_map[str(label)] = _class_name(class_names, label)
        annotations.append({
            "class_id": label,  # Ground Truth's key order (formats.model.gt_detection)
            "top": _pixels(y1),
            "left": _pixels(x1),
            "height": _pixels(y2 - y1),
            "width": _pixels(x2 - x1),
        })
        objects.append({"confidence": round(score, SCORE_DECIMALS)})
    value = {"image_size": [{"width": width, "height": height, "depth": depth}], "annotations": annotations}
    return value, {"objects": objects, "class-map": class_map}


# -- classification --------------------------------------------------------------------------

@dataclass
class Classification:
    value: Any
    metadata: dict
    #: the image's confidence for review routing
    confidence: float
    #: set when the threshold leaves nothing to label (single label below confidence_threshold)
    below_threshold: bool = False
    extra: dict = field(default_factory=dict)


def _logits_row(logits: Any, num_classes: int | None = None) -> torch.Tensor:
    import torch

    row = _as_tensor(logits, "logits", torch.float32).reshape(-1)
    if row.numel() == 0 or not bool(torch.isfinite(row).all()):
        raise JobError("model output: classifier logits are empty or not finite")
    if num_classes is not None and row.numel() != num_classes:
        raise JobError(f"model output: {row.numel()} logits but {num_classes} class names")
    return row


def classify_single(
    logits: Any, *, class_names: Sequence[str], confidence_threshold: float, allowed: set[int] | None = None
) -> Classification:
    """Softmax, then the best class (among ``allowed``); below the threshold it is flagged."""
    import torch

    probs = torch.softmax(_logits_row(logits, len(class_names)), dim=0)
    candidates = probs
    if allowed is not None:
        mask = torch.zeros_like(probs, dtype=torch.bool)
        mask[[i for i in allowed if i < probs.numel()]] = True
        candidates = torch.where(mask, probs, torch.full_like(probs, -1.0))
    index = int(torch.argmax(candidates))
    conf = float(probs[index])
    meta = {"class-name": class_names[index], "confidence": round(conf, SCORE_DECIMALS)}
    return Classification(index, meta, conf, below_threshold=conf < confidence_threshold)


def classify_multi(
    logits: Any, *, class_names: Sequence[str], confidence_threshold: float, allowed: set[int] | None = None
) -> Classification:
    """Sigmoid per class; every (allowed) class at or above the threshold is selected. The
    image's confidence is the least sure yes/no decision: min over classes of max(p, 1 - p)."""
    import torch

    probs = torch.sigmoid(_logits_row(logits, len(class_names))).tolist()
    considered = [i for i in range(len(probs)) if allowed is None or i in allowed]
    selected = [i for i in considered if probs[i] >= confidence_threshold]
    meta = {
        "class-map": {str(i): class_names[i] for i in selected},
        "confidence-map": {str(i): round(probs[i], SCORE_DECIMALS) for i in selected},
    }
    conf = min((max(probs[i], 1 - probs[i]) for i in considered), default=1.0)
    return Classification(selected, meta, conf)


# -- segmentation ----------------------------------------------------------------------------

def segmentation_class_names(class_names: Sequence[str], num_channels: int) -> list[str]:
    """Names per channel, channel 0 being the background: the list may name every channel or
    only the foreground ones."""
    if len(class_names) == num_channels:
        return [BACKGROUND, *class_names[1:]]
    if len(class_names) == num_channels - 1:
        return [BACKGROUND, *class_names]
    raise JobError(
        f"model output: the segmenter returns {num_channels} channels (channel 0 = background) but "
        f"{counted(len(class_names), 'class name')} {'is' if len(class_names) == 1 else 'are'} known; give {num_channels} names or {num_channels - 1} "
        "foreground names"
    )


@dataclass
class Segmentation:
    #: class index per pixel at the image's own size (uint8)
    mask: np.ndarray
    palette: list[str]
    metadata: dict
    confidence: float


def segment(
    logits: Any,
    *,
    width: int,
    height: int,
    class_names: Sequence[str],
    confidence_threshold: float,
    allowed: set[int] | None = None,
) -> Segmentation:
    """Softmax over channels, best class per pixel (background where unsure or filtered out),
    resized to the image with nearest neighbour so indices stay exact."""
    import numpy as np
    import torch
    from PIL import Image

    x = _as_tensor(logits, "logits", torch.float32)
    if x.dim() != 3:
        raise JobError(f"model output: a segmenter must return [B, C, H, W] logits; got a {x.dim() + 1}-D output")
    channels = x.shape[0]
    if channels > 256:
        raise JobError(f"model output: {channels} classes do not fit an 8-bit mask")
    names = segmentation_class_names(class_names, channels)
    if x.numel() == 0 or not bool(torch.isfinite(x).all()):
        # as for a classifier: NaN logits make a NaN confidence, which each line then failed
        # as 'schema-invalid' (a data rule, so the job never stopped), after writing its mask
        raise JobError("model output: segmenter logits are empty or not finite")
    probs = torch.softmax(x, dim=0)
    if allowed is not None:
        keep = torch.zeros(channels, dtype=torch.bool)
        keep[[i for i in allowed if i < channels]] = True
        keep[0] = True
        probs = probs * keep[:, None, None]
    best, index = probs.max(dim=0)
    index[best < confidence_threshold] = 0
    conf = float(best.mean())
    small = index.to(torch.uint8).numpy()
    mask = np.asarray(Image.fromarray(small).resize((width, height), Image.Resampling.NEAREST))
    colors = class_colors(channels)
    c = round(conf, SCORE_DECIMALS)
    meta = {
        "internal-color-map": {
            str(i): {"class-name": names[i], "hex-color": colors[i], "confidence": c} for i in range(channels)
        }
    }
    return Segmentation(mask=mask, palette=colors, metadata=meta, confidence=conf)


def resolve_class_filter(class_filter: Sequence[int | str] | None, class_names: Sequence[str]) -> set[int] | None:
    """Class ids from ids or names; an unknown name is a usage error found before any line runs."""
    from .._errors import UsageError

    if class_filter is None:
        return None
    out: set[int] = set()
    for v in class_filter:
        if isinstance(v, int):
            out.add(v)
        elif v in class_names:
            out.add(list(class_names).index(v))
        else:
            raise UsageError(f"class_filter: unknown class name {v!r}; known: {', '.join(class_names)}")
    return out
