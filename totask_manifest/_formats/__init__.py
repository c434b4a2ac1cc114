"""Converters between Ground Truth label values and other annotation formats, one image at a time.

Pure functions, no I/O: each reads a document (or text) and returns a
``Labeled(value, metadata)`` whose metadata holds only the type-specific fields; the job adds
``type``, ``job-name``, ``human-annotated`` and ``creation-date``. Every problem with a
document raises ``FormatError`` (both a ``ManifestError`` and a ``ValueError``).
"""

from .coco import coco_to_gt, gt_to_coco_image
from .detect import CONVERTERS, detect_input_format, input_formats, to_label
from .groundtruth import from_groundtruth, to_groundtruth
from .model import Box, ClassIndex, FormatError
from .synapse import dm_v1_to_gt, gt_to_dm_v1, gt_to_objects, objects_to_gt
from .yolo import gt_to_yolo, yolo_names, yolo_to_gt

__all__ = [
    "CONVERTERS",
    "Box",
    "ClassIndex",
    "FormatError",
    "coco_to_gt",
    "detect_input_format",
    "dm_v1_to_gt",
    "from_groundtruth",
    "gt_to_coco_image",
    "gt_to_dm_v1",
    "gt_to_objects",
    "gt_to_yolo",
    "input_formats",
    "objects_to_gt",
    "to_groundtruth",
    "to_label",
    "yolo_names",
    "yolo_to_gt",
]
