"""Reading a job's input once before it starts: identity, size, selection, and problems.

The checksum lets ``resume`` refuse an input that changed under a job; counting the selected
lines gives the progress total; and a line that is not a JSON object with ``source-ref`` or
``source`` stops the job before any work, naming the line and the rule.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field

import orjson

from ..errors import ManifestError, UsageError
from ..manifest.io import iter_lines_from, read_lines, write_lines
from ..manifest.line import Line, scan_top_level
from ..manifest.naming import metadata_key, rule_message
from ..storage import open_read, redact_url
from .selection import needs_label

MAX_REPORTED = 20


@dataclass
class InputScan:
    sha256: str = ""
    lines: int = 0
    selected: int = 0
    problems: list[str] = field(default_factory=list)
    problem_count: int = 0


def _duplicated(line: Line, keys: tuple[str, ...]) -> str | None:
    """The first of ``keys`` that appears more than once at the top level of ``line``.

    A job edits the last copy of a key (as JSON parsers read it); an earlier copy would survive
    beside the new value, so such lines are refused. The text search is a cheap pre-filter.
    """
    if not any(line.body.count(orjson.dumps(k)) > 1 or b"\\u" in line.body for k in keys):
        return None
    seen: set[str] = set()
    for span in scan_top_level(line.body):
        if span.key in keys and span.key in seen:
            return span.key
        seen.add(span.key)
    return None


def scan_input(url: str, attribute: str) -> InputScan:
    scan = InputScan()
    digest = hashlib.sha256()
    own_keys = (attribute, metadata_key(attribute))
    with open_read(url) as f:
        for line in iter_lines_from(_Tee(f, digest)):
            scan.lines += 1
            if line.is_blank:
                continue
            try:
                record = line.record()
            except ManifestError as exc:
                _problem(scan, str(exc))
                continue
            if ("source-ref" in record) == ("source" in record):
                detail = "it holds both" if "source" in record else "it holds neither"
                _problem(scan, f"line {line.number}: {rule_message('line-source', detail=detail)} [line-source]")
                continue
            twice = _duplicated(line, own_keys)
            if twice is not None:
                _problem(scan, f"line {line.number}, key {twice!r}: {rule_message('duplicate-key')} [duplicate-key]")
                continue
            if needs_label(record, attribute):
                scan.selected += 1
    scan.sha256 = digest.hexdigest()
    return scan


def _problem(scan: InputScan, message: str) -> None:
    scan.problem_count += 1
    if len(scan.problems) < MAX_REPORTED:
        scan.problems.append(message)


class _Tee:
    """A read-only file wrapper that hashes what is read."""

    def __init__(self, f, digest) -> None:
        self.f = f
        self.digest = digest

    def read(self, n: int = -1) -> bytes:
        data = self.f.read(n)
        self.digest.update(data)
        return data

    def seek(self, *a):  # pragma: no cover - whole-file reads never seek
        raise OSError("not seekable")


def raise_for_problems(url: str, scan: InputScan) -> None:
    if scan.problem_count:
        more = scan.problem_count - len(scan.problems)
        listing = "\n  ".join(scan.problems) + (f"\n  ... and {more} more" if more > 0 else "")
        raise UsageError(f"input manifest {redact_url(url)} has {scan.problem_count} bad line(s):\n  {listing}")


def _identity(record: dict) -> str | None:
    value = record.get("source-ref", record.get("source"))
    return value if isinstance(value, str) else None


@dataclass
class Appended:
    """What ``combine_with_appended`` did: lines added, duplicates skipped (counted, with the
    first few named), and where each appended manifest's lines start in the combined input
    (``[first line index, folder]``: its relative references resolve against its own folder)."""

    added: int = 0
    skipped: int = 0
    examples: list[str] = field(default_factory=list)
    starts: list[list] = field(default_factory=list)

    def summary(self) -> str:
        """One line however many duplicates there were."""
        text = f"appended {self.added} data object(s); {self.skipped} duplicate(s) skipped"
        if self.examples:
            text += f" (first: {self.examples[0]})"
        return text


def combine_with_appended(input_url: str, extra: Iterable[str], out_url: str) -> Appended:
    """Write input + the appended manifests' lines to ``out_url``, skipping data objects already
    present (same ``source-ref``/``source``)."""
    from ..fetch import base_of

    seen: set[str] = set()
    for line in read_lines(input_url):
        if not line.is_blank:
            ident = _identity(line.record())
            if ident is not None:
                seen.add(ident)
    result = Appended()

    def lines() -> Iterable[Line | bytes]:
        last_had_newline = True
        index = 0
        for line in read_lines(input_url):
            last_had_newline = line.newline != b""
            index += 1
            yield line
        for url in extra:
            result.starts.append([index, base_of(url)])
            for line in read_lines(url):
                if line.is_blank:
                    continue
                ident = _identity(line.record())
                if ident is not None and ident in seen:
                    result.skipped += 1
                    if len(result.examples) < 3:
                        result.examples.append(f"{redact_url(url)} line {line.number}: {ident!r}")
                    continue
                if ident is not None:
                    seen.add(ident)
                if not last_had_newline:
                    yield b"\n"
                    last_had_newline = True
                yield line.prefix.replace(b"\xef\xbb\xbf", b"") + line.body + b"\n"
                index += 1
                result.added += 1

    write_lines(out_url, lines())
    return result
