"""YAML as users write parameter and class-name files: PyYAML's safe loader, with a key written
twice in one mapping refused.

Why: PyYAML keeps the last of two equal keys without a word, so a ``target_specification_name``
or a ``threshold`` written twice (a pasted block, a merge gone wrong) silently drops one value;
manifests refuse a repeated key for the same reason. A merge (``<<: *base``) still lets the
mapping's own keys override the merged ones: only keys written in the mapping itself count.
"""

from __future__ import annotations

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
    mapping raises ``yaml.YAMLError`` (``_errors.yaml_error_text`` names its line)."""
    return yaml.load(text, Loader=_UniqueKeyLoader)
