"""The ``job-name`` a job writes in its labels' metadata follows its task type, as Ground Truth's:
``labeling-job/<lower-cased name>`` for the built-in 2D types, the lower-cased name alone for
custom workflows and 3D point cloud jobs (ground-truth.md 2.2, 2.12, 2.13; the real custom and 3D
files). Every job wrote the prefixed form before; a job writes one form on every run: job.json
records it (``label-job-name``), and a job an older version started, which has no such record,
goes on with the prefixed form it began with. Real jobs through the API, the toy annotator."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from tests.jobs_helpers import TOY, write_manifest
from totask_manifest import _api as api
from totask_manifest._jobs.config import JobConfig
from totask_manifest._jobs.layout import JobLayout
from totask_manifest._task_types import TASK_TYPES, written_job_name


def run_job(tmp_path: Path, task_type: str, name: str = "Custom-J") -> api.JobResult:
    inp = tmp_path / "in.manifest"
    if not inp.exists():
        write_manifest(inp, 20)  # lines 4 and 14 fail (their source holds 'bad')
    return api.annotate(JobConfig(job_name=name, input=str(inp), output_root=str(tmp_path / "out"),
                                  label_attribute="cls", task_type=task_type, method=TOY, checkpoint_every=5))


def job_names(manifest: str | Path, attr: str = "cls") -> list[str | None]:
    out = []
    for raw in Path(manifest).read_bytes().splitlines():
        meta = orjson.loads(raw).get(attr + "-metadata")
        out.append(meta.get("job-name") if isinstance(meta, dict) else None)
    return out


def test_each_task_type_has_ground_truths_form():
    bare = {"custom", "point_cloud_object_detection", "point_cloud_object_tracking",
            "point_cloud_single_frame_semantic_segmentation"}
    for name, tt in TASK_TYPES.items():
        expected = "my-job" if name in bare else "labeling-job/my-job"
        assert written_job_name(tt, "My-Job") == expected, name
        assert written_job_name("groundtruth/" + name, "My-Job") == expected, name
    # a type that cannot be known keeps the form every job wrote before
    assert written_job_name(None, "My-Job") == written_job_name("no-such-type", "My-Job") == "labeling-job/my-job"


@pytest.mark.parametrize(("task_type", "expected"), [("custom", "custom-j"),
                                                      ("image-classification", "labeling-job/custom-j")])
def test_labeled_and_failed_lines_carry_the_types_form(tmp_path, task_type, expected):
    result = run_job(tmp_path, task_type)
    assert result.status == "COMPLETED" and result.metrics["failed"] == 2, result.metrics
    assert job_names(result.output_manifest) == [expected] * 20
    record = orjson.loads((Path(result.job_url) / "job.json").read_bytes())
    assert record["label-job-name"] == expected


def _stopped_midway(result: api.JobResult, older_version: bool) -> Path:
    """The job as if stopped after its first 10 lines: its last two parts and its output gone,
    job.json STOPPED (and without ``label-job-name``, as an older version wrote it)."""
    job = Path(result.job_url)
    parts = JobLayout(str(job)).parts()
    assert len(parts) == 4
    for part in parts[2:]:
        Path(part).unlink()
    Path(result.output_manifest).unlink()
    data = orjson.loads((job / "job.json").read_bytes())
    data["status"] = "STOPPED"
    if older_version:
        del data["label-job-name"]
    (job / "job.json").write_bytes(orjson.dumps(data))
    return job


@pytest.mark.parametrize(("older_version", "expected"), [(False, "custom-j"), (True, "labeling-job/custom-j")],
                         ids=["recorded", "older-version"])
def test_a_resumed_job_writes_the_name_of_its_first_run(tmp_path, older_version, expected):
    job = _stopped_midway(run_job(tmp_path, "custom"), older_version)
    if older_version:  # the lines its first run wrote, as an older version wrote them
        for part in JobLayout(str(job)).parts():
            Path(part).write_bytes(Path(part).read_bytes().replace(b'"job-name":"custom-j"',
                                                                    b'"job-name":"labeling-job/custom-j"'))
    result = api.resume(str(job))
    assert result.status == "COMPLETED", result
    assert job_names(result.output_manifest) == [expected] * 20
    assert orjson.loads((job / "job.json").read_bytes()).get("label-job-name", expected) == expected


def test_a_chained_job_writes_its_own_name_in_its_types_form(tmp_path):
    first = run_job(tmp_path, "custom")
    chained = api.chain(first.job_url, "Next", label_attribute="cls", options={"fail": "nothing"})
    assert chained.status == "COMPLETED" and chained.metrics["success"] == 2, chained.metrics
    names = job_names(chained.output_manifest)
    # the 18 labels of the first job are kept; its 2 failed lines are labeled by the chained job
    assert names.count("custom-j") == 18 and names.count("next") == 2 and len(names) == 20
    assert orjson.loads((Path(chained.job_url) / "job.json").read_bytes())["label-job-name"] == "next"


def test_job_json_with_a_label_job_name_of_the_wrong_kind_is_refused_in_one_line(tmp_path):
    from totask_manifest._errors import TotaskError

    result = run_job(tmp_path, "custom")
    job = Path(result.job_url)
    data = orjson.loads((job / "job.json").read_bytes())
    (job / "job.json").write_bytes(orjson.dumps({**data, "label-job-name": None, "status": "STOPPED"}))
    with pytest.raises(TotaskError, match="label-job-name is null, not a string"):
        api.resume(str(job))


def test_imported_labels_take_their_types_form(tmp_path):
    """``convert`` to a manifest: a document kept as it is (a custom label) names the import bare,
    a label converted to a built-in type with the prefix."""
    from totask_manifest._analytics.convert import convert

    dm = tmp_path / "t.dm.jsonl"
    doc = {"annotations": {"image_1": [{"id": "Bx1", "tool": "bounding_box", "classification": {"class": "car"}}]},
           "annotationsData": {"image_1": [{"id": "Bx1", "coordinate": {"x": 1, "y": 2, "width": 3, "height": 4}}]}}
    dm.write_bytes(orjson.dumps({"source-ref": "s3://b/a.jpg", "data": doc, "image_size": [10, 10, 3]}) + b"\n")
    for task_type, expected in ((None, "import-1"), ("object-detection", "labeling-job/import-1")):
        out = tmp_path / f"{task_type}.manifest"
        convert(str(dm), str(out), to="manifest", task_type=task_type, job_name="Import-1")
        assert job_names(out, "label") == [expected], task_type
