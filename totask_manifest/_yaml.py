"""YAML and JSON as users write parameter and class-name files: PyYAML's safe loader and the
standard library's JSON reader, each with a key written twice in one mapping refused.

Why: PyYAML, like every JSON reader (orjson, ``json``), keeps the last of two equal keys without a
word, so a ``target_specification_name`` or a ``threshold`` written twice (a pasted block, a merge
gone wrong) silently drops one value; manifests refuse a repeated key for the same reason. A YAML
merge (``<<: *base``) still lets the mapping's own keys override the merged ones: only keys
written in the mapping itself count. JSON files go through ``json`` rather than orjson, which
cannot see a repeated key: they are small, read once.
"""

from __future__ import annotations

import json
from typing import Any

import yaml

_MERGE_TAG = "tag:yaml.org,2002:merge"


class _UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that raises a ``ConstructorError`` (with the line of the second key)
    for a key written twice in one mapping."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:  # type: ignore[override]
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, yaml.Node] = {}
            for key_node, _ in node.value:
                if key_node.tag == _MERGE_TAG:
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.setdefault(key, key_node)
                except TypeError:  # an unhashable key: the safe loader's own error says so
                    continue
                if first is not key_node:
                    raise yaml.constructor.ConstructorError(
                        "while constructing a mapping", node.start_mark,
                        f"the key {key!r} appears twice (first on line {first.start_mark.line + 1})",
                        key_node.start_mark)
        return super().construct_mapping(node, deep=deep)


def load_yaml(text: str | bytes) -> Any:
    """The document in ``text``, as ``yaml.safe_load`` reads it, but a key written twice in one
    mapping raises ``yaml.YAMLError`` (``_errors.yaml_error_text`` names its line), and so does a
    document nested past the interpreter's recursion limit (PyYAML's composer recurses once a
    level and raises ``RecursionError``, which every caller's YAML error handling would miss)."""
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)
    except RecursionError:
        raise yaml.YAMLError("depth limit exceeded: the document nests sequences or mappings too deeply") from None


class DuplicateKeyError(ValueError):
    """A JSON object with a key written twice (``load_json``)."""


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise DuplicateKeyError(f"the key {key!r} appears twice in one object")
        out[key] = value
    return out


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON (a number must be finite)")


def load_json(data: str | bytes) -> Any:
    """The JSON document in ``data``, as orjson reads it (no ``NaN`` or ``Infinity``), but a key
    written twice in one object raises ``DuplicateKeyError`` naming it. Every error is a
    ``ValueError`` whose first line says what and where: a document nested past the interpreter's
    recursion limit too (``json`` raises ``RecursionError`` there, orjson its depth limit, 1024),
    which would otherwise escape ``--params``' error handling as a traceback."""
    try:
        return json.loads(data, object_pairs_hook=_unique_pairs, parse_constant=_no_constant)
    except RecursionError:
        raise ValueError("depth limit exceeded: the document nests arrays or objects too deeply") from None
