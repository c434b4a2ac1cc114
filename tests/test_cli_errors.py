"""Every command, as a real subprocess, on what a user can get wrong: a missing input, a bad
input, an I/O error (an ``s3://`` URL without credentials), a failed job. Each ends with the exit
code the README gives (2 usage or I/O, 1 invalid data or a failed job) and an error that starts
``totask-manifest <command>: error:`` on stderr, never a traceback. A full disk during a job (a
real small tmpfs where one can be mounted, and a real file size limit everywhere) ends the job
FAILED in job.json with the error; a closed stdout pipe ends quietly."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from tests.jobs_helpers import REPO, TOY, write_manifest
from tests.support.gt import GT_MANIFESTS as GT
from tests.support.gt import requires_gt

pytestmark = requires_gt

YOLO = GT / "object-detection__aws-amazon-sagemaker-examples__yolov5-sample_output.manifest"
S3 = "s3://totask-no-such-bucket-h5"
JOB_OPTIONS = ["--label-attribute", "cls", "--task-type", "image-classification", "--method", TOY]


def env() -> dict[str, str]:
    """No storage or Synapse credentials from anywhere, and no instance metadata lookups."""
    out = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "SYNAPSE_"))}
    out.update(PYTHONPATH=str(REPO), AWS_EC2_METADATA_DISABLED="true", AWS_SHARED_CREDENTIALS_FILE="/nonexistent",
               AWS_CONFIG_FILE="/nonexistent")
    if "AWS_CA_BUNDLE" in os.environ:
        out["AWS_CA_BUNDLE"] = os.environ["AWS_CA_BUNDLE"]
    return out


def cli(*args: str, cwd: Path, preexec=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "totask_manifest", *args], capture_output=True, text=True,
                          timeout=180, env=env(), cwd=cwd, preexec_fn=preexec)


@pytest.fixture(scope="module")
def place(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cli-errors")
    (root / "trunc.manifest").write_bytes(YOLO.read_bytes()[:5000])  # the last line is cut short
    # the same lines with a machine copy of each label, for evaluate (two attributes to compare)
    pairs = []
    for raw in YOLO.read_bytes().splitlines():
        rec = orjson.loads(raw)
        pairs.append(orjson.dumps({**rec, "pred": rec["category"],
                                   "pred-metadata": {**rec["category-metadata"], "human-annotated": "no"}}))
    (root / "trunc-pairs.manifest").write_bytes((b"\n".join(pairs) + b"\n")[:8000])
    (root / "corrupt").mkdir()
    (root / "corrupt" / "job.json").write_bytes(b'{"config": {"job_name"')
    (root / "bad-params.json").write_bytes(b"{")
    write_manifest(root / "in.manifest", 12)
    r = cli("annotate", "in.manifest", "--job-name", "failed", *JOB_OPTIONS, "--toy-fail", "img", "--output", "jobs",
            cwd=root)
    assert r.returncode == 1, r.stderr  # every line failed: nothing labeled, the job is FAILED
    return root


JOB = ["--job-name", "next"]
MISSPELT = ["--label-attribute", "categroy"]  # no line holds it: refused, naming what the lines hold
CASES = {
    # command: {situation: (arguments, exit code)}
    "validate": {"missing": (["nothere.manifest"], 2), "bad": (["trunc.manifest"], 1),
                 "io": ([f"{S3}/x.manifest"], 2), "misspelt": ([str(YOLO), *MISSPELT], 1)},
    "annotate": {"missing": (["nothere.manifest", *JOB, *JOB_OPTIONS, "--output", "jobs"], 2),
                 "bad": (["trunc.manifest", *JOB, *JOB_OPTIONS, "--output", "jobs"], 1),
                 "io": ([f"{S3}/in.manifest", *JOB, *JOB_OPTIONS, "--output", "jobs"], 2),
                 "failed": (["in.manifest", "--job-name", "f2", *JOB_OPTIONS, "--toy-fail", "img", "--output",
                             "jobs"], 1)},
    "chain": {"missing": (["nowhere", *JOB], 2), "bad": (["corrupt", *JOB], 1), "io": ([f"{S3}/job", *JOB], 2),
              "failed": (["jobs/failed", "--job-name", "f3", "--label-attribute", "cls"], 1)},
    "clone": {"missing": (["nowhere", *JOB], 2), "bad": (["corrupt", *JOB], 1), "io": ([f"{S3}/job", *JOB], 2),
              "failed": (["jobs/failed", "--job-name", "f4"], 1)},
    "resume": {"missing": (["nowhere"], 2), "bad": (["corrupt"], 1), "io": ([f"{S3}/job"], 2),
               "failed": (["jobs/failed"], 1)},
    # status reports a FAILED job (exit 0: it could read it; the status is in its output)
    "status": {"missing": (["nowhere"], 2), "bad": (["corrupt"], 1), "io": ([f"{S3}/job"], 2),
               "failed": (["jobs/failed"], 0)},
    "export": {"missing": (["--project", "1", "-o", "e.manifest"], 2),  # no Synapse credentials
               "bad": (["--project", "1", "--filter", "nonsense", "-o", "e.manifest"], 2),
               "io": (["--project", "1", "-o", f"{S3}/e.manifest"], 2)},
    "apply": {"missing": (["nowhere"], 2), "bad": (["corrupt"], 1), "io": ([f"{S3}/job"], 2)},
    "rollback": {"missing": (["nowhere"], 2), "io": ([f"{S3}/job"], 2)},
    "run": {"missing": (["nothere.json"], 2), "bad": (["bad-params.json"], 2), "io": ([f"{S3}/p.json"], 2)},
    "stats": {"missing": (["nothere.manifest"], 2), "bad": (["trunc.manifest"], 1),
              "io": ([f"{S3}/x.manifest"], 2), "failed": (["jobs/failed/manifests/output/output.manifest"], 0),
              "misspelt": ([str(YOLO), *MISSPELT], 1)},
    "report": {"missing": (["nowhere", "-o", "r.html"], 2), "io": ([f"{S3}/job", "-o", "r.html"], 2),
               "bad": (["corrupt", "-o", "r.html", "--samples", "0"], 1),  # the page is written all the same
               "failed": (["jobs/failed", "-o", "r.html", "--samples", "0"], 0)},
    "evaluate": {"missing": (["nothere.manifest"], 2), "bad": (["corrupt"], 1),
                 "bad-lines": (["trunc-pairs.manifest", "--predicted", "pred", "--reference", "category"], 1),
                 "io": ([f"{S3}/x.manifest", "--predicted", "pred", "--reference", "category"], 2)},
    "labeled": {"missing": (["nothere.manifest", "--label-attribute", "category", "-o", "l.manifest"], 2),
                "bad": (["trunc.manifest", "--label-attribute", "category", "-o", "l.manifest"], 1),
                "io": ([f"{S3}/x.manifest", "--label-attribute", "category", "-o", "l.manifest"], 2),
                "misspelt": ([str(YOLO), *MISSPELT, "-o", "l.manifest"], 1)},
    "convert": {"missing": (["nothere.manifest", "x.parquet", "--to", "parquet"], 2),
                "bad": (["trunc.manifest", "x.json", "--to", "coco"], 1),
                "io": ([f"{S3}/x.manifest", "x.parquet", "--to", "parquet"], 2),
                "misspelt": ([str(YOLO), "x.json", "--to", "coco", *MISSPELT], 1)},
}


@pytest.mark.parametrize("command, situation", [(c, s) for c, cases in CASES.items() for s in cases],
                         ids=lambda v: v)
@pytest.mark.slow
def test_every_command_exits_as_documented_without_a_traceback(place: Path, command: str, situation: str) -> None:
    args, code = CASES[command][situation]
    r = cli(command, *args, cwd=place)
    assert "Traceback" not in r.stderr, r.stderr
    assert r.returncode == code, (r.returncode, r.stderr)
    if situation == "failed":
        assert "FAILED" in r.stdout or "FAILED" in r.stderr or code == 0
        return
    if command == "validate" and situation == "bad":  # its report is the output
        assert "line-json" in r.stdout, r.stdout
        assert r.stderr == ""
        return
    if command == "stats" and situation == "bad":  # its counts, then why it exits 1 on stderr (stdout may be a file)
        assert "not a JSON object: 1" in r.stdout, r.stdout
        assert r.stderr == ("totask-manifest stats: error: 1 line is not a JSON object (a truncated or damaged "
                            "manifest; totask-manifest validate names it); the counts leave it out\n")
        return
    lines = r.stderr.strip().splitlines()
    assert lines[0].startswith(f"totask-manifest {command}: error: "), r.stderr
    assert all(line.startswith("  ") for line in lines[1:]), r.stderr  # only a listing of bad lines follows


@pytest.mark.slow
def test_a_closed_stdout_pipe_ends_quietly(tmp_path: Path) -> None:
    path = tmp_path / "dups.manifest"
    path.write_bytes(b"".join(b'{"source-ref":"s3://b/%d","a":1,"a":2}\n' % i for i in range(100_000)))
    proc = subprocess.Popen([sys.executable, "-m", "totask_manifest", "validate", str(path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env())
    first = proc.stdout.readline()
    proc.stdout.close()  # as `head -1` does
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 128 + signal.SIGPIPE
    assert first.startswith(b"line 1: error:") and err == ""


@pytest.mark.slow
@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
@pytest.mark.parametrize("command", [["validate"], ["stats", "--format", "json"]])
def test_a_full_stdout_is_named_as_stdout(tmp_path: Path, command: list[str]) -> None:
    """``> /dev/full`` (stdout on a full disk): the one line says it was standard output, as a
    file's refusal names the file, and nothing else is printed (no second error at exit)."""
    write_manifest(tmp_path / "m.manifest", 20)
    with open("/dev/full", "w") as full:
        r = subprocess.run([sys.executable, "-m", "totask_manifest", command[0], str(tmp_path / "m.manifest"),
                            *command[1:]], stdout=full, stderr=subprocess.PIPE, text=True, env=env())
    assert r.returncode == 2
    assert r.stderr == f"totask-manifest {command[0]}: error: No space left on device: standard output\n"


def _full_disk_job(root: Path, output: Path, preexec=None) -> tuple[subprocess.CompletedProcess, dict]:
    write_manifest(root / "big.manifest", 3000)
    r = cli("annotate", str(root / "big.manifest"), "--job-name", "full", *JOB_OPTIONS, "--toy-fail", "",
            "--checkpoint-every", "200", "--output", str(output), cwd=root, preexec=preexec)
    return r, orjson.loads((output / "full" / "job.json").read_bytes())


def _assert_failed_cleanly(r: subprocess.CompletedProcess, job: dict, message: str, output: Path) -> None:
    assert "Traceback" not in r.stderr, r.stderr
    assert r.returncode == 1, r.stderr
    assert job["status"] == "FAILED" and message in job["error"], job["error"]
    assert not [p for p in (output / "full").rglob(".tmp-*")]  # nothing half-written left behind


@pytest.mark.slow
def test_a_full_disk_during_a_checkpoint_fails_the_job_in_job_json(tmp_path: Path) -> None:
    """A real tmpfs of 64 KiB: job.json fits, the first checkpoint part does not."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        r, job = _full_disk_job(tmp_path, disk)
        _assert_failed_cleanly(r, job, "No space left on device", disk)
        status = cli("status", str(disk / "full"), cwd=tmp_path)
        assert status.returncode == 0 and "FAILED" in status.stdout
    finally:
        subprocess.run(["umount", str(disk)], check=True)


def _file_size_limit(limit: int):
    def preexec() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return preexec


@pytest.mark.slow
def test_a_file_size_limit_during_a_checkpoint_fails_the_job_and_resume_finishes_it(tmp_path: Path) -> None:
    """The same refusal from the kernel (EFBIG) without root: no file may pass 32 KiB."""
    out = tmp_path / "out"
    r, job = _full_disk_job(tmp_path, out, preexec=_file_size_limit(32 << 10))
    _assert_failed_cleanly(r, job, "File too large", out)
    output = out / "full" / "manifests" / "output" / "output.manifest"
    status = cli("status", str(out / "full"), cwd=tmp_path)  # names no output manifest it never wrote
    assert not output.exists() and "output manifest: not written yet" in status.stdout, status.stdout
    assert f"output manifest: {output}\n" not in status.stdout, status.stdout
    again = cli("resume", str(out / "full"), cwd=tmp_path)  # with room again: nothing lost
    assert again.returncode == 0, again.stderr
    final = orjson.loads((out / "full" / "job.json").read_bytes())
    assert final["status"] == "COMPLETED" and final["metrics"]["success"] == 3000
    lines = (out / "full" / "manifests" / "output" / "output.manifest").read_bytes().splitlines()
    assert len(lines) == 3000 and all(b'"cls-metadata"' in line for line in lines)


@pytest.mark.slow
def test_a_file_size_limit_on_the_output_manifest_is_named_in_the_result(tmp_path: Path) -> None:
    """Every part fits under 256 KiB, the output manifest (1 MB) does not: the job ends FAILED with
    each line counted a success, and the result the command prints must say why, as ``status``
    does; it printed only ``FAILED`` and ``success=3000``, and the reason was in job.json alone."""
    out = tmp_path / "out"
    r, job = _full_disk_job(tmp_path, out, preexec=_file_size_limit(256 << 10))
    _assert_failed_cleanly(r, job, "output manifest not written", out)
    assert job["metrics"]["success"] == 3000, job["metrics"]
    assert f"error: {job['error']}\n" in r.stdout, r.stdout
    assert "File too large" in job["error"] and "output.manifest" in job["error"], job["error"]
    status = cli("status", str(out / "full"), cwd=tmp_path)
    assert f"error: {job['error']}\n" in status.stdout, status.stdout


@pytest.mark.slow
def test_a_file_size_limit_during_a_yolo_export_names_the_export(tmp_path: Path) -> None:
    """A YOLO export whose index.jsonl passes 4 KiB: the error names the folder written, as every
    other format's names its file; it said only ``error: File too large`` (the close of the
    buffered index raised again over the named error)."""
    r = cli("convert", str(YOLO), str(tmp_path / "yolo"), "--to", "yolo", cwd=tmp_path, preexec=_file_size_limit(4 << 10))
    assert r.returncode == 2, r.stderr
    assert r.stderr == (f"totask-manifest convert: error: cannot write {tmp_path / 'yolo'}: File too large: this "
                        f"process's file size limit ({4 << 10} bytes, ulimit -f) was reached; raise it (ulimit -f "
                        "unlimited) and run it again: the limit is the process's, another folder does not help\n"), r.stderr


@pytest.mark.slow
def test_a_file_size_limit_met_outside_storage_is_said_as_the_limit(tmp_path: Path) -> None:
    """``validate`` printing its errors into a file under ``ulimit -f``: the write to stdout fails
    with EFBIG outside the storage layer, where the CLI's last resort said a bare ``error: File too
    large``; it names the process's limit now, as every other writer does (``file_size_limit``)."""
    bad = tmp_path / "bad.manifest"
    bad.write_bytes(b'{"source-ref": 5}\n' * 3000)  # one error line each: far past 4 KiB
    with (tmp_path / "errors.txt").open("wb") as out:
        r = subprocess.run([sys.executable, "-m", "totask_manifest", "validate", str(bad)], stdout=out,
                           stderr=subprocess.PIPE, text=True, timeout=180, env=env(), cwd=tmp_path,
                           preexec_fn=_file_size_limit(4 << 10))
    assert r.returncode == 2, r.stderr
    assert r.stderr == (f"totask-manifest validate: error: File too large: this process's file size limit ({4 << 10} "
                        "bytes, ulimit -f) was reached; raise it (ulimit -f unlimited) and run it again: the limit is "
                        "the process's, another folder does not help\n"), r.stderr
    assert (tmp_path / "errors.txt").stat().st_size == 4 << 10
