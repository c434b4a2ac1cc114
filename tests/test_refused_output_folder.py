"""An ``annotate`` refused before its job exists (an input that is not there, a malformed first
line) leaves no folder it made: taking the job's lease created ``--output`` (and the folders above
it that were missing), and only the job folder and ``.lease`` went again, so an empty ``--output``
folder stayed behind. A folder that existed before the command stays, empty as it was."""

from __future__ import annotations

import pytest

from tests.jobs_helpers import TOY, run_cli


def _annotate(inp, out):
    return run_cli("annotate", str(inp), "--job-name", "j", "--label-attribute", "cls", "--task-type",
                   "image-classification", "--method", TOY, "--output", str(out))


def _inputs(tmp_path):
    bad = tmp_path / "bad.manifest"
    bad.write_bytes(b'not json\n{"source-ref":"s3://b/a.jpg"}\n')
    return {"missing": (tmp_path / "nope.manifest", 2, "input manifest not found"),
            "malformed": (bad, 1, "line 1: line is not a single JSON object")}


@pytest.mark.parametrize("refusal", ["missing", "malformed"])
def test_a_refused_annotate_removes_the_output_folders_it_made(tmp_path, refusal):
    inp, code, message = _inputs(tmp_path)[refusal]
    out = tmp_path / "new" / "out"  # neither folder exists: the command makes both
    r = _annotate(inp, out)
    assert r.returncode == code and message in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.manifest"], list(tmp_path.iterdir())


@pytest.mark.parametrize("refusal", ["missing", "malformed"])
def test_a_refused_annotate_keeps_output_folders_that_existed(tmp_path, refusal):
    inp, code, message = _inputs(tmp_path)[refusal]
    out = tmp_path / "out"
    out.mkdir()
    (tmp_path / "out2" / "j").mkdir(parents=True)  # the job's own folder made beforehand, empty
    for root in (out, tmp_path / "out2"):
        r = _annotate(inp, root)
        assert r.returncode == code and message in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert list(out.iterdir()) == []
    assert [p.name for p in (tmp_path / "out2").iterdir()] == ["j"] and list((tmp_path / "out2" / "j").iterdir()) == []
