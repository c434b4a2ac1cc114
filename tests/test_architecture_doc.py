"""docs/architecture.md is a map a newcomer trusts: every ``module.function`` it names exists, and
its table of floors is the package's real import order.

Names in the doc are backticked and dotted, relative to ``totask_manifest``
(``_jobs.selection.needs_label``) or absolute (``totask_manifest.annotate``). A renamed or removed
function, or an import that climbs a floor, fails here rather than misleading a reader."""

from __future__ import annotations

import ast
import functools
import importlib
import re
from pathlib import Path

import pytest

from tests.jobs_helpers import REPO
from tests.test_layers import PACKAGE, imports_of, module_name

DOC = REPO / "docs" / "architecture.md"
TEXT = DOC.read_text(encoding="utf-8")

#: a backticked dotted name of the package: ``_a.b.c`` or ``totask_manifest.x``
_NAME = re.compile(r"`((?:totask_manifest\.)?_[a-z][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)+)`")


def named() -> list[str]:
    return sorted(set(_NAME.findall(TEXT)) | {f"totask_manifest.{n}" for n in ("annotate", "apply_job")})


def _defined(body: list[ast.stmt], name: str) -> ast.AST | None:
    """The statement of ``body`` that defines ``name`` (a function, class or assignment)."""
    for node in body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) and node.name == name:
            return node
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.target.id == name:
            return node
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            return node
    return None


@functools.cache
def _module_body(path: Path) -> list[ast.stmt]:
    return ast.parse(path.read_text(encoding="utf-8")).body


def find_statically(name: str) -> bool:
    """Whether the source defines ``name``: the longest prefix that is a module file, then
    definitions inside it (classes' methods too). Reads the files, imports nothing: torch and
    ray stay out of the fast lane, and names in modules of extras not installed are checked too."""
    parts = (name.removeprefix("totask_manifest.")).split(".")
    for cut in range(len(parts), 0, -1):
        base = PACKAGE.joinpath(*parts[:cut])
        path = base / "__init__.py" if base.is_dir() else base.with_suffix(".py")
        if not path.is_file():
            continue
        body = _module_body(path)
        for attr in parts[cut:]:
            node = _defined(body, attr)
            if node is None:
                return False
            body = node.body if isinstance(node, ast.ClassDef) else []
        return True
    return False


def resolve(name: str) -> object | None:
    """The object a dotted name names, by import: for names the source does not define itself
    (the package's lazy exports, re-exports). The longest importable module prefix, then attributes."""
    full = name if name.startswith("totask_manifest.") else f"totask_manifest.{name}"
    parts = full.split(".")
    for cut in range(len(parts), 0, -1):
        module_path = ".".join(parts[:cut])
        try:
            obj: object = importlib.import_module(module_path)
        except ModuleNotFoundError as exc:
            if exc.name and not exc.name.startswith("totask_manifest"):
                return None  # an optional extra (torch, ray) is not installed: nothing to check
            if exc.name is not None and not module_path.startswith(exc.name):
                raise
            continue
        for attr in parts[cut:]:
            obj = getattr(obj, attr)  # AttributeError: the doc names something that is not there
        return obj
    raise AssertionError(f"{name}: no module")


def test_the_doc_names_many_functions() -> None:
    """The check below could pass on a doc whose names the pattern no longer finds."""
    names = named()
    assert len(names) >= 80, names
    assert "_jobs.recorder.Recorder.accept" in names
    assert "_synapse.apply._ApplyRun._decide_and_write" in names


def test_every_named_function_exists() -> None:
    missing = []
    for name in named():
        if find_statically(name):
            continue
        try:
            resolve(name)
        except (AttributeError, ImportError, AssertionError) as exc:
            missing.append(f"{name}: {type(exc).__name__}: {exc}")
    assert not missing, "docs/architecture.md names what the code does not have:\n" + "\n".join(missing)


def test_a_name_that_is_not_there_is_found_neither_way() -> None:
    assert find_statically("_jobs.recorder.Recorder.accept")
    assert find_statically("_annotators.base._REGISTRY") and find_statically("_outcomes.Item")
    assert not find_statically("_jobs.recorder.Recorder.no_such_method")
    assert not find_statically("_jobs.no_such_module.f")
    with pytest.raises(AttributeError):
        resolve("_jobs.recorder.Recorder.no_such_method")


# -- floors ---------------------------------------------------------------------------------------

def floors() -> dict[str, int]:
    """package -> floor, from the table of section 3 (the packages column)."""
    section = TEXT.split("## 3. Floors", 1)[1].split("\n## ", 1)[0]
    out: dict[str, int] = {}
    for row in section.splitlines():
        cells = [c.strip() for c in row.strip().strip("|").split("|")]
        if len(cells) < 2 or not cells[0].isdigit():
            continue
        for pkg in re.findall(r"`(_[a-z][a-z_]*)`", cells[1]):
            assert pkg not in out, f"{pkg} is on two floors"
            out[pkg] = int(cells[0])
    return out


def _top(name: str) -> str | None:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "totask_manifest" else None


def test_every_internal_module_has_a_floor() -> None:
    table = floors()
    tops = {p.relative_to(PACKAGE).parts[0].removesuffix(".py") for p in PACKAGE.rglob("*.py")}
    internal = {t for t in tops if t.startswith("_") and not t.startswith("__")}
    assert internal - set(table) == set(), "modules missing from the floors table"
    assert set(table) - internal == set(), "the floors table names modules that do not exist"


def test_no_import_climbs_a_floor() -> None:
    table = floors()
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        source = _top(module_name(path))
        if source not in table:
            continue
        for target in sorted(imports_of(path)):
            up = _top(target)
            if up in table and up != source and table[up] > table[source]:
                offenders.append(f"{path.relative_to(REPO)} (floor {table[source]}) imports {target} "
                                 f"(floor {table[up]})")
    assert not offenders, "\n".join(offenders)
