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
    assert "(1 sample, 1 failure)" in report.stdout
    for secret in SECRETS:
        for name, text in (("failures.jsonl", failures), ("report", html), ("annotate's output", job.stdout + job.stderr),
                           ("report's output", report.stdout + report.stderr)):
            assert secret not in text, f"{secret} in {name}"


@pytest.mark.slow
def test_a_manifest_urls_token_stays_out_of_validate_stats_convert_and_the_report(tmp_path: Path) -> None:
    """The manifest itself read through a URL with a token in its query: ``status`` printed it
    redacted, but validate and stats (text and JSON), convert's error and the report's "input"
    printed it whole, and the job folder kept it (``job.json``'s input and configuration)."""
    sample = REPO / "sample_data"
    lines = [{"source-ref": f"img/{i}.jpg", "annotation-ref": f"ann/{i}.json"} for i in range(2)]
    with FileServer() as server:
        for i in range(2):
            server.add(f"img/{i}.jpg", (sample / "images" / f"img_00{i}.jpg").read_bytes())
            server.add(f"ann/{i}.json", (sample / "annotations" / f"img_00{i}.json").read_bytes())
        server.add("in.manifest", b"".join(orjson.dumps(x) + b"\n" for x in lines))
        url = server.url_for("in.manifest") + "?token=TOKSECRET"
        runs = {"annotate": run_cli("annotate", url, "--job-name", "tok", "--label-attribute", "boxes",
                                    "--task-type", "object-detection", "--method", "file", "--url-key",
                                    "annotation-ref", "--class-names", str(sample / "class_names.txt"),
                                    "--native", "convert", "--output", str(tmp_path / "out"))}
        assert runs["annotate"].returncode == 0, runs["annotate"].stderr
        runs["report"] = run_cli("report", str(tmp_path / "out" / "tok"), "-o", str(tmp_path / "r.html"))
        for fmt in ("text", "json"):
            runs[f"validate {fmt}"] = run_cli("validate", url, "--format", fmt)
            runs[f"stats {fmt}"] = run_cli("stats", url, "--format", fmt)
        runs["convert"] = run_cli("convert", url, str(tmp_path / "c.json"), "--to", "coco")  # no label: refused
    # nothing to convert is a data problem: exit 1 (convert-no-labels), the URL shown without its query
    assert runs["convert"].returncode == 1 and "in.manifest?…" in runs["convert"].stderr, runs["convert"].stderr
    for name in ("report", "validate text", "validate json", "stats text", "stats json"):
        assert runs[name].returncode == 0, (name, runs[name].stderr)
    assert "in.manifest?…" in runs["validate text"].stdout and "in.manifest?…" in runs["stats text"].stdout
    html = (tmp_path / "r.html").read_text()
    assert "in.manifest?…" in html
    folder = [(str(p), p.read_bytes().decode("utf-8", "replace")) for p in (tmp_path / "out").rglob("*") if p.is_file()]
    for name, text in [("report page", html), *((name, r.stdout + r.stderr) for name, r in runs.items()), *folder]:
        assert "TOKSECRET" not in text, name


@pytest.mark.slow
def test_secret_source_urls_stay_out_of_evaluate_and_the_reports_evaluation(tmp_path: Path) -> None:
    """evaluate's worst lines (JSON ``worst_lines[].source``) and the report's evaluation tiles
    named each image by its whole source-ref, password and signature included."""
    sample = REPO / "sample_data"
    with FileServer() as server:
        server.add("img/a.jpg", (sample / "images" / "img_000.jpg").read_bytes())
        host = server.url.split("://", 1)[1]
        source = f"http://bob:s3cr3tPW@{host}/img/a.jpg?X-Amz-Signature=SIGSECRET&token=TOKSECRET"
        meta = {"class-map": {"0": "circle"}, "type": "groundtruth/object-detection",
                "creation-date": "2024-01-01T00:00:00.000000", "job-name": "labeling-job/j"}
        box = {"class_id": 0, "left": 10, "top": 10, "width": 30, "height": 30}
        label = {"image_size": [{"width": 160, "height": 120, "depth": 3}], "annotations": [box]}
        moved = {**label, "annotations": [{**box, "left": 100}]}
        line = {"source-ref": source, "pred": moved, "pred-metadata": {**meta, "human-annotated": "no",
                                                                         "objects": [{"confidence": 0.9}]},
                "ref": label, "ref-metadata": {**meta, "human-annotated": "yes"}}
        job = tmp_path / "job"
        (job / "manifests" / "output").mkdir(parents=True)
        (job / "manifests" / "output" / "output.manifest").write_bytes(orjson.dumps(line) + b"\n")
        runs = {fmt: run_cli("evaluate", str(job), "--predicted", "pred", "--reference", "ref", "--format", fmt)
                for fmt in ("text", "json")}
        runs["report"] = run_cli("report", str(job), "-o", str(tmp_path / "r.html"))
    for name, r in runs.items():
        assert r.returncode == 0, (name, r.stderr)
    worst = orjson.loads(runs["json"].stdout)["worst_lines"]
    assert [w["line"] for w in worst] == [1] and worst[0]["source"].endswith(f"{host}/img/a.jpg?…"), worst
    html = (tmp_path / "r.html").read_text()
    assert "a.jpg?…" in html
    for secret in SECRETS:
        for name, text in [("report page", html), *((name, r.stdout + r.stderr) for name, r in runs.items())]:
            assert secret not in text, (secret, name)


def test_a_masks_presigned_url_stays_out_of_its_errors() -> None:
    """A segmentation line's mask (``<A>-ref``) may be a presigned URL: 'cannot read mask URL'
    and 'mask URL has colours missing' (convert's error, the report's tile) printed it whole."""
    import io

    from PIL import Image

    from totask_manifest._analytics.masks import mask_from_bytes
    from totask_manifest._errors import ManifestError

    url = "https://bob:s3cr3tPW@bucket.example/masks/a.png?X-Amz-Signature=SIGSECRET&token=TOKSECRET"
    png = io.BytesIO()
    Image.new("RGB", (4, 4), (255, 0, 0)).save(png, format="PNG")
    cmap = {"0": {"class-name": "BACKGROUND", "hex-color": "#ffffff"}}
    for data in (b"not a png", png.getvalue()):
        with pytest.raises(ManifestError) as refused:
            mask_from_bytes(data, cmap, url=url)
        assert "bucket.example/masks/a.png?…" in str(refused.value), refused.value
        for secret in SECRETS:
            assert secret not in str(refused.value), refused.value


def test_status_text_shows_the_jobs_urls_without_their_secrets(tmp_path: Path, capsys) -> None:
    """A job chained from a job read over HTTP with user info (``https://bob:pw@host/jobs/a``)
    records that URL; ``status --format json`` printed it redacted, the text view whole (its
    ``chained from`` and ``cloned from`` lines, and the job folder as given)."""
    from tests.jobs_helpers import sample_job_args
    from totask_manifest._cli import main

    job = tmp_path / "out" / "st"
    assert main(sample_job_args("st", tmp_path / "out")) == 0
    data = orjson.loads((job / "job.json").read_bytes())
    data["chained-from"] = "https://bob:s3cr3tPW@jobs.example/jobs/a"  # as a chain from that job records it
    data["cloned-from"] = "https://jobs.example/jobs/b?token=TOKSECRET"
    (job / "job.json").write_bytes(orjson.dumps(data))
    capsys.readouterr()
    assert main(["status", str(job)]) == 0
    text = capsys.readouterr().out
    assert "chained from: https://jobs.example/jobs/a\n" in text and "cloned from: https://jobs.example/jobs/b?…" in text
    for secret in SECRETS:
        assert secret not in text, text


def test_the_job_result_shows_the_output_root_without_its_secrets() -> None:
    """``annotate``, ``resume``, ``chain`` and ``clone`` end with the job's result: the job folder,
    its output manifest and failures file, all below the output root as given. A root with a
    password or a signed query printed them whole (``status`` redacted the same URLs)."""
    import io

    from totask_manifest._cli._jobs import report
    from totask_manifest._jobs.config import JobResult

    root = "https://bob:s3cr3tPW@jobs.example/out/j"
    query = "?X-Amz-Signature=SIGSECRET&token=TOKSECRET"
    result = JobResult(root + query, "COMPLETED", {"total": 2, "success": 1, "failed": 1},
                       f"{root}/manifests/output/output.manifest{query}", f"{root}/failures.jsonl{query}")
    out = io.StringIO()
    report(result, stream=out)
    text = out.getvalue()
    assert "job https://jobs.example/out/j?…: COMPLETED" in text, text
    assert "jobs.example/out/j/manifests/output/output.manifest?…" in text, text
    assert "failures: https://jobs.example/out/j/failures.jsonl?…" in text, text
    for secret in SECRETS:
        assert secret not in text, text


@pytest.mark.parametrize("given", ["flag", "RAY_ADDRESS"])
def test_a_ray_address_with_a_password_or_token_is_named_without_it(tmp_path: Path, given: str) -> None:
    """``--ray-address`` (or ``RAY_ADDRESS``) with user info or a query, where nothing answers: the
    refusal named the address whole, password and token included. No Ray starts: the address is
    probed before."""
    pytest.importorskip("ray")
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    address = f"ray://bob:s3cr3tPW@127.0.0.1:{port}?token=TOKSECRET"
    sample = REPO / "sample_data"
    args = ["annotate", str(sample / "manifest.jsonl"), "--job-name", "r", "--label-attribute", "boxes", "--task-type",
            "object-detection", "--method", "file", "--url-key", "annotation-ref", "--class-names",
            str(sample / "class_names.txt"), "--native", "convert", "--allow-root", str(sample), "--output",
            str(tmp_path / "out"), "--engine", "ray"]
    r = run_cli(*args, *(["--ray-address", address] if given == "flag" else []),
                env={"RAY_ADDRESS": address if given != "flag" else ""})
    named = "--ray-address " if given == "flag" else "RAY_ADDRESS="
    assert r.returncode == 2, r.stderr
    # refused as Ray Client is not installed, or as nothing answers: named without the secrets either way
    assert r.stderr.startswith(f"totask-manifest annotate: error: {named}ray://127.0.0.1:{port}?…: "), r.stderr
    assert "s3cr3tPW" not in r.stdout + r.stderr and "TOKSECRET" not in r.stdout + r.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("raises", [False, True], ids=["failed", "raised"])
def test_a_method_plugins_words_never_carry_the_environments_credentials(tmp_path: Path, raises: bool) -> None:
    """A plugin is arbitrary code that can read the Synapse token and the model's credential; what it
    said (each line's ``Failed`` reason, or its exception) went whole into failures.jsonl, the output
    manifest's failure-reason, job.json's error and the terminal."""
    manifest = tmp_path / "in.manifest"
    manifest.write_bytes(b"".join(orjson.dumps({"source-ref": f"s3://b/{i}.jpg"}) + b"\n" for i in range(3)))
    r = run_cli("annotate", str(manifest), "--job-name", "e", "--label-attribute", "cls", "--task-type",
                "image-classification", "--method", "tests.support.toy_annotators:EnvEcho", "--output",
                str(tmp_path / "out"), *(["--echo-raise"] if raises else []),
                env={"SYNAPSE_ACCESS_TOKEN": "SynTok-SECRET-4411", "TOTASK_MODEL_AUTHORIZATION": "Bearer MdlSECRET77"})
    assert r.returncode == 1, r.stderr
    job = tmp_path / "out" / "e"
    said = "refused: token *** / ***"
    where = (job / "job.json") if raises else (job / "failures.jsonl")
    assert said in where.read_text() and said in r.stdout + r.stderr, r.stdout + r.stderr
    texts = [("output", r.stdout + r.stderr)] + [(str(p), p.read_text(errors="replace")) for p in job.rglob("*") if p.is_file()]
    for secret in ("SynTok-SECRET-4411", "MdlSECRET77"):
        for name, text in texts:
            assert secret not in text, f"{secret} in {name}"


def test_a_ray_actors_build_error_never_carries_the_environments_credentials(monkeypatch) -> None:
    """An actor whose annotator could not be built names why in the job's error; a plugin's
    constructor that quoted the token it read put it there whole. (No Ray starts: the text alone.)"""
    pytest.importorskip("ray")
    from totask_manifest._engines.ray_stream import build_error_text

    monkeypatch.setenv("SYNAPSE_ACCESS_TOKEN", "SynTok-SECRET-4411")
    text = build_error_text(RuntimeError("login with SynTok-SECRET-4411 refused"))
    assert text == "RuntimeError: login with *** refused"
