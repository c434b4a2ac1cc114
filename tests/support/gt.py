"""The real Ground Truth manifests in ``../shared/gt-manifests``, found once for every test module.

Tests read them in place beside the checkout and never copy them. Where the folder is missing, a
module that needs it is skipped with one clear reason (``requires_gt``, or the ``gt_manifests``
fixture of ``tests/conftest.py``), and lists built at collection (``gt_files``) are empty instead of
failing the import.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

#: ``<checkout>/../shared/gt-manifests``
GT_MANIFESTS = Path(__file__).resolve().parents[2].parent / "shared" / "gt-manifests"
SKIP_REASON = "../shared/gt-manifests not found beside the checkout"
HAVE_GT = GT_MANIFESTS.is_dir()

#: ``pytestmark = requires_gt`` skips a whole module when the folder is missing
requires_gt = pytest.mark.skipif(not HAVE_GT, reason=SKIP_REASON)


def gt_files(*suffixes: str) -> list[Path]:
    """The folder's files ending in one of ``suffixes`` (all files when none), sorted; [] when missing."""
    if not HAVE_GT:
        return []
    return sorted(p for p in GT_MANIFESTS.iterdir() if p.is_file() and (not suffixes or p.name.endswith(suffixes)))


#: a real manifest over this many bytes runs its per-file test cases in the slow lane only; the
#: fast lane keeps every smaller file (the same shapes and task types, a fraction of the lines)
BIG_BYTES = 100_000


def real_cases(cases: Iterable[Any]) -> list[Any]:
    """Cases for ``pytest.mark.parametrize`` over real files: a file name or ``Path``, or a tuple
    whose first item is one. Cases of a file over ``BIG_BYTES`` are marked ``slow``."""
    out: list[Any] = []
    for case in cases:
        values = case if isinstance(case, tuple) else (case,)
        path = GT_MANIFESTS / Path(values[0]).name
        if path.is_file() and path.stat().st_size > BIG_BYTES:
            out.append(pytest.param(*values, marks=pytest.mark.slow))
        else:
            out.append(case)
    return out
