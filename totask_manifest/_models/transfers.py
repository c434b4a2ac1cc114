"""A detector's images to the device and its detections back, a few calls a batch, not a few
an image.

Each torch call made from Python gives up the GIL and takes it back. While the inference
annotator's decode threads and fetch loop run Python, taking it back waits for one of them to
let go (up to ``sys.getswitchinterval()``, 5 ms), so a batch's cost in the model's thread grows
with the number of torch calls it makes, not with the work. On a GPU, where the forward pass of a
batch takes milliseconds, per-image calls (pin, copy, convert for each image; three copies back
for each image's boxes, scores and labels) cost more than their work: removing them took a
RetinaNet-50 pipeline on an H200 from 132 to 158 images/s (docs/inference.md).
Images of one size go as one tensor, and each key of the detections comes back in one copy.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

#: the keys of a detection the head reads: small, and the same kind for every image
JOINED = ("boxes", "scores", "labels")


def images_by_size(images: Sequence[Any], stack: Callable[[list[Any]], torch.Tensor]) -> list[torch.Tensor]:
    """One ``3 x H x W`` device tensor per decoded ``H x W x 3`` image, in order; ``stack`` makes
    the ``[k, 3, H, W]`` device batch of images that share a size (``Head.tensors``)."""
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, image in enumerate(images):
        groups.setdefault(tuple(image.shape), []).append(i)
    out: list[Any] = [None] * len(images)
    for members in groups.values():
        batch = stack([images[i] for i in members])
        for i, tensor in zip(members, batch.unbind(0), strict=True):
            out[i] = tensor
    return out


def detections_to_cpu(preds: Sequence[Any]) -> list[Any]:
    """Each image's detections on the CPU, ``labels`` in their own type and every other tensor
    as float32. Each of the keys the detector head reads (``JOINED``) whose tensors all images
    have (same device, type and trailing shape) comes back in one copy and is split; anything else
    (a key some image lacks, a non-tensor value, a prediction that is not a dict, and keys such as
    Mask R-CNN's ``masks``, which joined on the device would need a second copy of what may be
    gigabytes) goes as it is or one tensor at a time."""
    import torch

    if not preds or not all(isinstance(p, dict) for p in preds):
        return [_one_to_cpu(p, set()) for p in preds]
    out = [dict(p) for p in preds]
    joined_keys: set[str] = set()
    for key in JOINED:
        values = [p.get(key) for p in preds]
        first = values[0]
        if not all(isinstance(v, torch.Tensor) and v.dim() >= 1 and v.device == first.device
                   and v.dtype == first.dtype and v.shape[1:] == first.shape[1:] for v in values):
            continue  # left to the per-value pass below
        host = _as_host(key, torch.cat(values) if len(values) > 1 else first)
        for d, part in zip(out, host.split([int(v.shape[0]) for v in values]), strict=True):
            d[key] = part
        joined_keys.add(key)
    return [_one_to_cpu(d, joined_keys) for d in out]


def _as_host(key: str, value: torch.Tensor) -> torch.Tensor:
    return value.detach().cpu() if key == "labels" else value.detach().float().cpu()


def _one_to_cpu(pred: Any, done: set[str]) -> Any:
    """``pred`` with each tensor not in ``done`` on the CPU (``_as_host``)."""
    import torch

    if isinstance(pred, dict):
        return {k: _as_host(k, v) if k not in done and isinstance(v, torch.Tensor) else v for k, v in pred.items()}
    return pred
