"""The networks ``inference_bench.py`` times, written out in plain torch (torchvision is not a
dependency) and scripted to TorchScript as a user's model would be.

* ``ResNet18``: torchvision's resnet18 layout, a light classifier at 224x224;
* ``RetinaNet50``: a single-stage detector of real size: a ResNet-50 backbone, a feature pyramid
  P3-P7 and RetinaNet's shared heads (four 3x3 convolutions of 256 channels each for classes and
  for boxes), with FCOS-style box decoding (distances to the four sides), returning the 100 best
  boxes per image as torchvision's detectors do (the annotator applies NMS). It takes each image at
  its own size, like torchvision's detectors, so its input is a list of ``3 x H x W`` tensors.

Weights are random (seeded by the caller); the last normalisation of every residual block starts
at zero (torchvision's ``zero_init_residual``), so activations stay finite in fp16 through the
50 layers and no image fails for an overflow the benchmark did not mean to measure.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.b1 = nn.BatchNorm2d(cout)
        self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.b2 = nn.BatchNorm2d(cout)
        nn.init.zeros_(self.b2.weight)
        self.down = (
            nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
            if stride != 1 or cin != cout else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.b1(self.c1(x)))
        return torch.relu(self.b2(self.c2(y)) + self.down(x))


def _stem() -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(3, 2, 1))


class ResNet18(nn.Module):
    """torchvision's resnet18 layout, a classifier over ``num_classes``."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.class_names = [f"class{i}" for i in range(num_classes)]
        self.stem = _stem()
        layers, cin = [], 64
        for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            layers += [BasicBlock(cin, cout, stride), BasicBlock(cout, cout, 1)]
            cin = cout
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(512, num_classes)
        self.register_buffer("mean", torch.tensor(MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(STD).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - self.mean) / self.std
        return self.fc(self.layers(self.stem(x)).mean(dim=(2, 3)))


class Bottleneck(nn.Module):
    def __init__(self, cin: int, width: int, stride: int) -> None:
        super().__init__()
        cout = width * 4
        self.c1 = nn.Conv2d(cin, width, 1, bias=False)
        self.b1 = nn.BatchNorm2d(width)
        self.c2 = nn.Conv2d(width, width, 3, stride, 1, bias=False)
        self.b2 = nn.BatchNorm2d(width)
        self.c3 = nn.Conv2d(width, cout, 1, bias=False)
        self.b3 = nn.BatchNorm2d(cout)
        nn.init.zeros_(self.b3.weight)
        self.down = (
            nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
            if stride != 1 or cin != cout else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.b1(self.c1(x)))
        y = torch.relu(self.b2(self.c2(y)))
        return torch.relu(self.b3(self.c3(y)) + self.down(x))


def _stage(cin: int, width: int, blocks: int, stride: int) -> nn.Sequential:
    layers = [Bottleneck(cin, width, stride)]
    layers += [Bottleneck(width * 4, width, 1) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


def _tower() -> nn.Sequential:
    layers: list[nn.Module] = []
    for _ in range(4):
        layers += [nn.Conv2d(256, 256, 3, 1, 1), nn.GroupNorm(32, 256), nn.ReLU()]
    return nn.Sequential(*layers)


class RetinaNet50(nn.Module):
    """ResNet-50 + FPN (P3-P7) + RetinaNet heads; ``forward(images)`` returns one dict of
    ``boxes`` (x1, y1, x2, y2 in the image's pixels), ``scores`` and ``labels`` per image."""

    def __init__(self, num_classes: int = 8, detections: int = 100, candidates: int = 1000) -> None:
        super().__init__()
        self.class_names = [f"class{i}" for i in range(num_classes)]
        self.num_classes = num_classes
        self.detections = detections
        self.candidates = candidates
        self.stem = _stem()
        self.layer1 = _stage(64, 64, 3, 1)
        self.layer2 = _stage(256, 128, 4, 2)
        self.layer3 = _stage(512, 256, 6, 2)
        self.layer4 = _stage(1024, 512, 3, 2)
        self.lat3, self.lat4, self.lat5 = nn.Conv2d(512, 256, 1), nn.Conv2d(1024, 256, 1), nn.Conv2d(2048, 256, 1)
        self.out3, self.out4, self.out5 = (nn.Conv2d(256, 256, 3, 1, 1) for _ in range(3))
        self.p6 = nn.Conv2d(2048, 256, 3, 2, 1)
        self.p7 = nn.Conv2d(256, 256, 3, 2, 1)
        self.cls_tower, self.box_tower = _tower(), _tower()
        self.cls_out = nn.Conv2d(256, num_classes, 3, 1, 1)
        self.box_out = nn.Conv2d(256, 4, 3, 1, 1)
        self.register_buffer("mean", torch.tensor(MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(STD).view(1, 3, 1, 1))

    def _batch(self, images: list[torch.Tensor]) -> torch.Tensor:
        """The images in one zero-padded batch whose sides are multiples of 128 (P7's stride)."""
        h = max([int(i.shape[1]) for i in images])
        w = max([int(i.shape[2]) for i in images])
        h, w = (h + 127) // 128 * 128, (w + 127) // 128 * 128
        batch = images[0].new_zeros((len(images), 3, h, w))
        for k, image in enumerate(images):
            batch[k, :, : image.shape[1], : image.shape[2]].copy_(image)
        return (batch - self.mean.to(batch.dtype)) / self.std.to(batch.dtype)

    def _pyramid(self, x: torch.Tensor) -> list[torch.Tensor]:
        c3 = self.layer2(self.layer1(self.stem(x)))
        c4 = self.layer3(c3)
        c5 = self.layer4(c4)
        p5 = self.lat5(c5)
        p4 = self.lat4(c4) + F.interpolate(p5, size=c4.shape[-2:], mode="nearest")
        p3 = self.lat3(c3) + F.interpolate(p4, size=c3.shape[-2:], mode="nearest")
        p6 = self.p6(c5)
        return [self.out3(p3), self.out4(p4), self.out5(p5), p6, self.p7(torch.relu(p6))]

    def forward(self, images: list[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        levels = self._pyramid(self._batch(images))
        n = len(images)
        # each image's own width and height: positions in another image's padding score 0 and
        # boxes are clipped to the image, as torchvision's detectors clip theirs
        sides = torch.tensor([[int(i.shape[2]), int(i.shape[1])] for i in images], device=levels[0].device,
                             dtype=torch.float32)
        limit = sides.repeat(1, 2).unsqueeze(1)  # n, 1, 4: w, h, w, h
        all_scores: list[torch.Tensor] = []
        all_boxes: list[torch.Tensor] = []
        all_labels: list[torch.Tensor] = []
        stride = 8
        for feature in levels:
            h, w = int(feature.shape[2]), int(feature.shape[3])
            scores = torch.sigmoid(self.cls_out(self.cls_tower(feature)).float())  # n, C, h, w
            dist = torch.exp(self.box_out(self.box_tower(feature)).float().clamp(max=4.0)) * stride  # n, 4, h, w
            ys = (torch.arange(h, device=feature.device, dtype=torch.float32) + 0.5) * stride
            xs = (torch.arange(w, device=feature.device, dtype=torch.float32) + 0.5) * stride
            cy = ys.view(1, h, 1).expand(1, h, w).reshape(-1)
            cx = xs.view(1, 1, w).expand(1, h, w).reshape(-1)
            inside = (cx.unsqueeze(0) < sides[:, :1]) & (cy.unsqueeze(0) < sides[:, 1:])  # n, h*w
            scores = scores.reshape(n, self.num_classes, h * w) * inside.unsqueeze(1).to(scores.dtype)
            flat = scores.permute(0, 2, 1).reshape(n, -1)
            k = min(self.candidates, int(flat.shape[1]))
            top, index = flat.topk(k, dim=1)
            where = torch.div(index, self.num_classes, rounding_mode="floor")
            d = dist.reshape(n, 4, h * w).gather(2, where.unsqueeze(1).expand(n, 4, k))
            x, y = cx[where], cy[where]
            box = torch.stack([x - d[:, 0], y - d[:, 1], x + d[:, 2], y + d[:, 3]], dim=2)
            all_boxes.append(torch.minimum(box.clamp(min=0.0), limit))
            all_scores.append(top)
            all_labels.append(index % self.num_classes)
            stride *= 2
        scores, boxes, labels = torch.cat(all_scores, 1), torch.cat(all_boxes, 1), torch.cat(all_labels, 1)
        best, pick = scores.topk(min(self.detections, int(scores.shape[1])), dim=1)
        out: list[dict[str, torch.Tensor]] = []
        for k in range(n):
            out.append({"boxes": boxes[k][pick[k]], "scores": best[k], "labels": labels[k][pick[k]]})
        return out
