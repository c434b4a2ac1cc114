"""Parameter and class-name files in YAML and JSON: a key written twice is refused (in YAML with
its line), never silently reduced to its last value (PyYAML's and every JSON reader's own
behaviour)."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
import yaml

from tests.jobs_helpers import annotate_sample_with_class_names, run_cli
from totask_manifest._errors import yaml_error_text
from totask_manifest._yaml import DuplicateKeyError, load_json, load_yaml


def test_a_key_written_twice_is_refused_with_both_lines() -> None:
    text = "name: a\nproject: 1\nname: b\n"
    assert yaml.safe_load(text) == {"name": "b", "project": 1}  # what PyYAML alone does: 'a' is gone
    with pytest.raises(yaml.YAMLError) as caught:
        load_yaml(text)
    assert yaml_error_text(caught.value).startswith("line 3, column 1: the key 'name' appears twice (first on line 1)")


def test_a_nested_mapping_is_checked_too() -> None:
    with pytest.raises(yaml.YAMLError, match="the key 'threshold' appears twice"):
        load_yaml("pre_processor_params:\n  threshold: 0.5\n  iou: 0.4\n  threshold: 0.9\n")


def test_a_merge_may_be_overridden_and_equal_keys_in_different_mappings_are_fine() -> None:
    text = "base: &b {threshold: 0.5, iou: 0.4}\nmodel:\n  <<: *b\n  threshold: 0.9\nother: {threshold: 0.1}\n"
    assert load_yaml(text) == yaml.safe_load(text)
    assert load_yaml(text)["model"] == {"threshold": 0.9, "iou": 0.4}


def test_what_the_safe_loader_reads_is_read_the_same() -> None:
    text = "a: [1, 2.5, null, true]\nb: {c: 'x', 1: y}\nd: 2026-01-01\n"
    assert load_yaml(text) == yaml.safe_load(text)
    with pytest.raises(yaml.YAMLError):  # and what it refuses stays refused (no arbitrary objects)
        load_yaml("a: !!python/object/apply:os.system ['true']\n")


@pytest.mark.parametrize(("name", "text", "said"), [
    ("params.yaml", "name: Boxes\nproject: 1\nagent: 1\nmethod: file\nproject: 2\n",
     "line 5, column 1: the key 'project' appears twice (first on line 2)"),
    # before: JSON kept project 2 without a word (orjson, as every JSON reader, keeps the last)
    ("params.json", '{"name": "Boxes", "project": 1, "agent": 1, "method": "file", "project": 2}',
     "params.json is not valid JSON: the key 'project' appears twice"),
])
def test_run_with_a_parameter_written_twice_says_which(tmp_path: Path, name: str, text: str, said: str) -> None:
    params = tmp_path / name
    params.write_text(text)
    r = run_cli("run", str(params), "--output", str(tmp_path / "runs"))
    assert r.returncode == 2, r.stderr
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert said in lines[0], lines[0]
    assert not (tmp_path / "runs").exists()


def test_class_names_with_an_id_written_twice_are_refused(tmp_path: Path) -> None:
    names = tmp_path / "data.yaml"
    names.write_text("names:\n  0: cat\n  1: dog\n  0: bird\n")
    r = annotate_sample_with_class_names(names, tmp_path / "out")
    assert r.returncode == 2, r.stderr
    # before: class 0 was 'bird' and 'cat' was gone without a word
    assert "the key 0 appears twice (first on line 2)" in r.stderr, r.stderr
    assert not (tmp_path / "out").exists()


def test_a_json_key_written_twice_is_refused_at_any_depth() -> None:
    with pytest.raises(DuplicateKeyError, match=r"the key 'project' appears twice in one object"):
        load_json(b'{"project": 1, "name": "x", "project": 2}')
    with pytest.raises(DuplicateKeyError, match=r"the key 'confidence_threshold' appears twice"):
        load_json(b'{"post_processing": {"confidence_threshold": 0.3, "confidence_threshold": 0.9}}')
    assert load_json(b'{"a": {"k": 1}, "b": {"k": 2}}') == {"a": {"k": 1}, "b": {"k": 2}}  # in two objects: fine


def test_json_is_read_as_orjson_reads_it() -> None:
    data = b'{"a": [1, 2.5, null, true, "\\u00e9"], "b": {"c": -1e-05}, "d": 12345678901234567890}'
    assert load_json(data) == orjson.loads(data)
    for refused in (b'{"a": NaN}', b'{"a": Infinity}', b'{"a": 1', b'\xff{}'):
        with pytest.raises(orjson.JSONDecodeError):
            orjson.loads(refused)
        with pytest.raises(ValueError):  # refused by both
            load_json(refused)


def test_model_params_json_with_a_key_written_twice_is_refused(tmp_path: Path) -> None:
    from totask_manifest._errors import UsageError
    from totask_manifest._models.params import load_params_file

    params = tmp_path / "p.json"
    params.write_text('{"post_processing": {"confidence_threshold": 0.3, "confidence_threshold": 0.9}}')
    with pytest.raises(UsageError, match=r"--params \S*p\.json: not valid JSON: the key 'confidence_threshold' "
                       r"appears twice") as exc:
        load_params_file(str(params))
    assert exc.value.exit_code == 2


@pytest.mark.parametrize("body", ["[" * 100_000 + "]" * 100_000, '{"a": ' + "[" * 100_000 + "]" * 100_000 + "}"])
def test_a_json_file_nested_too_deeply_is_refused_as_not_valid_json(tmp_path: Path, body: str) -> None:
    """orjson refused it at depth 1024 (a JSONDecodeError, which --params reports); ``json`` raises
    RecursionError, which escaped --params' handling as a traceback."""
    from totask_manifest._errors import UsageError
    from totask_manifest._models.params import load_params_file

    with pytest.raises(ValueError, match="depth limit exceeded"):
        load_json(body.encode())
    params = tmp_path / "params.json"
    params.write_text(body)
    with pytest.raises(UsageError, match=r"--params .*params.json: not valid JSON: depth limit exceeded"):
        load_params_file(str(params))


def test_a_yaml_file_nested_too_deeply_is_refused_as_not_valid_yaml(tmp_path: Path) -> None:
    """PyYAML's composer recurses once a level: a deep document raised RecursionError, which
    --params, run PARAMS.yaml and a class-name file's handling (all catch ``yaml.YAMLError``)
    let through as a traceback."""
    from totask_manifest._errors import UsageError
    from totask_manifest._models.params import load_params_file

    params = tmp_path / "params.yaml"
    params.write_text("a: " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(UsageError, match=r"--params .*params.yaml: not valid YAML: depth limit exceeded") as exc:
        load_params_file(str(params))
    assert exc.value.exit_code == 2
