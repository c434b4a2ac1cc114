"""The same ``annotate ... --append b.manifest`` again, after ``b.manifest`` changed: the job
reads the combined copy it made when it started, so before it went on silently with the old lines
of ``b`` (the rerun labeled another input than the one named). It is refused now as a changed
input is, naming the file; ``resume`` still goes on from the job's own copy, and the same command
with the manifests unchanged carries the job on."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from tests.jobs_helpers import (
    TOY,
    assert_same_output,
    killed_midway,
    output_of,
    run_cli,
    write_manifest,
)
from totask_manifest.testing.file_server import FileServer


def job_args(inp: str, out: Path, job: str, *more: str) -> list[str]:
    return ["annotate", inp, "--job-name", job, "--label-attribute", "cls", "--task-type", "image-classification",
            "--method", TOY, "--output", str(out), "--toy-delay", "0.01", "--checkpoint-every", "5", *more]


@pytest.mark.slow
def test_the_same_annotate_after_an_appended_manifest_changed_is_refused(tmp_path: Path) -> None:
    inp = write_manifest(tmp_path / "in.manifest", 60, bad_every=0)
    more = tmp_path / "more.manifest"
    more.write_bytes(b"".join(b'{"source-ref":"s3://bucket/more/m%d.jpg"}\n' % i for i in range(40)))
    out = tmp_path / "out"
    args = job_args(str(inp), out, "j", "--append", str(more))
    killed_midway(args, out / "j")
    ref = run_cli(*job_args(str(inp), tmp_path / "ref", "j", "--append", str(more)))  # the input as the job read it
    assert ref.returncode == 0, ref.stderr
    given = inp.read_bytes(), more.read_bytes()

    more.write_bytes(given[1] + b'{"source-ref":"s3://bucket/more/late.jpg"}\n')
    changed = run_cli(*args)
    assert changed.returncode == 1, changed.stderr
    assert changed.stderr.strip().splitlines()[-1].startswith("totask-manifest annotate: error: the --append manifest")
    assert f"the --append manifest {more} is not the one job 'j' combined when it started" in changed.stderr
    inp.write_bytes(given[0] + b'{"source-ref":"s3://bucket/late.jpg"}\n')  # the input, changed too: named first
    changed = run_cli(*args)
    assert changed.returncode == 1 and f"the input manifest {inp} is not the one job 'j'" in changed.stderr, changed.stderr

    resumed = run_cli("resume", str(out / "j"))  # the job's own copy, as it was
    assert resumed.returncode == 0, resumed.stderr
    assert_same_output(output_of(out, "j"), output_of(tmp_path / "ref", "j"))
    inp.write_bytes(given[0])
    more.write_bytes(given[1])
    same = run_cli(*args)  # the manifests as the job read them: the same job (before: "another configuration")
    assert same.returncode == 0 and "is already COMPLETED; nothing to do" in same.stderr, same.stderr


@pytest.mark.slow
def test_a_changed_appended_manifest_behind_a_signed_url_is_named_without_its_secret(tmp_path: Path) -> None:
    inp = write_manifest(tmp_path / "in.manifest", 60, bad_every=0)
    out = tmp_path / "out"
    extra = b"".join(b'{"source-ref":"s3://bucket/more/m%d.jpg"}\n' % i for i in range(40))
    with FileServer() as server:
        server.add("e/more.manifest", extra)
        url = server.require_query("e/more.manifest", token="TOKSECRET")
        args = job_args(str(inp), out, "s", "--append", url)
        killed_midway(args, out / "s")
        server.add("e/more.manifest", extra + b'{"source-ref":"s3://bucket/more/late.jpg"}\n')
        changed = run_cli(*args)
    assert changed.returncode == 1, changed.stderr
    assert f"the --append manifest {server.url}/e/more.manifest?… is not the one job 's'" in changed.stderr
    assert "TOKSECRET" not in changed.stderr + changed.stdout
    assert "TOKSECRET" not in (out / "s" / "job.json").read_text()
    expired = run_cli(*args)  # the server is gone: the job goes on from its copy
    assert expired.returncode == 0, expired.stderr
    assert orjson.loads((out / "s" / "job.json").read_bytes())["status"] == "COMPLETED"
