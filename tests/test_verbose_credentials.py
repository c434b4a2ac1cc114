"""``-v`` turns on every library's debug lines, and botocore's print the signing material of each
S3 request: its canonical request (``x-amz-security-token:<token>``), the request's headers
(``'X-Amz-Security-Token': b'<token>'``, ``'Authorization': b'AWS4-HMAC-SHA256 ...'``). A
``validate -v s3://...`` printed the session token six times. The botocore family stays at INFO
under ``-v`` and every log line goes out with credential headers' values replaced. Real parts:
moto's S3 server, the CLI as a subprocess with the token in its environment, as a user has it."""

from __future__ import annotations

import pytest

from tests.jobs_helpers import REPO, run_cli
from totask_manifest._redaction import scrub_log_text

pytestmark = pytest.mark.slow

TOKEN = "SessionTokenSecret9f3a"


def test_verbose_validate_of_an_s3_manifest_prints_no_session_token(s3) -> None:
    bucket = s3.new_bucket("verbose")
    s3.filesystem().pipe(f"{bucket}/in.manifest", (REPO / "sample_data" / "manifest.jsonl").read_bytes())
    r = run_cli("-v", "validate", f"{bucket}/in.manifest", env={"AWS_SESSION_TOKEN": TOKEN})
    assert r.returncode == 0, r.stderr
    assert "valid: 50 lines, 0 errors" in r.stdout
    assert TOKEN not in r.stdout + r.stderr
    assert "StringToSign" not in r.stderr  # botocore's signing lines are not printed at all
    assert "in.manifest" in r.stderr  # other libraries' debug lines are (fsspec's reads)


@pytest.mark.parametrize(("line", "kept"), [
    ("headers={'User-Agent': b'x', 'X-Amz-Security-Token': b'TOK', 'Authorization': b'AWS4-HMAC-SHA256 Credential=A, "
     "Signature=SIG'}", "headers={'User-Agent': b'x', 'X-Amz-Security-Token': …, 'Authorization': …}"),
    ("x-amz-security-token:TOK", "x-amz-security-token:…"),
    ("Authorization: Bearer TOK", "Authorization: …"),
    ("cookie=TOK; path", "cookie=…; path"),
    ("the authorization step failed for https://host/a?sig=TOK", "the authorization step failed for https://host/a?…"),
])
def test_a_log_line_keeps_no_credential_header_value(line: str, kept: str) -> None:
    assert scrub_log_text(line) == kept
