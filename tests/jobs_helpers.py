"""Shared helpers for the job tests: build manifests, run the CLI in a subprocess, compare
outputs line by line ignoring only ``creation-date``."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO

import orjson

REPO = Path(__file__).resolve().parents[1]
TOY = "tests.support.toy_annotators:ToyClassifier"


def closed_port() -> int:
    """A port on 127.0.0.1 where nothing listens once this returns: connections are refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_manifest(path: Path, n: int, *, bad_every: int = 10, prelabeled_every: int = 0, crlf_at: int = 5) -> Path:
    """Lines with numbers whose text form must survive (floats, exponents, escapes)."""
    out = bytearray()
    for i in range(n):
        src = f"s3://bucket/images/img{i:05d}{'-bad' if bad_every and i % bad_every == 3 else ''}.jpg"
        body = (
            b'{"source-ref":' + orjson.dumps(src) + b',"x":164.60000000000002,"e":1e-05,"big":12345678901234567890,'
            b'"t":"caf\\u00e9 \\u0027q\\u0027"'
        )
        if prelabeled_every and i % prelabeled_every == 0:
            body += (
                b',"cls":2,"cls-metadata":{"class-name":"bird","confidence":0.9,'
                b'"type":"groundtruth/image-classification","job-name":"labeling-job/human",'
                b'"human-annotated":"yes","creation-date":"2020-01-01T00:00:00.000000"}'
            )
        body += b"}"
        out += body + (b"\r\n" if i == crlf_at else b"\n")
    path.write_bytes(bytes(out))
    return path


def toy_job_args(inp: Path | str, out: Path | str, *extra: str, job: str = "j") -> list[str]:
    """``annotate`` of the toy classifier (attribute ``cls``) over ``inp`` into ``out``."""
    return ["annotate", str(inp), "--job-name", job, "--label-attribute", "cls", "--task-type",
            "image-classification", "--method", TOY, "--output", str(out), *extra]


def plugin_job_argv(folder: Path, module: str, plugin: str, *method: str) -> list[str]:
    """``annotate`` (attribute ``cls``, image classification) of three lines, each naming a label
    file ``l<i>.json`` beside it, with the plugin ``module`` (its text ``plugin``) written into
    ``folder``, the job ``j`` under ``folder/out``; run with ``folder`` on ``PYTHONPATH``."""
    (folder / f"{module}.py").write_text(plugin)
    rows = []
    for i in range(3):
        (folder / f"l{i}.json").write_text('{"x": 1}')
        rows.append(orjson.dumps({"source-ref": f"s3://b/{i}.jpg", "label-ref": f"l{i}.json"}))
    (folder / "in.manifest").write_bytes(b"\n".join(rows) + b"\n")
    return [sys.executable, "-m", "totask_manifest", "annotate", str(folder / "in.manifest"), "--job-name", "j",
            "--label-attribute", "cls", "--task-type", "image-classification", *method, "--output", str(folder / "out")]


def run_cli(*args: str, timeout: float = 120, env: dict | None = None, cwd: Path | None = None,
            stdout: IO | None = None) -> subprocess.CompletedProcess:
    """The CLI as a real process; its standard output captured, or sent to ``stdout`` (a file) as
    a shell's ``> file`` sends it."""
    full_env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "totask_manifest", *args],
        stdout=stdout or subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=timeout, env=full_env,
        cwd=cwd or REPO,
    )


def annotate_sample_with_class_names(names: Path | str, out: Path | str) -> subprocess.CompletedProcess:
    """The README's sample job (file method) with ``--class-names names``, into ``out``."""
    return run_cli("annotate", str(REPO / "sample_data" / "manifest.jsonl"), "--job-name", "cn",
                   "--label-attribute", "boxes", "--task-type", "object-detection", "--method", "file",
                   "--url-key", "annotation-ref", "--class-names", str(names),
                   "--allow-root", str(REPO / "sample_data"), "--output", str(out))


def sample_job_args(name: str, out: Path | str) -> list[str]:
    """``annotate``'s arguments for the README's sample job (file method, ``--native convert``)
    named ``name``, into ``out``: for tests that run it in this process (``_cli.main``)."""
    sample = REPO / "sample_data"
    return ["annotate", str(sample / "manifest.jsonl"), "--job-name", name, "--label-attribute", "boxes",
            "--task-type", "object-detection", "--method", "file", "--url-key", "annotation-ref", "--class-names",
            str(sample / "class_names.txt"), "--native", "convert", "--allow-root", str(sample), "--output", str(out)]


def refused_in_one_line(capsys, argv: list[str]) -> str:
    """The one line ``argv`` ends in, run in this process (``_cli.main``), checked to be a usage
    error (exit 2) with nothing on stdout and no traceback."""
    from totask_manifest._cli import main

    assert main(argv) == 2
    out, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if line.strip()]
    assert out == "" and len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def popen_cli(*args: str, env: dict | None = None) -> subprocess.Popen:
    full_env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.Popen(
        [sys.executable, "-m", "totask_manifest", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=full_env, cwd=REPO,
    )


def killed_midway(args: list[str], job: Path, timeout: float = 120.0, sig: int = signal.SIGKILL) -> int:
    """Run the CLI with ``args`` and kill it (``SIGKILL``, or ``sig``: ``SIGINT`` stops the job as
    Ctrl-C does) once the job at ``job`` has checkpointed two parts; its exit code."""
    from totask_manifest._jobs.layout import JobLayout

    proc = popen_cli(*args)
    try:
        layout, deadline = JobLayout(str(job)), time.monotonic() + timeout
        while len(layout.parts()) < 2:
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline, "the job made no checkpoint in time"
            time.sleep(0.02)
    finally:
        proc.send_signal(sig)
        proc.communicate(timeout=60)
    return proc.returncode


def output_of(root: Path, job: str) -> Path:
    return root / job / "manifests" / "output" / "output.manifest"


def normalized(raw_line: bytes) -> dict:
    """A line's JSON with every ``creation-date`` written by our jobs removed."""
    rec = orjson.loads(raw_line)
    for key, value in rec.items():
        if key.endswith("-metadata") and isinstance(value, dict) and value.get("human-annotated") != "yes":
            value.pop("creation-date", None)
    return rec


def assert_same_output(a: Path, b: Path) -> None:
    la, lb = a.read_bytes().splitlines(keepends=True), b.read_bytes().splitlines(keepends=True)
    assert len(la) == len(lb)
    for i, (x, y) in enumerate(zip(la, lb, strict=True), 1):
        if x != y:
            assert normalized(x) == normalized(y), f"line {i} differs"
            assert x.endswith(b"\r\n") == y.endswith(b"\r\n"), f"line {i} terminator differs"


def file_options(*flags: str) -> dict:
    """The options object ``annotate --method file FLAGS`` stores in job.json (parsed as the CLI does)."""
    import argparse

    from totask_manifest._annotators.file import FileAnnotator
    from totask_manifest._cli._options import add_options, read_options

    parser = argparse.ArgumentParser()
    add_options(parser, FileAnnotator.Options)
    return read_options(parser.parse_args(list(flags)), FileAnnotator.Options)


def serve_labeled_images(server, labels: list[Path], images: Path) -> bytes:
    """Put each label file and its image (``images/<label stem>.jpg``) on ``server`` (a
    ``testing.file_server.FileServer``); the manifest's bytes, one line per label, both as URLs."""
    lines = []
    for label in labels:
        image = images / f"{label.stem}.jpg"
        server.add(f"annotations/{label.name}", label.read_bytes())
        server.add(f"images/{image.name}", image.read_bytes())
        lines.append(orjson.dumps({"source-ref": server.url_for(f"images/{image.name}"),
                                   "annotation-ref": server.url_for(f"annotations/{label.name}")}))
    return b"\n".join(lines) + b"\n"


def quick_start_job(output_root: Path, job_name: str, native: str) -> Path:
    """The README's quick start job (file method, the sample data's COCO labels: 49 labeled lines,
    1 failed), run in this process with ``--native native``, into ``output_root``; its output manifest."""
    from totask_manifest._cli import main

    data = REPO / "sample_data"
    assert main(["annotate", str(data / "manifest.jsonl"), "--job-name", job_name, "--label-attribute", "boxes",
                 "--task-type", "object-detection", "--method", "file", "--url-key", "annotation-ref",
                 "--class-names", str(data / "class_names.txt"), "--native", native, "--allow-root", str(data),
                 "--output", str(output_root)]) == 0
    return output_root / job_name / "manifests" / "output" / "output.manifest"


def write_image_manifest(folder: Path, count: int) -> Path:
    """``count`` small PNGs under ``folder/img`` and ``folder/in.manifest`` naming them relative to
    it, one a line: the input of a test that runs a real model on real images."""
    from PIL import Image  # on use: most tests here need no Pillow

    (folder / "img").mkdir(exist_ok=True)
    rows = []
    for i in range(count):
        Image.new("RGB", (12, 10), (50 + i, 60, 70)).save(folder / "img" / f"{i}.png")
        rows.append(orjson.dumps({"source-ref": f"img/{i}.png"}))
    (folder / "in.manifest").write_bytes(b"\n".join(rows) + b"\n")
    return folder / "in.manifest"
