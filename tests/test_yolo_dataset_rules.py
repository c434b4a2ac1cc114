"""YOLO folders and class names, gaps in class ids, background images and labels of other types:
what is written reads back exactly, and nothing is lost or mislabeled with nothing said."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from PIL import Image

from tests.support.box_lines import box_line as _box_line
from totask_manifest._analytics.convert import convert
from totask_manifest._cli import main as cli_main
from totask_manifest._formats.class_names import read_class_names

ROOT = Path(__file__).resolve().parents[1]


def _write(path: Path, records: list[dict]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    return path


def _records(path: Path) -> list[dict]:
    return [orjson.loads(x) for x in path.read_bytes().splitlines() if x.strip()]


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "totask_manifest", *args], capture_output=True, text=True,
                          env=env, timeout=120, check=False)


@pytest.mark.parametrize("name", ["two\nlines", "carriage\rreturn", "crlf\r\n", "line\u2028separator",
                                  "form\x0cfeed", "next\x85line", "para\u2029graph", "x\x00y", "bell\x07",
                                  "esc\x1b[31m", "del\x7f", "x\x1fy", "a\tb", "c1\x80", "c1\x9f", " spaced",
                                  "trailing ", "#hash", "   ", 7])
def test_a_class_name_classes_txt_cannot_hold_is_refused_and_nothing_written(tmp_path, name):
    src = _write(tmp_path / "in.manifest", [_box_line(0, {"0": "cat"}, [0]),
                                            _box_line(1, {"0": "cat", "1": name, "2": "dog"}, [0, 1, 2])])
    out = tmp_path / "yolo"
    done = _cli("convert", str(src), str(out), "--to", "yolo")
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr  # one line, naming the line, the class and the rule
    assert "line 2" in lines[0] and "class id 1" in lines[0] and "[yolo-class-name]" in lines[0]
    assert repr(name) in lines[0]
    assert not out.exists()  # nothing written


def test_one_name_for_two_class_ids_is_refused(tmp_path):
    src = _write(tmp_path / "in.manifest", [_box_line(0, {"0": "cat", "1": "cat"}, [0, 1])])
    done = _cli("convert", str(src), str(tmp_path / "yolo"), "--to", "yolo")
    assert done.returncode == 1 and "also the name of class id 0" in done.stderr and "yolo-class-name" in done.stderr
    assert not (tmp_path / "yolo").exists()


def test_a_real_name_equal_to_a_placeholder_is_refused(tmp_path):
    """ids 0 and 2: id 1 gets the placeholder ``class_1``, which would then name two ids."""
    src = _write(tmp_path / "in.manifest", [_box_line(0, {"0": "class_1", "2": "dog"}, [0, 2])])
    with pytest.raises(Exception, match=r"yolo-class-name") as exc:
        convert(str(src), str(tmp_path / "yolo"), to="yolo")
    assert "class_1" in str(exc.value)
    assert not (tmp_path / "yolo").exists()


NAMES = ['say "hi"', "it's", "key: value", "- dash", "[list]", "{map}", "null", "yes", "1.5", "0x10", "猫",
         "café", "emoji 🐱", "&anchor", "*alias", "!tag", "%percent", "@at", "`tick`", "|pipe", ">fold",
         "back\\slash", "comma, here", "~"]


def test_names_with_quotes_colons_and_unicode_read_back_exactly(tmp_path):
    class_map = {str(i): n for i, n in enumerate(NAMES)}
    src = _write(tmp_path / "in.manifest", [_box_line(0, class_map, list(range(len(NAMES))))])
    out = tmp_path / "yolo"
    convert(str(src), str(out), to="yolo")
    assert read_class_names(str(out / "classes.txt")) == NAMES
    assert read_class_names(str(out / "data.yaml")) == NAMES
    (out / "classes.txt").unlink()  # the import falls back to data.yaml: the same names
    convert(str(out), str(tmp_path / "back.manifest"), to="manifest")
    (back,) = _records(tmp_path / "back.manifest")
    assert back["label-metadata"]["class-map"] == class_map
    assert [a["class_id"] for a in back["label"]["annotations"]] == list(range(len(NAMES)))


def _folder_of_one_box(root: Path, names_file: str, names: bytes) -> Path:
    """A plain YOLO folder: one image, one box of class 0, its names file holding ``names``."""
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    Image.new("RGB", (20, 10)).save(root / "images" / "a.jpg")
    (root / "labels" / "a.txt").write_text("0 0.5 0.5 0.5 0.5\n")
    (root / names_file).write_bytes(names)
    return root


#: the characters the export refuses in a class name (``class_names.line_problem``): C0 with tab,
#: DEL, C1 with U+0085, U+2028, U+2029; each is refused by the import of a names file too
NOT_IN_A_LINE = [*(chr(c) for c in range(0x20) if chr(c) not in "\n"), *(chr(c) for c in range(0x7F, 0xA0)),
                 "\u2028", "\u2029"]


@pytest.mark.parametrize("char", NOT_IN_A_LINE, ids=lambda c: f"U+{ord(c):04X}")
def test_the_import_refuses_a_classes_txt_name_the_export_refuses(tmp_path, char):
    """The export refused a NUL, ESC or U+0085 in a name that the import read into the manifest
    (a U+000B split one name in two, and every id after it shifted): one rule both ways now."""
    root = _folder_of_one_box(tmp_path / "ds", "classes.txt", f"cat\nd{char}og\nbird\n".encode())
    out = tmp_path / "m.manifest"
    done = _cli("convert", str(root), str(out), "--to", "manifest")
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr  # one line: the file, the line a text editor shows, the rule
    assert f"{root / 'classes.txt'} line 2: class name {f'd{char}og'!r}" in lines[0]
    assert f"U+{ord(char):04X}" in lines[0] and lines[0].endswith("[yolo-class-name]")
    assert not out.exists()  # nothing written
    src = _write(tmp_path / "in.manifest", [_box_line(0, {"0": f"d{char}og"}, [0])])
    assert _cli("convert", str(src), str(tmp_path / "yolo"), "--to", "yolo").returncode == 1  # the same both ways


@pytest.mark.parametrize(("names_file", "text"), [("data.yaml", 'names: ["cat", "d\\x00og"]\n'),
                                                  ("data.yaml", "names:\n  0: cat\n  1: \"d\\tog\"\n"),
                                                  ("classes.txt", '["cat", "d\\u0085og"]\n')])
def test_an_escaped_control_character_in_yaml_or_json_names_is_refused_by_class_id(tmp_path, names_file, text):
    """In YAML or a JSON list a name is no line: the name is refused by its class id."""
    root = _folder_of_one_box(tmp_path / "ds", names_file, text.encode())
    with pytest.raises(Exception, match=r"yolo-class-name") as exc:
        convert(str(root), str(tmp_path / "m.manifest"), to="manifest")
    assert f"{names_file}: class id 1 name 'd" in str(exc.value) and getattr(exc.value, "exit_code", None) == 1
    assert not (tmp_path / "m.manifest").exists()


@pytest.mark.parametrize(("text", "said"), [("cat\n# a\x01 comment\n", "line 2 starts with '#'"),
                                           ("cat\n\x0b\ndog\n", "line 2 is blank"),
                                           ("cat\n\n# d\x00og\n", "line 2 is blank")])
def test_a_line_that_is_no_class_name_is_refused_by_the_readers_rule_not_as_a_class_name(tmp_path, text, said):
    """A ``#`` comment or a blank line is no class name: the import refused ``# a<U+0001> comment``
    as the class name holding a control character; the reader's own rule names it now, as the
    folder's invalid data (exit 1), as a name holding one is."""
    root = _folder_of_one_box(tmp_path / "ds", "classes.txt", text.encode())
    out = tmp_path / "m.manifest"
    done = _cli("convert", str(root), str(out), "--to", "manifest")
    assert done.returncode == 1, done.stderr
    assert said in done.stderr and "class name" not in done.stderr, done.stderr
    assert done.stderr.strip().endswith("[yolo-class-name]"), done.stderr
    assert not out.exists()


@pytest.mark.parametrize(("names_file", "data", "said"), [
    ("classes.txt", b"cat\n\ndog\n", "classes.txt line 2 is blank (class ids are line positions)"),
    ("obj.names", b"cat\n# dog\n", "obj.names line 2 starts with '#'"),
    ("classes.txt", b"cat\ncat\n", "classes.txt: class name 'cat' is given twice (ids 0 and 1)"),
    ("classes.txt", b"\n\n", "classes.txt holds no class names"),
    ("classes.txt", b"caf\xe9\n", "classes.txt is not UTF-8 text"),
    ("data.yaml", b"nc: 2\n", "data.yaml has no 'names' list"),
])
def test_every_problem_of_a_folders_names_file_is_its_invalid_data(tmp_path, names_file, data, said):
    """The names file is part of the folder converted, its data as its label files are (README:
    exit 1 for invalid data): a bad character in a name exited 1 while a blank or ``#`` line, a
    name given twice, no name or text that is not UTF-8 exited 2, as a usage error. Now each is
    exit 1, one line, the rule named, nothing written; ``--class-names FILE``, an option's file
    (a usage mistake), keeps exit 2 for the same text."""
    root = _folder_of_one_box(tmp_path / "ds", names_file, data)
    out = tmp_path / "m.manifest"
    done = _cli("convert", str(root), str(out), "--to", "manifest")
    assert done.returncode == 1, done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert said in line and line.endswith("; nothing was written [yolo-class-name]"), line
    assert not out.exists()
    given = tmp_path / ("given.yaml" if names_file.endswith(".yaml") else "given.txt")
    given.write_bytes(data)
    done = _cli("convert", str(root), str(out), "--to", "manifest", "--class-names", str(given))
    assert done.returncode == 2 and "--class-names" in done.stderr and "yolo-class-name" not in done.stderr, done.stderr
    assert not out.exists()


@pytest.mark.parametrize("char", ["\x1f", "\x01", "\x7f"], ids=lambda c: f"U+{ord(c):04X}")
def test_a_control_character_at_the_end_of_a_classes_txt_line_is_refused_as_inside_a_name(tmp_path, char):
    """Only spaces, tabs and line breaks are stripped from a line's end: ``cat<U+001F>`` was read as
    ``cat`` (``str.strip`` strips U+001C to U+001F), where darknet's ``fgets`` keeps the character
    and the import had refused it, exit 1, as it refuses one inside a name."""
    root = _folder_of_one_box(tmp_path / "ds", "classes.txt", f"cat{char}\ndog\n".encode())
    out = tmp_path / "m.manifest"
    done = _cli("convert", str(root), str(out), "--to", "manifest")
    assert done.returncode == 1, done.stderr
    assert f"classes.txt line 1: class name 'cat\\x{ord(char):02x}' holds the control character U+{ord(char):04X}" in done.stderr
    assert not out.exists()


@pytest.mark.parametrize("sep", ["\x0b", "\x0c", "\x1c", "\x85", "\u2028", "\u2029"], ids=lambda c: f"U+{ord(c):04X}")
def test_a_line_break_at_the_end_of_a_classes_txt_line_is_dropped_as_spaces_are(tmp_path, sep):
    """A separator the reader strips from a line's end shifts no id (lines are counted at ``\\n``):
    ``cat<U+000B>`` reads as ``cat``, as it did before the import checked lines, and the next line
    is still class 1 (split where ``str.splitlines`` splits, it was a blank line between them)."""
    root = _folder_of_one_box(tmp_path / "ds", "classes.txt", f"cat{sep}\ndog{sep}\n".encode())
    (root / "labels" / "a.txt").write_text("1 0.5 0.5 0.5 0.5\n")
    counts = convert(str(root), str(tmp_path / "m.manifest"), to="manifest").counts
    assert counts["classes"] == 2
    (rec,) = _records(tmp_path / "m.manifest")
    assert rec["label-metadata"]["class-map"] == {"1": "dog"}


def test_a_crlf_classes_txt_with_spaces_and_tabs_around_names_still_reads(tmp_path):
    """A Windows editor's CRLF and the blanks around a name are no part of it: the reader drops
    them, as before, and the export writes the names it gives."""
    root = _folder_of_one_box(tmp_path / "ds", "classes.txt", b"\xef\xbb\xbf cat\t\r\n\tdog \r\n")
    counts = convert(str(root), str(tmp_path / "m.manifest"), to="manifest").counts
    assert counts["classes"] == 2
    (rec,) = _records(tmp_path / "m.manifest")
    assert rec["label-metadata"]["class-map"] == {"0": "cat"}


def test_gaps_in_class_ids_say_how_many_names_are_placeholders(tmp_path, capsys):
    src = _write(tmp_path / "in.manifest", [_box_line(0, {"5": "a", "90": "b", "2": "c"}, [5, 90, 2])])
    out = tmp_path / "yolo"
    assert cli_main(["convert", str(src), str(out), "--to", "yolo"]) == 0
    said = capsys.readouterr().out
    assert "classes 3, placeholder classes 88" in said
    names = (out / "classes.txt").read_text().splitlines()
    assert len(names) == 91 and names[5] == "a" and names[90] == "b" and names[2] == "c" and names[0] == "class_0"
    assert cli_main(["convert", str(out), str(tmp_path / "back.manifest"), "--to", "manifest"]) == 0
    said = capsys.readouterr().out
    assert "classes 3, placeholder classes 88" in said  # the placeholders are no classes of the manifest
    (back,) = _records(tmp_path / "back.manifest")
    assert back["label-metadata"]["class-map"] == {"5": "a", "90": "b", "2": "c"}


def test_a_placeholder_a_box_uses_counts_as_a_class_on_import(tmp_path):
    root = tmp_path / "ds"
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    Image.new("RGB", (20, 10)).save(root / "images" / "a.jpg")
    (root / "labels" / "a.txt").write_text("1 0.5 0.5 0.5 0.5\n")
    (root / "classes.txt").write_text("class_0\nclass_1\nclass_2\ncat\n")
    counts = convert(str(root), str(tmp_path / "m.manifest"), to="manifest").counts
    assert counts == {"images": 1, "skipped": 0, "classes": 2, "placeholder classes": 2}
    (rec,) = _records(tmp_path / "m.manifest")
    assert rec["label-metadata"]["class-map"] == {"1": "class_1"}


def test_images_without_label_files_become_lines_with_no_boxes(tmp_path, capsys):
    root = tmp_path / "ds"
    (root / "images" / "sub").mkdir(parents=True)
    (root / "labels" / "sub").mkdir(parents=True)
    Image.new("RGB", (200, 100)).save(root / "images" / "a.jpg")
    Image.new("RGB", (30, 40)).save(root / "images" / "b.png")  # background: no label file
    Image.new("RGB", (50, 60)).save(root / "images" / "sub" / "c.JPG")  # background, upper-case suffix
    Image.new("RGB", (10, 10)).save(root / "images" / "sub" / "d.jpg")
    (root / "images" / "notes.md").write_text("not an image")
    (root / "labels" / "a.txt").write_text("0 0.5 0.5 0.5 0.5\n")
    (root / "labels" / "sub" / "d.txt").write_text("1 0.5 0.5 0.2 0.2\n")
    (root / "classes.txt").write_text("cat\ndog\n")
    assert cli_main(["convert", str(root), str(tmp_path / "m.manifest"), "--to", "manifest"]) == 0
    assert "images 4, skipped 0, classes 2, background 2" in capsys.readouterr().out
    recs = _records(tmp_path / "m.manifest")
    by_image = {r["source-ref"].rsplit("/images/", 1)[1]: r for r in recs}
    assert set(by_image) == {"a.jpg", "b.png", "sub/c.JPG", "sub/d.jpg"}
    assert by_image["b.png"]["label"] == {"image_size": [{"width": 30, "height": 40, "depth": 3}],
                                          "annotations": []}
    assert by_image["sub/c.JPG"]["label"]["annotations"] == []
    assert by_image["sub/d.jpg"]["label"]["annotations"][0]["class_id"] == 1
    assert all(r["label-metadata"]["type"] == "groundtruth/object-detection" for r in recs)


def test_a_folder_of_background_images_only_is_a_manifest_with_no_boxes(tmp_path):
    root = tmp_path / "ds"
    (root / "images").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(root / "images" / "x.jpg")
    (root / "classes.txt").write_text("cat\n")
    counts = convert(str(root), str(tmp_path / "m.manifest"), to="manifest").counts
    assert counts == {"images": 1, "skipped": 0, "classes": 1, "background": 1}
    (rec,) = _records(tmp_path / "m.manifest")
    assert rec["label"]["annotations"] == []


def test_a_label_file_with_no_image_is_still_refused(tmp_path):
    root = tmp_path / "ds"
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    Image.new("RGB", (8, 8)).save(root / "images" / "x.jpg")
    (root / "labels" / "y.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    (root / "classes.txt").write_text("cat\n")
    done = _cli("convert", str(root), str(tmp_path / "m.manifest"), "--to", "manifest")
    assert done.returncode == 2 and "no image for" in done.stderr and "y.txt" in done.stderr
    assert not (tmp_path / "m.manifest").exists()


def test_classification_labels_to_yolo_say_yolo_holds_boxes(tmp_path):
    rec = {"source-ref": "s3://b/x.jpg", "m2": 1,
           "m2-metadata": {"class-name": "dog", "confidence": 0.9, "type": "groundtruth/image-classification",
                           "human-annotated": "yes", "creation-date": "2024-01-01T00:00:00",
                           "job-name": "labeling-job/j"}}
    src = _write(tmp_path / "cls.manifest", [{"source-ref": "s3://b/w.jpg"}, rec])
    done = _cli("convert", str(src), str(tmp_path / "out"), "--to", "yolo", "--label-attribute", "m2")
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "totask-manifest convert: error: line 2, key 'm2-metadata': YOLO holds boxes, not image-classification "
        "[yolo-type]"]
    assert not (tmp_path / "out").exists()


def test_confidences_a_5_column_export_leaves_out_are_counted(tmp_path, capsys):
    """YOLO's 5 columns hold no score: an export without --confidence must say how many box
    confidences it did not write (a real GT output carries one per box), not drop them unsaid;
    with --confidence, and for unscored boxes, there is nothing to say."""
    unscored = _box_line(3, {"0": "a"}, [0])
    unscored["label-metadata"]["objects"] = [{}]
    src = _write(tmp_path / "in.manifest", [_box_line(1, {"0": "a", "1": "b"}, [0, 1]), _box_line(2, {"0": "a"}, [0]),
                                            unscored])
    assert cli_main(["convert", str(src), str(tmp_path / "five"), "--to", "yolo"]) == 0
    assert "confidences left out 3" in capsys.readouterr().out
    counts = convert(str(src), str(tmp_path / "six"), to="yolo", confidence=True).counts
    assert "confidences left out" not in counts
    rows = (tmp_path / "six" / "labels" / "1.txt").read_text().splitlines()
    assert [r.split()[5] for r in rows] == ["0.9", "0.9"]


def test_the_class_name_checks_take_the_same_steps_for_each_new_class(tmp_path):
    """Each new class was checked against every class met before it (is its name another id's?):
    an export of 40,000 classes took 121 s against 31 s for 20,000, a million would take a day.
    Counted in steps (the lines yolo_classes runs), not in seconds: they stay a few per class."""
    n = 3000
    src = _write(tmp_path / "in.manifest", [_box_line(i, {str(i): f"c{i}"}, [i]) for i in range(n)])
    steps = 0

    def tracer(frame, event, arg):
        nonlocal steps
        if frame.f_code.co_filename.endswith("yolo_classes.py"):
            steps += event == "line"
            return tracer
        return None

    sys.settrace(tracer)
    try:
        convert(str(src), str(tmp_path / "yolo"), to="yolo")
    finally:
        sys.settrace(None)
    assert steps < 40 * n, steps


def test_an_output_over_a_file_of_the_yolo_folder_on_the_other_side_is_refused(tmp_path):
    """``convert yolo/ yolo/index.jsonl --to manifest`` replaced the folder's index with the
    manifest (the next import then failed on it), and ``convert yolo/index.jsonl yolo/ --to yolo``
    replaced the input manifest with the export's own index: output over input, one level down.
    Both are refused before anything is written (exit 2), as an output that is the input is."""
    src = _write(tmp_path / "in.manifest", [_box_line(i, {"0": "cat"}, [0]) for i in range(3)])
    folder = tmp_path / "yolo"
    assert _cli("convert", str(src), str(folder), "--to", "yolo").returncode == 0
    before = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    for dst in ("index.jsonl", "classes.txt", "labels/img/0.txt"):
        done = _cli("convert", str(folder), str(folder / dst), "--to", "manifest")
        assert done.returncode == 2, done.stderr
        assert len(done.stderr.strip().splitlines()) == 1 and "input" in done.stderr, done.stderr
    (folder / "mine.manifest").write_bytes(src.read_bytes())
    for inside in ("index.jsonl", "mine.manifest"):
        manifest = folder / inside
        kept = manifest.read_bytes()
        done = _cli("convert", str(manifest), str(folder), "--to", "yolo")
        if inside == "index.jsonl":
            assert done.returncode == 2 and "input" in done.stderr, done.stderr
        assert manifest.read_bytes() == kept
    assert {p: p.read_bytes() for p in folder.rglob("*") if p.is_file() and p.name != "mine.manifest"} == before
