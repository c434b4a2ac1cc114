"""Pattern checks for ``typed_plan``: a JSON Schema ``pattern`` run in Python's ``re`` over many
values at once, only for the part of the regex syntax whose meaning Python shares with the
schema engine (Rust's regex, ECMA-262): literals, escaped punctuation, plain bracket classes,
``(?:`` groups, alternation inside a group, quantifiers. Anything else is ``Unsupported``, and
the shape keeps the jsonschema-rs path."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any


class Unsupported(Exception):
    """The schema uses something ``typed_plan`` does not translate: no typed plan."""


def batched(pattern: str) -> Callable[[str], Any]:
    """``fullmatch`` over values joined by ``\\n`` (none holding one: ``TypedPlan.accepts``
    counts), true exactly when each value matches ``pattern`` in the JSON Schema sense (search,
    not match). Sound because no part of the translated pattern can match a ``\\n``: negated
    classes get one added, and ``.`` never matches it."""
    start = pattern.startswith("^")
    end = pattern.endswith("$") and not pattern.endswith("\\$")
    body = _translate(pattern[1 if start else 0 : len(pattern) - 1 if end else None])
    any_text = "[^\\n]*"
    one = f"{'' if start else any_text}(?:{body}){'' if end else any_text}"
    try:
        return re.compile(f"{one}(?:\\n{one})*").fullmatch
    except re.error as exc:
        raise Unsupported(f"pattern {pattern!r}") from exc


#: what the schemas' ``"pattern": "\\S"`` reads as white space (ECMA-262's ``\\s``, as validate's
#: schema engine reads it): Python's ``str.strip`` differs on U+001C-U+001F, U+0085 and U+FEFF
SCHEMA_WHITE_SPACE = "\t\n\x0b\x0c\r \xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
#: ``\\S`` as the schema engine reads it (the class-name rule's set too, ``class_names``)
_NOT_BLANK = "[^" + "".join(f"\\u{ord(c):04x}" for c in SCHEMA_WHITE_SPACE) + "]"
_LITERAL = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 _/:#@,'-")
_ESCAPABLE = frozenset(".-/+*?()[]{}|^$")


def _translate(body: str) -> str:
    """The pattern (anchors taken off) for Python's ``re``: only a subset whose meaning Rust's
    regex shares (literals, escaped punctuation, plain bracket classes, ``(?:`` groups,
    alternation inside a group, quantifiers); anything else is ``Unsupported``."""
    out: list[str] = []
    depth = 0
    i = 0
    while i < len(body):
        char = body[i]
        if char in _LITERAL:
            out.append(char)
        elif char == ".":  # no line terminator of ECMA-262's (or Rust's \\n): never laxer than either
            out.append("[^\\n\\r\\u2028\\u2029]")
        elif body[i : i + 2] == "\\S":  # no white space of the schema engine's (ECMA-262's \\s), nor \\n
            out.append(_NOT_BLANK)
            i += 1
        elif char == "\\" and body[i + 1 : i + 2] in _ESCAPABLE:
            out.append(body[i : i + 2])
            i += 1
        elif char == "[":
            end = body.find("]", i + 1)
            inside = body[i + 1 : end]
            negated = inside.startswith("^")
            items = inside[1:] if negated else inside
            if end < 0 or not items or not _plain_class(items):
                raise Unsupported(f"class {body[i:end + 1]!r}")
            out.append(("[^\\n" if negated else "[") + items + "]")
            i = end
        elif char == "(":
            if body[i + 1 : i + 2] == "?":
                if body[i + 2 : i + 3] != ":":
                    raise Unsupported("a group other than (?:")
                i += 2
            out.append("(?:")
            depth += 1
        elif char == ")" and depth > 0:
            out.append(char)
            depth -= 1
        elif (char == "|" and depth > 0) or (char in "*+?" and out):
            out.append(char)
        elif char == "{" and out:
            close = body.find("}", i)
            if close < 0 or not re.fullmatch(r"[0-9]+(?:,[0-9]*)?", body[i + 1 : close]):
                raise Unsupported("a repetition other than {m}, {m,} or {m,n}")
            out.append(body[i : close + 1])
            i = close
        else:
            raise Unsupported(f"pattern character {char!r} in {body!r}")
        i += 1
    if depth:
        raise Unsupported("unbalanced group")
    return "".join(out)


def _plain_class(items: str) -> bool:
    """Letters, digits, ``_``, space, escaped punctuation and ranges between letters or digits;
    no nested class, POSIX class or set operation (Rust has them, Python reads them otherwise)."""
    return re.fullmatch(r"(?:[A-Za-z0-9](?:-[A-Za-z0-9])?|[_ ]|\\[.\-/+*?()\[\]{}|^$])+", items) is not None


def all_match(fullmatch: Callable[[str], Any], values: Any) -> bool:
    """Each value matches: one ``fullmatch`` over them joined by newlines (``batched``), none
    holding a newline of its own."""
    values = list(values)
    text = "\n".join(values)
    return text.count("\n") == len(values) - 1 and fullmatch(text) is not None
