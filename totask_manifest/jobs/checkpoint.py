"""Checkpoints: finished lines, in input order, committed in parts.

Each part is written whole and atomically (temporary name, then rename or move), so a ``kill -9``
leaves only complete parts: at most the lines of the part being gathered are lost and redone,
none is recorded twice. Records are in strictly increasing line index across parts, which lets
the output manifest be produced by a streaming merge with the input, in constant memory.

Record: ``{"i": index, "n": line number, "s": "labeled"|"failed"|"routed", "line": new body,
"reason": ..., "source": ..., "task_id": ...}``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import orjson

from ..errors import JobError
from ..storage import read_bytes, write_bytes_atomic
from .layout import JobLayout, part_number

STATUSES = ("labeled", "failed", "routed")


def iter_records(layout: JobLayout) -> Iterator[dict[str, Any]]:
    last = -1
    for url in layout.parts():
        for raw in read_bytes(url).splitlines():
            if not raw.strip():
                continue
            try:
                rec = orjson.loads(raw)
                index = rec["i"]
                if not isinstance(index, int) or not isinstance(rec["n"], int) or rec["s"] not in STATUSES \
                        or not isinstance(rec["line"], str):
                    raise TypeError("wrong field types")
            except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
                raise JobError(f"checkpoint {url} holds a corrupt record ({exc}); the job folder was damaged") from None
            if index <= last:
                raise JobError(f"checkpoint {url} is out of order at line index {rec['i']}")
            last = rec["i"]
            yield rec


def summarize(layout: JobLayout) -> tuple[int, dict[str, int], int]:
    """(last finished index, counts by status plus ``dropped`` (labeled lines that dropped
    something), next part number)."""
    counts = {"labeled": 0, "failed": 0, "routed": 0, "dropped": 0}
    last = -1
    for rec in iter_records(layout):
        counts[rec["s"]] += 1
        if rec.get("d"):
            counts["dropped"] += 1
        last = rec["i"]
    parts = layout.parts()
    next_seq = part_number(parts[-1]) + 1 if parts else 0
    return last, counts, next_seq


class CheckpointWriter:
    def __init__(
        self, layout: JobLayout, *, next_seq: int, every: int, seconds: float, on_commit=None, guard=None
    ) -> None:
        self.layout = layout
        #: called before each part is written; raises when this process may no longer write (lease lost)
        self.guard = guard
        self.seq = next_seq
        self.every = max(1, every)
        self.seconds = seconds
        self.on_commit = on_commit
        self._buffer: list[bytes] = []
        self._since = time.monotonic()

    def add(self, record: dict[str, Any]) -> None:
        self._buffer.append(orjson.dumps(record))
        if len(self._buffer) >= self.every or time.monotonic() - self._since >= self.seconds:
            self.flush()

    def flush(self) -> None:
        if self._buffer:
            if self.guard is not None:
                self.guard()
            write_bytes_atomic(self.layout.part(self.seq), b"\n".join(self._buffer) + b"\n")
            self.seq += 1
            self._buffer.clear()
            if self.on_commit is not None:
                self.on_commit()
        self._since = time.monotonic()
