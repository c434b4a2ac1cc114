"""The top level's options (``-v``, ``--version``) are taken after the command too: ``apply JOB -v``
was refused (``unrecognized arguments: -v``) and only ``totask-manifest -v apply JOB`` worked.
Every command lists them in its ``--help``; one before the command is not taken back by the
command's parser. Real parts: the parser itself, the CLI as a subprocess on a real job."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from tests.jobs_helpers import run_cli, sample_job_args
from totask_manifest._cli import _version, build_parser, main


def _commands() -> list[str]:
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sorted(commands.choices)


COMMANDS = _commands()


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_lists_the_global_options_in_its_help(capsys: pytest.CaptureFixture, command: str) -> None:
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    shown = capsys.readouterr().out
    assert "-v, --verbose" in shown and "--version" in shown


@pytest.mark.parametrize("argv", [["status", "J", "-v"], ["status", "--verbose", "J"], ["-v", "status", "J"]])
def test_verbose_is_taken_before_or_after_the_command(argv: list[str]) -> None:
    args, unknown = build_parser(argv).parse_known_args(argv)
    assert unknown == [] and args.verbose is True


def test_without_verbose_it_stays_off() -> None:
    args, _ = build_parser(["status"]).parse_known_args(["status", "J"])
    assert args.verbose is False


def test_version_after_the_command_names_the_program(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["apply", "--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.strip() == f"totask-manifest {_version()}"  # not "totask-manifest apply ..."


def test_status_of_a_job_with_v_after_it_prints_the_debug_lines(tmp_path: Path) -> None:
    assert main(sample_job_args("vafter", tmp_path)) == 0
    job = str(tmp_path / "vafter")
    plain, after, before = run_cli("status", job), run_cli("status", job, "-v"), run_cli("-v", "status", job)
    assert plain.returncode == after.returncode == before.returncode == 0, after.stderr
    assert after.stdout == plain.stdout
    assert "open file:" not in plain.stderr  # fsspec's debug line: only under -v
    assert "open file:" in after.stderr and "open file:" in before.stderr
