"""Ground Truth task types, named by their ``type`` string without the ``groundtruth/`` prefix.

One table drives the naming rules (which types need ``-ref``), the schema lookup and the
metadata each type carries, so adding a type is a row here and a schema file, nothing else.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from .errors import UsageError

GT_PREFIX = "groundtruth/"
#: built-in Ground Truth jobs write ``job-name`` as this prefix plus the lower-cased job name
JOB_NAME_PREFIX = "labeling-job/"


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

    @property
    def gt_type(self) -> str:
        return GT_PREFIX + self.name


_TYPES = [
    TaskType("image-classification", False, "image-classification", description="single-label image classification"),
    TaskType("image-classification-multilabel", False, "image-classification-multilabel",
             description="multi-label image classification"),
    TaskType("object-detection", False, "object-detection", description="bounding boxes (and their adjustment)"),
    TaskType("semantic-segmentation", True, "semantic-segmentation",
             description="image semantic segmentation (and its adjustment); PNG mask by reference"),
    TaskType("label-verification", False, "label-verification", description="label verification"),
    TaskType("text-classification", False, "text-classification", text_source=True,
             description="single-label text classification"),
    TaskType("text-classification-multilabel", False, "text-classification-multilabel", text_source=True,
             description="multi-label text classification"),
    TaskType("text-span", False, "text-span", text_source=True, description="named entity recognition"),
    TaskType("video-object-detection", True, "video-object-detection",
             description="video frame object detection; SeqLabel.json by reference"),
    TaskType("video-object-tracking", True, "video-object-tracking",
             description="video frame object tracking; SeqLabel.json by reference"),
    TaskType("video-classification", False, "video-classification", description="video clip classification"),
    TaskType("point_cloud_object_detection", False, "point_cloud_object_detection",
             description="3D point cloud object detection (inline cuboids)"),
    TaskType("point_cloud_object_tracking", True, "point_cloud_object_tracking",
             description="3D point cloud object tracking; SeqLabel.json by reference"),
    TaskType("point_cloud_single_frame_semantic_segmentation", True,
             "point_cloud_single_frame_semantic_segmentation",
             description="3D point cloud semantic segmentation; .zlib by reference"),
    TaskType("custom", False, "custom", description="custom workflow (any label value)"),
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
    """Ground Truth's observed ``creation-date``: ``YYYY-MM-DDTHH:MM:SS.ffffff``, UTC, no zone suffix."""
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")


def common_metadata(task_type: TaskType | str, job_name: str, *, human_annotated: str = "no") -> dict[str, str]:
    """The fields every label's ``-metadata`` carries besides the type-specific ones."""
    tt = get_task_type(task_type) if isinstance(task_type, str) else task_type
    return {
        "type": tt.gt_type,
        "job-name": JOB_NAME_PREFIX + job_name.lower(),
        "human-annotated": human_annotated,
        "creation-date": creation_date(),
    }
