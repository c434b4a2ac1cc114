"""Which lines a job labels: Ground Truth's chaining rule.

"All data objects without data connected to that label attribute name are labeled": a line is
selected when it has no value under the attribute (missing or null), or when the attribute's
metadata records a ``failure-reason`` from an earlier try. Everything else passes through.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from ..manifest.line import Line
from ..manifest.naming import metadata_key
from ..outcomes import Item


def needs_label(record: dict, attribute: str) -> bool:
    if record.get(attribute) is None:
        return True
    meta = record.get(metadata_key(attribute))
    return isinstance(meta, dict) and "failure-reason" in meta


def select(lines: Iterable[Line], attribute: str, *, after_index: int = -1) -> Iterator[tuple[Line, Item]]:
    """Selected lines with their items, skipping the first ``after_index + 1`` lines (resume)."""
    for index, line in enumerate(lines):
        if index <= after_index or line.is_blank:
            continue
        record = line.record()
        if needs_label(record, attribute):
            yield line, Item(index, line.number, record)
