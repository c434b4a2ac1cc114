"""A batch's images go to the device and its detections come back in a few torch calls, whatever
the number of images (``models.transfers``): each call from Python waits for the GIL, which the
decode threads hold, so per-image calls made a GPU pipeline several times slower than its model."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from torch.utils._python_dispatch import TorchDispatchMode  # noqa: E402

from totask_manifest._models.heads import DetectorHead  # noqa: E402
from totask_manifest._models.transfers import detections_to_cpu, images_by_size  # noqa: E402


class CountOps(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.ops: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        self.ops.append(str(func.overloadpacket))
        return func(*args, **(kwargs or {}))


def _dets(n: int, dtype=torch.float64) -> list[dict]:
    g = torch.Generator().manual_seed(3)
    return [{"boxes": torch.rand(k, 4, generator=g, dtype=dtype), "scores": torch.rand(k, generator=g, dtype=dtype),
             "labels": torch.arange(k)} for k in [(i * 7) % 5 for i in range(n)]]


def test_detections_come_back_as_the_per_image_copy_would_in_ops_that_do_not_grow_with_the_batch():
    for n in (1, 4, 32):
        preds = _dets(n)
        with CountOps() as counted:
            got = detections_to_cpu(preds)
        assert len(got) == n
        for mine, theirs in zip(got, preds, strict=True):
            assert mine["boxes"].dtype == torch.float32 and mine["labels"].dtype == torch.int64
            assert torch.equal(mine["boxes"], theirs["boxes"].float()) and torch.equal(mine["labels"], theirs["labels"])
            assert mine["scores"].shape == theirs["scores"].shape
        assert len(counted.ops) <= 12, (n, counted.ops)  # a cat, a conversion and a split per key


def test_a_key_not_every_image_has_or_of_another_shape_goes_alone_and_nothing_is_dropped():
    preds = [{"boxes": torch.zeros(2, 4, dtype=torch.float64), "masks": torch.ones(2, 1, 3, 3), "note": "x"},
             {"boxes": torch.ones(1, 4, dtype=torch.float64), "masks": torch.ones(1, 1, 5, 5)},
             {"boxes": torch.ones(0, 4, dtype=torch.float64), "masks": torch.ones(0, 1, 3, 3), "extra": torch.ones(2)}]
    got = detections_to_cpu(preds)
    assert [sorted(d) for d in got] == [["boxes", "masks", "note"], ["boxes", "masks"], ["boxes", "extra", "masks"]]
    assert [d["boxes"].shape[0] for d in got] == [2, 1, 0] and got[1]["boxes"].dtype == torch.float32
    assert got[1]["masks"].shape == (1, 1, 5, 5) and got[0]["note"] == "x" and got[2]["extra"].dtype == torch.float32
    assert detections_to_cpu([None, "x"]) == [None, "x"]  # not dicts: the head's check names them


def test_images_of_one_size_go_together_and_each_comes_back_in_its_place():
    sizes = [(4, 6), (5, 3), (4, 6), (4, 6), (5, 3)]
    images = [np.full((h, w, 3), i, dtype=np.uint8) for i, (h, w) in enumerate(sizes)]
    groups: list[int] = []

    def stack(group):
        groups.append(len(group))
        return torch.from_numpy(np.stack(group)).permute(0, 3, 1, 2).float()  # what Head.tensors gives

    out = images_by_size(images, stack)
    assert groups == [3, 2]
    assert [tuple(t.shape) for t in out] == [(3, h, w) for h, w in sizes]
    assert [int(t[0, 0, 0]) for t in out] == [0, 1, 2, 3, 4]
    det = DetectorHead().tensors(images, lambda t: t.permute(0, 3, 1, 2).float() / 255)
    assert [tuple(t.shape) for t in det] == [(3, h, w) for h, w in sizes] and float(det[4].max()) == pytest.approx(4 / 255)


def test_keys_the_head_does_not_read_are_not_joined_on_the_device():
    """Mask R-CNN's ``masks`` may be gigabytes a batch: joined, they would need a second copy."""
    preds = [{**d, "masks": torch.ones(int(d["boxes"].shape[0]), 1, 8, 8)} for d in _dets(4)]
    with CountOps() as counted:
        got = detections_to_cpu(preds)
    assert counted.ops.count("aten.cat") == 3, counted.ops
    assert [d["masks"].shape[0] for d in got] == [d["boxes"].shape[0] for d in preds]
