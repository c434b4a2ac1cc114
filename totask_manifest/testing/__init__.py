"""Real servers for tests and benchmarks: a Synapse contract server and a plain file server.

Both are aiohttp applications on 127.0.0.1 running on a background thread (or in their own
process for benchmarks: ``python -m totask_manifest.testing.synapse_server``); they record
every request so tests can assert what reached the wire. Names load their module on first use,
so running a module of this package with ``-m`` does not import it twice.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Fault": ".recording",
    "Recorded": ".recording",
    "FileServer": ".file_server",
    "SynapseServer": ".synapse_server",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module, __name__), name)
