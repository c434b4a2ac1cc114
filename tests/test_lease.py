"""One writer per job folder: the lease, with real subprocesses and real storages.

Two processes on one job used to lose lines silently (the second one's final part replaced the
first's checkpoint). These tests run real CLI processes side by side, kill them with SIGKILL,
and read the parts on disk.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from tests.jobs_helpers import REPO, TOY, popen_cli, run_cli, write_manifest
from tests.support.s3 import S3Endpoint
from totask_manifest import _api as api
from totask_manifest._jobs import lease as lease_mod
from totask_manifest._jobs.checkpoint import iter_records
from totask_manifest._jobs.config import JobConfig
from totask_manifest._jobs.layout import JobLayout
from totask_manifest._jobs.lease import JobBusyError, LeaseLost, acquire, current_holder, hold

N = 200
REPO_SAMPLE = REPO / "sample_data"


def start_args(inp, out, job, delay="0.01", every="7"):
    return ("annotate", str(inp), "--job-name", job, "--label-attribute", "cls", "--task-type",
            "image-classification", "--method", TOY, "--output", str(out), "--toy-delay", delay,
            "--checkpoint-every", every)


def wait_until(predicate, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError("condition not met in time")


def has_parts(out, job, n=1):
    return lambda: len(JobLayout(str(out / job)).parts()) >= n


def selected_indices(inp, attribute="cls"):
    out = []
    for i, raw in enumerate(inp.read_bytes().splitlines()):
        rec = orjson.loads(raw)
        if rec.get(attribute) is None:
            out.append(i)
    return out


def assert_covered_once(inp, out, job):
    indices = [r.index for r in iter_records(JobLayout(str(out / job)))]
    assert indices == selected_indices(inp), "a selected line is missing or recorded twice"


# -- the lease itself ----------------------------------------------------------------------------

@pytest.mark.parametrize("root", ["local", "file", "memory"])
def test_second_acquire_is_refused_and_release_frees_it(tmp_path, root):
    job = {"local": str(tmp_path / "job"), "file": f"file://{tmp_path}/job", "memory": f"memory://lease-{os.getpid()}/job"}[root]
    first = acquire(job, "annotate")
    try:
        with pytest.raises(JobBusyError, match=rf"in use by pid {os.getpid()} on host {socket.gethostname()}"):
            acquire(job, "resume")
        holder, gone = current_holder(job)
        assert holder is not None and gone is None and holder.command == "annotate"
    finally:
        first.release()
    second = acquire(job, "resume")  # free again
    second.release()


def test_lease_on_s3_uses_a_conditional_put(s3: S3Endpoint):
    job = f"{s3.new_bucket()}/jobs/one"
    first = acquire(job, "annotate")
    try:
        with pytest.raises(JobBusyError):
            acquire(job, "resume")
        # the create itself is conditional: a racer that saw the same generation free loses
        fs, folder = lease_mod.url_to_fs(lease_mod.join(job, lease_mod.LEASE_DIR))
        with pytest.raises(FileExistsError):
            lease_mod._create_exclusive(fs, f"{folder}/lease-{first.generation:06d}.json", b"{}")
    finally:
        first.release()
    acquire(job, "resume").release()


def test_a_stale_heartbeat_is_taken_over_and_the_old_holder_stops(tmp_path, monkeypatch):
    job = str(tmp_path / "job")
    first = acquire(job, "annotate")
    # the holder looks like another host's process that stopped sending heartbeats
    first.holder.host_key = "elsewhere"
    first.holder.heartbeat = time.time() - 1000
    first._write_own()
    second = acquire(job, "resume")
    try:
        with pytest.raises(LeaseLost, match="taken over"):
            first.verify()
        second.verify()
    finally:
        second.release()
        first.release()


def test_a_live_holder_on_another_host_is_respected(tmp_path):
    job = str(tmp_path / "job")
    first = acquire(job, "annotate")
    first.holder.host_key = "elsewhere"  # its pid cannot be checked from here; its heartbeat is fresh
    first._write_own()
    try:
        with pytest.raises(JobBusyError):
            acquire(job, "resume")
    finally:
        first.release()


@pytest.mark.slow
def test_a_racing_acquire_has_one_winner(tmp_path):
    """Eight processes try to take one free lease at once: exactly one holds it."""
    job = tmp_path / "job"
    code = (
        "import sys, time\n"
        "from totask_manifest._jobs.lease import acquire, JobBusyError\n"
        "t = float(sys.argv[2])\n"
        "while time.time() < t: pass\n"
        "try:\n"
        "    l = acquire(sys.argv[1], 'race'); print('won', flush=True); sys.stdin.read(); l.release()\n"
        "except JobBusyError:\n"
        "    print('lost', flush=True)\n"
    )
    start = str(time.time() + 1.5)
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    procs = [subprocess.Popen([sys.executable, "-c", code, str(job), start], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, env=env) for _ in range(8)]
    # the winner holds the lease until every process has answered (a loaded machine may start the
    # last one seconds late: a winner that let go after a fixed time would let it win too)
    results = [p.stdout.readline().strip() for p in procs]
    for p in procs:
        p.stdin.close()
        p.wait(timeout=60)
    assert sorted(results) == ["lost"] * 7 + ["won"]


def test_hold_is_reentrant_in_one_thread(tmp_path):
    job = str(tmp_path / "job")
    with hold(job, "annotate") as outer, hold(job, "resume") as inner:
        assert inner is outer


# -- jobs under the lease: real processes -------------------------------------------------------------

@pytest.mark.slow
def test_second_annotate_and_resume_are_refused_while_the_first_runs(tmp_path):
    inp = write_manifest(tmp_path / "in.manifest", N)
    out = tmp_path / "out"
    first = popen_cli(*start_args(inp, out, "busy", delay="0.1"))
    try:
        wait_until(has_parts(out, "busy"))
        for args in (start_args(inp, out, "busy"), ("resume", str(out / "busy"))):
            r = run_cli(*args)
            assert r.returncode == 2, r.stderr
            lines = r.stderr.strip().splitlines()
            assert len(lines) == 1 and "Traceback" not in r.stderr
            assert f"is in use by pid {first.pid} on host {socket.gethostname()}" in lines[0]
        status = run_cli("status", str(out / "busy"))
        assert "status: RUNNING\n" in status.stdout and f"running: pid {first.pid}" in status.stdout
    finally:
        assert first.wait(timeout=120) == 0, first.stderr.read()
    assert_covered_once(inp, out, "busy")


@pytest.mark.slow
def test_clone_and_chain_into_a_running_jobs_folder_are_refused(tmp_path):
    inp = write_manifest(tmp_path / "in.manifest", 30)
    out = tmp_path / "out"
    done = run_cli(*start_args(inp, out, "base", delay="0"))
    assert done.returncode == 0, done.stderr
    # a job that runs for 30 s unless stopped: a loaded machine can take seconds per command below
    running = popen_cli(*start_args(inp, out, "target", delay="1", every="1"))
    try:
        wait_until(has_parts(out, "target"))
        for args in (("clone", str(out / "base"), "--job-name", "target"),
                     ("chain", str(out / "base"), "--job-name", "target")):
            r = run_cli(*args)
            assert r.returncode == 2 and "is in use by pid" in r.stderr, r.stderr
        assert running.poll() is None, "the target job ended before both commands were refused"
    finally:
        running.send_signal(signal.SIGINT)
        running.wait(timeout=120)


@pytest.mark.slow
def test_kill_9_then_status_says_interrupted_and_resume_takes_over(tmp_path):
    inp = write_manifest(tmp_path / "in.manifest", N)
    out = tmp_path / "out"
    proc = popen_cli(*start_args(inp, out, "killed"))
    wait_until(has_parts(out, "killed", 2))
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    status = run_cli("status", str(out / "killed"))
    assert (f"status: RUNNING (interrupted: holder pid {proc.pid} on host {socket.gethostname()} is gone; "
            "run resume)") in status.stdout, status.stdout
    r = run_cli("resume", str(out / "killed"))
    assert r.returncode == 0, r.stderr
    assert "taking over the lease" in r.stderr
    assert_covered_once(inp, out, "killed")
    assert "status: COMPLETED" in run_cli("status", str(out / "killed")).stdout


@pytest.mark.slow
def test_a_lease_that_cannot_be_written_leaves_no_temporary(tmp_path):
    """A full disk (here a file size limit of 64 bytes: EFBIG, as ENOSPC on a full tmpfs) fails
    the lease's write: one line, exit 2, and the temporary written for it goes too; a
    zero-byte ``.lease/.tmp-lease-*`` stayed there for good, which no later run removes."""
    import resource

    inp = write_manifest(tmp_path / "in.manifest", 10)
    out = tmp_path / "out"
    assert run_cli(*start_args(inp, out, "full", delay="0")).returncode == 0
    # a job left to resume (a COMPLETED one is reported without taking the lease)
    job_json = out / "full" / "job.json"
    job_json.write_bytes(orjson.dumps({**orjson.loads(job_json.read_bytes()), "status": "STOPPED"}))

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (64, 64))

    r = subprocess.run([sys.executable, "-m", "totask_manifest", "resume", str(out / "full")], capture_output=True,
                       text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(REPO)}, preexec_fn=limit)
    assert r.returncode == 2 and "cannot take the lease" in r.stderr, r.stderr
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, r.stderr
    # in words, naming the lease file (not [Errno 27] and a temporary's path), as other full disks are
    lease = out / "full" / ".lease" / "lease-000002.json"
    assert f"cannot write {lease}: File too large" in r.stderr and "Errno" not in r.stderr, r.stderr
    assert sorted(p.name for p in (out / "full" / ".lease").iterdir()) == ["lease-000001.json"]


@pytest.mark.parametrize("trial", range(3))
@pytest.mark.slow
def test_concurrent_annotate_and_resume_never_lose_lines(tmp_path, trial):
    """The failure the lease fixes: a second writer started while the first runs, then killed;
    the first must end COMPLETED with every selected line recorded exactly once."""
    inp = write_manifest(tmp_path / "in.manifest", N)
    out = tmp_path / "out"
    first = popen_cli(*start_args(inp, out, "pair"))
    wait_until(has_parts(out, "pair"))
    second = popen_cli("resume", str(out / "pair"))
    time.sleep(0.2 + 0.3 * trial)
    if second.poll() is None:
        second.send_signal(signal.SIGINT)
    second.wait(timeout=60)
    # refused (2), or interrupted before it asked (130, or -2 while Python was still starting)
    assert second.returncode in (2, 130, -signal.SIGINT), second.stderr.read()
    assert first.wait(timeout=120) == 0, first.stderr.read()
    assert_covered_once(inp, out, "pair")
    data = api.status(str(out / "pair"))
    assert data["status"] == "COMPLETED"
    assert data["metrics"]["success"] + data["metrics"]["failed"] == len(selected_indices(inp))


def test_a_lost_lease_stops_the_run_without_writing(tmp_path, monkeypatch):
    """A holder paused past the timeout (here: its lease taken over under it) writes nothing more."""
    inp = write_manifest(tmp_path / "in.manifest", 40)
    config = JobConfig(job_name="paused", input=str(inp), output_root=str(tmp_path / "out"), label_attribute="cls",
                       task_type="image-classification", method=TOY, options={"delay": 0.0}, checkpoint_every=5)
    from tests.support import toy_annotators

    calls = {"n": 0}
    original = toy_annotators.ToyClassifier.annotate_batch

    def steal_after_first_batch(self, items):
        calls["n"] += 1
        if calls["n"] == 3:
            held = lease_mod.held_lease(config.job_url)
            held.holder.host_key, held.holder.heartbeat = "elsewhere", time.time() - 1000
            held._write_own()
            acquire(config.job_url, "thief")  # another process takes the stale-looking lease
        return original(self, items)

    monkeypatch.setattr(toy_annotators.ToyClassifier, "annotate_batch", steal_after_first_batch)
    with pytest.raises(LeaseLost):
        api.annotate(config)
    layout = JobLayout(config.job_url)
    parts_before = len(layout.parts())
    assert orjson.loads((tmp_path / "out" / "paused" / "job.json").read_bytes())["status"] == "RUNNING"
    assert not (tmp_path / "out" / "paused" / "manifests" / "output" / "output.manifest").exists()
    assert parts_before < 40 // 5


@pytest.mark.slow
def test_a_refused_new_job_leaves_no_folder(tmp_path):
    inp = write_manifest(tmp_path / "in.manifest", 5)
    r = run_cli("annotate", str(inp), "--job-name", "nope", "--label-attribute", "source", "--task-type",
                "image-classification", "--method", TOY, "--output", str(tmp_path / "out"))
    assert r.returncode == 2
    assert not (tmp_path / "out" / "nope").exists()


@pytest.mark.slow
def test_a_job_on_s3_runs_under_its_lease_and_releases_it(tmp_path, s3: S3Endpoint):
    inp = write_manifest(tmp_path / "in.manifest", 40)
    root = f"{s3.new_bucket()}/jobs"
    config = JobConfig(job_name="ons3", input=str(inp), output_root=root, label_attribute="cls",
                       task_type="image-classification", method=TOY, checkpoint_every=7)
    with hold(config.job_url, "someone else"):
        pass  # a released lease from an earlier run is simply superseded
    result = api.annotate(config)
    assert result.status == "COMPLETED"
    holder, gone = current_holder(config.job_url)
    assert holder is not None and holder.command == "annotate" and gone == "released"
    assert api.status(config.job_url)["status"] == "COMPLETED"


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="needs /proc")
def test_a_killed_holder_not_yet_reaped_counts_as_gone(tmp_path):
    """A zombie (killed, its parent has not waited for it yet) holds nothing."""
    job = tmp_path / "job"
    code = ("import sys, time\nfrom totask_manifest._jobs.lease import acquire\n"
            "acquire(sys.argv[1], 'annotate'); print('held', flush=True); time.sleep(600)\n")
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    proc = subprocess.Popen([sys.executable, "-c", code, str(job)], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout.readline().strip() == "held"
        with pytest.raises(JobBusyError):
            acquire(str(job), "resume")
        os.kill(proc.pid, signal.SIGKILL)
        wait_until(lambda: Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[-1].split()[0] == "Z")
        acquire(str(job), "resume").release()  # not reaped yet, and still taken over
    finally:
        proc.kill()
        proc.wait()


def test_the_heartbeat_is_refreshed_while_the_lease_is_held(tmp_path, monkeypatch):
    monkeypatch.setenv("TOTASK_LEASE_TIMEOUT", "1")  # a beat every quarter second
    job = str(tmp_path / "job")
    lease = acquire(job, "annotate")
    try:
        first, _ = current_holder(job)
        wait_until(lambda: current_holder(job)[0].heartbeat > first.heartbeat)
        holder, gone = current_holder(job)
        assert gone is None and holder.id == lease.holder.id
    finally:
        lease.release()
    assert current_holder(job)[1] == "released" or current_holder(job)[0] is None


@pytest.mark.slow
def test_resume_with_a_bad_tuning_value_is_refused_before_it_takes_a_dead_holders_lease(tmp_path):
    """``resume --timeout -1`` on a job whose holder was killed: one line naming the option (exit
    2), as for a live job; the dead holder's lease is not taken over for a command that then
    refuses to run (it used to print 'taking over the lease ...' above the error)."""
    from tests.jobs_helpers import annotate_sample_with_class_names

    done = annotate_sample_with_class_names(REPO_SAMPLE / "class_names.txt", tmp_path / "out")
    assert done.returncode == 0, done.stderr
    job = tmp_path / "out" / "cn"
    killed = subprocess.run([sys.executable, "-c", "import os, signal\nfrom totask_manifest._jobs.lease import hold\n"
                             f"with hold({str(job)!r}, 'annotate'):\n    os.kill(os.getpid(), signal.SIGKILL)"],
                            env={**os.environ, "PYTHONPATH": str(REPO_SAMPLE.parent)}, timeout=60)
    assert killed.returncode == -signal.SIGKILL
    leases = sorted(p.name for p in (job / ".lease").iterdir())
    r = run_cli("resume", str(job), "--timeout", "-1")
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().splitlines() == ["totask-manifest resume: error: --timeout must be more than 0 seconds "
                                             "(got -1.0)"], r.stderr
    assert sorted(p.name for p in (job / ".lease").iterdir()) == leases


@pytest.mark.parametrize("value", ["nan", "inf", "abc"])
def test_a_lease_timeout_that_is_no_number_of_seconds_is_refused(tmp_path, value):
    """``TOTASK_LEASE_TIMEOUT=nan`` made the heartbeat write its lease in a loop (a PUT each on
    S3), ``inf`` killed the heartbeat thread with a traceback (another host took the job over a
    minute later), ``abc`` was read as 60 without a word. Each is refused in one line naming the
    variable, exit 2, before a job exists; ``status`` too, and ``resume`` (or ``annotate`` again) of a
    COMPLETED job, which takes no lease: it passed a bad value over."""
    inp = write_manifest(tmp_path / "in.manifest", 20)
    out = tmp_path / "out"
    env = {"TOTASK_LEASE_TIMEOUT": value}
    r = run_cli(*start_args(inp, out, "j", delay="0"), env=env)
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert r.returncode == 2 and len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert f"TOTASK_LEASE_TIMEOUT='{value}' is not a number of seconds" in lines[0], lines[0]
    assert not (out / "j").exists()
    assert run_cli(*start_args(inp, out, "j", delay="0")).returncode == 0
    # status, and a COMPLETED job's resume or run again (reported as done, no lease taken): refused the same
    for args in (("status", str(out / "j")), ("resume", str(out / "j")), start_args(inp, out, "j", delay="0")):
        r = run_cli(*args, env=env)
        lines = [x for x in r.stderr.splitlines() if x.strip()]
        assert r.returncode == 2 and len(lines) == 1 and "Traceback" not in r.stderr, (args, r.stderr)
        assert f"TOTASK_LEASE_TIMEOUT='{value}' is not a number of seconds" in lines[0], (args, lines[0])


@pytest.mark.parametrize("command", ["annotate", "chain", "clone"])
def test_the_holder_is_named_by_the_command_that_was_run(tmp_path, monkeypatch, command):
    """``status`` and a second writer's refusal named a running chain or clone ``(annotate)``."""
    inp = write_manifest(tmp_path / "in.manifest", 6)
    config = JobConfig(job_name="first", input=str(inp), output_root=str(tmp_path / "out"), label_attribute="cls",
                       task_type="image-classification", method=TOY, options={"delay": 0.0})
    first = api.annotate(config).job_url
    from tests.support import toy_annotators

    seen: list[str | None] = []
    original = toy_annotators.ToyClassifier.annotate_batch

    def note_holder(self, items):
        holder, _ = current_holder(str(tmp_path / "out" / "next"))
        seen.append(holder.command if holder is not None else None)
        return original(self, items)

    monkeypatch.setattr(toy_annotators.ToyClassifier, "annotate_batch", note_holder)
    if command == "annotate":
        api.annotate(JobConfig(job_name="next", input=str(inp), output_root=str(tmp_path / "out"),
                               label_attribute="cls", task_type="image-classification", method=TOY,
                               options={"delay": 0.0}))
    elif command == "chain":
        api.chain(first, "next", label_attribute="other")
    else:
        api.clone(first, "next")
    assert seen and set(seen) == {command}, seen


def test_resume_says_every_tuning_change_it_applies_checkpoint_every_included(tmp_path, caplog):
    """``--checkpoint-every`` was applied unsaid: the "tuning changed" line left it out, and with
    only it given no line came at all."""
    import logging

    inp = write_manifest(tmp_path / "in.manifest", 6)
    config = JobConfig(job_name="j", input=str(inp), output_root=str(tmp_path / "out"), label_attribute="cls",
                       task_type="image-classification", method=TOY, options={"delay": 0.0}, checkpoint_every=50)
    from totask_manifest._jobs.job import Job

    job = api.annotate(config).job_url

    def resume_stopped(**given):
        state = Job.open(job).state
        state.status = "STOPPED"  # as a Ctrl-C leaves it: a COMPLETED job's resume has nothing to run
        state.save()
        api.resume(job, **given)

    with caplog.at_level(logging.INFO):
        resume_stopped(checkpoint_every=7)
        resume_stopped(checkpoint_every=7, options={"concurrency": 3})
        resume_stopped(checkpoint_every=7, options={"concurrency": 3})  # nothing changes: nothing said
    said = [r.getMessage() for r in caplog.records if "tuning changed" in r.getMessage()]
    assert said == ["job j: tuning changed: checkpoint_every=7", "job j: tuning changed: concurrency=3"], said
    assert orjson.loads((tmp_path / "out" / "j" / "job.json").read_bytes())["config"]["checkpoint_every"] == 7


@pytest.mark.slow
def test_every_command_meeting_a_running_job_says_it_is_in_use(tmp_path):
    """apply said "RUNNING, not COMPLETED" (exit 1) of a job another process runs, where resume and
    chain said "in use" (exit 2): the README gives one code for one situation in every command."""
    from totask_manifest.testing.synapse_server import SynapseServer

    inp = write_manifest(tmp_path / "in.manifest", 30)
    out = tmp_path / "out"
    running = popen_cli(*start_args(inp, out, "busy", delay="1", every="1"))  # 30 s unless stopped
    server = SynapseServer(tokens=("tok-1",)).start()
    env = {"SYNAPSE_HOST": server.url, "SYNAPSE_ACCESS_TOKEN": "tok-1"}
    job = str(out / "busy")
    try:
        wait_until(has_parts(out, "busy"))
        for args in (("apply", job), ("apply", job, "--dry-run"), ("evaluate", job), ("resume", job),
                     ("chain", job, "--job-name", "next")):
            r = run_cli(*args, env=env)
            assert r.returncode == 2, (args, r.stderr)
            assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
            assert f"error: job {job} is in use by pid {running.pid} on host {socket.gethostname()}" in r.stderr, r.stderr
        status = run_cli("status", job)
        assert status.returncode == 0 and f"running: pid {running.pid}" in status.stdout
        report = run_cli("report", job, "-o", str(tmp_path / "r.html"))
        assert report.returncode == 0, report.stderr
        assert running.poll() is None, "the job ended before every command was refused: nothing tested"
    finally:
        server.stop()
        running.send_signal(signal.SIGINT)
        running.wait(timeout=120)


def _unreleasable(lease) -> None:
    """Make this lease's own file one no write replaces (a folder in its place): its release fails
    as S3's did once the credentials were revoked, even for root, whom no file mode stops."""
    os.remove(lease.path)
    os.mkdir(lease.path)


#: what an unreleased lease means for the next command, as ``hold`` says it (the timeout: 60 s)
STALE_AFTER = ("once this process has ended, the next command on this host takes it over at once; before that, or "
               "on another host, after 60 s without a heartbeat (TOTASK_LEASE_TIMEOUT)")


def test_a_lease_left_unreleased_by_a_failing_command_is_said_in_its_error_line(tmp_path, caplog):
    """A job failing on revoked credentials printed its lease's release failure as a warning line
    of its own before the error: the house rule is one line for one failure."""
    from totask_manifest._errors import StorageError

    job = tmp_path / "j"
    with pytest.raises(StorageError) as raised, hold(str(job), "annotate") as lease:
        (job / "job.json").write_text("{}")
        _unreleasable(lease)
        raise StorageError("cannot write the part")
    assert str(raised.value).startswith(f"cannot write the part; its lease could not be released either ({job}: ")
    assert str(raised.value).endswith(f"): {STALE_AFTER}")
    assert not [r for r in caplog.records if "release" in r.getMessage()], caplog.text


def test_a_lease_left_unreleased_by_a_command_that_succeeded_is_one_warning(tmp_path, caplog):
    job = tmp_path / "j"
    with hold(str(job), "annotate") as lease:
        (job / "job.json").write_text("{}")
        _unreleasable(lease)
    said = [r.getMessage() for r in caplog.records if "release" in r.getMessage()]
    assert len(said) == 1 and said[0].startswith(f"could not release the lease on the job ({job}: "), caplog.text
    assert said[0].endswith(STALE_AFTER)


def test_an_unreleased_lease_is_not_taken_over_at_once_while_its_process_lives(tmp_path):
    """"The next command takes it over at once on this host" was said to a library caller (a
    notebook, a worker) whose next ``hold`` on the job, in the same live process, was refused for
    the timeout: on this host a holder is gone at once only once its process has ended."""
    from totask_manifest._errors import StorageError

    job = tmp_path / "j"
    with pytest.raises(StorageError) as raised, hold(str(job), "annotate") as lease:
        (job / "job.json").write_text("{}")
        record = Path(lease.path).read_bytes()
        _unreleasable(lease)
        raise StorageError("cannot write the part")
    assert "once this process has ended" in str(raised.value) and "before that" in str(raised.value)
    os.rmdir(lease.path)  # the lease file as a store that refused the release keeps it: this live pid's
    Path(lease.path).write_bytes(record)
    stale_after = r"in use by pid \d+ .* \(a lease is stale after 60 s without a heartbeat\)"
    with pytest.raises(JobBusyError, match=stale_after), hold(str(job), "resume"):
        pass


@pytest.mark.parametrize("failing", [PermissionError(13, "Permission denied"), KeyboardInterrupt()],
                         ids=["OSError", "Ctrl-C"])
def test_an_unreleased_lease_under_a_failure_not_ours_is_said_in_the_clis_one_line(tmp_path, capsys, caplog,
                                                                                   failing):
    """An ``OSError`` or a Ctrl-C failing a command whose lease could not be released got the
    warning line of its own before the CLI's line for it: the second failure the single line was
    meant to end. The CLI's own top-level handler (``_cli._run``) runs a command that fails so."""
    import argparse

    from totask_manifest._cli import _run

    job = tmp_path / "j"

    def command(args: argparse.Namespace) -> int:
        with hold(str(job), "annotate") as lease:
            (job / "job.json").write_text("{}")
            _unreleasable(lease)
            raise failing

    code = _run(argparse.Namespace(command="annotate", func=command))
    lines = capsys.readouterr().err.splitlines()
    said = "error: Permission denied" if isinstance(failing, OSError) else "interrupted"
    assert (code, len(lines)) == ((2, 1) if isinstance(failing, OSError) else (130, 1)), lines
    assert lines[0].startswith(f"totask-manifest annotate: {said}; its lease could not be released either ({job}: ")
    assert lines[0].endswith(f"): {STALE_AFTER}"), lines
    assert not [r for r in caplog.records if "release" in r.getMessage()], caplog.text
    # a library caller sees it where Python shows the exception: its note, printed with the traceback
    assert failing.__notes__ == [lines[0].split("; ", 1)[1]]


def test_an_unreleased_lease_under_a_rule_is_said_before_the_rule_tag(tmp_path):
    """The lease's text landed after a ``ManifestError``'s ``[rule]`` tag (``... [input-empty]; its
    lease could not ...``), and ``detail``, which callers re-raise under another line, kept the old text."""
    from totask_manifest._errors import ManifestError

    job = tmp_path / "j"
    with pytest.raises(ManifestError) as raised, hold(str(job), "annotate") as lease:
        (job / "job.json").write_text("{}")
        _unreleasable(lease)
        raise ManifestError("the manifest is empty", line=1, rule="input-empty")
    said = str(raised.value)
    assert said.startswith(f"line 1: the manifest is empty; its lease could not be released either ({job}: "), said
    assert said.endswith(f"): {STALE_AFTER} [input-empty]"), said
    assert raised.value.detail.startswith("the manifest is empty; its lease could not be released either (")
    assert raised.value.detail.endswith(STALE_AFTER) and said == f"line 1: {raised.value.detail} [input-empty]"


@pytest.mark.parametrize(("found", "command", "given_back"), [
    ("annotate", "resume", True), ("resume", "chain", True),
    ("run", "resume", True),  # a killed to_task run: its annotate ran under its "run" record
    ("apply", "resume", False),  # no run of the job's in the record: nothing for status to name
    ("annotate", "apply", False), ("resume", "rollback", False), ("annotate", "run", False),  # job.json tells nothing
])
def test_only_a_refused_job_run_gives_back_a_killed_job_runs_lease(tmp_path, found, command, given_back):
    """A refused ``resume`` (job.json unchanged) writes back the killed run's record it took over, so
    ``status`` still names that run. It was done for any command failing with job.json unchanged,
    ``apply`` and ``rollback`` too, which never write job.json (an apply journalled its writes, then a
    Ctrl-C: its lease then named a week-old dead holder), and over any record found (an apply's)."""
    from totask_manifest._errors import UsageError
    from totask_manifest._jobs.holder import Holder

    job = tmp_path / "j"
    (job / ".lease").mkdir(parents=True)
    (job / "job.json").write_text('{"status": "RUNNING"}')
    gone = subprocess.Popen(["true"])
    gone.wait()
    killed = Holder.me(found)
    killed.pid, killed.pid_start = gone.pid, ""
    (job / ".lease" / "lease-000001.json").write_bytes(killed.to_json())
    with pytest.raises(UsageError), hold(str(job), command):
        raise UsageError("refused")
    (lease,) = (job / ".lease").glob("lease-*.json")
    record = orjson.loads(lease.read_bytes())
    if given_back:
        assert (record["pid"], record["command"], record["released"]) == (gone.pid, found, False), record
    else:
        assert (record["pid"], record["command"], record["released"]) == (os.getpid(), command, True), record


def _completed_job_killed_holding_it(tmp_path, command):
    """(input, job folder, the gone process) of a COMPLETED job whose lease names ``command`` run by
    a process that is gone, unreleased: what ``kill -9`` of that command after the job completed leaves."""
    from totask_manifest._jobs.holder import Holder

    inp = write_manifest(tmp_path / "in.manifest", 20)
    out = tmp_path / "out"
    assert run_cli(*start_args(inp, out, "j", delay="0")).returncode == 0
    job = out / "j"
    gone = subprocess.Popen(["true"])
    gone.wait()
    killed = Holder.me(command)
    killed.pid, killed.pid_start = gone.pid, ""
    (job / ".lease" / "lease-000002.json").write_bytes(killed.to_json())  # after the annotate's own, released
    return inp, job, gone


def test_status_of_a_run_killed_in_its_apply_advises_running_it_again_not_resume(tmp_path):
    """A to_task ``run`` killed in its apply leaves the job COMPLETED under the run's lease; a
    ``resume`` refused over it gives that lease back (the killed run's). ``status`` said nothing of
    the writes left undone (and ``resume`` of a COMPLETED job has nothing to do): it says what
    finishes them, running the action again, in text and as ``apply-interrupted`` in JSON."""
    inp, job, gone = _completed_job_killed_holding_it(tmp_path, "run")
    given = inp.read_bytes()
    inp.write_bytes(given + given.splitlines(keepends=True)[0])
    refused = run_cli("resume", str(job))
    assert refused.returncode == 1 and "changed since job 'j' read it" in refused.stderr, refused.stderr
    inp.write_bytes(given)

    said = run_cli("status", str(job)).stdout.splitlines()
    assert said[1] == "status: COMPLETED", said
    [line] = [s for s in said if s.startswith("interrupted: ")]
    assert line == (f"interrupted: holder pid {gone.pid} on host {socket.gethostname()} is gone: the to_task run was "
                    "stopped in its apply, after the job completed; run the same action again to finish its writes "
                    "to Synapse (it sends only what is missing)"), said
    assert not [s for s in said if "resume" in s], said
    data = orjson.loads(run_cli("status", str(job), "--format", "json").stdout)
    assert data["apply-interrupted"] == line.removeprefix("interrupted: ") and "interrupted" not in data


@pytest.mark.parametrize(("command", "key", "advice"), [
    ("apply", "apply-interrupted",
     "its apply was stopped before its end, and a write in flight may still reach Synapse; run 'totask-manifest "
     "apply {job}' again to apply the rest (it sends only what is missing: tasks that hold their label are left "
     "alone), or 'totask-manifest rollback {job}' to undo the job's writes"),
    ("rollback", "rollback-interrupted",
     "its rollback was stopped before its end, and a restore in flight may still reach Synapse; run "
     "'totask-manifest rollback {job}' again to finish (tasks already restored are left alone)"),
])
def test_status_of_a_killed_apply_or_rollback_says_what_finishes_it(tmp_path, command, key, advice):
    """A plain ``apply`` or ``rollback`` killed (``kill -9``) after the job COMPLETED leaves its lease
    unreleased, naming it; ``job.json`` tells nothing of it (neither writes it). ``status`` said
    nothing at all: it says the command was stopped and what finishes it, in text and JSON."""
    _, job, gone = _completed_job_killed_holding_it(tmp_path, command)

    said = run_cli("status", str(job)).stdout.splitlines()
    assert said[1] == "status: COMPLETED", said
    [line] = [s for s in said if s.startswith("interrupted: ")]
    assert line == (f"interrupted: holder pid {gone.pid} on host {socket.gethostname()} is gone: "
                    + advice.format(job=job)), said
    assert not [s for s in said if "resume" in s], said
    data = orjson.loads(run_cli("status", str(job), "--format", "json").stdout)
    assert data[key] == line.removeprefix("interrupted: ") and "interrupted" not in data
    assert {"apply-interrupted", "rollback-interrupted"} & data.keys() == {key}
