"""The JSON Schema (2020-12) files in ``schemas/``: where they are, loaded once, compiled once.

The files sit at the repository root in a checkout and inside the package
(``totask_manifest/schemas``) in a wheel. Each refers to ``_defs.json`` for the fields all
Ground Truth types share, so every file is registered under its ``$id`` before compiling.

Validation is the hot path (every label a job writes, every line ``validate`` reads), so
schemas compile with ``jsonschema_rs`` (about a million lines a second); its errors carry the
instance path and a message, which is all a report needs. ``jsonschema`` is the fallback
where ``jsonschema_rs`` cannot be imported.
"""

from __future__ import annotations

import functools
import importlib.resources
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from .._errors import UsageError

try:  # pragma: no cover - exercised by whichever engine is installed
    import jsonschema_rs as _rs
except ImportError:  # pragma: no cover
    _rs = None

#: the ``$id`` prefix of every schema file; not a real address (``.invalid`` never resolves)
BASE_URI = "https://totask-manifest.invalid/schemas/"


def schema_dir() -> Path:
    """The folder holding the schema files: the packaged copy when installed from a wheel,
    else ``<repo>/schemas`` of the checkout this module runs from."""
    packaged = importlib.resources.files("totask_manifest") / "schemas"
    if packaged.is_dir():
        return Path(str(packaged))
    return Path(__file__).resolve().parents[2] / "schemas"


@functools.cache
def _all_documents() -> dict[str, dict]:
    folder = schema_dir()
    docs: dict[str, dict] = {}
    for path in sorted(folder.glob("*.json")):
        docs[path.stem] = orjson.loads(path.read_bytes())
    if not docs:
        raise UsageError(f"no schema files found in {folder}")
    return docs


def schema_names() -> list[str]:
    """Names usable with ``load_schema``/``validator`` (``_defs`` is only referred to)."""
    return [name for name in _all_documents() if not name.startswith("_")]


def load_schema(name: str) -> dict:
    """The parsed schema document (shared: do not modify it)."""
    docs = _all_documents()
    if name.startswith("_") or name not in docs:
        known = ", ".join(schema_names())
        raise UsageError(f"unknown schema {name!r}; known schemas: {known}")
    return docs[name]


@dataclass(frozen=True, slots=True)
class SchemaError:
    """One schema violation: where in the instance, which keyword, what is wrong."""

    path: tuple[str | int, ...]
    keyword: str
    message: str


class CompiledSchema:
    """A compiled schema: ``is_valid`` for the fast path, ``errors`` once something failed."""

    def __init__(self, name: str, is_valid: Callable[[Any], bool], iter_errors: Callable[[Any], Iterator[Any]]):
        self.name = name
        #: the engine's own bound method, so the hot path pays no extra Python call
        self.is_valid = is_valid
        self._iter_errors = iter_errors

    def errors(self, instance: Any, limit: int = 20) -> list[SchemaError]:
        """The distinct violations (a field checked by two subschemas is reported once)."""
        found: dict[tuple, SchemaError] = {}
        for err in self._iter_errors(instance):
            e = _convert(err, instance)
            found.setdefault((e.path, e.keyword, e.message), e)
            if len(found) >= limit:
                break
        return sorted(found.values(), key=lambda e: (len(e.path), [str(p) for p in e.path]))


def _typed_path(instance: Any, raw: Any) -> tuple[str | int, ...]:
    """Object keys as strings, array indices as ints, whatever the engine reports
    (a key like "1" of a class-map must print as ``.1``, not ``[1]``)."""
    path: list[str | int] = []
    node = instance
    for part in raw:
        if isinstance(node, list):
            index = int(part)
            path.append(index)
            node = node[index] if 0 <= index < len(node) else None
        else:
            key = str(part)
            path.append(key)
            node = node.get(key) if isinstance(node, dict) else None
    return tuple(path)


def _convert(err: Any, instance: Any) -> SchemaError:
    raw = err.instance_path if _rs is not None else err.absolute_path
    path = _typed_path(instance, raw)
    schema_path = list(err.schema_path) if _rs is not None else list(err.absolute_schema_path)
    keyword = next((str(p) for p in reversed(schema_path) if isinstance(p, str)), "schema")
    message = err.message
    if keyword == "pattern" and (blank := _NOT_BLANK_PATTERN.search(message)):
        # the engine's words ('"  " does not match "\\S"') name a regular expression, not the rule
        message = f"{message[:blank.start()]} is blank: it needs a character other than white space"
    elif keyword == "pattern" and (digits := _class_index_digits(message)) is not None:
        # the bound's pattern is 600 characters of alternatives: say the rule it spells
        message = f"{digits} is not a class index: the digits of an integer from 0 to 2**63 - 1"
    if len(message) > 300:
        message = message[:297] + "..."
    return SchemaError(path, keyword, message)


def _class_index_digits(message: str) -> str | None:
    """The value quoted by either engine's message that it does not match ``class-index-digits``'
    pattern (None: another message)."""
    value, said, pattern = message.rpartition(" does not match ")
    pattern = pattern[1:-1] if len(pattern) > 1 and pattern[0] == pattern[-1] and pattern[0] in "'\"" else None
    if not said or pattern != _all_documents()["_defs"]["$defs"]["class-index-digits"]["pattern"]:
        return None
    return value


#: the end of either engine's message for the schemas' not-blank pattern (``\S``: class names...)
_NOT_BLANK_PATTERN = re.compile(r""" does not match (["'])\\{1,2}S\1$""")


@functools.cache
def _rs_registry() -> Any:
    return _rs.Registry([(BASE_URI + name + ".json", doc) for name, doc in _all_documents().items()])


@functools.cache
def _py_registry() -> Any:
    from referencing import Registry, Resource

    return Registry().with_resources(
        (BASE_URI + name + ".json", Resource.from_contents(doc)) for name, doc in _all_documents().items()
    )


@functools.cache
def validator(name: str, pointer: str = "") -> CompiledSchema:
    """The compiled validator for a schema, or for the subschema at a JSON pointer in it
    (e.g. ``validator("dm-schema-v1", "/$defs/bounding-box")``)."""
    load_schema(name)  # a clear error for unknown names
    return compile_schema({"$ref": ref(name, pointer)}, name)


def ref(name: str, pointer: str = "") -> str:
    """The URI that refers to a schema file (or a subschema of it) from another schema."""
    return BASE_URI + name + ".json" + ("#" + pointer if pointer else "")


def resolve_ref(reference: str, document: dict) -> tuple[Any, dict]:
    """The subschema a ``$ref`` names and the document it sits in (for its own references):
    ``#/pointer`` inside ``document``, ``name.json#/pointer`` (relative to ``BASE_URI``, as every
    schema file writes it, or the whole URI) in a schema file. KeyError when there is none."""
    target, _, pointer = reference.partition("#")
    if target:
        name = target.removeprefix(BASE_URI).removesuffix(".json")
        document = _all_documents()[name]
    node: Any = document
    for part in pointer.split("/")[1:] if pointer else ():
        part = part.replace("~1", "/").replace("~0", "~")
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node, document


def compile_schema(schema: dict, name: str = "") -> CompiledSchema:
    """Compile a schema that may refer to the schema files through ``ref(name)``."""
    if _rs is not None:
        compiled = _rs.Draft202012Validator(schema, registry=_rs_registry())
        return CompiledSchema(name, compiled.is_valid, compiled.iter_errors)
    from jsonschema import Draft202012Validator  # pragma: no cover

    py = Draft202012Validator(schema, registry=_py_registry())  # pragma: no cover
    return CompiledSchema(name, py.is_valid, py.iter_errors)  # pragma: no cover


def format_path(path: tuple[str | int, ...], root: str = "") -> str:
    """``("annotations", 0, "width")`` -> ``annotations[0].width`` (after ``root``)."""
    out = root
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out = f"{out}.{part}" if out else str(part)
    return out
