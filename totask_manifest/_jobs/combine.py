"""A job's input and its ``--append`` manifests checked and combined in one read of each.

Each manifest is checked on its own (``scan_ranges``' line rules, a bad line named by its own
file and line number) while its lines are copied into the combined input, whose checksum and
selection (the lines to label, where they start) are taken from the bytes written: the combined
file is not read again before the job runs. Before, each manifest was read twice (checked, then
copied) and the combined one twice more (scanned, checksummed). The combined file is written
under a temporary name (``AtomicWriter``): a check that fails midway leaves nothing behind.

Duplicates (the same data object in two manifests) are skipped: the same ``source`` text, or a
``source-ref`` naming the same file once resolved against its own manifest's folder.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import accumulate

from .._errors import StorageError, counted
from .._folders import missing_folders, remove_empty
from .._manifest.file_kind import refuse_not_text
from .._manifest.io import to_line
from .._manifest.long_lines import TooLong, message
from .._manifest.ranges import iter_line_batches
from .._storage import AtomicWriter, is_local, open_read, redact_secret_url, redact_url, url_to_fs
from .held_labels import HeldLabels, JobClasses, raise_for_held
from .scan_ranges import (
    RUN_LINES,
    InputScan,
    _add_problems,
    _RangeScan,
    _scan_run,
    _TypedRuns,
    add_range,
    fingerprint,
    raise_for_no_data,
    raise_for_problems,
)
from .selection import needs_label


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
    (``[first line index, folder]``: its relative references resolve against its own folder);
    ``scan``: the combined input's, as ``scan_input`` would find it; ``given_sha256``: the
    checksums of the manifests as read (the input, then each appended one)."""

    added: int = 0
    skipped: int = 0
    examples: list[str] = field(default_factory=list)
    starts: list[list] = field(default_factory=list)
    scan: InputScan = field(default_factory=InputScan)
    given_sha256: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line however many duplicates there were."""
        text = f"appended {counted(self.added, 'data object')}; {counted(self.skipped, 'duplicate')} skipped"
        if self.examples:
            text += f" (first: {self.examples[0]})"
        return text


class _Combiner:
    """The combined input being written: its bytes, checksum, line count and selection."""

    def __init__(self, out: object, attribute: str, task_type: str | None = None,
                 classes: JobClasses | None = None) -> None:
        self.out = out
        self.attribute, self.task_type, self.classes = attribute, task_type, classes
        self.sha = hashlib.sha256()
        self.scan = InputScan()
        self.offset = 0  # bytes written
        self.index = 0  # lines written
        self.last_had_newline = True
        self.seen: set[tuple[str, str]] = set()
        self.data = False  # whether a line written holds a data object (is not blank)

    def write(self, data: bytes) -> None:
        if data:
            self.out.write(data)  # type: ignore[attr-defined]
            self.sha.update(data)
            self.offset += len(data)


def combine_with_appended(input_url: str, extra: Sequence[str], out_url: str, attribute: str, *,
                          task_type: str | None = None, shown: Sequence[str] = (), input_base: str | None = None,
                          earlier: Sequence[Sequence] = (), classes: JobClasses | None = None) -> Appended:
    """Check the input and each manifest of ``extra`` (``raise_for_problems``, named as ``shown``:
    the URLs as job.json records them) and write input + the appended manifests' lines to
    ``out_url``, skipping data objects already present (same ``source`` text, or ``source-ref``
    naming the same file once resolved: the input's against ``input_base``, default its folder,
    or ``earlier`` appended folders; each appended manifest's against its own). One read of each
    manifest; nothing is written when one is refused, nor when the attribute holds on a line what
    a job of ``task_type`` must not pass over (``held_labels``), its ``classes`` included."""
    from .._fetch import base_of

    urls = [input_url, *extra]
    result = Appended()
    fs, path = url_to_fs(out_url)
    made = missing_folders(os.path.dirname(path)) if is_local(fs) else []
    try:
        with AtomicWriter(out_url) as out:
            whole = _combine_into(_Combiner(out, attribute, task_type, classes), urls, list(shown) or [redact_url(u) for u in urls],
                                  result, input_base or base_of(redact_secret_url(input_url)), earlier)
    except BaseException:  # refused (or stopped): not even the folders it made for the file stay
        remove_empty(made)
        raise
    whole.selection.fingerprint = fingerprint(out_url)
    result.scan = whole
    return result


def _combine_into(combiner: _Combiner, urls: list[str], shown: list[str], result: Appended, input_base: str,
                  earlier: Sequence[Sequence]) -> InputScan:
    """``combine_with_appended``'s pass, into the open temporary file; the combined input's scan."""
    from .._fetch import base_of

    scans: list[InputScan] = []
    held: list[HeldLabels] = []
    for k, url in enumerate(urls):
        if k:
            base = base_of(redact_secret_url(url))  # job.json keeps it: its folder without the secret
            result.starts.append([combiner.index, base])
        with _flag_named(appended=k > 0):
            part, sha = _read_one(url, combiner, result, appended=k > 0, compare=len(urls) > 1,
                                  resolve=_resolver(base) if k else None, input_base=input_base, earlier=earlier)
        scan = InputScan(sha256=sha)
        add_range(scan, part)  # takes the part's arrays
        scan.selected = len(scan.selection.indices)
        raise_for_problems(shown[k], scan, _role(k))
        scans.append(scan)
        held.append(part.held)
    result.given_sha256 = [scan.sha256 for scan in scans]
    whole = combiner.scan
    whole.lines = whole.selection.lines = combiner.index
    whole.selected = len(whole.selection.indices)
    for k, part_held in enumerate(held):  # the job labels the combined input: what any manifest holds is written beside
        raise_for_held(shown[k], part_held, combiner.attribute, _role(k), labels=whole.selected)
    whole.sha256 = whole.selection.sha256 = combiner.sha.hexdigest()
    if not combiner.data:  # nothing but blank lines: refused (the check reads them again)
        raise_for_no_data(urls[0], scans[0], appended=list(zip(urls[1:], scans[1:], strict=True)))
    return whole


def _role(k: int) -> str:
    """The ``k``-th manifest combined, as a refusal names it: the input, then the ``--append`` ones."""
    return "--append manifest" if k else "input manifest"


@contextlib.contextmanager
def _flag_named(*, appended: bool) -> Iterator[None]:
    """An ``--append`` manifest that cannot be read (a folder, a refusal of its store) named by its
    flag, as ``--class-names`` and ``--model`` name theirs: "is a folder, not a file: /data" alone
    left the user to find which of the paths given it was. Still a ``StorageError`` (exit 2)."""
    try:
        yield
    except StorageError as exc:
        if not appended:
            raise
        raise StorageError(f"--append: {exc}") from None


def _read_one(url: str, combiner: _Combiner, result: Appended, *, appended: bool, compare: bool,
              resolve: Callable[[str], str] | None, input_base: str, earlier: Sequence[Sequence]
              ) -> tuple[_RangeScan, str]:
    """Check one manifest and copy its lines into the combined input while none is refused (the
    rest is only checked, so every bad line is named). Returns its check and checksum."""
    sha = hashlib.sha256()
    # an input copied alone (a URL with a secret) needs no record back: runs of a shape cleared
    # once take validate's typed path, as the scan of an input read in place does
    typed = _TypedRuns(combiner.attribute, combiner.task_type, combiner.classes) if not appended and not compare else None
    part = _RangeScan(held=HeldLabels(combiner.task_type, classes=combiner.classes,
                                      table=typed.table if typed is not None else None))
    with open_read(url) as f:
        refuse_not_text(f, url)  # named once, not each line as "not valid UTF-8" or "not a single JSON object"
        offset = 0
        for lines in iter_line_batches(f, newlines=True):
            if type(lines[0]) is TooLong:  # read past, never held: a problem, as the scan names it
                part.lines += 1
                _add_problems(part, [("", message(), "line-too-long")])
                offset += lines[0].size
                continue
            sha.update(b"".join(lines))
            starts = list(accumulate(map(len, lines), initial=offset))
            offset = starts.pop()
            for at in range(0, len(lines), RUN_LINES):
                first = part.lines
                records = _scan_run(part, starts[at:at + RUN_LINES], lines[at:at + RUN_LINES], combiner.attribute,
                                    typed)
                if part.problem_count:
                    continue  # refused: checked to the end, copied no further
                raws = lines[at:at + RUN_LINES]
                if appended:
                    _append_run(combiner, result, url, raws, records, first, resolve)  # type: ignore[arg-type]
                else:
                    _copy_run(combiner, raws, records, first, compare, input_base, earlier)
    if not appended and not part.problem_count:  # the input is copied as it is: its selection is the combined's
        combiner.scan.selection.indices.extend(part.indices)
        combiner.scan.selection.offsets.extend(part.offsets)
    return part, sha.hexdigest()


def _copy_run(combiner: _Combiner, raws: list[bytes], records: list[dict] | None, first: int, compare: bool,
              input_base: str, earlier: Sequence[Sequence]) -> None:
    """The input's lines, byte for byte; their data objects noted when manifests are appended."""
    if compare or not combiner.data:
        resolve_input = _resolver(input_base)
        for j, raw in enumerate(raws):
            if records is not None:
                record: dict | None = records[j]
            else:
                line = to_line(first + j + 1, raw, first_in_file=first + j == 0)
                record = None if line.is_blank else line.record() if compare else {}
            if record is None:
                continue
            combiner.data = True
            if compare:
                index = combiner.index + j
                ident = _identity(record, _resolver(_base_at(index, input_base, earlier)) if earlier else resolve_input)
                if ident is not None:
                    combiner.seen.add(ident)
    combiner.write(b"".join(raws))
    combiner.index += len(raws)
    combiner.last_had_newline = raws[-1].endswith(b"\n")


def _append_run(combiner: _Combiner, result: Appended, url: str, raws: list[bytes], records: list[dict] | None,
                first: int, resolve: Callable[[str], str]) -> None:
    """An appended manifest's lines, blank ones and duplicates left out, each ending in ``\\n``
    (a byte order mark dropped); a line before them without a terminator gets one."""
    sel = combiner.scan.selection
    for j, raw in enumerate(raws):
        line = to_line(first + j + 1, raw, first_in_file=first + j == 0)
        if line.is_blank:
            continue
        combiner.data = True  # added, or a duplicate of one the combined input holds
        record = records[j] if records is not None else line.record()
        ident = _identity(record, resolve)
        if ident is not None and ident in combiner.seen:
            result.skipped += 1
            if len(result.examples) < 3:
                result.examples.append(f"{redact_url(url)} line {line.number}: {record.get(ident[0])!r}")  # as written
            continue
        if ident is not None:
            combiner.seen.add(ident)
        if not combiner.last_had_newline:
            combiner.write(b"\n")
            combiner.last_had_newline = True
        if needs_label(record, combiner.attribute):
            sel.indices.append(combiner.index)
            sel.offsets.append(combiner.offset)
        combiner.write(line.body + b"\n")
        combiner.index += 1
        result.added += 1
