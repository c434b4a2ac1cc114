"""Mistakes a new user makes around a job (annotate, chain, clone, resume, status, report),
through the CLI in this process: each ends with one line naming what is wrong and the exit code
the README gives."""

from __future__ import annotations

from pathlib import Path

import pytest

from totask_manifest._cli import main

from .jobs_helpers import toy_job_args


def _one_line(capsys: pytest.CaptureFixture, argv: list[str], code: int) -> str:
    assert main(argv) == code
    _out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_a_mistyped_input_is_named_not_found_even_where_the_job_exists(tmp_path: Path, capsys) -> None:
    """The same command again with the input's path mistyped said "job 'j' already exists ... with
    another configuration (differs in: input); choose another --job-name": a new name then ran into
    "not found", the mistake named last."""
    inp = tmp_path / "in.manifest"
    inp.write_bytes(b'{"source-ref":"s3://b/0.jpg"}\n')
    assert main(toy_job_args(inp, tmp_path / "out")) == 0
    capsys.readouterr()
    line = _one_line(capsys, toy_job_args(tmp_path / "in.manifst", tmp_path / "out"), 2)
    assert "input manifest not found" in line and "in.manifst" in line and "--job-name" not in line, line
    line = _one_line(capsys, toy_job_args(inp, tmp_path / "out", "--append", str(tmp_path / "more.manifest")), 2)
    assert "--append manifest not found" in line and "more.manifest" in line, line


def test_the_output_root_given_for_a_job_names_the_jobs_in_it(tmp_path: Path, capsys) -> None:
    """``status out`` (the --output given to annotate) was told only "out/job.json not found"."""
    inp = tmp_path / "in.manifest"
    inp.write_bytes(b'{"source-ref":"s3://b/0.jpg"}\n')
    for name in ("j", "k"):
        assert main(toy_job_args(inp, tmp_path / "out", job=name)) == 0
    (tmp_path / "out" / "notes").mkdir()
    capsys.readouterr()
    for argv in (["status", str(tmp_path / "out")], ["resume", str(tmp_path / "out")],
                 ["report", str(tmp_path / "out"), "-o", str(tmp_path / "r.html")]):
        line = _one_line(capsys, argv, 2)
        assert "is not a job folder" in line and f"it holds job folders j, k: give one ({tmp_path / 'out' / 'j'})" in line, line
