"""``stats``' per-line facts: what one line's label attributes say (type, failure rule, who
labeled it, class ids, confidences, boxes per image), appended to plain column lists that are
cheap to grow; ``stats_tables`` turns them into polars counts every batch of lines."""

from __future__ import annotations

from collections import Counter
from typing import Any

import orjson

from .._failure_rules import rule_of
from .._task_types import GT_PREFIX

#: confidence histogram: ten bins of width 0.1, the last one closed ([0.9, 1.0])
BINS = 10
#: the confidence table's bin for boxes or labels that carry no confidence at all
UNSCORED_BIN = -1
#: the same table's count of boxes or labels left out for want of a usable class id
NO_CLASS_ID_BIN = -2
DETECTION_TYPES = frozenset({"object-detection"})
SINGLE_TYPES = frozenset({"image-classification", "text-classification", "label-verification", "video-classification"})
MULTI_TYPES = frozenset({"image-classification-multilabel", "text-classification-multilabel"})
#: lines per column batch handed to polars
#: ``type`` string (with or without ``groundtruth/``) -> family of label value shape
_DET, _SINGLE, _MULTI = 1, 2, 3
_FAMILY = {
    prefix + name: family
    for family, names in ((_DET, DETECTION_TYPES), (_SINGLE, SINGLE_TYPES), (_MULTI, MULTI_TYPES))
    for name in names
    for prefix in ("", GT_PREFIX)
}
_CUSTOM = GT_PREFIX + "custom"
#: ``state`` bits of a metadata row
LABELED, FAILED, DECLARED = 1, 2, 4
#: keys whose ``-metadata`` is not a label attribute's
NOT_ATTRIBUTES = frozenset({"source", "source-ref"})
SUFFIX = "-metadata"
#: distinct top-level keys remembered per process (lines with ever-new keys must not grow memory)
KEY_CACHE = 4096
UNSEEN = object()
_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1


#: what a value nested deeper than any JSON writer here goes (orjson reads 1024 levels and
#: writes about 254; ``json`` stops at the interpreter's recursion limit) is counted under
TOO_DEEP = "(a JSON value nested too deep to write out)"


def json_text(value: Any) -> str:
    """A non-string JSON value as a dictionary key: its JSON text (compact, as orjson writes it)."""
    try:
        return orjson.dumps(value).decode()
    except orjson.JSONEncodeError:
        import json

        try:
            return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
        except RecursionError:
            return TOO_DEEP


def class_id_of(value: Any) -> int | None:
    """``value`` as a class id (an integer, or a string or float holding one), None when it is
    not one or lies outside the 64-bit range the count tables hold (``validate`` reports such
    values; counting them under a wrapped or clamped id would be a number nobody measured)."""
    try:
        class_id = int(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return class_id if _INT64_MIN <= class_id <= _INT64_MAX else None


def label_text(name: Any) -> str | None:
    """A class name as counted: strings as they are, other JSON values as their text."""
    return name if name is None or type(name) is str else json_text(name)


class Columns:
    """Facts about one attribute over one batch of lines, as plain lists (cheap to append to).

    One entry per metadata object in ``types``/``reasons``/``humans``/``jobs``/``states``; one per
    box or chosen label in ``ids``; one per confidence in ``conf``; one per detection line in
    ``per_image``; ``names`` is the set of ``(class id, name)`` pairs (a set: class maps repeat
    on every line, their distinct pairs are few).
    """

    __slots__ = ("class_n", "conf", "humans", "ids", "jobs", "labels", "meta_n", "named", "names", "no_class_id",
                 "per_image", "per_image_n", "reasons", "states", "tools", "types", "unscored")

    def __init__(self) -> None:
        self.types: list[str | None] = []
        self.reasons: list[str | None] = []
        self.humans: list[str | None] = []
        self.jobs: list[str | None] = []
        self.states: list[int] = []
        self.ids: list[int] = []
        #: the name the line itself gives each entry of ``ids`` (its class map), or None
        self.labels: list[str | None] = []
        self.conf: list[float] = []
        self.per_image: list[int] = []
        self.names: set[tuple[Any, Any]] = set()
        #: native documents: one tool name per annotation, one class name per named annotation
        self.tools: list[str] = []
        self.named: list[str] = []
        #: boxes or chosen labels without a confidence (kept apart: a missing score is not 0.0)
        self.unscored = 0
        #: boxes or labels left out: no usable class id
        self.no_class_id = 0
        #: the same facts already counted (the fast path, ``stats_fast``, counts them in C with
        #: ``Counter`` instead of growing one list entry per line): ``(type, reason, human, job,
        #: state)`` -> lines, ``(class id, name)`` -> boxes, boxes per image -> lines
        self.meta_n: Counter[tuple[str | None, str | None, str | None, str | None, int]] = Counter()
        self.class_n: Counter[tuple[int, str | None]] = Counter()
        self.per_image_n: Counter[int] = Counter()

    def add_native(self, value: Any, fmt: str) -> None:
        """A document kept as it is: its annotations by tool and class name, boxes per document."""
        from .._formats.native import shapes

        boxes = 0
        for shape in shapes(value, fmt):
            self.tools.append(shape.tool)
            if shape.class_name is not None:
                self.named.append(shape.class_name)
            if shape.box is not None:
                boxes += 1
            if shape.confidence is not None:
                self.conf.append(shape.confidence)
            elif shape.box is not None:
                self.unscored += 1  # a box without a score is unscored, not 0.0
        self.per_image.append(boxes)

    def add(self, record: dict, attribute: str, meta: dict) -> None:
        typ = meta.get("type")
        if typ is not None and type(typ) is not str:
            typ = json_text(typ)
        self.types.append(typ)
        if "failure-reason" in meta:
            rule = meta.get("failure-rule")
            if type(rule) is not str or not rule:
                reason = meta["failure-reason"]
                rule = rule_of(reason if type(reason) is str else json_text(reason))
            self.reasons.append(rule)
            self.humans.append(None)
            self.jobs.append(None)
            self.states.append(FAILED | DECLARED)
            return
        self.reasons.append(None)
        declared = DECLARED if "type" in meta else 0
        if attribute not in record:
            self.humans.append(None)
            self.jobs.append(None)
            self.states.append(declared)
            return
        human = meta.get("human-annotated")
        self.humans.append(human if human is None or type(human) is str else json_text(human))
        job = meta.get("job-name")
        self.jobs.append(job if job is None or type(job) is str else json_text(job))
        self.states.append(LABELED | declared)
        family = _FAMILY.get(typ)
        if family is None:
            fmt = meta.get("format")
            if type(typ) is str and typ.lower() == _CUSTOM and type(fmt) is str:
                self.add_native(record[attribute], fmt)
            return
        value = record[attribute]
        if family == _DET:
            if type(value) is not dict:
                return
            anns = value.get("annotations")
            boxes = 0
            class_map = meta.get("class-map")
            if type(class_map) is not dict:
                class_map = {}
            if type(anns) is list:
                ids = self.ids
                for a in anns:
                    if type(a) is dict and type(c := a.get("class_id")) is int and _INT64_MIN <= c <= _INT64_MAX:
                        ids.append(c)
                        boxes += 1
                if boxes:  # the names this line's class map gives its boxes (non-strings: batch_frames)
                    self.labels += [class_map.get(str(c)) for c in ids[-boxes:]]
                self.no_class_id += len(anns) - boxes
            self.per_image.append(boxes)
            objects = meta.get("objects")
            if type(objects) is list:
                conf = self.conf
                for o in objects:
                    if type(o) is dict and type(c := o.get("confidence")) in (float, int):
                        conf.append(c)
                    else:
                        self.unscored += 1
            # boxes beyond the objects list have no confidence either
            self.unscored += max((len(anns) if type(anns) is list else 0) - (len(objects) if type(objects) is list else 0), 0)
            if class_map:
                try:  # the common case inline: this runs on every detection line
                    self.names.update(class_map.items())
                except TypeError:
                    self._names(class_map)
        elif family == _SINGLE:
            class_id = class_id_of(value)
            if class_id is None:
                self.no_class_id += 1
                return
            self.ids.append(class_id)
            name = meta.get("class-name")
            self.labels.append(label_text(name))
            if name is not None:
                self._names({class_id: name})
            conf = meta.get("confidence")
            if type(conf) in (float, int):
                self.conf.append(conf)
            else:
                self.unscored += 1
        elif type(value) is list:  # multi-label
            ids = [v for v in value if type(v) is int and _INT64_MIN <= v <= _INT64_MAX]
            self.ids += ids
            self.no_class_id += len(value) - len(ids)
            class_map = meta.get("class-map")
            if type(class_map) is dict:
                self._names(class_map)
                self.labels += [label_text(class_map.get(str(v))) for v in ids]
            else:
                self.labels += [None] * len(ids)
            conf_map = meta.get("confidence-map")
            # only the chosen classes: a confidence-map may hold others too
            scored = [c for v in ids if type(c := conf_map.get(str(v))) in (float, int)] if type(conf_map) is dict else []
            self.conf += scored
            self.unscored += len(ids) - len(scored)

    def _names(self, class_map: dict) -> None:
        try:
            self.names.update(class_map.items())
        except TypeError:  # a name that is a list or an object: named by its JSON text
            self.names.update((k, v if type(v) is str else json_text(v)) for k, v in class_map.items())

