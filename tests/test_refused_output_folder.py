"""An ``annotate`` refused before its job exists (an input that is not there, a malformed first
line) leaves no folder it made: taking the job's lease created ``--output`` (and the folders above
it that were missing), and only the job folder and ``.lease`` went again, so an empty ``--output``
folder stayed behind. A folder that existed before the command stays, empty as it was."""

from __future__ import annotations

import pytest

from tests.jobs_helpers import TOY, run_cli


def _annotate(inp, out):
    return run_cli("annotate", str(inp), "--job-name", "j", "--label-attribute", "cls", "--task-type",
                   "image-classification", "--method", TOY, "--output", str(out))


def _inputs(tmp_path):
    bad = tmp_path / "bad.manifest"
    bad.write_bytes(b'not json\n{"source-ref":"s3://b/a.jpg"}\n')
    return {"missing": (tmp_path / "nope.manifest", 2, "input manifest not found"),
            "malformed": (bad, 1, "line 1: line is not a single JSON object")}


@pytest.mark.parametrize("refusal", ["missing", "malformed"])
def test_a_refused_annotate_removes_the_output_folders_it_made(tmp_path, refusal):
    inp, code, message = _inputs(tmp_path)[refusal]
    out = tmp_path / "new" / "out"  # neither folder exists: the command makes both
    r = _annotate(inp, out)
    assert r.returncode == code and message in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.manifest"], list(tmp_path.iterdir())


@pytest.mark.parametrize("refusal", ["missing", "malformed"])
def test_a_refused_annotate_keeps_output_folders_that_existed(tmp_path, refusal):
    inp, code, message = _inputs(tmp_path)[refusal]
    out = tmp_path / "out"
    out.mkdir()
    (tmp_path / "out2" / "j").mkdir(parents=True)  # the job's own folder made beforehand, empty
    for root in (out, tmp_path / "out2"):
        r = _annotate(inp, root)
        assert r.returncode == code and message in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert list(out.iterdir()) == []
    assert [p.name for p in (tmp_path / "out2").iterdir()] == ["j"] and list((tmp_path / "out2" / "j").iterdir()) == []


def test_a_lease_that_cannot_be_written_leaves_no_folder(tmp_path):
    """A disk that refuses the lease's first byte (full: ENOSPC; here a file size limit of 0, EFBIG,
    which needs no root) leaves no ``--output`` folder the command made, as any other refusal."""
    import os
    import resource
    import signal
    import subprocess
    import sys

    from tests.jobs_helpers import REPO, write_manifest

    inp = write_manifest(tmp_path / "in.manifest", 3)
    out = tmp_path / "new" / "out"

    def no_file_may_grow() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG), not kills
        resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))

    r = subprocess.run(
        [sys.executable, "-m", "totask_manifest", "annotate", str(inp), "--job-name", "j", "--label-attribute",
         "cls", "--task-type", "image-classification", "--method", TOY, "--output", str(out)],
        capture_output=True, text=True, timeout=120, cwd=REPO, preexec_fn=no_file_may_grow,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert r.returncode == 2 and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "cannot take the lease on" in r.stderr and "File too large" in r.stderr, r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.manifest"], list(tmp_path.rglob("*"))


@pytest.mark.parametrize("where", ["output", "job"])
def test_a_file_in_the_place_of_a_folder_is_named(tmp_path, where):
    """``--output`` that is a file (or a file where the job folder goes): one line naming that
    file, not "[Errno 20] Not a directory: '.../j/.lease'", a folder the user never named."""
    from tests.jobs_helpers import write_manifest

    inp = write_manifest(tmp_path / "in.manifest", 3)
    out = tmp_path / "out"
    if where == "output":
        out.write_bytes(b"x")
        in_the_way = out
    else:
        out.mkdir()
        (out / "j").write_bytes(b"x")
        in_the_way = out / "j"
    r = _annotate(inp, out)
    assert r.returncode == 2 and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert f"{in_the_way} is a file, not a folder" in r.stderr and ".lease" not in r.stderr, r.stderr
    assert in_the_way.read_bytes() == b"x"


@pytest.mark.parametrize("inside", ["", "manifests", "deeper/still"])
def test_a_job_inside_another_jobs_folder_is_refused(tmp_path, inside):
    """``annotate --output out/victim`` (a job folder, or a folder in it) made a job inside that
    job, whose resume then cleans this one's temporaries while it runs; refused, exit 2, one line,
    nothing written in the other job's folder."""
    from totask_manifest.testing.builders import make_job

    inp = tmp_path / "in.manifest"
    inp.write_bytes(b'{"source-ref":"s3://b/a.jpg"}\n')
    victim = make_job(tmp_path / "out", inp, name="victim")
    before = sorted(p.relative_to(victim) for p in victim.rglob("*"))
    root = victim / inside if inside else victim
    r = _annotate(inp, root)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1, r.stderr
    where = "is" if not inside else "is inside"
    assert lines[0].endswith(f"the output root {root} {where} job folder {victim} (a folder holding job.json), whose "
                             "files only its job writes; choose another --output"), r.stderr
    assert sorted(p.relative_to(victim) for p in victim.rglob("*")) == before


@pytest.mark.parametrize("job", ["locked", "locked/sub"])
def test_an_output_folder_that_cannot_be_written_is_named_so(tmp_path, immutable_folder, job):
    """``--output`` in an immutable folder said "its file system does not support hard links
    (Operation not permitted) ... put the job on a local disk": EPERM was read as "no hard links"
    though no file could be made there at all. Exit 2 either way, one line."""
    from tests.jobs_helpers import write_manifest

    inp = write_manifest(tmp_path / "in.manifest", 3)
    r = _annotate(inp, tmp_path / job)
    assert r.returncode == 2 and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert r.stderr.strip().endswith(f"cannot take the lease on {tmp_path / job / 'j'}: {immutable_folder} is not a "
                                     "writable folder (Operation not permitted)"), r.stderr
    assert list(immutable_folder.iterdir()) == []
