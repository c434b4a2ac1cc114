"""A token Synapse refuses part way is one fatal error, said once: ``rollback`` printed it in its
summary line and, before it, a ``task N: failed (Synapse answered 401 ...)`` line for each of the
32 restores in flight (``apply`` the same for its writes in flight). The counts stay; the tasks
the stop left are what the next run does.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from totask_manifest import ToTaskAction
from totask_manifest._cli import main
from totask_manifest._synapse.apply import apply_job
from totask_manifest._synapse.export import export_tasks
from totask_manifest._synapse.rollback import rollback_job
from totask_manifest.testing.builders import TOKEN, make_job, seed_tasks

pytest_plugins = ["totask_manifest.testing.fixtures"]


@pytest.fixture
def job_dir(synapse, files, client, tmp_path: Path) -> Path:
    """40 exported tasks, labeled by a finished job (not applied yet)."""
    pid = seed_tasks(synapse, files, 40)
    export = tmp_path / "export.manifest"
    export_tasks(pid, str(export), client=client)
    return make_job(tmp_path, export)


@pytest.mark.slow  # 40 tasks applied, then read back by 32 workers
def test_rollback_with_the_token_refused_says_it_in_one_line(synapse, client, job_dir: Path, capsys) -> None:
    assert apply_job(str(job_dir), client=client).ok
    capsys.readouterr()
    synapse.revoke(TOKEN)
    assert main(["rollback", str(job_dir)]) == 1  # README: a refused token is rollback's fatal failure, exit 1
    out, err = capsys.readouterr()
    assert out == ""  # before: 32 'task N: failed (Synapse answered 401 ...)' lines
    [line] = err.splitlines()
    assert line.startswith("rollback: 0 restored") and "stopped: the token was refused" in line, line
    assert "40 tasks not restored yet (run rollback again)" in line
    assert TOKEN not in err
    synapse.revoked.clear()  # a new token: the next rollback restores every task
    assert main(["rollback", str(job_dir)]) == 0
    assert "rollback: 40 restored" in capsys.readouterr().out


@pytest.mark.slow
def test_apply_with_the_token_refused_mid_run_names_no_task_for_it(synapse, job_dir: Path, capsys) -> None:
    puts: list[int] = []

    def revoke_at_third_put(server, rec) -> None:
        if rec.method == "PUT":
            puts.append(1)
            if len(puts) == 3:
                server.revoke(TOKEN)

    synapse.hooks.append(revoke_at_third_put)
    assert main(["apply", str(job_dir), "--concurrency", "32"]) == 1
    out, err = capsys.readouterr()
    assert "401" not in out, out  # before: a 'task N: failed (Synapse answered 401 ...)' line per write in flight
    assert all(": applied (" in line for line in out.splitlines()), out  # the writes that went through
    assert "stopped: the token was refused" in err and f"totask-manifest rollback {job_dir}" in err
    assert TOKEN not in out + err


def test_apply_with_the_token_refused_before_any_write_says_it_once_without_a_rollback(
        synapse, job_dir: Path, capsys, caplog) -> None:
    """The tester's wrong token: the error was said three times, and a rollback of this run's writes
    announced and reported when the run had written nothing."""
    synapse.revoke(TOKEN)
    assert main(["apply", str(job_dir)]) == 1
    out, err = capsys.readouterr()
    said = err + caplog.text
    assert said.count("the token was refused") == 1, said
    assert "rolling back" not in said and "rollback:" not in said and "undo with" not in said, said
    assert not [r for r in synapse.requests if r.method == "PUT"]
    assert TOKEN not in out + said


def _revoke_at_put(synapse, nth: int) -> list[int]:
    """Revoke the token as the ``nth`` PUT arrives (it is refused too); the list gets the index of
    that request in ``synapse.requests``, to tell what was asked after the revocation."""
    at: list[int] = []

    def hook(server, rec) -> None:
        if not at and rec.method == "PUT" and len(server.requests_to("PUT")) == nth:
            at.append(len(server.requests) - 1)
            server.revoke(TOKEN)

    synapse.hooks.append(hook)
    return at


def _task_reads_after(synapse, at: list[int]) -> list[str]:
    """The task reads (a rollback's first request per task) sent after the revocation."""
    return [r.path for r in synapse.requests[at[0]:] if r.method == "GET" and r.path.startswith("/tasks/")]


def test_apply_with_the_token_revoked_mid_run_tries_no_rollback_with_it(synapse, files, client, tmp_path,
                                                                       capsys) -> None:
    """tester10 F3: once the token's check found the token refused, the rollback was tried with it
    all the same: a read per written task, each a 401, reported as ``rollback: ... 2 failed`` (a data
    problem, it read) with the credential hint said a second time. The writes stay, journalled, and
    the summary says how to finish: ``rollback`` with a working token."""
    pid = seed_tasks(synapse, files, 4)
    export = tmp_path / "export.manifest"
    export_tasks(pid, str(export), client=client)
    job = make_job(tmp_path, export)
    at = _revoke_at_put(synapse, 3)
    assert main(["apply", str(job), "--concurrency", "1"]) == 1
    err = capsys.readouterr().err
    assert _task_reads_after(synapse, at) == []  # before: GET /tasks/N/ per written task, each refused
    assert err.count("check the token") == 1 and "rollback:" not in err, err
    assert err.splitlines()[0] == "2 applied, 0 unchanged, 0 conflicts (skipped), 1 failed, 0 not labeled", err
    assert err.splitlines()[-1] == ("not rolled back: the rollback cannot run with the refused token; the journal keeps "
                                    f"every write: finish with a working token: totask-manifest rollback {job}"), err
    assert len([t for t in synapse.project_tasks(pid) if t["data"]]) == 2  # the two writes stay
    synapse.hooks.clear()
    synapse.revoked.clear()  # a working token: the journal's writes are undone
    assert main(["rollback", str(job)]) == 0
    assert "rollback: 2 restored, 0 already as before" in capsys.readouterr().out
    assert not [t for t in synapse.project_tasks(pid) if t["data"]]


def test_run_with_the_token_revoked_mid_writes_says_it_once_in_one_line(synapse, files, tmp_path) -> None:
    """``run``'s one line after a real revocation during its writes: the cause once (the credential
    hint once), what was written and what was not, and the command that finishes the job; the
    tasks written stay counted as success, no rollback reads are sent with the refused token."""
    pid = seed_tasks(synapse, files, 8)
    at = _revoke_at_put(synapse, 3)
    params = {"name": "Token_Gone", "project": pid, "agent": 1, "method": "file",
              "target_specification_name": "annotation_data"}
    result = ToTaskAction(params=params, output_root=str(tmp_path)).start()
    message = result["message"]
    written = [t["id"] for t in synapse.project_tasks(pid) if t["data"]]
    assert result["status"] == "FAILED" and "\n" not in message, message
    assert _task_reads_after(synapse, at) == [], message
    assert message.count("check the token") == 1 and message.count("the token was refused") == 1, message
    assert "rollback:" not in message, message  # before: "rollback: 0 restored, ..., 2 failed; stopped: ..."
    assert message.startswith(f"{len(written)} applied, 0 unchanged, 0 conflicts (skipped), {8 - len(written)} failed"), message
    assert message.endswith(f"finish with a working token: totask-manifest rollback {tmp_path / 'token-gone'}"), message
    assert (result["success_count"], result["failed_count"]) == (len(written), 8 - len(written)), result
    synapse.hooks.clear()
    synapse.revoked.clear()
    assert rollback_job(str(tmp_path / "token-gone")).summary() == (
        f"rollback: {len(written)} restored, 0 already as before, 0 changed by someone else (skipped), 0 failed")
