"""Producing the output manifest: a streaming merge of the input with the checkpoint records.

Untouched lines are copied as the bytes read; finished lines take the body recorded at
checkpoint time with the input line's own prefix and terminator. One output line per input
line, in input order, written atomically.
"""

from __future__ import annotations

from collections.abc import Iterator

import orjson

from ..annotators.failure_rules import rule_of
from ..errors import JobError
from ..manifest.io import read_lines
from ..storage import AtomicWriter
from .checkpoint import iter_records
from .layout import JobLayout


def merged_lines(input_url: str, layout: JobLayout) -> Iterator[bytes]:
    records = iter_records(layout)
    pending = next(records, None)
    for index, line in enumerate(read_lines(input_url)):
        if pending is not None and pending["i"] == index:
            if pending["n"] != line.number:
                raise JobError(f"checkpoint does not match the input at line {line.number}")
            yield line.prefix + pending["line"].encode("utf-8") + line.newline
            pending = next(records, None)
        else:
            yield line.raw
    if pending is not None:
        raise JobError(f"checkpoint names line {pending['n']}, past the end of the input {input_url}")


def write_output(input_url: str, layout: JobLayout) -> int:
    n = 0
    with AtomicWriter(layout.output_manifest) as out:
        for raw in merged_lines(input_url, layout):
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
