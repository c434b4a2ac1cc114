"""How fast COCO polygons are painted (``_analytics.coco_polygons``) against Pillow's
``ImageDraw.polygon``, which painted them before (edges filled inclusively, not as pycocotools),
and pycocotools itself (C; a test dependency, timed when installed).

The polygons are shaped like COCO's: a few hundred objects on 640x480 images, 8 to 80 vertices
with radial jitter, radii from 3 to 200 pixels (log-uniform: most objects small), coordinates
with two decimals, some over the image's borders. Each segmentation is painted alone into a
full-image mask, as ``convert`` paints an annotation. Prints the best of ``--repeat`` runs of
each, per polygon, and the ratio; with pycocotools present, also how many masks differ from its
own (0 for the port, many for Pillow).

    python benchmarks/coco_polygons_bench.py [--polygons 300] [--repeat 5]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
from PIL import Image, ImageDraw

from totask_manifest._analytics.coco_polygons import polygons_to_mask

W, H = 640, 480


def realistic(n: int, seed: int = 11) -> list[list[list[float]]]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        k = int(rng.integers(8, 81))
        r = float(np.exp(rng.uniform(np.log(3), np.log(200))))
        cx, cy = rng.uniform(-20, W + 20), rng.uniform(-20, H + 20)
        angles = np.sort(rng.uniform(0, 2 * np.pi, k))
        radii = r * rng.uniform(0.6, 1.0, k)
        xy = np.stack([cx + radii * np.cos(angles), cy + radii * np.sin(angles)], axis=1)
        out.append([np.round(xy, 2).ravel().tolist()])
    return out


def pillow(polygons: list[list[float]], width: int, height: int) -> np.ndarray:
    """The painting used before (``masks.polygons_to_mask`` up to f02969c)."""
    img = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(img)
    for poly in polygons:
        draw.polygon([(float(poly[i]), float(poly[i + 1])) for i in range(0, len(poly) - 1, 2)], fill=1)
    return np.asarray(img, dtype=bool)


def best(fn: Callable, segs: list, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for seg in segs:
            fn(seg, W, H)
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--polygons", type=int, default=300)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    segs = realistic(args.polygons)
    painters: dict[str, Callable] = {"numpy port": polygons_to_mask, "Pillow (before)": pillow}
    reference = None
    try:
        from pycocotools import mask as mask_utils

        def reference(seg: list, width: int, height: int) -> np.ndarray:
            return mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(seg, height, width))).astype(bool)

        painters["pycocotools (C)"] = reference
    except ImportError:
        pass
    base = None
    vertices = sum(len(s[0]) // 2 for s in segs)
    print(f"{len(segs)} polygons ({vertices} vertices) on {W}x{H}, best of {args.repeat}")
    for name, fn in painters.items():
        t = best(fn, segs, args.repeat)
        base = base or t
        line = f"  {name:16s} {t * 1e3:8.1f} ms  {t / len(segs) * 1e6:7.1f} us/polygon  x{t / base:.2f} of the port"
        if reference is not None and fn is not reference:
            differ = sum(not np.array_equal(fn(s, W, H), reference(s, W, H)) for s in segs)
            line += f"  masks differing from pycocotools: {differ}"
        print(line)


if __name__ == "__main__":
    main()
