"""How fast ``stats`` counts a 1,000,000-line bounding-box manifest, against plain Python + orjson.

Prints wall time, CPU and peak RSS of ``manifest_stats`` (in a child process, so the RSS is its
own; its worker processes' peak is reported apart) and of the baseline, an independent
single-core orjson loop computing the same counts (in a child process too), plus the ratio. The
two results are compared, so figures are only printed for a correct run.

    python benchmarks/stats_bench.py [--lines 1000000] [--workers N] [--keep PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import orjson

ATTR = "boxes"
CLASSES = ["person", "car", "bicycle", "dog", "cat", "truck", "bus"]


def generate(path: Path, lines: int, seed: int = 7) -> None:
    """Lines shaped like the real yolov5 sample (float coordinates, per-box confidence), about 430 B each."""
    rng = random.Random(seed)
    with open(path, "wb", buffering=1 << 22) as f:
        for i in range(lines):
            if i % 50 == 49:  # a few failed lines and a few human ones, so every count is exercised
                f.write(orjson.dumps({
                    "source-ref": f"s3://bench-bucket/images/{i:08d}.jpg",
                    f"{ATTR}-metadata": {"failure-reason": "ClientError: fetch failed (404)"},
                }) + b"\n")
                continue
            n = rng.choice((1, 1, 2, 2, 3))
            anns = [
                {"class_id": (c := rng.randrange(len(CLASSES))), "top": round(rng.uniform(0, 500), 2),
                 "left": round(rng.uniform(0, 600), 2), "height": rng.randrange(10, 300), "width": rng.randrange(10, 300)}
                for _ in range(n)
            ]
            used = {str(a["class_id"]): CLASSES[a["class_id"]] for a in anns}
            f.write(orjson.dumps({
                "source-ref": f"s3://bench-bucket/images/{i:08d}.jpg",
                ATTR: {"image_size": [{"width": 1024, "height": 768, "depth": 3}], "annotations": anns},
                f"{ATTR}-metadata": {
                    "objects": [{"confidence": round(rng.random(), 2)} for _ in anns],
                    "class-map": used,
                    "type": "groundtruth/object-detection",
                    "human-annotated": "yes" if i % 10 == 0 else "no",
                    "creation-date": "2026-11-21T10:00:00.000000",
                    "job-name": "labeling-job/bench" + ("-chain" if i >= lines // 2 else ""),
                },
            }) + b"\n")
            del c


def plain_python(path: Path) -> dict:
    """The independent count: one orjson.loads per line, one core. Failures are counted by rule,
    as ``stats`` counts them (``rule_of`` runs on the 2% of lines that failed only)."""
    from totask_manifest._failure_rules import rule_of

    lines = labeled = failed = 0
    classes: Counter = Counter()
    human: Counter = Counter()
    hist = [0] * 10
    jobs: Counter = Counter()
    reasons: Counter = Counter()
    per_image: Counter = Counter()
    with open(path, "rb") as f:
        for raw in f:
            lines += 1
            rec = orjson.loads(raw)
            meta = rec.get(f"{ATTR}-metadata")
            if meta is None:
                continue
            if "failure-reason" in meta:
                failed += 1
                reasons[rule_of(meta["failure-reason"])] += 1
                continue
            labeled += 1
            human[meta["human-annotated"]] += 1
            jobs[meta["job-name"]] += 1
            per_image[len(rec[ATTR]["annotations"])] += 1
            for a in rec[ATTR]["annotations"]:
                classes[a["class_id"]] += 1
            for o in meta["objects"]:
                hist[min(int(o["confidence"] * 10), 9)] += 1
    return {"lines": lines, "labeled": labeled, "failed": failed, "classes": dict(classes), "human": dict(human),
            "hist": hist, "jobs": dict(jobs), "failures": dict(reasons), "per_image": dict(per_image)}


def _rusage(cpu_before: float) -> dict:
    """CPU since ``cpu_before`` of this process plus its finished children (the stats workers,
    start-up included), and peak RSS of this process and of its largest child."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"cpu": time.process_time() - cpu_before + kids.ru_utime + kids.ru_stime,
            "rss_mib": me.ru_maxrss / 1024, "worker_rss_mib": kids.ru_maxrss / 1024}


def _stats_child(path: str, workers: int | None) -> None:
    from totask_manifest._analytics.stats import manifest_stats

    t, cpu = time.perf_counter(), time.process_time()
    s = manifest_stats(path, workers=workers)
    elapsed = time.perf_counter() - t
    a = s.attributes[ATTR]
    out = {"lines": s.lines, "labeled": a.labeled, "failed": a.failed,
           "classes": {c.class_id: c.count for c in a.classes}, "human": a.human_annotated,
           "hist": a.confidence_histogram, "jobs": a.job_names, "failures": a.failures,
           "per_image": a.boxes_per_image}
    print(json.dumps({"elapsed": elapsed, **_rusage(cpu), "result": out}))


def _baseline_child(path: str) -> None:
    t, cpu = time.perf_counter(), time.process_time()
    out = plain_python(Path(path))
    print(json.dumps({"elapsed": time.perf_counter() - t, **_rusage(cpu), "result": out}))


def _run_child(*args: str) -> dict:
    proc = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, check=True)
    child = json.loads(proc.stdout.strip().splitlines()[-1])
    got = child["result"]
    got["classes"] = {int(k): v for k, v in got["classes"].items()}
    got["per_image"] = {int(k): v for k, v in got["per_image"].items()}
    return child


def main() -> None:
    if len(sys.argv) >= 3 and sys.argv[1] == "--stats-child":
        _stats_child(sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else None)
        return
    if len(sys.argv) == 3 and sys.argv[1] == "--baseline-child":
        _baseline_child(sys.argv[2])
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--workers", type=int, help="stats worker processes (default: one per CPU)")
    ap.add_argument("--keep", help="reuse/keep the generated manifest at this path")
    args = ap.parse_args()
    tmpdir = tempfile.mkdtemp(prefix="stats-bench-")
    path = Path(args.keep) if args.keep else Path(tmpdir) / "bench.manifest"
    try:
        if not path.exists():
            t = time.perf_counter()
            generate(path, args.lines)
            print(f"generated {args.lines:,} lines ({path.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - t:.1f} s")
        size_mb = path.stat().st_size / 1e6
        with open(path, "rb") as f:  # page cache warm for both runs
            while f.read(1 << 24):
                pass
        load = os.getloadavg()[0]
        stats = _run_child("--stats-child", str(path), *([str(args.workers)] if args.workers else []))
        base = _run_child("--baseline-child", str(path))
        if stats["result"] != base["result"]:
            print("MISMATCH", json.dumps({"stats": stats["result"], "plain": base["result"]}, default=str),
                  file=sys.stderr)
            sys.exit(1)
        workers = args.workers or os.cpu_count()
        print(f"manifest: {base['result']['lines']:,} lines, {size_mb:.0f} MB; both counts agree")
        print(f"totask-manifest stats ({workers} processes: this one + {workers - 1} forked; msgspec, orjson + numpy): "
              f"{stats['elapsed']:.2f} s wall, {stats['cpu']:.2f} s CPU (all processes), "
              f"peak RSS {stats['rss_mib']:.0f} MiB main process, {stats['worker_rss_mib']:.0f} MiB largest worker")
        print(f"plain Python + orjson, one core (baseline): {base['elapsed']:.2f} s wall, {base['cpu']:.2f} s CPU, "
              f"peak RSS {base['rss_mib']:.0f} MiB")
        print(f"ratio (baseline / stats): wall {base['elapsed'] / stats['elapsed']:.2f}x, "
              f"CPU {base['cpu'] / stats['cpu']:.2f}x (target: wall 3x or more, CPU 1x or more)")
        print(f"load average (1 min) before / after: {load:.1f} / {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs "
              "(other work on the machine skews wall time)")
    finally:
        if not args.keep and path.exists():
            os.unlink(path)
        os.rmdir(tmpdir) if not os.listdir(tmpdir) else None


if __name__ == "__main__":
    main()
