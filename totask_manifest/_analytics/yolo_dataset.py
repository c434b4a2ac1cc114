"""A manifest as a YOLO dataset folder (the way back, a YOLO folder as a manifest: ``yolo_import``).

Written layout (any fsspec URL)::

    OUT/classes.txt              one class name per line; line i is class id i
    OUT/data.yaml                Ultralytics' dataset file: names, and images/ as train and val (no
                                 ``path``: Ultralytics reads them from the file's own folder)
    OUT/labels/<dirs>/<stem>.txt "class cx cy w h" per box, normalised (a 6th column, the
                                 confidence, only with ``confidence=True``)
    OUT/images.txt               the data object of each label file, in the same order (YOLO's image list)
    OUT/index.jsonl              {"label", "image", "source-ref", "width", "height", "depth", "line"} per
                                 label file; ``image`` is where the image goes to pair with its label

Trainers find an image's labels by its path: Ultralytics and Darknet replace the last
``/images/`` with ``/labels/`` and the suffix with ``.txt``. So ``<dirs>/<stem>`` is the
``source-ref`` relative to the folder all sources share, suffix removed: images copied to
``OUT/images/`` with the same folders pair with their labels, and two images with one file name
in different folders keep both (``a/cat.jpg`` -> ``labels/a/cat.txt``, ``b/cat.jpg`` ->
``labels/b/cat.txt``). A folder named ``images`` below the shared one is written ``images_``
(``train/images/x.jpg`` -> ``labels/train/images_/x.txt``, image at
``images/train/images_/x.jpg``): Ultralytics replaces the last ``/images/`` of a path. The same
image on two lines cannot have two label files: refused.

On a local disk the folder changes whole or not at all, even under ``kill -9``, one export at a
time, and then holds exactly what the new export wrote (a re-export with fewer images leaves no
old label file); on S3 one export at a time too, under the prefix's lease (``yolo_output``).

YOLO files carry no image size; ``index.jsonl`` (this tool's addition) keeps it, so a folder
written here converts back without fetching images (``yolo_import``). Class names:
``yolo_classes``.
"""

from __future__ import annotations

import posixpath
from collections import Counter
from collections.abc import Sequence

import orjson

from .._errors import ManifestError
from .._formats.groundtruth import exported_label
from .._formats.yolo import gt_to_yolo, yolo_names
from .._lookalike import names_apart
from .coco_left_out import CocoKeysLeftOut
from .keys_left_out import KeysLeftOut
from .labels import (
    NOTES,
    image_source,
    iter_labels,
    metadata_key,
    not_held,
    nothing_to_convert,
    on_line,
    pick_attribute,
)
from .one_id_a_name import IdsByName
from .yolo_classes import check_new_class, check_round_trip
from .yolo_output import YoloOutput
from .yolo_paths import CommonFolder, TakenPaths, label_path, object_path

DETECTION = "object-detection"
#: the suffixes Ultralytics lists a folder's images by (``ultralytics.data.utils.IMG_FORMATS``)
ULTRALYTICS_IMAGES = frozenset(
    {"bmp", "dng", "jpeg", "jpg", "mpo", "png", "tif", "tiff", "webp", "pfm", "heic"}
)


#: how far past its image a box may reach and be clipped without ``--allow-drop`` (pixels, each side)
ROUNDING_PX = 1.0
#: the summary's count of such boxes
ROUNDED = "boxes clipped by under 1 px"


def manifest_to_yolo(
    src: str,
    dst: str,
    *,
    label_attribute: str | None = None,
    allow_drop: bool = False,
    confidence: bool = False,
) -> dict[str, int]:
    """Write the boxes of one attribute as a YOLO folder (layout above); ``confidence`` adds the
    6th column, which Ultralytics and Darknet training do not read. Documents kept as they are
    (DM v1, objects) are converted, refused when that would drop something unless ``allow_drop``
    (the counts then say what was dropped)."""
    attr = pick_attribute(src, (DETECTION, "custom"), label_attribute, target=("YOLO", "boxes"))
    # first the folder the data objects share, so each label file can mirror its image's folders
    # (``yolo_paths``: nothing is held per line, then a hash of each label path written)
    folder = CommonFolder()
    labeled = unlabeled = 0
    for line, label in iter_labels(src, attr, native_to=DETECTION, allow_drop=allow_drop, dropped=Counter()):
        if label is None:
            unlabeled += not line.is_blank
        elif label.task_type == DETECTION:
            folder.add(object_path(image_source(label, "YOLO"), line.number))
            labeled += 1
        else:
            raise not_held("YOLO", "boxes", label, "yolo-type")
    if not labeled:
        raise nothing_to_convert(src, attr, unlabeled)
    common = folder.path

    def path_of(number: int) -> str:  # a line's label path, read again: only for a hash met twice
        for line, label in iter_labels(src, attr, native_to=DETECTION, allow_drop=allow_drop, dropped=Counter()):
            if line.number == number and label is not None:
                return label_path(number, label.source, common)[0]
        raise ManifestError(f"the manifest changed while it was converted (line {number})", line=number)

    taken = TakenPaths(path_of)
    dropped: Counter = Counter()
    class_map: dict[str, str] = {}
    ids_by_name = IdsByName()
    files = skipped = unwritten_scores = unlisted = 0
    coco_keys, others = CocoKeysLeftOut("YOLO"), KeysLeftOut("YOLO", attr)
    with YoloOutput(dst) as out:  # whole or not at all: see yolo_output
        with out.open("index.jsonl") as index, out.open("images.txt") as images:
            for line, label in iter_labels(
                src, attr, native_to=DETECTION, allow_drop=allow_drop, dropped=dropped
            ):
                if label is None:  # another type was refused in the first pass
                    skipped += not line.is_blank
                    coco_keys.unlabeled(line)
                    continue
                path, image = label_path(line.number, label.source, common)
                coco_keys.add(line.number, label.record, label.metadata)
                others.add(line.number, label.record, label.metadata, label.value)
                taken.take(path, image, line.number)
                map_key = metadata_key(label.attribute, "class-map")  # as validate names it
                for k, name in label.metadata.get("class-map", {}).items():
                    if str(k) not in class_map:
                        check_new_class(str(k), name, ids_by_name, line.number, map_key)
                    if class_map.setdefault(str(k), name) != name:
                        here, there = names_apart(name, class_map[str(k)])
                        raise ManifestError(
                            f"class id {k} is {here} here but {there} earlier; "
                            "YOLO needs one name per class id",
                            line=line.number,
                            key=map_key,
                            rule="yolo-class",
                        )
                with on_line(line.number, label.attribute):
                    # the label as a box label first: sizes and boxes it cannot read stop here, named
                    checked = exported_label(DETECTION, label.value, label.metadata)
                    value, metadata = _inside_image(
                        checked.value, checked.metadata, line.number, attr, allow_drop, dropped
                    )
                    text = gt_to_yolo(value, metadata, confidence=confidence)
                if not confidence:  # 5 columns hold no score: say how many were not written
                    unwritten_scores += sum(
                        o.get("confidence") is not None for o in metadata.get("objects") or ()
                    )
                out.write(path, text.encode())
                size = label.value["image_size"][0]
                index.write(
                    orjson.dumps(
                        {
                            "label": path,
                            "image": image,
                            "source-ref": label.source,
                            "width": size["width"],
                            "height": size["height"],
                            "depth": size.get("depth", 3),
                            "line": line.number,
                            "human-annotated": label.metadata.get("human-annotated"),
                        }
                    )
                    + b"\n"
                )
                images.write((label.source or "").encode() + b"\n")
                files += 1
                name, dot, suffix = posixpath.basename(image).rpartition(".")
                unlisted += not (name and dot and suffix.lower() in ULTRALYTICS_IMAGES)  # never read as named
        names = yolo_names(class_map)
        classes_txt, data_yaml = "".join(n + "\n" for n in names), _data_yaml(names)
        check_round_trip(names, classes_txt, data_yaml, metadata_key(attr, "class-map"))  # or a box would get another class's name
        out.write("classes.txt", classes_txt.encode())
        out.write("data.yaml", data_yaml.encode())
    counts = {"images": files, "skipped": skipped, "classes": len(class_map)}
    if len(names) > len(class_map):  # ids with no name: YOLO needs index = id
        counts["placeholder classes"] = len(names) - len(class_map)
    if rounded := dropped.pop(ROUNDED, 0):  # clipped by a fraction of a pixel: no loss, but said
        counts[ROUNDED] = rounded
    if dropped:
        counts["dropped"] = sum(dropped.values())
    if unwritten_scores:  # --confidence writes them as a 6th column
        counts["confidences left out"] = unwritten_scores
    if unlisted:  # an API URL has no suffix: saved as named, Ultralytics skips the image and its labels
        counts["images without an image suffix"] = unlisted
    coco_keys.count(counts)
    others.count(counts)
    if notes := coco_keys.notes() + others.notes():
        counts[NOTES] = notes
    return counts


def _inside_image(
    value: dict, metadata: dict, line: int, attr: str, allow_drop: bool, dropped: Counter
) -> tuple[dict, dict]:
    """The boxes as YOLO can hold them: inside the image (its coordinates are 0..1, and trainers
    skip an image whose label file has a value outside, Ultralytics with a warning).

    A box reaching past the image stops the conversion, naming the line and the box, unless
    ``allow_drop``: then it is clipped to the image (counted ``clipped``), or left out when
    nothing of it is inside (counted ``outside the image``). A box past it by less than
    ``ROUNDING_PX`` on every side (a model's float rounding: 640.4 on a 640 image) is clipped
    either way, counted ``ROUNDED`` (not in ``dropped``): refusing a dataset for it helped no one.
    """
    size = value["image_size"][0]
    width, height = size["width"], size["height"]
    eps = 1e-9 * max(width, height)
    anns = value.get("annotations") or []
    objects = metadata.get("objects") or [{}] * len(anns)
    kept_anns, kept_objects = [], []
    for i, (ann, obj) in enumerate(zip(anns, objects, strict=False)):
        left, top, w, h = (float(ann[k]) for k in ("left", "top", "width", "height"))
        x0, y0, x1, y1 = max(left, 0.0), max(top, 0.0), min(left + w, width), min(top + h, height)
        if x0 <= left + eps and y0 <= top + eps and x1 >= left + w - eps and y1 >= top + h - eps:
            kept_anns.append(ann)
            kept_objects.append(obj)
            continue
        if max(-left, -top, left + w - width, top + h - height) < ROUNDING_PX and x1 > x0 and y1 > y0:
            dropped[ROUNDED] += 1
            kept_anns.append({**ann, "left": x0, "top": y0, "width": x1 - x0, "height": y1 - y0})
            kept_objects.append(obj)
            continue
        if not allow_drop:
            raise ManifestError(
                f"box {i} ({left:g}, {top:g}, {w:g} x {h:g}) reaches past the {width} x {height} image; YOLO "
                "coordinates are 0..1 (--allow-drop clips it to the image)",
                line=line,
                key=f"{attr}.annotations[{i}]",
                rule="yolo-outside-image",
            )
        if x1 - x0 <= 0 or y1 - y0 <= 0:
            dropped["outside the image"] += 1
            continue
        dropped["clipped"] += 1
        kept_anns.append({**ann, "left": x0, "top": y0, "width": x1 - x0, "height": y1 - y0})
        kept_objects.append(obj)
    if len(kept_anns) == len(anns) and all(a is b for a, b in zip(kept_anns, anns, strict=True)):
        return value, metadata
    return {**value, "annotations": kept_anns}, {**metadata, "objects": kept_objects}


def _data_yaml(names: Sequence[str]) -> str:
    """Ultralytics' dataset file. No ``path``: Ultralytics then takes ``train``/``val`` from the
    YAML's own folder (``check_det_dataset``), wherever the folder is moved. ``path: .``, written
    before, is taken from the working directory: trained from anywhere else, it found no images."""
    import yaml

    return yaml.safe_dump(
        {"train": "images", "val": "images", "names": dict(enumerate(names))},
        sort_keys=False,
        allow_unicode=True,
    )
