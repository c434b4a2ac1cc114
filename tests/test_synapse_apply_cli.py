"""``apply`` as a user runs it, a real process against the contract server: what it prints
when the backend answers with an error page, and when the user presses Ctrl-C part way (or a
``kill``, ``timeout``, ``docker stop`` or systemd sends SIGTERM).
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from tests.jobs_helpers import REPO, run_cli
from totask_manifest._synapse.export import export_tasks
from totask_manifest._synapse.journal import read_journal
from totask_manifest.testing import Fault
from totask_manifest.testing.builders import make_job, seed_tasks

pytest_plugins = ["totask_manifest.testing.fixtures"]

#: what nginx answers in front of a backend: an HTML page over several lines
NGINX_400 = (b"<html>\r\n<head><title>400 Bad Request</title></head>\r\n<body>\r\n"
             b"<center><h1>400 Bad Request</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n")


@pytest.fixture
def job(synapse, files, client, tmp_path) -> Path:
    """A project of 6 tasks, exported, labeled by a finished job."""
    pid = seed_tasks(synapse, files, 6)
    export = tmp_path / "export.manifest"
    export_tasks(pid, str(export), client=client)
    return make_job(tmp_path, export)


@pytest.mark.slow
def test_an_error_page_is_one_line_of_its_task(synapse, job) -> None:
    """The page's line breaks went into the task's line: ``task 3: failed (... <html>`` followed
    by the rest of the page on lines of their own, among the other tasks' lines."""
    synapse.add_fault(Fault(status=400, method="PUT", path="annotate_task_data", skip=2, times=1, body=NGINX_400))
    r = run_cli("apply", str(job))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert len(lines) == 7 and lines[-1].startswith("5 applied, 0 unchanged, 0 conflicts (skipped), 1 failed"), lines
    failed = [line for line in lines if ": failed (" in line]
    assert len(failed) == 1, lines
    assert ("answered 400 Bad Request to PUT /tasks/" in failed[0]
            and "<html> <head><title>400 Bad Request</title></head> <body>" in failed[0]), failed[0]


def _sigint_default() -> None:
    """SIGINT (and SIGHUP) at its default in the child, as a terminal gives it (a runner started
    with ``&`` would hand it down ignored; one under ``nohup``, SIGHUP)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_DFL)


CLI = [sys.executable, "-m", "totask_manifest"]


def _held_put() -> Fault:
    """The third PUT to a task's data held 2 s by the server: a signal comes while it is in flight."""
    return Fault(status=None, method="PUT", path="annotate_task_data", skip=2, times=1, delay=2.0)


def _signal_when(args: list[str], signum: int, ready: Callable[[], bool], *, waiting_for: str,
                 python: list[str] = CLI, preexec: Callable[[], None] = _sigint_default,
                 settle: float = 0.0) -> tuple[int, str, str]:
    """Run ``python + args`` as a real process, send it ``signum`` once ``ready()`` (what the server
    saw: a held request fired, journal records), and return its exit code, stdout and stderr.

    Waits 60 s at most for ``ready`` (a process that ended first fails the test, naming
    ``waiting_for``), then 60 s for the process to end; it is killed if it has not. ``settle``: a
    pause after ``ready`` for a state no request shows (no assert depends on it)."""
    proc = subprocess.Popen([*python, *args], env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, preexec_fn=preexec)
    try:
        deadline = time.monotonic() + 60
        while not ready() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert ready(), f"{waiting_for} (the process {'ended' if proc.poll() is not None else 'is still waiting'})"
        if settle:
            time.sleep(settle)
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc.returncode, out, err


def _done_records(job: Path) -> int:
    journal = job / "synapse-journal.jsonl"
    return journal.read_text().count('"op":"done"') if journal.exists() else 0


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=["ctrl-c", "sigterm", "sighup"])
def test_ctrl_c_or_sigterm_says_what_was_applied_and_what_to_do(synapse, job, signum) -> None:
    """A Ctrl-C ended apply with ``totask-manifest apply: interrupted`` alone: nothing said that two
    tasks had been written to Synapse, nor that a third was in flight, nor how to finish or undo.
    Now the counts so far come first, then one line saying what to run; a second apply finds the
    write that was in flight and applies the rest, each task written once. A SIGTERM ended it at
    once, without a word (exit -15): it now takes the same path, exit 128 + 15."""
    # the third PUT is held a while: the Ctrl-C comes while it is in flight, and it lands after
    held = synapse.add_fault(_held_put())
    code, out, err = _signal_when(["apply", str(job), "--concurrency", "1"], signum,
                                  lambda: bool(held.fired) and _done_records(job) == 2,
                                  waiting_for="the third write never went out")
    assert code == 128 + signum, err
    assert "Traceback" not in err, err
    assert out.splitlines()[-1] == "2 applied, 0 unchanged, 0 conflicts (skipped), 0 failed, 0 not labeled", out
    assert err.splitlines()[-1] == (
        f"totask-manifest apply: interrupted: the counts above are the tasks finished before the stop; a write in "
        f"flight may still reach Synapse. Run 'totask-manifest apply {job}' again to apply the rest (tasks that hold "
        f"their label are left alone), or 'totask-manifest rollback {job}' to undo the job's writes"), err
    third = int(synapse.requests_to("PUT")[2].path.split("/")[2])
    deadline = time.monotonic() + 30
    while not synapse.tasks[third]["data"] and time.monotonic() < deadline:  # the held write lands
        time.sleep(0.02)
    again = run_cli("apply", str(job))
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines()[-1].startswith("3 applied, 3 unchanged, 0 conflicts (skipped), 0 failed"), \
        again.stdout
    assert sorted(len(synapse.requests_to("PUT", f"^/tasks/{t['id']}/")) for t in synapse.tasks.values()) == [1] * 6


def _interrupt_rollback(synapse, job: Path, signum: int, python: list[str]) -> tuple[int, str, str]:
    """Rollback (run as ``python + [rollback args]``) of an applied job, stopped by ``signum`` while
    its third restore is held by the server: its exit code, stdout and stderr."""
    assert run_cli("apply", str(job)).returncode == 0
    held = synapse.add_fault(_held_put())
    return _signal_when(["rollback", str(job), "--concurrency", "1"], signum, lambda: bool(held.fired),
                        waiting_for="the third restore never went out", python=python)


def _rollback_interrupted(job: Path) -> list[str]:
    """What an interrupted rollback of ``job``'s 6 tasks says on stderr after its first 2 restores."""
    return ["rollback: 2 restored, 0 already as before, 0 changed by someone else (skipped), 0 failed; 4 tasks "
            "not restored yet (run rollback again)",
            f"totask-manifest rollback: interrupted: the counts above are the tasks finished before the stop; a "
            f"restore in flight may still reach Synapse within a minute (journalled: rollback and apply leave its "
            f"task alone until then). Run 'totask-manifest rollback {job}' again to finish (tasks already restored "
            f"are left alone)"]


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=["ctrl-c", "sigterm", "sighup"])
def test_ctrl_c_or_sigterm_during_rollback_says_what_was_restored_and_what_is_left(synapse, job, signum) -> None:
    """A Ctrl-C during rollback printed ``interrupted`` alone: no word that tasks were left to restore,
    nor that rollback resumes; then it said to run it again, but not how many tasks it had restored
    nor how many were left, as apply's counts do. A second rollback finishes it. A SIGTERM ended it
    without a word."""
    code, out, err = _interrupt_rollback(synapse, job, signum, CLI)
    assert code == 128 + signum, err
    assert err.splitlines() == _rollback_interrupted(job), err
    first_two = sorted(int(r.path.split("/")[2]) for r in synapse.requests_to("PUT", "annotate_task_data")[6:8])  # after apply's 6
    assert out.splitlines() == [f"task {t}: restored" for t in first_two], out
    again = run_cli("rollback", str(job))  # at once: the restore in flight may still land (journalled, waited for)
    assert again.returncode == 1, again.stderr
    _the_held_restore_waited_for(synapse, again.stderr)


def _the_held_restore_waited_for(synapse, err: str) -> None:
    """A second rollback at once restored the 3 tasks left and waited for the restore held at the
    stop (journalled: it may still land); that restore then lands, and every task is as before."""
    assert re.fullmatch(r"rollback: 3 restored, 0 already as before, 0 changed by someone else \(skipped\), 0 failed, "
                        r"1 with a write that may still land \(run rollback again in \d+ s\)", err.splitlines()[-1]), err
    deadline = time.monotonic() + 30
    while any(t["data"] for t in synapse.tasks.values()) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert all(not t["data"] for t in synapse.tasks.values())


@pytest.mark.slow
def test_a_restore_in_flight_when_rollback_is_stopped_is_waited_for(synapse, job) -> None:
    """A SIGTERM stops rollback while its third restore is held by the server: that restore was not
    journalled, so a second rollback at once read the task before it landed (still labeled: restored
    again, or closed as ``already`` had it just landed) and no record said it was on its way. Now
    it is journalled (``restoring``, on disk before the PUT; no ``restored`` after it), and the
    second rollback leaves that task open for a later one, as a write that may still land."""
    code, _, err = _interrupt_rollback(synapse, job, signal.SIGTERM, CLI)
    assert code == 128 + signal.SIGTERM, err
    third = int(synapse.requests_to("PUT", "annotate_task_data")[8].path.split("/")[2])  # after apply's 6 and 2 restores
    records = read_journal(str(job))
    assert [r["op"] for r in records if r.get("task_id") == third and r["op"] in ("restoring", "restored")] == \
        ["restoring"]
    restoring = next(r for r in records if r["op"] == "restoring" and r["task_id"] == third)
    before = next(r for r in records if r["op"] == "before" and r["task_id"] == third)
    assert restoring["new_hash"] == before["previous_hash"]  # what it puts back
    again = run_cli("rollback", str(job))
    assert again.returncode == 1, again.stderr
    assert f"task {third}: not restored yet (a write of a run last heard of" in again.stdout, again.stdout
    assert ", 1 with a write that may still land (run rollback again in" in again.stderr, again.stderr
    assert "3 restored" in again.stderr, again.stderr


def _a_minute_later(job: Path) -> None:
    """The job's journal as it reads a minute later: every record dated 2 minutes earlier (the
    file rewritten whole, as a real journal is read), rather than a test that waits a minute."""
    journal = job / "synapse-journal.jsonl"
    records = read_journal(str(job))
    for rec in records:
        at = dt.datetime.strptime(rec["at"], "%Y-%m-%dT%H:%M:%S.%fZ") - dt.timedelta(minutes=2)
        rec["at"] = at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    journal.write_bytes(b"".join(orjson.dumps(rec) + b"\n" for rec in records))


@pytest.mark.slow
def test_an_apply_at_once_after_a_stopped_rollback_leaves_the_restore_in_flight_alone(synapse, job) -> None:
    """A SIGTERM stops rollback while its third restore is held by the server; the user applies
    again at once. Apply read that task before the restore landed (still labeled: ``unchanged``,
    or written again) and the restore then emptied it, the run saying it held its label. Now the
    journalled restore (``restoring``, no ``restored``) fails that task, nothing sent, saying when
    to apply again; the other 5 are applied or unchanged. A minute later apply reads it as usual
    and writes it."""
    code, _, err = _interrupt_rollback(synapse, job, signal.SIGTERM, CLI)
    assert code == 128 + signal.SIGTERM, err
    third = int(synapse.requests_to("PUT", "annotate_task_data")[8].path.split("/")[2])  # after apply's 6 and 2 restores
    puts = len(synapse.requests_to("PUT", f"^/tasks/{third}/"))
    r = run_cli("apply", str(job))
    assert r.returncode == 0, r.stderr  # a task's failure: the others applied (README: exit 1 only if every one failed)
    assert re.search(rf"^task {third}: failed \(a restore by a rollback last heard of -?\d+ s ago may still reach it: "
                     rf"nothing sent \(run apply again in \d+ s\)\)$", r.stdout, re.M), r.stdout
    assert r.stdout.splitlines()[-1].startswith("2 applied, 3 unchanged, 0 conflicts (skipped), 1 failed"), r.stdout
    assert len(synapse.requests_to("PUT", f"^/tasks/{third}/")) == puts  # nothing sent to it
    deadline = time.monotonic() + 30
    while synapse.tasks[third]["data"] and time.monotonic() < deadline:  # the held restore lands
        time.sleep(0.02)
    assert not synapse.tasks[third]["data"]
    _a_minute_later(job)
    later = run_cli("apply", str(job))
    assert later.returncode == 0, later.stderr
    assert f"task {third}: applied" in later.stdout, later.stdout
    assert later.stdout.splitlines()[-1].startswith("1 applied, 5 unchanged, 0 conflicts (skipped), 0 failed"), \
        later.stdout
    assert synapse.tasks[third]["data"]


@pytest.mark.slow
def test_an_apply_stopped_at_once_after_a_stopped_rollback_rolls_back_around_the_restore_in_flight(synapse, job) -> None:
    """A regression guard (no change was needed): apply's own rollback reads only its run's records,
    so it never sees another run's restores in doubt, and need not. A SIGTERM stops rollback with its
    third restore held by the server; apply at once, ``--force``, over the tasks left labeled (edited
    by hand since) stops at its last write (its project gone, 404: a refused token's rollback could not
    run), and rolls back its own writes. The task with the restore in flight is refused before any
    write (``RerunIndex.restore_landing``, the minute rollback waits), so no write of the run, nor its
    rollback, touches it: the restore lands,
    the task stays as before the job, and every other task holds what it held before that apply."""
    code, _, err = _interrupt_rollback(synapse, job, signal.SIGTERM, CLI)
    assert code == 128 + signal.SIGTERM, err
    puts = synapse.requests_to("PUT", "annotate_task_data")
    third = int(puts[8].path.split("/")[2])  # after apply's 6 and 2 restores
    labeled = [t for t in synapse.tasks if synapse.tasks[t]["data"] and t != third]
    for tid in labeled:  # edited by hand: --force writes them
        synapse.tasks[tid]["data"] = {"annotations": {"image_1": []}, "annotationsData": {"image_1": []}, "by": "hand"}
    before = {tid: task["data"] for tid, task in synapse.tasks.items() if tid != third}
    last = max(labeled)
    assert third < last, (third, labeled)  # the stop comes after the task's turn
    synapse.add_fault(Fault(status=404, method="PUT", path=rf"^/tasks/{last}/annotate_task_data/"))
    synapse.add_fault(Fault(status=404, method="GET", path=r"^/projects/\d+/$"))  # the project gone: a fatal stop
    r = run_cli("apply", str(job), "--force", "--concurrency", "1")
    assert r.returncode == 1 and "Traceback" not in r.stderr and "is gone (404)" in r.stderr, r.stderr
    assert re.search(rf"^task {third}: failed \(a restore by a rollback last heard of -?\d+ s ago may still reach it: ",
                     r.stdout, re.M), r.stdout
    assert re.search(r"^rollback: 4 restored, 0 already as before, 0 changed by someone else \(skipped\), 0 failed",
                     r.stderr, re.M), r.stderr
    sent = synapse.requests_to("PUT", "annotate_task_data")[len(puts):]
    assert len(sent) == 9 and not [p for p in sent if p.path.startswith(f"/tasks/{third}/")], [p.path for p in sent]
    deadline = time.monotonic() + 30
    while synapse.tasks[third]["data"] and time.monotonic() < deadline:  # the held restore lands
        time.sleep(0.02)
    assert not synapse.tasks[third]["data"]
    assert {tid: task["data"] for tid, task in synapse.tasks.items() if tid != third} == before


#: the CLI with the journal's commits after a Ctrl-C held until the Synapse client's loop has
#: stopped (5 s at most): a slow disk, as under a loaded machine, where the commit that the
#: interrupted rollback's clean-up makes was still pending when ``close`` stopped the loop
SLOW_LAST_COMMIT = """
import signal, sys, threading, time
from totask_manifest._synapse import journal, sync_client
loops, interrupted = [], threading.Event()
start = sync_client.SynapseClient.__init__
def started(self, *args, **kwargs):
    start(self, *args, **kwargs)
    loops.append(self._loop)
def on_sigint(signum, frame):
    interrupted.set()
    raise KeyboardInterrupt
write = journal._LocalStore.write
def slow_write(self, data):
    deadline = time.monotonic() + 5
    while interrupted.is_set() and loops[0].is_running() and time.monotonic() < deadline:
        time.sleep(0.01)
    write(self, data)
sync_client.SynapseClient.__init__ = started
journal._LocalStore.write = slow_write
signal.signal(signal.SIGINT, on_sigint)
from totask_manifest._cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow
def test_ctrl_c_during_rollback_leaves_no_task_pending(synapse, job) -> None:
    """After ``interrupted``, four lines of ``Task was destroyed but it is pending!`` (about
    ``Journal._commit_loop`` and ``_rollback_with_journal``): the client closed its loop while the
    cancelled rollback still committed its journal. Its clean-up now ends before the loop closes,
    and the restores it journalled are kept: a second rollback finishes the rest."""
    code, _out, err = _interrupt_rollback(synapse, job, signal.SIGINT, [sys.executable, "-c", SLOW_LAST_COMMIT])
    assert code == 130, err
    assert "Task was destroyed" not in err and "Traceback" not in err, err
    assert err.splitlines() == _rollback_interrupted(job), err
    assert (job / "synapse-journal.jsonl").read_text().count('"op":"restored"') == 2
    again = run_cli("rollback", str(job))
    assert again.returncode == 1, again.stderr
    # the 4 left: the restore held at the stop is journalled, and waited for as a write that may still land
    _the_held_restore_waited_for(synapse, again.stderr)


def _sigterm_ignored() -> None:
    """SIGTERM ignored in the child, as a caller that wants it to run through hands it down."""
    _sigint_default()
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


@pytest.mark.slow
def test_a_sigterm_ignored_by_the_caller_stays_ignored(synapse, job) -> None:
    """A caller that hands apply SIGTERM ignored (``trap '' TERM``, a supervisor that must not stop
    it part way) keeps it so: the SIGTERM changes nothing, every task is applied, exit 0."""
    held = synapse.add_fault(_held_put())
    code, out, err = _signal_when(["apply", str(job), "--concurrency", "1"], signal.SIGTERM, lambda: bool(held.fired),
                                  waiting_for="the third write never went out", preexec=_sigterm_ignored)
    assert code == 0, err
    assert out.splitlines()[-1].startswith("6 applied, 0 unchanged, 0 conflicts (skipped), 0 failed"), out


def _strace_delaying_fsync(seconds: float) -> list[str]:
    """A prefix that runs a command with each fsync held ``seconds`` (strace's fault injection: a
    slow disk, for real); the test is skipped where strace is missing or may not trace."""
    strace = shutil.which("strace")
    prefix = [strace or "strace", "-f", "-qq", "-o", os.devnull, "-e", "trace=fsync",
              "-e", f"inject=fsync:delay_exit={int(seconds * 1e6)}"]
    if strace is None or subprocess.run([*prefix, "true"], capture_output=True).returncode != 0:
        pytest.skip("strace cannot trace here")
    return prefix


@pytest.mark.slow
def test_ctrl_c_while_done_records_are_committed_counts_them_applied(synapse, job) -> None:
    """A Ctrl-C while the ``done`` records of answered writes are committed (each fsync held 1 s:
    a slow disk): the commit goes on and the records land, so the counts said must include those
    tasks. They said ``0 applied`` beside 4 ``done`` records of the run."""
    prefix = _strace_delaying_fsync(1.0)
    proc = subprocess.Popen([*prefix, *CLI, "apply", str(job), "--concurrency", "4"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(REPO)},
                            preexec_fn=_sigint_default)
    try:
        deadline = time.monotonic() + 60
        while (len([r for r in synapse.requests_to("PUT") if r.status == 200]) < 4 and proc.poll() is None
               and time.monotonic() < deadline):
            time.sleep(0.01)  # the 4 writes answered: their ``done`` records now wait for the slow fsync
        assert proc.poll() is None and _done_records(job) < 4, "the writes were journalled done before the stop"
        apply = int(Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()[0])  # under strace
        os.kill(apply, signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    done = _done_records(job)  # answered writes whose records landed, and any that went out while they were committed
    assert done >= 1 and "Traceback" not in err, err  # the counts said must be the journal's (they said 0 beside 4)
    assert out.splitlines()[-1] == f"{done} applied, 0 unchanged, 0 conflicts (skipped), 0 failed, 0 not labeled", out


@pytest.mark.slow
def test_ctrl_c_of_an_apply_whose_queue_is_full_ends(synapse, files, client, tmp_path) -> None:
    """A Ctrl-C while apply's reader waits for room in its full queue (300 tasks, one worker held by
    a slow PUT): the clean-up that ``close`` now waits for must end. The reader, cancelled, still
    put a stop per worker into that queue, which nothing drained any more: apply hung."""
    pid = seed_tasks(synapse, files, 300)
    export = tmp_path / "export.manifest"
    export_tasks(pid, str(export), client=client)
    job = make_job(tmp_path, export)
    synapse.add_fault(Fault(status=None, method="PUT", path="annotate_task_data", times=1, delay=10.0))

    def third_window_read() -> bool:  # windows of 100: after the third, the reader fills the queue and waits
        return len([r for r in synapse.requests_to("GET", "^/sdk/tasks/$")
                    if "id__in" in r.query and r.status is not None]) >= 3

    # settle: lets the reader reach the full queue first
    code, _out, err = _signal_when(["apply", str(job), "--concurrency", "1"], signal.SIGINT, third_window_read,
                                   waiting_for="the third window of tasks was never read", settle=0.2)
    assert code == 130, err
    assert "Task was destroyed" not in err and "Traceback" not in err, err


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_signal_during_the_rollback_after_a_stop_says_the_stop_and_the_rollback_cut_short(synapse, job,
                                                                                            signum) -> None:
    """A Ctrl-C or SIGTERM while apply rolls back after a fatal stop (the project gone) said only
    "interrupted: ... Run 'totask-manifest apply JOB' again ...": no line said why the apply had
    stopped, nor that a rollback was under way and cut short. The summary now says the stop's
    reason as it does without the signal, and that the rollback was interrupted, with the command
    that finishes it; the exit code is the signal's. The rollback's first request is held by the
    server, and the signal sent once it is there."""
    ids = sorted(synapse.tasks)
    synapse.add_fault(Fault(status=404, method="PUT", path=rf"^/tasks/{ids[3]}/annotate_task_data/"))
    synapse.add_fault(Fault(status=404, method="GET", path=r"^/projects/\d+/$"))  # the project gone: a fatal stop
    checked, rolling_back = [], []

    def hold_the_rollback(server, rec) -> None:
        # the check answered 404: the next request is the rollback's (one write at a time)
        if re.match(r"^/projects/\d+/$", rec.path):
            checked.append(rec)
        elif checked and not rolling_back:
            rolling_back.append(rec)
            server.held = True

    synapse.hooks.append(hold_the_rollback)
    try:
        code, out, err = _signal_when(["apply", str(job), "--concurrency", "1"], signum, lambda: bool(rolling_back),
                                      waiting_for="the rollback never sent its first request")
    finally:
        synapse.held = False
    assert code == 128 + signum and "Traceback" not in err, err
    lines = out.splitlines()
    assert lines[-2] == "3 applied, 0 unchanged, 0 conflicts (skipped), 1 failed, 0 not labeled", out
    assert lines[-1].startswith("stopped: ") and "is gone (404)" in lines[-1], out
    assert err.splitlines()[-1] == (
        f"totask-manifest apply: interrupted: the rollback of this run's writes after the stop was interrupted; a "
        f"restore in flight may still reach Synapse. Run 'totask-manifest rollback {job}' to finish undoing them"), err
