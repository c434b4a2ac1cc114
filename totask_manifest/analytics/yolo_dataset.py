"""A manifest as a YOLO dataset folder, and a YOLO folder as a manifest.

Written layout (any fsspec URL)::

    OUT/classes.txt          one class name per line; line i is class id i
    OUT/labels/<stem>.txt    "class cx cy w h confidence" per box, normalised
    OUT/images.txt           the data object of each label file, in the same order (YOLO's image list)
    OUT/index.jsonl          {"label", "source-ref", "width", "height", "depth", "line"} per label file

YOLO files carry no image size; ``index.jsonl`` (this tool's addition) keeps it, so a folder
written here converts back without fetching images. A plain YOLO folder (``labels/*.txt`` next to
``images/``) works too: sizes are read from the image headers with Pillow.
"""

from __future__ import annotations

import posixpath
from collections import Counter
from collections.abc import Sequence

import orjson

from ..errors import ManifestError, StorageError, UsageError
from ..formats.model import FormatError
from ..formats.yolo import gt_to_yolo, yolo_names, yolo_to_gt
from ..manifest.io import write_lines
from ..storage import AtomicWriter, exists, join, open_read, read_bytes, url_to_fs, write_bytes_atomic
from .labels import iter_labels, manifest_line, pick_attribute

DETECTION = "object-detection"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


def _stem(source: str | None, number: int, used: set[str]) -> str:
    base = posixpath.basename((source or "").rstrip("/")) or f"line-{number}"
    stem = base.rsplit(".", 1)[0] if "." in base else base
    stem = "".join(c if c.isalnum() or c in "-_." else "_" for c in stem) or f"line-{number}"
    if stem in used:
        stem = f"{stem}_{number}"
    used.add(stem)
    return stem


def manifest_to_yolo(src: str, dst: str, *, label_attribute: str | None = None,
                     allow_drop: bool = False) -> dict[str, int]:
    """Boxes as YOLO files; documents kept as they are (DM v1, objects) are converted, refused when
    that would drop something unless ``allow_drop`` (the counts then say what was dropped)."""
    attr = pick_attribute(src, (DETECTION, "custom"), label_attribute)
    dropped: Counter = Counter()
    class_map: dict[str, str] = {}
    used: set[str] = set()
    files = skipped = 0
    with AtomicWriter(join(dst, "index.jsonl")) as index, AtomicWriter(join(dst, "images.txt")) as images:
        for line, label in iter_labels(src, attr, native_to=DETECTION, allow_drop=allow_drop, dropped=dropped):
            if label is None or label.task_type != DETECTION:
                skipped += not line.is_blank
                continue
            for k, name in label.metadata.get("class-map", {}).items():
                if class_map.setdefault(str(k), name) != name:
                    raise ManifestError(f"class id {k} is {name!r} here but {class_map[str(k)]!r} earlier; "
                                        "YOLO needs one name per class id", line=line.number, key="class-map",
                                        rule="yolo-class")
            stem = _stem(label.source, line.number, used)
            write_bytes_atomic(join(dst, "labels", stem + ".txt"),
                               gt_to_yolo(label.value, label.metadata, confidence=True).encode())
            size = label.value["image_size"][0]
            index.write(orjson.dumps({"label": f"labels/{stem}.txt", "source-ref": label.source,
                                      "width": size["width"], "height": size["height"],
                                      "depth": size.get("depth", 3), "line": line.number,
                                      "human-annotated": label.metadata.get("human-annotated")}) + b"\n")
            images.write((label.source or "").encode() + b"\n")
            files += 1
    write_bytes_atomic(join(dst, "classes.txt"), "".join(n + "\n" for n in yolo_names(class_map)).encode())
    counts = {"images": files, "skipped": skipped, "classes": len(class_map)}
    if dropped:
        counts["dropped"] = sum(dropped.values())
    return counts


def read_class_names(url: str) -> list[str]:
    """A names file: one name per line (``classes.txt``/``obj.names``), or YAML with ``names``."""
    text = read_bytes(url).decode("utf-8")
    if url.endswith((".yaml", ".yml")):
        import yaml

        names = (yaml.safe_load(text) or {}).get("names")
        if isinstance(names, dict):
            return [str(names[k]) for k in sorted(names, key=int)]
        if isinstance(names, list):
            return [str(n) for n in names]
        raise UsageError(f"{url} has no 'names' list")
    return [ln.strip() for ln in text.splitlines() if ln.strip()]


def _image_size(url: str) -> tuple[int, int, int]:
    from ..imaging import ImageError, image_depth, read_info

    with open_read(url) as f:
        head = f.read()
    try:
        info = read_info(head)  # the header only
    except ImageError as exc:
        raise ManifestError(f"image {url}: {exc.reason}", rule=exc.rule) from None
    return info.width, info.height, image_depth(info.mode)


def yolo_to_manifest(
    src: str,
    dst: str,
    *,
    class_names: Sequence[str] | None = None,
    label_attribute: str | None = None,
    job_name: str = "converted",
    image_root: str | None = None,
    human_annotated: str | None = None,
) -> dict[str, int]:
    """One line per label file; image sizes from ``index.jsonl`` or from the images themselves."""
    names = list(class_names) if class_names is not None else None
    if names is None:
        for candidate in ("classes.txt", "obj.names", "data.yaml"):
            if exists(join(src, candidate)):
                names = read_class_names(join(src, candidate))
                break
    if names is None:
        raise UsageError(f"{src}: no classes.txt, obj.names or data.yaml; pass --class-names FILE")
    attr = label_attribute or "label"
    entries: list[dict] = []
    if exists(join(src, "index.jsonl")):
        for raw in read_bytes(join(src, "index.jsonl")).splitlines():
            if raw.strip():
                entries.append(orjson.loads(raw))
    else:
        fs, root = url_to_fs(src)
        label_dir = join(root, "labels") if fs.isdir(join(root, "labels")) else root
        protocol = src.split("://", 1)[0] + "://" if "://" in src else ""
        for path in sorted(fs.glob(join(label_dir, "*.txt"))):
            stem = posixpath.basename(path)[:-4]
            if stem in ("classes", "images"):
                continue
            image = next((join(root, "images", stem + s) for s in IMAGE_SUFFIXES
                          if fs.exists(join(root, "images", stem + s))), None)
            if image is None:
                raise StorageError(f"no image for {path} under {join(src, 'images')}")
            w, h, d = _image_size(protocol + image if protocol else image)
            rel = posixpath.relpath(path, root)
            entries.append({"label": rel, "source-ref": protocol + image if protocol else image,
                            "width": w, "height": h, "depth": d})
    lines = []
    for entry in entries:
        text = read_bytes(join(src, entry["label"])).decode("utf-8")
        try:
            labeled = yolo_to_gt(text, DETECTION, image_size=(entry["width"], entry["height"], entry.get("depth", 3)),
                                 class_names=names)
        except FormatError as exc:
            raise FormatError(f"{entry['label']}: {exc.detail}", fmt="yolo", key=exc.key) from None
        source = entry.get("source-ref") or entry["label"]
        if image_root:
            source = join(image_root, posixpath.basename(source))
        has_conf = any(len(r.split()) == 6 for r in text.splitlines())
        human = human_annotated or entry.get("human-annotated") or ("no" if has_conf else "yes")
        lines.append(manifest_line(source, attr, labeled, DETECTION, job_name=job_name, human_annotated=human))
    write_lines(dst, lines)
    return {"images": len(lines), "skipped": 0, "classes": len(names)}
