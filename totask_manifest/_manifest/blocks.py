"""Validate's reader: a byte range as blocks of whole lines, cut into pieces and lines only
where a block needs it (``line_check.LineChecker``, the job's input scan). The partition rule,
the BOM rule and the byte cap on a line are the line splitter's (``ranges``, ``long_lines``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from io import BytesIO
from typing import IO, TYPE_CHECKING

from . import long_lines
from .ranges import BOM, CHUNK, split_bom

if TYPE_CHECKING:
    from .typed_plan import TypedPlan

#: bytes of a block the typed path decodes at once: some 38 bench lines, whose structs stay in
#: a core's cache while the per-piece steps (one encode comparison, the checks) cost little a
#: line; under the value-length limit, so that a piece needs no per-line length test
PIECE_BYTES = 16 << 10

#: bytes ``validate`` reads at once (``iter_blocks``' chunk). Small: a 1 MB chunk is
#: read, joined to the line left over from the chunk before and cut at its last line, three
#: fresh 1 MB buffers a chunk, above malloc's mmap threshold, so each came from the kernel
#: page by page (0.083 page faults a line) and none stayed in a core's cache. 64 KB buffers
#: are reused from the heap (0.003 faults a line): some 0.4 us less CPU a line (``iter_blocks``
#: and ``pieces`` alone: 572 ns a line at 1 MB, 180 ns at 64 KB, 252 ns at 32 KB)
BLOCK_BYTES = 64 << 10


def iter_blocks(f: IO[bytes], *, start: int = 0, end: int | None = None, chunk: int = CHUNK,
                keep_bom: bool = False) -> Iterator[bytes]:
    """The lines of ``[start, end)`` as blocks of whole lines (each line with its ``\\n``, a
    file's last line maybe without), the file's BOM taken off its first line: ``split_block``
    of each block is what ``iter_bodies`` yields. Why: ``validate``'s typed path decodes a block
    at once; splitting it into lines costs as much again, and is left to the blocks that need it.
    A line over ``MAX_LINE_BYTES`` comes as a ``TooLong`` block of its own, read past and never held.
    ``keep_bom``: the BOM stays, for a reader that counts the file's bytes (the job's input scan)."""
    offset = long_lines.line_start(f, start, chunk, end)  # file offset of the first byte of ``parts``
    parts: list[bytes] = []  # the start of a line not ended yet (chunks joined once it ends)
    held = 0  # bytes in ``parts``
    carry = b""  # what followed a line read past, in its last chunk
    bom = offset == 0 and not keep_bom
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


def block_lines(block: bytes) -> tuple[list[bytes], bytes]:
    """A block of ``iter_blocks`` as ``(its lines, each with its \n; the block)``: a ``TooLong``
    marker is a batch of its own, and a file holding only a BOM is one blank line (its block is
    empty once the mark is off). ``BytesIO.readlines`` finds the lines with ``memchr``."""
    return ([block], block) if type(block) is long_lines.TooLong else (BytesIO(block).readlines() or [b""], block)


def iter_line_lists(f: IO[bytes], *, start: int = 0, end: int | None = None,
                    chunk: int = CHUNK) -> Iterator[tuple[list[bytes], bytes]]:
    """``block_lines`` of each block of ``iter_blocks(f, start=start, end=end, chunk=chunk)``, read
    with two copies of each byte fewer, from a file that can seek back (a local one). Each batch
    comes with the bytes read for it, which may run past its last line: a line cut by the end of
    a chunk is read again with the next chunk (``seek`` back), instead of being joined to it, and
    the chunk is not cut to its whole lines. Why: each of those two copies cost some 45 ns a
    bench line, a tenth of ``stats``' reading (in-process, 200k lines: 284 ns a line read and
    split through ``iter_blocks``, 159 to 183 this way). Whatever is not plain (a line longer
    than a chunk, one over the byte cap, a BOM, the range's end) is ``iter_blocks``' own reading,
    so both give the same lines."""
    offset = long_lines.line_start(f, start, chunk, end)
    bom = 0  # the BOM's bytes, which iter_blocks takes off the file's first line
    if offset == 0:
        bom = len(BOM) if f.read(len(BOM)) == BOM else 0
        f.seek(0)
    whole_lines_fit = chunk <= long_lines.MAX_LINE_BYTES  # then no line inside a chunk is over the cap
    while end is None or offset < end:
        data = f.read(chunk)
        if not data:
            return
        cut = data.rfind(b"\n") + 1
        if (end is not None and offset + len(data) >= end) or not (whole_lines_fit or long_lines.long_line_at(data) < 0):
            f.seek(offset)  # the range's last chunk
            yield from map(block_lines, iter_blocks(f, start=offset, end=end, chunk=chunk))
            return
        if not cut or bom:  # a line longer than a chunk, or the BOM's: iter_blocks' first block
            f.seek(offset)
            block = next(iter_blocks(f, start=offset, end=end, chunk=chunk), None)
            if block is None:
                return
            yield block_lines(block)
            offset += block.size if type(block) is long_lines.TooLong else len(block) + bom
            bom = 0
            f.seek(offset)
            continue
        lines = BytesIO(data).readlines()
        offset += cut
        if cut < len(data):
            lines.pop()  # read again, whole, with the next chunk
            f.seek(offset)
        yield lines, data


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


def typed_parts(piece: bytes | memoryview,
                plan: Callable[[], TypedPlan | None]) -> Iterator[tuple[int, bytes | memoryview]]:
    """``piece`` (whole lines) in parts, in order, for a reader with a typed path
    (``typed_plan.TypedPlan``; ``plan()``, the current one, is read again before each part, which
    may change it): ``(n, text)``, ``n`` lines the typed path accepted; ``(0, text)``, whole lines
    (bytes) it did not take at once; ``(-1, line)``, one line it refused, without its ``\n``, for
    the per-line path alone (its shape must not become the typed path's). Why: the decoder names
    the line it refused, so the lines before it go the typed way again and the rest is a part of
    its own, rather than the whole piece line by line (``LineChecker.run``, the job's input scan).
    Two lines refused in a row send the rest to the per-run path, which learns a new shape: lines
    of another shape would otherwise each be refused, and checked alone, to the range's end."""
    rest = piece
    after_refused = False
    while rest:
        typed = plan()
        if typed is not None:
            accepted = typed.accepts(rest)
            if accepted:
                yield accepted, rest
                return
            refused = typed.refused_at
            around = (_around_line(bytes(rest), refused)
                      if refused is not None and not (after_refused and refused == 0) else None)
            if around is not None:
                head, line, rest = around
                if head and typed.accepts(head) == refused:
                    yield refused, head
                elif head:
                    yield 0, head
                yield -1, line
                after_refused = True
                continue
        yield 0, bytes(rest)
        return


def _around_line(text: bytes, k: int) -> tuple[bytes, bytes, bytes] | None:
    """``text`` (whole lines) as its first ``k`` lines, line ``k`` without its ``\n``, and the
    rest; None where ``text`` holds no line ``k``. Why: ``k`` comes from the decoder's message,
    which quotes the refused value (``Invalid enum value 'at `$[9999]`'``) before its path; a
    wrong ``k`` only splits the text elsewhere, each line still checked once."""
    at = 0
    for _ in range(k):
        at = text.find(b"\n", at) + 1
        if not at:
            return None
    if at >= len(text):
        return None
    end = text.find(b"\n", at)
    if end < 0:
        return text[:at], text[at:], b""
    return text[:at], text[at:end], text[end + 1:]
