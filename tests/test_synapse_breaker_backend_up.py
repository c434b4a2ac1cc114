"""review25 #1, #2, #4, #5: the "backend down" rule (``Breaker``) must not stop a run whose backend
answers (a few broken tasks in a row, one 429 or 503 to the check) and must still stop one whose
writes all fail, however small, on the fake Synapse server."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest

from totask_manifest._synapse.apply import apply_job
from totask_manifest._synapse.client import AsyncSynapseClient, BackendUnavailable
from totask_manifest._synapse.settings import SynapseSettings
from totask_manifest._synapse.workers import FRESH_OUTAGE, Breaker, TokenCheck
from totask_manifest.testing.builders import TOKEN, make_job, seed_tasks, seeded_export
from totask_manifest.testing.recording import Fault

from .support.breaker import kept, write_outage_stop

pytest_plugins = ["totask_manifest.testing.fixtures"]


def broken_writes(synapse, task_ids, status: int = 500) -> None:
    """Every PUT of these tasks is answered ``status``: the tasks' own failure, the backend answering the rest."""
    alternatives = "|".join(map(str, task_ids))
    synapse.add_fault(Fault(status=status, method="PUT", path=rf"^/tasks/({alternatives})/annotate_task_data/$",
                            times=None))


@pytest.mark.parametrize("concurrency", [1, 4])
def test_three_broken_tasks_in_a_row_fail_alone_while_the_backend_answers(synapse, files, client, tmp_path,
                                                                         concurrency) -> None:
    """At concurrency 1 every failure is "fresh" (nothing else in flight to be answered): 3 broken tasks
    stopped the run as "the Synapse backend is unavailable", rolled back the 4 good writes and never sent
    the last 5 lines."""
    _, export = seeded_export(synapse, files, client, tmp_path, 12)
    broken_writes(synapse, sorted(synapse.tasks)[4:7])
    report = apply_job(str(make_job(tmp_path, export)), client=client, concurrency=concurrency)
    assert report.fatal is None and report.rollback is None, report.summary()
    assert report.summary().startswith("9 applied, 0 unchanged, 0 conflicts (skipped), 3 failed"), report.summary()


@pytest.mark.parametrize("concurrency", [1, 4, 32])
@pytest.mark.parametrize("status", [500, 503])
@pytest.mark.parametrize("broken", [3, FRESH_OUTAGE])
def test_the_last_tasks_broken_never_undo_the_run(synapse, files, client, tmp_path, concurrency, status,
                                                  broken) -> None:
    """At a run's end nothing else is in flight either: a run that had done all its good work undid it,
    at 3 (review25 #1) and at 8 (review8 #3, review12 #2). 3 fail alone; 8 may stop the run (nothing tells
    them from an outage of the writes: B), but the good writes, each answered, are kept."""
    _, export = seeded_export(synapse, files, client, tmp_path, 40)
    broken_writes(synapse, sorted(synapse.tasks)[-broken:], status)
    report = apply_job(str(make_job(tmp_path, export)), client=client, concurrency=concurrency)
    assert report.rollback is None, report.summary()
    assert report.summary().startswith(f"{40 - broken} applied, 0 unchanged, 0 conflicts (skipped), {broken} failed"), \
        report.summary()
    if broken < FRESH_OUTAGE or report.fatal is None:
        assert report.fatal is None, report.summary()
    else:
        assert write_outage_stop(1001).match(report.fatal) and kept(report.summary(), 40 - broken), report.summary()


@pytest.mark.parametrize("status", [429, 503])
def test_one_429_or_503_to_the_check_is_not_the_backend_down(synapse, files, client, tmp_path, status) -> None:
    """The check was one try: one 429 (the backend busy, every other request waits it out) or one 503 of
    a load balancer stopped and rolled back a run with 3 broken tasks."""
    pid, export = seeded_export(synapse, files, client, tmp_path, 40)
    broken_writes(synapse, sorted(synapse.tasks)[-3:])
    synapse.add_fault(Fault(status=status, method="GET", path=rf"^/projects/{pid}/$", times=1, retry_after=1))
    report = apply_job(str(make_job(tmp_path, export)), client=client, concurrency=32)
    assert report.fatal is None and report.rollback is None, report.summary()
    assert report.summary().startswith("37 applied, 0 unchanged, 0 conflicts (skipped), 3 failed"), report.summary()


@pytest.mark.parametrize(("status", "said"), [(503, "failed too: Synapse answered 503 Service Unavailable"),
                                               (403, "was refused: Synapse answered 403 Forbidden")])
def test_a_check_answered_with_an_error_is_said_as_what_it_answered(synapse, files, client, tmp_path, status,
                                                                    said) -> None:
    """A check answered 503 (each of its tries) or 403 still stops the run, but it "got no answer either"
    was said of an answer."""
    pid, export = seeded_export(synapse, files, client, tmp_path, 6)
    synapse.add_fault(Fault(status=503, method="PUT", skip=2, times=None))
    synapse.add_fault(Fault(status=status, method="GET", path=rf"^/projects/{pid}/$", times=None))
    report = apply_job(str(make_job(tmp_path, export)), client=client, concurrency=1)
    assert report.fatal is not None and report.fatal.startswith(
        f"the Synapse backend is unavailable (3 tasks in a row failed, and its check, GET /projects/{pid}/, {said} "
        f"to GET /projects/{pid}/"), report.fatal
    assert "no answer" not in report.fatal, report.fatal


def test_a_write_outage_at_the_default_concurrency_stops_it(synapse, files, client, tmp_path) -> None:
    """32 writes out at once, 2 answered, every later one 503, the check answered: the writes first sent
    after the 2 answers (the 33rd line on) each find no write answered since: an outage of the writes,
    stopped, the 2 good writes kept. (The 30 sent with the 2 answered are not fresh: a run of at most 32
    lines is not told from 30 broken tasks, docs/synapse.md.)"""
    pid, export = seeded_export(synapse, files, client, tmp_path, 60)
    synapse.add_fault(Fault(status=503, method="PUT", skip=2, times=None))
    report = apply_job(str(make_job(tmp_path, export)), client=client, concurrency=32)
    stop = write_outage_stop(pid).match(report.fatal or "")
    assert stop is not None and int(stop[1]) >= FRESH_OUTAGE, report.fatal
    assert report.rollback is None and kept(report.summary(), 2), report.summary()


def test_a_failure_is_fresh_by_its_first_try_on_the_wire(synapse) -> None:
    """``fresh`` was counted from the last try: a PUT whose retry went out after another PUT was answered
    was fresh, so every retried failure whose retry went out after its window's answers looked like an
    outage (review8 #1, #3). Counted from its first try, that write answered says the backend writes."""
    synapse.add_fault(Fault(status=503, method="PUT", path=r"^/tasks/1/annotate_task_data/$", times=None))
    synapse.add_fault(Fault(status=200, method="PUT", path=r"^/tasks/2/annotate_task_data/$", times=None))

    async def scenario() -> BackendUnavailable:
        aio = AsyncSynapseClient(SynapseSettings(host=synapse.url, access_token=TOKEN), retries=1, backoff=0.01)

        async def another_write_answered(_attempt: int) -> None:  # before the retry goes out
            await aio.request("PUT", "tasks/2/annotate_task_data/", json={})

        try:
            await aio.request("PUT", "tasks/1/annotate_task_data/", json={}, on_attempt=another_write_answered)
        except BackendUnavailable as exc:
            return exc
        finally:
            await aio.aclose()
        raise AssertionError("the PUT was answered")

    failed = asyncio.run(scenario())
    assert failed.status == 503 and not failed.fresh, (failed, failed.fresh)


def test_failures_while_the_check_is_out_stay_in_the_row(synapse, files) -> None:
    """The check answered (slowly), the failures that finished meanwhile were dropped from the row: the
    next failed check then named 3 in a row, not every failure since the last task answered."""
    pid = seed_tasks(synapse, files, 1)
    synapse.add_fault(Fault(status=None, delay=0.3, method="GET", path=rf"^/projects/{pid}/$", times=1))  # answered
    synapse.add_fault(Fault(status=503, method="GET", path=rf"^/projects/{pid}/$", times=None))

    async def scenario() -> Breaker:
        aio = AsyncSynapseClient(SynapseSettings(host=synapse.url, access_token=TOKEN), backoff=0.01)
        breaker = Breaker(token=TokenCheck(aio))
        try:
            for _ in range(2):
                await breaker.unavailable("failed", SimpleNamespace(fatal=False), project=pid)
            third = asyncio.ensure_future(breaker.unavailable("failed", SimpleNamespace(fatal=False), project=pid))
            while not synapse.requests_to("GET", rf"^/projects/{pid}/$"):  # the check is out
                await asyncio.sleep(0.01)
            meanwhile = [SimpleNamespace(fatal=False) for _ in range(2)]
            await asyncio.gather(third, *(breaker.unavailable("failed", r, project=pid) for r in meanwhile))
            for _ in range(3):
                await breaker.unavailable("failed", SimpleNamespace(fatal=False), project=pid)
        finally:
            await aio.aclose()
        return breaker

    breaker = asyncio.run(scenario())
    assert breaker.fatal is not None and breaker.fatal.startswith(
        f"the Synapse backend is unavailable (8 tasks in a row failed, and its check, GET /projects/{pid}/, failed too"
    ), breaker.fatal
