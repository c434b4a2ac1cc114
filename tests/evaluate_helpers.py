"""Shared by the evaluate tests: manifests with two detection attributes, and pycocotools' answer."""

from __future__ import annotations

import contextlib
import io
import random
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import orjson

PRED, REF = "machine", "reviewed"

#: (class name, x, y, w, h, score) and (class name, x, y, w, h)
Pred = tuple[str, float, float, float, float, float]
Ref = tuple[str, float, float, float, float]


def detection_label(boxes: Sequence[tuple], *, scores: bool, human: str, job: str) -> tuple[dict, dict]:
    names = sorted({b[0] for b in boxes})
    ids = {n: i for i, n in enumerate(names)}
    value = {"image_size": [{"width": 640, "height": 480, "depth": 3}],
             "annotations": [{"class_id": ids[b[0]], "left": b[1], "top": b[2], "width": b[3], "height": b[4]}
                             for b in boxes]}
    meta = {"objects": [{"confidence": b[5] if scores else 0} for b in boxes],
            "class-map": {str(i): n for n, i in ids.items()}, "type": "groundtruth/object-detection",
            "human-annotated": human, "creation-date": "2026-01-01T00:00:00.000000", "job-name": f"labeling-job/{job}"}
    return value, meta


def write_detection_manifest(path: Path, images: Sequence[tuple[Sequence[Pred], Sequence[Ref]]]) -> Path:
    with open(path, "wb") as f:
        for i, (preds, refs) in enumerate(images):
            pv, pm = detection_label(preds, scores=True, human="no", job="model")
            rv, rm = detection_label(refs, scores=False, human="yes", job="review")
            f.write(orjson.dumps({"source-ref": f"s3://b/{i}.jpg", PRED: pv, PRED + "-metadata": pm,
                                  REF: rv, REF + "-metadata": rm}) + b"\n")
    return path


def cocoeval(images: Sequence[tuple[Sequence[Pred], Sequence[Ref]]]) -> dict:
    """pycocotools' COCOeval (bbox) over the same images: AP@[.5:.95], AP@.5, per class (by name).

    Image ids are the line numbers, as ``evaluate`` reads them. Returns None figures where
    pycocotools has none (-1).
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    names = sorted({b[0] for preds, refs in images for b in (*preds, *refs)})
    cat = {n: i + 1 for i, n in enumerate(names)}
    gt = {"images": [{"id": i + 1} for i in range(len(images))], "categories": [{"id": c} for c in cat.values()],
          "annotations": []}
    dets = []
    for i, (preds, refs) in enumerate(images):
        for r in refs:
            gt["annotations"].append({"id": len(gt["annotations"]) + 1, "image_id": i + 1, "category_id": cat[r[0]],
                                      "bbox": list(r[1:5]), "area": r[3] * r[4], "iscrowd": 0})
        for p in preds:
            dets.append({"image_id": i + 1, "category_id": cat[p[0]], "bbox": list(p[1:5]), "score": p[5]})
    if not dets:
        return {"none": True}
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = gt
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(dets)
        e = COCOeval(coco_gt, coco_dt, "bbox")
        e.evaluate()
        e.accumulate()
        e.summarize()
    prec = e.eval["precision"][:, :, :, 0, -1]  # T, R, K at area all, maxDets 100
    per_class = {}
    for k, n in enumerate(names):
        p = prec[:, :, k]
        per_class[n] = None if (p == -1).all() else (float(np.mean(p)), float(np.mean(p[0])))
    stats = [None if v == -1 else float(v) for v in e.stats]
    return {"ap": stats[0], "ap50": stats[1], "per_class": per_class, "precision": prec}


def random_images(rng: random.Random, n_images: int, *, classes: Sequence[str] = ("a", "b", "c"),
                  max_refs: int = 6, tie_scores: bool = False, integer: bool = False) -> list:
    """Reference boxes, and predictions that jitter, drop, duplicate and invent boxes."""
    out = []
    for _ in range(n_images):
        refs, preds = [], []
        for _ in range(rng.randint(0, max_refs)):
            w, h = rng.uniform(4, 200), rng.uniform(4, 200)
            x, y = rng.uniform(0, 640 - w), rng.uniform(0, 480 - h)
            if integer:
                x, y, w, h = round(x), round(y), max(1, round(w)), max(1, round(h))
            refs.append((rng.choice(classes), x, y, w, h))
        for r in refs:
            for _ in range(rng.choice((0, 1, 1, 1, 2))):
                j = rng.uniform(0, 0.4)
                x, y = r[1] + rng.uniform(-j, j) * r[3], r[2] + rng.uniform(-j, j) * r[4]
                w, h = r[3] * rng.uniform(1 - j, 1 + j), r[4] * rng.uniform(1 - j, 1 + j)
                if integer:
                    x, y, w, h = round(x), round(y), max(1, round(w)), max(1, round(h))
                cls = r[0] if rng.random() > 0.1 else rng.choice(classes)
                preds.append((cls, x, y, w, h, _score(rng, tie_scores)))
        for _ in range(rng.randint(0, 2)):
            w, h = rng.uniform(4, 100), rng.uniform(4, 100)
            preds.append((rng.choice(classes), rng.uniform(0, 600), rng.uniform(0, 440), w, h, _score(rng, tie_scores)))
        out.append((preds, refs))
    return out


def _score(rng: random.Random, ties: bool) -> float:
    return rng.choice((0.3, 0.5, 0.9)) if ties else round(rng.random(), 4)


def write_gt_file(path: Path, boxes: Sequence[tuple], *, scores: bool, names: Sequence[str] = ("cat", "dog")) -> str:
    """A Ground Truth label file (``{"label", "metadata"}``) for the file method."""
    doc = {"label": {"image_size": [{"width": 200, "height": 200, "depth": 3}],
                     "annotations": [{"class_id": list(names).index(b[0]), "left": b[1], "top": b[2], "width": b[3],
                                      "height": b[4]} for b in boxes]},
           "metadata": {"class-map": {str(i): n for i, n in enumerate(names)},
                        "objects": [{"confidence": b[5] if scores else 1.0} for b in boxes]}}
    path.write_bytes(orjson.dumps(doc))
    return path.name


def make_review_chain(tmp_path: Path, machine: Sequence[Sequence[tuple]], review: Sequence[Sequence[tuple]],
                      *, images: bool = False) -> Path:
    """A real ``model`` job (a detector plugin giving ``machine``, attribute ``boxes``) and a
    ``review`` job chained from it (the file method importing ``review``); returns the review job's
    folder. With ``images``, each line's ``source-ref`` is a real PNG."""
    from PIL import Image, ImageDraw

    from tests.jobs_helpers import run_cli

    data = tmp_path / "data"
    data.mkdir()
    (data / "classes.txt").write_text("cat\ndog\n")
    lines = []
    for i, (m, r) in enumerate(zip(machine, review, strict=True)):
        source = f"s3://bucket/img{i}.jpg"
        if images:
            img = Image.new("RGB", (200, 200), (225, 232, 240))
            draw = ImageDraw.Draw(img)
            for b in r:
                draw.ellipse([b[1], b[2], b[1] + b[3], b[2] + b[4]], fill=(250, 200, 40) if b[0] == "cat" else
                             (120, 90, 200))
            img.save(data / f"img{i}.png")
            source = str(data / f"img{i}.png")
        # absolute: the plugin job records no folder to resolve relative references against
        lines.append({"source-ref": source, "model-file": write_gt_file(data / f"m{i}.json", m, scores=True),
                      "review-file": str(data / write_gt_file(data / f"r{i}.json", r, scores=False))})
    manifest = data / "in.manifest"
    manifest.write_bytes(b"".join(orjson.dumps(x) + b"\n" for x in lines))
    out = tmp_path / "out"
    common = ["--task-type", "object-detection", "--method", "file", "--class-names", str(data / "classes.txt"),
              "--allow-root", str(data)]
    first = run_cli("annotate", str(manifest), "--job-name", "model", "--label-attribute", "boxes",
                    "--task-type", "object-detection", "--method", "tests.support.toy_annotators:RecordedDetector",
                    "--toy-root", str(data), "--output", str(out))
    assert first.returncode == 0, first.stderr
    second = run_cli("chain", str(out / "model"), "--job-name", "review", "--url-key", "review-file", *common)
    assert second.returncode == 0, second.stderr
    return out / "review"
