"""Outputs the CLI could only seem to write are refused before anything runs, in one line (exit 2):
``memory://`` (it lives in this process only: annotate printed COMPLETED and an output path, and
nothing survived the command), ``http(s)://`` (read-only: annotate ended in a raw
``ClientResponseError: HTTP 501`` without the URL), and a chained URL (``labeled -o dir::/tmp/x``
said it wrote ``dir::/tmp/x`` and wrote ``/tmp/x/tmp/x``). The Python API still takes ``memory://``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.jobs_helpers import REPO, run_cli, sample_job_args
from tests.jobs_helpers import refused_in_one_line as refused

pytest_plugins = ["totask_manifest.testing.fixtures"]

SAMPLE = str(REPO / "sample_data" / "manifest.jsonl")
MEMORY = "is memory://, which lives in this process only and is gone when the command ends; give a local path, file:// or s3://"


@pytest.mark.parametrize("argv", [
    ["labeled", SAMPLE, "--label-attribute", "boxes", "-o", "memory://kept/x.manifest"],
    ["convert", SAMPLE, "memory://kept/x.json", "--to", "coco"],
    ["report", SAMPLE, "-o", "memory://kept/r.html"],
    ["export", "--project", "1", "-o", "memory://kept/e.manifest"],
])
def test_a_memory_output_is_refused_in_one_line(capsys: pytest.CaptureFixture, argv: list[str]) -> None:
    command, flag = argv[0], "OUT" if argv[0] == "convert" else "-o/--output"
    url = next(a for a in argv if a.startswith("memory://"))
    line = refused(capsys, argv)
    assert line == f"totask-manifest {command}: error: the output ({flag}) {url} {MEMORY}"


def test_annotate_into_memory_is_refused_and_starts_no_job(tmp_path: Path) -> None:
    """As a real process: before, it printed COMPLETED and exit 0, and ``status`` then said the
    folder was no job folder."""
    r = run_cli(*sample_job_args("mem", "memory://jobs"), cwd=tmp_path)
    assert r.returncode == 2 and r.stdout == "", r.stderr
    assert r.stderr.strip() == f"totask-manifest annotate: error: the output (--output) memory://jobs {MEMORY}"


@pytest.mark.parametrize("command", ["annotate", "labeled", "convert", "report"])
def test_an_http_output_is_refused_before_any_request(files, capsys: pytest.CaptureFixture, tmp_path: Path,
                                                      command: str) -> None:
    url = files.url_for("/jobs?sig=s3cr3t-value")
    argv = {"annotate": sample_job_args("web", url),
            "labeled": ["labeled", SAMPLE, "--label-attribute", "boxes", "-o", url],
            "convert": ["convert", SAMPLE, url, "--to", "coco"],
            "report": ["report", SAMPLE, "-o", url]}[command]
    line = refused(capsys, argv)
    flag = "OUT" if command == "convert" else "--output" if command == "annotate" else "-o/--output"
    shown = files.url_for("/jobs") + "?…"  # the query is never shown: it may be a signature
    assert line == (f"totask-manifest {command}: error: the output ({flag}) {shown} is http://, which is read-only; "
                    "give a local path, file:// or s3://")
    assert files.requests == []  # refused before the job (or the write) started


@pytest.mark.parametrize("output", ["dir::{tmp}/x.manifest", "simplecache::file://{tmp}/x.manifest"])
def test_a_chained_output_is_refused_not_written_elsewhere(capsys: pytest.CaptureFixture, tmp_path: Path,
                                                           output: str) -> None:
    output = output.format(tmp=tmp_path)
    line = refused(capsys, ["labeled", SAMPLE, "--label-attribute", "boxes", "-o", output])
    assert line == (f"totask-manifest labeled: error: the output (-o/--output) {output} is a chained URL ('::'): "
                    "an output is one path or URL; give a local path, file:// or s3://")
    assert list(tmp_path.iterdir()) == []


def test_an_ipv6_output_is_no_chain(capsys: pytest.CaptureFixture) -> None:
    line = refused(capsys, ["labeled", SAMPLE, "--label-attribute", "boxes", "-o", "http://[::1]:1/x.manifest"])
    assert line.endswith("http://[::1]:1/x.manifest is http://, which is read-only; give a local path, file:// or s3://")
