"""From one prediction to one line's outcome: the head's draft, routing for review, mask files.

The head (``models.heads``) makes a label of a prediction under the job's rules (thresholds, NMS,
class filter, class names); the labeler routes it to human review below ``--review-below`` and,
for a segmenter, names the mask file the label points at. Writing a mask is left to the caller
(``PendingMask.write``), so it can run off the model's thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .._errors import JobError, UsageError
from .._fetch import scrub
from .._jobs.layout import MASKS_DIR
from .._outcomes import Failed, Item, Labeled, Outcome, Routed
from .._redaction import redact_url
from .._storage import join
from .heads import Head, LabelRules
from .params import default_confidence_threshold
from .postprocess import PredictionRefused, Segmentation, resolve_class_filter


@dataclass
class PendingMask:
    """A segmentation label whose PNG is still to be written at ``url``."""

    url: str
    segmentation: Segmentation
    metadata: dict

    def write(self) -> Labeled:
        from .._imaging import mask_png
        from .._storage import write_bytes_atomic

        write_bytes_atomic(self.url, mask_png(self.segmentation.mask, self.segmentation.palette))
        return Labeled(self.url, self.metadata, files=(self.url,))


def which(item: Item) -> str:
    """The line a prediction was for, as a user finds it: its number, its Synapse task, its
    ``source-ref`` (without a presigned URL's query or user info)."""
    parts = [f"line {item.number}"]
    if item.task_id is not None:
        parts.append(f"task {item.task_id}")
    ref = item.record.get("source-ref")
    if isinstance(ref, str):
        parts.append(f"source-ref {scrub(redact_url(ref), 200)}")
    return ", ".join(parts)


class Labeler:
    """Turns a job's predictions into outcomes, one head and one set of parameters."""

    def __init__(
        self,
        head: Head,
        params: dict[str, Any],
        *,
        task_type: str,
        class_names: list[str] | None,
        review_below: float | None = None,
        job_url: str = "",
    ) -> None:
        self.head = head
        self.params = params
        threshold = params["confidence_threshold"]
        self.confidence_threshold: float = default_confidence_threshold(task_type) if threshold is None else threshold
        #: None until known: an endpoint may send them with its first response
        self.class_names = class_names
        self.review_below = review_below
        self.job_url = job_url
        self.allowed: set[int] | None = None
        self._resolve_filter()

    def _resolve_filter(self) -> None:
        wanted = self.params["class_filter"]
        if wanted is None:
            return
        if self.class_names is None and any(isinstance(v, str) for v in wanted):
            raise UsageError("class_filter names classes, but the model endpoint's class names are not known yet; "
                             "pass --class-names FILE or filter by class id")
        self.allowed = resolve_class_filter(wanted, self.class_names or [])

    def outcome(self, item: Item, pred: Any, width: int, height: int, depth: int) -> Outcome | PendingMask:
        """The line's outcome; a prediction that is an ``Exception`` fails the line with it."""
        if isinstance(pred, Exception):
            return Failed(scrub(str(pred), 240))
        p = self.params
        rules = LabelRules(
            class_names=self.class_names or [], confidence_threshold=self.confidence_threshold,
            nms_threshold=p["nms_threshold"], min_object_size=p["min_object_size"],
            max_objects=p["max_objects"], allowed=self.allowed,
        )
        try:
            draft = self.head.draft(pred, width=width, height=height, depth=depth, rules=rules)
        except PredictionRefused as exc:
            return Failed(f"model: {exc}", rule="model-error")
        except JobError as exc:  # the model broke the protocol: the job stops, saying on which image
            raise JobError(f"{exc} ({which(item)})") from None
        if isinstance(draft, Routed):
            return draft
        routed = self.routed(draft.confidence)
        if routed is not None:
            return routed
        if draft.mask is not None:
            url = join(self.job_url, MASKS_DIR, "masks", f"{item.number}.png")
            return PendingMask(url, draft.mask, draft.metadata)
        return Labeled(draft.value, draft.metadata)

    def routed(self, confidence: float | None) -> Routed | None:
        """Routed for review below ``--review-below``; an unscored label (None) is never routed:
        a missing score is not a low one."""
        if self.review_below is None or confidence is None or confidence >= self.review_below:
            return None
        return Routed(
            f"confidence {confidence:.3f} is below --review-below {self.review_below:g}",
            {"review-status": "routed", "confidence": round(confidence, 4), "review-threshold": self.review_below},
        )
