"""Names that differ invisibly (NFD against NFC Korean, a Cyrillic ``В`` for a Latin ``B``) printed
identically where a message said they differ: ``'고양이' differs from '고양이'``. Each is shown with
its code points now, in ``validate``, ``stats`` and the COCO and YOLO exports."""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path

import pytest

from tests.jobs_helpers import run_cli
from totask_manifest._lookalike import names_apart

NFD, NFC = unicodedata.normalize("NFD", "고양이"), "고양이"
CASES = [(NFD, NFC, f"{NFD!r} (NFD: U+1100 U+1169 U+110B U+1163 U+11BC U+110B U+1175)",
          f"{NFC!r} (NFC: U+ACE0 U+C591 U+C774)"),
         ("Вird", "Bird", "'Вird' (U+0412 U+0069 U+0072 U+0064)", "'Bird' (U+0042 U+0069 U+0072 U+0064)")]


def _manifest(path: Path, first: str, second: str) -> Path:
    meta = {"objects": [{"confidence": 0.9}], "type": "groundtruth/object-detection", "human-annotated": "no",
            "creation-date": "2022-09-12T09:51:00.148118", "job-name": "labeling-job/x"}
    label = {"image_size": [{"width": 640, "height": 480, "depth": 3}],
             "annotations": [{"class_id": 0, "top": 10, "left": 20, "height": 100, "width": 50}]}
    lines = [{"source-ref": f"s3://b/{n}.jpg", "c": label, "c-metadata": {**meta, "class-map": {"0": name}}}
             for n, name in enumerate((first, second))]
    path.write_text("".join(json.dumps(x, ensure_ascii=False) + "\n" for x in lines), encoding="utf-8")
    return path


@pytest.mark.parametrize(("second", "first", "said_second", "said_first"), CASES)
def test_names_that_look_alike_are_shown_with_their_code_points(tmp_path: Path, second: str, first: str,
                                                                 said_second: str, said_first: str) -> None:
    src = _manifest(tmp_path / "m.manifest", first, second)
    said = run_cli("validate", str(src))
    assert f"{said_second} differs from {first!r} (line 1) {said_first[len(repr(first)) + 1:]}" in said.stdout, \
        said.stdout
    said = run_cli("stats", str(src))
    assert said_first in said.stdout and said_second in said.stdout and "has several names" in said.stdout, \
        said.stdout
    for to in ("coco", "yolo"):
        out = tmp_path / f"out-{to}"
        said = run_cli("convert", str(src), str(out), "--to", to)
        assert said.returncode == 1 and said_second in said.stderr and said_first in said.stderr, (to, said.stderr)


def test_names_that_differ_visibly_are_shown_as_they_are() -> None:
    assert names_apart("cat", "dog") == ["'cat'", "'dog'"]
    assert names_apart("Cat", "cat") == ["'Cat' (U+0043 U+0061 U+0074)", "'cat' (U+0063 U+0061 U+0074)"]
