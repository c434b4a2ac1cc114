"""Facts about one Synapse task: the fingerprint of its data and the files of its data unit.

The fingerprint is what makes apply idempotent and conflict-aware: the SHA-256 of the canonical
JSON (orjson, keys sorted) of the task's ``data``. Export records it; apply compares the task's
current fingerprint with it and with the fingerprint of the data it is about to send.

Task data is JSON to Synapse, read and written by Python's ``json`` (Django there, ``requests`` in
the SDK), which keeps an integer of any size exact. orjson reads an integer beyond 64 bits as a
float and cannot write one, so ``loads_exact`` and ``dumps_exact`` take Python's ``json`` for a
body that holds one (a 24-digit serial in ``extra``) and orjson, with its bytes, for the rest:
what apply reads, journals, sends back and fingerprints is the task's data, digit for digit.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import orjson

#: where an integer may leave the range orjson reads exactly (-2**63 to 2**64 - 1): 20 digits, or
#: 19 after a minus sign (a run inside a string, or a long float, only costs the slower reader),
#: found by two substring tests (``long_digits``) on the bytes' shapes: each ASCII digit byte
#: becomes ``0``, a minus stays, every other byte becomes ``x``
_DIGIT_SHAPES = bytes(0x30 if 0x30 <= b <= 0x39 else b if b == 0x2D else 0x78 for b in range(256))
_NINETEEN_DIGITS = b"0" * 19  # in both runs: where it is not, neither is
_TWENTY_DIGITS = b"0" * 20
_MINUS_NINETEEN = b"-" + b"0" * 19


def _no_constant(name: str) -> Any:
    raise json.JSONDecodeError(f"{name} is not JSON", name, 0)


def loads_exact(body: bytes | str) -> Any:
    """JSON as Python's ``json`` reads it (every integer exact), at orjson's speed where no number
    is long enough to differ. Raises ``json.JSONDecodeError`` (orjson's is a subclass of it);
    ``NaN`` and ``Infinity`` are refused, as orjson refuses them."""
    raw = body.encode() if isinstance(body, str) else body
    return exact(raw, orjson.loads(raw))  # the syntax check, and its error message, stay orjson's


def exact(body: bytes, parsed: Any) -> Any:
    """``parsed`` (orjson's reading of ``body``, checked by its caller), or ``body`` read again
    exactly where it may hold an integer orjson read as a float."""
    return parsed if not long_digits(body) else json.loads(body, parse_constant=_no_constant)


def long_digits(body: bytes) -> bool:
    """Whether ``body`` holds a run of 20 ASCII digits, or 19 after a minus sign (the regular
    expression ``[0-9]{20}|-[0-9]{19}``, kept by ``tests/test_long_digits.py`` as the spec).
    Every line of a file job asks it of its document: the regular expression, which has no literal to skip ahead to, tried both
    branches at each byte (callgrind: some 85,000 instructions on the benchmark's 500-byte
    documents, four times orjson's parse); mapping the bytes to their shapes and looking for the
    runs costs some 7,500 (``tests/test_long_digits.py`` holds the two together)."""
    shapes = bytes(body).translate(_DIGIT_SHAPES)  # bytes(b) is b itself: no copy
    if shapes.find(_NINETEEN_DIGITS) < 0:  # find, not in: see line._unlike_json
        return False
    return shapes.find(_TWENTY_DIGITS) >= 0 or shapes.find(_MINUS_NINETEEN) >= 0


def dumps_exact(value: Any, *, sort_keys: bool = False) -> bytes:
    """orjson's bytes, or Python's ``json`` (compact, UTF-8, no NaN) for a value holding an
    integer orjson cannot write (beyond 64 bits)."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS if sort_keys else 0)
    except TypeError as exc:
        if "64-bit" not in str(exc):
            raise
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=sort_keys,
                      allow_nan=False).encode()


def data_hash(data: Any) -> str:
    return hashlib.sha256(dumps_exact(data, sort_keys=True)).hexdigest()


def files_by_spec(files: Any) -> dict[str, dict]:
    """A data unit's files keyed by specification name, whichever shape the backend sent.

    v1 serves a dict keyed by specification name; some payloads carry a list whose entries name
    their specification (``specification``, ``specification_name`` or ``name``).
    """
    if isinstance(files, dict):
        return {str(k): v for k, v in files.items() if isinstance(v, dict)}
    out: dict[str, dict] = {}
    if isinstance(files, list):
        for f in files:
            if not isinstance(f, dict):
                continue
            name = f.get("specification_name") or f.get("specification") or f.get("name")
            if isinstance(name, dict):  # an expanded specification object
                name = name.get("name")
            if name is not None and str(name) not in out:
                out[str(name)] = f
    return out


def file_name(f: dict) -> str | None:
    return f.get("file_name_original") or f.get("filename") or f.get("name")


def primary_spec(files: dict[str, dict]) -> str | None:
    """The specification name of the first primary file that has a URL."""
    for name, f in files.items():
        if f.get("is_primary") and f.get("url"):
            return name
    return None


def count_annotations(data: Any) -> int:
    """How many annotations DM v1 (``annotations: {media: [...]}``) or ``objects`` data holds."""
    if not isinstance(data, dict):
        return 0
    annotations = data.get("annotations")
    if isinstance(annotations, dict):
        return sum(len(v) for v in annotations.values() if isinstance(v, list))
    objects = data.get("objects")
    if isinstance(objects, list):
        return len(objects)
    return 0
