"""A command imports only what it uses, and every registry still finds every name.

``totask-manifest validate`` of a local file once paid about half a second importing the Synapse
client (aiohttp), the job API and the annotators, only to build the parsers of commands it was not
running. Each light command here runs in a fresh interpreter (the console script's way: ``main()``
with the real argv) that prints, after the command, which heavy libraries got imported.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.jobs_helpers import REPO

#: libraries none of the light commands uses (stats bins confidences with numpy, imported before its workers fork: allowed there)
HEAVY = ("aiohttp", "httpx", "torch", "polars", "pyarrow", "ray", "PIL", "fsspec", "s3fs", "botocore", "yaml",
         "numpy", "totask_manifest._api", "totask_manifest._synapse.client", "totask_manifest._annotators.base")

#: run the command as the console script does, then report its exit code, output and what it imported
PROBE = """
import contextlib, io, json, sys
sys.argv = ["totask-manifest", *sys.argv[1:]]
from totask_manifest._cli import main
out = io.StringIO()
with contextlib.redirect_stdout(out):
    try:
        code = main()
    except SystemExit as exc:
        code = exc.code
print(json.dumps({"code": code, "out": out.getvalue(), "modules": sorted(sys.modules)}))
"""


def run_probe(*argv: str, cwd: Path) -> dict:
    r = subprocess.run([sys.executable, "-c", PROBE, *argv], capture_output=True, text=True, cwd=cwd,
                       timeout=120, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout.splitlines()[-1])
    modules = set(result.pop("modules"))
    result["imported"] = [m for m in HEAVY if m in modules]
    return result


@pytest.fixture
def labeled(tmp_path: Path) -> Path:
    """A two-line manifest with one classification label: what validate and stats read."""
    meta = {"class-name": "cat", "confidence": 0.9, "type": "groundtruth/image-classification",
            "job-name": "labeling-job/cats", "human-annotated": "no", "creation-date": "2024-01-01T00:00:00"}
    lines = [{"source-ref": "s3://b/a.jpg", "cats": 0, "cats-metadata": meta}, {"source-ref": "s3://b/b.jpg"}]
    path = tmp_path / "in.manifest"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("argv", "allowed", "expect"),
    [
        (["validate", "{m}"], (), "valid: 2 lines"),
        pytest.param(["validate", "--format", "json", "{m}"], (), '"errors"', marks=pytest.mark.slow),
        pytest.param(["stats", "{m}"], ("numpy",), "cats", marks=pytest.mark.slow),
        pytest.param(["--help"], (), "validate", marks=pytest.mark.slow),
        pytest.param(["validate", "--help"], (), "--strict", marks=pytest.mark.slow),
        pytest.param(["status", "--help"], (), "JOB_DIR", marks=pytest.mark.slow),
        pytest.param(["-v", "stats", "--help"], (), "--workers", marks=pytest.mark.slow),
    ],
    ids=["validate", "validate-json", "stats", "help", "validate-help", "status-help", "stats-help"],
)
def test_a_light_command_imports_no_heavy_library(labeled, argv, allowed, expect):
    result = run_probe(*(str(labeled) if a == "{m}" else a for a in argv), cwd=labeled.parent)
    assert result["code"] == 0, result
    assert expect in result["out"]
    assert [m for m in result["imported"] if m not in allowed] == []


@pytest.mark.slow
def test_a_job_command_still_loads_its_annotators_and_engines(labeled):
    """The deferred flags are there when the job command runs: the check above proves nothing if
    they silently went missing."""
    result = run_probe("annotate", "--help", cwd=labeled.parent)
    assert result["code"] == 0
    for flag in ("--method file:", "--method inference:", "--ray-actors", "--engine"):
        assert flag in result["out"], flag
    assert "totask_manifest._annotators.base" in result["imported"]


@pytest.mark.parametrize("command", ["annotate", "chain"])
def test_a_job_command_loads_its_annotators_without_the_synapse_client(labeled, command):
    """Each method's module is imported for its flags; the Synapse client (aiohttp: a fifth of a
    second, some 115 modules) only once the synapse-preprocessor method runs."""
    result = run_probe(command, "--help", cwd=labeled.parent)
    assert result["code"] == 0 and "--method inference:" in result["out"]  # the annotators were loaded
    assert [m for m in result["imported"] if m in ("aiohttp", "totask_manifest._synapse.client")] == []


# -- the parser built for one command is the one built for all ------------------------------------

def _help(argv: list[str], command: str) -> str:
    from totask_manifest._cli import build_parser

    parser = build_parser(argv)
    return parser._subparsers._group_actions[0].choices[command].format_help()  # type: ignore[union-attr]


def _commands() -> list[str]:
    from totask_manifest._cli import _command_modules

    return _command_modules([])


def test_every_command_module_registers_the_command_it_is_named_after():
    """``build_parser`` imports only the named command's module, found by the command's name."""
    import totask_manifest._cli as cli
    from totask_manifest._cli import build_parser

    assert _commands() == sorted(m.name for m in pkgutil.iter_modules(cli.__path__) if not m.name.startswith("_"))
    parser = build_parser()
    assert sorted(parser._subparsers._group_actions[0].choices) == _commands()  # type: ignore[union-attr]
    for name in _commands():
        one = build_parser([name, "x"])
        assert list(one._subparsers._group_actions[0].choices) == [name]  # type: ignore[union-attr]


@pytest.mark.parametrize("command", ["annotate", "chain", "clone", "resume", "validate", "stats", "status"])
def test_a_command_built_alone_has_the_help_it_has_among_all(command):
    assert _help([command], command) == _help([], command)


@pytest.mark.parametrize("argv", [["-h", "validate"], ["--help", "stats"], ["--", "validate"], ["bogus"]])
def test_anything_but_a_command_first_lists_every_command(argv, capsys):
    from totask_manifest._cli import main

    with pytest.raises(SystemExit):
        main(argv)
    captured = capsys.readouterr()
    listing = captured.out + captured.err
    assert all(name in listing for name in _commands()), listing


def test_a_plugin_method_that_cannot_load_is_one_line_exit_2(capsys):
    """A plugin named by --method is loaded while the command's flags are built (now deferred):
    the error is still the command's one line, not a traceback."""
    from totask_manifest._cli import main

    assert main(["annotate", "in.manifest", "--method", "no_such_pkg.mod:Cls"]) == 2
    assert capsys.readouterr().err == (
        "totask-manifest annotate: error: method plugin 'no_such_pkg.mod:Cls': cannot import 'no_such_pkg.mod': "
        "no module named 'no_such_pkg' (is its folder on PYTHONPATH?)\n")


def test_a_plugin_whose_own_dependency_is_missing_names_it_without_our_extras(tmp_path, monkeypatch, capsys):
    """No extra of totask-manifest installs what a plugin imports: the message names the package
    only (it once said ``pip install 'totask-manifest[all]'``, for a misspelt plugin module too)."""
    from totask_manifest._cli import main

    (tmp_path / "needs_dep.py").write_text("import no_such_dependency_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert main(["annotate", "in.manifest", "--method", "needs_dep:Cls"]) == 2
    assert capsys.readouterr().err == (
        "totask-manifest annotate: error: method plugin 'needs_dep:Cls' needs the Python package "
        "'no_such_dependency_xyz', which is not installed\n")


@pytest.mark.parametrize(("source", "said"), [
    ("raise RuntimeError('no GPU config\\nsecond line')\n", "RuntimeError: no GPU config"),
    ("def broken(:\n", "SyntaxError: "),
    ("from os import no_such_name_xyz\n", "ImportError: cannot import name 'no_such_name_xyz' from 'os'"),
])
def test_a_plugin_whose_own_import_fails_is_one_line_exit_2(tmp_path, monkeypatch, capsys, source, said):
    """A plugin module that raises as it is imported (its author's bug, a name its dependency
    lacks) is the command's one line naming the module and the error, not a traceback."""
    from totask_manifest._cli import main

    (tmp_path / "bad_plugin_mod.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert main(["annotate", "in.manifest", "--method", "bad_plugin_mod:Cls"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith("totask-manifest annotate: error: method plugin 'bad_plugin_mod:Cls': importing "
                          "'bad_plugin_mod' failed: " + said), err
    assert err.endswith("(python -c 'import bad_plugin_mod' shows where)\n"), err


def test_a_missing_module_of_the_plugins_own_package_is_named_as_such(tmp_path, monkeypatch, capsys):
    """A plugin package whose module imports a sibling that is not there: the plugin's own
    package lacks it (not 'a Python package that is not installed')."""
    from totask_manifest._cli import main

    package = tmp_path / "own_pkg_xyz"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "shapes.py").write_text("import own_pkg_xyz.helpers_gone\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert main(["annotate", "in.manifest", "--method", "own_pkg_xyz.shapes:Cls"]) == 2
    assert capsys.readouterr().err == (
        "totask-manifest annotate: error: method plugin 'own_pkg_xyz.shapes:Cls': cannot import "
        "'own_pkg_xyz.shapes': its package has no module 'own_pkg_xyz.helpers_gone'\n")


# -- every registry entry is still found by name ---------------------------------------------------

def test_every_annotator_is_found_by_name():
    from totask_manifest._annotators.base import Annotator, annotator_names, get_annotator_class

    assert annotator_names() == ["file", "inference", "synapse-preprocessor"]
    for name in annotator_names():
        cls = get_annotator_class(name)
        assert issubclass(cls, Annotator) and cls.name == name, name


def test_every_engine_is_found_by_name():
    from totask_manifest._engines.base import engine_names, engine_options_class, get_engine
    from totask_manifest._options import Options

    assert engine_names() == ["local", "ray"]
    for name in engine_names():
        assert issubclass(engine_options_class(name), Options), name
    assert get_engine("local").name == "local"


def test_every_task_type_is_found_by_name():
    from totask_manifest._task_types import TASK_TYPES, get_task_type

    assert TASK_TYPES
    for name in TASK_TYPES:
        assert get_task_type(name) is TASK_TYPES[name]


def test_every_lazy_export_resolves():
    """The Synapse package's names load their modules on first use, like the package's own."""
    import totask_manifest._synapse as synapse

    for name in synapse._EXPORTS:
        module = importlib.import_module(synapse._EXPORTS[name], synapse.__name__)
        assert getattr(synapse, name) is getattr(module, name), name


def test_the_formats_the_cli_lists_without_the_converters_are_the_converters():
    """``convert --to/--from`` choices come from a constant kept apart so the CLI loads no
    converter; it must name exactly the formats the converters handle."""
    from totask_manifest._analytics import FORMATS, MANIFEST
    from totask_manifest._analytics.convert import EXPORTERS, IMPORTERS

    assert set(FORMATS) == {MANIFEST, *EXPORTERS} == {MANIFEST, *IMPORTERS}


# -- a plain local path is read without fsspec, as fsspec would read it ------------------------------

@pytest.mark.parametrize(
    ("url", "plain"),
    [("in.manifest", True), ("./a/in.manifest", True), ("/abs/in.manifest", True),
     ("in.manifest/", False), ("~/in.manifest", False), ("file:///x", False), ("s3:/b/x", False),
     ("s3://b/x", False), ("simplecache::s3://b/x", False), ("", False)],
)
def test_only_a_path_fsspec_would_open_unchanged_skips_it(url, plain):
    from totask_manifest._storage import plain_local_path

    assert (plain_local_path(url) == url) is plain
    assert plain or plain_local_path(url) is None


def test_a_plain_path_reads_the_file_fsspec_reads(tmp_path, monkeypatch):
    from totask_manifest._storage import open_read, url_to_fs

    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "in.manifest").write_bytes(b'{"source-ref": "a"}\n')
    monkeypatch.chdir(tmp_path)
    with open_read("d/in.manifest") as f:
        ours = f.read()
    fs, path = url_to_fs("d/in.manifest")
    assert ours == fs.cat_file(path) == b'{"source-ref": "a"}\n'


@pytest.mark.slow
def test_commands_are_found_in_an_install_without_sources(tmp_path: Path) -> None:
    """An image that ships bytecode only (``compileall -b``, then every ``.py`` removed) has no
    ``.py`` in ``_cli``: the folder listing found no command at all ('invalid choice: validate
    (choose from )'), where ``pkgutil.iter_modules``, which it replaced, found the ``.pyc`` files."""
    import compileall
    import shutil

    package = tmp_path / "totask_manifest"
    shutil.copytree(REPO / "totask_manifest", package, ignore=shutil.ignore_patterns("__pycache__"))
    cli = package / "_cli"
    assert compileall.compile_dir(str(cli), legacy=True, quiet=1)
    for source in cli.glob("*.py"):
        source.unlink()
    r = subprocess.run([sys.executable, "-m", "totask_manifest", "validate", "--help"], capture_output=True,
                       text=True, cwd=tmp_path, env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"},
                       timeout=120)
    assert r.returncode == 0 and r.stdout.startswith("usage: totask-manifest validate"), r.stderr
    listed = subprocess.run([sys.executable, "-m", "totask_manifest", "--help"], capture_output=True, text=True,
                            cwd=tmp_path, env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"}, timeout=120)
    assert all(f"    {name} " in listed.stdout for name in _commands()), listed.stdout
