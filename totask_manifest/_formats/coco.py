"""COCO object detection for one image, and the pieces a dataset-level conversion needs.

Class ids: COCO category ids start at 1 (the COCO dataset, pycocotools' tools, and every COCO
file in the sample data), Ground Truth class ids at 0, so ``category_id = class_id + 1`` both
ways (``CATEGORY_OFFSET``) and a round trip keeps ids. A box in category 0 has no class id; it is
refused unless ``class_names`` is given, which numbers classes by name instead.
``score`` is the per-box confidence. An ``area`` other than the box's width x height (COCO gives
a segment's or a crowd's region's) is kept in the box's ``objects`` entry as ``area`` (``AREA``);
the export writes it back, and computes the box's where none is kept. The annotation's ``id`` is
kept there too, as ``coco-id`` (``COCO_ID``): a dataset export writes it back where every box
holds one (``_analytics.coco_images.KeptIds``), so a detections file naming ids still matches.
``class_names`` numbers classes by name, so a box's category id is then no longer its class id +
1: the original is kept in its ``objects`` entry as ``coco-category-id`` (``COCO_CATEGORY_ID``,
only where it differs), and the dataset export writes it back as it does the ids.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .._errors import json_kind, json_text
from .._outcomes import Labeled
from .class_names import CLASS_NAME_RULE, IdsByName, class_name_problem
from .coco_regions import CROWD_REGION, box_outline, is_crowd
from .groundtruth import exported_label
from .model import (
    DETECTION,
    MAX_CLASS_ID,
    Box,
    ClassIndex,
    ClassNames,
    FormatError,
    class_id_value,
    confidence_value,
    gt_detection,
    image_size_value,
    number,
    require_task_type,
)

FMT = "coco"
#: COCO ``category_id`` = Ground Truth ``class_id`` + this
CATEGORY_OFFSET = 1
#: the key of a box's ``objects`` entry (its metadata) that keeps a COCO ``area`` other than the
#: box's width x height (a segment's or a crowd's): the export writes it back, else computes it
AREA = "area"
#: the key of a box's ``objects`` entry that keeps its COCO annotation's ``id``
COCO_ID = "coco-id"
#: the key of a box's ``objects`` entry that keeps its COCO ``category_id`` where it is not the
#: box's class id + ``CATEGORY_OFFSET`` (classes numbered by name, ``class_names``)
COCO_CATEGORY_ID = "coco-category-id"


def categories_by_id(doc: Mapping[str, Any], *, by_name: bool = False) -> dict[int, str]:
    """Category id -> name. One id listed twice under two names is refused: pycocotools keeps the
    last, and which one the boxes meant is nowhere said. So is an empty name: it was imported
    into a ``class-map`` that ``validate`` and every export refuse (a class needs a name), and so
    is a name of only spaces or one that is no string (``class_names.class_name_problem``).
    ``by_name`` (classes numbered by name, ``class_names``): one name listed under two ids is
    refused too, as the two categories would become one class with nothing said. Without it each
    id is its own class (id - 1), both kept as they are."""
    cats = doc.get("categories")
    if not isinstance(cats, list):
        raise FormatError("document needs a 'categories' list", fmt=FMT, key="categories")
    out: dict[int, str] = {}
    first: dict[int, int] = {}  # id -> the index it was first listed at
    named = IdsByName()  # name -> the id and index it was first listed with
    for i, cat in enumerate(cats):
        if not isinstance(cat, Mapping) or "id" not in cat or "name" not in cat:
            raise FormatError("category needs 'id' and 'name'", fmt=FMT, key=f"categories[{i}]")
        cid, name = class_id_value(cat["id"], fmt=FMT, key=f"categories[{i}].id"), cat["name"]
        if (problem := class_name_problem(name)) is not None:  # null was read as the class "None"
            said = "has no name" if not isinstance(name, str) else "has an empty name"
            raise FormatError(f"category id {cid} {said} in categories[{i}]: its name {problem}; "
                              f"{CLASS_NAME_RULE} (no export takes another)", fmt=FMT, key=f"categories[{i}].name")
        if out.get(cid, name) != name:  # pycocotools keeps the last; which one was meant is unsaid
            raise FormatError(
                f"category id {cid} is also categories[{first[cid]}]'s ({out[cid]!r}, here {name!r}); "
                "one id names one category",
                fmt=FMT,
                key=f"categories[{i}].id",
            )
        if by_name and (earlier := named.other(name, cid, i)) is not None:
            raise _named_twice(name, earlier, i, cid)
        out[cid] = name
        first.setdefault(cid, i)
    return out


def _named_twice(name: str, earlier: tuple[Any, int], i: int, cid: int) -> FormatError:
    """The refusal of ``categories[i]`` (id ``cid``), named ``name`` as the earlier category
    (its id, its index) of another id is: numbered by name, the two would become one class."""
    return FormatError(f"category name {name!r} is also categories[{earlier[1]}]'s (id {earlier[0]}, here id "
                       f"{cid}); classes are numbered by name (class names given), so the two categories would "
                       "become one class: give each category its own name, or read the document without class "
                       "names (each category id is then its own class)", fmt=FMT, key=f"categories[{i}].name")


def images_of(doc: Any) -> list[Any]:
    """The ``images`` of a COCO document; ``FormatError`` for one that is not COCO (not an object,
    no images), which no line naming it could take a label from (``file_convert.shared_form``)."""
    if not isinstance(doc, Mapping):
        raise FormatError(f"document must be an object, got {json_kind(doc)}", fmt=FMT)
    images = doc.get("images")
    if not isinstance(images, list) or not images:
        raise FormatError("document needs an 'images' list", fmt=FMT, key="images")
    return images


def coco_to_gt(
    doc: Any,
    task_type: str = DETECTION,
    *,
    class_names: ClassNames | None = None,
    image_id: Any = None,
    categories: Mapping[int, str] | None = None,
    drop_crowd: bool = False,
) -> Labeled:
    """The Ground Truth bounding-box label of one image of a COCO document.

    A document with several images needs ``image_id``. ``categories`` (id -> name) lets a
    dataset-level caller parse the category list once. ``drop_crowd``: see
    ``coco_annotations_to_gt``.
    """
    require_task_type(task_type, (DETECTION,), FMT)
    images = images_of(doc)
    if image_id is None:
        if len(images) != 1:
            raise FormatError(f"document holds {len(images)} images; pass image_id", fmt=FMT, key="images")
        image = images[0]
    else:
        image = next((im for im in images if isinstance(im, Mapping) and im.get("id") == image_id), None)
        if image is None:
            raise FormatError(f"no image with id {image_id!r}", fmt=FMT, key="images")
    if not isinstance(image, Mapping):
        raise FormatError("image must be an object", fmt=FMT, key="images[0]")
    size = image_size_value(
        {"width": image.get("width"), "height": image.get("height"), "depth": image.get("depth", 3)}, fmt=FMT
    )
    cats = categories if categories is not None else categories_by_id(doc, by_name=class_names is not None)
    anns = doc.get("annotations", [])
    if not isinstance(anns, list):
        raise FormatError("'annotations' must be a list", fmt=FMT, key="annotations")
    return coco_annotations_to_gt(
        (
            a
            for a in anns
            if not isinstance(a, Mapping) or a.get("image_id", image.get("id")) == image.get("id")
        ),
        size,
        cats,
        class_names=class_names,
        drop_crowd=drop_crowd,
    )


def coco_annotations_to_gt(
    anns: Iterable[Any],
    size: Any,
    categories: Mapping[int, str],
    *,
    class_names: ClassNames | None = None,
    drop_crowd: bool = False,
) -> Labeled:
    """Boxes of one image; used per line by the dataset conversion after grouping by image id.

    A crowd region (``iscrowd: 1``) is no object, and a Ground Truth box has no way to say so: it
    is refused, or left out with ``drop_crowd`` (``--allow-drop``; the caller records it in
    ``dropped``, ``coco_regions.coco_losses``). Read as an ordinary box, it was one object where COCO
    tools see an area to ignore."""
    classes = ClassIndex(class_names, fmt=FMT) if class_names is not None else None
    size = image_size_value(size, fmt=FMT)
    boxes: list[Box] = []
    areas: list[float | None] = []
    ids: list[Any] = []
    kept_cats: list[int | None] = []  # the category id where class id + 1 is not it
    names: dict[int, str] = {}
    for i, ann in enumerate(anns):
        key = f"annotations[{i}]"
        if not isinstance(ann, Mapping):
            raise FormatError("annotation must be an object", fmt=FMT, key=key)
        if is_crowd(ann):
            if drop_crowd:
                continue
            raise FormatError(
                f"annotation is a {CROWD_REGION}: it covers many objects and a box is one; allow "
                "dropping it (--allow-drop)",
                fmt=FMT,
                key=f"{key}.iscrowd",
            )
        bbox = ann.get("bbox")
        if not isinstance(bbox, list) or len(bbox) != 4:
            raise FormatError("annotation needs 'bbox' [x, y, width, height]", fmt=FMT, key=f"{key}.bbox")
        cat = class_id_value(ann.get("category_id"), fmt=FMT, key=f"{key}.category_id")
        if cat not in categories:
            raise FormatError(f"category_id {cat} is not in 'categories'", fmt=FMT, key=f"{key}.category_id")
        if classes:
            cid = classes.id_for(categories[cat], key=f"{key}.category_id")
        elif cat < CATEGORY_OFFSET:
            raise FormatError(
                f"category_id {cat}: COCO category ids start at {CATEGORY_OFFSET} (class_id = "
                f"category_id - {CATEGORY_OFFSET}); pass class names to number classes by name",
                fmt=FMT,
                key=f"{key}.category_id",
            )
        else:
            cid = cat - CATEGORY_OFFSET
        names[cid] = categories[cat]
        score = ann.get("score")
        conf = None if score is None else confidence_value(score, fmt=FMT, key=f"{key}.score")
        x, y, w, h = (number(v, fmt=FMT, key=f"{key}.bbox[{j}]") for j, v in enumerate(bbox))
        for j, what, v in ((2, "width", w), (3, "height", h)):
            if v < 0:  # a Ground Truth box's size is at least 0: validate refuses the line written
                raise FormatError(f"{what} {v} is negative", fmt=FMT, key=f"{key}.bbox[{j}]")
        boxes.append(Box(cid, x, y, w, h, conf))
        areas.append(_given_area(ann, w * h, key))
        ids.append(annotation_id(ann.get("id"), key=f"{key}.id"))
        kept_cats.append(None if cat == cid + CATEGORY_OFFSET else cat)
    labeled = gt_detection(size, boxes, names)
    for obj, area, ann_id, cat in zip(labeled.metadata["objects"], areas, ids, kept_cats, strict=True):
        if ann_id is not None:
            obj[COCO_ID] = ann_id
        if cat is not None:
            obj[COCO_CATEGORY_ID] = cat
        if area is not None:
            obj[AREA] = area
    return labeled


def refuse_class_without_category(class_id: int, key: str) -> None:
    """Refuse (``FormatError`` at ``key``) a class id whose category id (class id +
    ``CATEGORY_OFFSET``) is over ``MAX_CLASS_ID``: class id 2**63-1, which ``validate`` accepts,
    was written as category 2**63, which the import (``class_id_value``) and 64-bit readers refuse."""
    if class_id + CATEGORY_OFFSET > MAX_CLASS_ID:
        raise FormatError(f"class id {class_id} has no COCO category id: a category id is the class id + "
                          f"{CATEGORY_OFFSET}, within 64 bits (at most {MAX_CLASS_ID}, as the import reads it); "
                          f"renumber the class below {MAX_CLASS_ID} first", fmt=FMT, key=key)


def is_coco_id(value: Any) -> bool:
    """Whether ``value`` is a COCO id: an integer, as the COCO format and pycocotools have them
    (not a bool, a fraction or a string of digits). The one rule an import checks the ids it reads
    by (``annotation_id``, ``_analytics.coco_id_rules``) and an export the ids it keeps
    (``_analytics.coco_images.KeptIds``): the export wrote a kept ``"12"`` the import refused."""
    return isinstance(value, int) and not isinstance(value, bool)


#: the largest COCO id (image, annotation, category) the import reads and the export writes: a
#: signed 64-bit integer, as pycocotools' COCOeval keeps ids in numpy ``int64`` arrays
MAX_COCO_ID = MAX_CLASS_ID


def coco_id_over_64_bits(value: Any) -> bool:
    """Whether an id ``is_coco_id`` takes is over ``MAX_COCO_ID``: orjson reads integers up to
    2**64-1, so the import took image and annotation ids from 2**63 up that its own export (and
    COCOeval) refused, and the round trip broke."""
    return is_coco_id(value) and value > MAX_COCO_ID


def refuse_id_over_64_bits(value: Any, *, what: str, key: str) -> None:
    """Raise ``FormatError`` at ``key`` where ``value`` (the document's ``what``) is over
    ``MAX_COCO_ID`` (``coco_id_over_64_bits``)."""
    if coco_id_over_64_bits(value):
        raise FormatError(f"{what} {value} is over {MAX_COCO_ID}; COCO ids are signed 64-bit integers "
                          f"(pycocotools' COCOeval keeps them in int64 arrays): renumber it to {MAX_COCO_ID} "
                          "or below", fmt=FMT, key=key)


def annotation_id(value: Any, *, key: str) -> int | None:
    """An annotation's ``id``: an integer, as pycocotools reads and writes one (``None`` where none
    is given: the export numbers such boxes), within 64 bits (``refuse_id_over_64_bits``). A string
    or a fraction was kept as it was, so ``1`` and ``"1"`` were two ids that COCO tools, which key
    annotations by id, read otherwise."""
    if value is None:
        return None
    if not is_coco_id(value):
        raise FormatError(f"annotation id {json_text(value)} is not an integer; a COCO annotation id is an "
                          "integer (pycocotools')", fmt=FMT, key=key)
    refuse_id_over_64_bits(value, what="annotation id", key=key)
    return value


def _given_area(ann: Mapping[str, Any], box_area: float, key: str) -> float | None:
    """The annotation's ``area`` where it is not its box's (``None`` where none is given or it is
    the box's width x height, which the export computes again): COCOeval's small/medium/large
    ranges read it, and for a crowd or a segment it is the region's, not the box's."""
    if ann.get("area") is None:
        return None
    area = _area_value(ann["area"], f"{key}.area")
    return None if area == box_area else area


def _area_value(value: Any, key: str) -> float:
    """An area: a finite number of at least 0 (``validate`` refuses a kept one that is not)."""
    area = number(value, fmt=FMT, key=key)
    if area < 0:
        raise FormatError(f"area {area} is negative", fmt=FMT, key=key)
    return area


def gt_to_coco_image(
    value: Any,
    metadata: Mapping[str, Any] | None = None,
    *,
    image_id: int = 1,
    file_name: str | None = None,
    first_annotation_id: int = 1,
    annotation_id: Callable[[Mapping[str, Any], int, int], Any] | None = None,
    category_id: Callable[[Mapping[str, Any], int, int], Any] | None = None,
) -> dict:
    """A one-image COCO document; ``category_id`` = Ground Truth ``class_id`` + 1, ``score`` = confidence.
    Each box's ``segmentation`` is its rectangle, the polygon pycocotools' ``loadRes`` gives a box
    result (``coco_regions.box_outline``): ``annToMask``/``annToRLE`` and COCOeval ``segm`` read one on
    every annotation, and the import reads it back as the box (``coco_regions.is_box_outline``).
    Annotation ids count from ``first_annotation_id``; ``annotation_id(objects entry, index,
    that number)`` may give another (a dataset export's kept ids); ``category_id(objects entry,
    index, class id)`` likewise gives a box's category id (else class id + 1)."""
    labeled = exported_label(DETECTION, value, metadata)
    size = labeled.value["image_size"][0]
    image: dict[str, Any] = {"id": image_id, "width": size["width"], "height": size["height"]}
    if file_name is not None:
        image["file_name"] = file_name
    anns = []
    cat_of: dict[int, Any] = {}  # class id -> category id, for the categories listed
    for i, (ann, obj) in enumerate(
        zip(labeled.value["annotations"], labeled.metadata["objects"], strict=True)
    ):
        w, h = ann["width"], ann["height"]
        bbox = [ann["left"], ann["top"], w, h]
        score = obj.get("confidence")  # unscored: no score
        area = w * h if obj.get(AREA) is None else _area_value(obj[AREA], f"objects[{i}].{AREA}")
        number = first_annotation_id + i
        cid = ann["class_id"]
        refuse_class_without_category(cid, f"annotations[{i}].class_id")
        cat_of[cid] = cid + CATEGORY_OFFSET if category_id is None else category_id(obj, i, cid)
        anns.append(
            {
                "id": number if annotation_id is None else annotation_id(obj, i, number),
                "image_id": image_id,
                "category_id": cat_of[cid],
                "bbox": bbox,
                "segmentation": box_outline(bbox),  # as loadRes gives a box: annToMask reads it
                "area": area,  # the region's, kept by the import, else the box's
                "iscrowd": 0,
                **({"score": score} if score is not None else {}),
            }
        )
    cats = sorted({int(k): v for k, v in labeled.metadata["class-map"].items()}.items())
    for cid, _name in cats:  # a class no box here is of is listed all the same
        refuse_class_without_category(cid, "class-map")
    return {
        "images": [image],
        "annotations": anns,
        "categories": [{"id": cat_of.get(cid, cid + CATEGORY_OFFSET), "name": name} for cid, name in cats],
    }
