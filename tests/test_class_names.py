"""The one class-names reader: every form, and each rule that keeps class ids where they belong."""

from __future__ import annotations

import re

import pytest

from totask_manifest._errors import UsageError
from totask_manifest._formats.class_names import parse_class_names, read_class_names


def test_names_file_rules(tmp_path):
    f = tmp_path / "n.txt"
    f.write_text("\ufeffcat\n  dog \n\n\n")
    assert read_class_names(str(f)) == ["cat", "dog"]  # BOM, spaces and trailing blank lines dropped
    cases = [
        ("cat\n\ndog\n", "line 2 is blank"),
        ("# classes\ncat\n", "line 1 starts with '#'"),
        ("\n\n", "holds no class names"),
        ("cat\ndog\ncat\n", "'cat' is given twice (ids 0 and 2)"),
        ("ca\x0bt\ndog\n", "line 1: class name 'ca\\x0bt' holds a line break (U+000B)"),  # was 'ca', 't'
        ("cat\ndo\u2028g\n", "line 2: class name 'do\\u2028g' holds a line break (U+2028)"),
    ]
    for text, message in cases:
        f.write_text(text)
        with pytest.raises(UsageError, match=re.escape(message)) as err:
            read_class_names(str(f))
        assert str(err.value).startswith(f"--class-names: {f}")
    f.write_text("cat\x0b\ndog\x85\n")  # a line break at a line's end is stripped as a space is: no id shifts
    assert read_class_names(str(f)) == ["cat", "dog"]
    # nothing else str.strip strips: a no-break space at the end is the name's, as inside it, and a
    # control character there is refused as inside it (YOLO's names file refuses it too)
    f.write_text("dog\u00a0\nemu\u3000\n")
    assert read_class_names(str(f)) == ["dog\u00a0", "emu\u3000"]
    f.write_text("cat\x1f\ndog\n")
    with pytest.raises(UsageError, match=re.escape(f"{f} line 1: class name 'cat\\x1f' holds the control character U+001F")):
        read_class_names(str(f))
    f.write_bytes(b"\xff\xfecat")
    with pytest.raises(UsageError, match="is not UTF-8 text"):
        read_class_names(str(f))
    with pytest.raises(UsageError, match=r"^--class-names: "):
        read_class_names(str(tmp_path / "absent.txt"))


def test_json_and_yaml_forms(tmp_path):
    assert parse_class_names('["a", "b"]', "x") == ["a", "b"]
    for text, message in (('["a", 1]', "strings only"), ('["a", ""]', "class 1 has an empty name"),
                          ("[oops", "not a JSON list"), ("[]", "holds no class names")):
        with pytest.raises(UsageError, match=message):
            parse_class_names(text, "x")
    y = tmp_path / "data.yaml"
    y.write_text("names:\n  1: dog\n  0: cat\n")
    assert read_class_names(str(y), option=None) == ["cat", "dog"]
    y.write_text("names: [cat, dog]\n")
    assert read_class_names(str(y), option=None) == ["cat", "dog"]
    y.write_text("names:\n  0: cat\n  2: dog\n")
    with pytest.raises(UsageError, match=r"class ids 0\.\.1, got \[0, 2\]"):
        read_class_names(str(y), option=None)
    y.write_text("nc: 2\n")
    with pytest.raises(UsageError, match=f"^{y} has no 'names' list"):
        read_class_names(str(y), option=None)


@pytest.mark.parametrize(("name", "text", "where"), [
    ("n.txt", "car\nbi\tke\n", " line 2: class name 'bi\\tke' holds the control character U+0009"),
    ("n.txt", "car\nbus\nbike\x1b[0m\n", " line 3: class name 'bike\\x1b[0m' holds the control character U+001B"),
    ("n.txt", "car\nb\x00us\n", " line 2: class name 'b\\x00us' holds the control character U+0000"),
    ("n.yaml", 'names: ["car", "bi\\tke"]\n', ": class id 1 name 'bi\\tke' holds the control character U+0009"),
    ("n.json", '["car", "b\\u0007us"]', ": class id 1 name 'b\\x07us' holds the control character U+0007"),
])
def test_the_options_names_file_refuses_control_characters_as_yolos_does(tmp_path, name, text, where):
    """``--class-names FILE`` refused only a line break inside a name, while YOLO's own names file
    refuses every control character (a tab, NUL, ESC...): a ``0<TAB>car`` pasted from a table
    became a class name the YOLO export then refused. Refused alike, as the option's mistake: one
    line naming the file, the line (or class id) and the rule, exit 2, before the job is made."""
    from tests.jobs_helpers import REPO, run_cli

    names = tmp_path / name
    names.write_text(text)
    data = REPO / "sample_data"
    done = run_cli("annotate", str(data / "manifest.jsonl"), "--job-name", "j", "--label-attribute", "boxes",
                   "--task-type", "object-detection", "--method", "file", "--url-key", "annotation-ref",
                   "--class-names", str(names), "--allow-root", str(data), "--output", str(tmp_path / "out"))
    assert (done.returncode, done.stdout) == (2, ""), done.stderr
    assert done.stderr.strip() == (f"totask-manifest annotate: error: --class-names: {names}{where}, which a "
                                   "line-based reader of a names file cuts, drops or shows as spaces (class id = "
                                   "line position)"), done.stderr
    assert not (tmp_path / "out").exists()
