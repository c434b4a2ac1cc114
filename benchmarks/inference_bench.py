"""Inference pipeline throughput versus the same model's forward pass on ready tensors.

    python benchmarks/inference_bench.py [--images 160] [--batch-size 16] [--device auto] [--phases 8]

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

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench_models import ResNet18, RetinaNet50  # noqa: E402

from totask_manifest._annotators.base import Item  # noqa: E402
from totask_manifest._annotators.inference import InferenceAnnotator  # noqa: E402
from totask_manifest._outcomes import Failed  # noqa: E402
from totask_manifest.testing.runs import job_run  # noqa: E402

DATA = REPO / "benchmarks" / "_data" / "inference"


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


MODELS = {
    # name: (network, task type, the model's input side for model-only, its pipeline options)
    "resnet18": (ResNet18, "image-classification", {"input_size": "224"}),
    "retinanet50": (RetinaNet50, "object-detection", {}),
}


def model_input(name: str, device: torch.device, batch: int, dtype: torch.dtype,
                width: int, height: int) -> torch.Tensor | list[torch.Tensor]:
    """What the pipeline hands the model, ready on the device: a stacked 224x224 batch for the
    classifier, a list of images at their own size for the detector."""
    if name == "resnet18":
        return torch.rand(batch, 3, 224, 224, device=device, dtype=dtype)
    return [torch.rand(3, height, width, device=device, dtype=dtype) for _ in range(batch)]


def model_only(name: str, path: Path, device: torch.device, batch: int, batches: int, fp16: bool,
               size: tuple[int, int]) -> tuple[float, list[float]]:
    module = torch.jit.load(str(path), map_location=device).eval()
    dtype = torch.float16 if fp16 else torch.float32
    if fp16:
        module = module.half()
    x = model_input(name, device, batch, dtype, *size)
    utilisation: list[float] = []
    with torch.inference_mode():
        for _ in range(3):  # TorchScript profiling runs and oneDNN kernel creation happen here
            module(x)
        sync(device)
        with gpu_sampler(device, utilisation):
            start = time.perf_counter()
            for _ in range(batches):
                out = module(x)
                to_cpu(out)  # the pipeline also brings the outputs back
            sync(device)
            elapsed = time.perf_counter() - start
    return batch * batches / elapsed, utilisation


def to_cpu(out: object) -> None:
    if isinstance(out, torch.Tensor):
        out.float().cpu()
    else:
        for pred in out:  # a detector's list of dicts
            for v in pred.values():
                v.cpu()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


class gpu_sampler:
    """GPU utilisation sampled every 0.1 s while the block runs (CUDA only)."""

    def __init__(self, device: torch.device, out: list[float]) -> None:
        self.device, self.out = device, out
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None

    def __enter__(self) -> None:
        if self.device.type == "cuda":
            self.thread = threading.Thread(target=sample_gpu, args=(self.stop, self.out), daemon=True)
            self.thread.start()

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join()


def bench_job(job: str, name: str, path: Path, folder: Path, n: int, batch: int, device: str,
              fp16: bool) -> tuple[list[Item], object]:
    """The first ``n`` images of ``folder`` as items, and an inference job's run context for them."""
    files = sorted(folder.glob("*.jpg"))[:n]
    items = [Item(i, i + 1, {"source-ref": str(f)}) for i, f in enumerate(files)]
    _network, task_type, options = MODELS[name]
    ctx = job_run(job, "label", task_type,
                  {"model": str(path), "allow_root": str(folder), "batch_size": batch, "device": device,
                   "use_fp16": fp16, **options},
                  method="inference", output_root=str(DATA))
    return items, ctx


def pipeline(name: str, path: Path, folder: Path, n: int, batch: int, device: str,
             fp16: bool) -> tuple[float, list[float], float]:
    """Images a second through the annotator, the GPU utilisation samples, and the share of the
    wall time spent inside the model runner's ``predict`` (transfer, forward, outputs back)."""
    items, ctx = bench_job("bench", name, path, folder, n, batch, device, fp16)
    utilisation: list[float] = []
    in_model = [0.0]
    with InferenceAnnotator(ctx) as annotator:
        for _ in annotator.annotate(items[: 3 * batch]):  # warm-up: TorchScript profiling runs, thread pools
            pass
        runner = annotator.runner
        predict = runner.predict

        def timed(inputs):  # type: ignore[no-untyped-def]
            t = time.perf_counter()
            try:
                return predict(inputs)
            finally:
                in_model[0] += time.perf_counter() - t

        runner.predict = timed
        with gpu_sampler(runner.device, utilisation):
            start = time.perf_counter()
            count = 0
            reasons: list[str] = []
            for _item, outcome in annotator.annotate(items):
                count += 1
                if isinstance(outcome, Failed):
                    reasons.append(outcome.reason)
            elapsed = time.perf_counter() - start
    assert count == len(items), (count, len(items))
    assert not reasons, f"{len(reasons)} image(s) failed in the pipeline, first: {reasons[0]}"
    return len(items) / elapsed, utilisation, in_model[0] / elapsed


def phases(name: str, path: Path, folder: Path, batch: int, device: str, fp16: bool, batches: int,
           table: Path | None) -> dict[str, float]:
    """Median milliseconds a batch of each step of the runner's ``predict``, the device synchronized
    after each step (so they do not overlap as in the pipeline): ``tensors`` (stacking, pinning,
    the copy to the device and the conversion there), ``forward`` (the model), ``outputs`` (the
    results back to the CPU). Why: the pipeline spent 55 ms a batch inside ``predict`` against a
    24 ms forward pass (stop 40, RetinaNet-50 fp32 on an H200), and which step holds the rest
    decides the next change. ``table``: also torch.profiler's table of the same batches (by
    device time where there is one), written to that file."""
    items, ctx = bench_job("bench-phases", name, path, folder, (batches + 3) * batch, batch, device, fp16)
    steps: dict[str, list[float]] = {"tensors": [], "forward": [], "outputs": []}
    with InferenceAnnotator(ctx) as annotator:
        for _ in annotator.annotate(items[: 3 * batch]):  # warm-up
            pass
        runner = annotator.runner
        head, dev = runner.head, runner.device

        def stepped(inputs):  # type: ignore[no-untyped-def]
            with torch.inference_mode():
                sync(dev)
                t0 = time.perf_counter()
                with torch.profiler.record_function("tensors"):
                    x = head.tensors(inputs, runner._to_device)
                    sync(dev)
                t1 = time.perf_counter()
                with torch.profiler.record_function("forward"):
                    out = runner._call_batched(x) if head.stacked else runner.module(x)
                    sync(dev)
                t2 = time.perf_counter()
                with torch.profiler.record_function("outputs"):
                    result = head.outputs(out, len(inputs))
                t3 = time.perf_counter()
            for step, ms in zip(steps, (t1 - t0, t2 - t1, t3 - t2), strict=True):
                steps[step].append(1000 * ms)
            return result

        runner.predict = stepped
        rest = items[3 * batch:]
        if table is None:
            for _ in annotator.annotate(rest):
                pass
        else:
            activities = [torch.profiler.ProfilerActivity.CPU]
            if dev.type == "cuda":
                activities.append(torch.profiler.ProfilerActivity.CUDA)
            with torch.profiler.profile(activities=activities) as prof:
                for _ in annotator.annotate(rest):
                    pass
            sort = "self_cuda_time_total" if dev.type == "cuda" else "self_cpu_time_total"
            table.write_text(prof.key_averages().table(sort_by=sort, row_limit=30) + "\n")
    return {step: round(statistics.median(ms), 2) for step, ms in steps.items() if ms}


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


def mean(values: list[float]) -> float | None:
    return round(statistics.fmean(values), 1) if values else None


def bench_model(name: str, args: argparse.Namespace, device: torch.device, results: dict) -> None:
    width, height = (int(v) for v in args.image_size.lower().split("x"))
    folder = make_images(args.images, width, height)
    torch.manual_seed(0)
    network = MODELS[name][0]
    model_path = DATA / f"{name}.pt"
    torch.jit.script(network().eval()).save(str(model_path))
    batches = max(1, args.images // args.batch_size)
    precisions = [False, True] if device.type == "cuda" else [False]
    print(f"{name}: {args.images} JPEGs {width}x{height}, batch {args.batch_size}")
    # one untimed pass of each first: the first forward passes in a process are slow (oneDNN
    # creates its kernels per shape), which would otherwise count against whichever runs first
    model_only(name, model_path, device, args.batch_size, 2, False, (width, height))
    pipeline(name, model_path, folder, 3 * args.batch_size, args.batch_size, str(device), False)
    for fp16 in precisions:
        tag = "fp16" if fp16 else "fp32"
        mo, pl, util_mo, util_pl, share = [], [], [], [], []
        for _ in range(args.rounds):
            rate, u = model_only(name, model_path, device, args.batch_size, batches, fp16, (width, height))
            mo.append(rate)
            util_mo += u
            rate, u, in_model = pipeline(name, model_path, folder, args.images, args.batch_size, str(device), fp16)
            pl.append(rate)
            util_pl += u
            share.append(in_model)
        m, p = statistics.median(mo), statistics.median(pl)
        figures = {"model_only_images_per_s": round(m, 2), "pipeline_images_per_s": round(p, 2),
                   "ratio": round(p / m, 3), "rounds_model_only": [round(v, 2) for v in mo],
                   "rounds_pipeline": [round(v, 2) for v in pl],
                   "pipeline_share_in_predict": round(statistics.median(share), 3)}
        line = (f"  {tag}: model only {m:8.1f} images/s | pipeline {p:8.1f} images/s | "
                f"pipeline / model = {p / m:6.1%}  (target >= 90%) | {statistics.median(share):.0%} of the "
                "pipeline's time in predict")
        if util_pl:
            figures["gpu_utilisation_pipeline_mean_pct"] = mean(util_pl)
            figures["gpu_utilisation_model_only_mean_pct"] = mean(util_mo)
            line += (f" | GPU utilisation: pipeline {mean(util_pl)}% ({len(util_pl)} samples), "
                     f"model only {mean(util_mo)}%")
        results[name][tag] = figures
        print(line)
        print(f"      rounds: model only {figures['rounds_model_only']}, pipeline {figures['rounds_pipeline']}")
        if args.phases:
            table = Path(args.phases_table) / f"profile-{name}-{tag}.txt" if args.phases_table else None
            split = phases(name, model_path, folder, args.batch_size, str(device), fp16, args.phases, table)
            figures["predict_steps_ms_per_batch"] = split
            print("      predict's steps, ms a batch (device synchronized after each): "
                  + ", ".join(f"{k} {v}" for k, v in split.items()) + (f"; profile in {table}" if table else ""))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=160)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--model", default="resnet18", help="resnet18, retinanet50, or both comma-separated")
    ap.add_argument("--image-size", default="320x240", help="WIDTHxHEIGHT of the generated JPEGs")
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds; the median of each is reported")
    ap.add_argument("--json", help="also write the figures to this file")
    ap.add_argument("--phases", type=int, default=0, metavar="BATCHES",
                    help="also time predict's steps (tensors, forward, outputs) over this many batches")
    ap.add_argument("--phases-table", metavar="DIR", help="with --phases: torch.profiler's table per model and "
                    "precision, written to this folder")
    ap.add_argument("--switch-interval", type=float,
                    help="sys.setswitchinterval for the whole run (how long a thread running Python keeps the "
                         "GIL from one that asks for it; Python's default is 0.005 s)")
    args = ap.parse_args()
    if args.switch_interval:
        sys.setswitchinterval(args.switch_interval)
    names = [n.strip() for n in args.model.split(",") if n.strip()]
    unknown = [n for n in names if n not in MODELS]
    if unknown or not names:
        ap.error(f"--model: {', '.join(unknown) or 'none given'}; choose from {', '.join(MODELS)}")

    device = torch.device("cuda" if args.device in ("auto", "cuda") and torch.cuda.is_available() else "cpu")
    results: dict = {"device": str(device), "torch": torch.__version__, "threads": torch.get_num_threads(),
                     "switch_interval_s": sys.getswitchinterval(),
                     "images": args.images, "batch_size": args.batch_size, "image_size": args.image_size}
    if device.type == "cuda":
        results["gpu"] = torch.cuda.get_device_name(0)
    print(f"device {device}{' (' + results['gpu'] + ')' if 'gpu' in results else ''}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, GIL switch interval {sys.getswitchinterval()} s")
    for name in names:
        results[name] = {}
        bench_model(name, args, device, results)
        if args.json:  # after each model: a later one that fails keeps the figures so far
            Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
