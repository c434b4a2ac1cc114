"""``totask-manifest validate``, both in-process (``main([...])``) and as a real subprocess."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from tests.support.gt import GT_MANIFESTS as GT
from tests.support.gt import gt_files, requires_gt
from tests.support.s3 import S3Endpoint
from totask_manifest._cli import main
from totask_manifest._storage import write_bytes_atomic

pytestmark = requires_gt

YOLO = GT / "object-detection__aws-amazon-sagemaker-examples__yolov5-sample_output.manifest"
PERSON = GT / "video-object-tracking-two-label-attributes__iprivit-object-tracking-project__output.manifest"
SEQLABEL = GT / "video-object-tracking__iprivit-object-tracking-project__SeqLabel.jsonl"
WORKER = GT / "image-classification__aws-amazon-sagemaker-examples__ic_data-worker-response.jsonl"
MANIFESTS = [p for p in gt_files(".manifest", ".jsonl") if p not in (SEQLABEL, WORKER)]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "totask_manifest._cli", "validate", *args],
                          capture_output=True, text=True, timeout=120)


def broken_yolo(tmp_path: Path) -> Path:
    lines = YOLO.read_bytes().splitlines(keepends=True)
    at = lines[6].index(b'"annotations"')
    lines[6] = lines[6][:at] + lines[6][at:].replace(b'"width":', b'"width":-', 1)
    lines[20] = lines[20][:100] + b"\n"
    target = tmp_path / "broken.manifest"
    target.write_bytes(b"".join(lines))
    return target


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name[:60])
def test_main_accepts_every_real_manifest(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"{path}: valid: " in out
    assert "error:" not in out


def test_main_accepts_the_non_manifest_files_with_their_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(SEQLABEL), "--schema", "seqlabel"]) == 0
    assert main(["validate", str(WORKER), "--schema", "worker-response"]) == 0
    assert main(["validate", str(WORKER)]) == 1  # as a manifest it has no source-ref: rejected
    assert "[line-source]" in capsys.readouterr().out


def test_main_reports_line_key_and_rule(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(broken_yolo(tmp_path))]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("line 7: error: category.annotations[0].width: ")
    assert out[0].endswith("is less than the minimum of 0 [schema-minimum]")
    assert out[1].startswith("line 21: error: line is not a single JSON object:") and out[1].endswith("[line-json]")
    assert "INVALID: 50 lines, 2 errors, 0 warnings" in out[2]
    assert "problems by rule: line-json 1, schema-minimum 1" in "\n".join(out)


def test_main_strict_turns_departures_into_failures(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(PERSON)]) == 0
    assert "[departure-ref-suffix]" in capsys.readouterr().out
    assert main(["validate", str(PERSON), "--strict"]) == 1
    out = capsys.readouterr().out
    assert "line 1: error: Person: " in out and "3 errors" in out


def test_main_json_format(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(broken_yolo(tmp_path)), "--format", "json"]) == 1
    report = orjson.loads(capsys.readouterr().out)
    assert report["ok"] is False and report["lines"] == 50 and report["errors"] == 2
    assert report["problems"][0] == {"line": 7, "key": "category.annotations[0].width", "rule": "schema-minimum",
                                     "message": report["problems"][0]["message"], "severity": "error"}
    assert report["attributes"]["category"]["labeled"] == 49


def test_main_label_attribute_and_task_type(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(YOLO), "--label-attribute", "category", "--task-type", "object-detection"]) == 0
    assert main(["validate", str(YOLO), "--label-attribute", "category", "--task-type", "text-span"]) == 1
    assert "[schema-const]" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["/no/such/file.manifest"], "no such file: /no/such/file.manifest"),
        ([str(YOLO), "--schema", "nope"], "unknown schema 'nope'"),
        ([str(YOLO), "--task-type", "nope"], "unknown task type 'nope'"),
        ([str(YOLO), "--workers", "0"], "workers must be at least 1"),
    ],
)
def test_main_usage_and_io_errors_exit_2(args: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("totask-manifest validate: error: ") and message in err
    assert "Traceback" not in err


@pytest.mark.slow
def test_subprocess_valid_invalid_and_missing(tmp_path: Path) -> None:
    ok = run_cli(str(YOLO))
    assert ok.returncode == 0 and "valid: 50 lines, 0 errors" in ok.stdout
    bad = run_cli(str(broken_yolo(tmp_path)))
    assert bad.returncode == 1 and "line 7: error: category.annotations[0].width" in bad.stdout
    missing = run_cli(str(tmp_path / "absent.manifest"))
    assert missing.returncode == 2
    assert missing.stderr.strip() == f"totask-manifest validate: error: no such file: {tmp_path / 'absent.manifest'}"
    usage = run_cli()
    assert usage.returncode == 2 and "MANIFEST" in usage.stderr


@pytest.mark.slow
def test_subprocess_on_s3(s3: S3Endpoint) -> None:
    bucket = s3.new_bucket()
    url = f"{bucket}/out/output.manifest"
    write_bytes_atomic(url, YOLO.read_bytes())
    done = run_cli(url, "--format", "json")  # the child finds the endpoint through AWS_ENDPOINT_URL
    assert done.returncode == 0, done.stderr
    assert orjson.loads(done.stdout)["lines"] == 50


def test_a_task_type_no_label_attribute_has_is_not_valid(capsys: pytest.CaptureFixture[str]) -> None:
    """``validate boxes.manifest --task-type image-classification`` checked no attribute (none is of
    that type) and said ``valid: 50 lines, 0 errors``, exit 0: the answer to "is this a valid
    image-classification manifest?" was yes. As a ``--label-attribute`` no line holds, it is
    refused (exit 1, ``label-attribute-absent``), naming the label attributes and their types."""
    from totask_manifest import validate_manifest
    from totask_manifest._errors import ManifestError

    assert main(["validate", str(YOLO), "--task-type", "image-classification"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "valid:" not in err[0], err
    assert "no label attribute of type image-classification" in err[0] and "category (object-detection)" in err[0]
    assert "--task-type" in err[0]
    with pytest.raises(ManifestError) as info:
        validate_manifest(str(YOLO), task_type="image-classification")
    assert info.value.rule == "label-attribute-absent"
    assert main(["validate", str(YOLO), "--task-type", "object-detection"]) == 0  # the type it holds
    input_only = GT / "image-classification-input__kkr4353-aws-product-development__dataset-20200530T121341.manifest"
    assert main(["validate", str(input_only), "--task-type", "image-classification"]) == 0  # no label: nothing to miss



def test_a_task_type_absent_from_labels_that_start_late_is_not_valid(tmp_path, capsys) -> None:
    """The refusal above looked at the first 2,000 lines only: labels from line 2,001 on (an input
    manifest with a labeled job appended) were not seen, and ``--task-type`` of another type said
    valid, having checked nothing."""
    labeled = YOLO.read_bytes().splitlines(keepends=True)[0]
    path = tmp_path / "late.manifest"
    path.write_bytes(b'{"source-ref":"s3://b/u.jpg"}\n' * 2500 + labeled)
    assert main(["validate", str(path), "--task-type", "image-classification"]) == 1
    err = capsys.readouterr().err
    assert "no label attribute of type image-classification" in err and "(object-detection)" in err, err


def test_a_label_attribute_of_two_task_types_exits_1(tmp_path: Path) -> None:
    """Line 9 of the YOLO sample made an image classification under ``category``: ``valid``, exit 0,
    with both types in the summary. Now the line is named, with the first line's type, exit 1."""
    lines = YOLO.read_bytes().splitlines(keepends=True)
    record = orjson.loads(lines[8])
    record["category"] = 0
    record["category-metadata"] = {"class-name": "Bird", "confidence": 0.9, "type": "groundtruth/image-classification",
                                   "job-name": "labeling-job/birds", "human-annotated": "yes",
                                   "creation-date": "2022-09-12T09:51:00.148118"}
    lines[8] = orjson.dumps(record) + b"\n"
    target = tmp_path / "mixed.manifest"
    target.write_bytes(b"".join(lines))
    done = run_cli(str(target))
    assert done.returncode == 1, done.stderr
    out = done.stdout.splitlines()
    assert out[0] == ("line 9: error: category-metadata.type: 'groundtruth/image-classification' differs from "
                      "'groundtruth/object-detection' (line 1): one label attribute holds one task type "
                      "[label-attribute-mixed-types]")
    assert "INVALID: 50 lines, 1 error," in out[1] and done.stderr == ""
