"""One manifest line, kept as the bytes it was read as.

A job must write untouched lines back byte-identical and, on a line it labels, keep every other
key exactly as it was (``164.60000000000002``, ``1e-05``, ``\\u0027``, key order, spacing). So a
line is never re-serialised: edits are spliced into the original bytes at the spans of the
top-level keys, found by a small scanner over the already-validated JSON.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass, field
from typing import Any

import orjson

from .._errors import ManifestError, json_error_detail, json_kind
from .naming import rule_message

BOM = b"\xef\xbb\xbf"
#: sentinel for ``Line.with_values``: remove the key
DELETE: Any = object()

# A JSON string token (escapes included) or a structural character; everything else
# (numbers, true/false/null, whitespace) sits between tokens and is never looked at.
_TOKEN = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[{}\[\]:,]')


@dataclass(frozen=True, slots=True)
class KeySpan:
    key: str
    key_start: int
    value_start: int
    value_end: int


#: the first bytes of a gzip file
GZIP_MAGIC = b"\x1f\x8b"


@dataclass(slots=True)
class Line:
    """``prefix + body + newline`` is exactly what was read.

    ``prefix`` holds a byte order mark on the first line of a file that had one; ``newline`` is
    ``b"\\n"``, ``b"\\r\\n"`` or ``b""`` for a last line without one.
    """

    number: int
    body: bytes
    newline: bytes = b"\n"
    prefix: bytes = b""
    _record: dict | None = field(default=None, repr=False, compare=False)

    @property
    def raw(self) -> bytes:
        return self.prefix + self.body + self.newline

    @property
    def is_blank(self) -> bool:
        return not self.body.strip()

    def text(self) -> str:
        try:
            return self.body.decode("utf-8")
        except UnicodeDecodeError as exc:
            detail = f"byte {exc.start}: {exc.reason}"
            if self.number == 1 and self.body.startswith(GZIP_MAGIC):  # 'manifest.jsonl.gz' read as it is
                detail += "; the file is gzip-compressed: decompress it first (gunzip)"
            raise ManifestError(rule_message("line-utf8", detail=detail), line=self.number, rule="line-utf8") from None

    def record(self) -> dict:
        """The parsed JSON object (cached). Raises ``ManifestError`` naming the rule broken."""
        if self._record is None:
            try:
                value = orjson.loads(self.body)
            except orjson.JSONDecodeError as exc:
                self.text()  # invalid UTF-8 gets its own rule
                raise ManifestError(
                    rule_message("line-json", detail=_short(json_error_detail(exc))), line=self.number, rule="line-json"
                ) from None
            if not isinstance(value, dict):
                raise ManifestError(
                    rule_message("line-json", detail=f"found a JSON {json_kind(value)}, not an object"),
                    line=self.number,
                    rule="line-json",
                )
            self._record = value
        return self._record

    def spans(self) -> list[KeySpan]:
        """Top-level keys in file order with their value spans in ``body``."""
        return scan_top_level(self.body)

    def with_values(self, updates: dict[str, Any]) -> Line:
        """A new line with ``updates`` set (or removed, for ``DELETE``), all other bytes kept.

        Existing keys are replaced in place; new keys are appended after the last key, in the
        order given, with the line's own separator style.
        """
        record = self.record()  # only valid JSON objects are edited
        body = append_new(self.body, updates, record)
        if body is None:
            body = splice(self.body, updates, record)
        return Line(self.number, body, self.newline, self.prefix)


def _short(message: str, limit: int = 160) -> str:
    return message if len(message) <= limit else message[: limit - 3] + "..."


def scan_top_level(body: bytes) -> list[KeySpan]:
    """Find each top-level key's span; ``body`` must already be a valid JSON object."""
    spans: list[KeySpan] = []
    depth = 0
    key: str | None = None
    key_start = value_start = -1
    expecting_key = False
    for m in _TOKEN.finditer(body):
        tok = m.group()
        c = tok[:1]
        if c == b'"':
            if depth == 1 and expecting_key:
                key = orjson.loads(tok)
                key_start = m.start()
                expecting_key = False
            continue
        if c in b"{[":
            depth += 1
            if depth == 1:
                expecting_key = True
            continue
        if c == b":":
            if depth == 1:
                value_start = m.end()
            continue
        if c in b",}]":
            if depth == 1 and c in b",}" and key is not None:
                spans.append(_span(body, key, key_start, value_start, m.start()))
                key = None
            if c == b",":
                if depth == 1:
                    expecting_key = True
            else:
                depth -= 1
    return spans


def duplicate_key_paths(body: bytes) -> list[tuple[str | int, ...]]:
    """The path of every key that repeats a key of the same object, at any depth, in file order;
    ``body`` must already be valid JSON. A JSON parser keeps the last copy, so a line holding
    ``source-ref`` twice would be read from its second copy, silently."""
    found: list[tuple[str | int, ...]] = []
    # one frame per open container: [seen keys (None for an array), path, current key or index]
    stack: list[list] = []
    expecting_key = False
    for m in _TOKEN.finditer(body):
        tok = m.group()
        c = tok[:1]
        if c == b'"':
            if expecting_key:
                frame = stack[-1]
                key = orjson.loads(tok)
                if key in frame[0]:
                    found.append((*frame[1], key))
                frame[0].add(key)
                frame[2] = key
                expecting_key = False
            continue
        if c in b"{[":
            path = (*stack[-1][1], stack[-1][2]) if stack else ()
            if c == b"{":
                stack.append([set(), path, None])
                expecting_key = True
            else:
                stack.append([None, path, 0])
        elif c == b",":
            frame = stack[-1]
            if frame[0] is None:
                frame[2] += 1
            else:
                expecting_key = True
        elif c in b"}]":
            stack.pop()
            expecting_key = False
    return found


def may_repeat_a_key(body: bytes, record: Any) -> bool:
    """A cheap test that is true for every line with a repeated key (and for a few without).

    Parsing keeps one copy of a repeated key, so writing the record back out holds fewer colons
    than the line: each key brings one, a string's colons survive as they were, and the writer
    adds none. Only a colon the line spells as an escape (``\\u003a``) could hide a repeat, so
    such a line always takes the exact test, as does a record nested deeper than orjson writes
    (it reads 1024 levels, writes about 254).
    """
    try:
        written = orjson.dumps(record)
    except orjson.JSONEncodeError:
        return True
    return _fewer_colons(body, written)


def any_repeats_a_key(lines: list[bytes], records: list) -> bool:
    """``may_repeat_a_key`` over lines and their records at once (``validate``'s runs), with a
    shortcut: lines written as orjson writes them (compact, as this tool and Ground Truth write)
    are their records written back, byte for byte, so none of them lost a repeated key."""
    text = b",".join(lines)
    try:
        written = orjson.dumps(records)  # "[" + the records written back, joined by "," + "]"
    except orjson.JSONEncodeError:  # nested deeper than orjson writes: the exact test decides
        return True
    if written[1:-1] == text:
        return False
    return _fewer_colons(text, written)


def any_lines_repeat_a_key(text: bytes, records: list) -> bool:
    """``any_repeats_a_key`` over lines joined as read, each ending in ``\n`` (the file's last
    perhaps not), which no line holds elsewhere: the job's input scan parses lines with their
    terminators (JSON whitespace) instead of copying each without it."""
    try:
        written = orjson.dumps(records)
    except orjson.JSONEncodeError:
        return True
    joined = text.replace(b"\n", b",")  # the lines joined by "," as orjson joins the records
    if written[1:-1] == (joined[:-1] if joined.endswith(b",") else joined):
        return False
    return _fewer_colons(text, written)


def _fewer_colons(text: bytes, written: bytes) -> bool:
    """The colon test of ``may_repeat_a_key``; a text without a backslash has no escape (one
    ``memchr`` instead of two substring searches, on the hot path of ``validate``)."""
    if b"\\" in text and (b"\\u003a" in text or b"\\u003A" in text):
        return True
    return text.count(b":") != written.count(b":")


def _span(body: bytes, key: str, key_start: int, value_start: int, value_end: int) -> KeySpan:
    while body[value_start : value_start + 1] in (b" ", b"\t", b"\r", b"\n"):
        value_start += 1
    while value_end > value_start and body[value_end - 1 : value_end] in (b" ", b"\t", b"\r", b"\n"):
        value_end -= 1
    return KeySpan(key, key_start, value_start, value_end)


def _separators(body: bytes, spans: list[KeySpan]) -> tuple[bytes, bytes]:
    """Follow the line's own style: ``","``/``":"`` (Ground Truth) or ``", "``/``": "`` (json.dumps)."""
    if not spans:
        return b",", b":"
    first = spans[0]
    between = body[first.key_start : first.value_start]
    colon = b": " if between.endswith(b" ") else b":"
    comma = b", " if colon == b": " else b","
    return comma, colon


def gt_json(value: Any) -> bytes:
    """``value`` as Ground Truth (Python's ``json``) writes it: compact, UTF-8 text unescaped, and
    numbers in Python's forms (``1e-05``, where orjson writes ``0.00001``), so a label the job
    writes has the bytes Ground Truth's own line would have.

    orjson writes the same bytes as ``json`` (30 times faster) except where ``_unlike_json``
    finds something, and refuses what ``json`` may write differently (non-string keys, big
    integers), so its text is used when it was written and holds none of those."""
    try:
        out = orjson.dumps(value)
    except TypeError:  # orjson.JSONEncodeError included
        pass
    else:
        if not _unlike_json(out):
            return out
    return _GT_ENCODER.encode(value).encode("utf-8")


def _unlike_json(out: bytes) -> bool:
    """Whether orjson's text may differ from ``json``'s: a number with an exponent (orjson always
    writes its sign, ``1e+16``, ``1e-7``, where ``json`` writes ``1e-07``; ``json`` writes
    ``1e-05`` where orjson writes ``0.00001``, hence ``.0000``) and ``null`` (orjson writes NaN
    and infinity as null, where ``json`` refuses them). A string holding these only costs the
    slower path (``tests/test_gt_bytes.py`` compares the two on a million floats). Five substring
    tests, not a regular expression: a regex scan cost several µs a label, two labels a line.
    A plus sign is rare in JSON, so ``e+`` is only looked for where one is (a one-byte search is
    ``memchr``, a two-byte one walks the text: it was a fifth of this function's cost).
    ``find``, not ``in``: ``bytes.__contains__`` first reads its argument as an integer (``5 in
    b"..."``), and for bytes formats a ``TypeError`` it then drops, some 1,000 instructions a
    test on top of the search (callgrind: 13,200 instructions a label's test with ``in``,
    7,900 with ``find``)."""
    find = out.find
    return (find(b"null") >= 0 or find(b".0000") >= 0 or (find(b"+") >= 0 and find(b"e+") >= 0)
            or find(b"e-") >= 0 or find(b"E") >= 0)


def _plain(value: Any) -> Any:
    """What orjson makes of types ``json`` does not know (dataclasses, datetimes, UUIDs)."""
    return orjson.loads(orjson.dumps(value))


#: ``json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False, default=_plain)``,
#: built once: ``json.dumps`` with options builds a new encoder on every call (two per labeled line)
_GT_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False, default=_plain)


_dumps = gt_json


def splice(body: bytes, updates: dict[str, Any], record: dict | None = None) -> bytes:
    """Rebuild ``body`` from its members: kept ones verbatim, replaced ones with the new value,
    deleted ones dropped with the separator that followed them; new keys go after the last.
    ``record``, the parsed ``body`` where known, lets a line orjson wrote skip the scan."""
    spans = (record and _written_spans(body, record)) or scan_top_level(body)
    comma, colon = _separators(body, spans)
    last_index = {s.key: i for i, s in enumerate(spans)}  # JSON parsers keep the last of duplicate keys; so do we
    appended = [
        _dumps(key) + colon + _dumps(value)
        for key, value in updates.items()
        if key not in last_index and value is not DELETE
    ]
    if not spans:
        if not appended:
            return body
        at = body.index(b"{") + 1
        return body[:at] + comma.join(appended) + body[at:]
    out = [body[: spans[0].key_start]]
    separator: bytes | None = None  # what followed the last member written
    for i, span in enumerate(spans):
        value = updates.get(span.key, _KEEP) if last_index[span.key] == i else _KEEP
        if value is DELETE:
            continue
        if separator is not None:
            out.append(separator)
        if value is _KEEP:
            out.append(body[span.key_start : span.value_end])
        else:
            out.append(body[span.key_start : span.value_start] + _dumps(value))
        separator = body[span.value_end : spans[i + 1].key_start] if i + 1 < len(spans) else comma
    if appended:
        out.append((comma if separator is not None else b"") + comma.join(appended))
    out.append(body[spans[-1].value_end :])
    return b"".join(out)


_KEEP: Any = object()


def _written_spans(body: bytes, record: dict) -> list[KeySpan] | None:
    """``scan_top_level(body)`` from the record's members' lengths, for a line that is its
    record as orjson writes it (compact: this tool's and Ground Truth's lines), else None. The
    equality proves the layout (``{``, members joined by ``,``, ``}``, no key repeated), so
    no token is scanned: a chained job's failed lines are spliced in some 5 us, not 40."""
    try:
        if orjson.dumps(record) != body:
            return None
    except orjson.JSONEncodeError:  # nested deeper, or an integer wider, than orjson writes
        return None
    spans, key_start = [], 1
    for key, value in record.items():
        value_start = key_start + len(orjson.dumps(key)) + 1
        value_end = value_start + len(orjson.dumps(value))
        spans.append(KeySpan(key, key_start, value_start, value_end))
        key_start = value_end + 1
    return spans

_WS = b" \t\r\n"
#: the line's opening up to its first value: the space after that colon is the line's style
_FIRST_MEMBER = re.compile(rb'[ \t\r\n]*\{[ \t\r\n]*"[^"\\]*(?:\\.[^"\\]*)*"[ \t\r\n]*:([ \t\r\n]*)')


def append_new(body: bytes, updates: dict[str, Any], record: dict) -> bytes | None:
    """``splice``'s result when every update is a key the line does not have yet (a job's first
    label on a line: the common case), or None when ``splice`` is needed.

    The new members go after the last value, before the closing brace, with the separators of
    the line's first member, exactly where and how ``splice`` puts them; every other byte is
    the line's own. No scan of the line's members is needed, only of its first few bytes.
    """
    if not record or not updates:
        return None
    for key, value in updates.items():
        if value is DELETE or key in record:
            return None
    first = _FIRST_MEMBER.match(body)
    if first is None:
        return None
    colon, comma = (b": ", b", ") if first.group(1).endswith(b" ") else (b":", b",")
    end = len(body.rstrip(_WS)) - 1  # the closing brace
    while body[end - 1] in _WS:
        end -= 1
    added = comma.join([_key_json(key) + colon + _dumps(value) for key, value in updates.items()])
    return body[:end] + comma + added + body[end:]


@functools.lru_cache(maxsize=256)
def _key_json(key: str) -> bytes:
    """A key as ``gt_json`` writes it; a job writes the same two keys on every line."""
    return gt_json(key)
