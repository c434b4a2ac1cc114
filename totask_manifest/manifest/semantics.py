"""Rules across fields that JSON Schema cannot express, each with a stable rule id.

They run only on values the schema already accepted, so they may rely on the types the schema
checked. Two kinds of finding:

* errors: the value contradicts itself (``objects`` and ``annotations`` counts differ, a class
  index the ``class-map`` does not name, an entity ending before it starts, a date that does
  not exist);
* ``departure-*`` warnings: the value works but departs from the documented conventions in
  a way real Ground Truth output also does (``shared/gt-manifests``): a ``job-name`` without the
  ``labeling-job/`` prefix, ``groundTruth/custom``, a ``+0000`` zone on ``creation-date``...
  ``validate`` reports them and passes, unless ``--strict``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from ..task_types import JOB_NAME_PREFIX

Severity = Literal["error", "warning"]


@dataclass(frozen=True, slots=True)
class Finding:
    """``where`` is ``"label"``, ``"metadata"`` or ``""`` (the whole document); ``path`` goes below it."""

    where: str
    path: tuple[str | int, ...]
    rule: str
    message: str
    severity: Severity = "error"


#: rule id -> what it means; messages below are built from these words
RULES: dict[str, str] = {
    "objects-count": "metadata objects must hold one entry per box in the label's annotations",
    "entities-count": "metadata entities must hold one confidence per entity in the label",
    "class-map-missing-class": "every class index the label uses must be a key of the class-map",
    "entity-offsets": "an entity's startOffset must not exceed its endOffset",
    "entity-label-unknown": "an entity's label must be one of the label categories listed in labels",
    "creation-date-invalid": "creation-date must be a real date and time, written in ISO 8601",
    "dm-annotation-data-missing": "every DM annotation needs its annotationsData entry (same media, same id)",
    "dm-reference-unknown": "a relation or group must refer to an annotation of the same media",
    "dm-duplicate-id": "annotation ids must be unique within a media",
    "departure-job-name-prefix": "job-name lacks the 'labeling-job/' prefix built-in task output carries",
    "departure-job-name-missing": "metadata has no job-name (labels not written by a labeling job)",
    "departure-type-spelling": "type is not spelled in lower case",
    "departure-creation-date-zone": "creation-date carries the older '+0000' zone form (no colon in the offset)",
    "departure-creation-date-javascript": "creation-date is a JavaScript date string (Date.toString, toUTCString)",
    "departure-creation-date-space": "creation-date separates date and time with a space, not 'T'",
    "departure-class-map-spelling": "the class map is spelled 'class_map' (the guide's example) not 'class-map'",
    "departure-type-mismatch": "the type names a task whose label is inline, but the value is a file reference",
    "departure-ref-suffix": "a video frame attribute without '-ref'",
}

PairRule = Callable[[Any, dict], list[Finding]]


def common_metadata(metadata: dict) -> list[Finding]:
    """Conventions every ``-metadata`` object shares (runs on every label: kept lean)."""
    found: list[Finding] = []
    job = metadata.get("job-name")
    if job is None:
        found.append(
            Finding("metadata", ("job-name",), "departure-job-name-missing",
                    "no job-name: these labels were not written by a labeling job (e.g. imported labels)", "warning")
        )
    elif not job.startswith(JOB_NAME_PREFIX):
        found.append(
            Finding("metadata", ("job-name",), "departure-job-name-prefix",
                    f"job-name {job!r} lacks the 'labeling-job/' prefix that built-in task output carries "
                    "(custom workflows and the 3D samples write the bare name)", "warning")
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


# ---- creation-date ---------------------------------------------------------------------------
# Ground Truth writes YYYY-MM-DDTHH:MM:SS.ffffff (UTC, no zone); older output '+0000'. Other AWS
# services that write Ground Truth manifests (Rekognition Custom Labels, Lookout for Vision) and
# their sample code write other ISO 8601 forms ('Z', '+09:00', no fraction): all accepted. Forms
# that are not ISO 8601 but that AWS writers produce (JavaScript's Date strings, a space instead
# of 'T') are departures; anything else is an error.

_HOURS = r"[+-](?:[01][0-9]|2[0-3])"
_FRACTION = r"(?:[.,][0-9]+)?"
#: ISO 8601 date-times, extended (2020-01-31T10:20:30.5+09:00) or basic (20200131T102030Z):
#: calendar, ordinal (2020-031) or week (2020-W05-5) dates, time to the hour, minute or second
_ISO_EXTENDED = re.compile(
    r"(?P<date>[0-9]{4}-(?:[0-9]{2}-[0-9]{2}|[0-9]{3}|W[0-9]{2}-[1-7]))"
    rf"(?:T(?P<time>[0-9]{{2}}(?::[0-9]{{2}}(?::[0-9]{{2}})?)?){_FRACTION}(?P<zone>Z|{_HOURS}(?::[0-5][0-9])?)?)?"
)
_ISO_BASIC = re.compile(
    r"(?P<date>[0-9]{4}(?:[0-9]{4}|[0-9]{3}|W[0-9]{2}[1-7]))"
    rf"(?:T(?P<time>[0-9]{{2}}(?:[0-9]{{2}}(?:[0-9]{{2}})?)?){_FRACTION}(?P<zone>Z|{_HOURS}(?:[0-5][0-9])?)?)?"
)
#: an extended time with a basic zone (Ground Truth's older '+0000'; ISO 8601 wants '+00:00')
_OLD_ZONE = re.compile(rf"(?P<iso>[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}T[0-9:.,]+){_HOURS}[0-5][0-9]")
_SPACE = re.compile(r"([0-9]{4}-[0-9]{2}-[0-9]{2}) ([0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]+)?)?)"
                    r" ?((?:Z|UTC|[+-][0-9]{2}(?::?[0-9]{2})?)?)")
_DAY = r"(?P<weekday>Mon|Tue|Wed|Thu|Fri|Sat|Sun)"
_MON = r"(?P<month>Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)"
_HMS = r"(?P<time>[0-9]{2}:[0-9]{2}:[0-9]{2})"
#: Date.prototype.toString (also what Date() returns) and Date.prototype.toUTCString
_JS_STRING = re.compile(rf"{_DAY} {_MON} (?P<day>[0-9]{{2}}) (?P<year>-?[0-9]{{4,6}}) {_HMS} GMT[+-][0-9]{{4}}"
                        r"(?: \([^()]*\))?")
_JS_UTC = re.compile(rf"{_DAY}, (?P<day>[0-9]{{2}}) {_MON} (?P<year>-?[0-9]{{4,6}}) {_HMS} GMT")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def _real_iso(match: re.Match, basic: bool) -> bool:
    """The date and time a syntactically ISO 8601 string names exist (30 February does not)."""
    date, time_ = match.group("date"), match.group("time") or ""
    try:
        if "W" in date:
            year, week, day = (int(date[:4]), int(date[-3:-1] if basic else date[6:8]), int(date[-1]))
            datetime.fromisocalendar(year, week, day)
        elif len(date.replace("-", "")) == 7:  # ordinal: YYYY-DDD
            year, ordinal = int(date[:4]), int(date[-3:])
            if not 1 <= ordinal <= (366 if _leap(year) else 365):
                return False
        else:
            digits = date.replace("-", "")
            datetime(int(digits[:4]), int(digits[4:6]), int(digits[6:8]))
    except ValueError:
        return False
    parts = [int(p) for p in (re.findall("[0-9]{2}", time_) if basic else time_.split(":"))] if time_ else []
    if parts and parts[0] == 24:  # 24:00:00 is the end of the day, and only that
        return all(p == 0 for p in parts[1:]) and not re.search("[.,][0-9]*[1-9]", match.string)
    return all(p <= limit for p, limit in zip(parts, (23, 59, 59), strict=False))


def _leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def _real_js(match: re.Match) -> bool:
    try:
        when = datetime.strptime(f"{match.group('year')} {match.group('month')} {match.group('day')} "
                                 f"{match.group('time')}", "%Y %b %d %H:%M:%S")
    except ValueError:
        return False
    return _WEEKDAYS[when.weekday()] == match.group("weekday")


def creation_date(date: str) -> list[Finding]:
    """The findings about one ``creation-date`` string (none for any real ISO 8601 date-time)."""
    where = ("creation-date",)
    for pattern, basic in ((_ISO_EXTENDED, False), (_ISO_BASIC, True)):
        match = pattern.fullmatch(date)
        if match:
            if _real_iso(match, basic):
                return []
            return [Finding("metadata", where, "creation-date-invalid", f"creation-date {date!r} is not a real date "
                            "and time")]
    old = _OLD_ZONE.fullmatch(date)
    if old:
        iso = _ISO_EXTENDED.fullmatch(old.group("iso"))
        if iso is None or not _real_iso(iso, False):
            return [Finding("metadata", where, "creation-date-invalid", f"creation-date {date!r} is not a real date "
                            "and time")]
        return [Finding("metadata", where, "departure-creation-date-zone",
                        f"creation-date {date!r} has the older '+0000' zone form (ISO 8601 writes '+00:00'); "
                        "current output writes YYYY-MM-DDTHH:MM:SS.ffffff without a zone", "warning")]
    space = _SPACE.fullmatch(date)
    if space:
        zone = {"UTC": "Z", "": ""}.get(space.group(3), space.group(3))
        iso = _ISO_EXTENDED.fullmatch(f"{space.group(1)}T{space.group(2)}{zone}")
        if iso and _real_iso(iso, False):
            return [Finding("metadata", where, "departure-creation-date-space",
                            f"creation-date {date!r} separates date and time with a space; ISO 8601 (and Ground "
                            "Truth) write 'T'", "warning")]
        return [Finding("metadata", where, "creation-date-invalid", f"creation-date {date!r} is not a real date "
                        "and time")]
    js = _JS_STRING.fullmatch(date) or _JS_UTC.fullmatch(date)
    if js:
        if _real_js(js):
            return [Finding("metadata", where, "departure-creation-date-javascript",
                            f"creation-date {date!r} is a JavaScript date string; Ground Truth writes ISO 8601 "
                            "(YYYY-MM-DDTHH:MM:SS.ffffff; JavaScript's toISOString() gives an accepted form)",
                            "warning")]
        return [Finding("metadata", where, "creation-date-invalid", f"creation-date {date!r} is not a real date "
                        "and time (or its weekday is wrong)")]
    return [Finding("metadata", where, "creation-date-invalid",
                    f"creation-date {date!r} is not an ISO 8601 date and time (e.g. 2026-01-31T10:20:30.000000)")]


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
        if str(box["class_id"]) not in classes:
            found.append(
                Finding("label", ("annotations", i, "class_id"), "class-map-missing-class",
                        f"class_id {box['class_id']} is not a key of the class-map")
            )
    return found


def multilabel(label: Any, metadata: dict) -> list[Finding]:
    classes = metadata["class-map"]
    return [
        Finding("label", (i,), "class-map-missing-class", f"class index {index} is not a key of the class-map")
        for i, index in enumerate(label)
        if str(index) not in classes
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
    found = common_metadata(metadata)
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


def _clean_object_detection(label: Any, metadata: dict) -> bool:
    annotations = label["annotations"]
    if len(metadata["objects"]) != len(annotations):
        return False
    classes = metadata["class-map"]
    for box in annotations:  # noqa: SIM110 - a plain loop: no generator on the hot path
        if str(box["class_id"]) not in classes:
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
