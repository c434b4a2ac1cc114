"""argparse's own refusals (a flag given a value of the wrong kind, a required argument left out,
an unknown command, a choice not offered) are one line naming the flag and the rule, exit 2 (the
README's code for a usage error), as every other mistake is; argparse printed the command's whole
usage block (25 lines for ``annotate``) above its line. ``--help`` still prints the usage."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from tests.jobs_helpers import REPO
from totask_manifest._cli import build_parser, main


def _typed_flags() -> list[tuple[str, str, str]]:
    """(command, flag, type name) for every flag of every command that argparse converts to a
    number: read from the parser itself, so a flag added later is covered too."""
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    found = []
    for name, command in sorted(commands.choices.items()):
        command.complete()
        for action in command._actions:
            if action.type in (int, float) and action.option_strings:
                found.append((name, action.option_strings[-1], action.type.__name__))
    return found


TYPED = _typed_flags()


def test_the_parser_has_numeric_flags_on_the_commands_named_in_the_report() -> None:
    """The parametrized test below covers what the parser holds; this pins that it holds these."""
    assert {("annotate", "--max-image-pixels"), ("annotate", "--concurrency"), ("validate", "--workers"),
            ("apply", "--concurrency"), ("rollback", "--concurrency"), ("export", "--project"),
            ("evaluate", "--iou")} <= {(c, f) for c, f, _ in TYPED}


@pytest.mark.parametrize(("command", "flag", "kind"), TYPED, ids=[f"{c}{f}" for c, f, _ in TYPED])
def test_a_numeric_flag_given_a_non_number_is_one_line(capsys: pytest.CaptureFixture, command: str, flag: str,
                                                       kind: str) -> None:
    value = "1.5" if kind == "int" else "x"
    with pytest.raises(SystemExit) as exit_:
        main([command, flag, value])
    assert exit_.value.code == 2
    out, err = capsys.readouterr()
    assert out == "" and err == (f"totask-manifest {command}: error: argument {flag}: invalid {kind} value: "
                                 f"'{value}'; see 'totask-manifest {command} --help'\n")


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "totask_manifest", *args], capture_output=True, text=True,
                          timeout=180, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}, cwd=cwd)


@pytest.mark.slow
@pytest.mark.parametrize(("args", "line"), [
    (["annotate", "in.manifest", "--max-image-pixels", "abc"],
     "totask-manifest annotate: error: argument --max-image-pixels: invalid int value: 'abc'; "
     "see 'totask-manifest annotate --help'"),
    (["rollback", "out/j", "--concurrency", "x"],
     "totask-manifest rollback: error: argument --concurrency: invalid int value: 'x'; "
     "see 'totask-manifest rollback --help'"),
    (["validate", "in.manifest", "--workers", "1.5"],
     "totask-manifest validate: error: argument --workers: invalid int value: '1.5'; "
     "see 'totask-manifest validate --help'"),
    (["annotate", "in.manifest"],
     "totask-manifest annotate: error: the following arguments are required: --job-name, --task-type, --output; "
     "see 'totask-manifest annotate --help'"),
    (["stats", "in.manifest", "--format", "xml"],
     "totask-manifest stats: error: argument --format: invalid choice: 'xml' (choose from 'text', 'json'); "
     "see 'totask-manifest stats --help'"),
    (["validat", "in.manifest"],
     "totask-manifest: error: argument COMMAND: invalid choice: 'validat' (choose from 'annotate', 'apply', "
     "'chain', 'clone', 'convert', 'evaluate', 'export', 'labeled', 'report', 'resume', 'rollback', 'run', "
     "'stats', 'status', 'validate'); see 'totask-manifest --help'"),
    ([], "totask-manifest: error: the following arguments are required: COMMAND; see 'totask-manifest --help'"),
], ids=["wrong-int", "wrong-int-rollback", "float-for-int", "required-missing", "wrong-choice", "unknown-command",
        "no-command"])
def test_an_argparse_refusal_is_one_line_with_exit_2(tmp_path: Path, args: list[str], line: str) -> None:
    r = cli(*args, cwd=tmp_path)
    assert (r.returncode, r.stdout, r.stderr) == (2, "", line + "\n")
    assert not list(tmp_path.iterdir())  # nothing written


@pytest.mark.slow
@pytest.mark.parametrize("command", [[], ["annotate"], ["rollback"]], ids=["top", "annotate", "rollback"])
def test_help_still_prints_the_usage_and_every_flag(tmp_path: Path, command: list[str]) -> None:
    r = cli(*command, "--help", cwd=tmp_path)
    assert r.returncode == 0 and r.stderr == ""
    assert r.stdout.startswith(f"usage: totask-manifest {command[0] if command else '[-h]'}")
    assert "-h, --help" in r.stdout and "error" not in r.stdout
