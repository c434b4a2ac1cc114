"""totask-manifest: pre-annotate labeling tasks through Ground Truth style augmented manifests.

The public API is what this module exports; everything else is internal and may change.
"""

from .errors import (
    FatalSynapseError,
    FetchError,
    JobError,
    LabelAttributeError,
    ManifestError,
    StorageError,
    SynapseError,
    TotaskError,
    UsageError,
)
from .manifest.io import read_lines, write_lines
from .manifest.line import DELETE, Line
from .manifest.naming import check_label_attribute, label_attribute_violations
from .task_types import TASK_TYPES, get_task_type

__version__ = "0.1.0"

__all__ = [
    "DELETE",
    "TASK_TYPES",
    "FatalSynapseError",
    "FetchError",
    "JobError",
    "LabelAttributeError",
    "Line",
    "ManifestError",
    "StorageError",
    "SynapseError",
    "TotaskError",
    "UsageError",
    "check_label_attribute",
    "get_task_type",
    "label_attribute_violations",
    "read_lines",
    "write_lines",
]
