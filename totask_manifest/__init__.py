"""totask-manifest: pre-annotate labeling tasks through Ground Truth style augmented manifests.

The public API is what this module exports (``__all__``); everything else is internal and may
change. Users import from here::

    from totask_manifest import JobConfig, annotate, validate_manifest

Every name but the errors is loaded on first use (module ``__getattr__``), so ``import
totask_manifest`` stays cheap: the CLI, a Synapse plugin and a worker process pay only for what
they touch.
"""

from __future__ import annotations

from . import _startup  # noqa: F401  (first: a Ctrl-C while the command loads exits quietly)
from .errors import (
    FatalSynapseError,
    FetchError,
    InvalidInputError,
    JobError,
    LabelAttributeError,
    ManifestError,
    NotAJobError,
    StorageError,
    SynapseError,
    TotaskError,
    UsageError,
)

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: the import stays this cheap

__version__ = "0.1.0"

#: public name -> the internal module that defines it (loaded on first access)
_LAZY: dict[str, str] = {
    # jobs
    "annotate": "api", "resume": "api", "chain": "api", "clone": "api", "status": "api",
    "JobConfig": "jobs.config", "JobResult": "jobs.config",
    # annotators and what they return
    "Annotator": "annotators.base", "BatchAnnotator": "annotators.base", "register_annotator": "annotators.base",
    "Options": "options", "option": "options", "get_engine": "engines.base",
    "Item": "outcomes", "Labeled": "outcomes", "Failed": "outcomes", "Routed": "outcomes",
    "Outcome": "outcomes",
    # the line layer
    "read_lines": "manifest.io", "write_lines": "manifest.io",
    "DELETE": "manifest.line", "Line": "manifest.line",
    "check_label_attribute": "manifest.naming", "label_attribute_violations": "manifest.naming",
    "TASK_TYPES": "task_types", "get_task_type": "task_types",
    # checking, reading and converting manifests
    "validate_manifest": "manifest.validate", "check_label": "manifest.validate",
    "ValidationReport": "manifest.validate", "Problem": "manifest.validate",
    "manifest_stats": "analytics.stats", "ManifestStats": "analytics.stats",
    "convert": "analytics.convert", "ConvertResult": "analytics.convert",
    "write_report": "analytics.report", "ReportResult": "analytics.report",
    "evaluate_manifest": "analytics.evaluate", "Evaluation": "analytics.evaluate",
    "labeled_only": "analytics.labeled_only", "LabeledOnly": "analytics.labeled_only",
    # Synapse
    "export_tasks": "synapse.export", "ExportResult": "synapse.export",
    "apply_job": "synapse.apply", "ApplyReport": "synapse.apply",
    "rollback_job": "synapse.rollback", "RollbackReport": "synapse.rollback",
    "ToTaskAction": "to_task.action",
}

#: the errors above, then every name of ``_LAZY``; a test holds the two together
__all__ = [
    "DELETE",
    "TASK_TYPES",
    "Annotator",
    "ApplyReport",
    "BatchAnnotator",
    "ConvertResult",
    "Evaluation",
    "ExportResult",
    "Failed",
    "FatalSynapseError",
    "FetchError",
    "InvalidInputError",
    "Item",
    "JobConfig",
    "JobError",
    "JobResult",
    "LabelAttributeError",
    "Labeled",
    "LabeledOnly",
    "Line",
    "ManifestError",
    "ManifestStats",
    "NotAJobError",
    "Options",
    "Outcome",
    "Problem",
    "ReportResult",
    "RollbackReport",
    "Routed",
    "StorageError",
    "SynapseError",
    "ToTaskAction",
    "TotaskError",
    "UsageError",
    "ValidationReport",
    "annotate",
    "apply_job",
    "chain",
    "check_label",
    "check_label_attribute",
    "clone",
    "convert",
    "evaluate_manifest",
    "export_tasks",
    "get_engine",
    "get_task_type",
    "label_attribute_violations",
    "labeled_only",
    "manifest_stats",
    "option",
    "read_lines",
    "register_annotator",
    "resume",
    "rollback_job",
    "status",
    "validate_manifest",
    "write_lines",
    "write_report",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # the next access is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


if TYPE_CHECKING:  # what type checkers and editors see; at run time ``__getattr__`` loads these
    from typing import Any

    from .analytics.convert import ConvertResult, convert
    from .analytics.evaluate import Evaluation, evaluate_manifest
    from .analytics.labeled_only import LabeledOnly, labeled_only
    from .analytics.report import ReportResult, write_report
    from .analytics.stats import ManifestStats, manifest_stats
    from .annotators.base import Annotator, BatchAnnotator, register_annotator
    from .api import annotate, chain, clone, resume, status
    from .engines.base import get_engine
    from .jobs.config import JobConfig, JobResult
    from .manifest.io import read_lines, write_lines
    from .manifest.line import DELETE, Line
    from .manifest.naming import check_label_attribute, label_attribute_violations
    from .manifest.validate import Problem, ValidationReport, check_label, validate_manifest
    from .options import Options, option
    from .outcomes import Failed, Item, Labeled, Outcome, Routed
    from .synapse.apply import ApplyReport, apply_job
    from .synapse.export import ExportResult, export_tasks
    from .synapse.rollback import RollbackReport, rollback_job
    from .task_types import TASK_TYPES, get_task_type
    from .to_task.action import ToTaskAction
