"""Checkpoints: finished lines, in input order, committed in parts.

Each part is written whole and atomically (temporary name, then rename or move), so a ``kill -9``
leaves only complete parts: at most the lines of the part being gathered are lost and redone,
none is recorded twice. Records are in strictly increasing line index across parts, which lets
the output manifest be produced by a streaming merge with the input, in constant memory.

A part (``part-NNNNNN.ckpt``) is headers, bodies and a footer::

    totask-checkpoint/2\\n
    [[index, status, body bytes, input bytes, {reason, rule, source, task_id, d}?], ...]\\n
    <bodies, back to back>
    {"records": k, "first": i, "last": j, "counts": {...}, "heads": h, "bodies": b, "in": n} <10-digit length>\\n

A body is the output line exactly as it will be written (prefix, JSON, terminator): the commit
copies it as it is, never decoding or re-encoding the label. "input bytes" is the length of the
input line it replaces, so the commit skips it without reading it. The footer holds what
``summarize`` needs (counts, last index), so a resume reads a few hundred bytes per part, not
the bodies; the footer's lengths must add up to the file's size, so a torn part is refused.

Parts written before this format (``part-NNNNNN.jsonl``: one JSON record per line, the new body
as a JSON string) are still read; their bodies lack the prefix and terminator (``whole`` false),
which the commit takes from the input line.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from ..errors import JobError
from ..storage import open_read, read_bytes, write_bytes_atomic
from .layout import JobLayout, part_number

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


def _corrupt(url: str, why: str) -> JobError:
    return JobError(f"checkpoint {url} holds a corrupt record ({why}); the job folder was damaged")


# -- writing ---------------------------------------------------------------------------------------

def encode_part(records: list[Record]) -> bytes:
    """A part's bytes (v2). Bodies must be ``whole``."""
    heads = []
    counts = {"labeled": 0, "failed": 0, "routed": 0, "dropped": 0}
    total_in = 0
    for r in records:
        head: list[Any] = [r.index, r.status, len(r.body), r.in_bytes]
        if r.extra:
            head.append(r.extra)
        heads.append(head)
        counts[r.status] += 1
        counts["dropped"] += bool(r.extra.get("d"))
        total_in += r.in_bytes or 0
    head_line = orjson.dumps(heads) + b"\n"
    bodies = b"".join(r.body for r in records)
    footer = orjson.dumps({"records": len(records), "first": records[0].index if records else -1,
                           "last": records[-1].index if records else -1, "counts": counts,
                           "heads": len(head_line), "bodies": len(bodies), "in": total_in})
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

def _footer(url: str, data: bytes | None = None) -> tuple[dict[str, Any], int]:
    """The footer of a v2 part and the part's size; reads only the tail unless ``data`` is given."""
    if data is None:
        with open_read(url) as f:
            size = f.seek(0, 2)
            if size < len(MAGIC) + _TRAILER:
                raise _corrupt(url, "shorter than a part: torn")
            f.seek(size - _TRAILER)
            trailer = f.read(_TRAILER)
            length = _trailer_length(url, trailer)
            f.seek(0)
            magic = f.read(len(MAGIC))
            if size - _TRAILER - length < len(MAGIC):
                raise _corrupt(url, "footer length past the start: torn")
            f.seek(size - _TRAILER - length)
            raw = f.read(length)
    else:
        size = len(data)
        if size < len(MAGIC) + _TRAILER:
            raise _corrupt(url, "shorter than a part: torn")
        length = _trailer_length(url, data[-_TRAILER:])
        magic, raw = data[:len(MAGIC)], data[size - _TRAILER - length: size - _TRAILER]
    if magic != MAGIC:
        raise _corrupt(url, "not a checkpoint part")
    try:
        foot = orjson.loads(raw)
        parts = len(MAGIC) + foot["heads"] + foot["bodies"] + length + _TRAILER
    except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
        raise _corrupt(url, f"footer: {exc}") from None
    if parts != size:
        raise _corrupt(url, f"{size} bytes where the footer counts {parts}: torn")
    return foot, size


def _trailer_length(url: str, trailer: bytes) -> int:
    if len(trailer) != _TRAILER or trailer[:1] != b" " or trailer[-1:] != b"\n" or not trailer[1:-1].isdigit():
        raise _corrupt(url, "no footer: torn")
    return int(trailer[1:-1])


@dataclass(slots=True)
class Part:
    """One part as read: a head per record (``[index, status, body length, input bytes,
    extra?]``) and the bodies, back to back from ``body_at`` in ``data``. The commit works on
    these columns directly (a run of adjacent lines is one write); ``records()`` gives objects."""

    url: str
    heads: list[list[Any]]
    data: bytes
    body_at: int
    whole: bool

    def records(self) -> Iterator[Record]:
        at, data, whole = self.body_at, self.data, self.whole
        for h in self.heads:
            yield Record(h[0], h[1], data[at:at + h[2]], h[3], h[4] if len(h) > 4 else {}, whole)
            at += h[2]


def _checked(url: str, heads: Any, last: int) -> int:
    """The total body length of well-formed heads in strictly increasing line order after
    ``last``; anything else is refused."""
    if not isinstance(heads, list):
        raise _corrupt(url, "no record heads")
    total = 0
    for h in heads:
        try:
            index, status, length, in_bytes = h[0], h[1], h[2], h[3]
            bad = type(index) is not int or status not in STATUSES or type(length) is not int or length < 0 \
                or not (in_bytes is None or type(in_bytes) is int) or (len(h) > 4 and not isinstance(h[4], dict))
        except (IndexError, TypeError, KeyError):
            bad = True
        if bad:
            raise _corrupt(url, "wrong field types")
        if index <= last:
            raise JobError(f"checkpoint {url} is out of order at line index {index}")
        last = index
        total += length
    return total


def _v2_part(url: str, data: bytes, last: int, *, bodies: bool) -> Part:
    if bodies:
        foot, _ = _footer(url, data)
        end = len(MAGIC) + foot["heads"]
    else:
        end = len(data)
    try:
        heads = orjson.loads(data[len(MAGIC):end])
    except orjson.JSONDecodeError as exc:
        raise _corrupt(url, str(exc)) from None
    total = _checked(url, heads, last)
    if bodies and total != foot["bodies"]:
        raise _corrupt(url, "body lengths differ from the footer's")
    if not bodies:
        heads = [[h[0], h[1], 0, *h[3:]] for h in heads]
    return Part(url, heads, data, end, True)


def _v1_part(url: str, data: bytes, last: int) -> Part:
    heads, bodies = [], []
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
        heads.append([index, rec["s"], len(body), None, extra])
        bodies.append(body)
    _checked(url, heads, last)
    return Part(url, heads, b"".join(bodies), 0, False)


def _is_v1(url: str) -> bool:
    return url.endswith(".jsonl")


def load_part(url: str, *, after: int = -1, bodies: bool = True) -> Part:
    """One part, old format or new, whose records must all come after line index ``after``.
    Without ``bodies`` only the heads of a new part are read (its body lengths read as 0)."""
    if _is_v1(url):
        return _v1_part(url, read_bytes(url), after)
    if bodies:
        return _v2_part(url, read_bytes(url), after, bodies=True)
    with open_read(url) as f:
        head = f.read(len(MAGIC))
        if head != MAGIC:
            raise _corrupt(url, "not a checkpoint part")
        return _v2_part(url, head + f.readline(), after, bodies=False)


def read_part(url: str, *, bodies: bool = True) -> Iterator[Record]:
    """The records of one part."""
    yield from load_part(url, bodies=bodies).records()


def iter_parts(layout: JobLayout, *, bodies: bool = True) -> Iterator[Part]:
    """Every part in order; refuses records out of order (or twice) within and across parts."""
    last = -1
    for url in layout.parts():
        part = load_part(url, after=last, bodies=bodies)
        if part.heads:
            last = part.heads[-1][0]
        yield part


def iter_records(layout: JobLayout, *, bodies: bool = True) -> Iterator[Record]:
    """Every record in line order."""
    for part in iter_parts(layout, bodies=bodies):
        yield from part.records()


def part_summary(url: str) -> PartSummary:
    """Counts and index range of one part: the footer of a new part, every record of an old one."""
    if not _is_v1(url):
        foot, _ = _footer(url)
        try:
            counts = {s: int(foot["counts"].get(s, 0)) for s in (*STATUSES, "dropped")}
            return PartSummary(int(foot["records"]), int(foot["first"]), int(foot["last"]), counts)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise _corrupt(url, f"footer: {exc}") from None
    counts = {"labeled": 0, "failed": 0, "routed": 0, "dropped": 0}
    heads = load_part(url).heads
    for h in heads:
        counts[h[1]] += 1
        counts["dropped"] += bool(h[4].get("d"))
    return PartSummary(len(heads), heads[0][0] if heads else -1, heads[-1][0] if heads else -1, counts)


def summarize(layout: JobLayout) -> tuple[int, dict[str, int], int]:
    """(last finished index, counts by status plus ``dropped`` (labeled lines that dropped
    something), next part number), from the parts' footers."""
    counts = {"labeled": 0, "failed": 0, "routed": 0, "dropped": 0}
    last = -1
    parts = layout.parts()
    for url in parts:
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
