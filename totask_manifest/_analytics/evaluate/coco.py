"""COCO-style box matching and average precision, computed exactly as pycocotools' ``COCOeval``.

``COCOeval`` (``iouType='bbox'``, area range ``all``, ``maxDets`` 100) is the reference: the
same IoU arithmetic (``maskUtils.iou``: ``w = min(x+w) - max(x)``, union ``da + ga - i``), the
same greedy matching per image and class (detections by score, highest first, stable; each
takes the free reference with the highest IoU at or above the threshold, the *last* one on a
tie; references outside the area range are taken only when no regular one is left), the same
cumulative sums over all images in image order and the same 101-point interpolated precision.
``tests/test_evaluate_coco.py`` compares every figure with pycocotools to 1e-6.

Streaming: an image is matched as soon as it is read; what the accumulation needs is kept per
class in ``buffers.ClassBuffer`` (a coded score and a 16-bit mask, 4 bytes per predicted box in
the common case, in image order), never per-line Python objects.
"""

from __future__ import annotations

import bisect
import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .buffers import ClassBuffer

#: pycocotools' thresholds, built the same way (``np.arange`` would be off by a hair)
COCO_IOU_THRESHOLDS: tuple[float, ...] = tuple(
    float(t) for t in np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True))
RECALL_THRESHOLDS = np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1, endpoint=True)
MAX_DETECTIONS = 100
#: COCO's area range ``all``: a box whose area is outside it is ignored
AREA_ALL = (0.0, 1e5**2)


def thresholds_with(iou: float) -> tuple[float, ...]:
    """COCO's ten IoU thresholds plus ``iou`` when it is not one of them (always last)."""
    for t in COCO_IOU_THRESHOLDS:
        if t == iou or abs(t - iou) < 1e-12:
            return COCO_IOU_THRESHOLDS
    return (*COCO_IOU_THRESHOLDS, float(iou))


def index_of(thresholds: Sequence[float], iou: float) -> int:
    return min(range(len(thresholds)), key=lambda i: abs(thresholds[i] - iou))


def box_iou(d: Sequence[float], g: Sequence[float]) -> float:
    """IoU of two ``(x, y, w, h)`` boxes with pycocotools' ``bbIou`` arithmetic (non-crowd)."""
    return _iou(d[0], d[1], d[2], d[3], g[0], g[1], g[2], g[3])


def _iou(dx: float, dy: float, dw: float, dh: float, gx: float, gy: float, gw: float, gh: float) -> float:
    w = min(dw + dx, gw + gx) - max(dx, gx)
    if w <= 0:
        return 0.0
    h = min(dh + dy, gh + gy) - max(dy, gy)
    if h <= 0:
        return 0.0
    i = w * h
    return i / (dw * dh + gw * gh - i)


@functools.lru_cache(maxsize=8)
def _prefix_masks(thresholds: tuple[float, ...]) -> tuple[list[float], list[int]]:
    """The thresholds' match floors (``min(t, 1 - 1e-10)``, as COCOeval) sorted, and for each
    prefix of them the bit mask of their threshold indices."""
    floors = sorted((min(t, 1 - 1e-10), i) for i, t in enumerate(thresholds))
    masks = [0]
    for _, i in floors:
        masks.append(masks[-1] | 1 << i)
    return [f for f, _ in floors], masks


def _outside(area: float) -> bool:
    return area < AREA_ALL[0] or area > AREA_ALL[1]


@dataclass
class GroupMatch:
    """One image and class, matched at every threshold; detections in COCO order (score, stable)."""

    order: list[int]  # indices into the detections as given, best score first
    matched: list[int]  # per detection: bit t set when matched at threshold t
    ignored: list[int]  # per detection: bit t set when COCO ignores it at threshold t
    #: per reference (as given): bit t set when matched at threshold t
    ref_matched: list[int]
    ref_ignored: list[bool]


def match_group(scores: Sequence[float], dets: Sequence[Sequence[float]], refs: Sequence[Sequence[float]],
                thresholds: Sequence[float], *, at: int = 0) -> GroupMatch:
    """COCOeval.evaluateImg for one image and class, at all thresholds at once.

    Boxes are read at ``box[at:at + 4]`` as ``x, y, w, h`` (``at=1`` for ``(class, x, y, w, h, ...)``
    tuples, so callers need not copy them).
    """
    n_t = len(thresholds)
    all_bits = (1 << n_t) - 1
    a1, a2, a3 = at + 1, at + 2, at + 3
    ref_ign = [_outside(g[a2] * g[a3]) for g in refs]
    if len(dets) == 1 and len(refs) == 1 and not ref_ign[0]:  # the common case, without the general loops
        d, g = dets[0], refs[0]
        v = _iou(d[at], d[a1], d[a2], d[a3], g[at], g[a1], g[a2], g[a3])
        starts, masks = _prefix_masks(tuple(thresholds))
        bits = masks[bisect.bisect_right(starts, v)]  # every threshold whose start is <= v
        ign = 0 if bits == all_bits or not _outside(d[a2] * d[a3]) else all_bits & ~bits
        return GroupMatch([0], [bits], [ign], [bits], ref_ign)
    order = sorted(range(len(dets)), key=lambda i: -scores[i])  # Python's sort is stable, like mergesort
    # regular references first (stable), as COCOeval sorts them
    gt_order = sorted(range(len(refs)), key=lambda j: ref_ign[j]) if any(ref_ign) else list(range(len(refs)))
    gts = [refs[j] for j in gt_order]
    gt_ig = [ref_ign[j] for j in gt_order]
    floor = min(min(thresholds), 1 - 1e-10)
    # candidates per detection: references it could match at the lowest threshold, in reference order
    cands: list[list[tuple[int, float]]] = []
    for i in order:
        d = dets[i]
        dx, dy, dw, dh = d[at], d[a1], d[a2], d[a3]
        row = []
        for gi, g in enumerate(gts):
            v = _iou(dx, dy, dw, dh, g[at], g[a1], g[a2], g[a3])
            if v >= floor:
                row.append((gi, v))
        cands.append(row)
    matched = [0] * len(order)
    ignored = [0] * len(order)
    gt_bits = [0] * len(gts)
    if any(cands):
        for t, thr in enumerate(thresholds):
            bit = 1 << t
            start = min(thr, 1 - 1e-10)
            for di, row in enumerate(cands):
                if not row:
                    continue
                best = start
                m = -1
                for gi, v in row:
                    if gt_bits[gi] & bit:
                        continue
                    if m > -1 and not gt_ig[m] and gt_ig[gi]:
                        break
                    if v < best:
                        continue
                    best = v
                    m = gi
                if m == -1:
                    continue
                matched[di] |= bit
                if gt_ig[m]:
                    ignored[di] |= bit
                gt_bits[m] |= bit
    for di, i in enumerate(order):
        d = dets[i]
        if _outside(d[a2] * d[a3]):
            ignored[di] |= all_bits & ~matched[di]
    ref_matched = [0] * len(refs)
    for gi, j in enumerate(gt_order):
        ref_matched[j] = gt_bits[gi]
    return GroupMatch(order, matched, ignored, ref_matched, ref_ign)


@dataclass
class ClassAP:
    """COCO figures for one class: AP per threshold and the interpolated precision curves."""

    ap: list[float]  # per threshold; nan when the class has no reference
    recall: list[float]  # per threshold: the recall reached with every detection
    precision: np.ndarray  # (thresholds, 101) interpolated precision; -1 when no reference


def accumulate(buf: ClassBuffer, n_thresholds: int) -> ClassAP:
    """COCOeval.accumulate for one class (area ``all``, maxDets 100)."""
    n_r = len(RECALL_THRESHOLDS)
    if buf.references == 0:
        return ClassAP([float("nan")] * n_thresholds, [float("nan")] * n_thresholds,
                       -np.ones((n_thresholds, n_r)))
    # the largest class's arrays are the peak of a whole evaluation: temporaries are dropped or
    # reused as soon as they are done with (same operations, in the same order, as before)
    scores, matched, ignored = buf.arrays()
    inds = np.argsort(-scores, kind="mergesort")
    del scores
    matched, ignored = matched[inds], ignored[inds]
    del inds
    precision = np.zeros((n_thresholds, n_r))
    aps, recalls = [], []
    npig = buf.references
    eps = np.spacing(1)
    for t in range(n_thresholds):
        bit = np.uint16(1 << t)
        m = (matched & bit) != 0
        counted = (ignored & bit) == 0
        tp = np.cumsum(m & counted, dtype=np.float64)  # counts below 2**53: as exact as int64
        np.logical_not(m, out=m)
        fp = np.cumsum(m & counted, dtype=np.float64)
        del m, counted
        nd = len(tp)
        rc = tp / npig
        fp += tp
        fp += eps
        pr = np.divide(tp, fp, out=fp)  # tp / (fp + tp + eps)
        del tp
        recalls.append(float(rc[-1]) if nd else 0.0)
        q = np.zeros(n_r)
        if nd:
            # precision made monotone from the right, as COCOeval's loop does
            np.maximum.accumulate(pr[::-1], out=pr[::-1])
            idx = np.searchsorted(rc, RECALL_THRESHOLDS, side="left")
            ok = idx < nd
            q[ok] = pr[idx[ok]]
        precision[t] = q
        aps.append(float(np.mean(q)))
    return ClassAP(aps, recalls, precision)
