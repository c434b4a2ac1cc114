"""Two ``run``s of one action started in the same instant: exactly one runs, the other is refused
in one line naming the holder. ``claim`` (resume or start over: the run's record, the archive)
ran before the job folder's lease was taken, so a second run could claim between the first's
claim and its lease: it rewrote the first's record (or, with other parameters, moved the folder
the first had just claimed to the archive) and then ran the whole action itself. The claim is now
made under the lease. The first run here pauses right after its claim (a hook in its process),
which is where the second one slipped in."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from tests.jobs_helpers import REPO
from totask_manifest.testing.builders import TOKEN, seed_tasks

pytest_plugins = ["totask_manifest.testing.fixtures"]

#: the first run: ``claim`` as it is, then wait (``<pause>.reached`` written) until ``<pause>.go`` appears
_PAUSING = """
import os, sys, time
from pathlib import Path
import totask_manifest._to_task.action as action
real = action.claim
def claim(*args, **kwargs):
    url = real(*args, **kwargs)
    pause = Path(os.environ["PAUSE_AFTER_CLAIM"])
    Path(str(pause) + ".reached").touch()
    deadline = time.monotonic() + 120
    while not Path(str(pause) + ".go").exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    return url
action.claim = claim
from totask_manifest._cli import main
sys.exit(main(sys.argv[1:]))
"""


def _run(params: Path, out: Path, pause: Path | None = None) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}  # the synapse fixture's SYNAPSE_HOST and token
    head = [sys.executable, "-m", "totask_manifest"]
    if pause is not None:
        env["PAUSE_AFTER_CLAIM"] = str(pause)
        head = [sys.executable, "-c", _PAUSING]
    return subprocess.Popen([*head, "run", str(params), "--output", str(out)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=params.parent, env=env)


@pytest.mark.parametrize("second_agent", [1, 2])  # 1: the same action (resumable), 2: another one (archives)
def test_a_run_started_between_anothers_claim_and_lease_is_refused(synapse, files, tmp_path: Path,
                                                                    second_agent: int) -> None:
    assert os.environ["SYNAPSE_ACCESS_TOKEN"] == TOKEN
    pid = seed_tasks(synapse, files, 3)
    for name, agent in (("a", 1), ("b", second_agent)):
        (tmp_path / f"{name}.json").write_bytes(orjson.dumps({
            "name": "Two_Runs", "project": pid, "agent": agent, "method": "file",
            "target_specification_name": "annotation_data"}))
    out, job, pause = tmp_path / "out", tmp_path / "out" / "two-runs", tmp_path / "pause"
    first = _run(tmp_path / "a.json", out, pause)
    try:
        deadline = time.monotonic() + 120
        while not Path(f"{pause}.reached").exists():
            assert first.poll() is None, first.communicate()
            assert time.monotonic() < deadline, "the first run did not claim within 120 s"
            time.sleep(0.01)
        second = _run(tmp_path / "b.json", out)
        second_out, second_err = second.communicate(timeout=120)
        Path(f"{pause}.go").touch()
        first_out, first_err = first.communicate(timeout=120)
    finally:
        if first.poll() is None:
            first.kill()
            first.communicate()
    second_err = second_err.decode()
    assert second.returncode == 2, second_err  # in use: 2, as every command gives it
    refusal = f"job {job} is in use by pid {first.pid} on host"
    assert refusal in orjson.loads(second_out)["message"], second_out
    assert "Fetching task list" not in second_err and "moved to" not in second_err, second_err
    assert first.returncode == 0, first_err
    assert orjson.loads(first_out)["status"] == "SUCCEEDED"
    assert not (out / ".totask-archive").exists()
    record = orjson.loads((job / "totask-run.json").read_bytes())
    assert record["runs"] == 1 and record["status"] == "SUCCEEDED", record
    assert record["params"] == orjson.loads((tmp_path / "a.json").read_bytes())
