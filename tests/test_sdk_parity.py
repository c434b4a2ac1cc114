"""Parity with the REAL synapse-sdk: a task gets exactly what Synapse's own ToTask would write.

Two contract servers are seeded the same way (``tests/support/parity_seed.py``: DM schema v1 documents
with two media, rotated boxes, polygons, keypoints, classification attributes, relations, groups,
``extra``, a 404 file, an empty result, a task the filter leaves out, a data unit without files). On one, the SDK's own
``ToTaskAction`` runs through the SDK's own Ray-job entry point (``python -m
synapse_sdk.plugins.entrypoint``) in a Python 3.12 venv, with a pass-through plugin
(``tests/support/sdk_parity_plugin.py``); on the other, ``totask-manifest run`` runs with the same
parameters. The final task data must be JSON-equal task by task, for the file method and for the
inference method; so must the result counts, the job report, the pre-processor calls, the tenant
header and ``url_host``. The last two tests run ``totask-manifest run`` and ``annotate --converter`` on
the SDK's Python with a subclass of the SDK's ``ToTaskAction`` as converter (existing plugins run unchanged).

The venv is built once and cached (``~/.cache/totask-manifest/sdk-venv-<version>``, or
``$TOTASK_SDK_VENV``) from ``tests/support/sdk-constraints.txt``. Where no Python 3.12+ is found
(``$TOTASK_SDK_PYTHON``, pyenv's 3.12/3.13, ``python3.12``/``python3.13`` on PATH) or the package
cannot be installed, the tests are skipped with the reason (the last test also needs this project's
dependencies for that Python, cached in ``project-deps-<hash>`` beside the venv); ``TOTASK_SKIP_SDK_PARITY=1`` skips them
on purpose.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.support.parity_seed import (
    EXCLUDED_INDEX,
    INITIAL_DATA,
    NO_FILES_INDEX,
    TARGET_SPEC,
    ParitySeed,
    inference_replies,
    label_documents,
    seed_parity,
)
from totask_manifest.testing.file_server import FileServer
from totask_manifest.testing.synapse_server import SynapseServer

SDK_VERSION = "2026.2.17"
SUPPORT = Path(__file__).parent / "support"
CONSTRAINTS = SUPPORT / "sdk-constraints.txt"
TOKEN = "tok-parity-7f3a"
#: the plugin-run environment a Synapse agent gives a job: a tenant, and the host its file URLs should use
TENANT, URL_HOST = "parity-tenant", "internal"
RUN_ENV = {"SYNAPSE_ACCESS_TOKEN": TOKEN, "SYNAPSE_PLUGIN_RUN_TENANT": TENANT, "SYNAPSE_PLUGIN_RUN_URL_HOST": URL_HOST}
#: building the venv downloads ~80 packages (opencv, numpy, google-cloud...); CI's budget allows this
BUILD_TIMEOUT = 1500
RUN_TIMEOUT = 300
#: pages of 3 tasks whatever ``page_size`` asks for, so both sides follow ``next`` links
PAGE = 3
RESULT_START, RESULT_END = "__SYNAPSE_RESULT_START__", "__SYNAPSE_RESULT_END__"
#: the keys of the SDK's messages that hold counts, whose text both runs must say alike
COUNT_MESSAGES = ("TASK_TASKS_FETCHED", "TASK_DATA_ANNOTATING", "TASK_DATA_COMPLETED", "TASK_DATA_COMPLETED_WITH_FAILURES")
#: the first test also builds the venv (pytest-timeout counts fixture setup)
pytestmark = [pytest.mark.timeout(BUILD_TIMEOUT + 2 * RUN_TIMEOUT + 300), pytest.mark.slow]


# -- the SDK's venv -------------------------------------------------------------------------------


def _python_version(argv: list[str], env: dict[str, str] | None = None) -> tuple[tuple[int, int], str] | None:
    """``((major, minor), sys.executable)`` of an interpreter, or None when it does not run."""
    try:
        out = subprocess.run([*argv, "-c", "import sys; print(sys.version_info[0], sys.version_info[1], sys.executable)"],
                             capture_output=True, text=True, timeout=60, env=env)
    except (OSError, subprocess.TimeoutExpired):
        return None
    parts = out.stdout.split(maxsplit=2)
    if out.returncode != 0 or len(parts) != 3:
        return None
    return (int(parts[0]), int(parts[1])), parts[2].strip()


def _candidates() -> Iterator[tuple[list[str], dict[str, str] | None]]:
    if os.environ.get("TOTASK_SDK_PYTHON"):
        yield [os.environ["TOTASK_SDK_PYTHON"]], None
    pyenv = shutil.which("pyenv")
    root = None
    if pyenv:
        try:
            root = subprocess.run([pyenv, "root"], capture_output=True, text=True, timeout=30).stdout.strip() or None
        except (OSError, subprocess.TimeoutExpired):
            root = None
    root = root or os.environ.get("PYENV_ROOT") or str(Path.home() / ".pyenv")
    versions = Path(root) / "versions"
    if versions.is_dir():
        for prefix in ("3.12", "3.13"):
            for version in sorted(versions.glob(f"{prefix}*"), reverse=True):
                yield [str(version / "bin" / "python")], None
    if shutil.which("python"):  # a pyenv shim picks the version from PYENV_VERSION
        yield ["python"], {**os.environ, "PYENV_VERSION": "3.12.1"}
    for name in ("python3.12", "python3.13"):
        if shutil.which(name):
            yield [name], None


def find_python312() -> str | None:
    for argv, env in _candidates():
        found = _python_version(argv, env)
        if found and found[0] >= (3, 12):
            return found[1]
    return None


def _venv_dir() -> Path:
    if os.environ.get("TOTASK_SDK_VENV"):
        return Path(os.environ["TOTASK_SDK_VENV"])
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "totask-manifest" / f"sdk-venv-{SDK_VERSION}"


def _venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def _sdk_importable(venv: Path) -> bool:
    python = _venv_python(venv)
    if not python.exists():
        return False
    check = subprocess.run([str(python), "-W", "ignore", "-c",
                            "import synapse_sdk.plugins.entrypoint, synapse_sdk.plugins.actions.to_task; "
                            f"from importlib.metadata import version; assert version('synapse-sdk') == {SDK_VERSION!r}"],
                           capture_output=True, timeout=120)
    return check.returncode == 0


def _tail(text: str, lines: int = 6) -> str:
    return " | ".join(text.strip().splitlines()[-lines:])


def build_sdk_venv() -> Path:
    """The cached venv with ``synapse-sdk``; built next to its final place and renamed into it."""
    venv = _venv_dir()
    if _sdk_importable(venv):
        return venv
    python = find_python312()
    if python is None:
        pytest.skip("synapse-sdk needs Python >= 3.12: none found ($TOTASK_SDK_PYTHON, pyenv 3.12/3.13, python3.12)")
    venv.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=venv.name + ".build-", dir=venv.parent))
    try:
        made = subprocess.run([python, "-m", "venv", str(staging)], capture_output=True, text=True, timeout=300)
        if made.returncode != 0:
            pytest.skip(f"cannot create a venv with {python}: {_tail(made.stderr)}")
        pip = [str(_venv_python(staging)), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        try:
            installed = subprocess.run([*pip, f"synapse-sdk=={SDK_VERSION}", "-c", str(CONSTRAINTS)],
                                       capture_output=True, text=True, timeout=BUILD_TIMEOUT)
        except subprocess.TimeoutExpired:
            pytest.skip(f"installing synapse-sdk=={SDK_VERSION} took over {BUILD_TIMEOUT} s")
        if installed.returncode != 0:
            pytest.skip(f"synapse-sdk=={SDK_VERSION} cannot be installed: {_tail(installed.stderr or installed.stdout)}")
        if not _sdk_importable(staging):
            pytest.skip(f"synapse-sdk=={SDK_VERSION} installed but does not import")
        if _sdk_importable(venv):  # another session finished first
            return venv
        if venv.exists():
            shutil.rmtree(venv)
        staging.rename(venv)
        return venv
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


@pytest.fixture(scope="session")
def sdk_python() -> str:
    if os.environ.get("TOTASK_SKIP_SDK_PARITY") == "1":
        pytest.skip("TOTASK_SKIP_SDK_PARITY=1")
    return str(_venv_python(build_sdk_venv()))


@pytest.fixture(scope="session")
def project_deps_for_sdk_python(sdk_python: str) -> Path:
    """This project's dependencies for the SDK's Python, in a cached ``pip --target`` folder (the SDK's venv
    stays as pip made it): with ``PYTHONPATH=<repo>:<folder>`` the SDK's interpreter runs ``totask-manifest``
    with ``synapse-sdk`` importable, as on a Synapse agent that has both."""
    repo = Path(__file__).resolve().parent.parent
    deps = tomllib.loads((repo / "pyproject.toml").read_text())["project"]["dependencies"]
    constraints = repo / ".ci" / "constraints.txt"
    key = hashlib.sha256(json.dumps([deps, constraints.read_text()]).encode()).hexdigest()[:12]
    target = _venv_dir().parent / f"project-deps-{key}"
    probe = [sdk_python, "-c", "import orjson, pyarrow, jsonschema_rs, aiohttp, certifi, yaml, PIL"]
    env = {**os.environ, "PYTHONPATH": str(target)}
    if target.is_dir() and subprocess.run(probe, env=env, capture_output=True, timeout=120).returncode == 0:
        return target
    staging = Path(tempfile.mkdtemp(prefix=target.name + ".build-", dir=target.parent))
    try:
        try:
            installed = subprocess.run([sdk_python, "-m", "pip", "install", "-q", "--disable-pip-version-check",
                                        "--target", str(staging), "-c", str(constraints), *deps],
                                       capture_output=True, text=True, timeout=BUILD_TIMEOUT)
        except subprocess.TimeoutExpired:
            pytest.skip(f"installing this project's dependencies for {sdk_python} took over {BUILD_TIMEOUT} s")
        if installed.returncode != 0:
            pytest.skip(f"this project's dependencies cannot be installed for Python 3.12: {_tail(installed.stderr)}")
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
        return target
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


# -- the two runs ---------------------------------------------------------------------------------


@dataclass
class Side:
    """One run: the server it ran against, its exit status, its result and its output."""

    server: SynapseServer
    seed: ParitySeed
    returncode: int
    result: dict | None
    output: str

    def data(self, task_id: int) -> Any:
        return self.server.tasks[task_id]["data"]

    def written(self) -> set[int]:
        return {t for t in self.seed.task_ids if self.server.tasks[t].get("writes")}

    def final_patch(self) -> dict:
        patches = self.server.job_patches.get(self.seed.job_id) or [{}]
        return patches[-1]


@dataclass
class Parity:
    method: str
    sdk: Side
    ours: Side
    tmp: Path
    differences: dict[int, list[str]] = field(default_factory=dict)
    #: the ``schema`` parameter both runs were given (None: the default, DM schema v1)
    schema: str | None = None


def _base_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("SYNAPSE_", "RAY_", "TOTASK_OUTPUT"))}


def _run_sdk(python: str, server: SynapseServer, seed: ParitySeed, params: dict, home: Path, *,
             entrypoint: str = "sdk_parity_plugin.PassThroughToTask",
             extra_env: dict[str, str] | None = None) -> tuple[int, dict | None, str]:
    """The SDK's own JOB-mode entry point, as Ray would start it on an agent."""
    home.mkdir(parents=True, exist_ok=True)  # an empty HOME: no ~/.synapse/config.json is read
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "LANG": "C.UTF-8",
           "SYNAPSE_HOST": server.url, **RUN_ENV, "SYNAPSE_JOB_ID": str(seed.job_id),
           "SYNAPSE_ACTION_ENTRYPOINT": entrypoint,
           "SYNAPSE_ACTION_PARAMS": json.dumps(params), "PYTHONPATH": str(SUPPORT),
           "NO_PROXY": "127.0.0.1,localhost", "PYTHONWARNINGS": "ignore", **(extra_env or {})}
    proc = subprocess.run([python, "-m", "synapse_sdk.plugins.entrypoint"], env=env, cwd=str(home),
                          capture_output=True, text=True, timeout=RUN_TIMEOUT)
    result = None
    if RESULT_START in proc.stdout and RESULT_END in proc.stdout:
        result = json.loads(proc.stdout.split(RESULT_START, 1)[1].split(RESULT_END, 1)[0])
    return proc.returncode, result, proc.stdout[-4000:] + proc.stderr[-4000:]


def _run_ours(server: SynapseServer, seed: ParitySeed, params: dict, tmp: Path, *, python: str = sys.executable,
              extra_env: dict[str, str] | None = None) -> tuple[int, dict | None, str]:
    params_file = tmp / "params.json"
    params_file.write_text(json.dumps(params))
    env = {**_base_env(), "SYNAPSE_HOST": server.url, **RUN_ENV, "SYNAPSE_JOB_ID": str(seed.job_id), **(extra_env or {})}
    proc = subprocess.run([python, "-m", "totask_manifest", "run", str(params_file), "--output", str(tmp / "jobs")],
                          env=env, cwd=str(tmp), capture_output=True, text=True, timeout=RUN_TIMEOUT)
    try:
        result = json.loads(proc.stdout)
    except json.JSONDecodeError:
        result = None
    return proc.returncode, result, proc.stdout[-4000:] + proc.stderr[-4000:]


def json_differences(a: Any, b: Any, path: str = "") -> list[str]:
    """Where two JSON values differ (``a`` the SDK's, ``b`` ours), as readable key paths."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for key in sorted(set(a) | set(b), key=str):
            where = f"{path}.{key}" if path else str(key)
            if key not in b:
                out.append(f"{where}: missing in ours")
            elif key not in a:
                out.append(f"{where}: only in ours")
            else:
                out.extend(json_differences(a[key], b[key], where))
        return out
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{path}: {len(a)} items in the SDK's, {len(b)} in ours"]
        out = []
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            out.extend(json_differences(x, y, f"{path}[{i}]"))
        return out
    if json.dumps(a) != json.dumps(b):  # 1 vs 1.0 and true vs 1 differ in JSON
        return [f"{path or '<root>'}: {json.dumps(a)[:80]} in the SDK's, {json.dumps(b)[:80]} in ours"]
    return []


@pytest.fixture(scope="module", params=["file", "inference", "file schema=any", "inference schema=any"])
def parity(request: pytest.FixtureRequest, sdk_python: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Parity]:
    """``schema=any``: the SDK sends ``?schema=any``, which skips the backend's DM check; the contract
    server then takes the empty document the SDK submits, so both sides must write it."""
    method, _, schema = request.param.partition(" schema=")
    tmp = tmp_path_factory.mktemp(f"parity-{method}-{schema or 'dm'}")
    files = FileServer().start()
    sdk_server = SynapseServer(tokens=(TOKEN,), max_page_size=PAGE).start()
    our_server = SynapseServer(tokens=(TOKEN,), max_page_size=PAGE).start()
    try:
        sdk_seed = seed_parity(sdk_server, files)
        our_seed = seed_parity(our_server, files)
        assert sdk_seed == our_seed
        params = sdk_seed.file_params() if method == "file" else sdk_seed.inference_params()
        if schema:
            params["schema"] = schema
        sdk = Side(sdk_server, sdk_seed, *_run_sdk(sdk_python, sdk_server, sdk_seed, params, tmp / "sdk-home"))
        ours = Side(our_server, our_seed, *_run_ours(our_server, our_seed, params, tmp))
        run = Parity(method, sdk, ours, tmp, schema=schema or None)
        for task_id in sdk_seed.task_ids:
            diff = json_differences(sdk.data(task_id), ours.data(task_id))
            if diff:
                run.differences[task_id] = diff
        yield run
    finally:
        our_server.stop()
        sdk_server.stop()
        files.stop()


# -- the tests ----------------------------------------------------------------------------------------


def test_the_sdk_runs_end_to_end_against_the_contract_server(parity: Parity) -> None:
    """The reference side itself: the SDK ran, wrote the pass-through data and counted what failed."""
    sdk = parity.sdk
    assert sdk.returncode == 0 and sdk.result is not None, sdk.output
    ids = sdk.seed.task_ids
    expected = label_documents() if parity.method == "file" else [inference_replies()[f"{i}.png"] for i in range(EXCLUDED_INDEX)]
    failed = {f["task_id"] for f in sdk.result["failures"]}
    assert sdk.result["status"] == "SUCCEEDED"
    assert sdk.result["total_tasks"] == len(ids) - 1  # the ``done`` task is not listed
    assert sdk.result["message"] == (f"to_task completed. success={sdk.result['success_count']}, "
                                     f"failed={sdk.result['failed_count']}")
    assert ids[4] in failed  # the 404 file / the empty reply
    assert ids[NO_FILES_INDEX] in failed and sdk.data(ids[NO_FILES_INDEX]) == INITIAL_DATA  # no files: failed, as listed
    assert {"task_id": ids[NO_FILES_INDEX], "error": "Data unit does not have files"} in sdk.result["failures"]
    for i, task_id in enumerate(ids[:EXCLUDED_INDEX]):
        if task_id in failed:
            assert sdk.data(task_id) == INITIAL_DATA, task_id
        else:
            assert json.dumps(sdk.data(task_id), sort_keys=True) == json.dumps(expected[i], sort_keys=True), task_id
    # the empty document: written where the backend takes it, failed where it answers 400 (the real one does)
    assert (ids[5] in failed) != (ids[5] in sdk.written())
    assert (ids[5] in sdk.written()) == (parity.schema == "any")  # ?schema=any skips the check that refuses it
    assert sdk.data(ids[EXCLUDED_INDEX]) == INITIAL_DATA and ids[EXCLUDED_INDEX] not in sdk.written()
    assert sdk.final_patch()["status"] == "SUCCEEDED" and sdk.final_patch()["result"] == sdk.result
    assert len(sdk.server.requests_to("GET", "^/sdk/tasks/$")) == 3  # 8 tasks in pages of 3
    # every request of the SDK carried the token, the tenant and ``url_host``; only the SDK's endpoints were needed
    assert all(r.header("synapse-access-token") == f"Token {TOKEN}" for r in sdk.server.requests)
    assert all(r.header("synapse-tenant") == f"Token {TENANT}" for r in sdk.server.requests)
    assert all(r.query.get("url_host") == URL_HOST for r in sdk.server.requests)
    unanswered = {(r.method, r.path) for r in sdk.server.requests if r.status == 404 and r.path != "/agents/"}
    assert not unanswered, unanswered


def test_task_data_is_json_equal_to_the_sdks(parity: Parity) -> None:
    """The measured parity: every task holds exactly what the SDK's run left in it."""
    ids = parity.sdk.seed.task_ids
    written = parity.sdk.written() | parity.ours.written()
    equal = [t for t in ids if t not in parity.differences]
    line = (f"parity ({parity.method}{', schema=' + parity.schema if parity.schema else ''}): {len([t for t in written if t in equal])}/{len(written)} tasks equal / tasks written "
            f"({len(equal)}/{len(ids)} tasks equal in all; SDK wrote {len(parity.sdk.written())}, "
            f"ours wrote {len(parity.ours.written())})")
    print(line)
    details = "\n".join(f"  task {t}: " + "; ".join(d[:6]) + (" ..." if len(d) > 6 else "")
                        for t, d in parity.differences.items())
    assert not parity.differences, f"{line}\n{details}\nours: rc={parity.ours.returncode}\n{parity.ours.output[-2000:]}"


def test_the_result_and_the_job_report_count_like_the_sdk(parity: Parity) -> None:
    """``run`` prints, and reports to the Synapse job, the SDK's result keys with the SDK's counts."""
    sdk, ours = parity.sdk, parity.ours
    assert ours.result is not None, ours.output
    keys = ("status", "message", "total_tasks", "success_count", "failed_count")
    expected = {k: sdk.result[k] for k in keys} | {"failed_tasks": sorted(f["task_id"] for f in sdk.result["failures"])}

    def counted(result: dict) -> dict:
        return {k: result.get(k) for k in keys} | {
            "failed_tasks": sorted(f.get("task_id") for f in result.get("failures", []))}

    assert counted(ours.result) == expected
    final = ours.final_patch()
    assert final.get("status") == sdk.final_patch()["status"]
    assert counted(final.get("result") or {}) == expected
    sdk_metrics = sdk.server.job_patches[sdk.seed.job_id]
    last_metrics = [p["metrics_record"] for p in sdk_metrics if "metrics_record" in p][-1]
    our_metrics = [p["metrics_record"] for p in ours.server.job_patches[ours.seed.job_id] if "metrics_record" in p]
    assert our_metrics and our_metrics[-1]["record"]["steps"]["annotate_task_data"] == \
        last_metrics["record"]["steps"]["annotate_task_data"]
    assert ours.server.logs and all("step" in entry for entry in ours.server.logs)

    def events(side: Side) -> list[tuple]:
        """The per-task events as sent: the SDK's come in listing order, ``index`` the task's place
        in the listing (ours came failures first, index 1 the first failed task)."""
        return [(e["data"]["index"], e["data"]["task_info"]["task_id"], e["data"]["status"], e["data"]["total"])
                for e in side.server.logs if e["event"] == "annotate_task_data"]

    assert events(ours) == events(sdk)


def test_the_job_report_has_the_sdks_steps_progress_and_messages(parity: Parity) -> None:
    """What the Synapse UI draws from the job: the same steps with the same proportions and order, a
    final ``current_progress`` holding every key the SDK's holds (``time_remaining`` 0, ``time_elapsed``),
    and every log message the two runs both send made in the same step at the same level."""
    sdk_patches = parity.sdk.server.job_patches[parity.sdk.seed.job_id]
    our_patches = parity.ours.server.job_patches[parity.ours.seed.job_id]
    assert sdk_patches[0]["status"] == our_patches[0]["status"] == "RUNNING"
    sdk_final, our_final = sdk_patches[-1], our_patches[-1]

    def steps(patch: dict) -> dict:
        return {name: (step["proportion"], step["order"])
                for name, step in patch["progress_record"]["record"]["steps"].items()}

    assert list(steps(our_final).items()) == list(steps(sdk_final).items())
    sdk_current = sdk_final["progress_record"]["current_progress"]
    our_current = our_final["progress_record"]["current_progress"]
    assert set(sdk_current) <= set(our_current), (sdk_current, our_current)
    for key in ("step", "percent", "time_remaining"):
        assert our_current[key] == sdk_current[key], key
    assert float(our_current["overall"]) == float(sdk_current["overall"]) == 100.0
    assert isinstance(our_current["time_elapsed"], int) and our_current["time_elapsed"] >= 0

    def messages(logs: list[dict]) -> dict[str, tuple[str, str]]:
        return {e["data"]["key"]: (e["step"], e["level"]) for e in logs
                if e["event"] == "message" and e["data"].get("key")}

    sdk_messages, our_messages = messages(parity.sdk.server.logs), messages(parity.ours.server.logs)
    common = sorted(set(sdk_messages) & set(our_messages))
    assert "TASK_TASKS_FETCHED" in common and "TASK_DATA_COMPLETED_WITH_FAILURES" in common, common
    assert {k: our_messages[k] for k in common} == {k: sdk_messages[k] for k in common}

    def counts(logs: list[dict]) -> dict[str, str]:
        """The text of the messages that carry counts: the counts must be the SDK's, not only the key
        (ours said "Fetched 7 tasks" where the SDK said 8, the data unit without files left out)."""
        return {e["data"]["key"]: e["data"]["content"] for e in logs
                if e["event"] == "message" and e["data"].get("key") in COUNT_MESSAGES}

    sdk_counts = counts(parity.sdk.server.logs)
    assert "TASK_TASKS_FETCHED" in sdk_counts
    assert counts(parity.ours.server.logs) == sdk_counts

    def errors(logs: list[dict]) -> list[tuple]:
        return sorted((e["step"], e["level"], e["data"]["content"].split(" failed:", 1)[0], type(e["job"]).__name__)
                      for e in logs if e["event"] == "message" and e["level"] == "error")

    assert errors(parity.ours.server.logs) == errors(parity.sdk.server.logs)


@pytest.mark.parametrize("parity", ["inference"], indirect=True)
def test_the_pre_processor_is_deployed_and_asked_as_the_sdk_does(parity: Parity) -> None:
    """Same deploy body (resources as given, 0 kept, memory sent, ``language``) and the same inference
    bodies, image by image: a pre-processor cannot tell which of the two asked."""

    def bodies(side: Side) -> tuple[list, list]:
        posts = [r.body for r in side.server.requests_to("POST", "^/plugins/")]
        deploys = [b for b in posts if b.get("action") == "deployment"]
        calls = sorted((b for b in posts if b.get("action") == "inference"), key=lambda b: json.dumps(b, sort_keys=True))
        return deploys, calls

    sdk_deploys, sdk_calls = bodies(parity.sdk)
    our_deploys, our_calls = bodies(parity.ours)
    assert our_deploys == sdk_deploys
    assert our_calls == sdk_calls


def test_every_request_carries_the_tenant_and_url_host_as_the_sdks_do(parity: Parity) -> None:
    """Access-token mode with ``SYNAPSE_PLUGIN_RUN_TENANT`` and ``SYNAPSE_PLUGIN_RUN_URL_HOST`` set: the SDK
    sends ``Synapse-Tenant: Token <tenant>`` and ``url_host=<host>`` on every request; so must we."""
    requests = parity.ours.server.requests
    assert requests
    wrong = sorted({(r.method, r.path, r.header("synapse-tenant"), r.query.get("url_host")) for r in requests
                    if r.header("synapse-tenant") != f"Token {TENANT}" or r.query.get("url_host") != URL_HOST})
    assert not wrong, wrong[:10]

    def schemas(side: Side) -> set:
        return {r.query.get("schema") for r in side.server.requests_to("PUT")}

    assert schemas(parity.ours) == schemas(parity.sdk) == {parity.schema}


def test_a_saved_login_is_used_as_the_sdk_uses_it(sdk_python: str, tmp_path: Path) -> None:
    """No host or token in the environment, only what ``synapse login`` saved in
    ``~/.synapse/config.json`` (its ``tenant`` too): the SDK runs with the file's host and access
    token, without the tenant (its v1 client takes that from the environment only); so must we."""
    files = FileServer().start()
    servers = {side: SynapseServer(tokens=(TOKEN,), max_page_size=PAGE).start() for side in ("sdk", "ours")}
    try:
        seeds = {side: seed_parity(server, files) for side, server in servers.items()}
        params = seeds["sdk"].file_params()
        homes = {side: tmp_path / f"{side}-home" for side in servers}
        for side, home in homes.items():
            (home / ".synapse").mkdir(parents=True)
            saved = home / ".synapse" / "config.json"
            saved.write_text(json.dumps({"host": servers[side].url, "access_token": TOKEN, "tenant": "saved-tenant"}))
            saved.chmod(0o600)
        no_env = {"SYNAPSE_HOST": "", "SYNAPSE_ACCESS_TOKEN": "", "SYNAPSE_PLUGIN_RUN_TENANT": ""}
        sdk = Side(servers["sdk"], seeds["sdk"], *_run_sdk(sdk_python, servers["sdk"], seeds["sdk"], params,
                                                           homes["sdk"], extra_env=no_env))
        ours = Side(servers["ours"], seeds["ours"], *_run_ours(servers["ours"], seeds["ours"], params, tmp_path,
                                                               extra_env={**no_env, "HOME": str(homes["ours"])}))
        assert sdk.returncode == 0 and sdk.result is not None, sdk.output
        assert ours.returncode == 0, ours.output  # before: 'no Synapse credentials', exit 2
        for task_id in seeds["sdk"].task_ids:
            assert json_differences(sdk.data(task_id), ours.data(task_id)) == [], task_id
        for side in (sdk, ours):
            sent = {(r.header("synapse-access-token"), r.header("synapse-tenant")) for r in side.server.requests}
            assert sent == {(f"Token {TOKEN}", None)}, sent
    finally:
        for server in servers.values():
            server.stop()
        files.stop()


def test_a_subclass_of_the_sdks_action_converts_for_run_as_under_the_sdk(
        sdk_python: str, project_deps_for_sdk_python: Path, tmp_path: Path) -> None:
    """Existing ToTask plugins run unchanged: ``totask-manifest run`` on the SDK's Python, with ``converter``
    naming a subclass of the SDK's ``ToTaskAction`` that reads ``self.context.params``, ``self.params`` and
    ``task_data`` as the SDK documents, writes what the SDK writes with the same class."""
    repo = Path(__file__).resolve().parent.parent
    plugin = "sdk_parity_plugin.ContextReadingToTask"
    files = FileServer().start()
    sdk_server = SynapseServer(tokens=(TOKEN,), max_page_size=PAGE).start()
    our_server = SynapseServer(tokens=(TOKEN,), max_page_size=PAGE).start()
    try:
        seed = seed_parity(sdk_server, files)
        assert seed_parity(our_server, files) == seed
        params = seed.file_params()
        rc, result, output = _run_sdk(sdk_python, sdk_server, seed, params, tmp_path / "sdk-home", entrypoint=plugin)
        assert rc == 0 and result is not None, output
        stamped = sdk_server.tasks[seed.task_ids[0]]["data"]["extra"]["image_1"]["converted_by"]
        assert stamped == {"task": seed.task_ids[0], "data_unit": stamped["data_unit"], "spec": "annotation_data",
                           "job": "Parity_File", "primary": "0.png", "data_file": "0.json"}
        (tmp_path / "ours").mkdir()
        env = {"PYTHONPATH": os.pathsep.join([str(repo), str(project_deps_for_sdk_python), str(SUPPORT)])}
        rc, _, output = _run_ours(our_server, seed, {**params, "converter": plugin}, tmp_path / "ours",
                                  python=sdk_python, extra_env=env)
        differences = {t: json_differences(sdk_server.tasks[t]["data"], our_server.tasks[t]["data"])
                       for t in seed.task_ids}
        differences = {t: d for t, d in differences.items() if d}
        written = sum(1 for t in seed.task_ids if sdk_server.tasks[t].get("writes"))
        print(f"parity (file, SDK plugin class as converter): {len(seed.task_ids) - len(differences)}/"
              f"{len(seed.task_ids)} tasks equal ({written} written by the SDK)")
        assert not differences, f"{differences}\nours: rc={rc}\n{output[-2000:]}"
    finally:
        our_server.stop()
        sdk_server.stop()
        files.stop()


def test_a_subclass_of_the_sdks_action_converts_for_annotate_as_under_the_sdk(
        sdk_python: str, project_deps_for_sdk_python: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same plugin class named by ``annotate --converter`` (not only by ``run``): each labeled line
    holds what the SDK wrote with that class, apart from ``self.params.name`` (the SDK's run name;
    here the job's name, a run name with ``_`` being no job name)."""
    from totask_manifest._synapse.export import export_tasks
    from totask_manifest._synapse.sync_client import SynapseClient

    repo = Path(__file__).resolve().parent.parent
    plugin = "sdk_parity_plugin.ContextReadingToTask"
    files = FileServer().start()
    sdk_server = SynapseServer(tokens=(TOKEN,), max_page_size=PAGE).start()
    our_server = SynapseServer(tokens=(TOKEN,), max_page_size=PAGE).start()
    try:
        seed = seed_parity(sdk_server, files)
        assert seed_parity(our_server, files) == seed
        params = seed.file_params()
        rc, result, output = _run_sdk(sdk_python, sdk_server, seed, params, tmp_path / "sdk-home", entrypoint=plugin)
        assert rc == 0 and result is not None, output
        manifest = tmp_path / "export.manifest"
        for name in [k for k in os.environ if k.startswith("SYNAPSE_")]:
            monkeypatch.delenv(name)
        monkeypatch.setenv("SYNAPSE_HOST", our_server.url)
        monkeypatch.setenv("SYNAPSE_ACCESS_TOKEN", TOKEN)
        client = SynapseClient()
        try:
            export_tasks(seed.project, str(manifest), filters={"status": "pending"}, client=client)
        finally:
            client.close()
        env = {**_base_env(), "SYNAPSE_HOST": our_server.url, "SYNAPSE_ACCESS_TOKEN": TOKEN,
               "PYTHONPATH": os.pathsep.join([str(repo), str(project_deps_for_sdk_python), str(SUPPORT)]),
               "PYTHONWARNINGS": "ignore"}
        proc = subprocess.run([sdk_python, "-m", "totask_manifest", "annotate", str(manifest), "--job-name", "parity-ann",
                               "--label-attribute", "d", "--task-type", "object-detection", "--method", "file",
                               "--target-specification-name", TARGET_SPEC, "--converter", plugin,
                               "--output", str(tmp_path / "jobs")],
                              env=env, cwd=str(tmp_path), capture_output=True, text=True, timeout=RUN_TIMEOUT)
        records = [json.loads(x) for x in (tmp_path / "jobs" / "parity-ann" / "manifests" / "output" /
                                           "output.manifest").read_text().splitlines()]
        compared = equal = 0
        for rec in records:
            task_id = rec["synapse"]["task_id"]
            if not sdk_server.tasks[task_id].get("writes") or "d" not in rec:
                continue
            compared += 1
            sdk_data = json.loads(json.dumps(sdk_server.tasks[task_id]["data"]))
            ours = json.loads(json.dumps(rec["d"]))
            assert ours["extra"]["image_1"]["converted_by"].pop("job") == "parity-ann"
            sdk_data["extra"]["image_1"]["converted_by"].pop("job")
            equal += not json_differences(sdk_data, ours)
        written = sum(1 for t in seed.task_ids if sdk_server.tasks[t].get("writes"))
        print(f"parity (annotate --converter, SDK plugin class): {equal}/{compared} labeled lines equal to the SDK's "
              f"task data ({written} written by the SDK)")
        assert compared == written and equal == compared, proc.stderr[-3000:]
    finally:
        our_server.stop()
        sdk_server.stop()
        files.stop()
