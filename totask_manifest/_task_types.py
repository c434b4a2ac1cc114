"""Ground Truth task types, named by their ``type`` string without the ``groundtruth/`` prefix.

One table drives the naming rules (which types need ``-ref``), the schema lookup and the
metadata each type carries, so adding a type is a row here and a schema file, nothing else.
"""

from __future__ import annotations

import datetime as dt
import functools
import time
from dataclasses import dataclass

from ._errors import UsageError

GT_PREFIX = "groundtruth/"
#: built-in 2D Ground Truth jobs write ``job-name`` as this prefix plus the lower-cased job name;
#: custom workflows and 3D point cloud jobs write the lower-cased name alone (``TaskType.bare_job_name``)
JOB_NAME_PREFIX = "labeling-job/"


# The key order Ground Truth writes each type's metadata in, read from the newest real output of
# that type in shared/gt-manifests (consumers that read fields by position depend on it):
#  - bounding boxes 2022-2025 (yolov5 sample, 1to100_Korean), image semantic segmentation 2022
#    (lookout-for-vision): the type's own keys, then type, human-annotated, creation-date, job-name;
#  - classification, multi-label, NER: only 2019-2020 output exists; it is Python 2 dict order
#    (the same for every line of a key set), kept as observed; image multi-label has the key set
#    and documented order of text multi-label; video clip classification has no own output and
#    is documented as classification's;
#  - video frame jobs 2020 (two files agree with the documentation), 3D point cloud 2020;
#  - custom workflows 2022 (legal-entity-extraction);
#  - label verification: no output found; the order of the documentation's example.
_NEW = ("type", "human-annotated", "creation-date", "job-name")
_CLASSIFICATION = ("confidence", "job-name", "class-name", "human-annotated", "creation-date", "type")
_MULTILABEL = ("job-name", "class-map", "human-annotated", "creation-date", "confidence-map", "type")
_VIDEO = ("class-map", "job-name", "human-annotated", "creation-date", "type")
_BOXES = ("objects", "class-map", *_NEW)


@dataclass(frozen=True)
class TaskType:
    name: str
    #: the label value is a URL to a file the job wrote (mask, SeqLabel.json, .zlib), so the
    #: attribute must end in ``-ref``
    writes_reference: bool
    #: the schema file (in ``schemas/``) that checks ``{"label": value, "metadata": {...}}``
    schema: str
    #: data objects come from ``source`` (text) rather than ``source-ref``
    text_source: bool = False
    description: str = ""
    #: the order Ground Truth writes this type's ``-metadata`` keys in (sources above ``_NEW``)
    metadata_order: tuple[str, ...] = ()
    #: ``job-name`` is the lower-cased job name without ``JOB_NAME_PREFIX``: what real custom
    #: (legal-entity-extraction) and 3D point cloud (immersion day) output writes, and the
    #: documentation's examples of both
    bare_job_name: bool = False

    @property
    def gt_type(self) -> str:
        return GT_PREFIX + self.name


_TYPES = [
    TaskType("image-classification", False, "image-classification", description="single-label image classification",
             metadata_order=_CLASSIFICATION),
    TaskType("image-classification-multilabel", False, "image-classification-multilabel",
             description="multi-label image classification",
             metadata_order=_MULTILABEL),
    TaskType("object-detection", False, "object-detection", description="bounding boxes (and their adjustment)",
             metadata_order=(*_BOXES, "adjustment-status")),
    TaskType("semantic-segmentation", True, "semantic-segmentation",
             description="image semantic segmentation (and its adjustment); PNG mask by reference",
             metadata_order=("internal-color-map", *_NEW, "adjustment-status")),
    TaskType("label-verification", False, "label-verification", description="label verification",
             metadata_order=("class-name", "confidence", "type", "job-name", "human-annotated", "creation-date",
                             "worker-feedback")),
    TaskType("text-classification", False, "text-classification", text_source=True,
             description="single-label text classification",
             metadata_order=_CLASSIFICATION),
    TaskType("text-classification-multilabel", False, "text-classification-multilabel", text_source=True,
             description="multi-label text classification",
             metadata_order=_MULTILABEL),
    TaskType("text-span", False, "text-span", text_source=True, description="named entity recognition",
             metadata_order=("entities", "job-name", "type", "creation-date", "human-annotated")),
    TaskType("video-object-detection", True, "video-object-detection",
             description="video frame object detection; SeqLabel.json by reference",
             metadata_order=(*_VIDEO, "adjustment-status")),
    TaskType("video-object-tracking", True, "video-object-tracking",
             description="video frame object tracking; SeqLabel.json by reference",
             metadata_order=(*_VIDEO, "adjustment-status")),
    TaskType("video-classification", False, "video-classification", description="video clip classification",
             metadata_order=_CLASSIFICATION),
    TaskType("point_cloud_object_detection", False, "point_cloud_object_detection",
             description="3D point cloud object detection (inline cuboids)",
             metadata_order=(*_BOXES, "adjustment-status", "dataset-object-attributes"), bare_job_name=True),
    TaskType("point_cloud_object_tracking", True, "point_cloud_object_tracking",
             description="3D point cloud object tracking; SeqLabel.json by reference",
             metadata_order=(*_BOXES, "adjustment-status"), bare_job_name=True),
    TaskType("point_cloud_single_frame_semantic_segmentation", True,
             "point_cloud_single_frame_semantic_segmentation",
             description="3D point cloud semantic segmentation; .zlib by reference",
             metadata_order=("color-map", "type", "human-annotated", "job-name", "creation-date", "adjustment-status",
                             "dataset-object-attributes"), bare_job_name=True),
    TaskType("custom", False, "custom", description="custom workflow (any label value)",
             metadata_order=("type", "job-name", "human-annotated", "creation-date"), bare_job_name=True),
]

TASK_TYPES: dict[str, TaskType] = {t.name: t for t in _TYPES}


def get_task_type(name: str) -> TaskType:
    """Look a task type up by name; ``groundtruth/``-prefixed names are accepted too."""
    key = name[len(GT_PREFIX):] if name.startswith(GT_PREFIX) else name
    try:
        return TASK_TYPES[key]
    except KeyError:
        known = ", ".join(sorted(TASK_TYPES))
        raise UsageError(f"unknown task type {name!r}; known task types: {known}") from None


def task_type_of_metadata(metadata: object) -> TaskType | None:
    """The task type a ``-metadata`` object declares, or None when it declares none we know.

    Ground Truth's own custom output spells it ``groundTruth/custom`` in one doc example, so the
    comparison ignores case.
    """
    if not isinstance(metadata, dict):
        return None
    value = metadata.get("type")
    if not isinstance(value, str) or not value.lower().startswith(GT_PREFIX):
        return None
    key = value[len(GT_PREFIX):]
    return TASK_TYPES.get(key) or TASK_TYPES.get(key.lower())


def creation_date() -> str:
    """Ground Truth's observed ``creation-date``: ``YYYY-MM-DDTHH:MM:SS.ffffff``, UTC, no zone suffix.

    A job writes one per line, so the text up to the second is kept while the second lasts
    (``strftime`` cost more than the rest of a line's metadata)."""
    global _SECOND
    second, micro = divmod(time.time_ns() // 1000, 1_000_000)
    cached = _SECOND
    if cached[0] != second:
        cached = _SECOND = (second, dt.datetime.fromtimestamp(second, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S."))
    return f"{cached[1]}{micro:06d}"


#: (the last second ``creation_date`` wrote, its text), replaced whole (threads may share it)
_SECOND: tuple[int, str] = (-1, "")


def order_metadata(task_type: TaskType | str, metadata: dict, written: tuple[str, ...] = ()) -> dict:
    """``metadata`` with its keys in the order Ground Truth writes them.

    ``written`` is the key order of the Ground Truth metadata a label was read from: when it is a
    whole metadata object (it names ``type``) that order wins, so a label copied from Ground Truth
    output is written back exactly as it was; keys it lacks follow in the type's order. Otherwise
    the type's observed order is used; keys Ground Truth does not write (``review-status``...)
    come last, in the order given.
    """
    tt = get_task_type(task_type) if isinstance(task_type, str) else task_type
    return {k: metadata[k] for k in _key_order(tt.metadata_order, tuple(metadata), tuple(written))}


@functools.lru_cache(maxsize=512)
def _key_order(type_order: tuple[str, ...], given: tuple[str, ...], written: tuple[str, ...]) -> tuple[str, ...]:
    """``order_metadata``'s key order; a job's lines share a handful of key sets, so it is
    worked out once per set rather than with list scans on every line."""
    first = written if "type" in written else ()
    keys = [k for k in first if k in given]
    keys += [k for k in type_order if k in given and k not in keys]
    keys += [k for k in given if k not in keys]
    return tuple(keys)


def written_job_name(task_type: TaskType | str | None, job_name: str) -> str:
    """The ``job-name`` Ground Truth writes in the labels of a job of ``task_type`` named
    ``job_name``: ``labeling-job/<lower-cased name>`` for the built-in 2D types, the lower-cased
    name alone for custom and 3D point cloud types (``TaskType.bare_job_name``). A type that
    cannot be known (None, an unknown name) keeps the prefixed form every job wrote before."""
    if isinstance(task_type, str):
        key = task_type[len(GT_PREFIX):] if task_type.startswith(GT_PREFIX) else task_type
        task_type = TASK_TYPES.get(key)
    bare = task_type is not None and task_type.bare_job_name
    return job_name.lower() if bare else JOB_NAME_PREFIX + job_name.lower()


def legacy_job_name(job_name: str) -> str:
    """The ``job-name`` every job wrote, whatever its type, before it followed the type: what a
    job an older version started (its job.json records no form) goes on writing."""
    return JOB_NAME_PREFIX + job_name.lower()


def common_metadata(task_type: TaskType | str, job_name: str, *, human_annotated: str = "no",
                    written_name: str | None = None) -> dict[str, str]:
    """The fields every label's ``-metadata`` carries besides the type-specific ones.

    ``job-name`` is ``written_name`` when given (a job's recorded form, the same on each of its
    lines whatever type a line's label declares), else ``written_job_name`` of this type."""
    tt = get_task_type(task_type) if isinstance(task_type, str) else task_type
    return {
        "type": tt.gt_type,
        "job-name": written_job_name(tt, job_name) if written_name is None else written_name,
        "human-annotated": human_annotated,
        "creation-date": creation_date(),
    }
