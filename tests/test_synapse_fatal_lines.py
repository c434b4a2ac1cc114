"""A token Synapse refuses part way is one fatal error, said once: ``rollback`` printed it in its
summary line and, before it, a ``task N: failed (Synapse answered 401 ...)`` line for each of the
32 restores in flight (``apply`` the same for its writes in flight). The counts stay; the tasks
the stop left are what the next run does.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from totask_manifest._cli import main
from totask_manifest._synapse.apply import apply_job
from totask_manifest._synapse.export import export_tasks
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
