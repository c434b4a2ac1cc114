"""What the wheel ships, read from the build configuration (building a wheel needs hatchling,
which the test environment does not install)."""

from __future__ import annotations

import tomllib

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.jobs_helpers import REPO


def test_the_package_is_marked_typed_and_the_wheel_ships_the_marker() -> None:
    """The public API is typed (``totask_manifest.__all__``), but without ``py.typed`` (PEP 561) a
    type checker treats an installed ``totask_manifest`` as untyped: ``from totask_manifest import
    annotate`` was ``Any`` to mypy and pyright in a user's project. Hatchling ships every file of
    the packages it is given that git does not ignore."""
    assert (REPO / "totask_manifest" / "py.typed").is_file()
    wheel = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["hatch"]["build"]["targets"]["wheel"]
    assert "totask_manifest" in wheel["packages"]
    ignored = (REPO / ".gitignore").read_text().split()
    assert not any(pattern in ("py.typed", "*.typed", "totask_manifest/") for pattern in ignored)


#: the oldest release of a dependency that has what the code calls, found by running the code on
#: the releases before it (a fresh venv with the declared minimums, the quick start's commands)
NEEDED = {
    # ``_jobs.lease``: ``pipe_file(path, data, mode="create")`` must refuse an existing file; 2024.10
    # took ``mode`` as an open() keyword, ignored it and overwrote the lease another process held
    "fsspec": "2024.12",
    # the same call on S3, sent as a PUT with ``If-None-Match: *``; 2024.10 has no such mode
    "s3fs": "2024.12",
    # ``_manifest.schemas``: ``jsonschema_rs.Registry``; with 0.28 every label failed the job with
    # "AttributeError: module 'jsonschema_rs' has no attribute 'Registry'" (the quick start FAILED)
    "jsonschema-rs": "0.29",
}


def _declared_minimums() -> list[tuple[str, str, Version]]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    found = []
    for group, requirements in [("dependencies", project["dependencies"]),
                                *project["optional-dependencies"].items()]:
        for text in requirements:
            req = Requirement(text)
            for spec in req.specifier:
                if spec.operator in (">=", "==", "~="):
                    found.append((group, canonicalize_name(req.name), Version(spec.version)))
    return found


def test_the_declared_minimum_versions_have_the_apis_the_code_uses() -> None:
    """``pip install totask-manifest`` beside older packages keeps them when they satisfy the
    declared range: a range that admits a release without the API is a broken install."""
    declared = _declared_minimums()
    for name, needed in NEEDED.items():
        floors = [(group, version) for group, dep, version in declared if dep == canonicalize_name(name)]
        assert floors, f"{name} is not declared"
        for group, version in floors:
            assert version >= Version(needed), f"{group}: {name}>={version} admits releases without what the code uses"


def test_the_version_is_written_once_and_the_license_ships():
    """The version was written twice (pyproject and ``__version__``), free to drift apart; the
    metadata now takes it from the package. The declared Apache-2.0 license text was in neither
    the repository, the wheel nor the sdist."""
    import totask_manifest

    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert "version" not in project["project"] and "version" in project["project"]["dynamic"]
    assert project["tool"]["hatch"]["version"]["path"] == "totask_manifest/__init__.py"
    assert Version(totask_manifest.__version__)
    assert project["project"]["license-files"] == ["LICENSE"]
    assert "Apache License" in (REPO / "LICENSE").read_text() and "Version 2.0" in (REPO / "LICENSE").read_text()
    assert "LICENSE" in project["tool"]["hatch"]["build"]["targets"]["sdist"]["include"]
