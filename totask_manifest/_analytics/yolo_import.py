"""A YOLO folder as a manifest: one line per image, sizes from ``index.jsonl`` (what this tool's
export writes) or from the images themselves.

Three layouts are read: a folder this tool wrote (``index.jsonl``); a folder without ``images/``
that lists its images in text files (Darknet's ``obj.data`` and ``train.txt``, ``images.txt``:
``yolo_list``); a plain YOLO folder, ``labels/**/*.txt`` next to ``images/`` with the same
folders, where every image is a line, one with no boxes when it has no label file (YOLO's
background image: left out, it would be lost with nothing said). The export is ``yolo_dataset``.
"""

from __future__ import annotations

import posixpath
from collections.abc import Sequence

import orjson

from .._errors import ManifestError, StorageError, UsageError, json_text
from .._formats.model import FormatError
from .._formats.yolo import yolo_to_gt
from .._manifest.io import write_lines
from .._storage import exists, is_dir, join, open_read, read_bytes, redact_secret_url, redact_url, url_to_fs
from .labels import manifest_line, no_images
from .yolo_classes import placeholders, read_folder_names
from .yolo_list import list_entries

DETECTION = "object-detection"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


def _image_size(url: str) -> tuple[int, int, int]:
    from .._imaging import ImageError, image_depth, read_info

    with open_read(url) as f:
        head = f.read()
    try:
        info = read_info(head)  # the header only
    except ImageError as exc:
        raise ManifestError(f"image {redact_secret_url(url)}: {exc.reason}", rule=exc.rule) from None
    return info.width, info.height, image_depth(info.mode)


def _index_entries(data: bytes) -> list[dict]:
    """The lines of ``index.jsonl``, each checked for what the import reads from it: a damaged
    line is one error naming it (exit 1), never a traceback from the lookups below."""
    entries = []
    for n, raw in enumerate(data.splitlines(), start=1):
        if not raw.strip():
            continue
        where = f"index.jsonl line {n}"
        try:
            entry = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise FormatError(f"{where}: not JSON ({exc})", fmt="yolo") from None
        if not isinstance(entry, dict):
            raise FormatError(f"{where}: not a JSON object", fmt="yolo")
        if not isinstance(entry.get("label"), str) or not entry["label"]:
            raise FormatError(f"{where}: 'label' must be a file name in the folder", fmt="yolo", key="label")
        ref = entry.get("source-ref")
        if not isinstance(ref, str) or not ref.strip():  # the label file's own path was taken for the image
            raise FormatError(f"{where}: 'source-ref' must name the label file's image (a non-empty string), "
                              f"got {json_text(ref)}", fmt="yolo", key="source-ref")
        for key in ("width", "height"):
            value = entry.get(key)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise FormatError(
                    f"{where}: {key!r} must be a positive integer, got {json_text(value)}", fmt="yolo", key=key
                )
        entries.append(entry)
    return entries


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
    """One line per image (an image with no label file: a line with no boxes); image sizes from
    ``index.jsonl`` or from the images themselves."""
    if not exists(src):  # a missing input, as for every command (exit 2), not "holds no images"
        raise StorageError(f"no such folder: {redact_url(src)}")
    if not is_dir(src):  # a COCO file with --from yolo, say: not "no classes.txt" in a file
        raise UsageError(f"{redact_secret_url(src)} is a file; --from yolo reads a YOLO dataset folder (a label "
                         "file per image, classes.txt or data.yaml)")
    names = list(class_names) if class_names is not None else None
    if names is None:
        for candidate in ("classes.txt", "obj.names", "data.yaml"):
            if exists(join(src, candidate)):
                names = read_folder_names(join(src, candidate), redact_secret_url(join(src, candidate)))
                break
    if names is None:
        raise UsageError(
            f"{redact_secret_url(src)}: no classes.txt, obj.names or data.yaml; pass --class-names FILE"
        )
    attr = label_attribute or "label"
    entries: list[dict] = []
    if exists(join(src, "index.jsonl")):
        entries = _index_entries(read_bytes(join(src, "index.jsonl")))
    else:  # without images/: the images a Darknet (or Ultralytics) list names, if the folder has one
        fs, root = url_to_fs(src)
        entries = [] if fs.isdir(join(root, "images")) else list_entries(src, _image_size, IMAGE_SUFFIXES)
        entries = entries or _plain_entries(src)
    lines = []
    used: set[int] = set()
    background = 0
    for entry in entries:
        if entry.get("label") is None:  # an image with no label file: YOLO's image with no objects
            text = ""
            background += 1
        else:
            text = read_bytes(join(src, entry["label"])).decode("utf-8")
        try:
            labeled = yolo_to_gt(
                text,
                DETECTION,
                image_size=(entry["width"], entry["height"], entry.get("depth", 3)),
                class_names=names,
            )
        except FormatError as exc:
            raise FormatError(f"{entry['label']}: {exc.detail}", fmt="yolo", key=exc.key) from None
        used.update(a["class_id"] for a in labeled.value["annotations"])
        source = entry.get("source-ref") or entry["label"]
        if image_root:
            source = join(image_root, posixpath.basename(source))
        has_conf = any(len(r.split()) == 6 for r in text.splitlines())
        human = human_annotated or entry.get("human-annotated") or ("no" if has_conf else "yes")
        lines.append(
            manifest_line(source, attr, labeled, DETECTION, job_name=job_name, human_annotated=human)
        )
    if not lines:
        raise no_images(src)
    write_lines(dst, lines)
    unnamed = placeholders(names, used)  # an export's fillers for id gaps: no class of the manifest
    counts = {"images": len(lines), "skipped": 0, "classes": len(names) - unnamed}
    if unnamed:
        counts["placeholder classes"] = unnamed
    if background:
        counts["background"] = background
    return counts


def _plain_entries(src: str) -> list[dict]:
    """The images of a plain YOLO folder, each with its label file (``label`` None when it has
    none), in the order of their label files' paths.

    Trainers read an image with no label file as an image with no objects (a background image),
    so every image under ``images/`` is a line, one with no boxes when its label file is absent:
    left out, it would be lost from the manifest with nothing said. A label file with no image
    is refused (its image size is unknown)."""
    fs, root = url_to_fs(src)
    label_dir = join(root, "labels") if fs.isdir(join(root, "labels")) else root
    image_dir = join(root, "images")
    protocol = src.split("://", 1)[0] + "://" if "://" in src else ""
    images: list[
        tuple[str, str]
    ] = []  # (stem below images/, image path): a.jpg and a.png both pair with a.txt
    if fs.isdir(image_dir):
        for path in sorted(fs.find(image_dir)):
            stem, dot, suffix = posixpath.relpath(path, image_dir).rpartition(".")
            if dot and "." + suffix.lower() in IMAGE_SUFFIXES:
                images.append((stem, path))
    stems = {stem for stem, _ in images}
    labels: dict[str, str] = {}  # stem below labels/ -> label file
    for path in sorted(fs.glob(join(label_dir, "**/*.txt"))):
        stem = posixpath.relpath(path, label_dir)[:-4]  # folders below labels/ mirror those below images/
        if stem in ("classes", "images"):
            continue
        if stem not in stems:
            raise StorageError(f"no image for {path} under {join(src, 'images')}")
        labels[stem] = path
    entries = []
    for stem, image in sorted(images, key=lambda pair: (join(label_dir, pair[0] + ".txt"), pair[1])):
        w, h, d = _image_size(protocol + image if protocol else image)
        label = posixpath.relpath(labels[stem], root) if stem in labels else None
        entries.append(
            {
                "label": label,
                "source-ref": protocol + image if protocol else image,
                "width": w,
                "height": h,
                "depth": d,
            }
        )
    return entries
