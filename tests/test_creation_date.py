"""``creation-date``: any real ISO 8601 date-time is valid (other AWS services write ``Z`` and
offsets); forms AWS writers use that are not ISO 8601 are warnings with their own rule ids,
errors under ``--strict``; anything else is an error."""

from __future__ import annotations

import re

import pytest

from tests.support.gt import GT_MANIFESTS as GT
from tests.support.gt import SKIP_REASON
from totask_manifest._cli import main
from totask_manifest._manifest.semantics import creation_date
from totask_manifest._manifest.validate import check_label

YOLO = GT / "object-detection__aws-amazon-sagemaker-examples__yolov5-sample_output.manifest"

ACCEPTED = [
    "2022-09-12T09:51:00.148118",  # Ground Truth
    "2021-02-25T20:38:25.164Z",  # JavaScript toISOString(), what AWS services' Node.js code writes
    "2020-01-01T00:00:00Z",
    "2013-11-18T02:53:27",  # Rekognition Custom Labels' documentation example
    "2020-01-01T09:00:00+09:00",
    "2020-01-01T09:00:00.5-05:30",
    "2020-01-01T10:20:30,25Z",  # ISO 8601's comma
    "2020-01-01T10:20Z",
    "2020-01-01T10",
    "2020-01-01",
    "20200101T102030Z",  # basic format
    "20200101T102030+0900",
    "2020-W01-3",  # week date
    "2020-366",  # ordinal date of a leap year
    "2020-01-01T24:00:00",  # the end of the day
    "2020-02-29T00:00:00",
]
DEPARTURES = {
    "2020-05-25T12:53:54+0000": "departure-creation-date-zone",  # real Ground Truth output (Person)
    "2020-05-25T12:53:54.5-0530": "departure-creation-date-zone",
    "Wed Jan 01 2020 00:00:00 GMT+0000 (Coordinated Universal Time)": "departure-creation-date-javascript",
    "Tue Dec 31 2019 19:00:00 GMT-0500": "departure-creation-date-javascript",  # Date.toString()
    "Wed, 01 Jan 2020 00:00:00 GMT": "departure-creation-date-javascript",  # Date.toUTCString()
    "2020-01-01 10:20:30.123456": "departure-creation-date-space",  # Python's str(datetime)
    "2020-01-01 10:20:30 UTC": "departure-creation-date-space",
}
INVALID = [
    "2020-02-30T00:00:00", "2021-02-29", "2021-366", "2020-W54-1", "2020-13-01T00:00:00", "2020-01-01T23:60:00Z",
    "2020-01-01T24:00:01", "2020-01-01T00:00:00+24:00", "2020-02-30T00:00:00+0000", "2020-1-1",
    "Thu Jan 01 2020 00:00:00 GMT+0000",  # 1 January 2020 was a Wednesday
    "Wed, 32 Jan 2020 00:00:00 GMT", "2020-02-30 10:00:00", "18/10/2018", "yesterday", "1577836800",
]


@pytest.mark.parametrize("date", ACCEPTED)
def test_any_real_iso_8601_date_time_is_accepted(date):
    assert creation_date(date) == []
    assert check_label("object-detection", *_pair(date)) == []


@pytest.mark.parametrize(("date", "rule"), DEPARTURES.items())
def test_other_writers_forms_are_warnings_with_their_own_rule(date, rule):
    found = creation_date(date)
    assert [(f.rule, f.severity) for f in found] == [(rule, "warning")]
    problems = check_label("object-detection", *_pair(date))
    assert [(p.rule, p.severity) for p in problems] == [(rule, "warning")]


@pytest.mark.parametrize("date", INVALID)
def test_other_strings_are_errors(date):
    assert [(f.rule, f.severity) for f in creation_date(date)] == [("creation-date-invalid", "error")]


def _pair(date: str) -> tuple[dict, dict]:
    label = {"image_size": [{"width": 10, "height": 10, "depth": 3}],
             "annotations": [{"class_id": 0, "top": 1, "left": 1, "height": 2, "width": 2}]}
    metadata = {"objects": [{"confidence": 0.5}], "class-map": {"0": "a"}, "type": "groundtruth/object-detection",
                "human-annotated": "yes", "creation-date": date, "job-name": "labeling-job/j"}
    return label, metadata


@pytest.mark.skipif(not YOLO.exists(), reason=SKIP_REASON)
def test_validate_command(tmp_path, capsys):
    lines = YOLO.read_bytes().splitlines(keepends=True)[:4]
    dated = [re.sub(rb'"creation-date":"[^"]*"', b'"creation-date":"' + d.encode() + b'"', line)
             for line, d in zip(lines, ["2022-09-12T09:51:00.148Z", "2022-09-12T18:51:00+09:00",
                                        "Mon Sep 12 2022 09:51:00 GMT+0000 (Coordinated Universal Time)",
                                        "2022-09-12T09:51:00.148118"], strict=True)]
    (tmp_path / "aws.manifest").write_bytes(b"".join(dated[:2] + dated[3:]))
    assert main(["validate", str(tmp_path / "aws.manifest")]) == 0
    out = capsys.readouterr().out
    assert "valid: 3 lines" in out and "warning" not in out.split("valid:")[0]
    (tmp_path / "js.manifest").write_bytes(b"".join(dated))
    assert main(["validate", str(tmp_path / "js.manifest")]) == 0
    out = capsys.readouterr().out
    assert "line 3: warning: category-metadata.creation-date: " in out and "[departure-creation-date-javascript]" in out
    assert main(["validate", "--strict", str(tmp_path / "js.manifest")]) == 1
    out = capsys.readouterr().out
    assert "line 3: error: " in out and "[departure-creation-date-javascript]" in out
    (tmp_path / "bad.manifest").write_bytes(dated[0].replace(b"2022-09-12T09:51:00.148Z", b"2022-09-31T09:51:00Z"))
    assert main(["validate", str(tmp_path / "bad.manifest")]) == 1
    assert "[creation-date-invalid]" in capsys.readouterr().out
