"""What the CLI prints when code breaks where no one-line error was foreseen: a traceback (the job's
own code broke: ``job J failed`` and its traceback; an exception out of the command: Python's
report). Its exception text may quote what a plugin read from the environment; masked in the
one-line errors and job.json, it went out whole in the traceback above them, with and without ``-v``.
Every credential of the environment is masked there too: Synapse's tokens, the model's
``Authorization``, the AWS keys, a proxy's password. Real parts: the CLI as a subprocess, its
environment holding the credentials as a user's does, and plugins written to a folder of the test's."""

from __future__ import annotations

import os
from pathlib import Path

import orjson
import pytest

from tests.jobs_helpers import REPO, run_cli
from totask_manifest._credentials import env_credentials

#: each credential variable and its value (the proxy's password is its URL's)
CREDENTIALS = {
    "SYNAPSE_ACCESS_TOKEN": "SynTok-SECRET-4411",
    "SYNAPSE_PLUGIN_RUN_USER_TOKEN": "UserTok-SECRET-5522",
    "TOTASK_MODEL_AUTHORIZATION": "Bearer MdlSECRET77",
    "AWS_SECRET_ACCESS_KEY": "AwsKeySECRET-6633",
    "AWS_SESSION_TOKEN": "AwsSessionSECRET-7744",
    "HTTPS_PROXY": "http://bob:PrxPwSECRET88@127.0.0.1:9",
}
SECRETS = ("SynTok-SECRET-4411", "UserTok-SECRET-5522", "MdlSECRET77", "AwsKeySECRET-6633", "AwsSessionSECRET-7744",
           "PrxPwSECRET88")

#: a careless helper library that is not the plugin's own package (its code raising is the job's
#: "own code broke" case: ``job J failed`` with the traceback): it quotes what it read, and keeps
#: the credentials in a local variable too
HELPER = '''
import os
from totask_manifest import BatchAnnotator

class Base(BatchAnnotator):
    def annotate_batch(self, items):
        said = " / ".join(os.environ.get(k, "") for k in os.environ["LEAK_VARIABLES"].split(","))
        raise RuntimeError(f"login refused: {said}")
'''
PLUGINS = {
    "leak_helper.py": HELPER,
    # a plugin built on the helper: the raise is in the helper's frame, not the plugin's
    "leak_inherited.py": "from leak_helper import Base\n\nclass Plug(Base):\n    name = 'leak'\n",
    # a plugin whose Options refuse themselves: the exception leaves the command (Python's traceback)
    "leak_options.py": '''
import os
from dataclasses import dataclass
from totask_manifest import BatchAnnotator, Options

@dataclass(frozen=True)
class O(Options):
    def __post_init__(self):
        said = " / ".join(os.environ.get(k, "") for k in os.environ["LEAK_VARIABLES"].split(","))
        raise RuntimeError(f"options refused: {said}")

class Plug(BatchAnnotator):
    name = "leak-options"
    Options = O

    def annotate_batch(self, items):
        return []
''',
    # a plugin whose own code gives up with an OSError (requests' ConnectionError is one) or sys.exit:
    # the job's error is the exception's text, or the exit's code
    "leak_gives_up.py": '''
import os, sys
from totask_manifest import BatchAnnotator

class Plug(BatchAnnotator):
    name = "leak-gives-up"

    def annotate_batch(self, items):
        said = " / ".join(os.environ.get(k, "") for k in os.environ["LEAK_VARIABLES"].split(","))
        if os.environ.get("LEAK_HOW") == "exit":
            sys.exit(f"gave up: {said}")
        raise ConnectionError(f"connection refused: {said}")
''',
    # a plugin whose __del__ raises: Python prints "Exception ignored in" and the traceback
    "leak_del.py": '''
import os
from totask_manifest import BatchAnnotator, Failed

class Plug(BatchAnnotator):
    name = "leak-del"

    def annotate_batch(self, items):
        return [Failed("not today") for _ in items]

    def __del__(self):
        said = " / ".join(os.environ.get(k, "") for k in os.environ["LEAK_VARIABLES"].split(","))
        raise RuntimeError(f"closing: {said}")
''',
    # a plugin that warns, quoting what it read
    "leak_warns.py": '''
import os, warnings
from totask_manifest import BatchAnnotator, Failed

class Plug(BatchAnnotator):
    name = "leak-warns"

    def annotate_batch(self, items):
        said = " / ".join(os.environ.get(k, "") for k in os.environ["LEAK_VARIABLES"].split(","))
        warnings.warn(f"expiring soon: {said}")
        return [Failed("not today") for _ in items]
''',
    # a plugin module that fails as it is imported: the one-line error quotes its first line
    "leak_import.py": 'import os\n\nraise RuntimeError("import refused: " + os.environ["SYNAPSE_ACCESS_TOKEN"])\n',
}


def _annotate(tmp_path: Path, method: str, verbose: bool, **more: str):
    for name, text in PLUGINS.items():
        (tmp_path / name).write_text(text)
    manifest = tmp_path / "in.manifest"
    manifest.write_bytes(b"".join(orjson.dumps({"source-ref": f"s3://b/{i}.jpg"}) + b"\n" for i in range(2)))
    env = {**CREDENTIALS, "LEAK_VARIABLES": ",".join(CREDENTIALS), "PYTHONPATH": f"{REPO}{os.pathsep}{tmp_path}", **more}
    return run_cli(*(["-v"] if verbose else []), "annotate", str(manifest), "--job-name", "e", "--label-attribute",
                   "cls", "--task-type", "image-classification", "--method", method, "--output",
                   str(tmp_path / "out"), env=env)


def _assert_no_secret(text: str, tmp_path: Path) -> None:
    written = [(str(p), p.read_text(errors="replace")) for p in (tmp_path / "out").rglob("*") if p.is_file()]
    for secret in SECRETS:
        for name, said in [("the command's output", text), *written]:
            assert secret not in said, f"{secret} in {name}"


@pytest.mark.slow
@pytest.mark.parametrize("verbose", [False, True], ids=["plain", "-v"])
def test_the_traceback_of_a_job_whose_code_broke_masks_the_environments_credentials(tmp_path: Path,
                                                                                   verbose: bool) -> None:
    r = _annotate(tmp_path, "leak_inherited:Plug", verbose)
    assert r.returncode == 1, r.stderr
    # the traceback is still there (it says where the code broke), its text masked
    assert "Traceback (most recent call last)" in r.stderr and "leak_helper.py" in r.stderr, r.stderr
    assert "RuntimeError: login refused: *** / *** / *** / *** / *** / http://" in r.stderr, r.stderr
    _assert_no_secret(r.stdout + r.stderr, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("verbose", [False, True], ids=["plain", "-v"])
def test_options_that_raise_quoting_the_credentials_are_one_masked_line(
        tmp_path: Path, verbose: bool) -> None:
    """A plugin's ``Options.__post_init__`` raising with the environment's credentials in its text
    went out of the command as a traceback quoting them; it is one usage line now, masked."""
    r = _annotate(tmp_path, "leak_options:Plug", verbose)
    assert r.returncode == 2, r.stderr
    assert "its options raised RuntimeError: options refused: *** / ***" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    _assert_no_secret(r.stdout + r.stderr, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("plugin", ["leak_del", "leak_warns"])
def test_what_python_prints_of_a_plugin_masks_the_environments_credentials(tmp_path: Path, plugin: str) -> None:
    """An exception Python cannot raise (``__del__``: "Exception ignored in"), and a warning."""
    r = _annotate(tmp_path, f"{plugin}:Plug", False)
    assert r.returncode == 1, r.stderr
    said = "RuntimeError: closing: *** / ***" if plugin == "leak_del" else "UserWarning: expiring soon: *** / ***"
    assert said in r.stderr, r.stderr
    _assert_no_secret(r.stdout + r.stderr, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("how", ["oserror", "exit"])
def test_a_job_ended_by_a_plugins_oserror_or_exit_records_no_credential(tmp_path: Path, how: str) -> None:
    """The job's error went masked into job.json only when the plugin raised some other exception:
    an ``OSError`` (met as a full disk is) and ``sys.exit``'s code were kept whole, in job.json and
    in the summary's ``error:`` line on stdout."""
    r = _annotate(tmp_path, "leak_gives_up:Plug", False, LEAK_HOW=how)
    assert r.returncode == 1, r.stderr
    said = "connection refused: *** / ***" if how == "oserror" else "sys.exit('gave up: *** / ***"
    error = orjson.loads((tmp_path / "out" / "e" / "job.json").read_bytes())["error"]
    assert said in error and said in r.stdout, (error, r.stdout)
    _assert_no_secret(r.stdout + r.stderr, tmp_path)


@pytest.mark.slow
def test_a_plugin_that_fails_as_it_is_imported_is_named_without_the_token(tmp_path: Path) -> None:
    r = _annotate(tmp_path, "leak_import:Plug", False)
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith("totask-manifest annotate: error: method plugin 'leak_import:Plug': importing "
                               "'leak_import' failed: RuntimeError: import refused: ***"), r.stderr
    _assert_no_secret(r.stdout + r.stderr, tmp_path)


def test_the_environments_credentials_hold_the_aws_keys_and_every_proxys_password() -> None:
    """A proxy the run refuses (``socks5://``) or one without a scheme holds a password all the same."""
    found = env_credentials({"AWS_SECRET_ACCESS_KEY": "AwsKey-1", "AWS_DEFAULT_REGION": "us-east-1",
                             "all_proxy": "socks5://u:Sock%40s5@h:1", "HTTP_PROXY": "bob:pw99@h:3128",
                             "NO_PROXY": "a@b", "SYNAPSE_ACCESS_TOKEN": "Token abcdef"})
    assert {"AwsKey-1", "Sock@s5", "Sock%40s5", "pw99", "Token abcdef", "abcdef"} <= set(found), found
    assert "us-east-1" not in found and "b" not in found


@pytest.mark.slow
def test_runs_result_for_a_converter_that_fails_as_it_loads_keeps_no_credential(tmp_path: Path) -> None:
    """``run`` refuses parameters whose converter cannot be loaded, quoting the plugin's import
    error (one line, exit 2: a bad parameter file); its result (the JSON on stdout, exit 1, before)
    was returned before the masking of Synapse's tokens, and that masking knew no other credential."""
    (tmp_path / "leak_import.py").write_text(PLUGINS["leak_import.py"].replace("SYNAPSE_ACCESS_TOKEN",
                                                                              "TOTASK_MODEL_AUTHORIZATION"))
    params = tmp_path / "params.json"
    params.write_bytes(orjson.dumps({"name": "x", "project": 1, "agent": 1, "method": "file",
                                     "target_specification_name": "s", "converter": "leak_import:Plug"}))
    r = run_cli("run", str(params), "--output", str(tmp_path / "out"),
                env={**CREDENTIALS, "PYTHONPATH": f"{REPO}{os.pathsep}{tmp_path}"})
    assert r.returncode == 2 and r.stdout == "", r.stderr
    [line] = r.stderr.splitlines()
    assert line.startswith(f"totask-manifest run: error: parameter file {params}: invalid parameters: converter: ")
    assert line.endswith("importing 'leak_import' failed: RuntimeError: import refused: ***"), line
    for secret in SECRETS:
        assert secret not in r.stdout + r.stderr
