"""One mask class drawn in two colours across lines, or one colour given two classes (within a
line or across lines), by semantic segmentation's ``internal-color-map``: ``validate --strict``
said valid, exit 0, while the COCO export refuses both (``mask_colors.CategoryColors``) and a
mask's pixel's colour IS its class. ``validate`` now warns (``color-map-conflict``, an error with
``--strict``) on each such line, the same on every path (typed, runs, per line) and across
parallel byte ranges, where the messages name the file's lines, not a range's. Colours compare as
the COCO export compares them (``#FF0000`` is ``#ff0000``); the background (index 0) may change
colour from image to image, but no class may take a colour the background had.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.test_class_map_conflict import _by_ranges, single_and_parallel
from tests.test_coco_mask_colors import MAP, _line
from tests.test_convert_silent_losses import _refused
from tests.test_user_mistakes import cli
from tests.test_validate import manifest, same_reports
from totask_manifest import validate_manifest
from totask_manifest._manifest import line_check

RULE = "color-map-conflict"
KEY = "seg-ref-metadata.internal-color-map.{}.hex-color"
ONE_COLOUR = "one class id, one colour"
ONE_CLASS = "a mask tells its classes apart by colour, so one colour names one class"


def masks(n: int, colors: dict[int, str], background: str = "#ffffff") -> dict:
    """Line ``n``: a mask label drawing class ``c`` in ``colors[c]`` (named ``k<c>``), its
    background in ``background``."""
    drawn = {"0": {"class-name": "BACKGROUND", "hex-color": background, "confidence": 0}}
    drawn |= {str(c): {"class-name": f"k{c}", "hex-color": color, "confidence": 0} for c, color in colors.items()}
    return {"source-ref": f"s3://b/{n}.png", "seg-ref": f"s3://b/masks/{n}.png",
            "seg-ref-metadata": {"internal-color-map": drawn, "type": "groundtruth/semantic-segmentation",
                                 "human-annotated": "yes", "creation-date": "2022-09-09T17:25:32.047919",
                                 "job-name": "labeling-job/s10"}}


def found(report) -> list[tuple[int, str, str]]:
    return [(p.line, p.key, p.message) for p in report.problems if p.rule == RULE]


def test_the_testers_file_is_said_refused_with_strict_and_by_coco(tmp_path: Path) -> None:
    """Line 2 draws class 1 otherwise than line 1: COCO refused it, ``validate --strict`` passed it."""
    other = {**MAP, "1": {**MAP["1"], "hex-color": "#654321"}}
    (tmp_path / "m.manifest").write_bytes(_line(tmp_path, MAP, "a.png") + _line(tmp_path, other, "b.png"))
    report = validate_manifest(str(tmp_path / "m.manifest"))
    assert report.ok and report.warnings == 1
    assert [str(p) for p in report.problems] == [
        f"line 2: warning: {KEY.format(1)}: '#654321' differs from '#123456' (line 1): {ONE_COLOUR} [{RULE}]"]
    r = cli("validate", "m.manifest", "--strict", cwd=tmp_path)
    assert r.returncode == 1 and f"line 2: error: {KEY.format(1)}: '#654321' differs" in r.stdout, r.stdout
    assert cli("validate", "m.manifest", cwd=tmp_path).returncode == 0
    line = _refused(tmp_path, "m.manifest", "d.json", "--to", "coco")
    assert f"line 2, key '{KEY.format(1)}'" in line, line


def test_one_colour_for_two_classes_on_one_line_is_said_as_coco_refuses_it(tmp_path: Path) -> None:
    cmap = {**MAP, "3": {**MAP["3"], "hex-color": "#123456"}}
    (tmp_path / "m.manifest").write_bytes(_line(tmp_path, cmap))
    report = validate_manifest(str(tmp_path / "m.manifest"), strict=True)
    assert [str(p) for p in report.problems] == [
        f"line 1: error: {KEY.format(3)}: class id 3 for '#123456' differs from class id 1 (on this line): {ONE_CLASS} "
        f"[{RULE}]"]
    assert "classes 1 and 3 are both #123456" in _refused(tmp_path, "m.manifest", "d.json", "--to", "coco")


def _clashes(count: int) -> tuple[list[dict], list[tuple[int, str, str]]]:
    """``count`` lines drawing classes 1-2 or 1-3 alike, but for those the returned findings say."""
    records = [masks(n, {1: "#ff0000", 2 + n % 2: f"#00{n % 2}0ff"}) for n in range(1, count + 1)]
    records[99] = masks(100, {1: "#FF0000", 2: "#0000FF"}, background="#FFFFFF")  # the same colours: not said
    records[149] = masks(150, {1: "#ff0001", 2: "#0000ff"})  # class 1 another colour
    records[199] = masks(200, {1: "#ff0000", 7: "#0000ff"})  # class 2's colour under 7
    records[249] = masks(250, {1: "#ff0000"}, background="#00ff00")  # the background's own: not held
    records[299] = masks(300, {4: "#ffffff"})  # the background's colour under 4
    records[349] = masks(350, {5: "#00ff00"})  # the colour line 250's background had
    records[399] = masks(400, {1: "#ff0000"}, background="#ff0000")  # a background of class 1's colour
    records[449] = masks(450, {6: "#abcdef", 8: "#ABCDEF"})  # two classes of one colour on one line
    said = [(150, KEY.format(1), f"'#ff0001' differs from '#ff0000' (line 1): {ONE_COLOUR}"),
            (200, KEY.format(7), f"class id 7 for '#0000ff' differs from class id 2 (line 2): {ONE_CLASS}"),
            (300, KEY.format(4), f"class id 4 for '#ffffff' differs from class id 0 (line 1): {ONE_CLASS}"),
            (350, KEY.format(5), f"class id 5 for '#00ff00' differs from class id 0 (line 250): {ONE_CLASS}"),
            (400, KEY.format(0), f"class id 0 for '#ff0000' differs from class id 1 (line 1): {ONE_CLASS}"),
            (450, KEY.format(8), f"class id 8 for '#abcdef' differs from class id 6 (on this line): {ONE_CLASS}")]
    return records, said


def test_every_path_says_each_line_and_names_the_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The typed path and the runs hold each line's (index, colour) pairs to those met, and leave
    a new pair or a clash to the per-line path: the same report as line by line; every line with
    a clash is said, not only the first."""
    records, said = _clashes(600)
    records[499] = masks(500, {1: "#ff0001"})  # class 1's clash again, said again
    said.append((500, KEY.format(1), f"'#ff0001' differs from '#ff0000' (line 1): {ONE_COLOUR}"))
    line_check._TYPED_PLANS.clear()
    report = same_reports(manifest(tmp_path, records), monkeypatch)
    assert found(report) == sorted(said)
    assert report.ok and report.warnings == len(said)
    strict = validate_manifest(manifest(tmp_path, records), strict=True)
    assert not strict.ok and strict.attributes["seg-ref"].invalid == len(said)


def test_the_typed_path_takes_clean_mask_lines(tmp_path: Path) -> None:
    """The colours' test leaves clean lines on the typed path (else the cost is the per-line path's)."""
    from totask_manifest._manifest.blocks import BLOCK_BYTES, iter_blocks
    from totask_manifest._manifest.problems import Collector

    path = manifest(tmp_path, [masks(n, {1: "#ff0000", 2: "#00FF00"}) for n in range(1, 2001)])
    out = Collector(False, 1000)
    checker = line_check.LineChecker(None, None, None, out)
    with open(path, "rb") as f:
        checker.run(iter_blocks(f, start=0, end=None, chunk=BLOCK_BYTES))
    assert out.warnings == 0 and checker.typed_lines > 1900


def test_a_class_renamed_in_its_known_colour_is_said_on_every_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The hot paths hold a color map's entries, name and colour at once, to those known clean: a
    line naming class 2 otherwise in class 2's own colour (its colour clean, its name not) is
    said each time, on every path, never learnt as clean by the per-line path that said it."""
    records = [masks(n, {1: "#ff0000", 2: "#00ff00"}) for n in range(1, 401)]
    renamed = (100, 101, 250, 399)
    for n in renamed:
        records[n - 1]["seg-ref-metadata"]["internal-color-map"]["2"]["class-name"] = "other"
    line_check._TYPED_PLANS.clear()
    report = same_reports(manifest(tmp_path, records), monkeypatch)
    key = "seg-ref-metadata.internal-color-map.2.class-name"
    assert [(p.line, p.key, p.message) for p in report.problems if p.rule == "class-map-conflict"] == [
        (n, key, "'other' differs from 'k2' (line 1): one class id, one name") for n in renamed]
    assert report.warnings == len(renamed) and not found(report)


def test_parallel_ranges_give_the_files_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A later range drawing class 1 otherwise than the file's first (lines 301-600) is checked
    again, held to the file's; a colour first given in a later range is named by its line in the
    file; a clash between two ranges that neither sees in itself is found."""
    records = ([masks(n, {1: "#ff0000"}) for n in range(1, 301)] + [masks(n, {1: "#00ff00"}) for n in range(301, 601)]
               + [masks(n, {1: "#ff0000", 9 if n < 850 else 10: "#0000ff"}) for n in range(601, 901)])
    path = manifest(tmp_path, records)
    single, parallel = single_and_parallel(path, monkeypatch)
    assert found(single) == found(parallel)
    assert found(parallel) == (
        [(n, KEY.format(1), f"'#00ff00' differs from '#ff0000' (line 1): {ONE_COLOUR}") for n in range(301, 601)]
        + [(n, KEY.format(10), f"class id 10 for '#0000ff' differs from class id 9 (line 601): {ONE_CLASS}")
           for n in range(850, 901)])
    assert parallel.attributes == single.attributes


def test_ranges_merged_name_each_colours_first_line_in_the_file(tmp_path: Path) -> None:
    """A range of lines 3-6 that first draws class 2 '#00ff00' (line 4) says line 4 as the file
    numbers it, as the whole file checked at once does, for an index's colour and a colour's index."""
    drawn = [{1: "#ff0000"}, {1: "#ff0000"}, {1: "#ff0000"}, {2: "#00ff00"}, {2: "#00ff01"}, {6: "#00FF00"}]
    path = manifest(tmp_path, [masks(n, x) for n, x in enumerate(drawn, 1)])
    whole = _by_ranges(path, [1], RULE)
    assert [(n, m) for n, _, m in whole] == [
        (5, f"'#00ff01' differs from '#00ff00' (line 4): {ONE_COLOUR}"),
        (6, f"class id 6 for '#00ff00' differs from class id 2 (line 4): {ONE_CLASS}")]
    assert _by_ranges(path, [1, 3], RULE) == _by_ranges(path, [1, 4], RULE) == whole


def test_a_later_range_giving_a_colour_two_classes_on_one_line_names_the_files_first(tmp_path: Path) -> None:
    """Line 4 draws classes 1 and 4 '#ff0000', which line 1 gave class 1: a range of lines 3-4
    said "(on this line)", the whole file "(line 1)"; merged, the ranges say what the file does."""
    drawn = [{1: "#ff0000"}, {2: "#00ff00"}, {2: "#00ff00"}, {1: "#ff0000", 4: "#ff0000"}]
    path = manifest(tmp_path, [masks(n, x) for n, x in enumerate(drawn, 1)])
    assert _by_ranges(path, [1], RULE) == _by_ranges(path, [1, 3], RULE) == [
        (4, KEY.format(4), f"class id 4 for '#ff0000' differs from class id 1 (line 1): {ONE_CLASS}")]
    alone = [{1: "#ff0000"}, {2: "#00ff00"}, {2: "#00ff00"}, {3: "#0000ff", 4: "#0000ff"}]  # first on line 4 itself
    path = manifest(tmp_path, [masks(n, x) for n, x in enumerate(alone, 1)])
    assert _by_ranges(path, [1], RULE) == _by_ranges(path, [1, 3], RULE) == [
        (4, KEY.format(4), f"class id 4 for '#0000ff' differs from class id 3 (on this line): {ONE_CLASS}")]


def test_a_colour_the_schema_refuses_is_the_schemas_to_say(tmp_path: Path) -> None:
    records = [masks(1, {1: "#ff0000"}), masks(2, {1: "red"})]
    report = validate_manifest(manifest(tmp_path, records))
    assert not found(report) and [p.rule for p in report.problems] == ["schema-pattern"]


def test_the_rule_is_documented() -> None:
    doc = (Path(__file__).parents[1] / "docs" / "validate.md").read_text(encoding="utf-8")
    assert f"`{RULE}` (warning; error with `--strict`)" in doc
