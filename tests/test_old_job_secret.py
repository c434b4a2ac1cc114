"""Jobs written before input URLs were recorded redacted kept a presigned or tokened input URL whole
in ``job.json`` (``config.input``, ``input.url``, ``input.read``: the job read its input in place),
and a ``user:password@`` input's folder, password included, as ``options.relative_to``.

``resume`` of such a job copies its input into the job folder as a new job does, checked against
the checksum ``job.json`` recorded, and rewrites ``job.json`` redacted; where that would change what
the job reads or fetches (a password in ``relative_to``, an input that cannot be read now), the
secret is kept and ``resume`` and ``status`` say so in one line, without showing it. Before, both
said nothing and the folder went on carrying the secret. The old ``job.json`` is written here by
hand, in the shape the code before commit bda1824 wrote."""

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

SECRETS = ("TOKSECRET", "s3cr3tPW")


def job_args(url: str, out: Path, job: str, *more: str) -> list[str]:
    return ["annotate", url, "--job-name", job, "--label-attribute", "cls", "--task-type", "image-classification",
            "--method", TOY, "--output", str(out), "--toy-delay", "0.01", "--checkpoint-every", "5", *more]


def as_written_before(job: Path, url: str, **options: str) -> None:
    """``job.json`` as the code before bda1824 wrote it for an input read in place from ``url``:
    the URL whole in ``config.input``, ``input.url`` and ``input.read``, no copy, no
    ``copied-sha256``; ``options`` (``relative_to``) as it defaulted them."""
    data = orjson.loads((job / "job.json").read_bytes())
    data["config"]["input"] = data["input"]["url"] = data["input"]["read"] = url
    data["input"].pop("copied-sha256", None)
    data["config"]["options"].update(options)
    (job / "job.json").write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2) + b"\n")
    (job / "manifests" / "input" / "input.manifest").unlink()


def shown(*runs) -> str:
    return "".join(r.stdout + r.stderr for r in runs)


@pytest.mark.slow
def test_resume_moves_an_old_jobs_tokened_input_into_its_folder(tmp_path: Path) -> None:
    inp = write_manifest(tmp_path / "in.manifest", 120, bad_every=0)
    ref = run_cli(*job_args(str(inp), tmp_path / "ref", "old"))
    assert ref.returncode == 0, ref.stderr
    out = tmp_path / "out"
    with FileServer() as server:
        server.add("d/in.manifest", inp.read_bytes())
        url = server.require_query("d/in.manifest", token="TOKSECRET")
        killed_midway(job_args(url, out, "old"), out / "old")
        as_written_before(out / "old", url)
        status = run_cli("status", str(out / "old"))
        assert status.returncode == 0, status.stderr
        warned = [line for line in status.stderr.splitlines() if "holds a secret" in line]
        assert len(warned) == 1 and "input.url, config.input, input.read" in warned[0], status.stderr
        resumed = run_cli("resume", str(out / "old"))
    assert resumed.returncode == 0, resumed.stderr
    assert "holds a secret" not in resumed.stderr
    data = orjson.loads((out / "old" / "job.json").read_bytes())
    assert data["status"] == "COMPLETED"
    assert data["input"]["read"] == str(out / "old" / "manifests" / "input" / "input.manifest")
    assert data["input"]["url"] == data["config"]["input"] == f"{server.url}/d/in.manifest?…"
    assert data["input"]["copied-sha256"] == data["input"]["sha256"]
    assert (out / "old" / "manifests" / "input" / "input.manifest").read_bytes() == inp.read_bytes()
    assert_same_output(output_of(out, "old"), output_of(tmp_path / "ref", "old"))
    assert not any(s in p.read_text(errors="replace") for p in (out / "old").rglob("*") if p.is_file() for s in SECRETS)
    assert not any(s in shown(status, resumed) for s in SECRETS)
    again = run_cli("status", str(out / "old"))
    assert again.returncode == 0 and "holds a secret" not in again.stderr, again.stderr


@pytest.mark.slow
def test_an_old_jobs_secret_that_cannot_be_moved_is_named_in_one_line(tmp_path: Path) -> None:
    """A password in ``relative_to`` is kept (the job's remaining data objects are fetched with it),
    and so is a tokened URL that cannot be read any more; each resume and status says so, once."""
    inp = write_manifest(tmp_path / "in.manifest", 40, bad_every=0)
    out = tmp_path / "out"
    with FileServer() as server:
        server.add("d/in.manifest", inp.read_bytes())
        server.add("e/in.manifest", inp.read_bytes())
        login = server.require_login("d/in.manifest", "bob", "s3cr3tPW")
        token = server.require_query("e/in.manifest", token="TOKSECRET")
        for job, url in (("pw", login), ("tok", token)):
            r = run_cli(*job_args(url, out, job))
            assert r.returncode == 0, r.stderr
        as_written_before(out / "pw", login, relative_to=login.rsplit("/", 1)[0])
        as_written_before(out / "tok", token)
        before = (out / "pw" / "job.json").read_bytes()
        pw = run_cli("resume", str(out / "pw"))
    tok = run_cli("resume", str(out / "tok"))  # the server is gone: the URL cannot be read now
    status = run_cli("status", str(out / "pw"))
    for r, why in ((pw, "options.relative_to, as versions before this one wrote it; kept: the job fetches"),
                   (tok, "in input.url, config.input, input.read, as versions before this one wrote it; kept: its "
                         "input cannot be read now"),
                   (status, "options.relative_to, as versions before this one wrote it; resume moves")):
        assert r.returncode == 0, r.stderr
        warned = [line for line in r.stderr.splitlines() if "holds a secret" in line]
        assert len(warned) == 1 and why in warned[0], r.stderr
    assert (out / "pw" / "job.json").read_bytes() == before  # not rewritten
    assert not any(s in shown(pw, tok, status) for s in SECRETS)
