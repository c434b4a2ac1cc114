"""Tuning values that cannot work are refused for every method, not only for one that declares them.

A method checks only the options it declares, so ``resume --concurrency -1`` of a job whose
method (a plugin) declares no ``--concurrency`` wrote -1 into job.json and ran; the same held for
``--retries -1``, ``--timeout 0``, ``--batch-size 0`` and ``--device gpu9``, and for ``annotate``
of such a method. Each is now refused (exit 2, one line naming the flag) before anything is written
(``_api_checks.check_tuning``), as annotate's fetch policy refuses them for ``--method file``.
"""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from tests.jobs_helpers import TOY, run_cli, toy_job_args, write_manifest
from totask_manifest import JobConfig, UsageError, annotate, resume


def _stop(metrics: dict[str, int]) -> None:
    raise KeyboardInterrupt  # as Ctrl-C: the job ends STOPPED (``test_progress_callback``)


def stopped_toy_job(tmp_path: Path) -> Path:
    """A STOPPED job of the toy plugin (which declares no tuning option), lines left to resume."""
    src = write_manifest(tmp_path / "in.manifest", 12, bad_every=0)
    with pytest.raises(KeyboardInterrupt):
        annotate(JobConfig(job_name="j", input=str(src), output_root=str(tmp_path / "out"), label_attribute="cls",
                           task_type="image-classification", method=TOY), on_progress=_stop)
    job = tmp_path / "out" / "j"
    assert orjson.loads((job / "job.json").read_bytes())["status"] == "STOPPED"
    return job


BAD = [
    (["--concurrency", "-1"], "--concurrency must be at least 1 (got -1)"),
    pytest.param(["--retries", "-1"], "--retries must be 0 or more (got -1)", marks=pytest.mark.slow),
    pytest.param(["--timeout", "0"], "--timeout must be more than 0 seconds (got 0.0)", marks=pytest.mark.slow),
    pytest.param(["--batch-size", "0"], "--batch-size must be at least 1 (got 0)", marks=pytest.mark.slow),
    pytest.param(["--device", "gpu9"], "--device must be one of auto, cpu, cuda, mps (or cuda:N) (got 'gpu9')",
                 marks=pytest.mark.slow),
    pytest.param(["--checkpoint-every", "0"], "--checkpoint-every must be at least 1 (got 0)", marks=pytest.mark.slow),
]


@pytest.mark.parametrize(("flag", "message"), BAD)
def test_resume_refuses_a_bad_tuning_value_of_a_method_that_does_not_declare_it(tmp_path, flag, message):
    job = stopped_toy_job(tmp_path)
    before = (job / "job.json").read_bytes()
    r = run_cli("resume", str(job), *flag)
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().splitlines() == [f"totask-manifest resume: error: {message}"], r.stderr
    assert (job / "job.json").read_bytes() == before


@pytest.mark.slow
def test_resume_with_a_good_tuning_value_still_runs_and_records_it(tmp_path):
    job = stopped_toy_job(tmp_path)
    r = run_cli("resume", str(job), "--concurrency", "4", "--timeout", "2.5", "--retries", "0", "--batch-size", "2",
                "--device", "cuda:1")
    assert r.returncode == 0, r.stderr
    data = orjson.loads((job / "job.json").read_bytes())
    assert data["status"] == "COMPLETED"
    assert {k: data["config"]["options"][k] for k in ("concurrency", "timeout", "retries", "batch_size", "device")} == {
        "concurrency": 4, "timeout": 2.5, "retries": 0, "batch_size": 2, "device": "cuda:1"}


@pytest.mark.parametrize(("options", "message"), [
    ({"concurrency": -1}, r"^--concurrency must be at least 1 \(got -1\)$"),
    ({"retries": -1}, r"^--retries must be 0 or more \(got -1\)$"),
    ({"timeout": 0}, r"^--timeout must be more than 0 seconds \(got 0\)$"),
    ({"batch_size": 0}, r"^--batch-size must be at least 1 \(got 0\)$"),
    ({"device": "gpu9"}, r"^--device must be one of auto, cpu, cuda, mps \(or cuda:N\) \(got 'gpu9'\)$"),
    # a wrong type as ``Options.checked`` names one of a method that declares the option
    ({"concurrency": "4"}, r"^option 'concurrency' must be int, not string \"4\"$"),
    ({"concurrency": True}, r"^option 'concurrency' must be int, not boolean true$"),
    ({"timeout": "5"}, r"^option 'timeout' must be float, not string \"5\"$"),
    ({"device": 0}, r"^option 'device' must be str, not number 0$"),
])
def test_the_python_api_resume_refuses_them_too(tmp_path, options, message):
    job = stopped_toy_job(tmp_path)
    before = (job / "job.json").read_bytes()
    with pytest.raises(UsageError, match=message):
        resume(str(job), options=options)
    assert (job / "job.json").read_bytes() == before


def test_the_python_api_resume_takes_a_good_value(tmp_path):
    job = stopped_toy_job(tmp_path)
    assert resume(str(job), options={"concurrency": 2, "device": "CPU"}).status == "COMPLETED"
    options = orjson.loads((job / "job.json").read_bytes())["config"]["options"]
    assert options["concurrency"] == 2 and options["device"] == "CPU"


def test_annotate_refuses_them_for_a_method_that_does_not_declare_them(tmp_path):
    """The API wrote them into job.json as given (and ran); no job folder is made now."""
    src = write_manifest(tmp_path / "in.manifest", 3, bad_every=0)
    with pytest.raises(UsageError, match=r"^--retries must be 0 or more \(got -1\)$"):
        annotate(JobConfig(job_name="j", input=str(src), output_root=str(tmp_path / "out"), label_attribute="cls",
                           task_type="image-classification", method=TOY, options={"retries": -1}))
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_annotate_cli_refuses_them_for_a_method_that_does_not_declare_them(tmp_path):
    """The CLI dropped a tuning flag the method does not read without looking at it: exit 0."""
    src = write_manifest(tmp_path / "in.manifest", 3, bad_every=0)
    r = run_cli(*toy_job_args(src, tmp_path / "out", "--concurrency", "-1"))
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().splitlines() == ["totask-manifest annotate: error: --concurrency must be at least 1 (got -1)"]
    assert not (tmp_path / "out").exists()


OWN = "tests.support.toy_annotators:OwnTuningToy"


@pytest.mark.parametrize("options", [{}, {"device": 1}, {"retries": -1}, {"timeout": 0.0}])
def test_a_method_that_declares_a_tuning_name_keeps_its_own_meaning(tmp_path, options):
    """Its ``Options`` check it: a GPU index, -1 for ever, 0 for no timeout are its values (the
    built-in rules refused them, and its own defaults, before the job existed)."""
    src = write_manifest(tmp_path / "in.manifest", 4, bad_every=0)
    result = annotate(JobConfig(job_name="j", input=str(src), output_root=str(tmp_path / "out"), label_attribute="cls",
                                task_type="image-classification", method=OWN, options=options))
    assert result.status == "COMPLETED"
    stored = orjson.loads((tmp_path / "out" / "j" / "job.json").read_bytes())["config"]["options"]
    assert all(stored[k] == v for k, v in options.items())


@pytest.mark.slow
def test_the_cli_runs_such_a_method_on_its_own_defaults(tmp_path):
    src = write_manifest(tmp_path / "in.manifest", 4, bad_every=0)
    args = toy_job_args(src, tmp_path / "out")
    r = run_cli(*args[: args.index(TOY)], OWN, *args[args.index(TOY) + 1:])
    assert r.returncode == 0, r.stderr


def test_a_device_index_in_other_digits_is_refused_naming_the_flag(tmp_path):
    """``"cuda:²"`` passed ``str.isdigit`` and then failed ``int()`` when the device was chosen."""
    job = stopped_toy_job(tmp_path)
    before = (job / "job.json").read_bytes()
    with pytest.raises(UsageError, match=r"^--device must be one of"):
        resume(str(job), options={"device": "cuda:\u00b2"})
    assert (job / "job.json").read_bytes() == before
