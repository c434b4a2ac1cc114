"""What a COCO annotation holds beyond a Ground Truth box or mask, for a conversion to name.

A box cannot hold a polygon or an RLE, keypoints, attributes or a crowd region (one region over
many objects); a mask cannot hold a box without a ``segmentation``. A ``segmentation`` that is
only the outline of the annotation's own ``bbox`` holds nothing the box does not: pycocotools'
``COCO.loadRes`` gives a box result that rectangle (``box_outline``), and so does this tool's
box export, so that ``annToMask`` and COCOeval ``segm`` read every annotation. Read back as a box
it is no loss (``is_box_outline``), so export then import gives the same boxes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

from .._errors import json_text
from .model import FormatError

#: what a mask cannot paint: an annotation without ``segmentation`` (a box alone; CVAT writes
#: ``"segmentation": []`` for one), counted by ``coco_losses(..., masks=True)``
BOX_WITHOUT_SEGMENTATION = "box without segmentation"
#: what a box cannot hold: a COCO crowd annotation (``iscrowd: 1``), one region over many objects
#: that COCO tools leave out of training and evaluation; read as boxes it is left out whole
CROWD_REGION = "crowd region (iscrowd: 1)"
#: the annotation keys a conversion reads (or that hold nothing a box or mask does not: ``id``,
#: ``image_id``, ``area``); ``keypoints``, ``num_keypoints`` and ``attributes`` are counted by name
ANNOTATION_KEYS = frozenset({"id", "image_id", "category_id", "bbox", "area", "iscrowd", "segmentation", "score",
                             "keypoints", "num_keypoints", "attributes"})
#: flags some tools write on every annotation whose zero value says nothing (Label Studio's COCO
#: export writes ``"ignore": 0``); set, they are data a box cannot hold (``ignore: 1``: an area to
#: leave out of training), counted as any other key
ZERO_FLAGS = frozenset({"ignore"})


def is_crowd(ann: Mapping[str, Any]) -> bool:
    """Whether a COCO annotation is a crowd region (``iscrowd`` 1; 0 or missing is one object)."""
    return ann.get("iscrowd") not in (None, 0, False, "0")


def box_outline(bbox: Any) -> list[list[float]]:
    """The ``segmentation`` pycocotools' ``COCO.loadRes`` gives a box result: the rectangle polygon
    ``[[x1, y1, x1, y2, x2, y2, x2, y1]]`` of ``bbox`` ``[x, y, width, height]``."""
    x1, y1, w, h = bbox
    x2, y2 = x1 + w, y1 + h
    return [[x1, y1, x1, y2, x2, y2, x2, y1]]


def is_box_outline(ann: Mapping[str, Any]) -> bool:
    """Whether a COCO annotation's ``segmentation`` is only its ``bbox``'s outline: one polygon of
    the box's four corners, exactly, in order around it from any corner either way (the box
    export writes ``box_outline``). It holds nothing the box does not, so a box keeps it whole."""
    seg, bbox = ann.get("segmentation"), ann.get("bbox")
    if not (
        isinstance(seg, list)
        and len(seg) == 1
        and isinstance(seg[0], list)
        and len(seg[0]) == 8
        and isinstance(bbox, list)
        and len(bbox) == 4
    ):
        return False
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (*seg[0], *bbox)):
        return False
    corners = list(zip(*[iter(box_outline(bbox)[0])] * 2, strict=True))
    points = list(zip(*[iter(seg[0])] * 2, strict=True))
    return any(points == (ring[i:] + ring[:i]) for ring in (corners, corners[::-1]) for i in range(4))


def unknown_keys(ann: Mapping[str, Any]) -> list[str]:
    """The keys of a COCO annotation no Ground Truth box or mask holds (``track_id``, a set
    ``ignore``...): read as a label they were left out unsaid, so a conversion names them."""
    return [k for k in ann if k not in ANNOTATION_KEYS and not (k in ZERO_FLAGS and ann[k] in (0, False, None))]


def refuse_unknown_key(anns: list, held: str) -> None:
    """Raise naming the first annotation key no Ground Truth label holds (``track_id``, ``ignore:
    1``) and its annotation's id; ``held`` is what the annotations are read as (``a box``). A key
    another tool adds is no COCO field this tool could write back: refused, or left out with
    ``--allow-drop`` (the line's ``dropped`` then counts ``annotation key K``)."""
    for i, ann in enumerate(anns):
        keys = unknown_keys(ann) if isinstance(ann, Mapping) else []
        if keys:
            raise FormatError(
                f"annotation id {json_text(ann.get('id'))} holds {keys[0]!r}, which {held} has no place for "
                f"(the annotation keys that convert: {', '.join(sorted(ANNOTATION_KEYS))}); remove the key, "
                "or allow dropping it (--allow-drop: the line's 'dropped' counts it)",
                fmt="coco",
                key=f"annotations[{i}].{keys[0]}",
            )


def coco_losses(annotations: Any, *, masks: bool = False) -> Counter[str]:
    """What reading COCO annotations as Ground Truth boxes drops: ``segmentation`` (polygons or
    RLE), ``keypoints``, ``attribute`` (an annotation's ``attributes``) and crowd regions (a
    Ground Truth box is one object: a crowd box read as one became an ordinary object, unsaid;
    it is counted whole, its segmentation with it), and ``annotation key K`` for any other key
    (``unknown_keys``), as ``native.losses`` counts a DM v1 annotation's. Read as masks (``masks``), an annotation with
    no segmentation is what is dropped instead: a mask has nothing to paint for a box, which
    vanished from it unsaid; a crowd region is painted as its category, as any region is."""
    lost: Counter[str] = Counter()
    for ann in annotations if isinstance(annotations, list) else ():
        if not isinstance(ann, Mapping):
            continue
        if masks and not ann.get("segmentation"):
            lost[BOX_WITHOUT_SEGMENTATION] += 1
        elif not masks and is_crowd(ann):
            lost[CROWD_REGION] += 1
        elif not masks and ann.get("segmentation") and not is_box_outline(ann):  # a box's outline: the box
            lost["segmentation"] += 1
        if ann.get("keypoints") and ann.get("num_keypoints", 1):
            lost["keypoints"] += 1
        if isinstance(ann.get("attributes"), Mapping):
            lost["attribute"] += len(ann["attributes"])
        lost.update(f"annotation key {k}" for k in unknown_keys(ann))
    return +lost
