"""What the wheel ships, read from the build configuration (building a wheel needs hatchling,
which the test environment does not install)."""

from __future__ import annotations

import tomllib

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
