"""How fast and in how much memory ``evaluate`` compares two detection attributes over 1,000,000 lines.

Each line holds a model's boxes (``machine``, with confidences) and a reviewed version
(``reviewed``: boxes moved, dropped, relabelled, added), like a job chained for review. Runs, each
in its own child process so peak RSS is its own:

* ``evaluate_manifest`` in one process over the full file and over its first tenth (flat memory:
  the two peak RSS figures should differ by about 12 bytes per predicted box, the exact COCO AP's
  score buffer), and with one worker process per CPU over the full file;
* the baseline, a plain orjson read loop over the same file touching the same keys.

    python benchmarks/evaluate_bench.py [--lines 1000000] [--keep PATH]
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
from pathlib import Path

import orjson

PRED, REF = "machine", "reviewed"
CLASSES = ["person", "car", "bicycle", "dog", "cat", "truck", "bus"]


def generate(path: Path, lines: int, seed: int = 11) -> None:
    rng = random.Random(seed)
    common = {"type": "groundtruth/object-detection", "creation-date": "2026-11-21T10:00:00.000000"}
    with open(path, "wb", buffering=1 << 22) as f:
        for i in range(lines):
            src = f"s3://bench-bucket/images/{i:08d}.jpg"
            if i % 100 == 99:  # a failed prediction now and then: counted apart
                f.write(orjson.dumps({"source-ref": src, f"{PRED}-metadata": {"failure-reason": "fetch failed (404)"}})
                        + b"\n")
                continue
            refs = []
            for _ in range(rng.choice((1, 1, 2, 2, 3))):
                w, h = rng.randrange(10, 300), rng.randrange(10, 300)
                refs.append([rng.randrange(len(CLASSES)), round(rng.uniform(0, 1024 - w), 2),
                             round(rng.uniform(0, 768 - h), 2), w, h])
            preds = []
            for c, x, y, w, h in refs:
                r = rng.random()
                if r < 0.1:
                    continue  # missed
                cls = rng.randrange(len(CLASSES)) if r < 0.15 else c
                j = rng.uniform(0, 0.12)
                preds.append([cls, round(x + j * w * rng.choice((-1, 1)), 2), round(y + j * h * rng.choice((-1, 1)), 2),
                              w, h, round(rng.random(), 2)])
            if rng.random() < 0.2:
                preds.append([rng.randrange(len(CLASSES)), 500.0, 300.0, 40, 40, round(rng.random() * 0.6, 2)])

            def label(boxes: list, human: str, job: str, scored: bool) -> tuple[dict, dict]:
                value = {"image_size": [{"width": 1024, "height": 768, "depth": 3}],
                         "annotations": [{"class_id": b[0], "left": b[1], "top": b[2], "width": b[3], "height": b[4]}
                                         for b in boxes]}
                meta = {"objects": [{"confidence": b[5] if scored else 1.0} for b in boxes],
                        "class-map": {str(b[0]): CLASSES[b[0]] for b in boxes}, **common,
                        "human-annotated": human, "job-name": f"labeling-job/{job}"}
                return value, meta

            pv, pm = label(preds, "no", "model", True)
            rv, rm = label(refs, "yes", "review", False)
            f.write(orjson.dumps({"source-ref": src, PRED: pv, f"{PRED}-metadata": pm, REF: rv,
                                  f"{REF}-metadata": rm}) + b"\n")


def head(path: Path, out: Path, lines: int) -> None:
    with open(path, "rb") as f, open(out, "wb") as g:
        for i, raw in enumerate(f):
            if i >= lines:
                break
            g.write(raw)


def _rss() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _evaluate_child(path: str, workers: int) -> None:
    from totask_manifest._analytics.evaluate import evaluate_manifest

    t, cpu = time.perf_counter(), time.process_time()
    ev = evaluate_manifest(path, predicted=PRED, reference=REF, workers=workers)
    det = ev.detection
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(json.dumps({"elapsed": time.perf_counter() - t, "rss_mib": _rss(),
                      "cpu": time.process_time() - cpu + kids.ru_utime + kids.ru_stime,
                      "worker_rss_mib": kids.ru_maxrss / 1024,
                      "lines": ev.total_lines, "evaluated": ev.evaluated, "not_evaluated": ev.not_evaluated,
                      "predicted": det["predicted"], "references": det["references"], "ap": det["ap"],
                      "ap50": det["ap50"], "suggested": det["sweep"]["line"]["suggested"]}))


def _baseline_child(path: str) -> None:
    """Read every line with orjson and touch the same values, nothing else."""
    t, cpu = time.perf_counter(), time.process_time()
    lines = evaluated = boxes = 0
    with open(path, "rb") as f:
        for raw in f:
            lines += 1
            rec = orjson.loads(raw)
            p, r = rec.get(PRED), rec.get(REF)
            if p is None or r is None:
                continue
            evaluated += 1
            for a in p["annotations"]:
                boxes += 1
                a["left"], a["top"], a["width"], a["height"]
            for o in rec[f"{PRED}-metadata"]["objects"]:
                o["confidence"]
    print(json.dumps({"elapsed": time.perf_counter() - t, "cpu": time.process_time() - cpu, "rss_mib": _rss(),
                      "lines": lines, "evaluated": evaluated, "predicted": boxes}))


def _run_child(*args: str) -> dict:
    proc = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--evaluate-child":
        _evaluate_child(sys.argv[2], int(sys.argv[3]))
        return
    if len(sys.argv) == 3 and sys.argv[1] == "--baseline-child":
        _baseline_child(sys.argv[2])
        return
    ap = argparse.ArgumentParser()
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--keep", help="reuse/keep the generated manifest at this path")
    args = ap.parse_args()
    tmpdir = tempfile.mkdtemp(prefix="evaluate-bench-")
    path = Path(args.keep) if args.keep else Path(tmpdir) / "bench.manifest"
    tenth = Path(tmpdir) / "tenth.manifest"
    try:
        if not path.exists():
            t = time.perf_counter()
            generate(path, args.lines)
            print(f"generated {args.lines:,} lines ({path.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - t:.1f} s")
        head(path, tenth, args.lines // 10)
        for p in (path, tenth):  # page cache warm for every run
            with open(p, "rb") as f:
                while f.read(1 << 24):
                    pass
        load = os.getloadavg()[0]
        full = _run_child("--evaluate-child", str(path), "1")
        part = _run_child("--evaluate-child", str(tenth), "1")
        par = _run_child("--evaluate-child", str(path), str(os.cpu_count() or 1))
        base = _run_child("--baseline-child", str(path))
        if (full["lines"], full["evaluated"], full["predicted"]) != (base["lines"], base["evaluated"], base["predicted"]):
            print("MISMATCH", json.dumps({"evaluate": full, "baseline": base}), file=sys.stderr)
            sys.exit(1)
        if {k: v for k, v in par.items() if k in ("ap", "ap50", "suggested", "evaluated")} != \
                {k: v for k, v in full.items() if k in ("ap", "ap50", "suggested", "evaluated")}:
            print("MISMATCH between 1 and several processes", json.dumps({"one": full, "many": par}), file=sys.stderr)
            sys.exit(1)
        size_mb = path.stat().st_size / 1e6
        print(f"manifest: {full['lines']:,} lines, {size_mb:.0f} MB; {full['evaluated']:,} evaluated, "
              f"{full['not_evaluated']:,} counted apart; {full['predicted']:,} predicted and {full['references']:,} "
              "reference boxes (line and box counts agree with the baseline)")
        print(f"result: AP@[.5:.95] {full['ap']:.4f}, AP@.5 {full['ap50']:.4f}, suggested --review-below "
              f"{full['suggested']['threshold'] if full['suggested'] else None} (the same with 1 and "
              f"{os.cpu_count()} processes)")
        print(f"evaluate, 1 process, full file: {full['elapsed']:.2f} s wall, {full['cpu']:.2f} s CPU, peak RSS "
              f"{full['rss_mib']:.0f} MiB")
        print(f"evaluate, 1 process, first tenth ({part['lines']:,} lines): {part['elapsed']:.2f} s wall, "
              f"{part['cpu']:.2f} s CPU, peak RSS {part['rss_mib']:.0f} MiB")
        print(f"evaluate, {os.cpu_count()} worker processes, full file: {par['elapsed']:.2f} s wall, {par['cpu']:.2f} s "
              f"CPU (all processes), peak RSS {par['rss_mib']:.0f} MiB main process, "
              f"{par['worker_rss_mib']:.0f} MiB largest worker")
        print(f"baseline (orjson read loop, same keys, 1 process): {base['elapsed']:.2f} s wall, {base['cpu']:.2f} s "
              f"CPU, peak RSS {base['rss_mib']:.0f} MiB")
        print(f"ratio evaluate (1 process) / baseline: wall {full['elapsed'] / base['elapsed']:.2f}x, "
              f"CPU {full['cpu'] / base['cpu']:.2f}x; peak RSS full - tenth: {full['rss_mib'] - part['rss_mib']:.0f} "
              f"MiB for {full['predicted'] - part['predicted']:,} more predicted boxes "
              f"({(full['rss_mib'] - part['rss_mib']) * 2**20 / max(1, full['predicted'] - part['predicted']):.1f} "
              "bytes per box)")
        print(f"ratio evaluate ({os.cpu_count()} processes) / baseline: wall {par['elapsed'] / base['elapsed']:.2f}x, "
              f"CPU {par['cpu'] / base['cpu']:.2f}x")
        print(f"load average (1 min) before / after: {load:.1f} / {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    finally:
        for p in (tenth, *([] if args.keep else [path])):
            if p.exists():
                os.unlink(p)
        os.rmdir(tmpdir) if not os.listdir(tmpdir) else None


if __name__ == "__main__":
    main()
