"""The real Ground Truth manifests in ``../shared/gt-manifests``, found once for every test module.

Tests read them in place beside the checkout and never copy them. Where the folder is missing, a
module that needs it is skipped with one clear reason (``requires_gt``, or the ``gt_manifests``
fixture of ``tests/conftest.py``), and lists built at collection (``gt_files``) are empty instead of
failing the import.
"""

from __future__ import annotations

from pathlib import Path

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
