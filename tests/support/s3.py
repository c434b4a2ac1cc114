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



@dataclass(frozen=True)
class AuthS3:
    """A moto server that checks credentials and IAM policies (``INITIAL_NO_AUTH_ACTION_COUNT``),
    with a bucket holding ``manifest``, a user allowed only to read (``read_only``) and one allowed
    everything (``admin``: a job's writes, a test's set-up, and IAM, to make or delete access keys)."""

    endpoint_url: str
    bucket: str
    #: ``key`` and ``secret`` of a user whose policy allows only reading
    read_only: dict[str, str]
    #: ``key`` and ``secret`` of a user allowed everything (S3 and IAM): a test's own set-up once moto checks
    admin: dict[str, str]

    def client(self, service: str) -> Any:
        """A boto3 client of ``service`` (``s3``, ``iam``) on this server, as the admin user."""
        import boto3

        return boto3.client(service, endpoint_url=self.endpoint_url, region_name=_ENV["AWS_DEFAULT_REGION"],
                            aws_access_key_id=self.admin["key"], aws_secret_access_key=self.admin["secret"])

    def env(self, key: str, secret: str) -> dict[str, str]:
        """The environment of a user of this server with these credentials."""
        return {"AWS_ACCESS_KEY_ID": key, "AWS_SECRET_ACCESS_KEY": secret,
                "AWS_DEFAULT_REGION": _ENV["AWS_DEFAULT_REGION"], "AWS_ENDPOINT_URL": self.endpoint_url}


#: the requests ``moto_s3_auth`` makes before moto starts checking: create_bucket, put_object, then
#: create_user, put_user_policy, create_access_key for each of two users
_SETUP_ACTIONS = 8


@contextlib.contextmanager
def moto_s3_auth(manifest: bytes) -> Iterator[AuthS3]:
    """A moto server in its own process (moto reads ``INITIAL_NO_AUTH_ACTION_COUNT`` once, at
    import: the in-process servers of other modules must stay open), which authenticates every
    request after the setup: wrong credentials get S3's 403, a read-only user a 403 on writes."""
    import socket
    import subprocess
    import sys
    import time

    pytest.importorskip("s3fs")
    import boto3

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": str(_SETUP_ACTIONS)}
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:  # a bare connect: an HTTP request would count as one of the setup's actions
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            if time.monotonic() > deadline or server.poll() is not None:
                raise RuntimeError("moto server did not start")
            time.sleep(0.1)
        endpoint = f"http://127.0.0.1:{port}"
        admin = {"endpoint_url": endpoint, "region_name": _ENV["AWS_DEFAULT_REGION"],
                 "aws_access_key_id": "admin", "aws_secret_access_key": "admin"}
        bucket = f"auth-{uuid.uuid4().hex[:12]}"
        s3 = boto3.client("s3", **admin)
        s3.create_bucket(Bucket=bucket)
        s3.put_object(Bucket=bucket, Key="manifest.jsonl", Body=manifest)
        iam = boto3.client("iam", **admin)
        users = {name: _user(iam, name, actions) for name, actions in (("reader", ["s3:GetObject", "s3:ListBucket"]),
                                                                       ("admin", ["*"]))}
        yield AuthS3(endpoint, bucket, users["reader"], users["admin"])
    finally:
        server.terminate()
        server.wait(timeout=10)


def _user(iam: Any, name: str, actions: list[str]) -> dict[str, str]:
    """An IAM user allowed ``actions`` on every resource, and its access key (three setup actions)."""
    import json

    iam.create_user(UserName=name)
    iam.put_user_policy(UserName=name, PolicyName="allowed", PolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}]}))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return {"key": key["AccessKeyId"], "secret": key["SecretAccessKey"]}
