"""A document kept as it is (``--native keep``) is a Ground Truth custom label, written inline. A
semantic-segmentation job's attribute ends in ``-ref`` (it holds file references), which no
inline label may: the job wrote them all the same, COMPLETED, and ``validate`` refused every
labeled line of its own output (``label-attribute-ref-forbidden``). The recorder, which checks
every label before it is written, now fails such a line with that rule and what to do."""

from __future__ import annotations

from pathlib import Path

import orjson

from tests.jobs_helpers import REPO
from totask_manifest._cli import main

SAMPLE = REPO / "sample_data"


def test_a_kept_document_under_a_ref_attribute_fails_its_line_and_the_output_validates(tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    code = main(["annotate", str(SAMPLE / "manifest.jsonl"), "--job-name", "ss", "--task-type", "semantic-segmentation",
                 "--method", "file", "--url-key", "annotation-ref", "--class-names", str(SAMPLE / "class_names.txt"),
                 "--allow-root", str(SAMPLE), "--output", str(out)])
    assert code == 1  # no line labeled: FAILED, not COMPLETED
    failures = [orjson.loads(line) for line in (out / "ss" / "failures.jsonl").read_bytes().splitlines()]
    kept = [f for f in failures if f["rule"] == "label-attribute-ref-forbidden"]
    assert kept and kept[0]["reason"].startswith(
        "label attribute 'ss-ref' must not end in '-ref': task type custom writes its label inline: the label is a "
        "custom document (kept as it is: --native keep or any); convert it"), kept[0]
    capsys.readouterr()
    assert main(["validate", str(out / "ss" / "manifests" / "output" / "output.manifest")]) == 0, capsys.readouterr()
