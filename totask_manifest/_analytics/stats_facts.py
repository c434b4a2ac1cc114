"""``stats``' per-line facts: what one line's label attributes say (type, failure rule, who
labeled it, class ids, confidences, boxes per image), counted in plain ``Counter`` objects per
attribute (``Counts``) that cross processes and are summed; ``stats_tables`` reads the results
out of them."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from itertools import compress, repeat
from operator import add
from typing import Any

import numpy as np
import orjson

from .._failure_rules import rule_of
from .._task_types import GT_PREFIX

#: confidence histogram: ten bins of width 0.1, the last one closed ([0.9, 1.0])
BINS = 10
DETECTION_TYPES = frozenset({"object-detection"})
SINGLE_TYPES = frozenset({"image-classification", "text-classification", "label-verification", "video-classification"})
MULTI_TYPES = frozenset({"image-classification-multilabel", "text-classification-multilabel"})
#: mask labels: their classes are the ``internal-color-map``'s (index -> ``class-name``)
MASK_TYPES = frozenset({"semantic-segmentation"})
#: ``type`` string (with or without ``groundtruth/``) -> family of label value shape
_DET, _SINGLE, _MULTI, _MASK = 1, 2, 3, 4
_FAMILY = {
    prefix + name: family
    for family, names in ((_DET, DETECTION_TYPES), (_SINGLE, SINGLE_TYPES), (_MULTI, MULTI_TYPES),
                          (_MASK, MASK_TYPES))
    for name in names
    for prefix in ("", GT_PREFIX)
}
_CUSTOM = GT_PREFIX + "custom"
#: ``state`` bits of a metadata row (``ROUTED``: sent to people for review, ``review-status: routed``)
LABELED, FAILED, DECLARED, ROUTED = 1, 2, 4, 8
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


def small_counts(values: Sequence[int]) -> list[tuple[int, int]]:
    """``Counter(values).items()``, for values that are ints (a list, or bytes, taken as they are):
    numpy's ``bincount`` over their bytes where all lie in 0-255 (``bytes`` refuses any other),
    else a ``Counter``.

    Why: a ``Counter`` costs about 560 instructions an element (a hash, a lookup, an addition, a
    store); ``bytes`` about 130 (callgrind, benchmark lines), numpy a few thousand a call."""
    try:
        data = bytes(values)
    except ValueError:
        return list(Counter(values).items())
    counts = np.bincount(np.frombuffer(data, np.uint8)).tolist()
    return list(zip(compress(range(len(counts)), counts), filter(None, counts), strict=True))


class Counts:
    """One attribute's counts over a byte range (or a whole stream): plain ``Counter`` objects keyed by
    the facts, summed when ranges are merged (``merge``). Why not columns handed to a dataframe
    library: the tables are tiny (distinct types, reasons, jobs, classes, bins), a ``Counter``
    counts in C, and these pickle across processes in microseconds; polars cost each process a
    third of a second to import and a few tenths more to flush its batches.

    ``conf`` (one entry per box or label with a confidence) and ``raw_names`` (``(class-map key,
    name)`` pairs as the lines give them) are binned and normalised by ``flush`` into
    ``hist``/``conf_sum`` and ``names`` (``(class id, name text)``) every batch of lines, so memory
    stays bounded by the batch and the number of distinct values. The confidences are binned by
    numpy (a few ns a value, against 160 for a ``Counter`` of floats; numpy is imported before
    the workers fork, so once).
    """

    __slots__ = ("class_n", "conf", "conf_arrays", "conf_sum", "hist", "human_n", "job_n", "meta_n", "named",
                 "names", "no_class_id", "out_of_range", "per_image_n", "raw_names", "tools", "unscored")

    def __init__(self) -> None:
        #: ``(type, failure rule, state)`` -> metadata objects
        self.meta_n: Counter[tuple[str | None, str | None, int]] = Counter()
        #: the labeled lines by ``human-annotated`` and by ``job-name`` (None: absent or null). Apart
        #: from ``meta_n``: what is shown of them is each one's counts, never together with the
        #: type, so the fast path counts each column alone (``list.count`` of a few literals, in C)
        #: instead of hashing a tuple a line
        self.human_n: Counter[str | None] = Counter()
        self.job_n: Counter[str | None] = Counter()
        #: ``(class id, the name the line's own class map gives it, or None)`` -> boxes or labels
        self.class_n: Counter[tuple[int, str | None]] = Counter()
        #: boxes per detection (or native) line -> lines
        self.per_image_n: Counter[int] = Counter()
        #: confidences, until ``flush`` bins them; the fast path's as arrays, one a slice (a float
        #: kept in a list until the flush cost some 800 instructions a confidence, callgrind)
        self.conf: list[float] = []
        self.conf_arrays: list[np.ndarray] = []
        self.hist = [0] * BINS
        self.conf_sum = 0.0
        #: ``(class-map key, name)`` pairs seen (a set: class maps repeat on every line), until ``flush``
        self.raw_names: set[tuple[Any, Any]] = set()
        #: ``(class id, name)`` pairs, ids that are not 64-bit integers left out
        self.names: set[tuple[int, str]] = set()
        #: native documents: annotations per tool, named annotations per class name
        self.tools: Counter[str] = Counter()
        self.named: Counter[str] = Counter()
        #: boxes or chosen labels without a confidence (kept apart: a missing score is not 0.0)
        self.unscored = 0
        #: confidences outside [0, 1] (``validate``: ``schema-maximum``, ``schema-minimum``): no bin
        #: holds them, so they are counted apart, out of the histogram and the mean (1.5 was binned
        #: with 0.9 to 1.0, -0.2 with 0.0 to 0.1)
        self.out_of_range = 0
        #: boxes or labels left out: no usable class id
        self.no_class_id = 0

    def flush(self) -> None:
        """Bin the confidences counted so far and normalise the class-map pairs (once per distinct
        pair)."""
        if self.conf or self.conf_arrays:
            if self.conf:
                self.conf_arrays.append(np.fromiter(self.conf, dtype=np.float64, count=len(self.conf)))  # a third of np.array's time
            values = self.conf_arrays[0] if len(self.conf_arrays) == 1 else np.concatenate(self.conf_arrays)
            inside = (values >= 0) & (values <= 1)
            if not inside.all():
                self.out_of_range += len(values) - int(inside.sum())
                values = values[inside]
            # floor(c * BINS) clipped to [0, BINS - 1]: the last bin is closed ([0.9, 1.0])
            bins = np.clip(np.floor(values * BINS), 0, BINS - 1).astype(np.int64)
            self.hist = list(map(add, self.hist, np.bincount(bins, minlength=BINS).tolist()))
            self.conf_sum += float(values.sum())
            self.conf, self.conf_arrays = [], []
        if self.raw_names:
            for key, name in self.raw_names:
                class_id = class_id_of(key)
                if class_id is not None:
                    self.names.add((class_id, name if type(name) is str else str(name)))
            self.raw_names = set()

    def held(self) -> int:
        """Confidences held until the next ``flush``."""
        return len(self.conf) + sum(map(len, self.conf_arrays))

    def merge(self, other: Counts) -> None:
        """Add ``other``'s counts (both flushed) to these."""
        self.meta_n.update(other.meta_n)
        self.human_n.update(other.human_n)
        self.job_n.update(other.job_n)
        self.class_n.update(other.class_n)
        self.per_image_n.update(other.per_image_n)
        self.hist = list(map(add, self.hist, other.hist))
        self.conf_sum += other.conf_sum
        self.names |= other.names
        self.tools.update(other.tools)
        self.named.update(other.named)
        self.unscored += other.unscored
        self.out_of_range += other.out_of_range
        self.no_class_id += other.no_class_id

    def add_native(self, value: Any, fmt: str) -> None:
        """A document kept as it is: its annotations by tool and class name, boxes per document."""
        from .._formats.native import shapes

        boxes = 0
        for shape in shapes(value, fmt):
            self.tools[shape.tool] += 1
            if shape.class_name is not None:
                self.named[shape.class_name] += 1
            if shape.box is not None:
                boxes += 1
            if shape.confidence is not None:
                self.conf.append(shape.confidence)
            elif shape.box is not None:
                self.unscored += 1  # a box without a score is unscored, not 0.0
        self.per_image_n[boxes] += 1

    def add(self, record: dict, attribute: str, meta: dict) -> None:
        """Count one line's ``attribute`` (its metadata object ``meta``): the generic count, the
        specification every faster path is held to."""
        typ = meta.get("type")
        if typ is not None and type(typ) is not str:
            typ = json_text(typ)
        if "failure-reason" in meta:
            rule = meta.get("failure-rule")
            if type(rule) is not str or not rule:
                reason = meta["failure-reason"]
                rule = rule_of(reason if type(reason) is str else json_text(reason))
            self.meta_n[typ, rule, FAILED | DECLARED] += 1
            return
        declared = DECLARED if "type" in meta else 0
        if meta.get("review-status") == "routed":
            # routed to review: the job wrote no label (a value the line holds is an earlier job's)
            self.meta_n[typ, None, declared | ROUTED] += 1
            return
        if record.get(attribute) is None:  # missing or null: no value (``needs_label``)
            self.meta_n[typ, None, declared] += 1
            return
        human = meta.get("human-annotated")
        job = meta.get("job-name")
        self.meta_n[typ, None, LABELED | declared] += 1
        self.human_n[human if human is None or type(human) is str else json_text(human)] += 1
        self.job_n[job if job is None or type(job) is str else json_text(job)] += 1
        family = _FAMILY.get(typ)
        if family is None:
            fmt = meta.get("format")
            if type(typ) is str and typ.lower() == _CUSTOM and type(fmt) is str:
                self.add_native(record[attribute], fmt)
            return
        value = record[attribute]
        class_n, conf = self.class_n, self.conf
        if family == _DET:
            if type(value) is not dict:
                return
            anns = value.get("annotations")
            boxes = 0
            class_map = meta.get("class-map")
            if type(class_map) is not dict:
                class_map = {}
            if type(anns) is list:
                for a in anns:
                    if type(a) is dict and type(c := a.get("class_id")) is int and _INT64_MIN <= c <= _INT64_MAX:
                        # the name this line's class map gives the box
                        class_n[c, label_text(class_map.get(str(c)))] += 1
                        boxes += 1
                self.no_class_id += len(anns) - boxes
            self.per_image_n[boxes] += 1
            objects = meta.get("objects")
            if type(objects) is list:
                for o in objects:
                    if type(o) is dict and type(c := o.get("confidence")) in (float, int):
                        conf.append(c)
                    else:
                        self.unscored += 1
            # boxes beyond the objects list have no confidence either
            self.unscored += max((len(anns) if type(anns) is list else 0) - (len(objects) if type(objects) is list else 0), 0)
            if class_map:
                try:  # the common case inline: this runs on every detection line
                    self.raw_names.update(class_map.items())
                except TypeError:
                    self._names(class_map)
        elif family == _SINGLE:
            class_id = class_id_of(value)
            if class_id is None:
                self.no_class_id += 1
                return
            name = meta.get("class-name")
            class_n[class_id, label_text(name)] += 1
            if name is not None:
                self._names({class_id: name})
            score = meta.get("confidence")
            if type(score) in (float, int):
                conf.append(score)
            else:
                self.unscored += 1
        elif family == _MASK:
            self._mask_classes(meta.get("internal-color-map"))
        elif type(value) is list:  # multi-label
            ids = [v for v in value if type(v) is int and _INT64_MIN <= v <= _INT64_MAX]
            self.no_class_id += len(value) - len(ids)
            class_map = meta.get("class-map")
            if type(class_map) is dict:
                self._names(class_map)
                class_n.update((v, label_text(class_map.get(str(v)))) for v in ids)
            else:
                class_n.update(zip(ids, repeat(None)))
            conf_map = meta.get("confidence-map")
            # only the chosen classes: a confidence-map may hold others too
            scored = [c for v in ids if type(c := conf_map.get(str(v))) in (float, int)] if type(conf_map) is dict else []
            conf += scored
            self.unscored += len(ids) - len(scored)

    def _mask_classes(self, color_map: Any) -> None:
        """A mask label's classes: each ``internal-color-map`` entry naming one (``class-name``)
        counts one line for its ``(index, name)``, and its name is noted for the clashes, as a
        class map's are. Why: ``validate`` (``class-map-conflict``) and the COCO export hold these
        names to one per index and one index per name, and ``stats`` said nothing of them. Index
        0, the background, is left out, as both leave it out (each image names its own)."""
        if type(color_map) is not dict:
            return
        for key, entry in color_map.items():
            class_id = class_id_of(key)
            name = entry.get("class-name") if type(entry) is dict else None
            if class_id is None or class_id == 0 or name is None:
                continue
            name = label_text(name)
            self.class_n[class_id, name] += 1
            self.raw_names.add((key, name))

    def _names(self, class_map: dict) -> None:
        try:
            self.raw_names.update(class_map.items())
        except TypeError:  # a name that is a list or an object: named by its JSON text
            self.raw_names.update((k, v if type(v) is str else json_text(v)) for k, v in class_map.items())

