"""``apply`` and ``rollback`` as real processes: ``kill -9`` mid-run against a backend that
normalises what it stores, then re-apply and rollback; and two applies at once.

The contract server runs in this process; the CLI runs in a subprocess (``SYNAPSE_HOST`` and the
token reach it through the environment the ``synapse`` fixture sets). A server hook kills the
client with SIGKILL when the Nth PUT arrives, so the kill lands with PUTs in flight: some reach
the backend without the client ever journalling their outcome.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import resource
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable

import orjson
import pytest

from tests.jobs_helpers import REPO, popen_cli, run_cli
from totask_manifest._formats.synapse import gt_to_dm_v1
from totask_manifest._jobs.holder import Holder
from totask_manifest._synapse.apply import apply_job
from totask_manifest._synapse.export import export_tasks
from totask_manifest._synapse.journal import open_writes, read_journal
from totask_manifest._synapse.rollback import rollback_job
from totask_manifest.testing import Fault
from totask_manifest.testing.builders import gt_label, make_job, seed_tasks

pytest_plugins = ["totask_manifest.testing.fixtures"]

ORIGINAL = {"annotations": {"image_1": []}, "annotationsData": {"image_1": []}, "extra": {"by": "human"}}
N = 240


def normalise(data: dict) -> dict:
    """A backend that stores a little more than it was sent."""
    return {**data, "assignmentId": 7, "meta": {"normalised": True}}


@pytest.fixture
def project(synapse, files, client, tmp_path):
    pid = seed_tasks(synapse, files, N, data=ORIGINAL)
    export = tmp_path / "export.manifest"
    export_tasks(pid, str(export), client=client)
    tasks = sorted(synapse.project_tasks(pid), key=lambda t: t["id"])
    synapse.normalise = normalise
    return make_job(tmp_path, export), tasks


def task_puts(synapse) -> Counter:
    return Counter(int(r.path.split("/")[2]) for r in synapse.requests_to("PUT", r"^/tasks/\d+/annotate_task_data/"))


def kill_on_put(synapse, proc_box: dict, nth: int) -> None:
    seen = {"n": 0}

    def hook(_server, rec) -> None:
        if rec.method == "PUT" and "/annotate_task_data/" in rec.path:
            seen["n"] += 1
            if seen["n"] == nth and proc_box.get("proc") is not None:
                os.kill(proc_box["proc"].pid, signal.SIGKILL)

    synapse.hooks.append(hook)


def settle(synapse) -> None:
    """Wait until the server has finished the killed client's requests (they still land)."""
    quiet = 0
    while quiet < 20:
        quiet = quiet + 1 if synapse.in_flight == 0 else 0
        time.sleep(0.01)


def expected(line: int) -> dict:
    # apply's conversion: confidences travel as a ``confidence`` classification attribute
    return normalise(gt_to_dm_v1("object-detection", *gt_label(line), confidence_attribute="confidence"))


@pytest.mark.parametrize("then", ["reapply-then-rollback", "rollback-at-once"])
@pytest.mark.slow
def test_kill_9_mid_apply_then_no_false_conflicts_and_rollback_restores_every_task(synapse, project, client, then,
                                                                                    monkeypatch):
    job_dir, tasks = project
    synapse.latency = 0.002
    box: dict = {}
    kill_on_put(synapse, box, nth=N // 2)
    box["proc"] = popen_cli("apply", str(job_dir), "--concurrency", "16", "--quiet")
    assert box["proc"].wait(timeout=120) == -signal.SIGKILL
    synapse.hooks.clear()
    settle(synapse)
    written = {t["id"] for t in tasks if t["data"] != ORIGINAL}
    assert 0 < len(written) < N, "the kill should land mid-run"

    if then == "reapply-then-rollback":
        before = task_puts(synapse)
        report = apply_job(str(job_dir), client=client)
        assert report.ok
        totals = report.totals
        assert totals["conflict"] == 0 and totals["failed"] == 0, report.summary()
        assert totals["applied"] + totals["unchanged"] == N
        assert totals["unchanged"] == len(written)  # every write of the killed run is recognised as ours
        again = task_puts(synapse) - before
        assert not (set(again) & written), "a task the killed run wrote was sent again"
        for line, task in enumerate(tasks, start=1):
            assert task["data"] == expected(line)

    holding_ours = {t["id"] for t in tasks if t["data"] != ORIGINAL}
    result = rollback_job(str(job_dir), client=client)
    # the killed run's writes still in doubt may land within a minute of its last record: their tasks
    # are left open (``rollback.LANDING``), neither closed as "already" nor restored; a minute later,
    # each is closed or restored as it then is
    landing = {r.task_id for r in result.results if r.status == "landing"}  # none where every write was answered
    assert result.complete == (not landing), result.summary()
    if landing:
        monkeypatch.setattr("totask_manifest._synapse.rollback.LANDING_SECONDS", 0.0)
        first, result = result, rollback_job(str(job_dir), client=client)
        assert {r.task_id for r in result.results} == landing
        result.results += [r for r in first.results if r.status != "landing"]
    assert result.complete, result.summary()
    assert result.totals["conflict"] == 0 and result.totals["failed"] == 0
    assert {r.task_id for r in result.results if r.status == "restored"} == holding_ours
    for task in tasks:
        # a restore is a write too: this backend stores the original with its own additions
        want = normalise(ORIGINAL) if task["id"] in holding_ours else ORIGINAL
        assert task["data"] == want, f"task {task['id']} not restored"


@pytest.mark.slow
def test_two_applies_at_once_send_each_put_once(synapse, project):
    job_dir, tasks = project
    first_put, second_done = threading.Event(), threading.Event()

    def hold_first_put(_server, rec) -> None:
        # the server stalls on the first apply's first PUT until the second apply has answered,
        # so the two runs overlap whatever the machine's speed (the lease needs no request)
        if rec.method == "PUT" and not first_put.is_set():
            first_put.set()
            second_done.wait(120)

    synapse.hooks.append(hold_first_put)
    first = popen_cli("apply", str(job_dir), "--concurrency", "4", "--quiet")
    assert first_put.wait(60)
    try:
        second = run_cli("apply", str(job_dir), "--concurrency", "4", "--quiet")
        during = run_cli("rollback", str(job_dir))
    finally:
        second_done.set()
    assert second.returncode == 2, second.stderr
    assert second.stderr.count("\n") == 1 and f"is in use by pid {first.pid}" in second.stderr
    # rollback holds the same lease: refused while the apply runs, nothing sent
    assert during.returncode == 2, during.stderr
    assert during.stderr.count("\n") == 1 and f"is in use by pid {first.pid}" in during.stderr
    _out, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    puts = task_puts(synapse)
    assert set(puts) == {t["id"] for t in tasks} and set(puts.values()) == {1}
    # once the apply has ended, rollback runs
    r = run_cli("rollback", str(job_dir))
    assert r.returncode == 0, r.stderr


@pytest.mark.slow
def test_a_corrupt_journal_is_one_line_not_a_traceback(synapse, project, client):
    job_dir, _tasks = project
    assert apply_job(str(job_dir), client=client).ok
    synapse.normalise = None  # the restores store what they send: the second rollback finds them as before
    journal = job_dir / "synapse-journal.jsonl"
    lines = journal.read_bytes().splitlines(keepends=True)
    lines[1] = b'{"op": "before", "task_id": "x"\n'
    journal.write_bytes(b"".join(lines))
    for command in ("apply", "rollback"):
        r = run_cli(command, str(job_dir))
        assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
        assert r.stderr.strip().count("\n") == 0
        assert "synapse-journal.jsonl is corrupt at line 2" in r.stderr


@pytest.mark.slow
def test_a_full_disk_under_the_journal_reports_the_rollback_and_leaves_no_torn_record(synapse, project):
    """The journal may not pass 16 KiB (a file size limit: EFBIG, as a full disk's ENOSPC): apply
    stops, rolls back what it wrote, and says so, exit 1, as any fatal failure. The buffered
    journal raised the failed commit again on close: the report was lost for ``error: File too
    large`` (exit 2), and the unwritten rest of that commit stayed queued for the next write."""
    job_dir, tasks = project
    r = _run_with_file_size_limit(16 << 10, "apply", str(job_dir), "--concurrency", "8")
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    said = r.stdout + r.stderr  # the tasks on stdout, the summary with the rollback on stderr
    assert "stopped: cannot write the journal" in said and _LIMIT_SAID.format(16 << 10) in said, said
    assert "rollback: " in said and " restored" in said, said
    assert "error: File too large" not in said, said
    settle(synapse)
    assert task_puts(synapse), "the limit should be met after some writes"
    for task in tasks:
        assert task["data"] in (ORIGINAL, normalise(ORIGINAL)), f"task {task['id']} not restored"
    journal = (job_dir / "synapse-journal.jsonl").read_bytes()
    assert journal.endswith(b"\n") and all(orjson.loads(line) for line in journal.splitlines())


#: what a journal meeting ``ulimit -f`` says, as every other writer does (``_errors.file_size_limit``): it said
#: only "[Errno 27] File too large"
_LIMIT_SAID = ("File too large: this process's file size limit ({} bytes, ulimit -f) was reached; raise it "
               "(ulimit -f unlimited) and run it again: the limit is the process's, another folder does not help")


def _run_with_file_size_limit(size: int, *args: str) -> subprocess.CompletedProcess:
    """The CLI with no file allowed past ``size`` bytes (EFBIG, as a full disk's ENOSPC)."""
    return subprocess.run([sys.executable, "-m", "totask_manifest", *args], capture_output=True, text=True,
                          timeout=120, cwd=REPO, preexec_fn=_file_size_limit(size),
                          env={**os.environ, "PYTHONPATH": str(REPO)})


def _file_size_limit(size: int) -> Callable[[], None]:
    """A child's ``preexec_fn``: no file past ``size`` bytes, each write past it failing with EFBIG."""

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))

    return limit


def test_a_rollback_that_cannot_journal_its_restores_sends_them_and_says_so(synapse, project, client):
    """A rollback whose journal cannot grow (a full disk) cannot write ``restoring`` before a
    restore: it sends each restore all the same (nothing could record it, and the user asked for
    the tasks back), says how many went unjournalled and why, exit 1; a rollback once the disk has
    room records them (``already as before``), exit 0. Stopping at the first ``restoring`` left
    every task labeled after a rollback that said only that it stopped."""
    job_dir, tasks = project
    assert apply_job(str(job_dir), client=client).ok
    synapse.normalise = None  # the restores store what they send: the second rollback finds them as before
    journal = job_dir / "synapse-journal.jsonl"
    size = journal.stat().st_size
    r = _run_with_file_size_limit(size, "rollback", str(job_dir))
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert re.fullmatch(rf"rollback: {N} restored, 0 already as before, 0 changed by someone else \(skipped\), 0 "
                        rf"failed; {N} restored unjournalled \(cannot write the journal .*: "
                        rf"{re.escape(_LIMIT_SAID.format(size))}\): sent "
                        r"all the same, as nothing could record them; once the journal can be written, run rollback "
                        r"again to record them", r.stderr.splitlines()[-1]), r.stderr
    assert all(task["data"] == ORIGINAL for task in tasks)
    again = run_cli("rollback", str(job_dir))
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines()[-1].startswith(f"rollback: 0 restored, {N} already as before"), again.stdout


def _ctrl_c_once_held(synapse, proc: subprocess.Popen, held: int) -> str:
    """Ctrl-C the process once the server holds ``held`` of its requests (``synapse.held``), then
    let the server answer again: the process's stderr."""
    try:
        deadline = time.monotonic() + 60
        while synapse.in_flight < held and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert synapse.in_flight >= held, proc.poll()
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=60)
    finally:
        synapse.held = False
        if proc.poll() is None:
            proc.kill()
    return err if isinstance(err, str) else err.decode()


@pytest.mark.slow
def test_ctrl_c_of_a_rollback_that_cannot_journal_says_its_restores_in_flight_may_still_land(synapse, project, client):
    """A rollback on a full disk sends its restores unjournalled; a Ctrl-C while the server holds
    some of them: its summary counts them as sent unjournalled, that may still land, and says to wait
    a minute, exit 130. It said ``0 restored ...; 240 tasks not restored yet`` and that a restore in
    flight was journalled: an apply at once found the job's labels in place, and the held restores
    then replaced them, with no journal record of it."""
    job_dir, tasks = project
    assert apply_job(str(job_dir), client=client).ok
    synapse.normalise = None  # a restore stores what it sends
    applied = len(synapse.requests_to("PUT"))

    def hold_from_the_first_restore(server, rec) -> None:
        if rec.method == "PUT":
            server.held = True  # every request from now on waits: the restores sent so far stay in flight

    synapse.hooks.append(hold_from_the_first_restore)
    size = (job_dir / "synapse-journal.jsonl").stat().st_size
    proc = subprocess.Popen([sys.executable, "-m", "totask_manifest", "rollback", str(job_dir), "--concurrency", "4"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
                            preexec_fn=_file_size_limit(size), env={**os.environ, "PYTHONPATH": str(REPO)})
    err = _ctrl_c_once_held(synapse, proc, 4)  # each of the 4 workers held: a restore, or the next task's GET
    in_flight = sorted(int(r.path.split("/")[2]) for r in synapse.requests_to("PUT")[applied:])
    assert proc.returncode == 130 and "Traceback" not in err, err
    assert "sending the restores all the same, unjournalled" in err.splitlines()[0], err
    n = len(in_flight)
    restores = "restores" if n > 1 else "restore"
    assert re.fullmatch(rf"rollback: 0 restored, 0 already as before, 0 changed by someone else \(skipped\), 0 failed; "
                        rf"{n} {restores} sent unjournalled \(cannot write the journal .*: "
                        rf"{re.escape(_LIMIT_SAID.format(size))}\) may still "
                        rf"reach Synapse within a minute: wait a minute, then run rollback again or apply again; "
                        rf"{N - n} tasks not restored yet \(run rollback again\)", err.splitlines()[-2]), err
    assert "journalled: rollback and apply leave" not in err and "wait a minute" in err.splitlines()[-1], err
    settle(synapse)  # the held restores land after the rollback ended: what the summary warned of
    for task in tasks:
        assert (task["data"] == ORIGINAL) == (task["id"] in in_flight), task["id"]


#: a rollback as the CLI runs it, with a client that gives up on an answer after 0.5 s, once (the
#: CLI's waits 30 s, 4 times): its summary, as the CLI prints it, on stdout
_ROLLBACK_IMPATIENT = """
import sys
from totask_manifest._synapse.rollback import rollback_job
from totask_manifest._synapse.sync_client import SynapseClient
client = SynapseClient(timeout=0.5, retries=0)
try:
    print(rollback_job(sys.argv[1], client=client).summary())
finally:
    client.close()
"""


def test_an_unjournalled_restore_that_times_out_is_in_doubt_not_only_failed(synapse, project, client):
    """A rollback on a full disk sends its restores unjournalled; one the server answers too late
    for the client (a timeout) lands after all. Its summary counted it ``1 failed`` and said to run
    rollback again at once, as after a refusal: nothing on disk makes a later run wait for it, so an
    apply then found the job's label and the restore emptied it after. It is counted as in doubt
    now, as a journalled restore that timed out is (``unanswered``): the summary says it may still
    reach Synapse and to wait a minute."""
    job_dir, tasks = project
    assert apply_job(str(job_dir), client=client).ok
    synapse.normalise = None  # a restore stores what it sends
    late = tasks[0]["id"]
    synapse.add_fault(Fault(status=None, method="PUT", path=rf"^/tasks/{late}/annotate_task_data/", delay=2.0))
    size = (job_dir / "synapse-journal.jsonl").stat().st_size
    r = subprocess.run([sys.executable, "-c", _ROLLBACK_IMPATIENT, str(job_dir)], capture_output=True, text=True,
                       timeout=120, cwd=REPO, preexec_fn=_file_size_limit(size),
                       env={**os.environ, "PYTHONPATH": str(REPO)})
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    limit = re.escape(_LIMIT_SAID.format(size))
    assert re.fullmatch(rf"rollback: {N - 1} restored, 0 already as before, 0 changed by someone else \(skipped\), "
                        rf"1 failed; 1 restore sent unjournalled \(cannot write the journal .*: {limit}\) may still "
                        rf"reach Synapse within a minute: wait a minute, then run rollback again or apply again; "
                        rf"{N - 1} restored unjournalled \(cannot write the journal .*: {limit}\): sent all the same, "
                        r"as nothing could record them; once the journal can be written, run rollback again to "
                        r"record them", r.stdout.strip()), r.stdout
    settle(synapse)  # the late restore lands: what the summary warned of
    assert all(task["data"] == ORIGINAL for task in tasks)


@pytest.mark.slow
def test_kill_9_while_one_put_is_retried_times_the_minute_from_its_last_attempt(synapse, files, client, tmp_path,
                                                                                 monkeypatch):
    """One PUT answered 429 again and again (in life with a long ``Retry-After``, for minutes), by a
    run with nothing else to journal, then ``kill -9``: a rollback timed the minute its write may
    still land in from the run's last record, its ``before``, so it could close the task while the
    last attempt was on its way. Each repeated attempt is journalled before it is sent: the 4th
    attempt's record went to disk after the 3rd was answered, so a rollback within a minute of that
    leaves the task open."""
    pid = seed_tasks(synapse, files, 2, data=ORIGINAL)
    export = tmp_path / "export.manifest"
    export_tasks(pid, str(export), client=client)
    job_dir = make_job(tmp_path, export)
    tid = min(t["id"] for t in synapse.project_tasks(pid))
    synapse.add_fault(Fault(status=429, method="PUT", path=f"^/tasks/{tid}/", retry_after=0.05, times=None))
    box: dict = {}
    kill_on_put(synapse, box, nth=4)
    box["proc"] = popen_cli("apply", str(job_dir), "--concurrency", "1", "--quiet")
    assert box["proc"].wait(timeout=120) == -signal.SIGKILL
    synapse.hooks.clear()
    settle(synapse)
    synapse.clear_faults()
    puts = synapse.requests_to("PUT", r"^/tasks/\d+/annotate_task_data/")
    assert [int(r.path.split("/")[2]) for r in puts] == [tid] * 4
    records = read_journal(str(job_dir))
    assert [(r["op"], r.get("attempt")) for r in records] == [("before", None), ("attempt", 2), ("attempt", 3),
                                                              ("attempt", 4)]
    history = open_writes(records)[tid]
    third_arrived = dt.datetime.fromtimestamp(puts[2].at, dt.UTC)  # answered, then the 4th attempt journalled
    assert history.runs_last_seen[records[0]["run"]] >= third_arrived
    assert history.landing(third_arrived + dt.timedelta(seconds=59.9), 60.0) is not None
    early = rollback_job(str(job_dir), client=client)
    assert [(r.task_id, r.status) for r in early.results] == [(tid, "landing")], early.summary()
    monkeypatch.setattr("totask_manifest._synapse.rollback.LANDING_SECONDS", 0.0)  # a minute later
    late = rollback_job(str(job_dir), client=client)
    assert [(r.task_id, r.status) for r in late.results] == [(tid, "already")] and late.complete, late.summary()
    assert all(t["data"] == ORIGINAL for t in synapse.project_tasks(pid))


def _dead_apply_lease(job_dir) -> int:
    """The job's lease as an ``apply`` killed a week ago left it (its process gone): that pid."""
    gone = subprocess.Popen(["true"])
    gone.wait()
    record = Holder.me("apply")
    record.pid, record.pid_start = gone.pid, ""
    record.acquired = record.heartbeat = time.time() - 7 * 86400
    (job_dir / ".lease").mkdir(exist_ok=True)
    (job_dir / ".lease" / "lease-000001.json").write_bytes(record.to_json())
    return gone.pid


@pytest.mark.slow
def test_ctrl_c_of_an_apply_that_journalled_writes_releases_the_lease_as_its_own(synapse, project):
    """An apply taking over a killed apply's lease, then stopped by a Ctrl-C once it had journalled
    writes: job.json, which apply never writes, was unchanged, so the lease was "given back as found"
    (for a refused resume only): the dead apply's week-old record came back, the next command said it
    took the lease over from that long-gone pid again, and the interrupted apply was nowhere."""
    job_dir, _tasks = project
    dead = _dead_apply_lease(job_dir)
    journal = job_dir / "synapse-journal.jsonl"

    def hold_from_the_fifth_put(server, rec) -> None:
        if rec.method == "PUT" and len(server.requests_to("PUT")) >= 5:
            server.held = True  # the apply waits on its answers: stopped with journalled writes

    synapse.hooks.append(hold_from_the_fifth_put)
    proc = popen_cli("apply", str(job_dir), "--concurrency", "2", "--quiet")
    err = _ctrl_c_once_held(synapse, proc, 1)
    assert proc.returncode == 130 and journal.stat().st_size > 0, err  # stopped with journalled writes
    assert f"taking over the lease on {job_dir}: holder pid {dead} " in err, err
    (lease,) = (job_dir / ".lease").glob("lease-*.json")
    record = orjson.loads(lease.read_bytes())
    assert (record["pid"], record["command"], record["released"]) == (proc.pid, "apply", True), record

    synapse.hooks.clear()
    settle(synapse)
    after = run_cli("rollback", str(job_dir))
    assert "taking over the lease" not in after.stderr and f"pid {dead}" not in after.stderr, after.stderr
