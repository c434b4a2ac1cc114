"""A job's input extended with ``--append``: the combined manifest, duplicates skipped.

(The scan of the input before a job starts is ``scan_ranges``.)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from .._manifest.io import read_lines, write_lines
from .._manifest.line import Line
from .._storage import redact_url


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
    present (same ``source-ref``/``source``). One pass over each manifest: the input's data
    objects are noted as its lines are copied, all of them before the first appended line."""
    from .._fetch import base_of

    seen: set[str] = set()
    result = Appended()

    def lines() -> Iterable[Line | bytes]:
        last_had_newline = True
        index = 0
        for line in read_lines(input_url):
            if not line.is_blank:
                ident = _identity(line.record())
                if ident is not None:
                    seen.add(ident)
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
