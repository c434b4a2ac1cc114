"""A whole manifest as one COCO document, and back: boxes, and semantic segmentation masks.

Image ids are the ones a COCO import kept, else manifest line numbers, and ``file_name`` is the
``source-ref``, so going back restores each line's data object; an image's other keys travel
under ``coco-image``, its id too (``coco_images``). Boxes: ``category_id`` = Ground Truth ``class_id`` + 1 (COCO ids start at 1;
``formats.coco.CATEGORY_OFFSET``), ``score`` = confidence (converters in ``formats.coco``).
Masks: one annotation per class present in an image, as uncompressed RLE, category id = mask
class index (0 is background and gets no annotation), ``iscrowd: 0`` as COCO-Stuff writes a
class's region: COCO tools (``COCOeval``, trainers) ignore a crowd, so ``iscrowd: 1`` made the
export a ground truth with nothing to evaluate (AP -1) or train on. Back again, polygons and RLE
are painted into a palette PNG per image beside the output manifest. A COCO document is one JSON
object: an export writes it as it reads the manifest, an import reads it whole.
"""
from __future__ import annotations

import functools
import os
import re
from collections import Counter, defaultdict
from collections.abc import Callable
from functools import partial
from typing import Any

import orjson

from .._errors import UsageError, json_text
from .._fetch import has_scheme
from .._formats.coco import (
    CATEGORY_OFFSET,
    annotation_id,
    categories_by_id,
    coco_annotations_to_gt,
    gt_to_coco_image,
)
from .._formats.coco_regions import CROWD_REGION, coco_losses, is_box_outline, refuse_unknown_key
from .._formats.model import ClassNames, FormatError
from .._formats.native import describe
from .._manifest.file_kind import other_encoding
from .._manifest.io import write_lines
from .._storage import AtomicWriter, escape_undecodable, join, read_bytes, redact_secret_url
from .coco_document import DocumentSections, document_sections, too_big
from .coco_id_rules import refuse_ids_that_are_no_integers
from .coco_images import (
    Categories,
    KeptIds,
    Renumber,
    carried_image_keys,
    image_keys,
    licenses_by_id,
    not_carried,
    unnamed_categories,
)
from .image_root import below_root, under_root
from .keys_left_out import KeysLeftOut
from .labels import (
    NOTES,
    PastImage,
    image_source,
    iter_labels,
    manifest_line,
    metadata_key,
    no_images,
    not_held,
    nothing_to_convert,
    on_line,
    pick_attribute,
    references_base,
)
from .mask_colors import category_colors
from .masks import MergedInstances, coco_mask_image, paint_coco_mask
from .new_files import NewFiles
from .spool import Spool

DETECTION = "object-detection"
SEGMENTATION = "semantic-segmentation"
#: bytes per read when the annotations are copied in after the images
COPY_CHUNK = 1 << 20


def manifest_to_coco(
    src: str, dst: str, *, label_attribute: str | None = None, allow_drop: bool = False,
    image_root: str | None = None,
) -> dict[str, Any]:
    """Write the labels of one attribute (boxes or masks) as a COCO document at ``dst``. Documents
    kept as they are (DM v1, objects) are converted to boxes, refused when that would drop
    something unless ``allow_drop`` (the counts then say what was dropped).

    The document is written as it is read, not built in memory: a million images as Python dicts
    took 1.4 GB. Images go straight to ``dst`` (an ``AtomicWriter``: an error leaves nothing),
    annotations to a local temporary file copied in after them, so what is held is the categories.
    ``image_root``: each ``file_name`` is the ``source-ref`` below it (``image_root.below_root``).
    Ids a COCO import kept are written back (``coco_images.KeptIds``); a line that holds none, or
    one an earlier line held, starts the document again numbering that kind, said in one line."""
    attr = pick_attribute(src, (DETECTION, SEGMENTATION, "custom"), label_attribute,
                          target=("COCO", "boxes and masks"))
    ids = KeptIds()
    while True:
        try:
            counts = _write_document(src, dst, attr, ids, allow_drop=allow_drop, image_root=image_root)
        except Renumber as stop:  # raised only while that kind is kept: at most three times
            ids = ids.without(stop)
            continue
        if notes := ids.notes():
            counts[NOTES] = counts.get(NOTES, []) + notes
        return counts


def _write_document(
    src: str, dst: str, attr: str, ids: KeptIds, *, allow_drop: bool, image_root: str | None
) -> dict[str, Any]:
    """One pass of ``manifest_to_coco``, its ids picked by ``ids``."""
    base = references_base(src)  # a relative mask reference resolves as a source-ref does, where the job read it
    dropped: Counter = Counter()
    cats = Categories()
    licenses: dict[Any, Any] = {}  # id -> the license entry lines carried
    past = PastImage()
    skipped = n_images = n_anns = 0
    # the input named as printed: a path that is not valid UTF-8 as its escapes (JSON holds text)
    shown = escape_undecodable(redact_secret_url(src))
    document = DocumentSections({"description": f"converted by totask-manifest from {shown} "
                                           f"(label attribute {attr})"})
    others = KeysLeftOut("COCO", attr)
    with AtomicWriter(dst) as out, Spool(dst, "totask-coco-") as annotations:
        out.write(b'{"images":[')  # the document's own sections (info, licenses) follow the categories
        for line, label in iter_labels(
            src, attr, native_to=DETECTION, allow_drop=allow_drop, dropped=dropped
        ):
            if not line.is_blank:
                document.take(line.record(), line.number, licenses)
            if label is None:
                skipped += not line.is_blank
                continue
            others.add(line.number, label.record, label.metadata, label.value)
            source = image_source(label, "COCO")
            file_name = below_root(image_root, source, line.number) if image_root else source or ""
            image_id = ids.image(label.record, line.number)
            if label.task_type == DETECTION:
                objects = metadata_key(label.attribute, "objects")
                with on_line(line.number, label.attribute):
                    doc = gt_to_coco_image(label.value, label.metadata, image_id=image_id, file_name=file_name,
                                           first_annotation_id=n_anns + 1,
                                           annotation_id=partial(ids.annotation, line=line.number, objects=objects),
                                           category_id=partial(ids.category, line=line.number, objects=objects))
                size = doc["images"][0]
                past.add(line.number, (a["bbox"] for a in doc["annotations"]), size["width"], size["height"])
                class_map = label.metadata.get("class-map", {})
                cats.merge(class_map, line.number, offset=CATEGORY_OFFSET,
                           key=metadata_key(label.attribute, "class-map"))
            elif label.task_type == SEGMENTATION:
                doc = coco_mask_image(label, line.number, image_id, n_anns + 1, cats, base, file_name)
            else:
                raise not_held("COCO", "boxes and masks", label, "coco-type")
            human = label.metadata.get("human-annotated")
            for image in doc["images"]:
                if human in ("yes", "no"):  # no COCO field says it: kept on the image for the way back
                    image["human-annotated"] = human
                image.update(carried_image_keys(label.record, image, line.number, licenses))
                out.write(b"," * (n_images > 0) + orjson.dumps(image))
                n_images += 1
            for ann in doc["annotations"]:
                annotations.write(b"," * (n_anns > 0) + orjson.dumps(ann))
                n_anns += 1
        if not n_images:
            raise nothing_to_convert(src, attr, skipped)
        out.write(b'],"annotations":[')
        annotations.copy_to(out, COPY_CHUNK)
        categories = ids.categories(cats.by_id, cats.colors.by_id)
        out.write(b'],"categories":' + orjson.dumps(categories))
        out.write(document.sections(licenses) + b"}")
    counts: dict[str, Any] = {"images": n_images, "annotations": n_anns, "skipped": skipped}
    if dropped:
        counts["dropped"] = sum(dropped.values())
    others.count(counts)
    if notes := past.notes() + document.notes() + others.notes():
        counts[NOTES] = notes
    return counts


def _naming_the_file(convert: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
    """A refusal of the document names it, after its key (``'categories[1].name': ... (in
    c.json)``): it named the key alone, and a script converting many files could not tell which."""

    @functools.wraps(convert)
    def call(src: str, dst: str, **options: Any) -> dict[str, Any]:
        try:
            return convert(src, dst, **options)
        except FormatError as exc:
            where = redact_secret_url(src)
            if where in exc.detail:
                raise
            raise FormatError(f"{exc.detail} (in {where})", fmt=exc.format, key=exc.key, line=exc.line) from None

    return call


@_naming_the_file
def coco_to_manifest(
    src: str,
    dst: str,
    *,
    task_type: str | None = None,
    label_attribute: str | None = None,
    class_names: ClassNames | None = None,
    job_name: str = "converted",
    image_root: str | None = None,
    human_annotated: str | None = None,
    allow_drop: bool = False,
) -> dict[str, int]:
    """One manifest line per COCO image. ``task_type`` defaults to masks when annotations carry
    ``segmentation`` (other than its box's outline, ``coco_regions.is_box_outline``) and to boxes otherwise; masks go to ``<dst folder>/masks/<image id>.png``.
    Boxes asked for where annotations carry segmentations, keypoints or attributes are refused
    naming them, unless ``allow_drop`` (the line's metadata then records ``dropped``)."""
    doc = _read_document(src)
    if not isinstance(doc, dict) or not isinstance(doc.get("images"), list):
        raise FormatError(
            f"{redact_secret_url(src)} is not a COCO document (no 'images' list)", fmt="coco", key="images"
        )
    if not doc["images"]:
        raise no_images(src)
    refuse_ids_that_are_no_integers(doc)  # before any is used as a key
    cats = categories_by_id(doc, by_name=class_names is not None)  # numbered by name: one name, one id
    licenses = licenses_by_id(doc)  # each image's line carries its own
    by_image: dict[Any, list] = defaultdict(list)
    places: dict[Any, list[int]] = defaultdict(list)  # each one's index in the document, for its key
    seen: dict[Any, int] = {}  # image id -> its index: annotations name an image by id alone
    for n, image in enumerate(doc["images"]):
        if isinstance(image, dict) and image.get("id") is not None:
            if image["id"] in seen:  # each would get the other's boxes
                raise FormatError(
                    f"image id {image['id']!r} is also images[{seen[image['id']]}]'s; one id names one "
                    "image (its annotations cannot tell the two apart)",
                    fmt="coco",
                    key=f"images[{n}].id",
                )
            seen[image["id"]] = n
    ann_seen: dict[Any, int] = {}  # annotation id -> its index, refused twice as image ids are
    for i, ann in enumerate(doc.get("annotations") or []):
        if not isinstance(ann, dict) or "image_id" not in ann:
            raise FormatError("annotation needs an 'image_id'", fmt="coco", key=f"annotations[{i}]")
        ann_id = annotation_id(ann.get("id"), key=f"annotations[{i}].id")
        if ann_id is not None:
            if ann_id in ann_seen:  # pycocotools keeps the last; the export would write one id twice
                raise FormatError(f"annotation id {ann_id!r} is also annotations[{ann_seen[ann_id]}]'s; one id "
                                  "names one annotation", fmt="coco", key=f"annotations[{i}].id")
            ann_seen[ann_id] = i
        by_image[ann["image_id"]].append(ann)
        places[ann["image_id"]].append(i)
    image_ids = {image.get("id") for image in doc["images"] if isinstance(image, dict)}
    for i, ann in enumerate(doc.get("annotations") or []):
        if ann["image_id"] not in image_ids:  # its boxes would be left out of every line, unsaid
            raise FormatError(
                f"image_id {ann['image_id']!r} is not in 'images'",
                fmt="coco",
                key=f"annotations[{i}].image_id",
            )
    if task_type is None:
        # a box's outline (what a box export writes, as loadRes does) is no region of its own
        has_seg = any(
            a.get("segmentation") and not is_box_outline(a) for anns in by_image.values() for a in anns
        )
        task_type = SEGMENTATION if has_seg else DETECTION
    if task_type not in (DETECTION, SEGMENTATION):
        raise UsageError(f"COCO converts to {DETECTION} or {SEGMENTATION}, not {task_type}")
    attr = label_attribute or ("label-ref" if task_type == SEGMENTATION else "label")
    if task_type == SEGMENTATION and not attr.endswith("-ref"):
        raise UsageError(f"label attribute {attr!r} must end in '-ref' for {SEGMENTATION}")
    out_dir = dst.rsplit("/", 1)[0] if "/" in dst else "."
    colors = category_colors(doc) if task_type == SEGMENTATION else {}  # read as boxes: said not carried
    # scores mean predictions: the whole document counts as machine-labeled
    scored = any("score" in a for anns in by_image.values() for a in anns)
    human = human_annotated or ("no" if scored else "yes")
    lines = []
    own, unstored = document_sections(doc), []  # the document's own sections, on the first line
    dropped = 0
    merged = MergedInstances()
    masks = NewFiles()  # painted before the manifest is written: gone again if an image stops the import
    try:
        for n, image in enumerate(doc["images"]):
            key = f"images[{n}]"
            if not isinstance(image, dict) or "id" not in image:
                raise FormatError("image needs an 'id'", fmt="coco", key=key)
            anns = by_image.get(image["id"], [])
            file_name = image.get("file_name", image["id"])
            if "file_name" in image and (not isinstance(file_name, str) or not file_name.strip()):  # "": no source-ref
                raise FormatError(f"image {image['id']!r} needs a 'file_name' naming its file, got "
                                  f"{json_text(file_name)}", fmt="coco", key=f"{key}.file_name")
            file_name = str(file_name)
            source = under_root(image_root, file_name, key) if image_root else file_name
            size = {
                "width": image.get("width"),
                "height": image.get("height"),
                "depth": image.get("depth", 3),
            }
            try:
                lost = coco_losses(anns, masks=task_type != DETECTION)
                if lost and not allow_drop:
                    refuse_unknown_key(anns, "a box" if task_type == DETECTION else "a mask")
                    raise FormatError(_drop_hint(anns, lost, task_type), fmt="coco", key="annotations")
                if task_type == DETECTION:
                    labeled = coco_annotations_to_gt(
                        anns, size, cats, class_names=class_names, drop_crowd=allow_drop
                    )
                else:
                    # an integer id (coco_id_rules) names a file: no '/', no '..'
                    mask_url = join(out_dir, "masks", f"{image['id']}.png")
                    masks.note(mask_url)
                    labeled = paint_coco_mask(anns, image, cats, colors, mask_url, _mask_ref(out_dir, mask_url), key=key)
                    merged.add(anns)
                if lost:
                    labeled.metadata["dropped"] = dict(lost)
                    dropped += 1
            except FormatError as exc:
                key = _document_key(exc.key, places[image["id"]])
                raise FormatError(f"image {image['id']!r}: {exc.detail}", fmt="coco", key=key) from None
            said = image.get("human-annotated")  # this tool's own export keeps it per image
            line = partial(manifest_line, source, attr, labeled, task_type, job_name=job_name,
                           human_annotated=human_annotated or (said if said in ("yes", "no") else human))
            keys = image_keys(image, licenses, key)
            lines.append(line(extra={**own, **keys}) if n == 0 else line(extra=keys))
            if n == 0 and (unstored := too_big(lines[0], own)):  # validate would refuse the line: not stored, said
                lines[0] = line(extra=keys)
        write_lines(dst, lines)
    except BaseException:
        masks.remove()
        raise
    counts: dict[str, Any] = {"images": len(lines), "annotations": sum(map(len, by_image.values())), "skipped": 0}
    if dropped:
        counts["dropped"] = dropped
    notes = unstored + not_carried(doc, masks=task_type == SEGMENTATION) + merged.notes()  # the categories' keys a class-map cannot hold: said
    if task_type == DETECTION:  # masks: every category is in each line's internal-color-map
        notes += unnamed_categories(cats, {a.get("category_id") for anns in by_image.values() for a in anns})
    if notes:
        counts[NOTES] = notes
    return counts


def _read_document(src: str) -> Any:
    """The COCO document at ``src``, read as every reader of this tool reads JSON: a UTF-8 byte
    order mark (Notepad's) dropped (orjson refused it, where validate, the file method and a YOLO
    import take it), a UTF-16 or UTF-32 file named as such (``file_kind.other_encoding``, the
    manifests' table), other bytes that are no UTF-8 said so, not in orjson's words ("str is not
    valid UTF-8: surrogates not allowed")."""
    name = redact_secret_url(src)
    body = read_bytes(src)
    if (found := other_encoding(body[:4])) is not None:
        base = name.rsplit("/", 1)[-1]
        raise FormatError(f"{name} {found[1]}; a COCO document is read as UTF-8: convert it (iconv -f {found[0]} "
                          f"-t UTF-8 {base} > utf8-{base}) and give the converted file", fmt="coco")
    body = body.removeprefix(b"\xef\xbb\xbf")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        try:
            body.decode("utf-8")
        except UnicodeDecodeError as bad:
            raise FormatError(f"{name} is not UTF-8 text ({bad.reason} at byte {bad.start}): save it as UTF-8",
                              fmt="coco") from None
        raise FormatError(f"{name} is not a JSON document: {exc}", fmt="coco") from None


def _drop_hint(anns: list, lost: Counter, task_type: str) -> str:
    """What reading ``anns`` as ``task_type`` would drop, and the way out: the other task type only
    when it keeps them all (a crowd box with no segmentation, or keypoints, are lost either way)."""
    read_as, other = ("boxes", SEGMENTATION) if task_type == DETECTION else ("masks", DETECTION)
    way = (
        ""
        if coco_losses(anns, masks=task_type == DETECTION)
        else f"convert to {other} (--task-type {other}), or "
    )
    why = "; a box is one object and a crowd region covers many" if CROWD_REGION in lost else ""
    return f"reading these annotations as {read_as} would drop {describe(lost)}{why}; {way}allow dropping (--allow-drop)"


def _document_key(key: str | None, places: list[int]) -> str | None:
    """``annotations[i]...`` counted among one image's annotations, as the document counts them."""
    m = re.match(r"annotations\[(\d+)\]", key or "")
    if m is None or int(m.group(1)) >= len(places):
        return key
    return f"annotations[{places[int(m.group(1))]}]{key[m.end() :]}"


def _mask_ref(out_dir: str, mask_url: str) -> str:
    """The line's reference to its mask: beside a manifest written to a relative local path it is
    ``masks/<id>.png``, relative to the manifest's folder, where every reader (jobs, ``evaluate``,
    ``report``, a COCO export) resolves it; ``out/masks/1.png``, relative to the working
    directory, was read as ``out/out/masks/1.png``. Absolute paths and URLs stand as they are."""
    if has_scheme(out_dir) or os.path.isabs(out_dir):
        return mask_url
    return mask_url[len(out_dir) :].lstrip("/") if mask_url.startswith(out_dir) else mask_url
