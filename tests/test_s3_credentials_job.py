"""A job whose data items are on S3 when S3 refuses its credentials, on a moto server that checks
them (``tests/support/s3.py: moto_s3_auth``), the CLI as a real process.

README "Fail fast on a systematic failure" and "Stop when the means break mid-run": credentials
refused from the first line, or revoked mid-run, stop the job FAILED without recording the lines
they failed, so ``resume`` with working credentials labels them. Before, a key revoked mid-run
(S3 answers 403: ``permission-denied``) failed every later line and the job said COMPLETED, exit 0;
a session token S3 cannot read (400) failed each line as a retried ``storage-error``, recorded
final, which a resume with the token fixed left failed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from tests.jobs_helpers import output_of, run_cli
from tests.support.s3 import AuthS3, moto_s3_auth
from tests.test_failure_rules import manifest, objects_doc
from totask_manifest._failure_rules import FAIL_FAST_LINES, MID_RUN_LINES

pytestmark = pytest.mark.slow  # a moto server process of its own

#: a session token S3 refuses: moto answers 400, with no reason at all to a HEAD (``Bad Request``)
BAD_TOKEN = "BadSessionToken0123456789"
#: lines labeled before the credentials break
WORKING = 40


@pytest.fixture(scope="module")
def auth_s3() -> Iterator[tuple[AuthS3, dict[str, str]]]:
    """The server, with one label file the job's user may read (``ok/``) and one it may not (``gone/``,
    as a revoked key finds every object), and that user's environment (``eng``)."""
    with moto_s3_auth(b'{"source-ref": "s3://b/0.jpg"}\n') as server:
        s3, iam = server.client("s3"), server.client("iam")
        for key in ("ok/f.json", "gone/f.json"):
            s3.put_object(Bucket=server.bucket, Key=key, Body=objects_doc())
        iam.create_user(UserName="eng")
        iam.put_user_policy(UserName="eng", PolicyName="p", PolicyDocument=json.dumps({
            "Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Action": "s3:*", "Resource": "*"},
                {"Effect": "Deny", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{server.bucket}/gone/*"}]}))
        key = iam.create_access_key(UserName="eng")["AccessKey"]
        yield server, server.env(key["AccessKeyId"], key["SecretAccessKey"])


def _annotate(src: Path, out: Path) -> list[str]:
    return ["annotate", str(src), "--job-name", "j", "--label-attribute", "boxes", "--task-type",
            "object-detection", "--method", "file", "--url-key", "label-url", "--native", "convert",
            "--output", str(out)]


def _state(out: Path) -> dict:
    return orjson.loads((out / "j" / "job.json").read_bytes())


def _labeled(out: Path) -> int:
    return sum("failure-rule" not in orjson.loads(line)["boxes-metadata"]
               for line in output_of(out, "j").read_bytes().splitlines())


def test_credentials_revoked_mid_run_stop_the_job_and_resume_with_new_ones_labels_the_rest(
        auth_s3: tuple[AuthS3, dict[str, str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """40 lines read, then every object answers 403 (a revoked key's answer): the job stops FAILED
    after 256 of them, exit 1, those lines not recorded; a resume with other credentials labels all."""
    server, eng = auth_s3
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    bucket = f"s3://{server.bucket}"
    lines = WORKING + MID_RUN_LINES + 20
    src = manifest(tmp_path / "in.manifest", [f"{bucket}/ok/f.json"] * WORKING
                   + [f"{bucket}/gone/f.json"] * (lines - WORKING))
    out = tmp_path / "out"
    first = run_cli(*_annotate(src, out), env=eng)
    state = _state(out)
    assert first.returncode == 1 and state["status"] == "FAILED", first.stdout[-2000:] + first.stderr[-2000:]
    assert state["error"].startswith(f"the last {MID_RUN_LINES} lines failed with 'permission-denied' after "
                                     f"{WORKING} lines"), state["error"]
    metrics = state["metrics"]
    assert (metrics["success"], metrics["failed"], metrics["stand_by"]) == (WORKING, MID_RUN_LINES, 20), metrics
    admin = server.env(server.admin["key"], server.admin["secret"])  # new credentials, allowed to read
    again = run_cli("resume", str(out / "j"), env=admin)
    state = _state(out)
    assert again.returncode == 0 and state["status"] == "COMPLETED", again.stderr[-2000:]
    assert state["metrics"]["success"] == lines and _labeled(out) == lines, state["metrics"]


def test_a_session_token_s3_refuses_stops_the_first_lines_and_resume_with_it_fixed_labels_them(
        auth_s3: tuple[AuthS3, dict[str, str]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each data item's 400 is the configuration rule ``storage-credentials-refused``, tried once and
    named with ``AWS_SESSION_TOKEN``, as the commands' own reads name it: the job stops after the
    first 32 lines, and a resume with the token unset labels every line."""
    server, _ = auth_s3
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    lines = FAIL_FAST_LINES + 8
    src = manifest(tmp_path / "in.manifest", [f"s3://{server.bucket}/ok/f.json"] * lines)
    out = tmp_path / "out"
    reader = server.env(server.read_only["key"], server.read_only["secret"])
    first = run_cli(*_annotate(src, out), env={**reader, "AWS_SESSION_TOKEN": BAD_TOKEN})
    state = _state(out)
    assert first.returncode == 1 and state["status"] == "FAILED", first.stderr[-2000:]
    assert f"each of the first {FAIL_FAST_LINES} lines failed with 'storage-credentials-refused'" in state["error"]
    assert "AWS_SESSION_TOKEN is set" in state["error"] and "attempts" not in state["error"], state["error"]
    assert BAD_TOKEN not in first.stdout + first.stderr + (out / "j" / "job.json").read_text()
    metrics = state["metrics"]
    assert (metrics["success"], metrics["failed"], metrics["stand_by"]) == (0, FAIL_FAST_LINES, 8), metrics
    again = run_cli("resume", str(out / "j"), env=reader)  # the token fixed: here, none needed
    state = _state(out)
    assert again.returncode == 0 and state["status"] == "COMPLETED", again.stderr[-2000:]
    assert state["metrics"]["success"] == lines and _labeled(out) == lines, state["metrics"]
