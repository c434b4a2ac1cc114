"""What a manifest holds, counted exactly, in parallel, in constant memory.

Every line is parsed whole: no pattern guesses where a field starts or ends, so a brace or a
quote inside a string cannot shift a count. Bounding-box lines of the shapes Ground Truth writes
are decoded by msgspec into typed structs (``stats_fast``, about half the work of a dict per
object); every other line, and any line msgspec refuses, is parsed with orjson and counted by
the generic code (``Tally.generic``), which is the specification the fast path is tested
against. Parsing is the cost, so a local file is split
into byte ranges (``manifest.ranges``: a line belongs to the range its first byte is in), shared
out among one process per core, this one included. A process counts each line's facts per label
attribute (``stats_facts.Counts``: ``Counter`` objects keyed by type, failure rule, job, class id
and name, boxes per image; the fast path counts a slice of lines at once); every ``BATCH_LINES``
lines, or sooner once ``CONF_HELD`` confidences are held, the confidences gathered are binned
(numpy) and the class-map pairs normalised. Only the
counts cross process boundaries; the parent sums them (``stats_tables``). Memory is bounded by
the batch sizes and the number of distinct values (classes, reasons, job names), never by the
number of lines.

Other fsspec URLs (s3://, memory://) stream through the same per-line code in this process:
ranged reads of a remote object cost a request each and gain little.

Pool processes are forked when this process runs no other thread (``ranges._context``): they
inherit the imports (msgspec, orjson, numpy) instead of paying them again, as a spawned
interpreter would (about 0.35 s of CPU a process). Nothing on this path starts a thread before
``map_ranges``; polars, which used to count the tables here, did (a process forked after polars
had run deadlocked on its first query), and cost each process a third of a second to import.
"""

from __future__ import annotations

import gc
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from io import BufferedReader, BytesIO
from typing import IO, Any

import orjson

from .. import _storage as storage
from .._errors import counted
from .._lookalike import names_apart
from .._manifest import long_lines
from .._manifest.blocks import block_lines, iter_blocks, iter_line_lists
from .._manifest.io import refuse_absent_attribute, refuse_empty_path, refuse_not_an_attribute
from .._manifest.long_lines import TooLong
from .._manifest.ranges import check_workers, map_ranges
from .stats_facts import BINS, KEY_CACHE, NOT_ATTRIBUTES, SUFFIX, UNSEEN, Counts
from .stats_fast import FastPath
from .stats_tables import AttributeStats, ClassClash, ClassCount, ManifestStats, Partial, merge_partials

__all__ = ["BINS", "AttributeStats", "ClassClash", "ClassCount", "ManifestStats", "format_text", "manifest_stats"]

#: lines between two ``Tally.flush`` calls
BATCH_LINES = 50_000
#: confidences held between two flushes, at most (plus one batch of the splitter's): each is a
#: float object and a list slot, about 32 bytes. By lines alone, 50-box lines held 2.5 million
#: (80 MB) before their first flush, and a line with more boxes held more: memory grew with the
#: boxes a line holds. Flushing is per value (``np.fromiter``), so a smaller batch costs nothing.
CONF_HELD = 1 << 17
#: bytes read at once: a block's buffers stay in the CPU's cache while its lines are split,
#: proven (``stats_lean``) and decoded; 1 MB reads were joined and split in fresh buffers above
#: malloc's mmap threshold, paid for in page faults (200k bench lines split: 314 ns a line at
#: 1 MB, 296 at 64 KB, 194 at 256 KB, in one process)
READ_BYTES = 256 << 10
#: ``((url, attributes), FastPath)``: the fast path of this process's last range. Learning the
#: keys and job names of a file and building the structs from them cost some 0.7-1.4 ms a range.
#: (More, smaller ranges did not shorten the wait at the end: 32 a worker, 8 MiB each, took 1.27-1.28
#: s against 1.16-1.25 for 8 a worker on the benchmark. Tapered ones do (``map_ranges(taper=True)``):
#: the two processes ended 0.05-0.14 s apart with 16 even ranges, 0.001-0.03 s apart with 34
#: tapered to 1 MiB where they meet, and the wall time beyond half the CPU time went from
#: 0.05-0.075 s to 0.011-0.026.)
_learned: tuple[tuple[str, tuple[str, ...] | None], FastPath] | None = None


class Tally:
    """One range's running counts (the ``Partial``: each attribute's ``Counts``) and the generic
    per-line count (``orjson`` parses the whole line) that every line can take. The fast path
    (``stats_fast``) hands it the lines it does not know."""

    def __init__(self, attributes: Sequence[str] | None) -> None:
        self.part = Partial()
        self.columns: dict[str, Counts] = self.part.attributes
        # key -> label attribute (None: not a ``-metadata`` key); named attributes are the only keys
        self.keys: dict[str, Any] = {a + SUFFIX: a for a in attributes} if attributes is not None else {}
        self.discover = attributes is None

    def column(self, attr: str) -> Counts:
        cols = self.columns.get(attr)
        if cols is None:
            cols = self.columns[attr] = Counts()
        return cols

    def generic(self, lines: Iterable[bytes]) -> None:
        """Count ``lines`` the generic way: one ``orjson.loads`` each, every key looked at."""
        part, columns, keys, discover = self.part, self.columns, self.keys, self.discover
        loads, decode_error = orjson.loads, orjson.JSONDecodeError
        for body in lines:
            try:
                record = loads(body)
            except decode_error:
                if body.strip():
                    part.invalid += 1
                else:
                    part.blank += 1
                continue
            if type(record) is not dict:
                part.invalid += 1
                continue
            for key in (record if discover else keys):
                attr = keys.get(key, UNSEEN)
                if attr is UNSEEN:  # a key seen for the first time (discovery only)
                    attr = key[: -len(SUFFIX)] if key.endswith(SUFFIX) else None
                    if attr in NOT_ATTRIBUTES:
                        attr = None
                    if len(keys) < KEY_CACHE:
                        keys[key] = attr
                if attr is None:
                    continue
                meta = record.get(key)
                if type(meta) is not dict:
                    continue
                cols = columns.get(attr)
                if cols is None:
                    cols = columns[attr] = Counts()
                cols.add(record, attr, meta)

    def flush(self) -> None:
        """Bin the confidences and normalise the class names counted so far (``BATCH_LINES`` at a
        time: memory stays bounded by the distinct values of a batch)."""
        for cols in self.columns.values():
            cols.flush()


def _line_blocks(f: IO[bytes], start: int, end: int | None) -> Iterator[tuple[list[bytes], bytes]]:
    """``(lines, block)``: the lines of each block of ``iter_blocks``, each with its ``\n`` (JSON
    takes it as whitespace), and the bytes read for them (``blocks.block_lines``). A local file,
    which can seek back, is read with fewer copies (``blocks.iter_line_lists``)."""
    if isinstance(f, BufferedReader | BytesIO):
        return iter_line_lists(f, start=start, end=end, chunk=READ_BYTES)
    return map(block_lines, iter_blocks(f, start=start, end=end, chunk=READ_BYTES))


def _count_lines(batches: Iterable[tuple[list[bytes], bytes | None]],
                 attributes: Sequence[str] | None, *, fast: bool = True, quick: FastPath | None = None) -> Partial:
    """Count every line once; bin and normalise every ``BATCH_LINES`` lines.

    ``batches``: ``(lines, block)``, ``block`` the lines as read (None: joined where needed).
    ``fast`` decodes the lines whose shape ``stats_fast`` knows with msgspec and leaves the rest
    to the generic count; ``fast=False`` is the generic count alone (the reference the tests hold
    the fast path to). ``quick``: a fast path that learned the shapes of earlier ranges."""
    tally = Tally(attributes)
    quick = (quick or FastPath(attributes)) if fast else None
    pending = 0
    gc_was_enabled = gc.isenabled()
    gc.disable()  # the loop makes no reference cycles; the collector would only rescan young objects
    try:
        for lines, block in batches:
            tally.part.lines += len(lines)
            if type(lines[0]) is TooLong:  # a line over the byte cap, read past: invalid data, never parsed
                tally.part.invalid += 1
                tally.part.too_long += 1
                continue
            pending += len(lines)
            if quick is None:
                tally.generic(lines)
            else:
                quick.count(lines, tally, block)
            if pending >= BATCH_LINES or sum(cols.held() for cols in tally.columns.values()) >= CONF_HELD:
                tally.flush()
                pending = 0
    finally:
        if gc_was_enabled:
            gc.enable()
    tally.flush()
    return tally.part


def count_range(url: str, start: int, end: int | None, attributes: Sequence[str] | None) -> Partial:
    """The counts of the lines starting in ``[start, end)`` (what one process does), with the fast
    path this process learned on its earlier ranges of the same file (``_learned``)."""
    global _learned
    key = (url, None if attributes is None else tuple(attributes))
    if _learned is None or _learned[0] != key:
        _learned = (key, FastPath(attributes))
    quick = _learned[1]
    quick.begin_range()
    with storage.open_read(url) as f:
        return _count_lines(_line_blocks(f, start, end), attributes, quick=quick)


def manifest_stats(url: str, *, label_attributes: Sequence[str] | None = None,
                   workers: int | None = None) -> ManifestStats:
    """Count what the manifest at ``url`` holds, per label attribute (all of them by default).

    Without ``label_attributes`` every key ``<A>-metadata`` holding an object is a candidate,
    and candidates whose metadata never declares a ``type`` or a ``failure-reason`` (input keys
    such as ``annotator-metadata``) are left out. ``workers`` (default: one per CPU) processes
    read a local file's byte ranges; other URLs are streamed by this process. A name of
    ``label_attributes`` that no line holds is a ``ManifestError`` (``label-attribute-absent``,
    naming the attributes the lines hold), unless the file holds no data line or lines that are
    not JSON objects (then its counts are the truth).
    """
    refuse_empty_path(url, "manifest (url)")
    for name in label_attributes or ():
        refuse_not_an_attribute(name)
    stats = count_manifest(url, label_attributes=label_attributes, workers=workers)
    # a name no line holds is a ManifestError, as the CLI's exit 1: a result of zeros reads as an empty attribute
    refuse_absent_names(url, stats, label_attributes or ())
    return stats


def refuse_absent_names(url: str, stats: ManifestStats, names: Iterable[str], option: str = "--label-attribute", *,
                        unnamed_too: bool = False) -> None:
    """Raise ``label-attribute-absent`` for the first of ``names`` (each counted in ``stats``) that
    no line holds: ``manifest_stats``' check, and ``evaluate``'s of a side named before it says it
    cannot tell the other (``refuse_absent_attribute`` says which lines count and ``unnamed_too``)."""
    data_lines = 0 if stats.invalid_lines else stats.lines - stats.blank_lines
    for name in names:
        refuse_absent_attribute(url, name, data_lines=data_lines, without=data_lines - stats.attributes[name].lines,
                                option=option, unnamed_too=unnamed_too)


def count_manifest(url: str, *, label_attributes: Sequence[str] | None = None,
                   workers: int | None = None) -> ManifestStats:
    """``manifest_stats`` without its refusal of a name no line holds: ``report``'s counts of a
    job's own attribute, which are zero until a line is labeled under it."""
    global _learned
    check_workers(workers)
    attributes = list(dict.fromkeys(label_attributes)) if label_attributes else None
    _learned = None  # learned anew each call (the file may have changed), and not handed to the workers forked
    parts = map_ranges(count_range, url, (attributes,), workers=workers, remote=False, taper=True)
    return merge_partials(url, parts, attributes)


# --- text rendering ----------------------------------------------------------------------------

def shown(value: object) -> str:
    """A value of the file as the text shows it: as it is when every character prints, else as its
    Python literal, so a line break cannot split a table row, a NUL or a right-to-left override
    (U+202E) cannot reach the terminal, and an empty name is ``''``, not nothing."""
    text = str(value)
    return text if text and text.isprintable() else repr(text)


def columns(text: str) -> int:
    """The terminal columns ``text`` takes: a wide character (Hangul, CJK: East Asian width W or
    F) two, a combining mark none, any other one (``len`` counts characters)."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 0 if unicodedata.combining(c) else 1 for c in text)


def padded(text: str, width: int, *, right: bool = False) -> str:
    """``text`` padded to ``width`` terminal columns (``columns``), on the right or, ``right``,
    on the left, so the bars and table columns after Korean class names line up with those after
    Latin ones (``str.ljust`` counts characters)."""
    pad = " " * max(width - columns(text), 0)
    return pad + text if right else text + pad


def _bar(n: int, top: int, width: int = 30) -> str:
    return "#" * max(1 if n else 0, round(width * n / top)) if top else ""


def format_text(stats: ManifestStats) -> str:
    """A report for people; ``--format json`` gives ``to_dict()`` for programs."""
    out = [f"{stats.url}", f"  lines: {stats.lines:,} ({stats.blank_lines:,} blank)"]
    if stats.invalid_lines > stats.too_long_lines:
        out.append(f"  lines that are not a JSON object: {stats.invalid_lines - stats.too_long_lines:,} "
                   "(run validate to see why)")
    if stats.too_long_lines:
        out.append(f"  lines over {long_lines.MAX_LINE_BYTES:,} bytes, not read (line-too-long; run validate to see which): "
                   f"{stats.too_long_lines:,}")
    if not stats.attributes:
        out.append("  no label attributes (an input manifest)")
    for a in stats.attributes.values():
        out.append(f"\nlabel attribute {a.name!r}")
        out.append(f"  lines with metadata: {a.lines:,}   labeled: {a.labeled:,}   failed: {a.failed:,}"
                   + (f"   routed to review: {a.routed:,}" if a.routed else ""))
        if a.types:
            out.append("  task types: " + ", ".join(f"{shown(k)} ({n:,})" for k, n in a.types.items()))
        if a.mixed_task_types:
            out.append(f"  several task types under one label attribute ({', '.join(a.mixed_task_types)}): the counts "
                       "below mix them (label-attribute-mixed-types; validate names the lines)")
        if a.human_annotated:
            out.append("  human-annotated: " + ", ".join(
                f"{shown(k)} ({'human' if k == 'yes' else 'machine' if k == 'no' else '?'}) {n:,}"
                for k, n in a.human_annotated.items()))
        if a.job_names:
            out.append("  jobs: " + ", ".join(f"{shown(k)} ({n:,})" for k, n in a.job_names.items()))
        if a.failures:
            out.append("  failures by rule:")
            out += [f"    {n:>9,}  {shown(rule)}" for rule, n in a.failures.items()]
        if a.classes:
            top = max(cc.count for cc in a.classes)
            names = ["?" if cc.name is None else shown(cc.name) for cc in a.classes]
            width = max([24, *map(columns, names)])  # the bars start at one column, after the longest name too
            ids = [",".join(map(str, cc.class_ids)) or "-" for cc in a.classes]
            id_width = max([4, *map(len, ids)])
            out.append("  labels per class:")
            out += [f"    {cc.count:>9,}  {cid:>{id_width}} {padded(name, width)} {_bar(cc.count, top)}"
                    for cc, cid, name in zip(a.classes, ids, names, strict=True)]
        for clash in a.class_clashes:
            if clash.class_id is not None:
                out.append(f"  class id {clash.class_id} has several names: "
                           + ", ".join(f"{name} ({k:,})" for name, k in
                                       zip(names_apart(*clash.counts), clash.counts.values(), strict=True))
                           + ": one class id, one name (validate names the lines: class-map-conflict)")
            else:
                out.append(f"  class {clash.name!r} has several ids: "
                           + ", ".join(f"{cid} ({k:,})" for cid, k in clash.counts.items()))
        if a.tools:
            out.append("  annotations per tool: " + ", ".join(f"{shown(k)} ({n:,})" for k, n in a.tools.items()))
        if a.boxes_per_image:
            out.append(f"  boxes: {a.boxes:,}; images per box count:")
            out += [f"    {n:>4} boxes: {k:,}" for n, k in a.boxes_per_image.items()]
        if a.confidence_count:
            top = max(a.confidence_histogram)
            out.append(f"  confidence (n={a.confidence_count:,}, mean {a.confidence_mean:.3f}):")
            for b, n in enumerate(a.confidence_histogram):
                hi = "]" if b == BINS - 1 else ")"
                out.append(f"    [{b / BINS:.1f}, {(b + 1) / BINS:.1f}{hi} {n:>9,} {_bar(n, top)}")
        if a.unscored:
            out.append(f"  without a confidence (unscored, not in the histogram): {a.unscored:,}")
        if a.confidence_out_of_range:
            out.append(f"  confidences outside [0, 1] (not in the histogram nor the mean; validate names their lines): "
                       f"{a.confidence_out_of_range:,}")
        if a.no_class_id:
            out.append("  left out of every count: "
                       f"{counted(a.no_class_id, 'box or label', 'boxes or labels', grouped=True)} whose class_id is not an "
                       "integer within 64 bits (validate names their lines)")
    return "\n".join(out) + "\n"
