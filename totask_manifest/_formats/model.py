"""The small in-between model every converter goes through: boxes, image sizes, class ids.

Each format reads into ``Box`` lists and writes out of them, so a new format is two functions
and the Ground Truth shape (one-element ``image_size`` list, ``class-map`` with string keys,
one ``objects`` confidence per box) is built in exactly one place.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .._errors import ManifestError, json_kind, json_text
from .._outcomes import Labeled
from .._task_types import get_task_type
from .class_names import class_name_problem

#: (width, height, depth) in pixels
ImageSize = tuple[int, int, int]
#: a list (index = class id) or a mapping class id -> name (e.g. a Ground Truth ``class-map``)
ClassNames = Sequence[str] | Mapping[int | str, str]

#: task types the per-image converters know; ``from_groundtruth`` accepts any type
DETECTION = "object-detection"
CLASSIFICATION = "image-classification"
MULTILABEL = "image-classification-multilabel"

#: the fields every job writes itself; converters never return them
COMMON_METADATA = frozenset(
    {"type", "job-name", "human-annotated", "creation-date", "failure-reason", "adjustment-status"}
)


class FormatError(ManifestError, ValueError):
    """A document that cannot be read as the format it claims; fails that line, never the job.

    ``rule`` is ``format-<name>`` and ``key`` is the path inside the document (``annotations[2].bbox``).
    """

    def __init__(self, message: str, *, fmt: str, key: str | None = None, line: int | None = None) -> None:
        super().__init__(message, line=line, key=key, rule=f"format-{fmt}")
        self.format = fmt


class OtherTaskType(FormatError):
    """A document holding a label of another task type than the job's (boxes where a class id is
    wanted), or of a format that carries none of the job's (a COCO file in a classification job,
    ``require_task_type``): the file is the wrong one, not a damaged one, so the file annotator
    names it."""


@dataclass(frozen=True, slots=True)
class Box:
    """One axis-aligned box in pixels, top-left origin (Ground Truth's ``left``/``top``)."""

    class_id: int
    left: float
    top: float
    width: float
    height: float
    confidence: float | None = None


def task_type_name(task_type: str) -> str:
    """Normalise ``groundtruth/object-detection`` and ``object-detection`` to the bare name."""
    return get_task_type(task_type).name


def require_task_type(task_type: str, supported: Sequence[str], fmt: str) -> str:
    name = task_type_name(task_type)
    if name not in supported:
        raise OtherTaskType(
            f"format {fmt!r} does not carry task type {name!r}; it carries {', '.join(supported)}", fmt=fmt
        )
    return name


#: the integers a label's JSON writer (orjson) holds: a coordinate beyond them was taken, then the
#: label could not be written (``TypeError: Integer exceeds 64-bit range``)
MIN_JSON_INT, MAX_JSON_INT = -(2**63), 2**64 - 1


def number(value: Any, *, fmt: str, key: str) -> float | int:
    """A finite JSON number (bools are refused: ``True`` is not a coordinate), an integer within
    64 bits (``MAX_JSON_INT``)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise FormatError(f"expected a finite number, got {json_text(value)}", fmt=fmt, key=key)
    if isinstance(value, int) and not MIN_JSON_INT <= value <= MAX_JSON_INT:
        raise FormatError(f"expected a number within 64 bits, got {value}", fmt=fmt, key=key)
    return value


def confidence_value(value: Any, *, fmt: str, key: str) -> float | int:
    conf = number(value, fmt=fmt, key=key)
    if not 0 <= conf <= 1:
        raise FormatError(f"confidence must be between 0 and 1, got {json_text(conf)}", fmt=fmt, key=key)
    return conf


#: the largest class id a label may hold: a signed 64-bit integer, the bound ``validate`` and ``stats`` use
#: (and Parquet's ``int64`` column holds); orjson reads a larger integer as a float
MAX_CLASS_ID = 2**63 - 1


def class_id_value(value: Any, *, fmt: str, key: str) -> int:
    """Class ids are non-negative integers within 64 bits; ``"3"`` and ``3.0`` are accepted as 3."""
    given = value
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():  # "²" is a digit, no int
        value = int(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_CLASS_ID:
        bound = " within 64 bits" if isinstance(value, int) and value > MAX_CLASS_ID else ""
        raise FormatError(f"class id must be a non-negative integer{bound}, got {json_text(given)}", fmt=fmt, key=key)
    return value


def map_class_id(key_text: Any, *, fmt: str, key: str) -> int:
    """A ``class-map`` or ``confidence-map`` key as a class id: digits as ``validate``'s schemas
    take them (no leading zero, no sign, no space; an int from Python as it is). ``class_id_value``
    took ``"00"`` and ``" 0"`` as 0 too, so a map holding ``"0"`` and ``"00"`` named one id twice,
    and with class names given the boxes of one took the other's class with nothing said."""
    if isinstance(key_text, str) and not (key_text.isascii() and key_text.isdigit()
                                          and (key_text == "0" or not key_text.startswith("0"))):
        raise FormatError(f"{json_text(key_text)} is no class index (digits, no leading zero, no space or sign)",
                          fmt=fmt, key=key)
    return class_id_value(key_text, fmt=fmt, key=key)


def gt_class_id(value: Any, *, fmt: str, key: str) -> int:
    """A class id as a Ground Truth label holds it: an integer from 0 to ``MAX_CLASS_ID``. Why not
    ``class_id_value``, which takes ``"3"`` and ``3.0`` (class-map keys, names files): the label is
    written on as it is, so each export read such an id its own way (a traceback, ``2.0`` in COCO,
    a null in Parquet) where ``validate`` refuses it (``format-groundtruth`` here)."""
    if type(value) is not int or not 0 <= value <= MAX_CLASS_ID:
        raise FormatError(f"class id must be a non-negative integer within 64 bits, got {json_text(value)}",
                          fmt=fmt, key=key)
    return value


def image_size_value(image_size: Any, *, fmt: str, required: bool = True) -> ImageSize | None:
    """Accept ``(w, h[, depth])``, ``{"width","height"[,"depth"]}`` or Ground Truth's one-element list."""
    if type(image_size) is list and len(image_size) == 1 and type(image_size[0]) is dict:
        # Ground Truth's own form, which a file job meets on every line: plain positive ints pass as they are
        entry = image_size[0]
        width, height, depth = entry.get("width"), entry.get("height"), entry.get("depth", 3)
        if type(width) is int and type(height) is int and type(depth) is int and width > 0 and height > 0 \
                and depth > 0:
            return (width, height, depth)
    if image_size is None:
        if required:
            raise FormatError(
                f"format {fmt!r} carries no image size; pass image_size=(width, height, depth)",
                fmt=fmt,
                key="image_size",
            )
        return None
    if isinstance(image_size, list) and len(image_size) == 1 and isinstance(image_size[0], Mapping):
        image_size = image_size[0]
    if isinstance(image_size, Mapping):
        parts = [image_size.get("width"), image_size.get("height"), image_size.get("depth", 3)]
    elif isinstance(image_size, Sequence) and not isinstance(image_size, str) and len(image_size) in (2, 3):
        parts = [*image_size, 3][:3]
    else:
        raise FormatError(f"image size must be (width, height, depth), got {json_text(image_size)}", fmt=fmt, key="image_size")
    out = []
    for name, value in zip(("width", "height", "depth"), parts, strict=True):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise FormatError(
                f"image {name} must be a positive integer, got {json_text(value)}", fmt=fmt, key=f"image_size.{name}"
            )
        out.append(value)
    return (out[0], out[1], out[2])


#: how to give the names of numbered classes, where the caller takes them (a job, an import)
GIVE_CLASS_NAMES = "give the class names (--class-names FILE; from Python, class_names: a list or an id -> name mapping)"


def _ids_given(by_id: Mapping[int, str]) -> str:
    """The ids a list of class names holds, as a refusal of another says them."""
    ids = sorted(by_id)
    if ids == list(range(len(ids))):
        return {0: "no names", 1: "1 name, id 0"}.get(len(ids), f"{len(ids)} names, ids 0-{len(ids) - 1}")
    return f"ids {', '.join(map(str, ids[:8]))}{', ...' if len(ids) > 8 else ''}"


class ClassIndex:
    """Class ids for documents that name classes, and names for documents that number them.

    With ``class_names`` the ids are fixed by that list (index) or mapping; a name outside it is
    an error, because silently numbering it would collide with the job's other images. Without
    it, ids are handed out in first-seen order within the document. ``hint`` says, after "no name
    for class id N; ", where the names go for the command at hand (one that takes no class names
    must not send its user looking for ``--class-names``).
    """

    def __init__(self, class_names: ClassNames | None, *, fmt: str, hint: str = GIVE_CLASS_NAMES) -> None:
        self.fmt = fmt
        self.hint = hint
        self.fixed = class_names is not None
        self._by_id: dict[int, str] = {}
        if isinstance(class_names, Mapping):
            for key, name in class_names.items():
                self._by_id[class_id_value(key, fmt=fmt, key="class_names")] = str(name)
        elif class_names is not None:
            if isinstance(class_names, str):
                raise FormatError("class_names must be a list of names, not one string", fmt=fmt, key="class_names")
            self._by_id = {i: str(name) for i, name in enumerate(class_names)}
        self._by_name: dict[str, int] = {}
        for cid, name in self._by_id.items():
            self._by_name.setdefault(name, cid)

    def id_for(self, name: Any, *, key: str) -> int:
        if not isinstance(name, str) or not name:
            raise FormatError(f"class name must be a non-empty string, got {json_text(name)}", fmt=self.fmt, key=key)
        cid = self._by_name.get(name)
        if cid is not None:
            return cid
        if self.fixed:
            raise FormatError(
                f"class {name!r} is not among the class names given ({', '.join(self._by_name)})",
                fmt=self.fmt,
                key=key,
            )
        cid = max(self._by_id, default=-1) + 1
        self._by_id[cid] = name
        self._by_name[name] = cid
        return cid

    def name_for(self, class_id: int, *, key: str, fallback: str | None = None) -> str:
        name = self._by_id.get(class_id)
        if name is None:
            if fallback:
                return fallback
            if self.fixed:  # the names were given: "give the class names" sent the user after what they gave
                raise FormatError(f"class id {class_id} is outside the class names given ({_ids_given(self._by_id)}): "
                                  "a class the list does not hold", fmt=self.fmt, key=key)
            raise FormatError(f"no name for class id {class_id}; {self.hint}", fmt=self.fmt, key=key)
        return name

    def known_name(self, class_id: int) -> str | None:
        """The name ``class_id`` has so far, or None: a question, where ``name_for`` is a demand."""
        return self._by_id.get(class_id)

    def known_id(self, name: str) -> int | None:
        """The id ``name`` has so far, or None: a question, where ``id_for`` is a demand."""
        return self._by_name.get(name)

    def learn(self, class_id: int, name: str, *, key: str) -> None:
        """Record a pair the document states (objects carry both); a clash with class_names is an
        error, both ways: an id named otherwise, and a name the class names number otherwise (the
        box kept the document's id, one class then had two ids in one manifest, unsaid)."""
        known = self._by_id.get(class_id)
        if known is not None and known != name:
            raise FormatError(
                f"class id {class_id} is named {name!r} here but {known!r} elsewhere", fmt=self.fmt, key=key
            )
        other = self._by_name.get(name)
        if known is None and self.fixed and other is not None:  # the box kept its id, the names' one went unsaid
            raise FormatError(
                f"class {name!r} has id {class_id} here but {other} among the class names given (a line's "
                "class_map, or --class-names); one class has one id",
                fmt=self.fmt,
                key=key,
            )
        self._by_id[class_id] = name
        self._by_name.setdefault(name, class_id)


def tidy(value: float | int, digits: int = 6) -> float | int:
    """Round away float noise from normalised coordinates (0.30000000000000004 -> 0.3; 12.0 -> 12)."""
    rounded = round(float(value), digits)
    return int(rounded) if rounded.is_integer() else rounded


# --- Ground Truth shapes -------------------------------------------------------------------------


def gt_detection(image_size: ImageSize, boxes: Sequence[Box], class_names: Mapping[int, str]) -> Labeled:
    """The bounding-box label and its type-specific metadata.

    Keys are in Ground Truth's (2022 and later) order: ``class_id, top, left, height, width`` in
    a box, which scripts that read box fields by position rely on.
    ``class-map`` lists the classes present on the image (as current Ground Truth jobs write it;
    an image without boxes gets ``{}``); a box without a confidence gets an ``objects`` entry
    without one (``{}``): a missing score is not a score of 0.0 (``stats`` counts it as unscored,
    ``--review-below`` never routes it).
    """
    width, height, depth = image_size
    class_map: dict[str, str] = {}
    for box in boxes:
        class_map.setdefault(str(box.class_id), class_names[box.class_id])
    value = {
        "image_size": [{"width": width, "height": height, "depth": depth}],
        "annotations": [
            {"class_id": b.class_id, "top": b.top, "left": b.left, "height": b.height, "width": b.width}
            for b in boxes
        ],
    }
    metadata = {
        "objects": [{} if b.confidence is None else {"confidence": b.confidence} for b in boxes],
        "class-map": class_map,
    }
    return Labeled(value, metadata)


def gt_classification(class_id: int, class_name: str, confidence: float | None) -> Labeled:
    return Labeled(class_id, {"class-name": class_name} if confidence is None
                   else {"class-name": class_name, "confidence": confidence})


def gt_multilabel(labels: Sequence[tuple[int, str, float | None]]) -> Labeled:
    ids: list[int] = []
    class_map: dict[str, str] = {}
    confidence_map: dict[str, float] = {}
    for cid, name, conf in labels:
        if cid in ids:
            continue
        ids.append(cid)
        class_map[str(cid)] = name
        if conf is not None:  # a class without a score has no entry (not 0.0)
            confidence_map[str(cid)] = conf
    return Labeled(ids, {"class-map": class_map, "confidence-map": confidence_map})


def refuse_negative_size(width: float, height: float, *, fmt: str, key: str) -> None:
    """A Ground Truth box's size is at least 0 (``validate`` refuses a line with less,
    ``schema-minimum``): refused naming the coordinate, rather than written out as it is."""
    for field, value in (("width", width), ("height", height)):
        if value < 0:
            raise FormatError(f"{field} {value} is negative", fmt=fmt, key=f"{key}.{field}")


def read_gt_detection(value: Any, metadata: Mapping[str, Any] | None, *, fmt: str = "groundtruth",
                      strict_ids: bool = True):
    """Check a Ground Truth bounding-box label and return ``(image_size, boxes, class_map)``.

    ``class_map`` maps int id -> name; it may miss ids when the metadata lacks them (the caller
    decides whether that is an error). ``strict_ids``: a box's class id must be an integer as
    written (``gt_class_id``: a manifest's label, exported as it is, whose box sizes are held to 0
    or more too, as ``validate`` holds them); else ``"1"`` and ``1.0`` are read as 1 (a label file a
    job reads, whose caller writes the ids as ints, and whose labels the job's schema check fails).
    """
    read_id = gt_class_id if strict_ids else class_id_value
    metadata = metadata or {}
    if not isinstance(value, Mapping):
        raise FormatError(f"bounding-box label must be an object, got {json_kind(value)}", fmt=fmt, key="label")
    if "image_size" not in value:
        raise FormatError("bounding-box label has no 'image_size'", fmt=fmt, key="image_size")
    size = image_size_value(value["image_size"], fmt=fmt)
    anns = value.get("annotations")
    if not isinstance(anns, list):
        raise FormatError("bounding-box label needs an 'annotations' list", fmt=fmt, key="annotations")
    objects = metadata.get("objects")
    if objects is not None and (not isinstance(objects, list) or len(objects) != len(anns)):
        raise FormatError(
            f"metadata 'objects' must hold one entry per annotation ({len(anns)})", fmt=fmt, key="objects"
        )
    boxes: list[Box] = []
    for i, ann in enumerate(anns):
        key = f"annotations[{i}]"
        if not isinstance(ann, Mapping):
            raise FormatError("annotation must be an object", fmt=fmt, key=key)
        missing = [k for k in ("class_id", "left", "top", "width", "height") if k not in ann]
        if missing:
            raise FormatError(f"annotation lacks {', '.join(missing)}", fmt=fmt, key=key)
        conf = None
        if objects is not None:
            obj = objects[i]
            if isinstance(obj, Mapping) and "confidence" in obj:
                conf = confidence_value(obj["confidence"], fmt=fmt, key=f"objects[{i}].confidence")
        left, top, width, height = (number(ann[k], fmt=fmt, key=f"{key}.{k}") for k in ("left", "top", "width", "height"))
        if strict_ids:  # an export: it wrote a negative size as it was (COCO area -190), and no import read it
            refuse_negative_size(width, height, fmt=fmt, key=key)  # back (a job's recorder fails such a label itself)
        boxes.append(Box(read_id(ann["class_id"], fmt=fmt, key=f"{key}.class_id"), left, top, width, height,
                         confidence=conf))
    class_map: dict[int, str] = {}
    raw_map = metadata.get("class-map", {})
    if not isinstance(raw_map, Mapping):
        raise FormatError("'class-map' must be an object", fmt=fmt, key="class-map")
    for k, name in raw_map.items():
        # a null read as the class "None" (a number as its digits) was written on as a name no one
        # gave; an empty name, or one of spaces, is the readers' own to refuse (``groundtruth._not_empty``)
        if not isinstance(name, str):
            raise FormatError(f"class id {k} has no name in class-map: its name {class_name_problem(name)}; a class "
                              "needs a name", fmt=fmt, key=f"class-map.{k}")
        class_map[map_class_id(k, fmt=fmt, key="class-map")] = name
    return size, boxes, class_map
