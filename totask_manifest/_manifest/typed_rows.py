"""The per-line loop of ``typed_plan``'s path, generated once for a shape: the task type's own
rules and the scalar patterns on each line's structs, and the count of JSON keys the structs
hold (``key_count_code``).

Why the key count: ``TypedPlan.accepts`` proves a piece lossless either by writing its records
back (``encode_lines``, a third of the typed path's cost) or, for a piece without a backslash
or whitespace, by counting: there every ``":`` ends a key (no string holds a quote), so the
text has as many keys as ``":`` pairs, and the decoded structs hold fewer exactly when a key was
repeated (a struct field or map key is kept once). Read in bytecode, the count costs a few
field reads a line.
"""

from __future__ import annotations

import keyword
import typing
from collections.abc import Callable
from typing import Annotated, Any, Union

import msgspec

from .patterns import all_match

#: known-good values kept per pattern check: job names, class indices and dates repeat
GOOD_VALUES = 4096


def row_check(line_type: type, rules: list[tuple[str, str, Callable[[Any, Any], bool]]],
              scalars: list[tuple[str, Callable[[str], Any]]]) -> Callable[[list], int]:
    """One loop over a run's structs returning the number of JSON keys they hold, or -1 when a
    line breaks a rule or pattern: each rule on its line's label and metadata (field names),
    each scalar pattern on the string at its dotted field path, looked up among the values seen
    good first (job names and dates repeat). Why generated: a field read written in bytecode
    costs a fraction of an ``operator.attrgetter`` call mapped over the run, and these reads are
    most of the work (the names are ``typed_plan._python_names``, plain identifiers)."""
    names: dict[str, Any] = {"UNSET": msgspec.UNSET}
    const, count = key_count_code(line_type, "line")
    body = [f"keys += {const}", *count]
    for i, (path, fullmatch) in enumerate(scalars):
        names[f"good{i}"], names[f"admit{i}"] = _admitter(fullmatch)
        body += [f"value = line.{path}", f"if value not in good{i} and not admit{i}(value):", "    return -1"]
    for i, (label, metadata, rule) in enumerate(rules):
        names[f"rule{i}"] = rule
        body += [f"if not rule{i}(line.{label}, line.{metadata}):", "    return -1"]
    if not all(part.isidentifier() and not keyword.iskeyword(part)
               for path in [p for p, _ in scalars] + [n for r in rules for n in r[:2]] for part in path.split(".")):
        raise ValueError("field names must be identifiers")  # pragma: no cover - _python_names makes them so
    source = ("def check(records):\n    keys = 0\n    for line in records:\n"
              + "".join(f"        {line}\n" for line in body) + "    return keys\n")
    exec(source, names)  # built from identifiers only (struct field names are checked too)
    return names["check"]


def key_count_code(kind: Any, expr: str, depth: int = 0) -> tuple[int, list[str]]:
    """``(constant, code)``: the JSON keys a value of msgspec type ``kind`` at ``expr`` holds,
    as a constant plus code lines that add the rest to ``keys`` (absent optional fields, list
    items, map entries). Scalars hold none."""
    kind = _bare(kind)
    origin = typing.get_origin(kind)
    if isinstance(kind, type) and issubclass(kind, msgspec.Struct):
        const, code = 0, []
        for field in msgspec.structs.fields(kind):
            if not field.name.isidentifier() or keyword.iskeyword(field.name):
                raise ValueError("field names must be identifiers")  # pragma: no cover - _python_names
            inner_const, inner = key_count_code(field.type, f"{expr}.{field.name}", depth)
            if field.required:
                const += 1 + inner_const
                code += inner
            else:
                code += [f"if {expr}.{field.name} is not UNSET:", f"    keys += {1 + inner_const}",
                         *(f"    {line}" for line in inner)]
        return const, code
    if origin is list:
        item = f"v{depth}"
        const, inner = key_count_code(typing.get_args(kind)[0], item, depth + 1)
        if not inner:
            return 0, [f"keys += {const} * len({expr})"] if const else []
        return 0, [f"for {item} in {expr}:", *([f"    keys += {const}"] if const else []),
                   *(f"    {line}" for line in inner)]
    if origin is dict:
        item = f"v{depth}"
        const, inner = key_count_code(typing.get_args(kind)[1], item, depth + 1)
        code = [f"keys += {1 + const} * len({expr})"]
        if inner:
            code += [f"for {item} in {expr}.values():", *(f"    {line}" for line in inner)]
        return 0, code
    if origin is Union:
        parts = [k for k in typing.get_args(kind) if k is not msgspec.UnsetType]
        if any(key_count_code(k, expr, depth) != (0, []) for k in parts):
            raise ValueError("a union of values holding keys")  # pragma: no cover - typed_plan makes none
        return 0, []
    return 0, []


def _bare(kind: Any) -> Any:
    """``kind`` without ``Annotated`` constraints, an optional field's ``UnsetType`` taken off."""
    while typing.get_origin(kind) is Annotated:
        kind = typing.get_args(kind)[0]
    if typing.get_origin(kind) is Union:
        parts = [k for k in typing.get_args(kind) if k is not msgspec.UnsetType]
        if len(parts) == 1:
            return _bare(parts[0])
    return kind


def _admitter(fullmatch: Callable[[str], Any]) -> tuple[set[str], Callable[[str], bool]]:
    """The values seen good for a pattern, and the test of a new one (kept when it matches,
    up to ``GOOD_VALUES``)."""
    good: set[str] = set()

    def admit(value: str) -> bool:
        if not all_match(fullmatch, (value,)):
            return False
        if len(good) < GOOD_VALUES:
            good.add(value)
        return True

    return good, admit
