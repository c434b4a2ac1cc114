"""Fixtures shared by every test module.

HTTP servers in tests are one harness, ``totask_manifest.testing.background.BackgroundApp``: the
Synapse and file servers of ``totask_manifest.testing`` and ``tests/support/http_server.py`` (a
server answering with the test's own async handler) all run on it.

- ``s3``: one moto server (server mode) per module, reached through s3fs like any bucket
  (``tests/support/s3.py``); ``s3.new_bucket()`` gives a fresh ``s3://`` bucket.
- ``gt_manifests``: the real manifests folder ``../shared/gt-manifests`` (``tests/support/gt.py``),
  or a skip saying it is missing.

Slow tests carry ``@pytest.mark.slow``; ``python -m pytest -m "not slow"`` is the fast lane. The
rule: a test that costs over about 0.3 s of CPU (this process and its children: Ray, the browser,
kill/resume loops, fuzzing and hypothesis properties, CLI subprocesses, worker pools, S3
variants, the SDK parity check) is slow, keeping one cheap case where a family would lose all;
per-file cases of the real manifests over 100 KB are slow (``tests.support.gt.real_cases``).
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator, MutableMapping
from pathlib import Path

import pytest

from tests.support.gt import GT_MANIFESTS, HAVE_GT, SKIP_REASON
from tests.support.s3 import S3Endpoint, moto_s3

#: where the tests' servers listen
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


def pytest_configure(config: pytest.Config) -> None:
    """A suite started with SIGINT ignored (``bash .ci/run &`` from a script, ``nohup``-like
    runners), or SIGTERM, would pass that on to every job it starts, and a job keeps an inherited
    ignored signal ignored (``tests/test_inherited_sigint.py``): the tests that stop a job with it
    would see it finish. Set here, each is back to its default in every child (a handled signal is reset
    at ``exec``, an ignored one is not); the test of the inherited case ignores it itself."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if signal.getsignal(signal.SIGTERM) is signal.SIG_IGN:  # the same for SIGTERM (``trap '' TERM``)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _local_servers_bypass_proxies(os.environ)


def _local_servers_bypass_proxies(environ: MutableMapping[str, str]) -> None:
    """The tests' servers listen on 127.0.0.1, and the tool uses the environment's proxy as
    requests does, which bypasses nothing local unless ``NO_PROXY`` says so (``_proxies.py``).
    A machine whose packages come through a proxy (``HTTPS_PROXY`` set for pip) would send every
    test's requests there. Local addresses are added to ``no_proxy``/``NO_PROXY`` for this run
    (children inherit it); the proxy itself stays for what needs it (the SDK parity venv's pip).
    The proxy tests set their own environment."""
    if not any(k.lower() in ("http_proxy", "https_proxy", "all_proxy") and v for k, v in environ.items()):
        return
    for name in ("no_proxy", "NO_PROXY"):
        given = [e for e in environ.get(name, "").split(",") if e.strip()]
        environ[name] = ",".join([*given, *(h for h in LOCAL_HOSTS if h not in given)])


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Ray and headless-browser tests are slow by nature: they leave the fast lane without a second mark."""
    for item in items:
        if item.get_closest_marker("ray") or item.get_closest_marker("browser"):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="module")
def s3() -> Iterator[S3Endpoint]:
    """Module-scoped: one moto server per test module that asks for it."""
    with moto_s3() as endpoint:
        yield endpoint


@pytest.fixture(scope="session")
def gt_manifests() -> Path:
    if not HAVE_GT:
        pytest.skip(SKIP_REASON)
    return GT_MANIFESTS
