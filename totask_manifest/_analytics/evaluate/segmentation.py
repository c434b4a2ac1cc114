"""Semantic segmentation: per-class IoU over all evaluated pixels, from the two masks of each line.

Masks are Ground Truth colour PNGs named by the ``-ref`` attribute; each colour is resolved to a
class name through the line's ``internal-color-map`` (``analytics.masks``), so two jobs with
different colour maps are still compared class by class. Intersections and unions are summed
over every line (the dataset IoU, not a mean of per-image IoUs), in a confusion matrix of class
names: memory holds one pair of masks at a time.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np


class SegmentationEvaluator:
    def __init__(self) -> None:
        self.lines = 0
        self.names: dict[str, int] = {}
        self.matrix = np.zeros((0, 0), dtype=np.int64)  # [reference, predicted] pixel counts

    def _ids(self, cmap: Mapping[str, Any]) -> np.ndarray:
        """Mask index -> row of ``matrix``, by class name."""
        lut = np.zeros(256, dtype=np.int64)
        for key, entry in cmap.items():
            name = str(entry.get("class-name", key)) if isinstance(entry, Mapping) else str(key)
            if name not in self.names:
                self.names[name] = len(self.names)
            lut[int(key) & 255] = self.names[name]
        n = len(self.names)
        if self.matrix.shape[0] < n:
            grown = np.zeros((n, n), dtype=np.int64)
            grown[: self.matrix.shape[0], : self.matrix.shape[1]] = self.matrix
            self.matrix = grown
        return lut

    def add(self, pm: np.ndarray, predicted: Mapping[str, Any], rm: np.ndarray, reference: Mapping[str, Any]) -> None:
        """Both masks, decoded (``masks.mask_from_bytes``: the driver reads each side apart, to name
        the side whose mask cannot be read), with their colour maps; raises ``ValueError`` for masks
        of different sizes."""
        if pm.shape != rm.shape:
            raise ValueError(f"mask sizes differ: predicted {pm.shape[1]}x{pm.shape[0]}, "
                             f"reference {rm.shape[1]}x{rm.shape[0]}")
        p = self._ids(predicted)[pm]
        r = self._ids(reference)[rm]
        n = len(self.names)
        self.matrix += np.bincount((r * n + p).ravel(), minlength=n * n).reshape(n, n)
        self.lines += 1

    def merge(self, other: SegmentationEvaluator) -> None:
        for name in sorted(other.names, key=other.names.get):
            self.names.setdefault(name, len(self.names))
        n = len(self.names)
        grown = np.zeros((n, n), dtype=np.int64)
        grown[: self.matrix.shape[0], : self.matrix.shape[1]] = self.matrix
        idx = np.array([self.names[name] for name in sorted(other.names, key=other.names.get)], dtype=np.int64)
        if len(idx):
            k = other.matrix.shape[0]
            grown[np.ix_(idx[:k], idx[:k])] += other.matrix
        self.matrix = grown
        self.lines += other.lines

    def result(self) -> dict[str, Any]:
        names = sorted(self.names, key=self.names.get)
        per_class = []
        ious = []
        m = self.matrix
        for name in names:
            i = self.names[name]
            inter = int(m[i, i])
            union = int(m[i, :].sum() + m[:, i].sum() - inter)
            iou = inter / union if union else None
            per_class.append({"class": name, "reference_pixels": int(m[i, :].sum()),
                              "predicted_pixels": int(m[:, i].sum()), "intersection": inter, "union": union,
                              "iou": iou})
            if iou is not None and m[i, :].sum():
                ious.append(iou)
        total = int(m.sum())
        return {"lines": self.lines, "pixels": total,
                "pixel_accuracy": float(np.trace(m)) / total if total else None,
                "mean_iou": float(np.mean(ious)) if ious else None, "per_class": per_class}
