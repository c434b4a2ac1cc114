"""Rules across fields that JSON Schema cannot express, each with a stable rule id.

They run only on values the schema already accepted, so they may rely on the types the schema
checked. Two kinds of finding:

* errors: the value contradicts itself (``objects`` and ``annotations`` counts differ, a class
  index the ``class-map`` does not name, an entity ending before it starts, a date that does
  not exist);
* the warning ``box-outside-image``: a box reaching past its image, which exports write as it
  is (some trainers refuse it, others clip it);
* ``departure-*`` warnings: the value works but departs from the documented conventions in
  a way real Ground Truth output also does (``shared/gt-manifests``): a ``job-name`` without the
  ``labeling-job/`` prefix on a built-in 2D type (custom and 3D output writes the bare name),
  ``groundTruth/custom``, a ``+0000`` zone on ``creation-date``...
  ``validate`` reports them and passes, unless ``--strict``.

The ``Finding`` type and the rule-id table are in ``findings``; the ``creation-date`` rule, the
longest, in ``dates``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .._task_types import JOB_NAME_PREFIX, TASK_TYPES
from .dates import creation_date
from .findings import Finding

PairRule = Callable[[Any, dict], list[Finding]]


def common_metadata(metadata: dict, task_type: str | None = None) -> list[Finding]:
    """Conventions every ``-metadata`` object shares (runs on every label: kept lean).

    ``task_type``: the type the metadata is checked as; a custom or 3D type (``bare_job_name``)
    writes the bare job name, so only the built-in 2D types, and metadata of no known type, are
    held to the ``labeling-job/`` prefix."""
    found: list[Finding] = []
    job = metadata.get("job-name")
    if job is None:
        found.append(
            Finding("metadata", ("job-name",), "departure-job-name-missing",
                    "no job-name: these labels were not written by a labeling job (e.g. imported labels)", "warning")
        )
    elif not job.startswith(JOB_NAME_PREFIX) and not _bare_job_name(task_type):
        found.append(
            Finding("metadata", ("job-name",), "departure-job-name-prefix",
                    f"job-name {job!r} lacks the 'labeling-job/' prefix that built-in 2D task output carries "
                    "(only custom workflows and 3D point cloud jobs write the bare name)", "warning")
        )
    kind = metadata.get("type")
    if kind is not None and not kind.islower():
        found.append(
            Finding("metadata", ("type",), "departure-type-spelling",
                    f"type {kind!r} is not lower case (the guide's custom example spells groundTruth/custom; "
                    "real output writes groundtruth/...)", "warning")
        )
    date = metadata.get("creation-date")
    if date is not None:
        found.extend(creation_date(date))
    return found


def _bare_job_name(task_type: str | None) -> bool:
    tt = TASK_TYPES.get(task_type) if task_type is not None else None
    return tt is not None and tt.bare_job_name


def object_detection(label: Any, metadata: dict) -> list[Finding]:
    found: list[Finding] = []
    annotations = label["annotations"]
    objects = metadata["objects"]
    if len(objects) != len(annotations):
        found.append(
            Finding("metadata", ("objects",), "objects-count",
                    f"metadata objects has {len(objects)} entries but the label has {len(annotations)} annotations")
        )
    classes = metadata["class-map"]
    for i, box in enumerate(annotations):
        if type(box["class_id"]) is float:  # JSON Schema's "integer" takes 1.0 and 1e19, no reader of labels does
            found.append(
                Finding("label", ("annotations", i, "class_id"), "schema-type",
                        f"class_id {box['class_id']!r} is written as a fraction or with an exponent; a class id is an "
                        f"integer written as one (1, not 1.0)"))
        elif str(box["class_id"]) not in classes:
            found.append(
                Finding("label", ("annotations", i, "class_id"), "class-map-missing-class",
                        f"class_id {box['class_id']} is not a key of the class-map")
            )
    size = label["image_size"][0]
    for i, box in enumerate(annotations):
        if box_outside(box["left"], box["top"], box["width"], box["height"], size["width"], size["height"]):
            found.append(Finding("label", ("annotations", i), "box-outside-image",
                                 f"the box (left {box['left']}, top {box['top']}, width {box['width']}, height "
                                 f"{box['height']}) reaches past its {size['width']} x {size['height']} image: "
                                 "exports write it as it is, and some trainers refuse it", "warning"))
    return found


def box_outside(left: float, top: float, width: float, height: float, image_width: float, image_height: float) -> bool:
    """Whether a box reaches past its image (``box-outside-image``). The two hot paths write this
    expression out (``_clean_object_detection``, ``TYPED_BODIES``: no call a box);
    ``tests/test_box_outside_image.py`` holds the three together."""
    return left < 0 or top < 0 or left + width > image_width or top + height > image_height


def multilabel(label: Any, metadata: dict) -> list[Finding]:
    classes = metadata["class-map"]
    return [
        Finding("label", (i,), "schema-type", f"class index {index!r} is written as a fraction or with an exponent; "
                "a class index is an integer written as one (1, not 1.0)") if type(index) is float else
        Finding("label", (i,), "class-map-missing-class", f"class index {index} is not a key of the class-map")
        for i, index in enumerate(label)
        if type(index) is float or str(index) not in classes
    ]


def text_span(label: Any, metadata: dict) -> list[Finding]:
    found: list[Finding] = []
    annotations = label["annotations"]
    entities = annotations["entities"]
    confidences = metadata["entities"]
    if len(confidences) != len(entities):
        found.append(
            Finding("metadata", ("entities",), "entities-count",
                    f"metadata entities has {len(confidences)} entries but the label has {len(entities)} entities")
        )
    labels = annotations.get("labels")
    names = {item["label"] for item in labels} if labels else None
    for i, entity in enumerate(entities):
        if entity["startOffset"] > entity["endOffset"]:
            found.append(
                Finding("label", ("annotations", "entities", i), "entity-offsets",
                        f"startOffset {entity['startOffset']} is after endOffset {entity['endOffset']}")
            )
        if names is not None and entity["label"] not in names:
            found.append(
                Finding("label", ("annotations", "entities", i, "label"), "entity-label-unknown",
                        f"entity label {entity['label']!r} is not among the labels listed")
            )
    return found


def point_cloud_object_detection(label: Any, metadata: dict) -> list[Finding]:
    found: list[Finding] = []
    key = "class-map"
    if "class-map" not in metadata and "class_map" in metadata:
        key = "class_map"
        found.append(
            Finding("metadata", ("class_map",), "departure-class-map-spelling",
                    "the class map is spelled 'class_map' as in the guide's example; real output writes 'class-map'",
                    "warning")
        )
    classes = metadata.get(key)
    if classes is not None:
        for i, cuboid in enumerate(label["annotations"]):
            if str(cuboid["class-id"]) not in classes:
                found.append(
                    Finding("label", ("annotations", i, "class-id"), "class-map-missing-class",
                            f"class-id {cuboid['class-id']} is not a key of the {key}")
                )
    return found


#: task type name -> the rules its pair must also satisfy (after ``common_metadata``)
PAIR_RULES: dict[str, tuple[PairRule, ...]] = {
    "object-detection": (object_detection,),
    "image-classification-multilabel": (multilabel,),
    "text-classification-multilabel": (multilabel,),
    "text-span": (text_span,),
    "point_cloud_object_detection": (point_cloud_object_detection,),
}


def check_pair(task_type: str, label: Any, metadata: dict) -> list[Finding]:
    """Every cross-field finding for a pair the task type's schema accepted."""
    found = common_metadata(metadata, task_type)
    for rule in PAIR_RULES.get(task_type, ()):
        found.extend(rule(label, metadata))
    return found


# --------------------------------------------------------------------------------------------
# The fast path. Validation runs on every label, so a label is first checked by one compiled
# schema (its task type's schema plus CONVENTIONS below, inside jsonschema_rs) and the
# type-specific predicates below; only when either says no do the schema errors and the
# findings above get computed. Tests keep the two paths in step: the fast path accepts a pair
# exactly when ``check_label`` finds nothing.

_YEAR = "(?:[1-9][0-9]{3}|0[1-9][0-9]{2}|00[1-9][0-9]|000[1-9])"
# a day every month has, or 29/30 of a month other than February, or the 31st of a long month;
# 29 February goes to the slow path, which knows leap years
_MONTH_DAY = "(?:(?:0[1-9]|1[0-2])-(?:0[1-9]|1[0-9]|2[0-8])|(?:0[13-9]|1[0-2])-(?:29|30)|(?:0[13578]|1[02])-31)"
_TIME = "(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\\.[0-9]{1,6})?"

#: what ``common_metadata`` checks, as JSON Schema over the metadata object: a metadata object
#: that also passes this has no common finding
CONVENTIONS: dict = {
    "required": ["job-name"],
    "properties": {
        "job-name": {"type": "string", "pattern": "^" + JOB_NAME_PREFIX},
        "type": {"type": "string", "pattern": "^[^A-Z]*$"},
        "creation-date": {"type": "string", "pattern": f"^{_YEAR}-{_MONTH_DAY}T{_TIME}$"},
    },
}
#: properties whose convention implies their schema definition (a ``labeling-job/`` name is a
#: non-empty string; a zone-less, in-range date matches the date pattern), so it replaces it
CONVENTIONS_REPLACE = frozenset({"job-name", "creation-date"})


def conventions(task_type: str) -> dict:
    """``CONVENTIONS`` as they apply to a task type: a custom or 3D type (``bare_job_name``)
    takes any job name its schema does (``common_metadata`` finds nothing in a bare one)."""
    if not _bare_job_name(task_type):
        return CONVENTIONS
    return {**CONVENTIONS, "properties": {k: v for k, v in CONVENTIONS["properties"].items() if k != "job-name"}}


def _clean_object_detection(label: Any, metadata: dict) -> bool:
    annotations = label["annotations"]
    if len(metadata["objects"]) != len(annotations):
        return False
    classes = metadata["class-map"]
    size = label["image_size"][0]
    image_width, image_height = size["width"], size["height"]
    for box in annotations:  # a plain loop, box_outside written out: no call on the hot path
        if str(box["class_id"]) not in classes:
            return False
        left, top = box["left"], box["top"]
        if left < 0 or top < 0 or left + box["width"] > image_width or top + box["height"] > image_height:
            return False
    return True


def _clean_multilabel(label: Any, metadata: dict) -> bool:
    classes = metadata["class-map"]
    for index in label:  # noqa: SIM110
        if str(index) not in classes:
            return False
    return True


_CLEAN_SPECIFIC: dict[str, Callable[[Any, dict], bool]] = {
    "object-detection": _clean_object_detection,
    "image-classification-multilabel": _clean_multilabel,
    "text-classification-multilabel": _clean_multilabel,
}


#: ``_CLEAN_SPECIFIC`` for ``typed_plan``'s path: the same rule on one line's ``label`` and
#: ``metadata`` decoded into structs, whose fields are the JSON keys with ``-`` written ``_`` and
#: whose class-map keys are ints (``typed_plan`` decodes class index keys so); an
#: ``AttributeError``, or a string key, where that is not so sends the piece to the per-line path.
#: Written as a body that only ever returns False (the rule is broken) or falls through (it
#: holds): ``typed_plan`` writes it into the loop it generates over a run's structs, where the
#: call a line was a fifth of the rule's cost (callgrind, bench lines: 1,710 instructions a line
#: called, 1,400 written in; a field read in bytecode costs little), and ``TYPED_CLEAN`` is
#: compiled from it, so both are one rule
TYPED_BODIES: dict[str, str] = {
    "object-detection": (
        "boxes = label.annotations\n"
        "if len(boxes) != len(metadata.objects):\n"
        "    return False\n"
        "classes = metadata.class_map\n"
        "size = label.image_size[0]\n"
        "image_width, image_height = size.width, size.height\n"
        "for box in boxes:\n"
        "    if box.class_id not in classes:\n"
        "        return False\n"
        "    left, top = box.left, box.top\n"
        "    if left < 0 or top < 0 or left + box.width > image_width or top + box.height > image_height:\n"
        "        return False\n"
    ),
    "image-classification-multilabel": (
        "classes = metadata.class_map\n"
        "for index in label:\n"
        "    if index not in classes:\n"
        "        return False\n"
    ),
}
TYPED_BODIES["text-classification-multilabel"] = TYPED_BODIES["image-classification-multilabel"]


def _typed_rule(body: str) -> Callable[[Any, Any], bool]:
    """A ``TYPED_BODIES`` body as a predicate of ``(label, metadata)``; the body stays on it as
    ``typed_body`` for ``typed_plan`` to write in (the source is this module's own constant)."""
    names: dict[str, Any] = {}
    exec("def rule(label, metadata):\n" + "".join(f"    {line}\n" for line in body.splitlines()) + "    return True\n",
         names)
    rule = names["rule"]
    rule.typed_body = body
    return rule


#: one predicate for each distinct body (the multilabel types share theirs, and so a typed plan)
_TYPED_RULES = {body: _typed_rule(body) for body in dict.fromkeys(TYPED_BODIES.values())}
TYPED_CLEAN: dict[str, Callable[[Any, Any], bool]] = {name: _TYPED_RULES[body] for name, body in TYPED_BODIES.items()}


def specific_predicate(task_type: str) -> Callable[[Any, dict], bool] | None:
    """For a pair that passed the fast schema: True exactly when the task type's own rules
    (``PAIR_RULES``) find nothing. None when the type has no rules of its own."""
    fast = _CLEAN_SPECIFIC.get(task_type)
    if fast is not None:
        return fast
    rules = PAIR_RULES.get(task_type)
    if not rules:
        return None
    return lambda label, metadata: not any(rule(label, metadata) for rule in rules)


def dm_schema_v1(document: dict) -> list[Finding]:
    """Cross references inside DM schema v1 task data."""
    found: list[Finding] = []
    annotations = document.get("annotations") or {}
    data = document.get("annotationsData") or {}
    ids_by_media: dict[str, set[str]] = {}
    for media, items in annotations.items():
        ids: set[str] = set()
        for i, item in enumerate(items):
            if item["id"] in ids:
                found.append(Finding("", ("annotations", media, i, "id"), "dm-duplicate-id",
                                     f"annotation id {item['id']!r} appears twice in {media}"))
            ids.add(item["id"])
        ids_by_media[media] = ids
        data_items = {d["id"]: d for d in data.get(media, [])}
        for i, item in enumerate(items):
            entry = data_items.get(item["id"])
            if entry is None:
                found.append(Finding("", ("annotations", media, i), "dm-annotation-data-missing",
                                     f"annotation {item['id']!r} has no annotationsData entry in {media}"))
            elif item["tool"] == "bounding_box":
                found.extend(_dm_box(media, item["id"], entry, data.get(media, [])))
    for section, keys in (("relations", ("annotationId", "targetAnnotationId")), ("annotationGroups", ())):
        for media, items in (document.get(section) or {}).items():
            known = ids_by_media.get(media, set())
            for i, item in enumerate(items):
                refs = [item[k] for k in keys] if keys else [m["annotationId"] for m in item["annotationList"]]
                for ref in refs:
                    if ref not in known:
                        found.append(Finding("", (section, media, i), "dm-reference-unknown",
                                             f"{section} entry refers to unknown annotation {ref!r} in {media}"))
    return found


def _dm_box(media: str, ident: str, entry: dict, items: list) -> list[Finding]:
    from .schemas import validator

    box = validator("dm-schema-v1", "/$defs/bounding-box")
    coordinate = entry.get("coordinate")
    if box.is_valid(coordinate):
        return []
    index = items.index(entry)
    return [
        Finding("", ("annotationsData", media, index, "coordinate", *err.path), f"schema-{err.keyword}",
                f"bounding_box {ident!r}: {err.message}")
        for err in box.errors(coordinate)
    ]


#: schema name -> rules for whole documents validated with ``--schema``
DOCUMENT_RULES: dict[str, tuple[Callable[[dict], list[Finding]], ...]] = {
    "dm-schema-v1": (dm_schema_v1,),
}


def check_document(schema: str, document: Any) -> list[Finding]:
    found: list[Finding] = []
    for rule in DOCUMENT_RULES.get(schema, ()):
        found.extend(rule(document))
    return found
