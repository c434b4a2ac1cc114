"""Classification: accuracy, per-class precision and recall, confusion matrix (single and multi-label)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from .sweep import Sweep

#: distinct classes a confusion matrix shows (the rest are still counted in the per-class rows)
MAX_MATRIX_CLASSES = 60


class ClassificationEvaluator:
    """Single-label lines fill a confusion matrix; multi-label lines are compared class by class
    (exact-set accuracy, true/false positives and misses per class)."""

    def __init__(self, multilabel: bool) -> None:
        self.multilabel = multilabel
        self.lines = 0
        self.correct = 0
        self.pairs: Counter[tuple[str, str]] = Counter()  # (reference, predicted), single-label
        self.tp: Counter[str] = Counter()
        self.fp: Counter[str] = Counter()
        self.fn: Counter[str] = Counter()
        self.sweep = Sweep("line")

    def add(self, predicted: list[str], reference: list[str], confidence: float | None) -> int:
        self.lines += 1
        p, r = set(predicted), set(reference)
        wrong = int(p != r)
        self.correct += 1 - wrong
        if not self.multilabel:
            self.pairs[(reference[0] if reference else "", predicted[0] if predicted else "")] += 1
        for c in p & r:
            self.tp[c] += 1
        for c in p - r:
            self.fp[c] += 1
        for c in r - p:
            self.fn[c] += 1
        self.sweep.add(confidence, wrong)
        return wrong

    def merge(self, other: ClassificationEvaluator) -> None:
        self.lines += other.lines
        self.correct += other.correct
        self.pairs.update(other.pairs)
        self.tp.update(other.tp)
        self.fp.update(other.fp)
        self.fn.update(other.fn)
        self.sweep.merge(other.sweep)

    def result(self, share: float) -> dict[str, Any]:
        classes = sorted(set(self.tp) | set(self.fp) | set(self.fn))
        per_class = []
        for c in classes:
            tp, fp, fn = self.tp[c], self.fp[c], self.fn[c]
            row = {"class": c, "predicted": tp + fp, "references": tp + fn, "true_positives": tp,
                   "false_positives": fp, "missed": fn,
                   "precision": tp / (tp + fp) if tp + fp else None,
                   "recall": tp / (tp + fn) if tp + fn else None}
            if self.multilabel:  # the class's own 2x2 confusion matrix: lines with neither side choosing it
                row["true_negatives"] = self.lines - tp - fp - fn
            per_class.append(row)
        out: dict[str, Any] = {
            "lines": self.lines, "multilabel": self.multilabel, "correct": self.correct,
            # single-label: share of lines with the reference's class; multi-label: with exactly its set
            "accuracy": self.correct / self.lines if self.lines else None,
            "per_class": per_class,
            "sweep": {"line": self.sweep.result(share).to_dict()},
        }
        if not self.multilabel:
            shown = sorted({c for pair in self.pairs for c in pair})[:MAX_MATRIX_CLASSES]
            out["confusion_matrix"] = {
                "classes": shown,
                "rows_are": "reference", "columns_are": "predicted",
                "counts": [[self.pairs.get((r, p), 0) for p in shown] for r in shown],
            }
        return out
