"""Reading a job's input once before it starts: identity, size, selection, and problems.

The checksum lets ``resume`` refuse an input that changed under a job; counting the selected
lines gives the progress total; and a line ``validate`` refuses at line level stops the job
before any work, naming the line, the key and the rule.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field

from ..errors import InvalidInputError
from ..manifest.io import iter_lines_from, read_lines, write_lines
from ..manifest.line import Line
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


def scan_input(url: str, attribute: str) -> InputScan:
    """Read the input once: checksum, line count, lines to label, and every line ``validate``
    would refuse at line level (UTF-8, JSON object, one source key, line and value length,
    ``$`` keys, a key repeated at any depth: a job would read the last copy of it), named by
    line, key and rule. The rules are ``validate``'s own (``input_line_problems``)."""
    from ..manifest.label_check import input_line_problems  # on use: the CLI starts without it

    scan = InputScan()
    digest = hashlib.sha256()
    with open_read(url) as f:
        for line in iter_lines_from(_Tee(f, digest)):
            scan.lines += 1
            if line.is_blank:
                continue
            problems = input_line_problems(line)
            if problems:
                for p in problems:
                    key = f", key {p.key!r}" if p.key else ""
                    _problem(scan, f"line {p.line}{key}: {p.message} [{p.rule}]")
                continue
            if needs_label(line.record(), attribute):
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
        raise InvalidInputError(f"input manifest {redact_url(url)} has {scan.problem_count} bad line(s):\n  {listing}")


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
