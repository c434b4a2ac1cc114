"""Benchmark: scale-out of the Ray engine, on a cluster of 1 node and then 2 nodes of equal size.

In one run, for the latency-bound file job (and, with ``--inference``, the sample inference job):

* ``local``: the local engine (one process), the baseline;
* ``ray 1 node``: a ``ray.cluster_utils.Cluster`` on this machine whose head has no CPU (the
  driver lives there) and one worker node of ``--node-cpus`` CPUs; one 1-CPU actor per CPU;
* ``ray 2 nodes``: a second worker node of the same size added to that cluster; twice the actors,
  each with the same resources.

Start-up is timed apart (the cluster with its first node and ``ray.init``; the second node; and
for each Ray job the engine's own timings (``RayEngine.timings``): joining Ray, every actor built, the first batch
recorded), and each row gives the wall time, lines/s over the wall time (start-up included),
lines/s from the first recorded line to the last (warm), and the load average when the row
ended. The summary prints the 1-node rate against the local engine's and the 2-node rate against
the 1-node rate. Outputs are compared with the local engine's (``creation-date`` aside).

The file job is latency-bound by default, as a job reading label files from object storage is:
it reads Synapse ``objects`` documents from the HTTP server of ``file_annotate_bench.py`` (its own
process), which waits ``--latency`` (100 ms) in every request, with ``--concurrency`` (16)
requests in flight per annotator (per actor on Ray). Its rate is set by latency and concurrency,
not by CPU, so a second node of the same size should double it even when every node shares
this machine's cores. The inference job is CPU-bound: on nodes that share cores, its 2-node
figure says what the engine costs, not what real separate nodes would gain.

    python benchmarks/ray_bench.py [--file-lines 6000] [--node-cpus 1] [--inference]
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
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
    load: float = 0.0  # 1-minute load average when the row ended
    timings: dict | None = None  # the Ray engine's ray_timings

    @property
    def rate(self) -> float:
        return self.lines / self.wall

    @property
    def steady_rate(self) -> float | None:
        return self.lines / self.steady if self.steady else None

    @property
    def built_rate(self) -> float | None:
        """Ray: lines/s from every actor built to the last line recorded (the first batch's
        pipeline fill included, the cluster's and the actors' start-up not)."""
        t = self.timings or {}
        if "annotate_s" in t and "actors_ready_s" in t and t["annotate_s"] > t["actors_ready_s"]:
            return self.lines / (t["annotate_s"] - t["actors_ready_s"])
        return None


def run_job(config, engine: str, engine_options: dict | None = None) -> Row:
    from totask_manifest import _api as api
    from totask_manifest._engines.base import get_engine

    marks: list[tuple[float, int]] = []

    def on_progress(metrics: dict[str, int]) -> None:
        done = metrics["success"] + metrics["failed"] + metrics["routed"]
        marks.append((time.perf_counter(), done))

    started = time.perf_counter()
    runner = get_engine(engine, **(engine_options or {}))
    result = api.annotate(config, engine=runner, on_progress=on_progress)
    wall = time.perf_counter() - started
    assert result.status == "COMPLETED", (result.status, result.metrics)
    recorded = [(t, d) for t, d in marks if d > 0]
    steady = None
    if len(recorded) >= 2 and recorded[-1][1] > recorded[0][1]:
        (t0, d0), (t1, d1) = recorded[0], recorded[-1]
        steady = (t1 - t0) * d1 / (d1 - d0)  # the whole job at the rate between the first and last line
    return Row("", result.metrics["total"], wall, steady, os.getloadavg()[0], getattr(runner, "timings", None))


# -- the jobs ---------------------------------------------------------------------------------

def file_job(tmp: Path, base: str, lines: int, concurrency: int, tag: str):
    from totask_manifest._jobs.config import JobConfig

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
    from totask_manifest._jobs.config import JobConfig

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

def report(title: str, rows: list[Row]) -> None:
    base = rows[0]
    print(f"\n{title}")
    print(f"  {'engine':<12} {'lines':>7} {'wall s':>8} {'lines/s (start-up incl.)':>25} {'lines/s (warm)':>15}"
          f" {'load':>5}  start-up")
    for row in rows:
        steady = f"{row.steady_rate:,.0f}" if row.steady_rate else "n/a"
        t = row.timings or {}
        startup = (f"join {t.get('connect_s', 0):.1f} s, actors built {t.get('actors_ready_s', float('nan')):.1f} s, "
                   f"first batch {t.get('first_batch_s', float('nan')):.1f} s") if t else ""
        print(f"  {row.label:<12} {row.lines:7,} {row.wall:8.2f} {row.rate:25,.0f} {steady:>15} {row.load:5.1f}  {startup}")
    one = next(r for r in rows if r.label == "ray 1 node")
    two = next(r for r in rows if r.label == "ray 2 nodes")
    if one.steady_rate and base.steady_rate and two.steady_rate:
        print(f"  ray 1 node / local: x{one.steady_rate / base.steady_rate:.2f} (warm), "
              f"x{one.rate / base.rate:.2f} (wall)")
        print(f"  ray 2 nodes / 1 node: x{two.steady_rate / one.steady_rate:.2f} (warm), "
              f"x{two.rate / one.rate:.2f} (wall)")
    if one.built_rate and two.built_rate:
        print(f"  after the actors are built: ray 1 node {one.built_rate:,.0f} lines/s, 2 nodes "
              f"{two.built_rate:,.0f} lines/s: x{two.built_rate / one.built_rate:.2f}; "
              f"1 node / local (warm) x{one.built_rate / base.steady_rate:.2f}" if base.steady_rate else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--file-lines", type=int, default=6_000)
    parser.add_argument("--inference-lines", type=int, default=2_000)
    parser.add_argument("--latency", type=float, default=0.1, help="seconds the file server waits per request")
    parser.add_argument("--concurrency", type=int, default=16, help="requests in flight per annotator")
    parser.add_argument("--node-cpus", type=int, default=1, help="CPUs of each worker node (1-CPU actors)")
    parser.add_argument("--inference", action="store_true", help="also the sample inference job")
    args = parser.parse_args()

    logging.basicConfig(level=logging.WARNING)
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    import ray
    from ray.cluster_utils import Cluster

    load_at_start = " ".join(f"{x:.1f}" for x in os.getloadavg())
    bench = _file_bench_module()
    proc, base = bench.start_server(args.file_lines, args.latency)
    kinds = ["file", *(["inference"] if args.inference else [])]
    rows: dict[str, list[Row]] = {k: [] for k in kinds}
    model = None
    startup: dict[str, float] = {}
    try:
        with tempfile.TemporaryDirectory() as tmpdir:
            tmp = Path(tmpdir)

            def job(kind: str, tag: str):
                nonlocal model
                if kind == "file":
                    return file_job(tmp, base, args.file_lines, args.concurrency, tag)
                config, model = inference_job(tmp, args.inference_lines, tag)
                return config

            for kind in kinds:  # local first, with no Ray process around
                row = run_job(job(kind, "local"), "local")
                row.label = "local"
                rows[kind].append(row)
            started = time.perf_counter()
            cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
            cluster.add_node(num_cpus=args.node_cpus)
            cluster.wait_for_nodes()
            ray.init(address=cluster.address, logging_level=logging.WARNING)
            startup["cluster + first node + ray.init"] = time.perf_counter() - started
            try:
                for nodes in (1, 2):
                    if nodes == 2:
                        started = time.perf_counter()
                        cluster.add_node(num_cpus=args.node_cpus)
                        cluster.wait_for_nodes()
                        startup["second node"] = time.perf_counter() - started
                    # one machine: the sample model's local path is the same on every node
                    options = {"address": cluster.address, "actors": nodes * args.node_cpus, "shared_paths": True}
                    for kind in kinds:
                        row = run_job(job(kind, f"{nodes}node"), "ray", options)
                        row.label = f"ray {nodes} node{'s' if nodes > 1 else ''}"
                        rows[kind].append(row)
            finally:
                ray.shutdown()
                cluster.shutdown()
            for kind in kinds:  # the engines agree (creation-date aside)
                for tag in ("1node", "2node"):
                    same = _same_output(tmp / "out" / f"{kind}-local", tmp / "out" / f"{kind}-{tag}")
                    assert same, f"{kind} job: ray {tag} output differs from local"
    finally:
        proc.kill()
        proc.wait()

    print(f"machine: {os.cpu_count()} CPU(s) shared by every node (and by other processes); Ray {ray.__version__}; "
          f"worker nodes of {args.node_cpus} CPU(s), 1-CPU actors; load average at the start {load_at_start}, "
          f"at the end {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print("start-up: " + ", ".join(f"{k} {v:.1f} s" for k, v in startup.items()))
    report(f"file job: {args.file_lines:,} lines, server waits {args.latency * 1000:g} ms per request, "
           f"{args.concurrency} requests in flight per annotator", rows["file"])
    if "inference" in rows and model is not None:
        report(f"inference job: {args.inference_lines:,} lines, model {model.name}, CPU", rows["inference"])
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
