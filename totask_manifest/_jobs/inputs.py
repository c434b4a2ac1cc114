"""A job's input extended with ``--append``: the combined manifest, duplicates skipped.

(The scan of the input before a job starts is ``scan_ranges``.)
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from .._manifest.io import read_lines, write_lines
from .._manifest.line import Line
from .._storage import redact_url


def _identity(record: dict, resolve: Callable[[str], str]) -> tuple[str, str] | None:
    """What makes two lines the same data object: inline text as written, a ``source-ref`` as the
    file or URL it names (``images/x.jpg`` in two manifests' folders is two images; compared as
    text, a second dataset laid out like the first was skipped whole)."""
    ref = record.get("source-ref")
    if isinstance(ref, str):
        return "source-ref", resolve(ref)
    value = record.get("source")
    return ("source", value) if isinstance(value, str) else None


@functools.lru_cache(maxsize=64)
def _resolver(base: str) -> Callable[[str], str]:
    """``resolve_reference(ref, base)`` for one base, with a fast path for the common plain
    relative path (no ``.`` segment, ``//``, end slash or surrounding space), where joining is
    all it does: the full call per line doubled the time of combining a 200,000-line input."""
    from .._fetch import resolve_reference

    prefix = None
    if base and not base.startswith("file://"):
        prefix = base.rstrip("/") + "/" if "://" in base else os.path.normpath(base) + "/"
        if prefix in ("//", "///", "./"):  # these join as normpath does on its own
            prefix = None

    def resolve(ref: str) -> str:
        if prefix and ref and ref[0] not in "/. \t" and ref[-1] not in "/ \t\r\n" and "://" not in ref \
                and "/." not in ref and "//" not in ref and "\\" not in ref:
            return prefix + ref
        return resolve_reference(ref, base)

    return resolve


def _base_at(index: int, input_base: str, earlier: Sequence[Sequence]) -> str:
    """The folder an input line's relative references resolve against: that of the manifest an
    earlier job appended it from (``[first line index, folder]`` pairs), else the input's."""
    base = input_base
    for start, folder in earlier:
        if start <= index:
            base = folder
    return base


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


def combine_with_appended(input_url: str, extra: Iterable[str], out_url: str, *, input_base: str | None = None,
                          earlier: Sequence[Sequence] = ()) -> Appended:
    """Write input + the appended manifests' lines to ``out_url``, skipping data objects already
    present (same ``source`` text, or ``source-ref`` naming the same file once resolved: the
    input's against ``input_base``, default its folder, or ``earlier`` appended folders; each
    appended manifest's against its own). One pass over each manifest: the input's data objects
    are noted as its lines are copied, all of them before the first appended line."""
    from .._fetch import base_of

    input_base = input_base or base_of(input_url)
    resolve_input = _resolver(input_base)
    seen: set[tuple[str, str]] = set()
    result = Appended()

    def lines() -> Iterable[Line | bytes]:
        last_had_newline = True
        index = 0
        for line in read_lines(input_url):
            if not line.is_blank:
                ident = _identity(line.record(), _resolver(_base_at(index, input_base, earlier)) if earlier else resolve_input)
                if ident is not None:
                    seen.add(ident)
            last_had_newline = line.newline != b""
            index += 1
            yield line
        for url in extra:
            base = base_of(url)
            resolve = _resolver(base)
            result.starts.append([index, base])
            for line in read_lines(url):
                if line.is_blank:
                    continue
                record = line.record()
                ident = _identity(record, resolve)
                if ident is not None and ident in seen:
                    result.skipped += 1
                    if len(result.examples) < 3:
                        result.examples.append(f"{redact_url(url)} line {line.number}: {record.get(ident[0])!r}")  # as written
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
