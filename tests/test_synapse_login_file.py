"""``~/.synapse/config.json``, what ``synapse login`` saves: the SDK falls back to its ``host`` and
``access_token`` for what the environment does not name (``synapse_sdk.utils.auth.load_credentials``,
key by key), so a user who logged in with the SDK's CLI runs the tool without exporting anything.
Its token goes to its host only, is masked as the environment's are, and a file that cannot be used
is one line naming it (exit 2).

The CLI runs as a real subprocess with ``HOME`` a temporary folder; Synapse is the contract server.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import orjson
import pytest

from tests.jobs_helpers import run_cli
from totask_manifest.testing.synapse_server import SynapseServer

pytest_plugins = ["totask_manifest.testing.fixtures"]

SAVED = "SavedTok-SECRET-9051"
#: the environment of a user who ran ``synapse login`` and exported nothing
NO_ENV = {"SYNAPSE_HOST": "", "SYNAPSE_PLUGIN_RUN_HOST": "", "SYNAPSE_ACCESS_TOKEN": "",
          "SYNAPSE_PLUGIN_RUN_USER_TOKEN": "", "SYNAPSE_PLUGIN_RUN_TENANT": ""}


def login(home: Path, config: object | str, mode: int = 0o600) -> Path:
    """``home/.synapse/config.json`` as ``synapse login`` writes it (``chmod 600``)."""
    path = home / ".synapse" / "config.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(config if isinstance(config, str) else json.dumps(config, indent=2))
    path.chmod(mode)
    return path


def export(home: Path, out: Path, **env: str):
    return run_cli("export", "--project", "1", "-o", str(out), env={**NO_ENV, "HOME": str(home), **env})


def one_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert "Traceback" not in stderr and len(lines) == 1, stderr
    return lines[0]


@pytest.fixture
def saved(synapse: SynapseServer) -> SynapseServer:
    """The contract server, which takes the saved token, with one task in project 1."""
    synapse.tokens.add(SAVED)
    synapse.seed(1, project_id=1)
    return synapse


def test_export_uses_the_host_and_token_synapse_login_saved(saved, tmp_path: Path) -> None:
    login(tmp_path, {"host": saved.url, "access_token": SAVED, "tenant": "acme"})
    r = export(tmp_path, tmp_path / "x.manifest")
    # before: 'no Synapse credentials' (exit 2) where the SDK runs with the saved login
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("exported 1 task") and SAVED not in r.stdout + r.stderr
    sent = [(rec.headers.get("synapse-access-token"), rec.headers.get("synapse-tenant")) for rec in saved.requests]
    # the file's tenant is not sent: the SDK's v1 client takes it from the environment only
    assert sent and set(sent) == {(f"Token {SAVED}", None)}


def test_a_variable_wins_over_the_files_key_one_by_one(saved, tmp_path: Path) -> None:
    """As the SDK's ``load_credentials``: the environment's token with the file's host."""
    login(tmp_path, {"host": saved.url, "access_token": "refused-by-the-server-1234"})
    r = export(tmp_path, tmp_path / "x.manifest", SYNAPSE_ACCESS_TOKEN=SAVED)
    assert r.returncode == 0, r.stderr
    assert {rec.headers.get("synapse-access-token") for rec in saved.requests} == {f"Token {SAVED}"}


def test_the_files_token_goes_to_no_other_host(saved, tmp_path: Path) -> None:
    """``SYNAPSE_HOST`` naming another host than the file's: the SDK would send the saved token
    there; it is refused before any request, naming both hosts, the token not shown."""
    other = SynapseServer(tokens=(SAVED,)).start()
    try:
        path = login(tmp_path, {"host": saved.url, "access_token": SAVED})
        r = export(tmp_path, tmp_path / "x.manifest", SYNAPSE_HOST=other.url)
        assert r.returncode == 2, r.stderr
        line = one_line(r.stderr)
        assert f"SYNAPSE_HOST ({other.url}) is not the host {path} keeps its access_token for ({saved.url})" in line
        assert SAVED not in r.stdout + r.stderr
        assert other.requests == [] and saved.requests == []
        # the same origin written another way is the file's host
        same = export(tmp_path, tmp_path / "y.manifest", SYNAPSE_HOST=saved.url + "/")
        assert same.returncode == 0, same.stderr
    finally:
        other.stop()


@pytest.mark.parametrize(("content", "problem"), [
    ('{"host": "http://h", "access_token": "' + SAVED, "is not valid JSON (line 1, column"),
    ("[1, 2]", "must hold a JSON object, not a list"),
    (b"\xff\xfe{}", "is not UTF-8 text"),
    (None, "is not a file (a folder?)"),
], ids=["cut-json", "list", "not-utf8", "folder"])
def test_a_login_file_that_cannot_be_used_is_one_line_naming_it(saved, tmp_path: Path, content, problem) -> None:
    path = tmp_path / ".synapse" / "config.json"
    if content is None:
        path.mkdir(parents=True)
    else:
        path.parent.mkdir(parents=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    r = export(tmp_path, tmp_path / "x.manifest")
    # before: 'no Synapse credentials' (the SDK: the file silently ignored; a list: AttributeError)
    assert r.returncode == 2, r.stderr
    line = one_line(r.stderr)
    assert line.startswith(f"totask-manifest export: error: {path} {problem}"), line
    assert "synapse login" in line and SAVED not in r.stdout + r.stderr
    assert saved.requests == [] and not (tmp_path / "x.manifest").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a file whatever its mode")
def test_a_login_file_that_cannot_be_read_is_one_line_naming_it(saved, tmp_path: Path) -> None:
    path = login(tmp_path, {"host": saved.url, "access_token": SAVED}, mode=0o000)
    r = export(tmp_path, tmp_path / "x.manifest")
    assert r.returncode == 2, r.stderr
    assert f"{path} cannot be read (Permission denied)" in one_line(r.stderr)


@pytest.mark.parametrize(("config", "problem"), [
    ({"host": "api.synapse.sh", "access_token": SAVED}, "'host' in {path} must be an http:// or https:// URL"),
    ({"host": "https://u:pw@h.example", "access_token": SAVED}, "'host' in {path} must not carry a user name"),
    ({"access_token": 12345678}, "'access_token' in {path} must be a string, not int"),
    ({"access_token": "tok"}, "'access_token' in {path} is too short to be a token"),
], ids=["host-no-scheme", "host-password", "token-int", "token-short"])
def test_a_bad_key_of_the_login_file_is_named(saved, tmp_path: Path, config: dict, problem: str) -> None:
    path = login(tmp_path, config)
    r = export(tmp_path, tmp_path / "x.manifest")
    assert r.returncode == 2, r.stderr
    assert problem.format(path=path) in one_line(r.stderr)
    assert saved.requests == [] and "pw@" not in r.stderr


def test_a_file_the_run_does_not_need_is_not_read(saved, tmp_path: Path) -> None:
    """Host and token both in the environment: a broken file (the SDK ignores it) stops nothing."""
    login(tmp_path, "{not json")
    r = export(tmp_path, tmp_path / "x.manifest", SYNAPSE_HOST=saved.url, SYNAPSE_ACCESS_TOKEN=SAVED)
    assert r.returncode == 0, r.stderr


def test_a_token_in_the_environment_leaves_the_files_token_unread(saved, tmp_path: Path) -> None:
    """The token from the environment, the host from the file: the file's own token is not sent, so
    a stale or short one, readable by others, neither stops the run nor is warned of."""
    login(tmp_path, {"host": saved.url, "access_token": "ab"}, mode=0o644)
    r = export(tmp_path, tmp_path / "x.manifest", SYNAPSE_ACCESS_TOKEN=SAVED)
    assert r.returncode == 0, r.stderr
    assert "access_token" not in r.stderr and "others may read it" not in r.stderr, r.stderr


def test_a_login_file_others_may_read_is_used_with_a_warning(saved, tmp_path: Path) -> None:
    """The SDK's ``synapse doctor`` warns of such a file (its runs say nothing): one warning line."""
    path = login(tmp_path, {"host": saved.url, "access_token": SAVED}, mode=0o644)
    r = export(tmp_path, tmp_path / "x.manifest")
    assert r.returncode == 0, r.stderr
    warnings = [line for line in r.stderr.splitlines() if "others may read it" in line]
    assert warnings == [f"warning: {path} holds a Synapse token and others may read it (mode 644): "
                        f"run `chmod 600 {path}`"], r.stderr


def test_without_login_or_variables_the_message_names_synapse_login(saved, tmp_path: Path) -> None:
    r = export(tmp_path, tmp_path / "x.manifest")
    assert r.returncode == 2, r.stderr
    assert "no Synapse credentials" in one_line(r.stderr)
    assert f"run `synapse login` (it saves the token in {tmp_path / '.synapse' / 'config.json'})" in r.stderr


@pytest.mark.parametrize("raises", [False, True], ids=["failed", "raised"])
def test_a_method_plugins_words_never_carry_the_saved_token(tmp_path: Path, raises: bool) -> None:
    """A plugin can read the file as it reads the environment: what it says is masked alike in
    failures.jsonl, job.json, the output manifest and the terminal."""
    login(tmp_path, {"host": "https://syn.example.com", "access_token": SAVED})
    manifest = tmp_path / "in.manifest"
    manifest.write_bytes(b"".join(orjson.dumps({"source-ref": f"s3://b/{i}.jpg"}) + b"\n" for i in range(3)))
    r = run_cli("-v", "annotate", str(manifest), "--job-name", "e", "--label-attribute", "cls", "--task-type",
                "image-classification", "--method", "tests.support.toy_annotators:EnvEcho", "--output",
                str(tmp_path / "out"), *(["--echo-raise"] if raises else []),
                env={**NO_ENV, "HOME": str(tmp_path), "TOTASK_MODEL_AUTHORIZATION": ""})
    assert r.returncode == 1, r.stderr
    job = tmp_path / "out" / "e"
    where = (job / "job.json") if raises else (job / "failures.jsonl")
    assert "saved login ***" in where.read_text() and "saved login ***" in r.stdout + r.stderr
    texts = [("output", r.stdout + r.stderr)] + [(str(p), p.read_text(errors="replace")) for p in job.rglob("*") if p.is_file()]
    for name, text in texts:
        assert SAVED not in text, f"the saved token in {name}"


def test_a_backend_that_moved_names_the_login_file_as_where_the_host_came_from(tmp_path: Path) -> None:
    """A host from the login file that answers 301: the line said 'check SYNAPSE_HOST', a variable
    the user never set; it names the file's key."""
    from aiohttp import web

    from tests.support.http_server import LocalHTTPServer

    async def moved(request: web.Request) -> web.StreamResponse:
        return web.Response(status=301, headers={"Location": "https://new.example.com/api/"})

    with LocalHTTPServer(moved) as server:
        host = server.url("").rstrip("/")
        path = login(tmp_path, {"host": host, "access_token": SAVED})
        r = export(tmp_path, tmp_path / "x.manifest")
    assert r.returncode == 1, r.stderr
    assert one_line(r.stderr).endswith(f"redirects are not followed: check 'host' in {path} (now {host})"), r.stderr


@pytest.mark.parametrize(("env", "named"), [
    ({"SYNAPSE_HOST": "http://127.0.0.1:9"}, "SYNAPSE_HOST"),
    ({"SYNAPSE_PLUGIN_RUN_HOST": "http://127.0.0.1:9"}, "SYNAPSE_PLUGIN_RUN_HOST"),
    ({}, "SYNAPSE_HOST"),  # the default host: SYNAPSE_HOST is where another one is set
])
def test_a_project_gone_names_where_the_host_came_from(tmp_path: Path, env: dict, named: str) -> None:
    from totask_manifest._synapse.settings import SynapseSettings
    from totask_manifest._synapse.workers import project_gone

    settings = SynapseSettings.from_env({**NO_ENV, "HOME": str(tmp_path), "SYNAPSE_ACCESS_TOKEN": "tok-test", **env})
    assert project_gone(7, settings) == ("project 7 is gone (404); if it still exists in Synapse, check "
                                         f"{named} (now {settings.host})")
    path = login(tmp_path, {"host": "http://127.0.0.1:9/api", "access_token": SAVED})
    settings = SynapseSettings.from_env({**NO_ENV, "HOME": str(tmp_path)})
    assert project_gone(7, settings).endswith(f"check 'host' in {path} (now http://127.0.0.1:9/api)")
