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

import operator
from collections.abc import Callable
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
    optional ones set, map entries, nested), generated for the type: a field read written in
    bytecode costs a fraction of a generic walk. None for a type it does not know."""
    names: dict[str, Any] = {"U": msgspec.UNSET, "cnt": _count_unset}
    serial = iter(range(1 << 30))

    def count(info: msgspec.inspect.Type, expr: str) -> tuple[int, list[str]]:
        """(constant, terms): the keys in the value ``expr`` of type ``info``."""
        inspect = msgspec.inspect
        if isinstance(info, inspect.StructType):
            const, terms = 0, []
            for field in info.fields:
                value = f"{expr}.{field.name}"
                sub = count(field.type, f"v{next(serial)}")  # inspect drops UNSET from the type
                if field.required:
                    sub = count(field.type, value)
                    const += 1 + sub[0]
                    terms += sub[1]
                elif sub == (0, []):
                    terms.append(f"({value} is not U)")
                else:
                    name = f"o{next(serial)}"
                    terms.append(f"(0 if ({name} := {value}) is U else 1 + {_sum(count(field.type, name))})")
            return const, terms
        if isinstance(info, (inspect.ListType, inspect.VarTupleType)):
            item = info.item_type
            sub_const, sub_terms = count(item, "x")
            if not sub_terms:
                return 0, [f"{sub_const} * len({expr})"] if sub_const else []
            if isinstance(item, inspect.StructType) and all(
                    count(f.type, "x") == (0, []) for f in item.fields):  # optional scalars only
                optional = [f.name for f in item.fields if not f.required]
                names[f"get{len(names)}"] = get = operator.attrgetter(*optional)
                return 0, [f"{sub_const + len(optional)} * len({expr}) - cnt({expr}, {_name(names, get)}, {len(optional)})"]
            name = f"x{next(serial)}"
            return 0, [f"sum([{_sum(count(item, name))} for {name} in {expr}])"]
        if isinstance(info, inspect.DictType):
            name = f"v{next(serial)}"
            sub = count(info.value_type, name)
            terms = [f"len({expr})"]
            if sub != (0, []):
                terms.append(f"sum([{_sum(sub)} for {name} in {expr}.values()])")
            return 0, terms
        if isinstance(info, inspect.UnionType):
            if any(count(t, expr) != (0, []) for t in info.types):
                raise TypeError("a union holding objects")
            return 0, []
        if isinstance(info, (inspect.IntType, inspect.FloatType, inspect.StrType, inspect.BoolType,
                             inspect.LiteralType, inspect.NoneType)):
            return 0, []
        raise TypeError(f"no key count for {info!r}")

    try:
        per_line = _sum(count(msgspec.inspect.type_info(line_type), "line"))
    except TypeError:
        return None
    exec(f"def keys(records):\n    return sum([{per_line} for line in records])\n", names)
    return names["keys"]


def _name(names: dict[str, Any], value: Any) -> str:
    return next(k for k, v in names.items() if v is value)


def _count_unset(items: list, get: Callable[[Any], Any], fields: int) -> int:
    """How many of ``fields`` optional fields are UNSET over ``items``."""
    if fields == 1:
        return list(map(get, items)).count(msgspec.UNSET)
    return sum(values.count(msgspec.UNSET) for values in map(get, items))


def _sum(parts: tuple[int, list[str]]) -> str:
    const, terms = parts
    return " + ".join(([str(const)] if const or not terms else []) + terms)
