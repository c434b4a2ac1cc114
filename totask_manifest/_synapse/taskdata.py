"""Facts about one Synapse task: the fingerprint of its data and the files of its data unit.

The fingerprint is what makes apply idempotent and conflict-aware: the SHA-256 of the canonical
JSON (orjson, keys sorted) of the task's ``data``. Export records it; apply compares the task's
current fingerprint with it and with the fingerprint of the data it is about to send.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson


def data_hash(data: Any) -> str:
    return hashlib.sha256(orjson.dumps(data, option=orjson.OPT_SORT_KEYS)).hexdigest()


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
