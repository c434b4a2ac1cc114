"""A job.json whose ``config.options.relative_to_appended`` (the ``[first line index, folder]`` pair
of each ``--append`` manifest, set by the job) is not a list of pairs (``5``, edited by hand or by a
tool): ``evaluate`` and ``report`` iterated it and showed a ``TypeError`` traceback. It is damage
like any key of the wrong kind: ``evaluate`` (and every command that opens the job) refuses it in
``status``'s one line, exit 1; ``report`` writes its page from what the file holds and says the same,
exit 1. The job is real (the toy annotator, one ``--append`` manifest); the commands run as
subprocesses."""

from __future__ import annotations

import shutil
from pathlib import Path

import orjson
import pytest

from tests.jobs_helpers import run_cli, toy_job_args, write_manifest

RULE = "config.options.relative_to_appended is {}, not an array of [first line index, folder] pairs"


@pytest.fixture(scope="module")
def job(tmp_path_factory) -> Path:
    """A COMPLETED toy job ``out/j`` over 6 lines and 4 more ``--append``-ed."""
    root = tmp_path_factory.mktemp("appended-bases")
    inp = write_manifest(root / "a.manifest", 6, bad_every=0)
    more = root / "b.manifest"
    more.write_bytes(b"".join(orjson.dumps({"source-ref": f"s3://b/x{i}.jpg"}) + b"\n" for i in range(4)))
    r = run_cli(*toy_job_args(inp, root / "out", "--append", str(more)))
    assert r.returncode == 0, r.stderr
    return root / "out" / "j"


def _with_bases(job: Path, tmp_path: Path, value) -> Path:
    """A copy of ``job`` whose job.json holds ``value`` as ``relative_to_appended``."""
    copy = tmp_path / "out" / "j"
    shutil.copytree(job, copy)
    data = orjson.loads((copy / "job.json").read_bytes())
    assert isinstance(data["config"]["options"]["relative_to_appended"], list)
    data["config"]["options"]["relative_to_appended"] = value
    (copy / "job.json").write_bytes(orjson.dumps(data))
    return copy


@pytest.mark.parametrize("value, kind", [(5, "a number"), ([6], "an array holding another value"),
                                         ({"6": "x"}, "an object")])
def test_evaluate_refuses_it_in_one_line(job, tmp_path, value, kind):
    folder = _with_bases(job, tmp_path, value)
    r = run_cli("evaluate", str(folder), "--predicted", "cls", "--reference", "cls")
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert r.stderr == (f"totask-manifest evaluate: error: {folder / 'job.json'} is damaged ({RULE.format(kind)}); "
                        "restore it or start a new job\n")
    assert r.stdout == ""


def test_report_writes_its_page_and_says_it(job, tmp_path):
    folder = _with_bases(job, tmp_path, 5)
    page = tmp_path / "page.html"
    r = run_cli("report", str(folder), "-o", str(page), "--samples", "2")
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert r.stderr == (f"totask-manifest report: error: {folder / 'job.json'} is damaged ({RULE.format('a number')}); "
                        "the page shows what it holds\n")
    assert page.exists() and "Traceback" not in r.stderr


def test_a_sound_job_is_read_as_before(job, tmp_path):
    r = run_cli("report", str(job), "-o", str(tmp_path / "page.html"), "--samples", "0")
    assert r.returncode == 0 and r.stderr == "", r.stderr
