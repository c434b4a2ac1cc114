"""A Ground Truth label file read by a file job with ``--class-names`` is held to the list, as a
COCO or ``objects`` file is.

A Ground Truth file's own ``class-map`` / ``class-name`` won whenever present, and the list was
asked only for ids the file left unnamed: with ``--class-names circle,triangle`` a file naming
id 1 ``square`` was written as it was (exit 0, COMPLETED, ``"class-map": {"1": "square"}``), and
with ``square,circle,triangle`` id 1 meant ``square`` on a Ground Truth line and ``circle`` on a
COCO line of the same job; ``validate`` passed it, only a later ``convert --to yolo`` refused it.
Each class the file names now takes the list's id for that name (the file's ids renumbered), a
name outside the list fails its line as in the other formats, and an id the file leaves unnamed
is the list's while the file's names agree with the list's ids. Real files, the real CLI."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from totask_manifest._cli import main as cli_main

SIZE = [{"width": 160, "height": 120, "depth": 3}]
OUTSIDE = "format: key 'annotations[0].class_id': class 'square' is not among the class names given (circle, triangle)"


def _box(class_id: int, left: int = 1) -> dict:
    return {"class_id": class_id, "top": 2, "left": left, "height": 10, "width": 10}


def _boxes(class_map: dict[str, str] | None, *ids: int, confidences: bool = True) -> dict:
    """A Ground Truth bounding-box label file (``{"label", "metadata"}``)."""
    meta: dict[str, Any] = {"objects": [{"confidence": 0.9}] * len(ids)} if confidences else {}
    if class_map is not None:
        meta["class-map"] = class_map
    return {"label": {"image_size": SIZE, "annotations": [_box(c, 5 * i) for i, c in enumerate(ids)]},
            "metadata": meta}


def _coco(*names: str) -> dict:
    """A COCO file whose one box is of the first category, ``names`` its categories (ids from 1)."""
    return {"images": [{"id": 1, "width": 160, "height": 120, "file_name": "a.jpg"}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [1, 2, 10, 10], "area": 100,
                             "iscrowd": 0}],
            "categories": [{"id": i + 1, "name": n} for i, n in enumerate(names)]}


def _job(tmp_path: Path, names: list[str] | None, docs: list[Any], task_type: str = "object-detection",
         job: str = "j") -> tuple[int, list[dict]]:
    """Run a file job over one line a document; its exit code and output lines."""
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    lines = []
    for i, doc in enumerate(docs):
        (data / f"{job}-{i}.json").write_bytes(orjson.dumps(doc))
        lines.append(orjson.dumps({"source-ref": f"s3://b/{i}.jpg", "label-ref": f"{job}-{i}.json"}) + b"\n")
    (data / f"{job}.manifest").write_bytes(b"".join(lines))
    args = ["annotate", str(data / f"{job}.manifest"), "--job-name", job, "--label-attribute", "l", "--task-type",
            task_type, "--method", "file", "--url-key", "label-ref", "--native", "convert", "--allow-root",
            str(data), "--output", str(tmp_path / "out")]
    if names is not None:
        (tmp_path / f"{job}-names.txt").write_text("".join(n + "\n" for n in names))
        args += ["--class-names", str(tmp_path / f"{job}-names.txt")]
    code = cli_main(args)
    out = tmp_path / "out" / job / "manifests" / "output" / "output.manifest"
    return code, [orjson.loads(raw) for raw in out.read_bytes().splitlines()]


def _failure(line: dict) -> tuple[str, str]:
    meta = line["l-metadata"]
    return meta["failure-reason"], meta["failure-rule"]


def test_a_name_outside_the_list_fails_the_line_as_in_a_coco_file(tmp_path, capsys):
    code, (gt, coco, fine) = _job(tmp_path, ["circle", "triangle"],
                                  [_boxes({"1": "square"}, 1), _coco("square"), _boxes({"1": "triangle"}, 1)])
    assert code == 0, capsys.readouterr()
    assert "l" not in gt and _failure(gt) == (OUTSIDE + " [format-groundtruth]", "format-invalid")
    reason, rule = _failure(coco)  # the same reason and rule as a COCO file's
    assert (reason, rule) == (OUTSIDE.replace("class_id", "category_id") + " [format-coco]", "format-invalid")
    assert fine["l"]["annotations"] == [_box(1, 0)] and fine["l-metadata"]["class-map"] == {"1": "triangle"}


def test_a_files_ids_are_renumbered_by_name_as_a_coco_files_are(tmp_path, capsys):
    """``square`` is 0 in the list, 1 in the file; ``circle`` 1 in the list, 0 in the file: one
    class, one id, on a Ground Truth line as on a COCO line, and ``validate`` and the YOLO export
    take the output."""
    # a 2019 job's map lists every class: those in the list are kept, under its ids; one outside
    # it that no box holds is no label (as a COCO file's unused category)
    every = {"0": "circle", "1": "square", "2": "triangle", "3": "hexagon"}
    code, (gt, full, coco) = _job(tmp_path, ["square", "circle", "triangle"],
                                  [_boxes({"1": "square"}, 1), _boxes(every, 0, 2, 1), _coco("circle", "square")])
    assert code == 0, capsys.readouterr()
    assert gt["l"]["annotations"] == [_box(0, 0)] and gt["l-metadata"]["class-map"] == {"0": "square"}
    assert gt["l-metadata"]["objects"] == [{"confidence": 0.9}]
    assert full["l"]["annotations"] == [_box(1, 0), _box(2, 5), _box(0, 10)]
    assert full["l-metadata"]["class-map"] == {"1": "circle", "0": "square", "2": "triangle"}
    assert coco["l"]["annotations"][0]["class_id"] == 1 and coco["l-metadata"]["class-map"] == {"1": "circle"}
    out = tmp_path / "out" / "j" / "manifests" / "output" / "output.manifest"
    assert cli_main(["validate", str(out)]) == 0
    assert cli_main(["convert", str(out), str(tmp_path / "yolo"), "--to", "yolo"]) == 0, capsys.readouterr()


def test_an_unnamed_id_is_the_lists_while_the_files_names_agree_with_it(tmp_path, capsys):
    """A bare label and a map that agrees with the list read an unnamed id as the list's (as YOLO
    and ``objects`` files are read); a map that numbers otherwise leaves it unknowable: refused."""
    code, (bare, agrees, otherwise) = _job(tmp_path, ["circle", "square", "triangle"],
                                           [_boxes(None, 2), _boxes({"0": "circle"}, 0, 2),
                                            _boxes({"0": "square"}, 0, 2)])
    assert code == 0, capsys.readouterr()
    assert bare["l"]["annotations"] == [_box(2, 0)] and bare["l-metadata"]["class-map"] == {"2": "triangle"}
    assert agrees["l-metadata"]["class-map"] == {"0": "circle", "2": "triangle"}
    assert _failure(otherwise) == (
        "format: key 'annotations[1].class_id': class id 2 is left unnamed by class-map, which numbers the classes "
        "otherwise than the class names given; which class it is cannot be told: name it in class-map "
        "[format-groundtruth]", "format-invalid")


def test_one_name_under_two_ids_is_refused_as_coco_categories_are(tmp_path, capsys):
    code, (line,) = _job(tmp_path, ["circle", "square"], [_boxes({"0": "circle", "3": "circle"}, 0, 3)])
    assert code == 1, capsys.readouterr()  # its only line failed
    assert _failure(line) == ("format: key 'class-map': class 'circle' has ids 0 and 3 in class-map; classes are "
                              "numbered by name (class names given), so the two would become one class: give each "
                              "id its own name [format-groundtruth]", "format-invalid")


def test_classification_is_held_to_the_list_by_its_class_name(tmp_path, capsys):
    docs = [{"label": 5, "metadata": {"class-name": "triangle", "confidence": 0.8}},
            {"label": 1, "metadata": {"class-name": "square"}},
            {"label": 0, "metadata": {}}]
    code, (renumbered, outside, unnamed) = _job(tmp_path, ["circle", "triangle"], docs, "image-classification")
    assert code == 0, capsys.readouterr()
    assert renumbered["l"] == 1
    assert {k: renumbered["l-metadata"][k] for k in ("class-name", "confidence")} == {"class-name": "triangle",
                                                                                      "confidence": 0.8}
    assert _failure(outside) == ("format: key 'class-name': class 'square' is not among the class names given "
                                 "(circle, triangle) [format-groundtruth]", "format-invalid")
    assert unnamed["l"] == 0 and unnamed["l-metadata"]["class-name"] == "circle"


def test_multilabel_is_renumbered_by_name_with_its_scores(tmp_path, capsys):
    docs = [{"label": [0, 2], "metadata": {"class-map": {"0": "square", "2": "circle"},
                                           "confidence-map": {"0": 0.7, "2": 0.6}}},
            {"label": [1], "metadata": {"class-map": {"1": "hexagon"}}},
            {"label": [0], "metadata": {"class-map": {"0": "circle"}, "confidence-map": {"0": 0.5, "1": 0.4}}}]
    code, (renumbered, outside, stray) = _job(tmp_path, ["circle", "square"], docs, "image-classification-multilabel")
    assert code == 0, capsys.readouterr()
    assert renumbered["l"] == [1, 0]
    assert renumbered["l-metadata"]["class-map"] == {"1": "square", "0": "circle"}
    assert renumbered["l-metadata"]["confidence-map"] == {"1": 0.7, "0": 0.6}
    assert _failure(outside) == ("format: key 'label[0]': class 'hexagon' is not among the class names given "
                                 "(circle, square) [format-groundtruth]", "format-invalid")
    # a score of a class the label does not hold has no name to be renumbered by
    assert _failure(stray) == ("format: key 'confidence-map': confidence-map scores class id 1, which the label "
                               "does not hold; classes are numbered by name (class names given), and it has none to "
                               "go by [format-groundtruth]", "format-invalid")


def test_without_class_names_the_files_ids_and_names_are_kept(tmp_path, capsys):
    code, (gt,) = _job(tmp_path, None, [_boxes({"1": "square"}, 1)])
    assert code == 0, capsys.readouterr()
    assert gt["l"]["annotations"] == [_box(1, 0)] and gt["l-metadata"]["class-map"] == {"1": "square"}


def test_a_class_map_name_that_is_null_or_no_string_fails_the_line(tmp_path, capsys):
    """``"class-map": {"1": null}`` in a label file was read as the class ``"None"`` (a number as
    its digits) and written on, exit 0, a name the file never gave; with ``--class-names`` it
    failed as "class 'None' is not among the class names given". The line fails now saying what the
    name is, with or without the list, under the rule a COCO category without a name has; a name
    that is a string goes on as before."""
    code, (null, number, fine) = _job(tmp_path, None, [_boxes({"1": None}, 1), _boxes({"1": 7}, 1),
                                                       _boxes({"1": "square"}, 1)])
    assert code == 0, capsys.readouterr()
    assert _failure(null) == ("format: key 'class-map.1': class id 1 has no name in class-map: its name is null, not a "
                              "string; a class needs a name [format-groundtruth]", "class-name-missing")  # as COCO's
    assert "'class-map.1': class id 1 has no name in class-map: its name is 7, not a string" in _failure(number)[0]
    assert "l" not in null and "l" not in number
    assert fine["l-metadata"]["class-map"] == {"1": "square"}
    code, (listed,) = _job(tmp_path, ["circle", "square"], [_boxes({"1": None}, 1)], job="k")
    assert code == 1 and "class id 1 has no name in class-map: its name is null" in _failure(listed)[0]  # no line labeled: FAILED


def test_a_map_key_that_is_no_class_index_fails_the_line_not_another_class(tmp_path, capsys):
    """``"class-map": {"0": "triangle", "00": "circle"}``: ``"00"`` was read as id 0 too, so with
    class names given the triangle box was written as a circle (exit 0); ``" 0"`` likewise, and a
    ``confidence-map`` key ``"00"`` put its score on another class. Such a key is no class index
    (``validate`` refuses it): the line fails, naming it, with or without class names."""
    names = ["circle", "square2", "triangle"]
    two_keys = _boxes({"0": "triangle", "00": "circle"}, 0)
    spaced = _boxes({" 0": "triangle"}, 0)
    code, (two, space) = _job(tmp_path, names, [two_keys, spaced])
    assert code == 1, capsys.readouterr()  # no line labeled
    assert _failure(two) == ("format: key 'class-map': \"00\" is no class index (digits, no leading zero, no space or "
                             "sign) [format-groundtruth]", "format-invalid")
    assert '" 0" is no class index' in _failure(space)[0], _failure(space)
    code, (without,) = _job(tmp_path, None, [two_keys], job="k")
    assert code == 1 and "\"00\" is no class index" in _failure(without)[0]
    scored = {"label": [0], "metadata": {"class-map": {"0": "triangle"}, "confidence-map": {"0": 0.9, "00": 0.1}}}
    code, (ml,) = _job(tmp_path, names, [scored], task_type="image-classification-multilabel", job="m")
    assert code == 1 and _failure(ml) == ("format: key 'confidence-map': \"00\" is no class index (digits, no leading "
                                          "zero, no space or sign) [format-groundtruth]", "format-invalid")


def test_a_class_id_outside_the_list_says_so_not_give_the_class_names(tmp_path, capsys):
    """A file's class id beyond the list (an unnamed id 7 with three names given) said "no name for
    class id 7; give the class names (--class-names FILE...)", the flag the user had given, under
    ``class-name-missing``, whose early stop then advised a chain with ``--class-names``. It says
    the id is outside the list, as the data's fault (``format-invalid``)."""
    code, (line,) = _job(tmp_path, ["circle", "square", "triangle"], [_boxes(None, 7)])
    assert code == 1, capsys.readouterr()
    reason, rule = _failure(line)
    assert "class id 7 is outside the class names given (3 names, ids 0-2)" in reason and rule == "format-invalid"
    assert "--class-names" not in reason
