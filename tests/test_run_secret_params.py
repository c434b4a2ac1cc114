"""A secret among the ToTask action's parameters (``pre_processor_params: {api_key: <the Synapse
token>}``) goes to the Synapse host only: never into a file the run saves (``totask-run.json``,
job.json, ...), and a resumed run sends the value it reads again from the environment, not the
``***`` the files hold."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import orjson
import pytest

from totask_manifest import ToTaskAction
from totask_manifest._errors import UsageError
from totask_manifest.testing.builders import TOKEN, seed_tasks

pytest_plugins = ["totask_manifest.testing.fixtures"]

FAST = {"poll_interval": 0.01, "deferred_initial": 0.01}
BOX = {"objects": [{"class_id": 1, "type": "bbox", "properties": {"label": "dog"},
                    "coordinates": {"x": 2, "y": 3, "width": 4, "height": 5}}]}


def saved_with(root: Path, secret: str) -> list[str]:
    """The files under ``root`` holding ``secret``."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and secret.encode() in p.read_bytes())


def inference_params(pid: int, rel: int) -> dict:
    return {"name": "Keyed", "project": pid, "agent": 9, "method": "inference", "pre_processor": rel,
            "pre_processor_params": {"api_key": TOKEN, "confidence_threshold": 0.5}}


def sent_params(synapse, key: str = "api_key") -> list:
    """``key`` of each inference call's parameters, in the order the calls came."""
    return [r.body["params"]["json"].get(key) for r in synapse.requests_to("POST", "^/plugins/")
            if r.body["params"].get("json", {}).get("image_path")]


def test_an_api_key_equal_to_the_token_is_masked_in_what_run_saves(synapse, files, tmp_path) -> None:
    pid = seed_tasks(synapse, files, 2)
    rel = synapse.add_release("yolo", version="8.1.0")
    synapse.inference = lambda body: BOX
    result = ToTaskAction(params=inference_params(pid, rel), output_root=str(tmp_path), timing=FAST).start()
    assert result["status"] == "SUCCEEDED", result
    # before: totask-run.json held the token twice (its params and its identity), job.json once
    assert saved_with(tmp_path, TOKEN) == []
    record = orjson.loads((tmp_path / "keyed" / "totask-run.json").read_bytes())
    assert record["params"]["pre_processor_params"] == {"api_key": "${SYNAPSE_ACCESS_TOKEN}",
                                                      "confidence_threshold": 0.5}
    assert sent_params(synapse) == [TOKEN, TOKEN]  # the Synapse host still gets the value


def test_an_older_record_holding_the_key_is_masked_and_its_run_resumed(synapse, files, tmp_path) -> None:
    """A totask-run.json an older version wrote holds the key in plain text: the next run masks it
    there, and the run, the same as before, is resumed (before: its parameters differed from the
    masked ones, so it was moved to .totask-archive/ with the key, and a fresh run started)."""
    pid = seed_tasks(synapse, files, 2)
    rel = synapse.add_release("yolo", version="8.1.0")
    synapse.inference = lambda body: BOX
    action = ToTaskAction(params=inference_params(pid, rel), output_root=str(tmp_path), timing=FAST)
    assert action.start()["status"] == "SUCCEEDED"
    run_file = tmp_path / "keyed" / "totask-run.json"
    old = orjson.loads(run_file.read_bytes().replace(b"${SYNAPSE_ACCESS_TOKEN}", TOKEN.encode()))
    run_file.write_bytes(orjson.dumps({**old, "status": "FAILED"}))  # as an older version left a failed run
    assert saved_with(tmp_path, TOKEN) == ["keyed/totask-run.json"]
    again = ToTaskAction(params=inference_params(pid, rel), output_root=str(tmp_path), timing=FAST).start()
    assert again["status"] == "SUCCEEDED", again
    assert saved_with(tmp_path, TOKEN) == []
    assert orjson.loads(run_file.read_bytes())["runs"] == 2 and not (tmp_path / ".totask-archive").exists()


@pytest.mark.slow  # a killed run and its rerun, as subprocesses
def test_a_resumed_run_sends_the_key_read_again_from_the_environment(synapse, files, tmp_path) -> None:
    """``run`` is killed in the middle of the annotation, then run again: it resumes the job, whose
    job.json holds ``${SYNAPSE_ACCESS_TOKEN}``, and sends the token set now as the key."""
    n = 24
    pid = seed_tasks(synapse, files, n)
    rel = synapse.add_release("yolo", version="8.1.0")

    def slow(body: dict) -> dict:
        time.sleep(0.1)
        return BOX

    synapse.inference = slow
    enough = threading.Event()
    synapse.hooks.append(lambda server, rec: len(sent_params(server)) >= 3 and enough.set())
    params_file = tmp_path / "params.json"
    params = inference_params(pid, rel)
    params["pre_processor_params"]["auth_header"] = f"Bearer {TOKEN}"  # inside a longer string: sent whole too
    params_file.write_bytes(orjson.dumps({**params, "batch_size": 1}))
    command = [sys.executable, "-m", "totask_manifest", "run", str(params_file), "--output", str(tmp_path / "jobs"),
               "--concurrency", "2"]
    env = {**os.environ, "SYNAPSE_HOST": synapse.url, "SYNAPSE_ACCESS_TOKEN": TOKEN}
    first = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert enough.wait(120), first.stderr.read().decode() if first.poll() is not None else "no call seen"
        first.send_signal(signal.SIGKILL)
    finally:
        first.wait(30)
    before = len(sent_params(synapse))
    assert before < n, before  # lines were left for the resumed job
    second = subprocess.run(command, env=env, capture_output=True, timeout=240)
    assert second.returncode == 0, second.stderr.decode()
    record = orjson.loads((tmp_path / "jobs" / "keyed" / "totask-run.json").read_bytes())
    assert record["runs"] == 2  # the same run, resumed: the stored parameters still match
    assert saved_with(tmp_path / "jobs", TOKEN) == []
    resumed = sent_params(synapse)[before:]
    assert resumed and set(resumed) == {TOKEN}  # not ``${...}`` or ``***`` read from job.json
    assert set(sent_params(synapse, "auth_header")) == {f"Bearer {TOKEN}"}  # the first run's calls and the resumed ones


def test_a_key_whose_variable_is_gone_is_refused_in_one_line(tmp_path) -> None:
    from totask_manifest._credentials import run_params

    with pytest.raises(UsageError) as refused:
        run_params({"api_key": "${SYNAPSE_ACCESS_TOKEN}"}, "pre_processor_params", {"HOME": str(tmp_path)})
    assert str(refused.value) == ("pre_processor_params held SYNAPSE_ACCESS_TOKEN's value when the job started, and "
                                  "the job keeps only its name: set SYNAPSE_ACCESS_TOKEN again to resume it")


def header_params(pid: int, rel: int, header: str) -> dict:
    return {"name": "Keyed", "project": pid, "agent": 9, "method": "inference", "pre_processor": rel,
            "pre_processor_params": {"auth_header": header, "template": "${HOME} ${OTHER_VAR} $5"}}


def test_a_token_inside_a_longer_value_is_sent_whole_and_stored_as_a_reference(synapse, files, tmp_path) -> None:
    """``auth_header: Bearer <token>``: before, it was stored as ``Bearer ***`` and the job, which
    runs with the stored parameters, sent ``Bearer ***`` to the pre-processor on every call."""
    pid = seed_tasks(synapse, files, 2)
    rel = synapse.add_release("yolo", version="8.1.0")
    synapse.inference = lambda body: BOX
    result = ToTaskAction(params=header_params(pid, rel, f"Bearer {TOKEN}"), output_root=str(tmp_path),
                          timing=FAST).start()
    assert result["status"] == "SUCCEEDED", result
    assert sent_params(synapse, "auth_header") == [f"Bearer {TOKEN}"] * 2
    # a ``${...}`` naming no credential variable is the user's own text, sent as written
    assert sent_params(synapse, "template") == ["${HOME} ${OTHER_VAR} $5"] * 2
    assert saved_with(tmp_path, TOKEN) == []
    record = orjson.loads((tmp_path / "keyed" / "totask-run.json").read_bytes())
    assert record["params"]["pre_processor_params"]["auth_header"] == "Bearer ${SYNAPSE_ACCESS_TOKEN}"


def test_a_reference_the_user_wrote_is_sent_as_the_variable_value(synapse, files, tmp_path) -> None:
    """A parameter file may name the credential instead of holding it (``Bearer ${SYNAPSE_ACCESS_TOKEN}``):
    the seven credential variables' names are references, whoever wrote them."""
    pid = seed_tasks(synapse, files, 1)
    rel = synapse.add_release("yolo", version="8.1.0")
    synapse.inference = lambda body: BOX
    result = ToTaskAction(params=header_params(pid, rel, "Bearer ${SYNAPSE_ACCESS_TOKEN}"), output_root=str(tmp_path),
                          timing=FAST).start()
    assert result["status"] == "SUCCEEDED", result
    assert sent_params(synapse, "auth_header") == [f"Bearer {TOKEN}"]
    assert saved_with(tmp_path, TOKEN) == []


def test_a_credential_no_variable_holds_is_sent_by_the_run_and_refused_from_the_files_alone(tmp_path) -> None:
    """``TOTASK_MODEL_AUTHORIZATION=Bearer <key>`` and a parameter ``Token <key>``: no variable holds
    the key alone, so the files keep ``${***}``; the run that was given it sends it, a job read from
    its files alone (another process) is refused naming the parameter, never sent masked."""
    from totask_manifest import _credentials
    from totask_manifest._credentials import run_params, stored_params

    key = "k3yOnlyInAHeader99"
    env = {"HOME": str(tmp_path), "TOTASK_MODEL_AUTHORIZATION": f"Bearer {key}"}
    given = {"auth": f"Token {key}", "deep": [{"x": "***"}]}
    stored = stored_params(given, env)
    assert stored == {"auth": "Token ${***}", "deep": [{"x": "***"}]}  # a literal ``***`` is the user's own
    assert run_params(stored, "pre_processor_params", env) == given  # the process that was given it
    _credentials._GIVEN.clear()  # as a later process, which has only the files
    with pytest.raises(UsageError) as refused:
        run_params(stored, "pre_processor_params", env)
    assert str(refused.value) == (
        "pre_processor_params.auth held a credential no variable holds whole (job.json keeps it masked, "
        "${***}): the job cannot send it again; set it in a variable the tool reads (SYNAPSE_ACCESS_TOKEN, "
        "TOTASK_MODEL_AUTHORIZATION, ...) or run the action again with it")


def test_status_masks_an_environment_credential_a_job_json_holds(tmp_path, monkeypatch, capsys) -> None:
    """An older version's job.json holds the key in plain text (its converter's parameters, an
    error quoting it): ``status`` (text and ``--format json``) masks it, as the files this version
    writes and the log lines do; before, ``--format json`` printed it (only URLs were redacted)."""
    from tests.jobs_helpers import sample_job_args
    from totask_manifest._cli import main

    assert main(sample_job_args("old", tmp_path)) == 0
    job_file = tmp_path / "old" / "job.json"
    data = orjson.loads(job_file.read_bytes())
    data["config"]["options"]["converter_params"] = {"api_key": TOKEN, "auth_header": f"Bearer {TOKEN}"}
    data["error"] = f"the host refused token {TOKEN}"
    job_file.write_bytes(orjson.dumps(data))
    monkeypatch.setenv("SYNAPSE_ACCESS_TOKEN", TOKEN)
    capsys.readouterr()
    for fmt in ("text", "json"):
        assert main(["status", str(tmp_path / "old"), "--format", fmt]) == 0
        out, err = capsys.readouterr()
        assert TOKEN not in out + err and ("***" in out or fmt == "text"), out  # text shows no options


def test_resuming_a_job_whose_masked_credential_no_process_holds_is_refused_before_it_runs(tmp_path, monkeypatch,
                                                                                           capsys) -> None:
    """``resume`` of a job whose converter parameters keep ``${***}``: refused in one line (exit 2)
    before the job runs; before, the job ran and failed (exit 1, the job marked FAILED)."""
    from tests.jobs_helpers import sample_job_args
    from totask_manifest._cli import main

    assert main(sample_job_args("masked", tmp_path)) == 0
    job = tmp_path / "masked"
    data = orjson.loads((job / "job.json").read_bytes())
    data["config"]["options"].update(converter="tests.support.totask_plugins:PassThrough",
                                     converter_params={"auth": "Token ${***}"})
    data["status"] = "STOPPED"
    (job / "job.json").write_bytes(orjson.dumps(data))
    for done in [job / "manifests" / "output" / "output.manifest", *job.glob("manifests/intermediate/part-*")]:
        done.unlink()  # every line left to label: the converter is needed
    capsys.readouterr()
    assert main(["resume", str(job)]) == 2
    _out, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "converter_params.auth held a credential no variable holds whole" in lines[0], err
    assert orjson.loads((job / "job.json").read_bytes())["status"] == "STOPPED"
