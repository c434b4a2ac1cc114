"""Reading a job's input once before it starts: identity, size, selection, and problems.

The checksum lets ``resume`` refuse an input that changed under a job; the selection (which
lines need a label, and where they start) drives the engine, the resume and the commit; and a
line ``validate`` refuses at line level stops the job before any work, naming the line, the key
and the rule.

A big input is scanned in byte ranges (``manifest.ranges.map_ranges``: worker processes and this
one; the scan parses every line, and that is the cost), while a thread of this process computes
the checksum, which cannot be split (``hashlib`` and file reads let other threads run). The result is
kept in the job folder (``selection.bin``) with the file's fingerprint, so a resume of an
unchanged input reads neither the input nor its checksum again.
"""

from __future__ import annotations

import hashlib
import threading
from array import array
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from io import BytesIO
from itertools import accumulate
from typing import TYPE_CHECKING

import orjson

from .._errors import InvalidInputError, agreeing, counted
from .._manifest import long_lines
from .._manifest.blocks import BLOCK_BYTES, PIECE_BYTES, iter_blocks, pieces, typed_parts
from .._manifest.io import blank_lines_only, input_empty, to_line
from .._manifest.line import Line
from .._manifest.long_lines import TooLong
from .._manifest.naming import metadata_key
from .._manifest.ranges import CHUNK, map_ranges, refuse_changed, version
from .._outcomes import Item
from .._storage import open_read, redact_url
from .held_labels import HeldLabels, JobClasses, shape_passes
from .input_identity import fingerprint, require_ranges
from .layout import JobLayout
from .selection import LineSelection, iter_selected, needs_label

if TYPE_CHECKING:
    from .._manifest.line_check import LineChecker
    from .._manifest.typed_plan import TypedPlan

MAX_REPORTED = 20
#: lines parsed and cleared at once (``_scan_run``): few enough that their records stay in a
#: core's cache until the run is decided, as ``validate``'s runs (``line_check.RUN_LINES``)
RUN_LINES = 16


@dataclass
class InputScan:
    sha256: str = ""
    lines: int = 0
    selected: int = 0
    problems: list[str] = field(default_factory=list)
    problem_count: int = 0
    #: lines with a problem: one line can hold several (over 100,000 characters, a value over 20,000)
    bad_lines: int = 0
    selection: LineSelection = field(default_factory=LineSelection)
    held: HeldLabels = field(default_factory=HeldLabels)  #: what lines not selected hold under the attribute


@dataclass
class _RangeScan:
    """What one byte range holds; line indices and numbers count from the range's first line."""

    lines: int = 0
    indices: array = field(default_factory=lambda: array("q"))
    offsets: array = field(default_factory=lambda: array("q"))
    problems: list[tuple[int, str, str, str]] = field(default_factory=list)
    problem_count: int = 0
    bad_lines: int = 0
    held: HeldLabels = field(default_factory=HeldLabels)


def scan_range(url: str, start: int, end: int | None, attribute: str, task_type: str | None = None,
               classes: JobClasses | None = None, *,
               run_lines: int = RUN_LINES, chunk: int = BLOCK_BYTES, piece_bytes: int = PIECE_BYTES) -> _RangeScan:
    """Scan the lines starting in ``[start, end)``: ``validate``'s line-level rules
    (``input_line_problems``) and the selection rule, with each selected line's offset.

    The range is read as ``validate`` reads it (``blocks.iter_blocks``, pieces of a block): a
    piece ``validate``'s typed path accepts whole (``_TypedRuns``) is only counted, and where
    its shape selects its lines are found at their offsets; the lines of a piece it refuses go
    around the line it names (``blocks.typed_parts``) in runs of ``run_lines`` (``_scan_run``).
    The result is the same either way (``tests/test_scan_ranges.py`` holds it to the
    line-by-line scan). Why: read in 1 MB chunks (page faults, ``blocks.BLOCK_BYTES``), each line
    split into its own bytes object, its start counted and each run joined again, the scan cost
    a third more CPU than ``validate`` on the same bytes. ``classes``: the job's class names,
    held to the labels it passes over (``held_labels.JobClasses``)."""
    typed = _TypedRuns(attribute, task_type, classes)
    # ``task_type``: the job's (``held_labels``)
    out = _RangeScan(held=HeldLabels(task_type, classes=classes, table=typed.table))
    with open_read(url) as f:
        offset = long_lines.line_start(f, start, chunk, end)
        for block in iter_blocks(f, start=start, end=end, chunk=chunk, keep_bom=True):
            if type(block) is TooLong:  # a line over the byte cap, read past: alone in its block
                out.lines += 1
                _add_problems(out, [("", long_lines.message(), "line-too-long")])
                offset += block.size
                continue
            for piece in pieces(block, piece_bytes):
                _scan_piece(out, offset, piece, typed, run_lines)
                offset += len(piece)
    return out


def _scan_piece(out: _RangeScan, offset: int, piece: memoryview, typed: _TypedRuns, run_lines: int) -> None:
    """The lines of ``piece`` (whole lines of a block), which starts at ``offset``."""
    at = 0  # where the part ``typed_parts`` gives starts in ``piece``
    for accepted, text in typed_parts(piece, typed.current):
        if accepted > 0:
            first = out.lines
            out.lines += accepted
            if typed.selects:  # every line of the shape needs a label: their starts, by ``find``
                out.indices.extend(range(first, out.lines))
                out.offsets.extend(_line_starts(bytes(text), offset + at, accepted))
        elif accepted == 0:
            lines = BytesIO(text).readlines()  # each with its ``\n``: ``memchr``, no pass of ours
            starts = list(accumulate(map(len, lines[:-1]), initial=offset + at))
            for k in range(0, len(lines), run_lines):
                _scan_run(out, starts[k:k + run_lines], lines[k:k + run_lines], typed.attribute, typed)
        else:  # the line the typed path refused, alone (with its ``\n``, as read): no shape learned from it
            _scan_run(out, [offset + at], [bytes(piece[at:at + len(text) + 1])], typed.attribute)
            at += 1
        at += len(text)


def _line_starts(text: bytes, offset: int, count: int) -> Iterator[int]:
    """The starts of the first ``count`` lines of ``text``, which starts at ``offset``."""
    at, find = 0, text.find
    for _ in range(count):
        yield offset + at
        at = find(b"\n", at) + 1


class _TypedRuns:
    """``validate``'s typed path (``line_check``, ``typed_plan``) for the shape of the last run
    the scan cleared: a run it accepts is one ``validate`` finds nothing in, decoded into typed
    structs without a Python dict a line (the scan's own run test parses each line with
    ``orjson``: some 3k instructions a line more, callgrind on the chain benchmark's lines).

    Why its shape alone selects: every line it accepts holds that shape's keys, each label's
    value of its schema (never ``null``) beside metadata without ``failure-reason`` (``typed_plan``
    forbids keys the schema lacks); so a line needs a label exactly when the shape lacks the
    attribute (``selection.needs_label``). Task types' own rules are not run: they decide neither.

    With the job's ``classes`` (``held_labels.JobClasses``) the attribute's class names are held
    to a table that starts with them (``validate``'s own test, ``class-map-conflict``): a line
    naming a class otherwise, or one not met yet, is refused here, for the per-line path to hold
    to the job's names (``HeldLabels.note``), which notes the clean ones in the table; so each
    distinct class map is worked out once, and the lines repeating it pass here. A clash is
    never noted (the table holds the job's names), so once the range has one (``stop_holding``)
    the names are no longer held: only its first clash is refused, and every later line repeating
    that map took the per-line path to the end of the range (a scan three times as long)."""

    def __init__(self, attribute: str, task_type: str | None = None, classes: JobClasses | None = None) -> None:
        self.attribute, self.task_type = attribute, task_type
        self._checker = self._checker_of(hold=classes is not None)
        #: the attribute's class names, the job's first (None: not held)
        self.table = self._checker.out.names_of(attribute) if classes is not None else None
        for class_id, name in (classes.names.items() if classes is not None else ()):
            self.table.note(class_id, name, 0)  # type: ignore[union-attr]
        self._shape: tuple | None = None
        #: the typed path's test of a run (how many lines it accepts), and whether they need labels
        self.accepts: Callable[[bytes], int] | None = None
        self.plan: TypedPlan | None = None
        self.selects = False

    def _checker_of(self, *, hold: bool) -> LineChecker:
        """``validate``'s line checker for the typed path, holding the attribute's class names to
        its collector's table where ``hold`` (the collector's problems are never read: a run it
        does not accept goes the scan's own ways)."""
        from .._manifest.line_check import LineChecker  # on use, as in _scan_run
        from .._manifest.problems import Collector

        return LineChecker(None, None, None, Collector(strict=False, max_problems=0), task_rules=False,
                           names_of=self.attribute if hold else None)

    def stop_holding(self) -> None:
        """The range's first clash is found (``HeldLabels.clash``): the typed path takes the lines
        again without their class names, as with no ``classes``, its shape learned anew."""
        if self.table is None:
            return
        self.table = None
        self._checker = self._checker_of(hold=False)
        self._shape, self.plan, self.accepts, self.selects = None, None, None, False

    def current(self) -> TypedPlan | None:
        """The typed path now (``blocks.typed_parts`` reads it before each part)."""
        return self.plan

    def learn(self, records: list[dict]) -> None:
        """Take the shape of a run the scan cleared (``records``: its lines, parsed), if one."""
        shape = tuple(records[0])
        if shape == self._shape or any(tuple(record) != shape for record in records):
            return
        plan = self._checker.plan_of(shape, records[0])
        self._shape = shape
        if not shape_passes(records[0], self.attribute, self.task_type):  # each line noted (``held_labels``)
            plan = None
        self.plan = plan.typed if plan is not None else None
        self.accepts = self.plan.accepts if self.plan is not None else None
        self.selects = self.attribute not in shape


def _scan_run(out: _RangeScan, starts: list[int], raws: list[bytes], attribute: str,
              typed: _TypedRuns | None = None) -> list[dict] | None:
    """Lines ``raws`` (each with its ``\n``), starting at the offsets ``starts``. Returns their
    records when the run was cleared by parsing (all parsed, none with a problem), for a caller
    that reads them too (``combine``: each line parsed once; it passes no ``typed``), else None."""
    from .._manifest.label_check import run_needs_input_rules  # on use: the CLI starts without it

    if not raws:
        return None
    text = b"".join(raws)
    # the file's first line may carry a byte order mark, and a CR is whitespace to JSON but no
    # part of a line's body: both are the per-line path's to read (``to_line``). A line's "\n"
    # is whitespace too, so lines are parsed as read, without a copy each
    if starts[0] != 0 and b"\r" not in text:
        if typed is not None and typed.accepts is not None and typed.accepts(text) == len(raws):
            first = out.lines
            out.lines += len(raws)
            if typed.selects:
                out.indices.extend(range(first, out.lines))
                out.offsets.extend(starts)
            return None
        try:
            records = list(map(orjson.loads, raws))
        except orjson.JSONDecodeError:
            records = None
        if records is not None and not run_needs_input_rules(text, records, max(map(len, raws))):
            if typed is not None:
                typed.learn(records)
            first = out.lines
            out.lines += len(records)
            meta_key = metadata_key(attribute)
            for j, record in enumerate(records):
                # ``selection.needs_label``, inline for this loop: a missing or null value, or metadata
                # marking the value none (``naming.marks_no_label``: an earlier failure or routing)
                meta = record.get(meta_key)
                if record.get(attribute) is None or (type(meta) is dict and (
                        "failure-reason" in meta or meta.get("review-status") == "routed")):
                    out.indices.append(first + j)
                    out.offsets.append(starts[j])
                    if meta is not None:  # the job writes its own metadata there (``held_labels.label_metadata``)
                        out.held.note_metadata(first + j + 1, record, attribute)
                else:
                    out.held.note(first + j + 1, record, attribute)
            if typed is not None and out.held.clash is not None:
                typed.stop_holding()
            return records
    for at, raw in zip(starts, raws, strict=True):
        _scan_line(out, at, raw, attribute)
    return None


def _scan_line(out: _RangeScan, at: int, raw: bytes, attribute: str) -> None:
    from .._manifest.label_check import input_line_problems  # on use: the CLI starts without it

    out.lines += 1
    line = to_line(out.lines, raw, first_in_file=at == 0)
    if line.is_blank:
        return
    problems = input_line_problems(line)
    if problems:
        _add_problems(out, [(p.key, p.message, p.rule) for p in problems])
        return
    if needs_label(line.record(), attribute):
        out.indices.append(out.lines - 1)
        out.offsets.append(at)
        out.held.note_metadata(out.lines, line.record(), attribute)
    else:
        out.held.note(out.lines, line.record(), attribute)


def _add_problems(out: _RangeScan, problems: list[tuple[str, str, str]]) -> None:
    """The ``(key, message, rule)`` problems of the range's last line, the first ``MAX_REPORTED`` kept."""
    out.bad_lines += 1
    out.problem_count += len(problems)
    room = MAX_REPORTED - len(out.problems)
    out.problems.extend((out.lines, key, message, rule) for key, message, rule in problems[:max(room, 0)])


def sha256_of(url: str) -> str:
    digest = hashlib.sha256()
    with open_read(url) as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)  # hashlib releases the GIL on big buffers
    return digest.hexdigest()


class _Checksum(threading.Thread):
    """``sha256_of(url)`` beside the range scan, started by ``map_ranges`` once its workers are
    forked (a running thread would make it spawn them); ``result()`` waits for it."""

    def __init__(self, url: str) -> None:
        super().__init__(name="totask-input-sha256", daemon=True)  # a Ctrl-C does not wait for it
        self.url = url
        self.sha: str | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.sha = sha256_of(self.url)
        except BaseException as exc:
            self.error = exc

    def result(self) -> str:
        self.join()
        if self.error is not None:
            raise self.error
        assert self.sha is not None
        return self.sha


def scan_input(url: str, attribute: str, workers: int | None = None, *, checksum: bool = True,
               task_type: str | None = None, classes: JobClasses | None = None) -> InputScan:
    """Read the input once: checksum, line count, the selection, and every line ``validate``
    would refuse at line level (UTF-8, JSON object, one source key, line and value length,
    ``$`` keys, a key repeated at any depth: a job would read the last copy of it), named by
    line, key and rule. The rules are ``validate``'s own (``input_line_problems``).

    The checksum is a read of its own, beside the workers' ranges: without ``checksum`` (the
    input and ``--append`` manifests checked one by one before they are combined, whose
    checksums nothing keeps: the job's is the combined input's) it is not computed (``""``).
    ``classes``: the job's class names, held to the labels it passes over (``held_labels.JobClasses``)."""
    require_ranges(url)
    mark, before = fingerprint(url), version(url)
    summer = _Checksum(url) if checksum else None
    parts = map_ranges(scan_range, url, (attribute, task_type, classes), workers=workers,
                       started=summer.start if summer is not None else None)
    sha = summer.result() if summer is not None else ""
    refuse_changed(url, before)  # the checksum is a read of its own: of the same version as the lines?
    scan = InputScan(sha256=sha, held=HeldLabels(task_type, classes=classes))
    for part in parts:  # each part's arrays taken over or freed as it is added: 16 bytes a selected line
        add_range(scan, part)
    sel = scan.selection
    sel.lines, sel.sha256, sel.fingerprint = scan.lines, sha, mark
    scan.selected = len(sel.indices)
    return scan


def add_range(scan: InputScan, part: _RangeScan) -> None:
    """``part``, the range that follows those ``scan`` holds, added to it: its lines, selection
    and problems, numbered in the whole file. The part's arrays are the selection's when it has
    none yet, else emptied once copied: while every part kept its own, the scan peaked at twice
    the selection (32 bytes a selected line, 34 MB at 1M lines; 17 MB now)."""
    sel, base = scan.selection, scan.lines
    if not sel.indices:  # taken over, not copied (shifted when the lines before are not its own)
        sel.indices = array("q", map(base.__add__, part.indices)) if base else part.indices
        sel.offsets = part.offsets
    else:
        sel.indices.extend(map(base.__add__, part.indices))
        sel.offsets.extend(part.offsets)
    part.indices, part.offsets = array("q"), array("q")
    for number, key, message, rule in part.problems:
        where = f", key {key!r}" if key else ""
        _problem(scan, f"line {number + base}{where}: {message} [{rule}]")
    scan.problem_count += part.problem_count - len(part.problems)
    scan.bad_lines += part.bad_lines
    scan.held.add(part.held, base)
    scan.lines += part.lines


def _problem(scan: InputScan, message: str) -> None:
    scan.problem_count += 1
    if len(scan.problems) < MAX_REPORTED:
        scan.problems.append(message)


def raise_for_problems(url: str, scan: InputScan, what: str = "input manifest") -> None:
    """Refuse a manifest with lines ``validate`` would refuse, each named; ``what`` names the
    manifest's role (``--append manifest``), so the user knows which file the line numbers count in."""
    if scan.problem_count:
        more = scan.problem_count - len(scan.problems)
        listing = "\n  ".join(scan.problems) + (f"\n  ... and {more} more" if more > 0 else "")
        # lines, as the user counts them; problems too when a line holds more than one
        several = f" ({scan.problem_count} problems)" if scan.problem_count > scan.bad_lines else ""
        raise InvalidInputError(f"{what} {redact_url(url)} has {counted(scan.bad_lines, 'bad line')}{several}:\n  {listing}")


def raise_for_no_data(url: str, scan: InputScan, appended: Sequence[tuple[str, InputScan]] = ()) -> None:
    """Refuse a job input without a data object: ``url`` and its ``appended`` manifests (each
    scanned on its own, before they are combined into the job folder), all of them empty."""
    if any(s.selected for _, s in ((url, scan), *appended)):
        return
    if _has_data_object(url) or any(_has_data_object(u) for u, _ in appended):
        return
    # an empty file (the wrong path, an export that wrote nothing) would end COMPLETED having
    # labeled nothing, as a fully labeled input does
    n = len(appended)
    named = ", ".join(redact_url(u) for u, _ in appended)
    also = (f", nor {agreeing(n, 'does', 'do')} the --append {agreeing(n, 'manifest', 'manifests')} {named}"
            if appended else "")
    raise input_empty(redact_url(url), scan.lines, also=also)


def _has_data_object(url: str) -> bool:
    """Whether any line is not blank; read only while a job would select nothing, and only up to
    the first such line (line 1 of any fully labeled input)."""
    return blank_lines_only(url) is None


def job_selection(layout: JobLayout, input_url: str, attribute: str) -> LineSelection:
    """The job's selection: its ``selection.bin`` while the input's fingerprint is unchanged
    (nothing of the input is read), else a new scan of the input, kept for the next time. The
    caller compares ``sha256`` with the checksum the job started with."""
    selection = LineSelection.unkept(layout.selection) or LineSelection.load(layout.selection)
    if selection is not None and selection.fingerprint is not None and selection.fingerprint == fingerprint(input_url):
        return selection
    selection = scan_input(input_url, attribute).selection
    selection.keep(layout.selection)
    return selection


def selected_lines(job_url: str, input_url: str, attribute: str, *, after_index: int = -1) -> Iterator[tuple[Line, Item]]:
    """What an engine annotates: the selected lines past ``after_index``, read at their offsets."""
    yield from iter_selected(input_url, job_selection(JobLayout(job_url), input_url, attribute),
                             after_index=after_index)
