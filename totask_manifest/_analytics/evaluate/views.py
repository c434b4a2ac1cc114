"""One side of a line (the predicted or the reference attribute) read as what evaluation compares.

Whatever the task type or format, a side becomes a ``View``: boxes (class, ``x, y, w, h``,
confidence), chosen classes, or a mask reference, plus the line's confidence as
``--review-below`` sees it. A side that cannot be compared is a ``Missing`` with its kind
(``missing``, ``failed``, ``routed``, ``unreadable``) and a reason; such lines are counted
apart, never evaluated and never dropped silently.

Native documents (``groundtruth/custom`` whose metadata names ``format: dm-schema-v1`` or
``synapse-objects``) give their bounding boxes and their classification annotations; other
tools (polygons, keypoints) are counted in ``View.other_shapes``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..._task_types import task_type_of_metadata
from ..labels import metadata_key, routed
from ..masks import COLOR_MAP

METADATA = "-metadata"
DETECTION = "object-detection"
SINGLE = ("image-classification", "text-classification", "video-classification")
MULTI = ("image-classification-multilabel", "text-classification-multilabel")
SEGMENTATION = "semantic-segmentation"
CUSTOM = "custom"
BOX_TOOLS = frozenset({"bounding_box", "bbox"})
CLASS_TOOLS = frozenset({"classification"})
NATIVE_FORMATS = ("dm-schema-v1", "synapse-objects")
#: a view's kind as messages name it ("reference is multi" cut the word short)
KIND_NAMES = {"detection": "object detection", "single": "single-label classification",
              "multi": "multi-label classification", "segmentation": "semantic segmentation",
              "custom": "custom document"}
#: what each evaluated task type's labels are compared as: single- and multi-label sets are
#: compared with each other (``_Run.compare``), boxes only with boxes, masks only with masks
_COMPARED_AS = {DETECTION: "boxes", SEGMENTATION: "mask", **{name: "classes" for name in (*SINGLE, *MULTI)}}


def kind_name(kind: str) -> str:
    """A view's kind in words, for the reason a line was not compared."""
    return KIND_NAMES.get(kind, kind)


def comparable_types(a: str, b: str) -> bool:
    """Whether labels of task types ``a`` and ``b`` can be compared: a job chained with another
    task type (a classifier chained from a detector) adds a label of its own, no review of the
    first, so evaluating one against the other compared nothing. A custom document may hold boxes
    or classes: comparable with any type (each line then says what it holds)."""
    if a == b or CUSTOM in (a, b):
        return True
    return _COMPARED_AS.get(a) is not None and _COMPARED_AS.get(a) == _COMPARED_AS.get(b)


#: one box: ``(class name, x, y, width, height, confidence or None)``; a plain tuple, since a big
#: manifest makes millions of them
BoxView = tuple[str, float, float, float, float, float | None]
_NUMBER = frozenset({int, float})  # type(), not isinstance(): a bool is no coordinate


@dataclass(slots=True)
class View:
    """What one side of a line says."""

    kind: str  # "detection", "single", "multi", "segmentation", "custom"
    boxes: list[BoxView] | None = None
    classes: list[str] | None = None
    mask: tuple[str, Mapping[str, Any]] | None = None  # (URL, internal-color-map)
    #: the line's confidence as --review-below compares it; None when the label holds none
    confidence: float | None = None
    other_shapes: dict[str, int] = field(default_factory=dict)
    #: ``(width, height)`` of the image the boxes are drawn on (``image_size[0]``), when stated
    size: tuple[Any, Any] | None = None


@dataclass(frozen=True, slots=True)
class Missing:
    kind: str  # "missing", "failed", "routed", "unreadable"
    reason: str


class Unreadable(ValueError):
    pass


def _num(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    f = float(v)
    return f if math.isfinite(f) else None


def _class_name(cmap: Any, cid: Any) -> str:
    """Classes are compared by name where the class map names them, else by id (``#3``)."""
    if isinstance(cmap, Mapping):
        name = cmap.get(str(cid))
        if isinstance(name, str) and name:
            return name
    return f"#{cid}"


#: ``type`` strings already looked up (a manifest repeats the same one on every line)
_TYPE_NAMES: dict[str, str] = {}


def read_side(record: Mapping[str, Any], attribute: str) -> View | Missing:
    """The attribute's label on this line, or why there is none to compare."""
    meta = record.get(attribute + METADATA)
    value = record.get(attribute)
    if isinstance(meta, dict) and "failure-reason" in meta:
        return Missing("failed", str(meta.get("failure-reason"))[:200])
    if routed(meta):  # no label even beside a value (an earlier job's): stats counts it routed too
        return Missing("routed", "routed to review")
    if value is None:
        return Missing("missing", f"no value under {attribute!r}")
    if not isinstance(meta, dict):
        return Missing("unreadable", f"{attribute + METADATA!r} is missing or not an object")
    declared = meta.get("type")
    name = _TYPE_NAMES.get(declared) if isinstance(declared, str) else None
    if name is None:
        tt = task_type_of_metadata(meta)
        if tt is None:
            return Missing("unreadable", f"{attribute + METADATA!r} declares no Ground Truth type")
        name = tt.name
        if len(_TYPE_NAMES) < 64:
            _TYPE_NAMES[declared] = name
    try:
        return _view(name, value, meta, attribute)
    except (Unreadable, KeyError, TypeError, ValueError, AttributeError) as exc:
        return Missing("unreadable", f"{name} label: {exc}"[:200])


def _view(name: str, value: Any, meta: Mapping[str, Any], attribute: str) -> View:
    if name == DETECTION:
        return _detection(value, meta)
    if name in SINGLE:
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise Unreadable(f"class {value!r} is not a class id")
        cname = meta.get("class-name")
        if not isinstance(cname, str) or not cname:
            cname = _class_name(meta.get("class-map"), value)
        return View("single", classes=[cname], confidence=_num(meta.get("confidence")))
    if name in MULTI:
        if not isinstance(value, list):
            raise Unreadable("multi-label value is not a list")
        cmap = meta.get("class-map")
        classes = sorted({_class_name(cmap, v) for v in value})
        confs = meta.get("confidence-map") if isinstance(meta.get("confidence-map"), Mapping) else {}
        chosen = [c for c in (_num(confs.get(str(v))) for v in value) if c is not None]
        return View("multi", classes=classes, confidence=min(chosen) if chosen else None)
    if name == SEGMENTATION:
        if not isinstance(value, str) or not value:
            raise Unreadable("mask reference is not a URL")
        cmap = meta.get(COLOR_MAP)
        if not isinstance(cmap, Mapping):  # named as validate names it: the line may hold several masks
            raise Unreadable(f"{metadata_key(attribute, COLOR_MAP)!r} is missing or not an object")
        return View("segmentation", mask=(value, cmap), confidence=_num(meta.get("confidence")))
    if name == CUSTOM:
        fmt = meta.get("format")
        if fmt not in NATIVE_FORMATS:
            raise Unreadable(f"custom label of format {fmt!r}: only {', '.join(NATIVE_FORMATS)} hold boxes or "
                             "classes this command reads")
        return _native(value, str(fmt))
    raise Unreadable(f"task type {name} is not evaluated")


def _detection(value: Any, meta: Mapping[str, Any]) -> View:
    anns = value.get("annotations") if isinstance(value, dict) else None
    if not isinstance(anns, list):
        raise Unreadable("no 'annotations' list")
    cmap = meta.get("class-map")
    if not isinstance(cmap, dict):
        cmap = {}
    objects = meta.get("objects")
    if not isinstance(objects, list):
        objects = []
    n_obj = len(objects)
    boxes: list[BoxView] = []
    lowest = None
    for i, a in enumerate(anns):
        try:
            x, y, w, h = a["left"], a["top"], a["width"], a["height"]
        except (KeyError, TypeError):
            raise Unreadable(f"annotations[{i}] needs left, top, width, height") from None
        if type(x) not in _NUMBER or type(y) not in _NUMBER or type(w) not in _NUMBER or type(h) not in _NUMBER:
            raise Unreadable(f"annotations[{i}] needs numeric left, top, width, height")
        cid = a.get("class_id")
        name = cmap.get(str(cid))
        if not isinstance(name, str) or not name:
            name = f"#{cid}"  # classes are compared by name where the class map names them, else by id
        conf = None
        if i < n_obj:
            obj = objects[i]
            conf = obj.get("confidence") if isinstance(obj, dict) else None
            if type(conf) not in _NUMBER:
                conf = None
            elif lowest is None or conf < lowest:
                lowest = conf
        boxes.append((name, x, y, w, h, conf))
    # --review-below compares the lowest box score (inference.py's Detections.confidence)
    return View("detection", boxes=boxes, confidence=lowest, size=_image_size(value))


def _image_size(value: Mapping[str, Any]) -> tuple[Any, Any] | None:
    sizes = value.get("image_size")
    first = sizes[0] if isinstance(sizes, list) and sizes and isinstance(sizes[0], Mapping) else None
    return (first.get("width"), first.get("height")) if first is not None else None


def _native(doc: Any, fmt: str) -> View:
    boxes: list[BoxView] = []
    classes: set[str] = set()
    other: dict[str, int] = {}
    for tool, cname, box, conf, rotation in _native_shapes(doc, fmt):
        if tool in BOX_TOOLS and box is not None and rotation:
            # a turned box is no axis-aligned box: COCO's IoU would be wrong for it
            other["rotated " + tool] = other.get("rotated " + tool, 0) + 1
        elif tool in BOX_TOOLS and box is not None:
            boxes.append((cname or "?", *box, conf))
        elif tool in CLASS_TOOLS and cname:
            classes.add(cname)
        else:
            other[tool] = other.get(tool, 0) + 1
    confs = [b[5] for b in boxes if b[5] is not None]
    return View("custom", boxes=boxes, classes=sorted(classes), confidence=min(confs) if confs else None,
                other_shapes=other)


def _native_shapes(doc: Any, fmt: str) -> Iterator[tuple[str, str | None, tuple | None, float | None, float]]:
    """(tool, class name, box, confidence, rotation) of every annotation of a DM v1 or ``objects``
    document, read by the one native reader (``formats.native.shapes``); a document without its
    format's container is unreadable rather than empty."""
    from ..._formats.native import shapes

    if not isinstance(doc, Mapping):
        raise Unreadable(f"{fmt} document is not an object")
    if fmt == "dm-schema-v1" and not isinstance(doc.get("annotations"), Mapping):
        raise Unreadable("DM v1 document without an 'annotations' object")
    if fmt != "dm-schema-v1" and not isinstance(doc.get("objects"), list):
        raise Unreadable("objects document without an 'objects' list")
    for shape in shapes(doc, fmt):
        yield shape.tool, shape.class_name, shape.box, shape.confidence, shape.rotation
