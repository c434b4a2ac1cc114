"""Typed options: one declaration gives the flags, the job.json object and back (``options``, ``cli._options``)."""

from __future__ import annotations

import argparse
import importlib.util
import pickle
import re
from dataclasses import dataclass
from typing import Literal

import pytest

from tests.support.ports import listening_port
from tests.support.toy_annotators import ToyClassifier
from totask_manifest._annotators.file import FileAnnotator, FileOptions
from totask_manifest._annotators.inference import InferenceOptions
from totask_manifest._cli._options import add_options, read_options
from totask_manifest._engines.base import engine_names, engine_options_class, get_engine
from totask_manifest._errors import UsageError
from totask_manifest._fetch import DEFAULT_CONCURRENCY, FetchOptions
from totask_manifest._models.sources import absolute_model_ref
from totask_manifest._options import Options, nested, option, path_options
from totask_manifest.testing.runs import job_run


@dataclass(frozen=True)
class Inner(Options):
    level: int = option(3, metavar="N", help="a nested option")


@dataclass(frozen=True)
class Outer(Options):
    name: str | None = option(None, exclusive="which", help="a name")
    key: str | None = option(None, exclusive="which", help="a key")
    fast: bool = option(False, action="store_true", omit_default=True, help="go fast")
    hosts: tuple[str, ...] = option((), flag="--host", action="append", metavar="HOST")
    inner: Inner = nested(Inner)
    internal: str | None = option(None, cli=False, omit_default=True)


def parse(cls: type[Options], argv: list[str], **kw) -> argparse.Namespace:
    parser = argparse.ArgumentParser(exit_on_error=False)
    add_options(parser, cls, **kw)
    return parser.parse_args(argv)


def test_flags_come_from_the_fields_and_read_back_as_the_flat_object() -> None:
    args = parse(Outer, ["--name", "n", "--fast", "--host", "a", "--host", "b", "--level", "7"])
    assert read_options(args, Outer) == {"name": "n", "key": None, "fast": True, "hosts": ["a", "b"], "level": 7}
    # left out: the defaults, and what omits its default stays out of job.json
    assert read_options(parse(Outer, []), Outer) == {"name": None, "key": None, "hosts": [], "level": 3}
    assert read_options(args, Outer, only_given=True) == {"name": "n", "fast": True, "hosts": ["a", "b"], "level": 7}


def test_exclusive_flags_and_typed_values_are_refused() -> None:
    with pytest.raises(UsageError, match=r"^--name and --key cannot be given together"):
        read_options(parse(Outer, ["--name", "n", "--key", "k"]), Outer)
    with pytest.raises((SystemExit, argparse.ArgumentError)):
        parse(Outer, ["--level", "x"])
    with pytest.raises((SystemExit, argparse.ArgumentError)):
        parse(Outer, ["--internal", "x"])  # cli=False: no flag


def test_from_dict_ignores_unknown_keys_and_null_means_the_default() -> None:
    opts = Outer.from_dict({"name": "n", "level": None, "internal": "i", "other": 1})
    assert opts.inner.level == 3 and opts.internal == "i" and opts.name == "n"
    assert Outer.from_dict(opts.to_dict()) == opts
    assert opts.replace(level=9).inner.level == 9


def test_a_field_shared_by_two_classes_is_one_flag() -> None:
    parser = argparse.ArgumentParser()
    seen: set[str] = set()
    add_options(parser, FileOptions, seen=seen)
    add_options(parser, FetchOptions, seen=seen)  # no "conflicting option string" error
    args = parser.parse_args(["--url-key", "k", "--concurrency", "4"])
    assert read_options(args, FetchOptions)["concurrency"] == 4


def test_the_file_method_keeps_job_json_shape() -> None:
    options = FileOptions().to_dict()
    assert options["concurrency"] == DEFAULT_CONCURRENCY and options["allow_hosts"] == []
    assert not {"native", "allow_drop", "converter", "relative_to", "relative_to_appended", "submit_empty"} & set(options)
    with pytest.raises(UsageError, match="needs --url-key"):
        FileAnnotator.check(FileOptions(), "image-classification")


def test_engine_flags_are_prefixed_by_the_engine_and_unknown_engine_options_refused() -> None:
    assert engine_names() == ["local", "ray"]
    ray_options = engine_options_class("ray")
    args = parse(ray_options, ["--ray-actors", "2", "--ray-shared-paths"], prefix="ray")
    assert read_options(args, ray_options, prefix="ray", only_given=True) == {"actors": 2, "shared_paths": True}
    with pytest.raises(UsageError, match="no option actor"):
        get_engine("local", actor=2)
    with pytest.raises(UsageError, match="unknown engine"):
        get_engine("spark")


def test_a_job_run_sent_to_a_worker_leaves_the_driver_parts_behind() -> None:
    run = job_run("j", "a", "image-classification", {"url_key": "u"})
    run.recorder = object()  # a driver-only part that would not pickle
    run.on_progress = lambda _m: None
    run.stop.set()
    copy = pickle.loads(pickle.dumps(run))
    assert copy.config == run.config and copy.options == {"url_key": "u"}
    assert copy.recorder is None and copy.on_progress is None and not copy.stop.is_set()


@dataclass(frozen=True)
class LexiconOptions(Options):
    lexicon: str | None = option(None, metavar="FILE", path=True, help="a file the annotator reads")
    note: str | None = option(None, help="not a path: kept as given")


class LexiconToy(ToyClassifier):
    """A plugin with its own path option: ``option(path=True)`` alone makes the job and the Ray
    engine treat it as a file the workers read."""

    name = "lexicon-toy"
    Options = LexiconOptions


def test_a_path_option_is_kept_absolute_and_refused_on_a_cluster(tmp_path, monkeypatch) -> None:
    from totask_manifest._api_checks import check_config as _check_config
    from totask_manifest._jobs.config import JobConfig

    monkeypatch.chdir(tmp_path)
    options = {"lexicon": "words.txt", "note": "words.txt"}
    assert path_options(LexiconOptions, options) == [("lexicon", "words.txt", None)]
    assert path_options(LexiconOptions, {"lexicon": ""}) == []  # unset: nothing to make absolute
    config = JobConfig(job_name="j", input="in.manifest", output_root="out", label_attribute="cls",
                       task_type="image-classification", method=f"{__name__}:LexiconToy", options=options)
    _check_config(config)
    assert config.options == {"lexicon": str(tmp_path / "words.txt"), "note": "words.txt"}
    # the built-in methods declare theirs the same way; --model has its own rule (module:factory is no file)
    keys = {key: rule for key, _value, rule in path_options(
        InferenceOptions, dict.fromkeys(("model", "weights", "class_names", "params_file", "allow_root",
                                         "relative_to", "input_size", "device"), "x"))}
    assert keys == {"model": absolute_model_ref, "weights": None, "class_names": None, "params_file": None,
                    "allow_root": None, "relative_to": None}
    if importlib.util.find_spec("ray") is None:
        return
    with listening_port() as port:  # the local paths' rule comes before the address is probed
        with pytest.raises(UsageError, match="--lexicon"):
            get_engine("ray", address=f"127.0.0.1:{port}").check(config)
        config.options = {"lexicon": "s3://bucket/words.txt", "note": "words.txt"}
        # a URL every node reads; note is no path: what is left to refuse is the address (no Ray answers)
        with pytest.raises(UsageError, match="it is not a Ray cluster"):
            get_engine("ray", address=f"127.0.0.1:{port}").check(config)


@pytest.mark.slow
@pytest.mark.parametrize(("command", "flag"), [("annotate", "--checkpoint-every"), ("annotate", "--concurrency"),
                                               ("annotate", "--retries"), ("resume", "--retries"),
                                               ("resume", "--checkpoint-every")])
def test_an_integer_job_json_cannot_hold_is_refused_naming_its_flag(tmp_path, command, flag):
    """``--checkpoint-every 99999999999999999999`` ended in a traceback (orjson writes 64-bit
    integers only) when job.json was written; now one line naming the flag, exit 2, no job."""
    import subprocess
    import sys

    from tests.jobs_helpers import REPO, run_cli

    sample = REPO / "sample_data"
    start = ["annotate", str(sample / "manifest.jsonl"), "--job-name", "big-int", "--label-attribute", "boxes",
             "--task-type", "object-detection", "--method", "file", "--url-key", "annotation-ref", "--class-names",
             str(sample / "class_names.txt"), "--allow-root", str(sample), "--output", str(tmp_path / "out")]
    huge = "99999999999999999999"
    if command == "resume":
        assert run_cli(*start).returncode == 0
        before = (tmp_path / "out" / "big-int" / "job.json").read_bytes()
        args = ["resume", str(tmp_path / "out" / "big-int"), flag, huge]
    else:
        args = [*start, flag, huge]
    r = subprocess.run([sys.executable, "-m", "totask_manifest", *args], capture_output=True, text=True, timeout=120,
                       env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().splitlines() == [f"totask-manifest {command}: error: {flag} {huge} is out of range "
                                             "(at most 9,223,372,036,854,775,807)"], r.stderr
    if command == "resume":
        assert (tmp_path / "out" / "big-int" / "job.json").read_bytes() == before
    else:
        assert not (tmp_path / "out" / "big-int").exists()


@pytest.mark.parametrize("command", ["annotate", "resume"])
def test_a_number_job_json_cannot_hold_is_refused_not_stored_as_null(tmp_path, capsys, command):
    """``--timeout inf`` (or ``1e400``): orjson writes a float that is not finite as ``null``, so
    the job ran with no timeout while job.json said null, and a resume ran with the default,
    silently. Refused naming the flag, exit 2, before anything is written, as an integer too big is."""
    from tests.jobs_helpers import sample_job_args
    from totask_manifest._cli import main

    start = sample_job_args("inf", tmp_path / "out")
    job_json = tmp_path / "out" / "inf" / "job.json"
    if command == "resume":
        assert main(start) == 0
        before = job_json.read_bytes()
        args = ["resume", str(tmp_path / "out" / "inf"), "--timeout", "1e400"]
    else:
        args = [*start, "--timeout", "1e400"]
    capsys.readouterr()
    assert main(args) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"totask-manifest {command}: error: --timeout inf is out of range (a finite number)"]
    if command == "resume":
        assert job_json.read_bytes() == before
    else:
        assert not job_json.exists()


@dataclass(frozen=True)
class PluginStyle(Options):
    """A plugin's options as an author writes them: annotations, defaults, no CLI hints."""

    strict: bool = option(False, help="refuse odd lines")
    careful: bool | None = option(None)
    limit: int | None = option(None)
    ratio: float | None = option(None)
    names: list = option([])
    tags: tuple[str, ...] = option(())
    sizes: list[int] | None = option(None)
    mapping: dict = option({})


def test_a_plugin_bool_option_is_a_yes_no_flag_not_a_text_that_is_always_true() -> None:
    """``strict: bool = option(False)`` took ``--strict false`` and stored the text 'false', which
    the annotator read as true."""
    assert read_options(parse(PluginStyle, ["--strict"]), PluginStyle)["strict"] is True
    assert read_options(parse(PluginStyle, ["--no-strict", "--careful"]), PluginStyle) == {
        "strict": False, "careful": True, "limit": None, "ratio": None, "names": [], "tags": [], "sizes": None,
        "mapping": {}}
    with pytest.raises((SystemExit, argparse.ArgumentError)):
        parse(PluginStyle, ["--strict", "false"])


def test_a_plugin_number_option_with_no_default_is_read_as_the_declared_number() -> None:
    values = read_options(parse(PluginStyle, ["--limit", "5", "--ratio", "0.5"]), PluginStyle)
    assert values["limit"] == 5 and type(values["limit"]) is int and values["ratio"] == 0.5
    with pytest.raises((SystemExit, argparse.ArgumentError)):
        parse(PluginStyle, ["--limit", "five"])


def test_a_plugin_option_the_command_line_cannot_spell_is_refused_naming_its_flag() -> None:
    """A ``dict`` option given text was stored as a string: the annotator got a kind it never declared."""
    with pytest.raises(UsageError, match=r'^--mapping: must be dict, not string "a=b"'):
        read_options(parse(PluginStyle, ["--mapping", "a=b"]), PluginStyle)


def test_a_plugin_sequence_option_is_a_repeatable_flag() -> None:
    """``tags: tuple[str, ...]`` (or a ``list``) took one text and refused it as no list."""
    values = read_options(parse(PluginStyle, ["--tags", "x", "--tags", "y z", "--names", "a,b", "--sizes", "3",
                                              "--sizes", "4"]), PluginStyle)
    assert (values["tags"], values["names"], values["sizes"]) == (["x", "y z"], ["a,b"], [3, 4])
    assert PluginStyle.from_dict(values).tags == ("x", "y z")
    with pytest.raises((SystemExit, argparse.ArgumentError)):
        parse(PluginStyle, ["--sizes", "big"])


def test_annotations_written_as_types_are_checked_as_strings_are() -> None:
    """A plugin module without ``from __future__ import annotations`` holds types, not text."""
    namespace: dict = {}
    exec("from dataclasses import dataclass\nfrom totask_manifest._options import Options, option\n"
         "@dataclass(frozen=True)\nclass Typed(Options):\n    strict: bool = option(False)\n"
         "    limit: int | None = option(None)\n", namespace)
    typed = namespace["Typed"]
    assert read_options(parse(typed, ["--no-strict", "--limit", "3"]), typed) == {"strict": False, "limit": 3}
    with pytest.raises(UsageError, match="'limit' must be int, not string"):
        typed.checked({"limit": "3"})


@dataclass(frozen=True)
class Chosen(Options):
    """A plugin's options with a fixed set of values, said the two ways an author says it."""

    mode: Literal["fast", "exact"] = option("fast")
    color: str = option("red", choices=["red", "green"])
    quick: bool = option(False, exclusive="speed")
    careful: bool = option(False, exclusive="speed")


def test_a_literal_option_is_a_choice_on_the_command_line_and_from_python() -> None:
    """``mode: Literal["fast", "exact"]`` took ``--mode z`` (and ``{"mode": "z"}``): the job ran with
    a mode its annotator never declared."""
    assert read_options(parse(Chosen, ["--mode", "exact"]), Chosen)["mode"] == "exact"
    with pytest.raises((SystemExit, argparse.ArgumentError)):
        parse(Chosen, ["--mode", "z"])
    with pytest.raises(UsageError, match=r"""^option 'mode' must be one of "fast", "exact", not "z"$"""):
        Chosen.checked({"mode": "z"})


def test_choices_and_exclusive_options_from_python_are_refused_as_the_flags_are() -> None:
    with pytest.raises(UsageError, match=r"""^option 'color' must be one of "red", "green", not "blue"$"""):
        Chosen.checked({"color": "blue"})
    with pytest.raises(UsageError, match=r"^options 'quick' and 'careful' cannot be given together"):
        Chosen.checked({"quick": True, "careful": True})
    assert Chosen.checked({"quick": True, "careful": False, "color": "green"}).quick is True


@dataclass(frozen=True)
class Speeds(Options):
    """Exclusive sets of bools (``--x/--no-x``), of bools whose default is null, and of a list."""

    fast: bool = option(False, exclusive="speed")
    slow: bool = option(False, exclusive="speed")
    eager: bool | None = option(None, exclusive="mood")
    lazy: bool | None = option(None, exclusive="mood")
    hosts: tuple[str, ...] = option((), flag="--host", exclusive="where")
    root: str | None = option(None, exclusive="where")


@pytest.mark.parametrize("argv", [["--fast", "--no-slow"], ["--no-fast", "--slow"], ["--no-fast", "--no-slow"],
                                  ["--eager", "--no-lazy"], ["--no-eager", "--no-lazy"]])
def test_an_exclusive_bool_turned_off_goes_with_the_other_turned_on(argv: list[str]) -> None:
    """``--fast --no-slow`` was refused by argparse (``not allowed with argument``), although
    ``--no-slow`` is the default; from Python ``{"eager": True, "lazy": False}`` was refused too."""
    options = read_options(parse(Speeds, argv), Speeds)
    assert Speeds.checked(options).fast is ("--fast" in argv)


@pytest.mark.parametrize(("argv", "first", "second"), [(["--fast", "--slow"], "--fast", "--slow"),
                                                       (["--lazy", "--eager"], "--eager", "--lazy"),
                                                       (["--host", "h", "--root", "r"], "--host", "--root")])
def test_two_options_of_one_set_turned_on_are_refused_in_one_line(argv: list[str], first: str, second: str) -> None:
    with pytest.raises(UsageError, match=f"^{first} and {second} cannot be given together \\(one or the other\\)$"):
        read_options(parse(Speeds, argv), Speeds)
    with pytest.raises(UsageError, match="cannot be given together"):
        Speeds.checked({"fast": True, "slow": True})


def test_job_json_of_one_option_of_a_set_is_taken_from_python() -> None:
    """job.json keeps every option, ``"hosts": []`` for an empty tuple: that counted as given
    beside ``root``, so a job the command line started was refused when resumed from Python."""
    stored = read_options(parse(Speeds, ["--root", "r"]), Speeds)
    assert stored["hosts"] == [] and Speeds.checked(stored).root == "r"


def test_from_python_a_bool_set_off_is_not_given() -> None:
    """``lazy: bool | None = None`` set to False counted as given (False is not its default)."""
    assert Speeds.checked({"eager": True, "lazy": False}).eager is True
    assert Speeds.checked({"fast": False, "slow": True}).slow is True


def test_the_help_of_an_exclusive_flag_names_the_others() -> None:
    parser = argparse.ArgumentParser()
    add_options(parser, Speeds)
    assert "(not with --slow)" in parser.format_help() and "(not with --host)" in parser.format_help()


@dataclass(frozen=True)
class Sequences(Options):
    ids: tuple[int, ...] = option((), flag="--id")
    tags: list[str] | None = option(None, flag="--tag")
    scores: list[float] = option([])


@pytest.mark.parametrize(("values", "said"), [
    ({"ids": [1.5]}, "option 'ids' must hold int values, not number 1.5"),
    ({"ids": [1, True]}, "option 'ids' must hold int values, not boolean true"),
    ({"tags": ["a", 1]}, "option 'tags' must hold str values, not number 1"),
    ({"scores": [0.5, "x"]}, 'option \'scores\' must hold float values, not string "x"'),
])
def test_a_sequence_of_the_wrong_elements_from_python_is_refused(values: dict, said: str) -> None:
    """``{"ids": [1.5]}`` was taken for ``tuple[int, ...]`` (its flag, ``--id 1.5``, is refused)."""
    with pytest.raises(UsageError, match=f"^{re.escape(said)}$"):
        Sequences.checked(values)
    assert Sequences.checked({"ids": [1, 2], "tags": ["a"], "scores": [1, 0.5]}).ids == (1, 2)
