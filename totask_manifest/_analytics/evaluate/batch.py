"""``DetectionEvaluator`` fed a batch of lines at a time, as numpy columns (``fastlane`` makes them).

``add_columns`` folds a batch into exactly the state that ``DetectionEvaluator.add`` line by
line would have built: the per-class buffers (detections in line order; within a line in
annotation order rather than score order, which ``coco.accumulate``'s stable sort by score
makes the same), the per-class counts, both sweeps' histograms and the worst lines (their
boxes built by ``views`` itself). Lines read the usual way still go through ``add``, which
first folds what is pending (``before_add``) so the buffers keep the file's order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from .coco import ClassBuffer
from .columns import ClassCodes, Columns
from .detection import DetectionEvaluator, WorstLine, _Counts
from .vectorized import match_batch
from .views import METADATA, BoxView, _detection


class BatchedDetection(DetectionEvaluator):
    def __init__(self, iou: float, worst: int, predicted: str, reference: str) -> None:
        super().__init__(iou, worst)
        self.sides = (predicted, reference)  # the attributes, to build the worst lines' boxes
        self.codes = ClassCodes()
        #: called before a line read the usual way is added (set by ``fastlane`` while it reads)
        self.before_add: Callable[[], None] | None = None

    def add(self, line: int, source: str | None, predicted: list[BoxView], reference: list[BoxView],
            line_confidence: float | None) -> int:
        if self.before_add is not None:
            self.before_add()
        return super().add(line, source, predicted, reference, line_confidence)

    def add_columns(self, cols: Columns, numbers: Sequence[int], parsed: Callable[[int], Any]) -> None:
        """Fold in a batch of lines (numbered ``numbers``) whose boxes are ``cols``; ``parsed`` gives a
        line's record again (for the worst lines)."""
        names = self.codes.names
        n_codes, n = len(names), len(numbers)
        d, r = cols.dets, cols.refs
        m = match_batch(d, r, cols.confidence, n_codes, self.thresholds)
        bit = np.uint16(1 << self.at)
        d_ok = (m.det_ignored & bit) == 0
        d_hit = (m.det_matched & bit) != 0
        tp = d_ok & d_hit
        err = d_ok & ~d_hit
        r_ok = ~m.ref_ignored
        missed = r_ok & ((m.ref_matched & bit) == 0)
        images = np.bincount(m.group_code, minlength=n_codes)
        predicted = np.bincount(d.code, minlength=n_codes)
        tps = np.bincount(d.code[tp], minlength=n_codes)
        fps = np.bincount(d.code[err], minlength=n_codes)
        refs = np.bincount(r.code[r_ok], minlength=n_codes)
        conf = cols.confidence  # the lane holds no box without one
        score = conf + 0.0  # as ``add`` stores ``confidence or 0.0``: -0.0 becomes 0.0
        kept = np.flatnonzero(m.det_kept)
        by_class = kept[np.argsort(d.code[kept], kind="stable")]  # line order within a class
        bounds = np.searchsorted(d.code[by_class], np.arange(n_codes + 1))
        for c in np.flatnonzero(images).tolist():
            name = names[c]
            buf = self.classes.get(name)
            if buf is None:
                buf = self.classes[name] = ClassBuffer()
                self.counts[name] = _Counts()
            counts = self.counts[name]
            buf.images += int(images[c])
            buf.references += int(refs[c])
            counts.references += int(refs[c])
            counts.predicted += int(predicted[c])
            counts.tp += int(tps[c])
            counts.fp += int(fps[c])
            sel = by_class[bounds[c]: bounds[c + 1]]
            buf.extend_arrays(score[sel], m.det_matched[sel], m.det_ignored[sel])
        self.beyond_max_dets += len(d.line) - len(kept)
        self.box_sweep.add_many(conf, err)
        errors = np.bincount(d.line[err], minlength=n) + np.bincount(r.line[missed], minlength=n)
        lowest = np.full(n, np.inf)  # --review-below compares a line's lowest box score
        np.minimum.at(lowest, d.line, conf)
        self.line_sweep.add_many(np.where(np.bincount(d.line, minlength=n) > 0, lowest, np.nan), errors)
        self.lines += n
        if self._worst_n:
            self._keep_worst_of(errors, numbers, parsed)

    def _keep_worst_of(self, errors: np.ndarray, numbers: Sequence[int], parsed: Callable[[int], Any]) -> None:
        """The batch's lines that make the worst list, boxes built by ``views`` as ``add`` gets them."""
        wrong = np.flatnonzero(errors)
        if not len(wrong):
            return
        if len(self._worst) == self._worst_n:
            wrong = wrong[errors[wrong] >= self._worst[0].errors]
        nums = np.asarray(numbers)[wrong]
        top = wrong[np.lexsort((nums, -errors[wrong]))][: self._worst_n]
        attr_p, attr_r = self.sides
        for i in top.tolist():
            line = numbers[i]
            rec = parsed(line)
            source = rec.get("source-ref") if isinstance(rec.get("source-ref"), str) else None
            p = _detection(rec[attr_p], rec[attr_p + METADATA]).boxes or []
            q = _detection(rec[attr_r], rec[attr_r + METADATA]).boxes or []
            self._keep_worst(WorstLine(int(errors[i]), -line, line, source, p, q))

