"""A checkpoint part deleted by hand (or lost by its store) before the last one: ``resume`` carried
on after the last recorded line, so that part's lines were neither recorded nor labeled again, and
every resume ended FAILED with "the engine finished with N selected line(s) neither labeled nor
failed", which named neither the part nor a way out. ``resume`` now refuses it before anything is
written, naming the part, its lines and what to do, as for a damaged part followed by good ones;
``status`` says the same, and so does ``report``'s page. Real job folders, the CLI in a subprocess."""

from __future__ import annotations

import html
import shutil
from pathlib import Path

import orjson
import pytest

from tests.jobs_helpers import assert_same_output, output_of, run_cli, toy_job_args, write_manifest
from totask_manifest._jobs.layout import JobLayout

pytestmark = pytest.mark.slow


def _stopped_job(tmp_path: Path) -> tuple[Path, Path, list[Path]]:
    """A job of 40 lines in parts of 5 (part k holds lines 5k+1 to 5k+5), STOPPED with no output
    manifest yet, and a copy of the full output to compare against; and its parts."""
    inp = write_manifest(tmp_path / "in.manifest", 40)
    out = tmp_path / "out"
    r = run_cli(*toy_job_args(inp, out, "--checkpoint-every", "5"))
    assert r.returncode == 0, r.stderr
    job = out / "j"
    expected = Path(shutil.copy(output_of(out, "j"), tmp_path / "expected.manifest"))
    output_of(out, "j").unlink()
    data = orjson.loads((job / "job.json").read_bytes())
    (job / "job.json").write_bytes(orjson.dumps({**data, "status": "STOPPED"}))
    parts = [Path(p) for p in JobLayout(str(job)).parts()]
    assert len(parts) == 8
    return job, expected, parts


@pytest.mark.parametrize(("gone", "lines"), [(2, "11-15"), (0, "1-5")], ids=["middle", "first"])
def test_resume_refuses_a_missing_part_naming_it_its_lines_and_what_to_do(tmp_path, gone, lines):
    job, expected, parts = _stopped_job(tmp_path)
    parts[gone].unlink()
    before = {p.name: p.read_bytes() for p in (job / "manifests" / "intermediate").iterdir()}
    job_json = (job / "job.json").read_bytes()
    r = run_cli("resume", str(job))
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    err = r.stderr.strip()
    assert f"checkpoint part {parts[gone]} is missing" in err, err
    assert f"input lines {lines}" in err and f"{7 - gone} later parts" in err, err
    assert "restore it from a backup" in err and "(keep them)" in err, err
    # nothing written: the parts as they were, job.json still STOPPED
    assert {p.name: p.read_bytes() for p in (job / "manifests" / "intermediate").iterdir()} == before
    assert (job / "job.json").read_bytes() == job_json
    s = run_cli("status", str(job))
    assert s.returncode == 0 and f"missing: checkpoint part {parts[gone]} is missing" in s.stdout, s.stdout
    note = s.stdout.split("missing: ", 1)[1].splitlines()[0]
    page = tmp_path / "report.html"
    rep = run_cli("report", str(job), "-o", str(page))  # the page says it too, as status does
    assert rep.returncode == 0 and note in rep.stderr, rep.stderr
    assert f"<dt>missing</dt><dd>{html.escape(note)}</dd>" in page.read_text()
    page.unlink()
    # the way out it names: move the later parts out (kept), resume labels their lines again
    kept = tmp_path / "kept"
    kept.mkdir()
    for part in parts[gone + 1 :]:
        part.rename(kept / part.name)
    r = run_cli("resume", str(job))
    assert r.returncode == 0, r.stderr
    assert orjson.loads((job / "job.json").read_bytes())["status"] == "COMPLETED"
    assert_same_output(output_of(job.parent, "j"), expected)


def test_a_missing_last_part_is_labeled_again(tmp_path):
    job, expected, parts = _stopped_job(tmp_path)
    parts[-1].unlink()
    s = run_cli("status", str(job))
    assert s.returncode == 0 and "missing:" not in s.stdout, s.stdout
    page = tmp_path / "report.html"
    assert run_cli("report", str(job), "-o", str(page)).returncode == 0
    assert "<dt>missing</dt>" not in page.read_text()
    page.unlink()
    r = run_cli("resume", str(job))
    assert r.returncode == 0, r.stderr
    assert_same_output(output_of(job.parent, "j"), expected)
