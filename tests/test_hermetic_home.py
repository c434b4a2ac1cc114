"""The suite never reads the machine's own login: ``HOME`` is an empty temporary folder for every
test and every process it starts, and the variables the tool takes credentials from are unset
(``tests/conftest.py``). Before, a machine where someone had run ``synapse login`` sent its saved
``~/.synapse/config.json`` into every test that expects "no Synapse credentials".

Nothing here writes into the real home: the session test gives a nested pytest a home of its own,
holding a real-looking login file, as the machine's HOME.
"""

from __future__ import annotations

import json
import os
import pwd
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

#: a test run where the runner's own HOME holds a login and its environment a token: the test
#: sees neither, nor does the CLI it starts
INNER_TEST = '''
import subprocess, sys
from pathlib import Path

from totask_manifest._credentials import sdk_config
from totask_manifest._synapse.settings import SynapseSettings


def test_new_user(tmp_path):
    assert not (Path.home() / ".synapse").exists()
    assert sdk_config() is None
    assert not SynapseSettings.from_env().has_credentials
    r = subprocess.run([sys.executable, "-m", "totask_manifest", "export", "--project", "1",
                        "-o", str(tmp_path / "e.manifest")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stderr
    assert "no Synapse credentials" in r.stderr, r.stderr
'''


def test_each_test_has_an_empty_home_of_its_own(tmp_path: Path) -> None:
    real = Path(pwd.getpwuid(os.getuid()).pw_dir)
    home = Path.home()
    assert home != real and Path(os.path.expanduser("~")) == home
    assert home.parent == tmp_path.parent  # among pytest's own temporaries
    assert [p.name for p in home.iterdir()] == [".ray"] and (home / ".ray").is_symlink()  # only the session Ray token link
    child = subprocess.run([sys.executable, "-c", "import pathlib; print(pathlib.Path.home())"],
                           capture_output=True, text=True, timeout=60, check=True)
    assert child.stdout.strip() == str(home)


@pytest.mark.slow  # a nested pytest session and a CLI subprocess
def test_the_machines_login_and_token_reach_no_test(tmp_path: Path) -> None:
    machine_home = tmp_path / "machine-home"  # the HOME of the user who runs the suite
    (machine_home / ".synapse").mkdir(parents=True)
    login = machine_home / ".synapse" / "config.json"
    login.write_text(json.dumps({"host": "https://synapse.example.com", "access_token": "Saved-Login-Tok-4417"}))
    login.chmod(0o600)
    (tmp_path / "test_inner.py").write_text(INNER_TEST)
    env = {**os.environ, "HOME": str(machine_home), "PYTHONPATH": str(REPO),
           "SYNAPSE_ACCESS_TOKEN": "Env-Tok-Of-The-Machine-77", "SYNAPSE_HOST": "https://synapse.example.com"}
    r = subprocess.run([sys.executable, "-m", "pytest", "-p", "tests.conftest", "-p", "no:cacheprovider", "-q",
                        "--rootdir", str(tmp_path), str(tmp_path / "test_inner.py")],
                       capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert "1 passed" in r.stdout
