"""A chained job that labels the previous job's attribute must label it with the same task type.

The previous attribute is what `chain` of a STOPPED or FAILED job labels by default, and what a
user names to "label only what is still unlabeled". A job of another task type writing there
left one attribute holding two kinds of label (boxes on most lines, a class id on the rest),
exit 0, which `validate` reported as valid and every reader downstream (COCO, YOLO, evaluate)
then had to take apart. Ground Truth's chaining keeps an attribute's task type.
"""

from __future__ import annotations

from pathlib import Path

from .jobs_helpers import REPO, output_of, run_cli, sample_job_args


def _sample_job(tmp_path: Path) -> Path:
    """The README's file job over sample_data (line 14's annotation file is broken: it fails)."""
    done = run_cli(*sample_job_args("boxes-job", tmp_path / "out"))
    assert done.returncode == 0, done.stderr
    return tmp_path / "out" / "boxes-job"


def test_chain_onto_the_previous_attribute_with_another_task_type_is_refused(tmp_path: Path) -> None:
    job = _sample_job(tmp_path)
    before = output_of(tmp_path / "out", "boxes-job").read_bytes()
    done = run_cli("chain", str(job), "--job-name", "cls-fill", "--label-attribute", "boxes",
                   "--method", "inference", "--task-type", "image-classification",
                   "--model", str(REPO / "sample_data" / "models" / "shapes-classifier.pt"))
    assert done.returncode == 2, (done.stdout, done.stderr)
    err = done.stderr.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in done.stderr, done.stderr
    assert "'boxes'" in err[0] and "object-detection" in err[0] and "image-classification" in err[0], err[0]
    assert not (tmp_path / "out" / "cls-fill").exists()
    assert output_of(tmp_path / "out", "boxes-job").read_bytes() == before


def test_chain_of_a_stopped_job_with_another_task_type_says_to_name_a_new_attribute(tmp_path: Path) -> None:
    """From a STOPPED job the default attribute is the previous one: the refusal says what to give."""
    import orjson

    job = _sample_job(tmp_path)
    state = orjson.loads((job / "job.json").read_bytes())
    state["status"] = "STOPPED"
    (job / "job.json").write_bytes(orjson.dumps(state))
    done = run_cli("chain", str(job), "--job-name", "cls-next", "--method", "inference",
                   "--task-type", "image-classification",
                   "--model", str(REPO / "sample_data" / "models" / "shapes-classifier.pt"))
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "--label-attribute" in done.stderr, done.stderr
    assert not (tmp_path / "out" / "cls-next").exists()
    # a new attribute is the way forward: it labels every line
    done = run_cli("chain", str(job), "--job-name", "cls-next", "--label-attribute", "shapes", "--method",
                   "inference", "--task-type", "image-classification",
                   "--model", str(REPO / "sample_data" / "models" / "shapes-classifier.pt"))
    assert done.returncode == 0, done.stderr
    assert "metrics: total=50 success=50" in done.stdout, done.stdout


def test_chain_onto_the_previous_attribute_with_the_same_task_type_labels_only_the_rest(tmp_path: Path) -> None:
    job = _sample_job(tmp_path)
    done = run_cli("chain", str(job), "--job-name", "det-fill", "--label-attribute", "boxes",
                   "--method", "inference", "--model", str(REPO / "sample_data" / "models" / "shapes-detector.pt"))
    assert done.returncode == 0, done.stderr
    assert "1 to label under 'boxes'" in done.stdout + done.stderr, done.stderr
    assert "total=1 success=1 failed=0" in done.stdout, done.stdout
