"""A path that is not valid UTF-8 (a folder named by a Latin-1 system, a mount of old files):
job.json holds text, so such a path could not be stored, and the job died writing job.json with a
traceback (``TypeError: str is not valid UTF-8: surrogates not allowed``). It is refused before
anything is written, exit 2, in one line naming the flag and the path as its bytes read. The CLI
in a subprocess, given the bytes as a shell gives them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from tests.jobs_helpers import REPO

pytestmark = pytest.mark.slow

SAMPLE = REPO / "sample_data"


def _annotate(tmp_path, *, manifest: bytes, output: bytes, class_names: bytes) -> subprocess.CompletedProcess:
    args = [
        b"annotate",
        manifest,
        b"--job-name",
        b"j",
        b"--label-attribute",
        b"boxes",
        b"--task-type",
        b"object-detection",
        b"--method",
        b"file",
        b"--url-key",
        b"annotation-ref",
        b"--class-names",
        class_names,
        b"--native",
        b"convert",
        b"--allow-root",
        os.fsencode(SAMPLE),
        b"--output",
        output,
    ]
    return subprocess.run(
        [sys.executable.encode(), b"-m", b"totask_manifest", *args],
        capture_output=True,
        timeout=120,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


@pytest.mark.parametrize("which", ["--output", "input manifest", "--class-names"])
def test_a_path_that_is_not_utf8_is_refused_in_one_line(tmp_path, which):
    odd = os.fsencode(tmp_path) + b"/caf\xe9"  # Latin-1, not UTF-8
    os.mkdir(odd)
    manifest, names = os.fsencode(SAMPLE / "manifest.jsonl"), os.fsencode(SAMPLE / "class_names.txt")
    output = os.fsencode(tmp_path / "out")
    if which == "input manifest":
        manifest = odd + b"/manifest.jsonl"
        shutil.copy(SAMPLE / "manifest.jsonl", os.fsdecode(manifest))
    elif which == "--class-names":
        names = odd + b"/class_names.txt"
        shutil.copy(SAMPLE / "class_names.txt", os.fsdecode(names))
    else:
        output = odd
    r = _annotate(tmp_path, manifest=manifest, output=output, class_names=names)
    err = r.stderr.decode("utf-8", "backslashreplace").strip()
    assert r.returncode == 2, err
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    assert which in err and "is not valid UTF-8" in err and "caf\\xe9" in err, err
    kept = {"--output": [], "input manifest": [b"manifest.jsonl"], "--class-names": [b"class_names.txt"]}
    assert os.listdir(odd) == kept[which]  # nothing written beside what was there
    assert not (tmp_path / "out").exists()


def _job_moved_under_an_odd_folder(tmp_path) -> bytes:
    """A job ``j`` labeled under ``tmp_path/out``, then moved to ``caf\\xe9/j`` (Latin-1, not UTF-8):
    a job folder cannot be made there, but one may be moved there. The odd folder, as bytes."""
    r = _annotate(
        tmp_path,
        manifest=os.fsencode(SAMPLE / "manifest.jsonl"),
        output=os.fsencode(tmp_path / "out"),
        class_names=os.fsencode(SAMPLE / "class_names.txt"),
    )
    assert r.returncode == 0, r.stderr
    odd = os.fsencode(tmp_path) + b"/caf\xe9"
    os.mkdir(odd)
    os.rename(tmp_path / "out" / "j", odd + b"/j")
    return odd


@pytest.mark.parametrize("command", ["resume", "clone"])
def test_a_job_folder_moved_under_a_path_that_is_not_utf8_is_refused_in_one_line(tmp_path, command):
    """A job folder may move (resume rewrites job.json with where it is now; a clone records the
    job it was cloned from, ``cloned-from``): not under a name job.json cannot hold. The clone died
    writing it, with a traceback (exit 1). Refused in one line, exit 2, the job as it was and
    nothing written."""
    odd = _job_moved_under_an_odd_folder(tmp_path)
    job_json = Path(os.fsdecode(odd + b"/j/job.json")).read_bytes()
    more = {"resume": [], "clone": [b"--job-name", b"k", b"--output", os.fsencode(tmp_path / "out2")]}[command]
    r = subprocess.run(
        [sys.executable.encode(), b"-m", b"totask_manifest", command.encode(), odd + b"/j", *more],
        capture_output=True,
        timeout=120,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    err = r.stderr.decode("utf-8", "backslashreplace").strip()
    assert r.returncode == 2 and "Traceback" not in err and len(err.splitlines()) == 1, err
    assert "job folder" in err and "caf\\xe9/j is not valid UTF-8" in err, err
    assert Path(os.fsdecode(odd + b"/j/job.json")).read_bytes() == job_json
    assert not (tmp_path / "out2").exists()


def test_report_of_a_job_folder_moved_under_a_path_that_is_not_utf8_names_it_by_its_escapes(tmp_path):
    """``report`` reads a job where it is found: the page names its folder and output manifest, and
    the page could not be encoded with the surrogate Python keeps for the byte (a traceback,
    ``UnicodeEncodeError``, exit 1, no page). The page and the line printed name the path
    ``caf\\xe9``, as every other output does, exit 0."""
    odd = _job_moved_under_an_odd_folder(tmp_path)
    r = _cli(b"report", b"caf\xe9/j", b"-o", b"caf\xe9/r.html", b"--samples", b"2", cwd=tmp_path)
    assert r.returncode == 0 and b"Traceback" not in r.stderr, r.stderr
    assert r.stdout.startswith(b"report: caf\\xe9/r.html (2 samples"), r.stdout
    page = Path(os.fsdecode(odd + b"/r.html")).read_bytes().decode("utf-8")  # strict: no raw 0xE9 byte
    assert f"{tmp_path}/caf\\xe9/j/manifests/output/output.manifest" in page
    assert "\\udce9" not in page


@pytest.mark.parametrize("flag", ["--output", "--class-names"])
def test_the_refusal_names_no_secret_of_a_url_that_is_not_utf8(tmp_path, flag):
    """A URL given with its password or signature and a name that is not UTF-8: the one line
    names the path's bytes, never the secret."""
    url = b"s3://AKIA:pw-s3cret@bucket/caf\xe9?X-Amz-Signature=sig-s3cret"
    given = {"--output": url, "--class-names": url + b"/names.txt"}
    r = _annotate(
        tmp_path,
        manifest=os.fsencode(SAMPLE / "manifest.jsonl"),
        output=given["--output"] if flag == "--output" else os.fsencode(tmp_path / "out"),
        class_names=given["--class-names"] if flag == "--class-names" else os.fsencode(SAMPLE / "class_names.txt"),
    )
    err = r.stderr.decode("utf-8", "backslashreplace").strip()
    assert r.returncode == 2 and len(err.splitlines()) == 1, err
    assert f"{flag} s3://bucket/caf\\xe9" in err and "is not valid UTF-8" in err, err
    assert "s3cret" not in err and "AKIA" not in err, err


def _cli(*args: bytes, cwd: Path) -> subprocess.CompletedProcess:
    """The CLI in a subprocess, given the arguments as bytes, as a shell gives a Latin-1 name."""
    return subprocess.run([sys.executable.encode(), b"-m", b"totask_manifest", *args], capture_output=True,
                          timeout=120, cwd=cwd, env={**os.environ, "PYTHONPATH": str(REPO), "LC_ALL": "C.UTF-8"})


@pytest.fixture
def odd_folder(tmp_path) -> bytes:
    """``caf\\xe9`` (Latin-1, not UTF-8) under tmp_path, relative: the commands name it as given,
    holding a manifest of two detection attributes (``machine`` and ``reviewed``)."""
    from tests.evaluate_helpers import write_detection_manifest

    os.mkdir(os.fsencode(tmp_path) + b"/caf\xe9")
    boxes = ([("cat", 10, 10, 50, 50, 0.9)], [("cat", 12, 10, 50, 50)])
    write_detection_manifest(Path(os.fsdecode(os.fsencode(tmp_path) + b"/caf\xe9/m.manifest")), [boxes, boxes])
    return b"caf\xe9"


#: each command that prints a JSON document naming its input, and what it names it under
JSON_COMMANDS = {
    "validate": ([b"validate", b"%s/m.manifest"], "url"),
    "stats": ([b"stats", b"%s/m.manifest"], "url"),
    "labeled": ([b"labeled", b"%s/m.manifest", b"--label-attribute", b"machine", b"-o", b"%s/l.manifest"], "source"),
    "evaluate": ([b"evaluate", b"%s/m.manifest", b"--predicted", b"machine", b"--reference", b"reviewed"],
                 "manifest"),
}


@pytest.mark.parametrize("command", sorted(JSON_COMMANDS))
def test_json_output_names_a_path_that_is_not_utf8_by_its_escapes(tmp_path, odd_folder, command):
    """orjson cannot write the surrogate Python keeps for the byte: each of these ended in a
    traceback (``str is not valid UTF-8``), ``labeled`` after writing its output. The document
    names the path as the errors do, ``caf\\xe9``, exit 0."""
    args, key = JSON_COMMANDS[command]
    r = _cli(*(a % odd_folder if b"%s" in a else a for a in args), b"--format", b"json", cwd=tmp_path)
    assert r.returncode == 0 and b"Traceback" not in r.stderr, r.stderr
    assert orjson.loads(r.stdout)[key] == "caf\\xe9/m.manifest"


def test_coco_description_names_a_path_that_is_not_utf8_by_its_escapes(tmp_path, odd_folder):
    """The COCO document's ``info.description`` names the input: its surrogate made the export
    end in a traceback, nothing written."""
    out = odd_folder + b"/x.coco.json"
    r = _cli(b"convert", odd_folder + b"/m.manifest", out, b"--to", b"coco", b"--label-attribute", b"machine",
             cwd=tmp_path)
    assert r.returncode == 0 and b"Traceback" not in r.stderr, r.stderr
    info = orjson.loads(Path(os.fsdecode(os.fsencode(tmp_path) + b"/" + out)).read_bytes())["info"]
    assert "from caf\\xe9/m.manifest (label attribute machine)" in info["description"], info


def test_validate_text_prints_a_path_that_is_not_utf8_by_its_escapes(tmp_path, odd_folder):
    """The text form wrote the raw byte 0xE9 (no character on a UTF-8 terminal): its escape now."""
    r = _cli(b"validate", odd_folder + b"/m.manifest", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(b"caf\\xe9/m.manifest: valid"), r.stdout


def test_an_error_on_stderr_names_a_path_that_is_not_utf8_by_its_escapes(tmp_path, odd_folder):
    """stderr's ``backslashreplace`` wrote the byte as ``\\udce9`` (Python's surrogate), where
    stdout and the documents write ``\\xe9``: one form on both streams."""
    r = _cli(b"validate", odd_folder + b"/missing.manifest", cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert b"caf\\xe9/missing.manifest" in r.stderr, r.stderr
    assert b"\\udce9" not in r.stderr, r.stderr


@pytest.mark.parametrize("args", [
    [b"validate", b"%s/m.manifest", b"%s/m.manifest"],
    [b"evaluate", b"%s/m.manifest", b"--page", b"%s/e.html"],
])
def test_a_usage_error_names_a_path_that_is_not_utf8_by_its_escapes(tmp_path, odd_folder, args):
    """argparse's own errors (an unrecognized argument) were printed before stderr's error handler
    went in, so they still wrote ``\\udce9``: the one form, ``\\xe9``, from the first line printed."""
    r = _cli(*(a % odd_folder if b"%s" in a else a for a in args), cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert b"unrecognized arguments: " in r.stderr and b"caf\\xe9/" in r.stderr, r.stderr
    assert b"\\udce9" not in r.stderr, r.stderr


@pytest.mark.parametrize(("args", "said"), [
    ([b"validate", b"m.manifest", b"--workers", b"caf\xe9"], "argument --workers: invalid int value: 'caf\\xe9'"),
    ([b"caf\xe9"], "argument COMMAND: invalid choice: 'caf\\xe9' (choose from"),
    ([b"convert", b"a", b"b", b"--to", b"\\\xe9"], "argument --to: invalid choice: '\\\\\\xe9' (choose from"),
    ([b"convert", b"a", b"b", b"--to", b"caf\\udce9"], "argument --to: invalid choice: 'caf\\\\udce9' (choose from"),
    ([b"labeled", b"m.manifest", b"-o", b"a", b"-o", b"caf\xe9"], "--output given twice (a, caf\\xe9)"),  # not repr'd
])
def test_an_argparse_refusal_names_a_value_that_is_not_utf8_by_its_escapes(tmp_path, args, said):
    """argparse quotes a value it refuses with ``repr``, which wrote the surrogate Python keeps the
    byte as: ``--workers $'caf\\xe9'`` said ``invalid int value: 'caf\\udce9'``, a character no one
    typed, where every other line says ``caf\\xe9``. One line, exit 2, the byte as ``\\xe9``; a
    backslash typed before it, or the text ``\\udce9`` typed as such, stays as ``repr`` shows it."""
    r = _cli(*args, cwd=tmp_path)
    err = r.stderr.decode("utf-8", "backslashreplace").strip()
    assert r.returncode == 2 and "Traceback" not in err and len(err.splitlines()) == 1, err
    assert said in err, err
    assert err.endswith("--help'"), err


#: each command taking a name or key, and its arguments with the name flag's value as ``%s``
NAME_FLAGS = {
    "stats": [b"stats", b"caf\xe9/m.manifest", b"--label-attribute", b"%s"],
    "validate": [b"validate", b"caf\xe9/m.manifest", b"--label-attribute", b"%s"],
    "validate --schema": [b"validate", b"caf\xe9/m.manifest", b"--schema", b"%s"],
    "labeled": [b"labeled", b"caf\xe9/m.manifest", b"--label-attribute", b"%s", b"-o", b"l.manifest"],
    "evaluate": [b"evaluate", b"caf\xe9/m.manifest", b"--predicted", b"machine", b"--reference", b"%s"],
    "convert": [b"convert", b"caf\xe9/m.manifest", b"x.coco.json", b"--to", b"coco", b"--label-attribute", b"%s"],
    "annotate": [b"annotate", b"caf\xe9/m.manifest", b"--job-name", b"%s", b"--task-type", b"object-detection",
                 b"--output", b"out"],
    "annotate --url-key": [b"annotate", b"caf\xe9/m.manifest", b"--job-name", b"j", b"--task-type",
                           b"object-detection", b"--url-key", b"%s", b"--output", b"out"],
    # a label attribute, a device, a host, a method: the path's refusal, 'x\udce9', or --allow-hosts before
    **{f"annotate {flag.decode()}": [b"annotate", b"caf\xe9/m.manifest", b"--job-name", b"j", b"--task-type",
                                     b"object-detection", b"--url-key", b"annotation-ref", b"--output", b"out", flag, b"%s"]
       for flag in (b"--file-label-attribute", b"--device", b"--allow-host", b"--method", b"--converter")},
    "annotate --ray-address": [b"annotate", b"caf\xe9/m.manifest", b"--job-name", b"j", b"--task-type",
                               b"object-detection", b"--engine", b"ray", b"--ray-address", b"%s", b"--output", b"out"],
    "resume --device": [b"resume", b"caf\xe9/job", b"--device", b"%s"],
    "report --allow-host": [b"report", b"caf\xe9/job", b"--allow-host", b"%s", b"-o", b"r.html"],
    "evaluate --allow-host": [b"evaluate", b"caf\xe9/m.manifest", b"--predicted", b"a", b"--reference", b"b",
                              b"--allow-host", b"%s"],
}


@pytest.mark.parametrize("command", sorted(NAME_FLAGS))
def test_a_name_that_is_not_utf8_is_refused_in_one_line(tmp_path, odd_folder, command):
    """A label attribute (or job name, key, schema) holding a byte that is not valid UTF-8 cannot be
    written as JSON text: ``stats`` ended in a traceback (``UnicodeEncodeError``, exit 1), the others
    named it ``'x\\udce9'``. Every command refuses it in one line naming the flag, exit 2, nothing written."""
    args = [a % b"x\xe9" if b"%s" in a else a for a in NAME_FLAGS[command]]
    flag = args[args.index(b"x\xe9") - 1].decode()
    r = _cli(*args, cwd=tmp_path)
    err = r.stderr.decode("utf-8", "backslashreplace").strip()
    assert r.returncode == 2 and "Traceback" not in err and len(err.splitlines()) == 1, err
    assert f"{flag} x\\xe9 is not valid UTF-8" in err, err
    assert sorted(os.listdir(tmp_path)) == [b"caf\xe9".decode("utf-8", "surrogateescape")]
