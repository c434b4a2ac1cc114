"""One class id given two names by the lines of one label attribute (``{"0": "고양이"}`` on line 1,
``{"0": "dog"}`` on line 2): ``validate --strict`` said valid, exit 0, while every export refuses
the file (``coco-category``) and ``stats`` notes "class id 0 has several names". ``validate`` now
warns (``class-map-conflict``, an error with ``--strict``) on each line naming an id otherwise than
the attribute's first line naming it, the same on every path (typed, runs, per line) and across
parallel byte ranges, where the messages name the file's lines, not a range's.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson
import pytest
from PIL import Image

from tests.test_stats_fast import _stats, assert_equal
from tests.test_user_mistakes import cli
from tests.test_validate import IC_META, OD_META, manifest, same_reports
from totask_manifest import validate_manifest
from totask_manifest._manifest import ranges as ranges_module
from totask_manifest._manifest import validate as validate_module

RULE = "class-map-conflict"
ML_META = {"class-map": {}, "type": "groundtruth/image-classification-multilabel", "human-annotated": "no",
           "creation-date": "2026-11-21T08:00:00.000000", "job-name": "labeling-job/dogs"}


def boxes(n: int, names: dict[int, str]) -> dict:
    """Line ``n``: one box for each class of ``names``, whose class map names those classes only."""
    return {"source-ref": f"s3://b/{n}.jpg",
            "b": {"image_size": [{"width": 100, "height": 80, "depth": 3}],
                  "annotations": [{"class_id": c, "left": 1, "top": 1, "width": 5, "height": 5} for c in names]},
            "b-metadata": {**OD_META, "objects": [{"confidence": 0.5} for _ in names],
                           "class-map": {str(c): name for c, name in names.items()}}}


def found(report) -> list[tuple[int, str, str]]:
    return [(p.line, p.key, p.message) for p in report.problems if p.rule == RULE]


def test_the_testers_file_is_said_and_refused_with_strict(tmp_path: Path) -> None:
    lines = [boxes(1, {0: "고양이"}), boxes(2, {0: "dog"})]
    (tmp_path / "clash.manifest").write_bytes(b"".join(orjson.dumps(x) + b"\n" for x in lines))
    report = validate_manifest(str(tmp_path / "clash.manifest"))
    assert report.ok and report.warnings == 1
    assert [str(p) for p in report.problems] == [
        "line 2: warning: b-metadata.class-map.0: 'dog' differs from '고양이' (line 1): one class id, one name "
        "[class-map-conflict]"]
    r = cli("validate", "clash.manifest", "--strict", cwd=tmp_path)
    assert r.returncode == 1 and "line 2: error: b-metadata.class-map.0: 'dog' differs from '고양이' (line 1)" in r.stdout
    assert cli("validate", "clash.manifest", cwd=tmp_path).returncode == 0
    stats = cli("stats", "clash.manifest", cwd=tmp_path)
    assert "class id 0 has several names: 'dog' (1), '고양이' (1): one class id, one name" in stats.stdout


def _varied(count: int, clash_at: set[int]) -> list[dict]:
    """Detection lines naming only the classes they use (as the benchmark's do); line ``n`` in
    ``clash_at`` names class ``n % 5`` otherwise."""
    out = []
    for n in range(1, count + 1):
        ids = {n % 5, (n * 3) % 7}
        out.append(boxes(n, {c: (f"other{c}" if n in clash_at and c == n % 5 else f"class{c}") for c in ids}))
    return out


def test_every_path_says_each_line_and_names_the_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The typed path and the runs hold each line's map to the names met (a subset test), and
    leave a new id or another name to the per-line path: the same report as line by line."""
    clash_at = {40, 41, 300, 777}
    report = same_reports(manifest(tmp_path, _varied(800, clash_at)), monkeypatch)
    first = {c: next(n for n in range(1, 800) if c in {n % 5, (n * 3) % 7}) for c in range(7)}
    assert found(report) == [(n, f"b-metadata.class-map.{n % 5}",
                              f"'other{n % 5}' differs from 'class{n % 5}' (line {first[n % 5]}): one class id, one name")
                             for n in sorted(clash_at)]
    assert report.ok and report.warnings == len(clash_at)
    strict = validate_manifest(manifest(tmp_path, _varied(800, clash_at)), strict=True)
    assert not strict.ok and strict.attributes["b"].invalid == len(clash_at)


def test_classification_names_its_class_by_the_label(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A single-label class's name is its ``class-name``, its id the label (``stats`` counts it so)."""
    records = [{"source-ref": f"s3://b/{n}.jpg", "p": n % 3, "p-metadata": {**IC_META, "class-name": f"c{n % 3}"}}
               for n in range(1, 60)]
    records[29]["p-metadata"] = {**IC_META, "class-name": "Sparrow"}  # line 30, class 0
    report = same_reports(manifest(tmp_path, records), monkeypatch)
    assert found(report) == [(30, "p-metadata.class-name",
                              "'Sparrow' (class id 0) differs from 'c0' (line 3): one class id, one name")]


def test_multilabel_class_maps(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    records = [{"source-ref": f"s3://b/{n}.jpg", "m": [n % 4], "m-metadata": {**ML_META, "class-map": {str(n % 4): f"k{n % 4}"}}}
               for n in range(1, 50)]
    records[9]["m-metadata"] = {**ML_META, "class-map": {"2": "k2", "3": "K3"}}  # line 10 names 3 otherwise
    records[9]["m"] = [2]
    report = same_reports(manifest(tmp_path, records), monkeypatch)
    # names equal but for case look alike (``_lookalike``): their code points say which differs
    assert found(report) == [(10, "m-metadata.class-map.3", "'K3' (U+004B U+0033) differs from 'k3' (line 3) "
                                                            "(U+006B U+0033): one class id, one name")]


def single_and_parallel(path: str, monkeypatch: pytest.MonkeyPatch) -> tuple:
    """``path``'s report checked whole by one process, and in small ranges by three."""
    single = validate_manifest(path, workers=1, max_problems=10_000)
    monkeypatch.setattr(ranges_module, "MIN_RANGE_BYTES", 1 << 13)
    return single, validate_manifest(path, workers=3, max_problems=10_000)


def test_parallel_ranges_give_the_files_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A later range whose first naming of an id differs from the file's (lines 301-600 call class 0
    ``dog``) is checked again, held to the file's; a range naming an id as the file does names the
    file's first line, not its own; an id first named in a later range, by its line in the file."""
    records = ([boxes(n, {0: "cat"}) for n in range(1, 301)] + [boxes(n, {0: "dog"}) for n in range(301, 601)]
               + [boxes(n, {0: "cat" if n % 2 else "dog", 9: "late" if n < 850 else "LATE"}) for n in range(601, 901)])
    path = manifest(tmp_path, records)
    single, parallel = single_and_parallel(path, monkeypatch)
    dog = [n for n in range(301, 901) if n <= 600 or n % 2 == 0]
    late = list(range(850, 901))
    assert found(single) == found(parallel)
    assert [(n, k) for n, k, _ in found(parallel)] == sorted(
        [(n, "b-metadata.class-map.0") for n in dog] + [(n, "b-metadata.class-map.9") for n in late])
    assert all(m.endswith("differs from 'cat' (line 1): one class id, one name")
               for _, k, m in found(parallel) if k.endswith(".0"))
    assert all("differs from 'late' (line 601)" in m for _, k, m in found(parallel) if k.endswith(".9"))
    assert parallel.attributes == single.attributes


def _by_ranges(path: str, firsts: list[int], rule: str = RULE) -> list[tuple[int, str, str]]:
    """``validate``'s merge of the byte ranges starting at lines ``firsts`` (the first is 1), each
    checked on its own as a worker checks it; the problems of ``rule`` numbered as in the file."""
    lines = Path(path).read_bytes().splitlines(keepends=True)
    starts = [sum(map(len, lines[: first - 1])) for first in firsts]
    args = (None, None, None, False, 1000)
    parts = [validate_module.check_range(path, start, end, *args)
             for start, end in zip(starts, [*starts[1:], None], strict=True)]
    merged = validate_module._one_type_each(path, parts, args)
    return sorted((p.line + first - 1, p.key, p.message)
                  for part, first in zip(merged, firsts, strict=True) for p in part.problems if p.rule == rule)


@pytest.mark.parametrize("kind", ["class map", "class-name"])
def test_a_later_range_naming_two_ids_alike_names_each_ids_first_line(tmp_path: Path, kind: str) -> None:
    """Lines 3-4, a range of their own, first name class 1 'cat' on line 3 and call class 0 'dog',
    which line 1 named 'cat': the range's messages about class 0 said 'cat' (line 1) as the file
    does, the same text as class 1's first name as the range numbered it, and the merge wrote
    class 1's line (3) into them."""
    if kind == "class map":
        names = [{0: "cat"}, {0: "dog"}, {0: "dog", 1: "cat"}, {0: "dog"}]
        records = [boxes(n, named) for n, named in enumerate(names, 1)]
    else:
        named = [(0, "cat"), (0, "dog"), (1, "cat"), (0, "dog")]
        records = [{"source-ref": f"s3://b/{n}.jpg", "p": cid, "p-metadata": {**IC_META, "class-name": name}}
                   for n, (cid, name) in enumerate(named, 1)]
    path = manifest(tmp_path, records)
    whole = _by_ranges(path, [1])
    said = "'dog' differs" if kind == "class map" else "'dog' (class id 0) differs"
    twice = (3, "class id 1 for 'cat' differs from class id 0 (line 1): one class name, one id")  # 'cat' two ids
    assert [(n, m) for n, _, m in whole] == sorted(
        [(n, f"{said} from 'cat' (line 1): one class id, one name") for n in ([2, 3, 4] if kind == "class map" else [2, 4])]
        + [twice])
    assert _by_ranges(path, [1, 3]) == whole


def test_a_later_range_giving_a_name_two_ids_on_one_line_names_the_files_first(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Line 4 names 'cat' class 3 and 4; line 1 gave 'cat' class 3 first. A range of lines 3-4
    saw 'cat' first on its own line and said "(on this line)"; the file's report, one process or
    parallel ranges, names line 1 (the merge dropped such messages' parts, so never renumbered them)."""
    said = [(4, "b-metadata.class-map.4", "class id 4 for 'cat' differs from class id 3 (line 1): one class name, one id")]
    path = manifest(tmp_path, [boxes(n, x) for n, x in enumerate([{3: "cat"}, {5: "x"}, {5: "x"}, {3: "cat", 4: "cat"}], 1)])
    assert _by_ranges(path, [1]) == _by_ranges(path, [1, 3]) == said
    records = [boxes(n, {3: "cat"} if n < 5 else {5: "x"} if n < 800 else {3: "cat", 4: "cat"}) for n in range(1, 901)]
    single, parallel = single_and_parallel(manifest(tmp_path, records), monkeypatch)
    assert found(single) == found(parallel) == [
        (n, "b-metadata.class-map.4", "class id 4 for 'cat' differs from class id 3 (line 1): one class name, one id")
        for n in range(800, 901)]


@pytest.mark.parametrize("distinct", [False, True])
def test_the_typed_path_reads_maps_by_text_or_as_dicts_and_says_the_same(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, distinct: bool) -> None:
    """Class maps are kept as their text while lines repeat a few (``typed_plan._RawMaps``) and
    decoded as dicts once most texts are new (``_Traffic``: each text read apart cost 50% more CPU on
    maps naming 1-5 of 80 classes); either way a conflict after the switch is said on its line, as
    the per-line path says it."""
    from totask_manifest._manifest import line_check, typed_plan

    monkeypatch.setattr(typed_plan, "TEXTS_SEEN", 256)
    line_check._TYPED_PLANS.clear()
    names = {c: f"class {c}" for c in range(40)}
    if distinct:  # a pair of classes a line: some 780 texts, most lines a new one at first
        records = [boxes(n, {c: names[c] for c in ((n * 7) % 40, (n * 7 + 1 + n // 40) % 40)}) for n in range(1, 2001)]
    else:  # the same full map on every line
        records = [boxes(n, names) for n in range(1, 2001)]
    records[1500]["b-metadata"]["class-map"]["0"] = "renamed"  # line 1501 (a map may name unused classes)
    report = same_reports(manifest(tmp_path, records), monkeypatch)
    assert [(line, key) for line, key, _ in found(report)] == [(1501, "b-metadata.class-map.0")]
    plans = [plan for plan, _ in line_check._TYPED_PLANS.values() if plan._traffic is not None]
    assert plans and all(plan._traffic.dicts is distinct for plan in plans)


def test_stats_says_an_id_named_twice_that_no_box_uses(tmp_path: Path) -> None:
    """``{"1": "c0"}`` on one line, ``{"1": "c5000"}`` on another, boxes of class 0 only: validate
    --strict errors and COCO/YOLO refuse, while ``stats`` said nothing (it counted the boxes only)."""
    lines = [boxes(1, {0: "Bird"}), boxes(2, {0: "Bird"})]
    lines[0]["b-metadata"]["class-map"]["1"] = "c0"
    lines[1]["b-metadata"]["class-map"]["1"] = "c5000"
    (tmp_path / "unused.manifest").write_bytes(b"".join(orjson.dumps(x) + b"\n" for x in lines))
    assert cli("validate", "unused.manifest", "--strict", cwd=tmp_path).returncode == 1
    stats = cli("stats", "unused.manifest", cwd=tmp_path)
    assert stats.returncode == 0, stats.stderr
    assert "class id 1 has several names: 'c0' (0), 'c5000' (0): one class id, one name" in stats.stdout, stats.stdout
    assert "class id 0 has several names" not in stats.stdout


EXPORTS = {"coco": "o.json", "yolo": "o", "dm-schema-v1": "o.dm.jsonl", "synapse-objects": "o.objects.jsonl",
           "parquet": "o.parquet"}


@pytest.mark.parametrize("to", EXPORTS)
def test_an_export_refuses_the_file_or_carries_each_lines_name(tmp_path: Path, to: str) -> None:
    """docs/validate.md: COCO and YOLO hold one name per class for the whole file, so they refuse,
    naming the key as validate does; DM, Synapse objects and Parquet carry each line's class map,
    and read back as the same names on the same lines."""
    lines = [boxes(1, {0: "Bird"}), boxes(2, {0: "bird"})]
    (tmp_path / "in.manifest").write_bytes(b"".join(orjson.dumps(x) + b"\n" for x in lines))
    r = cli("convert", "in.manifest", EXPORTS[to], "--to", to, cwd=tmp_path)
    if to in ("coco", "yolo"):
        assert r.returncode == 1 and r.stderr.count("\n") == 1, r.stderr
        assert "line 2, key 'b-metadata.class-map': " in r.stderr and "'bird'" in r.stderr, r.stderr
        assert sorted(p.name for p in tmp_path.iterdir()) == ["in.manifest"]
        return
    assert r.returncode == 0, r.stderr
    attribute = () if to == "parquet" else ("--label-attribute", "b")  # Parquet keeps every line whole
    back = cli("convert", EXPORTS[to], "back.manifest", "--from", to, "--to", "manifest", *attribute, cwd=tmp_path)
    assert back.returncode == 0, back.stderr
    read = [orjson.loads(x) for x in (tmp_path / "back.manifest").read_bytes().splitlines()]
    assert [x["b-metadata"]["class-map"] for x in read] == [{"0": "Bird"}, {"0": "bird"}]
    assert [x["b"]["annotations"][0]["class_id"] for x in read] == [0, 0]


def test_a_later_ranges_first_name_holding_the_messages_words_is_numbered_as_the_file(tmp_path: Path) -> None:
    """Line 3, the first of a range of its own, names class 5 first with a name holding the words
    of the message (" differs from "); line 4 calls it 'c'. The merge read the range's messages by
    their words, split the name there, and kept the range's line number (1) for the file's (3)."""
    names = [{0: "cat"}, {0: "cat"}, {5: "a' differs from 'b"}, {5: "c"}]
    path = manifest(tmp_path, [boxes(n, named) for n, named in enumerate(names, 1)])
    whole = _by_ranges(path, [1])
    assert [(n, m) for n, _, m in whole] == [
        (4, "'c' differs from \"a' differs from 'b\" (line 3): one class id, one name")]
    assert _by_ranges(path, [1, 3]) == whole


# ---- one class name under two ids (line 1 calls class 0 'car', line 9 calls class 3 'car')

TWICE = "one class name, one id"


def test_one_name_under_two_ids_is_said_and_refused_with_strict(tmp_path: Path) -> None:
    """The tester's file: ``stats`` said "class 'car' has several ids" and COCO refused it, while
    ``validate --strict`` said valid (exit 0)."""
    lines = [boxes(n, {0: "car", 1: "bus"}) for n in range(1, 9)] + [boxes(9, {3: "car"}), boxes(10, {0: "car"})]
    (tmp_path / "twice.manifest").write_bytes(b"".join(orjson.dumps(x) + b"\n" for x in lines))
    report = validate_manifest(str(tmp_path / "twice.manifest"))
    assert report.ok and report.warnings == 1
    assert [str(p) for p in report.problems] == [
        f"line 9: warning: b-metadata.class-map.3: class id 3 for 'car' differs from class id 0 (line 1): {TWICE} "
        "[class-map-conflict]"]
    r = cli("validate", "twice.manifest", "--strict", cwd=tmp_path)
    assert r.returncode == 1 and "line 9: error: b-metadata.class-map.3: class id 3 for 'car'" in r.stdout, r.stdout
    assert cli("validate", "twice.manifest", cwd=tmp_path).returncode == 0
    assert "class 'car' has several ids" in cli("stats", "twice.manifest", cwd=tmp_path).stdout
    coco = cli("convert", "twice.manifest", "o.json", "--to", "coco", cwd=tmp_path)
    assert coco.returncode == 1 and "line 9, key 'b-metadata.class-map'" in coco.stderr, coco.stderr


def test_every_path_says_each_line_giving_a_name_another_id(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The hot paths hold a pair that breaks either way out of their tables, so every line naming
    it (not only the first) takes the per-line path and is said, as line by line; an id named
    twice and a name under two ids on one line are both said."""
    clash_at = {40, 41, 300, 777}
    records = _varied(800, set())
    for n in clash_at:  # class 1000 + n, new, named as class n % 5 is
        records[n - 1]["b-metadata"]["class-map"][str(1000 + n)] = f"class{n % 5}"
    records[500]["b-metadata"]["class-map"] = {"0": "class1", "1": "class1"}  # line 501: both ways
    records[500]["b"]["annotations"] = [{"class_id": 0, "left": 1, "top": 1, "width": 5, "height": 5}]
    records[500]["b-metadata"]["objects"] = [{"confidence": 0.5}]
    report = same_reports(manifest(tmp_path, records), monkeypatch)
    first = {c: next(n for n in range(1, 800) if c in {n % 5, (n * 3) % 7}) for c in range(7)}
    assert found(report) == sorted(
        [(n, f"b-metadata.class-map.{1000 + n}", f"class id {1000 + n} for 'class{n % 5}' differs from class id {n % 5} "
                                       f"(line {first[n % 5]}): {TWICE}") for n in clash_at]
        + [(501, "b-metadata.class-map.0", f"'class1' differs from 'class0' (line {first[0]}): one class id, one name"),
           (501, "b-metadata.class-map.0", f"class id 0 for 'class1' differs from class id 1 (line {first[1]}): {TWICE}")])
    strict = validate_manifest(manifest(tmp_path, records), strict=True)
    assert not strict.ok and strict.attributes["b"].invalid == len(clash_at) + 1


def test_classification_gives_a_name_two_ids(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    records = [{"source-ref": f"s3://b/{n}.jpg", "p": n % 3, "p-metadata": {**IC_META, "class-name": f"c{n % 3}"}}
               for n in range(1, 60)]
    records[29] = {**records[29], "p": 7, "p-metadata": {**IC_META, "class-name": "c2"}}  # line 30
    records[44] = {**records[44], "p": 7, "p-metadata": {**IC_META, "class-name": "c2"}}  # line 45: said again
    report = same_reports(manifest(tmp_path, records), monkeypatch)
    assert found(report) == [(n, "p-metadata.class-name", f"class id 7 for 'c2' differs from class id 2 (line 2): {TWICE}")
                             for n in (30, 45)]


def _masks(n: int, names: dict[int, str]) -> dict:
    """Line ``n``: a mask label whose color map names ``names`` (the background, 0, 'BACKGROUND')."""
    colors = {"0": {"class-name": "BACKGROUND", "hex-color": "#ffffff", "confidence": 0}}
    colors |= {str(c): {"class-name": name, "hex-color": f"#{c:06x}", "confidence": 0} for c, name in names.items()}
    return {"source-ref": f"s3://b/{n}.png", "seg-ref": f"s3://b/masks/{n}.png",
            "seg-ref-metadata": {"internal-color-map": colors, "type": "groundtruth/semantic-segmentation",
                                 "human-annotated": "yes", "creation-date": "2022-09-09T17:25:32.047919",
                                 "job-name": "labeling-job/s10"}}


def test_a_color_map_names_each_class_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Semantic segmentation names its classes in ``internal-color-map``: an index named two ways
    or a name under two indexes across lines was said valid, and the COCO export refuses both; the
    background (0) is each image's own there (``background_entry``), so it is not held."""
    records = [_masks(n, {1: "IC", 2: "resistor"}) for n in range(1, 300)]
    records[99] = _masks(100, {1: "IC", 2: "capacitor"})  # index 2 named otherwise
    records[199] = _masks(200, {1: "IC", 5: "resistor"})  # 'resistor' under index 5
    records[249]["seg-ref-metadata"]["internal-color-map"]["0"]["class-name"] = "void"  # the background: not held
    report = same_reports(manifest(tmp_path, records), monkeypatch)
    key = "seg-ref-metadata.internal-color-map.{}.class-name"
    assert found(report) == [
        (100, key.format(2), "'capacitor' differs from 'resistor' (line 1): one class id, one name"),
        (200, key.format(5), f"class id 5 for 'resistor' differs from class id 2 (line 1): {TWICE}")]
    path = manifest(tmp_path, records)
    monkeypatch.setattr(ranges_module, "MIN_RANGE_BYTES", 1 << 13)
    assert found(validate_manifest(path, workers=3)) == found(report)


def test_parallel_ranges_find_a_name_given_another_id_in_a_later_range(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Lines 1-300 call class 0 'cat'; lines 301-600 call class 4 'cat' (a range of its own sees
    no clash in itself): each is said, naming the file's line 1; a name first given in a later
    range, by its line in the file."""
    records = ([boxes(n, {0: "cat"}) for n in range(1, 301)] + [boxes(n, {4: "cat"}) for n in range(301, 601)]
               + [boxes(n, {7: "late"} if n < 850 else {8: "late"}) for n in range(601, 901)])
    path = manifest(tmp_path, records)
    single, parallel = single_and_parallel(path, monkeypatch)
    assert found(single) == found(parallel)
    assert found(parallel) == (
        [(n, "b-metadata.class-map.4", f"class id 4 for 'cat' differs from class id 0 (line 1): {TWICE}")
         for n in range(301, 601)]
        + [(n, "b-metadata.class-map.8", f"class id 8 for 'late' differs from class id 7 (line 601): {TWICE}")
           for n in range(850, 901)])
    assert parallel.attributes == single.attributes


def test_ranges_merged_name_each_names_first_line_in_the_file(tmp_path: Path) -> None:
    """A range of lines 3-5 that first gives 'dog' class 2 (line 3) and then class 6 says its
    line 3 as the file numbers it (line 5 of the file), as the whole file checked at once does."""
    named = [{0: "cat"}, {0: "cat"}, {1: "cow"}, {1: "cow", 2: "dog"}, {6: "dog"}, {0: "cat", 6: "dog"}]
    path = manifest(tmp_path, [boxes(n, x) for n, x in enumerate(named, 1)])
    whole = _by_ranges(path, [1])
    assert [(n, m) for n, _, m in whole] == [(n, f"class id 6 for 'dog' differs from class id 2 (line 4): {TWICE}")
                                             for n in (5, 6)]
    assert _by_ranges(path, [1, 3]) == _by_ranges(path, [1, 4]) == whole


# ---- stats says what validate warns of and COCO/YOLO refuse, though no box uses the class

def _stats_json(tmp_path: Path, records: list[dict]) -> dict:
    (tmp_path / "s.manifest").write_bytes(b"".join(orjson.dumps(x) + b"\n" for x in records))
    r = cli("stats", "s.manifest", "--format", "json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    return orjson.loads(r.stdout)


@pytest.mark.parametrize("second", [{"0": "car", "5": "truck"}, {"0": "car", "1": "car"}])
def test_stats_says_a_name_under_two_ids_that_no_box_uses(tmp_path: Path, second: dict) -> None:
    """The tester's files: ``{"0": "car", "1": "truck"}`` on line 1, ``{"0": "car", "5": "truck"}``
    (or ``{"0": "car", "1": "car"}``: one name twice on one line) on line 2, every box of class 0:
    validate warns and COCO refuses, while ``stats`` had no clash and no ``truck``. The fast path
    reads the names as the generic count does."""
    lines = [boxes(1, {0: "car"}), boxes(2, {0: "car"})]
    lines[0]["b-metadata"]["class-map"]["1"] = "truck"
    lines[1]["b-metadata"]["class-map"] = second
    name, ids = ("truck", {"1": 0, "5": 0}) if "5" in second else ("car", {"0": 2, "1": 0})
    assert found(validate_manifest(manifest(tmp_path, lines)))
    got = _stats_json(tmp_path, lines)["attributes"]["b"]["class_clashes"]
    assert {"class_id": None, "name": name, "counts": ids} in got, got
    text = cli("stats", "s.manifest", cwd=tmp_path).stdout
    assert f"class {name!r} has several ids: " + ", ".join(f"{i} ({k})" for i, k in ids.items()) in text, text
    raw = [orjson.dumps(x) for x in lines]
    assert_equal(_stats(raw, None, fast=True), _stats(raw, None, fast=False))


def test_stats_counts_a_color_maps_classes_and_says_their_clashes(tmp_path: Path) -> None:
    """``stats`` counted no mask class (``classes`` empty) and no clash of the names that
    ``validate`` warns of and the COCO export refuses. Each color map's class counts one line a
    name; the background (0) is left out, as validate and COCO leave it (each image names its own)."""
    records = [_masks(n, {1: "IC", 2: "resistor"}) for n in range(1, 11)]
    records[3] = _masks(4, {1: "IC", 2: "capacitor"})  # index 2 named otherwise
    records[6] = _masks(7, {1: "IC", 5: "resistor"})  # 'resistor' under index 5
    records[8]["seg-ref-metadata"]["internal-color-map"]["0"]["class-name"] = "void"  # the background
    a = _stats_json(tmp_path, records)["attributes"]["seg-ref"]
    assert a["classes"] == [{"class_id": 1, "name": "IC", "count": 10, "class_ids": [1]},
                            {"class_id": 2, "name": "resistor", "count": 9, "class_ids": [2, 5]},
                            {"class_id": 2, "name": "capacitor", "count": 1, "class_ids": [2]}]
    assert a["class_clashes"] == [{"class_id": 2, "name": None, "counts": {"capacitor": 1, "resistor": 8}},
                                  {"class_id": None, "name": "resistor", "counts": {"2": 8, "5": 1}}]
    for record in records:  # masks the export can read (s3:// without credentials is refused first, exit 2)
        number = record["source-ref"].rsplit("/", 1)[1].split(".")[0]
        record["seg-ref"] = f"mask{number}.png"
        pixels = np.full((4, 6, 3), 255, dtype=np.uint8)  # the background, #ffffff
        for column, index in enumerate(k for k in record["seg-ref-metadata"]["internal-color-map"] if k != "0"):
            pixels[1:3, column] = (0, 0, int(index))  # '#00000N', index N's colour
        Image.fromarray(pixels, "RGB").save(tmp_path / record["seg-ref"])
    (tmp_path / "s.manifest").write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    coco = cli("convert", "s.manifest", "o.json", "--to", "coco", cwd=tmp_path)
    assert coco.returncode == 1, coco.stderr
    assert "line 4" in coco.stderr and "capacitor" in coco.stderr, coco.stderr


# ---- a name (or colour) given two ids on one line: "on this line", as the exports say it

def test_a_name_given_two_ids_on_one_line_is_said_on_this_line_in_every_range(tmp_path: Path) -> None:
    """``{"1": "car", "2": "car"}`` on line 5 said "differs from class id 1 (line 5)" on line 5
    itself, where COCO and YOLO say "(on this line)". A range starting at line 5 renumbers its
    messages' first lines in the merge (``validate._renamed``): this one must stay "on this line",
    while line 6's, naming line 5, is numbered as the file."""
    named = [{0: "cat"}, {0: "cat"}, {0: "cat"}, {0: "cat"}, {1: "car", 2: "car"}, {3: "car"}]
    path = manifest(tmp_path, [boxes(n, x) for n, x in enumerate(named, 1)])
    whole = _by_ranges(path, [1])
    assert [(n, m) for n, _, m in whole] == [
        (5, f"class id 2 for 'car' differs from class id 1 (on this line): {TWICE}"),
        (6, f"class id 3 for 'car' differs from class id 1 (line 5): {TWICE}")]
    assert _by_ranges(path, [1, 5]) == _by_ranges(path, [1, 3]) == _by_ranges(path, [1, 6]) == whole
    r = cli("validate", "m.manifest", "--workers", "2", cwd=tmp_path)
    assert r.returncode == 0 and "line 5: warning: b-metadata.class-map.2: class id 2 for 'car' differs from " \
        "class id 1 (on this line)" in r.stdout, r.stdout


def test_a_colour_given_two_indexes_on_one_line_is_said_on_this_line(tmp_path: Path) -> None:
    """The same for a mask's colours (``color-map-conflict``): one colour for indexes 1 and 2 on
    line 3, the first line of a range."""
    records = [_masks(n, {1: "IC", 2: "resistor"}) for n in range(1, 5)]
    records[2]["seg-ref-metadata"]["internal-color-map"]["2"]["hex-color"] = "#0000aa"
    records[2]["seg-ref-metadata"]["internal-color-map"]["1"]["hex-color"] = "#0000aa"
    path = manifest(tmp_path, records)
    whole = _by_ranges(path, [1], "color-map-conflict")
    assert any(n == 3 and "class id 2 for '#0000aa' differs from class id 1 (on this line)" in m
               for n, _, m in whole), whole
    assert _by_ranges(path, [1, 3], "color-map-conflict") == whole
