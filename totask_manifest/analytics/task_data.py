"""Synapse task data per manifest line (DM schema v1 or the documented ``objects`` shape), and back.

Each output line is ``{"line", "source-ref", "task_id", "task_type", "image_size", "class_map",
"data"}``: ``data`` is exactly what ``apply`` would PUT for that task; the other keys let the file
convert back (Synapse task data carries neither the image size, the data object nor class ids).
DM v1 carries no confidence, so labels come back unscored from it; ``objects`` keeps them.
"""

from __future__ import annotations

from collections.abc import Callable

import orjson

from ..errors import UsageError
from ..formats.model import ClassNames, FormatError
from ..formats.synapse import SUPPORTED, dm_v1_to_gt, gt_to_dm_v1, gt_to_objects, objects_to_gt
from ..manifest.io import read_lines, write_lines
from ..task_types import get_task_type
from .labels import iter_labels, manifest_line, pick_attribute

WRITERS: dict[str, Callable] = {"dm-schema-v1": gt_to_dm_v1, "synapse-objects": gt_to_objects}
READERS: dict[str, Callable] = {"dm-schema-v1": dm_v1_to_gt, "synapse-objects": objects_to_gt}


def _class_map(task_type: str, value: object, metadata: dict) -> dict[str, str]:
    """Ids for the names in ``data`` (DM v1 carries names only), so the way back keeps the ids."""
    if task_type == "image-classification":
        return {str(value): metadata.get("class-name", "")}
    return dict(metadata.get("class-map") or {})


def manifest_to_task_data(src: str, dst: str, fmt: str, *, label_attribute: str | None = None) -> dict[str, int]:
    attr = pick_attribute(src, SUPPORTED, label_attribute)
    write = WRITERS[fmt]
    out: list[bytes] = []
    skipped = 0
    for line, label in iter_labels(src, attr):
        if label is None or label.task_type not in SUPPORTED:
            skipped += not line.is_blank
            continue
        syn = label.record.get("synapse")
        size = label.value.get("image_size", [{}])[0] if isinstance(label.value, dict) else {}
        doc = {
            "line": line.number,
            "source-ref": label.source,
            "task_id": syn.get("task_id") if isinstance(syn, dict) else None,
            "task_type": label.task_type,
            "image_size": [size["width"], size["height"], size.get("depth", 3)] if size else None,
            "class_map": _class_map(label.task_type, label.value, label.metadata),
            "data": write(label.task_type, label.value, label.metadata),
        }
        out.append(orjson.dumps(doc) + b"\n")
    write_lines(dst, out)
    return {"lines": len(out), "skipped": skipped}


def task_data_to_manifest(
    src: str,
    dst: str,
    fmt: str,
    *,
    task_type: str | None = None,
    label_attribute: str | None = None,
    class_names: ClassNames | None = None,
    job_name: str = "converted",
    human_annotated: str = "no",
) -> dict[str, int]:
    """Lines as written by ``manifest_to_task_data`` (or any JSON Lines with ``data`` and ``source-ref``)."""
    read = READERS[fmt]
    attr = label_attribute or "label"
    out: list[bytes] = []
    for line in read_lines(src):
        if line.is_blank:
            continue
        rec = line.record()
        tt = task_type or rec.get("task_type")
        if not tt:
            raise UsageError(f"line {line.number} of {src} names no task_type; pass --task-type")
        tt = get_task_type(tt).name
        if "data" not in rec:
            raise FormatError("line needs a 'data' object", fmt=fmt, key="data", line=line.number)
        try:
            names = class_names if class_names is not None else rec.get("class_map")
            labeled = read(rec["data"], tt, image_size=rec.get("image_size"), class_names=names)
        except FormatError as exc:
            raise FormatError(exc.detail, fmt=fmt, key=exc.key, line=line.number) from None
        extra = {"synapse": {"task_id": rec["task_id"]}} if rec.get("task_id") is not None else None
        source = rec.get("source-ref") or ""
        out.append(manifest_line(source, attr, labeled, tt, job_name=job_name, human_annotated=human_annotated,
                                 extra=extra))
    write_lines(dst, out)
    return {"lines": len(out), "skipped": 0}
