"""The README's table of failure rules is the whole list: every ``failure-rule`` id the package can
write on a failed line is in it, and every id in it is one the package writes. Its *Fail fast*
paragraph names exactly the configuration rules that stop a job.

The package's ids are read from the code: the rules ``rule_of`` reads from a reason, the ones
passed as ``Failed(..., rule="...")``, the image decoder's, and the input rules a labeled line can
break. A rule added without a line in the table (or a line left for a rule removed) fails here."""

from __future__ import annotations

import ast
import re

from tests.jobs_helpers import REPO
from totask_manifest import _failure_rules
from totask_manifest._imaging import ImageError

README = (REPO / "README.md").read_text(encoding="utf-8")
_ID = re.compile(r"`([a-z0-9]+(?:-[a-z0-9]+)+)`")


def paragraph(title: str) -> str:
    """The README's paragraph that starts with the bold ``title``."""
    start = README.index(f"**{title}**")
    return README[start:README.find("\n\n", start)]


def table_rules() -> set[str]:
    start = README.index("\n|", README.index("**Failure rules.**"))  # the table under that paragraph
    rows = [row for row in README[start:README.find("\n\n", start)].splitlines() if row.startswith("|")][2:]
    assert rows, "the README has a table of failure rules"
    # the rules column, without what the parentheses say of them (`source-ref`, `--url-key`...)
    return {rule for row in rows for rule in re.findall(r"`([^`]+)`", re.sub(r"\([^)]*\)", "", row.split("|")[2]))}


def rules_passed_to_failed() -> set[str]:
    """``Failed(..., rule="x")`` across the package: the rules given rather than read from a reason."""
    found = set()
    for path in (REPO / "totask_manifest").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Failed":
                for kw in node.keywords:
                    if kw.arg == "rule" and isinstance(kw.value, ast.Constant):
                        found.add(kw.value.value)
    return found


def code_rules() -> set[str]:
    read = {rule.replace("{0}", "NNN") for _, rule in _failure_rules._PATTERNS}
    decoder = {cls.rule for cls in ImageError.__subclasses__()}  # ``Failed(..., rule=exc.rule)``
    # a labeled line that would break an input rule fails with it (``recorder``: the output line)
    output_line = {"attribute-too-long", "line-too-long"}
    return read | rules_passed_to_failed() | decoder | output_line | {_failure_rules.UNCLASSIFIED}


def test_every_failure_rule_the_code_writes_is_in_the_readme_table_and_no_other():
    documented, written = table_rules(), code_rules()
    assert not written - documented, f"rules the code writes that the README's table leaves out: {written - documented}"
    assert not documented - written, f"rules in the README's table that the code never writes: {documented - written}"


def test_the_fail_fast_paragraph_names_exactly_the_configuration_rules():
    rules = code_rules()
    named = {x for x in _ID.findall(paragraph("Fail fast on a systematic failure."))  # not `source-ref`
             if x in rules or re.fullmatch(r"http-\d{3}", x)}
    assert named == set(_failure_rules.CONFIGURATION_RULES)


def test_the_mid_run_paragraph_names_exactly_the_rules_a_streak_stops_on():
    """The paragraph is the list users read: it named ``credentials that expired`` while the rules
    S3 answers them with (``permission-denied``, ``http-403``) were not watched mid-run."""
    text = paragraph("Stop when the means break mid-run.")
    ids = re.findall(r"`([a-z0-9]+(?:-[a-z0-9]+)*)`", text[:text.index(") also stop")])  # `timeout` too
    named = {x for x in ids if x in code_rules() or re.fullmatch(r"http-\d{3}", x)}
    assert named == set(_failure_rules.MID_RUN_RULES)
