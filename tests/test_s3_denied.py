"""S3 refusing a user, on a moto server that checks credentials and IAM policies
(``tests/support/s3.py: moto_s3_auth``): wrong credentials, and a user allowed only to read.

Every command must answer as the README says for a storage URL that cannot be read or written:
exit code 2 and one line naming the URL, never the secret, and nothing written. s3fs turns S3's
403 into a bare ``PermissionError("Forbidden")``: commands whose first S3 call was an existence
check printed ``error: Forbidden`` and no URL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.s3 import AuthS3, moto_s3_auth

REPO = Path(__file__).resolve().parents[1]
SECRET = "WrongSecretValue0123456789"

pytestmark = pytest.mark.slow  # a moto server process of its own


@pytest.fixture(scope="module")
def auth_s3() -> Iterator[AuthS3]:
    manifest = (REPO / "sample_data" / "manifest.jsonl").read_bytes()
    with moto_s3_auth(manifest) as server:
        yield server


def _as_user(monkeypatch: pytest.MonkeyPatch, server: AuthS3, key: str, secret: str) -> None:
    import fsspec
    import s3fs

    for name, value in server.env(key, secret).items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delitem(fsspec.config.conf, "s3", raising=False)
    s3fs.S3FileSystem.clear_instance_cache()  # its instances are keyed by arguments, not by the environment


def _objects(server: AuthS3) -> list[str]:
    import boto3

    client = boto3.client("s3", endpoint_url=server.endpoint_url, region_name="us-east-1",
                          aws_access_key_id=server.read_only["key"],
                          aws_secret_access_key=server.read_only["secret"])
    return sorted(o["Key"] for o in client.list_objects_v2(Bucket=server.bucket).get("Contents", []))


def _one_line_error(capsys: pytest.CaptureFixture[str], url: str, secret: str) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert url in err, err
    assert secret not in err, err
    return err


ANNOTATE = ["--job-name", "j", "--label-attribute", "boxes", "--task-type", "object-detection",
            "--method", "file", "--url-key", "annotation-ref"]


@pytest.mark.parametrize("command", [
    ["annotate", "{m}", *ANNOTATE, "--output", "{b}/out"],
    ["status", "{b}/out/j"],
    ["report", "{b}/out/j", "-o", "{tmp}/r.html"],
    ["chain", "{b}/out/j", "--job-name", "k"],
    ["clone", "{b}/out/j", "--job-name", "k"],
    ["resume", "{b}/out/j"],
    ["convert", "{m}", "{tmp}/o.parquet", "--to", "parquet"],
    ["evaluate", "{b}/out/j"],
    ["validate", "{m}"],
    ["stats", "{m}"],
    ["labeled", "{m}", "--label-attribute", "boxes", "-o", "{tmp}/l.manifest"],
], ids=lambda c: c[0])
def test_wrong_credentials_one_line_naming_the_url(auth_s3, command, monkeypatch, capsys, tmp_path):
    from totask_manifest._cli import main

    bucket = f"s3://{auth_s3.bucket}"
    args = [a.format(m=f"{bucket}/manifest.jsonl", b=bucket, tmp=tmp_path) for a in command]
    _as_user(monkeypatch, auth_s3, "AKIANOSUCHUSER00000", SECRET)
    assert main(args) == 2
    _one_line_error(capsys, bucket, SECRET)
    assert _objects(auth_s3) == ["manifest.jsonl"]


def test_evaluate_of_a_manifest_with_wrong_credentials_names_the_manifest(auth_s3, monkeypatch, capsys):
    """evaluate first asks whether its argument is a job folder: the refusal named
    ``<manifest>/job.json``, a file the user never mentioned."""
    from totask_manifest._cli import main

    manifest = f"s3://{auth_s3.bucket}/manifest.jsonl"
    _as_user(monkeypatch, auth_s3, "AKIANOSUCHUSER00000", SECRET)
    assert main(["evaluate", manifest]) == 2
    err = _one_line_error(capsys, manifest, SECRET)
    assert "job.json" not in err, err


@pytest.mark.parametrize("command", [
    ["annotate", "{m}", *ANNOTATE, "--output", "{b}/out"],
    ["convert", "{m}", "{b}/o.parquet", "--to", "parquet"],
    ["report", "{b}/nojob", "-o", "{b}/r.html"],
], ids=lambda c: c[0])
def test_read_only_user_writes_nothing(auth_s3, command, monkeypatch, capsys):
    from totask_manifest._cli import main

    bucket = f"s3://{auth_s3.bucket}"
    args = [a.format(m=f"{bucket}/manifest.jsonl", b=bucket) for a in command]
    _as_user(monkeypatch, auth_s3, auth_s3.read_only["key"], auth_s3.read_only["secret"])
    assert main(args) == 2
    _one_line_error(capsys, bucket, auth_s3.read_only["secret"])
    assert _objects(auth_s3) == ["manifest.jsonl"]


#: a session token S3 refuses: moto answers 400, with no reason at all to a HEAD (``Bad Request``)
BAD_TOKEN = "BadSessionToken0123456789"


@pytest.mark.parametrize("case", ["session-token", "secret", "bucket"])
@pytest.mark.parametrize("command", [
    ["validate", "{m}"],
    ["stats", "{m}"],
    ["convert", "{m}", "{tmp}/o.json", "--to", "coco"],
    ["annotate", "{m}", *ANNOTATE, "--output", "{tmp}/out"],
], ids=lambda c: c[0])
def test_refused_credentials_in_a_subprocess_one_line_naming_the_url(auth_s3, command, case, monkeypatch, tmp_path):
    """As a user meets it: the CLI as a process, its environment holding a session token S3 refuses,
    a wrong secret, or good credentials and a bucket that is not there. ``convert`` and
    ``annotate`` said ``error: Bad Request`` (the session token's 400 to a HEAD) and ``error: The
    provided token is malformed or otherwise invalid.``: no URL, for s3fs turns S3's refusal into a
    bare ``OSError`` that names no file."""
    from tests.jobs_helpers import run_cli

    bucket = f"s3://{auth_s3.bucket}" if case != "bucket" else "s3://no-such-bucket-0123"
    args = [a.format(m=f"{bucket}/manifest.jsonl", tmp=tmp_path) for a in command]
    secret = "WrongSecretValue0123456789" if case == "secret" else auth_s3.read_only["secret"]
    env = auth_s3.env(auth_s3.read_only["key"], secret)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    if case == "session-token":
        env["AWS_SESSION_TOKEN"] = BAD_TOKEN
    r = run_cli(*args, env=env)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"totask-manifest {command[0]}: error: "), r.stderr
    assert f"{bucket}/manifest.jsonl" in lines[0], r.stderr
    if case == "session-token":  # the rule: what S3 refused, and the variable to look at
        assert "AWS_SESSION_TOKEN" in lines[0] or "token is malformed" in lines[0], r.stderr
    for value in (BAD_TOKEN, secret):
        assert value not in r.stdout + r.stderr
    assert not list(tmp_path.iterdir())  # nothing written: no output, no job folder


@pytest.mark.parametrize("case", ["session-token", "secret"])
def test_refused_credentials_for_the_output_name_the_output_the_user_gave(auth_s3, case, monkeypatch, tmp_path):
    """A local input and an S3 ``--output`` that refuses the credentials: the line named
    ``<output>/j/job.json``, a file the user never typed; it names the output root given."""
    from tests.jobs_helpers import run_cli

    manifest = tmp_path / "in.manifest"
    manifest.write_bytes((REPO / "sample_data" / "manifest.jsonl").read_bytes())
    output = f"s3://{auth_s3.bucket}/out"
    secret = SECRET if case == "secret" else auth_s3.read_only["secret"]
    env = auth_s3.env(auth_s3.read_only["key"], secret)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    if case == "session-token":
        env["AWS_SESSION_TOKEN"] = BAD_TOKEN
    r = run_cli("annotate", str(manifest), *ANNOTATE, "--output", output, env=env)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("totask-manifest annotate: error: "), r.stderr
    assert output in lines[0] and "job.json" not in lines[0] and f"{output}/j" not in lines[0], r.stderr
    for value in (BAD_TOKEN, secret):
        assert value not in r.stdout + r.stderr
    assert _objects(auth_s3) == ["manifest.jsonl"]
