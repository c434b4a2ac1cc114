"""Checkpoints: finished lines, in input order, committed in parts.

Each part is written whole and atomically (temporary name, then rename or move), so a ``kill -9``
leaves only complete parts: at most the lines of the part being gathered are lost and redone,
none is recorded twice. Records are in strictly increasing line index across parts, which lets
the output manifest be produced by a streaming merge with the input, in constant memory.

A part (``part-NNNNNN.ckpt``) is headers, bodies and a footer::

    totask-checkpoint/2\\n
    {"i": [line index, ...], "s": "lfr...", "b": [body bytes, ...], "in": [input bytes, ...],
     "x": {"position": {reason, rule, source, task_id, d}}}\\n
    <bodies, back to back>
    {"records": k, "first": i, "last": j, "counts": {...}, "heads": h, "bodies": b, "in": n} <10-digit length>\\n

A body is the output line exactly as it will be written (prefix, JSON, terminator): the commit
copies it as it is (on a local disk, file to file in the kernel), never decoding or re-encoding
the label. "input bytes" is the length of the input line it replaces, so the commit skips it
without reading it. The heads are columns (status ``l``abeled, ``f``ailed, ``r``outed, extras
by position), so a part of 500 records is checked in a few C-speed passes, not 500 steps. The footer holds what
``summarize`` needs (counts, last index), so a resume reads a few hundred bytes per part, not
the bodies; the footer's lengths must add up to the file's size, so a torn part is refused.

Parts written before this format (``part-NNNNNN.jsonl``: one JSON record per line, the new body
as a JSON string) are still read; their bodies lack the prefix and terminator (``whole`` false),
which the commit takes from the input line.
"""

from __future__ import annotations

import contextlib
import operator
import os
import time
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

import orjson

from .._errors import DamagedCheckpoint, JobError
from .._storage import open_read, read_bytes, write_bytes_atomic
from .known_keys import LINE_COUNTS
from .layout import JobLayout, part_number
from .read_ahead import advise_ahead

STATUSES = ("labeled", "failed", "routed")
MAGIC = b"totask-checkpoint/2\n"
#: the trailer after the footer: a space, the footer's length in 10 digits, a newline
_TRAILER = 12


@dataclass(slots=True)
class Record:
    """One finished line. ``body`` is the output line; with ``whole`` false (an old part) it is
    the JSON only, and the commit adds the input line's prefix and terminator."""

    index: int
    status: str
    body: bytes = b""
    in_bytes: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    whole: bool = True

    @property
    def number(self) -> int:
        return self.index + 1

    def get(self, key: str, default: Any = None) -> Any:
        return self.extra.get(key, default)


@dataclass(slots=True)
class PartSummary:
    records: int
    first: int
    last: int
    counts: dict[str, int]


def _corrupt(url: str, why: str) -> DamagedCheckpoint:
    return DamagedCheckpoint(url, why)


# -- writing ---------------------------------------------------------------------------------------
_CODES = {"labeled": "l", "failed": "f", "routed": "r"}
_STATUS = {code: status for status, code in _CODES.items()}


def encode_part(records: list[Record]) -> bytes:
    """A part's bytes (v2). Bodies must be ``whole``."""
    counts = dict.fromkeys((*_CODES, *LINE_COUNTS), 0)
    extras = {}
    for j, r in enumerate(records):
        counts[r.status] += 1
        if r.extra:
            extras[str(j)] = r.extra
            counts.update({name: counts[name] + bool(r.extra.get(key)) for name, key in LINE_COUNTS.items()})
    head_line = orjson.dumps({"i": [r.index for r in records], "s": "".join(_CODES[r.status] for r in records),
                              "b": [len(r.body) for r in records], "in": [r.in_bytes for r in records],
                              "x": extras}) + b"\n"
    bodies = b"".join(r.body for r in records)
    footer = orjson.dumps({"records": len(records), "first": records[0].index if records else -1,
                           "last": records[-1].index if records else -1, "counts": counts,
                           "heads": len(head_line), "bodies": len(bodies),
                           "in": sum(r.in_bytes or 0 for r in records)})
    return b"".join((MAGIC, head_line, bodies, footer, b" %010d\n" % len(footer)))


class CheckpointWriter:
    def __init__(
        self, layout: JobLayout, *, next_seq: int, every: int, seconds: float,
        on_commit: Callable[[], None] | None = None, guard: Callable[[], None] | None = None,
    ) -> None:
        self.layout = layout
        #: called before each part is written; raises when this process may no longer write (lease lost)
        self.guard = guard
        self.seq = next_seq
        self.every = max(1, every)
        self.seconds = seconds
        self.on_commit = on_commit
        self._buffer: list[Record] = []
        self._since = time.monotonic()

    def add(self, record: dict[str, Any], body: bytes, input_bytes: int | None = None) -> None:
        """``record``: ``i`` (line index), ``s`` (status) and the extras (``reason``, ``rule``,
        ``source``, ``task_id``, ``d``); ``body``: the output line as written, terminator
        included; ``input_bytes``: the length of the input line it replaces."""
        extra = {k: v for k, v in record.items() if k not in ("i", "s", "n")}
        self._buffer.append(Record(record["i"], record["s"], body, input_bytes, extra))
        if len(self._buffer) >= self.every or time.monotonic() - self._since >= self.seconds:
            self.flush()

    def flush(self) -> None:
        if self._buffer:
            if self.guard is not None:
                self.guard()
            write_bytes_atomic(self.layout.part(self.seq), encode_part(self._buffer))
            self.seq += 1
            self._buffer.clear()
            if self.on_commit is not None:
                self.on_commit()
        self._since = time.monotonic()


# -- reading ---------------------------------------------------------------------------------------

#: bytes read from a part's end at once: the trailer and, nearly always, the whole footer
_TAIL = 4096
#: ``read_at(offset, length)``: a part's bytes by position
ReadAt = Callable[[int, int], bytes]


@contextlib.contextmanager
def _opened(url: str) -> Iterator[tuple[int, ReadAt]]:
    """A part for reading: its size and ``read_at``. A local part is read with ``os.pread`` on
    a bare descriptor (a resume reads thousands of parts: a few system calls each, no buffered
    reader, no URL parsing); a store's file by seek and read."""
    if "://" not in url:
        try:
            fd = os.open(url, os.O_RDONLY)
        except FileNotFoundError:
            pass  # as the store says it
        else:
            try:
                yield os.fstat(fd).st_size, lambda offset, n: os.pread(fd, n, offset)
            finally:
                os.close(fd)
            return
    with open_read(url) as f:
        def read_at(offset: int, n: int) -> bytes:
            f.seek(offset)
            return f.read(n)
        yield f.seek(0, 2), read_at


def _footer(url: str, size: int, read_at: ReadAt) -> dict[str, Any]:
    """The footer of a v2 part, checked against the part's size; reads only the tail."""
    if size < len(MAGIC) + _TRAILER:
        raise _corrupt(url, "shorter than a part: torn")
    tail = read_at(max(size - _TAIL, 0), min(size, _TAIL))
    trailer = tail[-_TRAILER:]
    if len(trailer) != _TRAILER or trailer[:1] != b" " or trailer[-1:] != b"\n" or not trailer[1:-1].isdigit():
        raise _corrupt(url, "no footer: torn")
    length = int(trailer[1:-1])
    if size - _TRAILER - length < len(MAGIC):
        raise _corrupt(url, "footer length past the start: torn")
    if read_at(0, len(MAGIC)) != MAGIC:
        raise _corrupt(url, "not a checkpoint part")
    raw = tail[-_TRAILER - length:-_TRAILER] if length + _TRAILER <= len(tail) else \
        read_at(size - _TRAILER - length, length)
    try:
        foot = orjson.loads(raw)
        expected = len(MAGIC) + foot["heads"] + foot["bodies"] + length + _TRAILER
    except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
        raise _corrupt(url, f"footer: {exc}") from None
    if expected != size:
        raise _corrupt(url, f"{size} bytes where the footer counts {expected}: torn")
    return foot


@dataclass(slots=True)
class Part:
    """One part as read, in columns: line indices, status letters, body lengths, input line
    lengths, extras by position. ``data`` holds the bodies when they were read; otherwise they
    lie in the part file from ``body_offset`` (the commit copies them from there)."""

    url: str
    index: list[int]
    status: str
    length: list[int]
    in_bytes: list[int | None]
    extra: dict[int, dict[str, Any]]
    whole: bool = True
    body_offset: int = 0
    data: bytes | None = None
    #: ``index`` and ``in_bytes`` as the arrays they were checked as (``in_array`` None where an
    #: input length is missing): the commit compares them with the selection without converting again
    index_array: array | None = None
    in_array: array | None = None

    def records(self) -> Iterator[Record]:
        at, data = 0, self.data
        for j, index in enumerate(self.index):
            n = self.length[j]
            yield Record(index, _STATUS[self.status[j]], data[at:at + n] if data is not None else b"",
                         self.in_bytes[j], self.extra.get(j, {}), self.whole)
            at += n


def _checked(part: Part, last: int) -> int:
    """The total body length of a part whose columns are well formed and in strictly increasing
    line order after ``last``; anything else is refused. Each test is one pass in C."""
    url, m = part.url, len(part.index)
    try:
        # lengths as unsigned: a negative one fails the conversion (no pass of its own to find it)
        index, lengths = array("q", part.index), array("Q", part.length)
        try:
            in_array: array | None = array("q", part.in_bytes)
        except TypeError:
            if None not in part.in_bytes:
                raise
            in_array = None
            if part.whole:
                array("q", [n for n in part.in_bytes if n is not None])
        ok = len(part.status) == m == len(lengths) == len(part.in_bytes) and not part.status.strip("lfr") \
            and all(isinstance(x, dict) for x in part.extra.values())
    except (TypeError, OverflowError):
        ok = False
    if not ok:
        raise _corrupt(url, "wrong field types")
    if m and (part.index[0] <= last or not _increasing(part.index)):
        previous = [last, *part.index]
        bad = next(b for a, b in zip(previous, part.index, strict=False) if b <= a)
        raise JobError(f"checkpoint {url} is out of order at line index {bad}")
    part.index_array, part.in_array = index, in_array
    return sum(lengths)


def _increasing(index: list[int]) -> bool:
    """Whether line indices rise strictly: at once for consecutive lines (the usual part, where
    a job labels most lines), else pair by pair."""
    first = index[0]
    if index[-1] - first == len(index) - 1 and index == list(range(first, first + len(index))):
        return True
    return all(map(operator.lt, index, islice(index, 1, None)))


def _v2_part(url: str, last: int, *, bodies: bool) -> Part:
    with _opened(url) as (size, read_at):
        foot = _footer(url, size, read_at)
        try:
            heads, n = int(foot["heads"]), int(foot["bodies"])
        except (TypeError, ValueError) as exc:
            raise _corrupt(url, f"footer: {exc}") from None
        # two reads, not one cut in two: a slice of the bodies would copy them once more
        head_line = read_at(len(MAGIC), heads)
        data = read_at(len(MAGIC) + heads, n) if bodies else None
    if len(head_line) != heads or (data is not None and len(data) != n):
        raise _corrupt(url, "shorter than its footer says: torn")
    try:
        h = orjson.loads(head_line)
        part = Part(url, h["i"], h["s"], h["b"], h["in"], {int(k): v for k, v in h["x"].items()},
                    body_offset=len(MAGIC) + len(head_line), data=data)
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise _corrupt(url, str(exc)) from None
    if _checked(part, last) != foot["bodies"]:
        raise _corrupt(url, "body lengths differ from the footer's")
    return part


def _v1_part(url: str, data: bytes, last: int) -> Part:
    part = Part(url, [], "", [], [], {}, whole=False)
    bodies = []
    for raw in data.splitlines():
        if not raw.strip():
            continue
        try:
            rec = orjson.loads(raw)
            index = rec["i"]
            if type(index) is not int or rec["n"] != index + 1 or rec["s"] not in STATUSES \
                    or not isinstance(rec["line"], str):
                raise TypeError("wrong field types")
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            raise _corrupt(url, str(exc)) from None
        body = rec["line"].encode("utf-8")
        extra = {k: v for k, v in rec.items() if k not in ("i", "n", "s", "line")}
        if extra:
            part.extra[len(part.index)] = extra
        part.index.append(index)
        part.status += _CODES[rec["s"]]
        part.length.append(len(body))
        part.in_bytes.append(None)
        bodies.append(body)
    part.data = b"".join(bodies)
    _checked(part, last)
    return part


def read_bodies(part: Part) -> None:
    """Read the bodies of a part loaded without them (``bodies=False``), from its file."""
    if part.data is not None:
        return
    with _opened(part.url) as (_size, read_at):
        data = read_at(part.body_offset, sum(part.length))
    if len(data) != sum(part.length):
        raise _corrupt(part.url, "shorter than its heads say: torn")
    part.data = data


def _is_v1(url: str) -> bool:
    return url.endswith(".jsonl")


def load_part(url: str, *, after: int = -1, bodies: bool = True) -> Part:
    """One part, old format or new, whose records must all come after line index ``after``.
    Without ``bodies`` only the heads and footer of a new part are read."""
    if _is_v1(url):
        return _v1_part(url, read_bytes(url), after)
    return _v2_part(url, after, bodies=bodies)


def read_part(url: str, *, bodies: bool = True) -> Iterator[Record]:
    """The records of one part."""
    yield from load_part(url, bodies=bodies).records()


def iter_parts(layout: JobLayout, *, bodies: bool = True, copied: bool = False) -> Iterator[Part]:
    """Every part in order; refuses records out of order (or twice) within and across parts.
    ``copied``: the caller copies the bodies from the part files, so they are read ahead too."""
    last = -1
    for url in advise_ahead(layout.parts(), tail=not (bodies or copied)):
        part = load_part(url, after=last, bodies=bodies)
        if part.index:
            last = part.index[-1]
        yield part


def iter_records(layout: JobLayout, *, bodies: bool = True) -> Iterator[Record]:
    """Every record in line order."""
    for part in iter_parts(layout, bodies=bodies):
        yield from part.records()


def part_summary(url: str) -> PartSummary:
    """Counts and index range of one part: the footer of a new part, every record of an old one."""
    if not _is_v1(url):
        with _opened(url) as (size, read_at):
            foot = _footer(url, size, read_at)
        try:
            counts = {s: int(foot["counts"].get(s, 0)) for s in (*STATUSES, *LINE_COUNTS)}
            return PartSummary(int(foot["records"]), int(foot["first"]), int(foot["last"]), counts)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise _corrupt(url, f"footer: {exc}") from None
    part = load_part(url)
    counts = {status: part.status.count(code) for status, code in _CODES.items()}
    counts.update({name: sum(bool(x.get(key)) for x in part.extra.values()) for name, key in LINE_COUNTS.items()})
    return PartSummary(len(part.index), part.index[0] if part.index else -1, part.index[-1] if part.index else -1,
                       counts)


def summarize(layout: JobLayout) -> tuple[int, dict[str, int], int]:
    """(last finished index, counts by status plus ``LINE_COUNTS`` (labeled lines that dropped
    something, that were warned of), next part number), from the parts' footers."""
    counts = dict.fromkeys((*_CODES, *LINE_COUNTS), 0)
    last = -1
    parts = layout.parts()
    for url in advise_ahead(parts, tail=True):
        s = part_summary(url)
        if not s.records:
            continue
        if s.first <= last:
            raise JobError(f"checkpoint {url} is out of order at line index {s.first}")
        for key, value in s.counts.items():
            counts[key] += value
        last = s.last
    next_seq = part_number(parts[-1]) + 1 if parts else 0
    return last, counts, next_seq
