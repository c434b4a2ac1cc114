"""A data object's URL may carry a secret: a password in its user info, a presigned signature or an
API key in its query. The manifest keeps it (lines pass through byte for byte), but nothing the tool
writes about the line (failures.jsonl, the report's failures table and thumbnail titles, the log)
may repeat it. Real parts: the CLI as a subprocess and a real HTTP server on 127.0.0.1."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from tests.jobs_helpers import REPO, run_cli
from totask_manifest.testing.file_server import FileServer

SECRETS = ("s3cr3tPW", "SIGSECRET", "TOKSECRET")


@pytest.mark.slow
def test_secrets_in_source_urls_stay_out_of_failures_report_and_log(tmp_path: Path) -> None:
    sample = REPO / "sample_data"
    with FileServer() as server:
        server.add("img/a.jpg", (sample / "images" / "img_000.jpg").read_bytes())
        server.add("ann/a.json", (sample / "annotations" / "img_000.json").read_bytes())
        host = server.url.split("://", 1)[1]
        secret_image = f"http://bob:s3cr3tPW@{host}/img/a.jpg?X-Amz-Signature=SIGSECRET&token=TOKSECRET"
        lines = [{"source-ref": secret_image, "annotation-ref": server.url_for("ann/a.json")},
                 {"source-ref": secret_image, "annotation-ref": server.url_for("ann/missing.json")}]
        manifest = tmp_path / "in.manifest"
        manifest.write_bytes(b"".join(orjson.dumps(x) + b"\n" for x in lines))
        job = run_cli("annotate", str(manifest), "--job-name", "sec", "--label-attribute", "boxes",
                      "--task-type", "object-detection", "--method", "file", "--url-key", "annotation-ref",
                      "--class-names", str(sample / "class_names.txt"), "--native", "convert",
                      "--output", str(tmp_path / "out"))
        assert job.returncode == 0, job.stderr
        report = run_cli("report", str(tmp_path / "out" / "sec"), "-o", str(tmp_path / "r.html"))
        assert report.returncode == 0, report.stderr
    failures = (tmp_path / "out" / "sec" / "failures.jsonl").read_text()
    assert orjson.loads(failures)["rule"] == "http-404"
    assert f"{host}/img/a.jpg" in failures  # the source is still named, without its secrets
    html = (tmp_path / "r.html").read_text()
    assert "(1 samples, 1 failures)" in report.stdout
    for secret in SECRETS:
        for name, text in (("failures.jsonl", failures), ("report", html), ("annotate's output", job.stdout + job.stderr),
                           ("report's output", report.stdout + report.stderr)):
            assert secret not in text, f"{secret} in {name}"
