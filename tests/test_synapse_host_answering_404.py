"""``apply`` to a ``SYNAPSE_HOST`` that answers 404 to every path (a web server that is not
Synapse) stops with "project N is gone (404); ... check SYNAPSE_HOST", and counts its lines as a
wrong token's are counted: not reached, nothing sent (tester3 F2). It said "20 failed" of a run
that had sent only GETs and journalled nothing, where a refused token, a refused connection and
an unknown host say "0 failed" and "20 lines not reached: nothing was sent for them".
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web

from tests.jobs_helpers import run_cli
from tests.support.http_server import LocalHTTPServer
from totask_manifest._synapse.export import export_tasks
from totask_manifest._synapse.journal import iter_journal
from totask_manifest.testing.builders import make_job, seed_tasks

pytest_plugins = ["totask_manifest.testing.fixtures"]

TASKS = 20


@pytest.fixture
def not_synapse() -> Iterator[tuple[LocalHTTPServer, list[str]]]:
    """A real HTTP server on 127.0.0.1 that answers 404 to every method and path, and the
    methods it was asked with."""
    methods: list[str] = []

    async def not_found(request: web.Request) -> web.Response:
        methods.append(request.method)
        return web.Response(status=404, text="Not Found")

    with LocalHTTPServer(not_found) as server:
        yield server, methods


@pytest.fixture
def exported_job(synapse, files, client, tmp_path: Path) -> tuple[int, Path]:
    """``TASKS`` tasks exported from the fake Synapse and labeled by a finished job: (project, job)."""
    pid = seed_tasks(synapse, files, TASKS)
    export = tmp_path / "export.manifest"
    export_tasks(pid, str(export), client=client)
    return pid, make_job(tmp_path, export)


@pytest.mark.parametrize("flags", [[], ["--dry-run"], ["--concurrency", "1"]])
def test_apply_to_a_host_answering_404_reaches_no_line(exported_job, not_synapse, flags: list[str]) -> None:
    pid, job = exported_job
    server, methods = not_synapse
    host = server.url("").rstrip("/")
    done = run_cli("apply", str(job), *flags, env={"SYNAPSE_HOST": host})
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr  # README: apply's fatal failure
    dry = "--dry-run" in flags
    said = done.stdout + done.stderr
    counts = "dry run: 0 would-apply" if dry else "0 applied"
    assert f"{counts}, 0 unchanged, 0 conflicts (skipped), 0 failed, 0 not labeled\n" in said, said
    assert (f"stopped: project {pid} is gone (404); if it still exists in Synapse, check SYNAPSE_HOST "
            f"(now {host})") in said, said
    assert (f"{TASKS} lines not reached: nothing was {'planned' if dry else 'sent'} for them; apply again "
            "once the cause is fixed") in said, said
    assert "failed (" not in said and "rollback" not in said, said  # no line of its own, nothing to undo
    assert list(iter_journal(str(job))) == []
    assert methods and set(methods) == {"GET"}, methods  # it was asked, and nothing was written


def test_a_project_deleted_mid_run_fails_the_write_it_came_to(exported_job, synapse, client) -> None:
    """A write that was out when the project went is that line's failure, as before (its PUT was
    answered 404); the lines after it were never sent: not reached."""
    from totask_manifest._synapse.apply import apply_job

    pid, job = exported_job

    def delete_project_at_third_put(server, rec) -> None:
        if rec.method == "PUT" and len(server.requests_to("PUT")) == 3:
            server.projects.pop(pid, None)

    synapse.hooks.append(delete_project_at_third_put)
    report = apply_job(str(job), client=client, concurrency=1, rollback_on_fatal=False)
    assert report.fatal is not None and report.fatal.startswith(f"project {pid} is gone (404)")
    assert (report.totals["applied"], report.totals["failed"], report.not_reached) == (2, 1, TASKS - 3), report.summary()
    [failed] = [r for r in report.results if r.status == "failed"]
    assert failed.fatal and failed.line == 3


@pytest.mark.parametrize("down", ["503", "reset"])
def test_a_backend_down_at_the_reads_reaches_no_line(exported_job, synapse, client, down: str) -> None:
    """The backend found down (every read answered 503, or its connection dropped) while the tasks'
    data was read: nothing was sent, so its lines are not reached, as the other stops count them
    (tester16 F2); it said "20 failed" of a run that sent no PUT and journalled nothing."""
    from totask_manifest._synapse.apply import apply_job

    _, job = exported_job
    synapse.down = down
    report = apply_job(str(job), client=client)
    assert report.fatal is not None and report.fatal.startswith("the Synapse backend is unavailable"), report.summary()
    assert report.totals["failed"] == 0 and report.not_reached == TASKS, report.summary()
    assert f"{TASKS} lines not reached: nothing was sent for them" in report.summary()
    assert not synapse.requests_to("PUT") and list(iter_journal(str(job))) == []


def test_writes_out_when_the_backend_goes_down_fail_with_it(exported_job, synapse, client) -> None:
    """A write that was out when the backend was found down is that line's failure (it may have
    landed: the journal and the rollback say which), not a line not reached."""
    from totask_manifest._synapse.apply import apply_job

    _, job = exported_job

    def down_at_third_put(server, rec) -> None:
        if rec.method == "PUT" and len(server.requests_to("PUT")) == 3:
            server.down = "503"

    synapse.hooks.append(down_at_third_put)
    report = apply_job(str(job), client=client, concurrency=1, rollback_on_fatal=False)
    assert report.fatal is not None and report.fatal.startswith("the Synapse backend is unavailable"), report.summary()
    # the window's data was read before the outage (one listing), so the writes of lines 3-5 went
    # out, each answered 503, the third trips the breaker: failed; the lines after them not reached
    puts = len({r.path for r in synapse.requests_to("PUT")})  # tasks written to, retries aside
    failed = [r for r in report.results if r.status == "failed"]
    assert report.totals["applied"] == 2 and len(failed) == puts - 2 >= 1, report.summary()
    assert all(r.fatal for r in failed) and failed[0].line == 3, failed
    assert report.not_reached == TASKS - puts, report.summary()
