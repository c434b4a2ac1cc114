"""COCO ids are integers (the COCO format, pycocotools): a string image id (``"id": "12"``) was
imported as it was, exit 0, and a string ``category_id`` read as the number with a wrong "no
annotation names it" note. Each is refused in one line naming its place and the rule, exit 1."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import orjson
import pytest

from tests.test_coco_carried_fields import _document
from tests.test_user_mistakes import cli, one_line_error
from totask_manifest._analytics.convert import convert
from totask_manifest._formats.model import FormatError


@pytest.mark.parametrize(("section", "index", "name", "value", "said"), [
    ("images", 1, "id", "2", 'image id "2" is not an integer'),
    ("images", 0, "id", 1.0, "image id 1.0 is not an integer"),
    ("annotations", 2, "image_id", "2", 'image_id "2" is not an integer'),
    ("annotations", 1, "category_id", "2", 'category_id "2" is not an integer'),
    ("categories", 0, "id", "1", 'category id "1" is not an integer'),
])
def test_an_id_that_is_no_integer_is_refused_naming_its_place(tmp_path: Path, section: str, index: int, name: str,
                                                               value, said: str) -> None:
    doc = _document()
    doc[section][index][name] = value
    (tmp_path / "c.json").write_bytes(orjson.dumps(doc))
    with pytest.raises(FormatError) as caught:
        convert(str(tmp_path / "c.json"), str(tmp_path / "o.manifest"), to="manifest")
    assert caught.value.key == f"{section}[{index}].{name}" and said in str(caught.value), str(caught.value)
    assert "COCO ids are integers" in str(caught.value)
    assert not (tmp_path / "o.manifest").exists()


@pytest.mark.slow
def test_the_cli_says_it_in_one_line_exit_1(tmp_path: Path) -> None:
    doc = _document()
    doc["images"][1]["id"] = "2"
    (tmp_path / "c.json").write_bytes(orjson.dumps(doc))
    r = cli("convert", "c.json", "o.manifest", "--to", "manifest", cwd=tmp_path)
    assert r.returncode == 1
    line = one_line_error(r, "convert")
    assert "images[1].id" in line and "write it as 2" in line, line


def test_an_export_renumbers_kept_string_ids_so_its_output_imports_again(tmp_path: Path) -> None:
    """A manifest an earlier import wrote may keep ``coco-image.id: "12"`` (and ``coco-id: "5"``):
    the export wrote them back as strings, exit 0, and its own import refused the output."""
    (tmp_path / "c.json").write_bytes(orjson.dumps(_document()))
    convert(str(tmp_path / "c.json"), str(tmp_path / "o.manifest"), to="manifest")
    lines = [orjson.loads(x) for x in (tmp_path / "o.manifest").read_bytes().splitlines()]
    lines[1]["coco-image"]["id"] = "12"
    lines[0]["label-metadata"]["objects"][0]["coco-id"] = "5"
    (tmp_path / "o.manifest").write_bytes(b"".join(orjson.dumps(x) + b"\n" for x in lines))
    said = " | ".join(convert(str(tmp_path / "o.manifest"), str(tmp_path / "back.json"), to="coco").notes)
    back = orjson.loads((tmp_path / "back.json").read_bytes())
    assert [i["id"] for i in back["images"]] == [1, 2] and all(isinstance(a["id"], int) for a in back["annotations"])
    assert "image ids are line numbers" in said and "1 of the kept ids no integer" in said, said
    assert "annotation ids are numbered" in said, said
    convert(str(tmp_path / "back.json"), str(tmp_path / "again.manifest"), to="manifest")  # re-imports
    pycoco = pytest.importorskip("pycocotools.coco")
    with contextlib.redirect_stdout(io.StringIO()):
        assert len(pycoco.COCO(str(tmp_path / "back.json")).getImgIds()) == 2
