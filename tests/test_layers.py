"""No import runs back up a floor: the job folder, the Synapse backend, formats and analytics
know nothing of the job runner (``api``) or of the ToTask action above it, and the outcome
types they share live on the ground floor, not with the annotators.

Every ``import`` and ``from ... import`` of the package is read (those inside functions too),
relative ones resolved, so a lazy import cannot hide an arrow."""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest

from tests.jobs_helpers import REPO

PACKAGE = REPO / "totask_manifest"

#: (the modules under this prefix, may never import a module under this one)
NEVER = [
    ("totask_manifest._jobs", "totask_manifest._api"),
    ("totask_manifest._jobs", "totask_manifest._annotators"),
    ("totask_manifest._jobs", "totask_manifest._to_task"),
    ("totask_manifest._synapse", "totask_manifest._api"),
    ("totask_manifest._synapse", "totask_manifest._to_task"),
    ("totask_manifest._formats", "totask_manifest._annotators"),
    ("totask_manifest._analytics", "totask_manifest._annotators"),
    ("totask_manifest._analytics", "totask_manifest._api"),
    ("totask_manifest._manifest", "totask_manifest._jobs"),
    ("totask_manifest._api", "totask_manifest._to_task"),
    ("totask_manifest._outcomes", "totask_manifest._annotators"),
    ("totask_manifest._manifest", "totask_manifest._formats"),
    ("totask_manifest._manifest", "totask_manifest._synapse"),
    ("totask_manifest._jobs", "totask_manifest._synapse"),
    ("totask_manifest._jobs", "totask_manifest._engines"),
    ("totask_manifest._formats", "totask_manifest._jobs"),
    ("totask_manifest._synapse", "totask_manifest._engines"),
    ("totask_manifest._synapse", "totask_manifest._annotators"),  # the pre-processor annotator sits in annotators/
    ("totask_manifest.testing", "totask_manifest._api"),
    ("totask_manifest.testing", "totask_manifest._annotators"),
]


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@functools.cache  # each rule reads every file: parse each once per session (about 1 s of CPU per pass)
def imports_of(path: Path) -> frozenset[str]:
    """Absolute names of every module ``path`` imports (``from a import b`` gives ``a`` and ``a.b``)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package
            for _ in range(node.level - 1):
                base = base.rpartition(".")[0]
            target = f"{base}.{node.module}" if node.level and node.module else (node.module or base)
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)
    return frozenset(found)


def under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


@pytest.mark.parametrize("low, high", NEVER, ids=[f"{a}-x-{b}" for a, b in NEVER])
def test_no_import_runs_back_up(low: str, high: str) -> None:
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if not under(module_name(path), low):
            continue
        up = sorted(n for n in imports_of(path) if under(n, high))
        if up:
            offenders.append(f"{path.relative_to(REPO)} imports {', '.join(up)}")
    assert not offenders, "\n".join(offenders)


def test_the_reader_sees_relative_and_function_level_imports() -> None:
    """The check above could pass by reading nothing: it must find the action's own imports."""
    found = imports_of(PACKAGE / "_to_task" / "action.py")
    assert {"totask_manifest._api", "totask_manifest._jobs.job", "totask_manifest._synapse.preprocessor"} <= found
