"""COCO matching for a whole batch of images at once, in numpy, with ``coco.match_group`` for the rest.

``match_group`` is a Python loop per image and class; over a million lines it costs more than
reading them. Most groups (one image, one class) are simple, though: every detection overlaps at
most one reference at the lowest threshold and every reference at most one detection, and no box
is outside COCO's area range. In such a group greedy matching has no choice to make: a detection
is matched at threshold ``t`` exactly when its one candidate's IoU reaches ``t``'s floor, which
is what ``match_group`` finds too (its one-pair shortcut is the same ``bisect`` over the floors).
Those groups are matched here for the whole batch with the same IoU arithmetic as
``coco._iou`` (float64, same operations in the same order; the caller keeps coordinates below
2**24, where int and float arithmetic agree exactly). Every other group (conflicts, boxes out of
the area range, more than ``MAX_DETECTIONS`` detections) goes through ``match_group`` itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .coco import AREA_ALL, MAX_DETECTIONS, _prefix_masks, match_group


@dataclass
class Boxes:
    """One side of a batch, box by box, in line order and annotation order within a line."""

    line: np.ndarray  # int64, index of the line within the batch
    code: np.ndarray  # int64, class code
    xywh: np.ndarray  # (n, 4) float64


@dataclass
class BatchMatch:
    """Per detection (in the order given): matched and ignored bits, and whether COCO keeps it
    (rank below ``MAX_DETECTIONS`` in its group); per reference: matched bits and ignored flag;
    per group: its class code (one entry per image and class present on either side)."""

    det_matched: np.ndarray  # uint16
    det_ignored: np.ndarray  # uint16
    det_kept: np.ndarray  # bool
    ref_matched: np.ndarray  # uint16
    ref_ignored: np.ndarray  # bool
    group_code: np.ndarray  # int64
    complex_groups: int


def _outside(xywh: np.ndarray) -> np.ndarray:
    area = xywh[:, 2] * xywh[:, 3]
    return (area < AREA_ALL[0]) | (area > AREA_ALL[1])


def match_batch(dets: Boxes, refs: Boxes, confidence: np.ndarray, n_codes: int,
                thresholds: tuple[float, ...]) -> BatchMatch:
    """Match every image and class of the batch at every threshold (``confidence``: COCO's scores)."""
    n_d, n_r = len(dets.line), len(refs.line)
    gd = dets.line * n_codes + dets.code
    gr = refs.line * n_codes + refs.code
    groups, inverse = np.unique(np.concatenate([gd, gr]), return_inverse=True)
    gi_d, gi_r = inverse[:n_d], inverse[n_d:]
    n_g = len(groups)
    nd = np.bincount(gi_d, minlength=n_g)
    nr = np.bincount(gi_r, minlength=n_g)
    # every (detection, reference) pair of the same group
    ds = np.argsort(gi_d, kind="stable")
    rs = np.argsort(gi_r, kind="stable")
    r_start = np.concatenate([[0], np.cumsum(nr)[:-1]])
    per_det = nr[gi_d[ds]]
    total = int(per_det.sum())
    pair_d = np.repeat(ds, per_det)
    first = np.repeat(np.cumsum(per_det) - per_det, per_det)
    pair_r = rs[np.repeat(r_start[gi_d[ds]], per_det) + (np.arange(total) - first)]
    d, g = dets.xywh[pair_d], refs.xywh[pair_r]
    w = np.minimum(d[:, 2] + d[:, 0], g[:, 2] + g[:, 0]) - np.maximum(d[:, 0], g[:, 0])
    h = np.minimum(d[:, 3] + d[:, 1], g[:, 3] + g[:, 1]) - np.maximum(d[:, 1], g[:, 1])
    inter = w * h
    overlap = (w > 0) & (h > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(overlap, inter / (d[:, 2] * d[:, 3] + g[:, 2] * g[:, 3] - inter), 0.0)
    starts, masks = _prefix_masks(tuple(thresholds))
    cand = overlap & (iou >= starts[0])
    # a group is simple when no box has two candidates and no box is outside the area range
    bad = np.zeros(n_g, dtype=bool)
    bad[gi_d[np.bincount(pair_d[cand], minlength=n_d) > 1]] = True
    bad[gi_r[np.bincount(pair_r[cand], minlength=n_r) > 1]] = True
    bad[gi_d[_outside(dets.xywh)]] = True
    bad[gi_r[_outside(refs.xywh)]] = True
    bad[nd > MAX_DETECTIONS] = True
    bad[np.unique(gi_d[pair_d[overlap & ~np.isfinite(iou)]])] = True  # let match_group raise as it would
    det_matched = np.zeros(n_d, dtype=np.uint16)
    ref_matched = np.zeros(n_r, dtype=np.uint16)
    ok = cand & ~bad[gi_d[pair_d]]
    bits = np.asarray(masks, dtype=np.uint16)[np.searchsorted(starts, iou[ok], side="right")]
    det_matched[pair_d[ok]] = bits
    ref_matched[pair_r[ok]] = bits
    out = BatchMatch(det_matched, np.zeros(n_d, dtype=np.uint16), np.ones(n_d, dtype=bool), ref_matched,
                     np.zeros(n_r, dtype=bool), groups % n_codes, int(bad.sum()))
    if out.complex_groups:
        _match_complex(out, np.flatnonzero(bad), ds, rs, nd, nr, dets, refs, confidence, thresholds)
    return out


def _match_complex(out: BatchMatch, bad: np.ndarray, ds: np.ndarray, rs: np.ndarray, nd: np.ndarray,
                   nr: np.ndarray, dets: Boxes, refs: Boxes, confidence: np.ndarray,
                   thresholds: tuple[float, ...]) -> None:
    """The groups ``match_batch`` leaves to ``match_group``, with the original numbers."""
    d_start = np.concatenate([[0], np.cumsum(nd)[:-1]])
    r_start = np.concatenate([[0], np.cumsum(nr)[:-1]])
    for gi in bad.tolist():
        di = ds[d_start[gi]: d_start[gi] + nd[gi]].tolist()  # annotation order, as DetectionEvaluator.add
        ri = rs[r_start[gi]: r_start[gi] + nr[gi]].tolist()
        m = match_group([float(confidence[i]) or 0.0 for i in di], dets.xywh[di].tolist(), refs.xywh[ri].tolist(),
                        thresholds)
        for rank, (k, mt, ig) in enumerate(zip(m.order, m.matched, m.ignored, strict=True)):
            i = di[k]
            out.det_matched[i] = mt
            out.det_ignored[i] = ig
            out.det_kept[i] = rank < MAX_DETECTIONS
        for j, rm, ig in zip(ri, m.ref_matched, m.ref_ignored, strict=True):
            out.ref_matched[j] = rm
            out.ref_ignored[j] = ig
