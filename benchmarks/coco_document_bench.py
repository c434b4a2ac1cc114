"""Memory of a file job over one dataset-wide COCO file (``instances.json``) that every line names.

The document is read once a job and kept, indexed, for every line (``_annotators/file_shared.py``,
``_formats/coco_by_name.py``); what that costs in memory was never measured. This writes a COCO
document of ``--images`` images (a few boxes each, with a polygon, as real ``instances.json``
files have) and a manifest of ``--lines`` lines, each naming the document and one image by its
``source-ref``, then runs, each in a child process of its own and read with ``os.wait4``:

1. the job: ``totask-manifest annotate --method file --allow-drop`` over the manifest (the real
   CLI; ``--allow-drop``: a box label holds no polygon);
2. the baseline: ``orjson.loads`` of the same file alone (bytes read, then parsed), the least
   any reader of the document holds at once.

Prints each one's peak RSS and wall time, and the job's peak over the baseline's.

    python benchmarks/coco_document_bench.py [--images 50000] [--lines 5000]
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

CATEGORIES = [{"id": n + 1, "name": name} for n, name in enumerate(["person", "car", "dog", "cat", "bicycle"])]


def annotation(ann_id: int, image_id: int, rng: random.Random) -> dict:
    """One box with a polygon of 24 vertices around it (COCO's ``segmentation``)."""
    x, y, w, h = (round(rng.uniform(0, 500), 2), round(rng.uniform(0, 380), 2),
                  round(rng.uniform(5, 140), 2), round(rng.uniform(5, 100), 2))
    polygon = [round(v, 2) for _ in range(24) for v in (x + rng.uniform(0, w), y + rng.uniform(0, h))]
    return {"id": ann_id, "image_id": image_id, "category_id": rng.randint(1, len(CATEGORIES)),
            "bbox": [x, y, w, h], "area": round(w * h, 2), "iscrowd": 0, "segmentation": [polygon]}


def write_document(path: Path, images: int, seed: int = 7) -> None:
    """``images`` images of 640x480 under ``train/``, 4 annotations each on average."""
    rng = random.Random(seed)
    imgs, anns = [], []
    for n in range(1, images + 1):
        imgs.append({"id": n, "file_name": f"train/img_{n:06d}.jpg", "width": 640, "height": 480,
                     "license": 1, "date_captured": "2024-01-01 00:00:00"})
        anns.extend(annotation(len(anns) + 1, n, rng) for _ in range(rng.randint(1, 7)))
    path.write_bytes(orjson.dumps({"info": {"description": "bench"}, "images": imgs, "annotations": anns,
                                   "categories": CATEGORIES}))


def write_manifest(path: Path, document: Path, images: int, lines: int) -> None:
    """``lines`` lines over images spread through the document, each naming it."""
    step = max(1, images // lines)
    path.write_bytes(b"".join(
        orjson.dumps({"source-ref": f"s3://bucket/train/img_{n:06d}.jpg", "annotation-ref": str(document)}) + b"\n"
        for n in range(1, images + 1, step)[:lines]))


def measured(argv: list[str]) -> tuple[float, float]:
    """(peak RSS in MiB, wall seconds) of one child process running ``argv``."""
    start = time.perf_counter()
    child = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _pid, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode != 0:
        assert child.stderr is not None
        sys.exit(f"{argv[:4]} failed ({child.returncode}): {child.stderr.read().decode()[-2000:]}")
    return usage.ru_maxrss / 1024, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=50_000)
    parser.add_argument("--lines", type=int, default=5_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="coco-doc-bench-") as tmp:
        folder = Path(tmp)
        document, manifest = folder / "instances.json", folder / "m.jsonl"
        write_document(document, args.images)
        write_manifest(manifest, document, args.images, args.lines)
        size = document.stat().st_size
        base_rss, base_wall = measured([sys.executable, "-c", "import sys, orjson; "
                                        "orjson.loads(open(sys.argv[1], 'rb').read())", str(document)])
        job_rss, job_wall = measured([
            sys.executable, "-m", "totask_manifest", "annotate", str(manifest), "--job-name", "bench",
            "--label-attribute", "boxes", "--task-type", "object-detection", "--method", "file",
            "--url-key", "annotation-ref", "--allow-root", tmp, "--max-body-bytes", str(2 * size),
            "--allow-drop",  # the polygons: a box label holds none (each line's metadata says so)
            "--output", str(folder / "out")])
    print(f"document: {size / 2**20:.1f} MiB, {args.images:,} images; job of {args.lines:,} lines naming it")
    print(f"baseline, orjson.loads alone:  peak RSS {base_rss:8.1f} MiB  ({base_wall:.1f} s)")
    print(f"file job (annotate, whole CLI): peak RSS {job_rss:8.1f} MiB  ({job_wall:.1f} s)")
    print(f"job / baseline: {job_rss / base_rss:.2f}x; job's peak is {job_rss / (size / 2**20):.1f}x the document's size")


if __name__ == "__main__":
    main()
