"""Which lines a job labels: Ground Truth's chaining rule.

"All data objects without data connected to that label attribute name are labeled": a line is
selected when it has no value under the attribute (missing or null), or when the attribute's
metadata records a ``failure-reason`` from an earlier try, or routes the line to review
(``review-status: routed``, this tool's extension), even beside a value: such a value is no label
(``validate``, ``stats``, ``labeled``, the exports and ``apply`` read it so), and a line none of them
counts labeled was left for no job to label. Everything else passes through.
"""

from __future__ import annotations

import bisect
import logging
import os
import sys
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from .._errors import StorageError
from .._manifest.io import to_line
from .._manifest.line import Line
from .._manifest.naming import METADATA_SUFFIX, marks_no_label
from .._outcomes import Item
from .._storage import AtomicWriter, exists, open_read, read_bytes, redact_url

log = logging.getLogger(__name__)


def needs_label(record: dict, attribute: str) -> bool:
    """Whether a job labels the line: no value, or metadata saying a value is none (``marks_no_label``).
    The metadata's key is written out (``naming.metadata_key``'s form): a call fewer a line on the
    chain's selection, which pays for the predicate's own."""
    return record.get(attribute) is None or marks_no_label(record.get(attribute + METADATA_SUFFIX))


def select(lines: Iterable[Line], attribute: str, *, after_index: int = -1) -> Iterator[tuple[Line, Item]]:
    """Selected lines with their items, skipping the first ``after_index + 1`` lines (resume)."""
    for index, line in enumerate(lines):
        if index <= after_index or line.is_blank:
            continue
        record = line.record()
        if needs_label(record, attribute):
            yield line, Item(index, line.number, record)


# -- the selection a job keeps: which lines, where they start ------------------------------------

_MAGIC = b"totask-selection/1\n"


@dataclass
class LineSelection:
    """The lines a job labels, found once by the input scan and kept in ``selection.bin``.

    ``indices`` (0-based, increasing) and ``offsets`` (the byte where each of those lines
    starts) let the engine read only the selected lines and a resume seek straight to the first
    unfinished one, and let the commit check coverage and copy the input between records in
    blocks, without parsing a line again. ``sha256`` is the input's checksum and
    ``fingerprint`` what the store says about the file (size, modification time, ETag):
    while the fingerprint is unchanged a resume trusts the checksum instead of reading the
    whole input again.
    """

    lines: int = 0
    indices: array = field(default_factory=lambda: array("q"))
    offsets: array = field(default_factory=lambda: array("q"))
    sha256: str = ""
    fingerprint: dict[str, Any] | None = None

    def first_after(self, after_index: int) -> int:
        """Position in ``indices`` of the first selected line past ``after_index``."""
        return bisect.bisect_right(self.indices, after_index)

    def pieces(self) -> tuple[bytes | memoryview, ...]:
        """The file's bytes in pieces: the arrays as they are (16 bytes a selected line), not
        copied into one string (that took three copies of them, 48 bytes a line more at the peak)."""
        head = orjson.dumps({"lines": self.lines, "count": len(self.indices), "sha256": self.sha256,
                             "fingerprint": self.fingerprint})
        return (_MAGIC + head + b"\n", memoryview(_little(self.indices)).cast("B"),
                memoryview(_little(self.offsets)).cast("B"))

    def to_bytes(self) -> bytes:
        return b"".join(self.pieces())

    @classmethod
    def from_bytes(cls, data: bytes) -> LineSelection | None:
        """The selection, or None for bytes that are not one (then the input is scanned again)."""
        if not data.startswith(_MAGIC):
            return None
        try:
            end = data.index(b"\n", len(_MAGIC))
            head = orjson.loads(data[len(_MAGIC):end])
            count = int(head["count"])
            indices, offsets = array("q"), array("q")
            body = memoryview(data)[end + 1:]  # sliced without copying: the arrays are the only copy
            if len(body) != 16 * count:
                return None
            indices.frombytes(body[:8 * count])
            offsets.frombytes(body[8 * count:])
            return cls(int(head["lines"]), _little(indices), _little(offsets), str(head["sha256"]), head["fingerprint"])
        except (ValueError, KeyError, TypeError, orjson.JSONDecodeError):
            return None

    def save(self, url: str) -> None:
        with AtomicWriter(url) as f:
            for piece in self.pieces():
                f.write(piece)
        _last.clear()

    def keep(self, url: str) -> None:
        """``save``, as the cache it is: a store that refuses it (a full disk, a size limit) costs
        the next run a scan of the input, not the job; the job's own writes fail it if the store
        is really full."""
        try:
            self.save(url)
            _UNKEPT.pop(url, None)
        except StorageError as exc:
            if url not in _UNKEPT:  # said once: a run reads its selection three times, each read tried again
                log.warning("selection not kept at %s (%s): the next run scans the input again", redact_url(url), exc)
            while len(_UNKEPT) >= _UNKEPT_MAX:
                _UNKEPT.pop(next(iter(_UNKEPT)))
            _UNKEPT[url] = self

    @staticmethod
    def unkept(url: str) -> LineSelection | None:
        """The selection this process could not keep at ``url`` (``keep``): the run's later reads
        take it from here rather than scanning the input again (three scans on a full disk)."""
        return _UNKEPT.get(url)

    @classmethod
    def load(cls, url: str) -> LineSelection | None:
        """The selection in ``url``; a job run reads it three times (resume, engine, commit),
        so the last one read from a local file is kept while the file is unchanged."""
        stamp = _stamp(url)
        if stamp is not None and _last.get("url") == url and _last.get("stamp") == stamp:
            return _last["selection"]
        if not exists(url):
            return None
        selection = cls.from_bytes(read_bytes(url))
        _last.clear()
        if stamp is not None and selection is not None:
            _last.update(url=url, stamp=stamp, selection=selection)
        return selection


#: the last selection read from a local file, with the file's (size, mtime, inode)
_last: dict[str, Any] = {}
#: selections this process could not keep (``keep``), by URL, the oldest dropped past the bound
_UNKEPT: dict[str, LineSelection] = {}
_UNKEPT_MAX = 4


def _stamp(url: str) -> tuple[int, int, int] | None:
    if "://" in url:
        return None
    try:
        st = os.stat(url)
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns, st.st_ino


def _little(values: array) -> array:
    """The array in little-endian order (a no-op on the machines this runs on): the file's order."""
    if sys.byteorder == "big":
        values = array(values.typecode, values)
        values.byteswap()
    return values


def iter_selected(input_url: str, selection: LineSelection, *, after_index: int = -1) -> Iterator[tuple[Line, Item]]:
    """The selected lines past ``after_index`` with their items, read at their offsets: the
    lines in between are never read, and a resume starts at the first unfinished line."""
    start = selection.first_after(after_index)
    if start >= len(selection.indices):
        return
    with open_read(input_url) as f:
        for k in range(start, len(selection.indices)):
            index, offset = selection.indices[k], selection.offsets[k]
            if f.tell() != offset:
                f.seek(offset)
            line = to_line(index + 1, f.readline(), first_in_file=offset == 0)
            yield line, Item(index, line.number, line.record())
