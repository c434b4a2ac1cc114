"""Streaming manifest reading and atomic writing.

Reading is chunked (``ranges``: 1 MiB reads split on ``\\n``), so memory stays constant whatever the file
size and any fsspec file object works. Line rules, documented in the README:

* lines end in ``\\n`` or ``\\r\\n``; the terminator is kept and written back as it was;
* a last line without a terminator is a line (and stays without one);
* a UTF-8 byte order mark at the start of the file is not part of line 1's JSON and is kept;
* a line holding only whitespace is *blank*: jobs never select it and pass it through,
  ``validate`` warns about it (an error with ``--strict``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import IO

from .._errors import InvalidInputError, ManifestError, UsageError, counted
from .._storage import AtomicWriter, open_read, redact_secret_url
from .file_kind import refuse_not_text
from .line import Line
from .long_lines import TooLong, message
from .naming import RESERVED_NAMES
from .ranges import iter_line_batches, iter_raw_lines, split_bom

__all__ = ["SCAN_LINES", "attribute_absent", "attributes_seen", "blank_lines_only", "input_empty", "iter_lines_from", "iter_raw_lines",
           "label_attributes", "read_lines", "read_records", "refuse_absent_attribute", "refuse_no_data_object", "refuse_not_an_attribute", "to_line", "write_lines"]

METADATA = "-metadata"
#: how many lines a look at which label attributes a manifest holds reads
SCAN_LINES = 2000


def to_line(number: int, raw: bytes, *, first_in_file: bool | None = None) -> Line:
    """Split a raw line into prefix (a BOM, on the file's first line only), body and terminator."""
    prefix = b""
    if number == 1 if first_in_file is None else first_in_file:
        prefix, raw = split_bom(raw)
    if raw.endswith(b"\r\n"):
        return Line(number, raw[:-2], b"\r\n", prefix)
    if raw.endswith(b"\n"):
        return Line(number, raw[:-1], b"\n", prefix)
    return Line(number, raw, b"", prefix)


def iter_lines_from(f: IO[bytes], *, start: int = 0, end: int | None = None, first_number: int = 1) -> Iterator[Line]:
    """Lines of a byte range; ``first_number`` is the number of its first line (the caller knows it).
    A line over ``MAX_LINE_BYTES`` raises ``ManifestError`` (``line-too-long``) naming it: every
    command that reads whole lines (``convert``, ``labeled``, ``report``, ...) refuses the file
    with exit code 1, as for any invalid data, rather than holding gigabytes or dropping the line."""
    number = first_number
    for lines in iter_line_batches(f, start=start, end=end, newlines=True):
        if type(lines[0]) is TooLong:  # read past, never held: alone in its batch
            raise ManifestError(message(), line=number, rule="line-too-long")
        for raw in lines:
            yield to_line(number, raw, first_in_file=(start == 0 and number == first_number))
            number += 1


def read_lines(url: str) -> Iterator[Line]:
    """Stream the lines of the manifest at ``url`` (any fsspec URL)."""
    refuse_empty_path(url, "manifest (url)")
    with open_read(url) as f:
        refuse_not_text(f, url)
        yield from iter_lines_from(f)


def read_records(url: str) -> Iterator[tuple[Line, dict]]:
    """Each line that holds a JSON object, with the object: for readers that sample or summarise a manifest
    (``report``'s tiles, ``convert``'s attribute detection) and leave judging blank or unreadable
    lines to ``validate``, which names them."""
    for line in read_lines(url):
        if line.is_blank:
            continue
        try:
            yield line, line.record()
        except ManifestError:
            continue


def label_attributes(url: str) -> set[str]:
    """The label attributes (keys ``<A>-metadata``) the first ``SCAN_LINES`` lines hold."""
    held: set[str] = set()
    for line, rec in read_records(url):
        if line.number > SCAN_LINES:
            break
        held.update(k[: -len(METADATA)] for k in rec if k.endswith(METADATA))
    return held


def attributes_seen(url: str) -> str:
    """``label_attributes`` said for an error about a ``--label-attribute`` found on no line: a
    misspelt name is then plain to see."""
    return f"label attributes seen: {', '.join(sorted(label_attributes(url))) or 'none'}"


def attribute_absent(url: str, attribute: str, option: str = "--label-attribute") -> ManifestError:
    """The error of a command told to look at ``attribute`` (``stats``, ``validate``; ``evaluate``'s
    ``--predicted`` and ``--reference``) when no line holds it: a report of zero lines would read as
    a clean bill for a misspelt name. Exit code 1, as ``convert`` gives when it finds no label to
    write (``convert-no-labels``)."""
    return ManifestError(f"{redact_secret_url(url)}: no line holds {attribute!r} or {attribute + METADATA!r} ({attributes_seen(url)}); "
                         f"check {option}", rule="label-attribute-absent")


#: what ``convert`` says of an input holding no data object (``input_empty``'s ``needs``): a
#: manifest to export and a Parquet file to import alike
NOTHING_TO_CONVERT = "there is nothing to convert, so nothing was written"


def input_empty(url: str, lines: int, *, what: str = "input manifest", also: str = "",
                needs: str | None = None, held: str | None = None) -> InvalidInputError:
    """The error of a manifest holding no data object (an empty file, a byte order mark alone, only
    blank lines: the wrong path, an export that wrote nothing), said alike by a job, which would
    end COMPLETED having labeled nothing, and by ``validate``, which said "valid: 0 lines" for a file
    every job refuses. ``url`` is redacted by the caller; ``what`` names the manifest's role;
    ``needs`` says what was looked for (``validate --schema`` looks for documents, not data objects);
    ``held`` what the file holds where it has no lines (a Parquet file's rows)."""
    needs = needs or "a job needs lines with source-ref or source"
    held = held or blank_held(lines)
    return InvalidInputError(f"{what} {url} holds no data object ({held}){also}; {needs}", rule="input-empty")


def blank_held(lines: int) -> str:
    """What a manifest of no data object holds, in every command's words: "no line" for an empty
    file ("0 lines, all blank" said of nothing at all), else "N lines, all blank"."""
    return f"{counted(lines, 'line')}, all blank" if lines else "no line"


def blank_lines_only(url: str) -> int | None:
    """The number of lines of a manifest holding no data object (every line blank, or none), or
    None at its first data line: read only that far (line 1 of any manifest in use)."""
    lines = 0
    with open_read(url) as f:
        for raw in iter_raw_lines(f):
            if not to_line(1, raw, first_in_file=lines == 0).is_blank:
                return None
            lines += 1
    return lines


def refuse_no_data_object(url: str, *, what: str = "input manifest", needs: str | None = None) -> None:
    """Refuse a manifest without a data object (``input_empty``, exit 1) before a command writes
    anything from it: ``convert --to parquet`` wrote a file of no row, exit 0, from a file every
    job and ``validate`` refuse."""
    lines = blank_lines_only(url)
    if lines is not None:
        raise input_empty(redact_secret_url(url), lines, what=what, needs=needs)


def refuse_empty_path(url: object, what: str) -> None:
    """Refuse an empty path or URL (``''``, or blanks) given to the Python API, as the CLI refuses
    one (``_cli._parser``), with its words: to the file system it is the current folder, so
    ``convert(m, '', to='yolo')`` wrote a dataset among the caller's files and ``write_report('',
    ...)`` inside a job folder reported that folder. ``what`` names it: ``output (dst)``. (A ``pathlib.Path`` is never empty: ``Path('')`` is ``.``.)"""
    if isinstance(url, str) and not url.strip():
        raise UsageError(f"the {what} is empty: give a path or URL (an empty one is never taken for the current folder)")


def refuse_not_an_attribute(attribute: str | None, option: str = "--label-attribute") -> None:
    """Refuse ``boxes-metadata`` where a label attribute is asked for (exit 2, before anything is
    read): every line holds that key, so "no line holds 'boxes-metadata'" read as false, and
    ``evaluate`` reported each line unreadable. No label attribute's name ends in ``-metadata``.
    An empty name (a shell variable left unset) too: "no line holds ''" blamed the data (exit 1),
    and ``validate`` checked no attribute at all (exit 0). None is a name not given."""
    if attribute is not None and not attribute.strip():
        raise UsageError(f"{option} is empty: give the label attribute's name")
    if attribute and attribute.endswith(METADATA):
        base = attribute[: -len(METADATA)]
        raise UsageError(f"{option} {attribute!r} is the metadata key of {base!r}, not a label attribute: "
                         f"give {option} {base}")
    if attribute in RESERVED_NAMES:  # every line holds it: "no line holds 'source-ref'" read as false
        raise UsageError(f"{option} {attribute!r} is a line's data key (the object labeled), not a label "
                         f"attribute (label-attribute-reserved): give the attribute the labels are under")


def refuse_absent_attribute(url: str, attribute: str, *, data_lines: int, without: int,
                            option: str = "--label-attribute", unnamed_too: bool = False) -> None:
    """Raise ``attribute_absent`` when each of ``data_lines`` lines is ``without`` ``attribute``:
    the one check of ``validate_manifest``, ``manifest_stats`` and ``evaluate_manifest`` (so the
    library raises what the CLI prints, rather than a result of zeros a script takes for an empty
    attribute). ``data_lines`` is 0 where the result is the truth: a file without a data line
    (nothing to misspell a name against), or one with damaged lines (the damage is the error).
    ``unnamed_too``: only when the first lines' ``-metadata`` keys do not name it either (evaluate
    counts a failed label as missing, but its metadata holds the attribute)."""
    if not data_lines or without < data_lines:
        return
    url = os.fspath(url)  # a pathlib.Path, as the public functions take
    if unnamed_too and attribute in label_attributes(url):
        return
    raise attribute_absent(url, attribute, option)


def write_lines(url: str, lines: Iterable[Line | bytes]) -> int:
    """Write lines atomically; returns the number written. Each is a ``Line`` (written as read,
    its terminator included) or bytes (written as given); anything else (a dict, a str) is a
    ``UsageError`` naming it, and nothing is written: a record has no bytes of its own to keep
    (key order, number forms), so it is the caller's to serialise."""
    refuse_empty_path(url, "output (url)")
    n = 0
    with AtomicWriter(url) as out:
        for line in lines:
            if isinstance(line, Line):
                out.write(line.raw)
            elif isinstance(line, bytes | bytearray | memoryview):
                out.write(line)
            else:
                raise UsageError(f"write_lines: item {n + 1} is a {type(line).__name__}, not a line; it takes Line "
                                 "objects (read_lines, Line.with_values) or bytes, one line each (a record: "
                                 "orjson.dumps(record) + b'\\n')")
            n += 1
    return n
