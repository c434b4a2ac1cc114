"""``TypedPlan.accepts``' cheap proof that a decoded piece lost nothing: its keys counted in the
text (numpy, over the whole piece at once) against the keys its structs hold.

Why: writing every piece back with msgspec and comparing bytes (the proof it replaces on the
common path, kept as the fallback) was about 30% of ``validate``'s instructions a line.

The proof, for a piece ``decode_lines`` read into ``records`` (so it is a sequence of valid JSON
objects that whitespace separates, each the shape's structs accept):

* no backslash: no string holds an escape, so every ``"`` opens or closes a string and a byte
  lies outside every string exactly when an even number of quotes precede it. The strings then
  decode to their raw UTF-8 (msgspec and orjson refuse the same raw bytes: control characters,
  invalid UTF-8), as the write-back required;
* no whitespace but newlines outside strings, and every newline (never inside a string: a raw
  one is refused) has ``}`` before it and ``{`` after it or ends the piece: each newline then
  lies between two records (inside an object or array a ``}`` is followed by ``,``, ``}`` or
  ``]``), so no record spans lines and there is no blank line; with as many records as lines,
  no line holds two;
* a colon outside strings is a key's; a struct or map keeps a repeated key once, so the text's
  colons equal the structs' keys (``key_counter``) only where no key is repeated;
* with a class-index map (int keys) no string may start with ``-``: ``"-0"`` is the one key
  spelling other than canonical digits msgspec reads as an int (``0``), which the schema's
  pattern refuses.

Number spellings need no proof: msgspec's typed decode refuses what orjson does (``1e999``,
``NaN``, integers past int64 by the plan's bounds) and reads the others to the same values.
Key order is not checked: no rule reads it. A piece outside these conditions is written back.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable
from itertools import chain
from typing import Any

import msgspec
import numpy as np

Count = Callable[[list], int]

Count = Callable[[list], int]

_QUOTE, _COLON, _NEWLINE, _SPACE, _MINUS, _OPEN, _CLOSE = (ord(c) for c in '":\n -{}')
#: bytes a covered piece has none of: an escape, and whitespace other than newlines
_REFUSED = (b"\\", b" ", b"\t", b"\r")


def text_keys(text: bytes | memoryview, records: int, index_keys: bool) -> int:
    """At least the number of keys in ``text`` (``records`` JSON objects decoded from it),
    exactly that when none repeats... when the proof above covers the piece; else -1 (write it
    back)."""
    if text[:1] != b"{" or any(map(bytes(text).__contains__, _REFUSED)):  # memchr each
        return -1
    a = np.frombuffer(text, dtype=np.uint8)
    newline = a == _NEWLINE
    ends = bool(newline[-1])
    if np.count_nonzero(newline) != records - 1 + ends:
        return -1
    # every record boundary is '}' newline '{' (see above): N - 1 of them
    if np.count_nonzero(newline[1:-1] & (a[:-2] == _CLOSE) & (a[2:] == _OPEN)) != records - 1:
        return -1
    quote = a[:-1] == _QUOTE
    if index_keys and (quote & (a[1:] == _MINUS)).any():
        return -1  # a string starting with '-' ('"-0"', the one other int key spelling)
    return int(np.count_nonzero(quote & (a[1:] == _COLON)))


def key_counter(line_type: type) -> Count | None:
    """A function counting the keys a run of ``line_type`` structs holds (required fields, the
    optional ones set, map entries, nested), None for a type it does not know. Why level by
    level: each field is read for the whole run at once by C loops (``map``, ``chain``,
    ``list.count``), a fraction of a per-line walk in bytecode."""
    try:
        count = _counter(msgspec.inspect.type_info(line_type))
    except TypeError:
        return None
    return count or (lambda records: 0)


def _counter(info: msgspec.inspect.Type) -> Count | None:
    """The key count of a list of values of type ``info``; None where they hold no key."""
    inspect = msgspec.inspect
    if isinstance(info, inspect.StructType):
        required = sum(field.required for field in info.fields)
        parts = []
        for field in info.fields:
            sub = _counter(field.type)  # inspect drops UNSET from an optional field's type
            if field.required and sub is None:
                continue
            parts.append((operator.attrgetter(field.name), field.required, sub))
        return functools.partial(_count_structs, required, parts)
    if isinstance(info, (inspect.ListType, inspect.VarTupleType)):
        sub = _counter(info.item_type)
        return None if sub is None else functools.partial(_count_items, sub)
    if isinstance(info, inspect.DictType):
        return functools.partial(_count_maps, _counter(info.value_type))
    if isinstance(info, inspect.UnionType):
        if any(_counter(t) is not None for t in info.types):
            raise TypeError("a union holding objects")
        return None
    if isinstance(info, (inspect.IntType, inspect.FloatType, inspect.StrType, inspect.BoolType,
                         inspect.LiteralType, inspect.NoneType)):
        return None
    raise TypeError(f"no key count for {info!r}")


def _count_structs(required: int, parts: list[tuple[Callable[[Any], Any], bool, Count | None]],
                   structs: list) -> int:
    keys = required * len(structs)
    for get, is_required, sub in parts:
        values = list(map(get, structs))
        if not is_required:
            keys += len(values) - values.count(msgspec.UNSET)
            if sub is None:
                continue
            values = [v for v in values if v is not msgspec.UNSET]
        keys += sub(values)  # type: ignore[misc]
    return keys


def _count_items(sub: Count, lists: list) -> int:
    return sub(list(chain.from_iterable(lists)))


def _count_maps(sub: Count | None, maps: list) -> int:
    keys = sum(map(len, maps))
    return keys if sub is None else keys + sub(list(chain.from_iterable(map(dict.values, maps))))
