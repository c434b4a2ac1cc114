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
from ._errors import (
    FatalSynapseError,
    FetchError,
    InvalidInputError,
    JobBusyError,
    JobError,
    JobUnavailableError,
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
    "annotate": "_api", "resume": "_api", "chain": "_api", "clone": "_api", "status": "_api",
    "JobConfig": "_jobs.config", "JobResult": "_jobs.config",
    # annotators and what they return
    "Annotator": "_annotators.base", "BatchAnnotator": "_annotators.base", "register_annotator": "_annotators.base",
    "Options": "_options", "option": "_options", "get_engine": "_engines.base",
    "Item": "_outcomes", "Labeled": "_outcomes", "Failed": "_outcomes", "Routed": "_outcomes",
    "Outcome": "_outcomes",
    # the line layer
    "read_lines": "_manifest.io", "write_lines": "_manifest.io",
    "DELETE": "_manifest.line", "Line": "_manifest.line",
    "check_label_attribute": "_manifest.naming", "label_attribute_violations": "_manifest.naming",
    "TASK_TYPES": "_task_types", "get_task_type": "_task_types",
    # checking, reading and converting manifests
    "validate_manifest": "_manifest.validate", "check_label": "_manifest.validate",
    "ValidationReport": "_manifest.validate", "Problem": "_manifest.validate",
    "manifest_stats": "_analytics.stats", "ManifestStats": "_analytics.stats",
    "convert": "_analytics.convert", "ConvertResult": "_analytics.convert",
    "write_report": "_analytics.report", "ReportResult": "_analytics.report",
    "evaluate_manifest": "_analytics.evaluate", "Evaluation": "_analytics.evaluate",
    "labeled_only": "_analytics.labeled_only", "LabeledOnly": "_analytics.labeled_only",
    # Synapse
    "export_tasks": "_synapse.export", "ExportResult": "_synapse.export",
    "apply_job": "_synapse.apply", "ApplyReport": "_synapse.apply",
    "rollback_job": "_synapse.rollback", "RollbackReport": "_synapse.rollback",
    "ToTaskAction": "_to_task.action",
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
    "JobBusyError",
    "JobConfig",
    "JobError",
    "JobResult",
    "JobUnavailableError",
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

    from ._analytics.convert import ConvertResult, convert
    from ._analytics.evaluate import Evaluation, evaluate_manifest
    from ._analytics.labeled_only import LabeledOnly, labeled_only
    from ._analytics.report import ReportResult, write_report
    from ._analytics.stats import ManifestStats, manifest_stats
    from ._annotators.base import Annotator, BatchAnnotator, register_annotator
    from ._api import annotate, chain, clone, resume, status
    from ._engines.base import get_engine
    from ._jobs.config import JobConfig, JobResult
    from ._manifest.io import read_lines, write_lines
    from ._manifest.line import DELETE, Line
    from ._manifest.naming import check_label_attribute, label_attribute_violations
    from ._manifest.validate import Problem, ValidationReport, check_label, validate_manifest
    from ._options import Options, option
    from ._outcomes import Failed, Item, Labeled, Outcome, Routed
    from ._synapse.apply import ApplyReport, apply_job
    from ._synapse.export import ExportResult, export_tasks
    from ._synapse.rollback import RollbackReport, rollback_job
    from ._task_types import TASK_TYPES, get_task_type
    from ._to_task.action import ToTaskAction
