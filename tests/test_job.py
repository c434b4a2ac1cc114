"""``Job``: one owner of a job folder. Refusals name the file; a moved folder keeps working (its
paths follow it, its own output manifest wins, a renamed one falls back to what job.json records);
``require`` refuses a job in another status; failures and a damaged job.json are read as before.

Jobs here are real (the toy annotator through ``api.annotate``), folders are moved with the OS."""

from __future__ import annotations

import os
import shutil

import orjson
import pytest

from tests.jobs_helpers import TOY, write_manifest
from totask_manifest import _api as api
from totask_manifest._errors import JobError, NotAJobError
from totask_manifest._jobs.config import JobConfig
from totask_manifest._jobs.job import Job
from totask_manifest._jobs.status import COMPLETED, FAILED, RUNNING, STATUSES, STOPPED


@pytest.fixture()
def done(tmp_path):
    """A COMPLETED job ``out/job1`` over 10 lines, one of which fails."""
    inp = write_manifest(tmp_path / "in.manifest", 10, bad_every=10)
    config = JobConfig(job_name="job1", input=str(inp), output_root=str(tmp_path / "out"), label_attribute="cls",
                       task_type="image-classification", method=TOY, options={"fail": "bad"})
    result = api.annotate(config)
    assert result.status == COMPLETED
    return tmp_path / "out" / "job1"


def test_open_reads_the_state_and_the_folder(done):
    job = Job.open(str(done) + "/")
    assert job.url == str(done) and job.layout.job_json == str(done / "job.json")
    assert job.state.status == COMPLETED and job.state.config.label_attribute == "cls"
    assert job.output_manifest == str(done / "manifests" / "output" / "output.manifest")
    assert job.exists and job.state.status in STATUSES


def test_a_folder_without_job_json_is_not_a_job_named_as_given(tmp_path):
    (tmp_path / "empty").mkdir()
    given = str(tmp_path / "empty") + "/"
    with pytest.raises(NotAJobError, match=f"^{given} is not a job folder: .*job.json not found$"):
        Job.open(given)
    assert not Job(given).exists


def test_a_folder_held_by_a_live_process_is_busy_and_both_refusals_share_one_public_base(tmp_path):
    """A folder without ``job.json`` whose lease a live process holds (a job reading its input) is
    refused as in use (exit 2): a busy job is a job, so not a ``NotAJobError``; both derive from the
    exported ``JobUnavailableError``, which a library caller catches once for either."""
    import totask_manifest as tm
    from totask_manifest._jobs.lease import hold

    (tmp_path / "empty").mkdir()
    with pytest.raises(tm.JobUnavailableError) as missing:
        Job.open(str(tmp_path / "empty"))
    assert isinstance(missing.value, tm.NotAJobError) and missing.value.exit_code == 2
    (tmp_path / "starting").mkdir()
    with hold(str(tmp_path / "starting"), "annotate"), pytest.raises(tm.JobUnavailableError) as busy:
        Job.open(str(tmp_path / "starting"))
    assert isinstance(busy.value, tm.JobBusyError) and isinstance(busy.value, JobError)
    assert not isinstance(busy.value, tm.NotAJobError) and busy.value.exit_code == 2
    assert "is in use by pid" in str(busy.value)


@pytest.mark.parametrize("content, message", [
    (b"{not json", "is not valid JSON"),
    (b"[1, 2]", "no 'config' key"),
    (b'{"config": {"job_name": 3}}', "is damaged"),
    (b'{"config": {"job_name": "j", "input": "i", "output_root": "o", "label_attribute": "a", '
     b'"task_type": "t", "method": "m"}, "status": "DONE", "metrics": {}, '
     b'"input": {"url": "i", "sha256": "' + b"0" * 64 + b'", "lines": 1}}', "status 'DONE' is none of RUNNING"),
])
def test_a_damaged_job_json_is_refused_in_one_line_naming_it(tmp_path, content, message):
    (tmp_path / "j").mkdir()
    (tmp_path / "j" / "job.json").write_bytes(content)
    with pytest.raises(JobError, match=message) as info:
        Job.open(str(tmp_path / "j"))
    assert str(tmp_path / "j" / "job.json") in str(info.value) and "\n" not in str(info.value)


def test_record_reads_whatever_is_there(tmp_path, done):
    assert Job(str(done)).record()["status"] == COMPLETED
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "job.json").write_bytes(b"{not json")
    assert Job(str(tmp_path / "bad")).record()["error"].startswith("job.json is not valid JSON")
    assert Job(str(tmp_path / "nothing")).record() == {}


def test_a_folder_moved_under_its_own_name_follows_the_move(tmp_path, done):
    moved = tmp_path / "elsewhere" / "job1"
    moved.parent.mkdir()
    shutil.move(done, moved)
    job = Job.open(str(moved))
    assert job.state.config.output_root == str(moved.parent)
    assert job.state.layout.job_json == str(moved / "job.json")
    assert job.output_manifest == str(moved / "manifests" / "output" / "output.manifest")


def test_a_renamed_folder_reads_its_own_output_first_then_the_recorded_one(tmp_path, done):
    recorded = str(done / "manifests" / "output" / "output.manifest")
    copy = tmp_path / "renamed"
    shutil.copytree(done, copy)
    job = Job.open(str(copy))
    assert job.state.config.output_root == str(tmp_path / "out")  # not named after its job: not relocated
    assert job.output_manifest == str(copy / "manifests" / "output" / "output.manifest")
    os.remove(copy / "manifests" / "output" / "output.manifest")
    assert Job.open(str(copy)).output_manifest == recorded  # none of its own: job.json's
    shutil.rmtree(done)
    assert Job.open(str(copy)).output_manifest == recorded  # neither: still the recorded one, for the message


def test_a_damaged_job_json_still_names_the_output_it_records(tmp_path):
    folder = tmp_path / "j"
    folder.mkdir()
    (folder / "job.json").write_bytes(orjson.dumps({"output-manifest": "/else/out.manifest", "status": 1}))
    assert Job(str(folder)).output_manifest == "/else/out.manifest"
    (folder / "job.json").write_bytes(b"{not json")
    assert Job(str(folder)).output_manifest == str(folder / "manifests" / "output" / "output.manifest")


def test_require_refuses_another_status_with_the_way_on(done):
    job = Job.open(str(done))
    job.require(COMPLETED)
    job.state.status = STOPPED
    job.state.save()
    with pytest.raises(JobError) as info:
        Job.open(str(done)).require(COMPLETED)
    assert str(info.value) == (f"job {done} is STOPPED, not COMPLETED: finish it first "
                               f"(totask-manifest resume {done})")
    with pytest.raises(JobError, match=f"^job {done} is STOPPED, not RUNNING$"):
        Job.open(str(done)).require("RUNNING")


def test_require_of_a_job_another_process_runs_says_so_not_resume(done):
    """A RUNNING job whose holder is alive: refused as in use, in the line (and exit code 2) that
    ``resume``, ``chain`` and ``rollback`` give it, not "RUNNING, not COMPLETED" (exit 1)."""
    from totask_manifest._jobs.lease import JobBusyError, hold

    job = Job.open(str(done))
    job.state.status = RUNNING
    job.state.save()
    with pytest.raises(JobError, match="finish it first"):  # nobody holds it: a resume takes it on
        Job.open(str(done)).require(COMPLETED)
    with hold(str(done), "annotate"), pytest.raises(JobBusyError) as info:
        Job.open(str(done)).require(COMPLETED)
    message = str(info.value)
    assert info.value.exit_code == 2
    assert message.startswith(f"job {done} is in use by pid {os.getpid()} on host ")
    assert "wait for it to end or stop it" in message and "resume" not in message


def test_failure_records_number_each_line_and_mark_unreadable_ones(done):
    records = list(Job(str(done)).failure_records())
    assert [n for n, _ in records] == [1] and "-bad" in records[0][1]["source"]
    with open(done / "failures.jsonl", "ab") as f:
        f.write(b"\n[1]\n{broken\n")
    records = list(Job(str(done)).failure_records())
    assert [(n, r is None) for n, r in records] == [(1, False), (3, True), (4, True)]
    os.remove(done / "failures.jsonl")  # deleted since: read from the checkpoint, not "no failures" beside failed=1
    records = list(Job(str(done)).failure_records())
    assert [n for n, _ in records] == [1] and "-bad" in records[0][1]["source"]


def test_require_of_a_failed_job_names_its_error_and_that_resume_mends_only_a_passing_cause(done):
    """``apply`` on a job that failed (a systematic failure stopped it, say a wrong ``--url-key``):
    the refusal said only to resume, which retries the same configuration and fails again."""
    job = Job.open(str(done))
    job.state.status = FAILED
    job.state.error = "each of the 18 lines this run tried failed with fetch-http-404 (HTTP 404)\nmore"
    job.state.save()
    with pytest.raises(JobError) as info:
        Job.open(str(done)).require(COMPLETED)
    assert str(info.value) == (
        f"job {done} is FAILED, not COMPLETED (each of the 18 lines this run tried failed with fetch-http-404 "
        f"(HTTP 404)): resume it (totask-manifest resume {done}) once the cause is fixed; a wrong option needs "
        "a new job (annotate)")


@pytest.mark.parametrize(("error", "quoted"), [
    ("The model failed on every batch. " + "x" * 400, "The model failed on every batch. ..."),
    ("y" * 200 + ". The model failed on every batch. " + "x" * 400, "y" * 200 + ". The model failed on every batch. ..."),
    ("Stopped. " + "detail, " * 60, "Stopped. " + "detail, " * 35 + "detail ..."),
    ("each line failed with model-error (" + "detail, " * 50, "each line failed with model-error (" + "detail, " * 32
     + "detail ..."),
], ids=["first-sentence", "last-sentence", "early-sentence", "last-clause"])
def test_require_of_a_failed_job_quotes_its_long_error_to_a_boundary(done, error, quoted):
    """A FAILED job's error past 300 characters was cut at the 300th, mid-word, with the advice
    glued after it: it is quoted to its last sentence end within them (else clause, marked ...)."""
    job = Job.open(str(done))
    job.state.status = FAILED
    job.state.error = error
    job.state.save()
    with pytest.raises(JobError) as info:
        Job.open(str(done)).require(COMPLETED)
    assert str(info.value).startswith(f"job {done} is FAILED, not COMPLETED ({quoted}): resume it ("), str(info.value)
    assert "\n" not in str(info.value)
