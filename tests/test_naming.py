"""Label attribute and input line rules: every rule id, and the message a user reads for it."""

from __future__ import annotations

import pytest

from totask_manifest._errors import LabelAttributeError, ManifestError, UsageError
from totask_manifest._manifest.line import Line
from totask_manifest._manifest.naming import (
    MAX_ATTRIBUTE_CHARS,
    MAX_LINE_CHARS,
    RULES,
    check_label_attribute,
    default_label_attribute,
    input_line_violations,
    label_attribute_violations,
    metadata_key,
    rule_message,
)
from totask_manifest._task_types import TASK_TYPES


def rules(name: str, task_type: str | None = None) -> list[str]:
    return [v.rule for v in label_attribute_violations(name, task_type)]


@pytest.mark.parametrize(
    "name",
    ["a", "A1", "category", "dice-labeling", "a--b", "S10-label3-ref", "EntityRecognizerPOC-1",
     "legal-entity-label-job-labeling-job-20220104T172242", "x" * 127],
)
def test_names_ground_truth_accepts(name: str) -> None:
    assert label_attribute_violations(name) == []
    check_label_attribute(name)  # does not raise


def test_length_rule_and_message() -> None:
    found = label_attribute_violations("")
    assert [v.rule for v in found] == ["label-attribute-length", "label-attribute-pattern"]
    assert found[0].message == "label attribute '' must be 1 to 127 characters long"
    long = "a" * 128
    assert "label-attribute-length" in rules(long)
    assert "label-attribute-length" not in rules("a" * 127)


@pytest.mark.parametrize("name", ["-a", "a-", "a_b", "a.b", "a b", "a$b", "caf\u00e9", "a/b", "$label"])
def test_pattern_rule_and_message(name: str) -> None:
    found = label_attribute_violations(name)
    assert [v.rule for v in found] == ["label-attribute-pattern"]
    message = found[0].message
    assert repr(name) in message
    assert "ASCII letters, digits and hyphens" in message
    assert "[a-zA-Z0-9](-*[a-zA-Z0-9]){0,126}" in message


def test_metadata_suffix_rule_and_message() -> None:
    found = label_attribute_violations("x-metadata")
    assert [v.rule for v in found] == ["label-attribute-metadata-suffix"]
    assert found[0].message == "label attribute 'x-metadata' must not end in '-metadata'"
    assert rules("x-metadata-ref") == []  # only the end counts


@pytest.mark.parametrize("name", ["source", "source-ref"])
def test_reserved_rule_and_message(name: str) -> None:
    found = label_attribute_violations(name)
    assert [v.rule for v in found] == ["label-attribute-reserved"]
    assert found[0].message.startswith(f"label attribute {name!r} is reserved")
    assert rules("source-refs") == [] and rules("my-source") == []


@pytest.mark.parametrize("task_type", sorted(TASK_TYPES))
def test_ref_suffix_follows_the_task_type(task_type: str) -> None:
    tt = TASK_TYPES[task_type]
    if tt.writes_reference:
        found = label_attribute_violations("labels", task_type)
        assert [v.rule for v in found] == ["label-attribute-ref-required"]
        assert found[0].message == (
            f"label attribute 'labels' must end in '-ref': task type {task_type} writes a file reference"
        )
        assert rules("labels-ref", task_type) == []
    else:
        found = label_attribute_violations("labels-ref", task_type)
        assert [v.rule for v in found] == ["label-attribute-ref-forbidden"]
        assert found[0].message == (
            f"label attribute 'labels-ref' must not end in '-ref': task type {task_type} writes its label inline"
        )
        assert rules("labels", task_type) == []


def test_which_types_write_references() -> None:
    """The -ref list of the developer guide and API (ground-truth.md 3.2)."""
    by_reference = {name for name, tt in TASK_TYPES.items() if tt.writes_reference}
    assert by_reference == {
        "semantic-segmentation",
        "video-object-detection",
        "video-object-tracking",
        "point_cloud_object_tracking",
        "point_cloud_single_frame_semantic_segmentation",
    }


def test_task_type_may_be_given_with_prefix_or_object() -> None:
    assert rules("masks", "groundtruth/semantic-segmentation") == ["label-attribute-ref-required"]
    assert rules("masks", TASK_TYPES["semantic-segmentation"]) == ["label-attribute-ref-required"]
    with pytest.raises(UsageError, match="unknown task type 'nope'"):
        label_attribute_violations("masks", "nope")


def test_several_rules_at_once() -> None:
    assert rules("source_ref-metadata") == ["label-attribute-pattern", "label-attribute-metadata-suffix"]


def test_check_label_attribute_raises_the_first_rule_as_usage_error() -> None:
    with pytest.raises(LabelAttributeError) as info:
        check_label_attribute("x-metadata")
    err = info.value
    assert err.rule == "label-attribute-metadata-suffix"
    assert isinstance(err, UsageError) and err.exit_code == 2
    assert str(err) == "label attribute 'x-metadata' must not end in '-metadata' [label-attribute-metadata-suffix]"
    with pytest.raises(LabelAttributeError) as info:
        check_label_attribute("masks", "semantic-segmentation")
    assert info.value.rule == "label-attribute-ref-required"


def test_default_label_attribute_is_the_job_name_plus_ref_where_needed() -> None:
    assert default_label_attribute("dogs", "object-detection") == "dogs"
    assert default_label_attribute("streets", "semantic-segmentation") == "streets-ref"
    assert default_label_attribute("streets-ref", "semantic-segmentation") == "streets-ref"
    assert default_label_attribute("cars", "video-object-tracking") == "cars-ref"
    assert metadata_key("dogs") == "dogs-metadata"


# ---- input line rules ------------------------------------------------------------------------


def pairs(record: dict, line_chars: int = 10, value_chars: dict | None = None) -> list[tuple[str, str, str]]:
    return [(key, v.rule, v.message) for key, v in input_line_violations(record, line_chars, value_chars or {})]


def test_a_valid_input_line_has_no_violations() -> None:
    assert pairs({"source-ref": "s3://b/k.jpg", "page": "1"}) == []
    assert pairs({"source": "text"}) == []


def test_source_rule_both_and_neither() -> None:
    assert pairs({"source-ref": "s3://b/k", "source": "t"}) == [
        ("", "line-source", "line must hold exactly one of 'source-ref' and 'source' (it holds both)")
    ]
    assert pairs({"label": 1}) == [
        ("", "line-source", "line must hold exactly one of 'source-ref' and 'source' (it holds neither)")
    ]


def test_line_length_rule_at_the_limit() -> None:
    assert pairs({"source": "t"}, line_chars=MAX_LINE_CHARS) == []
    assert pairs({"source": "t"}, line_chars=MAX_LINE_CHARS + 1) == [
        ("", "line-too-long", "line has 100,001 characters; Ground Truth allows at most 100,000")
    ]


def test_attribute_length_rule_names_the_key() -> None:
    sizes = {"source": MAX_ATTRIBUTE_CHARS, "notes": MAX_ATTRIBUTE_CHARS + 5}
    assert pairs({"source": "t", "notes": "n"}, value_chars=sizes) == [
        ("notes", "attribute-too-long", "value has 20,005 characters; Ground Truth allows at most 20,000 per attribute")
    ]


def test_dollar_keys_rule() -> None:
    assert pairs({"source": "t", "$seq": 1, "a$": 2}) == [("$seq", "key-dollar", "key must not start with '$'")]


def test_every_rule_has_a_message_and_fills_its_fields() -> None:
    assert rule_message("line-json", detail="x") == "line is not a single JSON object: x"
    assert rule_message("line-utf8", detail="byte 3") == "line is not valid UTF-8: byte 3"
    assert rule_message("line-blank") == "blank line (skipped by jobs and passed through unchanged)"
    assert rule_message("duplicate-key") == "key appears more than once in the line"
    for rule, template in RULES.items():
        text = template.format(name="n", task_type="t", detail="d")
        assert text and "{" not in text.replace("{0,126}", ""), rule


def test_line_json_and_utf8_rules_come_from_the_line() -> None:
    with pytest.raises(ManifestError) as info:
        Line(7, b'{"source": "a"').record()
    assert info.value.rule == "line-json" and info.value.line == 7
    assert str(info.value).startswith("line 7: line is not a single JSON object:")
    with pytest.raises(ManifestError) as info:
        Line(3, b'{"source": "\xff"}').record()
    assert info.value.rule == "line-utf8" and "byte 12" in str(info.value)
    with pytest.raises(ManifestError) as info:
        Line(1, b"[1, 2]").record()
    assert info.value.rule == "line-json" and "found a JSON array, not an object" in str(info.value)
