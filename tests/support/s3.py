"""A real S3 API on 127.0.0.1 for tests: moto's server mode, reached through s3fs like any bucket.

``moto_s3()`` starts ``moto.server.ThreadedMotoServer`` on a free port and points every S3
client of this process at it: fsspec's per-protocol configuration (``fsspec.config.conf["s3"]``)
for s3fs in this process, and the standard AWS environment variables (``AWS_ENDPOINT_URL``
and test credentials) for child processes (the CLI in a subprocess, validation workers). On exit
everything is restored. Tests use it through the ``s3`` fixture of ``tests/conftest.py``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import fsspec
import pytest

_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@dataclass(frozen=True)
class S3Endpoint:
    endpoint_url: str
    #: what to pass to ``fsspec``/``s3fs`` explicitly, when a test wants to (the config already has it)
    storage_options: dict[str, Any]

    def filesystem(self) -> Any:
        import s3fs

        return s3fs.S3FileSystem(**self.storage_options)

    def new_bucket(self, prefix: str = "test") -> str:
        """Create a bucket with a unique name and return ``s3://<name>``."""
        import boto3

        name = f"{prefix}-{uuid.uuid4().hex[:12]}"
        client = boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.storage_options["key"],
            aws_secret_access_key=self.storage_options["secret"],
            aws_session_token=self.storage_options["token"],
            region_name=_ENV["AWS_DEFAULT_REGION"],
        )
        client.create_bucket(Bucket=name)
        return f"s3://{name}"


@contextlib.contextmanager
def moto_s3() -> Iterator[S3Endpoint]:
    pytest.importorskip("s3fs")
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one log line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    options = {
        "key": _ENV["AWS_ACCESS_KEY_ID"],
        "secret": _ENV["AWS_SECRET_ACCESS_KEY"],
        "token": _ENV["AWS_SESSION_TOKEN"],
        "client_kwargs": {"endpoint_url": endpoint, "region_name": _ENV["AWS_DEFAULT_REGION"]},
    }
    saved_env = {k: os.environ.get(k) for k in [*_ENV, "AWS_ENDPOINT_URL"]}
    saved_conf = fsspec.config.conf.get("s3")
    os.environ.update(_ENV)
    os.environ["AWS_ENDPOINT_URL"] = endpoint
    fsspec.config.conf["s3"] = options
    _clear_s3fs_cache()
    try:
        yield S3Endpoint(endpoint, options)
    finally:
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        if saved_conf is None:
            fsspec.config.conf.pop("s3", None)
        else:
            fsspec.config.conf["s3"] = saved_conf
        _clear_s3fs_cache()
        server.stop()


def _clear_s3fs_cache() -> None:
    with contextlib.suppress(ImportError):
        import s3fs

        s3fs.S3FileSystem.clear_instance_cache()

