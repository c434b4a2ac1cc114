"""An input manifest read through a URL that carries a secret (a presigned query, a password in its
user info): ``status`` showed it redacted, but ``job.json`` kept it whole (``input.url``,
``input.read``, ``config.input``, the password in ``options.relative_to``), in the folder people
copy, share and attach to tickets. The job now copies that input into its folder once, records
the URL redacted, and ``resume``, ``clone`` and the same ``annotate`` again read the copy: the URL
may have expired by then. Real parts: a real HTTP server on 127.0.0.1 that serves the manifest only
with the secret, the CLI in subprocesses, ``kill -9`` at a checkpoint."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import orjson
import pytest

from tests.jobs_helpers import TOY, assert_same_output, output_of, popen_cli, run_cli, write_manifest
from totask_manifest._jobs.layout import JobLayout
from totask_manifest.testing.file_server import FileServer

N = 120
SECRETS = ("TOKSECRET", "FRESHSECRET", "s3cr3tPW")


def job_args(url: str, out: Path, job: str, *more: str) -> list[str]:
    return ["annotate", url, "--job-name", job, "--label-attribute", "cls", "--task-type", "image-classification",
            "--method", TOY, "--output", str(out), *more]


def serve(server: FileServer, how: str, manifest: bytes) -> str:
    """The manifest on ``server``, readable only through the URL returned (it carries the secret)."""
    server.add("d/in.manifest", manifest)
    if how == "token":
        return server.require_query("d/in.manifest", token="TOKSECRET")
    return server.require_login("d/in.manifest", "bob", "s3cr3tPW")


def wait_for_parts(job: Path, minimum: int, proc, timeout: float = 120.0) -> None:
    layout = JobLayout(str(job))
    deadline = time.monotonic() + timeout
    while len(layout.parts()) < minimum:
        assert proc.poll() is None, proc.communicate()[1]
        assert time.monotonic() < deadline, "the job made no checkpoint in time"
        time.sleep(0.02)


def assert_no_secret(where: dict[str, str]) -> None:
    for name, text in where.items():
        for secret in SECRETS:
            assert secret not in text, f"{secret} in {name}"


def folder_texts(job: Path) -> dict[str, str]:
    """Every file under the job folder, as text (bytes that are not UTF-8 replaced)."""
    return {str(p.relative_to(job)): p.read_bytes().decode("utf-8", "replace") for p in job.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> tuple[bytes, Path]:
    """The manifest, and an uninterrupted run's output of it read from a local file."""
    base = tmp_path_factory.mktemp("ref")
    inp = write_manifest(base / "in.manifest", N, prelabeled_every=9)
    r = run_cli(*job_args(str(inp), base / "out", "ref"))
    assert r.returncode == 0, r.stderr
    return inp.read_bytes(), output_of(base / "out", "ref")


@pytest.mark.slow
@pytest.mark.parametrize("how", ["token", "login"])
def test_a_secret_input_url_stays_out_of_the_job_folder_and_resume_reads_its_copy(tmp_path, reference, how) -> None:
    manifest, ref_out = reference
    out = tmp_path / "out"
    job = out / "sec"
    with FileServer() as server:
        url = serve(server, how, manifest)
        plain = server.url_for("d/in.manifest")
        denied = run_cli("validate", plain)  # the server serves it only with the secret
        assert denied.returncode != 0, denied.stdout
        proc = popen_cli(*job_args(url, out, "sec", "--toy-delay", "0.01", "--checkpoint-every", "5"))
        try:
            wait_for_parts(job, 2, proc)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=60)
    assert_no_secret(folder_texts(job))
    data = orjson.loads((job / "job.json").read_bytes())
    assert data["status"] == "RUNNING"
    assert data["input"]["url"] == data["config"]["input"] == plain + ("?…" if how == "token" else "")
    assert data["input"]["read"] == str(job / "manifests" / "input" / "input.manifest")
    assert (job / "manifests" / "input" / "input.manifest").read_bytes() == manifest
    # the server is gone: the URL fails, and the job goes on from its copy
    r = run_cli("resume", str(job))
    assert r.returncode == 0, r.stderr
    data = orjson.loads((job / "job.json").read_bytes())
    assert data["status"] == "COMPLETED" and data["metrics"]["stand_by"] == 0
    renamed = tmp_path / "renamed.manifest"
    renamed.write_bytes(output_of(out, "sec").read_bytes().replace(b"labeling-job/sec", b"labeling-job/ref"))
    assert_same_output(ref_out, renamed)
    status = run_cli("status", str(job), "--format", "json")
    text = run_cli("status", str(job))
    report = run_cli("report", str(job), "-o", str(tmp_path / "r.html"))
    clone = run_cli("clone", str(job), "--job-name", "again")  # reads the copy too: the URL is dead
    for name, done in (("status", status), ("status text", text), ("report", report), ("clone", clone)):
        assert done.returncode == 0, (name, done.stderr)
    assert orjson.loads(status.stdout)["input"]["url"] == data["input"]["url"]
    assert_same_output(output_of(out, "sec"), _renamed(output_of(out, "again"), "again", "sec", tmp_path))
    assert_no_secret({**folder_texts(job), **{f"again/{k}": v for k, v in folder_texts(out / "again").items()},
                      "report page": (tmp_path / "r.html").read_text(),
                      **{name: r.stdout + r.stderr for name, r in (("resume", r), ("status", status), ("status text", text),
                                                                  ("report", report), ("clone", clone))}})


def _renamed(path: Path, job: str, to: str, tmp_path: Path) -> Path:
    copy = tmp_path / f"{job}-as-{to}.manifest"
    copy.write_bytes(path.read_bytes().replace(f"labeling-job/{job}".encode(), f"labeling-job/{to}".encode()))
    return copy


@pytest.mark.slow
def test_the_same_annotate_with_a_freshly_signed_url_is_the_same_job(tmp_path, reference) -> None:
    """The job records the URL redacted: the same ``annotate`` with the manifest signed anew carries
    the job on; once the URL serves another manifest, it is refused (the job would label another
    input than the one named), as ``resume`` refuses a changed input; an expired URL is not needed."""
    manifest, _ = reference
    out = tmp_path / "out"
    slow = ("--toy-delay", "0.01", "--checkpoint-every", "5")  # the delay is the toy method's identity: always given
    with FileServer() as server:
        first = serve(server, "token", manifest)
        proc = popen_cli(*job_args(first, out, "sec", *slow))
        try:
            wait_for_parts(out / "sec", 2, proc)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=60)
        fresh = server.require_query("d/in.manifest", token="FRESHSECRET")  # the first signature is refused now
        again = run_cli(*job_args(fresh, out, "sec", *slow))
        assert again.returncode == 0, again.stderr
        assert "exists with this configuration; resuming it" in again.stderr
        assert orjson.loads((out / "sec" / "job.json").read_bytes())["status"] == "COMPLETED"
        server.add("d/in.manifest", manifest + b'{"source-ref":"s3://bucket/new.jpg"}\n')
        changed = run_cli(*job_args(fresh, out, "sec", *slow))
    assert changed.returncode == 1, changed.stderr
    assert changed.stderr.strip().count("\n") == 0 and "is not the one job 'sec' copied" in changed.stderr, changed.stderr
    expired = run_cli(*job_args(first, out, "sec", *slow))  # the server is gone: the job has its copy
    assert expired.returncode == 0, expired.stderr
    assert_no_secret({**folder_texts(out / "sec"), "again": again.stdout + again.stderr,
                      "changed": changed.stdout + changed.stderr, "expired": expired.stdout + expired.stderr})


@pytest.mark.slow
def test_a_password_in_the_input_url_stays_out_of_relative_to_and_appended_folders(tmp_path) -> None:
    """``relative_to`` defaulted to the input's folder with its password (``http://bob:pw@host/d``),
    and an appended manifest's folder was kept the same way; both are recorded without it now, and
    a manifest appended through a signed URL is copied with the input, its URL recorded redacted."""
    sample = Path(__file__).resolve().parents[1] / "sample_data"
    lines = [{"source-ref": f"images/img_00{i}.jpg", "annotation-ref": f"annotations/img_00{i}.json"} for i in range(3)]
    with FileServer() as server:
        for i in range(3):
            server.add(f"d/annotations/img_00{i}.json", (sample / "annotations" / f"img_00{i}.json").read_bytes())
            server.add(f"e/annotations/img_00{i}.json", (sample / "annotations" / f"img_00{i}.json").read_bytes())
            for folder in "de":
                server.add(f"{folder}/images/img_00{i}.jpg", (sample / "images" / f"img_00{i}.jpg").read_bytes())
        server.add("d/in.manifest", b"".join(orjson.dumps(x) + b"\n" for x in lines[:2]))
        server.add("e/more.manifest", orjson.dumps(lines[2]) + b"\n")
        url = server.require_login("d/in.manifest", "bob", "s3cr3tPW")
        more = server.require_query("e/more.manifest", token="TOKSECRET")
        r = run_cli("annotate", url, "--append", more, "--job-name", "pw", "--label-attribute", "boxes", "--task-type",
                    "object-detection", "--method", "file", "--url-key", "annotation-ref", "--class-names",
                    str(sample / "class_names.txt"), "--native", "convert", "--output", str(tmp_path / "out"))
    assert r.returncode == 0, r.stderr
    data = orjson.loads((tmp_path / "out" / "pw" / "job.json").read_bytes())
    assert data["metrics"]["success"] == 3, data["metrics"]
    assert data["config"]["options"]["relative_to"] == f"{server.url}/d"
    assert data["config"]["options"]["relative_to_appended"] == [[2, f"{server.url}/e"]]
    assert data["config"]["append"] == [f"{server.url}/e/more.manifest?…"]
    assert_no_secret({**folder_texts(tmp_path / "out" / "pw"), "annotate": r.stdout + r.stderr})


def test_a_relative_to_with_a_secret_is_refused_before_the_job_exists(tmp_path) -> None:
    """job.json keeps ``relative_to``: one given with a password or a query is refused in one line."""
    from totask_manifest import JobConfig, annotate
    from totask_manifest._errors import UsageError

    inp = write_manifest(tmp_path / "in.manifest", 3)
    for base in ("https://bob:s3cr3tPW@host.example/d", "https://host.example/d?token=TOKSECRET"):
        config = JobConfig(job_name="rel", input=str(inp), output_root=str(tmp_path / "out"), label_attribute="boxes",
                           task_type="object-detection", method="file",
                           options={"url_key": "annotation-ref", "relative_to": base})
        with pytest.raises(UsageError) as refused:
            annotate(config)
        assert "relative_to must not carry" in str(refused.value)
        assert_no_secret({"error": str(refused.value)})
    assert not (tmp_path / "out").exists()


def test_a_password_in_a_chained_input_url_stays_out_of_the_job_folder(tmp_path) -> None:
    """``simplecache::http://bob:pw@host/in.manifest`` (an fsspec chained URL) parses as one URL
    without a host, so its password was not seen: job.json kept it whole (``input.url``,
    ``config.input``) and the job read the URL in place. Each link of a chained URL is looked at."""
    from totask_manifest._storage import carries_secret

    assert carries_secret("simplecache::https://bob:s3cr3tPW@host.example/d/in.manifest")
    assert carries_secret("blockcache::s3://key:s3cr3tPW@bucket/in.manifest")
    assert not carries_secret("simplecache::s3://bucket/in.manifest")
    inp = write_manifest(tmp_path / "in.manifest", 5)
    with FileServer() as server:
        server.add("d/in.manifest", inp.read_bytes())
        url = "simplecache::" + server.require_login("d/in.manifest", "bob", "s3cr3tPW")
        r = run_cli(*job_args(url, tmp_path / "out", "chained"))
    assert r.returncode == 0, r.stderr
    job = tmp_path / "out" / "chained"
    data = orjson.loads((job / "job.json").read_bytes())
    assert data["config"]["input"] == f"simplecache::{server.url}/d/in.manifest"
    assert data["input"]["read"] == str(job / "manifests" / "input" / "input.manifest")
    assert_no_secret({**folder_texts(job), "annotate": r.stdout + r.stderr})


def test_debug_logging_keeps_an_input_urls_secret_out(tmp_path) -> None:
    """``-v`` turns on every library's debug lines: fsspec's HTTP file system logged the input URL
    whole on each read ('Retrieve file size for http://host/d/in.manifest?token=...', the password
    of 'http://bob:pw@host/...' too). Every log line now goes out with its URLs' secrets cut."""
    inp = write_manifest(tmp_path / "in.manifest", 5)
    with FileServer() as server:
        server.add("d/in.manifest", inp.read_bytes())
        server.add("e/in.manifest", inp.read_bytes())
        token = server.require_query("d/in.manifest", token="TOKSECRET")
        login = server.require_login("e/in.manifest", "bob", "s3cr3tPW")
        runs = {name: run_cli("-v", *job_args(url, tmp_path / "out", name))
                for name, url in (("token", token), ("login", login))}
    for name, r in runs.items():
        assert r.returncode == 0, r.stderr
        assert f"{server.url}/{'d' if name == 'token' else 'e'}/in.manifest" in r.stderr  # the debug lines are there
        assert_no_secret({name: r.stdout + r.stderr, **folder_texts(tmp_path / "out" / name)})
