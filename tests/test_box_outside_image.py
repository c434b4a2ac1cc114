"""A box reaching past its image (``left + width > width``, ``top + height > height``, or a
negative ``left``/``top``): ``validate`` passed it unsaid, and a COCO or Synapse export wrote it
as it is, exit 0, nothing said. Real tools differ (pycocotools takes it; some trainers stop on
it, others clip it), so it is written as it is, never clipped, but said: ``validate`` warns
(``box-outside-image``, an error with ``--strict``) naming the line and the box, and an export
says in one line how many such boxes it wrote.
"""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from tests.test_user_mistakes import boxes_manifest, cli
from totask_manifest import validate_manifest
from totask_manifest._manifest.label_check import check_label, explain_label


def _past(tmp_path: Path, **box: float) -> Path:
    """``boxes_manifest`` (10 x 10 images) with line 2's box changed by ``box``."""
    path = boxes_manifest(tmp_path / "in.manifest")
    lines = [orjson.loads(x) for x in path.read_bytes().splitlines()]
    lines[1]["boxes"] = {**lines[1]["boxes"], "annotations": [{**lines[1]["boxes"]["annotations"][0], **box}]}
    path.write_bytes(b"".join(orjson.dumps(x) + b"\n" for x in lines))
    return path


@pytest.mark.parametrize("box", [{"left": 8}, {"top": 7.5}, {"left": -1}, {"top": -0.5}, {"width": 9.5}])
def test_validate_warns_of_a_box_past_its_image_naming_the_line(tmp_path: Path, box: dict) -> None:
    path = _past(tmp_path, **box)
    report = validate_manifest(str(path))
    assert report.ok  # a warning: the label is what it is
    (found,) = [p for p in report.problems if p.rule == "box-outside-image"]
    assert found.line == 2 and found.key == "boxes.annotations[0]" and found.severity == "warning", found
    r = cli("validate", "in.manifest", "--strict", cwd=tmp_path)
    assert r.returncode == 1 and "line 2" in r.stdout + r.stderr and "box-outside-image" in r.stdout + r.stderr


def test_a_box_on_the_edge_is_inside(tmp_path: Path) -> None:
    path = _past(tmp_path, left=0, top=0, width=10, height=10)
    assert not [p for p in validate_manifest(str(path)).problems if p.rule == "box-outside-image"]


def test_the_fast_check_and_the_full_one_agree() -> None:
    """``check_label`` answers a clean label without working problems out: its quick answer must
    not pass a box the full check warns of."""
    meta = {"class-map": {"0": "cat"}, "objects": [{}], "type": "groundtruth/object-detection",
            "human-annotated": "no", "creation-date": "2024-01-01T00:00:00.000000", "job-name": "labeling-job/j"}
    for box, outside in [((0, 0, 10, 10), False), ((1, 1, 9.5, 3), True), ((-1e-9, 0, 1, 1), True),
                         ((0, 10, 1, 0), False), ((0, 10.5, 1, 0), True)]:
        label = {"image_size": [{"width": 10, "height": 10, "depth": 3}],
                 "annotations": [dict(zip(("left", "top", "width", "height"), box, strict=True), class_id=0)]}
        full = [p.rule for p in explain_label("object-detection", label, meta)]
        assert full == (["box-outside-image"] if outside else []), (box, full)
        assert [p.rule for p in check_label("object-detection", label, meta)] == full, box


@pytest.mark.parametrize(("to", "out"), [("coco", "c.json"), ("synapse-objects", "o.objects.jsonl"),
                                         ("dm-schema-v1", "o.dm.jsonl")])
def test_an_export_writes_the_box_as_it_is_and_says_so(tmp_path: Path, to: str, out: str) -> None:
    _past(tmp_path, left=8)
    r = cli("convert", "in.manifest", out, "--to", to, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    said = [x for x in r.stdout.splitlines() if "past" in x]
    assert said == ["in.manifest: 1 box reaches past its image (first on line 2), written as it is: some trainers "
                    "refuse such a box, others clip it (validate warns of it: box-outside-image)"], r.stdout
    assert b"8" in (tmp_path / out).read_bytes()  # not clipped: 8 + 3 > 10 stays
    boxes_manifest(tmp_path / "in.manifest")
    r = cli("convert", "in.manifest", out, "--to", to, cwd=tmp_path)
    assert r.returncode == 0 and "past" not in r.stdout, r.stdout


def test_the_typed_path_finds_it_among_clean_lines(tmp_path: Path) -> None:
    """``validate``'s runs of one shape go a typed way (``typed_plan``): a box past its image among
    them is found on its line, as the per-line path finds it."""
    from tests.test_typed_plan import _bench_module, _checker
    from totask_manifest._manifest.blocks import iter_blocks

    path = tmp_path / "bench.manifest"
    _bench_module().generate(path, 200)
    lines = path.read_bytes().split(b"\n")
    record = orjson.loads(lines[99])
    box = record["category"]["annotations"][0]
    box["left"] = record["category"]["image_size"][0]["width"] - box["width"] + 0.5
    lines[99] = orjson.dumps(record)
    path.write_bytes(b"\n".join(lines))
    checker, out = _checker()
    with open(path, "rb") as f:
        checker.run(iter_blocks(f))
    assert checker.typed_lines > 150 and out.errors == 0
    assert [(p.line, p.rule) for p in out.problems] == [(100, "box-outside-image")]
