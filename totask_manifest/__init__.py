"""totask-manifest: pre-annotate labeling tasks through Ground Truth style augmented manifests.

The public API is what this module exports; everything else is internal and may change.
"""

from . import _startup  # noqa: F401  (first: a Ctrl-C while the command loads exits quietly)
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


def __getattr__(name: str):
    """``ToTaskAction`` loads the Synapse client stack on first use, so ``import totask_manifest`` stays light."""
    if name == "ToTaskAction":
        from .synapse.action import ToTaskAction

        return ToTaskAction
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ += ["ToTaskAction"]
