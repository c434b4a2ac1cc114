"""Validation of labels and whole manifests, reporting every problem with line, key and rule.

``check_label`` is what a job runs on each label before writing it; ``validate_manifest`` is
the ``validate`` command. Both go through the same steps per label attribute: naming rules,
the task type's schema (``schemas/<task-type>.json`` over ``{"label", "metadata"}``), then the
cross-field rules of ``semantics``.

Validation is the hot path. A valid line costs one ``orjson.loads``, one ``is_valid`` per label
attribute (a compiled schema that also checks the naming conventions), the type's own
predicates and a few dictionary lookups; the detailed error list, the byte-span scanner and
character counts run only for lines that fail a cheap test. Large files are split into byte
ranges checked by one process each (ranges partition a file the way ``io.iter_raw_lines``
does); each process numbers its own lines and the parent offsets them. Memory stays flat: lines
stream, and only the first ``max_problems`` problems are kept, with counts by rule for all.
"""

from __future__ import annotations

import copy
import functools
import gc
import itertools
import multiprocessing
import operator
import os
import re
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import IO, Any, Literal

import fsspec
import orjson

from .. import storage, worker_pool
from ..errors import ManifestError, UsageError, json_kind
from ..task_types import TASK_TYPES, TaskType, get_task_type, task_type_of_metadata
from . import semantics
from .line import BOM, Line, duplicate_key_paths, may_repeat_a_key, scan_top_level
from .naming import (
    MAX_ATTRIBUTE_CHARS,
    MAX_LINE_CHARS,
    METADATA_SUFFIX,
    REF_SUFFIX,
    input_line_violations,
    label_attribute_violations,
    rule_message,
)
from .schemas import compile_schema, format_path, load_schema, ref, validator

Severity = Literal["error", "warning"]

#: files larger than this are split across processes (when more than one worker is allowed)
PARALLEL_THRESHOLD = 32 << 20
RANGES_PER_WORKER = 4
MIN_RANGE_BYTES = 16 << 20
MAX_PROBLEMS = 1000
#: task types whose ``-ref`` requirement the developer guide states inconsistently (the Output
#: Data page omits video frame jobs; the API lists them), so a missing ``-ref`` is a departure
_REF_DOCUMENTED_LOOSELY = frozenset({"video-object-detection", "video-object-tracking"})

RULES: dict[str, str] = {
    "label-missing": "the -metadata object declares a task type but the label attribute is absent",
    "metadata-missing": "the label attribute is present but its -metadata object is absent",
    "metadata-type-unknown": "the -metadata type is not a task type this tool knows",
    "failure-with-label": "a failed object's metadata (failure-reason) sits next to a label value",
}


@dataclass(frozen=True, slots=True)
class Problem:
    """One broken rule. ``line`` is None for a label checked outside a manifest."""

    line: int | None
    key: str
    rule: str
    message: str
    severity: Severity = "error"

    def __str__(self) -> str:
        where = f"line {self.line}" if self.line is not None else "label"
        key = f" {self.key}:" if self.key else ""
        return f"{where}: {self.severity}:{key} {self.message} [{self.rule}]"

    def to_dict(self) -> dict:
        return asdict(self)


# --------------------------------------------------------------------------------------------
# one label


def check_label(
    task_type: str | TaskType, value: Any, metadata: Any, *, attribute: str | None = None
) -> list[Problem]:
    """Problems of one label and its metadata (empty when valid); what a job checks before writing.

    Key paths start at ``label``/``metadata``, or at the attribute and its ``-metadata`` key when
    ``attribute`` is given. A metadata object with ``failure-reason`` is checked as a failure.
    A valid label costs one compiled-schema check and the task type's own predicates.
    """
    tt = task_type if isinstance(task_type, TaskType) else get_task_type(task_type)
    fast_valid, specific = fast_path(tt.name)
    if (type(metadata) is dict and "failure-reason" not in metadata
            and fast_valid({"label": value, "metadata": metadata})
            and (specific is None or specific(value, metadata))):
        return []
    return explain_label(tt, value, metadata, attribute=attribute)


def explain_label(
    task_type: str | TaskType, value: Any, metadata: Any, *, attribute: str | None = None
) -> list[Problem]:
    """``check_label`` without its fast path: always works the problems out in full."""
    tt = task_type if isinstance(task_type, TaskType) else get_task_type(task_type)
    label_key = attribute if attribute else "label"
    meta_key = attribute + METADATA_SUFFIX if attribute else "metadata"
    sink = _ListSink()
    if isinstance(metadata, dict) and "failure-reason" in metadata:
        _check_failure(sink, None, metadata, meta_key)
    else:
        _check_pair(sink, None, tt.name, value, metadata, label_key, meta_key)
    return sink.problems


@functools.cache
def _fast_schema(task_type: str) -> dict:
    """The task type's pair schema with ``semantics.CONVENTIONS`` merged into its metadata
    properties, so one walk checks both."""
    name = TASK_TYPES[task_type].schema
    schema = copy.deepcopy(load_schema(name))
    schema["$id"] = ref(name + "-fast")  # a sibling URI: its relative references still resolve
    meta = schema["properties"]["metadata"]
    for key, extra in semantics.CONVENTIONS["properties"].items():
        current = meta["properties"].get(key, {})
        if key in semantics.CONVENTIONS_REPLACE:
            meta["properties"][key] = extra  # stricter than the definition it replaces: one check, not two
        elif isinstance(current.get("const"), str) and extra["type"] == "string" and re.fullmatch(
                extra["pattern"], current["const"]):
            continue  # the constant already satisfies the convention
        else:
            meta["properties"][key] = {"allOf": [current, extra]}
    meta["required"] = [*meta.get("required", []),
                        *(r for r in semantics.CONVENTIONS["required"] if r not in meta.get("required", []))]
    return schema


@functools.cache
def fast_path(task_type: str) -> tuple[Callable[[Any], bool], Callable[[Any, dict], bool] | None]:
    """``(is_valid, specific)`` for a task type: a pair with ``is_valid(pair)`` true and
    ``specific(label, metadata)`` true (or None) has no problem at all, error or warning."""
    return compile_schema(_fast_schema(task_type), task_type).is_valid, semantics.specific_predicate(task_type)


@functools.cache
def _fast_record_validator(task_type: str, attribute: str) -> Callable[[Any], bool]:
    """``fast_path``'s schema applied to a whole line: ``attribute`` and its metadata key in
    place of ``label`` and ``metadata`` (saves building a pair per line)."""
    pair = _fast_schema(task_type)
    schema = {
        "$id": pair["$id"],
        "type": "object",
        "required": [attribute, attribute + METADATA_SUFFIX],
        "properties": {
            attribute: pair["properties"]["label"],
            attribute + METADATA_SUFFIX: pair["properties"]["metadata"],
        },
    }
    return compile_schema(schema, task_type).is_valid


class _ListSink:
    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def add(self, line: int | None, key: str, rule: str, message: str, severity: Severity = "error") -> None:
        self.problems.append(Problem(line, key, rule, message, severity))


def _check_pair(sink: Any, line: int | None, task_type: str, value: Any, metadata: Any,
                label_key: str, meta_key: str, schema_metadata: Any = None) -> bool:
    """Schema, then semantics; ``schema_metadata`` replaces the metadata for the schema only."""
    compiled = validator(TASK_TYPES[task_type].schema)
    pair = {"label": value, "metadata": metadata if schema_metadata is None else schema_metadata}
    if not compiled.is_valid(pair):
        roots = {"label": label_key, "metadata": meta_key}
        for err in compiled.errors(pair):
            path = err.path
            root = roots.get(path[0], "") if path else ""
            sink.add(line, format_path(path[1:], root) if path else "", f"schema-{err.keyword}", err.message)
        return False
    findings = semantics.check_pair(task_type, value, metadata)
    ok = True
    for f in findings:
        root = label_key if f.where == "label" else meta_key
        sink.add(line, format_path(f.path, root), f.rule, f.message, f.severity)
        ok = ok and f.severity != "error"
    return ok


def _check_failure(sink: Any, line: int | None, metadata: dict, meta_key: str, schema: str = "failure") -> None:
    """A metadata object without a label beside it: ``failure`` (the job could not label the
    line) or ``routed`` (left for human review)."""
    compiled = validator(schema)
    if not compiled.is_valid(metadata):
        for err in compiled.errors(metadata):
            sink.add(line, format_path(err.path, meta_key), f"schema-{err.keyword}", err.message)
        return
    for f in semantics.common_metadata(metadata):
        if f.rule != "departure-job-name-missing":  # a failure may well carry no job-name
            sink.add(line, format_path(f.path, meta_key), f.rule, f.message, f.severity)


# --------------------------------------------------------------------------------------------
# one input line: the rules a job enforces before it starts, and ``validate`` on every line


def input_rules(sink: Any, number: int | None, body: bytes, record: dict) -> None:
    """The exact input rules of one parsed line (source keys, line and value length, ``$`` keys,
    repeated keys at any depth), each problem handed to ``sink.add``. Exact means slower: the
    callers run it on lines that fail a cheap test (``needs_input_rules``)."""
    size = len(body)
    text = body.rstrip(b"\r\n")
    for path in duplicate_key_paths(text):
        sink.add(number, format_path(path), "duplicate-key", rule_message("duplicate-key"))
    value_chars: dict[str, int] = {}
    if size > MAX_ATTRIBUTE_CHARS:
        for span in scan_top_level(text):
            value_chars[span.key] = len(text[span.value_start : span.value_end].decode("utf-8", "replace"))
    line_chars = len(text.decode("utf-8", "replace")) if size > MAX_LINE_CHARS else size
    for key, violation in input_line_violations(record, line_chars, value_chars):
        sink.add(number, key, violation.rule, violation.message)


def needs_input_rules(body: bytes, record: dict) -> bool:
    """False only for a line that certainly passes ``input_rules``: one source key, short
    enough, no ``$`` key, no repeated key."""
    return (("source-ref" in record) is ("source" in record) or len(body) > MAX_ATTRIBUTE_CHARS
            or any(type(k) is not str or k.startswith("$") for k in record) or may_repeat_a_key(body, record))


def input_line_problems(line: Line) -> list[Problem]:
    """Every line-level rule ``validate`` applies to an input line (UTF-8, one JSON object, the
    input rules), as problems; empty for a good line. What a job checks before it starts."""
    try:
        record = line.record()
    except ManifestError as exc:
        return [Problem(line.number, "", exc.rule, exc.detail)]
    if not needs_input_rules(line.body, record):
        return []
    sink = _ListSink()
    input_rules(sink, line.number, line.body, record)
    return sink.problems


# --------------------------------------------------------------------------------------------
# whole manifests


@dataclass
class AttributeStats:
    """What one label attribute holds across the file."""

    task_types: list[str] = field(default_factory=list)
    labeled: int = 0
    failed: int = 0
    #: left unlabeled for human review (``review-status: routed``, this tool's extension)
    routed: int = 0
    invalid: int = 0

    def merge(self, other: AttributeStats) -> None:
        for t in other.task_types:
            if t not in self.task_types:
                self.task_types.append(t)
        self.labeled += other.labeled
        self.failed += other.failed
        self.routed += other.routed
        self.invalid += other.invalid


@dataclass
class ValidationReport:
    url: str
    lines: int = 0
    blank_lines: int = 0
    #: lines without the requested label attribute (only counted with ``label_attribute``)
    unlabeled: int = 0
    errors: int = 0
    warnings: int = 0
    #: the first ``max_problems`` problems, in line order
    problems: list[Problem] = field(default_factory=list)
    #: how many problems each rule produced, all of them (also those not kept)
    counts_by_rule: dict[str, int] = field(default_factory=dict)
    attributes: dict[str, AttributeStats] = field(default_factory=dict)
    schema: str | None = None
    strict: bool = False

    @property
    def ok(self) -> bool:
        return self.errors == 0

    @property
    def problems_dropped(self) -> int:
        return self.errors + self.warnings - len(self.problems)

    def summary(self) -> str:
        verdict = "valid" if self.ok else "INVALID"
        parts = [f"{self.url}: {verdict}: {self.lines:,} lines, {self.errors:,} errors, {self.warnings:,} warnings"]
        if self.blank_lines:
            parts.append(f"  blank lines: {self.blank_lines:,}")
        if self.schema:
            parts.append(f"  every line checked against schema {self.schema!r}")
        for name, stats in sorted(self.attributes.items()):
            types = ", ".join(stats.task_types)
            parts.append(
                f"  attribute {name!r} ({types}): {stats.labeled:,} labeled, {stats.failed:,} failed, "
                + (f"{stats.routed:,} routed to review, " if stats.routed else "")
                + f"{stats.invalid:,} lines with errors"
            )
        if self.unlabeled:
            parts.append(f"  lines without the label attribute: {self.unlabeled:,}")
        if self.counts_by_rule:
            counts = ", ".join(f"{rule} {n:,}" for rule, n in sorted(self.counts_by_rule.items()))
            parts.append(f"  problems by rule: {counts}")
        if self.problems_dropped > 0:
            parts.append(f"  ({self.problems_dropped:,} more problems not listed)")
        return "\n".join(parts)

    def to_dict(self) -> dict:
        return {
            "url": self.url,
            "ok": self.ok,
            "lines": self.lines,
            "blank_lines": self.blank_lines,
            "unlabeled": self.unlabeled,
            "errors": self.errors,
            "warnings": self.warnings,
            "schema": self.schema,
            "strict": self.strict,
            "problems": [p.to_dict() for p in self.problems],
            "problems_dropped": self.problems_dropped,
            "counts_by_rule": dict(sorted(self.counts_by_rule.items())),
            "attributes": {k: asdict(v) for k, v in sorted(self.attributes.items())},
        }


class _Collector:
    """Problems and counts of one byte range (or one whole file)."""

    def __init__(self, strict: bool, max_problems: int) -> None:
        self.strict = strict
        self.max_problems = max_problems
        self.problems: list[Problem] = []
        self.counts: Counter[str] = Counter()
        self.errors = 0
        self.warnings = 0
        self.lines = 0
        self.blank = 0
        self.unlabeled = 0
        self.attributes: dict[str, AttributeStats] = {}

    def add(self, line: int | None, key: str, rule: str, message: str, severity: Severity = "error") -> None:
        if self.strict:
            severity = "error"
        if severity == "error":
            self.errors += 1
        else:
            self.warnings += 1
        self.counts[rule] += 1
        if len(self.problems) < self.max_problems:
            self.problems.append(Problem(line, key, rule, message, severity))

    def stats(self, attribute: str, task_type: str) -> AttributeStats:
        s = self.attributes.get(attribute)
        if s is None:
            s = self.attributes[attribute] = AttributeStats()
        if task_type not in s.task_types:
            s.task_types.append(task_type)
        return s


def iter_line_batches(f: IO[bytes], *, start: int = 0, end: int | None = None,
                      chunk: int = 1 << 20) -> Iterator[list[bytes]]:
    """The lines of ``[start, end)`` in batches, without their ``\\n`` (a ``\\r`` stays; JSON
    ignores it). Same partition as ``io.iter_raw_lines`` (a line belongs to the range its first
    byte is in), but a batch is one ``split`` of a chunk: no per-line generator step or copy."""
    if start > 0:
        f.seek(start - 1)
        if f.read(1) != b"\n":  # ``start`` is inside a line: that line belongs to the range before
            start += len(f.readline())
    offset = start  # file offset of the first byte of ``pending``
    pending = b""
    long_line: list[bytes] = []  # chunks of a line longer than a chunk, joined once it ends
    while end is None or offset < end:
        data = f.read(chunk)
        if not data:
            if long_line:
                pending = b"".join([*long_line, pending])
            if pending:
                yield [pending]
            return
        if b"\n" not in data:  # no line ends in this chunk (a long line, or a last line without ``\n``)
            long_line.append(pending)
            pending = data
            continue
        if long_line:
            pending = b"".join([*long_line, pending])
            long_line = []
        lines = (pending + data).split(b"\n")
        pending = lines.pop()
        if end is not None and offset + sum(map(len, lines)) + len(lines) > end:
            kept = []
            for line in lines:  # the range ends inside this batch: keep lines starting before ``end``
                if offset >= end:
                    break
                kept.append(line)
                offset += len(line) + 1
            yield kept
            return
        offset += sum(map(len, lines)) + len(lines)
        yield lines


class _KeyInfo:
    """What the hot loop needs to know about a top-level key, computed once per distinct key."""

    __slots__ = ("attribute", "encoded", "key", "plans", "suspicious")

    def __init__(self, key: str) -> None:
        self.key = key
        self.encoded = orjson.dumps(key)
        self.suspicious = key.startswith("$")
        #: for a ``<attribute>-metadata`` key: the attribute, and a plan per ``type`` string seen
        self.attribute = key[: -len(METADATA_SUFFIX)] if key.endswith(METADATA_SUFFIX) else None
        self.plans: dict[str, _Plan] = {}


class _Plan:
    """How to check one attribute declaring one type string; the fast path needs nothing else."""

    __slots__ = ("clean", "fast", "is_valid", "stats", "task_type")

    def __init__(self, attribute: str, task_type: TaskType, naming_clean: bool, stats: AttributeStats) -> None:
        self.task_type = task_type
        self.stats = stats
        #: checks the whole line: the attribute as the label, its metadata key as the metadata
        self.is_valid = _fast_record_validator(task_type.name, attribute)
        self.clean = fast_path(task_type.name)[1]
        # the point cloud departure (detection type on a -ref file reference) takes the full path
        special = task_type.name == "point_cloud_object_detection" and attribute.endswith(REF_SUFFIX)
        self.fast = naming_clean and not special


_CACHE_SIZE = 4096
#: lines checked at once on the fast path (a run): small enough that a failing run costs little
RUN_LINES = 256
_UNSET: Any = object()


@dataclass(frozen=True, slots=True)
class _ShapePlan:
    """Checks a run of lines sharing one key sequence at once (see ``_LineChecker._try_run``)."""

    encoded: tuple[bytes, ...]
    is_valid: Callable[[Any], bool]
    predicates: list[tuple[Callable[[Any], Any], Callable[[Any], Any], Callable[[Any, dict], bool]]]
    stats: list[AttributeStats]


class _LineChecker:
    """The per-line rules for one byte range, with caches for what repeats across lines."""

    def __init__(self, label_attribute: str | None, task_type: TaskType | None, schema: str | None,
                 out: _Collector) -> None:
        self.label_attribute = label_attribute
        self.task_type = task_type
        self.schema = schema
        self.out = out
        self._keys: dict[str, _KeyInfo] = {}
        self._naming_cache: dict[tuple[str, str], list[tuple[str, str, str, Severity]]] = {}
        self._shapes: dict[tuple, _ShapePlan | None] = {}
        self._document = validator(schema) if schema else None

    def run(self, batches: Iterator[list[bytes]]) -> None:
        """Check every line: whole runs of valid lines at once where possible (``_try_run``),
        each line of a run that is not (or cannot be checked at once) on its own."""
        gc_was_enabled = gc.isenabled()
        gc.disable()  # nothing here makes reference cycles; the collector would only rescan young dicts
        number = 0
        batch_ok = self._try_run if self._runs_possible else None
        try:
            for batch in batches:
                for at in range(0, len(batch), RUN_LINES):
                    run = batch[at : at + RUN_LINES]
                    records = None
                    if batch_ok is not None:
                        ok, records = batch_ok(run)
                        if ok:
                            number += len(run)
                            continue
                    number = self._lines(run, number, records)
        finally:
            if gc_was_enabled:
                gc.enable()
        self.out.lines += number

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
        shape = shapes.pop()
        plan = self._shapes.get(shape, _UNSET)
        if plan is _UNSET:
            plan = self._shape_plan(shape, records[0])
            if len(self._shapes) < _CACHE_SIZE:
                self._shapes[shape] = plan
        if plan is None or max(map(len, run)) > MAX_ATTRIBUTE_CHARS:
            return False, records
        joined = b"\n".join(run)
        n = len(run)
        for encoded in plan.encoded:
            if joined.count(encoded) != n:  # some line holds a key's text twice
                return False, records
        if may_repeat_a_key(joined, records):  # a key repeated deeper inside some line
            return False, records
        if not plan.is_valid(records):
            return False, records
        for label_of, metadata_of, predicate in plan.predicates:
            if not all(map(predicate, map(label_of, records), map(metadata_of, records))):
                return False, records
        for stats in plan.stats:
            stats.labeled += n
        return True, records

    def _shape_plan(self, shape: tuple, first: dict) -> _ShapePlan | None:
        """How to check a run of lines with these keys at once, from its first line; None when a
        line of this shape always needs the per-line path (a rule it breaks, a departure, ...)."""
        if ("source-ref" in shape) == ("source" in shape) or any(not isinstance(k, str) for k in shape):
            return None
        properties: dict[str, Any] = {}
        predicates = []
        stats = []
        infos = [self._keys.get(key) or self._key(key) for key in shape]
        for info in infos:
            if info.suspicious:
                return None
            if info.attribute is None:
                continue
            meta = first[info.key]
            kind = meta.get("type") if type(meta) is dict else None
            if type(kind) is not str:  # not a label's metadata: must stay so on every line
                properties[info.key] = {"not": {"type": "object", "required": ["type"],
                                                "properties": {"type": {"type": "string"}}}}
                continue
            plan = info.plans.get(kind)
            if plan is None:
                tt = task_type_of_metadata(meta)
                if tt is None:
                    return None
                plan = _Plan(info.attribute, tt, not self._naming(info.attribute, tt),
                             self.out.stats(info.attribute, tt.name))
                info.plans[kind] = plan
            if not plan.fast or info.attribute not in shape:
                return None
            pair = _fast_schema(plan.task_type.name)
            properties[info.attribute] = pair["properties"]["label"]
            properties[info.key] = {"allOf": [pair["properties"]["metadata"], {"not": {"required": ["failure-reason"]}}]}
            if plan.clean is not None:
                predicates.append((operator.itemgetter(info.attribute), operator.itemgetter(info.key), plan.clean))
            stats.append(plan.stats)
        schema = {"$id": ref("run-" + str(len(self._shapes))), "type": "array",
                  "items": {"type": "object", "properties": properties}}
        return _ShapePlan(tuple(info.encoded for info in infos), compile_schema(schema).is_valid, predicates, stats)

    # ---- one line at a time
    def _lines(self, run: list[bytes], number: int, records: list | None) -> int:
        """The per-line path: the common case stays in this loop, on local names; anything else
        leaves it for a method that works the problems out."""
        out = self.out
        loads, decode_error = orjson.loads, orjson.JSONDecodeError
        keys = self._keys
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
            suspicious = ("source-ref" in record) is ("source" in record) or len(body) > size_limit
            metadata_keys = []
            for key in record:
                info = keys.get(key) or self._key(key)
                # a key's JSON text found more than once: a duplicate key, or the same string elsewhere
                if info.suspicious or body.count(info.encoded) != 1:
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
                if type(kind) is not str:
                    continue  # e.g. source-ref-metadata: not a label's metadata
                plan = info.plans.get(kind)
                if (plan is not None and plan.fast and "failure-reason" not in meta and plan.is_valid(record)
                        and (plan.clean is None or plan.clean(record[info.attribute], meta))):
                    plan.stats.labeled += 1
                    continue
                self._found_attribute(number, record, info, meta, kind, plan)
        return number

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
                return
            if self.task_type is not None and tt is not self.task_type:
                return
            attribute = info.attribute
            plan = _Plan(attribute, tt, not self._naming(attribute, tt), self.out.stats(attribute, tt.name))
            if len(info.plans) < _CACHE_SIZE:
                info.plans[kind] = plan
        self._check_attribute(number, record, info.attribute, meta, plan.task_type)

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
        if meta is None:
            if attribute in record:
                out.add(number, meta_key, "metadata-missing",
                        f"{attribute!r} has a value but no {meta_key!r} object says what it is")
            else:
                out.unlabeled += 1
            return
        if tt is None:
            tt = self.task_type or task_type_of_metadata(meta)
            if tt is None:
                kind = meta.get("type") if isinstance(meta, dict) else None
                out.add(number, meta_key, "metadata-type-unknown",
                        f"{meta_key!r} does not declare a known task type (type {kind!r}); give --task-type")
                return
        stats = out.stats(attribute, tt.name)
        errors_before = out.errors
        if type(meta) is dict and "failure-reason" in meta:
            stats.failed += 1
            _check_failure(out, number, meta, meta_key)
            if attribute in record:
                out.add(number, attribute, "failure-with-label",
                        "the metadata says this object failed (failure-reason) but a label value is present",
                        "warning")
        elif type(meta) is dict and "review-status" in meta and attribute not in record:
            stats.routed += 1
            _check_failure(out, number, meta, meta_key, "routed")
        elif attribute not in record:
            out.add(number, attribute, "label-missing",
                    f"{meta_key!r} declares {tt.gt_type} but there is no {attribute!r} value")
        else:
            value = record[attribute]
            schema_meta = None
            if (tt.name == "point_cloud_object_detection" and attribute.endswith(REF_SUFFIX)
                    and type(value) is str and type(meta) is dict):
                out.add(number, meta_key + ".type", "departure-type-mismatch",
                        f"type says {tt.gt_type} (inline cuboids) but {attribute!r} holds a file reference: "
                        "checked as groundtruth/point_cloud_object_tracking, as Ground Truth's own sample "
                        "sequence output is written", "warning")
                tt = TASK_TYPES["point_cloud_object_tracking"]
                schema_meta = {**meta, "type": tt.gt_type}
            for key, rule, message, severity in self._naming(attribute, tt):
                out.add(number, key, rule, message, severity)
            _check_pair(out, number, tt.name, value, meta, attribute, meta_key, schema_meta)
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


def _check_range(url: str, start: int, end: int | None, label_attribute: str | None, task_type: str | None,
                 schema: str | None, strict: bool, max_problems: int) -> _Collector:
    """Check the lines starting in ``[start, end)``; line numbers count from 1 within the range."""
    out = _Collector(strict, max_problems)
    checker = _LineChecker(label_attribute, get_task_type(task_type) if task_type else None, schema, out)
    with storage.open_read(url) as f:
        batches = iter_line_batches(f, start=start, end=end)
        if start == 0:  # a byte order mark before the file's first line is not part of its JSON
            first = next(batches, None)
            if first is None:
                return out
            if first[0].startswith(BOM):
                first[0] = first[0][len(BOM):]
            batches = itertools.chain([first], batches)
        checker.run(batches)
    return out


def _pool_context() -> multiprocessing.context.BaseContext:
    """``fork`` when this process runs no other thread (nothing can hold a lock across the fork,
    and workers start at once); otherwise ``spawn``, which starts from this process's current
    environment and configuration without inheriting threads."""
    if threading.active_count() == 1 and "fork" in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("spawn")


def _shared_between_processes(url: str) -> bool:
    """Whether a worker process can open the URL too (not so for ``memory://``)."""
    fs, _ = storage.url_to_fs(url)
    protocols = (fs.protocol,) if isinstance(fs.protocol, str) else tuple(fs.protocol)
    return "memory" not in protocols


def _check_range_in_worker(fsspec_conf: dict, *args: Any) -> _Collector:
    fsspec.config.conf.update(fsspec_conf)  # storage options configured in the parent at run time
    return _check_range(*args)


def validate_manifest(
    url: str,
    *,
    label_attribute: str | None = None,
    task_type: str | None = None,
    schema: str | None = None,
    strict: bool = False,
    workers: int | None = None,
    max_problems: int = MAX_PROBLEMS,
) -> ValidationReport:
    """Check every line of a manifest (any fsspec URL) and report what breaks which rule.

    Without ``label_attribute`` every attribute whose ``-metadata`` type is a known task type is
    checked (only those of ``task_type`` when it is given); with it, only that attribute, as
    ``task_type`` (or the type its metadata declares). With ``schema`` each whole line is checked
    against that schema instead (e.g. ``seqlabel`` for a SeqLabel.json). ``strict`` turns
    warnings (blank lines, departures from the documented rules) into errors. ``workers``
    defaults to the number of CPUs, used only for files over 32 MB.
    """
    if schema is not None:
        if label_attribute or task_type:
            raise UsageError("--schema checks whole lines; it cannot be combined with --label-attribute/--task-type")
        load_schema(schema)
    if task_type is not None:
        task_type = get_task_type(task_type).name
    if workers is not None and workers < 1:
        raise UsageError(f"workers must be at least 1 (got {workers})")
    workers = workers or os.cpu_count() or 1
    size = storage.size(url)
    args = (label_attribute, task_type, schema, strict, max_problems)
    if workers > 1 and size > PARALLEL_THRESHOLD and _shared_between_processes(url):
        # a few ranges per worker, so a worker slowed by other work on the machine does not
        # leave the others idle at the end
        count = max(workers, min(workers * RANGES_PER_WORKER, size // MIN_RANGE_BYTES))
        step = -(-size // count)
        ranges = [(i * step, min((i + 1) * step, size)) for i in range(count)]
        with ProcessPoolExecutor(max_workers=workers, mp_context=_pool_context(),
                                 initializer=worker_pool.quiet_worker) as pool:
            conf = copy.deepcopy(fsspec.config.conf)
            with worker_pool.spawning():  # workers ignore Ctrl-C from their first instruction
                futures = [pool.submit(_check_range_in_worker, conf, url, start, end, *args) for start, end in ranges]
            try:
                parts = [f.result() for f in futures]
            except BaseException:
                worker_pool.stop(pool, futures)  # a Ctrl-C: no traceback from the pool or its workers
                raise
    else:
        parts = [_check_range(url, 0, None, *args)]
    return _merge(url, parts, schema, strict, max_problems)


def _merge(url: str, parts: list[_Collector], schema: str | None, strict: bool, max_problems: int) -> ValidationReport:
    report = ValidationReport(url, schema=schema, strict=strict)
    counts: Counter[str] = Counter()
    offset = 0
    for part in parts:
        for p in part.problems:
            if len(report.problems) >= max_problems:
                break
            line = p.line + offset if p.line is not None else None
            report.problems.append(Problem(line, p.key, p.rule, p.message, p.severity))
        offset += part.lines
        report.lines += part.lines
        report.blank_lines += part.blank
        report.unlabeled += part.unlabeled
        report.errors += part.errors
        report.warnings += part.warnings
        counts.update(part.counts)
        for name, stats in part.attributes.items():
            report.attributes.setdefault(name, AttributeStats()).merge(stats)
    report.counts_by_rule = dict(counts)
    return report
