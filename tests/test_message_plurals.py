"""Counts in messages take their noun's number (``_errors.counted``): these said "(s)" whatever
the count ("1 line(s) are not a JSON object", "ray: line(s) 3-3 lost", "1 error(s)"), or the
plural alone ("detection (1 images, ...)", "nor do the --append manifest(s) b.manifest")."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.jobs_helpers import TOY, run_cli
from totask_manifest._analytics.evaluate.text import _sweep
from totask_manifest._engines.ray_driver import Batch
from totask_manifest._errors import agreeing, counted
from totask_manifest._manifest.line import Line
from totask_manifest._outcomes import Item

#: a plural or a verb's agreement built by hand in an f-string: ``{'s' if n != 1 else ''}``,
#: ``{'es' if one else ''}``, ``{'' if one else 's'}``
_HAND_BUILT = re.compile(r"\{'(e?s)?' if [^{}]*else '(e?s)?'\}")
_PACKAGE = Path(__file__).resolve().parents[1] / "totask_manifest"


def _batch(*numbers: int) -> Batch:
    return Batch([(Line(n, b"{}"), Item(n - 1, n, {})) for n in numbers])


def test_a_batch_of_one_line_is_named_as_one_line() -> None:
    """A batch's span, in the driver's warnings: ``line 3`` alone (it said ``line(s) 3-3``)."""
    assert _batch(3).span == "line 3"
    assert _batch(3, 4, 5, 6, 7).span == "lines 3-7"


def _sweep_of(items: int, errors: int, unscored: int, unscored_errors: int) -> dict:
    return {"items": items, "errors": errors, "share": 0.9, "suggested": None, "thresholds": [],
            "without_confidence": {"items": unscored, "errors": unscored_errors}}


def test_the_review_sweep_counts_its_items_and_errors_in_their_number() -> None:
    one = _sweep("box", _sweep_of(1, 1, 1, 1))
    assert one[0] == "  review sweep (boxes): 1 box, 1 error", one
    assert one[1] == "    1 box without a confidence (never routed) holds 1 error", one
    many = _sweep("line", _sweep_of(1200, 0, 2, 0))
    assert many[0] == "  review sweep (lines): 1,200 lines, 0 errors", many
    assert many[1] == "    2 lines without a confidence (never routed) hold 0 errors", many


@pytest.mark.slow
def test_an_empty_input_and_one_empty_append_manifest_are_named_in_the_singular(tmp_path: Path) -> None:
    (tmp_path / "in.manifest").write_bytes(b"\n")
    (tmp_path / "more.manifest").write_bytes(b"")
    r = run_cli("annotate", "in.manifest", "--append", "more.manifest", "--job-name", "j", "--label-attribute",
                "cls", "--task-type", "image-classification", "--method", TOY, "--output", "out", cwd=tmp_path)
    assert r.returncode == 1, r.stderr
    assert "holds no data object (1 line, all blank), nor does the --append manifest " in r.stderr, r.stderr
    assert "(s)" not in r.stderr, r.stderr


def test_no_module_builds_a_plural_or_an_agreement_by_hand() -> None:
    """Counts and their words go through ``counted`` and ``agreeing`` (review 13: eight ``'s' if``
    were left, each its own rule: ``n != 1`` here, ``n > 1`` there)."""
    found = [f"{path.relative_to(_PACKAGE)}:{n}" for path in sorted(_PACKAGE.rglob("*.py"))
             for n, text in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
             if _HAND_BUILT.search(text)]
    assert found == []


def test_agreeing_picks_the_word_for_the_count_as_counted_does() -> None:
    assert [agreeing(n, "holds", "hold") for n in (0, 1, 2)] == ["hold", "holds", "hold"]
    assert [counted(n, "box", "boxes") for n in (0, 1, 2)] == ["0 boxes", "1 box", "2 boxes"]
