"""Finding one label attribute's labels in a manifest, and building lines for imported labels.

Shared by every conversion: which attribute to read (named, or the only one of the wanted
task type), what counts as a label (a value and no ``failure-reason``), and the job-level
metadata an imported label gets so that the manifest it lands in is a valid Ground Truth one.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from ..annotators.base import Labeled
from ..errors import ManifestError, UsageError
from ..jobs.selection import needs_label
from ..manifest.io import read_lines
from ..manifest.line import Line, gt_json
from ..task_types import common_metadata, get_task_type, order_metadata, task_type_of_metadata

METADATA = "-metadata"
#: how many lines ``pick_attribute`` looks at before deciding
SCAN_LINES = 2000


@dataclass(frozen=True)
class Label:
    """A labeled line: its number, the whole record, the value and the metadata."""

    line: Line
    record: dict
    attribute: str
    task_type: str
    value: Any
    metadata: dict

    @property
    def source(self) -> str | None:
        return self.record.get("source-ref", self.record.get("source"))


def pick_attribute(url: str, task_types: Iterable[str], label_attribute: str | None) -> str:
    """The attribute to convert: the one named, else the only one of a wanted type in the first lines."""
    if label_attribute:
        return label_attribute
    wanted = {get_task_type(t).name for t in task_types}
    found: dict[str, str] = {}
    for i, line in enumerate(read_lines(url)):
        if i >= SCAN_LINES:
            break
        if line.is_blank:
            continue
        try:
            rec = line.record()
        except ManifestError:
            continue
        for key, meta in rec.items():
            tt = task_type_of_metadata(meta) if key.endswith(METADATA) else None
            if tt is not None and tt.name in wanted:
                found.setdefault(key[: -len(METADATA)], tt.name)
    if len(found) == 1:
        return next(iter(found))
    if not found:
        raise UsageError(f"{url}: no label attribute of type {' or '.join(sorted(wanted))} in the first "
                         f"{SCAN_LINES} lines; name one with --label-attribute")
    raise UsageError(f"{url} holds several label attributes ({', '.join(sorted(found))}); "
                     "choose one with --label-attribute")


def labeled_metadata(rec: dict, attribute: str) -> dict | None:
    """The attribute's metadata when the line holds a label for it; None when a job would still
    have to label it (``jobs.selection.needs_label``) or the metadata is not an object."""
    meta = rec.get(attribute + METADATA)
    if needs_label(rec, attribute) or not isinstance(meta, dict):
        return None
    return meta


def iter_labels(url: str, attribute: str) -> Iterator[tuple[Line, Label | None]]:
    """Every line, with its label of ``attribute`` or None (blank, unlabeled or failed)."""
    for line in read_lines(url):
        if line.is_blank:
            yield line, None
            continue
        rec = line.record()
        meta = labeled_metadata(rec, attribute)
        if meta is None:
            yield line, None
            continue
        tt = task_type_of_metadata(meta)
        if tt is None:
            raise ManifestError(f"metadata declares no Ground Truth type ({meta.get('type')!r})",
                                line=line.number, key=attribute + METADATA, rule="metadata-type")
        yield line, Label(line, rec, attribute, tt.name, rec[attribute], meta)


def job_metadata(labeled: Labeled, task_type: str, *, job_name: str, human_annotated: str) -> dict:
    """Type-specific metadata plus the fields every Ground Truth label carries, in Ground Truth's order."""
    return order_metadata(task_type, {**labeled.metadata, **common_metadata(
        task_type, job_name, human_annotated=human_annotated)}, labeled.metadata_order)


def manifest_line(source_ref: str, attribute: str, labeled: Labeled, task_type: str, *, job_name: str,
                  human_annotated: str, extra: dict | None = None) -> bytes:
    rec = {"source-ref": source_ref, **(extra or {}), attribute: labeled.value,
           attribute + METADATA: job_metadata(labeled, task_type, job_name=job_name, human_annotated=human_annotated)}
    return gt_json(rec) + b"\n"
