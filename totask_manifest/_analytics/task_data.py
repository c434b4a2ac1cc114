"""Synapse task data per manifest line (DM schema v1 or the documented ``objects`` shape), and back.

Each output line is ``{"line", "source-ref", "task_id", "task_type", "image_size", "class_map",
"human-annotated", "data"}``: ``data`` is exactly what ``apply`` would PUT for that task; the other
keys let the file convert back (Synapse task data carries neither the image size, the data
object, class ids nor who labeled it: Ground Truth writes a confidence on every human
classification, so the file-wide rule alone read people's labels back as a machine's).
DM v1 has no confidence field: a ``confidence`` classification attribute carries it.

A line holding a document kept as it is (custom type naming its format) is written unchanged
when its format is the one asked for; another format is refused (it would have to be rebuilt
through a Ground Truth label). Reading back, a line whose task type is known (``task_type`` or
``--task-type``) becomes a Ground Truth label of that type, refused when the conversion would
drop something unless ``allow_drop`` (then the metadata records ``dropped``); a line that names
no task type is kept as it is, as a custom label naming its format.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Iterator
from typing import Any

import orjson

from .._errors import ManifestError, json_text
from .._formats.detect import to_label
from .._formats.model import ClassNames, FormatError
from .._formats.native import native_format, native_label
from .._formats.synapse import (
    SUPPORTED,
    dm_v1_to_gt,
    gt_to_dm_v1,
    gt_to_objects,
    objects_to_gt,
    unchosen_scores,
)
from .._manifest.io import read_lines, write_lines
from .._outcomes import Labeled
from .._task_types import get_task_type
from .coco_left_out import CocoKeysLeftOut
from .keys_left_out import KeysLeftOut
from .labels import (
    NOTES,
    PastImage,
    iter_labels,
    manifest_line,
    no_images,
    not_held,
    nothing_to_convert,
    on_line,
    pick_attribute,
)

WRITERS: dict[str, Callable] = {"dm-schema-v1": functools.partial(gt_to_dm_v1, confidence_attribute="confidence"),
                                "synapse-objects": gt_to_objects}
READERS: dict[str, Callable] = {"dm-schema-v1": dm_v1_to_gt, "synapse-objects": objects_to_gt}
#: what either format holds, for the error on a label of another type
_HOLDS = f"{', '.join(SUPPORTED[:-1])} and {SUPPORTED[-1]} labels and documents kept as they are"


def _has_confidence(value: object) -> bool:
    """Whether a label or document holds a ``confidence`` key at any depth (Ground Truth metadata,
    an ``objects`` document's ``properties``, a DM v1 ``confidence`` classification attribute)."""
    if isinstance(value, dict):
        return "confidence" in value or any(_has_confidence(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_confidence(v) for v in value)
    return False


def _class_map(task_type: str, value: object, metadata: dict) -> dict[str, str]:
    """Ids for the names in ``data`` (DM v1 carries names only), so the way back keeps the ids."""
    if task_type == "image-classification":
        return {str(value): metadata.get("class-name", "")}
    return dict(metadata.get("class-map") or {})


def _human(metadata: dict) -> dict[str, str]:
    """The label's ``human-annotated``, for the way back (none when the label says neither)."""
    said = metadata.get("human-annotated")
    return {"human-annotated": said} if said in ("yes", "no") else {}


def manifest_to_task_data(src: str, dst: str, fmt: str, *, label_attribute: str | None = None,
                          allow_drop: bool = False) -> dict[str, int]:
    """Write one line of task data per labeled line, as the manifest is read: the lines are not
    gathered first (they took about 560 bytes a line, 1.3 GB peak RSS at 2,000,000 box lines).
    The output is written atomically: an error part way leaves nothing. ``allow_drop``: a
    multi-label's scores of classes it does not choose are left out, counted in ``dropped``."""
    attr = pick_attribute(src, (*SUPPORTED, "custom"), label_attribute, target=(fmt, _HOLDS))
    counts: dict[str, Any] = {"lines": 0, "skipped": 0}
    past, coco_keys = PastImage(), CocoKeysLeftOut(fmt)
    others = KeysLeftOut(fmt, attr, frozenset({"synapse"}))  # its task id is written
    lines = _task_data_lines(src, attr, functools.partial(WRITERS[fmt], allow_drop=allow_drop), fmt, counts,
                             past, (coco_keys, others))
    first = next(lines)  # raises before anything is created when no line holds a label
    write_lines(dst, itertools.chain([first], lines))
    coco_keys.count(counts)
    others.count(counts)
    if notes := past.notes() + coco_keys.notes() + others.notes():
        counts[NOTES] = notes
    return counts


def _task_data_lines(src: str, attr: str, write: Callable, fmt: str, counts: dict[str, Any],
                     past: PastImage, left_out: tuple[CocoKeysLeftOut, KeysLeftOut]) -> Iterator[bytes]:
    """The output lines of ``manifest_to_task_data``, one at a time; ``counts`` is kept up to date,
    ``past`` counts the boxes that reach past their image, ``left_out`` the lines whose COCO
    bookkeeping, and whose other keys, are left out.
    Raises ``nothing_to_convert`` at the end when no line was written (inside the writer: nothing appears)."""
    for line, label in iter_labels(src, attr):
        kept = native_format(label.metadata) if label is not None else None
        if kept is not None:
            if kept != fmt:
                raise ManifestError(f"the line holds a {kept} document, kept as it is; writing it as {fmt} would "
                                    "rebuild it through a Ground Truth label: convert to "
                                    f"{kept} instead", line=line.number, key=attr, rule="convert-native")
            syn = label.record.get("synapse")
            counts["lines"] += 1
            # the document travels whole, with the line's image_size; the line's other keys do not
            left_out[1].add(line.number, {k: v for k, v in label.record.items() if k != "image_size"}, None)
            yield orjson.dumps({"line": line.number, label.source_key: label.source,
                                "task_id": syn.get("task_id") if isinstance(syn, dict) else None,
                                "image_size": label.record.get("image_size"),
                                **_human(label.metadata), "data": label.value}) + b"\n"
            continue
        if label is None:
            counts["skipped"] += not line.is_blank
            left_out[0].unlabeled(line)
            continue
        if label.task_type not in SUPPORTED:  # as COCO and YOLO say it, not as "no line holds a label"
            raise not_held(fmt, _HOLDS, label, "task-data-type")
        syn = label.record.get("synapse")
        left_out[0].add(line.number, label.record, label.metadata)
        left_out[1].add(line.number, label.record, label.metadata, label.value)
        with on_line(line.number, label.attribute):
            data = write(label.task_type, label.value, label.metadata)  # reads (and checks) the label first
        if unchosen := unchosen_scores(label.task_type, label.value, label.metadata):  # allowed, or refused above
            counts["dropped"] = counts.get("dropped", 0) + len(unchosen)
        size = label.value.get("image_size", [{}])[0] if isinstance(label.value, dict) else {}
        if label.task_type == "object-detection":
            past.add(line.number, ((b["left"], b["top"], b["width"], b["height"]) for b in label.value["annotations"]),
                     size["width"], size["height"])
        doc = {
            "line": line.number,
            label.source_key: label.source,
            "task_id": syn.get("task_id") if isinstance(syn, dict) else None,
            "task_type": label.task_type,
            "image_size": [size["width"], size["height"], size.get("depth", 3)] if size else None,
            "class_map": _class_map(label.task_type, label.value, label.metadata),
            **_human(label.metadata),
            "data": data,
        }
        counts["lines"] += 1
        yield orjson.dumps(doc) + b"\n"
    if not counts["lines"]:
        raise nothing_to_convert(src, attr, counts["skipped"])


def task_data_to_manifest(
    src: str,
    dst: str,
    fmt: str,
    *,
    task_type: str | None = None,
    label_attribute: str | None = None,
    class_names: ClassNames | None = None,
    job_name: str = "converted",
    human_annotated: str | None = None,
    allow_drop: bool = False,
) -> dict[str, int]:
    """Lines as written by ``manifest_to_task_data`` (or any JSON Lines with ``data`` and ``source-ref``).
    ``human_annotated`` defaults to the line's own ``human-annotated`` (this tool's export writes
    it, as COCO's keeps it per image), else as COCO's and YOLO's imports do: ``no`` when the file's
    labels carry a confidence anywhere, else ``yes``. Nothing is gathered in memory (the labels of every
    line were: about 2.7 KB a two-box line): without ``human_annotated`` a first read looks for a
    confidence, stopping at the first, and the second writes the lines as they are converted."""
    attr = label_attribute or "label"
    read = functools.partial(_imported, src, fmt, task_type, class_names, allow_drop)
    guessed = None  # for lines that do not say it themselves (this tool's export says it on each)
    if human_annotated is None:
        scored = any(_has_confidence(labeled.value) or _has_confidence(labeled.metadata)
                     for _, labeled, _, _, _ in read())
        guessed = "no" if scored else "yes"
    counts = {"lines": 0, "skipped": 0}
    dropped = 0

    def lines() -> Iterator[bytes]:
        nonlocal dropped
        for (source, key), labeled, tt, extra, said in read():
            counts["lines"] += 1
            dropped += bool(tt != "custom" and labeled.metadata.get("dropped"))
            yield manifest_line(source, attr, labeled, tt, job_name=job_name,
                                human_annotated=human_annotated or said or guessed, extra=extra, source_key=key)

    out = lines()
    first = next(out, None)
    if first is None:  # an empty manifest would pass for converted task data, as for an empty COCO document
        raise no_images(src)
    write_lines(dst, itertools.chain([first], out))
    if dropped:
        counts["dropped"] = dropped
    return counts


def _imported(src: str, fmt: str, task_type: str | None, class_names: ClassNames | None,
              allow_drop: bool) -> Iterator[tuple[tuple[str, str], Labeled, str, dict | None, str | None]]:
    """``((data object, its key), label, task type, extra keys, its human-annotated)`` for each line
    of task data (the key is ``source`` for inline text, as the export writes it),
    one at a time; the last is None where the line does not say it."""
    for line in read_lines(src):
        if line.is_blank:
            continue
        rec = line.record()
        if "data" not in rec:
            raise FormatError("line needs a 'data' object", fmt=fmt, key="data", line=line.number)
        tt = task_type or rec.get("task_type")
        if not tt or get_task_type(tt).name == "custom":  # no task type named: the document as it is
            labeled = native_label(rec["data"], fmt)
            tt = "custom"
        else:
            tt = get_task_type(tt).name
            try:
                names = class_names if class_names is not None else rec.get("class_map")
                labeled = to_label(rec["data"], fmt, tt, image_size=rec.get("image_size"), class_names=names,
                                   allow_drop=allow_drop)
            except FormatError as exc:
                raise FormatError(exc.detail, fmt=fmt, key=exc.key, line=line.number) from None
        extra = {"synapse": {"task_id": rec["task_id"]}} if rec.get("task_id") is not None else None
        said = rec.get("human-annotated")
        key = _data_key(rec, fmt, line.number)
        yield (rec[key], key), labeled, tt, extra, said if said in ("yes", "no") else None


def _data_key(rec: dict, fmt: str, number: int) -> str:
    """The key of the line's one data object: ``source-ref``, or ``source`` for inline text, as the
    export writes it. An empty or missing one became a manifest line ``validate`` refuses (exit 0),
    and a line with both lost its text unsaid: each is refused naming the line."""
    held = [k for k in ("source-ref", "source") if k in rec]
    if not held:
        raise FormatError("the line names no data object: give 'source-ref' (or 'source' for inline text)",
                          fmt=fmt, key="source-ref", line=number)
    if len(held) == 2:
        raise FormatError("the line holds both 'source-ref' and 'source'; a manifest line names one data object",
                          fmt=fmt, key="source", line=number)
    key = held[0]
    if not isinstance(rec[key], str) or not rec[key].strip():
        raise FormatError(f"{key!r} must name the data object (a non-empty string), got {json_text(rec[key])}",
                          fmt=fmt, key=key, line=number)
    return key
