"""The hot loop of ``validate``: the per-line rules for one byte range, with caches for what
repeats across lines (a key's facts, a plan per attribute and type string, a plan per line
shape). Most lines never become Python dicts: once a run of lines of one shape has passed, the
shape's typed path (``typed_plan``) decodes whole pieces of the range into typed structs and
checks them in C. A piece it does not accept is split into lines and checked in runs of lines
sharing one shape (one ``orjson.loads`` a line, one compiled schema call a run, the type's own
predicates), and a run that fails line by line. The detailed error list, the byte-span scanner
and character counts run only for lines that fail a cheap test."""

from __future__ import annotations

import functools
import gc
import operator
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import orjson

from .._errors import json_kind
from .._task_types import TaskType, task_type_of_metadata
from . import long_lines, semantics
from .blocks import PIECE_BYTES, pieces, split_block, typed_parts
from .label_check import (
    SOURCE_SCHEMAS,
    _fast_schema,
    source_value_suspicious,
)
from .line import any_repeats_a_key, may_repeat_a_key
from .line_rules import _CACHE_SIZE, COLOR_TYPES, MAP_TYPES, LineRules
from .long_lines import TooLong
from .naming import MAX_ATTRIBUTE_CHARS, METADATA_SUFFIX, declared_task_type, rule_message
from .problems import AttributeStats, Collector
from .schemas import compile_schema, ref
from .typed_plan import TypedPlan, typed_plan

#: lines checked at once on the fast path (a run). Small: a run's parsed lines (some 25 objects
#: each) are all alive until the run is decided; 256 of them (~600 KB) spill out of a core's
#: cache and parsing costs half again as much as parsing line by line, 16 (~40 KB) stay in it
#: while the per-run steps (one schema call, one ``orjson.dumps``) still cost little a line
RUN_LINES = 16
_UNSET: Any = object()
#: a run's metadata objects: none failed (``failure-reason``) nor routed to review (``review-status``),
#: which the per-line path says beside a value (``failure-with-label``, ``routed-with-label``); the
#: fast schema takes either key as one more property (the typed path refuses both: no field of its)
_LABEL_STATUS = ({"not": {"required": ["failure-reason"]}}, {"not": {"required": ["review-status"]}})


def _no_label_status(meta: dict) -> bool:
    """Whether a metadata object may be a label's: neither failed nor routed to review."""
    return "failure-reason" not in meta and "review-status" not in meta

#: what a metadata key's value on a run's first line that is no label's metadata (no ``type``)
#: must not turn into on the run's other lines: a label's metadata, or a failed or routed line's
#: (Ground Truth's failed objects declare no type: ``LineRules.untyped_no_label``)
_UNTYPED_MARKS = [{"type": "object", "required": ["type"], "properties": {"type": {"type": "string"}}},
                  {"type": "object", "required": ["failure-reason"]},
                  {"type": "object", "required": ["review-status"]}]

#: compiled plans shared by every range this process checks (a file has 16 ranges, each with its
#: own ``LineChecker``): compiling a shape's schema and typed plan cost some 6 ms a range
_TYPED_PLANS: dict[tuple, tuple[TypedPlan | None, dict]] = {}


@functools.lru_cache(maxsize=256)
def _run_schema(schema: bytes) -> Callable[[Any], bool]:
    """The compiled run schema (its JSON text, keys sorted) of a shape."""
    return compile_schema(orjson.loads(schema)).is_valid


def _typed_plan(shape: tuple, first: dict, typed: dict[str, tuple[dict, dict]], predicates: list,
                names: list[tuple[str, str, str]]) -> TypedPlan | None:
    """``typed_plan`` of a shape, compiled once a process for each sample skeleton: what the
    compiler reads of ``first`` (key orders, first items, value kinds); the schemas are the
    cached ``_fast_schema`` documents, the same objects for every range."""
    key = (shape, _skeleton(first), tuple((k, id(schema), id(root)) for k, (schema, root) in typed.items()),
           tuple(predicates), tuple(names))
    cached = _TYPED_PLANS.get(key)
    if cached is not None:
        return cached[0]
    plan = typed_plan(shape, first, typed, predicates, MAX_ATTRIBUTE_CHARS, names)
    if len(_TYPED_PLANS) < _CACHE_SIZE:
        _TYPED_PLANS[key] = (plan, typed)  # ``typed`` kept alive: no other object takes its ids
    return plan


def _names_at(task_type: str) -> str:
    """Where a label of ``task_type`` names its classes, as ``typed_plan`` reads them: its class
    map, its color map's entries, or its label and ``class-name``."""
    return "map" if task_type in MAP_TYPES else "colors" if task_type in COLOR_TYPES else "label"


def _skeleton(value: Any) -> Any:
    """Everything ``typed_plan`` reads of a sample: objects' key orders, lists' first items,
    the kind of every other value."""
    if type(value) is dict:
        return tuple((k, _skeleton(v)) for k, v in value.items())
    if type(value) is list:
        return (list, _skeleton(value[0]) if value else None)
    return type(value)


@dataclass(frozen=True, slots=True)
class _ShapePlan:
    """Checks a run of lines sharing one key sequence at once (see ``_LineChecker._try_run``)."""

    is_valid: Callable[[Any], bool]
    predicates: list[tuple[Callable[[Any], Any], Callable[[Any], Any], Callable[[Any, dict], bool]]]
    stats: list[AttributeStats]
    #: the same checks on lines decoded straight into typed structs (``typed_plan``), or None
    typed: TypedPlan | None = None
    #: ``(attribute, metadata key, line_rules.names_test, task type, stats)`` of the attributes
    #: whose lines name classes (``line_rules.CLASS_NAMES``)
    names: list[tuple[str, str, Callable[[Any, Any], bool], str, AttributeStats]] = ()


class LineChecker(LineRules):
    """The hot loop over one byte range: clears clean pieces, runs and lines at once and hands
    any other line to the rules it inherits (``line_rules.LineRules``)."""

    def __init__(self, label_attribute: str | None, task_type: TaskType | None, schema: str | None,
                 out: Collector, *, task_rules: bool = True, names_of: str | None = None) -> None:
        """``task_rules``: the typed path also runs each task type's own rules on the labels
        (``semantics.TYPED_CLEAN``). The job's input scan asks without: it reads the typed path
        only for the line-level rules and the selection, which no label's class or box count
        changes, and those rules were a tenth of its CPU (the chain benchmark's boxes).
        ``names_of``: an attribute whose class names the typed path holds to its table even so
        (not a mask's colours): the scan's, whose table starts with the job's class names."""
        super().__init__(label_attribute, task_type, schema, out)
        self._task_rules = task_rules
        self._names_of = names_of
        self._shapes: dict[tuple, _ShapePlan | None] = {}
        #: the plan of the last shape whose run passed, tried first on the next run
        self._last: _ShapePlan | None = None
        #: lines accepted on the typed path (tests and the benchmark read it)
        self.typed_lines = 0
        #: the number of the first line of the run ``_try_run`` checks (a shape's plan notes an
        #: attribute's first label from it, ``_shape_plan``)
        self._run_line = 0

    def run(self, blocks: Iterator[bytes]) -> None:
        """Check every line of ``blocks`` (``blocks.iter_blocks``): pieces of a block on the
        typed path at once where possible, else its lines in whole runs where possible
        (``_try_run``), each line of a run that is not (or cannot be checked at once) on its own."""
        gc_was_enabled = gc.isenabled()
        gc.disable()  # nothing here makes reference cycles; the collector would only rescan young dicts
        number = 0
        # the typed path of the last shape that passed (``_last``), tried first on each piece and
        # run; its lines are counted here and added to that shape's stats when the shape changes
        typed, typed_lines = None, 0
        try:
            for block in blocks:
                if type(block) is TooLong:  # a line over the byte cap, read past: never parsed
                    number += 1
                    self.out.add(number, "", "line-too-long", long_lines.message())
                    continue
                if not block:  # a file holding a BOM alone: its line, the BOM taken off, is blank
                    number = self._lines([b""], number, None)
                    continue
                for piece in pieces(block, PIECE_BYTES):
                    for accepted, text in typed_parts(piece, self._typed):
                        if accepted > 0:
                            number += accepted
                            typed_lines += accepted
                        elif accepted == 0:
                            number, typed, typed_lines = self._runs(split_block(text), number, typed, typed_lines)
                        else:
                            number = self._lines([text], number, None)
        finally:
            if gc_was_enabled:
                gc.enable()
            self._count_typed(self._last, typed_lines)
        self.out.lines += number

    def _typed(self) -> TypedPlan | None:
        """The typed path of the last shape that passed, if it has one."""
        return self._last.typed if self._last is not None else None

    def _runs(self, batch: list[bytes], number: int, typed: Callable[[bytes], int] | None,
              typed_lines: int) -> tuple[int, Callable[[bytes], int] | None, int]:
        """Lines the typed path did not take at once, in runs: typed again, else whole where
        they share one shape (which becomes the typed path's, ``_try_run``), else in halves or
        line by line. Returns the line number reached, the typed path and its line count."""
        batch_ok = self._try_run if self._runs_possible else None
        for at in range(0, len(batch), RUN_LINES):
            run = batch[at : at + RUN_LINES]
            if typed is not None and typed(b"\n".join(run)) == len(run):
                number += len(run)
                typed_lines += len(run)
                continue
            records = None
            if batch_ok is not None:
                last = self._last
                self._run_line = number + 1
                ok, records = batch_ok(run)
                if ok:
                    number += len(run)
                    if self._last is not last:
                        self._count_typed(last, typed_lines)
                        typed_lines = 0
                        typed = self._last.typed.accepts if self._last.typed is not None else None
                    continue
            if typed is not None and len(run) > 2:
                number, accepted = self._typed_halves(run, number, typed)
                typed_lines += accepted
                continue
            number = self._lines(run, number, records)
        return number, typed, typed_lines

    def _typed_halves(self, run: list[bytes], number: int, typed: Callable[[bytes], int]) -> tuple[int, int]:
        """A run the typed path refused whole, and not one shape: its halves tried again, down to
        pairs, and what still fails on the per-line path. Why: one failed line among labeled ones
        (a chained job's output holds them all through) sent its whole run line by line, and 1%
        of such lines cost ``validate`` 40% more instructions a line. Returns the line number
        reached and the lines the typed path accepted."""
        accepted = 0
        half = len(run) // 2
        for part in (run[:half], run[half:]):
            if typed(b"\n".join(part)) == len(part):
                number += len(part)
                accepted += len(part)
            elif len(part) > 2:
                number, more = self._typed_halves(part, number, typed)
                accepted += more
            else:
                number = self._lines(part, number, None)
        return number, accepted

    def _count_typed(self, plan: _ShapePlan | None, lines: int) -> None:
        """Lines the typed path accepted under ``plan``: labeled, for each of its attributes."""
        if plan is not None and lines:
            for stats in plan.stats:
                stats.labeled += lines
            self.typed_lines += lines

    # ---- a run of lines at once
    @property
    def _runs_possible(self) -> bool:
        return self.schema is None and self.label_attribute is None and self.task_type is None

    def _try_run(self, run: list[bytes]) -> tuple[bool, list | None]:
        """True when every line of ``run`` is valid, decided without a Python step per line
        (except the task type's own predicates); the parsed records either way, for reuse.

        The lines must share one key sequence (a *shape*) whose plan says what the per-line path
        would conclude: one compiled schema over the run checks every attribute and metadata
        object, the size and duplicate-key tests count over the run's joined bytes. Anything
        short of "all valid" sends the run to the per-line path, which reports the problems.
        """
        try:
            records = list(map(orjson.loads, run))
        except orjson.JSONDecodeError:
            return False, None
        try:
            shapes = set(map(tuple, records))
        except TypeError:  # a line that is not an object
            return False, records
        if len(shapes) != 1:
            return False, records
        plan = self.plan_of(shapes.pop(), records[0])
        if plan is None or max(map(len, run)) > MAX_ATTRIBUTE_CHARS:
            return False, records
        # a key repeated anywhere in some line (top level included): the records written back
        # differ from the text (``any_repeats_a_key``), one comparison over the whole run
        if any_repeats_a_key(run, records):
            return False, records
        if not plan.is_valid(records):
            return False, records
        for label_of, metadata_of, predicate in plan.predicates:
            if not all(map(predicate, map(label_of, records), map(metadata_of, records))):
                return False, records
        if plan.names:
            self._run_names(plan, records)
        for stats in plan.stats:
            stats.labeled += len(run)
        self._last = plan
        return True, records

    def _run_names(self, plan: _ShapePlan, records: list[dict]) -> None:
        """``CLASS_NAMES`` over a run found valid: a line naming a class the attribute's table
        does not hold as it does (a new id, or another name) is noted or said, as the per-line
        path would, in line order; a line it makes an error of (``--strict``) counts invalid."""
        out = self.out
        for i, record in enumerate(records):
            for attribute, meta_key, test, task_type, stats in plan.names:
                label, meta = record[attribute], record[meta_key]
                if not test(label, meta):
                    errors = out.errors
                    self._check_class_names(self._run_line + i, attribute, task_type, label, meta)
                    stats.invalid += out.errors > errors

    def plan_of(self, shape: tuple, first: dict) -> _ShapePlan | None:
        """The plan of a line shape (``_shape_plan``, from its first line), made once a checker."""
        plan = self._shapes.get(shape, _UNSET)
        if plan is _UNSET:
            plan = self._shape_plan(shape, first)
            if len(self._shapes) < _CACHE_SIZE:
                self._shapes[shape] = plan
        return plan

    def _shape_plan(self, shape: tuple, first: dict) -> _ShapePlan | None:
        """How to check a run of lines with these keys at once, from its first line; None when a
        line of this shape always needs the per-line path (a rule it breaks, a departure, ...)."""
        if ("source-ref" in shape) == ("source" in shape) or any(not isinstance(k, str) for k in shape):
            return None
        properties: dict[str, Any] = {}
        predicates = []
        stats = []
        typed: dict[str, tuple[dict, dict]] | None = {}  # None: this shape has no typed path
        typed_predicates = []
        names: list[tuple[str, str, Callable[[Any, Any], bool], str, AttributeStats]] = []
        typed_names: list[tuple[str, str, str]] = []  # (label, metadata, where the names are) of ``names_test``
        tables: list[dict[int, str]] = []  # their class names by id
        colors: list[set[tuple[int, str]]] = []  # the mask labels' (index, colour) pairs known
        infos = [self._keys.get(key) or self._key(key) for key in shape]
        for info in infos:
            if info.suspicious:
                return None
            if info.attribute is None:
                continue
            meta = first[info.key]
            kind = meta.get("type") if type(meta) is dict else None
            if type(kind) is not str:  # not a label's metadata: must stay so on every line
                if type(meta) is dict and not _no_label_status(meta):
                    return None  # a failed or routed line declaring no type: counted line by line
                properties[info.key] = {"not": {"anyOf": _UNTYPED_MARKS}}
                typed = None
                continue
            plan = info.plans.get(kind)
            if plan is None:
                tt = task_type_of_metadata(meta)
                if tt is None:
                    return None
                plan = self.new_plan(info.attribute, tt)
                info.plans[kind] = plan
            if not plan.settled and first.get(info.attribute) is not None and _no_label_status(meta) and self.one_type(
                    self._run_line, info.attribute, declared_task_type(plan.task_type.name, info.attribute, first[info.attribute]),
                    kind):
                plan.settle()  # the run's first line is the attribute's first label (else the per-line path says so)
            if not plan.fast or info.attribute not in shape:
                return None
            pair = _fast_schema(plan.task_type.name)
            properties[info.attribute] = pair["properties"]["label"]
            properties[info.key] = {"allOf": [pair["properties"]["metadata"], *_LABEL_STATUS]}
            if plan.clean is not None:
                predicates.append((operator.itemgetter(info.attribute), operator.itemgetter(info.key), plan.clean))
            if plan.names is not None:
                names.append((info.attribute, info.key, plan.names, plan.task_type.name, plan.stats))
            stats.append(plan.stats)
            typed_clean = semantics.TYPED_CLEAN.get(plan.task_type.name)
            if typed is not None and (typed_clean is not None or plan.clean is None) and (
                    "failure-reason" not in pair["properties"]["metadata"].get("properties", {})):
                typed[info.attribute] = (pair["properties"]["label"], pair)
                typed[info.key] = (pair["properties"]["metadata"], pair)
                if typed_clean is not None and self._task_rules:
                    typed_predicates.append((info.attribute, info.key, typed_clean))
                if plan.names is not None and (self._task_rules or (
                        info.attribute == self._names_of and plan.task_type.name not in COLOR_TYPES)):
                    typed_names.append((info.attribute, info.key, _names_at(plan.task_type.name)))
                    tables.append(self.out.names_of(info.attribute).by_id)
                    if plan.task_type.name in COLOR_TYPES:
                        colors.append(self.out.colors_of(info.attribute).by_id)
            else:
                typed = None
        for key in SOURCE_SCHEMAS.keys() & set(shape):  # the source value's type (``source_value_suspicious``)
            properties[key] = SOURCE_SCHEMAS[key]
            if typed is not None:
                typed[key] = (SOURCE_SCHEMAS[key], SOURCE_SCHEMAS[key])
        schema = {"$id": ref("run"), "type": "array", "items": {"type": "object", "properties": properties}}
        fast = _typed_plan(shape, first, typed, typed_predicates, typed_names) if typed is not None else None
        if fast is not None and tables:
            fast = fast.bound(tables, colors)  # the plan is shared by the process's ranges; the names are this range's
        return _ShapePlan(_run_schema(orjson.dumps(schema, option=orjson.OPT_SORT_KEYS)), predicates, stats, fast,
                          names)

    # ---- one line at a time
    def _lines(self, run: list[bytes], number: int, records: list | None) -> int:
        """The per-line path: the common case stays in this loop, on local names; anything else
        leaves it for a method that works the problems out."""
        out = self.out
        loads, decode_error, keys = orjson.loads, orjson.JSONDecodeError, self._keys
        whole_lines = self.schema is not None
        one_attribute = self.label_attribute is not None
        size_limit = MAX_ATTRIBUTE_CHARS
        for i, body in enumerate(run):
            number += 1
            if records is not None:
                record = records[i]
            else:
                try:
                    record = loads(body)
                except decode_error:
                    self._unparsable(number, body)
                    continue
            if type(record) is not dict:
                out.add(number, "", "line-json",
                        rule_message("line-json", detail=f"found a JSON {json_kind(record)}, not an object"))
                continue
            if whole_lines:
                self._check_document(number, record)
                continue
            # input rules: cheap tests first; the exact (slower) checks run only on suspicion
            suspicious = (("source-ref" in record) is ("source" in record) or len(body) > size_limit
                          or source_value_suspicious(record))
            metadata_keys = []
            for key in record:
                info = keys.get(key) or self._key(key)
                if info.suspicious:  # a ``$`` key (a repeated key: ``may_repeat_a_key`` below)
                    suspicious = True
                if info.attribute is not None:
                    metadata_keys.append(info)
            if suspicious or may_repeat_a_key(body, record):
                self._check_input_rules(number, body, record)
            if one_attribute:
                attribute = self.label_attribute
                self._check_attribute(number, record, attribute, record.get(attribute + METADATA_SUFFIX))
                continue
            for info in metadata_keys:
                meta = record[info.key]
                if type(meta) is not dict:
                    continue
                kind = meta.get("type")
                if type(kind) is not str:  # e.g. source-ref-metadata: not a label's metadata
                    if not _no_label_status(meta):  # Ground Truth's failed object, or a routed one
                        self.untyped_no_label(number, info.attribute, meta, record.get(info.attribute) is not None)
                    continue
                plan = info.plans.get(kind)
                if (plan is not None and plan.fast and "failure-reason" not in meta and "review-status" not in meta
                        and plan.is_valid(record)
                        and (plan.clean is None or plan.clean(record[info.attribute], meta))
                        and (plan.names is None or plan.names(record[info.attribute], meta))):
                    plan.stats.labeled += 1
                    continue
                self._found_attribute(number, record, info, meta, kind, plan)
        return number
