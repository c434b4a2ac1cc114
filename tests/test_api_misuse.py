"""The Python API used as a data engineer uses it: chaining from a job that is still running,
arguments of the wrong type or kind. Each mistake is one ``TotaskError`` naming what is wrong,
never a bare ``TypeError`` or ``AttributeError`` from deep inside, and nothing is written."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from tests.jobs_helpers import REPO, TOY
from totask_manifest import JobConfig, JobError, UsageError, annotate, chain, clone, resume, status


def _texts(path: Path, n: int) -> Path:
    path.write_bytes(b"".join(orjson.dumps({"source": f"text {i}"}) + b"\n" for i in range(n)))
    return path


def test_chain_from_a_job_that_is_running_says_it_is_in_use_not_resume_it(tmp_path: Path) -> None:
    """Before: ``chain`` on a live job said "RUNNING or was interrupted; resume it first" (exit 1),
    and ``resume`` was then refused as the job is in use. Now it is the in-use refusal that
    ``resume`` gives (exit 2), naming the holder."""
    seen: list[BaseException] = []

    def chain_while_running(metrics: dict[str, int]) -> None:
        if not seen and metrics["success"] + metrics["failed"] >= 1:
            try:
                chain(str(tmp_path / "out" / "first"), "second")
            except JobError as exc:
                seen.append(exc)
            else:
                seen.append(AssertionError("chain ran on a running job"))

    config = JobConfig(job_name="first", input=str(_texts(tmp_path / "in.manifest", 8)),
                       output_root=str(tmp_path / "out"), label_attribute="cls",
                       task_type="image-classification", method=TOY, checkpoint_every=1)
    result = annotate(config, on_progress=chain_while_running)
    assert result.status == "COMPLETED"
    assert len(seen) == 1 and isinstance(seen[0], JobError), seen
    message = str(seen[0])
    assert "is in use by pid" in message and "(annotate" in message, message
    assert "resume it first" not in message
    assert seen[0].exit_code == 2
    assert not (tmp_path / "out" / "second").exists()


def _config(tmp_path: Path, **changes: object) -> JobConfig:
    fields = {"job_name": "j", "input": str(_texts(tmp_path / "in.manifest", 4)), "output_root": str(tmp_path / "out"),
              "label_attribute": "cls", "task_type": "image-classification", "method": TOY, **changes}
    return JobConfig(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(("changes", "named"), [
    ({"options": None}, "JobConfig.options must be a dict"),                  # was AttributeError: 'NoneType' ... 'get'
    ({"checkpoint_every": "10"}, "JobConfig.checkpoint_every must be an integer"),  # was TypeError: '<' not supported
    ({"checkpoint_every": 2.5}, "JobConfig.checkpoint_every must be an integer"),   # was kept in job.json as 2.5
    ({"checkpoint_seconds": "5"}, "JobConfig.checkpoint_seconds must be a number"),  # was a job FAILED with a traceback
    ({"checkpoint_seconds": -1}, "JobConfig.checkpoint_seconds must be a number of seconds above 0"),
    ({"task_type": None}, "JobConfig.task_type must be a str"),               # was AttributeError: ... 'startswith'
    ({"method": None}, "JobConfig.method must be a str"),                     # was TypeError: ... not iterable
    ({"input": None}, "JobConfig.input must be a path or URL"),               # was TypeError in _redaction
    ({"input": 3}, "JobConfig.input must be a path or URL"),
    ({"append": None}, "JobConfig.append must be a list"),                    # was TypeError: 'NoneType' ... not iterable
])
def test_a_job_config_field_of_the_wrong_type_is_a_usage_error_naming_it(tmp_path: Path, changes: dict,
                                                                         named: str) -> None:
    with pytest.raises(UsageError) as info:
        annotate(_config(tmp_path, **changes))
    assert named in str(info.value) and "\n" not in str(info.value)
    assert not (tmp_path / "out").exists()


def test_append_given_as_one_string_is_refused_not_read_letter_by_letter(tmp_path: Path) -> None:
    """``append="more.manifest"`` was iterated: "--append manifest not found: m"."""
    more = str(_texts(tmp_path / "more.manifest", 2))
    with pytest.raises(UsageError, match=r"JobConfig.append must be a list of manifest paths or URLs \(e\.g\. \["):
        annotate(_config(tmp_path, append=more))
    first = annotate(_config(tmp_path))
    with pytest.raises(UsageError, match=r"^append must be a list"):
        chain(first.job_url, "again", append=more)  # type: ignore[arg-type]
    assert not (tmp_path / "out" / "again").exists()


def test_annotate_takes_a_job_config_only(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="annotate takes a JobConfig, not object"):
        annotate({"job_name": "j"})  # type: ignore[arg-type]


def test_the_job_functions_take_a_pathlib_path_as_validate_manifest_does(tmp_path: Path) -> None:
    """``input=Path(...)`` failed with "TypeError: expected string or bytes-like object", and
    ``status(Path(...))``, ``resume``, ``chain`` and ``clone`` with "AttributeError: 'PosixPath'
    object has no attribute 'rstrip'", while ``validate_manifest`` and ``read_lines`` take one."""
    config = _config(tmp_path, input=tmp_path / "in.manifest", output_root=tmp_path / "out")
    _texts(tmp_path / "in.manifest", 4)
    first = annotate(config)
    assert first.status == "COMPLETED" and first.metrics["success"] == 4
    job = tmp_path / "out" / "j"
    assert status(job)["status"] == "COMPLETED"
    assert resume(job).status == "COMPLETED"
    second = chain(job, "second", output_root=tmp_path / "chained")
    assert second.status == "COMPLETED" and second.job_url == str(tmp_path / "chained" / "second")
    assert clone(job, "third").metrics["success"] == 4
    stored = orjson.loads((job / "job.json").read_bytes())
    assert stored["config"]["input"] == str(tmp_path / "in.manifest")


def test_resume_and_chain_arguments_of_the_wrong_type_are_usage_errors(tmp_path: Path) -> None:
    job = annotate(_config(tmp_path)).job_url
    with pytest.raises(UsageError, match=r"^checkpoint_every must be an integer, not string '3'$"):
        resume(job, checkpoint_every="3")  # type: ignore[arg-type]
    with pytest.raises(UsageError, match=r"^options must be a dict"):
        resume(job, options=[("concurrency", 3)])  # type: ignore[arg-type]
    with pytest.raises(UsageError, match=r"^checkpoint_every must be an integer"):
        chain(job, "next", checkpoint_every="3")  # type: ignore[arg-type]
    with pytest.raises(UsageError, match=r"^job_url must be a path or URL"):
        status(None)  # type: ignore[arg-type]
    assert not (tmp_path / "out" / "next").exists()


@pytest.mark.parametrize(("options", "named"), [
    ({"concurrency": "x"}, "option 'concurrency' must be int, not string \"x\""),    # was ValueError: invalid literal
    ({"concurrency": 2.5}, "option 'concurrency' must be int, not number 2.5"),       # was run with 2, kept as 2.5
    ({"timeout": "abc"}, "option 'timeout' must be float, not string \"abc\""),       # was ValueError: could not convert
    ({"allow_root": ["data"]}, "option 'allow_root' must be str, not array [\"data\"]"),  # was TypeError: stat: path ...
])
def test_an_option_of_the_wrong_type_is_a_usage_error_naming_it(tmp_path: Path, options: dict, named: str) -> None:
    with pytest.raises(UsageError) as info:
        annotate(_config(tmp_path, method="file", task_type="object-detection", label_attribute="boxes",
                         options={"url_key": "annotation-ref", **options}))
    assert str(info.value) == named
    assert not (tmp_path / "out").exists()


def _sample_job(tmp_path: Path, **options: object) -> JobConfig:
    """The README's sample job (file method), its paths given as ``pathlib.Path``."""
    sample = REPO / "sample_data"
    return JobConfig(job_name="j", input=sample / "manifest.jsonl", output_root=tmp_path / "out",
                     label_attribute="boxes", task_type="object-detection", method="file",
                     options={"url_key": "annotation-ref", "native": "convert", "allow_root": sample,
                              "class_names": sample / "class_names.txt", **options})


def test_resume_with_a_tuning_option_of_the_wrong_type_is_a_usage_error(tmp_path: Path) -> None:
    job = annotate(_sample_job(tmp_path)).job_url
    with pytest.raises(UsageError, match=r"^option 'concurrency' must be int, not string \"many\"$"):
        resume(job, options={"concurrency": "many"})  # was ValueError: invalid literal for int()


def test_a_file_option_given_as_a_path_is_kept_as_text(tmp_path: Path) -> None:
    """``options={"allow_root": Path(...)}`` ran the job, then failed writing job.json:
    "TypeError: Type is not JSON serializable: PosixPath"."""
    result = annotate(_sample_job(tmp_path))
    assert result.status == "COMPLETED" and result.metrics["success"] == 49, result
    stored = orjson.loads((tmp_path / "out" / "j" / "job.json").read_bytes())
    assert stored["config"]["options"]["allow_root"] == str(REPO / "sample_data")
    assert stored["config"]["options"]["class_names"] == str(REPO / "sample_data" / "class_names.txt")


def test_the_manifest_and_synapse_functions_take_a_pathlib_path_too(tmp_path: Path) -> None:
    """``labeled_only``, ``write_report``, ``convert``, ``evaluate_manifest``, ``apply_job`` and
    ``rollback_job`` failed on a ``pathlib.Path`` with "AttributeError: 'PosixPath' object has no
    attribute ..." or a TypeError, where ``validate_manifest`` and ``manifest_stats`` take one."""
    import totask_manifest as tm

    job = Path(annotate(_sample_job(tmp_path)).job_url)
    output = job / "manifests" / "output" / "output.manifest"
    assert "kept 49 of 50" in tm.labeled_only(output, tmp_path / "train.manifest", "boxes").summary()
    assert tm.write_report(job, tmp_path / "r.html", samples=0).failures == 1
    assert tm.convert(output, tmp_path / "out.coco.json", to="coco").output == str(tmp_path / "out.coco.json")
    second = Path(chain(job, "again", label_attribute="again").job_url)  # the same labels under another name
    evaluation = tm.evaluate_manifest(second, predicted="again", reference="boxes")  # a job folder as a Path
    assert evaluation.detection["ap"] == pytest.approx(1.0)
    for function in (tm.apply_job, tm.rollback_job):
        with pytest.raises(tm.NotAJobError):
            function(tmp_path / "nowhere")


def test_a_chained_job_whose_input_is_rewritten_while_it_runs_fails_and_writes_no_output(tmp_path: Path) -> None:
    """A job chained from a STOPPED one, while that one is resumed (which rewrites its output
    manifest, the chained job's input): the commit merged the parts, recorded against the input
    as it was, into the new version by byte length, and wrote a manifest with broken lines
    ("line-json" for 12 of 200) that said COMPLETED. Now the job ends FAILED saying why, and no
    output manifest is written."""
    first = annotate(_config(tmp_path, job_name="first"))
    assert first.status == "COMPLETED"
    previous_output = Path(first.output_manifest)
    rewritten: list[bool] = []

    def rewrite_the_input(metrics: dict[str, int]) -> None:
        if not rewritten and metrics["success"] + metrics["failed"] >= 1:
            rewritten.append(True)  # what a resume of "first" does: its output replaced, other lengths
            lines = previous_output.read_bytes().splitlines(keepends=True)
            previous_output.write_bytes(b"".join(b'{"pad":"' + b"x" * 40 + b'",' + line[1:] for line in lines))

    second = chain(first.job_url, "second", label_attribute="other", options={"delay": 0.0, "fail": "text 1"},
                   checkpoint_every=1, on_progress=rewrite_the_input)
    assert rewritten
    assert second.status == "FAILED", second
    assert second.error is not None and "changed while the job ran" in second.error
    assert not Path(second.output_manifest).exists()
    assert status(second.job_url)["status"] == "FAILED"
    anew = ("start a new job from the input as it is now (another --job-name), or put back the version the job "
            "read and resume it")
    with pytest.raises(JobError, match="changed since job 'second' read it") as refused:
        resume(second.job_url)
    assert str(refused.value).endswith(anew)
    # status said "resume the job to write it" and chain "resume it first", which resume refuses:
    # all three give the one way forward now
    from tests.jobs_helpers import run_cli
    from totask_manifest import write_report

    shown = run_cli("status", second.job_url)
    assert f"its input changed while it ran: {anew})" in shown.stdout and "resume the job" not in shown.stdout
    chained = run_cli("chain", second.job_url, "--job-name", "third")
    assert chained.returncode == 1 and chained.stderr.strip().endswith(anew), chained.stderr
    # the report said "Failures (0) no failures" beside counts of 1 failed: failures.jsonl was
    # never written; the failures are read from the checkpoint parts, as for a killed job
    assert second.metrics["failed"] == 1
    assert write_report(second.job_url, tmp_path / "r.html", samples=0).failures == 1
