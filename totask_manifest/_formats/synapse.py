"""Synapse task data: DM schema v1 (what the backend stores) and the documented ``objects`` shape.

DM v1 is what ``apply`` sends in ``PUT tasks/{id}/annotate_task_data/`` (synapse-api.md §4): per
media id (``image_1``) an ``annotations`` list (tool, classification) and a parallel
``annotationsData`` list (coordinates), joined by ``id``.

Mapping chosen here (documented in docs/formats.md):

* bounding box: ``tool: "bounding_box"``, ``classification: {"class": name}``,
  ``coordinate: {x: left, y: top, width, height}``;
* image classification: one ``tool: "classification"`` annotation per chosen class with
  ``classification: {"class": name}`` and an ``annotationsData`` entry holding only the id
  (several of them make a multi-label classification);
* confidence: DM v1 has no field for it; with ``confidence_attribute="confidence"`` it is sent
  as that classification attribute, otherwise it is left out (and reads back as 0.0).

Annotation ids are derived from the content, so converting the same label twice gives the
same document and a re-apply can see that the task already holds it.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Hashable, Mapping
from typing import Any

from .._errors import json_kind
from .._outcomes import Labeled
from .groundtruth import exported_label
from .model import (
    CLASSIFICATION,
    DETECTION,
    MAX_JSON_INT,
    MIN_JSON_INT,
    MULTILABEL,
    Box,
    ClassIndex,
    ClassNames,
    FormatError,
    class_id_value,
    confidence_value,
    gt_classification,
    gt_detection,
    gt_multilabel,
    image_size_value,
    number,
    refuse_negative_size,
    require_task_type,
)

DM = "dm-schema-v1"
OBJECTS = "synapse-objects"
MEDIA_ID = "image_1"
BBOX_TOOL = "bounding_box"
CLASSIFICATION_TOOL = "classification"
SUPPORTED = (DETECTION, CLASSIFICATION, MULTILABEL)


def _stable_id(*parts: Any) -> str:
    """Ten characters like Synapse's own ids, fixed by the content so output is deterministic."""
    return hashlib.sha1(repr(parts).encode()).hexdigest()[:10]


# --- DM schema v1 --------------------------------------------------------------------------------


def _media(doc: Any, fmt: str) -> tuple[str, list, list]:
    if not isinstance(doc, Mapping):
        raise FormatError(f"document must be an object, got {json_kind(doc)}", fmt=fmt)
    anns = doc.get("annotations")
    data = doc.get("annotationsData", {})
    if not isinstance(anns, Mapping) or not isinstance(data, Mapping):
        raise FormatError("'annotations' and 'annotationsData' must be objects keyed by media id", fmt=fmt,
                          key="annotations")
    media = [m for m in anns if m.startswith("image_")] or list(anns)
    if not media:
        # a task with nothing drawn yet: no media key at all
        return MEDIA_ID, [], []
    if len(media) > 1:
        raise FormatError(f"document holds several media ({', '.join(media)}); one image per task is supported",
                          fmt=fmt, key="annotations")
    mid = media[0]
    a, d = anns[mid], data.get(mid, [])
    if not isinstance(a, list) or not isinstance(d, list):
        raise FormatError("media entries must be lists", fmt=fmt, key=f"annotations.{mid}")
    return mid, a, d


def dm_v1_to_gt(
    doc: Any,
    task_type: str,
    *,
    image_size: Any = None,
    class_names: ClassNames | None = None,
    confidence_attribute: str = "confidence",
) -> Labeled:
    """Read DM schema v1 task data as a Ground Truth label of ``task_type``."""
    name = require_task_type(task_type, SUPPORTED, DM)
    mid, anns, data = _media(doc, DM)
    by_id = {}
    at: dict[Any, int] = {}  # id -> its index, to name the first of two
    for i, entry in enumerate(data):
        if not isinstance(entry, Mapping) or "id" not in entry:
            raise FormatError("annotationsData entry needs an 'id'", fmt=DM, key=f"annotationsData.{mid}[{i}]")
        if isinstance(entry["id"], Hashable) and entry["id"] in at:  # annotations find their entry by id alone
            raise FormatError(f"id {entry['id']!r} is also annotationsData.{mid}[{at[entry['id']]}]'s; one id "
                              "names one annotation", fmt=DM, key=f"annotationsData.{mid}[{i}].id")
        if isinstance(entry["id"], Hashable):
            at[entry["id"]] = i
            by_id[entry["id"]] = entry
    classes = ClassIndex(class_names, fmt=DM)
    tool = BBOX_TOOL if name == DETECTION else CLASSIFICATION_TOOL
    picked: list[tuple[int, str, float | None, Any]] = []  # a box's last: (its id, its coordinate)
    used: dict[Any, int] = {}  # a box's id -> its annotation's index
    for i, ann in enumerate(anns):
        key = f"annotations.{mid}[{i}]"
        if not isinstance(ann, Mapping):
            raise FormatError("annotation must be an object", fmt=DM, key=key)
        if ann.get("tool") != tool:
            continue  # other tools (polygons, relations) are not part of this task type
        cls = ann.get("classification")
        if not isinstance(cls, Mapping) or "class" not in cls:
            raise FormatError("annotation needs classification.class", fmt=DM, key=f"{key}.classification")
        cid = classes.id_for(cls["class"], key=f"{key}.classification.class")
        conf = cls.get(confidence_attribute) if confidence_attribute else None
        if conf is not None:
            conf = confidence_value(conf, fmt=DM, key=f"{key}.classification.{confidence_attribute}")
        coord = None
        if tool == BBOX_TOOL:
            aid = ann.get("id")
            if isinstance(aid, Hashable) and aid in used:  # two boxes read from one entry: one would be lost, the other twice
                raise FormatError(f"id {aid!r} is also annotations.{mid}[{used[aid]}]'s; one id names one "
                                  "annotation", fmt=DM, key=f"{key}.id")
            entry = by_id.get(aid) if isinstance(aid, Hashable) else None
            if entry is None:
                raise FormatError(f"no annotationsData entry with id {ann.get('id')!r}", fmt=DM, key=f"{key}.id")
            coord = entry.get("coordinate")
            if not isinstance(coord, Mapping):
                raise FormatError("bounding box needs a 'coordinate' object", fmt=DM,
                                  key=f"annotationsData.{mid}.{ann.get('id')}.coordinate")
            used[aid] = i
            coord = (aid, coord)
        picked.append((cid, cls["class"], conf, coord))
    _refuse_orphan_entries(anns, at, mid)
    if name == DETECTION:
        size = image_size_value(image_size, fmt=DM)
        boxes = []
        for cid, _, conf, (aid, coord) in picked:
            k = f"annotationsData.{mid}.{aid}.coordinate"
            x, y, w, h = (number(coord.get(f), fmt=DM, key=f"{k}.{f}") for f in ("x", "y", "width", "height"))
            refuse_negative_size(w, h, fmt=DM, key=k)
            boxes.append(Box(cid, x, y, w, h, confidence=conf))
        return gt_detection(size, boxes, {cid: cname for cid, cname, _, _ in picked})
    if name == CLASSIFICATION:
        if len(picked) != 1:
            raise FormatError(f"single-label classification needs exactly one classification annotation, "
                              f"found {len(picked)}", fmt=DM, key=f"annotations.{mid}")
        cid, cname, conf, _ = picked[0]
        return gt_classification(cid, cname, conf)
    return gt_multilabel([(cid, cname, conf) for cid, cname, conf, _ in picked])


def _refuse_orphan_entries(anns: list, at: Mapping[Any, int], mid: str) -> None:
    """An ``annotationsData`` entry no annotation names (by ``id``, of any tool) is data no label
    can carry: it was left out unsaid. Refused naming its id (a document kept as it is, with no
    task type, keeps it)."""
    named = {a.get("id") for a in anns if isinstance(a, Mapping) and isinstance(a.get("id"), Hashable)}
    for eid, i in at.items():
        if eid not in named:
            raise FormatError(f"annotationsData entry id {eid!r} has no annotation with that id in "
                              f"annotations.{mid}; its data would be lost (remove the entry, or add the "
                              "annotation it belongs to)", fmt=DM, key=f"annotationsData.{mid}[{i}].id")


def unchosen_scores(task_type: str, value: Any, metadata: Mapping[str, Any] | None) -> list[str]:
    """The ``confidence-map`` keys of a multi-label that scores classes it does not choose (a
    model's scores below its threshold; real Ground Truth output holds them): task data holds the
    chosen classes only, so such a score has no place in it."""
    scores = metadata.get("confidence-map") if isinstance(metadata, Mapping) else None
    if not task_type.endswith(MULTILABEL) or not isinstance(scores, Mapping) or not isinstance(value, list):
        return []
    chosen = {str(c) for c in value}
    return [key for key in scores if key not in chosen]


def _refuse_unchosen(name: str, labeled: Labeled, fmt: str, allow_drop: bool) -> None:
    """Task data for a multi-label that scores a class it does not choose: refused, naming it,
    unless ``allow_drop`` (``apply`` sent the chosen classes and left that score out unsaid)."""
    extra = [] if allow_drop else unchosen_scores(name, labeled.value, labeled.metadata)
    if extra:
        key = extra[0]
        raise FormatError(f"confidence-map scores class {key} ({_class_said(labeled.metadata, key)}), which the "
                          f"label does not choose (Ground Truth's own multi-label output scores such classes): {fmt} "
                          "holds the chosen classes only, so the score would be lost (--allow-drop leaves it out)",
                          fmt=fmt, key=f"confidence-map.{key}")


def _class_said(metadata: Mapping[str, Any], key: str) -> str:
    """A scored class as a message names it: its ``class-map`` name, or that it has none (Ground
    Truth's ``class-map`` names the chosen classes only, so an unchosen one is usually unnamed)."""
    names = metadata.get("class-map")
    name = names.get(key) if isinstance(names, Mapping) else None
    return repr(name) if name is not None else "no name in class-map"


def gt_to_dm_v1(
    task_type: str, value: Any, metadata: Mapping[str, Any] | None = None, *, confidence_attribute: str | None = None,
    allow_drop: bool = False,
) -> dict:
    """DM schema v1 task data for a Ground Truth label; deterministic for equal input.
    ``allow_drop``: a multi-label's scores of classes it does not choose are left out."""
    name = require_task_type(task_type, SUPPORTED, DM)
    labeled = exported_label(name, value, metadata)
    _refuse_unchosen(name, labeled, DM, allow_drop)
    anns: list[dict] = []
    data: list[dict] = []

    def add(tool: str, cname: str, conf: Any, coordinate: dict | None) -> None:
        classification: dict[str, Any] = {"class": cname}
        if confidence_attribute and conf is not None:
            classification[confidence_attribute] = conf
        aid = _stable_id(len(anns), tool, cname, coordinate)
        anns.append({"id": aid, "tool": tool, "isLocked": False, "isVisible": True, "classification": classification})
        data.append({"id": aid, "coordinate": coordinate} if coordinate is not None else {"id": aid})

    if name == DETECTION:
        for ann, obj in zip(labeled.value["annotations"], labeled.metadata["objects"], strict=True):
            cname = labeled.metadata["class-map"][str(ann["class_id"])]
            coordinate = {"x": ann["left"], "y": ann["top"], "width": ann["width"], "height": ann["height"]}
            add(BBOX_TOOL, cname, obj.get("confidence"), coordinate)
    elif name == CLASSIFICATION:
        add(CLASSIFICATION_TOOL, labeled.metadata["class-name"], labeled.metadata.get("confidence"), None)
    else:
        for cid in labeled.value:
            add(CLASSIFICATION_TOOL, labeled.metadata["class-map"][str(cid)],
                labeled.metadata["confidence-map"].get(str(cid)), None)
    return {
        "extra": {},
        "relations": {},
        "annotationGroups": {},
        "annotations": {MEDIA_ID: anns},
        "annotationsData": {MEDIA_ID: data},
    }


# --- the documented "objects" shape ----------------------------------------------------------------


def objects_to_gt(
    doc: Any, task_type: str, *, image_size: Any = None, class_names: ClassNames | None = None
) -> Labeled:
    """Read ``{"objects": [...]}``; ``class_id`` wins over ``properties.label`` when both are given.

    For classification each object is one chosen class (``type: "classification"``, no
    coordinates); this is an extension of the documented, bbox-only shape.
    """
    name = require_task_type(task_type, SUPPORTED, OBJECTS)
    objects = doc.get("objects") if isinstance(doc, Mapping) else None
    if not isinstance(objects, list):
        raise FormatError("document needs an 'objects' list", fmt=OBJECTS, key="objects")
    if name == DETECTION and class_names is None:
        plain = plain_boxes(objects, image_size)
        if plain is not None:
            return plain
    classes = ClassIndex(class_names, fmt=OBJECTS)
    picked: list[tuple[int, str, float | None, Mapping | None]] = []
    # every line of a file job passes here: plain values take plain tests, and a key path for a
    # message is spelt only when there is something to say
    for i, obj in enumerate(objects):
        if type(obj) is not dict and not isinstance(obj, Mapping):
            raise FormatError("object must be an object", fmt=OBJECTS, key=f"objects[{i}]")
        props = obj.get("properties") or {}
        if type(props) is not dict and not isinstance(props, Mapping):
            raise FormatError("'properties' must be an object", fmt=OBJECTS, key=f"objects[{i}].properties")
        label = props.get("label")
        cid = obj.get("class_id")
        if cid is not None:
            if type(cid) is not int or cid < 0:
                cid = class_id_value(cid, fmt=OBJECTS, key=f"objects[{i}].class_id")
            if label is not None:
                cname = str(label)
                classes.learn(cid, cname, key=f"objects[{i}].properties.label")  # the id now names cname
            else:
                cname = classes.name_for(cid, key=f"objects[{i}].class_id")
        elif label is not None:
            cid = classes.id_for(label, key=f"objects[{i}].properties.label")
            cname = label
        else:
            raise FormatError("object needs class_id or properties.label", fmt=OBJECTS, key=f"objects[{i}]")
        conf = props.get("confidence", obj.get("confidence"))
        if conf is not None and not ((type(conf) is float or type(conf) is int) and 0 <= conf <= 1):
            conf = confidence_value(conf, fmt=OBJECTS, key=f"objects[{i}].properties.confidence")
        coord = obj.get("coordinates")
        kind = obj.get("type", "bbox")
        if name == DETECTION:
            if kind != "bbox":
                continue
            if type(coord) is not dict and not isinstance(coord, Mapping):
                raise FormatError("bbox object needs 'coordinates' {x, y, width, height}", fmt=OBJECTS,
                                  key=f"objects[{i}].coordinates")
        picked.append((cid, cname, conf, coord))
    if name == DETECTION:
        size = image_size_value(image_size, fmt=OBJECTS)
        boxes = []
        for j, (cid, _, conf, coord) in enumerate(picked):
            x, y, w, h = coord.get("x"), coord.get("y"), coord.get("width"), coord.get("height")
            if not (_finite(x) and _finite(y) and _finite(w) and _finite(h)):
                x, y, w, h = (number(coord.get(f), fmt=OBJECTS, key=f"objects[{j}].coordinates.{f}")
                              for f in ("x", "y", "width", "height"))
            refuse_negative_size(w, h, fmt=OBJECTS, key=f"objects[{j}].coordinates")
            boxes.append(Box(cid, x, y, w, h, confidence=conf))
        return gt_detection(size, boxes, {cid: cname for cid, cname, _, _ in picked})
    if name == CLASSIFICATION:
        if len(picked) != 1:
            raise FormatError(f"single-label classification needs exactly one object, found {len(picked)}",
                              fmt=OBJECTS, key="objects")
        cid, cname, conf, _ = picked[0]
        return gt_classification(cid, cname, conf)
    return gt_multilabel([(cid, cname, conf) for cid, cname, conf, _ in picked])


def plain_boxes(objects: list, image_size: Any) -> Labeled | None:
    """``objects_to_gt``'s bounding-box label in one pass, for the document a file job meets on
    nearly every line: every object a plain ``bbox`` dict with an int ``class_id``, a string
    ``properties.label``, a confidence in [0, 1] or none, and finite coordinates. None for
    anything else (then the general loop decides, with its errors and their key paths).

    Every converted line passes here, and the general loop's per-object tuples, ``Box``
    instances, class index and second pass cost a third of the conversion; the label is the
    same (``tests/test_objects_plain_fast.py`` compares the two on generated documents)."""
    annotations: list[dict] = []
    scores: list[dict] = []
    names: dict[int, str] = {}
    class_map: dict[str, str] = {}  # the classes in the order their first box comes
    isfinite = math.isfinite
    for obj in objects:
        if type(obj) is not dict:
            return None
        props = obj.get("properties")
        coord = obj.get("coordinates")
        if type(props) is not dict or type(coord) is not dict or obj.get("type", "bbox") != "bbox":
            return None
        cid, label = obj.get("class_id"), props.get("label")
        if type(cid) is not int or cid < 0 or type(label) is not str:
            return None
        known = names.get(cid)
        if known is None:
            names[cid] = class_map[str(cid)] = label
        elif known != label:
            return None  # the general loop names the clash
        conf = props.get("confidence", obj.get("confidence"))
        if conf is not None and not ((type(conf) is float or type(conf) is int) and 0 <= conf <= 1):
            return None
        x, y, w, h = coord.get("x"), coord.get("y"), coord.get("width"), coord.get("height")
        # _finite(x) and ... written out: four calls a box were a tenth of this function
        if not ((type(x) is float or type(x) is int) and isfinite(x) and (type(y) is float or type(y) is int)
                and isfinite(y) and (type(w) is float or type(w) is int) and isfinite(w)
                and (type(h) is float or type(h) is int) and isfinite(h)) or w < 0 or h < 0:
            return None
        if not (-_BIG < x < _BIG and -_BIG < y < _BIG and w < _BIG and h < _BIG):
            return None  # an integer maybe beyond 64 bits (``model.number``'s to say)
        annotations.append({"class_id": cid, "top": y, "left": x, "height": h, "width": w})
        scores.append({} if conf is None else {"confidence": conf})
    width, height, depth = image_size_value(image_size, fmt=OBJECTS)
    value = {"image_size": [{"width": width, "height": height, "depth": depth}], "annotations": annotations}
    return Labeled(value, {"objects": scores, "class-map": class_map})


#: below it every coordinate is one ``model.number`` takes as it is (a float or a 64-bit integer)
_BIG = 2.0**63


def _finite(value: Any) -> bool:
    """What ``model.number`` accepts as it is, tested the quick way: a finite float, or an
    integer within 64 bits."""
    return (type(value) is float and math.isfinite(value)) or (
        type(value) is int and MIN_JSON_INT <= value <= MAX_JSON_INT)


def gt_to_objects(task_type: str, value: Any, metadata: Mapping[str, Any] | None = None, *,
                  allow_drop: bool = False) -> dict:
    """The documented ``objects`` shape for a Ground Truth label (ids ``obj_001``, ...);
    ``allow_drop`` as ``gt_to_dm_v1``'s."""
    name = require_task_type(task_type, SUPPORTED, OBJECTS)
    labeled = exported_label(name, value, metadata)
    _refuse_unchosen(name, labeled, OBJECTS, allow_drop)
    objects: list[dict] = []

    def add(kind: str, cid: int, cname: str, conf: Any, coordinates: dict | None) -> None:
        obj: dict[str, Any] = {"id": f"obj_{len(objects) + 1:03d}", "class_id": cid, "type": kind}
        if coordinates is not None:
            obj["coordinates"] = coordinates
        # a label without a score stays without one (not 0.0)
        obj["properties"] = {"label": cname} if conf is None else {"confidence": conf, "label": cname}
        objects.append(obj)

    if name == DETECTION:
        for ann, obj in zip(labeled.value["annotations"], labeled.metadata["objects"], strict=True):
            cid = class_id_value(ann["class_id"], fmt=OBJECTS, key="class_id")
            coordinates = {"x": ann["left"], "y": ann["top"], "width": ann["width"], "height": ann["height"]}
            add("bbox", cid, labeled.metadata["class-map"][str(cid)], obj.get("confidence"), coordinates)
    elif name == CLASSIFICATION:
        add("classification", class_id_value(labeled.value, fmt=OBJECTS, key="label"),
            labeled.metadata["class-name"], labeled.metadata.get("confidence"), None)
    else:
        for cid in labeled.value:
            add("classification", cid, labeled.metadata["class-map"][str(cid)],
                labeled.metadata.get("confidence-map", {}).get(str(cid)), None)
    return {"objects": objects}
