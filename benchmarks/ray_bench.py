"""Benchmark: the same file and inference jobs on the local engine and on a local Ray instance.

In one run, for each job (the baseline is the local engine on the same job):

* ``local``: ``api.annotate(..., engine="local")``;
* ``ray cold``: ``engine="ray"`` with Ray not running: the engine starts a private instance,
  runs the job and shuts it down (what ``totask-manifest annotate --engine ray`` costs);
* ``ray warm``: the same job on an instance already started (``ray.init`` timed apart): what a
  job costs on a running cluster, actor pool start-up included;
* ``local 1thr`` (inference): the local engine with ``torch.set_num_threads(1)``, which is what
  Ray gives a 1-CPU actor (``OMP_NUM_THREADS=1``): on shared, busy cores torch's default threads
  oversubscribe them, and that gain is not Ray's.

Each row gives the wall time, lines/s over the wall time (start-up included) and lines/s from
the first recorded line to the last (start-up excluded), and the overhead against local.

The file job reads Synapse ``objects`` documents from the HTTP server of
``file_annotate_bench.py`` (its own process, ``--latency`` added per request). The inference
job runs the sample TorchScript classifier (``sample_data/models/shapes-classifier.pt``) on the
sample images, or a small torch model built here when the sample model is missing.

    python benchmarks/ray_bench.py [--file-lines 10000] [--inference-lines 2000] [--num-cpus 2]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import orjson

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
SAMPLE = REPO / "sample_data"


def _file_bench_module():
    spec = importlib.util.spec_from_file_location("file_annotate_bench", HERE / "file_annotate_bench.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


@dataclass
class Row:
    label: str
    lines: int
    wall: float
    steady: float | None  # seconds from the first recorded line to the last

    @property
    def rate(self) -> float:
        return self.lines / self.wall

    @property
    def steady_rate(self) -> float | None:
        return self.lines / self.steady if self.steady else None


def run_job(config, engine: str, engine_options: dict | None = None) -> tuple[float, float | None, dict]:
    from totask_manifest import api

    marks: list[tuple[float, int]] = []

    def on_progress(metrics: dict[str, int]) -> None:
        done = metrics["success"] + metrics["failed"] + metrics["routed"]
        marks.append((time.perf_counter(), done))

    started = time.perf_counter()
    result = api.annotate(config, engine=engine, engine_options=engine_options or {}, on_progress=on_progress)
    wall = time.perf_counter() - started
    assert result.status == "COMPLETED", (result.status, result.metrics)
    recorded = [(t, d) for t, d in marks if d > 0]
    steady = None
    if len(recorded) >= 2 and recorded[-1][1] > recorded[0][1]:
        (t0, d0), (t1, d1) = recorded[0], recorded[-1]
        steady = (t1 - t0) * d1 / (d1 - d0)  # the whole job at the rate between the first and last line
    return wall, steady, result.metrics


# -- the jobs ---------------------------------------------------------------------------------

def file_job(tmp: Path, base: str, lines: int, concurrency: int, tag: str):
    from totask_manifest.jobs.config import JobConfig

    bench = _file_bench_module()
    manifest = tmp / "file.manifest"
    if not manifest.exists():
        manifest.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in bench.records(base, lines)))
    return JobConfig(job_name=f"file-{tag}", input=str(manifest), output_root=str(tmp / "out"),
                     label_attribute="boxes", task_type="object-detection", method="file",
                     options={"url_key": "label-ref", "concurrency": concurrency})


def _fallback_model(path: Path) -> None:
    """A small CNN classifier, scripted with its class names and input size (as the sample)."""
    import torch
    from torch import nn

    class Small(nn.Module):
        class_names: list[str]
        input_size: int

        def __init__(self) -> None:
            super().__init__()
            self.class_names = ["circle", "square", "triangle"]
            self.input_size = 48
            self.body = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                      nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                                      nn.Flatten(), nn.Linear(32, 3))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.body(x)

    torch.manual_seed(0)
    torch.jit.script(Small().eval()).save(str(path))


def inference_job(tmp: Path, lines: int, tag: str):
    from totask_manifest.jobs.config import JobConfig

    model = SAMPLE / "models" / "shapes-classifier.pt"
    if not model.exists():
        model = tmp / "small-classifier.pt"
        if not model.exists():
            _fallback_model(model)
    images = sorted((SAMPLE / "images").glob("*.jpg"))
    manifest = tmp / "inference.manifest"
    if not manifest.exists():
        manifest.write_bytes(b"".join(
            orjson.dumps({"source-ref": str(images[i % len(images)]), "n": i}) + b"\n" for i in range(lines)))
    return JobConfig(job_name=f"inference-{tag}", input=str(manifest), output_root=str(tmp / "out"),
                     label_attribute="shape", task_type="image-classification", method="inference",
                     options={"model": str(model), "allow_root": str(SAMPLE)}), model


# -- report -----------------------------------------------------------------------------------

def report(title: str, rows: list[Row], init_seconds: float) -> None:
    base = rows[0]
    fair = next((r for r in rows if r.label == "local 1thr"), None)
    print(f"\n{title}")
    print(f"  {'engine':<11} {'wall s':>8} {'lines/s (start-up incl.)':>25} {'lines/s (excl.)':>16} "
          f"{'wall vs local':>18}")
    for row in rows:
        steady = f"{row.steady_rate:,.0f}" if row.steady_rate else "n/a"
        over = "" if row is base else f"{row.wall - base.wall:+.1f} s (x{row.wall / base.wall:.2f})"
        print(f"  {row.label:<11} {row.wall:8.2f} {row.rate:25,.0f} {steady:>16} {over:>18}")
    warm = next(r for r in rows if r.label == "ray warm")
    if warm.steady_rate and base.steady_rate:
        print(f"  steady rate ray warm / local: {warm.steady_rate / base.steady_rate:.2f}  "
              f"(ray.init alone: {init_seconds:.1f} s)")
    if fair is not None and warm.steady_rate and fair.steady_rate:
        print(f"  with one torch thread in both: ray warm wall {warm.wall - fair.wall:+.1f} s vs local, "
              f"steady rate ray warm / local: {warm.steady_rate / fair.steady_rate:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--file-lines", type=int, default=10_000)
    parser.add_argument("--inference-lines", type=int, default=2_000)
    parser.add_argument("--latency", type=float, default=0.01, help="seconds the file server adds per request")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--num-cpus", type=int, default=os.cpu_count() or 1, help="CPUs of the local Ray instance")
    parser.add_argument("--skip-inference", action="store_true")
    args = parser.parse_args()

    import logging

    logging.basicConfig(level=logging.WARNING)
    import ray

    bench = _file_bench_module()
    proc, base = bench.start_server(args.file_lines, args.latency)
    ray_options = {"num_cpus": args.num_cpus}
    try:
        with tempfile.TemporaryDirectory() as tmpdir:
            tmp = Path(tmpdir)
            file_rows: list[Row] = []
            inf_rows: list[Row] = []
            model = None
            # local first, with no Ray process around
            wall, steady, m = run_job(file_job(tmp, base, args.file_lines, args.concurrency, "local"), "local")
            file_rows.append(Row("local", m["total"], wall, steady))
            if not args.skip_inference:
                config, model = inference_job(tmp, args.inference_lines, "local")
                wall, steady, m = run_job(config, "local")
                inf_rows.append(Row("local", m["total"], wall, steady))
                # Ray gives each 1-CPU actor OMP_NUM_THREADS=1; the same for the local engine, so
                # that thread oversubscription on shared cores is not counted as Ray's gain
                import torch

                threads = torch.get_num_threads()
                torch.set_num_threads(1)
                try:
                    config, _ = inference_job(tmp, args.inference_lines, "local1")
                    wall, steady, m = run_job(config, "local")
                    inf_rows.append(Row("local 1thr", m["total"], wall, steady))
                finally:
                    torch.set_num_threads(threads)
            # cold: the engine starts and stops its own instance per job
            wall, steady, m = run_job(file_job(tmp, base, args.file_lines, args.concurrency, "cold"), "ray",
                                      ray_options)
            file_rows.append(Row("ray cold", m["total"], wall, steady))
            if not args.skip_inference:
                config, _ = inference_job(tmp, args.inference_lines, "cold")
                wall, steady, m = run_job(config, "ray", ray_options)
                inf_rows.append(Row("ray cold", m["total"], wall, steady))
            # warm: one instance, started here and timed apart
            started = time.perf_counter()
            ray.init(num_cpus=args.num_cpus, include_dashboard=False, logging_level=logging.WARNING)
            init_seconds = time.perf_counter() - started
            try:
                wall, steady, m = run_job(file_job(tmp, base, args.file_lines, args.concurrency, "warm"), "ray")
                file_rows.append(Row("ray warm", m["total"], wall, steady))
                if not args.skip_inference:
                    config, _ = inference_job(tmp, args.inference_lines, "warm")
                    wall, steady, m = run_job(config, "ray")
                    inf_rows.append(Row("ray warm", m["total"], wall, steady))
            finally:
                ray.shutdown()
            for tag in ("cold", "warm", "local1"):  # the engines agree (creation-date aside)
                for kind in ("file",) + (() if args.skip_inference else ("inference",)):
                    if tag == "local1" and kind == "file":
                        continue
                    same = _same_output(tmp / "out" / f"{kind}-local", tmp / "out" / f"{kind}-{tag}")
                    assert same, f"{kind} job: ray {tag} output differs from local"
    finally:
        proc.kill()
        proc.wait()

    print(f"machine: {os.cpu_count()} CPU(s); Ray {ray.__version__}, local instance with {args.num_cpus} CPU(s); "
          f"load average {os.getloadavg()[0]:.1f} (other processes share these cores)")
    report(f"file job: {args.file_lines:,} lines, server adds {args.latency * 1000:g} ms per request, "
           f"concurrency {args.concurrency}", file_rows, init_seconds)
    if inf_rows:
        report(f"inference job: {args.inference_lines:,} lines, model {model.name}, CPU", inf_rows, init_seconds)
    print("\noutputs: identical between engines (creation-date aside) for every job above")


def _same_output(a: Path, b: Path) -> bool:
    sys.path.insert(0, str(REPO))
    from tests.jobs_helpers import normalized

    ja, jb = a.name, b.name
    la = (a / "manifests/output/output.manifest").read_bytes().splitlines()
    lb = (b / "manifests/output/output.manifest").read_bytes().splitlines()
    if len(la) != len(lb):
        return False
    for x, y in zip(la, lb, strict=True):
        y = y.replace(f"labeling-job/{jb}".encode(), f"labeling-job/{ja}".encode())
        if x != y and normalized(x) != normalized(y):
            return False
    return True


if __name__ == "__main__":
    main()
