"""A job stopped because its own options are wrong (no ``--allow-root``, a misspelt ``--url-key``)
says to chain a job with the option given, not to resume: a resume keeps the job's options (they
are its identity) and stops the same way, and ``resume --keep-going`` would record every line
failed. A stop whose cause lies outside the job (credentials, an endpoint) still says resume."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from tests.jobs_helpers import REPO
from totask_manifest._cli import main
from totask_manifest._failure_rules import CONFIGURATION_RULES, OPTION_FIXES, way_on

SAMPLE = REPO / "sample_data"
FILE_JOB = ["--label-attribute", "boxes", "--task-type", "object-detection", "--method", "file",
            "--url-key", "annotation-ref", "--class-names", str(SAMPLE / "class_names.txt"), "--native", "convert"]


def test_every_option_rule_is_a_configuration_rule_named_by_its_option() -> None:
    from totask_manifest._annotators.base import method_options as _method_options

    assert set(OPTION_FIXES) <= CONFIGURATION_RULES
    assert way_on("http-401") == "a resume tries those lines again"
    assert way_on("allow-root-missing").startswith("--allow-root is the job's own option, which a resume keeps")
    # each advised flag is an option of a method that meets the rule: file or inference
    methods = {name: _method_options(name) for name in ("file", "inference")}
    assert all(any(field in opts for opts in methods.values()) for _, field in OPTION_FIXES.values())
    # the ToTask action's pre-processor has none of these flags: a chain with one would be refused
    preprocessor = _method_options("synapse-preprocessor")
    assert preprocessor is not None and way_on("image-key-missing", preprocessor) == "a resume tries those lines again"
    assert way_on("image-key-missing", methods["inference"]).startswith("--image-key is the job's own option")


@pytest.mark.slow  # a file job over the sample, then its chained job
def test_a_job_without_its_allowed_root_says_to_chain_and_the_chain_labels_it(tmp_path: Path, capsys,
                                                                             caplog) -> None:
    out = tmp_path / "jobs"
    assert main(["annotate", str(SAMPLE / "manifest.jsonl"), "--job-name", "j", *FILE_JOB, "--output", str(out)]) == 1
    said = capsys.readouterr().err + caplog.text  # the summary (logged in-process, stderr from the command)
    advice = ("--allow-root is the job's own option, which a resume keeps (it would stop the same way): label them in a "
              "job chained from this one with it given (totask-manifest chain JOB_DIR --job-name NEW --allow-root DIR)")
    assert "failed with 'allow-root-missing'" in said and advice in said, said
    assert "a resume tries those lines again" not in said
    job = orjson.loads((out / "j" / "job.json").read_bytes())
    assert job["status"] == "FAILED" and advice in job["error"]
    # what it says works: the chained job labels every line the sample can label
    assert main(["chain", str(out / "j"), "--job-name", "k", "--allow-root", str(SAMPLE)]) == 0
    chained = orjson.loads((out / "k" / "job.json").read_bytes())
    assert chained["status"] == "COMPLETED" and chained["metrics"]["success"] == 49, chained["metrics"]


def test_a_stop_on_one_line_refers_to_it_as_one() -> None:
    """A 1-line run stopped on a configuration rule said "the 1 line this run tried failed ...:
    label them ... (first: ...) ... records them failed": the words referring to the lines now
    agree with their count, as "the 1 line" does; several lines, or an unknown count (apply's
    advice from job.json), keep "them"."""
    from totask_manifest._errors import JobError
    from totask_manifest._failure_rules import SystematicFailure

    watch = SystematicFailure(1)
    with pytest.raises(JobError) as err:
        watch.observe("failed", "allow-root-missing", "fetch: /d/a.json needs --allow-root")
    assert str(err.value) == (
        "the 1 line this run tried failed with 'allow-root-missing', which points at the job's configuration rather "
        "than the data; --allow-root is the job's own option, which a resume keeps (it would stop the same way): "
        "label it in a job chained from this one with it given (totask-manifest chain JOB_DIR --job-name NEW "
        "--allow-root DIR) (its reason: fetch: /d/a.json needs --allow-root); if the data is at fault, "
        "'resume --keep-going' (Python: keep_going=True) records it failed and goes on")
    assert way_on("http-401", lines=1) == "a resume tries that line again"
    assert way_on("model-error", files=frozenset({"model"}), lines=1).endswith(
        "label it in a job chained from this one with the fixed file (totask-manifest chain JOB_DIR --job-name NEW "
        "--model FILE)")
    two = SystematicFailure(2)
    two.observe("failed", "http-401", "fetch: HTTP 401")
    with pytest.raises(JobError, match=r"^each of the 2 lines this run tried .*a resume tries those lines again "
                                       r"\(first: fetch: HTTP 401\); .* records them failed and goes on$"):
        two.observe("failed", "http-401", "fetch: HTTP 401")
