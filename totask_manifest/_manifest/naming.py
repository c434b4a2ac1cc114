"""Ground Truth's label attribute and input line rules, one message per rule.

Sources: ``LabelAttributeName`` in the SageMaker API (length and pattern), the developer guide
(reserved names, ``-metadata``, ``-ref``) and the input manifest page (line and attribute
sizes, ``$`` keys). Each rule has a stable id that validation reports and tests assert on.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .._errors import LabelAttributeError, json_kind
from .._task_types import TaskType, get_task_type

LABEL_ATTRIBUTE_PATTERN = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,126}")
MAX_LABEL_ATTRIBUTE_LENGTH = 127
RESERVED_NAMES = frozenset({"source", "source-ref"})
MAX_LINE_CHARS = 100_000
MAX_ATTRIBUTE_CHARS = 20_000
METADATA_SUFFIX = "-metadata"
REF_SUFFIX = "-ref"

#: rule id -> the message a user reads; ``{name}`` and ``{task_type}`` are filled in
RULES: dict[str, str] = {
    "label-attribute-length": "label attribute {name!r} must be 1 to 127 characters long",
    "label-attribute-pattern": (
        "label attribute {name!r} may hold only ASCII letters, digits and hyphens, and must start and end "
        "with a letter or digit (pattern [a-zA-Z0-9](-*[a-zA-Z0-9]){{0,126}})"
    ),
    "label-attribute-metadata-suffix": "label attribute {name!r} must not end in '-metadata'",
    "label-attribute-reserved": "label attribute {name!r} is reserved ('source' and 'source-ref' hold the data object)",
    "label-attribute-ref-required": (
        "label attribute {name!r} must end in '-ref': task type {task_type} writes a file reference"
    ),
    "label-attribute-ref-forbidden": (
        "label attribute {name!r} must not end in '-ref': task type {task_type} writes its label inline"
    ),
    "line-json": "line is not a single JSON object: {detail}",
    "line-utf8": "line is not valid UTF-8: {detail}",
    "line-source": "line must hold exactly one of 'source-ref' and 'source' ({detail})",
    "line-source-value": "{detail}",
    "line-too-long": "line has {detail} characters; Ground Truth allows at most 100,000",
    "attribute-too-long": "value has {detail} characters; Ground Truth allows at most 20,000 per attribute",
    "key-dollar": "key must not start with '$'",
    "line-blank": "blank line (skipped by jobs and passed through unchanged)",
    "duplicate-key": "key appears more than once in the line",
}


@dataclass(frozen=True)
class Violation:
    rule: str
    message: str


def _violation(rule: str, **fields: object) -> Violation:
    return Violation(rule, RULES[rule].format(**fields))


def label_attribute_violations(name: str, task_type: TaskType | str | None = None) -> list[Violation]:
    """Every rule the name breaks; an empty list means Ground Truth would accept it."""
    found: list[Violation] = []
    if not 1 <= len(name) <= MAX_LABEL_ATTRIBUTE_LENGTH:
        found.append(_violation("label-attribute-length", name=name))
    if not LABEL_ATTRIBUTE_PATTERN.fullmatch(name):
        found.append(_violation("label-attribute-pattern", name=name))
    if name.endswith(METADATA_SUFFIX):
        found.append(_violation("label-attribute-metadata-suffix", name=name))
    if name in RESERVED_NAMES:
        found.append(_violation("label-attribute-reserved", name=name))
    if task_type is not None:
        tt = get_task_type(task_type) if isinstance(task_type, str) else task_type
        if tt.writes_reference and not name.endswith(REF_SUFFIX):
            found.append(_violation("label-attribute-ref-required", name=name, task_type=tt.name))
        elif not tt.writes_reference and name.endswith(REF_SUFFIX):
            found.append(_violation("label-attribute-ref-forbidden", name=name, task_type=tt.name))
    return found


def check_label_attribute(name: str, task_type: TaskType | str | None = None) -> None:
    """Raise ``LabelAttributeError`` for the first rule the name breaks."""
    found = label_attribute_violations(name, task_type)
    if found:
        raise LabelAttributeError(found[0].message, rule=found[0].rule)


def metadata_key(attribute: str) -> str:
    return attribute + METADATA_SUFFIX


def marks_no_label(meta: object) -> bool:
    """Whether a label attribute's metadata (``<attr>-metadata``) says the line holds no label of
    it, even beside a value: an earlier try failed (``failure-reason``) or routed the line to review
    (``review-status: routed``, this tool's extension). A chained job keeps the earlier value when
    it fails or routes a line, so one rule for every reader: the chain's selection
    (``jobs.selection.needs_label``), ``apply``, ``validate``, ``stats``, ``labeled`` and the exports."""
    return isinstance(meta, dict) and ("failure-reason" in meta or meta.get("review-status") == "routed")


def default_label_attribute(job_name: str, task_type: TaskType | str) -> str:
    """What Ground Truth's console and notebooks use when no attribute is given.

    The job name, with ``-ref`` appended for the task types that write a file reference.
    """
    tt = get_task_type(task_type) if isinstance(task_type, str) else task_type
    if tt.writes_reference and not job_name.endswith(REF_SUFFIX):
        return job_name + REF_SUFFIX
    return job_name


def source_ref_ok(value: object) -> bool:
    """Whether a ``source-ref`` value can name a data object: a non-empty string. Ground Truth's
    manifests hold an S3 URI there; a number, ``null`` or ``""`` made every job fail the line
    (``url-empty``) after ``validate`` had passed it."""
    return type(value) is str and value != ""


def _source_detail(rule: str, value: object) -> str:
    shown = "an empty string" if value == "" else f"JSON {json_kind(value)}"
    return f"{rule}; found {shown}"


def input_line_violations(record: dict, line_chars: int, value_chars: dict[str, int]) -> list[tuple[str, Violation]]:
    """Input rules for one parsed line: ``(key, violation)`` pairs, key ``""`` for the whole line.

    ``value_chars`` maps each top-level key to the character length of its raw JSON value, so
    the size rule measures what is in the file, not a re-serialisation.
    """
    found: list[tuple[str, Violation]] = []
    has_ref = "source-ref" in record
    has_source = "source" in record
    if has_ref and has_source:
        found.append(("", _violation("line-source", detail="it holds both")))
    elif not has_ref and not has_source:
        found.append(("", _violation("line-source", detail="it holds neither")))
    elif has_ref and not source_ref_ok(record["source-ref"]):
        found.append(("source-ref", _violation("line-source-value", detail=_source_detail(
            "must be the data object's URI, a non-empty string", record["source-ref"]))))
    elif has_source and type(record["source"]) is not str:
        found.append(("source", _violation("line-source-value", detail=_source_detail(
            "must be a string (the data object itself)", record["source"]))))
    if line_chars > MAX_LINE_CHARS:
        found.append(("", _violation("line-too-long", detail=f"{line_chars:,}")))
    for key, chars in value_chars.items():
        if chars > MAX_ATTRIBUTE_CHARS:
            found.append((key, _violation("attribute-too-long", detail=f"{chars:,}")))
    for key in record:
        if key.startswith("$"):
            found.append((key, _violation("key-dollar")))
    return found


#: the task type Ground Truth's own point cloud tracking sample declares, and the one it is read as
POINT_CLOUD_DETECTION, POINT_CLOUD_TRACKING = "point_cloud_object_detection", "point_cloud_object_tracking"


def declared_task_type(task_type: str, attribute: str, value: object) -> str:
    """The task type a label of ``attribute`` holding ``value`` is, its metadata declaring
    ``task_type``: Ground Truth's own point cloud tracking sample (the OT adjustment manifest)
    declares ``point_cloud_object_detection`` on a ``-ref`` attribute holding a sequence file's
    reference, so that pair is tracking (detection's labels are inline cuboids). One rule for
    ``validate`` (``line_rules``, which warns) and a job's held labels (``_jobs.held_labels``)."""
    if task_type == POINT_CLOUD_DETECTION and attribute.endswith(REF_SUFFIX) and type(value) is str:
        return POINT_CLOUD_TRACKING
    return task_type


def rule_message(rule: str, **fields: object) -> str:
    return RULES[rule].format(**fields)
