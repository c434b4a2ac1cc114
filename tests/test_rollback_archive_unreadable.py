"""``rollback`` of a job with nothing left to undo looks for its runs a later ``run`` archived
(``ROOT/.totask-archive``). A ``.totask-archive`` that cannot be listed (a symbolic link loop
here; no permission, elsewhere) raised its ``OSError``: ``rollback`` ended in an error, exit 2,
though it had done all it had to. It now says in one line that the folder cannot be read and
ends as before, exit 0. The Synapse server is real (127.0.0.1), the job a real toy job, the
command a subprocess."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.jobs_helpers import run_cli, toy_job_args, write_manifest

pytest_plugins = ["totask_manifest.testing.fixtures"]


@pytest.fixture
def job(tmp_path: Path) -> Path:
    """A COMPLETED toy job ``out/j``, never applied."""
    r = run_cli(*toy_job_args(write_manifest(tmp_path / "in.manifest", 3), tmp_path / "out"))
    assert r.returncode == 0, r.stderr
    return tmp_path / "out" / "j"


def test_an_archive_folder_that_cannot_be_listed_is_said_not_raised(synapse, job) -> None:
    archive = job.parent / ".totask-archive"
    archive.symlink_to(".totask-archive")  # ELOOP: an OSError neither FileNotFoundError nor NotADirectoryError

    r = run_cli("rollback", str(job))

    assert r.returncode == 0 and "Traceback" not in r.stderr, (r.returncode, r.stderr)
    assert f"{archive} cannot be read (Too many levels of symbolic links): runs of job 'j' archived there, if " \
        "any, are not named; roll each one back by its folder" in r.stderr.splitlines()
    assert r.stdout.strip().splitlines()[-1] == ("rollback: nothing to restore: the job's journal holds no write left to undo (never applied, "
                         "or every write undone already)")


def test_no_archive_folder_is_no_archived_run(synapse, job) -> None:
    r = run_cli("rollback", str(job))

    assert r.returncode == 0 and "cannot be read" not in r.stderr, r.stderr
