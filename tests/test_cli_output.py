"""What a person sees from the CLI: the live bar on a pseudo-terminal (records above it, rate and
time left, no internal step name), ``--version``, help texts, messages in JSON's words, and
``--append`` summaries."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest

from tests.jobs_helpers import TOY, write_manifest
from tests.support.terminal import run_on_terminal
from tests.support.toy_annotators import ToyClassifier, ToyOptions
from totask_manifest._options import option


def screen(raw: bytes) -> list[str]:
    """The lines a terminal shows for ``raw``: ``\\r`` returns, ``ESC[K`` erases to the end,
    ``\\n`` starts a new line (a small emulator, enough for a bar that redraws in place)."""
    lines: list[list[str]] = [[]]
    col = 0
    text = raw.decode("utf-8", "replace").replace("\r\n", "\n")
    i = 0
    while i < len(text):
        if text.startswith("\x1b[K", i):
            del lines[-1][col:]
            i += 3
            continue
        ch = text[i]
        if ch == "\r":
            col = 0
        elif ch == "\n":
            lines.append([])
            col = 0
        else:
            row = lines[-1]
            if col < len(row):
                row[col] = ch
            else:
                row.append(ch)
            col += 1
        i += 1
    return ["".join(r) for r in lines]



@pytest.mark.slow
def test_log_records_print_above_the_bar_and_the_bar_shows_rate_and_eta(tmp_path):
    inp = write_manifest(tmp_path / "in.manifest", 30)  # lines 4, 14 and 24 fail
    code, seen = run_on_terminal("annotate", str(inp), "--job-name", "tty", "--label-attribute", "cls",
                                 "--task-type", "image-classification", "--method", TOY,
                                 "--output", str(tmp_path / "out"), "--toy-delay", "0.02", env={"COLUMNS": "100"})
    assert code == 0
    shown = [line for line in screen(seen) if line.strip()]
    failures = [line for line in shown if "failed:" in line]
    assert len(failures) == 3
    for line in failures:  # each record on its own line, nothing of the bar glued to it
        assert re.fullmatch(r"\[task line \d+\] failed: cannot label s3://bucket/images/img\d+-bad\.jpg", line), line
    bars = [line for line in shown if "lines/s" in line]
    assert bars == [shown[-1]]  # one bar, below every record, redrawn in place
    assert re.fullmatch(r"\[#{30}\] 100\.0% 30/30  [\d,.]+ lines/s  ETA 0:00", shown[-1]), shown[-1]
    assert b"annotate_task_data" not in seen  # the step name is for Synapse's log lines, not people
    assert re.search(rb"ETA \d+:\d\d", seen)
    assert b"\r\x1b[K[" in seen  # redrawn in place: return, erase the line, draw
    assert b"Progress: " not in seen  # the log-line form is for pipes and files


@pytest.mark.slow
def test_messages_use_jsons_words(tmp_path):
    """Users write JSON: a message says null, number, string, object, array, never NoneType or int."""
    from tests.jobs_helpers import run_cli

    inp = tmp_path / "in.manifest"
    inp.write_bytes(b'{"source-ref":"s3://b/a.jpg","u":null}\n{"source-ref":"s3://b/b.jpg","u":7}\n'
                    b'{"source-ref":"s3://b/c.jpg","u":{"k":1}}\n')
    proc = run_cli("annotate", str(inp), "--job-name", "words", "--label-attribute", "boxes", "--task-type",
                   "object-detection", "--url-key", "u", "--output", str(tmp_path / "out"))
    reasons = [line for line in proc.stderr.splitlines() if "failed:" in line]
    assert reasons == ["[task line 1] failed: no URL: u is null", "[task line 2] failed: no URL: u is number",
                       "[task line 3] failed: no URL: u is object"]
    (tmp_path / "list.manifest").write_bytes(b'[1, 2]\n')
    proc = run_cli("validate", str(tmp_path / "list.manifest"))
    assert "found a JSON array, not an object" in proc.stdout
    from totask_manifest._formats import to_label
    from totask_manifest._formats.model import FormatError

    for doc, words in (({"image_size": [{"width": None, "height": 1}], "annotations": []}, "got null"),
                       ({"image_size": [{"width": 2, "height": 1}],
                         "annotations": [{"class_id": True, "left": 0, "top": 0, "width": 1, "height": 1}]},
                        "got true"),
                       ({"image_size": [{"width": 2, "height": 1}],
                         "annotations": [{"class_id": 0, "left": "3", "top": 0, "width": 1, "height": 1}]},
                        'got "3"')):
        try:
            to_label(doc, "groundtruth", "object-detection", class_names=["a"])
        except FormatError as exc:
            assert words in str(exc) and "None" not in str(exc) and "True" not in str(exc), exc
        else:
            raise AssertionError(doc)


def test_version_and_help_texts(capsys):

    from totask_manifest import __version__
    from totask_manifest._cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out == f"totask-manifest {__version__}\n"
    helps = {}
    for command in ("clone", "resume", "status", "chain", "annotate"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        helps[command] = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    assert "Clone a job (Ground Truth cloning)" in helps["clone"] and "use chain" in helps["clone"]
    assert "Resume a job that was stopped" in helps["resume"] and "checksum" in helps["resume"]
    assert "Print a job's status" in helps["status"] and "safe while the job runs" in helps["status"]
    # chain says what it really takes when an option is left out
    chain = helps["chain"]
    assert "(default: the previous job's method, with its options)" in chain and "(default: file)" not in chain
    assert "the previous job's attribute when it is STOPPED or FAILED" in chain
    assert "the new job's name when it is COMPLETED" in chain
    assert "(default: the job name, as Ground Truth)" not in chain
    assert "(default: file)" in helps["annotate"] and "(default: the job name, as Ground Truth)" in helps["annotate"]


@pytest.mark.parametrize(("argv", "message"), [
    (["annotate", "in.manifest", "--job-name", "j", "--task-type", "object-detection", "--output", "o",
      "--url-key", "k", "--model", "m.pt"], "--model is not an option of --method file"),
    (["annotate", "in.manifest", "--job-name", "j", "--task-type", "object-detection", "--output", "o",
      "--method", "inference", "--model", "m.pt", "--url-key", "k", "--native", "keep"],
     "--url-key, --native are not options of --method inference"),
    (["annotate", "in.manifest", "--job-name", "j", "--task-type", "object-detection", "--output", "o",
      "--url-key", "k", "--no-fp16"], "--no-fp16 is not an option of --method file"),
])
def test_a_flag_of_another_method_is_refused_not_dropped(argv, message, capsys):
    """``--method file --model m.pt`` once ran a file job as if --model had not been given."""
    from totask_manifest._cli import main

    assert main(argv) == 2
    assert capsys.readouterr().err == f"totask-manifest {argv[0]}: error: {message}\n"


@pytest.mark.parametrize("method", [["--meth", TOY], [f"--me={TOY}"], [f"--method={TOY}"]])
def test_a_plugin_named_with_an_abbreviated_method_flag_takes_its_own_flags(method, tmp_path, capsys):
    """argparse takes ``--meth`` for ``--method``, but the plugin's flags were added only for
    ``--method`` spelt out: ``--meth pkg:Cls --toy-fail x`` said "unrecognized arguments"."""
    from totask_manifest._cli import main

    src = write_manifest(tmp_path / "in.manifest", 2, bad_every=0)
    assert main(["annotate", str(src), "--job-name", "j", "--task-type", "image-classification", *method,
                 "--toy-fail", "zz", "--output", str(tmp_path / "out")]) == 0, capsys.readouterr().err
    assert '"fail":"zz"' in (tmp_path / "out" / "j" / "job.json").read_text().replace(" ", "")


def test_chain_sets_an_inherited_option_back_to_its_default_when_the_flag_gives_it(tmp_path, capsys):
    """``chain JOB --toy-fail bad`` (the option's default) after a job run with ``--toy-fail img``
    kept ``img``: chain took only the flags whose value differed from the default as given, so a
    flag setting an option back to its default (``--no-x`` of a yes/no option) was dropped."""
    from totask_manifest._cli import main

    src = write_manifest(tmp_path / "in.manifest", 4, bad_every=0)
    out = tmp_path / "out"
    assert main(["annotate", str(src), "--job-name", "a", "--label-attribute", "cls", "--task-type",
                 "image-classification", "--method", TOY, "--toy-fail", "img0001", "--output", str(out)]) == 0
    assert main(["chain", str(out / "a"), "--job-name", "b", "--label-attribute", "cls",
                 "--toy-fail", ToyOptions().fail]) == 0, capsys.readouterr().err
    job = orjson.loads((out / "b" / "job.json").read_bytes())
    assert job["config"]["options"]["fail"] == ToyOptions().fail


@dataclass(frozen=True)
class UrlToyOptions(ToyOptions):
    url: str | None = option(None, help="a plugin flag that is a prefix of the file method's --url-key")


class UrlToy(ToyClassifier):
    """A plugin whose flag (``--url``) argparse would take for an abbreviation of a built-in one."""

    Options = UrlToyOptions


def test_chain_reads_an_inherited_plugins_own_flag_even_where_it_prefixes_a_built_in_one(tmp_path, capsys):
    """``chain JOB --url X`` on a job of a plugin with ``--url``: the chain parser, not knowing the
    plugin yet, took ``--url`` for ``--url-key`` and refused it as the file method's flag."""
    from totask_manifest import JobConfig, annotate
    from totask_manifest._cli import main

    src = write_manifest(tmp_path / "in.manifest", 2, bad_every=0)
    job = annotate(JobConfig(job_name="j", input=str(src), output_root=str(tmp_path / "out"), label_attribute="cls",
                             task_type="image-classification", method=f"{__name__}:UrlToy",
                             options={"fail": "", "url": "http://a"})).job_url
    assert main(["chain", job, "--job-name", "k", "--url", "http://b", "--toy-f=x"]) == 0, capsys.readouterr().err
    options = orjson.loads((tmp_path / "out" / "k" / "job.json").read_bytes())["config"]["options"]
    assert (options["url"], options["fail"]) == ("http://b", "x")
    assert main(["chain", job, "--job-name", "m", "--url-key", "k"]) == 2  # the file method's flag: still refused
    assert "--url-key is not an option of --method" in capsys.readouterr().err


def test_chain_names_the_inherited_method_whose_flags_were_not_given(tmp_path, capsys):
    from totask_manifest import JobConfig, annotate
    from totask_manifest._cli import main

    src = write_manifest(tmp_path / "in.manifest", 2, bad_every=0)
    job = annotate(JobConfig(job_name="j", input=str(src), output_root=str(tmp_path / "out"), label_attribute="cls",
                             task_type="image-classification", method=TOY, options={"fail": ""})).job_url
    assert main(["chain", job, "--job-name", "k", "--model", "m.pt", "--batch-size", "4"]) == 2  # batch size: tuning
    assert capsys.readouterr().err == (
        f"totask-manifest chain: error: --model is not an option of --method {TOY} (the previous job's; "
        "--method changes it)\n")
    assert not (tmp_path / "out" / "k").exists()


def test_another_engines_flags_are_refused_not_dropped(tmp_path, capsys):
    """``--ray-actors 2`` without ``--engine ray`` once ran the job locally without a word."""
    from totask_manifest import JobConfig, annotate
    from totask_manifest._cli import main

    assert main(["annotate", "in.manifest", "--job-name", "j", "--task-type", "image-classification", "--output",
                 str(tmp_path / "out"), "--method", TOY, "--ray-actors", "2", "--ray-num-cpus", "1"]) == 2
    assert capsys.readouterr().err == ("totask-manifest annotate: error: --ray-num-cpus, --ray-actors are options "
                                       "of --engine ray; this job runs on --engine local\n")
    src = write_manifest(tmp_path / "in.manifest", 2, bad_every=0)
    job = annotate(JobConfig(job_name="j", input=str(src), output_root=str(tmp_path / "out"), label_attribute="cls",
                             task_type="image-classification", method=TOY, options={"fail": ""})).job_url
    assert main(["resume", job, "--ray-actors", "2"]) == 2  # the job's own engine is local
    assert capsys.readouterr().err == ("totask-manifest resume: error: --ray-actors is an option of --engine ray; "
                                       "this job runs on --engine local\n")


@pytest.mark.slow
def test_append_onto_itself_prints_one_line_and_appended_references_resolve_in_their_folder(tmp_path):
    """A manifest appended onto itself: one summary line, not one per duplicate. A manifest
    appended from another folder: its relative label references resolve in its own folder."""
    import json

    from tests.jobs_helpers import run_cli

    main_dir, other_dir = tmp_path / "main", tmp_path / "other"
    for folder, name in ((main_dir, "main"), (other_dir, "other")):
        (folder / "labels").mkdir(parents=True)
        for i in range(3):
            (folder / "labels" / f"{i}.json").write_text(json.dumps({"label": 1, "metadata": {"class-name": name}}))
    (main_dir / "in.manifest").write_text("".join(
        json.dumps({"source-ref": f"s3://b/main{i}.jpg", "u": f"labels/{i}.json"}) + "\n" for i in range(3)))
    (other_dir / "more.manifest").write_text("".join(
        json.dumps({"source-ref": f"s3://b/other{i}.jpg", "u": f"labels/{i}.json"}) + "\n" for i in range(3)))
    proc = run_cli("annotate", str(main_dir / "in.manifest"), "--job-name", "app", "--label-attribute", "cls",
                   "--task-type", "image-classification", "--url-key", "u", "--allow-root", str(tmp_path),
                   "--append", str(main_dir / "in.manifest"), "--append", str(other_dir / "more.manifest"),
                   "--output", str(tmp_path / "out"))
    assert proc.returncode == 0, proc.stderr
    appended = [line for line in proc.stderr.splitlines() if "duplicate" in line]
    assert appended == [f"appended 3 data objects; 3 duplicates skipped (first: {main_dir / 'in.manifest'} "
                        "line 1: 's3://b/main0.jpg')"]
    out = [json.loads(raw) for raw in (tmp_path / "out" / "app" / "manifests" / "output" / "output.manifest")
           .read_text().splitlines()]
    assert [(r["source-ref"], r["cls-metadata"]["class-name"]) for r in out] == [
        *((f"s3://b/main{i}.jpg", "main") for i in range(3)), *((f"s3://b/other{i}.jpg", "other") for i in range(3))]
    # a chained job (another method even) keeps resolving them where they were
    from totask_manifest import _api as api

    state = api.load_job(str(tmp_path / "out" / "app"))
    assert state["config"]["options"]["relative_to_appended"] == [[3, str(main_dir)], [3, str(other_dir)]]


def test_chained_and_cloned_jobs_keep_appended_folders(tmp_path):
    """A chain that appends again keeps the folders of what the first job appended; a clone
    recomputes them without doubling them."""
    import json

    from totask_manifest import _api as api
    from totask_manifest._jobs.config import JobConfig

    folders = {}
    for name in ("main", "one", "two"):
        folder = tmp_path / name
        (folder / "labels").mkdir(parents=True)
        (folder / "labels" / "0.json").write_text(json.dumps({"label": 1, "metadata": {"class-name": name}}))
        (folder / "m.manifest").write_text(json.dumps({"source-ref": f"s3://b/{name}.jpg", "u": "labels/0.json"})
                                           + "\n")
        folders[name] = folder
    first = api.annotate(JobConfig(job_name="first", input=str(folders["main"] / "m.manifest"),
                                   output_root=str(tmp_path / "out"), label_attribute="cls",
                                   task_type="image-classification", method="file",
                                   options={"url_key": "u", "allow_root": str(tmp_path)},
                                   append=[str(folders["one"] / "m.manifest")]))
    assert first.metrics["success"] == 2
    chained = api.chain(first.job_url, "second", label_attribute="again", append=[str(folders["two"] / "m.manifest")])
    out = [json.loads(raw) for raw in Path(chained.output_manifest).read_text().splitlines()]
    assert [r["again-metadata"]["class-name"] for r in out] == ["main", "one", "two"]
    cloned = api.clone(first.job_url, "third")
    options = api.load_job(cloned.job_url)["config"]["options"]
    assert options["relative_to_appended"] == [[1, str(folders["one"])]]


def test_bar_text_fits_its_terminal_and_tells_time_left():
    import io

    from totask_manifest._jobs.progress import Progress, eta_text

    assert (eta_text(None), eta_text(0), eta_text(65.4), eta_text(3725)) == ("--:--", "0:00", "1:05", "1:02:05")
    progress = Progress(1000, stream=io.StringIO())
    assert progress.bar_text(progress._start + 1.0).endswith("0.0% 0/1000  0.0 lines/s  ETA --:--")
    progress.done = 250
    text = progress.bar_text(progress._start + 10.0, width=100)
    assert text.endswith(" 25.0% 250/1000  25.0 lines/s  ETA 0:30") and len(text) < 100
    assert len(progress.bar_text(progress._start + 10.0, width=40)) <= 39


@pytest.mark.parametrize("written", [False, True])
def test_a_job_that_did_not_complete_names_only_the_files_it_wrote(tmp_path, written):
    """A job stopped by a full disk or a Ctrl-C may have written no output manifest and no
    failures file: the result names a path only when there is a file behind it."""
    import io

    from totask_manifest._cli._jobs import report
    from totask_manifest._jobs.config import JobResult

    output, failures = tmp_path / "output.manifest", tmp_path / "failures.jsonl"
    if written:
        output.write_bytes(b"{}\n")
        failures.write_bytes(b"{}\n")
    result = JobResult(job_url=str(tmp_path), status="FAILED", metrics={"total": 2, "failed": 1},
                       output_manifest=str(output), failures_url=str(failures))
    stream = io.StringIO()
    assert report(result, stream=stream) == 1
    text = stream.getvalue()
    assert (f"output manifest: {output}\n" in text) is written
    assert ("not written yet" in text) is not written
    assert (f"failures: {failures}" in text) is written


@pytest.mark.parametrize(("lines", "said"), [(1, "1 line, 1 to label"), (3, "3 lines, 3 to label")])
def test_a_jobs_start_line_counts_its_lines_in_words(tmp_path: Path, lines: int, said: str) -> None:
    """The line a job starts with said ``job j: 50 line(s), 50 to label``: a count takes its noun's
    number (``_errors.counted``), as report's and status's do."""
    from tests.jobs_helpers import run_cli, toy_job_args

    inp = write_manifest(tmp_path / "in.manifest", lines, bad_every=0)
    r = run_cli(*toy_job_args(inp, tmp_path / "out"))
    assert r.returncode == 0, r.stderr
    assert f"job j: {said} under 'cls' -> {tmp_path / 'out' / 'j'}" in r.stderr, r.stderr
