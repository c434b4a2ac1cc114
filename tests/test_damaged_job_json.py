"""A job.json damaged by hand or by a tool: a required key null or of the wrong type (``"input":
null``, ``"metrics": []``, ``"input": {"sha256": null}``) is refused by every command that reads the
job, in one line naming job.json, the key and the rule, exit code 1, as a truncated job.json is.
Before, ``"input": null`` read as an input with no checksum: ``status`` showed 0 lines and
``resume`` ran on without checking its input. The job is real (the toy annotator); the commands run as subprocesses."""

from __future__ import annotations

import shutil
from pathlib import Path

import orjson
import pytest

from tests.jobs_helpers import TOY, run_cli, write_manifest
from totask_manifest import _api as api
from totask_manifest._errors import JobError
from totask_manifest._jobs.config import JobConfig
from totask_manifest._jobs.job import Job
from totask_manifest._jobs.status import COMPLETED


@pytest.fixture(scope="module")
def job(tmp_path_factory) -> Path:
    """A COMPLETED toy job ``out/j`` over 12 lines."""
    root = tmp_path_factory.mktemp("damaged-job-json")
    inp = write_manifest(root / "in.manifest", 12)
    config = JobConfig(job_name="j", input=str(inp), output_root=str(root / "out"), label_attribute="cls",
                       task_type="image-classification", method=TOY)
    assert api.annotate(config).status == COMPLETED
    return root / "out" / "j"


def damaged(job: Path, tmp_path: Path, change) -> Path:
    """A copy of ``job`` (under its own name) whose job.json ``change`` edited."""
    copy = tmp_path / "out" / "j"
    shutil.copytree(job, copy)
    data = orjson.loads((copy / "job.json").read_bytes())
    change(data)
    (copy / "job.json").write_bytes(orjson.dumps(data))
    return copy


def _set(*path, value):
    def change(data):
        for key in path[:-1]:
            data = data[key]
        data[path[-1]] = value
    return change


CASES = [
    (_set("input", value=None), "input is null, not an object"),
    (_set("input", value="in.manifest"), "input is a string, not an object"),
    (_set("input", "sha256", value=None), "input.sha256 is null, not a string"),
    (_set("input", "url", value=7), "input.url is a number, not a string"),
    (_set("input", "lines", value="12"), "input.lines is a string, not a whole number"),
    (_set("metrics", value=None), "metrics is null, not an object"),
    (_set("runs", value=None), "runs is null, not an array"),
    (_set("config", value=None), "config is null, not an object"),
    (_set("status", value=None), "status is null, not a string"),
    (lambda d: d.pop("input"), "input is missing"),
]


@pytest.mark.parametrize("change, rule", CASES)
def test_a_required_key_null_or_of_the_wrong_type_is_named(job, tmp_path, change, rule):
    folder = damaged(job, tmp_path, change)
    with pytest.raises(JobError) as info:
        Job.open(str(folder))
    assert str(info.value) == f"{folder / 'job.json'} is damaged ({rule}); restore it or start a new job"


@pytest.mark.slow
@pytest.mark.parametrize("change, rule", [CASES[0], CASES[5]])
@pytest.mark.parametrize("command", ["status", "resume", "clone", "chain"])
def test_every_job_command_refuses_it_in_one_line(job, tmp_path, change, rule, command):
    folder = damaged(job, tmp_path, change)
    before = (folder / "job.json").read_bytes()
    extra = {"clone": ["--job-name", "k"], "chain": ["--job-name", "k", "--label-attribute", "cls2"]}
    r = run_cli(command, str(folder), *extra.get(command, []))
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert r.stderr == f"totask-manifest {command}: error: {folder / 'job.json'} is damaged ({rule}); " \
        "restore it or start a new job\n"
    assert r.stdout == "" and (folder / "job.json").read_bytes() == before
    assert sorted(p.name for p in folder.parent.iterdir()) == ["j"]  # no new job was started
