"""Mistakes a new user makes, through the real CLI (a subprocess) and the public API: each ends
with one line naming the file, line or key and the rule, the exit code the README gives, and no
output file written for nothing."""

from __future__ import annotations

import contextlib
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.jobs_helpers import REPO
from totask_manifest._analytics.convert import convert
from totask_manifest._errors import ManifestError


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "totask_manifest", *args], capture_output=True, text=True,
                          timeout=180, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}, cwd=cwd)


def one_line_error(r: subprocess.CompletedProcess, command: str) -> str:
    assert "Traceback" not in r.stderr, r.stderr
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"totask-manifest {command}: error: "), r.stderr
    return lines[0]


def boxes_manifest(path: Path) -> Path:
    """Two lines labeled under ``boxes`` (object detection), one failed line."""
    meta = {"class-map": {"0": "cat"}, "objects": [{"confidence": 0.9}], "type": "groundtruth/object-detection",
            "human-annotated": "no", "creation-date": "2024-01-01T00:00:00.000000", "job-name": "labeling-job/j"}
    label = {"image_size": [{"width": 10, "height": 10, "depth": 3}],
             "annotations": [{"class_id": 0, "left": 1, "top": 1, "width": 3, "height": 3}]}
    failed = {"failure-reason": "nope", "failure-rule": "failed", "type": "groundtruth/object-detection",
              "human-annotated": "no", "creation-date": "2024-01-01T00:00:00.000000", "job-name": "labeling-job/j"}
    lines = [{"source-ref": "a.jpg", "boxes": label, "boxes-metadata": meta},
             {"source-ref": "b.jpg", "boxes": label, "boxes-metadata": meta},
             {"source-ref": "c.jpg", "boxes-metadata": failed}]
    path.write_bytes(b"".join(orjson.dumps(x) + b"\n" for x in lines))
    return path


@pytest.mark.parametrize(("to", "out"), [("coco", "c.json"), ("yolo", "y"), ("dm-schema-v1", "d.dm.jsonl"),
                                         ("synapse-objects", "o.objects.jsonl")])
def test_convert_of_a_misspelt_attribute_writes_nothing_and_says_so(tmp_path: Path, to: str, out: str) -> None:
    src = boxes_manifest(tmp_path / "in.manifest")
    with pytest.raises(ManifestError, match=r"no line holds a label under 'box'.*label attributes seen: boxes") as exc:
        convert(str(src), str(tmp_path / out), to=to, label_attribute="box")
    assert exc.value.rule == "convert-no-labels"
    assert not (tmp_path / out).exists()


@pytest.mark.parametrize(("option", "message"), [
    ({"label_attribute": "a b"}, r"label attribute 'a b' may hold only ASCII letters.*\[label-attribute-pattern\]"),
    ({"label_attribute": "boxes-metadata"}, r"must not end in '-metadata'"),
    ({"job_name": "my import"}, r"job name 'my import' must be 1 to 63 ASCII letters"),
])
def test_an_import_refuses_names_its_manifest_would_break_the_rules_with(tmp_path: Path, option: dict,
                                                                         message: str) -> None:
    """Importing COCO with ``--label-attribute 'a b'`` once wrote a manifest ``validate`` finds
    invalid on every line, and ``--job-name 'my import'`` a ``job-name`` no job could have."""
    from totask_manifest import UsageError

    src = boxes_manifest(tmp_path / "in.manifest")
    convert(str(src), str(tmp_path / "c.json"), to="coco", label_attribute="boxes")
    with pytest.raises(UsageError, match=message):
        convert(str(tmp_path / "c.json"), str(tmp_path / "back.manifest"), to="manifest", **option)
    assert not (tmp_path / "back.manifest").exists()


@pytest.mark.slow
def test_convert_cli_of_only_failed_lines_exits_1_without_an_empty_dataset(tmp_path: Path) -> None:
    src = boxes_manifest(tmp_path / "in.manifest")
    src.write_bytes(src.read_bytes().splitlines(keepends=True)[2])  # the failed line alone
    r = cli("convert", str(src), "c.json", "--to", "coco", "--label-attribute", "boxes", cwd=tmp_path)
    assert r.returncode == 1
    assert "no line holds a label under 'boxes'" in one_line_error(r, "convert")
    assert not (tmp_path / "c.json").exists()


@pytest.mark.slow
@pytest.mark.parametrize("command", ["stats", "validate"])
def test_stats_and_validate_of_a_misspelt_attribute_exit_1_naming_the_attributes_held(tmp_path: Path,
                                                                                     command: str) -> None:
    src = boxes_manifest(tmp_path / "in.manifest")
    r = cli(command, str(src), "--label-attribute", "box", "--format", "json", cwd=tmp_path)
    assert r.returncode == 1, r.stdout
    line = one_line_error(r, command)
    assert "no line holds 'box' or 'box-metadata' (label attributes seen: boxes)" in line, line
    assert line.endswith("[label-attribute-absent]") and r.stdout == ""  # no report that reads as a clean one
    ok = cli(command, str(src), "--label-attribute", "boxes", cwd=tmp_path)  # two labeled, one failed: a report
    assert ok.returncode == 0 and ok.stderr == "", ok.stderr


def test_a_misspelt_attribute_is_refused_from_python_as_from_the_cli(tmp_path: Path) -> None:
    """``manifest_stats(path, label_attributes=["box"])`` and ``evaluate_manifest(path, predicted="box")``
    returned a result of zeros (lines with metadata: 0; evaluated: 0) where the CLI exits 1 naming
    the attributes held: a script reading the result took the misspelt name for an empty one. They
    raise the ``ManifestError`` the CLI prints now, as ``validate_manifest`` does."""
    from totask_manifest import evaluate_manifest, manifest_stats, validate_manifest

    src = boxes_manifest(tmp_path / "in.manifest")
    calls = {"stats": lambda: manifest_stats(src, label_attributes=["boxes", "box"], workers=1),
             "evaluate --predicted": lambda: evaluate_manifest(src, predicted="box", reference="boxes", workers=1),
             "evaluate --reference": lambda: evaluate_manifest(src, predicted="boxes", reference="box", workers=1),
             "validate": lambda: validate_manifest(src, label_attribute="box", workers=1)}
    for name, call in calls.items():
        with pytest.raises(ManifestError) as exc:
            call()
        option = name.split()[-1] if name.startswith("evaluate") else "--label-attribute"
        assert exc.value.rule == "label-attribute-absent", name
        assert str(exc.value) == (f"{src}: no line holds 'box' or 'box-metadata' (label attributes seen: boxes); "
                                  f"check {option} [label-attribute-absent]"), name
    assert manifest_stats(src, label_attributes=["boxes"], workers=1).attributes["boxes"].lines == 3
    (tmp_path / "empty.manifest").write_bytes(b"\n")  # no data line: nothing to misspell a name against
    assert manifest_stats(tmp_path / "empty.manifest", label_attributes=["box"], workers=1).attributes["box"].lines == 0
    assert evaluate_manifest(tmp_path / "empty.manifest", predicted="box", reference="boxes", workers=1).evaluated == 0


@pytest.mark.parametrize("command", ["stats", "validate"])
@pytest.mark.parametrize("content", [b"", b"\n\n"], ids=["empty", "blank-lines"])
def test_an_empty_manifest_with_a_label_attribute_is_reported_not_called_misspelt(
        tmp_path: Path, capsys: pytest.CaptureFixture, command: str, content: bytes) -> None:
    """An empty file holds no attribute at all: "no line holds 'boxes' ... check --label-attribute"
    would blame a name that is right. ``stats`` reports it (0 lines, or blank lines), exit 0;
    ``validate`` refuses the file as a job does (``input-empty``, exit 1), the name unblamed."""
    from totask_manifest._cli import main

    src = tmp_path / "in.manifest"
    src.write_bytes(content)
    code = main([command, str(src), "--label-attribute", "boxes", "--workers", "1"])
    out, err = capsys.readouterr()
    if command == "stats":
        assert code == 0 and err == "" and str(src) in out  # the report, not an error blaming the name
    else:
        assert code == 1 and out == "" and "[input-empty]" in err and "label-attribute" not in err, err


@pytest.mark.slow
@pytest.mark.parametrize(("args", "start", "names"), [
    (["--bogus", "validate", "in.manifest"], "totask-manifest: error: unrecognized arguments before the command "
     "'validate': --bogus", "'totask-manifest --help'"),
    (["validate", "in.manifest", "--bogus"], "totask-manifest validate: error: unrecognized arguments: --bogus",
     "'totask-manifest validate --help'"),
    (["stats", "in.manifest", "--workers", "1", "--colour", "x"], "totask-manifest stats: error: unrecognized "
     "arguments: --colour x", "'totask-manifest stats --help'"),
], ids=["before-the-command", "after-it", "a-value-too"])
def test_an_unknown_flag_is_named_with_its_command_in_one_line(tmp_path: Path, args: list[str], start: str,
                                                                 names: str) -> None:
    """argparse said "totask-manifest: error: unrecognized arguments" under the top level's usage
    line, for a flag given to any command, naming neither the command nor where help is."""
    boxes_manifest(tmp_path / "in.manifest")
    r = cli(*args, cwd=tmp_path)
    assert r.returncode == 2 and r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(start) and names in lines[0], r.stderr


@pytest.mark.slow
def test_an_unknown_flag_to_chain_is_one_line_too(tmp_path: Path) -> None:
    """chain reads its method's flags once the job is read: argparse printed its 25-line usage."""
    from totask_manifest import JobConfig, annotate

    (tmp_path / "in.manifest").write_bytes(b'{"source-ref":"a.jpg","boxes":1,"boxes-metadata":{"type":"groundtruth/object-detection"}}\n')
    annotate(JobConfig(job_name="j", input=str(tmp_path / "in.manifest"), output_root=str(tmp_path / "out"),
                       label_attribute="boxes", task_type="object-detection", method="file",
                       options={"url_key": "annotation-ref"}))
    r = cli("chain", "out/j", "--job-name", "k", "--bogus", "1", cwd=tmp_path)
    assert r.returncode == 2
    assert one_line_error(r, "chain").endswith("unrecognized arguments: --bogus 1; see 'totask-manifest chain --help'")
    assert not (tmp_path / "out" / "k").exists()


FILE_JOB = ["--label-attribute", "boxes", "--task-type", "object-detection", "--method", "file",
            "--url-key", "annotation-ref"]


@pytest.mark.parametrize("content", [b"", b"\n \r\n\t\n"], ids=["empty", "blank-lines"])
def test_a_job_on_a_manifest_without_a_data_object_is_refused_before_it_exists(tmp_path: Path,
                                                                              content: bytes) -> None:
    from totask_manifest import InvalidInputError, JobConfig, annotate

    (tmp_path / "in.manifest").write_bytes(content)
    config = JobConfig(job_name="j", input=str(tmp_path / "in.manifest"), output_root=str(tmp_path / "out"),
                       label_attribute="boxes", task_type="object-detection", method="file",
                       options={"url_key": "annotation-ref"})
    with pytest.raises(InvalidInputError, match=r"in\.manifest holds no data object .*\[input-empty\]"):
        annotate(config)
    assert not (tmp_path / "out" / "j" / "job.json").exists()


def test_an_empty_input_with_empty_append_manifests_is_refused_naming_them_and_writing_nothing(tmp_path: Path) -> None:
    """With --append, the inputs were combined into the job folder first and the combined copy
    refused: the message named that internal file, and the refused job left its folder behind."""
    from totask_manifest import InvalidInputError, JobConfig, JobError, annotate

    (tmp_path / "in.manifest").write_bytes(b"")
    (tmp_path / "more.manifest").write_bytes(b"\n")
    config = JobConfig(job_name="j", input=str(tmp_path / "in.manifest"), output_root=str(tmp_path / "out"),
                       label_attribute="boxes", task_type="object-detection", method="file",
                       options={"url_key": "annotation-ref"}, append=[str(tmp_path / "more.manifest")])
    with pytest.raises(InvalidInputError, match=r"in\.manifest holds no data object .*more\.manifest.*\[input-empty\]"):
        annotate(config)
    assert not list((tmp_path / "out").rglob("*"))  # no job folder, no combined input left behind
    # one of them with a data object is enough
    (tmp_path / "more.manifest").write_bytes(b'{"source-ref":"a.jpg"}\n')
    with contextlib.suppress(JobError):  # the job starts (its line fails: no annotation-ref)
        annotate(config)
    assert (tmp_path / "out" / "j" / "job.json").exists()


def test_an_append_manifest_that_is_a_folder_is_named_by_its_flag(tmp_path: Path) -> None:
    """"is a folder, not a file: /data" named no flag, where ``--class-names`` and ``--model`` say
    theirs: now ``--append: is a folder, not a file: ...``, still a StorageError (exit 2), nothing written."""
    from totask_manifest import JobConfig, StorageError, annotate

    (tmp_path / "in.manifest").write_bytes(b'{"source-ref":"a.jpg"}\n')
    (tmp_path / "data").mkdir()
    config = JobConfig(job_name="j", input=str(tmp_path / "in.manifest"), output_root=str(tmp_path / "out"),
                       label_attribute="boxes", task_type="object-detection", method="file",
                       options={"url_key": "annotation-ref"}, append=[str(tmp_path / "data")])
    with pytest.raises(StorageError) as err:
        annotate(config)
    assert str(err.value) == f"--append: is a folder, not a file: {tmp_path / 'data'}"
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").rglob("*"))


@pytest.mark.slow
def test_chain_append_of_a_folder_names_the_flag_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The tester's command: ``chain out/JOB --job-name fa4 --append DIR``."""
    from tests.jobs_helpers import sample_job_args
    from totask_manifest._cli import main

    assert main(sample_job_args("fa3", tmp_path / "out")) == 0
    capsys.readouterr()
    assert main(["chain", str(tmp_path / "out" / "fa3"), "--job-name", "fa4", "--append", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.strip() == f"totask-manifest chain: error: --append: is a folder, not a file: {tmp_path}", err
    assert not (tmp_path / "out" / "fa4").exists()


@pytest.mark.parametrize("command", [
    ["annotate", "data", "--job-name", "j", "--task-type", "object-detection", "--method", "file", "--url-key", "a",
     "--output", "out"],
    ["validate", "data"], ["stats", "data"], ["labeled", "data", "--label-attribute", "a", "-o", "l.manifest"],
    ["convert", "data", "c.parquet", "--to", "parquet", "--from", "manifest"], ["validate", "FILE_URL"],
], ids=["annotate", "validate", "stats", "labeled", "convert", "file-url"])
def test_a_folder_given_as_the_input_manifest_is_named_by_its_role(
        tmp_path: Path, command: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """"is a folder, not a file: data" did not say which path it was, where ``--append`` names its
    flag: now ``input manifest: is a folder, not a file: data``, exit 2, nothing written."""
    from totask_manifest._cli import main

    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()
    given = (tmp_path / "data").as_uri() if command[1] == "FILE_URL" else "data"
    assert main([command[0], given, *command[2:]]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.strip() == f"totask-manifest {command[0]}: error: input manifest: is a folder, not a file: {given}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


@pytest.mark.slow
def test_annotate_cli_on_an_empty_manifest_exits_1_and_never_says_completed(tmp_path: Path) -> None:
    (tmp_path / "in.manifest").write_bytes(b"\n\n")
    r = cli("annotate", "in.manifest", "--job-name", "j", *FILE_JOB, "--output", "out", cwd=tmp_path)
    assert r.returncode == 1
    assert "holds no data object" in one_line_error(r, "annotate")
    assert "COMPLETED" not in r.stdout + r.stderr


def _held(lines: int) -> str:
    """What a file of no data object holds: an empty one no line ("0 lines, all blank" was said of
    nothing at all), else its blank lines."""
    return f"{lines} line{'' if lines == 1 else 's'}, all blank" if lines else "no line"


@pytest.mark.parametrize(("content", "lines"), [(b"", 0), (b"\xef\xbb\xbf", 1), (b"\n \r\n\t\n", 3)],
                         ids=["empty", "bom-only", "blank-lines"])
def test_validate_refuses_a_manifest_without_a_data_object_as_a_job_does(tmp_path: Path, content: bytes, lines: int,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    """``validate`` said "valid: 0 lines" (exit 0; blank lines with warnings) for the file every job
    refuses (``input-empty``): now the same words, rule and exit code 1, with or without --strict."""
    from totask_manifest import InvalidInputError, validate_manifest
    from totask_manifest._cli import main

    (tmp_path / "in.manifest").write_bytes(content)
    said = rf"manifest .*in\.manifest holds no data object \({_held(lines)}\); a job needs lines with source-ref or source \[input-empty\]"
    with pytest.raises(InvalidInputError, match=said):
        validate_manifest(str(tmp_path / "in.manifest"))
    for strict in ([], ["--strict"]):
        assert main(["validate", str(tmp_path / "in.manifest"), *strict]) == 1
        out, err = capsys.readouterr()
        assert "valid" not in out and re.search(said, err), (out, err)
    with pytest.raises(InvalidInputError, match=r"no line to check against schema 'seqlabel' \[input-empty\]"):
        validate_manifest(str(tmp_path / "in.manifest"), schema="seqlabel")


@pytest.mark.parametrize(("content", "lines"), [(b"", 0), (b"\xef\xbb\xbf", 1), (b"\n \r\n\t\n", 3)],
                         ids=["empty", "bom-only", "blank-lines"])
def test_convert_refuses_a_manifest_without_a_data_object_writing_nothing(tmp_path: Path, content: bytes, lines: int,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    """``convert --to parquet`` of such a file wrote a Parquet file of no row, exit 0, and the label
    exports blamed the attribute ("no label attribute of type ..."): now the words, rule and exit
    code 1 of a job and ``validate``, and no output file."""
    from totask_manifest import InvalidInputError
    from totask_manifest._cli import main

    src = tmp_path / "in.manifest"
    src.write_bytes(content)
    said = (rf"input manifest .*in\.manifest holds no data object \({_held(lines)}\); there is nothing "
            r"to convert, so nothing was written \[input-empty\]")
    for to, out in [("parquet", "p.parquet"), ("coco", "c.json"), ("yolo", "y"), ("dm-schema-v1", "d.dm.jsonl"),
                    ("synapse-objects", "o.objects.jsonl")]:
        with pytest.raises(InvalidInputError, match=said):
            convert(str(src), str(tmp_path / out), to=to)
        assert main(["convert", str(src), str(tmp_path / out), "--to", to]) == 1, to
        stdout, err = capsys.readouterr()
        assert stdout == "" and len(err.splitlines()) == 1 and re.search(said, err), (to, err)
        assert not (tmp_path / out).exists(), to
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.manifest"]  # no temporary left either


def test_validate_takes_a_data_object_among_blank_lines(tmp_path: Path) -> None:
    from totask_manifest import validate_manifest

    (tmp_path / "in.manifest").write_bytes(b'\xef\xbb\xbf\n{"source-ref":"a.jpg"}\n\n')
    report = validate_manifest(str(tmp_path / "in.manifest"))
    assert report.ok and report.lines == 3 and report.counts_by_rule == {"line-blank": 2}


@pytest.mark.slow
def test_validate_cli_on_an_empty_manifest_says_it_in_one_line_exit_1(tmp_path: Path) -> None:
    (tmp_path / "in.manifest").write_bytes(b"")
    r = cli("validate", "in.manifest", "--format", "json", cwd=tmp_path)
    assert r.returncode == 1 and r.stdout == "", r.stdout
    assert one_line_error(r, "validate").endswith(
        "manifest in.manifest holds no data object (no line); a job needs lines with source-ref or "
        "source [input-empty]")


def test_the_same_job_name_with_another_configuration_names_what_differs(tmp_path: Path) -> None:
    from totask_manifest import JobConfig, JobError, annotate

    (tmp_path / "in.manifest").write_bytes(b'{"source-ref":"a.jpg","boxes":1,"boxes-metadata":{"type":"groundtruth/object-detection"}}\n')  # nothing to label

    def config(**options: str) -> JobConfig:
        return JobConfig(job_name="j", input=str(tmp_path / "in.manifest"), output_root=str(tmp_path / "out"),
                         label_attribute="boxes", task_type="object-detection", method="file", options=options)

    assert annotate(config(url_key="annotation-ref")).status == "COMPLETED"
    with pytest.raises(JobError, match=r"another configuration \(differs in: options\.url_key\)") as exc:
        annotate(config(url_key="source-ref"))
    assert "source-ref" not in str(exc.value)  # keys only: an option's value may be a secret
    # the job is COMPLETED: nothing to resume (the advice was "resume it"), only another name
    assert "resume" not in str(exc.value) and str(exc.value).endswith("; choose another --job-name")


def test_a_job_is_not_started_among_the_files_of_a_folder_that_is_no_job(tmp_path: Path) -> None:
    """The job's files (job.json, manifests/, .lease/) were written among the user's own."""
    from totask_manifest import JobConfig, UsageError, annotate

    (tmp_path / "in.manifest").write_bytes(b'{"source-ref":"a.jpg","boxes":1,"boxes-metadata":{"type":"groundtruth/object-detection"}}\n')  # nothing to label

    def config(name: str) -> JobConfig:
        return JobConfig(job_name=name, input=str(tmp_path / "in.manifest"), output_root=str(tmp_path / "out"),
                         label_attribute="boxes", task_type="object-detection", method="file",
                         options={"url_key": "annotation-ref"})

    (tmp_path / "out" / "photos").mkdir(parents=True)
    (tmp_path / "out" / "photos" / "notes.txt").write_text("mine")
    with pytest.raises(UsageError, match=r"out/photos exists and is not a job folder \(it holds notes\.txt\)") as exc:
        annotate(config("photos"))
    assert exc.value.exit_code == 2
    assert sorted(p.name for p in (tmp_path / "out" / "photos").iterdir()) == ["notes.txt"]
    # an empty folder, and one a start killed before job.json left (only the job's own entries), are free
    (tmp_path / "out" / "empty").mkdir()
    assert annotate(config("empty")).status == "COMPLETED"
    (tmp_path / "out" / "half" / ".lease").mkdir(parents=True)
    (tmp_path / "out" / "half" / "manifests" / "intermediate").mkdir(parents=True)
    (tmp_path / "out" / "half" / ".tmp-abc").write_bytes(b"")
    assert annotate(config("half")).status == "COMPLETED"
    # a folder a file browser looked into (its .DS_Store / Thumbs.db) holds no data of the user's
    (tmp_path / "out" / "browsed").mkdir()
    (tmp_path / "out" / "browsed" / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (tmp_path / "out" / "browsed" / "Thumbs.db").write_bytes(b"\xd0\xcf")
    assert annotate(config("browsed")).status == "COMPLETED"
    # a job folder holding a report the user wrote into it is still that job: the same command reports it
    (tmp_path / "out" / "empty" / "report.html").write_text("<html></html>")
    assert annotate(config("empty")).status == "COMPLETED"


@pytest.mark.slow
def test_annotate_cli_into_a_folder_that_is_no_job_exits_2_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "in.manifest").write_bytes(b'{"source-ref":"a.jpg","boxes":1,"boxes-metadata":{"type":"groundtruth/object-detection"}}\n')
    (tmp_path / "out" / "j").mkdir(parents=True)
    (tmp_path / "out" / "j" / "data.csv").write_text("a,b\n")
    r = cli("annotate", "in.manifest", "--job-name", "j", *FILE_JOB, "--output", "out", cwd=tmp_path)
    assert r.returncode == 2
    assert "is not a job folder (it holds data.csv)" in one_line_error(r, "annotate")
    assert [p.name for p in (tmp_path / "out" / "j").iterdir()] == ["data.csv"]


@pytest.mark.parametrize("bad", [b'{"source-ref":"z.jpg","source":"x"}\n', b'{"source-ref":"z\xff.jpg"}\n'],
                         ids=["two-sources", "not-utf8"])
def test_a_bad_append_manifest_is_named_with_its_own_line_numbers_and_nothing_is_written(tmp_path: Path,
                                                                                         bad: bytes) -> None:
    from totask_manifest import InvalidInputError, JobConfig, annotate

    (tmp_path / "in.manifest").write_bytes(b'{"source-ref":"a.jpg"}\n{"source-ref":"b.jpg"}\n')
    (tmp_path / "more.manifest").write_bytes(b'{"source-ref":"c.jpg"}\n' + bad)
    config = JobConfig(job_name="j", input=str(tmp_path / "in.manifest"), output_root=str(tmp_path / "out"),
                       label_attribute="boxes", task_type="object-detection", method="file",
                       options={"url_key": "annotation-ref"}, append=[str(tmp_path / "more.manifest")])
    with pytest.raises(InvalidInputError, match=r"--append manifest \S*more\.manifest has 1 bad line:\n  line 2"):
        annotate(config)
    assert not (tmp_path / "out" / "j").exists()


def test_an_empty_input_with_appended_data_objects_is_a_job(tmp_path: Path) -> None:
    from totask_manifest import JobConfig, annotate

    (tmp_path / "in.manifest").write_bytes(b"")
    (tmp_path / "more.manifest").write_bytes(b'{"source-ref":"c.jpg","boxes":1,"boxes-metadata":{"type":"groundtruth/object-detection"}}\n')
    config = JobConfig(job_name="j", input=str(tmp_path / "in.manifest"), output_root=str(tmp_path / "out"),
                       label_attribute="boxes", task_type="object-detection", method="file",
                       options={"url_key": "annotation-ref"}, append=[str(tmp_path / "more.manifest")])
    assert annotate(config).status == "COMPLETED"


@pytest.mark.slow
def test_status_json_never_prints_a_password_in_a_model_endpoint_url(tmp_path: Path) -> None:
    (tmp_path / "in.manifest").write_bytes(b'{"source-ref":"a.jpg","boxes":1,"boxes-metadata":{"type":"groundtruth/object-detection"}}\n')  # nothing to label: no request
    model = "http://user:s3cr3tPW@127.0.0.1:1/predict?key=k3yQ"
    r = cli("annotate", "in.manifest", "--job-name", "j", "--label-attribute", "boxes", "--task-type",
            "object-detection", "--method", "inference", "--model", model, "--output", "out", cwd=tmp_path)
    # refused now (TOTASK_MODEL_AUTHORIZATION holds credentials); a job an older version stored so is still shown redacted
    assert r.returncode == 2 and "s3cr3tPW" not in r.stderr and "k3yQ" not in r.stderr, r.stderr
    r = cli("annotate", "in.manifest", "--job-name", "j", "--label-attribute", "boxes", "--task-type",
            "object-detection", "--method", "inference", "--model", "http://127.0.0.1:1/predict", "--output", "out",
            cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    job = orjson.loads((tmp_path / "out" / "j" / "job.json").read_bytes())
    job["config"]["options"]["model"] = model
    (tmp_path / "out" / "j" / "job.json").write_bytes(orjson.dumps(job))
    for fmt in ("json", "text"):
        r = cli("status", "out/j", "--format", fmt, cwd=tmp_path)
        assert r.returncode == 0 and "s3cr3tPW" not in r.stdout and "k3yQ" not in r.stdout, r.stdout
    assert "http://127.0.0.1:1/predict?…" in cli("status", "out/j", "--format", "json", cwd=tmp_path).stdout


def test_report_refuses_a_negative_sample_count_before_writing(tmp_path: Path) -> None:
    from totask_manifest import UsageError, write_report

    src = boxes_manifest(tmp_path / "in.manifest")
    job = tmp_path / "job" / "manifests" / "output"
    job.mkdir(parents=True)
    (job / "output.manifest").write_bytes(src.read_bytes())
    with pytest.raises(UsageError, match=r"--samples must be 0 or more \(got -3\)"):
        write_report(str(tmp_path / "job"), str(tmp_path / "r.html"), samples=-3)
    assert not (tmp_path / "r.html").exists()
    assert write_report(str(tmp_path / "job"), str(tmp_path / "r.html"), samples=0).samples == 0


@pytest.mark.parametrize("command", [["validate"], ["stats"], ["evaluate", "--predicted", "boxes", "--reference", "boxes"]])
@pytest.mark.parametrize("workers", ["0", "-3"])
def test_workers_below_one_is_refused_alike_by_every_command_that_takes_it(
        tmp_path: Path, capsys: pytest.CaptureFixture, command: list[str], workers: str) -> None:
    """``evaluate --workers 0`` once ran with one process per CPU where validate and stats exit 2;
    the line named ``workers`` (the Python API's keyword), not the flag the user typed."""
    from totask_manifest._cli import main

    src = boxes_manifest(tmp_path / "in.manifest")
    assert main([command[0], str(src), *command[1:], "--workers", workers]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == f"totask-manifest {command[0]}: error: --workers must be at least 1 (got {workers})\n"


@pytest.mark.parametrize("command", [["validate"], ["stats"], ["evaluate", "--predicted", "boxes", "--reference", "boxes"]])
def test_more_workers_than_four_a_cpu_is_refused_naming_the_cpus_and_the_most(
        tmp_path: Path, capsys: pytest.CaptureFixture, command: list[str]) -> None:
    """``validate --workers 64`` started 64 processes on a 2-CPU machine: each ``--workers`` is a
    process, so more than 4 a CPU is refused (exit 2) naming the CPU count and the largest value
    taken, before anything is read; that largest value itself still runs."""
    import os

    from totask_manifest import UsageError, validate_manifest
    from totask_manifest._cli import main

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    src = boxes_manifest(tmp_path / "in.manifest")
    assert main([command[0], str(src), *command[1:], "--workers", str(4 * cpus + 1)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (f"totask-manifest {command[0]}: error: --workers {4 * cpus + 1} is more than 4 processes "
                            f"a CPU ({cpus} CPU{'' if cpus == 1 else 's'} here): give at most {4 * cpus} (default: {cpus}, one a CPU)\n")
    main([command[0], str(src), *command[1:], "--workers", str(4 * cpus)])  # the most taken: not refused for it
    assert "--workers" not in capsys.readouterr().err
    with pytest.raises(UsageError, match=rf"^workers 64 is more than 4 processes a CPU .*give at most {4 * cpus} "):
        validate_manifest(str(src), workers=64) if cpus < 16 else pytest.skip("64 workers are taken here")


@pytest.mark.skipif(not hasattr(__import__("os"), "sched_setaffinity"), reason="no CPU affinity on this platform")
def test_the_workers_bound_counts_the_cpus_this_process_may_run_on(tmp_path: Path) -> None:
    """In a container (or under ``taskset``) limited to fewer CPUs than the host's, the bound and
    the default counted ``os.cpu_count()``, the host's: run on one CPU, ``--workers 5`` is refused
    (4 a CPU), naming 1 CPU, whatever the host has."""
    import os

    src = boxes_manifest(tmp_path / "in.manifest")
    one = min(os.sched_getaffinity(0))
    r = subprocess.run([sys.executable, "-m", "totask_manifest", "validate", str(src), "--workers", "5"],
                       capture_output=True, text=True, timeout=120, cwd=REPO,
                       preexec_fn=lambda: os.sched_setaffinity(0, {one}))
    assert r.returncode == 2 and r.stdout == "", (r.stdout, r.stderr)
    assert r.stderr == ("totask-manifest validate: error: --workers 5 is more than 4 processes a CPU (1 CPU here): "
                        "give at most 4 (default: 1, one a CPU)\n"), r.stderr


@pytest.mark.parametrize("args", [
    ["report", "", "-o", "r.html"], ["report", "JOB", "-o", ""], ["validate", ""], ["stats", ""], ["evaluate", ""],
    ["labeled", "", "--label-attribute", "boxes", "-o", "l.manifest"],
    ["labeled", "SRC", "--label-attribute", "boxes", "-o", " "], ["convert", "", "c.json", "--to", "coco"],
    ["convert", "SRC", "", "--to", "coco"], ["status", ""], ["resume", ""], ["chain", "", "--job-name", "c"],
    # a file, a folder or a model given empty: --class-names '' was no class names (exit 0), --allow-root ''
    # a job that failed for want of one
    ["annotate", "SRC", "--job-name", "e", "--label-attribute", "b", "--task-type", "object-detection",
     "--method", "file", "--class-names", "", "--output", "out"],
    ["annotate", "SRC", "--job-name", "e", "--label-attribute", "b", "--task-type", "object-detection",
     "--method", "file", "--allow-root", " ", "--output", "out"],
    ["annotate", "SRC", "--job-name", "e", "--label-attribute", "b", "--task-type", "object-detection",
     "--method", "inference", "--model", "", "--output", "out"],
    ["report", "JOB", "-o", "r.html", "--allow-root", ""], ["evaluate", "SRC", "--allow-root", ""],
])
def test_an_empty_path_is_refused_by_every_command_never_taken_for_the_current_folder(
        tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch, args: list[str]) -> None:
    """The README: an empty INPUT or output is exit 2, never the current folder. ``report '' -o r.html``
    run inside a job folder reported that folder (exit 0); ``convert IN ''`` said ``cannot write :
    Is a directory``, and ``status ''`` looked for ``/job.json`` at the root of the disk."""
    from totask_manifest._cli import main

    job = tmp_path / "job"
    (job / "manifests" / "output").mkdir(parents=True)
    src = boxes_manifest(job / "manifests" / "output" / "output.manifest")
    monkeypatch.chdir(job)  # the current folder is a job: '' taken for it would work
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    args = [{"JOB": str(job), "SRC": str(src)}.get(a, a) for a in args]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"totask-manifest {args[0]}: error: the "), err
    assert "is empty: give a path or URL" in err
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


@pytest.mark.parametrize("args", [
    ["report", "JOB", "-o", "out/"], ["labeled", "SRC", "--label-attribute", "boxes", "-o", "out/"],
    ["convert", "SRC", "out/", "--to", "coco"], ["convert", "SRC", "out/", "--to", "parquet"],
    ["convert", "SRC", "out/", "--to", "dm-schema-v1"],
])
def test_a_file_output_named_as_a_folder_is_refused_not_written_as_a_file(
        tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch, args: list[str]) -> None:
    """``report JOB -o reports/`` wrote a file named ``reports`` (the slash dropped), exit 0: the
    user asked for a folder, and the next ``mkdir reports`` failed on the page."""
    from totask_manifest._cli import main

    job = tmp_path / "job"
    (job / "manifests" / "output").mkdir(parents=True)
    src = boxes_manifest(job / "manifests" / "output" / "output.manifest")
    monkeypatch.chdir(tmp_path)
    args = [{"JOB": str(job), "SRC": str(src)}.get(a, a) for a in args]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"totask-manifest {args[0]}: error: "), err
    assert "cannot write out/: it ends in '/', a folder's name; give the file's name" in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("args", [
    ["validate", "SRC", "--label-attribute", "boxes-metadata"], ["stats", "SRC", "--label-attribute", "boxes-metadata"],
    ["evaluate", "SRC", "--predicted", "boxes-metadata", "--reference", "boxes"],
    ["evaluate", "SRC", "--predicted", "boxes", "--reference", "boxes-metadata"],
    ["convert", "SRC", "c.json", "--to", "coco", "--label-attribute", "boxes-metadata"],
    ["labeled", "SRC", "--label-attribute", "boxes-metadata", "-o", "l.manifest"],
])
def test_a_metadata_key_given_as_the_label_attribute_is_named_as_such(
        tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch, args: list[str]) -> None:
    """``--label-attribute boxes-metadata`` said "no line holds 'boxes-metadata'" (every line holds that
    key), and ``evaluate --predicted boxes-metadata`` printed a report of 3 unreadable lines: the
    name is the metadata key of ``boxes``, which no label attribute's name can be."""
    from totask_manifest._cli import main

    src = boxes_manifest(tmp_path / "in.manifest")
    monkeypatch.chdir(tmp_path)
    args = [str(src) if a == "SRC" else a for a in args]
    assert main(args) == 2
    captured = capsys.readouterr()
    flag = next(a for a in args if a.startswith("--") and args[args.index(a) + 1] == "boxes-metadata")
    assert captured.out == "" and captured.err.count("\n") == 1, captured
    assert (f"{flag} 'boxes-metadata' is the metadata key of 'boxes', not a label attribute: give {flag} boxes"
            in captured.err), captured.err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.manifest"]


@pytest.mark.parametrize("args", [
    ["validate", "SRC", "--label-attribute", "source-ref"], ["stats", "SRC", "--label-attribute", "source-ref"],
    ["evaluate", "SRC", "--predicted", "boxes", "--reference", "source"],
    ["labeled", "SRC", "--label-attribute", "source-ref", "-o", "l.manifest"],
])
def test_a_data_key_given_as_the_label_attribute_is_named_as_such(
        tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch, args: list[str]) -> None:
    """``stats --label-attribute source-ref`` said "no line holds 'source-ref'" (exit 1) when every
    line holds it, and ``validate`` reported each line's metadata missing: Ground Truth reserves
    ``source`` and ``source-ref`` for the object labeled (exit 2, one line, the rule named)."""
    from totask_manifest._cli import main

    src = boxes_manifest(tmp_path / "in.manifest")
    monkeypatch.chdir(tmp_path)
    args = [str(src) if a == "SRC" else a for a in args]
    assert main(args) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1, captured
    assert "is a line's data key (the object labeled), not a label attribute (label-attribute-reserved)" in captured.err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.manifest"]


@pytest.mark.parametrize("args", [["status", "URL/job"], ["validate", "URL/in.manifest"]])
def test_a_host_that_refuses_the_connection_is_named_with_the_url(
        capsys: pytest.CaptureFixture, args: list[str]) -> None:
    """aiohttp's connection errors are ``OSError``s: the S3 refusal branch of ``backend_errors``
    re-raised them bare, so ``status http://127.0.0.1:1/job`` said ``error: Connect call failed
    ('127.0.0.1', 1)``, naming no URL."""
    from totask_manifest._cli import main

    url = "http://127.0.0.1:1"  # nothing listens on port 1: the connection is refused at once
    assert main([a.replace("URL", url) for a in args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"cannot read {url}/" in err and "ClientConnectorError" in err, err


def test_a_file_given_as_a_yolo_folder_is_named_as_a_file(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """``convert coco.json x.manifest --to manifest --from yolo`` said "coco.json: no classes.txt,
    obj.names or data.yaml", as if a folder lacked its class names."""
    from totask_manifest._cli import main

    src = tmp_path / "coco.json"
    src.write_text('{"images": [], "annotations": [], "categories": []}')
    assert main(["convert", str(src), str(tmp_path / "x.manifest"), "--to", "manifest", "--from", "yolo"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{src} is a file; --from yolo reads a YOLO dataset folder" in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["coco.json"]


@pytest.mark.parametrize("args", [
    ["validate", "SRC", "--label-attribute", ""], ["stats", "SRC", "--label-attribute", " "],
    ["evaluate", "SRC", "--predicted", "", "--reference", "boxes"],
    ["convert", "SRC", "c.json", "--to", "coco", "--label-attribute", ""],
    ["labeled", "SRC", "--label-attribute", "", "-o", "l.manifest"],
])
def test_an_empty_label_attribute_is_a_usage_error(
        tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch, args: list[str]) -> None:
    """``--label-attribute ''`` (a shell variable left unset) said "no line holds '' or '-metadata'",
    exit 1, as if the data were at fault: the name is the mistake (exit 2), and nothing is read."""
    from totask_manifest._cli import main

    src = boxes_manifest(tmp_path / "in.manifest")
    monkeypatch.chdir(tmp_path)
    args = [str(src) if a == "SRC" else a for a in args]
    assert main(args) == 2
    captured = capsys.readouterr()
    flag = next(a for a in args if a.startswith("--") and not args[args.index(a) + 1].strip())
    assert captured.out == "" and captured.err.count("\n") == 1, captured
    assert f"{flag} is empty: give the label attribute's name" in captured.err, captured.err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.manifest"]


@pytest.mark.parametrize("command", [["labeled", "--label-attribute", "boxes", "-o"], ["convert", "--to", "parquet"]])
def test_an_output_under_a_file_names_the_file_in_the_way(
        tmp_path: Path, capsys: pytest.CaptureFixture, command: list[str]) -> None:
    """``-o notes.txt/train.manifest`` once said ``cannot write ...: File exists``, naming nothing."""
    from totask_manifest._cli import main

    src = boxes_manifest(tmp_path / "in.manifest")
    (tmp_path / "notes.txt").write_text("a file\n")
    out = tmp_path / "notes.txt" / "sub" / "out.x"
    args = [command[0], str(src), *command[1:], str(out)] if command[0] == "labeled" else [
        command[0], str(src), str(out), *command[1:]]
    assert main(args) == 2
    assert capsys.readouterr().err == (
        f"totask-manifest {command[0]}: error: cannot write {out}: {tmp_path / 'notes.txt'} is a file, not a folder\n")
    assert (tmp_path / "notes.txt").read_text() == "a file\n"


def test_an_output_under_a_dangling_link_names_the_link_not_its_folder(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """``-o data/out.manifest`` with ``data`` a link to a folder that is gone once said the
    folder holding the link "is a file, not a folder"."""
    from totask_manifest._cli import main

    src = boxes_manifest(tmp_path / "in.manifest")
    (tmp_path / "data").symlink_to(tmp_path / "gone")
    out = tmp_path / "data" / "out.manifest"
    assert main(["labeled", str(src), "--label-attribute", "boxes", "-o", str(out)]) == 2
    assert capsys.readouterr().err == (f"totask-manifest labeled: error: cannot write {out}: {tmp_path / 'data'} "
                                       f"is a link to {tmp_path / 'gone'}, which does not exist\n")
    assert not (tmp_path / "gone").exists()


@pytest.mark.parametrize("to", ["coco", "parquet", "yolo"])
def test_writing_to_a_read_only_url_scheme_is_a_storage_error(tmp_path: Path, to: str) -> None:
    from totask_manifest import StorageError

    src = boxes_manifest(tmp_path / "in.manifest")
    with pytest.raises(StorageError, match=r"cannot write http://127\.0\.0\.1:1/out\S*: the http filesystem is "
                                           r"read-only"):
        convert(str(src), "http://127.0.0.1:1/out", to=to)


@pytest.mark.slow
def test_labeled_to_an_https_url_exits_2_without_a_traceback(tmp_path: Path) -> None:
    src = boxes_manifest(tmp_path / "in.manifest")
    r = cli("labeled", str(src), "--label-attribute", "boxes", "-o", "https://127.0.0.1:1/l.manifest", cwd=tmp_path)
    assert r.returncode == 2
    assert "read-only" in one_line_error(r, "labeled")


def test_a_misspelt_option_key_in_the_python_api_is_refused_before_the_job_exists(tmp_path: Path) -> None:
    """``options={"allow_rot": ...}`` was kept in job.json and the job ran without an allowed root
    (every line failing ``allow-root-missing``); chain and clone check the options they are given."""
    from totask_manifest import JobConfig, UsageError, annotate, chain, clone

    src = tmp_path / "in.manifest"
    src.write_text('{"source":"a"}\n{"source":"b"}\n')

    def config(name: str, **options: Any) -> JobConfig:
        return JobConfig(job_name=name, input=str(src), output_root=str(tmp_path / "out"), label_attribute="cls",
                         task_type="image-classification", method="tests.support.toy_annotators:ToyClassifier",
                         options={"fail": "", **options})

    with pytest.raises(UsageError, match=r"unknown option 'allow_rot' for method 'tests\.support\.toy_annotators:"
                                         r"ToyClassifier'; its options: allow_hosts, allow_root, .*delay"):
        annotate(config("j", allow_rot=str(tmp_path)))
    assert not (tmp_path / "out" / "j").exists()
    job = annotate(config("j", allow_root=str(tmp_path), concurrency=4)).job_url  # tuning: any method's
    with pytest.raises(UsageError, match=r"unknown options 'dealy', 'fial'"):
        chain(job, "k", options={"dealy": 1, "fial": "x"})
    with pytest.raises(UsageError, match=r"unknown option 'dealy'"):
        clone(job, "k", options={"dealy": 1})
    assert not (tmp_path / "out" / "k").exists()
    assert chain(job, "k", options={"delay": 0.0}).status == "COMPLETED"


def test_a_method_that_is_no_annotator_is_named_under_its_command(capsys: pytest.CaptureFixture) -> None:
    from totask_manifest._cli import main

    assert main(["annotate", "in.manifest", "--job-name", "j", "--method", "os:system"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "totask-manifest annotate: error: method 'os:system': os:system is not an Annotator subclass"


def test_resume_names_a_wrong_tuning_value_even_on_a_completed_job(tmp_path: Path) -> None:
    from totask_manifest import JobConfig, UsageError, annotate, resume

    (tmp_path / "in.manifest").write_bytes(b'{"source-ref":"a.jpg","boxes":1,"boxes-metadata":{"type":"groundtruth/object-detection"}}\n')
    job = annotate(JobConfig(job_name="j", input=str(tmp_path / "in.manifest"), output_root=str(tmp_path / "out"),
                             label_attribute="boxes", task_type="object-detection", method="file",
                             options={"url_key": "annotation-ref"}))
    assert job.status == "COMPLETED"
    with pytest.raises(UsageError, match=r"--concurrency must be at least 1 \(got 0\)"):
        resume(job.job_url, options={"concurrency": 0})
    assert resume(job.job_url, options={"concurrency": 4}).status == "COMPLETED"


@pytest.mark.slow
def test_apply_where_every_task_failed_exits_1_and_rollback_says_its_summary_once(tmp_path: Path) -> None:
    from totask_manifest.testing.synapse_server import SynapseServer

    (tmp_path / "in.manifest").write_bytes(b'{"source-ref":"a.jpg","cls":1,"cls-metadata":{"class-name":"b",'
                                           b'"type":"groundtruth/image-classification","human-annotated":"no",'
                                           b'"creation-date":"2024-01-01T00:00:00.000000",'
                                           b'"job-name":"labeling-job/x"}}\n{"source-ref":"b.jpg"}\n')
    r = cli("annotate", "in.manifest", "--job-name", "j", "--label-attribute", "cls", "--task-type",
            "image-classification", "--method", "tests.support.toy_annotators:ToyClassifier", "--output", "out",
            cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    server = SynapseServer(tokens=("tok-1",)).start()
    try:
        env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "SYNAPSE_HOST": server.url,
               "SYNAPSE_ACCESS_TOKEN": "tok-1"}
        for extra in ([], ["--dry-run"]):
            r = subprocess.run([sys.executable, "-m", "totask_manifest", "apply", "out/j", *extra], capture_output=True,
                               text=True, timeout=180, env=env, cwd=tmp_path)
            assert r.returncode == 1, r.stdout + r.stderr
            assert "2 failed" in r.stdout  # neither line was exported from Synapse: said once, not per line
            assert "applied: 2 lines have no synapse.task_id (first: line 1)" in r.stderr
            assert "line 2" not in r.stdout + r.stderr
            assert "Traceback" not in r.stderr
        r = subprocess.run([sys.executable, "-m", "totask_manifest", "rollback", "out/j"], capture_output=True,
                           text=True, timeout=180, env=env, cwd=tmp_path)
        assert r.returncode == 0 and (r.stdout + r.stderr).count("rollback: nothing to restore") == 1, r.stdout + r.stderr
    finally:
        server.stop()


@pytest.mark.parametrize("status", [404, 501])
def test_a_model_endpoint_that_refuses_every_request_stops_the_job_early(tmp_path: Path, status: int) -> None:
    from aiohttp import web


    async def handler(request: web.Request) -> web.StreamResponse:
        return web.Response(status=status)  # a wrong --model URL: a file server, a typo in the path

    n = 200
    result, requests = _endpoint_job(tmp_path, handler, n)
    assert result.status == "FAILED"
    error = orjson.loads((tmp_path / "out" / "j" / "job.json").read_bytes())["error"]
    assert "failed with 'model-error'" in error and f"HTTP {status}" in error
    assert result.metrics["stand_by"] > 0 and requests < n  # it did not send every line


def test_a_model_endpoint_reporting_each_image_missing_fails_those_lines_only(tmp_path: Path) -> None:
    """``{"error": ...}`` in a prediction fails that image's line only (docs/inference.md): an
    endpoint that could not fetch the image (its text ``HTTP 404: Not Found``) reports data, not
    a wrong --model. It was read as the endpoint's own HTTP status (model-error, a configuration
    rule), so the job stopped after its first 32 lines as for a wrong --model URL."""
    from aiohttp import web


    async def handler(request: web.Request) -> web.StreamResponse:
        images = (await request.json())["images"]
        return web.json_response({"predictions": [{"error": "HTTP 404: Not Found"} for _ in images]})

    n = 40
    result, _ = _endpoint_job(tmp_path, handler, n)
    assert result.metrics["stand_by"] == 0 and result.metrics["failed"] == n  # every line tried
    out = (tmp_path / "out" / "j" / "manifests" / "output" / "output.manifest").read_bytes().splitlines()
    rules = {orjson.loads(line)["cls-metadata"]["failure-rule"] for line in out}
    assert rules == {"http-404"}, rules


@pytest.mark.parametrize("url", ["s3:/bucket/out", "s3:bucket/out", "memory:/x/out"])
def test_a_url_missing_a_slash_after_its_scheme_is_refused_not_written_locally(tmp_path: Path, url: str,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from totask_manifest import StorageError

    monkeypatch.chdir(tmp_path)
    src = boxes_manifest(tmp_path / "in.manifest")
    scheme = url.split(":", 1)[0]
    with pytest.raises(StorageError, match=rf"{scheme}:.* is not a {scheme}:// URL .*write {scheme}://"):
        convert(str(src), url + ".json", to="coco")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.manifest"]  # no local folder named 's3:'


@pytest.mark.slow
def test_annotate_cli_with_a_half_s3_url_writes_no_local_folder(tmp_path: Path) -> None:
    (tmp_path / "in.manifest").write_bytes(b'{"source-ref":"a.jpg"}\n')
    r = cli("annotate", "in.manifest", "--job-name", "j", *FILE_JOB, "--output", "s3:/bucket/out", cwd=tmp_path)
    assert r.returncode == 2
    assert "s3:/bucket/out is not a s3:// URL" in one_line_error(r, "annotate")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.manifest"]


def test_a_clone_or_chain_under_its_own_name_is_refused_and_the_same_clone_again_carries_on(tmp_path: Path) -> None:
    from totask_manifest import JobConfig, JobError, annotate, chain, clone

    (tmp_path / "in.manifest").write_bytes(b'{"source-ref":"a.jpg","boxes":1,"boxes-metadata":{"type":"groundtruth/object-detection"}}\n')
    job = annotate(JobConfig(job_name="j", input=str(tmp_path / "in.manifest"), output_root=str(tmp_path / "out"),
                             label_attribute="boxes", task_type="object-detection", method="file",
                             options={"url_key": "annotation-ref"}))
    # before: "already exists ... with another configuration (differs in: cloned_from)", of the job itself
    with pytest.raises(JobError, match=r"^job 'j' at .*/out/j is the job being cloned: --job-name names the new "
                                       r"job, written beside it; choose another --job-name$"):
        clone(job.job_url, "j")
    # chained under its own name, it listed every option of the new method as a difference
    with pytest.raises(JobError, match=r"^job 'j' at .*/out/j is the job being chained: .*choose another --job-name$"):
        chain(job.job_url, "j", method="file", options={"url_key": "other-ref"})
    assert clone(job.job_url, "k").status == "COMPLETED"
    assert clone(job.job_url, "k").status == "COMPLETED"  # the same command again: the clone, reported


def _gzip_manifest(path: Path) -> Path:
    import gzip

    raw = b"".join(b'{"source-ref":"s3://b/%d.jpg","n":%d}\n' % (i, i * 7919) for i in range(2000))
    path.write_bytes(gzip.compress(raw))
    return path


def test_a_gzip_compressed_manifest_is_refused_in_one_line_by_the_library(tmp_path: Path) -> None:
    """A gzip file read as it is made every line "not valid UTF-8" (a hint on line 1 only): it is
    refused before any line is read, rule ``input-gzip``, by the library as by the CLI."""
    from totask_manifest import JobConfig, annotate, manifest_stats, validate_manifest

    src = str(_gzip_manifest(tmp_path / "in.manifest.gz"))
    for call in (lambda: validate_manifest(src), lambda: manifest_stats(src),
                 lambda: annotate(JobConfig(job_name="j", input=src, output_root=str(tmp_path / "out"),
                                            label_attribute="boxes", task_type="object-detection", method="file",
                                            options={"url_key": "annotation-ref"}))):
        with pytest.raises(ManifestError, match=r"in\.manifest\.gz is gzip-compressed") as err:
            call()
        assert err.value.rule == "input-gzip"
        assert f"(gunzip -k {src})" in str(err.value)  # the path as given: the hint runs where the user is
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("command", [["validate"], ["stats"], ["convert", "--to", "parquet", "out.parquet"],
                                     ["annotate", "--job-name", "j", "--label-attribute", "boxes", "--task-type",
                                      "object-detection", "--method", "file", "--url-key", "annotation-ref",
                                      "--output", "out"]])
def test_a_gzip_compressed_manifest_is_refused_in_one_line_by_every_reader(tmp_path: Path, command: list[str]) -> None:
    """Named ``.manifest`` (no ``.gz`` to tell): one line saying it is gzip-compressed and how to
    decompress it, exit 1 (a data problem, as an invalid line is), nothing written."""
    _gzip_manifest(tmp_path / "in.manifest")
    name, *rest = command
    args = [name, "in.manifest", *rest] if name != "convert" else [name, "in.manifest", rest[-1], *rest[:-1]]
    r = cli(*args, cwd=tmp_path)
    line = one_line_error(r, name)
    assert r.returncode == 1
    assert "in.manifest is gzip-compressed" in line
    # the path as the command holds it (annotate makes it absolute): the hint runs where the user is
    assert re.search(r"\(gunzip -c (\S*/)?in\.manifest > plain-in\.manifest\)", line), line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.manifest"]


def _utf16_manifest(path: Path) -> Path:
    """What Windows PowerShell 5's ``>`` and Notepad's "Unicode" save: UTF-16 with its BOM."""
    text = "".join(f'{{"source-ref":"s3://b/{i}.jpg","n":{i * 7919}}}\n' for i in range(50))
    path.write_bytes(text.encode("utf-16"))
    return path


def test_a_utf16_manifest_is_refused_in_one_line_by_the_library(tmp_path: Path) -> None:
    """A UTF-16 file was read as UTF-8: ``validate`` listed every line ("line 1: not valid UTF-8:
    byte 0: invalid start byte", then "not a single JSON object" for each other line) with no word
    of the encoding. It is refused before any line is read, rule ``input-encoding``, naming what
    the file starts with and how to convert it."""
    from totask_manifest import JobConfig, annotate, manifest_stats, validate_manifest

    src = str(_utf16_manifest(tmp_path / "in.manifest"))
    (tmp_path / "be.manifest").write_bytes(b"\xfe\xff" + '{"source-ref":"s3://b/a.jpg"}\n'.encode("utf-16-be"))
    for call in (lambda: validate_manifest(src), lambda: manifest_stats(src),
                 lambda: validate_manifest(str(tmp_path / "be.manifest")),
                 lambda: annotate(JobConfig(job_name="j", input=src, output_root=str(tmp_path / "out"),
                                            label_attribute="boxes", task_type="object-detection", method="file",
                                            options={"url_key": "annotation-ref"}))):
        with pytest.raises(ManifestError, match=r"\.manifest is UTF-16 text \(it starts with the byte order mark "
                                                r"(FF FE|FE FF)\); manifests are UTF-8: convert it \(iconv") as err:
            call()
        assert err.value.rule == "input-encoding"
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("make", [_gzip_manifest, _utf16_manifest])
def test_a_gzip_or_utf16_manifest_is_refused_by_evaluate_and_as_an_append(tmp_path: Path, make: Any) -> None:
    """``evaluate`` looked for the attributes to compare first ("cannot tell the attributes to
    compare ... labeled attributes in the first 2000 lines: none", exit 2), and ``--append`` listed
    every line of such a file as not UTF-8 or not JSON: both now give the file's own refusal."""
    from totask_manifest import JobConfig, annotate, evaluate_manifest

    src = str(make(tmp_path / "more.manifest"))
    (tmp_path / "in.manifest").write_bytes(b'{"source-ref":"s3://b/a.jpg"}\n')
    expected = r"more\.manifest is (gzip-compressed|UTF-16 text)"
    with pytest.raises(ManifestError, match=expected) as err:
        evaluate_manifest(src)
    assert err.value.rule in ("input-gzip", "input-encoding")
    with pytest.raises(ManifestError, match=expected) as err:
        annotate(JobConfig(job_name="j", input=str(tmp_path / "in.manifest"), output_root=str(tmp_path / "out"),
                           label_attribute="boxes", task_type="object-detection", method="file",
                           options={"url_key": "annotation-ref"}, append=[src]))
    assert err.value.rule in ("input-gzip", "input-encoding")
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
@pytest.mark.parametrize("command", [["validate"], ["stats"], ["convert", "--to", "parquet", "out.parquet"],
                                     ["labeled", "--label-attribute", "boxes", "-o", "out.manifest"],
                                     ["annotate", "--job-name", "j", "--label-attribute", "boxes", "--task-type",
                                      "object-detection", "--method", "file", "--url-key", "annotation-ref",
                                      "--output", "out"]])
def test_a_utf16_manifest_is_refused_in_one_line_by_every_reader(tmp_path: Path, command: list[str]) -> None:
    """One line naming the file, its encoding and the iconv command, exit 1 (a data problem, as
    a gzip-compressed manifest is), nothing written."""
    _utf16_manifest(tmp_path / "in.manifest")
    name, *rest = command
    args = [name, "in.manifest", *rest] if name != "convert" else [name, "in.manifest", rest[-1], *rest[:-1]]
    r = cli(*args, cwd=tmp_path)
    line = one_line_error(r, name)
    assert r.returncode == 1
    assert ("in.manifest is UTF-16 text (it starts with the byte order mark FF FE); manifests are UTF-8: "
            "convert it (iconv -f UTF-16 -t UTF-8 in.manifest > utf8-in.manifest) and give the converted file "
            "[input-encoding]") in line, line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.manifest"]


def test_a_coco_annotation_of_an_image_not_in_images_is_refused_not_dropped(tmp_path: Path) -> None:
    from totask_manifest._formats.model import FormatError

    doc = {"images": [{"id": 1, "file_name": "a.jpg", "width": 10, "height": 10}],
           "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1]},
                           {"id": 2, "image_id": 7, "category_id": 1, "bbox": [0, 0, 2, 2]}],
           "categories": [{"id": 1, "name": "x"}]}
    (tmp_path / "c.json").write_bytes(orjson.dumps(doc))
    with pytest.raises(FormatError, match=r"annotations\[1\]\.image_id.*image_id 7 is not in 'images'"):
        convert(str(tmp_path / "c.json"), str(tmp_path / "c.manifest"), to="manifest")
    assert not (tmp_path / "c.manifest").exists()


def test_importing_a_dataset_without_images_writes_no_empty_manifest(tmp_path: Path) -> None:
    (tmp_path / "c.json").write_bytes(b'{"images": [], "annotations": [], "categories": []}')
    with pytest.raises(ManifestError, match=r"c\.json holds no images, so nothing was written") as exc:
        convert(str(tmp_path / "c.json"), str(tmp_path / "c.manifest"), to="manifest")
    assert exc.value.rule == "convert-no-images"
    (tmp_path / "yolo").mkdir()  # the wrong folder: no labels/, no images/
    (tmp_path / "names.txt").write_text("a\n")
    with pytest.raises(ManifestError, match=r"yolo holds no images, so nothing was written"):
        convert(str(tmp_path / "yolo"), str(tmp_path / "y.manifest"), to="manifest",
                class_names=str(tmp_path / "names.txt"))
    assert not (tmp_path / "c.manifest").exists() and not (tmp_path / "y.manifest").exists()
    (tmp_path / "e.dm.jsonl").write_bytes(b"\n")  # task data: an empty (or blank) file said "lines 0", exit 0
    with pytest.raises(ManifestError, match=r"e\.dm\.jsonl holds no images, so nothing was written"):
        convert(str(tmp_path / "e.dm.jsonl"), str(tmp_path / "e.manifest"), to="manifest")
    assert not (tmp_path / "e.manifest").exists()


def _endpoint_job(tmp_path: Path, handler: Any, n: int) -> tuple[Any, int]:
    """An image-classification inference job over ``n`` lines whose model endpoint is ``handler``
    on a 127.0.0.1 server (no retries, one image a request): its result, and the requests sent."""
    from tests.support.http_server import LocalHTTPServer
    from totask_manifest import JobConfig, annotate

    (tmp_path / "in.manifest").write_bytes(b"".join(b'{"source-ref":"s3://b/%d.jpg"}\n' % i for i in range(n)))
    (tmp_path / "names.txt").write_text("a\nb\n")
    with LocalHTTPServer(handler) as server:
        result = annotate(JobConfig(
            job_name="j", input=str(tmp_path / "in.manifest"), output_root=str(tmp_path / "out"),
            label_attribute="cls", task_type="image-classification", method="inference",
            options={"model": server.url("predict"), "class_names": str(tmp_path / "names.txt"), "retries": 0,
                     "batch_size": 1}))
        return result, sum(server.hits.values())


@pytest.mark.parametrize("to", ["coco", "yolo"])
def test_convert_without_label_attribute_on_a_manifest_with_no_boxes_exits_1(tmp_path: Path, to: str) -> None:
    """Nothing to convert is a data problem: exit 1 (``convert-no-labels``, as docs/analytics.md
    says), not 2 as for a mistyped option; one line that still says how to name one."""
    (tmp_path / "in.manifest").write_bytes(b'{"source-ref":"s3://b/a.jpg","animal":"cat"}\n')
    r = cli("convert", "in.manifest", "out", "--to", to, cwd=tmp_path)
    line = one_line_error(r, "convert")
    assert r.returncode == 1
    assert "no label attribute of type" in line and "--label-attribute" in line and "[convert-no-labels]" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.manifest"]


def _boxes_line(class_map: dict | None) -> bytes:
    meta = {"objects": [{"confidence": 0.9}], "type": "groundtruth/object-detection", "human-annotated": "no",
            "creation-date": "2024-01-01T00:00:00", "job-name": "j"}
    if class_map is not None:
        meta["class-map"] = class_map
    value = {"image_size": [{"width": 10, "height": 10, "depth": 3}],
             "annotations": [{"class_id": 0, "left": 1, "top": 1, "width": 2, "height": 2}]}
    return orjson.dumps({"source-ref": "s3://b/a.jpg", "boxes": value, "boxes-metadata": meta}) + b"\n"


@pytest.mark.parametrize("to", ["coco", "dm-schema-v1"])
@pytest.mark.parametrize(("class_map", "said"), [({"0": ""}, "class id 0 has an empty name in class-map"),
                                                 ({"1": "dog"}, "class-map names no class id 0")])
def test_an_export_with_an_empty_or_missing_class_name_says_so(tmp_path: Path, to: str, class_map: dict,
                                                               said: str) -> None:
    """An empty (or missing) name in a label's class-map said "pass class_names": the Python
    argument, and an export takes no class names at all (--class-names does not apply). It now
    says what is wrong with the label, exit 1, nothing written."""
    (tmp_path / "in.manifest").write_bytes(_boxes_line(class_map))
    r = cli("convert", "in.manifest", "out.json", "--to", to, cwd=tmp_path)
    line = one_line_error(r, "convert")
    assert r.returncode == 1 and said in line and "class_names" not in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.manifest"]


def test_a_class_id_without_a_name_names_the_cli_flag(tmp_path: Path) -> None:
    """Where no class-map names a class, the way to give the names is named as the CLI spells it
    (``--class-names FILE``), and as Python does."""
    from totask_manifest._formats.detect import to_label
    from totask_manifest._formats.model import FormatError

    # the names given, the id outside them: what the list holds, not "give the class names" (they were given)
    with pytest.raises(FormatError, match=r"class id 0 is outside the class names given \(ids 1\): a class the list "
                                          r"does not hold"):
        to_label("0 0.5 0.5 0.2 0.2", "yolo", "object-detection", image_size=(9, 9, 3), class_names={1: "dog"})
    with pytest.raises(FormatError, match=r"number their classes; give the class names \(--class-names FILE; "
                                          r"from Python, class_names"):
        to_label("0 0.5 0.5 0.2 0.2", "yolo", "object-detection", image_size=(9, 9, 3))


def test_workers_below_one_from_python_names_the_keyword(tmp_path: Path) -> None:
    """The Python API says ``workers`` (its keyword), the command line ``--workers`` (its flag)."""
    from totask_manifest import UsageError, validate_manifest

    with pytest.raises(UsageError, match=r"^workers must be at least 1 \(got 0\)$"):
        validate_manifest(str(boxes_manifest(tmp_path / "in.manifest")), workers=0)


@pytest.mark.parametrize(("to", "out", "holds"), [
    ("coco", "x.json", "COCO holds boxes and masks"), ("yolo", "y", "YOLO holds boxes"),
    ("dm-schema-v1", "t.dm.jsonl", "dm-schema-v1 holds object-detection, image-classification and"),
])
def test_convert_of_labels_of_a_type_the_format_cannot_hold_advises_no_flag(tmp_path: Path, to: str, out: str,
                                                                           holds: str) -> None:
    """A manifest of text classification labels only: the error advised ``--label-attribute``,
    and naming the attribute then failed ``COCO holds boxes and masks, not ...``. It says what the
    format holds and what the lines hold, and advises no flag that cannot help."""
    meta = {"class-name": "cat", "confidence": 0.9, "type": "groundtruth/text-classification",
            "human-annotated": "yes", "creation-date": "2024-01-01T00:00:00.000000", "job-name": "labeling-job/j"}
    (tmp_path / "in.manifest").write_bytes(orjson.dumps({"source": "a cat", "mood": 0, "mood-metadata": meta}) + b"\n")
    r = cli("convert", "in.manifest", out, "--to", to, cwd=tmp_path)
    line = one_line_error(r, "convert")
    assert r.returncode == 1
    assert f"{holds}" in line and "the first 2000 lines hold only mood (text-classification)" in line, line
    assert "--label-attribute" not in line and "[convert-no-labels]" in line, line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.manifest"]
