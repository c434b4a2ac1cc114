"""Producing the output manifest: a streaming merge of the input with the checkpoint records.

Untouched lines are copied as the bytes read, in blocks (they are never split into lines);
finished lines are the bytes recorded at checkpoint time, placed by the selection's offsets.
One output line per input line, in input order, written atomically.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO

import orjson

from ..errors import JobError
from ..failure_rules import rule_of
from ..manifest.io import iter_raw_lines, to_line
from ..storage import AtomicWriter, open_read, redact_url
from .checkpoint import Part, Record, iter_parts, load_part, part_summary
from .layout import JobLayout
from .scan_ranges import job_selection
from .selection import LineSelection

#: line numbers kept for the message when coverage is broken
_EXAMPLES = 5
#: bytes copied per read between finished lines
_BLOCK = 1 << 20


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


def write_output(input_url: str, layout: JobLayout, coverage: Coverage | None = None,
                 attribute: str | None = None) -> int:
    """Write the output manifest; returns the number of records merged. With ``coverage``, also
    counts how the records cover the job's selection (``selection.bin``, found again by a scan
    when the folder has none or the input changed). ``attribute`` names the selection rule."""
    selection = job_selection(layout, input_url, attribute) if attribute is not None else None
    coverage = coverage if coverage is not None else Coverage()
    with AtomicWriter(layout.output_manifest) as out, open_read(input_url) as f:
        return _merge(f, out, iter_parts(layout), selection, coverage, input_url)


def _merge(f: IO[bytes], out: IO[bytes], parts: Iterator[Part], selection: LineSelection | None,
           coverage: Coverage, input_url: str) -> int:
    """Copy the input in blocks between finished lines; each run of finished lines that are
    adjacent in the input is one write of their recorded bytes (their input lines are skipped
    by length, not read). Lines are located by the selection's offsets."""
    indices, offsets = (selection.indices, selection.offsets) if selection is not None else ((), ())
    nsel = len(indices)
    coverage.selected = nsel
    pos = k = n = 0
    for part in parts:
        heads, data, at = part.heads, part.data, part.body_at
        j, m = 0, len(heads)
        n += m
        while j < m:
            head = heads[j]
            index = head[0]
            while k < nsel and indices[k] < index:
                _missing(coverage, indices[k])
                k += 1
            if k < nsel and indices[k] == index:
                offset = offsets[k]
                k += 1
            else:
                if selection is not None:
                    coverage.unselected_count += 1
                    if len(coverage.unselected) < _EXAMPLES:
                        coverage.unselected.append(index + 1)
                offset = _offset_of_line(f, index, input_url)
            if offset < pos:
                raise JobError(f"checkpoint does not match the input at line {index + 1}")
            _copy(f, out, pos, offset)
            if not part.whole or head[3] is None:  # an old record: the input line gives prefix and terminator
                f.seek(offset)
                raw = f.readline()
                body = data[at:at + head[2]]
                if not part.whole:
                    line = to_line(index + 1, raw, first_in_file=offset == 0)
                    body = line.prefix + body + line.newline
                out.write(body)
                pos = offset + len(raw)
                at += head[2]
                j += 1
                continue
            # the run: following records of the next selected lines, each starting where the last ended
            start, end = at, at + head[2]
            pos = offset + head[3]
            j += 1
            while j < m and k < nsel:
                head = heads[j]
                if head[0] != indices[k] or offsets[k] != pos or head[3] is None:
                    break
                pos += head[3]
                end += head[2]
                k += 1
                j += 1
            out.write(memoryview(data)[start:end])
            at = end
    for index in indices[k:]:
        _missing(coverage, index)
    _copy(f, out, pos, None)
    return n


def _missing(coverage: Coverage, index: int) -> None:
    coverage.missing_count += 1
    if len(coverage.missing) < _EXAMPLES:
        coverage.missing.append(index + 1)


def _copy(f: IO[bytes], out: IO[bytes], start: int, end: int | None) -> None:
    """Input bytes ``[start, end)`` (to the end of the file for None) to ``out``, in blocks."""
    if end is not None and end <= start:
        return
    if f.tell() != start:
        f.seek(start)
    left = None if end is None else end - start
    while left is None or left > 0:
        block = f.read(_BLOCK if left is None else min(_BLOCK, left))
        if not block:
            if left:
                raise JobError("the input manifest is shorter than its checkpoint says (was it changed?)")
            return
        out.write(block)
        if left is not None:
            left -= len(block)


def _offset_of_line(f: IO[bytes], index: int, input_url: str) -> int:
    """Where line ``index`` starts, by reading the input from the start: only for a record of a
    line the selection does not hold (a damaged folder), which then fails the commit."""
    f.seek(0)
    offset = 0
    for i, raw in enumerate(iter_raw_lines(f)):
        if i == index:
            return offset
        offset += len(raw)
    raise JobError(f"checkpoint names line {index + 1}, past the end of the input {redact_url(input_url)}")


def write_failures(layout: JobLayout) -> int:
    """``failures.jsonl``: one line per failed line (line number, source, task id, rule, reason);
    a record from before rules were recorded gets the rule its reason says."""
    n = 0
    with AtomicWriter(layout.failures) as out:
        for rec in _failed_records(layout):
            entry = {"line": rec.number, "source": rec.get("source"), "rule": rec.get("rule") or rule_of(rec.get("reason") or ""),
                     "reason": rec.get("reason")}
            if "task_id" in rec.extra:
                entry["task_id"] = rec.extra["task_id"]
            out.write(orjson.dumps(entry) + b"\n")
            n += 1
    return n


def _failed_records(layout: JobLayout) -> Iterator[Record]:
    """The failed records, reading only the heads of parts whose footer counts a failure (the
    commit, which runs first, has checked the parts' order)."""
    for url in layout.parts():
        if part_summary(url).counts["failed"]:
            yield from (r for r in load_part(url, bodies=False).records() if r.status == "failed")
