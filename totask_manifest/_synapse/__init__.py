"""The Synapse (Datamaker) backend: client, export, apply with journal and rollback.

(The ToTask action, which runs a whole job through ``api``, sits above both in ``to_task``.)

Importing this package is cheap: the names below load their modules on first use. (The
``synapse-preprocessor`` annotator is registered with the others in ``annotators.base``.)
"""

from __future__ import annotations

import importlib
from typing import Any

#: task data formats ``apply`` sends, and its "nothing to do" status (here, so the CLI can name
#: them without loading the client)
DM_V1, OBJECTS = "dm-schema-v1", "synapse-objects"
DATA_FORMATS = (DM_V1, OBJECTS)
UNCHANGED = "unchanged"

_EXPORTS = {
    "SynapseSettings": ".settings",
    "AsyncSynapseClient": ".client",
    "SynapseClient": ".sync_client",
    "export_tasks": ".export",
    "apply_job": ".apply",
    "ApplyReport": ".apply",
    "rollback_job": ".rollback",
    "RollbackReport": ".rollback",
    "PreProcessor": ".preprocessor",
}

__all__ = sorted([*_EXPORTS, "DATA_FORMATS", "DM_V1", "OBJECTS", "UNCHANGED"])


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module, __name__), name)
