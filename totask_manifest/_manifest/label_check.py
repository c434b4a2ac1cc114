"""The label check a job runs on each label before writing it (``check_label``), and the input
rules it runs on each line before starting (``input_line_problems``); ``validate`` runs the
same steps per label attribute: naming rules, the task type's schema
(``schemas/<task-type>.json`` over ``{"label", "metadata"}``), then the cross-field rules of
``semantics``. A valid label costs one compiled-schema check and the type's own predicates."""

from __future__ import annotations

import copy
import functools
import re
from collections.abc import Callable
from typing import Any

from .._errors import ManifestError
from .._task_types import TASK_TYPES, TaskType, get_task_type, task_type_of_metadata
from . import semantics
from .line import Line, any_lines_repeat_a_key, duplicate_key_paths, may_repeat_a_key, scan_top_level
from .naming import (
    MAX_ATTRIBUTE_CHARS,
    MAX_LINE_CHARS,
    METADATA_SUFFIX,
    input_line_violations,
    rule_message,
)
from .problems import ListSink, Problem
from .schemas import compile_schema, format_path, load_schema, ref, validator


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
    sink = ListSink()
    if isinstance(metadata, dict) and "failure-reason" in metadata:
        _check_failure(sink, None, metadata, meta_key)
    else:
        _check_pair(sink, None, tt.name, value, metadata, label_key, meta_key)
    return sink.problems


@functools.cache
def _fast_schema(task_type: str) -> dict:
    """The task type's pair schema with its ``semantics.conventions`` merged into its metadata
    properties, so one walk checks both."""
    name = TASK_TYPES[task_type].schema
    schema = copy.deepcopy(load_schema(name))
    schema["$id"] = ref(name + "-fast")  # a sibling URI: its relative references still resolve
    meta = schema["properties"]["metadata"]
    conventions = semantics.conventions(task_type)
    for key, extra in conventions["properties"].items():
        current = meta["properties"].get(key, {})
        if key in semantics.CONVENTIONS_REPLACE:
            meta["properties"][key] = extra  # stricter than the definition it replaces: one check, not two
        elif isinstance(current.get("const"), str) and extra["type"] == "string" and re.fullmatch(
                extra["pattern"], current["const"]):
            continue  # the constant already satisfies the convention
        else:
            meta["properties"][key] = {"allOf": [current, extra]}
    meta["required"] = [*meta.get("required", []),
                        *(r for r in conventions["required"] if r not in meta.get("required", []))]
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
    declared = task_type_of_metadata(metadata)  # the job-name form follows the type the failure names
    for f in semantics.common_metadata(metadata, declared.name if declared is not None else None):
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
    return _suspicious(body, record) or may_repeat_a_key(body, record)


def run_needs_input_rules(text: bytes, records: list, longest: int) -> bool:
    """``needs_input_rules`` over a run of parsed lines at once (the job's input scan): False
    only when every record is an object that certainly passes ``input_rules``. ``text`` is the
    run's lines joined as read (each with its ``\n``, the file's last perhaps without),
    ``longest`` the longest line's length with its terminator. The repeated-key test is one
    comparison over the whole run (``line.any_lines_repeat_a_key``); the key tests run once per
    key sequence (``_keys_suspicious``)."""
    if not all(type(record) is dict for record in records):
        return True
    return (longest > MAX_ATTRIBUTE_CHARS or any(map(_keys_suspicious, records))
            or any(map(source_value_suspicious, records)) or any_lines_repeat_a_key(text, records))


def _suspicious(body: bytes, record: dict) -> bool:
    """The cheap part of ``needs_input_rules``: two or no source keys, a long line, a key that
    is not a string or starts with ``$``, a source value that is not a string or an empty ``source-ref``."""
    return len(body) > MAX_ATTRIBUTE_CHARS or _keys_suspicious(record) or source_value_suspicious(record)


#: key sequences that passed ``_keys_suspicious``: a manifest's lines share a few, so the test of
#: each key runs once a sequence, not once a line (some 1 us a line of the input scan)
_CLEAR_KEYS: set[tuple] = set()
_CLEAR_KEYS_MAX = 4096


def _keys_suspicious(record: dict) -> bool:
    """Two or no source keys, or a key that is not a string or starts with ``$``."""
    keys = tuple(record)
    if keys in _CLEAR_KEYS:
        return False
    suspicious = (("source-ref" in record) is ("source" in record)
                  or any(type(k) is not str or k.startswith("$") for k in keys))
    if not suspicious and len(_CLEAR_KEYS) < _CLEAR_KEYS_MAX:
        _CLEAR_KEYS.add(keys)
    return suspicious


def source_value_suspicious(record: dict) -> bool:
    """The cheap test of a record's source value (one of the two keys is there): ``source-ref``
    a non-empty string, ``source`` a string (``naming.input_line_violations`` says which)."""
    ref = record.get("source-ref", _NAMED)
    return type(ref) is not str or not ref or type(record.get("source", "")) is not str


_NAMED = "-"  # a source-ref that passes, for a line that holds ``source`` instead
#: the same rule for a run of lines of one shape, as a schema (``line_check``'s shape plans)
SOURCE_SCHEMAS: dict[str, dict] = {"source-ref": {"type": "string", "minLength": 1}, "source": {"type": "string"}}


def input_line_problems(line: Line) -> list[Problem]:
    """Every line-level rule ``validate`` applies to an input line (UTF-8, one JSON object, the
    input rules), as problems; empty for a good line. What a job checks before it starts."""
    try:
        record = line.record()
    except ManifestError as exc:
        return [Problem(line.number, "", exc.rule, exc.detail)]
    if not needs_input_rules(line.body, record):
        return []
    sink = ListSink()
    input_rules(sink, line.number, line.body, record)
    return sink.problems
