"""pytest fixtures for Synapse tests; a test module enables them with
``pytest_plugins = ["totask_manifest.testing.fixtures"]``.

``synapse`` is a started ``SynapseServer`` with ``SYNAPSE_HOST``/``SYNAPSE_ACCESS_TOKEN`` pointing
at it; ``files`` is a ``FileServer`` playing the storage host; ``client`` is a client of
``synapse`` with short backoffs.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ..synapse.sync_client import SynapseClient
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
                 "SYNAPSE_LANGUAGE", "SYNAPSE_JOB_ID", "TOTASK_OUTPUT_ROOT"):
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




@pytest.fixture
def s3(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A real S3 API (moto's server mode) that ``s3://`` URLs reach through s3fs; yields a bucket URL."""
    import fsspec

    moto_server = pytest.importorskip("moto.server")
    pytest.importorskip("s3fs")
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    for key, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing"),
                       ("AWS_DEFAULT_REGION", "us-east-1")):
        monkeypatch.setenv(key, value)
    monkeypatch.setitem(fsspec.config.conf, "s3",
                        {"endpoint_url": f"http://{host}:{port}", "key": "testing", "secret": "testing"})
    fsspec.filesystem("s3").clear_instance_cache()
    fs = fsspec.filesystem("s3", skip_instance_cache=True)
    fs.mkdir("synapse-bucket")
    try:
        yield "s3://synapse-bucket"
    finally:
        fsspec.filesystem("s3").clear_instance_cache()
        server.stop()
