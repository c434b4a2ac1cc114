"""Non-maximum suppression written in torch (torchvision is not a dependency): one IoU matrix,
class-wise by masking pairs of different classes, then a greedy pass in score order, the same
result as running torchvision's ``batched_nms`` per class. torch is imported inside the
functions so that this package imports without the ``inference`` extra."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU of every box in ``a`` [N, 4] with every box in ``b`` [M, 4] (x1 y1 x2 y2); a pair
    whose union is empty has IoU 0."""
    import torch

    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    w = (torch.minimum(a[:, None, 2], b[None, :, 2]) - torch.maximum(a[:, None, 0], b[None, :, 0])).clamp(min=0)
    h = (torch.minimum(a[:, None, 3], b[None, :, 3]) - torch.maximum(a[:, None, 1], b[None, :, 1])).clamp(min=0)
    inter = w * h
    union = area_a[:, None] + area_b[None, :] - inter
    return torch.where(union > 0, inter / union.clamp(min=torch.finfo(inter.dtype).tiny), torch.zeros_like(inter))


def nms(
    boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float, labels: torch.Tensor | None = None
) -> torch.Tensor:
    """Indices of the boxes kept by greedy NMS, highest score first.

    A box is dropped when its IoU with a kept, higher-scored box (of the same label when
    ``labels`` is given) is greater than ``iou_threshold``. Equal scores keep input order.
    """
    import torch

    n = boxes.shape[0]
    if n == 0:
        return torch.zeros(0, dtype=torch.int64, device=boxes.device)
    order = torch.sort(scores, descending=True, stable=True).indices
    b = boxes[order]
    overlaps = box_iou(b, b) > iou_threshold
    if labels is not None:
        lab = labels[order]
        overlaps &= lab[:, None] == lab[None, :]
    suppress = overlaps.cpu().numpy()
    removed = [False] * n
    keep: list[int] = []
    for i in range(n):
        if removed[i]:
            continue
        keep.append(i)
        row = suppress[i]
        # only later (lower-scored) boxes can be suppressed by box i
        for j in row[i + 1:].nonzero()[0]:
            removed[i + 1 + int(j)] = True
    return order[torch.tensor(keep, dtype=torch.int64, device=order.device)]


def batched_nms(boxes: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Class-wise NMS: boxes of different labels never suppress each other."""
    return nms(boxes, scores, iou_threshold, labels=labels)
