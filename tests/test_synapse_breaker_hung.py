"""A hung Synapse backend (connections accepted, nothing answered) during apply and rollback, on the fake
Synapse server: the first try that times out with nothing of its kind answered since it went out asks the
check at once (``workers.HungCheck``), every timed-out request's retry waits for its verdict, and a check
that gets no answer either stops the run there, the requests still out ended with it. It was asked at the
third failure, each after all its tries: ~9 min at ``--concurrency 1`` with the defaults (review8 #5)."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from typing import Any, TypeVar

import pytest

from totask_manifest import ToTaskAction
from totask_manifest._synapse.apply import APPLIED, apply_job
from totask_manifest._synapse.client import PROBE_RETRIES
from totask_manifest._synapse.journal import iter_journal
from totask_manifest._synapse.rollback import rollback_job
from totask_manifest._synapse.sync_client import SynapseClient
from totask_manifest.testing.builders import applied_job, fast_client, make_job, seed_tasks, seeded_export
from totask_manifest.testing.recording import Fault

pytest_plugins = ["totask_manifest.testing.fixtures"]

T = TypeVar("T")

WRITES = r"^/tasks/\d+/annotate_task_data/$"
READS = r"^/tasks/\d+/$"
#: a try's read timeout and the check's (each of its 1 + PROBE_RETRIES tries): the stop comes at one of the
#: first and the check's time, well before a retry's read timeout runs out (no request sent a third time)
TIMEOUT, PROBE_TIMEOUT = 1.5, 0.2


class HangFrom:
    """A hook of the fake server: once ``answered`` requests of ``method`` came, every request hangs (the
    check included), from the one after them on, until ``release`` (which drops them: the server's stop
    waits for none); ``hung``: the requests made since (``method``, path)."""

    def __init__(self, server: Any, method: str, answered: int) -> None:
        self.server, self.method, self.answered = server, method, answered
        self.hung: list[tuple[str, str]] = []
        self._seen = 0
        server.hooks.append(self)

    def __call__(self, server: Any, recorded: Any) -> None:
        self._seen += recorded.method == self.method
        if self._seen > self.answered:
            server.held = True
            self.hung.append((recorded.method, recorded.path))

    def release(self) -> None:
        self.server.down = "reset"
        self.server.held = False

    def sent(self, method: str, path: str) -> Counter[str]:
        """How many times each request of ``method`` to a ``path`` went out to the hung backend."""
        return Counter(p for m, p in self.hung if m == method and re.search(path, p))


def against(hang: HangFrom, call: Callable[[SynapseClient], T]) -> T:
    """``call`` with a client of short timeouts to the server ``hang`` hangs, the requests it hung released after."""
    hung = fast_client(hang.server, timeout=TIMEOUT, probe_timeout=PROBE_TIMEOUT)
    try:
        return call(hung)
    finally:
        hung.close()
        hang.release()


def hung_stop(method: str, path: str, pid: int) -> re.Pattern[str]:
    """The stop of a timeout's check that got no answer (``Breaker.timed_out``), not the row's third failure."""
    return re.compile(rf"^the Synapse backend is unavailable \({method} {path} got no answer in time, and its "
                      rf"check, GET /projects/{pid}/, got no answer either: .*; last: Synapse did not answer "
                      rf"{method} {path}")


def checks(synapse: Any, pid: int) -> int:
    return len(synapse.requests_to("GET", rf"^/projects/{pid}/$"))


@pytest.mark.parametrize("concurrency", [1, 32])
@pytest.mark.parametrize("answered", [0, 10])
def test_a_hung_backend_stops_apply_at_the_first_write_timeout(synapse, files, client, tmp_path, concurrency,
                                                               answered) -> None:
    """Every request hangs from the first write (or the 11th) on: each write failed after all its tries,
    and the check came at the third failure (at concurrency 1, 3 writes of 3 tries each). Now the first
    write to time out with none answered since it went out asks the check, the writes' retries wait for
    it, and its failure stops the run: no write sent a second time (at concurrency 32 with writes answered
    first, those out before the last answered one are retried at once, as a slow request's: never a third
    time). The rollback after it meets the same backend: its reads stop the same way, each sent once.
    The journal holds every write sent, once, the answered ones done, the others left in doubt."""
    pid, export = seeded_export(synapse, files, client, tmp_path, 60)
    job = make_job(tmp_path, export)
    before = checks(synapse, pid)
    hang = HangFrom(synapse, "PUT", answered)
    report = against(hang, lambda hung: apply_job(str(job), client=hung, concurrency=concurrency))

    assert report.fatal is not None and hung_stop("PUT", WRITES[1:-1], pid).match(report.fatal), report.summary()
    writes = Counter(r.path for r in synapse.requests_to("PUT", WRITES))
    assert max(writes.values()) <= (2 if answered and concurrency > 1 else 1), writes
    assert report.rollback is not None and report.rollback.fatal is not None, report.summary()
    assert hung_stop("GET", READS[1:-1], pid).match(report.rollback.fatal), report.rollback.fatal
    reads = hang.sent("GET", READS)  # the rollback's
    assert reads and max(reads.values()) == 1, reads
    assert checks(synapse, pid) - before == 2 * (1 + PROBE_RETRIES)  # apply's check, the rollback's: one each

    records = [r for r in iter_journal(str(job)) if r.get("run") == report.run_id]
    written = Counter(r["task_id"] for r in records if r["op"] == "before")
    assert max(written.values()) == 1 and {f"/tasks/{t}/annotate_task_data/" for t in written} >= set(writes)
    done = {r["task_id"] for r in records if r["op"] == "done"}
    assert len(done) == answered == report.totals[APPLIED]
    in_doubt = {r["task_id"] for r in records if r["op"] == "unanswered"}
    assert in_doubt == {int(p.split("/")[2]) for p in writes} - done, (in_doubt, writes, done)
    lines = [r.line for r in report.results]
    assert len(lines) == len(set(lines)) and report.totals["lines"] + report.not_reached == 60


@pytest.mark.parametrize("concurrency", [1, 32])
def test_a_hung_backend_stops_rollback_at_the_first_read_timeout(synapse, files, client, tmp_path,
                                                                 concurrency) -> None:
    """``rollback`` on its own, every request hung: the first read to time out asks the check, and its
    failure stops the rollback before any read is sent a second time, no restore sent."""
    job, _ = applied_job(synapse, files, client, tmp_path, 40)
    puts = len(synapse.requests_to("PUT"))
    hang = HangFrom(synapse, "GET", 0)
    report = against(hang, lambda hung: rollback_job(str(job), client=hung, concurrency=concurrency))
    assert report.fatal is not None and re.match(r"^the Synapse backend is unavailable \(GET /tasks/\d+/ got no "
                                                 r"answer in time, and its check, GET /projects/\d+/, got no answer "
                                                 "either", report.fatal), report.summary()
    reads = hang.sent("GET", READS)
    assert reads and max(reads.values()) == 1, reads
    assert len(synapse.requests_to("PUT")) == puts
    assert report.remaining == 40, report.summary()


@pytest.mark.parametrize("concurrency", [1, 32])
def test_one_write_slow_while_the_backend_answers_does_not_stop_apply(synapse, files, client, tmp_path,
                                                                      concurrency) -> None:
    """One write timing out while the backend answers (its check, or the other writes): a slow request,
    retried (after the check at concurrency 1, where nothing else was answered since it went out); the
    run ends whole, nothing rolled back."""
    pid, export = seeded_export(synapse, files, client, tmp_path, 60)
    before = checks(synapse, pid)
    synapse.add_fault(Fault(status=None, delay=3.0, method="PUT", path=WRITES, times=1))
    slow = fast_client(synapse, timeout=0.5)
    try:
        report = apply_job(str(make_job(tmp_path, export)), client=slow, concurrency=concurrency)
    finally:
        slow.close()
    assert report.fatal is None and report.totals[APPLIED] == 60 and report.rollback is None, report.summary()
    writes = Counter(r.path for r in synapse.requests_to("PUT", WRITES))
    assert sorted(writes.values()) == [1] * 59 + [2], writes
    if concurrency == 1:  # its check, answered at its first try
        assert checks(synapse, pid) - before == 1


def test_runs_apply_is_stopped_by_its_own_check_not_the_exports(synapse, files, tmp_path) -> None:
    """``run`` reuses its client for the export, then the apply: a hung backend from the first write on is
    judged by the apply's check (the export's is over), and stopped there, each write sent once."""
    pid = seed_tasks(synapse, files, 40)
    hang = HangFrom(synapse, "PUT", 0)
    params = {"name": "File_Based_Annotation", "description": "from JSON files", "project": pid, "agent": 1,
              "method": "file", "target_specification_name": "annotation_data", "pre_processor_params": {}}
    result = against(hang, lambda hung: ToTaskAction(params=params, output_root=str(tmp_path), client=hung,
                                                     concurrency=32).start())
    assert result["status"] == "FAILED", result
    assert re.search(r"the Synapse backend is unavailable \(PUT /tasks/\d+/annotate_task_data/ got no answer in "
                     rf"time, and its check, GET /projects/{pid}/, got no answer either", result["message"]), result
    writes = hang.sent("PUT", WRITES)
    assert writes and max(writes.values()) == 1, writes
