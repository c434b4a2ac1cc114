"""``validate``'s rules for one line the fast paths did not settle: what the problems are.

The hot loop (``line_check.LineChecker``) keeps only what decides that a line or a run of lines
is clean; a line it cannot clear comes here, where each rule is worked out and reported with its
key, and where the facts that repeat across lines (a key's, a plan per attribute and type
string, the naming verdict per attribute and type) are computed once and kept."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from .._errors import ManifestError
from .._lookalike import marks
from .._task_types import TASK_TYPES, TaskType, task_type_of_metadata
from . import semantics
from .label_check import _check_failure, _check_pair, _fast_record_validator, fast_path, input_rules
from .line import Line
from .naming import METADATA_SUFFIX, declared_task_type, label_attribute_violations, rule_message
from .problems import AttributeStats, ClassColors, ClassNames, Collector, Severity
from .schema_scalars import INT_MAX
from .schemas import format_path, validator

#: task types whose ``-ref`` requirement the developer guide states inconsistently (the Output
#: Data page omits video frame jobs; the API lists them), so a missing ``-ref`` is a departure
_REF_DOCUMENTED_LOOSELY = frozenset({"video-object-detection", "video-object-tracking"})

#: a label attribute whose labels declare two built-in task types: Ground Truth fills one
#: attribute by one job of one task type (``LabelAttributeName``), so no reader takes both as one
#: label column. Custom labels (a document kept as it is, which a job of any type writes) go
#: beside any type's; a ``type`` this tool does not know is no task type to hold anyone to
MIXED_TYPES = "label-attribute-mixed-types"
_CUSTOM = "custom"

#: one class id given two names, or one name given two ids, by the lines of one label attribute:
#: COCO and YOLO refuse such a file (a COCO category or YOLO class is one id of one name, and a
#: COCO reader takes categories by name) and ``stats`` notes it ("class id 0 has several names",
#: "class 'car' has several ids"), so ``validate`` says it on each line naming an id otherwise
#: than the attribute's first line naming it, or a name under another id than the first line
#: giving it: a warning, an error with ``--strict`` (as ``box-outside-image``)
CLASS_NAMES = "class-map-conflict"
#: task types whose lines name classes by id: in a class map (every class the line names), or as
#: the chosen class's ``class-name`` beside its index (the label); the types ``stats`` counts by
#: class (``stats_facts``' detection, single and multi-label families)
MAP_TYPES = frozenset({"object-detection", "image-classification-multilabel", "text-classification-multilabel"})
#: semantic segmentation names its classes in ``internal-color-map`` (index -> ``class-name``,
#: ``hex-color``); index 0, the background, is left out, as the COCO export leaves it (each
#: image carries its own background's name and colour)
COLOR_TYPES = frozenset({"semantic-segmentation"})
#: one class index drawn in two colours, or one colour given two indexes (within a line or across
#: lines), by the mask labels of one label attribute (``internal-color-map``'s ``hex-color``): a
#: mask's pixel's colour is its class, so the COCO export refuses such a file as it does
#: (``mask_colors.CategoryColors``: the background's colour may be no class's, its own may vary
#: from image to image) and ``validate`` says it on each line, as ``CLASS_NAMES``
CLASS_COLORS = "color-map-conflict"
#: a ``hex-color`` the schema takes; any other is the schema's to report. Such colours compare
#: lowercased: the COCO export's ``#rrggbb`` of them (``mask_colors.hex_to_rgb``)
_HEX_COLOR = re.compile(r"#[0-9a-fA-F]{6}")
SINGLE_TYPES = frozenset({"image-classification", "text-classification", "label-verification",
                          "video-classification"})
NAMING_TYPES = MAP_TYPES | SINGLE_TYPES | COLOR_TYPES


def first_label(kind: str, line: int | None) -> str:
    """How a ``MIXED_TYPES`` or ``CLASS_NAMES`` message names the attribute's first label (its
    type) or first name of a class; the merge of ranges (``validate._one_type_each``) renumbers
    a ``MIXED_TYPES`` message by this same text, a ``CLASS_NAMES`` one from its parts
    (``Collector.first_names``). ``line`` None: the message's own line."""
    return f"differs from {kind!r} ({_where(line)})"


def said_first(first: int | str, line: int | None) -> str:
    """How a ``CLASS_NAMES`` message names the first name of a class id (``first`` a name) or the
    first id of a class name (``first`` an id) and the attribute's line that gave it (None: the
    message's own line); the merge of ranges renumbers that line from the message's parts
    (``Collector.first_names``)."""
    return first_label(first, line) if isinstance(first, str) else f"differs from class id {first} ({_where(line)})"


def _where(line: int | None) -> str:
    """A first line as the messages name it: "on this line" for the message's own, as the COCO
    and YOLO exports say it (``one_id_a_name``)."""
    return "on this line" if line is None else f"line {line}"


def names_test(task_type: str, names: ClassNames, colors: ClassColors | None = None) -> Callable[[Any, Any], bool] | None:
    """The hot paths' test of a label (``orjson``'s dicts, after the schema passed) of
    ``task_type``: True when its class names are all ``names``' already, so ``CLASS_NAMES`` has
    nothing to say or note. One C-level subset test of the class map's items (a line names only
    the classes it uses, so a map varies line to line; each new id takes the per-line path once).
    A mask label's map is held to ``colors`` alone, for its names and its colours (``CLASS_COLORS``)
    at once: its entries' (index, ``class-name``, ``hex-color``) all known clean
    (``problems.ClassColors``); each entry new, or written anew, takes the per-line path once."""
    by_key = names.by_key
    if task_type in MAP_TYPES:
        return lambda label, metadata: metadata["class-map"].items() <= by_key.items()
    if task_type in SINGLE_TYPES:
        by_id = names.by_id
        return lambda label, metadata: by_id.get(label) == metadata["class-name"]
    if task_type in COLOR_TYPES:
        drawn = colors.by_key if colors is not None else set()
        return lambda label, metadata: {(key, entry["class-name"], entry["hex-color"])
                                        for key, entry in metadata["internal-color-map"].items()} <= drawn
    return None


def class_pairs(task_type: str, attribute: str, value: Any, metadata: Any) -> list[tuple[int, str, str, str]]:
    """The classes a label of ``task_type`` names: ``(id, name, key, how the message says the
    id)``. Ids that are no class index and blank names are left out: the schema reports them."""
    if type(metadata) is not dict:
        return []
    meta_key = attribute + METADATA_SUFFIX
    if task_type in MAP_TYPES:
        classes = metadata.get("class-map")
        if type(classes) is not dict:
            return []
        return [(class_id, name, f"{meta_key}.class-map.{key}", "") for key, name in classes.items()
                if (class_id := _class_index(key)) is not None and _a_name(name)]
    if task_type in SINGLE_TYPES:
        class_id, name = _class_index(value), metadata.get("class-name")
        if class_id is not None and _a_name(name):
            return [(class_id, name, meta_key + ".class-name", f" (class id {class_id})")]
    if task_type in COLOR_TYPES:
        colors = metadata.get("internal-color-map")
        if type(colors) is not dict:
            return []
        return [(class_id, name, f"{meta_key}.internal-color-map.{key}.class-name", "")
                for key, entry in colors.items() if key != "0" and type(entry) is dict
                and (class_id := _class_index(key)) is not None and _a_name(name := entry.get("class-name"))]
    return []


def color_pairs(attribute: str, metadata: Any) -> list[tuple[int, str, str]]:
    """The colours a mask label's ``internal-color-map`` draws its classes in: ``(index, colour as
    compared, key)``. Indexes that are no class index and colours the schema refuses are left out:
    the schema reports them."""
    return [(index, written.lower(), f"{attribute}{METADATA_SUFFIX}.internal-color-map.{key}.hex-color")
            for key, index, _, written in _color_entries(metadata)]


def drawn_entries(metadata: Any) -> list[tuple[int, str, str]]:
    """A mask label's ``internal-color-map`` entries as the hot paths hold them to
    ``problems.ClassColors``: ``(index, class name, colour as written)``, those the schema takes."""
    return [(index, name, written) for _, index, entry, written in _color_entries(metadata)
            if _a_name(name := entry.get("class-name"))]


def _color_entries(metadata: Any) -> list[tuple[str, int, dict, str]]:
    """A mask label's ``internal-color-map`` entries of a class index and a colour the schema takes:
    ``(key, index, entry, colour as written)``."""
    colors = metadata.get("internal-color-map") if type(metadata) is dict else None
    if type(colors) is not dict:
        return []
    return [(key, index, entry, written) for key, entry in colors.items() if type(entry) is dict
            and (index := _class_index(key)) is not None
            and type(written := entry.get("hex-color")) is str and _HEX_COLOR.fullmatch(written)]


def _class_index(value: Any) -> int | None:
    """``value`` as a class index (an integer, or its canonical digits), None if it is none."""
    if type(value) is str and value.isascii() and value.isdigit() and (value == "0" or value[0] != "0"):
        value = int(value)
    return value if type(value) is int and 0 <= value <= INT_MAX else None


def _a_name(name: Any) -> bool:
    return type(name) is str and not name.isspace() and name != ""


class _KeyInfo:
    """What the hot loop needs to know about a top-level key, computed once per distinct key."""

    __slots__ = ("attribute", "key", "plans", "suspicious")

    def __init__(self, key: str) -> None:
        self.key = key
        self.suspicious = key.startswith("$")
        #: for a ``<attribute>-metadata`` key: the attribute, and a plan per ``type`` string seen
        self.attribute = key[: -len(METADATA_SUFFIX)] if key.endswith(METADATA_SUFFIX) else None
        self.plans: dict[str, _Plan] = {}


class _Plan:
    """How to check one attribute declaring one type string; the fast path needs nothing else."""

    __slots__ = ("clean", "fast", "fast_ok", "is_valid", "names", "settled", "stats", "task_type")

    def __init__(self, attribute: str, task_type: TaskType, naming_clean: bool, stats: AttributeStats,
                 settled: bool = True, names: Callable[[Any, Any], bool] | None = None) -> None:
        """``settled``: the attribute's first label (``LineRules.one_type``) is of this type, or
        the type is custom; until then every line of the plan takes the per-line path, which
        holds each to the first label's type. ``names``: ``names_test`` of the attribute's class
        names, where the type names classes."""
        self.task_type = task_type
        self.stats = stats
        self.names = names
        #: checks the whole line: the attribute as the label, its metadata key as the metadata
        self.is_valid = _fast_record_validator(task_type.name, attribute)
        self.clean = fast_path(task_type.name)[1]
        # the point cloud departure (detection type on a -ref file reference) takes the full path
        special = declared_task_type(task_type.name, attribute, "any reference") != task_type.name
        self.fast_ok = naming_clean and not special
        self.settled = settled
        self.fast = self.fast_ok and settled

    def settle(self) -> None:
        """The attribute's first label is of this plan's type: its lines may take the fast paths."""
        self.settled = True
        self.fast = self.fast_ok


_CACHE_SIZE = 4096


def _marks(meta: Any, has_value: bool) -> tuple[bool, bool]:
    """Whether a label attribute's metadata says the line failed, or was routed to review: any
    ``review-status`` where there is no value (its schema then wants ``routed``), ``routed``
    beside a value (another status beside a value is a label's, checked as one)."""
    failed = type(meta) is dict and "failure-reason" in meta
    routed = not failed and type(meta) is dict and "review-status" in meta and (
        not has_value or meta["review-status"] == "routed")
    return failed, routed


class LineRules:
    """The per-line rules and the caches they share with the hot loop (a subclass)."""

    def __init__(self, label_attribute: str | None, task_type: TaskType | None, schema: str | None,
                 out: Collector) -> None:
        self.label_attribute = label_attribute
        self.task_type = task_type
        self.schema = schema
        self.out = out
        self._keys: dict[str, _KeyInfo] = {}
        self._naming_cache: dict[tuple[str, str], list[tuple[str, str, str, Severity]]] = {}
        self._document = validator(schema) if schema else None

    def _key(self, key: str) -> _KeyInfo:
        info = _KeyInfo(key)
        if len(self._keys) < _CACHE_SIZE:
            self._keys[key] = info
        return info

    def _unparsable(self, number: int, body: bytes) -> None:
        out = self.out
        if not body.strip():
            out.blank += 1
            out.add(number, "", "line-blank", rule_message("line-blank"), "warning")
            return
        line = Line(number, body.rstrip(b"\r\n"))
        try:
            line.record()
        except ManifestError as exc:
            out.add(number, "", exc.rule, exc.detail)
        else:  # pragma: no cover - orjson failed on the body with its terminator only
            out.add(number, "", "line-json", rule_message("line-json", detail="unparsable line"))

    # ---- input manifest rules (exact)
    def _check_input_rules(self, number: int, body: bytes, record: dict) -> None:
        input_rules(self.out, number, body, record)

    # ---- label attributes
    def _found_attribute(self, number: int, record: dict, info: _KeyInfo, meta: dict, kind: str,
                         plan: _Plan | None) -> None:
        """A metadata object the fast path did not settle: find its task type, plan, problems."""
        if plan is None:
            tt = task_type_of_metadata(meta)
            if tt is None:
                if kind.lower().startswith("groundtruth/"):
                    self.out.add(number, info.key + ".type", "metadata-type-unknown",
                                 f"type {kind!r} is not a Ground Truth task type this tool knows; not checked",
                                 "warning")
                elif kind in TASK_TYPES:  # a task type's name without the prefix: passed unchecked, unsaid
                    self.out.add(number, info.key + ".type", "metadata-type-unknown",
                                 f"type {kind!r} lacks the prefix Ground Truth writes ('groundtruth/{kind}'), so it "
                                 "declares no task type; not checked", "warning")
                return
            if self.task_type is not None and tt is not self.task_type:
                return
            plan = self.new_plan(info.attribute, tt)
            if len(info.plans) < _CACHE_SIZE:
                info.plans[kind] = plan
        self._check_attribute(number, record, info.attribute, meta, plan.task_type)
        if not plan.settled and self.out.first_types.get(info.attribute, ("",))[0] == plan.task_type.name:
            plan.settle()

    def new_plan(self, attribute: str, tt: TaskType) -> _Plan:
        """The plan of ``attribute`` declaring ``tt``, settled where its first label is of ``tt``."""
        first = self.out.first_types.get(attribute)
        settled = tt.name == _CUSTOM or (first is not None and first[0] == tt.name)
        colors = self.out.colors_of(attribute) if tt.name in COLOR_TYPES else None
        names = names_test(tt.name, self.out.names_of(attribute), colors) if tt.name in NAMING_TYPES else None
        return _Plan(attribute, tt, not self._naming(attribute, tt), self.out.stats(attribute, tt.name), settled,
                     names)

    def one_type(self, number: int, attribute: str, declared: str, kind: str) -> bool:
        """Whether line ``number``'s label of ``attribute``, of task type ``declared`` (``type``
        ``kind`` as written), is of the attribute's first label's type; the first one, noted."""
        if declared == _CUSTOM:
            return True
        first = self.out.first_types.get(attribute)
        if first is None:
            self.out.first_types[attribute] = (declared, kind, number)
            return True
        return first[0] == declared

    def _check_one_type(self, number: int, record: dict, attribute: str, meta: Any, tt: TaskType) -> None:
        """``MIXED_TYPES`` for a line holding a label of ``attribute`` (a value on a line that did not
        fail nor was routed: such a line's value is ``failure-with-label`` or ``routed-with-label``,
        counted failed or routed by ``stats`` too) of another built-in type than the attribute's
        first label."""
        kind = meta.get("type") if type(meta) is dict else None
        if type(kind) is not str:
            return
        own = tt if kind == tt.gt_type else task_type_of_metadata(meta)
        if own is None:  # a type this tool does not know (--task-type checks it as that type)
            return
        declared = declared_task_type(own.name, attribute, record[attribute])
        if not self.one_type(number, attribute, declared, kind):
            first_kind, first_line = self.out.first_types[attribute][1:]
            self.out.add(number, attribute + METADATA_SUFFIX + ".type", MIXED_TYPES,
                         f"{kind!r} {first_label(first_kind, first_line)}: one label attribute holds one task type")

    def _check_class_names(self, number: int, attribute: str, task_type: str, value: Any, meta: Any) -> None:
        """``CLASS_NAMES`` for line ``number``'s label of ``attribute``, and ``CLASS_COLORS`` where
        it is a mask's: what the hot paths' ``names_test`` holds to, worked out."""
        self._check_names(number, attribute, task_type, value, meta)
        if task_type in COLOR_TYPES:
            self._check_colors(number, attribute, meta)
            names, colors = self.out.names_of(attribute), self.out.colors_of(attribute)
            for index, name, written in drawn_entries(meta):
                colors.note_drawn(index, name, written, names)

    def _check_names(self, number: int, attribute: str, task_type: str, value: Any, meta: Any) -> None:
        """``CLASS_NAMES`` for line ``number``'s label of ``attribute``: each class it names
        otherwise than the attribute's first line naming that id, each name it gives another id
        than the first line giving it; each id and name met first, noted."""
        pairs = class_pairs(task_type, attribute, value, meta)
        if not pairs:
            return
        names = self.out.names_of(attribute)
        new_ids: set[int] = set()  # ids and names this line is the first to give: said "on this line"
        new_names: set[str] = set()
        for class_id, name, key, said in pairs:
            first = names.named.get(class_id, name)
            if first != name:
                here, there = marks(name, first)  # names that look alike: their code points too
                head, tail = f"{name!r}{here}{said} ", f"{there}: one class id, one name"
                self._said_first(number, key, (attribute, class_id), head, first,
                                 None if class_id in new_ids else names.lines[class_id], tail)
            other = names.ids.get(name, class_id)
            if other != class_id:
                head, tail = f"class id {class_id} for {name!r} ", ": one class name, one id"
                self._said_first(number, key, (attribute, name), head, other,
                                 None if name in new_names else names.name_lines[name], tail)
            if class_id not in names.named:
                new_ids.add(class_id)
            if name not in names.ids:
                new_names.add(name)
            names.note(class_id, name, number)

    def _check_colors(self, number: int, attribute: str, meta: Any) -> None:
        """``CLASS_COLORS`` for line ``number``'s mask label of ``attribute``: each class index it
        draws in another colour than the attribute's first line drawing it (the background's
        excepted), each colour it gives another index than the first line giving it (the
        background's included, on this line too); each index and colour met first, noted."""
        colors = self.out.colors_of(attribute)
        new_indexes: set[int] = set()  # indexes and colours this line is the first to give
        new_colors: set[str] = set()
        for index, color, key in color_pairs(attribute, meta):
            first = colors.named.get(index, color) if index else color
            if first != color:
                self._said_first(number, key, (attribute, index), f"{color!r} ", first,
                                 None if index in new_indexes else colors.lines[index],
                                 ": one class id, one colour", CLASS_COLORS)
            other = colors.ids.get(color, index)
            if other != index:
                self._said_first(number, key, (attribute, color), f"class id {index} for {color!r} ", other,
                                 None if color in new_colors else colors.name_lines[color],
                                 ": a mask tells its classes apart by colour, so one colour names one class",
                                 CLASS_COLORS)
            if index not in colors.named:
                new_indexes.add(index)
            if color not in colors.ids:
                new_colors.add(color)
            colors.note_color(index, color, number)

    def _said_first(self, number: int, key: str, ref: tuple[str, int | str], head: str, first: int | str,
                    line: int | None, tail: str, rule: str = CLASS_NAMES) -> None:
        """A ``CLASS_NAMES`` message naming the first name of a class id (``first`` a name, ``ref``
        the id) or the first id of a name (``first`` an id, ``ref`` the name) by its ``line``, its
        parts kept (``Collector.first_names``) for the merge of ranges to renumber that line; a
        ``CLASS_COLORS`` one likewise, an index's first colour or a colour's first index
        (``Collector.first_colors``). ``line`` None: this line gave the first one (``{"0": "car",
        "1": "car"}``), said "on this line" as the exports say it; its parts kept all the same: a
        range's line may give first what an earlier range gave (the merge then names that line;
        ``validate._renamed`` keeps "on this line" where the first is the message's own)."""
        kept = len(self.out.problems)
        self.out.add(number, key, rule, head + said_first(first, line) + tail, "warning")
        if len(self.out.problems) > kept:
            firsts = self.out.first_names if rule == CLASS_NAMES else self.out.first_colors
            firsts[kept] = (ref, head, first, tail)

    def untyped_no_label(self, number: int, attribute: str, meta: Any, has_value: bool) -> bool:
        """Count a line of ``attribute`` whose metadata declares no task type but says the line
        failed (``failure-reason``) or was routed to review, as a typed one is (``_marked``); False
        where it says neither. Ground Truth writes a failed object's metadata with
        ``failure-reason`` alone (ground-truth.md 2.14): such lines were counted nowhere, and with
        ``--label-attribute`` each was an error asking for ``--task-type``, while ``stats`` counted
        them failed. The attribute's task types are its labels' (none are added here)."""
        failed, routed = _marks(meta, has_value)
        if not (failed or routed):
            return False
        stats = self.out.attributes.get(attribute) or self.out.attributes.setdefault(attribute, AttributeStats())
        errors_before = self.out.errors
        self._marked(number, attribute, meta, stats, failed, has_value)
        if self.out.errors > errors_before:
            stats.invalid += 1
        return True

    def _marked(self, number: int, attribute: str, meta: dict, stats: AttributeStats, failed: bool,
                has_value: bool) -> None:
        """A failed (``failed``) or routed line: counted, its metadata checked, a value beside it
        said (it is no label: ``naming.marks_no_label``)."""
        out, meta_key = self.out, attribute + METADATA_SUFFIX
        if failed:
            stats.failed += 1
            _check_failure(out, number, meta, meta_key)
            if has_value:
                out.add(number, attribute, "failure-with-label",
                        "the metadata says this object failed (failure-reason) but a label value is present",
                        "warning")
            return
        stats.routed += 1
        _check_failure(out, number, meta, meta_key, "routed")
        if has_value:
            out.add(number, attribute, "routed-with-label",
                    "the metadata says this object was routed to review (review-status: routed) but a label value "
                    "is present", "warning")

    def _naming(self, attribute: str, task_type: TaskType) -> list[tuple[str, str, str, Severity]]:
        cached = self._naming_cache.get((attribute, task_type.name))
        if cached is not None:
            return cached
        found: list[tuple[str, str, str, Severity]] = []
        for v in label_attribute_violations(attribute, task_type):
            if v.rule == "label-attribute-ref-required" and task_type.name in _REF_DOCUMENTED_LOOSELY:
                found.append((attribute, "departure-ref-suffix",
                              f"{v.message}; the API requires it for video frame jobs but the Output Data page "
                              "does not list them, and imported labels (e.g. 'Person' next to 'Person-ref') "
                              "go without it", "warning"))
            else:
                key = attribute + METADATA_SUFFIX if v.rule == "label-attribute-metadata-suffix" else attribute
                found.append((key, v.rule, v.message, "error"))
        if len(self._naming_cache) < _CACHE_SIZE:
            self._naming_cache[(attribute, task_type.name)] = found
        return found

    def _check_attribute(self, number: int, record: dict, attribute: str, meta: Any,
                         tt: TaskType | None = None) -> None:
        out = self.out
        meta_key = attribute + METADATA_SUFFIX
        # a null value is no value: Ground Truth's chaining labels the line ("no data connected to
        # that label attribute name"), as the chain's selection, stats, labeled and apply read it
        has_value = record.get(attribute) is not None
        if meta is None:
            if has_value:
                out.add(number, meta_key, "metadata-missing",
                        f"{attribute!r} has a value but no {meta_key!r} object says what it is")
            else:
                out.unlabeled += 1
            return
        if tt is None:
            tt = self.task_type or task_type_of_metadata(meta)
            if tt is None:
                if self.untyped_no_label(number, attribute, meta, has_value):
                    return
                kind = meta.get("type") if isinstance(meta, dict) else None
                out.add(number, meta_key, "metadata-type-unknown",
                        f"{meta_key!r} does not declare a known task type (type {kind!r}); give --task-type")
                return
        stats = out.stats(attribute, tt.name)
        errors_before = out.errors
        failed, routed = _marks(meta, has_value)
        if not (failed or routed) and has_value:  # no label beside either (stats agrees)
            self._check_one_type(number, record, attribute, meta, tt)
        if failed or routed:
            self._marked(number, attribute, meta, stats, failed, has_value)
        elif not has_value:
            out.add(number, attribute, "label-missing",
                    f"{meta_key!r} declares {tt.gt_type} but there is no {attribute!r} value")
        else:
            value = record[attribute]
            schema_meta = None
            declared = declared_task_type(tt.name, attribute, value)
            if type(meta) is dict and declared != tt.name:
                out.add(number, meta_key + ".type", "departure-type-mismatch",
                        f"type says {tt.gt_type} (inline cuboids) but {attribute!r} holds a file reference: "
                        "checked as groundtruth/point_cloud_object_tracking, as Ground Truth's own sample "
                        "sequence output is written", "warning")
                tt = TASK_TYPES[declared]
                schema_meta = {**meta, "type": tt.gt_type}
            for key, rule, message, severity in self._naming(attribute, tt):
                out.add(number, key, rule, message, severity)
            _check_pair(out, number, tt.name, value, meta, attribute, meta_key, schema_meta)
            self._check_class_names(number, attribute, tt.name, value, meta)
            stats.labeled += 1
        if out.errors > errors_before:
            stats.invalid += 1

    # ---- --schema
    def _check_document(self, number: int, record: dict) -> None:
        compiled = self._document
        if not compiled.is_valid(record):
            for err in compiled.errors(record):
                self.out.add(number, format_path(err.path), f"schema-{err.keyword}", err.message)
            return
        for f in semantics.check_document(self.schema, record):
            self.out.add(number, format_path(f.path), f.rule, f.message, f.severity)
