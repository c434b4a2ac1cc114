"""``rollback`` given a file (the output manifest, an exported manifest) said only "is not a job
folder: neither job.json nor a Synapse journal found", where ``apply`` and every job command name
the job folder to give (a file inside one) or say it is a file. Rollback now says the same, exit 2,
before any request.
"""

from __future__ import annotations

from pathlib import Path

from tests.jobs_helpers import run_cli


def _error_line(done) -> str:
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2 and len(lines) == 1 and "Traceback" not in done.stderr, (done.returncode, done.stderr)
    return lines[0]


def test_rollback_names_the_job_folder_a_file_is_inside(tmp_path: Path) -> None:
    output = tmp_path / "out" / "j" / "manifests" / "output" / "output.manifest"
    output.parent.mkdir(parents=True)
    output.write_text("{}\n")
    (tmp_path / "out" / "j" / "job.json").write_text("{}")
    (tmp_path / "e.manifest").write_text("{}\n")
    env = {"SYNAPSE_HOST": "http://127.0.0.1:9", "SYNAPSE_ACCESS_TOKEN": "never-sent-token"}

    inside = _error_line(run_cli("rollback", "out/j/manifests/output/output.manifest", cwd=tmp_path, env=env))
    loose = _error_line(run_cli("rollback", "e.manifest", cwd=tmp_path, env=env))
    empty = _error_line(run_cli("rollback", "out", cwd=tmp_path, env=env))

    assert inside.endswith("out/j/manifests/output/output.manifest is not a job folder: it is a file inside job "
                           "folder out/j; give that folder"), inside
    assert loose.endswith("e.manifest is a file, not a job folder (a folder holding job.json)"), loose
    assert empty.endswith("out is not a job folder: neither job.json nor a Synapse journal found; it holds job "
                          "folder j: give one (out/j)"), empty
