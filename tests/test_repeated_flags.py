"""A flag that takes one value, given twice, is a usage error naming the flag and both values
(exit 2, one line), in every command: argparse kept the last one without a word, so
``--allow-root /data --allow-root v`` read only ``v`` (users expected both, as ``--allow-host``
repeats) and ``--job-name dupA --job-name dupB`` started ``dupB``. The repeatable flags
(``append``) and on/off flags given twice keep working; ``--fp16 --no-fp16`` contradicts itself."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from tests.jobs_helpers import REPO, sample_job_args
from totask_manifest._cli import build_parser, main


def _flags(kind: type[argparse.Action]) -> list[tuple[str, argparse.Action]]:
    """(command, action) for every optional flag of every command whose action is ``kind``
    (a plugin's own flags go through the same parser): read from the parser itself, so a flag
    added later is covered too."""
    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    found = []
    for name, command in sorted(commands.choices.items()):
        command.complete()
        found += [(name, a) for a in command._actions if a.option_strings and isinstance(a, kind)]
    return found


def _two_values(action: argparse.Action) -> tuple[str, str]:
    if action.choices:
        first, second, *_ = action.choices
        return str(first), str(second)
    return ("1", "2") if action.type in (int, float) else ("dupA", "dupB")


SINGLE = _flags(argparse._StoreAction)
REPEATABLE = _flags(argparse._AppendAction)


def test_the_parser_has_the_flags_named_in_the_report() -> None:
    """The parametrized tests below cover what the parser holds; this pins that it holds these."""
    single = {(c, a.option_strings[-1]) for c, a in SINGLE}
    assert {("annotate", "--job-name"), ("annotate", "--label-attribute"), ("annotate", "--allow-root"),
            ("chain", "--job-name"), ("report", "--output"), ("run", "--concurrency"), ("stats", "--format"),
            ("evaluate", "--allow-root")} <= single
    assert {("annotate", "--allow-host"), ("annotate", "--append"), ("report", "--allow-host"),
            ("stats", "--label-attribute"), ("export", "--filter")} <= {(c, a.option_strings[-1]) for c, a in REPEATABLE}


@pytest.mark.parametrize(("command", "action"), SINGLE, ids=[f"{c}{a.option_strings[-1]}" for c, a in SINGLE])
def test_a_single_value_flag_given_twice_is_one_line_naming_both_values(
        capsys: pytest.CaptureFixture, command: str, action: argparse.Action) -> None:
    flag = action.option_strings[-1]
    first, second = _two_values(action)
    with pytest.raises(SystemExit) as exit_:
        main([command, flag, first, flag, second])
    assert exit_.value.code == 2
    out, err = capsys.readouterr()
    assert out == "" and err == (f"totask-manifest {command}: error: {flag} given twice ({first}, {second}): "
                                 f"give it once; see 'totask-manifest {command} --help'\n")


def _parse(command: str, *args: str) -> argparse.Namespace:
    """``args`` parsed as ``command``'s, with a value for each argument it requires."""
    parser = build_parser([command])
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[command]
    sub.complete()
    required = []
    for a in sub._actions:
        if a.required:
            value = str(a.choices[0]) if a.choices else "1" if a.type in (int, float) else "x"
            required += [a.option_strings[-1], value] if a.option_strings else [value]
    parsed, _rest = parser.parse_known_args([command, *required, *args])
    return parsed


@pytest.mark.parametrize(("command", "action"), REPEATABLE,
                         ids=[f"{c}{a.option_strings[-1]}" for c, a in REPEATABLE])
def test_a_repeatable_flag_given_twice_keeps_both(command: str, action: argparse.Action) -> None:
    flag = action.option_strings[-1]
    args = _parse(command, flag, "a.example.com", flag, "b.example.com")
    assert getattr(args, action.dest)[-2:] == ["a.example.com", "b.example.com"]
    assert not hasattr(args, "_given_once")  # the parse's own note is no argument


def test_an_on_off_flag_given_twice_is_taken_and_both_ways_refused(capsys: pytest.CaptureFixture) -> None:
    args = _parse("annotate", "--keep-going", "--keep-going", "--fp16", "--fp16")
    assert (args.keep_going, args.use_fp16) == (True, True)
    assert build_parser(["status"]).parse_known_args(["-v", "-v", "status", "x"])[0].verbose
    with pytest.raises(SystemExit) as exit_:
        main(["annotate", "in", "--fp16", "--no-fp16"])
    assert exit_.value.code == 2
    assert capsys.readouterr().err == ("totask-manifest annotate: error: --fp16 and --no-fp16 both given: give one; "
                                       "see 'totask-manifest annotate --help'\n")


def test_an_abbreviated_flag_is_the_same_flag() -> None:
    """``--job-name a --job b``: argparse takes ``--job`` for ``--job-name``."""
    r = _cli("annotate", "in.manifest", "--job-name", "a", "--job=b", cwd=REPO)
    assert (r.returncode, r.stderr) == (2, "totask-manifest annotate: error: --job-name given twice (a, b): give it "
                                           "once; see 'totask-manifest annotate --help'\n")


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "totask_manifest", *args], capture_output=True, text=True,
                          timeout=180, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}, cwd=cwd, check=False)


@pytest.mark.slow
def test_the_testers_annotate_is_refused_before_the_job_exists(tmp_path: Path) -> None:
    """The report's command: exit 0, job ``dupB`` labeling ``other``, ``/nonexistent`` never checked."""
    args = sample_job_args("dupA", tmp_path / "out")
    args[args.index("--allow-root") + 1:args.index("--allow-root") + 1] = [str(tmp_path / "nonexistent"),
                                                                            "--allow-root"]
    r = _cli(*args, "--job-name", "dupB", "--label-attribute", "other", cwd=tmp_path)
    assert (r.returncode, r.stdout) == (2, "")
    assert r.stderr == (f"totask-manifest annotate: error: --allow-root given twice ({tmp_path / 'nonexistent'}, "
                        f"{REPO / 'sample_data'}): give it once; see 'totask-manifest annotate --help'\n")
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_a_job_chained_with_a_flag_given_twice_is_refused(tmp_path: Path) -> None:
    """``chain`` parses its command line again once the previous job's method is known: the second
    parse refuses as the first does, and nothing is started."""
    assert main(sample_job_args("first", tmp_path / "out")) == 0
    r = _cli("chain", str(tmp_path / "out" / "first"), "--job-name", "second", "--timeout", "5", "--timeout", "9.5",
             cwd=tmp_path)
    assert (r.returncode, r.stderr) == (2, "totask-manifest chain: error: --timeout given twice (5, 9.5): give it "
                                           "once; see 'totask-manifest chain --help'\n")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["first"]
