"""Inference pipeline throughput versus the same model's forward pass on ready tensors.

    python benchmarks/inference_bench.py [--images 160] [--batch-size 16] [--device auto]

Both figures come from the same run, same model file, same device, batch 16:

* model only: ``module(x)`` on a float batch already on the device (no I/O, no decoding);
* pipeline: ``InferenceAnnotator.annotate`` over a manifest of local JPEG files (fetch through
  the fetch layer, Pillow decode and resize in threads, batching, transfer, forward, softmax and
  the Ground Truth label per line).

The target on CPU is a pipeline at 90% or more of the model-only rate: fetching and decoding
must hide behind the model. The model is a ResNet-18 (random weights, seeded) at 224x224, the
lightest network used for real pre-annotation, so the forward pass dominates as it does in use.
On CUDA the run also reports fp16 rates and GPU utilisation sampled during the pipeline run.
Images and the scripted model are written to ``benchmarks/_data/inference/`` (ignored by git).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw
from torch import nn

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from totask_manifest._annotators.base import Item  # noqa: E402
from totask_manifest._annotators.inference import InferenceAnnotator  # noqa: E402
from totask_manifest.testing.runs import job_run  # noqa: E402

DATA = REPO / "benchmarks" / "_data" / "inference"


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.b1 = nn.BatchNorm2d(cout)
        self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.b2 = nn.BatchNorm2d(cout)
        self.down = (
            nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
            if stride != 1 or cin != cout else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.b1(self.c1(x)))
        return torch.relu(self.b2(self.c2(y)) + self.down(x))


class ResNet18(nn.Module):
    """torchvision's resnet18 layout, written out (torchvision is not installed here)."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.class_names = [f"class{i}" for i in range(num_classes)]
        self.stem = nn.Sequential(nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(),
                                  nn.MaxPool2d(3, 2, 1))
        layers, cin = [], 64
        for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            layers += [BasicBlock(cin, cout, stride), BasicBlock(cout, cout, 1)]
            cin = cout
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(512, num_classes)
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - self.mean) / self.std
        return self.fc(self.layers(self.stem(x)).mean(dim=(2, 3)))


def make_images(n: int, width: int, height: int) -> Path:
    folder = DATA / f"images-{width}x{height}"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(5)
    for i in range(n):
        path = folder / f"img{i:05d}.jpg"
        if path.exists():
            continue
        pixels = np.clip(rng.normal(120, 40, size=(height, width, 3)), 0, 255).astype(np.uint8)
        im = Image.fromarray(pixels)
        draw = ImageDraw.Draw(im)
        for _ in range(3):
            x, y = int(rng.integers(0, width - 40)), int(rng.integers(0, height - 40))
            draw.ellipse((x, y, x + 40, y + 40), fill=tuple(int(c) for c in rng.integers(0, 255, 3)))
        im.save(path, quality=90)
    return folder


def model_only(path: Path, device: torch.device, batch: int, batches: int, fp16: bool) -> float:
    module = torch.jit.load(str(path), map_location=device).eval()
    dtype = torch.float16 if fp16 else torch.float32
    if fp16:
        module = module.half()
    x = torch.rand(batch, 3, 224, 224, device=device, dtype=dtype)
    with torch.inference_mode():
        for _ in range(3):  # TorchScript profiling runs and oneDNN kernel creation happen here
            module(x)
        sync(device)
        start = time.perf_counter()
        for _ in range(batches):
            out = module(x)
            out.float().cpu()  # the pipeline also brings logits back
        sync(device)
    return batch * batches / (time.perf_counter() - start)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def pipeline(path: Path, folder: Path, n: int, batch: int, device: str, fp16: bool) -> tuple[float, list[float]]:
    files = sorted(folder.glob("*.jpg"))[:n]
    items = [Item(i, i + 1, {"source-ref": str(f)}) for i, f in enumerate(files)]
    ctx = job_run("bench", "cls", "image-classification",
                  {"model": str(path), "allow_root": str(folder), "batch_size": batch, "device": device,
                   "use_fp16": fp16, "input_size": "224"},
                  method="inference", output_root=str(DATA))
    utilisation: list[float] = []
    with InferenceAnnotator(ctx) as annotator:
        for _ in annotator.annotate(items[: 3 * batch]):  # warm-up: TorchScript profiling runs, thread pools
            pass
        stop = threading.Event()
        sampler = None
        if annotator.runner.device.type == "cuda":
            sampler = threading.Thread(target=sample_gpu, args=(stop, utilisation), daemon=True)
            sampler.start()
        start = time.perf_counter()
        count = sum(1 for _ in annotator.annotate(items))
        elapsed = time.perf_counter() - start
        stop.set()
        if sampler is not None:
            sampler.join()
    assert count == len(items)
    return len(items) / elapsed, utilisation


def sample_gpu(stop: threading.Event, out: list[float]) -> None:
    import subprocess

    while not stop.wait(0.1):
        try:
            out.append(float(torch.cuda.utilization()))
            continue
        except Exception:
            pass
        try:
            r = subprocess.run(["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"],
                               capture_output=True, text=True, timeout=5)
            out.append(float(r.stdout.split()[0]))
        except Exception:
            return


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=160)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--image-size", default="320x240", help="WIDTHxHEIGHT of the generated JPEGs")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds; the median of each is reported")
    ap.add_argument("--json", help="also write the figures to this file")
    args = ap.parse_args()

    width, height = (int(v) for v in args.image_size.lower().split("x"))
    folder = make_images(args.images, width, height)
    torch.manual_seed(0)
    model_path = DATA / "resnet18.pt"
    torch.jit.script(ResNet18().eval()).save(str(model_path))
    device = torch.device("cuda" if args.device in ("auto", "cuda") and torch.cuda.is_available() else "cpu")
    batches = max(1, args.images // args.batch_size)
    precisions = [False, True] if device.type == "cuda" else [False]
    results: dict = {"device": str(device), "torch": torch.__version__, "threads": torch.get_num_threads(),
                     "images": args.images, "batch_size": args.batch_size, "image_size": args.image_size}
    print(f"device {device}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{args.images} JPEGs {width}x{height} -> 224x224, ResNet-18, batch {args.batch_size}")
    # one untimed pass of each first: the first forward passes in a process are slow (oneDNN
    # creates its kernels per shape), which would otherwise count against whichever runs first
    model_only(model_path, device, args.batch_size, 2, False)
    pipeline(model_path, folder, 3 * args.batch_size, args.batch_size, str(device), False)
    for fp16 in precisions:
        tag = "fp16" if fp16 else "fp32"
        mo, pl, util = [], [], []
        for _ in range(args.rounds):
            mo.append(model_only(model_path, device, args.batch_size, batches, fp16))
            rate, u = pipeline(model_path, folder, args.images, args.batch_size, str(device), fp16)
            pl.append(rate)
            util += u
        m, p = statistics.median(mo), statistics.median(pl)
        results[tag] = {"model_only_images_per_s": round(m, 2), "pipeline_images_per_s": round(p, 2),
                        "ratio": round(p / m, 3), "rounds_model_only": [round(v, 2) for v in mo],
                        "rounds_pipeline": [round(v, 2) for v in pl]}
        line = (f"{tag}: model only {m:8.1f} images/s | pipeline {p:8.1f} images/s | "
                f"pipeline / model = {p / m:6.1%}  (target >= 90%)")
        if util:
            results[tag]["gpu_utilisation_mean_pct"] = round(statistics.fmean(util), 1)
            line += f" | GPU utilisation {statistics.fmean(util):.0f}% (mean of {len(util)} samples)"
        print(line)
        print(f"      rounds: model only {results[tag]['rounds_model_only']}, pipeline {results[tag]['rounds_pipeline']}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
