"""JSON Schema's scalar keywords as msgspec types, for ``typed_plan``: string literals (``const``,
``enum``), numeric bounds, lengths, and ``"type"`` lists of scalars. Each type is at least as
strict as the schema (``typed_plan``'s soundness); what it cannot say is ``Unsupported``."""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal, Union

import msgspec

from .patterns import Unsupported, batched

#: integers orjson reads as integers (it reads larger ones as floats, msgspec would not) and
#: msgspec bounds can express: int64
INT_MIN, INT_MAX = -(2**63), 2**63 - 1


#: the JSON types a ``"type": [...]`` list may name (``scalar_union``), as msgspec types
SCALARS: dict[str, Any] = {"string": str, "integer": int, "number": Union[int, float], "boolean": bool,  # noqa: UP007
                            "null": None}


def scalar_union(schema: dict, kinds: list) -> Any:
    """``{"type": ["number", "string"]}`` (a COCO annotation's id) as a union of scalar types, with
    no other keyword. Unsupported, any ``type`` list made every schema sharing ``_defs.json``
    leave the typed path (each line checked by jsonschema-rs alone)."""
    if set(schema) != {"type"} or not kinds or len(set(kinds)) != len(kinds) or any(
            type(k) is not str or k not in SCALARS for k in kinds):
        raise Unsupported(f"type {kinds!r}")
    return Union[tuple(SCALARS[k] for k in kinds)]  # noqa: UP007


def literal(schema: dict, patterns: list[str]) -> Any:
    """``const``/``enum`` of strings (after their patterns) as a ``Literal``: msgspec refuses the rest."""
    values = [schema["const"]] if "const" in schema else list(schema["enum"])
    if set(schema) - {"const", "enum", "type", "pattern"} or not values:
        raise Unsupported("const/enum with other keywords")
    if not all(type(v) is str for v in values) or schema.get("type", "string") != "string":
        raise Unsupported("a literal that is not a string")
    values = [v for v in values if all(batched(p)(v) for p in patterns)]
    if "const" in schema and "enum" in schema:
        values = [v for v in values if v in schema["enum"]]
    if not values:
        raise Unsupported("no value passes")
    return Literal[tuple(values)]


def bounds(schema: dict, kinds: Any) -> dict[str, Any]:
    """The schema's numeric bounds as msgspec's ``ge``/``le``/``gt``/``lt``, each of ``kinds``."""
    out = {}
    for word, name in (("minimum", "ge"), ("maximum", "le"), ("exclusiveMinimum", "gt"),
                          ("exclusiveMaximum", "lt")):
        if word in schema:
            value = schema[word]
            if type(value) not in (kinds if isinstance(kinds, tuple) else (kinds,)):
                raise Unsupported(f"{word} {value!r}")
            out[name] = value
    return out


def int_bounds(given: dict[str, Any]) -> dict[str, int]:
    """``bounds`` for an integer, as one inclusive range inside what orjson reads as an integer."""
    low, high = INT_MIN, INT_MAX
    if "ge" in given:
        low = max(low, math.ceil(given["ge"]))
    if "gt" in given:
        low = max(low, math.floor(given["gt"]) + 1)
    if "le" in given:
        high = min(high, math.floor(given["le"]))
    if "lt" in given:
        high = min(high, math.ceil(given["lt"]) - 1)
    return {"ge": low, "le": high}


def with_meta(kind: Any, **constraints: Any) -> Any:
    """``kind`` under the constraints given (None: not given); one bound a side at most."""
    constraints = {k: v for k, v in constraints.items() if v is not None}
    if ("ge" in constraints and "gt" in constraints) or ("le" in constraints and "lt" in constraints):
        raise Unsupported("two bounds on one side")
    return Annotated[kind, msgspec.Meta(**constraints)] if constraints else kind
