"""Validate's reader: a byte range as blocks of whole lines, cut into pieces and lines only
where a block needs it (``line_check.LineChecker``). The partition rule, the BOM rule and the
byte cap on a line are the line splitter's (``ranges``, ``long_lines``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO

from . import long_lines
from .ranges import CHUNK, split_bom


def iter_blocks(f: IO[bytes], *, start: int = 0, end: int | None = None, chunk: int = CHUNK) -> Iterator[bytes]:
    """The lines of ``[start, end)`` as blocks of whole lines (each line with its ``\\n``, a
    file's last line maybe without), the file's BOM taken off its first line: ``split_block``
    of each block is what ``iter_bodies`` yields. Why: ``validate``'s typed path decodes a block
    at once; splitting it into lines costs as much again, and is left to the blocks that need it.
    A line over ``MAX_LINE_BYTES`` comes as a ``TooLong`` block of its own, read past and never held."""
    offset = long_lines.line_start(f, start, chunk, end)  # file offset of the first byte of ``parts``
    parts: list[bytes] = []  # the start of a line not ended yet (chunks joined once it ends)
    held = 0  # bytes in ``parts``
    carry = b""  # what followed a line read past, in its last chunk
    bom = offset == 0
    while end is None or offset < end:
        data = carry or f.read(chunk)
        carry = b""
        if not data or b"\n" not in data:
            if data:
                parts.append(data)
                held += len(data)
                if held > long_lines.MAX_LINE_BYTES:  # over the cap: read on to its end
                    limit = None if end is None else end - offset - held  # the range's bytes left
                    skipped, carry, terminated = long_lines.skip_line(f, chunk, limit)
                    size = held + skipped
                    parts, held, bom = [], 0, False
                    yield long_lines.too_long(size, b"\n" if terminated else b"")
                    offset += size
                continue
            rest = b"".join(parts)
            if len(rest) > long_lines.MAX_LINE_BYTES:
                yield long_lines.too_long(len(rest), b"")
            elif rest:
                yield split_bom(rest)[1] if bom else rest
            return
        buf = b"".join([*parts, data])
        parts, held = [], 0
        too_long = long_lines.long_line_at(buf)  # a line over the cap whole in ``buf`` (rare)
        if too_long >= 0:  # the lines before it now, then its marker, then the rest (``carry``)
            cut = buf.index(b"\n", too_long) + 1
            buf, carry, too_long = buf[:too_long], buf[cut:], cut - too_long
        if end is not None and offset + len(buf) >= end and buf:
            cut = buf.find(b"\n", end - 1 - offset)  # the range's last line holds byte end - 1
            if cut >= 0:
                yield split_bom(buf[: cut + 1])[1] if bom else buf[: cut + 1]
                return
            # not ended yet: the lines before it go now, as any others (``parts`` holds one line)
        cut = buf.rfind(b"\n") + 1
        if cut:
            yield split_bom(buf[:cut])[1] if bom else buf[:cut]
            bom = False
        tail = buf[cut:]
        if tail:
            parts, held = [tail], len(tail)
        offset += cut
        if too_long > 0:
            if end is not None and offset >= end:
                return
            yield long_lines.too_long(too_long, b"\n")
            bom = False
            offset += too_long


def split_block(block: bytes) -> list[bytes]:
    """A block of ``iter_blocks`` as its lines, without their ``\\n`` (what ``iter_bodies`` yields)."""
    lines = block.split(b"\n")
    if block.endswith(b"\n"):
        lines.pop()
    return lines


def pieces(block: bytes, size: int) -> Iterator[memoryview]:
    """``block`` (whole lines) in pieces of whole lines, each ``size`` bytes or a line more:
    views, not copies: a copy of each piece (and its allocation) was 830 of the 28,000 instructions
    ``validate`` spends on a line (callgrind, 200k bench lines)."""
    at, end = 0, len(block)
    view = memoryview(block)
    while at < end:
        cut = block.find(b"\n", at + size) + 1 or end
        yield view[at:cut]
        at = cut
