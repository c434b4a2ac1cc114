"""Lines over the byte cap: the splitters (``ranges``) read past them chunk by chunk and yield a
marker in their place, so no reader holds such a line.

Why: the splitters joined a line's chunks once it ended, whatever its length; a 2.2 GB line
took 10.8 GB of memory in ``annotate`` (the join, the decode, the parse) before it was refused
for its length, and a 4 GB line would have run a machine out of memory. A line over
``MAX_LINE_BYTES`` has more than ``MAX_LINE_CHARS`` characters whatever its bytes (a UTF-8
character is at most 4 bytes, an invalid byte decodes to at most one character), so Ground
Truth refuses it (``line-too-long``) and no reader needs its content.
"""

from __future__ import annotations

from typing import IO

from .naming import MAX_LINE_CHARS

#: bytes of a line, its ``\n`` left out, beyond which it is certainly over ``MAX_LINE_CHARS``
#: characters: 4 bytes a character, and a byte order mark (3) and a ``\r`` (1) that are no part of them
MAX_LINE_BYTES = 4 * MAX_LINE_CHARS + 4


class TooLong(bytes):
    """What a splitter yields for a line over ``MAX_LINE_BYTES``, alone in its batch (or as its
    own block): ``b"\\x00"`` (never JSON, never blank), with the line's ``\\n`` where lines keep
    theirs. ``size`` is the line's length in the file, terminator included (an offset after it
    stays exact), or, where the byte range ends inside the line, its bytes up to there at least.
    Readers test the first line of a batch (``type(lines[0]) is TooLong``): once a chunk, never
    once a line."""

    size: int


def too_long(size: int, terminator: bytes) -> TooLong:
    marker = TooLong(b"\x00" + terminator)
    marker.size = size
    return marker


def skip_line(f: IO[bytes], chunk: int, limit: int | None = None) -> tuple[int, bytes, bool]:
    """Read on to the end of the line the file is in, chunk by chunk, keeping none of it:
    ``(bytes read up to and with its \\n, what followed the \\n in the last chunk, whether a \\n
    ended it)``; at the file's end the line is unterminated. ``limit``: stop, the line not ended,
    once that many bytes are read (where a byte range ends): the ranges of a file cut inside a
    2 GB line each read on to the line's end, the line read once a range."""
    skipped = 0
    while limit is None or skipped < limit:
        data = f.read(chunk)
        if not data:
            return skipped, b"", False
        cut = data.find(b"\n")
        if cut >= 0:
            return skipped + cut + 1, data[cut + 1:], True
        skipped += len(data)
    return skipped, b"", False


def line_start(f: IO[bytes], start: int, chunk: int, end: int | None = None) -> int:
    """The offset of the first line starting at or after ``start`` (a line belongs to the range
    its first byte is in), the file left there; ``end`` or past it when none starts before ``end``.
    ``readline`` read the line cut by ``start`` whole: a range boundary inside a 2 GB line held
    it in a worker's memory."""
    if start > 0:
        f.seek(start - 1)
        if f.read(1) != b"\n":
            start += skip_line(f, chunk, None if end is None else end - start)[0]
            f.seek(start)
    return start


def long_line_at(buf: bytes) -> int:
    """Where the first line of ``buf``'s whole lines (up to its last ``\\n``) that is over
    ``MAX_LINE_BYTES`` starts, or -1. A few ``rfind`` a chunk, not a step a line: each looks
    back from ``MAX_LINE_BYTES`` past the start of a line for the last ``\\n``, and none there
    means that line is over the cap."""
    cap = MAX_LINE_BYTES
    stop = buf.rfind(b"\n")
    at = 0
    while at + cap < stop:  # the line at ``at`` is over the cap only if its \n lies past at + cap
        cut = buf.rfind(b"\n", at, at + cap + 1)
        if cut < 0:
            return at
        at = cut + 1
    return -1


def message() -> str:
    """The ``line-too-long`` message of a line read past: its characters were never counted."""
    return (f"line is over {MAX_LINE_BYTES:,} bytes, so over {MAX_LINE_CHARS:,} characters; Ground Truth "
            f"allows at most {MAX_LINE_CHARS:,} (the line was not read)")
