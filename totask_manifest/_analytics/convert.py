"""``convert``: a Ground Truth manifest to and from Parquet, COCO, YOLO and Synapse task data.

One side of every conversion is a manifest (``manifest`` names it); the other is looked up in
``EXPORTERS`` / ``IMPORTERS`` by format name, so a new format is two functions and two rows.
The input format is guessed from the path when ``--from`` is not given.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .. import _signals
from .._errors import StorageError, UsageError
from .._formats.class_names import read_class_names
from .._jobs.layout import check_job_name, refuse_output_in_job
from .._manifest.io import (
    NOTHING_TO_CONVERT,
    refuse_empty_path,
    refuse_no_data_object,
    refuse_not_an_attribute,
)
from .._manifest.naming import check_label_attribute
from .._stale_temporaries import remove_stale_temporaries
from .._storage import (
    exists,
    is_dir,
    is_local,
    redact_url,
    refuse_file_output,
    refuse_output_over_input,
    url_to_fs,
)
from . import FORMATS, MANIFEST
from .coco_dataset import coco_to_manifest, manifest_to_coco
from .labels import NOTES
from .parquet_io import manifest_to_parquet, parquet_to_manifest
from .task_data import manifest_to_task_data, task_data_to_manifest
from .yolo_dataset import manifest_to_yolo
from .yolo_import import yolo_to_manifest
from .yolo_output import refuse_yolo_output


@dataclass
class ConvertResult:
    source: str
    output: str
    from_format: str
    to_format: str
    counts: dict[str, int] = field(default_factory=dict)
    #: what the conversion did not carry, one line each (a COCO document's 'info' and 'licenses')
    notes: list[str] = field(default_factory=list)


#: the count a conversion reports for lines that are not JSON objects (the CLI then exits 1)
NOT_JSON_OBJECTS = "lines that are not JSON objects"


def _parquet_out(src: str, dst: str) -> dict[str, int]:
    unreadable: list[int] = []
    counts = {"lines": manifest_to_parquet(src, dst, unreadable)}
    if unreadable:  # kept as raw bytes, but said: a truncated manifest is invalid data
        counts[NOT_JSON_OBJECTS] = len(unreadable)
        counts["first"] = unreadable[0]
    return counts


def _parquet_in(src: str, dst: str) -> dict[str, int]:
    return {"lines": parquet_to_manifest(src, dst)}


def _only(fn: Callable, *names: str) -> Callable:
    """Pass a converter only the options it takes; ``options`` names them (``convert`` refuses
    the others: a flag the conversion ignores would read as applied)."""

    @functools.wraps(fn)
    def call(src: str, dst: str, **opts: Any) -> dict[str, int]:
        return fn(src, dst, **{k: v for k, v in opts.items() if k in names and v is not None})

    call.options = names  # type: ignore[attr-defined]
    return call


#: manifest -> format
EXPORTERS: dict[str, Callable[..., dict[str, int]]] = {
    "parquet": _only(_parquet_out),  # every line with all its attributes: no option applies
    "coco": _only(manifest_to_coco, "label_attribute", "allow_drop", "image_root"),
    "yolo": _only(manifest_to_yolo, "label_attribute", "allow_drop", "confidence"),
    "dm-schema-v1": _only(functools.partial(manifest_to_task_data, fmt="dm-schema-v1"), "label_attribute",
                       "allow_drop"),
    "synapse-objects": _only(functools.partial(manifest_to_task_data, fmt="synapse-objects"), "label_attribute",
                       "allow_drop"),
}
#: format -> manifest
IMPORTERS: dict[str, Callable[..., dict[str, int]]] = {
    "parquet": _only(_parquet_in),  # the lines as they were: no option applies
    "coco": _only(coco_to_manifest, "task_type", "label_attribute", "class_names", "job_name", "image_root",
                  "human_annotated", "allow_drop"),
    "yolo": _only(yolo_to_manifest, "class_names", "label_attribute", "job_name", "image_root", "human_annotated"),
    "dm-schema-v1": _only(functools.partial(task_data_to_manifest, fmt="dm-schema-v1"), "task_type",
                          "label_attribute", "class_names", "job_name", "human_annotated", "allow_drop"),
    "synapse-objects": _only(functools.partial(task_data_to_manifest, fmt="synapse-objects"), "task_type",
                             "label_attribute", "class_names", "job_name", "human_annotated", "allow_drop"),
}


def guess_format(url: str) -> str:
    """``.parquet`` -> parquet, ``.json`` -> coco, a folder -> yolo, ``*.dm.jsonl``/``*.objects.jsonl``
    -> Synapse task data, anything else -> manifest."""
    low = url.lower().rstrip("/")
    if low.endswith((".parquet", ".pq")):
        return "parquet"
    if low.endswith(".json"):
        return "coco"
    if low.endswith((".dm.jsonl", ".dm-schema-v1.jsonl")):
        return "dm-schema-v1"
    if low.endswith((".objects.jsonl", ".synapse-objects.jsonl")):
        return "synapse-objects"
    if is_dir(url):
        return "yolo"
    return MANIFEST


#: what a YOLO export replaces at the top of its folder (``labels/`` is replaced whole)
_YOLO_TOP = ("index.jsonl", "images.txt", "classes.txt", "data.yaml")


def _refuse_yolo_file_over_other_side(src: str, dst: str, *, folder_is_src: bool) -> None:
    """Output over input one level down: an import's manifest written over a file of the YOLO
    folder it reads (its ``index.jsonl``, a names file, a label file), or an export whose input
    manifest is a file the export replaces in its folder (``index.jsonl``, ``labels/...``). The
    commit would replace what the other side is. Local paths only (S3 exports are staged apart)."""
    folder, other = (src, dst) if folder_is_src else (dst, src)
    (fs_folder, folder_path), (fs_other, other_path) = url_to_fs(folder), url_to_fs(other)
    if not (is_local(fs_folder) and is_local(fs_other)):
        return
    root, path = os.path.realpath(folder_path), os.path.realpath(other_path)
    rel = os.path.relpath(path, root)
    if rel.startswith(os.pardir) or rel == ".":
        return
    first = rel.split(os.sep, 1)[0]
    if folder_is_src:
        hit = os.path.exists(path) or first in ("labels", "images")
    else:
        hit = rel in _YOLO_TOP or first == "labels"
    if hit and folder_is_src:
        raise StorageError(f"the output {redact_url(dst)} is a file of the YOLO folder {redact_url(src)} it is "
                           "read from: writing it would replace part of the input; give a path outside the folder")
    if hit:
        raise StorageError(f"the input {redact_url(src)} is a file the YOLO export to {redact_url(dst)} replaces: "
                           "writing it would replace the input; move it out of the folder first")


def convert(
    src: str,
    dst: str,
    *,
    to: str,
    from_format: str | None = None,
    label_attribute: str | None = None,
    class_names: list[str] | str | None = None,
    task_type: str | None = None,
    job_name: str | None = None,
    image_root: str | None = None,
    human_annotated: str | None = None,
    allow_drop: bool = False,
    confidence: bool = False,
) -> ConvertResult:
    """Convert ``src`` to ``dst``; one of the two formats must be ``manifest``.

    ``class_names`` is a list or the URL of a names file (one per line, or YAML ``names``).
    ``job_name``, ``image_root`` and ``human_annotated`` shape the lines of an imported manifest.
    A conversion that would drop something (a polygon into a bounding-box label, a second media,
    rotation, attributes) is refused naming the line and what would be lost, unless
    ``allow_drop``; the counts then say how many things (exports) or lines (imports) dropped some.
    ``confidence`` adds YOLO's optional 6th column (trainers read 5).
    """
    src, dst = os.fspath(src), os.fspath(dst)  # a pathlib.Path too, as validate_manifest takes
    refuse_empty_path(src, "input (src)")
    refuse_empty_path(dst, "output (dst)")
    refuse_output_over_input(src, dst)
    refuse_output_in_job(dst)
    if to != "yolo":  # one file: before anything is read
        refuse_file_output(dst)
    else:  # a folder of files: its path, and what stands where they go
        refuse_yolo_output(dst)
    if to != "manifest":  # an export (an import's name is held to the naming rules)
        refuse_not_an_attribute(label_attribute)
    src_fmt = from_format or guess_format(src)
    for fmt in (src_fmt, to):
        if fmt not in FORMATS:
            raise UsageError(f"unknown format {fmt!r}; known formats: {', '.join(FORMATS)}")
    if confidence and to != "yolo":
        raise UsageError("--confidence is YOLO's 6th column: it goes with --to yolo")
    opts = {"label_attribute": label_attribute, "class_names": class_names, "task_type": task_type,
            "job_name": job_name, "image_root": image_root, "human_annotated": human_annotated,
            "allow_drop": allow_drop, "confidence": confidence or None}
    if src_fmt == MANIFEST and to == MANIFEST:
        if from_format is None and not exists(src):  # a mistyped YOLO folder read as a manifest: said as missing
            raise StorageError(f"no such file or folder: {redact_url(src)}")
        raise UsageError("both sides are manifests; nothing to convert")
    if src_fmt == MANIFEST:  # an export reads its manifest twice (the attribute, then the lines)
        _refuse_a_pipe(src)
    if to == MANIFEST:  # the lines an import writes follow the rules a job's lines follow
        if job_name is not None:
            check_job_name(job_name)
        if label_attribute is not None:
            check_label_attribute(label_attribute, task_type)
    if "yolo" in (src_fmt, to):
        _refuse_yolo_file_over_other_side(src, dst, folder_is_src=src_fmt == "yolo")
    if src_fmt == MANIFEST:
        converter = EXPORTERS[to]
    elif to == MANIFEST:
        converter = IMPORTERS[src_fmt]
    else:
        raise UsageError(f"convert {src_fmt} -> {to} through a manifest: one side must be 'manifest'")
    ignored = ["--" + name.replace("_", "-") for name, value in opts.items()
               if value is not None and value is not False and name not in converter.options]
    if ignored:
        raise UsageError(f"{', '.join(ignored)} {'does' if len(ignored) == 1 else 'do'} not apply to {src_fmt} -> {to}"
                         + ("; Parquet keeps every line as it is, with all its attributes" if "parquet" in (src_fmt, to) else ""))
    if isinstance(class_names, str):  # read only for a conversion that takes it (refused above)
        class_names = read_class_names(class_names)
        opts["class_names"] = class_names
    if src_fmt == MANIFEST:  # a file of no row (Parquet) or a refusal blaming the attribute: said as what it is
        refuse_no_data_object(src, needs=NOTHING_TO_CONVERT)
    # what a convert to the same place killed before left (kill -9): the writes are atomic, but a
    # killed process cannot remove its temporaries
    remove_stale_temporaries(dst, under=("labels",) if to == "yolo" else None)  # YOLO: OUT/*, OUT/labels/**
    counts = converter(src, dst, **opts)
    _signals.done("the output was written whole")  # a Ctrl-C from here: noted where the CLI asked (``_signals``)
    notes = counts.pop(NOTES, [])
    return ConvertResult(src, dst, src_fmt, to, counts, notes)


def _refuse_a_pipe(src: str) -> None:
    """A manifest given as a pipe (``convert <(cat out.manifest) ...``): the export read it once to
    find the label attribute, then found no line left, "no line holds a label", exit 1."""
    from .._manifest.ranges import refuse_pipe
    from .._storage import open_read

    with open_read(src) as f:
        refuse_pipe(f, src)
