"""A box past its image in a job: the label check (``check_label``) left its fast path and found
the ``box-outside-image`` warning, and the recorder kept only the errors, so the job wrote the
box as it is and said nothing anywhere (its summary, ``status``, ``job.json``, the report). Now
each labeled line the check warns of is counted, as ``dropped`` lines are: ``metrics.warnings``
(the checkpoint's record holds ``w``, so a resume and ``status`` of a killed job count it too).
"""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from totask_manifest import JobConfig, annotate, status
from totask_manifest._jobs.damaged_parts import readable_summary
from totask_manifest._jobs.layout import JobLayout

from .jobs_helpers import run_cli


def _job(tmp_path: Path, boxes: list[list[float]]) -> object:
    rows = [orjson.dumps({"source-ref": f"s3://b/{i}.jpg", "box": box}) for i, box in enumerate(boxes)]
    (tmp_path / "in.manifest").write_bytes(b"\n".join(rows) + b"\n")
    config = JobConfig(job_name="j", input=str(tmp_path / "in.manifest"), output_root=str(tmp_path / "jobs"),
                       label_attribute="boxes", task_type="object-detection",
                       method="tests.support.toy_annotators:ToyBoxes")
    return annotate(config)


@pytest.mark.slow
def test_a_box_past_its_image_is_counted_as_a_warning_in_the_job(tmp_path: Path) -> None:
    result = _job(tmp_path, [[1, 1, 2, 2], [8, 1, 2.5, 2], [0, 0, 10, 10], [-0.5, 9, 1, 1.5]])
    assert result.status == "COMPLETED" and result.metrics["success"] == 4
    assert result.metrics["warnings"] == 2, result.metrics
    assert status(result.job_url)["metrics"]["warnings"] == 2
    job = orjson.loads((Path(result.job_url) / "job.json").read_bytes())
    assert job["metrics"]["warnings"] == 2
    counts, damaged = readable_summary(JobLayout(result.job_url))
    assert counts["warnings"] == 2 and not damaged


def test_a_job_with_no_warning_has_no_warnings_metric(tmp_path: Path) -> None:
    result = _job(tmp_path, [[1, 1, 2, 2], [0, 0, 10, 10]])
    assert result.status == "COMPLETED" and "warnings" not in result.metrics, result.metrics


def test_the_summary_of_a_job_prints_its_warnings_as_status_does(tmp_path: Path) -> None:
    """``annotate``'s closing summary said ``success=4 ... stand_by=0`` and not the 2 warnings
    job.json and ``status`` count; resume, chain and clone print the same summary (``report``)."""
    rows = [orjson.dumps({"source-ref": f"s3://b/{i}.jpg", "box": box})
            for i, box in enumerate([[1, 1, 2, 2], [8, 1, 2.5, 2], [-0.5, 9, 1, 1.5]])]
    (tmp_path / "in.manifest").write_bytes(b"\n".join(rows) + b"\n")
    proc = run_cli("annotate", str(tmp_path / "in.manifest"), "--job-name", "j", "--label-attribute", "boxes",
                   "--task-type", "object-detection", "--method", "tests.support.toy_annotators:ToyBoxes",
                   "--output", str(tmp_path / "jobs"))
    assert proc.returncode == 0, proc.stderr
    assert "metrics: total=3 success=3 failed=0 routed=0 stand_by=0 warnings=2\n" in proc.stdout, proc.stdout
    shown = run_cli("status", str(tmp_path / "jobs" / "j"))
    assert "warnings=2" in shown.stdout, shown.stdout


def test_the_summary_of_a_job_with_no_warning_names_none() -> None:
    from totask_manifest._cli._jobs import metrics_line

    assert metrics_line({"total": 2, "success": 2, "failed": 0, "routed": 0, "stand_by": 0}) == (
        "metrics: total=2 success=2 failed=0 routed=0 stand_by=0")
    assert metrics_line({"total": 2, "success": 2, "failed": 0, "routed": 0, "stand_by": 0, "dropped": 1}) == (
        "metrics: total=2 success=2 failed=0 routed=0 stand_by=0 dropped=1")
