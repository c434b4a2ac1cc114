"""Validation of whole manifests (the ``validate`` command), reporting every problem with line,
key and rule; the package's validation names, re-exported from where they live:

* ``problems``: ``Problem``, ``ValidationReport`` and the per-attribute counts;
* ``label_check``: ``check_label`` (what a job runs on each label) and the input rules;
* ``line_check``: the hot loop over one byte range;
* ``ranges``: the line splitter, the range planner and the worker processes.

Large files are split into byte ranges (``ranges.map_ranges``), each checked by one process
(this one included); each numbers its own lines and this process offsets them. Memory stays
flat: lines stream, and only the first ``max_problems`` problems are kept, with counts by rule
for all.
"""

from __future__ import annotations

import copy
from collections import Counter
from dataclasses import replace

from .. import _storage as storage
from .._errors import ManifestError, UsageError
from .._task_types import get_task_type
from .blocks import BLOCK_BYTES, iter_blocks
from .io import (
    METADATA,
    SCAN_LINES,
    input_empty,
    read_records,
    refuse_absent_attribute,
    refuse_empty_path,
    refuse_not_an_attribute,
)
from .label_check import (
    check_label,
    explain_label,
    fast_path,
    input_line_problems,
    input_rules,
    needs_input_rules,
)
from .line_check import LineChecker
from .line_rules import CLASS_COLORS, CLASS_NAMES, MIXED_TYPES, first_label, said_first
from .problems import AttributeStats, ClassColors, ClassNames, Collector, Problem, Severity, ValidationReport
from .ranges import check_workers, iter_line_batches, map_ranges
from .schemas import load_schema

__all__ = [
    "MAX_PROBLEMS", "RULES", "AttributeStats", "Problem", "Severity", "ValidationReport", "check_label",
    "check_range", "explain_label", "fast_path", "input_line_problems", "input_rules", "iter_line_batches",
    "needs_input_rules", "validate_manifest",
]

MAX_PROBLEMS = 1000

#: ranges per worker (``ranges.map_ranges``): at 8 a 1M-line file had 16 ranges of some 0.25 s
#: each on two processes, and one process could sit idle for up to a range at the end while the
#: other finished its last (a tenth of the wall time, more when the machine is busy); at 32 the
#: ranges are ``MIN_RANGE_BYTES`` (8 MB, 59 for that file) and the wait is under 0.07 s. A range
#: costs 1.6 million instructions more (a checker and its shape plan, a result sent back):
#: 0.25% of the file's at 59 ranges (callgrind)
RANGES_PER_WORKER = 32

RULES: dict[str, str] = {
    "label-missing": "the -metadata object declares a task type but the label attribute is absent",
    "metadata-missing": "the label attribute is present but its -metadata object is absent",
    "metadata-type-unknown": "the -metadata type is not a task type this tool knows",
    "failure-with-label": "a failed object's metadata (failure-reason) sits next to a label value",
    "routed-with-label": "a routed object's metadata (review-status: routed) sits next to a label value",
    MIXED_TYPES: "a label of another built-in task type than the attribute's first label (custom labels excepted)",
    CLASS_NAMES: "a class id named otherwise than on the attribute's first line naming it, or a class name given "
                 "another id than there (one class id, one name; one class name, one id)",
    CLASS_COLORS: "a mask's class drawn in another colour than on the attribute's first line drawing it (the "
                  "background excepted), or a colour given another class than there (one colour, one class)",
}


def check_range(url: str, start: int = 0, end: int | None = None, label_attribute: str | None = None,
                task_type: str | None = None, schema: str | None = None, strict: bool = False,
                max_problems: int = MAX_PROBLEMS, first_types: dict[str, tuple[str, str, int]] | None = None,
                first_names: dict[str, ClassNames] | None = None,
                first_colors: dict[str, ClassColors] | None = None) -> Collector:
    """Check the lines starting in ``[start, end)`` of the manifest at ``url``; line numbers
    count from 1 within the range. The unit ``validate_manifest`` hands to ``map_ranges``.
    ``first_types``: the first label of each attribute in the ranges before (its line numbered in
    the file), which this range's labels are held to (``_one_type_each``); ``first_names``: each
    attribute's class names there, likewise (the range adds its own to these tables), and
    ``first_colors`` its mask colours."""
    out = Collector(strict, max_problems)
    out.start, out.end = start, end
    out.first_types.update(first_types or {})
    out.class_names.update(first_names or {})
    out.class_colors.update(first_colors or {})
    checker = LineChecker(label_attribute, get_task_type(task_type) if task_type else None, schema, out)
    with storage.open_read(url) as f:
        checker.run(iter_blocks(f, start=start, end=end, chunk=BLOCK_BYTES))
    return out


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
    defaults to the number of CPUs, used only for files of two ranges or more
    (``ranges.plan_ranges``). A ``label_attribute`` that no data line holds is a ``ManifestError``
    (``label-attribute-absent``, naming the attributes the lines hold), not a report of none.
    """
    refuse_empty_path(url, "manifest (url)")
    if schema is not None:
        if label_attribute or task_type:
            raise UsageError("--schema checks whole lines; it cannot be combined with --label-attribute/--task-type")
        load_schema(schema)
    if task_type is not None:
        task_type = get_task_type(task_type).name
    check_workers(workers)
    refuse_not_an_attribute(label_attribute)
    args = (label_attribute, task_type, schema, strict, max_problems)
    parts = map_ranges(check_range, url, args, workers=workers, per_worker=RANGES_PER_WORKER)
    report = _merge(url, _one_type_each(url, parts, args), schema, strict, max_problems)
    _refuse_no_data_line(url, report)
    if label_attribute:  # a misspelt name: not "valid" (the CLI's exit 1 was its own check; report.ok said True)
        refuse_absent_attribute(url, label_attribute, without=report.unlabeled,
                                data_lines=report.lines - report.blank_lines if report.ok else 0)
    elif task_type is not None and report.ok and not report.attributes:
        _refuse_absent_type(url, task_type)
    return report


def _refuse_no_data_line(url: str, report: ValidationReport) -> None:
    """Refuse a file without a data line (empty, a byte order mark alone, only blank lines) as a job
    refuses it (``input-empty``, exit 1): "valid: 0 lines" passed a file every job refuses, and no
    job writes one (an output manifest holds its input's lines, of which there was at least one)."""
    if report.lines > report.blank_lines:
        return
    needs = f"there is no line to check against schema {report.schema!r}" if report.schema else None
    raise input_empty(storage.redact_secret_url(url), report.lines, what="manifest", needs=needs)


def _refuse_absent_type(url: str, task_type: str) -> None:
    """A ``task_type`` that no label attribute of the file has: nothing was checked, and "valid"
    answered yes to "is this a valid <type> manifest?" (a box manifest, for image-classification).
    Refused as a ``--label-attribute`` no line holds, naming the attributes the first lines hold and
    their types; a file with no label at all (an input manifest) has nothing to miss. The first
    lines name them, and the lines after until one is found (labels from line 2,001 on said valid)."""
    seen: dict[str, set[str]] = {}
    for line, rec in read_records(url):
        if line.number > SCAN_LINES and seen:
            break
        for key, meta in rec.items():
            kind = meta.get("type") if key.endswith(METADATA) and isinstance(meta, dict) else None
            if isinstance(kind, str) and kind.startswith("groundtruth/"):
                seen.setdefault(key[: -len(METADATA)], set()).add(kind.removeprefix("groundtruth/"))
    if seen:
        held = ", ".join(f"{a} ({', '.join(sorted(t))})" for a, t in sorted(seen.items()))
        raise ManifestError(f"{storage.redact_secret_url(url)}: no label attribute of type {task_type} (label "
                            f"attributes seen: {held}); check --task-type", rule="label-attribute-absent")


def _one_type_each(url: str, parts: list[Collector], args: tuple) -> list[Collector]:
    """The ranges' results, each label attribute held to its first label in the file (each range
    held its lines to its own first, ``line_rules.MIXED_TYPES``). A range whose first label of an
    attribute is of another type than an earlier range's is checked again, held to the earlier
    ones (only where a file mixes types: its lines were judged against the wrong label). Each
    message then names the file's first label by its line in the file: an earlier range's, or the
    range's own counted from the file's start (a range numbers its lines from its own first)."""
    firsts: dict[str, tuple[str, str, int]] = {}
    names: dict[str, ClassNames] = {}  # each attribute's class names, their lines the file's
    colors: dict[str, ClassColors] = {}  # and its mask colours
    offset = 0
    checked: list[Collector] = []
    for part in parts:
        earlier = {a: firsts[a] for a in part.first_types if a in firsts}
        if (any(part.first_types[a][0] != first[0] for a, first in earlier.items())
                or _names_differ(part.class_names, names) or _names_differ(part.class_colors, colors)):
            part = check_range(url, part.start, part.end, *args, first_types=earlier,
                               first_names={a: copy.deepcopy(table) for a, table in names.items()},
                               first_colors={a: copy.deepcopy(table) for a, table in colors.items()})
        _one_name_each(part, part.class_names, part.first_names, names, offset)
        _one_name_each(part, part.class_colors, part.first_colors, colors, offset)
        # the first labels the messages name, as the range wrote them -> as the file numbers them
        # (a range checked again was given the earlier ones, already in the file's numbers)
        relabel = {a: (own, earlier.get(a, (own[0], own[1], own[2] + offset)))
                   for a, own in part.first_types.items()}
        if part.counts[MIXED_TYPES] and any(own != file for own, file in relabel.values()):
            part.problems = [_renumbered(p, relabel) for p in part.problems]
        for a, (kind, written, line) in part.first_types.items():
            firsts.setdefault(a, (kind, written, line + offset))
        offset += part.lines
        checked.append(part)
    return checked


def _names_differ(tables: dict[str, ClassNames], names: dict[str, ClassNames]) -> bool:
    """Whether a range's ``tables`` (``Collector.class_names`` or ``class_colors``) named a class
    otherwise than the ranges before it first did, or gave a name another id (a colour, for
    colours): its lines were held to the wrong name or id, so it is checked again, held to theirs."""
    for attribute, own in tables.items():
        table = names.get(attribute)
        if table is not None and (any(table.named.get(cid, name) != name for cid, name in own.named.items())
                                  or any(table.ids.get(name, cid) != cid for name, cid in own.ids.items())):
            return True
    return False


def _one_name_each(part: Collector, tables: dict[str, ClassNames],
                   firsts: dict[int, tuple[tuple[str, int | str], str, int | str, str]],
                   names: dict[str, ClassNames], offset: int) -> None:
    """``part``'s ``CLASS_NAMES`` messages naming each class's first name, and each name's first
    id, by its line in the file (an earlier range's, or the range's own counted from the file's
    start), and the classes and names it met first added to ``names``; or its ``CLASS_COLORS``
    ones, each index's first colour and each colour's first index (``tables`` and ``firsts``: the
    range's, ``Collector.class_names`` and ``first_names`` or their colours'). ``part`` names no class
    otherwise than ``names``, nor gives a name another id (``_names_differ``). Why by class id (and
    by name): two ids of one name first named on one line of the range read the same as the range
    wrote them ("differs from 'cat' (line 1)"), and a range checked again names the earlier
    ranges' ids by the file's lines, its own by its own: keyed by that text, one id's line was
    written into the other's messages."""
    relabel: dict[tuple[str, int | str], int] = {}
    for attribute, own in tables.items():
        table = names.setdefault(attribute, type(own)())
        for cid, name in own.named.items():  # each first as the file numbers it, even where it
            table.note_id(cid, name, own.lines[cid] + offset)  # reads as the range's: "on this line"
            relabel[attribute, cid] = table.lines[cid]
        for name, cid in own.ids.items():
            table.note_name(name, cid, own.name_lines[name] + offset)
            relabel[attribute, name] = table.name_lines[name]
    if firsts and relabel:
        _renamed(part, firsts, relabel, offset)


def _renamed(part: Collector, firsts: dict[int, tuple[tuple[str, int | str], str, int | str, str]],
             relabel: dict[tuple[str, int | str], int], offset: int) -> None:
    """``part``'s ``CLASS_NAMES`` messages naming their class's first name, or their name's first
    id, by its line in the file (``relabel``: per attribute and class id, or name, that line),
    rebuilt from the parts the range kept (``Collector.first_names``): a name holding the
    message's own words ("differs from") read as the message's, and the range's line stayed.
    ``firsts``: the parts of ``part``'s ``CLASS_NAMES`` messages, or its ``CLASS_COLORS`` ones.
    A first on the message's own line (``offset`` + its line in the range) is said "on this
    line", as the whole file checked at once says it; one an earlier range gave, by its line."""
    for index, (ref, head, first, tail) in firsts.items():
        line = relabel.get(ref)
        if line is not None:
            problem = part.problems[index]
            here = None if line == problem.line + offset else line
            part.problems[index] = replace(problem, message=head + said_first(first, here) + tail)


def _renumbered(p: Problem, relabel: dict[str, tuple[tuple[str, str, int], tuple[str, str, int]]]) -> Problem:
    """``p`` naming its attribute's first label as the file numbers it (``relabel``: the range's
    first label -> the file's) where it named it as the range did."""
    attribute = p.key.removesuffix(METADATA + ".type")
    if p.rule != MIXED_TYPES or attribute not in relabel:
        return p
    ours, theirs = relabel[attribute]
    return replace(p, message=p.message.replace(first_label(ours[1], ours[2]), first_label(theirs[1], theirs[2]), 1))


def _merge(url: str, parts: list[Collector], schema: str | None, strict: bool, max_problems: int) -> ValidationReport:
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
