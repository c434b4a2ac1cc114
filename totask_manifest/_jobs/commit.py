"""Producing the output manifest: a streaming merge of the input with the checkpoint records.

Untouched lines are copied as the bytes read, in ranges (they are never split into lines);
finished lines are the bytes recorded at checkpoint time, placed by the selection's offsets,
one range per run of lines adjacent in the input (``byte_copy``). One output line per input
line, in input order, written atomically (fsynced, then renamed).
"""

from __future__ import annotations

import contextlib
import operator
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import accumulate, chain, compress, islice
from typing import IO

import orjson

from .._errors import DamagedCheckpoint, JobError, counted
from .._failure_rules import rule_of
from .._manifest.io import iter_raw_lines, to_line
from .._storage import AtomicWriter, open_read, redact_url
from .byte_copy import Sink
from .checkpoint import Part, Record, iter_parts, load_part, part_summary, read_bodies
from .layout import JobLayout
from .scan_ranges import job_selection
from .selection import LineSelection
from .state import START_ANEW

#: line numbers kept for the message when coverage is broken
_EXAMPLES = 5
#: a local part's bodies up to this size are read at once when they are several runs (a chained
#: job's lines, scattered in its input): a copy by range was a read and a write system call a
#: run, 10,000 of each for the chain benchmark (0.09 s of the commit's 0.63 s of CPU)
BODIES_AT_ONCE = 1 << 20


class InputChangedError(JobError):
    """The input is not the version the job's parts record (``write_output``): the run records
    it (``input_changed``), so that ``status`` and ``chain`` say what ``resume`` says."""


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
            parts.append(f"{counted(self.missing_count, 'selected line')} {'has' if self.missing_count == 1 else 'have'} "
                         "no checkpoint record (first: line "
                         f"{', '.join(map(str, self.missing))})")
        if self.unselected_count:
            parts.append(f"{counted(self.unselected_count, 'checkpoint record')} "
                         f"{'names' if self.unselected_count == 1 else 'name'} lines that were not selected "
                         f"(first: line {', '.join(map(str, self.unselected))})")
        return "; ".join(parts) + " (was the job folder written by two processes?)"


def write_output(input_url: str, layout: JobLayout, coverage: Coverage | None = None,
                 attribute: str | None = None, input_sha256: str | None = None, *, failures: bool = False,
                 stopped: Part | None = None, written: dict[str, object] | None = None) -> int:
    """Write the output manifest. With ``coverage``, also counts how the records cover the
    job's selection (``selection.bin``, found again by a scan when the folder has none or the
    input changed). ``attribute`` names the selection rule.

    With ``failures``, ``failures.jsonl`` is written too, as the merge passes each part (one
    part's failed records held at a time, never the job's: a job with millions of failures
    held each until the end), and put in place right after the output manifest; neither file
    is replaced when the merge fails. Returns the number of failed lines written (0 without).

    ``input_sha256`` (the checksum the job started with) refuses an input that changed while the
    job ran, before anything is written: the parts record lines of the input as it was, and
    merged into another version they made a manifest of broken lines that said COMPLETED (a
    job chained from a stopped one while that one was resumed, which rewrote its output). The
    input is opened first, so a version swapped in after the check is not the one copied.

    ``stopped``: the lines a run stopped on (``Recorder.stopped_part``), merged after the parts:
    this run's output shows them failed, while the checkpoint leaves them for ``resume``.

    ``written`` is given the output's ``size`` and ``sha256`` once it is in place (hashed as it
    was written: the bytes are not read again), which job.json records (``output_changed``)."""
    coverage = coverage if coverage is not None else Coverage()
    with open_read(input_url) as f:
        selection = job_selection(layout, input_url, attribute) if attribute is not None else None
        if input_sha256 and selection is not None and selection.sha256 != input_sha256:
            raise InputChangedError(f"the input manifest {redact_url(input_url)} changed while the job ran (checksum "
                                    "differs: rewritten by another program, or by a resume of a job it was chained "
                                    f"from); {START_ANEW}")
        with contextlib.ExitStack() as files:
            # entered first, left last: failures.jsonl is put in place after the output manifest
            failed = files.enter_context(AtomicWriter(layout.failures)) if failures else None
            out = files.enter_context(AtomicWriter(layout.output_manifest))
            n = 0
            sink = Sink(out)
            files.callback(sink.close)  # its hash's thread, stopped where the merge fails too
            for part in _write(f, sink, layout, selection, coverage, input_url, stopped):
                if failed is not None and "f" in part.status:
                    n += write_failures(failed, part.records())
    if written is not None:
        written["size"] = sink.size
        if (sha256 := sink.sha256()) is not None:
            written["sha256"] = sha256
    return n


def _write(f: IO[bytes], sink: Sink, layout: JobLayout, selection: LineSelection | None, coverage: Coverage,
           input_url: str, stopped: Part | None = None) -> Iterator[Part]:
    """The merge into ``out``; yields each part once merged (its records are read while it is
    the current one), then ``stopped``."""
    # a local part's bodies are copied from its file by range, never held whole in memory (but
    # a small part's scattered ones, ``BODIES_AT_ONCE``); the kernel reads the parts ahead (``read_ahead``)
    local = "://" not in layout.intermediate
    parts = iter_parts(layout, bodies=not local, copied=local)
    if stopped is not None:
        parts = chain(parts, (stopped,))
    yield from _merge(f, sink, parts, selection, coverage, input_url)


def _merge(f: IO[bytes], out: Sink, parts: Iterator[Part], selection: LineSelection | None,
           coverage: Coverage, input_url: str) -> Iterator[Part]:
    """Copy the input between finished lines, and each run of finished lines adjacent in the
    input as one range of their recorded bytes (their input lines are skipped by length, not
    read). Lines are located by the selection's offsets. Yields each part once merged."""
    indices, offsets = (selection.indices, selection.offsets) if selection is not None else (array("q"), array("q"))
    nsel = len(indices)
    coverage.selected = nsel
    pos = k = 0
    for part in parts:
        m = len(part.index)
        if part.index_array is None:  # not checked by load_part: convert here
            part.index_array = array("q", part.index)
            part.in_array = None if None in part.in_bytes else array("q", part.in_bytes)
        if part.whole and part.in_array is not None and indices[k:k + m] == part.index_array:
            pos = _merge_runs(f, out, part, offsets[k:k + m], pos)  # every record is the next selected line
            k += m
        else:
            pos, k = _merge_each(f, out, part, indices, offsets, pos, k, coverage, input_url)
        yield part
    for index in indices[k:]:
        _missing(coverage, index)
    out.copy(f, pos, f.seek(0, 2) - pos)


def _merge_runs(f: IO[bytes], out: Sink, part: Part, offs: array, pos: int) -> int:
    """A part whose records are exactly the next selected lines: found in a few C-speed passes.
    Each run of records adjacent in the input is one range of the part's bodies."""
    runs = _runs(part, offs)
    with _bodies(part, len(runs)) as (source, base):
        for a, start, end, lo, hi in runs:
            if start < pos:
                raise JobError(f"checkpoint does not match the input at line {part.index[a] + 1}")
            out.copy(f, pos, start - pos)
            if isinstance(source, memoryview):
                out.write(source[lo:hi])
            else:
                out.copy(source, base + lo, hi - lo, what=f"checkpoint {part.url}")
            pos = end
    return pos


def _runs(part: Part, offs: array) -> list[tuple[int, int, int, int, int]]:
    """``(first record, input start, input end, body start, body end)`` of each run of records
    whose input lines are adjacent. Most parts are one run (a job labels most lines, or a
    checkpoint's lines were next to each other): that is checked in one pass and one compare."""
    m = len(part.index)
    if not m:
        return []
    try:
        follow = array("q", accumulate(part.in_bytes, initial=offs[0]))  # where each line starts if adjacent
    except OverflowError:
        follow = array("q")
    if follow[:m] == offs:
        return [(0, offs[0], follow[m], 0, sum(part.length))]
    ends = list(map(operator.add, offs, part.in_bytes))
    breaks = list(compress(range(1, m), map(operator.ne, ends, islice(offs, 1, None))))
    at = [0, *accumulate(part.length)]
    return [(a, offs[a], ends[b - 1], at[a], at[b]) for a, b in zip([0, *breaks], [*breaks, m], strict=True)]


@contextlib.contextmanager
def _bodies(part: Part, runs: int) -> Iterator[tuple[memoryview | IO[bytes], int]]:
    """Where a part's bodies are: ``(memoryview, 0)`` when they were read (or, a local part's in
    ``runs`` runs, read now at once: ``BODIES_AT_ONCE``), else the part file open for reading
    and the offset of the first body in it (a local part: copied by range)."""
    if part.data is None and runs > 1 and sum(part.length) <= BODIES_AT_ONCE:
        read_bodies(part)
    if part.data is not None:
        yield memoryview(part.data), 0
        return
    with open(part.url, "rb", buffering=0) as pf:  # copied by range: no buffer of its own
        yield pf, part.body_offset


def _merge_each(f: IO[bytes], out: Sink, part: Part, indices: array, offsets: array, pos: int,
                k: int, coverage: Coverage, input_url: str) -> tuple[int, int]:
    """Record by record: selected lines without a record, records of lines not selected, and
    records of old parts (their input line gives the prefix and terminator)."""
    read_bodies(part)
    at = 0
    for j, index in enumerate(part.index):
        while k < len(indices) and indices[k] < index:
            _missing(coverage, indices[k])
            k += 1
        if k < len(indices) and indices[k] == index:
            offset = offsets[k]
            k += 1
        else:
            if len(indices):
                coverage.unselected_count += 1
                if len(coverage.unselected) < _EXAMPLES:
                    coverage.unselected.append(index + 1)
            offset = _offset_of_line(f, index, input_url)
        if offset < pos:
            raise JobError(f"checkpoint does not match the input at line {index + 1}")
        out.copy(f, pos, offset - pos)
        n, in_bytes = part.length[j], part.in_bytes[j]
        body = part.data[at:at + n]  # type: ignore[index]
        if part.whole and in_bytes is not None:
            out.write(body)
            pos = offset + in_bytes
        else:
            f.seek(offset)
            raw = f.readline()
            line = to_line(index + 1, raw, first_in_file=offset == 0)
            out.write(body if part.whole else line.prefix + body + line.newline)
            pos = offset + len(raw)
        at += n
    return pos, k


def _missing(coverage: Coverage, index: int) -> None:
    coverage.missing_count += 1
    if len(coverage.missing) < _EXAMPLES:
        coverage.missing.append(index + 1)


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


def write_failures(out: IO[bytes], records: Iterable[Record]) -> int:
    """Append to ``failures.jsonl`` (open as ``out``) one line per failed record among
    ``records`` (line number, source, task id, rule, reason), in their order; a record from
    before rules were recorded gets the rule its reason says. Returns how many were written."""
    n = 0
    for rec in records:
        if rec.status == "failed":
            out.write(orjson.dumps(failure_entry(rec)) + b"\n")
            n += 1
    return n


def failure_entry(rec: Record) -> dict:
    """A failed record as ``failures.jsonl`` holds it (also what ``report`` shows of a job whose
    file is not written yet: one killed, or still running)."""
    entry = {"line": rec.number, "source": rec.get("source"), "rule": rec.get("rule") or rule_of(rec.get("reason") or ""),
             "reason": rec.get("reason")}
    if "task_id" in rec.extra:
        entry["task_id"] = rec.extra["task_id"]
    return entry


def failed_records(layout: JobLayout) -> Iterator[Record]:
    """The failed records, reading only the heads of parts whose footer counts a failure. A
    damaged part is passed over: its lines are not recorded (``report`` says it is damaged)."""
    for url in layout.parts():
        try:
            if not part_summary(url).counts["failed"]:
                continue
            records = list(load_part(url, bodies=False).records())
        except DamagedCheckpoint:
            continue
        yield from (r for r in records if r.status == "failed")
