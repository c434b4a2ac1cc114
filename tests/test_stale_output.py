"""A run that cannot write its output manifest (a full disk, its input rewritten while it ran)
leaves the one an earlier run wrote. Before, ``resume``'s summary and ``status`` printed that file
as the job's output, beside metrics counting lines it does not hold, and ``chain`` took it as
its input, labeling again every line the failed run had labeled. Now the summary and ``status``
say it is an earlier run's, and ``chain`` refuses it (exit 1, one line): resume first."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from tests.jobs_helpers import TOY, run_cli, write_manifest
from totask_manifest import JobConfig, JobError, annotate, chain, resume, write_report


def _stopped_job(tmp_path: Path) -> tuple[Path, Path]:
    """A job over 40 lines, stopped at the first progress (KeyboardInterrupt from on_progress): its output written."""
    inp = tmp_path / "in.manifest"
    inp.write_bytes(b"".join(orjson.dumps({"source": f"text {i}"}) + b"\n" for i in range(40)))

    def stop_at_once(metrics: dict[str, int]) -> None:
        raise KeyboardInterrupt

    config = JobConfig(job_name="j", input=str(inp), output_root=str(tmp_path / "out"), label_attribute="cls",
                       task_type="image-classification", method=TOY, checkpoint_every=1,
                       options={"batch_size": 1})
    with pytest.raises(KeyboardInterrupt):
        annotate(config, on_progress=stop_at_once)
    job = tmp_path / "out" / "j"
    assert orjson.loads((job / "job.json").read_bytes())["status"] == "STOPPED"
    assert (job / "manifests" / "output" / "output.manifest").exists()
    return job, inp


def test_an_earlier_runs_output_manifest_is_not_shown_nor_chained_as_the_jobs(tmp_path: Path) -> None:
    job, inp = _stopped_job(tmp_path)
    output = job / "manifests" / "output" / "output.manifest"
    earlier = output.read_bytes()
    original = inp.read_bytes()

    def rewrite_the_input(metrics: dict[str, int]) -> None:
        if inp.read_bytes() == original:
            inp.write_bytes(original.replace(b"text 37", b"text 39"))  # same length, another checksum

    failed = resume(str(job), on_progress=rewrite_the_input)
    assert failed.status == "FAILED" and "output manifest not written" in (failed.error or ""), failed
    assert output.read_bytes() == earlier  # kept as it was: nothing is deleted

    shown = run_cli("status", str(job))
    assert shown.returncode == 0, shown.stderr
    line = next(x for x in shown.stdout.splitlines() if x.startswith("output manifest:"))
    assert "not written by the last run" in line and "earlier run's" in line, line
    write_report(str(job), str(tmp_path / "page.html"), samples=0)  # its counts are the earlier run's: said so
    assert "(an earlier run&#x27;s, without the lines labeled since" in (tmp_path / "page.html").read_text()

    refused = run_cli("chain", str(job), "--job-name", "next")
    assert refused.returncode == 1, refused
    assert refused.stderr.count("\n") == 1 and "Traceback" not in refused.stderr, refused.stderr
    # the input changed while the last run ran: resume is refused, so chain does not send the user there
    assert refused.stderr.rstrip().endswith("changed while the job ran (checksum differs): the job's lines are of the "
                                            "version it read; start a new job from the input as it is now (another "
                                            "--job-name), or put back the version the job read and resume it"), refused.stderr
    assert not (tmp_path / "out" / "next").exists()
    with pytest.raises(JobError, match="without writing its output manifest"):
        chain(str(job), "next")

    inp.write_bytes(original)  # the input as the job started on it: resume writes the output
    done = resume(str(job))
    assert done.status == "COMPLETED", done
    assert sum(b'"cls-metadata"' in x for x in output.read_bytes().splitlines()) == 40
    shown = run_cli("status", str(job))
    assert f"output manifest: {output}\n" in shown.stdout, shown.stdout
    assert chain(str(job), "next", label_attribute="cls").status == "COMPLETED"  # nothing left to label


def test_the_summary_of_the_run_that_could_not_write_says_so(tmp_path: Path) -> None:
    """``resume``'s own summary (a real subprocess) in the run that cannot write: a folder where the
    output manifest goes (in place of the earlier run's file) fails the write as a full disk does."""
    job, _ = _stopped_job(tmp_path)
    output = job / "manifests" / "output" / "output.manifest"
    output.unlink()
    output.mkdir()
    r = run_cli("resume", str(job))
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "error: output manifest not written" in r.stdout, r.stdout
    line = next(x for x in r.stdout.splitlines() if x.startswith("output manifest:"))
    assert "not written by the last run" in line, r.stdout
    assert "Traceback" not in r.stderr, r.stderr


def test_an_earlier_runs_failures_file_is_not_shown_as_the_jobs(tmp_path: Path) -> None:
    """failures.jsonl is put in place with the output manifest: a run that could not write one left
    the earlier run's other too, and the summary printed it as the job's (``failures: PATH``) beside
    metrics counting failures it does not hold. The summary and ``status`` say it is an earlier run's."""
    inp = write_manifest(tmp_path / "in.manifest", 40)

    def stop_after_a_failure(metrics: dict[str, int]) -> None:
        if metrics["failed"]:
            raise KeyboardInterrupt

    config = JobConfig(job_name="j", input=str(inp), output_root=str(tmp_path / "out"), label_attribute="cls",
                       task_type="image-classification", method=TOY, checkpoint_every=1,
                       options={"batch_size": 1, "delay": 0.05})
    with pytest.raises(KeyboardInterrupt):
        annotate(config, on_progress=stop_after_a_failure)
    job = tmp_path / "out" / "j"
    failures = job / "failures.jsonl"
    earlier = failures.read_bytes()
    assert 1 <= len(earlier.splitlines()) < 4
    output = job / "manifests" / "output" / "output.manifest"
    output.unlink()
    output.mkdir()  # the write fails as on a full disk; failures.jsonl stays the earlier run's

    r = run_cli("resume", str(job))
    assert r.returncode == 1 and "failed=4" in r.stdout, (r.stdout, r.stderr)
    assert failures.read_bytes() == earlier
    shown = run_cli("status", str(job))
    for out in (r.stdout, shown.stdout):
        line = next(x for x in out.splitlines() if x.startswith("failures:"))
        assert "not written by the last run" in line and f"{failures} is an earlier run's" in line, out

    output.rmdir()
    assert resume(str(job)).status == "COMPLETED"
    assert len(failures.read_bytes().splitlines()) == 4
    shown = run_cli("status", str(job))
    assert f"failures: {failures}\n" in shown.stdout, shown.stdout


def _parts(job: Path) -> int:
    return len(list((job / "manifests" / "intermediate").glob("part-*.ckpt")))


def test_a_killed_runs_earlier_output_is_not_shown_as_the_jobs(tmp_path: Path) -> None:
    """A job stopped (its output written), then resumed and the resume killed (``kill -9``) once it
    checkpointed more: ``status`` printed the stopped run's output manifest and failures.jsonl as
    the job's, beside metrics counting the lines the killed run labeled since (success=120 over a
    file with 75 labels). Both are an earlier run's: ``status`` and ``report`` say so, as they do
    of a run that could not write them; ``resume`` writes the job's own."""
    import signal
    import time

    from tests.jobs_helpers import popen_cli
    from tests.test_resume import start_args

    inp = write_manifest(tmp_path / "in.manifest", 300)
    out = tmp_path / "out"
    job = out / "k"
    output, failures = job / "manifests" / "output" / "output.manifest", job / "failures.jsonl"

    def run_until(args: tuple[str, ...], parts: int, sig: int) -> None:
        proc = popen_cli(*args)
        try:
            deadline = time.monotonic() + 120
            while _parts(job) < parts:
                assert proc.poll() is None, proc.communicate()
                assert time.monotonic() < deadline, "no checkpoint in time"
                time.sleep(0.02)
        finally:
            proc.send_signal(sig)
            proc.communicate(timeout=60)

    run_until(start_args(inp, out, "k", delay="0.02", every="5"), 2, signal.SIGTERM)
    stopped = orjson.loads((job / "job.json").read_bytes())
    assert stopped["status"] == "STOPPED" and output.exists() and failures.exists(), stopped
    earlier, earlier_failures = output.read_bytes(), failures.read_bytes()
    run_until(("resume", str(job)), _parts(job) + 3, signal.SIGKILL)
    assert output.read_bytes() == earlier and failures.read_bytes() == earlier_failures
    # a RUNNING job has not ended: job.json (status --format json, the report's "ended") kept the stopped run's time
    killed = orjson.loads((job / "job.json").read_bytes())
    assert killed["status"] == "RUNNING" and killed["ended"] is None, killed["ended"]

    shown = run_cli("status", str(job))
    assert shown.returncode == 0, shown.stderr
    metrics = dict(x.split("=") for x in next(x for x in shown.stdout.splitlines()
                                               if x.startswith("metrics:")).split()[1:])
    # the premise: the checkpoint holds more labeled lines than the earlier run's file
    assert int(metrics["success"]) > sum(b'"cls-metadata":{"class-name"' in x for x in earlier.splitlines())
    line = next(x for x in shown.stdout.splitlines() if x.startswith("output manifest:"))
    assert f"not written by the last run ({output} is an earlier run's" in line, shown.stdout
    line = next(x for x in shown.stdout.splitlines() if x.startswith("failures:"))
    assert f"not written by the last run ({failures} is an earlier run's" in line, shown.stdout
    write_report(str(job), str(tmp_path / "page.html"), samples=0)
    page = (tmp_path / "page.html").read_text()
    assert "(an earlier run&#x27;s, without the lines labeled since" in page
    # the Labels section's counts and its failures chart are that file's, the Failures table the job's:
    # the chart said 5 beside "Failures (11)" and nothing said why
    assert ("counted in the output manifest an earlier run wrote, without the lines labeled since; Progress and "
            "the Failures table below count the job's lines") in page
    assert "<h3>Failures by rule (in that output manifest)</h3>" in page

    assert resume(str(job)).status == "COMPLETED"
    shown = run_cli("status", str(job))
    assert f"output manifest: {output}\n" in shown.stdout and f"failures: {failures}\n" in shown.stdout, shown.stdout
    write_report(str(job), str(tmp_path / "page.html"), samples=0)  # the job's own file: nothing to say
    page = (tmp_path / "page.html").read_text()
    assert "<h3>Failures by rule</h3>" in page and "counted in the output manifest" not in page


def test_the_report_of_a_running_job_does_not_tell_to_resume_it(tmp_path: Path) -> None:
    """While a resumed job runs, its output manifest is the stopped run's: the report said "resume
    the job to write it", which is refused while the job runs. It says the running job writes it."""
    import signal
    import time

    from tests.jobs_helpers import popen_cli
    from tests.test_resume import start_args

    inp = write_manifest(tmp_path / "in.manifest", 300)
    job = tmp_path / "out" / "k"
    proc = popen_cli(*start_args(inp, tmp_path / "out", "k", delay="0.02", every="5"))
    try:
        deadline = time.monotonic() + 120
        while _parts(job) < 2:
            assert proc.poll() is None and time.monotonic() < deadline, "no checkpoint in time"
            time.sleep(0.02)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
    proc = popen_cli("resume", str(job), "--concurrency", "1")
    try:
        parts = _parts(job)
        deadline = time.monotonic() + 120
        while _parts(job) <= parts:
            assert proc.poll() is None and time.monotonic() < deadline, "the resume checkpointed nothing in time"
            time.sleep(0.02)
        write_report(str(job), str(tmp_path / "page.html"), samples=0)
        assert proc.poll() is None, "the resume ended before the report was made"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
    page = (tmp_path / "page.html").read_text()
    assert "an earlier run&#x27;s, without the lines labeled since; the running job writes it when it ends" in page
    assert "resume the job to write it" not in page


def test_the_report_of_a_changed_output_manifest_says_its_labels_are_the_file_s(tmp_path: Path) -> None:
    """An output manifest cut after the job wrote it (``head``): the Labels section and its
    failures chart count the file's lines, Progress and the Failures table the job's; said so."""
    from tests.jobs_helpers import toy_job_args

    inp = write_manifest(tmp_path / "in.manifest", 30)
    assert run_cli(*toy_job_args(inp, tmp_path / "out")).returncode == 0
    job = tmp_path / "out" / "j"
    output = job / "manifests" / "output" / "output.manifest"
    output.write_bytes(b"".join(output.read_bytes().splitlines(keepends=True)[:20]))  # 2 of the 3 failed lines
    write_report(str(job), str(tmp_path / "page.html"), samples=0)
    page = (tmp_path / "page.html").read_text()
    assert ("counted in the output manifest as it is now, changed since the job wrote it; Progress and the "
            "Failures table below count the job's lines") in page
    assert "<h3>Failures by rule (in that output manifest)</h3>" in page and "<h2>Failures (3)</h2>" in page
