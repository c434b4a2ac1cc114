"""The torch NMS against a brute-force, per-class, pure-Python greedy NMS on random boxes."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from totask_manifest._models.nms import batched_nms, box_iou, nms  # noqa: E402


def reference_iou(a: list[float], b: list[float]) -> float:
    # the same operations in the same order as box_iou, in Python floats (IEEE doubles)
    area_a = (a[2] - a[0]) * (a[3] - a[1])
    area_b = (b[2] - b[0]) * (b[3] - b[1])
    w = max(min(a[2], b[2]) - max(a[0], b[0]), 0.0)
    h = max(min(a[3], b[3]) - max(a[1], b[1]), 0.0)
    inter = w * h
    union = area_a + area_b - inter
    return inter / union if union > 0 else 0.0


def reference_nms(boxes: list[list[float]], scores: list[float], labels: list[int], thr: float) -> list[int]:
    """Textbook greedy NMS run separately per class, merged by score (ties: input order)."""
    kept: list[int] = []
    for cls in sorted(set(labels)):
        idx = [i for i in range(len(boxes)) if labels[i] == cls]
        idx.sort(key=lambda i: (-scores[i], i))
        alive = list(idx)
        while alive:
            best = alive.pop(0)
            kept.append(best)
            alive = [j for j in alive if reference_iou(boxes[best], boxes[j]) <= thr]
    kept.sort(key=lambda i: (-scores[i], i))
    return kept


coord = st.integers(min_value=0, max_value=60).map(float) | st.floats(min_value=0, max_value=60, allow_nan=False)


@st.composite
def box_sets(draw):
    n = draw(st.integers(min_value=0, max_value=40))
    boxes = []
    for _ in range(n):
        x1, y1 = draw(coord), draw(coord)
        w, h = draw(st.floats(min_value=0, max_value=30)), draw(st.floats(min_value=0, max_value=30))
        boxes.append([x1, y1, x1 + w, y1 + h])
    # few distinct scores on purpose: ties must keep input order in both implementations
    scores = draw(st.lists(st.sampled_from([0.1, 0.3, 0.5, 0.7, 0.9]) | st.floats(0, 1), min_size=n, max_size=n))
    labels = draw(st.lists(st.integers(0, 3), min_size=n, max_size=n))
    thr = draw(st.sampled_from([0.0, 0.3, 0.5, 0.7, 1.0]) | st.floats(0, 1))
    return boxes, scores, labels, thr


@settings(max_examples=150, deadline=None)
@given(box_sets())
@pytest.mark.slow
def test_batched_nms_matches_per_class_brute_force(data):
    boxes, scores, labels, thr = data
    expected = reference_nms(boxes, scores, labels, thr)
    got = batched_nms(
        torch.tensor(boxes, dtype=torch.float64).reshape(-1, 4),
        torch.tensor(scores, dtype=torch.float64),
        torch.tensor(labels, dtype=torch.int64),
        thr,
    ).tolist()
    assert got == expected


@settings(max_examples=50, deadline=None)
@given(box_sets())
@pytest.mark.slow
def test_classless_nms_matches_brute_force_with_one_class(data):
    boxes, scores, _labels, thr = data
    expected = reference_nms(boxes, scores, [0] * len(boxes), thr)
    got = nms(torch.tensor(boxes, dtype=torch.float64).reshape(-1, 4), torch.tensor(scores, dtype=torch.float64), thr)
    assert got.tolist() == expected


def test_nms_drops_overlaps_of_one_class_only():
    boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 11, 11], [0, 0, 10, 10], [50, 50, 60, 60]], dtype=torch.float32)
    scores = torch.tensor([0.9, 0.8, 0.7, 0.6])
    labels = torch.tensor([0, 0, 1, 0])
    # box 1 overlaps box 0 (IoU 0.68) in class 0; box 2 is the same place but class 1
    assert batched_nms(boxes, scores, labels, 0.5).tolist() == [0, 2, 3]
    assert batched_nms(boxes, scores, labels, 0.7).tolist() == [0, 1, 2, 3]
    assert nms(boxes, scores, 0.5).tolist() == [0, 3]


def test_iou_of_degenerate_boxes_is_zero_not_nan():
    a = torch.tensor([[5.0, 5.0, 5.0, 5.0], [0.0, 0.0, 2.0, 2.0]])
    iou = box_iou(a, a)
    assert not torch.isnan(iou).any()
    assert iou[0, 0] == 0 and iou[1, 1] == 1 and iou[0, 1] == 0
