"""Ground Truth writes a failed object's metadata with ``failure-reason`` alone, no ``type``
(ground-truth.md 2.14). ``validate`` counted such lines nowhere ("0 failed" where ``stats`` said
4), and under ``--label-attribute`` called each an error asking for ``--task-type``. A line routed
to review without a type likewise."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.support.gt import GT_MANIFESTS as GT
from tests.support.gt import requires_gt
from totask_manifest._manifest import line_check
from totask_manifest._manifest import validate as validate_module

pytestmark = requires_gt

YOLO = GT / "object-detection__aws-amazon-sagemaker-examples__yolov5-sample_output.manifest"
ATTRIBUTE = "category"  # the yolov5 sample's label attribute


def _failed(n: int) -> dict[str, Any]:
    return {"source-ref": f"s3://b/failed-{n}.jpg", f"{ATTRIBUTE}-metadata": {"failure-reason": "ClientError: timeout"}}


def _routed(n: int) -> dict[str, Any]:
    return {"source-ref": f"s3://b/routed-{n}.jpg", f"{ATTRIBUTE}-metadata": {"review-status": "routed"}}


def mixed(tmp_path: Path, rounds: int = 40) -> tuple[Path, int, int, int]:
    """The real sample's labeled lines, each few followed by a failed or a routed line without a
    type: (path, labeled, failed, routed)."""
    labeled = YOLO.read_bytes().splitlines(keepends=True)
    out: list[bytes] = []
    failed = routed = 0
    for n in range(rounds):
        out.extend(labeled)
        if n % 3 == 2:
            out.append(orjson.dumps(_routed(n)) + b"\n")
            routed += 1
        else:
            out.append(orjson.dumps(_failed(n)) + b"\n")
            failed += 1
    path = tmp_path / "mixed.manifest"
    path.write_bytes(b"".join(out))
    return path, rounds * len(labeled), failed, routed


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "totask_manifest._cli", *args], capture_output=True, text=True,
                          timeout=120, cwd=cwd)


@pytest.mark.parametrize("attribute", [None, ATTRIBUTE])
def test_untyped_failed_and_routed_lines_are_counted_on_every_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                    attribute: str | None) -> None:
    path, labeled, failed, routed = mixed(tmp_path)
    reports = [validate_module.validate_manifest(str(path), label_attribute=attribute, workers=1)]
    with monkeypatch.context() as m:  # the per-line path alone
        m.setattr(line_check.LineChecker, "_runs_possible", property(lambda self: False))
        reports.append(validate_module.validate_manifest(str(path), label_attribute=attribute, workers=1))
    with monkeypatch.context() as m:  # short runs: runs opening with a failed line, and runs of labels between them
        m.setattr(line_check, "RUN_LINES", 7)
        reports.append(validate_module.validate_manifest(str(path), label_attribute=attribute, workers=1))
    for report in reports:
        assert report.ok and report.errors == 0, report.summary()
        stats = report.attributes[ATTRIBUTE]
        assert (stats.labeled, stats.failed, stats.routed) == (labeled, failed, routed), report.summary()
        assert stats.task_types == ["object-detection"]
    assert reports[0].to_dict() == reports[1].to_dict() == reports[2].to_dict()


def test_ranges_merged_count_them_once(tmp_path: Path) -> None:
    path, labeled, failed, routed = mixed(tmp_path)
    lines = path.read_bytes().splitlines(keepends=True)
    args = (None, None, None, False, 1000)
    cuts = [0, sum(map(len, lines[:95])), sum(map(len, lines[:301]))]
    parts = [validate_module.check_range(str(path), start, end, *args)
             for start, end in zip(cuts, [*cuts[1:], None], strict=True)]
    report = validate_module._merge(str(path), validate_module._one_type_each(str(path), parts, args), None, False, 1000)
    stats = report.attributes[ATTRIBUTE]
    assert (stats.labeled, stats.failed, stats.routed) == (labeled, failed, routed)


def test_the_cli_agrees_with_stats_and_names_no_type_for_failures_only(tmp_path: Path) -> None:
    path, labeled, failed, routed = mixed(tmp_path, rounds=4)
    for extra in ([], ["--label-attribute", ATTRIBUTE], ["--workers", "2"]):
        r = cli("validate", path.name, *extra, cwd=tmp_path)
        assert r.returncode == 0, r.stdout + r.stderr
        assert (f"attribute {ATTRIBUTE!r} (object-detection): {labeled} labeled, {failed} failed, "
                f"{routed} routed to review") in r.stdout, r.stdout
    assert f"failed: {failed}" in cli("stats", path.name, cwd=tmp_path).stdout
    only = tmp_path / "failed.manifest"  # no label anywhere: no task type to name, a bad failure-reason said
    only.write_bytes(orjson.dumps(_failed(1)) + b"\n" + orjson.dumps(
        {"source-ref": "s3://b/x.jpg", f"{ATTRIBUTE}-metadata": {"failure-reason": 5}}) + b"\n")
    r = cli("validate", only.name, cwd=tmp_path)
    assert r.returncode == 1, r.stdout
    assert f"line 2: error: {ATTRIBUTE}-metadata.failure-reason: 5 is not of type \"string\"" in r.stdout, r.stdout
    assert f"attribute {ATTRIBUTE!r}: 0 labeled, 2 failed, 1 line with errors" in r.stdout, r.stdout


@pytest.mark.parametrize("extra", [[], ["--label-attribute", ATTRIBUTE], ["--workers", "2"]])
def test_a_value_beside_untyped_failed_or_routed_metadata_is_counted_and_said(tmp_path: Path, extra: list[str]) -> None:
    """As beside typed metadata: the line counts failed (routed), its value is no label and is
    said (``failure-with-label``, ``routed-with-label``); another status beside a value is no mark,
    and a value whose metadata declares no type cannot be checked: give --task-type."""
    value = {"annotations": []}
    lines = [{**_failed(1), ATTRIBUTE: value}, {**_routed(2), ATTRIBUTE: value}, _failed(3)]
    (tmp_path / "v.manifest").write_bytes(b"".join(orjson.dumps(x) + b"\n" for x in lines))
    r = cli("validate", "v.manifest", *extra, cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"attribute {ATTRIBUTE!r}: 0 labeled, 2 failed, 1 routed to review, 0 lines with errors" in r.stdout, r.stdout
    assert "line 1: warning: category: the metadata says this object failed" in r.stdout, r.stdout
    assert "line 2: warning: category: the metadata says this object was routed to review" in r.stdout, r.stdout
    assert "failed: 2" in cli("stats", "v.manifest", cwd=tmp_path).stdout
    other = {"source-ref": "s3://b/o.jpg", ATTRIBUTE: value, f"{ATTRIBUTE}-metadata": {"review-status": "approved"}}
    (tmp_path / "o.manifest").write_bytes(orjson.dumps(other) + b"\n")
    r = cli("validate", "o.manifest", "--label-attribute", ATTRIBUTE, cwd=tmp_path)
    assert r.returncode == 1 and "metadata-type-unknown" in r.stdout, r.stdout
