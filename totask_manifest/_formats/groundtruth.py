"""Ground Truth label values themselves, as files or as lines of another manifest.

A file annotator often points at labels an earlier job (or a colleague) already wrote in Ground
Truth form. Three shapes are accepted so users do not have to reshape them: the bare label
value, ``{"label": value, "metadata": {...}}``, and a whole manifest line holding
``<attr>`` and ``<attr>-metadata``. Confidences are kept; the job-level fields are dropped
because the new job writes its own. A label whose metadata holds a ``failure-reason`` is no
label (Ground Truth's failed line), so it is refused rather than copied as a success.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from .._outcomes import Labeled
from .._task_types import task_type_of_metadata
from .class_names import CLASS_NAME_RULE, IdsByName, class_name_problem
from .model import (
    CLASSIFICATION,
    COMMON_METADATA,
    DETECTION,
    GIVE_CLASS_NAMES,
    MULTILABEL,
    ClassIndex,
    ClassNames,
    FormatError,
    OtherTaskType,
    class_id_value,
    confidence_value,
    gt_class_id,
    gt_detection,
    map_class_id,
    read_gt_detection,
    task_type_name,
)

FMT = "groundtruth"
METADATA_SUFFIX = "-metadata"
#: the metadata fields a new job writes itself; an adjustment job's verdict (``adjustment-status``)
#: describes the label, so it travels with it
JOB_FIELDS = COMMON_METADATA - {"adjustment-status"}


def _failed(meta: Any) -> bool:
    """Whether ``meta`` records a failure: Ground Truth's failed line holds no label, even beside a
    value (``validate``'s ``failure-with-label``), so a failed label is never taken as one."""
    return isinstance(meta, Mapping) and "failure-reason" in meta


def _no_label(wanted: str, failed: str, key: str) -> FormatError:
    """The refusal of a document whose only label of the task type failed (``failed``: its attribute)."""
    return FormatError(f"document holds no {wanted} label ({failed!r} holds a failure-reason)", fmt=FMT, key=key)


def _split(doc: Any, task_type: str, label_attribute: str | None) -> tuple[Any, dict]:
    """Find ``(value, metadata)`` in whichever of the three shapes ``doc`` has. A label whose
    metadata holds a ``failure-reason`` is no label: refused, and not one of "several"."""
    if isinstance(doc, Mapping):
        wanted = task_type_name(task_type)
        if "label" in doc and set(doc) <= {"label", "metadata"}:
            meta = doc.get("metadata") or {}
            if not isinstance(meta, Mapping):
                raise FormatError("'metadata' must be an object", fmt=FMT, key="metadata")
            if _failed(meta):
                raise _no_label(wanted, "label", "metadata")
            return doc["label"], dict(meta)
        if label_attribute is not None:
            meta_key = label_attribute + METADATA_SUFFIX
            if _failed(doc.get(meta_key)):
                raise _no_label(wanted, label_attribute, meta_key)
            if label_attribute not in doc:
                raise FormatError(f"document has no label attribute {label_attribute!r}", fmt=FMT, key=label_attribute)
            meta = doc.get(meta_key) or {}
            if not isinstance(meta, Mapping):
                raise FormatError("metadata must be an object", fmt=FMT, key=meta_key)
            return doc[label_attribute], dict(meta)
        attrs = [k[: -len(METADATA_SUFFIX)] for k in doc if k.endswith(METADATA_SUFFIX)]
        if attrs:
            labeled = [a for a in attrs if a in doc and not _failed(doc[a + METADATA_SUFFIX])]
            matching = [
                a for a in labeled if (tt := task_type_of_metadata(doc[a + METADATA_SUFFIX])) is None or tt.name == wanted
            ]
            if len(matching) == 1:
                attr = matching[0]
                return doc[attr], dict(doc[attr + METADATA_SUFFIX])
            if not matching:
                failed = [a for a in attrs if _failed(doc[a + METADATA_SUFFIX])]
                if failed:
                    raise _no_label(wanted, failed[0], attrs[0])
                raise FormatError(f"document holds no {wanted} label", fmt=FMT, key=attrs[0])
            raise FormatError(
                f"document holds several {wanted} labels ({', '.join(matching)}); "
                "name the one to take with --file-label-attribute NAME",
                fmt=FMT,
            )
    return doc, {}


def from_groundtruth(
    doc: Any,
    task_type: str,
    *,
    class_names: ClassNames | None = None,
    label_attribute: str | None = None,
    names_in_label: bool = False,
) -> Labeled:
    """Read a Ground Truth label (any of the three shapes) of ``task_type``.

    Metadata that declares another task type is refused. Bounding boxes and classifications are
    checked and completed (``class-map`` from ``class_names`` when missing; a missing confidence
    stays missing: it is not a score of 0.0); other task types pass through with only the job-level fields removed.
    ``names_in_label``: the caller takes no class names (an export), so a class the label leaves
    unnamed is said as the label's problem (``exported_label``), and a box's or multi-label's class
    id must be an integer as written (``validate``'s rule: the export writes the label as it is).
    Otherwise (a label file a job reads) ``"1"`` and ``1.0`` are read as 1, and written as 1.
    """
    name = task_type_name(task_type)
    value, meta = _split(doc, task_type, label_attribute)
    declared = task_type_of_metadata(meta)
    if declared is not None and declared.name != name:
        raise OtherTaskType(f"label is of type {declared.name!r}, not {name!r}", fmt=FMT, key="type")
    if "type" in meta and declared is None and isinstance(meta["type"], str):
        raise FormatError(f"unknown Ground Truth type {meta['type']!r}", fmt=FMT, key="type")
    extra = {k: v for k, v in meta.items() if k not in JOB_FIELDS}
    field = "class-name" if name == CLASSIFICATION else "class-map"
    hint = (f"the label's metadata has no {field!r} naming it (an export reads class names from the label "
            "alone: add them there)") if names_in_label else GIVE_CLASS_NAMES
    labeled = _read(value, meta, extra, name, ClassIndex(class_names, fmt=FMT, hint=hint), strict_ids=names_in_label)
    labeled.metadata_order = tuple(meta)
    return labeled


def exported_label(task_type: str, value: Any, metadata: Mapping[str, Any] | None) -> Labeled:
    """A manifest's label read to be exported (COCO, YOLO, Synapse task data for ``convert`` and
    ``apply``): no export takes class names, so the label must name its classes itself."""
    return from_groundtruth({"label": value, "metadata": dict(metadata or {})}, task_type, names_in_label=True)


def _not_empty(class_id: int, name: Any, field: str) -> None:
    """An empty class name (``class-map`` or ``class-name``) is refused: it would reach Synapse as
    an annotation of no class. One of only spaces too, or one that is no string
    (``class_names.class_name_problem``): ``--to coco`` wrote ``"   "``, ``--to yolo`` refused it."""
    if name is not None and (problem := class_name_problem(name)) is not None:
        said = "has no name" if not isinstance(name, str) else "has an empty name"
        raise FormatError(f"class id {class_id} {said} in {field}: its name {problem}; {CLASS_NAME_RULE}",
                          fmt=FMT, key=field)


def _name_for(class_id: int, class_map: dict[int, str], meta: dict, classes: ClassIndex, *, key: str) -> str:
    """A box's class name where ``class-map`` gives none. An empty name, or a ``class-map`` that
    leaves the id out, is the label's own problem, said as such: "pass class_names" sent a user
    of ``convert --to coco`` (which takes no class names) looking for an option."""
    _not_empty(class_id, class_map.get(class_id), "class-map")
    if isinstance(meta.get("class-map"), Mapping) and not classes.fixed:
        raise FormatError(f"class-map names no class id {class_id}", fmt=FMT, key=key)
    return classes.name_for(class_id, key=key)


def _ids_by_name(used: list[tuple[int, str]], class_map: Mapping[int, str], classes: ClassIndex,
                 field: str) -> dict[int, int]:
    """Each class id of ``used`` (the file's id, the key it is read at) -> the id the class names
    given number its class with, as a COCO file's categories are mapped: by the name the file's
    ``field`` gives it. The file's own ids and names won before, so a class outside the list, or
    one the list numbers otherwise, was written unchecked (``square`` as id 1 where the list's 1 is
    ``triangle``). A name outside the list fails the line as in the other formats (``id_for``); a
    name the file gives two ids is refused, as COCO's is (the two would become one class). An id
    the file leaves unnamed is the list's id, as in YOLO and bare labels, while the file's names
    agree with the list's ids; where they number otherwise, which class it is cannot be told."""
    first = IdsByName()
    for at, (cid, name) in enumerate(class_map.items()):
        if isinstance(name, str) and (other := first.other(name, cid, at)) is not None:
            raise FormatError(f"class {name!r} has ids {other[0]} and {cid} in {field}; classes are numbered "
                              "by name (class names given), so the two would become one class: give each id its "
                              "own name", fmt=FMT, key=field)
    agrees = all(classes.known_name(cid) == name for cid, name in class_map.items())
    ids: dict[int, int] = {}
    for cid, key in used:
        if cid in ids:
            continue
        if cid in class_map:
            ids[cid] = classes.id_for(class_map[cid], key=key)
        elif agrees:
            classes.name_for(cid, key=key)
            ids[cid] = cid
        else:
            raise FormatError(f"class id {cid} is left unnamed by {field}, which numbers the classes otherwise "
                              "than the class names given; which class it is cannot be told: name it in "
                              f"{field}", fmt=FMT, key=key)
    return ids


def _kept_map(written: Mapping[Any, Any], classes: ClassIndex) -> dict[str, Any]:
    """The file's ``class-map`` as it is carried (2019 jobs list every class, newer ones only those
    present): as written, or with class names given, its classes in the list, by the list's ids
    (the list is the job's classes; a class no box holds is no label)."""
    if not classes.fixed:
        return {str(k): v for k, v in written.items()}
    return {str(cid): name for name in written.values()
            if isinstance(name, str) and (cid := classes.known_id(name)) is not None}


def _detection(value: Any, meta: dict, extra: dict, classes: ClassIndex, *, strict_ids: bool) -> Labeled:
    """A bounding-box label, checked and completed (see ``from_groundtruth``)."""
    size, boxes, class_map = read_gt_detection(value, meta, fmt=FMT, strict_ids=strict_ids)
    for box in boxes:
        _not_empty(box.class_id, class_map.get(box.class_id), "class-map")
    if classes.fixed:
        ids = _ids_by_name([(b.class_id, f"annotations[{i}].class_id") for i, b in enumerate(boxes)], class_map,
                           classes, "class-map")
        boxes = [b if ids[b.class_id] == b.class_id else replace(b, class_id=ids[b.class_id]) for b in boxes]
        names = {b.class_id: classes.name_for(b.class_id, key="class-map") for b in boxes}
    else:
        names = {b.class_id: class_map.get(b.class_id) or _name_for(b.class_id, class_map, meta, classes,
                                                                      key=f"annotations[{i}].class_id")
                 for i, b in enumerate(boxes)}
    if any(type(a["class_id"]) is not int or a["class_id"] != box.class_id
           for a, box in zip(value["annotations"], boxes, strict=True)):
        # "1" or 1.0 read leniently, or a class renumbered by name: written as the int it is read as
        value = {**value, "annotations": [{**a, "class_id": box.class_id}
                                          for a, box in zip(value["annotations"], boxes, strict=True)]}
    labeled = gt_detection(size, boxes, names)
    if class_map:
        labeled.metadata["class-map"] = {**_kept_map(meta["class-map"], classes), **labeled.metadata["class-map"]}
    if isinstance(meta.get("objects"), list):
        # keep each object as written (its number forms, any key besides the confidence)
        labeled.metadata["objects"] = [
            {**obj, **new} if isinstance(obj, Mapping) else new
            for obj, new in zip(meta["objects"], labeled.metadata["objects"], strict=True)
        ]
    labeled.value = value
    labeled.metadata = {**extra, **labeled.metadata}
    return labeled


def _refuse_boxes(value: Any, name: str) -> None:
    """Refuse a detection label (an object of ``image_size`` and ``annotations``) where a
    classification's class ids are wanted. Its metadata need not declare a type, so only its shape
    tells: it was refused as "class id must be a non-negative integer, got {"image_size": ...}",
    which named neither the mix-up nor the file."""
    if isinstance(value, Mapping) and ("annotations" in value or "image_size" in value):
        raise OtherTaskType(f"the label is a detection (bounding-box) label ('image_size', 'annotations'), not an "
                            f"{name} one (a job of task type {DETECTION} takes it)", fmt=FMT)


def _classification(value: Any, meta: dict, extra: dict, classes: ClassIndex) -> Labeled:
    """A classification label, checked and completed (see ``from_groundtruth``)."""
    _refuse_boxes(value, CLASSIFICATION)
    cid = class_id_value(value, fmt=FMT, key="label")  # the guide shows "3" too (``class-index-value``)
    class_name = meta.get("class-name")
    _not_empty(cid, class_name, "class-name")
    if classes.fixed:
        value = cid = _ids_by_name([(cid, "class-name")], {} if class_name is None else {cid: class_name}, classes,
                                   "class-name")[cid]
        class_name = None
    if class_name is None:
        class_name = classes.name_for(cid, key="class-name")
    conf = meta.get("confidence")
    scored = {} if conf is None else {"confidence": confidence_value(conf, fmt=FMT, key="confidence")}
    return Labeled(value, {**extra, "class-name": class_name, **scored})


def _multilabel(value: Any, meta: dict, extra: dict, classes: ClassIndex, *, strict_ids: bool) -> Labeled:
    """A multi-label classification, checked and completed (see ``from_groundtruth``)."""
    _refuse_boxes(value, MULTILABEL)
    if not isinstance(value, list):
        raise FormatError("multi-label value must be a list of class ids", fmt=FMT, key="label")
    read_id = gt_class_id if strict_ids else class_id_value
    ids = [read_id(v, fmt=FMT, key=f"label[{i}]") for i, v in enumerate(value)]
    value = ids if ids != value or any(type(v) is not int for v in value) else value  # as ints, as read
    class_map = dict(meta.get("class-map") or {})
    conf_map = dict(meta.get("confidence-map") or {})  # a class without a score stays without one
    for cid in ids:
        _not_empty(cid, class_map.get(str(cid)), "class-map")
    if classes.fixed:
        return _multilabel_by_name(ids, class_map, conf_map, extra, classes)
    for cid in ids:
        if str(cid) not in class_map:
            class_map[str(cid)] = classes.name_for(cid, key="class-map")
    return Labeled(value, {**extra, "class-map": class_map, "confidence-map": conf_map})


def _multilabel_by_name(ids: list[int], class_map: dict, conf_map: dict, extra: dict,
                        classes: ClassIndex) -> Labeled:
    """``_multilabel`` with class names given: each class renumbered by its name (``_ids_by_name``),
    its score with it. A score of a class the label does not hold has no name to go by: refused."""
    named = {map_class_id(k, fmt=FMT, key="class-map"): v for k, v in class_map.items()}
    new = _ids_by_name([(cid, f"label[{i}]") for i, cid in enumerate(ids)], named, classes, "class-map")
    scores = {}
    for key, conf in conf_map.items():
        cid = map_class_id(key, fmt=FMT, key="confidence-map")
        if cid not in new:
            raise FormatError(f"confidence-map scores class id {cid}, which the label does not hold; classes are "
                              "numbered by name (class names given), and it has none to go by",
                              fmt=FMT, key="confidence-map")
        scores[str(new[cid])] = conf
    present = {str(new[cid]): classes.name_for(new[cid], key="class-map") for cid in ids}
    return Labeled([new[cid] for cid in ids], {**extra, "class-map": {**_kept_map(class_map, classes), **present},
                                               "confidence-map": scores})


def _read(value: Any, meta: dict, extra: dict, name: str, classes: ClassIndex, *, strict_ids: bool) -> Labeled:
    """The label of task type ``name``, checked and completed (see ``from_groundtruth``)."""
    if name == DETECTION:
        return _detection(value, meta, extra, classes, strict_ids=strict_ids)
    if name == CLASSIFICATION:
        return _classification(value, meta, extra, classes)
    if name == MULTILABEL:
        return _multilabel(value, meta, extra, classes, strict_ids=strict_ids)
    if value is None:
        raise FormatError("document holds no label value", fmt=FMT, key="label")
    return Labeled(value, extra)


def to_groundtruth(value: Any, metadata: Mapping[str, Any] | None = None) -> dict:
    """The ``{"label", "metadata"}`` document (what ``from_groundtruth`` reads back unchanged)."""
    return {"label": value, "metadata": {k: v for k, v in (metadata or {}).items() if k not in JOB_FIELDS}}
