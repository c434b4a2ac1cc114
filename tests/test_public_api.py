"""The public API is what ``totask_manifest`` exports, loaded lazily; the README imports only from it."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys

import totask_manifest
from tests.jobs_helpers import REPO
from tests.test_jobs_honest import python_blocks


def test_every_exported_name_resolves_to_the_object_its_module_defines() -> None:
    assert len(totask_manifest.__all__) == len(set(totask_manifest.__all__))
    lazy = totask_manifest._LAZY
    for name in totask_manifest.__all__:
        value = getattr(totask_manifest, name)
        if name in lazy:
            module = importlib.import_module(f"totask_manifest.{lazy[name]}")
            assert value is getattr(module, name), name
        else:
            assert isinstance(value, type) and issubclass(value, totask_manifest.TotaskError), name
    assert set(lazy) <= set(totask_manifest.__all__)
    assert set(totask_manifest.__all__) <= set(dir(totask_manifest))


def test_the_names_users_call_are_exported() -> None:
    wanted = {"annotate", "resume", "chain", "clone", "status", "JobConfig", "JobResult", "validate_manifest",
              "check_label", "manifest_stats", "convert", "write_report", "evaluate_manifest", "labeled_only",
              "export_tasks", "apply_job", "rollback_job", "ToTaskAction", "Annotator", "register_annotator",
              "BatchAnnotator", "Options", "option", "get_engine",
              "Item", "Labeled", "Failed", "Routed", "read_lines", "write_lines", "DELETE", "TotaskError"}
    assert wanted <= set(totask_manifest.__all__)


def test_an_unknown_name_is_an_attribute_error() -> None:
    try:
        totask_manifest.no_such_name  # noqa: B018
    except AttributeError as exc:
        assert "no_such_name" in str(exc)
    else:
        raise AssertionError("an unknown name resolved")


def test_importing_the_package_loads_none_of_its_heavy_parts() -> None:
    """Lazy means ``import totask_manifest`` imports no storage, JSON or HTTP stack (checked in a fresh process)."""
    probe = ("import sys, totask_manifest; "
             "print(' '.join(m for m in ('fsspec', 'orjson', 'aiohttp', 'numpy', 'totask_manifest._api', "
             "'totask_manifest._manifest.io') if m in sys.modules))")
    r = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=REPO)
    assert r.stdout.strip() == ""


def test_the_readme_imports_only_from_the_package() -> None:
    blocks = python_blocks(REPO / "README.md")
    assert blocks
    for block in blocks:
        for node in ast.walk(ast.parse(block)):
            if isinstance(node, ast.ImportFrom):
                assert node.module == "totask_manifest" and node.level == 0, ast.unparse(node)
            elif isinstance(node, ast.Import):
                assert all(alias.name == "totask_manifest" for alias in node.names), ast.unparse(node)


def test_internal_modules_have_private_names() -> None:
    """httpx's rule: what ``__init__`` exports is public, every module under it is private by
    name; the one public module besides it is ``testing``, the test kit for plugin authors."""
    public = {"__init__.py", "__main__.py", "testing", "py.typed"}
    package = REPO / "totask_manifest"
    named = sorted(p.name for p in package.iterdir() if p.suffix == ".py" or (p / "__init__.py").exists())
    assert named, "the package folder holds no module"
    assert [n for n in named if not n.startswith("_") and n not in public] == []


def test_the_docs_import_public_names_or_say_internal() -> None:
    """Every ``from totask_manifest._x import`` in the docs says on its line that it is internal."""
    offenders = []
    for doc in sorted((REPO / "docs").glob("*.md")):
        for number, line in enumerate(doc.read_text(encoding="utf-8").splitlines(), 1):
            if line.startswith("from totask_manifest._") and "internal" not in line:
                offenders.append(f"{doc.name}:{number}: {line}")
    assert offenders == []
