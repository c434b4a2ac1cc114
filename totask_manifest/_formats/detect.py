"""Which format a label document is in, and one entry point that converts any of them.

Converters are looked up by name in ``CONVERTERS`` (as fsspec looks up protocols), so adding a
format is a function and a row, never another ``if`` in the callers.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

import orjson

from .._outcomes import Labeled
from .._task_types import get_task_type
from .coco import coco_to_gt
from .groundtruth import from_groundtruth
from .model import DETECTION, ClassNames, FormatError
from .native import DM, NATIVE_FORMATS, OBJECTS, describe, first_media_only, losses, objects_keep_all
from .synapse import dm_v1_to_gt, objects_to_gt, plain_boxes
from .yolo import yolo_to_gt

AUTO = "auto"
_MEDIA_ID = re.compile(r"^[a-z]+_\d+$")
#: a YOLO value as written: ``nan`` and ``inf`` too, so that the YOLO reader refuses them in its own
#: words (``'nan' is not a finite number``), where auto-detection said "not valid JSON"; a JSON
#: document is never one: it parses, starts with ``{`` or ``[``, or holds one value, not four or five
_YOLO_NUMBER = r"[-+]?(?:nan|inf(?:inity)?|[-+0-9.eE]+)"
_YOLO_ROW = re.compile(rf"^\s*\d+(\s+{_YOLO_NUMBER}){{4,5}}\s*$", re.IGNORECASE)

Converter = Callable[..., Labeled]


def _groundtruth(doc: Any, task_type: str, *, image_size: Any, class_names: ClassNames | None,
                 label_attribute: str | None = None) -> Labeled:
    return from_groundtruth(doc, task_type, class_names=class_names, label_attribute=label_attribute)


def _coco(doc: Any, task_type: str, *, image_size: Any, class_names: ClassNames | None,
          drop_crowd: bool = False) -> Labeled:
    return coco_to_gt(doc, task_type, class_names=class_names, drop_crowd=drop_crowd)


#: format name -> converter(doc, task_type, *, image_size, class_names) -> Labeled
CONVERTERS: dict[str, Converter] = {
    "groundtruth": _groundtruth,
    "synapse-objects": objects_to_gt,
    "dm-schema-v1": dm_v1_to_gt,
    "coco": _coco,
    "yolo": yolo_to_gt,
}
#: formats whose documents are text rather than JSON
TEXT_FORMATS = frozenset({"yolo"})
#: formats whose conversion may drop something (``native.losses`` says what)
_LOSSY = frozenset({*NATIVE_FORMATS, "coco"})
#: a document still to be parsed (built once: ``str | bytes`` makes a union on every call)
_UNPARSED = (str, bytes, bytearray)


def input_formats() -> list[str]:
    return sorted(CONVERTERS)


def _parse_json(doc: str | bytes) -> Any:
    try:
        return orjson.loads(doc)
    except orjson.JSONDecodeError as exc:
        raise FormatError(f"not a JSON document: {exc}", fmt="json") from None


def _looks_like_yolo(text: str) -> bool:
    rows = [r for r in text.splitlines() if r.strip() and not r.lstrip().startswith("#")]
    return all(_YOLO_ROW.match(r) for r in rows)


def _objects_document(doc: Mapping) -> bool:
    """A Synapse ``objects`` document: an ``objects`` list, and no ``-metadata`` key (a manifest
    line holding ``objects`` beside its label is Ground Truth's)."""
    return isinstance(doc.get("objects"), list) and not any(k.endswith("-metadata") for k in doc)


def detect_input_format(doc_or_text: Any) -> str:
    """Name the format of a label document (parsed JSON, JSON text or YOLO text).

    An empty text is refused: it may be a YOLO file of an image without boxes, or a file that
    lost its content, and only a declared format tells which. Anything unrecognised raises
    ``FormatError`` listing the formats tried.
    """
    doc = doc_or_text
    if type(doc) is dict and _objects_document(doc):
        return "synapse-objects"  # what a file job converting objects meets on every line: no ABC checks
    if isinstance(doc, bytes | bytearray):
        try:
            doc = bytes(doc).decode("utf-8")
        except UnicodeDecodeError:
            raise FormatError("document is neither JSON nor YOLO text (not UTF-8)", fmt="detect") from None
    if isinstance(doc, str):
        stripped = doc.strip()
        if not stripped:
            raise FormatError("empty annotation file: declare the format (YOLO) if it means no objects", fmt="detect")
        if stripped.startswith(("{", "[")):
            doc = _parse_json(stripped)
        elif _looks_like_yolo(doc):
            return "yolo"
        else:
            raise FormatError(
                "document is neither JSON nor YOLO text ('class cx cy w h [confidence]' rows)", fmt="detect"
            )
    if isinstance(doc, Mapping):
        if _objects_document(doc):
            return "synapse-objects"
        anns = doc.get("annotations")
        if "annotationsData" in doc or (
            isinstance(anns, Mapping) and anns and all(_MEDIA_ID.match(str(k)) for k in anns)
        ):
            return "dm-schema-v1"
        if isinstance(doc.get("images"), list) and "categories" in doc:
            return "coco"
        if (
            "image_size" in doc
            or ("label" in doc and set(doc) <= {"label", "metadata"})
            or any(k.endswith("-metadata") for k in doc)
        ):
            return "groundtruth"
    elif isinstance(doc, int | list) and not isinstance(doc, bool):
        return "groundtruth"  # a bare classification index or multi-label list
    raise FormatError(
        f"cannot tell the format of this document; known formats: {', '.join(input_formats())}", fmt="detect"
    )


def to_label(
    doc_or_text: Any,
    input_format: str | None,
    task_type: str,
    *,
    image_size: Any = None,
    class_names: ClassNames | None = None,
    allow_drop: bool = False,
    label_attribute: str | None = None,
) -> Labeled:
    """Convert one document to a Ground Truth label; ``input_format`` ``"auto"``/None detects it.

    Every problem with the document raises ``FormatError`` (a ``ManifestError`` and a
    ``ValueError``) with the key and a ``format-<name>`` rule, so the caller fails only that line.
    A DM v1 or ``objects`` document holding what the label cannot (``native.losses``: polygons,
    rotation, attributes, a second media...) is refused naming it, unless ``allow_drop``; then
    the label's metadata records what was dropped (``"dropped": {"polygon": 3}``).
    ``label_attribute``: the attribute to take from a Ground Truth manifest line holding several
    labels of the task type (``--file-label-attribute``); documents of other formats have none.
    """
    fmt = detect_input_format(doc_or_text) if input_format in (None, AUTO) else input_format
    if fmt == OBJECTS and class_names is None and type(doc_or_text) is dict:
        plain = _plain_objects(doc_or_text, task_type, image_size)
        if plain is not None:
            return plain
    try:
        convert = CONVERTERS[fmt]
    except KeyError:
        raise FormatError(
            f"unknown input format {fmt!r}; known formats: {', '.join(input_formats())}", fmt="detect"
        ) from None
    doc = doc_or_text
    if fmt not in TEXT_FORMATS and isinstance(doc, _UNPARSED):
        doc = _parse_json(bytes(doc) if isinstance(doc, bytearray) else doc)
    dropped = None
    if fmt in _LOSSY:
        name = get_task_type(task_type).name
        dropped = losses(doc, fmt, name)
        if dropped and not allow_drop:
            raise FormatError(
                f"converting this {fmt} document to {name} would drop {describe(dropped)}; "
                "keep the document as it is, or allow dropping (--allow-drop)", fmt=fmt)
        if dropped and fmt == DM:
            doc = first_media_only(doc)
    try:
        # a crowd region counted in ``dropped`` is left out, not read as one ordinary box
        extra: dict[str, Any] = {"drop_crowd": True} if dropped and fmt == "coco" else {}
        if label_attribute is not None and fmt == "groundtruth":
            extra["label_attribute"] = label_attribute
        labeled = convert(doc, task_type, image_size=image_size, class_names=class_names, **extra)
        if dropped:
            labeled.metadata["dropped"] = dict(dropped)
        return labeled
    except FormatError:
        raise
    except (KeyError, TypeError, AttributeError, IndexError, ValueError) as exc:
        # a shape no check foresaw: still one clear line, never a traceback
        raise FormatError(f"malformed {fmt} document ({type(exc).__name__}: {exc})", fmt=fmt) from None


def _plain_objects(doc: dict, task_type: str, image_size: Any) -> Labeled | None:
    """``to_label``'s answer for the document a file job converting ``objects`` meets on nearly
    every line (boxes that lose nothing, ``synapse.plain_boxes``), or None: then the general
    steps decide. The same two checks the general steps make (``losses`` finds nothing to drop,
    then ``objects_to_gt`` takes its one pass), without the dispatch, the counter and the
    checks around them (``tests/test_to_label_plain.py`` holds the two together)."""
    if get_task_type(task_type).name != DETECTION:
        return None
    objects = doc.get("objects")
    if type(objects) is not list or not objects_keep_all(objects, "bbox"):
        return None
    try:
        return plain_boxes(objects, image_size)
    except Exception:  # the general steps raise it again, worded as they word it
        return None
