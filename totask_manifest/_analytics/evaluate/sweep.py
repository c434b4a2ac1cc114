"""What ``--review-below`` would have routed, threshold by threshold, and which threshold to use.

Items (predicted boxes, or whole lines) carry a confidence and a number of errors against the
reference. ``--review-below C`` routes an item whose confidence is below ``C``. For the 101
thresholds 0.00, 0.01, ..., 1.00 the sweep counts the items routed and the errors they hold,
from two fixed-size histograms (bin ``k`` holds the items that the ``k``-th threshold is the
first to route), so memory does not depend on the manifest's size. Items without a confidence
(a line with no box, a DM v1 box) are never routed; their errors are counted as out of reach.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: the thresholds swept, as a user would type them (0.29 is the double nearest 0.29)
THRESHOLDS = np.round(np.linspace(0.0, 1.0, 101), 2)


def threshold_bin(confidence: float) -> int:
    """How many thresholds do not route an item of this confidence (``t <= confidence``)."""
    return int(np.searchsorted(THRESHOLDS, confidence, side="right"))


class Sweep:
    """Items and errors per threshold bin; ``add`` is cheap enough to call per box."""

    def __init__(self, unit: str) -> None:
        self.unit = unit
        n = len(THRESHOLDS) + 1
        self.items = np.zeros(n, dtype=np.int64)
        self.errors = np.zeros(n, dtype=np.int64)
        self.unroutable_items = 0
        self.unroutable_errors = 0
        self._bins: dict[float, int] = {}  # confidences repeat a lot (2-4 decimals): skip the search

    def add(self, confidence: float | None, errors: int) -> None:
        if confidence is None:
            self.unroutable_items += 1
            self.unroutable_errors += errors
            return
        k = self._bins.get(confidence)
        if k is None:
            k = threshold_bin(confidence)
            if len(self._bins) < 100_000:
                self._bins[confidence] = k
        self.items[k] += 1
        self.errors[k] += errors

    def add_many(self, confidence: np.ndarray, errors: np.ndarray) -> None:
        """``add`` for a batch of items: ``confidence`` is nan where an item has none."""
        none = np.isnan(confidence)
        if none.any():
            self.unroutable_items += int(none.sum())
            self.unroutable_errors += int(errors[none].sum())
            confidence, errors = confidence[~none], errors[~none]
        k = np.searchsorted(THRESHOLDS, confidence, side="right")
        self.items += np.bincount(k, minlength=len(self.items))
        self.errors += np.bincount(k[errors != 0], weights=errors[errors != 0],
                                   minlength=len(self.errors)).astype(np.int64)

    def merge(self, other: Sweep) -> None:
        self.items += other.items
        self.errors += other.errors
        self.unroutable_items += other.unroutable_items
        self.unroutable_errors += other.unroutable_errors

    def result(self, share: float) -> SweepResult:
        # threshold k routes every item whose bin is <= k (confidence < THRESHOLDS[k])
        routed = np.cumsum(self.items[:-1])
        caught = np.cumsum(self.errors[:-1])
        total_items = int(self.items.sum()) + self.unroutable_items
        total_errors = int(self.errors.sum()) + self.unroutable_errors
        rows = [SweepRow(float(THRESHOLDS[k]), int(routed[k]), int(caught[k])) for k in range(len(THRESHOLDS))]
        suggested = None
        if total_errors:
            need = share * total_errors
            for row in rows:  # routed grows with the threshold: the first one that catches enough reviews least
                if row.errors_caught >= need - 1e-9:
                    suggested = row
                    break
        return SweepResult(self.unit, share, total_items, total_errors, self.unroutable_items,
                           self.unroutable_errors, rows, suggested)


@dataclass
class SweepRow:
    threshold: float
    routed: int
    errors_caught: int

    def to_dict(self) -> dict:
        return {"threshold": self.threshold, "routed": self.routed, "errors_caught": self.errors_caught}


@dataclass
class SweepResult:
    unit: str  # "box" or "line"
    share: float
    items: int
    errors: int
    unroutable_items: int
    unroutable_errors: int
    rows: list[SweepRow]
    #: the lowest threshold catching ``share`` of the errors; None when no threshold does
    suggested: SweepRow | None

    def to_dict(self) -> dict:
        return {
            "unit": self.unit, "share": self.share, "items": self.items, "errors": self.errors,
            "without_confidence": {"items": self.unroutable_items, "errors": self.unroutable_errors},
            "suggested": self.suggested.to_dict() if self.suggested else None,
            "thresholds": [r.to_dict() for r in self.rows],
        }
