"""Reading a job's input once before it starts: identity, size, selection, and problems.

The checksum lets ``resume`` refuse an input that changed under a job; the selection (which
lines need a label, and where they start) drives the engine, the resume and the commit; and a
line ``validate`` refuses at line level stops the job before any work, naming the line, the key
and the rule.

A big input is scanned in byte ranges by worker processes (the scan parses every line, and that
is the cost), while this process computes the checksum, which cannot be split. The result is
kept in the job folder (``selection.bin``) with the file's fingerprint, so a resume of an
unchanged input reads neither the input nor its checksum again.
"""

from __future__ import annotations

import copy
import hashlib
import os
from array import array
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import fsspec

from .. import worker_pool
from ..errors import InvalidInputError
from ..manifest.io import CHUNK, iter_raw_lines, to_line
from ..manifest.line import Line
from ..outcomes import Item
from ..storage import open_read, redact_url, size, url_to_fs
from .layout import JobLayout
from .selection import LineSelection, iter_selected, needs_label

MAX_REPORTED = 20
#: smaller inputs are scanned in this process (starting workers costs more than it saves)
PARALLEL_THRESHOLD = 32 << 20
#: a few ranges per worker, so a worker slowed by other work on the machine does not hold up the rest
RANGES_PER_WORKER = 4
MIN_RANGE_BYTES = 16 << 20


@dataclass
class InputScan:
    sha256: str = ""
    lines: int = 0
    selected: int = 0
    problems: list[str] = field(default_factory=list)
    problem_count: int = 0
    selection: LineSelection = field(default_factory=LineSelection)


@dataclass
class _RangeScan:
    """What one byte range holds; line indices and numbers count from the range's first line."""

    lines: int = 0
    indices: array = field(default_factory=lambda: array("q"))
    offsets: array = field(default_factory=lambda: array("q"))
    problems: list[tuple[int, str, str, str]] = field(default_factory=list)
    problem_count: int = 0


def _first_line_start(f: Any, start: int) -> int:
    """The offset of the first line starting at or after ``start`` (``iter_raw_lines``'s rule)."""
    if start == 0:
        return 0
    f.seek(start - 1)
    return start if f.read(1) == b"\n" else start + len(f.readline())


def scan_range(url: str, start: int, end: int | None, attribute: str) -> _RangeScan:
    """Scan the lines starting in ``[start, end)``: ``validate``'s line-level rules
    (``input_line_problems``) and the selection rule, with each selected line's offset."""
    from ..manifest.validate import input_line_problems  # on use: the CLI starts without it

    out = _RangeScan()
    with open_read(url) as f:
        offset = _first_line_start(f, start)
        for raw in iter_raw_lines(f, start=offset, end=end):
            at = offset
            offset += len(raw)
            out.lines += 1
            line = to_line(out.lines, raw, first_in_file=at == 0)
            if line.is_blank:
                continue
            problems = input_line_problems(line)
            if problems:
                out.problem_count += len(problems)
                room = MAX_REPORTED - len(out.problems)
                out.problems.extend((out.lines, p.key, p.message, p.rule) for p in problems[:max(room, 0)])
                continue
            if needs_label(line.record(), attribute):
                out.indices.append(out.lines - 1)
                out.offsets.append(at)
    return out


def sha256_of(url: str) -> str:
    digest = hashlib.sha256()
    with open_read(url) as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)  # hashlib releases the GIL on big buffers
    return digest.hexdigest()


def fingerprint(url: str) -> dict[str, Any] | None:
    """What the store says identifies this version of the file (size and modification time,
    or an ETag), or None when it says nothing that would change with the content."""
    fs, path = url_to_fs(url)
    try:
        info = fs.info(path)
    except (OSError, ValueError):
        return None
    marks = {k: str(info[k]) for k in ("mtime", "LastModified", "ETag", "etag", "ino", "generation") if info.get(k)}
    if not marks:
        return None
    return {"size": int(info.get("size") or 0), **marks}


def _in_worker(conf: dict, fn: Callable[..., Any], *args: Any) -> Any:
    fsspec.config.conf.update(conf)  # storage options configured in the parent at run time
    return fn(*args)


def _map_ranges(fn: Callable[..., Any], url: str, ranges: list[tuple[int, int]], args: tuple,
                workers: int, meanwhile: Callable[[], Any]) -> tuple[list[Any], Any]:
    """``fn(url, start, end, *args)`` for each range in worker processes, in range order, and
    ``meanwhile()`` in this process while they work. The one use of a process pool here
    (``manifest.validate``'s pool helpers today; ``manifest.ranges.map_ranges`` when merged)."""
    from ..manifest.validate import _pool_context

    with ProcessPoolExecutor(max_workers=workers, mp_context=_pool_context(),
                             initializer=worker_pool.quiet_worker) as pool:
        conf = copy.deepcopy(fsspec.config.conf)
        with worker_pool.spawning():  # workers ignore Ctrl-C from their first instruction
            futures = [pool.submit(_in_worker, conf, fn, url, start, end, *args) for start, end in ranges]
        try:
            extra = meanwhile()
            return [f.result() for f in futures], extra
        except BaseException:
            worker_pool.stop(pool, futures)  # a Ctrl-C: no traceback from the pool or its workers
            raise


def _plan(url: str, total: int, workers: int) -> list[tuple[int, int]] | None:
    """Byte ranges for the workers, or None to scan in this process (a small file, one worker,
    or a store other processes cannot open, as ``memory://``). ``validate``'s plan; the lead
    switches it to ``manifest.ranges`` with ``_map_ranges``."""
    from ..manifest.validate import _shared_between_processes

    if workers <= 1 or total <= PARALLEL_THRESHOLD or not _shared_between_processes(url):
        return None
    count = max(workers, min(workers * RANGES_PER_WORKER, total // MIN_RANGE_BYTES))
    step = -(-total // count)
    return [(i * step, min((i + 1) * step, total)) for i in range(count)]


def scan_input(url: str, attribute: str, workers: int | None = None) -> InputScan:
    """Read the input once: checksum, line count, the selection, and every line ``validate``
    would refuse at line level (UTF-8, JSON object, one source key, line and value length,
    ``$`` keys, a key repeated at any depth: a job would read the last copy of it), named by
    line, key and rule. The rules are ``validate``'s own (``input_line_problems``)."""
    mark = fingerprint(url)
    total = size(url)
    workers = workers or os.cpu_count() or 1
    ranges = _plan(url, total, workers)
    if ranges is not None:
        parts, sha = _map_ranges(scan_range, url, ranges, (attribute,), workers, lambda: sha256_of(url))
    else:
        parts, sha = [scan_range(url, 0, None, attribute)], sha256_of(url)
    scan = InputScan(sha256=sha)
    sel = scan.selection
    for part in parts:
        base = scan.lines
        sel.indices.extend(part.indices if not base else array("q", (i + base for i in part.indices)))
        sel.offsets.extend(part.offsets)
        for number, key, message, rule in part.problems:
            where = f", key {key!r}" if key else ""
            _problem(scan, f"line {number + base}{where}: {message} [{rule}]")
        scan.problem_count += part.problem_count - len(part.problems)
        scan.lines += part.lines
    sel.lines, sel.sha256, sel.fingerprint = scan.lines, sha, mark
    scan.selected = len(sel.indices)
    return scan


def _problem(scan: InputScan, message: str) -> None:
    scan.problem_count += 1
    if len(scan.problems) < MAX_REPORTED:
        scan.problems.append(message)


def raise_for_problems(url: str, scan: InputScan) -> None:
    if scan.problem_count:
        more = scan.problem_count - len(scan.problems)
        listing = "\n  ".join(scan.problems) + (f"\n  ... and {more} more" if more > 0 else "")
        raise InvalidInputError(f"input manifest {redact_url(url)} has {scan.problem_count} bad line(s):\n  {listing}")


def job_selection(layout: JobLayout, input_url: str, attribute: str) -> LineSelection:
    """The job's selection: its ``selection.bin`` while the input's fingerprint is unchanged
    (nothing of the input is read), else a new scan of the input, kept for the next time. The
    caller compares ``sha256`` with the checksum the job started with."""
    selection = LineSelection.load(layout.selection)
    if selection is not None and selection.fingerprint is not None and selection.fingerprint == fingerprint(input_url):
        return selection
    selection = scan_input(input_url, attribute).selection
    selection.save(layout.selection)
    return selection


def selected_lines(job_url: str, input_url: str, attribute: str, *, after_index: int = -1) -> Iterator[tuple[Line, Item]]:
    """What an engine annotates: the selected lines past ``after_index``, read at their offsets."""
    yield from iter_selected(input_url, job_selection(JobLayout(job_url), input_url, attribute),
                             after_index=after_index)
