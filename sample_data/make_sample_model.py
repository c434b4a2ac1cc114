"""Fit the two tiny sample models on generated shapes and save them as TorchScript.

    python sample_data/make_sample_model.py          # about four minutes on two idle CPU cores

Writes ``models/shapes-detector.pt`` and ``models/shapes-classifier.pt`` next to this script
(together well under 2 MB). Nothing is downloaded: the training images come from the same
generator as the quick-start images (``make_sample_data.draw_image``), with another seed, so the
50 sample images are never seen in training.

* detector: a CenterNet-style network (one heat map per class plus box sizes at a quarter of a
  fixed 96x96 input); it takes a list of float images ``[3, H, W]`` in 0..1 at their own size and
  returns torchvision-style ``boxes`` (pixels of each image), ``scores`` and ``labels``;
* classifier: a small CNN at 48x48 fitted multi-label (which shapes are present); its logits
  serve ``image-classification-multilabel`` (sigmoid) and ``image-classification`` (softmax: the
  most likely shape).

Both carry ``class_names`` (and the classifier its ``input_size``) as TorchScript attributes, so
no ``--class-names`` file is needed. Training is seeded; results vary slightly across torch builds.
"""

import importlib.util
import sys
import time
from pathlib import Path
from typing import Dict, List  # noqa: UP035 (TorchScript reads these annotations)

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

HERE = Path(__file__).resolve().parent
OUT = HERE / "models"
CLASSES = ["circle", "square", "triangle"]
DET_SIZE = 96
STRIDE = 4
CLS_SIZE = 48
SEED = 7


def _generator():
    spec = importlib.util.spec_from_file_location("make_sample_data", HERE / "make_sample_data.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class ShapesDetector(nn.Module):
    class_names: List[str]  # noqa: UP006

    def __init__(self, num_classes: int = 3) -> None:
        super().__init__()
        self.class_names = list(CLASSES)
        self.num_classes = num_classes
        self.max_boxes = 20
        self.min_score = 0.05
        self.det_size = DET_SIZE
        self.grid = DET_SIZE // STRIDE

        def block(i: int, o: int, s: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(i, o, 3, s, 1, bias=False), nn.BatchNorm2d(o), nn.ReLU(inplace=True))

        self.backbone = nn.Sequential(
            block(3, 16, 2), block(16, 32, 2), block(32, 32, 1),
            nn.Conv2d(32, 32, 3, 1, 2, dilation=2), nn.ReLU(inplace=True),
        )
        self.heat = nn.Conv2d(32, num_classes, 1)
        self.size = nn.Conv2d(32, 2, 1)
        self.heat.bias.data.fill_(-2.2)

    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.backbone(x)
        return self.heat(f), self.size(f)

    def forward(self, images: List[torch.Tensor]) -> List[Dict[str, torch.Tensor]]:  # noqa: UP006
        batch = torch.stack(
            [F.interpolate(img[None], size=(self.det_size, self.det_size), mode="bilinear", align_corners=False)[0]
             for img in images]
        )
        heat, size = self.features(batch)
        heat = torch.sigmoid(heat)
        peaks = heat * (F.max_pool2d(heat, 3, 1, 1) == heat).to(heat.dtype)
        grid = self.grid
        out: List[Dict[str, torch.Tensor]] = []  # noqa: UP006
        for i, img in enumerate(images):
            h, w = img.shape[1], img.shape[2]
            scores, idx = peaks[i].reshape(-1).topk(self.max_boxes)
            keep = scores > self.min_score
            scores, idx = scores[keep], idx[keep]
            labels = idx // (grid * grid)
            cell = idx % (grid * grid)
            cy = (cell // grid).to(heat.dtype) + 0.5
            cx = (cell % grid).to(heat.dtype) + 0.5
            wh = size[i].reshape(2, -1)[:, cell].clamp(min=0.0)
            sx = float(w) / grid
            sy = float(h) / grid
            bw = wh[0] * float(w)
            bh = wh[1] * float(h)
            boxes = torch.stack([cx * sx - bw / 2, cy * sy - bh / 2, cx * sx + bw / 2, cy * sy + bh / 2], dim=1)
            out.append({"boxes": boxes, "scores": scores, "labels": labels.to(torch.int64)})
        return out


class ShapesClassifier(nn.Module):
    class_names: List[str]  # noqa: UP006
    input_size: List[int]  # noqa: UP006

    def __init__(self, num_classes: int = 3) -> None:
        super().__init__()
        self.class_names = list(CLASSES)
        self.input_size = [CLS_SIZE, CLS_SIZE]

        def block(i: int, o: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(i, o, 3, 1, 1, bias=False), nn.BatchNorm2d(o), nn.ReLU(inplace=True),
                                 nn.MaxPool2d(2))

        self.body = nn.Sequential(block(3, 16), block(16, 32), block(32, 48), block(48, 64))
        self.head = nn.Linear(64, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x).mean(dim=(2, 3)))


def make_training_set(gen, n: int, rng: np.random.Generator):
    images, boxes = [], []
    for _ in range(n):
        img, b = gen.draw_image(rng)
        images.append(np.asarray(img))
        boxes.append(b)
    return np.stack(images), boxes


def detector_targets(boxes, width: int, height: int):
    grid = DET_SIZE // STRIDE
    heat = np.zeros((len(boxes), len(CLASSES), grid, grid), np.float32)
    size = np.zeros((len(boxes), 2, grid, grid), np.float32)
    mask = np.zeros((len(boxes), grid, grid), np.float32)
    ys, xs = np.mgrid[0:grid, 0:grid]
    for n, bs in enumerate(boxes):
        for cid, left, top, w, h in bs:
            cx, cy = (left + w / 2) / width * grid, (top + h / 2) / height * grid
            gx, gy = min(int(cx), grid - 1), min(int(cy), grid - 1)
            sigma = max(0.6, 0.15 * min(w / width, h / height) * grid)
            g = np.exp(-((xs - gx) ** 2 + (ys - gy) ** 2) / (2 * sigma**2))
            heat[n, cid] = np.maximum(heat[n, cid], g)
            size[n, :, gy, gx] = (w / width, h / height)
            mask[n, gy, gx] = 1
    return torch.from_numpy(heat), torch.from_numpy(size), torch.from_numpy(mask)


def focal_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    p = torch.sigmoid(logits).clamp(1e-4, 1 - 1e-4)
    pos = target.eq(1).float()
    neg = 1 - pos
    pos_loss = torch.log(p) * (1 - p) ** 2 * pos
    neg_loss = torch.log(1 - p) * p**2 * (1 - target) ** 4 * neg
    return -(pos_loss.sum() + neg_loss.sum()) / pos.sum().clamp(min=1)


def train_detector(images: np.ndarray, boxes, height: int, width: int, steps: int) -> ShapesDetector:
    model = ShapesDetector()
    x_all = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
    x_all = F.interpolate(x_all, size=(DET_SIZE, DET_SIZE), mode="bilinear", align_corners=False)
    heat_t, size_t, mask_t = detector_targets(boxes, width, height)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=4e-3, total_steps=steps)
    g = torch.Generator().manual_seed(SEED)
    model.train()
    for _ in range(steps):
        idx = torch.randint(0, len(x_all), (16,), generator=g)
        x = x_all[idx]
        if torch.rand(1, generator=g).item() < 0.5:  # horizontal flip keeps every shape's class
            x, heat, size, mask = x.flip(3), heat_t[idx].flip(3), size_t[idx].flip(3), mask_t[idx].flip(2)
        else:
            heat, size, mask = heat_t[idx], size_t[idx], mask_t[idx]
        ph, ps = model.features(x)
        loss = focal_loss(ph, heat) + 5 * (F.l1_loss(ps, size, reduction="none").sum(1) * mask).sum() / mask.sum().clamp(min=1)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    return model.eval()


def train_classifier(images: np.ndarray, boxes, steps: int) -> ShapesClassifier:
    model = ShapesClassifier()
    x_all = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
    x_all = F.interpolate(x_all, size=(CLS_SIZE, CLS_SIZE), mode="bilinear", align_corners=False)
    y_all = torch.zeros(len(boxes), len(CLASSES))
    for n, bs in enumerate(boxes):
        for cid, *_ in bs:
            y_all[n, cid] = 1
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=5e-3, total_steps=steps)
    g = torch.Generator().manual_seed(SEED)
    model.train()
    for _ in range(steps):
        idx = torch.randint(0, len(x_all), (32,), generator=g)
        x = x_all[idx]
        if torch.rand(1, generator=g).item() < 0.5:
            x = x.flip(3)
        loss = F.binary_cross_entropy_with_logits(model(x), y_all[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    return model.eval()


def _iou(a, b) -> float:
    ax2, ay2, bx2, by2 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    iw = max(0.0, min(ax2, bx2) - max(a[0], b[0]))
    ih = max(0.0, min(ay2, by2) - max(a[1], b[1]))
    inter = iw * ih
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def evaluate(detector, classifier, gen, rng: np.random.Generator, n: int = 200) -> str:
    images, boxes = make_training_set(gen, n, rng)
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
    found = total = 0
    with torch.inference_mode():
        preds = detector(list(x))
        for pred, truth in zip(preds, boxes, strict=True):
            keep = pred["scores"] > 0.5
            got = [((b[0], b[1], b[2] - b[0], b[3] - b[1]), int(lab)) for b, lab in
                   zip(pred["boxes"][keep].tolist(), pred["labels"][keep].tolist(), strict=True)]
            for cid, left, top, w, h in truth:
                total += 1
                found += any(lab == cid and _iou(box, (left, top, w, h)) >= 0.5 for box, lab in got)
        logits = classifier(F.interpolate(x, size=(CLS_SIZE, CLS_SIZE), mode="bilinear", align_corners=False))
    y = torch.zeros(n, len(CLASSES))
    for i, bs in enumerate(boxes):
        for cid, *_ in bs:
            y[i, cid] = 1
    exact = float(((torch.sigmoid(logits) >= 0.5).float() == y).all(1).float().mean())
    return f"detector recall@IoU0.5 (score>0.5) {found / total:.2f}; classifier exact multi-label match {exact:.2f}"


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    fast = "--fast" in argv  # fewer steps (for a quick check, not for the committed models)
    torch.manual_seed(SEED)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    gen = _generator()
    rng = np.random.default_rng(SEED)
    started = time.perf_counter()
    images, boxes = make_training_set(gen, 1500, rng)
    det = train_detector(images, boxes, gen.HEIGHT, gen.WIDTH, 100 if fast else 1500)
    cls = train_classifier(images, boxes, 60 if fast else 1000)
    print(evaluate(det, cls, gen, np.random.default_rng(SEED + 1)))
    OUT.mkdir(exist_ok=True)
    torch.jit.script(det).save(str(OUT / "shapes-detector.pt"))
    torch.jit.script(cls).save(str(OUT / "shapes-classifier.pt"))
    sizes = ", ".join(f"{p.name} {p.stat().st_size / 1024:.0f} KiB" for p in sorted(OUT.glob("*.pt")))
    print(f"saved {sizes} in {time.perf_counter() - started:.1f} s")


if __name__ == "__main__":
    main()
