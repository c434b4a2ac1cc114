"""pytest fixtures for Synapse tests; a test module enables them with
``pytest_plugins = ["totask_manifest.testing.fixtures"]``.

``synapse`` is a started ``SynapseServer`` with ``SYNAPSE_HOST``/``SYNAPSE_ACCESS_TOKEN`` pointing
at it; ``files`` is a ``FileServer`` playing the storage host; ``client`` is a client of
``synapse`` with short backoffs.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .._synapse.sync_client import SynapseClient
from .builders import TOKEN, fast_client
from .file_server import FileServer
from .synapse_server import SynapseServer


@pytest.fixture
def files() -> Iterator[FileServer]:
    server = FileServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def synapse(monkeypatch: pytest.MonkeyPatch) -> Iterator[SynapseServer]:
    server = SynapseServer(tokens=(TOKEN,)).start()
    monkeypatch.setenv("SYNAPSE_HOST", server.url)
    monkeypatch.setenv("SYNAPSE_ACCESS_TOKEN", TOKEN)
    for name in ("SYNAPSE_PLUGIN_RUN_USER_TOKEN", "SYNAPSE_PLUGIN_RUN_TENANT", "SYNAPSE_PLUGIN_RUN_URL_HOST",
                 "SYNAPSE_LANGUAGE", "SYNAPSE_JOB_ID", "RAY_JOB_ID", "TOTASK_OUTPUT_ROOT"):
        monkeypatch.delenv(name, raising=False)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def client(synapse: SynapseServer) -> Iterator[SynapseClient]:
    """A client with short backoffs, so retry and outage tests take milliseconds."""
    c = fast_client(synapse)
    try:
        yield c
    finally:
        c.close()
