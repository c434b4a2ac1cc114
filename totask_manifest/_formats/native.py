"""Documents already in the backend's own format, carried as they are (Ground Truth's custom type).

A DM schema v1 document or a Synapse ``objects`` document holds more than any Ground Truth
task type can: polygons, keypoints, rotation, classification attributes, ``extra``, relations,
groups, annotation ids, several media. Such a document is not converted: the manifest line
holds it inline under the label attribute, and its ``-metadata`` says so::

    "boxes": {<the document, unchanged>},
    "boxes-metadata": {"type": "groundtruth/custom", "format": "dm-schema-v1", "job-name": ..., ...}

``apply`` writes it JSON-equal to the file; ``stats``, ``report`` and ``convert`` read its
shapes through ``shapes``. A conversion that would drop something names it through ``losses``
(see docs/formats.md, "No silent loss").
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from .._outcomes import Failed, Labeled
from .coco_regions import coco_losses

CUSTOM_TYPE = "groundtruth/custom"
DM = "dm-schema-v1"
OBJECTS = "synapse-objects"
#: any JSON document the backend takes with ``?schema=any``
ANY = "any"
#: formats the backend stores as they are
NATIVE_FORMATS = (DM, OBJECTS)
#: the wording of the SDK for a result that holds nothing (SYN-7201: the backend refuses an empty submit)
EMPTY_RESULT = "TASK_INFERENCE_EMPTY_RESULT: empty result, not submitted"
#: the failure rule of both: a result or a file that holds no annotation (``failure_rules``)
EMPTY_RULE = "empty-result"


def empty_document(shown_url: str) -> str:
    """The file method's reason for a label file that holds no annotation (``is_empty``), never
    submitted: the backend answers 400 to an empty submit. Not the SDK's inference code
    (``TASK_INFERENCE_EMPTY_RESULT``): no pre-processor was asked; the file is named (its URL
    already redacted by the caller, as every file-method message names it) so it can be fixed."""
    return f"empty document: {shown_url} holds no annotation; not submitted (Synapse answers 400 to an empty submit)"


def empty_failure(label_file: str | None = None, *, made_by: str | None = None) -> Failed:
    """The one place that decides, by method, why a result holding no annotation is not submitted.
    The file method (``label_file``: the task's label file, its URL already redacted by the caller)
    names that file, so it can be fixed: no pre-processor was asked, so the SDK's inference code
    would send the user looking at the wrong step. ``made_by``: the plugin hook that returned the
    empty result from that file (``--converter``), said too, as the file itself may hold
    annotations. Inference (no file): the SDK's ``TASK_INFERENCE_EMPTY_RESULT``."""
    if label_file is None:
        return Failed(EMPTY_RESULT, rule=EMPTY_RULE)
    if made_by is None:
        return Failed(empty_document(label_file), rule=EMPTY_RULE)
    return Failed(f"empty document: {made_by} returned no annotation for {label_file}; not submitted "
                  f"(Synapse answers 400 to an empty submit)", rule=EMPTY_RULE)


_DM_SECTIONS = ("annotations", "annotationsData", "relations", "annotationGroups")


def native_label(doc: Any, fmt: str, *, dropped: Mapping[str, int] | None = None) -> Labeled:
    """The document as a custom label whose metadata names its format."""
    metadata: dict[str, Any] = {"type": CUSTOM_TYPE, "format": fmt}
    if dropped:
        metadata["dropped"] = dict(dropped)
    return Labeled(doc, metadata)


def native_format(metadata: Any) -> str | None:
    """The format a custom label's metadata names (``dm-schema-v1``, ``synapse-objects``, ``any``), else None."""
    if not isinstance(metadata, Mapping):
        return None
    kind = metadata.get("type")
    fmt = metadata.get("format")
    if isinstance(kind, str) and kind.lower() == CUSTOM_TYPE and isinstance(fmt, str) and fmt:
        return fmt
    return None


def is_empty(doc: Any, fmt: str | None = None) -> bool:
    """A result that holds no annotation: ``{}``, ``None``, ``{"image_1": []}``, DM v1 without
    annotations, ``{"objects": []}``. The backend answers 400 to such a submit."""
    if not doc:
        return True
    if isinstance(doc, Mapping):
        if fmt == DM or "annotations" in doc or "annotationsData" in doc:
            anns = doc.get("annotations")
            if isinstance(anns, Mapping):
                return not any(isinstance(v, list) and v for v in anns.values())
            return not anns
        if fmt == OBJECTS or "objects" in doc:
            return not doc.get("objects")
        return all(not v if isinstance(v, list | dict | str) or v is None else False for v in doc.values())
    return False


def refused_as_empty(doc: Any, fmt: str | None = None, *, submit_empty: bool = False) -> bool:
    """True when ``doc`` must not be submitted: it is empty (``is_empty``), unless ``submit_empty``
    (a ``schema: any`` run: the backend's check that refuses an empty submit is the DM-schema one,
    which ``?schema=any`` skips, and the SDK then submits what the file or plugin holds) and it is a
    JSON object. ``None`` or a non-object is never sent."""
    if not is_empty(doc, fmt):
        return False
    return not (submit_empty and isinstance(doc, Mapping))


# --- shapes: what stats, report and convert read ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class Shape:
    """One annotation of a native document, read the same way whatever the format."""

    media: str
    tool: str
    class_name: str | None
    #: ``(x, y, width, height)`` for boxes; None for other tools
    box: tuple[float, float, float, float] | None = None
    #: ``[(x, y), ...]`` for polygons, polylines and points
    points: tuple[tuple[float, float], ...] = ()
    rotation: float = 0.0
    confidence: float | None = None


#: built once: ``int | float`` in a call makes a union on every call (``_num`` runs per object)
_REAL = (int, float)


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, _REAL) and not isinstance(v, bool) else None


def _points(coord: Any) -> tuple[tuple[float, float], ...]:
    if isinstance(coord, Mapping):
        if isinstance(coord.get("points"), list):
            coord = coord["points"]
        else:
            x, y = _num(coord.get("x")), _num(coord.get("y"))
            return ((x, y),) if x is not None and y is not None else ()
    out = []
    if isinstance(coord, list):
        for p in coord:
            if isinstance(p, Mapping):
                x, y = _num(p.get("x")), _num(p.get("y"))
            elif isinstance(p, list | tuple) and len(p) >= 2:
                x, y = _num(p[0]), _num(p[1])
            else:
                continue
            if x is not None and y is not None:
                out.append((x, y))
    return tuple(out)


def _box(coord: Any) -> tuple[float, float, float, float] | None:
    if not isinstance(coord, Mapping):
        return None
    vals = [_num(coord.get(k)) for k in ("x", "y", "width", "height")]
    return None if any(v is None for v in vals) else tuple(vals)  # type: ignore[return-value]


def shapes(doc: Any, fmt: str) -> Iterator[Shape]:
    """Every annotation of a DM v1 or ``objects`` document; other formats hold none we can read."""
    if not isinstance(doc, Mapping):
        return
    if fmt == DM or (fmt == ANY and isinstance(doc.get("annotations"), Mapping)):
        anns, data = doc.get("annotations"), doc.get("annotationsData")
        if not isinstance(anns, Mapping):
            return
        data = data if isinstance(data, Mapping) else {}
        for media, items in anns.items():
            if not isinstance(items, list):
                continue
            entries = data.get(media) if isinstance(data.get(media), list) else []
            by_id = _entries_by_id(entries)
            for ann in items:
                if not isinstance(ann, Mapping):
                    continue
                cls = ann.get("classification")
                name = cls.get("class") if isinstance(cls, Mapping) else None
                conf = _num(cls.get("confidence")) if isinstance(cls, Mapping) else None
                coord = (_entry(by_id, ann) or {}).get("coordinate")
                tool = str(ann.get("tool") or "?")
                box = _box(coord)
                rotation = _num(coord.get("rotation")) if isinstance(coord, Mapping) else None
                yield Shape(
                    str(media),
                    tool,
                    name if isinstance(name, str) else None,
                    box,
                    () if box else _points(coord),
                    rotation or 0.0,
                    conf,
                )
    elif fmt == OBJECTS or (fmt == ANY and isinstance(doc.get("objects"), list)):
        objects = doc.get("objects")
        if not isinstance(objects, list):
            return
        for obj in objects:
            if not isinstance(obj, Mapping):
                continue
            props = obj.get("properties") if isinstance(obj.get("properties"), Mapping) else {}
            name = props.get("label")
            coord = obj.get("coordinates")
            box = _box(coord)
            yield Shape(
                "image_1",
                str(obj.get("type", "bbox")),
                name if isinstance(name, str) else None,
                box,
                () if box else _points(coord),
                _num(coord.get("rotation")) or 0.0 if isinstance(coord, Mapping) else 0.0,
                _num(props.get("confidence")),
            )


# --- what a conversion to a Ground Truth label would lose ------------------------------------------

BOX_TOOLS = frozenset({"bounding_box", "bbox"})
CLASS_TOOLS = frozenset({"classification"})
#: classification keys a Ground Truth label keeps (the class, and the confidence as its score)
_KEPT_ATTRIBUTES = frozenset({"class", "confidence"})
#: keys of a DM v1 annotation, of its ``annotationsData`` entry and of a box's ``coordinate`` that a
#: conversion reads (or counts under its own kind: ``isLocked``, ``isVisible``, ``rotation``); any
#: other key would vanish, so it is counted as ``annotation key K``, ``annotationsData key K``,
#: ``coordinate key K``
def _entries_by_id(entries: list) -> dict:
    """A DM v1 media's ``annotationsData`` entries by id; an id that is a list or an object keys
    none (the conversion names it: ``no annotationsData entry with id [...]``), never a TypeError."""
    return {e.get("id"): e for e in entries if isinstance(e, Mapping) and isinstance(e.get("id"), Hashable)}


def _entry(by_id: dict, ann: Mapping) -> Any:
    aid = ann.get("id")
    return by_id.get(aid) if isinstance(aid, Hashable) else None


_ANNOTATION_KEYS = frozenset({"id", "tool", "isLocked", "isVisible", "classification"})
_DATA_KEYS = frozenset({"id", "coordinate"})
_BOX_KEYS = frozenset({"x", "y", "width", "height", "rotation"})
#: keys of an ``objects`` object a conversion reads (``id``, as in DM v1, is not counted)
_OBJECT_KEYS = frozenset({"id", "type", "coordinates", "properties", "class_id", "confidence"})


def losses(doc: Any, fmt: str, task_type: str) -> Counter[str]:
    """What converting ``doc`` to a Ground Truth ``task_type`` label would drop, by kind.

    Kinds: a tool name for annotations of a tool the type cannot hold (``polygon``, ``keypoint``),
    ``rotation`` (boxes turned by a non-zero angle), ``attribute`` (classification attributes
    beyond the class and confidence), ``extra``, ``relation``, ``group``, ``media`` (every media
    but the first), ``isLocked``/``isVisible`` (non-default states), ``property`` (``objects``
    properties beyond label and confidence), and ``annotation key K`` / ``annotationsData key K``
    / ``coordinate key K`` / ``object key K`` / ``coordinates key K`` for any other key an
    annotation, its data, a box or an object carries. Annotation ids are not counted: they only
    link an annotation to its data, relations and groups, which are counted themselves.
    """
    lost: Counter[str] = Counter()
    if not isinstance(doc, Mapping):
        return lost
    if fmt == OBJECTS:  # asked on every line of a file job converting objects documents
        kept = "bbox" if task_type == "object-detection" else "classification"
        objects = doc.get("objects") or []
        if objects_keep_all(objects, kept):  # nearly always: nothing lost, no second counter
            return lost
        _count_object_losses(lost, objects, kept)
        return +lost
    kept_tools = BOX_TOOLS if task_type == "object-detection" else CLASS_TOOLS
    if fmt == DM:
        anns = doc.get("annotations") if isinstance(doc.get("annotations"), Mapping) else {}
        media = [m for m in anns if isinstance(anns[m], list)]
        for extra_media in media[1:]:
            lost["media"] += 1
            lost["annotation"] += len(anns[extra_media])
        if isinstance(doc.get("extra"), Mapping) and doc["extra"]:
            lost["extra"] += len(doc["extra"])
        for section, kind in (("relations", "relation"), ("annotationGroups", "group")):
            sec = doc.get(section)
            if isinstance(sec, Mapping):
                lost[kind] += sum(len(v) for v in sec.values() if isinstance(v, list))
        for shape, ann in zip(
            shapes(
                {
                    "annotations": {m: anns[m] for m in media[:1]},
                    "annotationsData": doc.get("annotationsData"),
                },
                DM,
            ),
            (a for m in media[:1] for a in anns[m] if isinstance(a, Mapping)),
            strict=False,
        ):
            if shape.tool not in kept_tools:
                lost[shape.tool] += 1
                continue
            if shape.rotation:
                lost["rotation"] += 1
            cls = ann.get("classification")
            if isinstance(cls, Mapping):
                lost["attribute"] += sum(1 for k in cls if k not in _KEPT_ATTRIBUTES)
            if ann.get("isLocked") is True:
                lost["isLocked"] += 1
            if ann.get("isVisible") is False:
                lost["isVisible"] += 1
        data = doc.get("annotationsData") if isinstance(doc.get("annotationsData"), Mapping) else {}
        entries = data.get(media[0]) if media and isinstance(data.get(media[0]), list) else []
        by_id = _entries_by_id(entries)
        for ann in (a for m in media[:1] for a in anns[m] if isinstance(a, Mapping)):
            if ann.get("tool") not in kept_tools:
                continue
            lost.update(f"annotation key {k}" for k in ann if k not in _ANNOTATION_KEYS)
            entry = _entry(by_id, ann) or {}
            lost.update(f"annotationsData key {k}" for k in entry if k not in _DATA_KEYS)
            coord = entry.get("coordinate")
            if ann.get("tool") in BOX_TOOLS and isinstance(coord, Mapping):
                lost.update(f"coordinate key {k}" for k in coord if k not in _BOX_KEYS)
        for key in doc:
            if key not in ("extra", "assignmentId", *_DM_SECTIONS):
                lost[f"key {key}"] += 1
    elif fmt == "coco":
        images = doc.get("images") if isinstance(doc.get("images"), list) else []
        ids = {im.get("id") for im in images[:1] if isinstance(im, Mapping)} if len(images) == 1 else None
        anns = [
            a
            for a in doc.get("annotations") or []
            if isinstance(a, Mapping) and (ids is None or a.get("image_id", next(iter(ids), None)) in ids)
        ]
        lost.update(coco_losses(anns))
    return +lost


#: ``properties`` keys a conversion reads
_PROPERTY_KEYS = frozenset({"label", "confidence"})


def objects_keep_all(objects: Any, kept: str) -> bool:
    """True when ``_count_object_losses`` would count nothing but zeros: every object is of the
    kept type, with no key, coordinate key, rotation or property a label cannot hold.

    Every line of a file job converting ``objects`` documents asks this, and almost every
    document loses nothing; set inclusions answer it without a counter (``losses`` counts in
    full only when this says no; ``tests/test_native_losses_fast.py`` holds the two together).
    """
    for obj in objects:
        if type(obj) is not dict and not isinstance(obj, Mapping):
            continue
        if str(obj.get("type", "bbox")) != kept or not _OBJECT_KEYS.issuperset(obj):
            return False
        coord = obj.get("coordinates")
        if (type(coord) is dict or isinstance(coord, Mapping)) and (
            _num(coord.get("rotation")) or (kept == "bbox" and not _BOX_KEYS.issuperset(coord))
        ):
            return False
        props = obj.get("properties")
        if (type(props) is dict or isinstance(props, Mapping)) and not _PROPERTY_KEYS.issuperset(props):
            return False
    return True


def _count_object_losses(lost: Counter[str], objects: Any, kept: str) -> None:
    """``losses`` for an ``objects`` document: one pass per object with plain dict steps; the
    kinds enter ``lost`` in the order they are met, zeros included, which fixes the order of
    the label's ``dropped`` keys."""
    for obj in objects:
        if type(obj) is not dict and not isinstance(obj, Mapping):
            continue
        kind = str(obj.get("type", "bbox"))
        if kind != kept:
            lost[kind] += 1
            continue
        for k in obj:
            if k not in _OBJECT_KEYS:
                lost[f"object key {k}"] += 1
        coord = obj.get("coordinates")
        if type(coord) is dict or isinstance(coord, Mapping):
            if _num(coord.get("rotation")):
                lost["rotation"] += 1
            if kind == "bbox":
                for k in coord:
                    if k not in _BOX_KEYS:
                        lost[f"coordinates key {k}"] += 1
        props = obj.get("properties")
        if type(props) is dict or isinstance(props, Mapping):
            lost["property"] += sum(1 for k in props if k not in _PROPERTY_KEYS)


def describe(lost: Mapping[str, int]) -> str:
    """``3 polygon, 1 rotation`` for a reason or a log line."""
    return ", ".join(f"{n} {kind}" for kind, n in sorted(lost.items()))


def first_media_only(doc: Mapping[str, Any]) -> dict:
    """A DM v1 document cut to its first media (what a one-image label can hold), for ``allow_drop``."""
    anns = doc.get("annotations")
    if not isinstance(anns, Mapping) or len(anns) <= 1:
        return dict(doc)
    first = next(iter(anns))
    out = dict(doc)
    for section in _DM_SECTIONS:
        sec = doc.get(section)
        if isinstance(sec, Mapping):
            out[section] = {first: sec[first]} if first in sec else {}
    return out
