"""When a write in doubt may still reach Synapse (``TaskHistory.landing``): a rollback then leaves
its task open, whatever the task holds. Timed from the last record of the write's run, not from
the write's own ``before``: a PUT is retried long after it, and a run that journals other writes
is alive and may still send it."""

from __future__ import annotations

import datetime as dt
import re
import threading
import time

import pytest

from totask_manifest._synapse.apply import apply_job
from totask_manifest._synapse.export import export_tasks
from totask_manifest._synapse.journal import open_writes, read_journal
from totask_manifest._synapse.rollback import rollback_job
from totask_manifest.testing import Fault
from totask_manifest.testing.builders import fast_client, make_job, seed_tasks

pytest_plugins = ["totask_manifest.testing.fixtures"]

NOW = dt.datetime(2026, 12, 5, 12, 0, 0, tzinfo=dt.UTC)


def _at(seconds_ago: float) -> str:
    return (NOW - dt.timedelta(seconds=seconds_ago)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _before(task_id: int, run: str, new_hash: str, seconds_ago: float) -> dict:
    return {"op": "before", "run": run, "at": _at(seconds_ago), "task_id": task_id, "previous": {},
            "previous_hash": "p", "new": {"x": new_hash}, "new_hash": new_hash}


def test_a_write_in_doubt_is_landing_while_its_run_was_heard_of_lately() -> None:
    records = [
        _before(1, "A", "h1", 600), {"op": "done", "run": "A", "at": _at(599), "task_id": 1, "new_hash": "h1"},
        _before(1, "B", "h2", 300),  # B's write of task 1: no answer yet
        _before(2, "B", "h3", 20), {"op": "done", "run": "B", "at": _at(10), "task_id": 2, "new_hash": "h3"},
    ]
    histories = open_writes(records)
    # task 1's write went out 300 s ago, but its run journalled 10 s ago: it may be retrying it still
    assert histories[1].landing(NOW, 60.0) == 10.0
    assert histories[1].landing(NOW, 5.0) is None  # past the window: closed or restored as it is
    assert histories[2].landing(NOW, 60.0) is None  # answered: not in doubt


def test_an_unanswered_write_is_timed_from_its_note_and_a_clock_ahead_lengthens_the_wait() -> None:
    records = [
        _before(1, "A", "h1", 500),
        {"op": "unanswered", "run": "A", "at": _at(30), "task_id": 1, "new_hash": "h1", "status": None},
    ]
    assert open_writes(records)[1].landing(NOW, 60.0) == 30.0  # the backend may still process it
    ahead = [_before(1, "C", "h1", -120)]  # written by a machine whose clock is two minutes ahead
    assert open_writes(ahead)[1].landing(NOW, 60.0) == -120.0  # the wait: 60 s from its time, 180 from now
    wrong = [_before(1, "C", "h1", -7200)]  # two hours ahead: no sign of life worth waiting for
    assert open_writes(wrong)[1].landing(NOW, 60.0) is None


def test_apply_own_rollback_waits_only_for_the_writes_no_one_answered() -> None:
    """apply's rollback after its fatal error: its requests have ended, but one no one answered
    (a timeout, a 5xx) may still be processed; a write whose ``done`` could not be journalled was
    answered, and is restored at once."""
    records = [
        _before(1, "A", "h1", 20),
        {"op": "unanswered", "run": "A", "at": _at(19), "task_id": 1, "new_hash": "h1", "status": 504},
        _before(2, "A", "h2", 10),  # answered, its done not journalled (a full disk)
    ]
    histories = open_writes(records)
    assert histories[1].landing(NOW, 60.0, unanswered_only=True) == 10.0
    assert histories[2].landing(NOW, 60.0, unanswered_only=True) is None
    assert histories[2].landing(NOW, 60.0) == 10.0  # a later rollback waits for it too


def test_an_answered_write_and_one_a_later_run_found_stored_are_not_on_their_way() -> None:
    """A 2xx whose body is not JSON (``answered``): stored or not, nothing of it can land later. A
    write a later run found stored (``done`` with ``recovered``): settled, whatever run sent it."""
    answered = [_before(1, "A", "h1", 30),
                {"op": "answered", "run": "A", "at": _at(29), "task_id": 1, "new_hash": "h1", "status": 200}]
    history = open_writes(answered)[1]
    assert history.in_doubt and history.landing(NOW, 60.0) is None  # in doubt for rollback, not landing
    found = [_before(2, "A", "h2", 40),
             {"op": "done", "run": "B", "at": _at(5), "task_id": 2, "new_hash": "h2", "recovered": True}]
    history = open_writes(found)[2]
    assert not history.in_doubt and history.landing(NOW, 60.0) is None


def test_a_write_refused_after_an_unanswered_attempt_may_still_land() -> None:
    """``failed`` without ``refused``: an earlier attempt went unanswered (a 502, a timeout) before
    the 4xx, and may still be processed. It was settled as any failure, so a rollback at once closed
    the task though that attempt could land after; it stays in doubt, waited for as ``unanswered``
    (apply's own rollback too). A refusal on the only attempt (``refused``) wrote nothing: no write."""
    records = [
        _before(1, "A", "h1", 30),
        {"op": "failed", "run": "A", "at": _at(20), "task_id": 1, "new_hash": "h1", "status": 403, "refused": False},
        _before(2, "A", "h2", 15),
        {"op": "failed", "run": "A", "at": _at(10), "task_id": 2, "new_hash": "h2", "status": 403, "refused": True},
    ]
    histories = open_writes(records)
    assert list(histories) == [1]
    assert histories[1].in_doubt == histories[1].writes
    assert histories[1].landing(NOW, 60.0) == 10.0
    assert histories[1].landing(NOW, 60.0, unanswered_only=True) == 10.0
    assert histories[1].landing(NOW, 5.0) is None  # past the window: restored or closed as other writes in doubt


def test_each_repeated_attempt_keeps_its_run_alive() -> None:
    """An ``attempt`` record (a PUT about to be sent again) is a sign of its run's life: the write's
    minute runs from it. A journal without such records (written before apply made them) is timed
    from the run's other records, as before."""
    records = [_before(1, "A", "h1", 300),
               {"op": "attempt", "run": "A", "at": _at(40), "task_id": 1, "new_hash": "h1", "attempt": 7}]
    assert open_writes(records)[1].landing(NOW, 60.0) == 40.0
    assert open_writes(records[:1])[1].landing(NOW, 60.0) is None


@pytest.mark.slow
def test_a_put_held_back_by_another_requests_429_is_journalled_when_it_goes(synapse, files, client, tmp_path) -> None:
    """A 429 pauses every request of the client for its ``Retry-After`` (for minutes, in life): a
    PUT whose ``before`` is on disk waits it out, with nothing journalled meanwhile, so a run killed
    once it went looked a minute old while that first attempt was on its way. The second window's
    listing answered 429: the PUT that waited is journalled (``attempt`` 1) once the pause is over,
    after the 429, before it is sent; the PUTs sent at once are not."""
    pid = seed_tasks(synapse, files, 150)
    export = tmp_path / "e.manifest"
    export_tasks(pid, str(export), client=client)
    job = make_job(tmp_path, export)
    synapse.add_fault(Fault(status=429, method="GET", path=r"^/sdk/tasks/", skip=1, times=1, retry_after=1))
    report = apply_job(str(job), client=client, concurrency=1)
    assert report.totals["applied"] == 150, report.summary()
    paused_at = dt.datetime.fromtimestamp(next(r.at for r in synapse.requests if r.status == 429), dt.UTC)
    records = read_journal(str(job))
    held = [r for r in records if r["op"] == "attempt"]
    assert held and all(r["attempt"] == 1 for r in held), held
    assert all(dt.datetime.strptime(r["at"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC) > paused_at
               for r in held)
    assert len(held) == 1  # the one PUT that waited: those sent before the pause or after it are not


def _journalled(record: dict) -> dt.datetime:
    return dt.datetime.strptime(record["at"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC)


@pytest.mark.slow
def test_a_put_queued_for_a_connection_slot_is_journalled_when_it_goes(synapse, files, tmp_path) -> None:
    """A client of one connection slot, two tasks at once: the first PUT is held by the server (a
    backend slow to answer), so the second, its ``before`` on disk, waits in the client's queue for
    the slot, with nothing journalled meanwhile. It was timed from that ``before``, so a run killed
    once it went (a pool of N slots, many PUTs queued for minutes) looked a minute old while it was
    on its way: it is journalled (``attempt`` 1) when it takes the slot, after the first PUT was
    answered, before it is sent. The first PUT, sent at once, is not."""
    pid = seed_tasks(synapse, files, 2)
    export = tmp_path / "e.manifest"
    with fast_client(synapse) as reader:
        export_tasks(pid, str(export), client=reader)
    job = make_job(tmp_path, export)
    released: list[dt.datetime] = []

    def hold_first_put(server, rec) -> None:
        if rec.method == "PUT" and not released and not server.held:
            server.held = True

    def release_once_the_second_is_queued(client) -> None:
        # the second PUT's ``before`` is on disk and it waits for the slot the held PUT has
        while not ([r for r in read_journal(str(job)) if r["op"] == "before"][1:]
                   and client.aio._slots._waiters):  # the client's queue for a slot: nothing else shows it
            time.sleep(0.01)
        released.append(dt.datetime.now(dt.UTC))
        synapse.held = False

    synapse.hooks.append(hold_first_put)
    with fast_client(synapse, max_concurrency=1) as client:
        releaser = threading.Thread(target=release_once_the_second_is_queued, args=(client,), daemon=True)
        releaser.start()
        report = apply_job(str(job), client=client, concurrency=2)
        releaser.join(timeout=30)
    assert report.totals["applied"] == 2, report.summary()
    records = read_journal(str(job))
    first, second = (r["task_id"] for r in records if r["op"] == "before")
    held = [r for r in records if r["op"] == "attempt"]
    assert [(r["task_id"], r["attempt"]) for r in held] == [(second, 1)], held
    assert _journalled(held[0]) > released[0]  # when it went, not when it was queued
    puts = [int(r.path.split("/")[2]) for r in synapse.requests_to("PUT", r"^/tasks/")]
    assert puts == [first, second]


@pytest.mark.parametrize(("first", "noted", "rolled_back"), [(502, "unanswered", "landing"), (500, "answered", "already")])
def test_a_500_after_an_unanswered_attempt_may_still_land(synapse, files, client, tmp_path, first, noted,
                                                          rolled_back) -> None:
    """A PUT answered 502 (a gateway that gave up: the backend may still write it), then 500 on
    every retry: the last answer is the backend's own, but the 502's attempt may still land, so it
    is noted ``unanswered`` and a rollback at once leaves its task open. It was noted ``answered``
    (nothing on its way) by its last status alone, and closed. 500 on every attempt: ``answered``."""
    pid = seed_tasks(synapse, files, 1)
    export = tmp_path / "e.manifest"
    export_tasks(pid, str(export), client=client)
    job = make_job(tmp_path, export)
    tid = synapse.project_tasks(pid)[0]["id"]
    synapse.add_fault(Fault(status=first, method="PUT", path=f"^/tasks/{tid}/", times=1))
    synapse.add_fault(Fault(status=500, method="PUT", path=f"^/tasks/{tid}/", times=None))
    report = apply_job(str(job), client=client, concurrency=1)
    assert report.totals["failed"] == 1, report.summary()
    synapse.clear_faults()
    assert [r["op"] for r in read_journal(str(job)) if r["op"] not in ("before", "attempt")] == [noted]
    assert [r.status for r in rollback_job(str(job), client=client).results] == [rolled_back]


def test_an_unjournalled_restore_never_sent_is_not_waited_for() -> None:
    """A restore sent unjournalled (the journal cannot grow) to a host that refuses the connection
    on every attempt: nothing reached Synapse, so nothing of it can land. ``may_still_land`` took
    every error with no answer (``status`` None) for one that may, and the summary said it "may
    still reach Synapse within a minute: wait a minute" and left it out of "run rollback again"."""
    import asyncio

    from tests.jobs_helpers import closed_port
    from totask_manifest._synapse.client import AsyncSynapseClient, BackendUnavailable
    from totask_manifest._synapse.errors import may_still_land
    from totask_manifest._synapse.journal import TaskHistory
    from totask_manifest._synapse.rollback import FAILED, RestoreResult, RollbackReport, _send_unjournalled
    from totask_manifest._synapse.settings import SynapseSettings
    from totask_manifest.testing.builders import TOKEN

    history = TaskHistory(7, writes=[_before(7, "r1", "n", 10)])
    report = RollbackReport("file:///job", planned=1, remaining=1)

    async def restore() -> BackendUnavailable:
        settings = SynapseSettings(host=f"http://127.0.0.1:{closed_port()}", access_token=TOKEN)
        async with AsyncSynapseClient(settings, retries=2, backoff=0.01, max_backoff=0.05) as aio:
            with pytest.raises(BackendUnavailable) as caught:
                await _send_unjournalled(aio, 7, history, report, "cannot write the journal: disk full")
        return caught.value

    exc = asyncio.run(restore())
    assert exc.unreachable and not exc.after_unanswered and not may_still_land(exc), exc
    assert report.unjournalled_in_flight == 0
    report.results.append(RestoreResult(7, FAILED, str(exc)))
    summary = report.summary()
    assert "wait a minute" not in summary and "may still reach Synapse" not in summary, summary
    assert re.search(r"; 1 tasks? not restored yet \(run rollback again\)$", summary), summary
