"""Fixtures shared by every test module.

HTTP servers in tests are one harness, ``totask_manifest.testing.background.BackgroundApp``: the
Synapse and file servers of ``totask_manifest.testing`` and ``tests/support/http_server.py`` (a
server answering with the test's own async handler) all run on it.

- ``s3``: one moto server (server mode) per module, reached through s3fs like any bucket
  (``tests/support/s3.py``); ``s3.new_bucket()`` gives a fresh ``s3://`` bucket.
- ``gt_manifests``: the real manifests folder ``../shared/gt-manifests`` (``tests/support/gt.py``),
  or a skip saying it is missing.
- ``immutable_folder``: ``tmp_path / "locked"``, a folder nothing can be written in, root included
  (``chattr +i``), or a skip where that flag cannot be set.

Slow tests carry ``@pytest.mark.slow``; ``python -m pytest -m "not slow"`` is the fast lane. The
rule: a test that costs over about 0.3 s of CPU (this process and its children: Ray, the browser,
kill/resume loops, fuzzing and hypothesis properties, CLI subprocesses, worker pools, S3
variants, the SDK parity check) is slow, keeping one cheap case where a family would lose all;
per-file cases of the real manifests over 100 KB are slow (``tests.support.gt.real_cases``).

The suite is hermetic: ``HOME`` is an empty temporary folder (one for the session, a fresh one for
each test), and the variables the tool reads its credentials and settings from are unset
(``_hermetic_environment``), for the tests and every process they start.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator, MutableMapping
from pathlib import Path

import pytest

from tests.support.gt import GT_MANIFESTS, HAVE_GT, SKIP_REASON
from tests.support.s3 import S3Endpoint, moto_s3

#: where the tests' servers listen
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
#: the variables the tool (or s3fs, fsspec, botocore, Ray under it) reads credentials or settings
#: from, unset for the suite: the tests set those they need
TOOL_VARIABLE_PREFIXES = ("SYNAPSE_", "TOTASK_", "AWS_", "FSSPEC_")
#: ... except these, which steer the tests themselves (where the SDK parity venv is, a CA bundle
#: a TLS-intercepting network needs; ``test_cli_errors.env`` keeps it too)
KEPT_VARIABLES = ("TOTASK_SDK_PYTHON", "TOTASK_SDK_VENV", "TOTASK_SKIP_SDK_PARITY", "TOTASK_TEST_NO_SHARED_DISK",
                  "AWS_CA_BUNDLE")
#: other variables unset as well (a cluster the Ray engine would join; Ray's own job id, which the SDK
#: reads as a Synapse job's and we must be seen not to: tests/test_to_task_job_id.py)
TOOL_VARIABLES = ("RAY_ADDRESS", "RAY_JOB_ID")
#: the session's own HOME (``pytest_configure``) and the variables it replaced, put back at the end
_SESSION: dict[str, object] = {}


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
    home = Path(tempfile.mkdtemp(prefix="totask-tests-home-"))
    (home / ".ray").mkdir()  # each test's HOME links it (``_fresh_home``): a link to nothing broke Ray's makedirs
    _SESSION.update(home=home, saved=_hermetic_environment(os.environ, home))


def pytest_unconfigure(config: pytest.Config) -> None:
    """The environment as it was, and the session's HOME removed."""
    if "home" not in _SESSION:
        return
    for name, value in _SESSION.pop("saved").items():  # type: ignore[union-attr]
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    shutil.rmtree(_SESSION.pop("home"), ignore_errors=True)  # type: ignore[arg-type]


def _hermetic_environment(environ: MutableMapping[str, str], home: Path) -> dict[str, str | None]:
    """Make ``environ`` a new user's: ``HOME`` the empty folder ``home`` and the tool's variables
    unset. On a machine where someone ran ``synapse login``, the tests that expect "no Synapse
    credentials" read the real ``~/.synapse/config.json`` (the SDK's fallback, ``_credentials.sdk_config``),
    and a ``SYNAPSE_ACCESS_TOKEN``, ``AWS_PROFILE``, ``TOTASK_HTTP_CLIENT`` or ``~/.aws/credentials``
    of the machine's would change what the tests see. Set here, before collection, it holds for
    module-level constants, session fixtures and every child; ``_fresh_home`` then gives each test
    its own HOME. The caches and configuration of the tools the suite runs stay where they were
    (``XDG_CACHE_HOME``: the SDK parity venv, ``XDG_CONFIG_HOME``: pip's index, ``PYENV_ROOT``):
    the tool reads nothing there. Returns the replaced variables' values (None: unset)."""
    real_home = Path(environ.get("HOME") or os.path.expanduser("~"))
    saved: dict[str, str | None] = {}

    def put(name: str, value: str | None) -> None:
        saved.setdefault(name, environ.get(name))
        if value is None:
            environ.pop(name, None)
        else:
            environ[name] = value

    for name, default in (("XDG_CACHE_HOME", real_home / ".cache"), ("XDG_CONFIG_HOME", real_home / ".config"),
                          ("PYENV_ROOT", real_home / ".pyenv")):
        if not environ.get(name) and default.is_dir():
            put(name, str(default))
    for name in list(environ):
        if (name.startswith(TOOL_VARIABLE_PREFIXES) or name in TOOL_VARIABLES) and name not in KEPT_VARIABLES:
            put(name, None)
    put("HOME", str(home))
    return saved


@pytest.fixture(autouse=True)
def _fresh_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test's own empty HOME (``Path.home()``, ``~``, and its children's): what one test
    saves there (a ``~/.synapse/config.json``) no other test reads."""
    home = tmp_path_factory.mktemp("home")
    # the session's Ray cluster (a session fixture) keeps its auth token in the session HOME's
    # ``.ray``: a test's job joining that cluster must find it, one starting its own Ray writes there
    (home / ".ray").symlink_to(Path(_SESSION["home"]) / ".ray", target_is_directory=True)
    monkeypatch.setenv("HOME", str(home))
    return home


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


@pytest.fixture
def immutable_folder(tmp_path: Path) -> Iterator[Path]:
    """A folder nothing can be written in, not even by root: ``chattr +i`` (EPERM on every create,
    the errno ``link`` also gives where a file system has no hard links; ``os.access`` still says
    yes to root). Skipped where ``chattr`` is missing, this is not root, or the file system has no
    such flag."""
    folder = tmp_path / "locked"
    folder.mkdir()
    if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode:
        pytest.skip("chattr +i does not work here (not root, or a file system without the flag)")
    try:
        yield folder
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=True)
