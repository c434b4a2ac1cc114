"""Producing the output manifest: a streaming merge of the input with the checkpoint records.

Untouched lines are copied as the bytes read; finished lines take the body recorded at
checkpoint time with the input line's own prefix and terminator. One output line per input
line, in input order, written atomically.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import orjson

from ..errors import JobError
from ..failure_rules import rule_of
from ..manifest.io import read_lines
from ..storage import AtomicWriter
from .checkpoint import iter_records
from .layout import JobLayout
from .selection import needs_label

#: line numbers kept for the message when coverage is broken
_EXAMPLES = 5


@dataclass
class Coverage:
    """How the checkpoint records cover the selected lines of the input.

    A job is COMPLETED only when every selected line has exactly one record and no record names
    a line that was not selected: counters can agree while lines are missing (two writers, a
    part replaced), the parts on disk cannot. Records are in strictly increasing line order
    (``iter_records`` refuses anything else), so no line can have two.
    """

    selected: int = 0
    missing: list[int] = field(default_factory=list)
    missing_count: int = 0
    unselected: list[int] = field(default_factory=list)
    unselected_count: int = 0

    @property
    def exact(self) -> bool:
        return not self.missing_count and not self.unselected_count

    def problem(self) -> str:
        parts = []
        if self.missing_count:
            parts.append(f"{self.missing_count} selected line(s) have no checkpoint record (first: line "
                         f"{', '.join(map(str, self.missing))})")
        if self.unselected_count:
            parts.append(f"{self.unselected_count} checkpoint record(s) name lines that were not selected "
                         f"(first: line {', '.join(map(str, self.unselected))})")
        return "; ".join(parts) + " (was the job folder written by two processes?)"


def merged_lines(input_url: str, layout: JobLayout, coverage: Coverage | None = None,
                 attribute: str | None = None) -> Iterator[bytes]:
    """The output lines; with ``coverage`` and ``attribute``, also checks every line's record
    against the selection rule on the way."""
    records = iter_records(layout)
    pending = next(records, None)
    for index, line in enumerate(read_lines(input_url)):
        selected = False
        if coverage is not None and attribute is not None and not line.is_blank:
            selected = needs_label(line.record(), attribute)
            coverage.selected += selected
        if pending is not None and pending["i"] == index:
            if pending["n"] != line.number:
                raise JobError(f"checkpoint does not match the input at line {line.number}")
            if coverage is not None and attribute is not None and not selected:
                coverage.unselected_count += 1
                if len(coverage.unselected) < _EXAMPLES:
                    coverage.unselected.append(line.number)
            yield line.prefix + pending["line"].encode("utf-8") + line.newline
            pending = next(records, None)
        else:
            if selected and coverage is not None:
                coverage.missing_count += 1
                if len(coverage.missing) < _EXAMPLES:
                    coverage.missing.append(line.number)
            yield line.raw
    if pending is not None:
        raise JobError(f"checkpoint names line {pending['n']}, past the end of the input {input_url}")


def write_output(input_url: str, layout: JobLayout, coverage: Coverage | None = None,
                 attribute: str | None = None) -> int:
    n = 0
    with AtomicWriter(layout.output_manifest) as out:
        for raw in merged_lines(input_url, layout, coverage, attribute):
            out.write(raw)
            n += 1
    return n


def write_failures(layout: JobLayout) -> int:
    """``failures.jsonl``: one line per failed line (line number, source, task id, rule, reason);
    a record from before rules were recorded gets the rule its reason says."""
    n = 0
    with AtomicWriter(layout.failures) as out:
        for rec in iter_records(layout):
            if rec["s"] != "failed":
                continue
            entry = {"line": rec["n"], "source": rec.get("source"), "rule": rec.get("rule") or rule_of(rec.get("reason") or ""),
                     "reason": rec.get("reason")}
            if "task_id" in rec:
                entry["task_id"] = rec["task_id"]
            out.write(orjson.dumps(entry) + b"\n")
            n += 1
    return n
