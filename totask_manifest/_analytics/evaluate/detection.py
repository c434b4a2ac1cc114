"""Detection: boxes matched per image and class, COCO AP, precision and recall, review sweeps."""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .coco import (
    COCO_IOU_THRESHOLDS,
    MAX_DETECTIONS,
    RECALL_THRESHOLDS,
    ClassBuffer,
    accumulate,
    index_of,
    match_group,
    thresholds_with,
)
from .sweep import Sweep
from .views import BoxView

#: worst lines kept for the report's thumbnails
WORST_KEPT = 12


@dataclass
class _Counts:
    predicted: int = 0
    references: int = 0
    tp: int = 0
    fp: int = 0


@dataclass(order=True)
class WorstLine:
    """A line with many errors, kept (boxes and all) for the report's side-by-side thumbnails."""

    errors: int
    neg_line: int  # ties: the earlier line is worse, so it is kept
    line: int = field(compare=False)
    source: str | None = field(compare=False)
    predicted: list[BoxView] = field(compare=False)
    reference: list[BoxView] = field(compare=False)


class DetectionEvaluator:
    def __init__(self, iou: float, worst: int = WORST_KEPT) -> None:
        self.iou = float(iou)
        self.thresholds = thresholds_with(self.iou)
        self.at = index_of(self.thresholds, self.iou)
        self.at50 = index_of(self.thresholds, 0.5)
        self.classes: dict[str, ClassBuffer] = {}
        self.counts: dict[str, _Counts] = {}
        self.box_sweep = Sweep("box")
        self.line_sweep = Sweep("line")
        self.lines = 0
        self.beyond_max_dets = 0
        self._worst: list[WorstLine] = []
        self._worst_n = worst

    def add(self, line: int, source: str | None, predicted: list[BoxView], reference: list[BoxView],
            line_confidence: float | None) -> int:
        """Match one image; returns its errors at ``--iou`` (false positives plus missed references)."""
        self.lines += 1
        by_class: dict[str, tuple[list[BoxView], list[BoxView]]] = {}
        for b in predicted:
            group = by_class.get(b[0])
            if group is None:
                group = by_class[b[0]] = ([], [])
            group[0].append(b)
        for b in reference:
            group = by_class.get(b[0])
            if group is None:
                group = by_class[b[0]] = ([], [])
            group[1].append(b)
        bit = 1 << self.at
        errors = 0
        box_sweep = self.box_sweep
        for cls, (dets, refs) in by_class.items():
            buf = self.classes.get(cls)
            if buf is None:
                buf = self.classes[cls] = ClassBuffer()
                self.counts[cls] = _Counts()
            counts = self.counts[cls]
            scores = [b[5] or 0.0 for b in dets]
            m = match_group(scores, dets, refs, self.thresholds, at=1)
            buf.images += 1
            regular_refs = len(refs) - sum(m.ref_ignored)
            buf.references += regular_refs
            counts.references += regular_refs
            counts.predicted += len(dets)
            for rank, (k, mt, ig) in enumerate(zip(m.order, m.matched, m.ignored, strict=True)):
                if rank < MAX_DETECTIONS:
                    buf.append(scores[k], mt, ig)
                else:
                    self.beyond_max_dets += 1
                if ig & bit:
                    err = 0
                elif mt & bit:
                    counts.tp += 1
                    err = 0
                else:
                    counts.fp += 1
                    err = 1
                errors += err
                box_sweep.add(dets[k][5], err)
            for rm, ig in zip(m.ref_matched, m.ref_ignored, strict=True):
                if not ig and not rm & bit:
                    errors += 1
        self.line_sweep.add(line_confidence, errors)
        if errors and self._worst_n:
            self._keep_worst(WorstLine(errors, -line, line, source, predicted, reference))
        return errors

    def merge(self, other: DetectionEvaluator, line_offset: int) -> None:
        """Fold in the evaluator of the lines after these (``line_offset`` lines further on)."""
        for cls, buf in other.classes.items():
            mine = self.classes.get(cls)
            if mine is None:
                mine = self.classes[cls] = ClassBuffer()
                self.counts[cls] = _Counts()
            mine.extend_arrays(*buf.arrays())
            mine.references += buf.references
            mine.images += buf.images
            c, oc = self.counts[cls], other.counts[cls]
            c.predicted += oc.predicted
            c.references += oc.references
            c.tp += oc.tp
            c.fp += oc.fp
        self.box_sweep.merge(other.box_sweep)
        self.line_sweep.merge(other.line_sweep)
        self.lines += other.lines
        self.beyond_max_dets += other.beyond_max_dets
        for w in other._worst:
            line = w.line + line_offset
            self._keep_worst(WorstLine(w.errors, -line, line, w.source, w.predicted, w.reference))

    def _keep_worst(self, item: WorstLine) -> None:
        if len(self._worst) < self._worst_n:
            heapq.heappush(self._worst, item)
        elif item > self._worst[0]:
            heapq.heapreplace(self._worst, item)

    def worst(self) -> list[WorstLine]:
        return sorted(self._worst, reverse=True)

    def result(self, share: float) -> dict[str, Any]:
        per_class = []
        ap50s, aps, ap_iou = [], [], []
        pr50, pr_iou = [], []
        tot = _Counts()
        for cls in sorted(self.classes):
            c = self.counts[cls]
            a = accumulate(self.classes[cls], len(self.thresholds))
            coco = a.ap[: len(COCO_IOU_THRESHOLDS)]
            ap = float(np.mean(coco)) if c.references else None
            row = {
                "class": cls, "predicted": c.predicted, "references": c.references,
                "true_positives": c.tp, "false_positives": c.fp, "missed": c.references - c.tp,
                "precision": _ratio(c.tp, c.tp + c.fp), "recall": _ratio(c.tp, c.references),
                "ap50": _nan_none(a.ap[self.at50]), "ap": ap, "ap_at_iou": _nan_none(a.ap[self.at]),
            }
            per_class.append(row)
            if c.references:
                ap50s.append(a.ap[self.at50])
                aps.append(ap)
                ap_iou.append(a.ap[self.at])
                pr50.append(a.precision[self.at50])
                pr_iou.append(a.precision[self.at])
            tot.predicted += c.predicted
            tot.references += c.references
            tot.tp += c.tp
            tot.fp += c.fp
        return {
            "lines": self.lines,
            "iou": self.iou,
            "classes_with_references": len(aps),
            # COCOeval.summarize: the mean over classes that have references (area all, maxDets 100)
            "ap50": _mean(ap50s),
            "ap": _mean(aps),
            "ap_at_iou": _mean(ap_iou),
            "predicted": tot.predicted, "references": tot.references,
            "true_positives": tot.tp, "false_positives": tot.fp, "missed": tot.references - tot.tp,
            "precision": _ratio(tot.tp, tot.tp + tot.fp), "recall": _ratio(tot.tp, tot.references),
            "beyond_max_detections": self.beyond_max_dets,
            "per_class": per_class,
            "pr_curve": {
                "recall": [float(r) for r in RECALL_THRESHOLDS],
                "precision_at_50": _curve(pr50),
                "precision_at_iou": _curve(pr_iou),
            },
            "sweep": {"box": self.box_sweep.result(share).to_dict(), "line": self.line_sweep.result(share).to_dict()},
        }


def _ratio(a: int, b: int) -> float | None:
    return a / b if b else None


def _nan_none(v: float) -> float | None:
    return None if math.isnan(v) else float(v)


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def _curve(curves: list[np.ndarray]) -> list[float] | None:
    """Interpolated precision at the 101 recall points, averaged over classes (COCO's PR curve)."""
    if not curves:
        return None
    return [round(float(v), 6) for v in np.mean(np.stack(curves), axis=0)]
